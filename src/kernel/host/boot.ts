/**
 * Booting the model from a host description: devices are enumerated, IOMMU groups assigned,
 * drivers probed (or bound as the file says) and VFs enabled where the file asks for them.
 */
import { readFileSync } from "node:fs";
import { Kernel, type KernelOptions } from "../kernel.js";
import { KernelConfigError } from "../profile.js";
import { KERN_WARNING } from "../printk.js";
import { PciDev } from "../pci/pci.js";
import { parseBdf } from "../pci/bdf.js";
import { errnoName } from "../../sys/errno.js";
import { HostFileError, parseHost, type HostDesc } from "./host-file.js";
import { DEFAULT_HOST } from "./default-host.js";
import { closestName } from "./suggest.js";

/** A registered driver the name most likely means (module spelling vfio_pci, or a near miss). */
function suggestDriverName(name: string, names: string[]): string | null {
  const bare = (x: string) => x.replace(/[-_]/g, "");
  return names.find((x) => bare(x) === bare(name)) ?? closestName(name, names);
}

export interface BootOptions extends KernelOptions {
  /** file name used in error messages */
  file?: string;
}

/** Boot a kernel model for a host description. */
export async function bootKernel(desc: HostDesc = DEFAULT_HOST, opts: BootOptions = {}): Promise<Kernel> {
  const file = opts.file ?? desc.name ?? "<host>";
  // the kernel: --profile (opts) wins over the file's kernel.version / profile; the file's
  // kernel.config applies to whichever version runs (checked against it)
  const version = opts.profile ?? desc.kernel?.version ?? desc.profile ?? "6.1";
  let k: Kernel;
  try {
    k = new Kernel({ ...opts, profile: version, config: { ...(desc.kernel?.config ?? {}), ...(opts.config ?? {}) } });
  } catch (e) {
    if (e instanceof KernelConfigError) throw new HostFileError(file, `kernel.config.${e.field}`, e.expected, e.found);
    throw e;
  }
  try {
    k.registerDrivers(desc.drivers);
  } catch (e) {
    throw new HostFileError(file, "drivers", "names of modelled drivers or full specs", (e as Error).message);
  }
  Object.assign(k.vfioPci.params, desc.modules?.vfio_pci ?? {});
  for (const [name, cfg] of Object.entries(desc.net ?? {})) k.net.configure(name, cfg);
  // vfio_pci_init: pr_warn("device denylist disabled.\n") with pr_fmt "vfio_pci: ". The kernel
  // prints it after pci_register_driver; the model prints it before probing boot devices.
  if (k.vfioPci.params.disable_denylist) k.log.printk(KERN_WARNING, "vfio_pci: device denylist disabled.");
  const task = k.kernelTask();
  for (const d of desc.devices) if (typeof d.iommu_group === "number") k.iommu.reserveId(d.iommu_group);
  const devs: [PciDev, (typeof desc.devices)[number], number][] = [];
  desc.devices.forEach((d, i) => {
    const a = parseBdf(d.bdf)!;
    const dev = new PciDev(a.domain, a.bus, a.devfn);
    dev.vendor = d.vendor;
    dev.device = d.device;
    dev.class = d.class ?? 0x020000;
    dev.subsystemVendor = d.subsystem_vendor ?? d.vendor;
    dev.subsystemDevice = d.subsystem_device ?? 0;
    dev.revision = d.revision ?? 1;
    dev.headerType = d.header_type ?? 0;
    dev.pcie = d.pcie ?? true;
    dev.numaNode = d.numa_node ?? -1;
    dev.bars = [...(d.bars ?? [0x20000, 0, 0, 0x4000, 0, 0]), 0, 0, 0, 0, 0, 0].slice(0, 6);
    dev.barKinds = [...(d.bar_types ?? []), "mem", "mem", "mem", "mem", "mem", "mem"].slice(0, 6) as PciDev["barKinds"];
    dev.romSize = d.rom_size ?? 0;
    dev.resetWorks = d.reset_works ?? true;
    // set up (and logged) by the first pci_enable_device on the link: a host driver's probe at
    // boot, or vfio-pci's first open (its probe does not enable the device)
    if (d.acpi_irq_link) dev.acpiIrqLink = { ...d.acpi_irq_link };
    dev.irq = d.irq ?? 0;
    dev.aer = d.aer ?? false;
    dev.ari = d.ari ?? false;
    dev.pmCap = d.pm ?? true;
    dev.wakeup = d.pme ?? false;
    dev.acpiNode = d.acpi_node ?? null;
    if (d.link) [dev.linkSpeed, dev.linkWidth] = [d.link.speed, d.link.width];
    dev.aspm = d.aspm ?? [];
    if (d.dsn !== undefined) dev.dsn = BigInt(d.dsn.startsWith("0x") ? d.dsn : `0x${d.dsn.replace(/-/g, "")}`);
    dev.msixVectors = 10;
    const dom = d.bdf.slice(0, 4);
    const root = `/sys/devices/pci${dom}:00`;
    const parent = d.parent ?? (a.bus === 0 ? null : `${dom}:00:${(a.bus % 0x20).toString(16).padStart(2, "0")}.0`);
    dev.sysfsDir = parent ? `${root}/${parent}/${d.bdf}` : `${root}/${d.bdf}`;
    if (d.sriov && d.sriov.total_vfs > 0) {
      const s = d.sriov;
      dev.sriov = {
        totalVFs: s.total_vfs,
        initialVFs: s.total_vfs,
        offset: s.offset,
        stride: s.stride,
        vfDevice: s.vf_device,
        numVFs: 0,
        driverMaxVFs: s.total_vfs,
        driversAutoprobe: s.drivers_autoprobe ?? true,
        busEnd: s.bus_end ?? Math.min(255, a.bus + ((a.devfn + s.offset + s.stride * (s.total_vfs - 1)) >> 8)),
        vfIommuGroup: s.vf_iommu_group ?? "own",
        vfBars: [...(s.vf_bars ?? [0x4000, 0, 0, 0x4000, 0, 0]), 0, 0, 0, 0, 0, 0].slice(0, 6),
        vfBarKinds: [...(s.vf_bar_types ?? []), "mem", "mem", "mem", "mem", "mem", "mem"].slice(0, 6) as PciDev["barKinds"],
        vfAcpiNodes: s.vf_acpi_nodes ?? [],
        vfs: [],
      };
    }
    if (d.iommu_group === null) dev.iommuCapable = false;
    else if (typeof d.iommu_group === "number") k.iommu.addDevice(dev, d.iommu_group);
    devs.push([dev, d, i]);
  });
  for (const [dev] of devs) {
    if (!dev.iommuGroup && dev.iommuCapable) k.iommu.addDevice(dev);
    k.pci.addDevice(task, dev);
  }
  for (const [dev, d, i] of devs) {
    if (d.driver_override !== undefined) dev.driverOverride = d.driver_override;
    if (d.driver === "none") continue;
    if (d.driver !== undefined) {
      const drv = k.drivers.driver(d.driver);
      if (!drv) {
        const names = k.drivers.drivers.map((x) => x.name);
        const near = suggestDriverName(d.driver, names);
        throw new HostFileError(file, `devices[${i}].driver`, `a registered driver (${names.join(", ")}${near ? `; did you mean ${near}?` : ""}), or "none"`, d.driver);
      }
      const r = await k.withDeviceLock(task, dev, () => k.drivers.probe(task, drv, dev));
      if (r < 0) throw new HostFileError(file, `devices[${i}].driver`, `a driver whose probe accepts ${d.bdf}`, `${d.driver} (probe failed: ${errnoName(r)})`);
    } else {
      await k.pci.busAddDevice(task, dev);
    }
  }
  for (const [dev, d, i] of devs) {
    const n = d.sriov?.num_vfs ?? 0;
    if (!n) continue;
    const drv = dev.driver;
    if (!drv?.sriovConfigure) throw new HostFileError(file, `devices[${i}].sriov.num_vfs`, "a PF bound at boot to a driver with sriov_configure", `${d.bdf} on ${drv?.name ?? "no driver"}`);
    // pci_sriov_set_totalvfs: a driver may cap the VFs below TotalVFs (igb: 7 on the 82576's 8);
    // sriov_numvfs_store refuses more (ERANGE), so a host booted with more is impossible
    const cap = dev.sriov?.driverMaxVFs ?? 0;
    if (n > cap) {
      const id = `${d.vendor.toString(16).padStart(4, "0")}:${d.device.toString(16).padStart(4, "0")}`;
      throw new HostFileError(file, `devices[${i}].sriov.num_vfs`, `0..${cap} (${drv.name} caps ${id} at ${cap} VFs: sriov_totalvfs ${cap}, the device's TotalVFs ${d.sriov!.total_vfs})`, n);
    }
    const saved = k.vfioPci.params.enable_sriov;
    k.vfioPci.params.enable_sriov = true;
    const r = await drv.sriovConfigure(k, task, dev, n);
    k.vfioPci.params.enable_sriov = saved;
    if (r < 0) throw new HostFileError(file, `devices[${i}].sriov.num_vfs`, `a count ${d.bdf}'s driver accepts`, `${n} (${errnoName(r)})`);
  }
  return k;
}

/** Read, validate and boot a host file (YAML or JSON). */
export async function bootHostFile(path: string, opts: KernelOptions = {}): Promise<Kernel> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new HostFileError(path, "(file)", "a readable host description", code);
  }
  return bootKernel(parseHost(text, path), { ...opts, file: path });
}

export { Kernel };
