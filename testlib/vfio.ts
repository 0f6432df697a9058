/**
 * Test helpers over the syscalls seam (shared by the scenario, selftest-matrix and property tests;
 * kept outside test/ so the runner does not count them). They work on the model and on a real host.
 */
import { Kernel } from "../src/kernel/kernel.js";
import { bootHostFile } from "../src/kernel/host/boot.js";
import type { KernelVersion } from "../src/kernel/profile.js";
import { readAttr, writeText } from "../src/sys/fsutil.js";
import { O_RDWR, type Syscalls } from "../src/sys/syscalls.js";
import { VFIO, VFIO_TYPE1v2_IOMMU, deviceNameBuf, intBuf } from "../src/uapi/vfio.js";

export const LAB_HOST = new URL("../../scenarios/hosts/lab-igb.yaml", import.meta.url).pathname;
export const PF = "0000:01:00.0";

export interface OpenedDevice {
  container: number;
  group: number;
  device: number;
}

/** The /dev/vfio/<N> path of a device's IOMMU group, read from its iommu_group link. */
export async function groupPath(sys: Syscalls, bdf: string): Promise<string> {
  const t = await sys.readlink(`/sys/bus/pci/devices/${bdf}/iommu_group`);
  return `/dev/vfio/${t.slice(t.lastIndexOf("/") + 1)}`;
}

/**
 * Container + group + SET_CONTAINER + SET_IOMMU(TYPE1v2) + GET_DEVICE_FD(matchString).
 * On failure the container and group fds are closed again and the SysError is rethrown.
 */
export async function openVfioDevice(sys: Syscalls, bdf: string, matchString: string = bdf): Promise<OpenedDevice> {
  const container = await sys.open("/dev/vfio/vfio", O_RDWR);
  let group = -1;
  try {
    group = await sys.open(await groupPath(sys, bdf), O_RDWR);
    await sys.ioctl(group, VFIO.GROUP_SET_CONTAINER, intBuf(container));
    await sys.ioctl(container, VFIO.SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    const device = await sys.ioctl(group, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(matchString));
    return { container, group, device };
  } catch (e) {
    if (group >= 0) await sys.close(group).catch(() => {});
    await sys.close(container).catch(() => {});
    throw e;
  }
}

export async function closeVfioDevice(sys: Syscalls, d: OpenedDevice): Promise<void> {
  await sys.close(d.device);
  await sys.close(d.group);
  await sys.close(d.container);
}

/** Boot the lab host model with the PF moved to vfio-pci and `numvfs` VFs enabled. */
export async function labKernelWithVfioPf(profile: KernelVersion = "6.1", numvfs = 2): Promise<Kernel> {
  const k = await bootHostFile(LAB_HOST, { profile });
  const sh = k.spawn("setup");
  const d = `/sys/bus/pci/devices/${PF}`;
  const drv = (await sh.readlink(`${d}/driver`).catch(() => "")).split("/").pop();
  if (drv) await writeText(sh, `/sys/bus/pci/drivers/${drv}/unbind`, PF);
  await writeText(sh, `${d}/driver_override`, "vfio-pci");
  await writeText(sh, "/sys/bus/pci/drivers_probe", PF);
  await writeText(sh, `${d}/driver_override`, "\n");
  if (numvfs) await writeText(sh, `${d}/sriov_numvfs`, String(numvfs));
  if ((await readAttr(sh, `${d}/sriov_numvfs`)) !== String(numvfs)) throw new Error("lab host setup: sriov_numvfs did not take");
  await sh.exit();
  return k;
}

/** The errno name a seam promise rejects with, or "ok". */
export async function errnoOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (!code) throw e;
    return code;
  }
}
