/**
 * drivers/pci/probe.c + remove.c + bus.c: adding a device (enumeration line, device_add and the
 * bus notifiers), attaching drivers (pci_bus_add_device), and stop-and-remove.
 */
import type { Kernel, Task } from "../kernel.js";
import { KERN_INFO } from "../printk.js";
import type { PciDev } from "./pci.js";

const busKey = (d: PciDev): number => d.domain * 256 + d.bus;

export class PciCore {
  /** every present device by pci_name() */
  readonly devices = new Map<string, PciDev>();
  /** how many of the present devices on each bus (domain × 256 + bus) are not VFs */
  private readonly functionsByBus = new Map<number, number>();

  constructor(private readonly k: Kernel) {}

  /** bus_find_device_by_name with sysfs_streq (a trailing newline is ignored). */
  findByName(buf: string): PciDev | undefined {
    const name = buf.endsWith("\n") ? buf.slice(0, -1) : buf;
    return this.devices.get(name);
  }

  /** pci_device_add: enumeration line, then device_add (BUS_NOTIFY_ADD_DEVICE: iommu, then vfio-pci PFs). */
  addDevice(task: Task, dev: PciDev, opts: { quiet?: boolean } = {}): void {
    if (!opts.quiet) {
      const p = this.k.profile;
      // pci_setup_device: pci_info on both 6.1 and 6.12 (the lab read level 6 on both)
      this.k.log.dev(KERN_INFO, dev, p.enumLine(dev.vendor, dev.device, dev.headerType, dev.class, dev.pcie));
    }
    this.forget(this.devices.get(dev.name));
    this.devices.set(dev.name, dev);
    if (!dev.isVirtfn) this.functionsByBus.set(busKey(dev), this.functionsOnBus(dev.domain, dev.bus) + 1);
    dev.present = true;
    this.k.drivers.notify(task, "add_device", dev);
  }

  /** pci_bus_add_device → device_attach. */
  async busAddDevice(task: Task, dev: PciDev): Promise<void> {
    await this.k.withDeviceLock(task, dev, () => this.k.drivers.attach(task, dev));
  }

  /** pci_stop_and_remove_bus_device: release the driver (may block), then device_del. */
  async stopAndRemove(task: Task, dev: PciDev): Promise<void> {
    dev.present = false;
    await this.k.withDeviceLock(task, dev, () => this.k.drivers.release(task, dev));
    this.k.drivers.notify(task, "del_device", dev);
    this.forget(this.devices.get(dev.name));
    this.devices.delete(dev.name);
  }

  /** How many present devices on bus `bus` of `domain` are not VFs. */
  functionsOnBus(domain: number, bus: number): number {
    return this.functionsByBus.get(domain * 256 + bus) ?? 0;
  }

  /** A device leaving `devices`: no longer counted on its bus. */
  private forget(dev: PciDev | undefined): void {
    if (dev && !dev.isVirtfn) this.functionsByBus.set(busKey(dev), this.functionsOnBus(dev.domain, dev.bus) - 1);
  }

  /** iommu bus notifier: group membership on add/del ("Adding to iommu group N"; 6.1 also logs removal). */
  iommuNotifier = (k: Kernel, _task: Task, ev: string, dev: PciDev): void => {
    if (ev === "add_device") {
      if (dev.iommuGroup || !dev.iommuCapable) return;
      const pf = dev.physfn;
      const id = pf && pf.sriov?.vfIommuGroup === "pf" ? pf.iommuGroup?.id : undefined;
      if (pf && pf.sriov?.vfIommuGroup === "pf" && id === undefined) return;
      const g = k.iommu.addDevice(dev, id);
      k.log.dev(KERN_INFO, dev, `Adding to iommu group ${g.id}`);
    } else if (ev === "del_device") {
      const g = dev.iommuGroup;
      if (!g) return;
      if (k.profile.logsIommuRemove) k.log.dev(KERN_INFO, dev, `Removing from iommu group ${g.id}`);
      k.iommu.removeDevice(dev);
    }
  };
}
