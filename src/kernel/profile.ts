/**
 * The modelled kernel: a version (any string src/kernel/versions.ts identifies) and a build
 * configuration. Everything version-dependent in the model reads this profile, and every field
 * of it is derived from the behaviour table (versions.ts) — no field names a release.
 *
 * The profiles "6.1" and "6.12" are aliases of the lab's Debian kernels (6.1.192 and 6.12.117,
 * both built without CONFIG_IOMMUFD); they resolve to exactly what the lab compared.
 *
 * @example
 * ```ts
 * import { profileOf } from "vfioctl";
 * profileOf("6.12").unregisterHidesDevice;                       // true
 * profileOf("6.17.1", { VFIO_DEVICE_CDEV: true }).cdevToken;      // "e2big"
 * ```
 */
import { identifyKernel, parseKernelSpec, resolveBehaviour, type Behaviour, type BehaviourOverrides, type KernelIdent, type KernelProfileName, type Release } from "./versions.js";

/** Any version string the behaviour table can resolve ("6.1" and "6.12" are the lab aliases). */
export type KernelVersion = string;
export type { KernelProfileName };

/** The build options the model distinguishes (Kconfig names without CONFIG_). */
export interface KernelConfig {
  /** drivers/iommu/iommufd: /dev/iommu (6.2+) */
  IOMMUFD: boolean;
  /** drivers/vfio/device_cdev.c: /dev/vfio/devices/vfio<N> and BIND_IOMMUFD (6.6+; depends on IOMMUFD) */
  VFIO_DEVICE_CDEV: boolean;
  /** numa_node in a PCI device's directory (pci-sysfs.c pci_dev_attrs) */
  NUMA: boolean;
  /** power/async and, for a wakeup-capable device, power/wakeup* and wakeup/wakeup<N> (drivers/base/power) */
  PM_SLEEP: boolean;
  /** power/runtime_usage, runtime_active_kids, runtime_enabled (drivers/base/power/sysfs.c) */
  PM_ADVANCED_DEBUG: boolean;
  /** aer_dev_* (and aer/ where the release has it) of a device with an AER capability (drivers/pci/pcie/aer.c) */
  PCIEAER: boolean;
  /** resource<N>_wc of a prefetchable memory BAR (arch_can_pci_mmap_wc: pat_enabled()) */
  X86_PAT: boolean;
}

/** The vfio options (checked against the release) and the options that decide which sysfs files a device has. */
export const CONFIG_NAMES: readonly (keyof KernelConfig)[] = ["IOMMUFD", "VFIO_DEVICE_CDEV", "NUMA", "PM_SLEEP", "PM_ADVANCED_DEBUG", "PCIEAER", "X86_PAT"];

/** The options every Debian, Ubuntu and RHEL amd64 kernel has and the lab's own tinyconfig builds do not (lab/kernel.config). */
const DISTRO_OPTIONS = ["NUMA", "PM_SLEEP", "PM_ADVANCED_DEBUG", "PCIEAER", "X86_PAT"] as const;

/**
 * How VFIO_DEVICE_BIND_IOMMUFD treats the VF token on this kernel: "none" no cdev path;
 * "bypass" no check at all (6.6–6.16, 6.12.y); "e2big" checked but a token cannot be passed
 * (the 16-byte copy: 6.15.y/6.16.y backports, 6.17, 6.18.0–6.18.2); "checked" fixed.
 */
export type CdevTokenRule = "none" | "bypass" | "e2big" | "checked";

export interface KernelProfile {
  /** the version string as given ("6.1", "6.17.1", "6.8.0-51-generic", "7.3.4 -bindIommufdFullStruct") */
  readonly version: KernelVersion;
  /** the table entries the spec reverted (false) or added (true) on top of its release (versions.ts parseKernelSpec) */
  readonly overrides: BehaviourOverrides;
  readonly ident: KernelIdent;
  readonly release: Release;
  /** every behaviour flag of the table for this release */
  readonly behaviour: Behaviour;
  readonly config: Readonly<KernelConfig>;
  readonly cdevToken: CdevTokenRule;
  /** drivers/base/dd.c call_driver_probe: the probe-failed line (probeFailedDevErr) */
  probeFailed(drv: string, dev: string, err: number): { text: string; onDevice: boolean; level: number };
  /** drivers/pci/pci.c: "resetting" / "reset done" (level 4) around a function reset under a driver without reset handlers (pciResetLogged) */
  readonly logsReset: boolean;
  /** drivers/iommu/iommu.c: "Removing from iommu group N" when a device leaves its group (!iommuRemoveSilent) */
  readonly logsIommuRemove: boolean;
  /**
   * drivers/pci/iov.c sriov_numvfs_show takes device_lock (35ff867b7657, 5.5). The spec expected
   * a 2024 revert by 6.12; the lab showed Debian's 6.12.117 still blocks the read behind a
   * blocked disable, so no revert is in the table and every kernel takes the lock.
   */
  readonly numvfsShowTakesLock: boolean;
  /** drivers/pci/probe.c pci_setup_device: the enumeration line for a new device (pciEnumDeviceType) */
  enumLine(vendor: number, device: number, headerType: number, cls: number, pcie: boolean): string;
  /** sizeof(struct vfio_device_info) copied back: 20 in the 6.1 and 6.12 headers (no entry in the table) */
  readonly deviceInfoSize: number;
  /** vfio_unregister_group_dev hides the device from GET_DEVICE_FD at once (unregisterHidesDevice) */
  readonly unregisterHidesDevice: boolean;
  /**
   * CONFIG_HZ: 250 on Debian's amd64 kernels and the lab's builds (read in their configs), 1000
   * on Ubuntu's and RHEL's generic kernels (not checked); seen where a value is shown in jiffies
   */
  readonly hz: number;
}

const hex4 = (n: number) => n.toString(16).padStart(4, "0");
const hex6 = (n: number) => n.toString(16).padStart(6, "0");

export class KernelConfigError extends Error {
  constructor(
    readonly field: keyof KernelConfig,
    readonly expected: string,
    readonly found: boolean,
  ) {
    super(`kernel.config.${field}: expected ${expected}, got ${found}`);
    this.name = "KernelConfigError";
  }
}

/**
 * The configuration a version string stands for when none is given: Debian's kernels (and the
 * two profile names) have neither IOMMUFD nor VFIO_DEVICE_CDEV (checked for every Debian amd64
 * kernel 6.1–7.3, docs/LAB.md); a plain upstream release is taken as the lab builds it, with
 * both wherever they exist; Ubuntu's as built with both (inferred, not checked); RHEL's without.
 */
export function defaultConfig(id: KernelIdent, b: Behaviour = resolveBehaviour(id.release)): KernelConfig {
  const on = id.distro === "upstream" || id.distro === "ubuntu";
  // a distribution kernel has NUMA, PM_SLEEP, PM_ADVANCED_DEBUG, PCIEAER and X86_PAT (Debian's
  // 6.1, 6.12 and 7.3 configs); an upstream release stands for the lab's build, which has none
  const distro = id.distro !== "upstream";
  return { IOMMUFD: on && b.iommufd, VFIO_DEVICE_CDEV: on && b.vfioDeviceCdev, ...(Object.fromEntries(DISTRO_OPTIONS.map((o) => [o, distro])) as Record<(typeof DISTRO_OPTIONS)[number], boolean>) };
}

/** Check a configuration against what the release can have (Kconfig dependencies). */
function checkConfig(id: KernelIdent, b: Behaviour, c: KernelConfig): void {
  if (c.IOMMUFD && !b.iommufd) throw new KernelConfigError("IOMMUFD", `false on ${id.osrelease} (iommufd arrived in 6.2)`, true);
  if (c.VFIO_DEVICE_CDEV && !b.vfioDeviceCdev) throw new KernelConfigError("VFIO_DEVICE_CDEV", `false on ${id.osrelease} (the vfio cdev arrived in 6.6)`, true);
  if (c.VFIO_DEVICE_CDEV && !c.IOMMUFD) throw new KernelConfigError("VFIO_DEVICE_CDEV", "false with IOMMUFD: false (VFIO_DEVICE_CDEV depends on IOMMUFD)", true);
}

/**
 * The profile of a kernel: its version string resolved against the behaviour table, and its
 * configuration (the version's default, overridden field by field; VFIO_DEVICE_CDEV: true
 * implies IOMMUFD unless that is given). Throws KernelVersionError / KernelConfigError.
 */
export function profileOf(v: KernelVersion, config: Partial<KernelConfig> = {}): KernelProfile {
  const key = `${v}|${CONFIG_NAMES.map((n) => config[n] ?? "").join("|")}`;
  let p = memo.get(key);
  if (!p) memo.set(key, (p = resolveProfile(v, config)));
  return p;
}

const memo = new Map<string, KernelProfile>();

function resolveProfile(v: KernelVersion, config: Partial<KernelConfig>): KernelProfile {
  const spec = parseKernelSpec(v);
  const ident = identifyKernel(spec.version);
  const b = resolveBehaviour(ident.release, spec.overrides);
  const base = defaultConfig(ident, b);
  const cfg: KernelConfig = {
    ...base,
    ...Object.fromEntries(DISTRO_OPTIONS.filter((o) => config[o] !== undefined).map((o) => [o, config[o]])),
    IOMMUFD: config.IOMMUFD ?? (config.VFIO_DEVICE_CDEV ? true : base.IOMMUFD),
    VFIO_DEVICE_CDEV: config.VFIO_DEVICE_CDEV ?? (config.IOMMUFD === false ? false : base.VFIO_DEVICE_CDEV),
  };
  checkConfig(ident, b, cfg);
  const cdevToken: CdevTokenRule = !cfg.VFIO_DEVICE_CDEV ? "none" : !b.bindIommufdToken ? "bypass" : !b.bindIommufdFullStruct ? "e2big" : "checked";
  return {
    version: v,
    overrides: spec.overrides,
    ident,
    release: ident.release,
    behaviour: b,
    config: Object.freeze(cfg),
    cdevToken,
    probeFailed: b.probeFailedDevErr
      ? (drv, dev, err) => ({ text: `${drv} ${dev}: probe with driver ${drv} failed with error ${err}`, onDevice: true, level: 3 })
      : (drv, dev, err) => ({ text: `${drv}: probe of ${dev} failed with error ${err}`, onDevice: false, level: 4 }),
    logsIommuRemove: !b.iommuRemoveSilent,
    logsReset: b.pciResetLogged,
    numvfsShowTakesLock: true,
    enumLine: b.pciEnumDeviceType
      ? (vn, d, ht, cls, pcie) => `[${hex4(vn)}:${hex4(d)}] type ${ht.toString(16).padStart(2, "0")} class 0x${hex6(cls)}${pcie ? " PCIe Endpoint" : " conventional PCI endpoint"}`
      : (vn, d, ht, cls) => `[${hex4(vn)}:${hex4(d)}] type ${ht.toString(16).padStart(2, "0")} class 0x${hex6(cls)}`,
    deviceInfoSize: 20,
    unregisterHidesDevice: b.unregisterHidesDevice,
    hz: ident.distro === "ubuntu" || ident.distro === "rhel" ? 1000 : 250,
  };
}

/** The lab's two kernels by profile name. */
export const PROFILES: Readonly<Record<KernelProfileName, KernelProfile>> = {
  "6.1": profileOf("6.1"),
  "6.12": profileOf("6.12"),
};
