/**
 * drivers/base (bus.c, dd.c, driver.c) for the PCI bus: the driver list in registration order,
 * bus notifiers, probing, binding and releasing drivers, and the sysfs stores
 * bind / unbind / drivers_probe / drivers_autoprobe / new_id / remove_id / driver_override.
 */
import { ERRNO } from "../../sys/errno.js";
import type { Kernel, Task } from "../kernel.js";
import { PCI_ANY_ID, pciDeviceCanProbe, pciMatchDevice, type PciDev, type PciDeviceId, type PciDriver } from "../pci/pci.js";
import { pciIovRemove } from "../pci/iov.js";

export type BusEvent = "add_device" | "del_device" | "bind_driver" | "bound_driver" | "unbind_driver" | "unbound_driver";
export type BusNotifier = (k: Kernel, task: Task, event: BusEvent, dev: PciDev) => void;

const PAGE_SIZE = 4096;

export class DriverCore {
  /** bus_type.p->klist_drivers, in registration order */
  readonly drivers: PciDriver[] = [];
  private notifiers: BusNotifier[] = [];
  /** /sys/bus/pci/drivers_autoprobe (bus-wide; does not gate PCI probing, see docs) */
  driversAutoprobe = true;

  constructor(private readonly k: Kernel) {}

  registerDriver(drv: PciDriver): void {
    if (this.drivers.some((d) => d.name === drv.name)) throw new Error(`driver ${drv.name} already registered`);
    this.drivers.push(drv);
  }
  driver(name: string): PciDriver | undefined {
    return this.drivers.find((d) => d.name === name);
  }
  registerNotifier(n: BusNotifier): void {
    this.notifiers.push(n);
  }
  unregisterNotifier(n: BusNotifier): void {
    const i = this.notifiers.indexOf(n);
    if (i >= 0) this.notifiers.splice(i, 1);
  }
  notify(task: Task, ev: BusEvent, dev: PciDev): void {
    for (const n of [...this.notifiers]) n(this.k, task, ev, dev);
    // core.c device_add / device_del: KOBJ_ADD after the bus notifier, KOBJ_REMOVE on removal
    if (ev === "add_device") this.k.uevent("add", dev);
    else if (ev === "del_device") this.k.uevent("remove", dev);
  }

  /** dd.c really_probe (with pci_device_probe's can-probe check). Caller holds device_lock. */
  async probe(task: Task, drv: PciDriver, dev: PciDev): Promise<number> {
    if (!pciDeviceCanProbe(dev)) return -ERRNO.ENODEV;
    this.notify(task, "bind_driver", dev);
    dev.driver = drv;
    const ret = await drv.probe(this.k, task, dev);
    if (ret < 0) {
      if (ret !== -ERRNO.ENODEV && ret !== -ERRNO.ENXIO) {
        const p = this.k.profile.probeFailed(drv.name, dev.name, ret);
        if (p.onDevice) this.k.log.printk(p.level, p.text, dev);
        else this.k.log.printk(p.level, p.text);
      }
      dev.driver = null;
      dev.drvdata = null;
      return ret;
    }
    this.notify(task, "bound_driver", dev);
    this.k.uevent("bind", dev, drv.name); // dd.c driver_bound: KOBJ_BIND
    return 0;
  }

  /** dd.c device_release_driver → pci_device_remove. Caller holds device_lock. */
  async release(task: Task, dev: PciDev): Promise<void> {
    const drv = dev.driver;
    if (!drv) return;
    this.notify(task, "unbind_driver", dev);
    if (drv.remove) await drv.remove(this.k, task, dev);
    pciIovRemove(this.k, dev);
    dev.driver = null;
    dev.drvdata = null;
    this.notify(task, "unbound_driver", dev);
    this.k.uevent("unbind", dev, drv.name); // dd.c __device_release_driver: KOBJ_UNBIND
  }

  /** dd.c __device_attach: try drivers in registration order; the first successful probe wins. */
  async attach(task: Task, dev: PciDev): Promise<number> {
    if (dev.driver) return 1;
    for (const drv of this.drivers) {
      if (!pciMatchDevice(drv, dev)) continue;
      const r = await this.probe(task, drv, dev);
      if (r === 0) return 1;
    }
    return 0;
  }

  /** dd.c driver_attach: bind `drv` to every unbound device it matches (new_id). */
  async driverAttach(task: Task, drv: PciDriver): Promise<void> {
    for (const dev of [...this.k.pci.devices.values()]) {
      if (dev.driver || !dev.present) continue;
      if (!pciMatchDevice(drv, dev)) continue;
      await this.k.withDeviceLock(task, dev, async () => {
        if (!dev.driver && dev.present) await this.probe(task, drv, dev);
      });
    }
  }

  // ---------------------------------------------------------------- sysfs stores

  /** bus.c bind_store (5.13+: probe errno flows back; already bound → EBUSY). */
  async bindStore(task: Task, drv: PciDriver, buf: string, count: number): Promise<number> {
    const dev = this.k.pci.findByName(buf);
    if (!dev || !pciMatchDevice(drv, dev)) return -ERRNO.ENODEV;
    return this.k.withDeviceLock(task, dev, async () => {
      if (dev.driver) return -ERRNO.EBUSY;
      const r = await this.probe(task, drv, dev);
      if (r === -ERRNO.EPROBE_DEFER) return -ERRNO.EAGAIN;
      return r < 0 ? r : count;
    });
  }

  /** bus.c unbind_store. May block while vfio waits for userspace to release the device. */
  async unbindStore(task: Task, drv: PciDriver, buf: string, count: number): Promise<number> {
    const dev = this.k.pci.findByName(buf);
    if (!dev || dev.driver !== drv) return -ERRNO.ENODEV;
    await this.k.withDeviceLock(task, dev, async () => {
      if (dev.driver === drv) await this.release(task, dev);
    });
    return count;
  }

  /** bus.c drivers_probe_store. */
  async driversProbeStore(task: Task, buf: string, count: number): Promise<number> {
    const dev = this.k.pci.findByName(buf);
    if (!dev) return -ERRNO.ENODEV;
    const r = await this.k.withDeviceLock(task, dev, () => this.attach(task, dev));
    return r < 0 ? r : count;
  }

  /** bus.c drivers_autoprobe_store: first character '0' → off, anything else → on. */
  driversAutoprobeStore(buf: string, count: number): number {
    this.driversAutoprobe = buf.length === 0 || buf[0] !== "0";
    return count;
  }

  /** drivers/base/driver.c driver_set_override, as pci driver_override_store uses it. */
  driverOverrideStore(dev: PciDev, raw: Buffer, count: number): number {
    if (count >= PAGE_SIZE - 1) return -ERRNO.EINVAL;
    let s = raw.subarray(0, count).toString("latin1");
    const nul = s.indexOf("\0");
    if (nul >= 0) s = s.slice(0, nul);
    if (s.length === 0 || s[0] === "\n") {
      dev.driverOverride = null;
      return count;
    }
    const nl = s.indexOf("\n");
    dev.driverOverride = nl >= 0 ? s.slice(0, nl) : s;
    return count;
  }

  /** pci-driver.c new_id_store. */
  async newIdStore(task: Task, drv: PciDriver, buf: string, count: number): Promise<number> {
    const f = scanHexFields(buf);
    if (f.length < 2) return -ERRNO.EINVAL;
    const id: PciDeviceId = {
      vendor: f[0]!,
      device: f[1]!,
      subvendor: f[2] ?? PCI_ANY_ID,
      subdevice: f[3] ?? PCI_ANY_ID,
      class: f[4] ?? 0,
      classMask: f[5] ?? 0,
      driverData: f[6] ?? 0,
    };
    if (f.length !== 7) {
      // A zeroed fake pci_dev with the given ids (u16 fields, no driver_override) run through
      // pci_match_device: dynamic ids count as well as the static table, so writing the same
      // new_id twice gives EEXIST; override_only entries never match it.
      const fake = { vendor: id.vendor & 0xffff, device: id.device & 0xffff, subsystemVendor: id.subvendor & 0xffff, subsystemDevice: id.subdevice & 0xffff, class: id.class, driverOverride: null } as PciDev;
      if (pciMatchDevice(drv, fake)) return -ERRNO.EEXIST;
    }
    if (drv.idTable.length > 0 && !drv.idTable.some((e) => e.driverData === id.driverData)) return -ERRNO.EINVAL;
    drv.dynids.push(id);
    await this.driverAttach(task, drv);
    return count;
  }

  /**
   * pci-driver.c remove_id_store: the first dynid with this vendor/device whose subvendor and
   * subdevice match (an omitted or PCI_ANY_ID field matches any) and whose class agrees under
   * the written class_mask is removed; none → ENODEV. Bound devices stay bound.
   */
  removeIdStore(drv: PciDriver, buf: string, count: number): number {
    const f = scanHexFields(buf);
    if (f.length < 2) return -ERRNO.EINVAL;
    const [vendor, device, subvendor = PCI_ANY_ID, subdevice = PCI_ANY_ID, cls = 0, classMask = 0] = f as [number, number, ...number[]];
    const i = drv.dynids.findIndex(
      (d) =>
        d.vendor === vendor &&
        d.device === device &&
        (subvendor === PCI_ANY_ID || d.subvendor === subvendor) &&
        (subdevice === PCI_ANY_ID || d.subdevice === subdevice) &&
        ((d.class ^ cls) & classMask) === 0,
    );
    if (i < 0) return -ERRNO.ENODEV;
    drv.dynids.splice(i, 1);
    return count;
  }
}

/** sscanf(buf, "%x %x %x %x %x %x %lx"): leading fields that parse as hex (optional 0x). */
export function scanHexFields(buf: string): number[] {
  const out: number[] = [];
  const parts = buf.trim().split(/\s+/).filter((p) => p.length > 0);
  for (const p of parts.slice(0, 7)) {
    const m = /^(?:0[xX])?([0-9a-fA-F]+)/.exec(p);
    if (!m) break;
    out.push(parseInt(m[1]!.slice(-8), 16) >>> 0);
    if (m[0].length !== p.length) break;
  }
  return out;
}
