/**
 * Answers at the edges that nothing else pinned down: the defaults a host description leaves to
 * the model (subsystem IDs, VF BARs), an SR-IOV count of exactly sriov_totalvfs, and the
 * pre-5.19 container checks of VFIO_GROUP_GET_DEVICE_FD one at a time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { VFIO, regionInfoBuf } from "../src/uapi/vfio.js";
import { setNumVfs } from "../src/lib/sriov.js";
import { unbindDriver } from "../src/lib/bind.js";
import { readDevice } from "../src/lib/sysfs.js";
import { bootKernel } from "../src/kernel/host/boot.js";
import { NOIOMMU, PF, PLAIN, U4, VF0, attempt, boot, bootWithVfs, dev, openDevice, r, tokenOf, w } from "../testlib/spec/index.js";

test("a device declared without subsystem IDs reads subsystem_vendor = its vendor and subsystem_device 0x0000", async () => {
  const { sh } = await boot("6.12");
  assert.equal(await r(sh, `${dev(PLAIN)}/subsystem_device`), "0x0000\n");
  assert.equal(await r(sh, `${dev(PLAIN)}/subsystem_vendor`), "0x144d\n");
});

test("a VF of a PF declared without vf_bars has the default BARs: 16 KiB at BAR 0 and BAR 3, nothing at BAR 1", async () => {
  const { sh } = await bootWithVfs("6.12", 1);
  const { device } = await openDevice(sh, VF0, `${VF0} vf_token=${U4}`);
  assert.equal(typeof device, "string", "the VF needs the PF's token: this open is refused");
  const { k, sh: sh2 } = await bootWithVfs("6.12", 1);
  const o = await openDevice(sh2, VF0, `${VF0} vf_token=${tokenOf(k)}`);
  assert.equal(typeof o.device, "number", `VF open: ${String(o.device)}`);
  const size = async (i: number) => {
    const b = regionInfoBuf(i);
    assert.equal(await sh2.ioctl(o.device as number, VFIO.DEVICE_GET_REGION_INFO, b), 0);
    return b.readBigUInt64LE(16);
  };
  assert.deepEqual([await size(0), await size(1), await size(3)], [0x4000n, 0n, 0x4000n]);
});

test("sriov to exactly sriov_totalvfs is allowed (one more is ERANGE)", async () => {
  const k = await bootKernel();
  const sh = k.spawn("t");
  const pf = "0000:01:00.0"; // the default host's igb PF
  const total = Number(await r(sh, `${dev(pf)}/sriov_totalvfs`));
  assert.ok(total > 0);
  await setNumVfs(sh, pf, total);
  assert.equal(await r(sh, `${dev(pf)}/sriov_numvfs`), `${total}\n`);
  await assert.rejects(setNumVfs(sh, pf, total + 1), /ERANGE|0\.\.\d+|at most/);
});

test("5.18: GET_DEVICE_FD needs a container with an IOMMU type set (EINVAL with a container but no SET_IOMMU), the token untouched", async () => {
  const { k, sh } = await boot("5.18.19");
  const before = tokenOf(k);
  const o = await openDevice(sh, PF, `${PF} vf_token=${U4}`, { setContainer: true, setIommu: false });
  assert.equal(o.device, "EINVAL");
  assert.equal(tokenOf(k), before);
  const { sh: sh2 } = await boot("5.18.19");
  const ok = await openDevice(sh2, PF, PF);
  assert.equal(typeof ok.device, "number", `with SET_IOMMU the PF opens: ${String(ok.device)}`);
});

test("unbind: an unbound device with a driver_override is left alone unless --clear-override; a bound one is unbound and keeps its override", async () => {
  const { sh } = await boot("6.12");
  assert.equal(await w(sh, `${dev(NOIOMMU)}/driver_override`, "nvme"), 4);
  const same = await unbindDriver(sh, NOIOMMU);
  assert.equal(same.changed, false);
  assert.equal(await r(sh, `${dev(NOIOMMU)}/driver_override`), "nvme\n");
  const cleared = await unbindDriver(sh, NOIOMMU, { clearOverride: true });
  assert.equal(cleared.changed, true);
  assert.equal(await r(sh, `${dev(NOIOMMU)}/driver_override`), "(null)\n");
  const bound = await unbindDriver(sh, PLAIN);
  assert.equal(bound.changed, true);
  assert.equal(bound.previous.driver, "vfio-pci");
  assert.equal(await attempt(sh.readlink(`${dev(PLAIN)}/driver`)), "ENOENT");
});

test("driver_override reads take the device lock before the generic driver_override (6.1, 6.12.79): behind a disable waiting for a VF's user they wait, readDevice reports them blocked; from 6.12.80 (6.12.117) they do not wait", async () => {
  for (const [profile, locks] of [["6.1", true], ["6.12.79", true], ["6.12.80", false], ["6.12", false]] as const) {
    const { k, sh } = await bootWithVfs(profile, 2);
    const qemu = k.spawn("qemu");
    const o = await openDevice(qemu, VF0, `${VF0} vf_token=${tokenOf(k)}`);
    assert.equal(typeof o.device, "number");
    const pending = w(sh, `${dev(PF)}/sriov_numvfs`, "0");
    await new Promise((res) => setTimeout(res, 20));
    const reader = k.spawn("cat");
    let pfRead: string | undefined;
    const pfOverride = r(reader, `${dev(PF)}/driver_override`).then((v) => (pfRead = v));
    const vfOverride = r(k.spawn("cat"), `${dev(VF0)}/driver_override`);
    await new Promise((res) => setTimeout(res, 20));
    assert.equal(pfRead === undefined, locks, `${profile}: the PF's driver_override read ${locks ? "waits" : "returns"}`);
    assert.equal(k.blocked().some((b) => b.pid === reader.pid && /device_lock 0000:04:00\.0/.test(b.waitingOn)), locks, `${profile}: ${JSON.stringify(k.blocked())}`);
    const facts = await readDevice(k.spawn("vfioctl"), PF, { numvfsTimeoutMs: 50 });
    assert.deepEqual(facts.blockedReads, locks ? ["driver_override", "sriov_numvfs"] : ["sriov_numvfs"], profile);
    await qemu.exit();
    assert.equal(await pending, 1);
    assert.equal(await pfOverride, "(null)\n");
    assert.equal(await vfOverride, locks ? "ENODEV" : "vfio-pci\n", `${profile}: the model says ENODEV for a read that waited for the lock of a VF removed meanwhile (the lab saw that and, in another run, the value: a race)`);
  }
});

test("explain on a checked cdev kernel: a token to BIND_IOMMUFD of a device that is neither PF nor VF is refused (EINVAL row applies)", async () => {
  const k = await bootKernel(undefined, { profile: "7.3.4" });
  const sh = k.spawn("t");
  const { bindDriver } = await import("../src/lib/bind.js");
  await bindDriver(sh, "0000:05:00.0", "vfio-pci");
  const { explainOpen } = await import("../src/lib/explain.js");
  const x = await explainOpen(sh, "0000:05:00.0", { token: true, cdev: true });
  const row = x.causes.find((c) => c.id === "cdev-token-not-needed");
  assert.ok(row && row.status !== "no", JSON.stringify(row));
  assert.equal(x.asked.works, false);
  const plain = await explainOpen(sh, "0000:05:00.0", { cdev: true });
  assert.equal(plain.causes.find((c) => c.id === "cdev-token-not-needed")?.status, "would", "without a token the row only would apply");
});

test("explain --numvfs 0 while a VF is open names the VF and its holder in the blocking row", async () => {
  const k = await bootKernel();
  const qemu = k.spawn("qemu-kvm");
  const U = "2ab74924-c335-45f4-9b16-8569e5b08258";
  const p = await openDevice(qemu, "0000:af:00.0", `0000:af:00.0 vf_token=${U}`);
  for (const fd of [p.device as number, p.group, p.container]) await qemu.close(fd);
  const o = await openDevice(qemu, "0000:af:10.0", `0000:af:10.0 vf_token=${U}`);
  assert.equal(typeof o.device, "number");
  const { explainOpen } = await import("../src/lib/explain.js");
  const x = await explainOpen(k.spawn("vfioctl"), "0000:af:00.0", { numvfs: 0 });
  const row = x.causes.find((c) => c.id === "numvfs-blocks-vf-open")!;
  assert.equal(row.status, "applies");
  assert.match(row.cause, new RegExp(`the write blocks until every VF user closes: 0000:af:10\\.0: pid ${qemu.pid} \\(qemu-kvm\\)`));
  await qemu.exit();
});
