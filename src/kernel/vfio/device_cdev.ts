/**
 * drivers/vfio/device_cdev.c (6.6+, CONFIG_VFIO_DEVICE_CDEV): /dev/vfio/devices/vfio<N>, one
 * character device per vfio device. Opening it always works while the device is registered;
 * every ioctl but VFIO_DEVICE_BIND_IOMMUFD is EINVAL until a bind succeeds. The bind claims the
 * device for an iommufd context (/dev/iommu), excludes the group path (EBUSY both ways), and —
 * depending on the kernel — checks the VF token:
 *
 * | kernel (src/kernel/versions.ts)                      | struct | token |
 * |---|---|---|
 * | 6.6–6.16, 6.12.y (vfioDeviceCdev only)                | 16 bytes, flags must be 0 | not checked: any VF opens, `users` goes up |
 * | 6.15.10+, 6.16.1+, 6.17, 6.18.0–2 (bindIommufdToken)  | 24, copied as 16 | checked; a token cannot be passed (E2BIG / EFAULT) |
 * | 6.18.3+, 6.19+, 7.x (bindIommufdFullStruct)            | 24 | checked; VFIO_DEVICE_BIND_FLAG_TOKEN + token_uuid_ptr |
 *
 * Order of the checks in vfio_df_ioctl_bind_iommufd (device_cdev.c @1260ed777985 for 6.6–6.16,
 * the 86624ba3b522 patch with the goto-unlock fix-up for 6.17+, 2f03f21fe751 for the copy size):
 * struct → flags/iommufd → group-path fd → vfio_device_block_group (EBUSY) → already bound
 * (EINVAL) → [6.17+ token: may set the PF token, may log] → iommufd_ctx_from_fd (EBADF/EBADFD) →
 * vfio_df_open (single open on the cdev path: EINVAL; iommufd claims DMA ownership: EPERM;
 * open_device: VF `users`++) → out_devid.
 */
import { ERRNO } from "../../sys/errno.js";
import { readUserPointer } from "../../sys/userptr.js";
import { VFIO, VFIO_DEVICE_BIND_FLAG_TOKEN } from "../../uapi/vfio.js";
import type { OpenFile } from "../fs/file.js";
import { getFile, putFile } from "../fs/file.js";
import { IommufdFile, type IommufdDevice } from "../iommufd/main.js";
import type { Kernel, Task } from "../kernel.js";
import type { ModelProcess } from "../process.js";
import { deviceFeature, type VfioDevice } from "./vfio_main.js";

/** The bind struct as the kernel copied it in, or −errno from the copy and argument checks. */
export interface BindArgs {
  flags: number;
  iommufd: number;
  /** the user buffer whose u64 at 16 is token_uuid_ptr, or null where the kernel's copy of that field is 0 */
  tokenPtrFrom: Buffer | null;
}

/**
 * The first part of vfio_df_ioctl_bind_iommufd, the same for cdev and group-path device fds:
 * copying the struct in and checking argsz, flags and the iommufd number.
 */
export function decodeBindIommufd(k: Kernel, arg: Buffer | number | undefined): BindArgs | number {
  const b = k.profile.behaviour;
  // an integer argument is a user address the model has no memory behind
  if (!(arg instanceof Buffer)) return -ERRNO.EFAULT;
  if (!b.bindIommufdToken) {
    // 6.6–6.16: copy_from_user(minsz = 16), then argsz < minsz || flags || iommufd < 0
    if (arg.length < 16) return -ERRNO.EFAULT;
    const argsz = arg.readUInt32LE(0);
    const flags = arg.readUInt32LE(4);
    const iommufd = arg.readInt32LE(8);
    if (argsz < 16 || flags !== 0 || iommufd < 0) return -ERRNO.EINVAL;
    return { flags, iommufd, tokenPtrFrom: null };
  }
  // 6.17+: get_user(argsz); argsz < 16; copy_struct_from_user(&bind, ksize, arg, argsz)
  if (arg.length < 4) return -ERRNO.EFAULT;
  const usize = arg.readUInt32LE(0);
  if (usize < 16) return -ERRNO.EINVAL;
  // before 2f03f21fe751 the kernel size given was minsz (16): the token_uuid_ptr bytes count as
  // "trailing" and must be zero, and the kernel's token_uuid_ptr is never filled in
  const ksize = b.bindIommufdFullStruct ? 24 : 16;
  if (usize > ksize) {
    if (arg.length < usize) return -ERRNO.EFAULT;
    if (arg.subarray(ksize, usize).some((x) => x !== 0)) return -ERRNO.E2BIG;
  }
  if (arg.length < Math.min(usize, ksize)) return -ERRNO.EFAULT;
  const flags = arg.readUInt32LE(4);
  const iommufd = arg.readInt32LE(8);
  if (iommufd < 0 || flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN) return -ERRNO.EINVAL;
  // ksize 24 with argsz < 24: zero-filled; ksize 16: the stack field is left as it was —
  // modelled as 0 (CONFIG_INIT_STACK_ALL_ZERO, the distribution default; inferred, lab to confirm)
  return { flags, iommufd, tokenPtrFrom: ksize === 24 && usize >= 24 ? arg : null };
}

/** An open /dev/vfio/devices/vfio<N> (vfio_device_fops, opened through vfio_device_fops_cdev_open). */
export class CdevFile implements OpenFile {
  readonly procLink: string;
  refs = 0;
  /** set by a successful BIND_IOMMUFD (df->access_granted) */
  accessGranted = false;
  private iommufdFile: IommufdFile | null = null;
  private idev: IommufdDevice | null = null;

  constructor(
    private readonly k: Kernel,
    readonly device: VfioDevice,
    public flags: number,
  ) {
    this.procLink = `/dev/vfio/devices/vfio${device.index}`;
    device.cdevFiles++;
  }

  async ioctl(task: Task, proc: ModelProcess, req: number, arg: Buffer | number | undefined): Promise<number> {
    if (req === VFIO.DEVICE_BIND_IOMMUFD) return this.bind(task, proc, arg);
    if (!this.accessGranted) return -ERRNO.EINVAL;
    if (req === VFIO.DEVICE_ATTACH_IOMMUFD_PT) return this.attach(arg);
    if (req === VFIO.DEVICE_DETACH_IOMMUFD_PT) return this.detach(arg);
    if (req === VFIO.DEVICE_FEATURE) return deviceFeature(task, this.device, arg);
    return this.device.ops.ioctl(task, proc, req, arg);
  }

  /** vfio_df_ioctl_bind_iommufd */
  private bind(task: Task, proc: ModelProcess, arg: Buffer | number | undefined): number {
    const a = decodeBindIommufd(this.k, arg);
    if (typeof a === "number") return a;
    const buf = arg as Buffer;
    const dev = this.device;
    const g = dev.group;
    // vfio_device_block_group: the group's node is open (by anyone) → EBUSY
    if (g.file) return -ERRNO.EBUSY;
    g.cdevDeviceOpenCnt++;
    const fail = (r: number) => {
      g.cdevDeviceOpenCnt--;
      return r;
    };
    // one device file cannot be bound twice
    if (this.accessGranted) return fail(-ERRNO.EINVAL);
    if (this.k.profile.behaviour.bindIommufdToken) {
      // vfio_df_check_token: runs before the iommufd is looked up, so a PF's token may be set by
      // a bind that then fails
      const op = dev.ops.matchTokenUuid?.bind(dev.ops);
      if (!op) {
        if (a.flags & VFIO_DEVICE_BIND_FLAG_TOKEN) return fail(-ERRNO.EINVAL);
      } else {
        let uuid: Buffer | null = null;
        if (a.flags & VFIO_DEVICE_BIND_FLAG_TOKEN) {
          uuid = a.tokenPtrFrom ? readUserPointer(a.tokenPtrFrom, 16, 16) : null;
          if (!uuid) return fail(-ERRNO.EFAULT);
        }
        const r = op(task, uuid);
        if (r < 0) return fail(r);
      }
    }
    // iommufd_ctx_from_fd
    const f = proc.fileOf(a.iommufd);
    if (!f) return fail(-ERRNO.EBADF);
    if (!(f instanceof IommufdFile)) return fail(-ERRNO.EBADFD);
    // vfio_df_open: "Only the group path allows the device to be opened multiple times"
    if (dev.openCount !== 0) return fail(-ERRNO.EINVAL);
    // iommufd_device_bind → iommu_device_claim_dma_owner: the group's owner_cnt is taken by
    // another iommufd (owner ≠ this context) or by a kernel driver on a member (its
    // iommu_device_use_default_domain counts with a NULL owner) → EPERM. The lab (7.3.4-lab,
    // 6.12.117-lab) showed EPERM for a second iommufd; the kernel-driver case is read from iommu.c.
    const owner = this.k.vfio.dmaOwners.get(g.iommuGroup);
    if (!this.k.iommu.viable(g.iommuGroup) || (owner && owner !== f.ctx)) return fail(-ERRNO.EPERM);
    dev.openCount = 1;
    const r = dev.ops.openDevice(task); // vfio-pci: a PF-linked VF counts as a token user
    if (r < 0) {
      dev.openCount = 0;
      return fail(r);
    }
    this.idev = f.ctx.bindDevice(g.iommuGroup);
    this.k.vfio.dmaOwners.set(g.iommuGroup, f.ctx);
    this.iommufdFile = f;
    getFile(f); // the bound device holds the iommufd context
    buf.writeUInt32LE(this.idev.id, 12);
    this.accessGranted = true;
    return 0;
  }

  /** vfio_df_ioctl_attach_pt (PASID attach not modelled: any flag is EINVAL) */
  private attach(arg: Buffer | number | undefined): number {
    if (!(arg instanceof Buffer) || arg.length < 12) return -ERRNO.EFAULT;
    if (arg.readUInt32LE(0) < 12) return -ERRNO.EINVAL;
    if (arg.readUInt32LE(4)) return -ERRNO.EINVAL;
    const r = this.iommufdFile!.ctx.attach(this.idev!, arg.readUInt32LE(8));
    if (r < 0) return r;
    arg.writeUInt32LE(r, 8);
    return 0;
  }

  /** vfio_df_ioctl_detach_pt: detaching a device that is not attached is not an error */
  private detach(arg: Buffer | number | undefined): number {
    if (!(arg instanceof Buffer) || arg.length < 8) return -ERRNO.EFAULT;
    if (arg.readUInt32LE(0) < 8) return -ERRNO.EINVAL;
    if (arg.readUInt32LE(4)) return -ERRNO.EINVAL;
    this.iommufdFile!.ctx.detach(this.idev!);
    return 0;
  }

  /** vfio_device_fops_release → vfio_df_unbind_iommufd, then the registration reference */
  release(task: Task): void {
    const dev = this.device;
    if (this.accessGranted) {
      this.accessGranted = false;
      dev.openCount = 0;
      dev.ops.closeDevice(task);
      const f = this.iommufdFile!;
      f.ctx.unbindDevice(this.idev!);
      if (![...f.ctx.objects.values()].some((o) => o.kind === "device" && o.group === dev.group.iommuGroup)) this.k.vfio.dmaOwners.delete(dev.group.iommuGroup);
      this.iommufdFile = null;
      this.idev = null;
      putFile(task, f);
      dev.group.cdevDeviceOpenCnt--;
    }
    dev.cdevFiles--;
    dev.released.wakeAll();
  }
}
