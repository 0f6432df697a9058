import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel, bootHostFile } from "../src/kernel/host/boot.js";
import type { Kernel } from "../src/kernel/kernel.js";
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import { writeText } from "../src/sys/fsutil.js";
import {
  audit, bindDriver, checkBdf, consumerArgs, explainOpen, inventory, keepToken, newToken, openGroupSession, readTokenFile, setNumVfs, setToken, verifyToken, VfioctlError,
} from "../src/lib/index.js";
import { materialize } from "../src/sim/materialize.js";

const FIXTURE = new URL("../../test/fixtures/host-two-vfio-pfs.yaml", import.meta.url).pathname;
const ACC = "0000:af:00.0";
const ACC_VF0 = "0000:af:10.0";
const ACC_VF1 = "0000:af:10.1";

/** Everything userspace can see of the PCI state, for before/after comparisons. */
async function state(k: Kernel): Promise<string> {
  const sh = k.spawn("snapshot");
  try {
    return JSON.stringify(await inventory(sh, { holders: false }));
  } finally {
    await sh.exit();
  }
}

const code = (c: string) => (e: unknown) => e instanceof VfioctlError && e.code === c;

test("the inventory shows the ACC100 PF on vfio-pci with two captured VFs that need its token", async () => {
  const k = await bootKernel();
  const inv = await inventory(k.spawn("t"));
  const pf = inv.pfs.find((p) => p.bdf === ACC)!;
  assert.equal(pf.driver, "vfio-pci");
  assert.deepEqual(pf.vfDevices.map((v) => v.bdf), [ACC_VF0, ACC_VF1]);
  for (const vf of pf.vfDevices) {
    assert.equal(vf.driverOverride, "vfio-pci");
    assert.equal(vf.vfioNodeExists, true);
    assert.equal(vf.token.state, "required");
    assert.match(vf.token.reason, /PF 0000:af:00\.0 is owned by vfio-pci/);
  }
  const igb = inv.pfs.find((p) => p.bdf === "0000:01:00.0")!;
  assert.equal(igb.token.state, "not-required");
  assert.equal(inv.vfioPci.enableSriov, true);
});

test("a BDF with path characters is refused before any path is built", () => {
  for (const bad of ["../../etc", "0000:01:00.0/../../x", "0000:01:10.A", "01:00.0", "", "0000:01:00.0\n"]) {
    assert.throws(() => checkBdf(bad), code("BAD_BDF"), bad);
  }
  assert.throws(() => checkBdf("0000:01:1A.0"), /use lowercase: 0000:01:1a\.0/);
});

test("a token set on the PF opens its VF, another token is a mismatch, and nothing stays open", async () => {
  const k = await bootKernel();
  const sys = k.spawn("vfioctl");
  const t = newToken();
  const r = await setToken(sys, ACC, t);
  assert.equal(r.method, "open");
  assert.equal((await verifyToken(sys, ACC_VF0, t)).result, "match");
  assert.equal((await verifyToken(sys, ACC_VF0, newToken())).result, "mismatch");
  assert.deepEqual(sys.fdNumbers(), []);
  assert.equal((await verifyToken(sys, "0000:05:00.0", t)).result, "not-needed");
  await assert.rejects(verifyToken(sys, ACC, t), /not read-only/);
});

test("while a VF is open the token is replaced only with the current one, through VFIO_DEVICE_FEATURE", async () => {
  const k = await bootKernel();
  const sys = k.spawn("vfioctl");
  const t1 = newToken();
  await setToken(sys, ACC, t1);
  const app = k.spawn("dpdk-testpmd");
  const s = await openGroupSession(app, 6);
  await s.deviceFd(`${ACC_VF0} vf_token=${t1}`);
  const t2 = newToken();
  await assert.rejects(setToken(sys, ACC, t2), (e: unknown) => e instanceof VfioctlError && e.errno === "EACCES" && /a VF of this PF is open: 0000:af:10\.0/.test(e.message));
  await assert.rejects(setToken(sys, ACC, t2, { current: newToken() }), /Incorrect VF token/);
  const r = await setToken(sys, ACC, t2, { current: t1 });
  assert.equal(r.method, "feature");
  assert.deepEqual(r.vfsHeld, [ACC_VF0]);
  assert.equal((await verifyToken(sys, ACC_VF1, t2)).result, "match");
  assert.equal((await verifyToken(sys, ACC_VF1, t1)).result, "mismatch");
  await s.close();
});

test("explain predicts what the kernel then does for a VF opened without its token", async () => {
  const k = await bootKernel();
  const sys = k.spawn("vfioctl");
  const before = await state(k);
  const x = await explainOpen(sys, ACC_VF0, { errno: "EACCES" });
  assert.equal(x.open.verdict, "fails");
  assert.equal(x.open.errno, "EACCES");
  assert.equal(x.ranked![0]!.id, "token-required");
  assert.equal(await state(k), before);
  assert.deepEqual(sys.fdNumbers(), []);
  const s = await openGroupSession(sys, 6);
  await assert.rejects(s.deviceFd(ACC_VF0), (e: unknown) => (e as { code?: string }).code === "EACCES");
  await s.close();
});

test("explain names the silent enable_sriov=N ENOENT, and the kernel agrees", async () => {
  const k = await bootHostFile(FIXTURE);
  const sys = k.spawn("vfioctl");
  const x = await explainOpen(sys, "0000:81:00.0", { numvfs: 0, errno: "ENOENT" });
  assert.equal(x.ranked![0]!.id, "numvfs-enoent-enable-sriov");
  assert.equal(x.ranked![0]!.status, "applies");
  assert.equal(x.ranked![0]!.log, "");
  const mark = k.log.records.length;
  await assert.rejects(writeText(sys, "/sys/bus/pci/devices/0000:81:00.0/sriov_numvfs", "0"), (e: unknown) => (e as { code?: string }).code === "ENOENT");
  assert.equal(k.log.records.length, mark, "no log line");
  await assert.rejects(setNumVfs(sys, "0000:81:00.0", "off"), (e: unknown) => e instanceof VfioctlError && e.errno === "ENOENT" && /no kernel log line/.test(e.message));
});

test("explain covers group EPERM (not viable) and the missing IOMMU group", async () => {
  const k = await bootHostFile(FIXTURE);
  const sys = k.spawn("vfioctl");
  const a = await explainOpen(sys, "0000:05:00.0");
  assert.equal(a.open.errno, "EPERM");
  const b = await explainOpen(sys, "0000:07:00.0", { errno: "EINVAL" });
  assert.equal(b.open.errno, "ENOENT");
  assert.ok(b.ranked!.some((c) => c.id === "bind-no-iommu-group" && c.status === "applies"));
});

test("a non-zero VF count changes only through zero, and only with viaZero", async () => {
  const k = await bootKernel();
  const sys = k.spawn("vfioctl");
  await setNumVfs(sys, "0000:01:00.0", 2);
  const before = await state(k);
  await assert.rejects(setNumVfs(sys, "0000:01:00.0", 4), (e: unknown) => e instanceof VfioctlError && e.errno === "EBUSY");
  // the 82576 has TotalVFs 8, but igb caps it at 7 while bound (sriov_totalvfs reads 7)
  // above sriov_totalvfs: Linux's ERANGE, said as strerror says it, with the device (exit 3)
  await assert.rejects(setNumVfs(sys, "0000:01:00.0", 8), (e: unknown) => e instanceof VfioctlError && e.code === "KERNEL" && e.errno === "ERANGE" && e.message === "0000:01:00.0: sriov_numvfs 8: ERANGE (Numerical result out of range): the device supports at most 7 VFs (sriov_totalvfs)");
  await assert.rejects(setNumVfs(sys, "0000:01:00.0", "x"), /expected 0\.\.7 or off, got "x"/);
  assert.equal(await state(k), before);
  const r = await setNumVfs(sys, "0000:01:00.0", 4, { viaZero: true });
  assert.equal(r.to, 4);
  assert.equal(r.vfs.length, 4);
});

test("a write to sriov_numvfs blocked by an open VF names the process that holds it", async () => {
  const k = await bootKernel();
  const sys = k.spawn("vfioctl");
  const t = newToken();
  await setToken(sys, ACC, t);
  const app = k.spawn("qemu-system-x86");
  const s = await openGroupSession(app, 6);
  await s.deviceFd(`${ACC_VF0} vf_token=${t}`);
  await assert.rejects(setNumVfs(sys, ACC, "off", { timeoutMs: 50 }), (e: unknown) => {
    assert.ok(e instanceof VfioctlError);
    assert.equal(e.code, "BLOCKED");
    assert.match(e.message, new RegExp(`${ACC_VF0} \\(/dev/vfio/6\\) held by pid ${app.pid} \\(qemu-system-x86\\)`));
    return true;
  });
  await s.close();
});

test("binding a captured VF elsewhere needs releaseCaptured, and audit then reports it", async () => {
  const k = await bootKernel();
  const sys = k.spawn("vfioctl");
  const before = await state(k);
  await assert.rejects(bindDriver(sys, ACC_VF0, "igbvf"), (e: unknown) => e instanceof VfioctlError && e.errno === "ENODEV");
  assert.equal((await bindDriver(sys, ACC, "vfio-pci")).changed, false);
  await assert.rejects(bindDriver(sys, "0000:05:00.0", "no-such-driver"), code("UNKNOWN_DRIVER"));
  assert.equal(await state(k), before);
  assert.equal((await audit(sys)).findings.length, 0);
  const r = await bindDriver(sys, ACC_VF0, "igbvf", { releaseCaptured: true });
  assert.equal(r.driver, "igbvf");
  assert.ok(r.log.some((l) => l.includes("VF 0000:af:10.0 bound to driver igbvf while PF bound to driver vfio-pci")));
  const ids = (await audit(sys)).findings.map((f) => f.id).sort();
  assert.deepEqual(ids, ["vf-on-host-driver", "vf-override-cleared"]);
});

test("binding vfio-pci to a PF with VFs is refused as Linux would, changing nothing", async () => {
  const k = await bootKernel();
  const sys = k.spawn("vfioctl");
  await setNumVfs(sys, "0000:06:00.0", 2);
  const before = await state(k);
  await assert.rejects(bindDriver(sys, "0000:06:00.0", "vfio-pci", { removeVfs: true }), /Cannot bind to PF with SR-IOV enabled/);
  await assert.rejects(bindDriver(sys, "0000:3d:00.0", "vfio-pci"), /denylist/);
  assert.equal(await state(k), before);
});

test("DPDK pieces refuse VFs of two PFs (one token per process)", async () => {
  const k = await bootHostFile(FIXTURE);
  const sys = k.spawn("vfioctl");
  const vf81 = "0000:81:10.0";
  const vf82 = "0000:82:10.0";
  await assert.rejects(consumerArgs(sys, "dpdk", [vf81, vf82], {}), /share one token/);
  const a = await consumerArgs(sys, "dpdk", [vf81, "0000:81:10.1"], { token: newToken(), tokenFile: "/run/t" });
  assert.deepEqual(a.argv, ["-a", vf81, "-a", "0000:81:10.1", "--vfio-vf-token=<VF-TOKEN>"]);
  assert.match(a.byReference!, /\$\(cat \/run\/t\)/);
  const q = await consumerArgs(sys, "qemu", [vf81, vf82], {});
  assert.equal(q.argv.length, 4);
});

test("token files: malformed, missing and broadly readable ones are refused; keep writes 0600", () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-tok-"));
  fs.writeFileSync(path.join(d, "bad"), "{2ab74924-c335-45f4-9b16-8569e5b08258}\n", { mode: 0o600 });
  assert.throws(() => readTokenFile(path.join(d, "bad")), /expected a UUID .* got 38 characters/);
  assert.throws(() => readTokenFile(path.join(d, "missing")), /ENOENT/);
  const t = newToken();
  keepToken(path.join(d, "keep"), t);
  assert.equal(fs.statSync(path.join(d, "keep")).mode & 0o777, 0o600);
  assert.equal(readTokenFile(path.join(d, "keep")).token, t);
  fs.writeFileSync(path.join(d, "wide"), "x", { mode: 0o644 });
  fs.chmodSync(path.join(d, "wide"), 0o644);
  assert.throws(() => keepToken(path.join(d, "wide"), t), /expected mode 0600 or narrower, got 0644/);
  assert.equal(fs.readFileSync(path.join(d, "wide"), "utf8"), "x");
  fs.rmSync(d, { recursive: true });
});

test("the real backend on a materialized model tree sees the same inventory as the model", async () => {
  const k = await bootHostFile(FIXTURE);
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-mat-"));
  await materialize(k.spawn("m"), d);
  const { root, ...real } = await inventory(new LinuxSyscalls({ root: d }), { holders: false });
  assert.equal(root, path.resolve(d));
  const model = await inventory(k.spawn("t"), { holders: false });
  assert.deepEqual({ ...real, backend: "model" }, model);
  fs.rmSync(d, { recursive: true });
});
