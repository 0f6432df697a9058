/**
 * Linux's behaviour over many versions, as data: one entry per upstream change that userspace
 * can see (an errno, an order of checks, a log line, a node that appears), with the commit, the
 * mainline release that first carries it and the stable releases it was backported to. A kernel
 * is a version string (`6.12.58`, `7.3.4`, `6.12.117+deb13-amd64`, `6.8.0-51-generic`); its
 * behaviour is whatever this table resolves for it. The named profiles "6.1" and "6.12" are
 * aliases of the two Debian kernels the lab boots (6.1.192 and 6.12.117).
 *
 * Confidence of each entry (`confidence`): "source" — read in kernel source at a named commit;
 * "patch" — read in the patch or pull-request text (the merge release is inferred from the
 * merge window); "lab" — seen on a real kernel in the lab; "inferred" — neither, follow it but
 * let the lab confirm it. docs/kernel-versions.md lists the table with its sources.
 *
 * @example
 * ```ts
 * import { identifyKernel, resolveBehaviour } from "vfioctl";
 * const k = identifyKernel("6.16.3");
 * resolveBehaviour(k.release).bindIommufdToken; // true (backported to 6.16.y)
 * resolveBehaviour(identifyKernel("6.12.117+deb13-amd64").release).bindIommufdToken; // false
 * ```
 */

/** An upstream release: major.minor.patch (an -rc counts as patch 0 of its release). */
export interface Release {
  major: number;
  minor: number;
  patch: number;
}

export type BehaviourFlag =
  | "tokenBeforeContainer"
  | "vfioDeviceSysfs"
  | "iommufd"
  | "igbSriovAfterReinit"
  | "iommuRemoveSilent"
  | "unregisterHidesDevice"
  | "deviceDelBeforeWait"
  | "vfioDeviceCdev"
  | "pciEnumDeviceType"
  | "probeFailedDevErr"
  | "denylistDsaIax"
  | "pciResetLogged"
  | "bindIommufdToken"
  | "vfDevSetSeparate"
  | "deviceFeatureEnotty"
  | "bindIommufdFullStruct"
  | "driverOverrideGeneric"
  | "pciPowerStateSysfs"
  | "sriovVfMsixSysfs"
  | "pciResetMethodSysfs"
  | "pciAerRatelimitSysfs"
  | "pciSerialNumberSysfs"
  | "acpiWakeupSourceUnderDevice";

export type Behaviour = Readonly<Record<BehaviourFlag, boolean>>;

export interface BehaviourChange {
  /** the behaviour flag this change turns on */
  flag: BehaviourFlag;
  /** upstream commit (12 hex digits), or null when the commit was not located */
  commit: string | null;
  /** the commit's one-line title */
  title: string;
  /** first mainline release that carries it ("6.17") */
  mainline: string;
  /** first stable release of each older branch that carries a backport ("6.15.10") */
  stable: readonly string[];
  confidence: "source" | "patch" | "lab" | "inferred";
  /** what userspace sees once it is in */
  effect: string;
  /** where it was read */
  source: string;
}

/**
 * The table, oldest first. Keep one entry per change; a behaviour that two commits made is two
 * entries with two flags. Boundaries are tested on both sides (test/kernel-versions.test.ts).
 */
export const BEHAVIOUR_CHANGES: readonly BehaviourChange[] = [
  {
    flag: "pciPowerStateSysfs",
    commit: "9f1c0ebea21a",
    title: "PCI: Add sysfs attribute for device power state",
    mainline: "5.11",
    stable: [],
    confidence: "patch",
    effect: "a PCI device's directory has power_state (0444: D0, D3hot, …)",
    source: "the patch as applied (Maximilian Luz, Nov 2020, ABI date November 2020: the 5.11 merge window); lab: 6.1.0-57, 6.12.117, 7.3.4 all have it",
  },
  {
    flag: "sriovVfMsixSysfs",
    commit: "c3d5c2d96d69",
    title: "PCI/IOV: Add sysfs MSI-X vector assignment interface",
    mainline: "5.12",
    stable: [],
    confidence: "inferred",
    effect: "every PF has sriov_vf_total_msix (0444; 0 unless its driver has sriov_get_vf_total_msix) and every VF sriov_vf_msix_count (0200), with CONFIG_PCI_MSI",
    source: "iov.c sriov_pf_dev_attrs / sriov_vf_dev_attrs of Debian's 6.12 and 7.3 sources (visible on any PF or VF, whatever the driver); the release is from memory of the mlx5 dynamic MSI-X series (Leon Romanovsky, 2021), not read; lab: 6.1.0-57 shows both with igb, vfio-pci and pci-pf-stub",
  },
  {
    flag: "pciResetMethodSysfs",
    commit: "d88f521da3ef",
    title: "PCI: Allow userspace to query and set device reset mechanism",
    mainline: "5.15",
    stable: [],
    confidence: "inferred",
    effect: "a device with a reset method has reset_method (0644: the methods in order, e.g. \"flr pm bus\"; write a subset or \"default\")",
    source: "pci.c reset_method_show (6.12) / pci-sysfs.c (7.3: moved there); the commit and release are from memory, not read; lab: 6.1.0-57 has it (PF \"flr pm bus\", VF \"flr\")",
  },
  {
    flag: "tokenBeforeContainer",
    commit: "805bb6c1bd90",
    title: "vfio: Split up vfio_group_get_device_fd()",
    mainline: "5.19",
    stable: [],
    confidence: "patch",
    effect: "VFIO_GROUP_GET_DEVICE_FD parses the match string and validates the VF token (which may set the PF token) before it requires a container with an IOMMU; before, a group without a container failed EINVAL first and the token was untouched",
    source: "the patch (Jason Gunthorpe's vfio_group locking series, v2 of 2022-05-16, 3/6): vfio_device_get_from_name (→ ops->match → the token) moves ahead of the container check, which becomes vfio_device_assign_container inside vfio_device_open; merged for 5.19. kernel-spec §2.7 (5.7 vfio.c order [C]); 6.1 and 6.12 order confirmed in the lab",
  },
  {
    flag: "vfioDeviceSysfs",
    commit: null,
    title: "vfio: Add struct device to vfio_device",
    mainline: "6.1",
    stable: [],
    confidence: "inferred",
    effect: "each vfio device is a class device: /sys/bus/pci/devices/<BDF>/vfio-dev/vfio<N> (N from one IDA over all vfio devices)",
    source: "vfio_main.c __vfio_register_dev device_add(&device->device) with class vfio-dev, parent = the PCI device [C: main62 037dd1308c6d]; release inferred",
  },
  {
    flag: "iommufd",
    commit: null,
    title: "iommufd: File descriptor, context, kconfig and makefiles",
    mainline: "6.2",
    stable: [],
    confidence: "inferred",
    effect: "CONFIG_IOMMUFD exists: /dev/iommu, IOMMU_IOAS_ALLOC, IOMMU_DESTROY",
    source: "kernel-spec §9 (iommufd arrives in 6.2)",
  },
  {
    flag: "igbSriovAfterReinit",
    commit: null,
    title: "igb: Enable SR-IOV after reinit",
    mainline: "6.2",
    stable: [],
    confidence: "patch",
    effect: 'igb logs "N VFs allocated" before pci_enable_sriov creates the VFs (before their enumeration lines); before, after them',
    source: "Akihiko Odaki, netdev 2022-11-22 <20221122092803.31083-1-akihiko.odaki@daynix.com>; lab: 6.1.192 after, 6.12.117 before",
  },
  {
    flag: "iommuRemoveSilent",
    commit: null,
    title: "iommu: Simplify the __iommu_group_remove_device() flow (iommu_probe series)",
    mainline: "6.5",
    stable: [],
    confidence: "patch",
    effect: 'a device leaving its IOMMU group (VF removal) no longer logs "Removing from iommu group N" (only iommu_group_remove_device, which drivers call, still does)',
    source: "Jason Gunthorpe, v3 04/10 <4-v3-328044aa278c+45e49-iommu_probe_jgg@nvidia.com> (2023-06-05); lab: 6.1 logs it, 6.12 does not",
  },
  {
    flag: "unregisterHidesDevice",
    commit: "291872a533a2",
    title: "vfio: Move vfio_device_group_unregister() to be the first operation in unregister",
    mainline: "6.6",
    stable: [],
    confidence: "patch",
    effect: "a device whose removal waits for userspace is off its group's list at once: VFIO_GROUP_GET_DEVICE_FD finds it no more (ENODEV); before, a second fd could still be opened and the removal waited for it too",
    source: "v15 16/26 <20230718135551.6592-17-yi.l.liu@intel.com>, vfio cdev merge for 6.6; lab: 6.1 reopens, 6.12 ENODEV",
  },
  {
    flag: "deviceDelBeforeWait",
    commit: "38c24544e10a",
    title: "vfio: Move device_del() before waiting for the last vfio_device registration refcount",
    mainline: "6.6",
    stable: [],
    confidence: "patch",
    effect: "the vfio-dev/vfio<N> class device (and its /dev/vfio/devices node) goes away when removal starts, not after the last fd closed",
    source: "vfio cdev merge for 6.6 (merge log)",
  },
  {
    flag: "vfioDeviceCdev",
    commit: "5fcc26969a16",
    title: "vfio: Add VFIO_DEVICE_BIND_IOMMUFD",
    mainline: "6.6",
    stable: [],
    confidence: "source",
    effect: "CONFIG_VFIO_DEVICE_CDEV exists: /dev/vfio/devices/vfio<N>, VFIO_DEVICE_BIND_IOMMUFD (16-byte struct, flags must be 0, no VF-token check), ATTACH/DETACH_IOMMUFD_PT, group and cdev paths exclude each other (EBUSY)",
    source: "device_cdev.c @a23e19669324 and @1260ed777985, group.c vfio_device_block_group, vfio_main.c vfio_device_fops_unl_ioctl",
  },
  {
    flag: "pciEnumDeviceType",
    commit: "24d7d693d999",
    title: "PCI: Log device type during enumeration",
    mainline: "6.8",
    stable: [],
    confidence: "patch",
    effect: 'the enumeration line ends with the device type: "… class 0x020000 PCIe Endpoint" ("conventional PCI endpoint", "PCIe Root Port" …)',
    source: "Bjorn Helgaas, [PATCH 1/7] 2023-12-05, pci tree (id from the pci next branch); lab: 6.12 appends it, 6.1 does not",
  },
  {
    flag: "probeFailedDevErr",
    commit: "32de4b4f9dfa",
    title: "driver: core: Log probe failure as error and with device metadata",
    mainline: "6.9",
    stable: [],
    confidence: "patch",
    effect: 'a failed probe logs "<drv> <dev>: probe with driver <drv> failed with error -N" at level 3; before, "<drv>: probe of <dev> failed with error -N" at level 4',
    source: "driver-core pull for 6.9 (Nícolas F. R. A. Prado); lab: 6.1 pr_warn, 6.12 dev_err",
  },
  {
    flag: "denylistDsaIax",
    commit: "95feb3160eef",
    title: "VFIO: Add the SPR_DSA and SPR_IAX devices to the denylist",
    mainline: "6.10",
    stable: ["6.1.91", "6.6.31", "6.8.10", "6.9.1"],
    confidence: "patch",
    effect: "vfio-pci refuses Intel DSA and IAX (8086:0b25, 8086:0cfe) with EINVAL unless disable_denylist=Y",
    source: "the patch (Arjan van de Ven, public with the hardware erratum in May 2024) in the 6.10 merge window; the stable releases of 2024-05-17: the 6.9.1 review patch, the 6.8.10-rc2 shortlog, and the 6.1.91 and 6.6.31 announcements (drivers/vfio/pci/vfio_pci.c, 2 lines); 5.15.y and 5.10.y not read",
  },
  {
    flag: "pciResetLogged",
    commit: "a3151e6daaec",
    title: "PCI: Warn if a running device is unaware of reset",
    mainline: "6.13",
    stable: [],
    confidence: "patch",
    effect: 'pci_dev_save_and_disable / pci_dev_restore log "<drv> <dev>: resetting" and "<drv> <dev>: reset done" at level 4 when the bound driver has no reset_prepare / reset_done handler: vfio-pci logs both at every first open of a device (vfio_pci_core_enable → pci_try_reset_function) and at VFIO_DEVICE_RESET',
    source: "the patch (Keith Busch, linux-pci 2024-10-25, v2) and its commit in the PCI pull for 6.13; drivers/pci/pci.c in Debian's linux-source-7.3 (7.3.4) has it, linux-source-6.12 (6.12.117) not; lab: every first open on 7.3.4 (Debian's and the lab's build) logs both lines, 6.12.117 none. A logging change, not a fix: no stable backport",
  },
  {
    flag: "pciAerRatelimitSysfs",
    commit: null,
    title: "PCI/AER: Add sysfs attributes for log ratelimits",
    mainline: "6.16",
    stable: [],
    confidence: "patch",
    effect: "a device with an AER capability has aer/ (correctable_ratelimit_interval_ms, correctable_ratelimit_burst, nonfatal_ratelimit_interval_ms, nonfatal_ratelimit_burst; 0644; 5000 and 10), with CONFIG_PCIEAER",
    source: "[PATCH v8 20/20] (Jon Pan-Doh, Bjorn Helgaas, 2025-05-22; ABI KernelVersion 6.16.0); pcie/aer.c aer_attr_group of Debian's 7.3 source, absent from 6.12's; lab: Debian's 7.3.4 has it, 6.12.117 has not",
  },
  {
    flag: "bindIommufdToken",
    commit: "86624ba3b522",
    title: "vfio/pci: Do vf_token checks for VFIO_DEVICE_BIND_IOMMUFD",
    mainline: "6.17",
    stable: ["6.15.10", "6.16.1"],
    confidence: "patch",
    effect: "BIND_IOMMUFD checks the VF token (same table and log lines as the group path, function vfio_pci_core_match_token_uuid); struct grows to 24 bytes with VFIO_DEVICE_BIND_FLAG_TOKEN and token_uuid_ptr; the check runs after the group block and before the iommufd fd is looked up",
    source: "v3 <0-v3-bdd8716e85fe+3978a-vfio_token_jgg@nvidia.com> with the goto-unlock fix-up applied on merge; 6.15.y stable-rc push 2025-08-12 (3969bf4713a4); 6.16.y per the issue; the first stable release numbers are inferred",
  },
  {
    flag: "vfDevSetSeparate",
    commit: "e908f58b6beb",
    title: "vfio/pci: Separate SR-IOV VF dev_set",
    mainline: "6.17",
    stable: ["6.1.148", "6.12.42"],
    confidence: "patch",
    effect: "VFs get a dev_set of their own (no longer the PF's slot/bus set): parallel VF opens, hot-reset scope; not modelled (the model has no dev_sets)",
    source: "Alex Williamson 2025-06-26; stable pushes with it in 2025-08 (several branches); stable versions per the issue",
  },
  {
    flag: "deviceFeatureEnotty",
    commit: "16df67f2189a",
    title: "vfio: return -ENOTTY for unsupported device feature",
    mainline: "6.18",
    stable: ["6.1.159", "6.12.58"],
    confidence: "patch",
    effect: "VFIO_DEVICE_FEATURE on a driver without a device_feature op returns ENOTTY, not EINVAL; vfio-pci has the op, so nothing changes for vfio-pci devices",
    source: "kernel-spec §0 (16df67f2189a, Sept 2025); stable versions per the issue",
  },
  {
    flag: "bindIommufdFullStruct",
    commit: "2f03f21fe751",
    title: "vfio: Fix ksize arg while copying user struct in vfio_df_ioctl_bind_iommufd()",
    mainline: "6.19",
    stable: ["6.18.3"],
    confidence: "patch",
    effect: "BIND_IOMMUFD copies the whole 24-byte struct: a token_uuid_ptr is read instead of failing E2BIG (copy_struct_from_user was given the old 16-byte size, so any non-zero byte past 16 was E2BIG and the pointer field was never filled in)",
    source: "stable review [PATCH 6.18 404/430] 2025-12-29 (commit 2f03f21fe7516902283b135de272d3c7b10672de upstream); mainline release and 6.18.3 per the issue",
  },
  {
    flag: "pciSerialNumberSysfs",
    commit: null,
    title: "PCI: Add sysfs attribute for the Device Serial Number (serial_number)",
    mainline: "6.19",
    stable: [],
    confidence: "inferred",
    effect: "a device with a DSN capability has serial_number (0400, the eight bytes dash-separated: 00-11-22-…)",
    source: "pci-sysfs.c serial_number_show in Debian's 7.3 source, absent from 6.12's; patch by Matthew Wood (ABI date December 2025: the release is inferred); the lab's QEMU 82576 has no DSN, so the lab has not seen it",
  },
  {
    flag: "acpiWakeupSourceUnderDevice",
    commit: null,
    title: "ACPI: PM: Register wakeup sources under physical devices",
    mainline: "7.0",
    stable: [],
    confidence: "lab",
    effect: "the ACPI PM notifier's wakeup source (named after the ACPI companion, \"device:03\") is under the PCI device: wakeup/wakeup<N> of every device with an ACPI companion, VFs included; before, it was under the ACPI device",
    source: "[RESEND][PATCH v1 2/2] (Rafael J. Wysocki, 2025-12-15), which makes acpi_add_pm_notifier register with the target device as parent: the release is inferred from the date; lab: Debian's 7.3.4 has wakeup/ under the VFs (name device:04), 6.12.117 and 6.1.0-57 have it under the PF only (its own, named 0000:01:00.0)",
  },
  {
    flag: "driverOverrideGeneric",
    commit: "cb3d1049f4ea",
    title: "driver core: generalize driver_override in struct device (its own spinlock; PCI converted to it)",
    mainline: "7.0",
    stable: ["6.12.80"],
    confidence: "lab",
    effect: "reading or writing a PCI device's driver_override takes a spinlock (drivers/base/bus.c driver_override_show, dd.c __device_set_driver_override) instead of the device lock: it no longer waits behind a removal or a sriov_numvfs write that waits for a VF's user",
    source: "drivers/base/bus.c of Debian's linux-source-6.12 (6.12.117) and linux-source-7.3 (7.3.4) have the spinlock version; the lab: on 6.12.117 the reads of scenarios/blocking-removal.yaml return at once, on 6.1.0-57 they wait; the driver-core commit is of 2026-03-03, merged for 7.0 (driver-core-7.0-rc5, read in a commit summary); the commit converting PCI and the 6.12 stable release (6.12.80 or 6.12.91) were not located: 6.12.80 is inferred",
  },
];

export class KernelVersionError extends Error {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(message);
    this.name = "KernelVersionError";
  }
}

export function parseRelease(s: string): Release {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m) throw new KernelVersionError(s, `kernel release: expected MAJOR.MINOR[.PATCH] like 6.12.58, got ${JSON.stringify(s)}`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

export const formatRelease = (r: Release) => `${r.major}.${r.minor}.${r.patch}`;

export function compareRelease(a: Release, b: Release): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/** Whether a kernel of release `r` carries the change (mainline, or the stable backport of its branch). */
export function carries(c: BehaviourChange, r: Release): boolean {
  if (compareRelease(r, parseRelease(c.mainline)) >= 0) return true;
  return c.stable.some((s) => {
    const b = parseRelease(s);
    return b.major === r.major && b.minor === r.minor && r.patch >= b.patch;
  });
}

/** Table entries reverted (false) or added (true) on top of what a release carries. */
export type BehaviourOverrides = Readonly<Partial<Record<BehaviourFlag, boolean>>>;

/** Every behaviour flag for one release, with `overrides` applied last. */
export function resolveBehaviour(r: Release, overrides: BehaviourOverrides = {}): Behaviour {
  const out = {} as Record<BehaviourFlag, boolean>;
  for (const c of BEHAVIOUR_CHANGES) out[c.flag] = overrides[c.flag] ?? carries(c, r);
  return out;
}

/** A kernel spec split into its version string and the table entries it reverts or adds. */
export interface KernelSpec {
  /** the version string (anything identifyKernel takes) */
  version: string;
  overrides: BehaviourOverrides;
}

/**
 * "A version with some table entries reverted or added": `7.3.4 -bindIommufdFullStruct` is 7.3.4
 * with 2f03f21fe751 reverted; `6.12.117+deb13-amd64 +bindIommufdToken` is 6.12.117 with
 * 86624ba3b522 picked. The first word is the version; each further word is `-flag` (the
 * release's kernel without that change) or `+flag` (with it), flag being a table entry's name.
 * A plain version string is a spec without overrides. Throws KernelVersionError.
 *
 * @example
 * ```ts
 * import { parseKernelSpec } from "vfioctl";
 * parseKernelSpec("7.3.4-lab-e2big -bindIommufdFullStruct").overrides; // { bindIommufdFullStruct: false }
 * ```
 */
export function parseKernelSpec(input: string): KernelSpec {
  // a /proc/version line is a version (no overrides); Ubuntu's "Ubuntu <ABI>-<flavour> <upstream>" is three words
  if (/^Linux version /.test(input.trim())) return { version: input.trim(), overrides: {} };
  const all = input.trim().split(/\s+/);
  const lead = all[0] === "Ubuntu" && all.length >= 3 ? 3 : 1;
  const words = [all.slice(0, lead).join(" "), ...all.slice(lead)];
  const version = words[0] ?? "";
  const overrides: Partial<Record<BehaviourFlag, boolean>> = {};
  const flags = BEHAVIOUR_CHANGES.map((c) => c.flag as string);
  for (const w of words.slice(1)) {
    const m = /^([+-])([A-Za-z0-9]+)$/.exec(w);
    if (!m || !flags.includes(m[2]!)) {
      const name = m?.[2] ?? w.replace(/^[+-]/, "");
      const near = flags.find((f) => f.toLowerCase() === name.toLowerCase()) ?? flags.find((f) => f.toLowerCase().startsWith(name.toLowerCase().slice(0, 6)));
      throw new KernelVersionError(input, `kernel spec ${JSON.stringify(input)}: expected -FLAG or +FLAG with FLAG a behaviour-table entry (${flags.join(", ")}), got ${JSON.stringify(w)}${near ? ` (did you mean ${m?.[1] ?? "-"}${near}?)` : ""}`);
    }
    const flag = m[2] as BehaviourFlag;
    if (overrides[flag] !== undefined) throw new KernelVersionError(input, `kernel spec ${JSON.stringify(input)}: expected each flag once, got ${flag} twice`);
    overrides[flag] = m[1] === "+";
  }
  return { version, overrides };
}

/** The table entry that sets `flag`. */
export function changeOf(flag: BehaviourFlag): BehaviourChange {
  return BEHAVIOUR_CHANGES.find((c) => c.flag === flag)!;
}

// ------------------------------------------------------------------ version strings

export type Distro = "upstream" | "debian" | "ubuntu" | "rhel";

/** The two kernels the lab boots, by their profile names. */
export type KernelProfileName = "6.1" | "6.12";

/** What a version string says about a kernel. */
export interface KernelIdent {
  /** the string as given */
  input: string;
  /** "6.1" / "6.12" when given by profile name */
  alias?: KernelProfileName;
  /** the upstream release the table is resolved for */
  release: Release;
  /** what uname -r (/proc/sys/kernel/osrelease) says */
  osrelease: string;
  /** /proc/version as the kernel would print it */
  procVersion: string;
  distro: Distro;
  /** how `release` was derived from the string */
  basis: string;
  /** what the table cannot know about this kernel (distribution backports) */
  caveat?: string;
  /** Ubuntu's /proc/version_signature, when the version came from one */
  versionSignature?: string;
}

/** Debian 12 ABI names (6.1.0-NN-amd64) whose upstream version the lab read in /proc/version. */
export const DEBIAN_ABI: Readonly<Record<string, { upstream: string; debian: string; date: string }>> = {
  "6.1.0-56": { upstream: "6.1.192", debian: "6.1.192-2", date: "2026-11-16" },
};

const ALIASES: Record<KernelProfileName, string> = {
  "6.1": "6.1.0-56-amd64",
  "6.12": "6.12.117+deb13-amd64",
};

const DEBIAN_FLAVOURS = /^(amd64|arm64|cloud-amd64|cloud-arm64|rt-amd64|rt-arm64|686|686-pae|armmp|armmp-lpae|powerpc64le|s390x)$/;
const UBUNTU_FLAVOURS = /^(generic|lowlatency|generic-hwe|lowlatency-hwe|generic-64k|aws|azure|azure-fde|gcp|gke|gkeop|kvm|oracle|ibm|nvidia|nvidia-lowlatency|raspi|realtime|intel|intel-iotg)(-.*)?$/;

const GCC12 = "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40";
const GCC14 = "x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0, GNU ld (GNU Binutils for Debian) 2.44";
/** /proc/version of a Debian kernel (the lab's two are byte for byte what they print). */
const debianProcVersion = (osrelease: string, deb: string, date: string | null, gcc: string) =>
  `Linux version ${osrelease} (debian-kernel@lists.debian.org) (${gcc}) #1 SMP PREEMPT_DYNAMIC Debian ${deb}${date ? ` (${date})` : ""}`;

/** Debian 13 kernels the lab read /proc/version of. */
const DEBIAN13_DATES: Readonly<Record<string, string>> = { "6.12.117": "2026-11-12" };

/**
 * Identify a kernel from a version string: a profile name ("6.1", "6.12"), an upstream release
 * ("6.17.1", "7.3.4", "6.18-rc2"), Debian's names ("6.12.117+deb13-amd64"; Debian 12's ABI
 * names "6.1.0-56-amd64", which do not say the upstream version — known ones are mapped, others
 * need `opts.procVersion` with its "Debian 6.1.NNN-N"), Ubuntu's ("6.8.0-51-generic": resolved as
 * its base 6.8.0), RHEL's ("5.14.0-427.13.1.el9_4.x86_64": base 5.14.0), a /proc/version line,
 * or an upstream release with a local suffix ("6.17.1-lab"). Throws KernelVersionError.
 */
export function identifyKernel(input: string, opts: { procVersion?: string; versionSignature?: string } = {}): KernelIdent {
  const s0 = input.trim();
  // Ubuntu's /proc/version_signature: "Ubuntu 6.8.0-51.52-generic 6.8.12" (ABI.upload-flavour, then
  // the upstream stable release that kernel is rebased on)
  const sig = UBUNTU_SIGNATURE.exec(s0) ?? (opts.versionSignature ? UBUNTU_SIGNATURE.exec(opts.versionSignature.trim()) : null);
  if (sig) {
    const osrelease = `${sig[1]}.${sig[2]}.${sig[3]}-${sig[4]}-${sig[6]}`;
    // the signature is this kernel's only when uname -r (or the /proc/version line's release) agrees
    const named = /^Linux version (\S+)/.exec(s0)?.[1] ?? s0;
    if (UBUNTU_SIGNATURE.test(s0) || named === osrelease) {
      const up = parseRelease(sig[7]!);
      return {
        input,
        release: up,
        osrelease,
        procVersion: opts.procVersion ?? (/^Linux version /.test(s0) ? s0 : `Linux version ${osrelease} (buildd@ubuntu) #${sig[5]}-Ubuntu SMP PREEMPT_DYNAMIC`),
        distro: "ubuntu",
        basis: `Ubuntu ${osrelease} is rebased on upstream ${formatRelease(up)} (/proc/version_signature)`,
        caveat: `Ubuntu adds SAUCE patches and picks of its own to ${formatRelease(up)}; the table knows upstream stable releases only`,
        versionSignature: sig[0]!,
      };
    }
  }
  if (s0 === "6.1" || s0 === "6.12") {
    const id = identifyKernel(ALIASES[s0]);
    return { ...id, input, alias: s0, basis: `profile ${s0}: the lab's Debian kernel ${id.osrelease} (${id.basis})` };
  }
  let s = s0;
  let procVersion = opts.procVersion;
  const pv = /^Linux version (\S+)/.exec(s);
  if (pv) {
    procVersion = s;
    s = pv[1]!;
  }
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?(.*)$/.exec(s);
  if (!m) throw new KernelVersionError(input, `kernel version: expected a release like 6.12.58, 7.3.4, 6.12.117+deb13-amd64 or 6.8.0-51-generic (or the profile 6.1 / 6.12), got ${JSON.stringify(input)}`);
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  const rest = m[4]!;
  const base: Release = { major, minor, patch };
  const mk = (release: Release, distro: Distro, basis: string, pv2: string, caveat?: string): KernelIdent => ({
    input,
    release,
    osrelease: s,
    procVersion: procVersion ?? pv2,
    distro,
    basis,
    ...(caveat ? { caveat } : {}),
  });
  const upstreamPv = `Linux version ${s} (vfioctl model) #1 SMP PREEMPT_DYNAMIC`;
  if (rest === "" || /^-rc\d+/.test(rest)) return mk(base, "upstream", rest ? `upstream ${major}.${minor} release candidate` : "upstream release", upstreamPv);
  // Debian 13 and later: the upstream version is in the name
  const d13 = /^\+deb(\d+)(?:u\d+)?-(.+)$/.exec(rest);
  if (d13) {
    const up = formatRelease(base);
    return mk(base, "debian", `Debian ${d13[1]} kernel of upstream ${up}`, debianProcVersion(s, `${up}-1`, DEBIAN13_DATES[up] ?? null, GCC14));
  }
  // Debian 12 and older: 6.1.0-56-amd64, 6.1.0-0.deb11.13-amd64 (an ABI name)
  const d12 = /^-((?:0\.deb\d+\.)?\d+)-(.+)$/.exec(rest);
  if (d12 && DEBIAN_FLAVOURS.test(d12[2]!)) {
    const abi = `${major}.${minor}.${patch}-${d12[1]}`;
    // the kernel's own "Debian 6.1.192-2" comes last (the compiler's "Debian 12.2.0-14…" is earlier)
    const fromPv = procVersion ? [...procVersion.matchAll(/Debian (\d+\.\d+\.\d+)-\S+/g)].at(-1) : undefined;
    if (fromPv) return mk(parseRelease(fromPv[1]!), "debian", `Debian ABI ${abi} is upstream ${fromPv[1]} (/proc/version)`, procVersion!);
    const known = DEBIAN_ABI[abi];
    if (known) return mk(parseRelease(known.upstream), "debian", `Debian ABI ${abi} is upstream ${known.upstream} (read in the lab's /proc/version: Debian ${known.debian})`, debianProcVersion(s, known.debian, known.date, GCC12));
    throw new KernelVersionError(
      input,
      `kernel version ${JSON.stringify(input)}: Debian's ABI name does not say which ${major}.${minor}.y it is; give the upstream version (e.g. ${major}.${minor}.192) or the /proc/version line, which ends "Debian ${major}.${minor}.NNN-N (date)"`,
    );
  }
  if (d12 && UBUNTU_FLAVOURS.test(d12[2]!)) {
    return mk(base, "ubuntu", `Ubuntu kernel on upstream base ${formatRelease(base)}`, `Linux version ${s} (buildd@ubuntu) #1-Ubuntu SMP PREEMPT_DYNAMIC`, `Ubuntu picks stable and SAUCE patches of its own into ${major}.${minor}.0-NN; the table knows only upstream stable releases, so ${s} is resolved as ${formatRelease(base)}`);
  }
  if (/\.el\d+/.test(rest)) {
    return mk(base, "rhel", `RHEL kernel on upstream base ${formatRelease(base)}`, upstreamPv, `RHEL backports far more than upstream stable does; ${s} is resolved as ${formatRelease(base)}, which may be older than what it really does`);
  }
  // a local version suffix (CONFIG_LOCALVERSION): an upstream release built by someone
  if (/^[-+~._a-zA-Z0-9]+$/.test(rest)) return mk(base, "upstream", `upstream ${formatRelease(base)} with local version ${JSON.stringify(rest)}`, upstreamPv);
  throw new KernelVersionError(input, `kernel version: expected a release like 6.12.58 or 6.8.0-51-generic, got ${JSON.stringify(input)}`);
}

const UBUNTU_SIGNATURE = /^Ubuntu (\d+)\.(\d+)\.(\d+)-(\d+)\.(\d+)(?:~[^-\s]+)?-([a-z0-9-]+) (\d+\.\d+\.\d+)$/;

/** Whether a version string (or a kernel spec with -flag / +flag words) can be identified (for option checks). */
export function isKernelVersion(s: string): boolean {
  try {
    identifyKernel(parseKernelSpec(s).version);
    return true;
  } catch {
    return false;
  }
}
