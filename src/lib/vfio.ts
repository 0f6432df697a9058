/**
 * Reaching a device fd through the group path (kernel-spec §8): container, group, SET_CONTAINER,
 * SET_IOMMU, then VFIO_GROUP_GET_DEVICE_FD with a match string. Every open is closed again by
 * the caller (`VfioSession.close`), so nothing stays open after a command.
 *
 * @example
 * ```ts
 * import { bootKernel, openGroupSession } from "vfioctl";
 * const k = await bootKernel();
 * const sys = k.spawn("sh");
 * const s = await openGroupSession(sys, 0);         // /dev/vfio/0
 * try { await s.deviceFd("0000:01:00.0"); } finally { await s.close(); }
 * ```
 */
import { isErrno, SysError } from "../sys/errno.js";
import { O_RDWR, type Syscalls } from "../sys/syscalls.js";
import { deviceNameBuf, featureSetVfToken, groupStatusBuf, intBuf, VFIO, VFIO_GROUP_FLAGS_VIABLE, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from "../uapi/vfio.js";

export interface VfioSession {
  group: number;
  /** VFIO_GROUP_GET_DEVICE_FD; the fd is remembered and closed by close() */
  deviceFd(match: string): Promise<number>;
  /** VFIO_DEVICE_FEATURE SET PCI_VF_TOKEN on a device fd */
  setVfToken(fd: number, token: string): Promise<void>;
  close(): Promise<void>;
}

/** Open group `g` with a fresh container and a type1 IOMMU. Throws SysError (EBUSY when another process holds the group). */
export async function openGroupSession(sys: Syscalls, g: number): Promise<VfioSession> {
  const opened: number[] = [];
  const close = async () => {
    for (const fd of opened.splice(0).reverse()) await sys.close(fd).catch(() => {});
  };
  try {
    const c = await sys.open("/dev/vfio/vfio", O_RDWR);
    opened.push(c);
    const gfd = await sys.open(`/dev/vfio/${g}`, O_RDWR);
    opened.push(gfd);
    const st = groupStatusBuf();
    await sys.ioctl(gfd, VFIO.GROUP_GET_STATUS, st);
    if (!(st.readUInt32LE(4) & VFIO_GROUP_FLAGS_VIABLE)) throw new SysError("EPERM", "ioctl", `/dev/vfio/${g}`, "group not viable: a device of the group is bound to a host driver");
    await sys.ioctl(gfd, VFIO.GROUP_SET_CONTAINER, intBuf(c));
    try {
      await sys.ioctl(c, VFIO.SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    } catch (e) {
      if (!isErrno(e)) throw e;
      await sys.ioctl(c, VFIO.SET_IOMMU, VFIO_TYPE1_IOMMU);
    }
    return {
      group: g,
      async deviceFd(match) {
        const fd = await sys.ioctl(gfd, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(match));
        opened.push(fd);
        return fd;
      },
      async setVfToken(fd, token) {
        await sys.ioctl(fd, VFIO.DEVICE_FEATURE, featureSetVfToken(token));
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
