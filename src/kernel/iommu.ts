/**
 * drivers/iommu/iommu.c, the parts userspace sees: IOMMU groups with numbers from an IDA
 * (lowest free id), /sys/kernel/iommu_groups/<N>/devices, and DMA ownership (6.x viability).
 */
import type { PciDev } from "./pci/pci.js";
import { Ida } from "./ida.js";

export class IommuGroup {
  readonly devices: PciDev[] = [];
  constructor(readonly id: number) {}
}

export class IommuCore {
  readonly groups = new Map<number, IommuGroup>();
  private readonly ids = new Ida();

  /** ida_alloc: the lowest free group id. */
  allocId(): number {
    return this.ids.alloc();
  }

  reserveId(id: number): void {
    this.ids.reserve(id);
  }

  /** Put a device in group `id` (creating it), or in a new group with the lowest free id. */
  addDevice(dev: PciDev, id?: number): IommuGroup {
    let g = id === undefined ? undefined : this.groups.get(id);
    if (!g) {
      const gid = id ?? this.allocId();
      this.ids.reserve(gid);
      g = new IommuGroup(gid);
      this.groups.set(gid, g);
    }
    g.devices.push(dev);
    dev.iommuGroup = g;
    return g;
  }

  removeDevice(dev: PciDev): void {
    const g = dev.iommuGroup;
    if (!g) return;
    const i = g.devices.indexOf(dev);
    if (i >= 0) g.devices.splice(i, 1);
    dev.iommuGroup = null;
    if (g.devices.length === 0) {
      this.groups.delete(g.id);
      this.ids.free(g.id);
    }
  }

  /**
   * 6.x DMA ownership: a group is viable for vfio unless some device in it is bound to a driver
   * that manages DMA itself (not driver_managed_dma: vfio-pci and pci-stub are; host drivers are not).
   */
  viable(g: IommuGroup): boolean {
    return g.devices.every((d) => !d.driver || d.driver.driverManagedDma);
  }
}
