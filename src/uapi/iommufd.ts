/**
 * include/uapi/linux/iommufd.h, the part a VFIO cdev user needs before a device is usable:
 * IOMMU_IOAS_ALLOC (an I/O address space to attach the device to) and IOMMU_DESTROY.
 *
 * Every iommufd ioctl is `_IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + n)` with IOMMUFD_TYPE = ';' and
 * IOMMUFD_CMD_BASE = 0x80, so 0x3B80 + n — just above VFIO's 0x3B64 + n. Each struct starts
 * with a u32 `size` (the user's struct size), checked like copy_struct_from_user: smaller than
 * the command's minimum is EINVAL, larger with non-zero trailing bytes is E2BIG.
 *
 * @example
 * ```ts
 * import { IOMMUFD, ioasAllocBuf, O_RDWR } from "vfioctl";
 * // const fd = await sys.open("/dev/iommu", O_RDWR);
 * const b = ioasAllocBuf();
 * // await sys.ioctl(fd, IOMMUFD.IOAS_ALLOC, b); b.readUInt32LE(8) is the IOAS id
 * ```
 */
export const IOMMUFD_TYPE = 0x3b;
export const IOMMUFD_CMD_BASE = 0x80;
const io = (n: number) => (IOMMUFD_TYPE << 8) | (IOMMUFD_CMD_BASE + n);

export const IOMMUFD = {
  DESTROY: io(0),
  IOAS_ALLOC: io(1),
  IOAS_ALLOW_IOVAS: io(2),
  IOAS_COPY: io(3),
  IOAS_IOVA_RANGES: io(4),
  IOAS_MAP: io(5),
  IOAS_UNMAP: io(6),
  OPTION: io(7),
  VFIO_IOAS: io(8),
  HWPT_ALLOC: io(9),
  GET_HW_INFO: io(10),
} as const;

export const IOMMUFD_IOCTL_NAMES: Record<number, string> = Object.fromEntries(Object.entries(IOMMUFD).map(([k, v]) => [v, `IOMMU_${k}`]));

export const SIZEOF_IOMMUFD = {
  iommu_destroy: 8,
  iommu_ioas_alloc: 12,
} as const;

export const OFFSETS_IOMMUFD = {
  iommu_destroy: { size: 0, id: 4 },
  iommu_ioas_alloc: { size: 0, flags: 4, out_ioas_id: 8 },
} as const;

/** struct iommu_ioas_alloc; the new IOAS id comes back at offset 8. */
export function ioasAllocBuf(opts: { size?: number; flags?: number } = {}): Buffer {
  const size = opts.size ?? SIZEOF_IOMMUFD.iommu_ioas_alloc;
  const b = Buffer.alloc(Math.max(size, SIZEOF_IOMMUFD.iommu_ioas_alloc));
  b.writeUInt32LE(size >>> 0, 0);
  b.writeUInt32LE((opts.flags ?? 0) >>> 0, 4);
  return b;
}

/** struct iommu_destroy for object `id`. */
export function destroyBuf(id: number, opts: { size?: number } = {}): Buffer {
  const size = opts.size ?? SIZEOF_IOMMUFD.iommu_destroy;
  const b = Buffer.alloc(Math.max(size, SIZEOF_IOMMUFD.iommu_destroy));
  b.writeUInt32LE(size >>> 0, 0);
  b.writeUInt32LE(id >>> 0, 4);
  return b;
}
