/**
 * drivers/vfio/pci/vfio_pci_core.c + vfio_pci.c as of 6.1/6.12: the vfio-pci driver, its VF
 * token, the SR-IOV bus notifier, sriov_configure and the device-fd ioctls.
 */
import { ERRNO } from "../../../sys/errno.js";
import {
  OFFSETS,
  VFIO,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_OFFSET_SHIFT,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  uuidFormat,
  uuidTryParse,
} from "../../../uapi/vfio.js";
import { uuidGen } from "../../clock.js";
import type { BusEvent, BusNotifier } from "../../base/driver-core.js";
import type { Kernel, Task } from "../../kernel.js";
import { profileOf, type KernelProfile, type KernelVersion } from "../../profile.js";
import { KERN_INFO, KERN_NOTICE, KERN_WARNING } from "../../printk.js";
import { pciDisableSriov, pciEnableSriov } from "../../pci/iov.js";
import { pciDisableDevice, pciEnableDevice, pciId, PCI_ANY_ID, type PciDev, type PciDeviceId, type PciDriver } from "../../pci/pci.js";
import type { ModelProcess } from "../../process.js";
import { EventFdFile } from "../../eventfd.js";
import { vfioCheckFeature, type VfioDevice, type VfioDeviceOps } from "../vfio_main.js";

export interface VfToken {
  /** 16 bytes; userspace can never read it */
  uuid: Buffer;
  /** open PF-linked VF devices (not fds) */
  users: number;
}

/** vfio-pci module parameters (/sys/module/vfio_pci/parameters). */
export interface VfioPciParams {
  enable_sriov: boolean;
  disable_denylist: boolean;
  disable_idle_d3: boolean;
  nointxmask: boolean;
  disable_vga: boolean;
}

export { DENYLIST, DENYLIST_V6_10 } from "./denylist.js";
import { DENYLIST, DENYLIST_V6_10 } from "./denylist.js";

const hex4 = (n: number) => n.toString(16).padStart(4, "0");

/** struct vfio_pci_core_device */
export class VfioPciCoreDevice implements VfioDeviceOps {
  readonly name = "vfio-pci";
  vdev!: VfioDevice;
  vfToken: VfToken | null = null;
  /** 5.18+: the PF's core device, fixed at VF registration if the PF enabled SR-IOV through vfio-pci */
  sriovPfCoreDev: VfioPciCoreDevice | null = null;
  reqTrigger: EventFdFile | null = null;
  notifier: BusNotifier | null = null;

  constructor(
    readonly k: Kernel,
    readonly drv: VfioPciDriver,
    readonly pdev: PciDev,
  ) {}

  /** vfio_pci_core_match (5.7 vfio_pci_match): the match string grammar of kernel-spec §2.3. */
  match(task: Task, buf: string): number {
    const name = this.pdev.name;
    if (!buf.startsWith(name)) return 0;
    if (buf.length === name.length) return this.validateVfToken(task, null);
    let s = buf.slice(name.length);
    if (s[0] !== " ") return 0;
    let token: Buffer | null = null;
    for (;;) {
      let sp = 0;
      while (s.charCodeAt(sp) === 0x20) sp++;
      if (sp) s = s.slice(sp);
      if (s.length === 0) break;
      if (!token && s.startsWith("vf_token=")) {
        s = s.slice(9);
        if (s.length < 36) return -ERRNO.EINVAL;
        // uuid_parse: the syntax check and the bytes in one pass
        token = uuidTryParse(s.slice(0, 36));
        if (!token) return -ERRNO.EINVAL;
        s = s.slice(36);
        continue;
      }
      return -ERRNO.EINVAL; // Unknown/duplicate option
    }
    return this.validateVfToken(task, token);
  }

  /** 6.17+ vfio_pci_core_match_token_uuid, the .match_token_uuid op BIND_IOMMUFD calls: 0 or −errno. */
  matchTokenUuid(task: Task, uuid: Buffer | null): number {
    const r = this.validateVfToken(task, uuid);
    return r < 0 ? r : 0;
  }

  /** vfio_pci_validate_vf_token (6.17: vfio_pci_core_match_token_uuid). Each log site is rate-limited separately. */
  validateVfToken(_task: Task, token: Buffer | null): number {
    const log = this.k.log;
    // the rate-limit suppression line names the function that holds the call sites
    const F = this.k.profile.behaviour.bindIommufdToken ? "vfio_pci_core_match_token_uuid" : "vfio_pci_validate_vf_token";
    const info = (msg: string, site: number) => log.devRatelimited(KERN_INFO, this.pdev, msg, `${F}#${site}`);
    if (this.pdev.isVirtfn) {
      const pf = this.sriovPfCoreDev;
      if (!pf) {
        if (!token) return 1;
        info("VF token incorrectly provided, PF not bound to vfio-pci", 1);
        return -ERRNO.EINVAL;
      }
      if (!token) {
        info("VF token required to access device", 2);
        return -ERRNO.EACCES;
      }
      if (!token.equals(pf.vfToken!.uuid)) {
        info("Incorrect VF token provided for device", 3);
        return -ERRNO.EACCES;
      }
    } else if (this.vfToken) {
      if (this.vfToken.users) {
        if (!token) {
          info("VF token required to access device", 4);
          return -ERRNO.EACCES;
        }
        if (!token.equals(this.vfToken.uuid)) {
          info("Incorrect VF token provided for device", 5);
          return -ERRNO.EACCES;
        }
      } else if (token) {
        this.vfToken.uuid = Buffer.from(token);
      }
    } else if (token) {
      info("VF token incorrectly provided, not a PF or VF", 6);
      return -ERRNO.EINVAL;
    }
    return 1;
  }

  /** vfio_pci_open_device → vfio_pci_core_finish_enable: a PF-linked VF counts as a token user. */
  openDevice(_task: Task): number {
    // vfio_pci_core_enable → pci_enable_device
    pciEnableDevice(this.k, this.pdev);
    // then pci_try_reset_function (the 82576's PF and VFs have FLR)
    this.logReset();
    const pf = this.sriovPfCoreDev;
    if (pf?.vfToken) pf.vfToken.users++;
    return 0;
  }

  /** pci_dev_save_and_disable / pci_dev_restore under vfio-pci (no reset_prepare / reset_done): 6.16+ log both */
  private logReset(): void {
    if (!this.k.profile.logsReset || !this.pdev.resetWorks) return;
    this.k.log.dev(4, this.pdev, "resetting");
    this.k.log.dev(4, this.pdev, "reset done");
  }

  /** vfio_pci_core_close_device */
  closeDevice(_task: Task): void {
    // vfio_pci_core_disable → pci_disable_device
    pciDisableDevice(this.pdev);
    const pf = this.sriovPfCoreDev;
    if (pf?.vfToken) pf.vfToken.users--;
    this.reqTrigger = null;
  }

  /** vfio_pci_core_request */
  request(_task: Task, count: number): void {
    if (this.reqTrigger) {
      if (count % 10 === 0) this.k.log.devRatelimited(KERN_NOTICE, this.pdev, `Relaying device request to user (#${count})`, "vfio_pci_core_request#1");
      this.reqTrigger.signal(1);
    } else if (count === 0) {
      this.k.log.dev(KERN_WARNING, this.pdev, "No device request channel registered, blocked until released by user");
    }
  }

  /** vfio_pci_core_ioctl_feature */
  deviceFeature(_task: Task, flags: number, payload: number, arg: Buffer): number {
    switch (flags & 0xffff) {
      case 3: // LOW_POWER_ENTRY
      case 4: // LOW_POWER_ENTRY_WITH_WAKEUP
      case 5: {
        // LOW_POWER_EXIT
        const r = vfioCheckFeature(flags, payload, VFIO_DEVICE_FEATURE_SET, (flags & 0xffff) === 4 ? 8 : 0);
        if (r !== 1) return r;
        if ((flags & 0xffff) !== 5 && this.pdev.numVFs) return -ERRNO.EBUSY;
        return 0;
      }
      case VFIO_DEVICE_FEATURE_PCI_VF_TOKEN: {
        // vfio_pci_core_feature_token: no log, no users check, no SR-IOV check
        if (!this.vfToken) return -ERRNO.ENOTTY;
        const r = vfioCheckFeature(flags, payload, VFIO_DEVICE_FEATURE_SET, 16);
        if (r !== 1) return r;
        if (arg.length < 24) return -ERRNO.EFAULT;
        this.vfToken.uuid = Buffer.from(arg.subarray(8, 24));
        return 0;
      }
      default:
        return -ERRNO.ENOTTY;
    }
  }

  /** vfio_pci_core_ioctl */
  ioctl(_task: Task, proc: ModelProcess, req: number, arg: Buffer | number | undefined): number {
    const p = this.pdev;
    switch (req) {
      case VFIO.DEVICE_GET_INFO: {
        if (!(arg instanceof Buffer) || arg.length < 16) return -ERRNO.EFAULT;
        if (arg.readUInt32LE(0) < 16) return -ERRNO.EINVAL;
        const n = Math.min(arg.readUInt32LE(0), this.k.profile.deviceInfoSize);
        if (arg.length < n) return -ERRNO.EFAULT;
        const o = OFFSETS.vfio_device_info;
        arg.writeUInt32LE(VFIO_DEVICE_FLAGS_PCI | (p.resetWorks ? VFIO_DEVICE_FLAGS_RESET : 0), o.flags);
        arg.writeUInt32LE(VFIO_PCI_NUM_REGIONS, o.num_regions);
        arg.writeUInt32LE(VFIO_PCI_NUM_IRQS, o.num_irqs);
        if (n >= 20) arg.writeUInt32LE(0, o.cap_offset);
        return 0;
      }
      case VFIO.DEVICE_GET_REGION_INFO: {
        if (!(arg instanceof Buffer) || arg.length < 32) return -ERRNO.EFAULT;
        if (arg.readUInt32LE(0) < 32) return -ERRNO.EINVAL;
        const index = arg.readUInt32LE(8);
        let size = 0;
        let flags = 0;
        if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
          size = p.pcie ? 4096 : 256;
          flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        } else if (index <= 5) {
          size = p.bars[index] ?? 0;
          if (size) flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | (size >= 4096 ? VFIO_REGION_INFO_FLAG_MMAP : 0);
        } else if (index === VFIO_PCI_ROM_REGION_INDEX) {
          size = p.isVirtfn ? 0 : p.romSize;
          flags = size ? VFIO_REGION_INFO_FLAG_READ : 0;
        } else return -ERRNO.EINVAL; // VGA (8) without VGA support, or out of range
        const o = OFFSETS.vfio_region_info;
        arg.writeUInt32LE(flags, o.flags);
        arg.writeUInt32LE(0, o.cap_offset);
        arg.writeBigUInt64LE(BigInt(size), o.size);
        arg.writeBigUInt64LE(BigInt(index) << BigInt(VFIO_PCI_OFFSET_SHIFT), o.offset);
        return 0;
      }
      case VFIO.DEVICE_GET_IRQ_INFO: {
        if (!(arg instanceof Buffer) || arg.length < 16) return -ERRNO.EFAULT;
        if (arg.readUInt32LE(0) < 16) return -ERRNO.EINVAL;
        const index = arg.readUInt32LE(8);
        if (index >= VFIO_PCI_NUM_IRQS) return -ERRNO.EINVAL;
        if (index === VFIO_PCI_ERR_IRQ_INDEX && !p.pcie) return -ERRNO.EINVAL;
        const flags = VFIO_IRQ_INFO_EVENTFD | (index === VFIO_PCI_INTX_IRQ_INDEX ? VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED : VFIO_IRQ_INFO_NORESIZE);
        arg.writeUInt32LE(flags, 4);
        arg.writeUInt32LE(this.irqCount(index), 12);
        return 0;
      }
      case VFIO.DEVICE_SET_IRQS:
        return this.setIrqs(proc, arg);
      case VFIO.DEVICE_RESET:
        if (!p.resetWorks) return -ERRNO.EINVAL;
        this.logReset();
        return 0;
      default:
        return -ERRNO.ENOTTY;
    }
  }

  /** vfio_pci_get_irq_count */
  irqCount(index: number): number {
    const p = this.pdev;
    switch (index) {
      case VFIO_PCI_INTX_IRQ_INDEX:
        return p.irqPin && !p.isVirtfn ? 1 : 0;
      case VFIO_PCI_MSI_IRQ_INDEX:
        return p.msiVectors;
      case VFIO_PCI_MSIX_IRQ_INDEX:
        return p.msixVectors;
      case VFIO_PCI_ERR_IRQ_INDEX:
        return p.pcie ? 1 : 0;
      case VFIO_PCI_REQ_IRQ_INDEX:
        return 1;
      default:
        return 0;
    }
  }

  /** vfio_pci_ioctl_set_irqs: generic validation, then the REQ trigger (other indices accepted). */
  private setIrqs(proc: ModelProcess, arg: Buffer | number | undefined): number {
    if (!(arg instanceof Buffer) || arg.length < 20) return -ERRNO.EFAULT;
    const argsz = arg.readUInt32LE(0);
    const flags = arg.readUInt32LE(4);
    const index = arg.readUInt32LE(8);
    const start = arg.readUInt32LE(12);
    const count = arg.readUInt32LE(16);
    if (argsz < 20 || index >= VFIO_PCI_NUM_IRQS || count >= 0xffffffff - start || flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK))
      return -ERRNO.EINVAL;
    const n = this.irqCount(index);
    if (start >= n || start + count > n) return -ERRNO.EINVAL;
    let size: number;
    switch (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
      case VFIO_IRQ_SET_DATA_NONE: size = 0; break;
      case VFIO_IRQ_SET_DATA_BOOL: size = 1; break;
      case VFIO_IRQ_SET_DATA_EVENTFD: size = 4; break;
      default: return -ERRNO.EINVAL;
    }
    if (size && argsz - 20 < count * size) return -ERRNO.EINVAL;
    if (arg.length < 20 + count * size) return -ERRNO.EFAULT;
    if (index !== VFIO_PCI_REQ_IRQ_INDEX) return 0; // INTx/MSI/MSI-X/ERR: no interrupt model
    if ((flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) !== VFIO_IRQ_SET_ACTION_TRIGGER) return -ERRNO.ENOTTY;
    // vfio_pci_set_req_trigger → vfio_pci_set_ctx_trigger_single
    if (start !== 0 || count > 1) return -ERRNO.EINVAL;
    if (flags & VFIO_IRQ_SET_DATA_NONE) {
      if (this.reqTrigger) {
        if (count) this.reqTrigger.signal(1);
        else this.reqTrigger = null;
        return 0;
      }
      return -ERRNO.EINVAL;
    }
    if (flags & VFIO_IRQ_SET_DATA_BOOL) {
      if (!count) return -ERRNO.EINVAL;
      if (arg[20] && this.reqTrigger) this.reqTrigger.signal(1);
      return 0;
    }
    if (!count) return -ERRNO.EINVAL;
    const fd = arg.readInt32LE(20);
    if (fd === -1) this.reqTrigger = null;
    else if (fd >= 0) {
      const f = proc.fileOf(fd);
      if (!f) return -ERRNO.EBADF;
      if (!(f instanceof EventFdFile)) return -ERRNO.EINVAL;
      this.reqTrigger = f;
    }
    return 0;
  }

  /** vfio_pci_core_sriov_configure */
  async sriovConfigure(task: Task, nr: number): Promise<number> {
    const pfs = this.drv.sriovPfs;
    if (nr) {
      if (pfs.has(this)) return -ERRNO.EINVAL;
      pfs.add(this);
      const r = await pciEnableSriov(this.k, task, this.pdev, nr);
      if (r) {
        pfs.delete(this);
        return r;
      }
      return nr;
    }
    if (this.pdev.numVFs) await pciDisableSriov(this.k, task, this.pdev);
    pfs.delete(this);
    return 0;
  }
}

/** drivers/vfio/pci/vfio_pci.c: the vfio-pci pci_driver. */
export class VfioPciDriver implements PciDriver {
  readonly name = "vfio-pci";
  readonly module = "vfio_pci";
  /** ≈5.16+: one override_only ANY:ANY entry (module autoloading); matching is override/dynid only */
  readonly idTable: PciDeviceId[] = [{ ...pciId(PCI_ANY_ID, PCI_ANY_ID), overrideOnly: true }];
  readonly dynids: PciDeviceId[] = [];
  readonly driverManagedDma = true;
  readonly params: VfioPciParams = { enable_sriov: false, disable_denylist: false, disable_idle_d3: false, nointxmask: false, disable_vga: false };
  /** vfio_pci_sriov_pfs: PFs whose SR-IOV was enabled through vfio-pci-core */
  readonly sriovPfs = new Set<VfioPciCoreDevice>();

  core(dev: PciDev): VfioPciCoreDevice | null {
    return dev.driver === this && dev.drvdata instanceof VfioPciCoreDevice ? dev.drvdata : null;
  }

  /** vfio_pci_dev_in_denylist on a kernel (a profile, or a version string resolved against the table). */
  isDenylisted(dev: PciDev, kernel: KernelProfile | KernelVersion = "6.1"): boolean {
    const hit = ([v, d]: readonly [number, number]) => v === dev.vendor && d === dev.device;
    const b = typeof kernel === "string" ? profileOf(kernel).behaviour : kernel.behaviour;
    return DENYLIST.some(hit) || (b.denylistDsaIax && DENYLIST_V6_10.some(hit));
  }

  /** vfio_pci_probe → vfio_pci_core_register_device */
  async probe(k: Kernel, _task: Task, dev: PciDev): Promise<number> {
    if (this.isDenylisted(dev, k.profile)) {
      if (!this.params.disable_denylist) {
        k.log.dev(KERN_WARNING, dev, `${hex4(dev.vendor)}:${hex4(dev.device)} exists in vfio-pci device denylist, driver probing disallowed.`);
        return -ERRNO.EINVAL;
      }
      k.log.dev(KERN_WARNING, dev, `device denylist disabled - allowing device ${hex4(dev.vendor)}:${hex4(dev.device)}.`);
    }
    if (dev.headerType !== 0) return -ERRNO.EINVAL;
    if (dev.numVFs) {
      k.log.dev(KERN_WARNING, dev, "Cannot bind to PF with SR-IOV enabled");
      return -ERRNO.EBUSY;
    }
    const core = new VfioPciCoreDevice(k, this, dev);
    // vfio_pci_vf_init
    if (dev.isVirtfn) {
      for (const pf of this.sriovPfs) if (pf.pdev === dev.physfn) core.sriovPfCoreDev = pf;
    } else if (dev.isPhysfn) {
      core.vfToken = { uuid: uuidGen(k.rng), users: 0 };
      core.notifier = (kk: Kernel, _t: Task, ev: BusEvent, d: PciDev) => this.busNotifier(kk, core, ev, d);
      k.drivers.registerNotifier(core.notifier);
    }
    const vdev = k.vfio.register(dev, core);
    if (typeof vdev === "number") {
      if (core.notifier) k.drivers.unregisterNotifier(core.notifier);
      return vdev;
    }
    core.vdev = vdev;
    dev.drvdata = core;
    // vfio_pci_core_register_device: pm_runtime_allow (power/control reads "auto" while bound)
    dev.runtimePmAllowed = true;
    return 0;
  }

  /** vfio_pci_bus_notifier (5.15+ wording) */
  private busNotifier(k: Kernel, core: VfioPciCoreDevice, ev: BusEvent, d: PciDev): void {
    if (!d.isVirtfn || d.physfn !== core.pdev) return;
    if (ev === "add_device") {
      k.log.dev(KERN_INFO, core.pdev, `Captured SR-IOV VF ${d.name} driver_override`);
      d.driverOverride = core.name;
    } else if (ev === "bound_driver") {
      const drv = d.driver;
      if (drv && drv !== core.pdev.driver) {
        k.log.dev(KERN_WARNING, core.pdev, `VF ${d.name} bound to driver ${drv.name} while PF bound to driver ${core.pdev.driver?.name}`);
      }
    }
  }

  /** vfio_pci_remove → vfio_pci_core_unregister_device: SR-IOV off first (bypasses enable_sriov), then unregister. */
  async remove(k: Kernel, task: Task, dev: PciDev): Promise<void> {
    const core = dev.drvdata as VfioPciCoreDevice;
    await core.sriovConfigure(task, 0);
    await k.vfio.unregister(task, core.vdev);
    if (core.notifier) k.drivers.unregisterNotifier(core.notifier);
    core.vfToken = null;
    // vfio_pci_core_unregister_device: pm_runtime_forbid
    dev.runtimePmAllowed = false;
  }

  /** vfio_pci.c vfio_pci_sriov_configure: gated by enable_sriov (ENOENT, no log). */
  async sriovConfigure(_k: Kernel, task: Task, dev: PciDev, nr: number): Promise<number> {
    if (!this.params.enable_sriov) return -ERRNO.ENOENT;
    const core = this.core(dev);
    if (!core) return -ERRNO.ENODEV;
    return core.sriovConfigure(task, nr);
  }
}

/** For debugging and tests only: the PF token as a string (the kernel never exposes it). */
export function tokenOfForTests(core: VfioPciCoreDevice): string | null {
  return core.vfToken ? uuidFormat(core.vfToken.uuid) : null;
}
