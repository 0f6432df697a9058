/**
 * Modelled host (kernel) drivers: igb, igbvf, ice, iavf, nvme and any described in a host file.
 * They only do what userspace can observe: bind, log on probe/remove, configure SR-IOV through
 * pci_enable_sriov/pci_disable_sriov, and (if the real driver does) disable SR-IOV on remove.
 */
import type { Kernel, Task } from "../kernel.js";
import type { BehaviourFlag } from "../versions.js";
import { KERN_INFO } from "../printk.js";
import { pciDisableSriov, pciEnableSriov } from "../pci/iov.js";
import { msiAllocIrqs, msiFreeIrqs, ptpClockRegister, ptpClockUnregister } from "../pci/pci-sysfs.js";
import { pciClassId, pciDisableDevice, pciEnableDevice, pciId, type PciDev, type PciDeviceId, type PciDriver } from "../pci/pci.js";

export interface HostDriverSpec {
  name: string;
  module?: string;
  /** "vvvv:dddd" or "class:cccccc/mmmmmm" */
  ids: string[];
  /** has .sriov_configure */
  sriovConfigure?: boolean;
  /** .remove disables SR-IOV (igb, ixgbe, ice …); pci-pf-stub-like drivers leave it enabled */
  disablesSriovOnRemove?: boolean;
  /** pci_sriov_set_totalvfs at probe: the driver's own VF limit (igb: 7 on an 82576) */
  maxVfs?: number;
  /**
   * lines logged on probe / remove / VF enable (after pci_enable_sriov unless the kernel has the
   * sriovEnableLogFirstWhen behaviour) / VF disable (after); {n} is the VF count, {mac} a random MAC address
   */
  probeLog?: string[];
  removeLog?: string[];
  sriovEnableLog?: string[];
  /**
   * the behaviour flag (src/kernel/versions.ts) under which sriovEnableLog comes before
   * pci_enable_sriov. igb: "igbSriovAfterReinit" — the lab read "2 VFs allocated" before the VFs'
   * enumeration on 6.12, and after the VFs (and igbvf's probe lines) on 6.1.
   */
  sriovEnableLogFirstWhen?: BehaviourFlag;
  /** older form: kernel version strings (as given to --profile) on which the log comes first */
  sriovEnableLogFirstOn?: readonly string[];
  sriovDisableLog?: string[];
  /** iommu: the driver does not claim DMA ownership */
  driverManagedDma?: boolean;
  /** registers a PTP clock at probe (igb: "added PHC on eth0"): ptp/ptp<N> under the device */
  ptp?: boolean;
  /** MSI-X vectors allocated at probe (msi_irqs/): default 1 */
  msixVectors?: number;
}

export function parseIdSpec(s: string): PciDeviceId {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$/.exec(s);
  if (m) return pciId(parseInt(m[1]!, 16), parseInt(m[2]!, 16));
  const c = /^class:([0-9a-fA-F]{6})\/([0-9a-fA-F]{6})$/.exec(s);
  if (c) return pciClassId(parseInt(c[1]!, 16), parseInt(c[2]!, 16));
  throw new Error(`expected "vvvv:dddd" or "class:cccccc/mmmmmm", got ${JSON.stringify(s)}`);
}

export class HostDriver implements PciDriver {
  readonly name: string;
  readonly module: string;
  readonly idTable: PciDeviceId[];
  readonly dynids: PciDeviceId[] = [];
  readonly driverManagedDma: boolean;
  readonly sriovConfigure?: PciDriver["sriovConfigure"];

  constructor(readonly spec: HostDriverSpec) {
    this.name = spec.name;
    this.module = spec.module ?? spec.name.replace(/-/g, "_");
    this.idTable = spec.ids.map(parseIdSpec);
    this.driverManagedDma = spec.driverManagedDma ?? false;
    if (spec.sriovConfigure) {
      this.sriovConfigure = async (k: Kernel, task: Task, dev: PciDev, nr: number): Promise<number> => {
        if (nr === 0) {
          await pciDisableSriov(k, task, dev);
          for (const l of spec.sriovDisableLog ?? []) k.log.dev(KERN_INFO, dev, l);
          return 0;
        }
        const logEnable = () => {
          for (const l of spec.sriovEnableLog ?? []) k.log.dev(KERN_INFO, dev, l.replace("{n}", String(nr)));
        };
        const first = spec.sriovEnableLogFirstWhen ? k.profile.behaviour[spec.sriovEnableLogFirstWhen] : (spec.sriovEnableLogFirstOn?.includes(k.profile.version) ?? false);
        if (first) logEnable();
        const r = await pciEnableSriov(k, task, dev, nr);
        if (r < 0) return r;
        if (!first) logEnable();
        return nr;
      };
    }
  }

  async probe(k: Kernel, _task: Task, dev: PciDev): Promise<number> {
    // NIC/storage drivers call pci_enable_device(_mem) first thing in probe
    pciEnableDevice(k, dev);
    // then dma_set_mask_and_coherent(64) and MSI-X (igb: "Using MSI-X interrupts"; igbvf too)
    dev.dmaMaskBits = dev.coherentDmaMaskBits = 64;
    dev.msiIrqs = msiAllocIrqs(k, this.spec.msixVectors ?? 1);
    if (this.spec.ptp) ptpClockRegister(k, dev);
    if (this.spec.maxVfs !== undefined && dev.sriov) dev.sriov.driverMaxVFs = Math.min(this.spec.maxVfs, dev.sriov.totalVFs);
    for (const l of this.spec.probeLog ?? []) k.log.dev(KERN_INFO, dev, l.replace("{mac}", () => randomMac(k)));
    return 0;
  }

  /** igb_remove order: PTP stop ("removed PHC …") first, then igb_disable_sriov. */
  async remove(k: Kernel, task: Task, dev: PciDev): Promise<void> {
    for (const l of this.spec.removeLog ?? []) k.log.dev(KERN_INFO, dev, l);
    if (this.spec.ptp) ptpClockUnregister(k, dev);
    if (this.spec.disablesSriovOnRemove && dev.numVFs) {
      await pciDisableSriov(k, task, dev);
      for (const l of this.spec.sriovDisableLog ?? []) k.log.dev(KERN_INFO, dev, l);
    }
    // pci_disable_msix, pci_disable_device (the DMA mask stays as the driver set it)
    msiFreeIrqs(k, dev.msiIrqs);
    dev.msiIrqs = [];
    pciDisableDevice(dev);
  }
}

/** The modelled drivers of the built-in default host, in registration (probe) order. */
export const BUILTIN_HOST_DRIVERS: HostDriverSpec[] = [
  {
    // wording as read from the lab's QEMU 82576 (igb) on 6.1 and 6.12
    name: "igb",
    ids: ["8086:10c9", "8086:10e6", "8086:10e7", "8086:10e8", "8086:1521", "8086:1533"],
    sriovConfigure: true,
    disablesSriovOnRemove: true,
    maxVfs: 7,
    ptp: true,
    // one vector per queue pair (2 with the lab's 2 CPUs) and one for other causes: 3 (the lab)
    msixVectors: 3,
    probeLog: [
      "added PHC on eth0",
      "Intel(R) Gigabit Ethernet Network Connection",
      "eth0: (PCIe:2.5Gb/s:Width x1) 52:54:00:12:34:56",
      "eth0: PBA No: 1040FF-0FF",
      "Using MSI-X interrupts. 2 rx queue(s), 2 tx queue(s)",
    ],
    removeLog: ["removed PHC on eth0"],
    sriovEnableLog: ["{n} VFs allocated"],
    sriovEnableLogFirstWhen: "igbSriovAfterReinit",
    sriovDisableLog: ["IOV Disabled"],
  },
  {
    name: "igbvf",
    ids: ["8086:10ca", "8086:1520"],
    // rx, tx and mailbox/other: 3 (the lab)
    msixVectors: 3,
    probeLog: ["PF still in reset state. Is the PF interface up?", "Assigning random MAC address.", "PF still resetting", "Intel(R) 82576 Virtual Function", "Address: {mac}"],
  },
  {
    name: "ice",
    ids: ["8086:159b", "8086:1592", "8086:1593"],
    sriovConfigure: true,
    disablesSriovOnRemove: true,
    probeLog: ["The DDP package was successfully loaded"],
  },
  { name: "iavf", ids: ["8086:1889"] },
  {
    name: "mlx5_core",
    ids: ["15b3:1017", "15b3:1018", "15b3:101b", "15b3:101c"],
    sriovConfigure: true,
    disablesSriovOnRemove: true,
  },
  { name: "nvme", ids: ["class:010802/ffffff"] },
  { name: "qat_c62x", ids: ["8086:37c8"], sriovConfigure: true, disablesSriovOnRemove: true },
];

/** A locally administered unicast MAC from the kernel's RNG (eth_random_addr). */
function randomMac(k: Kernel): string {
  const b = k.rng.bytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}
