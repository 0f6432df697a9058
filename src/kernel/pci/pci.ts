/**
 * drivers/pci: struct pci_dev, struct pci_driver and the id matching rules
 * (pci-driver.c pci_match_device / pci_match_id / pci_device_can_probe).
 */
import { Mutex } from "../sync.js";
import type { PrintkDevice } from "../printk.js";
import type { IommuGroup } from "../iommu.js";
import type { Kernel, Task } from "../kernel.js";
import { formatBdf } from "./bdf.js";

export const PCI_ANY_ID = 0xffffffff;

export interface PciDeviceId {
  vendor: number;
  device: number;
  subvendor: number;
  subdevice: number;
  class: number;
  classMask: number;
  driverData: number;
  /** PCI_DRIVER_OVERRIDE_DEVICE_VFIO entries: match only when driver_override is set. */
  overrideOnly?: boolean;
}

export function pciId(vendor: number, device: number, extra: Partial<PciDeviceId> = {}): PciDeviceId {
  return { vendor, device, subvendor: PCI_ANY_ID, subdevice: PCI_ANY_ID, class: 0, classMask: 0, driverData: 0, ...extra };
}

export function pciClassId(cls: number, mask: number): PciDeviceId {
  return pciId(PCI_ANY_ID, PCI_ANY_ID, { class: cls, classMask: mask });
}

/** include/linux/pci.h pci_match_one_device. */
export function pciMatchOne(id: PciDeviceId, dev: PciDev): boolean {
  return (
    (id.vendor === PCI_ANY_ID || id.vendor === dev.vendor) &&
    (id.device === PCI_ANY_ID || id.device === dev.device) &&
    (id.subvendor === PCI_ANY_ID || id.subvendor === dev.subsystemVendor) &&
    (id.subdevice === PCI_ANY_ID || id.subdevice === dev.subsystemDevice) &&
    ((id.class ^ dev.class) & id.classMask) === 0
  );
}

/** What a PCI driver is to the model: its id table and callbacks. */
export interface PciDriver {
  readonly name: string;
  /** the module that provides it, as /sys/module/<name> shows ("vfio_pci") */
  readonly module: string;
  readonly idTable: PciDeviceId[];
  readonly dynids: PciDeviceId[];
  /** iommu: the driver does not claim the group's DMA ownership (vfio-pci, pci-stub). */
  readonly driverManagedDma: boolean;
  /** Returns 0 or a negative errno. dev.driver is already set while this runs. */
  probe(k: Kernel, task: Task, dev: PciDev): Promise<number>;
  remove?(k: Kernel, task: Task, dev: PciDev): Promise<void>;
  /** struct pci_driver.sriov_configure: returns the number of VFs enabled or a negative errno. */
  sriovConfigure?(k: Kernel, task: Task, dev: PciDev, nr: number): Promise<number>;
}

export interface SriovState {
  totalVFs: number;
  initialVFs: number;
  offset: number;
  stride: number;
  vfDevice: number;
  numVFs: number;
  driverMaxVFs: number;
  driversAutoprobe: boolean;
  /** Highest bus number reachable behind the PF's bridge (enable fails beyond it). */
  busEnd: number;
  /** "own": each VF gets a new IOMMU group; "pf": VFs join the PF's group. */
  vfIommuGroup: "own" | "pf";
  vfBars: number[];
  /** the VF BARs' kinds (resource<N>_wc of a prefetchable one) */
  vfBarKinds: ("mem" | "mem-pref" | "io")[];
  /** VF i's ACPI companion (firmware_node), where the host description knows it */
  vfAcpiNodes: (string | null)[];
  vfs: PciDev[];
}

let nextDevSerial = 1;

export class PciDev implements PrintkDevice {
  readonly name: string;
  readonly serial = nextDevSerial++;
  vendor = 0;
  device = 0;
  subsystemVendor = 0;
  subsystemDevice = 0;
  class = 0;
  revision = 0;
  headerType = 0;
  pcie = true;
  numaNode = -1;
  bars: number[] = [0, 0, 0, 0, 0, 0];
  romSize = 0;
  irqPin = 1;
  msiVectors = 1;
  msixVectors = 0;
  /** PCI_COMMAND: firmware leaves boot devices decoding (IO|MEMORY); a new VF starts at 0 */
  command = 0x0003;
  /** function-level reset works (vfio reports VFIO_DEVICE_FLAGS_RESET) */
  resetWorks = true;
  /** the ACPI interrupt link of the device's INTx (host-file acpi_irq_link), if described */
  acpiIrqLink: { name: string; irq: number } | null = null;
  /** pci_enable_device count (sysfs `enable`): drivers enable at probe, vfio-pci at the first open */
  enableCnt = 0;
  /** dma_set_mask / dma_set_coherent_mask: 32 until a driver sets more (sysfs dma_mask_bits) */
  dmaMaskBits = 32;
  coherentDmaMaskBits = 32;
  /** the Linux IRQ numbers of the MSI-X vectors a driver allocated (msi_irqs/<irq>); none: MSI off */
  msiIrqs: number[] = [];
  /** pm_runtime_allow (power/control "auto"): vfio-pci while bound; pci_pm_init forbids */
  runtimePmAllowed = false;
  /** the PCI Power Management capability (d3cold_allowed, the "pm" reset) — VFs of the model have none */
  pmCap = true;
  /** PME: wakeup-capable (power/wakeup*, wakeup/wakeup<N>) */
  wakeup = false;
  /** power/wakeup: the lab's PF reads "enabled" */
  wakeupEnabled = true;
  /** the AER extended capability (aer_dev_*, aer/) */
  aer = false;
  /** the ARI capability, forwarded by the bridge above (ari_enabled of its bus) */
  ari = false;
  /** the INTx line the firmware routed (sysfs irq) */
  irq = 0;
  /** the ASPM states the link supports ("l0s", "l1"): link/<state>_aspm */
  aspm: string[] = [];
  /** aer/ ratelimits, made on first use */
  aerRatelimits: Record<"correctable_ratelimit_interval_ms" | "correctable_ratelimit_burst" | "nonfatal_ratelimit_interval_ms" | "nonfatal_ratelimit_burst", number> | null = null;
  /** PCIe link: speed in GT/s and width (current_link_* = max_link_*) */
  linkSpeed = 2.5;
  linkWidth = 1;
  /** BAR kinds: "mem", "mem-pref" (resource<N>_wc with X86_PAT), "io" */
  barKinds: ("mem" | "mem-pref" | "io")[] = ["mem", "mem", "mem", "mem", "mem", "mem"];
  /** the ACPI companion (firmware_node), a path under /sys/devices */
  acpiNode: string | null = null;
  /** Device Serial Number capability (serial_number where the release has it) */
  dsn: bigint | null = null;
  /** broken_parity_status, d3cold_allowed (writable) */
  brokenParity = false;
  d3coldAllowed: boolean | null = null;
  /** ptp_clock_register's index (ptp/ptp<N>), null without a PTP clock */
  ptpIndex: number | null = null;
  /** wakeup_source_register's ids of the device's wakeup sources, by name (wakeup/wakeup<N>) */
  wakeupSources: { id: number; name: string }[] = [];
  /** reset_method as written (null: the default list) */
  resetMethods: string[] | null = null;
  sriov: SriovState | null = null;
  physfn: PciDev | null = null;
  vfIndex = -1;
  driver: PciDriver | null = null;
  driverOverride: string | null = null;
  /** driver private data (pci_get_drvdata) */
  drvdata: unknown = null;
  iommuGroup: IommuGroup | null = null;
  /** false for a device behind no IOMMU (no group; vfio-pci refuses it with EINVAL) */
  iommuCapable = true;
  /** PCI_DEV_FLAGS_ASSIGNED (legacy KVM/Xen assignment; vfio never sets it) */
  assigned = false;
  /** device_lock() */
  readonly lock = new Mutex();
  /** sysfs directory, e.g. /sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0 */
  sysfsDir = "";
  present = true;

  constructor(
    readonly domain: number,
    readonly bus: number,
    readonly devfn: number,
  ) {
    this.name = formatBdf(domain, bus, devfn);
  }

  get isVirtfn(): boolean {
    return this.physfn !== null;
  }
  /** pdev->is_physfn: an SR-IOV capability with TotalVFs ≠ 0 that sriov_init accepted. */
  get isPhysfn(): boolean {
    return this.sriov !== null;
  }
  get numVFs(): number {
    return this.sriov?.numVFs ?? 0;
  }
  driverString(): string {
    return this.driver ? this.driver.name : "pci";
  }
}

/** pci-driver.c pci_match_id, skipping override_only entries unless an override is set. */
function matchTable(table: PciDeviceId[], dev: PciDev): PciDeviceId | null {
  for (const id of table) {
    if (!pciMatchOne(id, dev)) continue;
    if (id.overrideOnly && !dev.driverOverride) continue;
    return id;
  }
  return null;
}

const PCI_DEVICE_ID_ANY = pciId(PCI_ANY_ID, PCI_ANY_ID);

/** drivers/pci/pci-driver.c pci_match_device. */
export function pciMatchDevice(drv: PciDriver, dev: PciDev): PciDeviceId | null {
  if (dev.driverOverride !== null && dev.driverOverride !== drv.name) return null;
  for (const id of drv.dynids) if (pciMatchOne(id, dev)) return id;
  const found = matchTable(drv.idTable, dev);
  if (found) return found;
  if (dev.driverOverride !== null) return PCI_DEVICE_ID_ANY;
  return null;
}

/** drivers/pci/pci-driver.c pci_device_can_probe (CONFIG_PCI_IOV). */
export function pciDeviceCanProbe(dev: PciDev): boolean {
  return !dev.isVirtfn || dev.physfn!.sriov!.driversAutoprobe || dev.driverOverride !== null;
}

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;

/**
 * drivers/pci/setup-res.c pci_enable_resources (via pci_enable_device): turn on decoding for
 * the BARs the device has and log "enabling device (old -> new)" when PCI_COMMAND changes.
 * The lab shows it on the first vfio-pci open of a new VF ("enabling device (0000 -> 0002)") and
 * not on later opens (vfio-pci restores the state it saved after enabling).
 */
export function pciEnableDevice(k: Kernel, dev: PciDev): void {
  dev.enableCnt++;
  const old = dev.command;
  const cmd = old | (dev.bars.some((b) => b > 0) ? PCI_COMMAND_MEMORY : 0);
  if (cmd !== old) {
    const h = (n: number) => n.toString(16).padStart(4, "0");
    k.log.dev(6, dev, `enabling device (${h(old)} -> ${h(cmd)})`);
    dev.command = cmd;
  }
  // x86 pcibios_enable_device → pcibios_enable_irq → acpi_pci_irq_enable: the link is set up
  // (and logged, by acpi_pci_link_allocate) the first time any device on it is enabled in a boot
  const l = dev.acpiIrqLink;
  if (l && !k.acpiIrqLinks.has(l.name)) {
    k.acpiIrqLinks.add(l.name);
    k.log.printk(6, `ACPI: ${l.name}: Enabled at IRQ ${l.irq}`);
  }
}

/** drivers/pci/pci.c pci_disable_device: drop one enable (decoding stays as the device left it). */
export function pciDisableDevice(dev: PciDev): void {
  if (dev.enableCnt > 0) dev.enableCnt--;
}
