/**
 * drivers/vfio (vfio_main.c, group.c, container.c): groups, containers, device registration,
 * device files, the generic VFIO_DEVICE_FEATURE decoder, and the blocking unregister loop that
 * waits for userspace to release a device. Version differences come from the kernel's profile
 * (src/kernel/versions.ts); the cdev path (6.6+) is in device_cdev.ts.
 */
import { Ida } from "../ida.js";
import { ERRNO } from "../../sys/errno.js";
import { O_RDWR } from "../../sys/syscalls.js";
import {
  VFIO,
  VFIO_API_VERSION,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
} from "../../uapi/vfio.js";
import type { OpenFile } from "../fs/file.js";
import { getFile, putFile } from "../fs/file.js";
import type { IommuGroup } from "../iommu.js";
import type { Kernel, Task } from "../kernel.js";
import type { PciDev } from "../pci/pci.js";
import type { ModelProcess } from "../process.js";
import { WaitQueue } from "../sync.js";
import { CdevFile, decodeBindIommufd } from "./device_cdev.js";
import { IommufdFile, type IommufdCtx } from "../iommufd/main.js";

/** struct vfio_device_ops, the driver half of a vfio device. */
export interface VfioDeviceOps {
  readonly name: string;
  /** 1 = this device, 0 = not this one, <0 = stop the walk with that errno */
  match(task: Task, buf: string): number;
  openDevice(task: Task): number;
  closeDevice(task: Task): void;
  ioctl(task: Task, proc: ModelProcess, req: number, arg: Buffer | number | undefined): number;
  /** the driver's device_feature op: called for indices the core does not handle */
  deviceFeature(task: Task, flags: number, argsz: number, arg: Buffer): number;
  request(task: Task, count: number): void;
  /**
   * 6.17+ match_token_uuid (vfio_pci_core_match_token_uuid): 0 when `uuid` (null: none given)
   * may open the device, else −errno. Drivers without it refuse a token at BIND_IOMMUFD.
   */
  matchTokenUuid?(task: Task, uuid: Buffer | null): number;
}

export class VfioDevice {
  openCount = 0;
  registered = true;
  /** the vfio-dev/vfio<index> class device is in sysfs (and /dev/vfio/devices/vfio<index> with the cdev) */
  deviceAdded = true;
  /** open cdev files: each holds a registration reference, so removal waits for it even unbound */
  cdevFiles = 0;
  readonly released = new WaitQueue();
  constructor(
    readonly pdev: PciDev,
    readonly group: VfioGroup,
    readonly ops: VfioDeviceOps,
    /** vfio.device_ida: the N of vfio<N> */
    readonly index: number,
  ) {}
}

export class VfioGroup {
  readonly devices: VfioDevice[] = [];
  /** the one open struct file of /dev/vfio/<id> (single open) */
  file: GroupFile | null = null;
  container: Container | null = null;
  /** group->iommufd: an iommufd fd given to SET_CONTAINER in place of a container (IOMMUFD kernels) */
  iommufdFile: IommufdFile | null = null;
  /** devices of this group with open_count > 0 (container_users − 1 in 6.1) */
  openDevices = 0;
  /** 6.6+ cdev_device_open_cnt: devices of this group bound through the cdev (blocks the group node) */
  cdevDeviceOpenCnt = 0;
  revoked = false;
  /** the minor vfio_group_alloc took for /dev/vfio/<id> (vfio.group_ida), −1 once freed */
  minor = -1;
  constructor(
    readonly id: number,
    readonly iommuGroup: IommuGroup,
  ) {}
}

export class Container {
  /** attached groups (container->group_list; a Set so detaching one of thousands is O(1), like list_del) */
  readonly groups = new Set<VfioGroup>();
  iommuType: number | null = null;
}

// ------------------------------------------------------------------ files

export class ContainerFile implements OpenFile {
  readonly procLink = "/dev/vfio/vfio";
  refs = 0;
  readonly container = new Container();
  constructor(
    private readonly k: Kernel,
    public flags: number,
  ) {}

  // container.c vfio_fops_unl_ioctl
  async ioctl(_task: Task, _proc: ModelProcess, req: number, arg: Buffer | number | undefined): Promise<number> {
    const c = this.container;
    switch (req) {
      case VFIO.GET_API_VERSION:
        return VFIO_API_VERSION;
      case VFIO.CHECK_EXTENSION:
        return checkExtension(argInt(arg), c.iommuType !== null);
      case VFIO.SET_IOMMU: {
        const type = argInt(arg);
        if (c.groups.size === 0 || c.iommuType !== null) return -ERRNO.EINVAL;
        // vfio_ioctl_set_iommu: a backend whose check_extension(type) <= 0 is skipped (ret stays
        // -ENODEV); type1 reports UNMAP_ALL but its open() refuses anything but TYPE1/TYPE1v2
        // (and NESTING while it existed) with -EINVAL, which becomes the result.
        if (checkExtension(type, false) <= 0) return -ERRNO.ENODEV;
        if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU && type !== VFIO_TYPE1_NESTING_IOMMU) return -ERRNO.EINVAL;
        c.iommuType = type;
        return 0;
      }
      default:
        // no IOMMU driver: ret stays -EINVAL; with type1 set, type1 answers ENOTTY
        return c.iommuType === null ? -ERRNO.EINVAL : -ERRNO.ENOTTY;
    }
  }

  release(task: Task): void {
    for (const g of [...this.container.groups]) this.k.vfio.detachContainer(g, task);
  }
}

/**
 * container.c vfio_container_ioctl_check_extension with vfio_iommu_type1 loaded, no noiommu.
 * type1: TYPE1, TYPE1v2, UNMAP_ALL → 1; DMA_CC and UPDATE_VADDR → 1 only once the container has
 * an IOMMU instance (no emulated/mdev devices are modelled, so UPDATE_VADDR is then 1).
 */
function checkExtension(ext: number, hasIommu: boolean): number {
  if (ext === VFIO_TYPE1_IOMMU || ext === VFIO_TYPE1v2_IOMMU || ext === VFIO_UNMAP_ALL) return 1;
  if (ext === 4 /* DMA_CC */ || ext === 10 /* UPDATE_VADDR */) return hasIommu ? 1 : 0;
  return 0;
}

function argInt(arg: Buffer | number | undefined): number {
  if (typeof arg === "number") return arg | 0;
  return 0;
}

export class GroupFile implements OpenFile {
  readonly procLink: string;
  refs = 0;
  constructor(
    private readonly k: Kernel,
    readonly group: VfioGroup,
    public flags: number,
  ) {
    this.procLink = `/dev/vfio/${group.id}`;
  }

  async ioctl(task: Task, proc: ModelProcess, req: number, arg: Buffer | number | undefined): Promise<number> {
    const g = this.group;
    const vfio = this.k.vfio;
    switch (req) {
      case VFIO.GROUP_GET_STATUS: {
        if (!(arg instanceof Buffer) || arg.length < 8) return -ERRNO.EFAULT;
        if (arg.readUInt32LE(0) < 8) return -ERRNO.EINVAL;
        if (g.revoked) return -ERRNO.ENODEV;
        let flags = 0;
        if (g.container || g.iommufdFile) flags = VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
        else if (this.k.iommu.viable(g.iommuGroup)) flags = VFIO_GROUP_FLAGS_VIABLE;
        arg.writeUInt32LE(flags, 4);
        return 0;
      }
      case VFIO.GROUP_SET_CONTAINER: {
        if (!(arg instanceof Buffer) || arg.length < 4) return -ERRNO.EFAULT;
        const f = proc.fileOf(arg.readInt32LE(0));
        if (!f) return -ERRNO.EBADF;
        if (g.container || g.iommufdFile) return -ERRNO.EINVAL;
        if (g.revoked) return -ERRNO.ENODEV;
        if (f instanceof IommufdFile) {
          // group.c: iommufd_ctx_from_file, then iommufd_vfio_compat_ioas_create; DMA ownership
          // is claimed later, when a device binds (vfio_df_iommufd_bind)
          const r = f.ctx.compatIoasCreate();
          if (r < 0) return r;
          g.iommufdFile = f;
          getFile(f);
          return 0;
        }
        if (!(f instanceof ContainerFile)) return -ERRNO.EBADFD;
        // iommu_group_claim_dma_owner: a kernel driver owns DMA in this group
        if (!this.k.iommu.viable(g.iommuGroup)) return -ERRNO.EPERM;
        g.container = f.container;
        f.container.groups.add(g);
        getFile(f);
        this.containerFile = f;
        return 0;
      }
      case VFIO.GROUP_UNSET_CONTAINER:
        if (g.iommufdFile) {
          if (g.openDevices > 0) return -ERRNO.EBUSY;
          const f = g.iommufdFile;
          g.iommufdFile = null;
          putFile(task, f);
          return 0;
        }
        if (!g.container) return -ERRNO.EINVAL;
        if (g.openDevices > 0) return -ERRNO.EBUSY;
        vfio.detachContainer(g, task);
        return 0;
      case VFIO.GROUP_GET_DEVICE_FD:
        return vfio.getDeviceFd(task, proc, this, arg);
      default:
        return -ERRNO.ENOTTY;
    }
  }

  /** the container file this group pins while attached */
  containerFile: ContainerFile | null = null;

  release(task: Task): void {
    const g = this.group;
    if (g.container) this.k.vfio.detachContainer(g, task);
    if (g.iommufdFile) {
      const f = g.iommufdFile;
      g.iommufdFile = null;
      putFile(task, f);
    }
    if (g.file === this) g.file = null;
    this.k.vfio.releaseGroup(g);
  }
}

export class DeviceFile implements OpenFile {
  readonly procLink = "anon_inode:[vfio-device]";
  refs = 0;
  constructor(
    private readonly k: Kernel,
    readonly device: VfioDevice,
    readonly groupFile: GroupFile,
    public flags: number,
  ) {}

  async ioctl(task: Task, proc: ModelProcess, req: number, arg: Buffer | number | undefined): Promise<number> {
    // vfio_device_fops_unl_ioctl: BIND_IOMMUFD is decoded for every device fd once the cdev is
    // built in; on a group-path fd it then fails EINVAL. Without the cdev (or before 6.6) the
    // number reaches vfio-pci, which does not know it: ENOTTY.
    if (req === VFIO.DEVICE_BIND_IOMMUFD && this.k.profile.config.VFIO_DEVICE_CDEV) return bindArgsThenGroupFd(this.k, arg);
    if (req === VFIO.DEVICE_FEATURE) return deviceFeature(task, this.device, arg);
    return this.device.ops.ioctl(task, proc, req, arg);
  }

  release(task: Task): void {
    this.k.vfio.closeDevice(task, this.device);
    putFile(task, this.groupFile);
  }
}

/** device_cdev.c vfio_df_ioctl_bind_iommufd on a group-path device fd: the struct checks, then "only for cdev fds". */
function bindArgsThenGroupFd(k: Kernel, arg: Buffer | number | undefined): number {
  const r = decodeBindIommufd(k, arg);
  return typeof r === "number" ? r : -ERRNO.EINVAL;
}

/** vfio_main.c vfio_ioctl_device_feature (5.18+ generic decode). */
export function deviceFeature(task: Task, dev: VfioDevice, arg: Buffer | number | undefined): number {
  if (!(arg instanceof Buffer) || arg.length < 8) return -ERRNO.EFAULT;
  const argsz = arg.readUInt32LE(0);
  const flags = arg.readUInt32LE(4);
  if (argsz < 8) return -ERRNO.EINVAL;
  if (flags & ~(VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE) >>> 0) return -ERRNO.EINVAL;
  if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && flags & VFIO_DEVICE_FEATURE_SET && flags & VFIO_DEVICE_FEATURE_GET) return -ERRNO.EINVAL;
  switch (flags & VFIO_DEVICE_FEATURE_MASK) {
    case 1: // MIGRATION
    case 2: // MIG_DEVICE_STATE
    case 6: // DMA_LOGGING_START
    case 7: // DMA_LOGGING_STOP
    case 8: // DMA_LOGGING_REPORT
      return -ERRNO.ENOTTY; // plain vfio-pci has no mig_ops / log_ops
    default:
      return dev.ops.deviceFeature(task, flags, argsz - 8, arg);
  }
}

/** include/linux/vfio.h vfio_check_feature. `argsz` is the payload size (argsz − 8). */
export function vfioCheckFeature(flags: number, argsz: number, supportedOps: number, minsz: number): number {
  if ((flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) & ~supportedOps) return -ERRNO.EINVAL;
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET))) return -ERRNO.EINVAL;
  if (argsz < minsz) return -ERRNO.EINVAL;
  return 1;
}

// ------------------------------------------------------------------ core

export class VfioCore {
  readonly groups = new Map<number, VfioGroup>();
  /** every registered vfio device, by its index (vfio<N>) */
  readonly devices = new Map<number, VfioDevice>();
  /** iommu groups whose DMA a cdev-bound device claimed for an iommufd context */
  readonly dmaOwners = new Map<IommuGroup, IommufdCtx>();
  constructor(private readonly k: Kernel) {}

  /** vfio.group_ida: the minors of /dev/vfio/<N> nodes whose group is not yet released */
  private readonly groupMinors = new Ida();
  /** vfio.device_ida: the N of vfio<N> */
  private readonly deviceIda = new Ida();
  /** each PCI device's vfio devices (vfio-dev/ of its sysfs directory), registered or not yet released */
  private readonly byPdev = new Map<PciDev, VfioDevice[]>();

  /**
   * vfio_group_release (the group device's last reference): ida_free of its minor. A revoked
   * group is released once its node's file is closed too (an open group fd holds the cdev, and
   * so the group device); until then a new group of the same IOMMU group gets another minor.
   */
  releaseGroup(g: VfioGroup): void {
    if (!g.revoked || g.file || g.minor < 0) return;
    this.groupMinors.free(g.minor);
    g.minor = -1;
  }

  /** vfio_register_group_dev: needs an IOMMU group (else EINVAL); creates /dev/vfio/<N> (and vfio-dev/vfio<index>). */
  register(pdev: PciDev, ops: VfioDeviceOps): VfioDevice | number {
    const ig = pdev.iommuGroup;
    if (!ig) return -ERRNO.EINVAL;
    let g = this.groups.get(ig.id);
    if (!g || g.revoked) {
      g = new VfioGroup(ig.id, ig);
      // vfio_group_alloc: ida_alloc_max(&vfio.group_ida, MINORMASK), the lowest free minor
      g.minor = this.groupMinors.alloc();
      this.groups.set(ig.id, g);
    }
    // vfio_device_set_name: ida_alloc_max(&vfio.device_ida), the lowest free index
    const d = new VfioDevice(pdev, g, ops, this.deviceIda.alloc());
    g.devices.push(d);
    this.devices.set(d.index, d);
    const mine = this.byPdev.get(pdev);
    if (mine) mine.push(d);
    else this.byPdev.set(pdev, [d]);
    return d;
  }

  /** The vfio devices of a PCI device whose class device is in sysfs. */
  devicesOf(pdev: PciDev): VfioDevice[] {
    return (this.byPdev.get(pdev) ?? []).filter((d) => d.deviceAdded);
  }

  /**
   * vfio_unregister_group_dev: hide the device from lookups, then ask the driver to have
   * userspace release it (request(0), request(1) every 10 s …) until the last fd closes.
   * The first wait is interruptible: a signal logs "Device is currently in use …" once.
   */
  async unregister(task: Task, d: VfioDevice): Promise<void> {
    d.registered = false;
    // 6.6+ (38c24544e10a): device_del before the wait, so vfio-dev/vfio<N> and its cdev node go now
    if (this.k.profile.behaviour.deviceDelBeforeWait) d.deviceAdded = false;
    let i = 0;
    let interrupted = false;
    // Each wait starts when the previous one timed out, so the waits end at start + 10 s·k.
    // Arming them from that schedule (not from "now") keeps the count right when the model
    // clock jumps over several of them at once: k.advance(100_000) gives request #1 … #10.
    let deadline = this.k.clock.nowMs();
    while (d.openCount > 0 || d.cdevFiles > 0) {
      d.ops.request(task, i++);
      const woken = d.released.wait();
      deadline += 10_000;
      const timeout = this.k.clock.sleepUntil(deadline);
      // Only the waits before the first signal are interruptible
      // (wait_for_completion_interruptible_timeout); afterwards the task waits uninterruptibly
      // (wait_for_completion_timeout). Racing the already-delivered signal again would spin.
      const waits: Promise<string>[] = [woken.then(() => "released"), timeout.then(() => "timeout")];
      if (!interrupted) waits.push(task.signalled().then(() => "signal"));
      const r = await this.k.block(task, `vfio: ${d.pdev.name} held open by userspace`, Promise.race(waits));
      if (r === "signal") {
        interrupted = true;
        deadline = this.k.clock.nowMs(); // the next wait starts now, right after request(i)
        this.k.log.dev(4, d.pdev, `Device is currently in use, task "${task.comm}" (${task.pid}) blocked until device is released`);
      }
    }
    d.deviceAdded = false;
    this.devices.delete(d.index);
    this.deviceIda.free(d.index);
    const mine = this.byPdev.get(d.pdev);
    if (mine) {
      const at = mine.indexOf(d);
      if (at >= 0) mine.splice(at, 1);
      if (!mine.length) this.byPdev.delete(d.pdev);
    }
    const g = d.group;
    const idx = g.devices.indexOf(d);
    if (idx >= 0) g.devices.splice(idx, 1);
    if (g.devices.length === 0) {
      // 6.1+: the group is revoked at once; a stale group fd answers ENODEV
      g.revoked = true;
      if (g.container) this.detachContainer(g, task);
      if (this.groups.get(g.id) === g) this.groups.delete(g.id);
      this.releaseGroup(g);
    }
  }

  /**
   * Devices name lookups see: registered ones, plus (6.1, as the lab showed) ones whose
   * unregister is still waiting for userspace.
   */
  liveDevices(g: VfioGroup): VfioDevice[] {
    if (!this.k.profile.unregisterHidesDevice) return g.devices;
    return g.devices.filter((d) => d.registered);
  }

  /** The group behind /dev/vfio/<id>, if the node exists. */
  groupNode(id: number): VfioGroup | undefined {
    const g = this.groups.get(id);
    return g && !g.revoked && g.devices.length > 0 ? g : undefined;
  }

  /** The device behind /dev/vfio/devices/vfio<index>, if the node exists (CONFIG_VFIO_DEVICE_CDEV). */
  cdevNode(index: number): VfioDevice | undefined {
    if (!this.k.profile.config.VFIO_DEVICE_CDEV) return undefined;
    const d = this.devices.get(index);
    return d && d.deviceAdded ? d : undefined;
  }

  /** device_cdev.c vfio_device_fops_cdev_open: ENODEV once the device is being removed. */
  openCdev(index: number, flags: number): CdevFile | number {
    const d = this.devices.get(index);
    if (!d || !d.registered) return -ERRNO.ENODEV;
    return new CdevFile(this.k, d, flags);
  }

  openGroup(id: number, flags: number): GroupFile | number {
    const g = this.groups.get(id);
    if (!g || g.revoked || this.liveDevices(g).length === 0) return -ERRNO.ENODEV;
    // 6.6+ vfio_group_fops_open: a device of the group is bound through its cdev
    if (g.cdevDeviceOpenCnt) return -ERRNO.EBUSY;
    if (g.file) return -ERRNO.EBUSY;
    const f = new GroupFile(this.k, g, flags);
    g.file = f;
    return f;
  }

  /** Detach a group from its container; the group file's pin on the container file is put. */
  detachContainer(g: VfioGroup, task: Task): void {
    const c = g.container;
    if (!c) return;
    c.groups.delete(g);
    g.container = null;
    if (c.groups.size === 0) c.iommuType = null;
    const gf = g.file;
    if (gf?.containerFile) {
      const cf = gf.containerFile;
      gf.containerFile = null;
      putFile(task, cf);
    }
  }

  /** group.c vfio_group_ioctl_get_device_fd (6.1 order: match + token first, then container). */
  getDeviceFd(task: Task, proc: ModelProcess, gf: GroupFile, arg: Buffer | number | undefined): number {
    if (!this.k.profile.behaviour.tokenBeforeContainer) {
      // 5.7–5.18 vfio_group_get_device_fd: a container with an IOMMU driver and a viable group
      // come first (EINVAL), before the string is even copied: the token is not looked at
      const c = gf.group.container;
      if (!c || c.iommuType === null || !this.k.iommu.viable(gf.group.iommuGroup)) return -ERRNO.EINVAL;
    }
    if (!(arg instanceof Buffer)) return -ERRNO.EFAULT;
    const nul = arg.indexOf(0);
    if (nul < 0) return arg.length >= 4096 ? -ERRNO.EINVAL : -ERRNO.EFAULT;
    if (nul >= 4096) return -ERRNO.EINVAL;
    const buf = arg.toString("latin1", 0, nul);
    const g = gf.group;
    let dev: VfioDevice | undefined;
    for (const d of this.liveDevices(g)) {
      const r = d.ops.match(task, buf);
      if (r < 0) return r;
      if (r > 0) {
        dev = d;
        break;
      }
    }
    if (!dev) return -ERRNO.ENODEV;
    // vfio_df_group_open: only now the container is required
    if (!g.container && !g.iommufdFile) return -ERRNO.EINVAL;
    if (g.container && dev.openCount === 0 && g.container.iommuType === null) return -ERRNO.EINVAL;
    dev.openCount++;
    if (dev.openCount === 1) {
      const r = dev.ops.openDevice(task);
      if (r < 0) {
        dev.openCount--;
        return r;
      }
      g.openDevices++;
    }
    const f = new DeviceFile(this.k, dev, gf, O_RDWR);
    getFile(gf);
    return proc.installFd(f);
  }

  /** vfio_device_fops_release → last close runs close_device and wakes a waiting unregister. */
  closeDevice(task: Task, d: VfioDevice): void {
    d.openCount--;
    if (d.openCount === 0) {
      d.ops.closeDevice(task);
      d.group.openDevices--;
      d.released.wakeAll();
    }
  }
}
