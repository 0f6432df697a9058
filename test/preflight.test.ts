/**
 * explain as a preflight: its exit code (Explanation.asked) says whether what was asked would
 * work — for the open, --numvfs, --driver, --cdev and --errno — and a script can act on it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { bootKernel } from "../src/kernel/host/boot.js";
import { explainOpen, parseErrnoArg, EXPLAIN_ERRNOS } from "../src/lib/explain.js";
import { writeText } from "../src/sys/fsutil.js";
import { runCli } from "../testlib/cli.js";

const PF = "0000:af:00.0";
const VF0 = "0000:af:10.0";
const IGB = "0000:01:00.0";
const NVME = "0000:05:00.0";
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

test("the open: a VF of a vfio-pci PF without a token fails (exit 1); the PF with no VF open succeeds (exit 0)", async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const vf = await explainOpen(sh, VF0);
  assert.deepEqual(vf.asked.operations, ["open"]);
  assert.equal(vf.asked.works, false);
  assert.ok(vf.asked.deciding.includes("token-required"));
  const pf = await explainOpen(sh, PF);
  assert.equal(pf.asked.works, true, pf.asked.summary);
  assert.equal((await runCli(k, ["explain", VF0])).code, 1);
  assert.equal((await runCli(k, ["explain", PF])).code, 0);
  // a device on a host driver: not bound to vfio-pci
  assert.equal((await runCli(k, ["explain", NVME])).code, 1);
});

test("--numvfs: above sriov_totalvfs (ERANGE) and a different count while VFs exist (EBUSY) exit 1; a count that works exits 0", async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const big = await explainOpen(sh, IGB, { numvfs: 99 });
  assert.deepEqual(big.asked.operations, ["sriov_numvfs"]);
  assert.equal(big.asked.works, false);
  assert.deepEqual(big.asked.deciding, ["numvfs-erange"]);
  assert.equal((await runCli(k, ["explain", IGB, "--numvfs", "99"])).code, 1);
  const r4 = await runCli(k, ["explain", IGB, "--numvfs", "4"]);
  assert.equal(r4.code, 0, r4.out);
  assert.match(r4.out, /preflight: ✓ sriov_numvfs = 4: should succeed/);
  await writeText(sh, `/sys/bus/pci/devices/${IGB}/sriov_numvfs`, "4");
  const busy = await runCli(k, ["explain", IGB, "--numvfs", "2"]);
  assert.equal(busy.code, 1, busy.out);
  assert.match(busy.out, /preflight: ✗ sriov_numvfs = 2: fails EBUSY/);
  assert.equal((await runCli(k, ["explain", IGB, "--numvfs", "0"])).code, 0);
  assert.equal((await runCli(k, ["explain", IGB, "--numvfs", "4"])).code, 0, "the same count: nothing to change");
  // on a VF there is no sriov_numvfs
  assert.equal((await runCli(k, ["explain", VF0, "--numvfs", "1"])).code, 1);
});

test("--driver: a bind Linux refuses exits 1 (ENODEV, captured override); one it accepts exits 0", async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const x = await explainOpen(sh, VF0, { driver: "igbvf" });
  assert.deepEqual(x.asked.operations, ["bind"]);
  assert.equal(x.asked.works, false);
  assert.ok(x.asked.deciding.includes("bind-override-other"));
  const r = await runCli(k, ["explain", VF0, "--driver", "igbvf"]);
  assert.equal(r.code, 1);
  assert.match(r.out, /preflight: ✗ bind igbvf: fails/);
  assert.equal((await runCli(k, ["explain", VF0, "--driver", "vfio-pci"])).code, 0);
  // a PF with VFs enabled: vfio-pci refuses it (EBUSY "Cannot bind to PF with SR-IOV enabled")
  await writeText(sh, `/sys/bus/pci/devices/${IGB}/sriov_numvfs`, "2");
  const pf = await explainOpen(sh, IGB, { driver: "vfio-pci" });
  assert.equal(pf.asked.works, false);
  assert.ok(pf.asked.deciding.includes("bind-pf-sriov-enabled"));
  // a driver that is not registered
  assert.equal((await runCli(k, ["explain", NVME, "--driver", "nosuch"])).code, 1);
});

test("several operations asked at once: the exit is 1 when any of them fails", async () => {
  const k = await bootKernel();
  assert.equal((await runCli(k, ["explain", IGB, "--numvfs", "4", "--driver", "igb"])).code, 0);
  assert.equal((await runCli(k, ["explain", IGB, "--numvfs", "99", "--driver", "igb"])).code, 1);
  // a token option asks the open too: the VF's open with a token may fail (the token cannot be checked read-only)
  const x = await explainOpen(k.spawn("sh"), VF0, { driver: "vfio-pci", token: true });
  assert.deepEqual(x.asked.operations, ["open", "bind"]);
  assert.equal(x.asked.works, false);
});

test("--cdev: fails where the kernel has no vfio cdev, succeeds on 6.12.58 for a VF (no token check there)", async () => {
  const k = await bootKernel();
  const r = await runCli(k, ["explain", VF0, "--cdev"]);
  assert.equal(r.code, 1);
  assert.match(r.out, /no vfio cdev/);
  const k12 = await bootKernel(undefined, { profile: "6.12.58" });
  const x = await explainOpen(k12.spawn("sh"), VF0, { cdev: true });
  assert.deepEqual(x.asked.operations, ["cdev"]);
  assert.equal(x.asked.works, true, x.asked.summary);
});

test("--errno alone: 0 when a cause applies or may apply here, 1 when none does", async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const yes = await explainOpen(sh, VF0, { errno: "EACCES" });
  assert.equal(yes.asked.question, "errno");
  assert.equal(yes.asked.works, true);
  assert.ok(yes.asked.deciding.includes("token-required"));
  const r = await runCli(k, ["explain", VF0, "--errno", "EACCES"]);
  assert.equal(r.code, 0);
  assert.match(r.out, /answer: ✓ EACCES on 0000:af:10\.0: explained/);
  // ERANGE on a PF with no --numvfs: only "would" rows
  const no = await runCli(k, ["explain", IGB, "--errno", "ERANGE"]);
  assert.equal(no.code, 1, no.out);
  assert.match(no.out, /answer: ✗ ERANGE on 0000:01:00\.0: no known cause applies/);
  // with --numvfs the exit is the write's again
  assert.equal((await runCli(k, ["explain", IGB, "--numvfs", "9", "--errno", "ERANGE"])).code, 1);
  assert.equal((await runCli(k, ["explain", IGB, "--numvfs", "3", "--errno", "ERANGE"])).code, 0);
});

test("--errno: names in any case and numbers are taken; unknown names are refused (exit 2) listing the errnos explain knows", async () => {
  assert.equal(parseErrnoArg("eacces"), "EACCES");
  assert.equal(parseErrnoArg("13"), "EACCES");
  assert.equal(parseErrnoArg("-1"), "EPERM");
  assert.throws(() => parseErrnoArg("EFOO"), /--errno: expected one of E2BIG, EACCES.*got "EFOO"/);
  assert.throws(() => parseErrnoArg("EIO"), /EIO: vfioctl knows no vfio cause of it/);
  assert.throws(() => parseErrnoArg("9999"), /got "9999"/);
  const k = await bootKernel();
  const bad = await runCli(k, ["explain", VF0, "--errno", "EFOO"]);
  assert.equal(bad.code, 2);
  for (const e of EXPLAIN_ERRNOS) assert.ok(bad.err.includes(e), e);
  const num = await runCli(k, ["explain", VF0, "--errno", "13"]);
  assert.equal(num.code, 0);
  assert.match(num.out, /Causes of EACCES for 0000:af:10\.0/);
});

test("every errno a cause can carry is one --errno accepts", async () => {
  const k = await bootKernel(undefined, { profile: "6.17.1", config: { VFIO_DEVICE_CDEV: true } });
  const sh = k.spawn("sh");
  const seen = new Set<string>();
  for (const bdf of [PF, VF0, IGB, NVME, "0000:3d:00.0"]) for (const c of (await explainOpen(sh, bdf, { numvfs: 1 })).causes) if (c.errno) seen.add(c.errno);
  for (const e of seen) assert.ok((EXPLAIN_ERRNOS as readonly string[]).includes(e), e);
});

test("a sysfs read the answer needs, refused by the kernel, exits 3 naming the file", async () => {
  const k = await bootKernel();
  k.faults.add({ syscall: "open", path: `/sys/bus/pci/devices/${IGB}/sriov_totalvfs`, errno: "EACCES", count: 10 });
  const r = await runCli(k, ["explain", IGB, "--numvfs", "2"]);
  assert.equal(r.code, 3);
  assert.match(r.err, /sriov_totalvfs: EACCES/);
  k.faults.clear();
  k.faults.add({ syscall: "open", path: `/sys/bus/pci/devices/${IGB}/sriov_numvfs`, errno: "EIO", count: 10 });
  assert.equal((await runCli(k, ["explain", IGB, "--numvfs", "2"])).code, 3);
});

test("a shell script drives explain as a preflight through bin/vfioctl.js and acts on its exit codes", () => {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-preflight-"));
  const out = execFileSync("sh", [path.join(REPO, "test/scripts/explain-preflight.sh"), process.execPath, path.join(REPO, "bin/vfioctl.js"), state], { encoding: "utf8" });
  assert.deepEqual(out.trim().split("\n"), [
    "refused 0000:01:00.0 99 VFs (explain exit 1)",
    "set 0000:01:00.0 to 4 VFs",
    "refused 0000:01:00.0 2 VFs (explain exit 1)",
    "set 0000:01:00.0 to 0 VFs",
    "bind igbvf refused (exit 1)",
    "open refused (exit 1)",
    "EPERM not explained (exit 1)",
    "EFOO: exit 2",
  ]);
});
