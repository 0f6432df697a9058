/**
 * vfioctl: vfio-pci SR-IOV and VF tokens made visible.
 *
 * - the syscalls seam (`Syscalls`) and its helpers,
 * - the executable kernel model (`Kernel`, `bootKernel`, host descriptions),
 * - the VFIO uapi (ioctl numbers, struct builders, UUIDs).
 *
 * @example
 * ```ts
 * import { bootKernel, readAttr } from "vfioctl";
 * const k = await bootKernel();
 * const sh = k.spawn("sh");
 * console.log(await readAttr(sh, "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs")); // 8
 * ```
 */
export * from "./sys/errno.js";
export * from "./sys/syscalls.js";
export * from "./sys/fsutil.js";
export { KmsgReader, parseKmsg, KMSG_LEVELS, type KmsgRecord } from "./sys/kmsg.js";
export * from "./uapi/vfio.js";
export * from "./uapi/iommufd.js";
export { setUserPointer, userPointers, readUserPointer, type UserPointer } from "./sys/userptr.js";
export { Kernel, type Task, type BlockedTask, type KernelOptions } from "./kernel/kernel.js";
export { ModelProcess, type SpawnOptions } from "./kernel/process.js";
export * from "./sys/devnum.js";
export { Clock, SeededRng, CryptoRng, type Rng } from "./kernel/clock.js";
export { KernelLog, type LogRecord } from "./kernel/printk.js";
export { PROFILES, profileOf, defaultConfig, CONFIG_NAMES, KernelConfigError, type KernelProfile, type KernelVersion, type KernelConfig, type CdevTokenRule } from "./kernel/profile.js";
export {
  BEHAVIOUR_CHANGES,
  DEBIAN_ABI,
  identifyKernel,
  isKernelVersion,
  resolveBehaviour,
  parseRelease,
  formatRelease,
  compareRelease,
  carries,
  changeOf,
  parseKernelSpec,
  KernelVersionError,
  type KernelSpec,
  type BehaviourOverrides,
  type Behaviour,
  type BehaviourFlag,
  type BehaviourChange,
  type KernelIdent,
  type KernelProfileName,
  type Release,
  type Distro,
} from "./kernel/versions.js";
export { bootKernel, bootHostFile } from "./kernel/host/boot.js";
export { parseHost, validateHost, HostFileError, type HostDesc, type DeviceDesc, type SriovDesc, type KernelDesc } from "./kernel/host/host-file.js";
export { DEFAULT_HOST } from "./kernel/host/default-host.js";
export { parseBdf, formatBdf, virtfnRid } from "./kernel/pci/bdf.js";
export * from "./lib/index.js";
export { hostFiles, type HostFiles } from "./sys/hostfs.js";
export { parseConfig, validateConfig, ConfigError, DEFAULT_CONFIG, DEFAULT_STORE, DEFAULT_STATE_DIR, type HostConfig, type PfConfig, type Selector, type TokenPolicy } from "./host/config.js";
export { TokenStore, readTokenFileSafe, type Slot, type TokenMeta } from "./host/store.js";
export { observe, matchSelector, pciPath, dsnFromConfig, type HostState, type PfState } from "./host/observe.js";
export { makePlan, predictVfs, type Plan, type Step, type Blocker } from "./host/plan.js";
export { snapshot, diffSnapshots, type Journal, type ApplyReport } from "./host/apply.js";
export { loadConfig, planHost, applyHost, statusHost, type HostApplyReport, type HostStatus, type PfStatus } from "./host/host.js";
export { storeAndSet, surveyTokens, checkKernelToken, processStartMs } from "./host/tokens.js";
export { install, uninstall, readManifest } from "./host/install.js";
export { bootFiles, bootNeedsFrom, type BootNeeds } from "./host/units.js";
export { devicePluginConfig, dpResourceName, type DpResource, type DpResult } from "./host/k8s.js";
export { buildCdiSpec, cdiFileName, checkCdiKind, CDI_VERSIONS, CDI_CURRENT, CDI_DEFAULT, CDI_DIRS, DEFAULT_CDI_KIND, type CdiSpec, type CdiResult, type CdiPfInput, type CdiOptions, type CdiAccess } from "./host/cdi.js";
