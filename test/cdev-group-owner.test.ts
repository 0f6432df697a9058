/**
 * The cdev bind's DMA-owner rule (iommu_device_claim_dma_owner), as the lab's 7.3.4-lab and
 * 6.12.117-lab showed with two ICH9 functions of one group (scenarios/cdev/cdev-group-owner.yaml):
 * a second iommufd is EPERM, the same one binds; and what explain says about it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import { parseHost } from "../src/kernel/host/host-file.js";
import { VFIO, bindIommufdBuf } from "../src/uapi/vfio.js";
import { O_RDWR } from "../src/sys/syscalls.js";
import { attempt, w } from "../testlib/spec/index.js";
import { explainOpen } from "../src/lib/explain.js";

const A = "0000:00:1f.2";
const B = "0000:00:1f.3";
const HOST = `
name: group6
modules: { vfio_pci: {} }
drivers: [vfio-pci]
devices:
  - { bdf: "${A}", vendor: 0x8086, device: 0x2922, class: 0x010601, iommu_group: 6, driver: none, reset_works: false }
  - { bdf: "${B}", vendor: 0x8086, device: 0x2930, class: 0x0c0500, iommu_group: 6, driver: none, reset_works: false }
`;

async function world() {
  const k = await bootKernel(parseHost(HOST), { profile: "7.3.4-lab" });
  const sh = k.spawn("sh");
  for (const bdf of [A, B]) {
    await w(sh, `/sys/bus/pci/devices/${bdf}/driver_override`, "vfio-pci");
    await w(sh, "/sys/bus/pci/drivers_probe", bdf);
  }
  const cdevOf = async (bdf: string) => `/dev/vfio/devices/${(await sh.readdir(`/sys/bus/pci/devices/${bdf}/vfio-dev`))[0]}`;
  return { k, sh, cdevOf };
}

test("a member bound through its cdev makes its iommufd the group's DMA owner: another iommufd EPERM, the same one binds", async () => {
  const { k, cdevOf } = await world();
  const p = k.spawn("qemu");
  const ia = await p.open("/dev/iommu", O_RDWR);
  const ib = await p.open("/dev/iommu", O_RDWR);
  const ca = await p.open(await cdevOf(A), O_RDWR);
  const cb = await p.open(await cdevOf(B), O_RDWR);
  assert.equal(typeof (await attempt(p.ioctl(ca, VFIO.DEVICE_BIND_IOMMUFD, bindIommufdBuf(ia)))), "number");
  assert.equal(await attempt(p.ioctl(cb, VFIO.DEVICE_BIND_IOMMUFD, bindIommufdBuf(ib))), "EPERM");
  assert.equal(typeof (await attempt(p.ioctl(cb, VFIO.DEVICE_BIND_IOMMUFD, bindIommufdBuf(ia)))), "number");
});

test("explain --cdev names the other member's cdev holder as a possible EPERM, and only then", async () => {
  const { k, sh, cdevOf } = await world();
  const quiet = await explainOpen(sh, B, { cdev: true });
  assert.equal(quiet.causes.find((c) => c.id === "cdev-group-owned")?.status, "no");
  const p = k.spawn("qemu");
  const ia = await p.open("/dev/iommu", O_RDWR);
  const ca = await p.open(await cdevOf(A), O_RDWR);
  await p.ioctl(ca, VFIO.DEVICE_BIND_IOMMUFD, bindIommufdBuf(ia));
  const x = await explainOpen(sh, B, { cdev: true, errno: "EPERM" });
  const row = x.causes.find((c) => c.id === "cdev-group-owned");
  assert.equal(row?.status, "possible", JSON.stringify(row));
  assert.equal(row?.errno, "EPERM");
  assert.match(row!.cause, /qemu/);
  // the holder's own device is not "another member"
  const self = await explainOpen(sh, A, { cdev: true });
  assert.equal(self.causes.find((c) => c.id === "cdev-group-owned")?.status, "no");
});
