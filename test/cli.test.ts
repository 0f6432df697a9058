import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { Kernel } from "../src/kernel/kernel.js";
import { COMMANDS } from "../src/cli/commands/index.js";
import "../src/cli/commands/all.js";
import { main } from "../src/cli/main.js";
import { EXIT, type Context } from "../src/cli/context.js";
import { inventory } from "../src/lib/index.js";
import { hostFiles } from "../src/sys/hostfs.js";

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Run one command against a given model kernel (so state can be compared before/after). */
async function run(k: Kernel, argv: string[], o: { json?: boolean; env?: Record<string, string>; stdin?: string } = {}): Promise<Run> {
  const [name, ...args] = argv;
  const cmd = COMMANDS.find((c) => c.name === name)!;
  let out = "";
  let err = "";
  const sys = k.spawn("vfioctl");
  const ctx: Context = {
    opts: { sim: true, json: o.json ?? false, timeoutMs: 200 },
    sys,
    kernel: k,
    files: hostFiles(fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-cli-test-"))),
    io: { out: (s) => (out += s + "\n"), err: (s) => (err += s + "\n") },
    env: o.env ?? {},
    stdin: async () => o.stdin ?? "",
  };
  try {
    return { code: await cmd.run(ctx, args), out, err };
  } finally {
    await sys.exit();
  }
}

async function state(k: Kernel): Promise<string> {
  const sh = k.spawn("snapshot");
  const s = JSON.stringify(await inventory(sh, { holders: false }));
  await sh.exit();
  return s;
}

test("vfioctl --sim list draws the PF → VF tree with drivers, groups and token marks", async () => {
  let out = "";
  // a terminal with a UTF-8 locale: the tree is drawn with box characters and the token marks
  const code = await main(["--sim", "list"], { out: (s) => (out += s + "\n"), err: () => {}, isTTY: true, utf8: true, color: false });
  assert.equal(code, EXIT.OK);
  assert.match(out, /^PF 0000:af:00\.0 .* vfio-pci .* group 5 \(\/dev\/vfio\/5\)\s+VFs 2\/16$/m);
  assert.match(out, /^├─ VF0 +0000:af:10\.0 .*vfio-pci \[override\]/m);
  assert.match(out, /^└─ VF1 +0000:af:10\.1 /m);
  assert.match(out, /● VF token required: PF 0000:af:00\.0 is owned by vfio-pci/);
  // igb limits the 82576 to 7 VFs while bound (pci_sriov_set_totalvfs; the lab read 7 under igb)
  assert.match(out, /^PF 0000:01:00\.0 .* igb .*VFs 0\/7$/m);
});

test("list --json is the inventory", async () => {
  const k = await bootKernel();
  const r = await run(k, ["list"], { json: true });
  const inv = JSON.parse(r.out);
  assert.equal(inv.pfs.length, 5);
  assert.equal(inv.vfioPci.enableSriov, true);
});

test("bad input gets a clear error, exit 2, and changes nothing", async () => {
  const k = await bootKernel();
  const before = await state(k);
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-cli-"));
  fs.writeFileSync(path.join(d, "bad"), "not-a-uuid\n", { mode: 0o600 });
  const cases: [string[], RegExp][] = [
    [["bind", "../../etc", "vfio-pci"], /bdf: expected a PCI address .* got "\.\.\/\.\.\/etc"/],
    [["bind", "0000:05:00.0", "no-such-driver"], /driver: expected one of the registered PCI drivers .* got "no-such-driver"/],
    [["bind", "0000:05:00.0", "../vfio-pci"], /driver: expected a driver name/],
    [["token", "set", "0000:af:00.0", "--token-file", path.join(d, "bad")], /expected a UUID .* got 10 characters/],
    [["token", "set", "0000:af:00.0", "--token-file", path.join(d, "missing")], /ENOENT/],
    [["token", "set", "0000:af:00.0", "--token-stdin"], /stdin was empty/],
    [["show", "0000:99:00.0"], /no such PCI device/],
    [["explain", "0000:af:10.0", "--errno", "not an errno"], /--errno: expected one of E2BIG, EACCES/],
    [["args", "gdb", "0000:af:10.0"], /consumer: expected one of dpdk, qemu, spdk, got "gdb"/],
    [["list", "--bogus"], /unknown option "--bogus"/],
  ];
  for (const [argv, re] of cases) {
    const r = await run(k, argv);
    assert.equal(r.code, EXIT.USAGE, argv.join(" "));
    assert.match(r.err, re, argv.join(" "));
    assert.equal(r.out, "");
  }
  assert.equal(await state(k), before);
  fs.rmSync(d, { recursive: true });
});

test("refusals Linux would make exit 3 with the errno and the fix, changing nothing", async () => {
  const k = await bootKernel();
  const before = await state(k);
  let r = await run(k, ["sriov", "0000:af:00.0", "4"]);
  assert.equal(r.code, EXIT.KERNEL);
  assert.match(r.err, /would fail EBUSY .*\n  fix: add --via-zero/);
  r = await run(k, ["bind", "0000:af:10.0", "igbvf"]);
  assert.equal(r.code, EXIT.KERNEL);
  assert.match(r.err, /captured by its vfio-pci PF 0000:af:00\.0/);
  r = await run(k, ["token", "set", "0000:01:00.0"]);
  assert.equal(r.code, EXIT.KERNEL);
  assert.match(r.err, /not vfio-pci: it has no VF token/);
  assert.equal(await state(k), before);
});

test("a token is never printed unless asked, and one on argv draws a warning", async () => {
  const k = await bootKernel();
  const tok = "2ab74924-c335-45f4-9b16-8569e5b08258";
  let r = await run(k, ["token", "set", "0000:af:00.0", "--token", tok]);
  assert.equal(r.code, EXIT.OK);
  assert.match(r.err, /visible to every user .*\/proc\/PID\/cmdline/);
  assert.ok(!r.out.includes(tok) && !r.err.includes(tok));
  r = await run(k, ["token", "verify", "0000:af:10.0"], { env: { VFIOCTL_VF_TOKEN: tok } });
  assert.equal(r.code, EXIT.OK);
  assert.match(r.out, /match/);
  assert.ok(!r.out.includes(tok));
  r = await run(k, ["token", "verify", "0000:af:10.0"], { stdin: "00000000-0000-0000-0000-000000000000\n", env: {} });
  assert.equal(r.code, EXIT.USAGE); // no source given: stdin is read only with --token-stdin
  r = await run(k, ["token", "verify", "0000:af:10.0", "--token-stdin"], { stdin: "00000000-0000-0000-0000-000000000000\n" });
  assert.equal(r.code, EXIT.NO);
  assert.match(r.out, /mismatch .*EACCES/);
  r = await run(k, ["args", "dpdk", "0000:af:10.0", "--token", tok]);
  assert.ok(!r.out.includes(tok));
  assert.match(r.out, /--vfio-vf-token=<VF-TOKEN>/);
  r = await run(k, ["args", "dpdk", "0000:af:10.0", "--token", tok, "--show-token"]);
  assert.match(r.out, new RegExp(`--vfio-vf-token=${tok}`));
});

test("explain exits 1 for an open that would fail and ranks causes for the errno seen (exit 0: explained)", async () => {
  const k = await bootKernel();
  assert.equal((await run(k, ["explain", "0000:af:10.0"])).code, EXIT.NO);
  const r = await run(k, ["explain", "0000:af:10.0", "--errno", "EACCES"]);
  assert.equal(r.code, EXIT.OK);
  assert.match(r.out, /1\. ✗ EACCES open: VF token required: PF 0000:af:00\.0 is owned by vfio-pci/);
  const ok = await run(k, ["explain", "0000:05:00.0"]);
  assert.equal(ok.code, EXIT.NO); // nvme is not on vfio-pci
  assert.match(ok.out, /bound to nvme, not vfio-pci/);
});

test("audit exits 1 once a captured VF is moved to a host driver", async () => {
  const k = await bootKernel();
  assert.equal((await run(k, ["audit"])).code, EXIT.OK);
  assert.equal((await run(k, ["bind", "0000:af:10.0", "igbvf", "--release-captured"])).code, EXIT.OK);
  const r = await run(k, ["audit"]);
  assert.equal(r.code, EXIT.NO);
  assert.match(r.out, /\[vf-on-host-driver\] 0000:af:10\.0/);
});

test("every command has --help with examples", () => {
  for (const name of ["list", "show", "bind", "unbind", "sriov", "token", "explain", "audit", "args"]) {
    const c = COMMANDS.find((x) => x.name === name);
    assert.ok(c, name);
    assert.match(c.help, /Examples?:/, name);
  }
});
