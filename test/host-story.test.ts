/**
 * The operator's story on one simulated host kept in a state directory: config, plan, apply,
 * status, install, hold, rotate, reboot, status — through the `vfioctl` command itself, checking
 * exit codes, that no token is ever printed or written outside the store, and that the boot unit
 * sets the store's token into the new kernel after a reboot.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../src/cli/main.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const CFG = path.join(REPO, "examples/default-host.yaml");

interface Run {
  code: number;
  out: string;
  err: string;
}

const transcript: string[] = [];

async function vfioctl(dir: string, ...argv: string[]): Promise<Run> {
  let out = "";
  let err = "";
  // the UTF-8 rendering (as on a UTF-8 terminal): lines are asserted with their → arrows
  const code = await main(["--sim", "--state", dir, ...argv], { out: (s) => void (out += s + "\n"), err: (s) => void (err += s + "\n"), env: {}, stdin: async () => "", utf8: true });
  transcript.push(out, err);
  return { code, out, err };
}

/** Every file under dir whose bytes contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && fs.readFileSync(p).includes(needle)) hits.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return hits.sort();
}

test("an operator story on one --state directory: config, plan, apply, status, install, hold, rotate, reboot, status", async () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-story-"));
  transcript.length = 0;
  assert.equal((await vfioctl(d, "config", "install", CFG)).code, 0);
  let r = await vfioctl(d, "plan");
  assert.equal(r.code, 1, r.out + r.err);
  assert.match(r.out, /nic0: matched 8086:10c9 at path 0000:00:01\.0\/00\.0 \(now 0000:01:00\.0\)/);
  assert.match(r.out, /generate a VF token for nic0 and store it/);
  r = await vfioctl(d, "status");
  assert.equal(r.code, 1);
  assert.match(r.out, /drift: driver: igb, config says vfio-pci/);
  r = await vfioctl(d, "apply", "--dry-run");
  assert.equal(r.code, 0);
  assert.match(r.out, /dry run: nothing was changed/);
  assert.equal(fs.existsSync(path.join(d, "root/etc/vfioctl/tokens")), false, "a dry run stores nothing");
  r = await vfioctl(d, "apply");
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /applied 6 steps/);
  r = await vfioctl(d, "apply");
  assert.equal(r.code, 0);
  assert.match(r.out, /nothing to do/);
  r = await vfioctl(d, "status");
  assert.equal(r.code, 0, r.out);
  const tokenFile = path.join(d, "root/etc/vfioctl/tokens/nic0/current");
  const t1 = fs.readFileSync(tokenFile, "utf8").trim();
  assert.equal(fs.statSync(tokenFile).mode & 0o777, 0o600);
  assert.equal((await vfioctl(d, "token", "verify", "0000:01:10.0", "--from-store")).code, 0);
  // boot integration, then a long-lived VF user and a rotation while it runs
  r = await vfioctl(d, "install");
  assert.equal(r.code, 0, r.out + r.err);
  r = await vfioctl(d, "sim", "hold", "0000:01:10.0", "--token-file", "/etc/vfioctl/tokens/nic0/current", "--as", "qemu");
  assert.equal(r.code, 0, r.out + r.err);
  r = await vfioctl(d, "token", "rotate", "0000:01:00.0");
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /open VFs keep running with the old token: 0000:01:10\.0/);
  const t2 = fs.readFileSync(tokenFile, "utf8").trim();
  assert.notEqual(t2, t1);
  assert.equal(fs.readFileSync(path.join(d, "root/etc/vfioctl/tokens/nic0/previous"), "utf8").trim(), t1);
  r = await vfioctl(d, "status");
  assert.match(r.out, /may hold the old token: 0000:01:10\.0 pid \d+ \(qemu\)/);
  r = await vfioctl(d, "audit");
  assert.match(r.out, /\[old-token-user\] 0000:01:10\.0/);
  assert.equal((await vfioctl(d, "token", "verify", "0000:01:10.2", "--from-store")).code, 0);
  // a reboot: new kernel tokens; the installed boot unit converges and sets the stored token
  r = await vfioctl(d, "sim", "reboot");
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out + r.err, /vfioctl\.service.*exit 0/);
  r = await vfioctl(d, "status");
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /token: generate, match/);
  assert.equal((await vfioctl(d, "token", "verify", "0000:01:10.0", "--from-store")).code, 0);
  assert.equal(fs.readFileSync(tokenFile, "utf8").trim(), t2, "the boot set the stored token, it did not make a new one");
  // tokens: never printed, never in the log or journal, only in the store (and the simulated kernel's own memory file)
  for (const t of [t1, t2]) {
    assert.ok(!transcript.some((s) => s.includes(t)), "a token was printed");
    const where = filesContaining(d, t).filter((f) => !f.startsWith("root/etc/vfioctl/tokens/nic0/") && f !== "root/var/lib/vfioctl/sim-tokens");
    assert.deepEqual(where, [], `token found outside the store: ${where.join(", ")}`);
  }
  assert.equal(fs.existsSync("/etc/vfioctl/tokens/nic0"), false, "nothing on the real file system");
  fs.rmSync(d, { recursive: true, force: true });
});

test("a re-probe of the PF regenerates its token; the installed udev rule sets the stored one again", async () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-story-"));
  assert.equal((await vfioctl(d, "config", "install", CFG)).code, 0);
  assert.equal((await vfioctl(d, "apply")).code, 0);
  assert.equal((await vfioctl(d, "install")).code, 0);
  // someone re-probes the PF: VFs off, unbind, bind vfio-pci again
  assert.equal((await vfioctl(d, "sriov", "0000:01:00.0", "0")).code, 0);
  let r = await vfioctl(d, "unbind", "0000:01:00.0");
  assert.equal(r.code, 0, r.out + r.err);
  r = await vfioctl(d, "bind", "0000:01:00.0", "vfio-pci");
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.err, /udev: bind 0000:01:00\.0 \(vfio-pci\) → RUN .*vfioctl-pf@0000:01:00\.0\.service: exit 0/);
  r = await vfioctl(d, "status");
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /token: generate, match — a free VF opens with it/);
  fs.rmSync(d, { recursive: true, force: true });
});

test("bad config input changes nothing and names the file and field", async () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-story-"));
  const inputs = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-story-in-"));
  const bad = path.join(inputs, "bad.yaml");
  fs.writeFileSync(bad, "version: 1\npfs:\n  - match: { bdf: '0000:01:00.0' }\n    driver: vfio-pci\n    vfs: 9\n    token: generate\n");
  let r = await vfioctl(d, "config", "install", bad);
  assert.equal(r.code, 0, "valid syntax: the count is checked against the device at plan time");
  r = await vfioctl(d, "apply");
  assert.equal(r.code, 3);
  assert.match(r.out, /pfs\[0\]\.vfs: 9 VFs asked, 0000:01:00\.0 has sriov_totalvfs \d+ \(Linux: ERANGE\)/);
  assert.match(r.out, /refused: nothing was changed/);
  fs.writeFileSync(bad, "version: 1\npfs:\n  - match: { bdf: '0000:01:00.0' }\n    driver: vfio-pci\n");
  r = await vfioctl(d, "config", "check", bad);
  assert.equal(r.code, 2);
  assert.match(r.err, /bad\.yaml: pfs\[0\]\.token: expected generate, external or \{ file: PATH \}/);
  r = await vfioctl(d, "status", "--config", path.join(inputs, "missing.yaml"));
  assert.equal(r.code, 2);
  assert.match(r.err, /missing\.yaml.*: ENOENT \(no such file\)/);
  fs.rmSync(d, { recursive: true, force: true });
  fs.rmSync(inputs, { recursive: true, force: true });
});
