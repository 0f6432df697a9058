/**
 * Answers that the survivors of the sampled mutants of seed 12 (docs/benchmarks.md) showed
 * unchecked: explain's cdev bind prediction on a kernel that checks the VF token, the group
 * path's UNSET_CONTAINER on an iommufd-backed group with one device open, and isErrno on values
 * that are not objects.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { HostDesc } from "../src/kernel/host/host-file.js";
import { explainOpen } from "../src/lib/explain.js";
import { writeText } from "../src/sys/fsutil.js";
import { isErrno, SysError } from "../src/sys/errno.js";
import { O_RDWR } from "../src/sys/syscalls.js";
import { VFIO } from "../src/uapi/vfio.js";

const HOST: HostDesc = {
  name: "survivors",
  modules: { vfio_pci: { enable_sriov: true } },
  devices: [
    { bdf: "0000:10:00.0", vendor: 0x8086, device: 0x159b, class: 0x020000, driver: "vfio-pci", sriov: { total_vfs: 4, offset: 1, stride: 1, vf_device: 0x1889, num_vfs: 2 } },
    { bdf: "0000:20:00.0", vendor: 0x8086, device: 0x159b, class: 0x020000, driver: "ice", sriov: { total_vfs: 4, offset: 1, stride: 1, vf_device: 0x1889, num_vfs: 2 } },
    { bdf: "0000:30:00.0", vendor: 0x8086, device: 0x10d3, class: 0x020000, driver: "vfio-pci" },
  ],
};
const ICE_VF = "0000:20:00.1";

/** The host on `profile`, with VF 0 of the ice PF moved to vfio-pci (so it has a cdev). */
async function host(profile: string) {
  const k = await bootKernel(HOST, { profile });
  const sh = k.spawn("sh");
  await writeText(sh, `/sys/bus/pci/devices/${ICE_VF}/driver/unbind`, ICE_VF);
  await writeText(sh, `/sys/bus/pci/devices/${ICE_VF}/driver_override`, "vfio-pci");
  await writeText(sh, "/sys/bus/pci/drivers/vfio-pci/bind", ICE_VF);
  return { k, sh };
}

describe("explain --cdev on a kernel that checks the VF token on BIND_IOMMUFD (7.0)", () => {
  test("a VF of a PF not on vfio-pci: a token given fails EINVAL; none given binds", async () => {
    const { sh } = await host("7.0");
    const given = await explainOpen(sh, ICE_VF, { token: true, cdev: true });
    assert.equal(given.cdev?.verdict, "fails");
    assert.equal(given.cdev?.errno, "EINVAL");
    assert.match(given.cdev!.summary, /PF 0000:20:00\.0 is not on vfio-pci: a token is refused/);
    const none = await explainOpen(sh, ICE_VF, { cdev: true });
    assert.equal(none.cdev?.verdict, "ok");
    assert.equal(none.cdev?.summary, `bind ${none.cdev!.node}: should succeed`);
  });

  test("a bind that should succeed is not said to need no token: the kernel checks it", async () => {
    const { sh } = await host("7.0");
    for (const bdf of ["0000:30:00.0", "0000:10:00.0", ICE_VF]) {
      const e = await explainOpen(sh, bdf, { cdev: true });
      assert.equal(e.cdev?.verdict, "ok", bdf);
      assert.equal(e.cdev?.summary, `bind ${e.cdev!.node}: should succeed`, bdf);
    }
  });

  test("on 6.12.58, which does not check it, the linked VF's bind is said to succeed without any token", async () => {
    const { sh } = await host("6.12.58");
    const e = await explainOpen(sh, "0000:10:00.1", { cdev: true });
    assert.equal(e.cdev?.verdict, "ok");
    assert.match(e.cdev!.summary, /should succeed without any token \(this kernel does not check it\)$/);
  });
});

test("VFIO_GROUP_UNSET_CONTAINER on a group set to an iommufd: EBUSY while its one device is open, then 0", async () => {
  const { k } = await host("6.12.58");
  const p = k.spawn("qemu");
  const iommufd = await p.open("/dev/iommu", O_RDWR);
  const group = await p.open("/dev/vfio/" + (await p.readlink("/sys/bus/pci/devices/0000:30:00.0/iommu_group")).split("/").pop(), O_RDWR);
  const fdArg = Buffer.alloc(4);
  fdArg.writeInt32LE(iommufd, 0);
  assert.equal(await p.ioctl(group, VFIO.GROUP_SET_CONTAINER, fdArg), 0);
  const dev = await p.ioctl(group, VFIO.GROUP_GET_DEVICE_FD, Buffer.from("0000:30:00.0\0"));
  assert.ok(dev >= 0);
  await assert.rejects(p.ioctl(group, VFIO.GROUP_UNSET_CONTAINER), (e) => isErrno(e, "EBUSY"));
  await p.close(dev);
  assert.equal(await p.ioctl(group, VFIO.GROUP_UNSET_CONTAINER), 0);
  await assert.rejects(p.ioctl(group, VFIO.GROUP_UNSET_CONTAINER), (e) => isErrno(e, "EINVAL"), "no container any more");
  await p.exit();
});

test("isErrno: false for anything that is not an error object, including null and undefined", () => {
  for (const v of [null, undefined, 0, "ENOENT", true, Symbol("x")]) assert.equal(isErrno(v), false, String(v));
  assert.equal(isErrno(new SysError("ENOENT", "open", "/x")), true);
  assert.equal(isErrno(new SysError("ENOENT", "open", "/x"), "EBUSY"), false);
  assert.equal(isErrno({ code: "EBUSY" }, "EBUSY"), true);
});
