/**
 * The running kernel as the host tool sees it: its version (/proc/sys/kernel/osrelease, with
 * /proc/version for Debian 12's ABI names and /proc/version_signature for Ubuntu's), resolved against the behaviour table
 * (src/kernel/versions.ts), and what its nodes show of its build: /dev/iommu (iommufd),
 * /dev/vfio/devices and vfio-dev/vfio<N>/dev (the vfio cdev), vfio's noiommu parameter.
 * From those: how VFIO_DEVICE_BIND_IOMMUFD treats the VF token on this host. Read-only.
 *
 * @example
 * ```ts
 * import { bootKernel, readHostKernel } from "vfioctl";
 * const k = await bootKernel(undefined, { profile: "6.12.58", config: { VFIO_DEVICE_CDEV: true } });
 * const hk = await readHostKernel(k.spawn("sh"));
 * hk.cdevToken; // "bypass": a VF opens through /dev/vfio/devices without its token
 * ```
 */
import { exists, readAttr } from "../sys/fsutil.js";
import { lstatsOf } from "../sys/batch.js";
import type { Syscalls } from "../sys/syscalls.js";
import { formatRelease, identifyKernel, resolveBehaviour, type Behaviour, type KernelIdent } from "../kernel/versions.js";
import type { CdevTokenRule } from "../kernel/profile.js";

export interface HostKernel {
  /** /proc/sys/kernel/osrelease (uname -r) */
  osrelease: string | null;
  /** /proc/version */
  procVersion: string | null;
  /** the version resolved against the behaviour table, or null (see identifyError) */
  ident: KernelIdent | null;
  identifyError?: string;
  behaviour: Behaviour | null;
  /** /dev/iommu exists (CONFIG_IOMMUFD, module loaded) */
  iommufd: boolean;
  /**
   * the vfio cdev is built in: /dev/vfio/devices exists or a vfio-dev/vfio<N> has a `dev`
   * attribute; false when a vfio device exists without one, or the release predates 6.6;
   * null when no vfio device is registered to tell by
   */
  cdev: boolean | null;
  /** how BIND_IOMMUFD treats the VF token here ("unknown": version or cdev not known) */
  cdevToken: CdevTokenRule | "unknown";
  /** /sys/module/vfio/parameters/enable_unsafe_noiommu_mode (null: absent) */
  noiommu: boolean | null;
  /** one line for people */
  summary: string;
  /** what the table cannot know about this kernel */
  caveats: string[];
}

async function tryRead(sys: Syscalls, path: string): Promise<string | null> {
  try {
    return await readAttr(sys, path);
  } catch {
    return null;
  }
}

/** The cdev rule for a release whose kernel has the cdev. */
export function cdevRuleOf(b: Behaviour): Exclude<CdevTokenRule, "none"> {
  return !b.bindIommufdToken ? "bypass" : !b.bindIommufdFullStruct ? "e2big" : "checked";
}

/** What each cdev rule means for a VF of a vfio-pci PF, in one phrase. */
export const CDEV_RULE_TEXT: Record<CdevTokenRule | "unknown", string> = {
  none: "no vfio cdev (/dev/vfio/devices): only the group path, which checks the VF token",
  bypass: "VFIO_DEVICE_BIND_IOMMUFD does not check the VF token: any VF of a vfio-pci PF opens through /dev/vfio/devices without it (6.6–6.16, 6.12.y; fixed by 86624ba3b522)",
  e2big: "BIND_IOMMUFD checks the VF token but cannot be given one (the 24-byte struct is copied as 16: E2BIG; fixed by 2f03f21fe751 in 6.18.3/6.19): VFs of vfio-pci PFs cannot be opened through the cdev",
  checked: "BIND_IOMMUFD checks the VF token (VFIO_DEVICE_BIND_FLAG_TOKEN with token_uuid_ptr)",
  unknown: "cannot tell how BIND_IOMMUFD treats the VF token (kernel version or cdev not known)",
};

/** Read the running kernel's version and vfio build. */
export async function readHostKernel(sys: Syscalls): Promise<HostKernel> {
  // at once: /proc is read in the threadpool, and an inventory reads the devices meanwhile, so
  // each read waits for a turn of the event loop (three in a row waited for three)
  // Ubuntu: "Ubuntu 6.8.0-51.52-generic 6.8.12" names the upstream release its ABI is rebased on
  const [osrelease, procVersion, versionSignature] = await Promise.all([tryRead(sys, "/proc/sys/kernel/osrelease"), tryRead(sys, "/proc/version"), tryRead(sys, "/proc/version_signature")]);
  let ident: KernelIdent | null = null;
  let identifyError: string | undefined;
  if (osrelease) {
    try {
      ident = identifyKernel(osrelease, { ...(procVersion ? { procVersion } : {}), ...(versionSignature ? { versionSignature } : {}) });
    } catch (e) {
      identifyError = (e as Error).message;
    }
  } else identifyError = "/proc/sys/kernel/osrelease is not readable";
  const behaviour = ident ? resolveBehaviour(ident.release) : null;
  const iommufd = await exists(sys, "/dev/iommu");
  let cdev: boolean | null = null;
  if (await exists(sys, "/dev/vfio/devices")) cdev = true;
  else {
    let names: string[] = [];
    try {
      names = (await sys.readdir("/sys/class/vfio-dev")).filter((n) => /^vfio\d+$/.test(n));
    } catch {
      /* no vfio-dev class (before 6.1, or vfio not loaded) */
    }
    if (names.length) cdev = (await lstatsOf(sys, names.map((n) => `/sys/class/vfio-dev/${n}/dev`))).some((st) => !(st instanceof Error));
    if (cdev === null && behaviour && !behaviour.vfioDeviceCdev) cdev = false;
  }
  const cdevToken: HostKernel["cdevToken"] = cdev === false ? "none" : behaviour && behaviour.vfioDeviceCdev && cdev === true ? cdevRuleOf(behaviour) : "unknown";
  const np = await tryRead(sys, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode");
  const noiommu = np === null ? null : /^[Yy1]/.test(np);
  const caveats: string[] = [];
  if (ident?.caveat) caveats.push(ident.caveat);
  if (identifyError) caveats.push(identifyError);
  if (cdev === null && behaviour?.vfioDeviceCdev) caveats.push("no vfio device is registered, so whether this kernel has the vfio cdev cannot be seen (/dev/vfio/devices appears with the first device bound to vfio-pci)");
  const ver = ident ? `${ident.osrelease}${ident.distro === "upstream" && !ident.alias ? "" : ` (upstream ${formatRelease(ident.release)})`}` : (osrelease ?? "unknown kernel");
  const summary = `${ver}: ${iommufd ? "/dev/iommu" : "no /dev/iommu"}, ${cdev === true ? "vfio cdev" : cdev === false ? "no vfio cdev" : "vfio cdev unknown"}; ${CDEV_RULE_TEXT[cdevToken]}`;
  return { osrelease, procVersion, ident, ...(identifyError ? { identifyError } : {}), behaviour, iommufd, cdev, cdevToken, noiommu, summary, caveats };
}
