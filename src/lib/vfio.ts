/**
 * Reaching a device fd through the group path (kernel-spec §8): container, group, SET_CONTAINER,
 * SET_IOMMU, then VFIO_GROUP_GET_DEVICE_FD with a match string; or through the cdev path (6.6+):
 * /dev/iommu, an IOAS, /dev/vfio/devices/vfio<N>, BIND_IOMMUFD (with the token on 6.17+),
 * ATTACH_IOMMUFD_PT. Every open is closed again by the caller (`close`), so nothing stays open
 * after a command.
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
import { attachIommufdPtBuf, bindIommufdBuf, deviceNameBuf, featureSetVfToken, groupStatusBuf, intBuf, VFIO, VFIO_GROUP_FLAGS_VIABLE, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from "../uapi/vfio.js";
import { IOMMUFD, ioasAllocBuf } from "../uapi/iommufd.js";

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

export interface CdevSession {
  bdf: string;
  /** "/dev/vfio/devices/vfio<N>" */
  node: string;
  /** the bound device fd (device ioctls work on it) */
  fd: number;
  /** the /dev/iommu fd the device is bound to */
  iommufd: number;
  /** out_devid: the iommufd device object */
  devid: number;
  ioasId: number;
  /** the page table the device is attached to (the IOAS's automatic hwpt), or null without attach */
  ptId: number | null;
  /** close every fd this session opened (unbinds the device) */
  close(): Promise<void>;
}

/**
 * Open a device through the vfio cdev (6.6+, CONFIG_VFIO_DEVICE_CDEV) the way the kernel
 * selftests' `__vfio_device_bind_iommufd` does: open /dev/iommu, IOMMU_IOAS_ALLOC, open the
 * device's node (found through sysfs vfio-dev/vfio<N>), VFIO_DEVICE_BIND_IOMMUFD with argsz 24
 * and — given a token — VFIO_DEVICE_BIND_FLAG_TOKEN and token_uuid_ptr, then
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT to the IOAS. Throws SysError: ENOENT (no cdev), EBUSY (the group
 * node is open), EACCES (token required / incorrect, 6.17+), E2BIG (a token on the affected
 * 6.15.y/6.16.y/6.17/6.18.0–2 kernels), EINVAL (a token on 6.6–6.16: flags must be 0).
 *
 * @example
 * ```ts
 * import { bootKernel, openCdevSession } from "vfioctl";
 * const k = await bootKernel(undefined, { profile: "7.3.4" });
 * const sys = k.spawn("sh");
 * const s = await openCdevSession(sys, "0000:05:00.0");
 * try { s.devid; } finally { await s.close(); }
 * ```
 */
export async function openCdevSession(sys: Syscalls, bdf: string, opts: { token?: string; attach?: boolean } = {}): Promise<CdevSession> {
  const opened: number[] = [];
  const close = async () => {
    for (const fd of opened.splice(0).reverse()) await sys.close(fd).catch(() => {});
  };
  try {
    let names: string[];
    try {
      names = (await sys.readdir(`/sys/bus/pci/devices/${bdf}/vfio-dev`)).filter((n) => /^vfio\d+$/.test(n));
    } catch {
      names = [];
    }
    if (!names.length) throw new SysError("ENOENT", "open", `/sys/bus/pci/devices/${bdf}/vfio-dev`, `${bdf} is not a vfio device (bind it to vfio-pci)`);
    const node = `/dev/vfio/devices/${names[0]}`;
    const iommufd = await sys.open("/dev/iommu", O_RDWR);
    opened.push(iommufd);
    const ioas = ioasAllocBuf();
    await sys.ioctl(iommufd, IOMMUFD.IOAS_ALLOC, ioas);
    const ioasId = ioas.readUInt32LE(8);
    const fd = await sys.open(node, O_RDWR);
    opened.push(fd);
    const b = bindIommufdBuf(iommufd, opts.token !== undefined ? { token: opts.token } : {});
    await sys.ioctl(fd, VFIO.DEVICE_BIND_IOMMUFD, b);
    const devid = b.readUInt32LE(12);
    let ptId: number | null = null;
    if (opts.attach ?? true) {
      const a = attachIommufdPtBuf(ioasId);
      await sys.ioctl(fd, VFIO.DEVICE_ATTACH_IOMMUFD_PT, a);
      ptId = a.readUInt32LE(8);
    }
    return { bdf, node, fd, iommufd, devid, ioasId, ptId, close };
  } catch (e) {
    await close();
    throw e;
  }
}
