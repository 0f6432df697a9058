/**
 * drivers/iommu/iommufd (main.c, ioas.c, device.c), the part a VFIO cdev user meets: /dev/iommu
 * opens a context; IOMMU_IOAS_ALLOC makes an I/O address space; VFIO_DEVICE_BIND_IOMMUFD makes a
 * device object; VFIO_DEVICE_ATTACH_IOMMUFD_PT to an IOAS makes (or reuses) an automatic
 * hardware page table object; IOMMU_DESTROY removes an object nobody uses. DMA mappings are not
 * modelled.
 *
 * Object ids come from an xarray with XA_FLAGS_ALLOC1: the lowest free id, starting at 1
 * (inferred from xa_alloc's semantics; the lab must confirm the numbers).
 */
import { ERRNO } from "../../sys/errno.js";
import { IOMMUFD, IOMMUFD_CMD_BASE, IOMMUFD_TYPE, SIZEOF_IOMMUFD } from "../../uapi/iommufd.js";
import type { OpenFile } from "../fs/file.js";
import type { IommuGroup } from "../iommu.js";
import type { Task } from "../kernel.js";
import type { ModelProcess } from "../process.js";

export type IommufdObject =
  | { kind: "ioas"; id: number }
  | { kind: "hwpt"; id: number; ioas: IommufdIoas; auto: boolean; devices: Set<IommufdDevice> }
  | IommufdDevice;

export interface IommufdIoas {
  kind: "ioas";
  id: number;
}

export interface IommufdDevice {
  kind: "device";
  id: number;
  group: IommuGroup;
  /** the hwpt this device is attached to */
  hwpt: Extract<IommufdObject, { kind: "hwpt" }> | null;
}

/** struct iommufd_ctx: one per open of /dev/iommu. */
export class IommufdCtx {
  readonly objects = new Map<number, IommufdObject>();
  /** ictx->vfio_ioas: the IOAS the VFIO compat ioctls and compat group attach use (vfio_compat.c) */
  vfioIoas: IommufdIoas | null = null;

  /** vfio_compat.c iommufd_vfio_compat_ioas_create: made once, by the first group attached to this fd */
  compatIoasCreate(): number {
    if (this.vfioIoas && this.objects.get(this.vfioIoas.id) === this.vfioIoas) return 0;
    this.vfioIoas = this.add((id) => ({ kind: "ioas" as const, id }));
    return 0;
  }

  /** xa_alloc with XA_FLAGS_ALLOC1: the lowest free id ≥ 1 */
  private allocId(): number {
    let id = 1;
    while (this.objects.has(id)) id++;
    return id;
  }

  add<T extends IommufdObject>(make: (id: number) => T): T {
    const o = make(this.allocId());
    this.objects.set(o.id, o);
    return o;
  }

  /** iommufd_device_bind: the device object the vfio device holds while bound */
  bindDevice(group: IommuGroup): IommufdDevice {
    return this.add((id) => ({ kind: "device", id, group, hwpt: null }));
  }

  /** iommufd_device_unbind: detach, then drop the device object */
  unbindDevice(d: IommufdDevice): void {
    this.detach(d);
    this.objects.delete(d.id);
  }

  /**
   * iommufd_device_attach / _replace (vfio_iommufd_physical_attach_ioas): pt_id names an IOAS
   * (an automatic hwpt is found or made for it, and its id is returned) or a hwpt; anything
   * else: ENOENT for no object, EINVAL for an object of another kind.
   */
  attach(d: IommufdDevice, ptId: number): number {
    const o = this.objects.get(ptId);
    if (!o) return -ERRNO.ENOENT;
    let hwpt: Extract<IommufdObject, { kind: "hwpt" }>;
    if (o.kind === "ioas") {
      const found = [...this.objects.values()].find((x): x is Extract<IommufdObject, { kind: "hwpt" }> => x.kind === "hwpt" && x.auto && x.ioas === o);
      hwpt = found ?? this.add((id) => ({ kind: "hwpt", id, ioas: o, auto: true, devices: new Set<IommufdDevice>() }));
    } else if (o.kind === "hwpt") hwpt = o;
    else return -ERRNO.EINVAL;
    if (d.hwpt && d.hwpt !== hwpt) this.detach(d);
    d.hwpt = hwpt;
    hwpt.devices.add(d);
    return hwpt.id;
  }

  /** iommufd_device_detach: an automatic hwpt goes away with its last device */
  detach(d: IommufdDevice): void {
    const h = d.hwpt;
    if (!h) return;
    h.devices.delete(d);
    d.hwpt = null;
    if (h.auto && h.devices.size === 0) this.objects.delete(h.id);
  }

  /** IOMMU_DESTROY: ENOENT for no object, EBUSY while something uses it */
  destroy(id: number): number {
    const o = this.objects.get(id);
    if (!o) return -ERRNO.ENOENT;
    if (o.kind === "device") return -ERRNO.EBUSY; // held by the bound vfio device
    if (o.kind === "hwpt" && o.devices.size) return -ERRNO.EBUSY;
    if (o.kind === "ioas" && [...this.objects.values()].some((x) => x.kind === "hwpt" && x.ioas === o)) return -ERRNO.EBUSY;
    this.objects.delete(id);
    return 0;
  }
}

/** An open /dev/iommu (iommufd_fops). */
export class IommufdFile implements OpenFile {
  readonly procLink = "/dev/iommu";
  refs = 0;
  readonly ctx = new IommufdCtx();
  constructor(public flags: number) {}

  // main.c iommufd_fops_ioctl: size first (get_user), then the command's minimum, then
  // copy_struct_from_user against the kernel's struct size
  async ioctl(_task: Task, _proc: ModelProcess, req: number, arg: Buffer | number | undefined): Promise<number> {
    const nr = req & 0xff;
    if (req >>> 8 === VFIO_TYPE && nr < IOMMUFD_CMD_BASE) return vfioCompatIoctl(this.ctx, req, arg);
    if ((req >>> 8) !== IOMMUFD_TYPE || nr < IOMMUFD_CMD_BASE) return -ERRNO.ENOTTY;
    const op = OPS[req];
    if (!op) return -ERRNO.ENOTTY; // known to the kernel but not modelled (map/unmap, hwpt alloc …), or unknown
    if (!(arg instanceof Buffer) || arg.length < 4) return -ERRNO.EFAULT;
    const usize = arg.readUInt32LE(0);
    if (usize < op.min) return -ERRNO.EINVAL;
    if (usize > op.size) {
      if (arg.length < usize) return -ERRNO.EFAULT;
      if (arg.subarray(op.size, usize).some((x) => x !== 0)) return -ERRNO.E2BIG;
    }
    if (arg.length < Math.min(usize, op.size)) return -ERRNO.EFAULT;
    return op.run(this.ctx, arg, usize);
  }
}

/** ';': the VFIO ioctl type (include/uapi/linux/vfio.h VFIO_TYPE) */
const VFIO_TYPE = 0x3b;

/**
 * vfio_compat.c iommufd_vfio_ioctl: /dev/iommu answers a VFIO container's first ioctls, so an
 * iommufd fd can stand in for /dev/vfio/vfio (the kernel selftests' iommufd_compat_type1 and
 * _type1v2 modes). GET_API_VERSION is VFIO_API_VERSION (0); CHECK_EXTENSION 1 for TYPE1,
 * TYPE1v2 and UNMAP_ALL; SET_IOMMU needs the compat IOAS a group's SET_CONTAINER made (ENODEV
 * before), takes TYPE1 and TYPE1v2 (EINVAL otherwise). DMA map/unmap and GET_INFO are not
 * modelled (ENOTTY), nor NOIOMMU.
 */
function vfioCompatIoctl(ctx: IommufdCtx, req: number, arg: Buffer | number | undefined): number {
  const nr = req & 0xff;
  const v = typeof arg === "number" ? arg : 0;
  switch (nr) {
    case 100: // VFIO_GET_API_VERSION
      return 0;
    case 101: // VFIO_CHECK_EXTENSION
      return v === 1 || v === 3 || v === 9 ? 1 : 0;
    case 102: // VFIO_SET_IOMMU
      if (!ctx.vfioIoas || ctx.objects.get(ctx.vfioIoas.id) !== ctx.vfioIoas) return -ERRNO.ENODEV;
      return v === 1 || v === 3 ? 0 : -ERRNO.EINVAL;
    default:
      return -ERRNO.ENOTTY;
  }
}

interface Op {
  min: number;
  size: number;
  run(ctx: IommufdCtx, arg: Buffer, usize: number): number;
}

const OPS: Record<number, Op> = {
  [IOMMUFD.DESTROY]: { min: 8, size: SIZEOF_IOMMUFD.iommu_destroy, run: (ctx, arg) => ctx.destroy(arg.readUInt32LE(4)) },
  [IOMMUFD.IOAS_ALLOC]: {
    min: 12,
    size: SIZEOF_IOMMUFD.iommu_ioas_alloc,
    run: (ctx, arg) => {
      // ioas.c iommufd_ioas_alloc_ioctl
      if (arg.readUInt32LE(4)) return -ERRNO.EOPNOTSUPP;
      const ioas = ctx.add((id) => ({ kind: "ioas" as const, id }));
      arg.writeUInt32LE(ioas.id, 8);
      return 0;
    },
  },
};
