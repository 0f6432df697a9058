/**
 * drivers/pci/pci-sysfs.c (with drivers/pci/pcie/aer.c and pcie/aspm.c): the attribute groups
 * of a PCI device's directory, as data. Each group and attribute says which kernel change added
 * it (a behaviour flag of src/kernel/versions.ts), which build option it needs (KernelConfig) and
 * when it is visible (the group's is_visible); the file-system layer (src/kernel/fs/sysfs.ts)
 * only lists what {@link pciDeviceEntries} gives. The SR-IOV groups are iov.ts's
 * (sriov_pf_dev_attr_group, sriov_vf_dev_attr_group).
 *
 * What a device has comes from its description (the host file: BAR kinds, AER, ARI, ACPI
 * companion, link, PME, DSN) and its state (driver, enable count, DMA mask, runtime PM); the
 * lab's attribute row (lab/sysfs-attrs.ts) compares all of it with real kernels.
 */
import { Ida } from "../ida.js";
import { ERRNO } from "../../sys/errno.js";
import { SysErrorCode } from "../errors.js";
import type { Kernel, Task } from "../kernel.js";
import type { KernelConfig } from "../profile.js";
import type { BehaviourFlag } from "../versions.js";
import { lazyDir, ro, rw, staticDir, type AttrNode, type DirNode, type Node } from "../fs/vfs.js";
import { kstrtobool, kstrtoull } from "./iov.js";
import { pciDisableDevice, pciEnableDevice, type PciDev } from "./pci.js";

/** One attribute (or named subdirectory) of a device directory. */
export interface DevAttr {
  name: string;
  /** the behaviour flag of the change that added it (absent: every modelled kernel, 6.1 on) */
  since?: BehaviourFlag;
  /** the build option it needs */
  needs?: keyof KernelConfig;
  /** is_visible: whether this device has it */
  visible?: (d: PciDev, k: Kernel) => boolean;
  make: (d: PciDev, k: Kernel) => Node;
}

const hex = (n: number, w: number) => `0x${n.toString(16).padStart(w, "0")}`;
const HEX = (n: number, w: number) => n.toString(16).toUpperCase().padStart(w, "0");
const str = (b: Buffer, c: number) => b.subarray(0, c).toString("latin1");

/** Whether a device has this attribute on this kernel. */
export function attrVisible(a: DevAttr, d: PciDev, k: Kernel): boolean {
  if (a.since && !k.profile.behaviour[a.since]) return false;
  if (a.needs && !k.profile.config[a.needs]) return false;
  return a.visible ? a.visible(d, k) : true;
}

/** The node of an attribute whose store is an admin-only boolean flag (kstrtoul, 0 or not). */
function flagAttr(get: () => boolean, set: (v: boolean) => void): AttrNode {
  return rw(
    () => `${get() ? 1 : 0}\n`,
    (_t, b, c) => {
      const v = kstrtoull(str(b, c).trim(), 0);
      if (v < 0) return -ERRNO.EINVAL;
      set(v !== 0);
      return c;
    },
  );
}

/** include/linux/mod_devicetable.h: the "pci:v…d…sv…sd…bc…sc…i…" alias (pci-sysfs.c modalias_show) */
export function pciModalias(d: PciDev): string {
  return `pci:v${HEX(d.vendor, 8)}d${HEX(d.device, 8)}sv${HEX(d.subsystemVendor, 8)}sd${HEX(d.subsystemDevice, 8)}bc${HEX(d.class >> 16, 2)}sc${HEX((d.class >> 8) & 0xff, 2)}i${HEX(d.class & 0xff, 2)}`;
}

/** pci-driver.c pci_uevent (and the driver core's DRIVER= line first) */
export function pciUevent(d: PciDev): string {
  return [
    ...(d.driver ? [`DRIVER=${d.driver.name}`] : []),
    `PCI_CLASS=${d.class.toString(16).toUpperCase()}`,
    `PCI_ID=${HEX(d.vendor, 4)}:${HEX(d.device, 4)}`,
    `PCI_SUBSYS_ID=${HEX(d.subsystemVendor, 4)}:${HEX(d.subsystemDevice, 4)}`,
    `PCI_SLOT_NAME=${d.name}`,
    `MODALIAS=${pciModalias(d)}`,
  ].join("\n") + "\n";
}

/** PCIe link speed as pci_speed_string() prints it (probe.c speed_strings: "2.5", "5.0", "8.0" … "64.0 GT/s PCIe") */
const speedString = (gts: number) => `${gts.toFixed(1)} GT/s PCIe`;

/**
 * pci.c pci_init_reset_methods, in pci_reset_fn_methods order: "flr" (PCIe FLR, a VF's too),
 * "pm" (the PM capability; VFs of the model have none), "bus" (a secondary bus reset: not a
 * VF, behind a bridge, alone on its bus when probed — VFs join later).
 */
export function resetMethodsOf(d: PciDev, k: Kernel): string[] {
  if (d.resetMethods) return d.resetMethods;
  const m: string[] = [];
  if (!d.resetWorks) return m;
  if (d.pcie) m.push("flr");
  if (d.isVirtfn) return m;
  if (d.pmCap) m.push("pm");
  // only a PF or other function behind a bridge looks at its bus (VFs, the many, never do)
  if (d.bus !== 0) {
    const others = k.pci.functionsOnBus(d.domain, d.bus) - (k.pci.devices.get(d.name) === d ? 1 : 0);
    if (others === 0) m.push("bus");
  }
  return m;
}

const RESET_METHOD_NAMES = ["device_specific", "acpi", "flr", "af_flr", "pm", "bus", "cxl_bus"];

/** pcie/aer.c aer_correctable_error_string / aer_uncorrectable_error_string (the bits with names) */
const AER_COR = ["RxErr", "BadTLP", "BadDLLP", "Rollover", "Timeout", "NonFatalErr", "CorrIntErr", "HeaderOF"];
const AER_UNCOR = ["Undefined", "DLP", "SDES", "TLP", "FCP", "CmpltTO", "CmpltAbrt", "UnxCmplt", "RxOF", "MalfTLP", "ECRC", "UnsupReq", "ACSViol", "UncorrIntErr", "BlockedTLP", "AtomicOpBlocked", "TLPBlockedErr", "PoisonTLPBlocked", "DMWrReqBlocked", "IDECheck", "MisIDETLP", "PCRC_CHECK", "TLPXlatBlocked"];
const aerStats = (names: string[], total: string) => ro(() => [...names.map((n) => `${n} 0`), `TOTAL_${total} 0`].join("\n") + "\n");

/** pci-sysfs.c resource_show: start, end, flags of each resource (the model assigns no addresses: 0-based ranges) */
function resourceLines(d: PciDev): string {
  const flags = { mem: 0x40200, "mem-pref": 0x14220c, io: 0x40101 } as const;
  const line = (size: number, kind: keyof typeof flags) =>
    size ? `${hex(0, 16)} ${hex(size - 1, 16)} ${hex(flags[kind], 16)}` : `${hex(0, 16)} ${hex(0, 16)} ${hex(0, 16)}`;
  const rows = d.bars.map((s, i) => line(s, d.barKinds[i] ?? "mem"));
  rows.push(line(d.romSize, "mem"));
  // the SR-IOV VF BARs (PCI_IOV_RESOURCES) and the bridge windows
  for (let i = 0; i < 6; i++) rows.push(d.sriov ? line((d.sriov.vfBars[i] ?? 0) * d.sriov.totalVFs, "mem-pref") : line(0, "mem"));
  while (rows.length < 17) rows.push(line(0, "mem"));
  return rows.join("\n") + "\n";
}

/** pci-sysfs.c pci_read_config: the first 64 bytes of the header from the device's fields; the rest reads 0 */
function configSpace(d: PciDev): Buffer {
  const b = Buffer.alloc(d.pcie ? 4096 : 256);
  b.writeUInt16LE(d.vendor, 0);
  b.writeUInt16LE(d.device, 2);
  b.writeUInt16LE(d.command, 4);
  b.writeUInt16LE(0x0010, 6); // status: capabilities list
  b.writeUInt32LE(((d.class << 8) | d.revision) >>> 0, 8);
  b.writeUInt8(d.headerType, 14);
  if (d.headerType === 0) {
    b.writeUInt16LE(d.subsystemVendor, 0x2c);
    b.writeUInt16LE(d.subsystemDevice, 0x2e);
    b.writeUInt8(d.irqPin, 0x3d);
  }
  return b;
}

/** drivers/pci/pci.c: "D0", "D3hot" …: the model's devices stay in D0 (the lab reads D0 in every state) */
const powerState = () => "D0\n";

/**
 * pci_dev_groups + pci_dev_attr_groups, in the kernel's order. Writable attributes need
 * CAP_SYS_ADMIN in Linux; the model's processes have every capability.
 */
export const PCI_DEV_ATTRS: readonly DevAttr[] = [
  // pci_dev_attrs
  { name: "power_state", since: "pciPowerStateSysfs", make: () => ro(powerState) },
  { name: "resource", make: (d) => ro(() => resourceLines(d)) },
  { name: "vendor", make: (d) => ro(() => `${hex(d.vendor, 4)}\n`) },
  { name: "device", make: (d) => ro(() => `${hex(d.device, 4)}\n`) },
  { name: "subsystem_vendor", make: (d) => ro(() => `${hex(d.subsystemVendor, 4)}\n`) },
  { name: "subsystem_device", make: (d) => ro(() => `${hex(d.subsystemDevice, 4)}\n`) },
  { name: "revision", make: (d) => ro(() => `${hex(d.revision, 2)}\n`) },
  { name: "class", make: (d) => ro(() => `${hex(d.class, 6)}\n`) },
  // the INTx line the firmware routed (a VF has none: 0); with MSI (not MSI-X) on, the vector
  { name: "irq", make: (d) => ro(() => `${d.isVirtfn ? 0 : d.irq}\n`) },
  // the model has one CPU (/proc/stat: cpu0)
  { name: "local_cpus", make: () => ro(() => "1\n") },
  { name: "local_cpulist", make: () => ro(() => "0\n") },
  { name: "modalias", make: (d) => ro(() => `${pciModalias(d)}\n`) },
  // numa_node_store: the model's processes may not move a device to another node (EPERM)
  { name: "numa_node", needs: "NUMA", make: (d) => rw(() => `${d.numaNode}\n`, () => -ERRNO.EPERM) },
  { name: "dma_mask_bits", make: (d) => ro(() => `${d.dmaMaskBits}\n`) },
  { name: "consistent_dma_mask_bits", make: (d) => ro(() => `${d.coherentDmaMaskBits}\n`) },
  {
    // enable_store: 1 → pci_enable_device, 0 → pci_disable_device if enabled, else EIO
    name: "enable",
    make: (d, k) =>
      rw(
        () => `${d.enableCnt > 0 ? 1 : 0}\n`,
        (_t, b, c) => {
          const v = kstrtoull(str(b, c).trim(), 0);
          if (v < 0) return -ERRNO.EINVAL;
          if (v) pciEnableDevice(k, d);
          else if (d.enableCnt > 0) pciDisableDevice(d);
          else return -ERRNO.EIO;
          return c;
        },
      ),
  },
  { name: "broken_parity_status", make: (d) => flagAttr(() => d.brokenParity, (v) => (d.brokenParity = v)) },
  // msi_bus_store: a device that is not a bridge ignores the write
  { name: "msi_bus", make: () => rw(() => "1\n", (_t, _b, c) => c) },
  // CONFIG_PM && CONFIG_ACPI (every modelled build): d3cold_allowed starts as "has the PM capability"
  { name: "d3cold_allowed", make: (d) => flagAttr(() => d.d3coldAllowed ?? d.pmCap, (v) => (d.d3coldAllowed = v)) },
  // pci_ari_enabled(pdev->bus): the bridge forwards ARI when the bus's function 0 has it
  { name: "ari_enabled", make: (d) => ro(() => `${(d.physfn ?? d).ari ? 1 : 0}\n`) },
  // pci_dev_resource_{io,uc,wc}_attr_group: resource<N> for each BAR, _wc for prefetchable memory
  ...[0, 1, 2, 3, 4, 5].flatMap((i): DevAttr[] => [
    { name: `resource${i}`, visible: (d) => (d.bars[i] ?? 0) > 0, make: () => binOnly(0o600) },
    { name: `resource${i}_wc`, needs: "X86_PAT", visible: (d) => (d.bars[i] ?? 0) > 0 && d.barKinds[i] === "mem-pref", make: () => binOnly(0o600) },
  ]),
  // the header from the device's fields; writes would need a config space the model does not keep
  { name: "config", make: (d) => ({ t: "attr", mode: 0o644, show: () => configSpace(d).toString("latin1"), store: () => -ERRNO.EOPNOTSUPP }) },
  { name: "rom", visible: (d) => d.romSize > 0, make: () => binOnly(0o600) },
  // pci_dev_reset_attr_group / pci_dev_reset_method_attr_group (is_visible: pci_reset_supported)
  {
    name: "reset",
    visible: (d, k) => resetMethodsOf(d, k).length > 0,
    make: (d, k) => ({
      t: "attr",
      mode: 0o200,
      store: (_t: Task, b: Buffer, c: number) => {
        if (kstrtoull(str(b, c).trim(), 0) !== 1) return -ERRNO.EINVAL;
        // pci_reset_function: pci_dev_save_and_disable / pci_dev_restore log around it (pciResetLogged)
        if (k.profile.logsReset && d.driver) {
          k.log.dev(4, d, "resetting");
          k.log.dev(4, d, "reset done");
        }
        return c;
      },
    }),
  },
  {
    name: "reset_method",
    since: "pciResetMethodSysfs",
    visible: (d, k) => resetMethodsOf(d, k).length > 0,
    make: (d, k) =>
      rw(
        () => `${resetMethodsOf(d, k).join(" ")}\n`,
        (_t, b, c) => {
          // reset_method_store: "default", or names the device supports (in the written order)
          const words = str(b, c).trim().split(/\s+/).filter(Boolean);
          if (words.length === 1 && words[0] === "default") {
            d.resetMethods = null;
            return c;
          }
          const supported = (() => {
            const saved = d.resetMethods;
            d.resetMethods = null;
            const m = resetMethodsOf(d, k);
            d.resetMethods = saved;
            return m;
          })();
          if (!words.length || words.some((w) => !RESET_METHOD_NAMES.includes(w) || !supported.includes(w))) return -ERRNO.EINVAL;
          d.resetMethods = words;
          return c;
        },
      ),
  },
  // pci_dev_attr_group
  { name: "boot_vga", visible: (d) => d.class >> 8 === 0x0300, make: () => ro(() => "1\n") },
  {
    // serial_number_show: the DSN's eight bytes, big-endian, "%8phD" (dash-separated hex)
    name: "serial_number",
    since: "pciSerialNumberSysfs",
    visible: (d) => d.dsn !== null,
    make: (d) => ({
      t: "attr",
      mode: 0o400,
      show: () => `${[...Buffer.from(d.dsn!.toString(16).padStart(16, "0"), "hex")].map((x) => x.toString(16).padStart(2, "0")).join("-")}\n`,
    }),
  },
  // pci_dev_hp_attr_group (not on VFs): the model does not remove or rescan devices through sysfs
  { name: "remove", visible: (d) => !d.isVirtfn, make: () => ({ t: "attr", mode: 0o220, store: () => -ERRNO.EOPNOTSUPP }) },
  { name: "rescan", visible: (d) => !d.isVirtfn, make: () => ({ t: "attr", mode: 0o200, store: () => -ERRNO.EOPNOTSUPP }) },
  // pcie_dev_attr_group (pci_is_pcie): a VF reports its PF's link
  { name: "current_link_speed", visible: (d) => d.pcie, make: (d) => ro(() => `${speedString((d.physfn ?? d).linkSpeed)}\n`) },
  { name: "current_link_width", visible: (d) => d.pcie, make: (d) => ro(() => `${(d.physfn ?? d).linkWidth}\n`) },
  { name: "max_link_width", visible: (d) => d.pcie, make: (d) => ro(() => `${(d.physfn ?? d).linkWidth}\n`) },
  { name: "max_link_speed", visible: (d) => d.pcie, make: (d) => ro(() => `${speedString((d.physfn ?? d).linkSpeed)}\n`) },
  // pcie/aer.c aer_stats_attr_group (pdev->aer_info: the AER capability; the model's counters stay 0)
  { name: "aer_dev_correctable", needs: "PCIEAER", visible: (d) => d.aer, make: () => aerStats(AER_COR, "ERR_COR") },
  { name: "aer_dev_fatal", needs: "PCIEAER", visible: (d) => d.aer, make: () => aerStats(AER_UNCOR, "ERR_FATAL") },
  { name: "aer_dev_nonfatal", needs: "PCIEAER", visible: (d) => d.aer, make: () => aerStats(AER_UNCOR, "ERR_NONFATAL") },
  {
    // pcie/aer.c aer_attr_group "aer": the log ratelimits (DEFAULT_RATELIMIT_BURST 10,
    // DEFAULT_RATELIMIT_INTERVAL 5 s). The *_interval_ms store converts milliseconds to jiffies
    // (msecs_to_jiffies) but the show prints the jiffies: 5000 ms reads 1250 at HZ=250 (Debian's
    // 7.3.4 in the lab)
    name: "aer",
    since: "pciAerRatelimitSysfs",
    needs: "PCIEAER",
    visible: (d) => d.aer,
    make: (d, k) => {
      const hz = k.profile.hz;
      const rl = (d.aerRatelimits ??= { correctable_ratelimit_interval_ms: 5 * hz, correctable_ratelimit_burst: 10, nonfatal_ratelimit_interval_ms: 5 * hz, nonfatal_ratelimit_burst: 10 });
      const one = (n: keyof typeof rl) =>
        rw(
          () => `${rl[n]}\n`,
          (_t, b, c) => {
            const s = str(b, c).trim();
            if (!/^[-+]?\d+$/.test(s)) return -ERRNO.EINVAL; // kstrtoint
            const v = Number(s);
            // interval: <= 0 disables (0), else msecs_to_jiffies (rounded up); burst as written
            rl[n] = n.endsWith("_ms") ? (v <= 0 ? 0 : Math.ceil((v * hz) / 1000)) : v;
            return c;
          },
        );
      return staticDir(Object.fromEntries((Object.keys(rl) as (keyof typeof rl)[]).map((n) => [n, one(n)])));
    },
  },
  {
    // pcie/aspm.c aspm_ctrl_attr_group "link": the ASPM states the link supports (a VF's is its PF's link)
    name: "link",
    visible: (d) => d.pcie && (d.physfn ?? d).aspm.length > 0,
    make: (d) => staticDir(Object.fromEntries((d.physfn ?? d).aspm.map((s) => [`${s}_aspm`, flagAttr(() => false, () => {})]))),
  },
];

/**
 * A binary attribute for mmap (resource<N>, rom): it opens, and read(2) / write(2) are EIO
 * (sysfs_kf_bin_read / _write without the attribute's .read / .write: the lab reads EIO from
 * resource0 on every kernel). An I/O BAR's resource<N> has port read/write ops in Linux; the model
 * has no ports, so it answers EIO too.
 */
function binOnly(mode: number): AttrNode {
  return {
    t: "attr",
    mode,
    show: () => {
      throw new SysErrorCode(ERRNO.EIO);
    },
    store: () => -ERRNO.EIO,
  };
}

/** The PCI core's entries of a device directory (and another table's after them), for any device: each is asked with the device. */
export interface PciDeviceEntries {
  /** the names device `d` has on this kernel, in the kernel's order */
  names(d: PciDev, k: Kernel): string[];
  /** the node of entry `name` of device `d`, undefined when it has none by that name */
  entry(name: string, d: PciDev, k: Kernel): Node | undefined;
}

/** {@link PCI_DEV_ATTRS} with `extra` after them (the SR-IOV groups: iov.ts SRIOV_ATTRS), by name. */
export function pciDeviceEntries(extra: readonly DevAttr[] = []): PciDeviceEntries {
  const all = [...PCI_DEV_ATTRS, ...extra];
  const byName = new Map(all.map((a) => [a.name, a]));
  return {
    names: (d, k) => all.filter((a) => attrVisible(a, d, k)).map((a) => a.name),
    entry: (name, d, k) => {
      const a = byName.get(name);
      return a && attrVisible(a, d, k) ? a.make(d, k) : undefined;
    },
  };
}

// ------------------------------------------------------------------ class-device indices

interface Ids {
  irqs: Ida;
  ptp: Ida;
  wakeup: number;
  sources: WeakMap<PciDev, Map<string, number>>;
}
const ids = new WeakMap<Kernel, Ids>();
const idsOf = (k: Kernel): Ids => {
  let i = ids.get(k);
  if (!i) ids.set(k, (i = { irqs: new Ida(24), ptp: new Ida(), wakeup: 0, sources: new WeakMap() }));
  return i;
};

/**
 * kernel/irq: Linux IRQ numbers for MSI-X vectors, the lowest free from 24 up (x86: after the
 * IO-APIC's 24 pins). The numbers the lab's guests hand out depend on everything probed before;
 * the lab compares how many a device has, not which.
 */
export function msiAllocIrqs(k: Kernel, n: number): number[] {
  const s = idsOf(k).irqs;
  return Array.from({ length: n }, () => s.alloc());
}

export function msiFreeIrqs(k: Kernel, irqs: readonly number[]): void {
  for (const i of irqs) idsOf(k).irqs.free(i);
}

/** drivers/ptp ptp_clock_register: ptp<N>, N the lowest free index (an IDA) */
export function ptpClockRegister(k: Kernel, d: PciDev): void {
  d.ptpIndex = idsOf(k).ptp.alloc();
}

export function ptpClockUnregister(k: Kernel, d: PciDev): void {
  if (d.ptpIndex !== null) idsOf(k).ptp.free(d.ptpIndex);
  d.ptpIndex = null;
}

/**
 * The wakeup sources under a device (wakeup/wakeup<N>, CONFIG_PM_SLEEP): its own when it is
 * wakeup-enabled (device_wakeup_enable, named after the device), and from 7.0 the ACPI PM
 * notifier's, named after its ACPI companion (acpiWakeupSourceUnderDevice; before, that one
 * was under the ACPI device). N comes from one counter in creation order.
 */
export function wakeupSourcesOf(d: PciDev, k: Kernel): { id: number; name: string }[] {
  if (!k.profile.config.PM_SLEEP) return [];
  const names: string[] = [];
  if (d.wakeup && d.wakeupEnabled) names.push(d.name); // device_wakeup_enable registers it, _disable drops it
  if (d.acpiNode && k.profile.behaviour.acpiWakeupSourceUnderDevice) names.push(d.acpiNode.slice(d.acpiNode.lastIndexOf("/") + 1));
  const i = idsOf(k);
  let m = i.sources.get(d);
  if (!m) i.sources.set(d, (m = new Map()));
  return names.map((name) => {
    if (!m!.has(name)) m!.set(name, i.wakeup++);
    return { id: m!.get(name)!, name };
  });
}

/** drivers/base/power/wakeup_stats.c: a wakeup source's class device (its counters are 0 in the model) */
export function wakeupSourceDir(d: PciDev, name: string, rel: (to: string) => string): DirNode {
  const zero = () => ro(() => "0\n");
  const files: Record<string, Node> = {
    active_count: zero(),
    active_time_ms: zero(),
    device: { t: "link", target: `../../../${d.name}` },
    event_count: zero(),
    expire_count: zero(),
    last_change_ms: zero(),
    max_time_ms: zero(),
    name: ro(() => `${name}\n`),
    prevent_suspend_time_ms: zero(),
    subsystem: { t: "link", target: rel("/sys/class/wakeup") },
    total_time_ms: zero(),
    uevent: rw(() => "", (_t, _b, c) => c),
    wakeup_count: zero(),
  };
  return lazyDir(
    () => Object.keys(files),
    (n) => files[n],
  );
}
