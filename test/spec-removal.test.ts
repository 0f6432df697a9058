/**
 * kernel-spec §5 (vfio-pci's bus notifier: capture and the BOUND_DRIVER warning) and §7
 * (removal and unbind while userspace holds a VF open: the blocking loop, the request channel,
 * signals, the sriov_numvfs read that blocks behind a blocked disable). Errno and exact log text
 * in every row.
 *
 * Where the lab's real kernels (lab/transcripts/raw/*-e-blocking-remove.txt) differ from the spec,
 * the tests follow the lab: VFs are removed in index order (VF0 first), so a VF after the held one
 * stays until it is released, and the sriov_numvfs read blocks on 6.12 as well as on 6.1.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EFD_NONBLOCK } from "../src/sys/syscalls.js";
import { VFIO, reqEventfdBuf } from "../src/uapi/vfio.js";
import {
  NATIVE_PF,
  PF,
  PROFILES,
  STUB_PF,
  U1,
  VF0,
  VF1,
  advance,
  boot,
  bootWithVfs,
  dev,
  driverOf,
  drv,
  getDeviceFd,
  groupOf,
  openDevice,
  r,
  run,
  settle,
  since,
  usersOf,
  w,
  withoutEnumeration,
} from "../testlib/spec/index.js";
import type { KernelVersion } from "../src/kernel/profile.js";

const NO_CHANNEL = "No device request channel registered, blocked until released by user";
const NUMVFS = `${dev(PF)}/sriov_numvfs`;
/** pci_enable_device on a new VF (PCI_COMMAND 0 → MEMORY), as its first driver probes or opens it */
const enabling = (driver: string, bdf: string) => `${driver} ${bdf}: enabling device (0000 -> 0002)`;

/** VFs enabled, PF token U1, VF0 held open by process "qemu". */
async function heldOpen(profile: KernelVersion, vfs = 2) {
  const wd = await bootWithVfs(profile, vfs);
  const pfo = await openDevice(wd.sh, PF, `${PF} vf_token=${U1}`);
  await wd.sh.close(pfo.device as number);
  await wd.sh.close(pfo.group);
  await wd.sh.close(pfo.container);
  const qemu = wd.k.spawn("qemu");
  const vf = await openDevice(qemu, VF0, `${VF0} vf_token=${U1}`);
  assert.equal(typeof vf.device, "number");
  return { ...wd, qemu, vf };
}

for (const profile of PROFILES) {
  describe(`§5 bus notifier [${profile}]`, () => {
    test("ADD_DEVICE of a VF of a vfio-pci PF: 'Captured SR-IOV VF <vf> driver_override' (info, on the PF) and the override is vfio-pci", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, NUMVFS, "1"));
      assert.equal(rc, 1);
      assert.deepEqual(withoutEnumeration(lines), [`vfio-pci ${PF}: Captured SR-IOV VF ${VF0} driver_override`]);
      const rec = k.log.records.find((x) => x.text.includes("Captured"))!;
      assert.equal(rec.level, 6);
      assert.equal(rec.device, `+pci:${PF}`);
      assert.equal(await r(sh, `${dev(VF0)}/driver_override`), "vfio-pci\n");
    });

    test("a captured VF cannot be bound directly to another driver: ENODEV, no log (scenario 16)", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      assert.equal(await w(sh, `${drv("vfio-pci")}/unbind`, VF0), VF0.length);
      const [rc, lines] = await run(k, () => w(sh, `${drv("ixgbevf")}/bind`, VF0));
      assert.equal(rc, "ENODEV");
      assert.deepEqual(lines, []);
    });

    test("after clearing the override, binding elsewhere works and warns 'VF … bound to driver … while PF bound to driver …' on the PF", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      await w(sh, `${drv("vfio-pci")}/unbind`, VF0);
      assert.equal(await w(sh, `${dev(VF0)}/driver_override`, "\n"), 1);
      const [rc, lines] = await run(k, () => w(sh, `${drv("ixgbevf")}/bind`, VF0));
      assert.equal(rc, VF0.length);
      // ixgbevf's probe enables the never-opened VF, then the notifier warns on the PF
      assert.deepEqual(lines, [enabling("ixgbevf", VF0), `vfio-pci ${PF}: VF ${VF0} bound to driver ixgbevf while PF bound to driver vfio-pci`]);
      assert.equal(k.log.records.at(-1)!.level, 4);
      assert.equal(await driverOf(sh, VF0), "ixgbevf");
    });

    test("a VF rebound to vfio-pci (the PF's driver) gives no warning", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      await w(sh, `${drv("vfio-pci")}/unbind`, VF0);
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/bind`, VF0));
      assert.equal(rc, VF0.length);
      assert.deepEqual(lines, []);
    });

    test("VFs of a PF on a native driver or on pci-pf-stub are never captured", async () => {
      const { k, sh } = await boot(profile);
      const [, a] = await run(k, () => w(sh, `${dev(NATIVE_PF)}/sriov_numvfs`, "1"));
      const [, b] = await run(k, () => w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "1"));
      // no "Captured" line; the native PF's VF probes ixgbevf (which enables it), the stub's has no driver
      assert.deepEqual(withoutEnumeration([...a, ...b]), [enabling("ixgbevf", "0000:07:10.0")]);
      assert.equal(await r(sh, `${dev("0000:07:10.0")}/driver_override`), "(null)\n");
      assert.equal(await r(sh, `${dev("0000:06:00.1")}/driver_override`), "(null)\n");
    });

    test("the notifier goes away with the PF's vfio-pci binding: after moving the PF to ixgbe its VFs probe ixgbevf", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, `${drv("vfio-pci")}/unbind`, PF);
      await w(sh, `${dev(PF)}/driver_override`, "\n");
      assert.equal(await w(sh, `${drv("ixgbe")}/bind`, PF), PF.length);
      const [, lines] = await run(k, () => w(sh, NUMVFS, "1"));
      assert.deepEqual(withoutEnumeration(lines), [enabling("ixgbevf", VF0)], "no 'Captured' line");
      assert.equal(await driverOf(sh, VF0), "ixgbevf");
    });
  });

  describe(`§7 removal while a VF is held open [${profile}]`, () => {
    test("sriov_numvfs=0 blocks on VF0, shows in k.blocked(), logs 'No device request channel…' on it, and keeps VF1 until VF0 is released", async () => {
      const { k, sh, qemu, vf } = await heldOpen(profile);
      const g0 = await groupOf(sh, VF0);
      const g1 = await groupOf(sh, VF1);
      const from = k.log.nextSeq;
      const pending = w(sh, NUMVFS, "0");
      await settle();
      const b = k.blocked();
      assert.equal(b.length, 1);
      assert.deepEqual([b[0]!.pid, b[0]!.comm, b[0]!.syscall, b[0]!.path], [sh.pid, "bash", "write", NUMVFS]);
      assert.deepEqual(withoutEnumeration(since(k, from)), [`vfio-pci ${VF0}: ${NO_CHANNEL}`]);
      assert.equal(k.log.records.at(-1)!.level, 4);
      // sriov_disable removes VFs in index order (the spec said highest first; the lab showed VF0
      // first): the removal waits on VF0, so VF1 keeps its device, driver and /dev/vfio node
      assert.equal(await driverOf(qemu, VF0), "vfio-pci");
      assert.equal(await driverOf(qemu, VF1), "vfio-pci", "VF1 is still there while VF0 blocks");
      assert.equal(await r(qemu, `${dev(VF1)}/vendor`), "0x8086\n");
      assert.ok((await qemu.readdir("/dev/vfio")).includes(String(g1)), "VF1's /dev/vfio node remains");
      const released = k.log.nextSeq;
      await qemu.close(vf.device as number);
      assert.equal(await pending, 1);
      assert.deepEqual(k.blocked(), []);
      // both go once VF0 is released, VF0 first (6.1 logs the group removals; 6.12 does not)
      assert.deepEqual(
        since(k, released),
        profile === "6.1" ? [`pci ${VF0}: Removing from iommu group ${g0}`, `pci ${VF1}: Removing from iommu group ${g1}`] : [],
      );
      assert.equal(await driverOf(sh, VF1), null);
      assert.equal(await r(sh, NUMVFS), "0\n");
    });

    test("the write completes when the holder's process exits", async () => {
      const { k, sh, qemu } = await heldOpen(profile);
      const pending = w(sh, NUMVFS, "0");
      await settle();
      assert.equal(k.blocked().length, 1);
      await qemu.exit();
      assert.equal(await pending, 1);
      assert.equal(usersOf(k), 0);
    });

    // 6.12 hides a device from name lookup once its unregister starts (ENODEV). The lab showed
    // 6.1 still finding it: a second fd opens, and the removal then waits for that fd as well.
    test(`${profile}: while removal waits, a new open of the VF ${profile === "6.1" ? "still gets an fd and keeps the removal waiting" : "fails with ENODEV"}`, async () => {
      const { k, sh, qemu, vf } = await heldOpen(profile);
      let done = false;
      const pending = w(sh, NUMVFS, "0").finally(() => (done = true));
      await settle();
      const r2 = await getDeviceFd(qemu, vf.group, `${VF0} vf_token=${U1}`);
      if (profile === "6.1") {
        assert.equal(typeof r2, "number", "6.1 opens a second fd of the VF being removed");
        await qemu.close(vf.device as number);
        await settle();
        assert.equal(done, false, "closing the first fd is not enough: the second one holds the VF");
        assert.ok(k.blocked().some((b) => b.pid === sh.pid), "the writer is still blocked");
      } else assert.equal(r2, "ENODEV");
      await qemu.exit();
      await pending;
      assert.equal(done, true);
    });

    // The spec expected 6.12 to have the revert of sriov_numvfs_show's device_lock; the lab showed
    // Debian's 6.12.117 blocking the read just like 6.1 (6.12-e-blocking-remove.txt [34]).
    test(`${profile}: a concurrent read of sriov_numvfs blocks until the write finishes, then reads 0`, async () => {
      const { k, sh, qemu } = await heldOpen(profile);
      const pending = w(sh, NUMVFS, "0");
      await settle();
      const reader = k.spawn("cat");
      let done = false;
      const read = r(reader, NUMVFS).finally(() => (done = true));
      await settle();
      const b = k.blocked().find((x) => x.pid === reader.pid);
      assert.ok(b, "the reader is blocked");
      assert.deepEqual([b.syscall, b.waitingOn], ["read", `device_lock ${PF} (held by bash[${sh.pid}] write)`]);
      assert.equal(done, false);
      assert.equal(await r(qemu, `${dev(PF)}/sriov_totalvfs`), "8\n", "sriov_totalvfs does not take the device lock");
      await qemu.exit();
      assert.equal(await pending, 1);
      assert.equal(await read, "0\n");
    });

    test("with a REQ eventfd: 'Relaying device request to user (#0)' at once, '#10' after 100 s, the eventfd fires each 10 s", async () => {
      const { k, sh, qemu, vf } = await heldOpen(profile);
      const ev = await qemu.eventfd(0, EFD_NONBLOCK);
      assert.equal(await qemu.ioctl(vf.device as number, VFIO.DEVICE_SET_IRQS, reqEventfdBuf(ev)), 0);
      const from = k.log.nextSeq;
      const pending = w(sh, NUMVFS, "0");
      await settle();
      assert.deepEqual(withoutEnumeration(since(k, from)), [`vfio-pci ${VF0}: Relaying device request to user (#0)`]);
      assert.equal(k.log.records.at(-1)!.level, 5);
      assert.equal((await qemu.read(ev, 8)).readBigUInt64LE(0), 1n);
      await advance(k, 100_000);
      assert.deepEqual(withoutEnumeration(since(k, from)), [`vfio-pci ${VF0}: Relaying device request to user (#0)`, `vfio-pci ${VF0}: Relaying device request to user (#10)`]);
      assert.equal((await qemu.read(ev, 8)).readBigUInt64LE(0), 10n, "requests #1..#10 each signalled it once");
      assert.equal(k.blocked().length, 1);
      await qemu.exit();
      assert.equal(await pending, 1);
    });

    test("one jump of the model clock by 100 s (a scenario's sleep) also reaches request #10", async () => {
      const { k, sh, qemu, vf } = await heldOpen(profile);
      const ev = await qemu.eventfd(0, EFD_NONBLOCK);
      await qemu.ioctl(vf.device as number, VFIO.DEVICE_SET_IRQS, reqEventfdBuf(ev));
      const from = k.log.nextSeq;
      const pending = w(sh, NUMVFS, "0");
      await settle();
      k.advance(100_000);
      await settle();
      assert.deepEqual(withoutEnumeration(since(k, from)), [`vfio-pci ${VF0}: Relaying device request to user (#0)`, `vfio-pci ${VF0}: Relaying device request to user (#10)`]);
      assert.equal((await qemu.read(ev, 8)).readBigUInt64LE(0), 11n);
      k.advance(9_999);
      await settle();
      assert.equal(await qemu.read(ev, 8).then(() => "signalled", (e) => e.code), "EAGAIN", "#11 is due only at 110 s");
      k.advance(1);
      await settle();
      assert.equal((await qemu.read(ev, 8)).readBigUInt64LE(0), 1n);
      await qemu.exit();
      assert.equal(await pending, 1);
    });

    test("a signal to the writer logs 'Device is currently in use, task \"bash\" (<pid>) blocked until device is released' once and it keeps blocking", async () => {
      const { k, sh, qemu } = await heldOpen(profile);
      const from = k.log.nextSeq;
      const pending = w(sh, NUMVFS, "0");
      await settle();
      k.signal(sh.pid);
      await settle();
      k.signal(sh.pid);
      await settle();
      await advance(k, 30_000, 10_000);
      assert.deepEqual(withoutEnumeration(since(k, from)), [
        `vfio-pci ${VF0}: ${NO_CHANNEL}`,
        `vfio-pci ${VF0}: Device is currently in use, task "bash" (${sh.pid}) blocked until device is released`,
      ]);
      assert.equal(k.blocked().length, 1, "still blocked after the signal");
      await qemu.exit();
      assert.equal(await pending, 1);
    });

    test("a signal delivered while the writer still waits for a device lock is noticed at its first interruptible wait: 'Device is currently in use' at once", async () => {
      // dpdk holds the PF, qemu VF0. sh's sriov_numvfs write holds the PF's device lock while it
      // waits for VF0; bash2's unbind of the PF waits for that lock (uninterruptibly) and is
      // signalled there. The signal stays pending (signal_pending), so when bash2 reaches vfio's
      // wait for the PF, wait_for_completion_interruptible_timeout returns at once: the line is
      // logged with no further signal, and bash2 goes on waiting (uninterruptibly) for dpdk.
      const { k, sh, qemu } = await heldOpen(profile);
      const dpdk = k.spawn("dpdk");
      const pfo = await openDevice(dpdk, PF, `${PF} vf_token=${U1}`);
      assert.equal(typeof pfo.device, "number");
      const numvfs = w(sh, NUMVFS, "0");
      await settle();
      const bash2 = k.spawn("bash2");
      const unbind = w(bash2, `${drv("vfio-pci")}/unbind`, PF);
      await settle();
      assert.deepEqual(
        k.blocked().map((b) => [b.comm, b.waitingOn?.startsWith("device_lock") ?? false]),
        [["bash", false], ["bash2", true]],
        "bash2 waits for the PF's device lock",
      );
      k.signal(bash2.pid);
      await settle();
      const from = k.log.nextSeq;
      await qemu.exit();
      assert.equal(await numvfs, 1);
      await settle();
      const inUse = `vfio-pci ${PF}: Device is currently in use, task "bash2" (${bash2.pid}) blocked until device is released`;
      assert.deepEqual(withoutEnumeration(since(k, from)), [`vfio-pci ${PF}: ${NO_CHANNEL}`, inUse]);
      assert.deepEqual(k.blocked().map((b) => b.comm), ["bash2"], "still blocked: the signal interrupted the first wait only");
      await advance(k, 30_000, 10_000);
      assert.equal(withoutEnumeration(since(k, from)).filter((l) => l === inUse).length, 1, "logged once");
      await dpdk.exit();
      assert.equal(await unbind, PF.length);
      assert.equal(await driverOf(sh, PF), null);
    });

    test("disabling the VFs removes their IOMMU groups (/sys/kernel/iommu_groups), and enabling them again reuses the lowest free ids", async () => {
      const { sh } = await bootWithVfs(profile, 2);
      const groups = [await groupOf(sh, VF0), await groupOf(sh, VF1)];
      const listed = async () => (await sh.readdir("/sys/kernel/iommu_groups")).map(Number);
      for (const g of groups) assert.ok((await listed()).includes(g), `group ${g} is listed`);
      assert.equal(await w(sh, NUMVFS, "0"), 1);
      for (const g of groups) assert.ok(!(await listed()).includes(g), `group ${g} went with its only device`);
      assert.equal(await w(sh, NUMVFS, "2"), 1);
      assert.deepEqual([await groupOf(sh, VF0), await groupOf(sh, VF1)], groups, "ida_alloc: the freed ids again");
    });

    test("a group revoked by an unbind leaves the id map: bound again, its node is listed after the nodes made before it", async () => {
      // /dev/vfio lists its nodes in the order they were made (as tmpfs, which devtmpfs is,
      // orders a directory by creation since 6.6). A revoked group left under its id would keep
      // that id's old place in the listing when the group is made again.
      const { sh } = await bootWithVfs(profile, 2);
      const [g0, g1] = [await groupOf(sh, VF0), await groupOf(sh, VF1)];
      const before = await sh.readdir("/dev/vfio");
      assert.ok(before.indexOf(String(g0)) >= 0 && before.indexOf(String(g0)) < before.indexOf(String(g1)), before.join(" "));
      assert.equal(await w(sh, `${drv("vfio-pci")}/unbind`, VF0), VF0.length);
      assert.ok(!(await sh.readdir("/dev/vfio")).includes(String(g0)), "the node goes with the group");
      assert.equal(await w(sh, `${drv("vfio-pci")}/bind`, VF0), VF0.length);
      assert.equal(await groupOf(sh, VF0), g0, "the same IOMMU group");
      assert.deepEqual(await sh.readdir("/dev/vfio"), [...before.filter((n) => n !== String(g0)), String(g0)]);
    });

    test("unbinding the PF while a VF is open blocks the same way, then removes the PF's device and VFs", async () => {
      const { k, sh, qemu } = await heldOpen(profile);
      const from = k.log.nextSeq;
      const pending = w(sh, `${drv("vfio-pci")}/unbind`, PF);
      await settle();
      assert.equal(k.blocked()[0]!.path, `${drv("vfio-pci")}/unbind`);
      assert.deepEqual(withoutEnumeration(since(k, from)), [`vfio-pci ${VF0}: ${NO_CHANNEL}`]);
      await qemu.exit();
      assert.equal(await pending, PF.length);
      assert.equal(await driverOf(sh, PF), null);
      assert.equal(await r(sh, NUMVFS), "0\n");
    });

    test("unbinding the PF with both a VF and the PF open: after the VF is released the PF's own unregister waits on the PF", async () => {
      const { k, sh, qemu } = await heldOpen(profile);
      const pfHolder = k.spawn("dpdk");
      const pfo = await openDevice(pfHolder, PF, `${PF} vf_token=${U1}`);
      assert.equal(typeof pfo.device, "number");
      const from = k.log.nextSeq;
      const pending = w(sh, `${drv("vfio-pci")}/unbind`, PF);
      await settle();
      await qemu.exit();
      await settle();
      assert.equal(k.blocked().length, 1);
      assert.deepEqual(withoutEnumeration(since(k, from)), [`vfio-pci ${VF0}: ${NO_CHANNEL}`, `vfio-pci ${PF}: ${NO_CHANNEL}`]);
      await pfHolder.exit();
      assert.equal(await pending, PF.length);
    });

    test("unbinding an open VF from vfio-pci blocks until it is closed; users drops at the close", async () => {
      const { k, sh, qemu } = await heldOpen(profile);
      assert.equal(usersOf(k), 1);
      const pending = w(sh, `${drv("vfio-pci")}/unbind`, VF0);
      await settle();
      assert.equal(k.blocked().length, 1);
      await qemu.exit();
      assert.equal(await pending, VF0.length);
      assert.equal(usersOf(k), 0);
      assert.equal(await driverOf(sh, VF0), null);
    });

    test("a pci-pf-stub PF with a vfio-pci VF open: writing 0 blocks on the VF (the VF is not 'assigned')", async () => {
      const { k, sh } = await boot(profile);
      const vf = "0000:06:00.1";
      await w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "1");
      await w(sh, `${dev(vf)}/driver_override`, "vfio-pci");
      await w(sh, "/sys/bus/pci/drivers_probe", vf);
      const qemu = k.spawn("qemu");
      assert.equal(typeof (await openDevice(qemu, vf)).device, "number");
      const from = k.log.nextSeq;
      const pending = w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "0");
      await settle();
      assert.equal(k.blocked().length, 1);
      assert.deepEqual(withoutEnumeration(since(k, from)), [`vfio-pci ${vf}: ${NO_CHANNEL}`]);
      await qemu.exit();
      assert.equal(await pending, 1);
    });
  });
}
