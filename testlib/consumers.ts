/**
 * Model VFIO consumers the way real ones hold devices: a DPDK-like process that opens the
 * container, the group and a device (optionally with a VF token), placed on the host, in a chroot
 * or in a container (its own mount namespace with its own device paths, a cgroup naming it).
 */
import type { Kernel } from "../src/kernel/kernel.js";
import type { ModelProcess, SpawnOptions } from "../src/kernel/process.js";
import { openGroupSession } from "../src/lib/vfio.js";

export const DOCKER_ID = "3f2a9c1b0d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
export const IN_DOCKER: SpawnOptions = { cgroup: `/system.slice/docker-${DOCKER_ID}.scope` };

export interface Consumer {
  proc: ModelProcess;
  group: number;
  deviceFd: number;
  /** close the group and container fds, keeping only the device fd (the kernel keeps the group open for it) */
  dropGroupFds(): Promise<void>;
}

/** The IOMMU group of a device, from its iommu_group link. */
export async function groupOf(sys: ModelProcess, bdf: string): Promise<number> {
  const t = await sys.readlink(`/sys/bus/pci/devices/${bdf}/iommu_group`);
  return Number(t.slice(t.lastIndexOf("/") + 1));
}

/**
 * Start `comm` with `place` and open `bdf` through its group, with "BDF vf_token=T" when a token
 * is given. With `place.mounts`, the group is opened by the container's own path for it.
 */
export async function startConsumer(k: Kernel, comm: string, bdf: string, place: SpawnOptions = {}, token?: string, groupPathInside?: string): Promise<Consumer> {
  const proc = k.spawn(comm, place);
  const group = await groupOf(proc, bdf);
  if (groupPathInside) {
    // open by the container's path: the same calls openGroupSession makes, on another name
    const { O_RDWR } = await import("../src/sys/syscalls.js");
    const { VFIO, VFIO_TYPE1v2_IOMMU, deviceNameBuf, intBuf } = await import("../src/uapi/vfio.js");
    const c = await proc.open("/dev/vfio/vfio", O_RDWR);
    const g = await proc.open(groupPathInside, O_RDWR);
    await proc.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c));
    await proc.ioctl(c, VFIO.SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    const deviceFd = await proc.ioctl(g, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(token ? `${bdf} vf_token=${token}` : bdf));
    return { proc, group, deviceFd, dropGroupFds: async () => { await proc.close(g); await proc.close(c); } };
  }
  const s = await openGroupSession(proc, group);
  const deviceFd = await s.deviceFd(token ? `${bdf} vf_token=${token}` : bdf);
  const fds = proc.fdNumbers().filter((f) => f !== deviceFd);
  return { proc, group, deviceFd, dropGroupFds: async () => { for (const f of fds) await proc.close(f); } };
}

/** The text of /proc/PID/fd/N links of a process, as another process reads them. */
export async function fdLinks(reader: ModelProcess, pid: number): Promise<string[]> {
  const out: string[] = [];
  for (const n of await reader.readdir(`/proc/${pid}/fd`)) out.push(await reader.readlink(`/proc/${pid}/fd/${n}`));
  return out;
}
