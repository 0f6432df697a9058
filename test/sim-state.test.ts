/**
 * The persisted simulated host (`vfioctl --sim --state DIR`): record/replay across invocations,
 * holders, blocked writes that complete after a release, reboot with new tokens and boot units,
 * udev rules, fault injection, and the state dir's own guarantees (tokens stay out of the log,
 * nothing is written outside DIR, a killed invocation or a cut log still replays, a replay that
 * disagrees with the log fails loudly).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../src/cli/main.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const PF = "0000:01:00.0";
const VF0 = "0000:01:10.0";
const ACC_PF = "0000:af:00.0";
const ACC_VF = "0000:af:10.0";

interface Run {
  code: number;
  out: string;
  err: string;
}

async function vfioctl(dir: string, ...argv: string[]): Promise<Run> {
  let out = "";
  let err = "";
  const add = (s: string) => (s.endsWith("\n") ? s : s + "\n");
  // the UTF-8 rendering (as on a UTF-8 terminal): lines are asserted with their → arrows
  const code = await main(["--sim", "--state", dir, ...argv], { out: (s) => void (out += add(s)), err: (s) => void (err += add(s)), env: {}, stdin: async () => "", utf8: true });
  return { code, out, err };
}

async function ok(dir: string, ...argv: string[]): Promise<Run> {
  const r = await vfioctl(dir, ...argv);
  assert.equal(r.code, 0, `vfioctl ${argv.join(" ")} exited ${r.code}\n${r.out}${r.err}`);
  return r;
}

function stateDir(): string {
  return mkdtempSync(join(tmpdir(), "vfioctl-state-test-"));
}

interface ListPf {
  bdf: string;
  driver: string | null;
  vendor: number | null;
  sriov: { numVfs: number | null; vfs: string[] } | null;
}
async function pfOf(dir: string, bdf: string): Promise<ListPf> {
  const r = await ok(dir, "--json", "list");
  const pf = (JSON.parse(r.out) as { pfs: ListPf[] }).pfs.find((p) => p.bdf === bdf);
  assert.ok(pf, `${bdf} in list --json`);
  return pf;
}

/** Hold a VF of the 82576: 2 VFs, VF0 on vfio-pci, then a holder. */
async function holdVf0(dir: string): Promise<void> {
  await ok(dir, "sriov", PF, "2");
  await ok(dir, "bind", VF0, "vfio-pci");
  const h = await ok(dir, "sim", "hold", VF0, "--as", "qemu");
  assert.match(h.out, /pid \d+ \(qemu\) holds 0000:01:10\.0/);
}

const logOf = (dir: string) => readFileSync(join(dir, "log.jsonl"), "utf8");

describe("vfioctl --sim --state DIR", () => {
  test("successive invocations on one state dir see the same host: a bind in one is listed in the next", async () => {
    const dir = stateDir();
    try {
      assert.equal((await pfOf(dir, PF)).driver, "igb");
      await ok(dir, "bind", PF, "vfio-pci");
      assert.equal((await pfOf(dir, PF)).driver, "vfio-pci");
      const host = JSON.parse(readFileSync(join(dir, "host.json"), "utf8")) as { boot: number; profile: string; seed: number };
      assert.equal(host.boot, 1);
      assert.equal(host.profile, "6.1");
      assert.ok(Number.isInteger(host.seed));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a holder persists across invocations, and sriov and unbind then report the write blocked", async () => {
    const dir = stateDir();
    try {
      await holdVf0(dir);
      const hs = await ok(dir, "--json", "sim", "holders");
      const { schema, holders } = JSON.parse(hs.out) as { schema: string; holders: { comm: string; holds: string; files: string[]; started: string }[] };
      assert.equal(schema, "vfioctl.sim-holders/1");
      assert.equal(holders.length, 1);
      assert.equal(holders[0]!.comm, "qemu");
      assert.equal(holders[0]!.holds, VF0);
      assert.ok(holders[0]!.files.some((f) => f.endsWith("anon_inode:[vfio-device]")));
      const s = await vfioctl(dir, "--timeout", "50", "sriov", PF, "0");
      assert.equal(s.code, 4, s.out + s.err);
      assert.match(s.err, /held by pid \d+ \(qemu\)/);
      // the device is still held in the next invocation: unbinding the VF would block too, and
      // vfioctl says so before writing (exit 3) naming the holder
      const u = await vfioctl(dir, "unbind", VF0);
      assert.equal(u.code, 3, u.out + u.err);
      assert.match(u.err, /would block until userspace releases it.*pid \d+ \(qemu\)/s);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("sim release lets a pending blocked write complete, and the next invocation sees its result", async () => {
    const dir = stateDir();
    try {
      await holdVf0(dir);
      assert.equal((await vfioctl(dir, "--timeout", "50", "sriov", PF, "0")).code, 4);
      const st = JSON.parse((await ok(dir, "--json", "sim", "status")).out) as { blocked: { syscall: string; path?: string }[] };
      assert.ok(st.blocked.some((b) => b.syscall === "write" && b.path?.endsWith("/sriov_numvfs")), "the write is still pending after replay");
      const r = await ok(dir, "sim", "release", "qemu");
      assert.match(r.out, /released pid \d+ \(qemu\)/);
      assert.match(r.out, /pending call of pid \d+ completed: write "0" to \/sys\/bus\/pci\/devices\/0000:01:00\.0\/sriov_numvfs → ret 1/);
      assert.equal((await pfOf(dir, PF)).sriov?.numVfs, 0);
      assert.equal((await ok(dir, "sim", "holders")).out.trim(), "no holders");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("reboot regenerates the VF token: a VF opens with the old token before the reboot and not after", async () => {
    const dir = stateDir();
    try {
      const token = randomUUID();
      mkdirSync(join(dir, "root", "run"), { recursive: true });
      writeFileSync(join(dir, "root", "run", "acc.token"), token + "\n", { mode: 0o600 });
      await ok(dir, "token", "set", ACC_PF, "--token-file", "/run/acc.token");
      await ok(dir, "sim", "hold", ACC_VF, "--token-file", "/run/acc.token");
      await ok(dir, "sim", "release", ACC_VF);
      const rb = await ok(dir, "sim", "reboot");
      assert.match(rb.out, /boot 2/);
      const host = JSON.parse(readFileSync(join(dir, "host.json"), "utf8")) as { boot: number };
      assert.equal(host.boot, 2);
      const h = await vfioctl(dir, "sim", "hold", ACC_VF, "--token-file", "/run/acc.token");
      assert.equal(h.code, 3, h.out + h.err);
      assert.match(h.err, /EACCES/);
      assert.match(h.err, /nothing is held/);
      assert.equal((await ok(dir, "sim", "holders")).out.trim(), "no holders");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the token never appears in log.jsonl or host.json; it is kept only in the 0600 token store", async () => {
    const dir = stateDir();
    try {
      const token = randomUUID();
      mkdirSync(join(dir, "root", "run"), { recursive: true });
      writeFileSync(join(dir, "root", "run", "acc.token"), token + "\n", { mode: 0o600 });
      await ok(dir, "token", "set", ACC_PF, "--token-file", "/run/acc.token");
      await ok(dir, "sim", "hold", ACC_VF, "--token-file", "/run/acc.token");
      // replay hands the token to the kernel again: the holder still holds the VF
      const hs = (JSON.parse((await ok(dir, "--json", "sim", "holders")).out) as { holders: unknown[] }).holders;
      assert.equal(hs.length, 1);
      const log = logOf(dir);
      assert.match(log, /"secrets":\[\{"off":\d+,"len":36,"ref":"[0-9a-f]{64}"\}\]/);
      const forms = [token, token.replace(/-/g, ""), Buffer.from(token, "latin1").toString("hex")];
      for (const text of [log, readFileSync(join(dir, "host.json"), "utf8")]) for (const f of forms) assert.ok(!text.toLowerCase().includes(f.toLowerCase()), `token form ${f} leaked`);
      const store = join(dir, "root", "var", "lib", "vfioctl", "sim-tokens");
      assert.equal(statSync(store).mode & 0o777, 0o600);
      assert.ok(readFileSync(store, "utf8").includes(Buffer.from(token, "latin1").toString("hex")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("nothing is written outside the state dir: the real /etc/vfioctl and /run get no files", async () => {
    const dir = stateDir();
    // /run also belongs to the rest of the machine: only names a vfioctl run could make count
    const ours = (n: string) => /vfioctl|token|acc/i.test(n);
    const snap = () => ({
      etc: existsSync("/etc/vfioctl") ? readdirSync("/etc/vfioctl").sort() : null,
      run: existsSync("/run") ? readdirSync("/run").filter(ours).sort() : null,
      runVfioctl: existsSync("/run/vfioctl") ? readdirSync("/run/vfioctl").sort() : null,
    });
    const before = snap();
    try {
      mkdirSync(join(dir, "root", "run"), { recursive: true });
      writeFileSync(join(dir, "root", "run", "acc.token"), randomUUID() + "\n", { mode: 0o600 });
      await ok(dir, "token", "set", ACC_PF, "--token-file", "/run/acc.token");
      await ok(dir, "sim", "hold", ACC_VF, "--token-file", "/run/acc.token");
      await ok(dir, "bind", PF, "vfio-pci");
      await ok(dir, "sim", "reboot");
      assert.deepEqual(snap(), before);
      // what the simulated host wrote is under DIR/root
      assert.ok(existsSync(join(dir, "root", "var", "lib", "vfioctl")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a vfioctl killed with SIGKILL while its write is blocked still replays; the write completes after sim release", async () => {
    const dir = stateDir();
    try {
      await holdVf0(dir);
      const child = spawn(process.execPath, [join(REPO, "bin", "vfioctl.js"), "--sim", "--state", dir, "--timeout", "60000", "sriov", PF, "0"], { stdio: "ignore" });
      const exited = new Promise<void>((r) => child.on("exit", () => r()));
      const deadline = Date.now() + 5000; // a loaded machine starts node slowly
      while (!/"sc":"write","fd":\d+,"text":"0"\}\n/.test(logOf(dir))) {
        assert.ok(Date.now() < deadline, "the child never issued its write");
        await new Promise((r) => setTimeout(r, 10));
      }
      child.kill("SIGKILL");
      await exited;
      // the lock of the killed process is stale; its write stays pending in the replayed kernel
      const st = JSON.parse((await ok(dir, "--json", "sim", "status")).out) as { blocked: { pid: number; syscall: string }[] };
      assert.ok(st.blocked.some((b) => b.pid === child.pid || b.syscall === "write"));
      await ok(dir, "sim", "release", "qemu");
      assert.equal((await pfOf(dir, PF)).sriov?.numVfs, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a log cut right after an issued record (and a partial last line) still replays: the call runs again", async () => {
    const dir = stateDir();
    try {
      await ok(dir, "bind", PF, "vfio-pci");
      const lines = logOf(dir).split("\n");
      const i = lines.findIndex((l) => l.includes('"text":"0000:01:00.0"') && lines.slice(0, lines.indexOf(l)).some((p) => p.includes("drivers_probe")));
      assert.ok(i > 0, "the write to drivers_probe is in the log");
      writeFileSync(join(dir, "log.jsonl"), lines.slice(0, i + 1).join("\n") + '\n{"t":"do');
      assert.equal((await pfOf(dir, PF)).driver, "vfio-pci");
      // the command process that never exited was reaped by the replay
      assert.match(logOf(dir), /"pid":1000,"sc":"exit"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a replay whose result differs from the log fails loudly, naming the state dir and the record", async () => {
    const dir = stateDir();
    try {
      await ok(dir, "bind", PF, "vfio-pci");
      const log = logOf(dir);
      // the write of "vfio-pci" to driver_override returned 8; claim it returned 7
      const bad = log.replace(/("sc":"write","fd":\d+,"text":"vfio-pci"\}\n\{"t":"done","id":\d+,"ret":)8/, "$17");
      assert.notEqual(bad, log);
      writeFileSync(join(dir, "log.jsonl"), bad);
      const r = await vfioctl(dir, "list");
      assert.notEqual(r.code, 0);
      assert.ok(r.err.includes(dir), r.err);
      assert.match(r.err, /line \d+: pid 1000 write fd \d+ "vfio-pci".* gave ret 8 in the replay, recorded ret 7/);
      assert.match(r.err, /rm -r /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a different host file or profile is refused with the state dir and how to start over", async () => {
    const dir = stateDir();
    try {
      await ok(dir, "list");
      let err = "";
      const r = await main(["--sim", join(REPO, "scenarios", "hosts", "lab-igb.yaml"), "--state", dir, "list"], { out: () => {}, err: (s) => void (err += s), env: {} });
      assert.equal(r, 2);
      assert.ok(err.includes(dir) && err.includes(`rm -r ${dir}`), err);
      assert.match(err, /created from \(built-in default host\); --sim .*lab-igb\.yaml describes a different host/);
      err = "";
      const p = await main(["--sim", "--state", dir, "--profile", "6.12", "list"], { out: () => {}, err: (s) => void (err += s), env: {} });
      assert.equal(p, 2);
      assert.ok(err.includes(dir) && err.includes(`rm -r ${dir}`), err);
      assert.match(err, /profile 6\.1, not 6\.12/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an injected write fault is kept across invocations and fails the next matching write once", async () => {
    const dir = stateDir();
    try {
      await ok(dir, "sim", "fault", "write", `/sys/bus/pci/devices/${PF}/sriov_numvfs`, "EIO");
      const f = await vfioctl(dir, "sriov", PF, "2");
      assert.equal(f.code, 3, f.out + f.err);
      assert.match(f.out + f.err, /EIO/);
      assert.equal((await pfOf(dir, PF)).sriov?.numVfs, 0);
      await ok(dir, "sriov", PF, "2");
      assert.equal((await pfOf(dir, PF)).sriov?.numVfs, 2);
      assert.equal((await ok(dir, "sim", "fault", "list")).out.trim(), "no injected faults");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an injected open fault on an attribute fails the one read of it in a list (read in a batch) and is used up across invocations", async () => {
    const dir = stateDir();
    try {
      await ok(dir, "sim", "fault", "open", `/sys/bus/pci/devices/${PF}/vendor`, "EACCES");
      assert.equal((await pfOf(dir, PF)).vendor, null, "the faulted open: no vendor");
      assert.equal((await ok(dir, "sim", "fault", "list")).out.trim(), "no injected faults");
      assert.equal((await pfOf(dir, PF)).vendor, 0x8086, "the fault was used once, and the replay of the state knows it");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("reboot applies modprobe.d options and runs the enabled vfioctl boot units, printing their exit codes", async () => {
    const dir = stateDir();
    try {
      await ok(dir, "list");
      const root = join(dir, "root");
      mkdirSync(join(root, "etc", "modprobe.d"), { recursive: true });
      mkdirSync(join(root, "etc", "systemd", "system", "multi-user.target.wants"), { recursive: true });
      writeFileSync(join(root, "etc", "modprobe.d", "vfio.conf"), "# no VFs from vfio-pci PFs\noptions vfio_pci enable_sriov=0 disable_denylist=Y\n");
      writeFileSync(join(root, "etc", "systemd", "system", "pf.service"), `[Unit]\nDescription=PF to vfio-pci\n[Service]\nType=oneshot\nExecStart=/usr/bin/vfioctl bind ${PF} vfio-pci\nExecStart=-/usr/bin/vfioctl sriov ${PF} 2\nExecStart=/bin/true\n`);
      writeFileSync(join(root, "etc", "systemd", "system", "off.service"), `[Service]\nExecStart=/usr/bin/vfioctl bind ${ACC_PF} igb\n`);
      symlinkSync("/etc/systemd/system/pf.service", join(root, "etc", "systemd", "system", "multi-user.target.wants", "pf.service"));
      const r = await ok(dir, "sim", "reboot");
      assert.match(r.out, /vfio_pci options from \/etc\/modprobe\.d: enable_sriov=N disable_denylist=Y/);
      assert.match(r.out, new RegExp(`unit pf\\.service: /usr/bin/vfioctl bind ${PF} vfio-pci → exit 0`));
      assert.match(r.out, new RegExp(`unit pf\\.service: /usr/bin/vfioctl sriov ${PF} 2 → exit 3`));
      assert.match(r.out, /unit pf\.service: \/bin\/true → skipped/);
      assert.doesNotMatch(r.out, /off\.service/); // not enabled
      const pf = await pfOf(dir, PF);
      assert.equal(pf.driver, "vfio-pci");
      assert.equal(pf.sriov?.numVfs, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the udev matcher runs a rule's unit on a bind event, and a rule's RUN on the VFs' add events", async () => {
    const dir = stateDir();
    try {
      await ok(dir, "list");
      const root = join(dir, "root");
      mkdirSync(join(root, "etc", "udev", "rules.d"), { recursive: true });
      mkdirSync(join(root, "etc", "systemd", "system"), { recursive: true });
      writeFileSync(
        join(root, "etc", "udev", "rules.d", "70-sriov.rules"),
        [
          "# VFs as soon as the PF is on vfio-pci",
          `ACTION=="bind", SUBSYSTEM=="pci", DRIVER=="vfio-pci", ATTR{sriov_totalvfs}=="?*", KERNEL=="0000:01:00.?", TAG+="systemd", ENV{SYSTEMD_WANTS}+="vfs@%k.service"`,
          `ACTION=="add", SUBSYSTEM=="pci", ATTR{vendor}=="0x8086", ATTR{device}=="0x10ca", KERNEL!="0000:01:10.0", RUN+="/usr/bin/vfioctl unbind $kernel"`,
          "",
        ].join("\n"),
      );
      writeFileSync(join(root, "etc", "systemd", "system", "vfs@.service"), "[Service]\nType=oneshot\nExecStart=/usr/bin/vfioctl sriov %I 2\n");
      await ok(dir, "bind", PF, "vfio-pci");
      const pf = await pfOf(dir, PF);
      assert.equal(pf.sriov?.numVfs, 2);
      // the RUN rule unbound the second VF only (the first is excluded by KERNEL!=)
      const l = JSON.parse((await ok(dir, "--json", "list")).out) as { pfs: { bdf: string; vfDevices: { bdf: string; driver: string | null }[] }[] };
      const vfs = l.pfs.find((p) => p.bdf === PF)!.vfDevices;
      assert.deepEqual(vfs.map((v) => [v.bdf, v.driver]), [[VF0, "vfio-pci"], ["0000:01:10.2", null]]);
      assert.match(readFileSync(join(root, "var", "log", "vfioctl-sim", "journal.log"), "utf8"), /vfs@0000:01:00\.0\.service: \/usr\/bin\/vfioctl sriov 0000:01:00\.0 2: exit 0/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a udev RUN of systemctl start runs that unit of the simulated host, unless its ConditionPathExists fails", async () => {
    const dir = stateDir();
    try {
      await ok(dir, "list");
      const root = join(dir, "root");
      mkdirSync(join(root, "etc", "udev", "rules.d"), { recursive: true });
      mkdirSync(join(root, "etc", "systemd", "system"), { recursive: true });
      writeFileSync(join(root, "etc", "udev", "rules.d", "90-x.rules"), 'ACTION=="bind", SUBSYSTEM=="pci", DRIVER=="vfio-pci", ATTR{sriov_totalvfs}=="[1-9]*", RUN+="/usr/bin/systemctl --no-block start pf@$kernel.service"\n');
      writeFileSync(join(root, "etc", "systemd", "system", "pf@.service"), "[Unit]\nConditionPathExists=/etc/go\n[Service]\nType=oneshot\nExecStart=/usr/bin/vfioctl sriov %I 1\n");
      await ok(dir, "bind", PF, "vfio-pci");
      assert.equal((await pfOf(dir, PF)).sriov?.numVfs, 0); // condition not met: skipped
      writeFileSync(join(root, "etc", "go"), "");
      await ok(dir, "unbind", PF);
      await ok(dir, "bind", PF, "vfio-pci");
      assert.equal((await pfOf(dir, PF)).sriov?.numVfs, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("two invocations on one state dir never interleave, and a lock left by a dead process is taken over", async () => {
    const dir = stateDir();
    try {
      await ok(dir, "list");
      const [a, b] = await Promise.all([vfioctl(dir, "sriov", PF, "2"), vfioctl(dir, "bind", "0000:06:00.0", "vfio-pci")]);
      assert.equal(a.code, 0, a.err);
      assert.equal(b.code, 0, b.err);
      // every call record between two clock records (one invocation) belongs to one command pid
      const recs = logOf(dir).trim().split("\n").map((l) => JSON.parse(l) as { t: string; pid?: number });
      let pids = new Set<number>();
      for (const r of recs) {
        if (r.t === "clock") pids = new Set();
        else if (r.t === "call") pids.add(r.pid!);
        assert.ok(pids.size <= 1, "records of two invocations interleave");
      }
      const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
      writeFileSync(join(dir, "lock"), `${dead.stdout}\n`);
      assert.equal((await pfOf(dir, PF)).sriov?.numVfs, 2);
      assert.ok(!existsSync(join(dir, "lock")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
