/**
 * drivers/pci/pci-pf-stub.c: claims a PF so its VFs can be used, does nothing else.
 * No .remove, so unbinding leaves SR-IOV enabled ("driver left SR-IOV enabled after remove").
 */
import type { Kernel, Task } from "../kernel.js";
import { KERN_INFO } from "../printk.js";
import { pciSriovConfigureSimple } from "./iov.js";
import { pciId, type PciDev, type PciDeviceId, type PciDriver } from "./pci.js";

export class PciPfStubDriver implements PciDriver {
  readonly name = "pci-pf-stub";
  readonly module = "pci_pf_stub";
  /** Amazon 0x1d0f:0x0053 */
  readonly idTable: PciDeviceId[] = [pciId(0x1d0f, 0x0053)];
  readonly dynids: PciDeviceId[] = [];
  readonly driverManagedDma = false;

  async probe(k: Kernel, _task: Task, dev: PciDev): Promise<number> {
    k.log.dev(KERN_INFO, dev, "claimed by pci-pf-stub");
    return 0;
  }
  sriovConfigure(k: Kernel, task: Task, dev: PciDev, nr: number): Promise<number> {
    return pciSriovConfigureSimple(k, task, dev, nr);
  }
}
