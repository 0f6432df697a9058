/**
 * Binding and unbinding drivers the way Linux allows (kernel-spec §6): set driver_override,
 * unbind the current driver, write the BDF to drivers_probe, then read the driver link back.
 * If the device does not end up on the wanted driver, the override and the previous driver are
 * restored. Binds Linux would refuse are refused first, with the reason, and change nothing.
 *
 * @example
 * ```ts
 * import { bootKernel, bindDriver } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * await bindDriver(sys, "0000:05:00.0", "vfio-pci"); // { changed: true, previous: { driver: "nvme" … } }
 * ```
 */
import { isErrno } from "../sys/errno.js";
import { linkBase, withTimeout, writeText, TimeoutError } from "../sys/fsutil.js";
import type { Syscalls } from "../sys/syscalls.js";
import { checkBdf, checkDriverName } from "./bdf.js";
import { VfioctlError } from "./errors.js";
import { describeHolder, holdersOf, scanVfioHolders, unknownReason, vfioHolders } from "./holders.js";
import { refuseIfHostUses } from "./hostuse.js";
import { watchKmsg } from "./kmsg.js";
import { driverSuggestion, suggestDriver } from "./names.js";
import { refuseOnCopiedTree, stepText, type OpStep } from "./steps.js";
import { denylisted, devPath, isVfioDriver, listDrivers, PCI_DEVICES, readDevice, readVfioPciModule, requireDevice, type DeviceFacts } from "./sysfs.js";

export interface BindOptions {
  /** allow replacing the driver_override vfio-pci captured on a VF of a vfio-pci PF */
  releaseCaptured?: boolean;
  /** allow unbinding a PF whose VFs go away with its driver */
  removeVfs?: boolean;
  /** how long a write may stay blocked (ms) */
  timeoutMs?: number;
  /** take the device from its driver even when the host uses it (interfaces up, addresses, mounts …) */
  force?: boolean;
  /** work out the writes and return them without making any */
  dryRun?: boolean;
  /** bind: clear driver_override once the device is bound (it stays bound); unbind: clear it too */
  clearOverride?: boolean;
}

export interface BindResult {
  bdf: string;
  driver: string | null;
  previous: { driver: string | null; driverOverride: string | null };
  changed: boolean;
  /** warnings the user must see (trust consequences, leftover overrides) */
  warnings: string[];
  /** kernel log lines written meanwhile */
  log: string[];
  /** the writes made (or, with dryRun, that would be made), in order, as text */
  plan: string[];
  /** true when nothing was written because dryRun was asked */
  dryRun?: boolean;
  /** driver_override after the operation (null: cleared) */
  overrideLeft?: string | null;
}

async function runSteps(sys: Syscalls, steps: readonly OpStep[], timeoutMs: number, done?: (s: OpStep) => void): Promise<void> {
  for (const st of steps) {
    if (st.op !== "write") throw new Error(`bind: unexpected step ${st.op}`);
    await write(sys, st.path, st.data, timeoutMs);
    done?.(st);
  }
}

/** The note every bind that leaves driver_override set prints. */
export function overrideLeftNote(bdf: string, driver: string): string {
  return `note: driver_override stays ${driver}, so ${bdf} comes back to ${driver} after an unbind, a re-probe or a hotplug; \`vfioctl bind ${bdf} ${driver} --clear-override\` clears it and keeps the device bound (\`vfioctl unbind ${bdf} --clear-override\` unbinds and clears it)`;
}

async function write(sys: Syscalls, path: string, text: string, timeoutMs: number): Promise<void> {
  await withTimeout(writeText(sys, path, text), timeoutMs, `write ${path}`);
}

async function refuseIfHeld(sys: Syscalls, d: DeviceFacts, vfs: DeviceFacts[], action: string): Promise<void> {
  if (!isVfioDriver(d.driver) && vfs.length === 0) return;
  const holders = await vfioHolders(sys);
  const held = [d, ...vfs].flatMap((x) => (isVfioDriver(x.driver) ? holdersOf(holders, x.iommuGroup).map((h) => `${x.bdf}: ${describeHolder(h)}`) : []));
  if (held.length) {
    throw new VfioctlError("REFUSED", `${action} ${d.bdf} would block until userspace releases it (Linux waits for every vfio user to close): ${held.join("; ")}`, {
      subject: d.bdf,
      fix: "stop those processes first (or have them handle the vfio device request), then retry",
      data: { holders: held },
    });
  }
}

/** Who keeps a blocked write waiting, for the BLOCKED message: the holders by device number, or why they cannot be seen. */
async function whoHolds(sys: Syscalls, d: DeviceFacts, vfs: DeviceFacts[]): Promise<string> {
  const scan = await scanVfioHolders(sys);
  const held = [d, ...vfs].flatMap((x) => holdersOf(scan.holders, x.iommuGroup).map((h) => `${x.bdf}: ${describeHolder(h)}`));
  return held.length ? held.join("; ") : unknownReason(scan) || "no holder visible in /proc";
}

async function pfTrail(sys: Syscalls, d: DeviceFacts, opts: BindOptions, action: string): Promise<DeviceFacts[]> {
  const vfs = d.sriov ? await Promise.all(d.sriov.vfs.map((v) => readDevice(sys, v))) : [];
  if (d.driver && vfs.length && !opts.removeVfs) {
    throw new VfioctlError("REFUSED", `${action} ${d.bdf} takes its ${vfs.length} VFs away with the driver (${vfs.map((v) => v.bdf).join(", ")})`, {
      subject: d.bdf,
      fix: `add --remove-vfs if that is intended, or use \`vfioctl sriov ${d.bdf} off\` first`,
    });
  }
  return vfs;
}

/** Bind `bdf` to `driver`, verified by reading the driver link back; rolled back on failure. */
export async function bindDriver(sys: Syscalls, bdf: string, driver: string, opts: BindOptions = {}): Promise<BindResult> {
  checkBdf(bdf);
  checkDriverName(driver);
  const timeoutMs = opts.timeoutMs ?? 5000;
  await requireDevice(sys, bdf);
  const drivers = await listDrivers(sys);
  if (!drivers.includes(driver)) {
    const hint = driverSuggestion(driver, drivers);
    throw new VfioctlError("UNKNOWN_DRIVER", `${bdf}: driver: expected one of the registered PCI drivers (${drivers.join(", ")}), got ${JSON.stringify(driver)}${hint ? `; ${hint}` : ""}`, {
      subject: driver,
      errno: "ENOENT",
      fix: hint ? `vfioctl bind ${bdf} ${suggestDriver(driver, drivers)}` : `load it first: modprobe ${driver.replace(/-/g, "_")}`,
    });
  }
  const d = await readDevice(sys, bdf);
  // only the PF's address and driver matter here: one readlink, not the PF's every virtfn link
  const pf = d.physfn ? { bdf: d.physfn, driver: await linkBase(sys, `${devPath(d.physfn)}/driver`) } : null;
  const previous = { driver: d.driver, driverOverride: d.driverOverride };
  const warnings: string[] = [];
  const p = devPath(bdf);
  if (d.driver === driver) {
    if (!(opts.clearOverride && d.driverOverride !== null)) return { bdf, driver, previous, changed: false, warnings, log: [], plan: [], overrideLeft: d.driverOverride };
    // writing "\n" to driver_override clears it without unbinding the device
    const steps: OpStep[] = [{ op: "write", path: `${p}/driver_override`, data: "\n", note: "clear driver_override; the device stays bound" }];
    if (opts.dryRun) return { bdf, driver, previous, changed: false, warnings, log: [], plan: steps.map(stepText), dryRun: true, overrideLeft: d.driverOverride };
    refuseOnCopiedTree(sys, "bind", steps);
    await runSteps(sys, steps, timeoutMs);
    return { bdf, driver, previous, changed: true, warnings, log: [], plan: steps.map(stepText), overrideLeft: null };
  }
  const mod = await readVfioPciModule(sys);
  if (driver === "vfio-pci") {
    if (d.sriov && (d.sriov.numVfs ?? d.sriov.vfs.length) > 0) {
      throw new VfioctlError("REFUSED", `bind ${bdf} to vfio-pci: Linux would refuse with EBUSY ("Cannot bind to PF with SR-IOV enabled": ${d.sriov.numVfs ?? d.sriov.vfs.length} VFs exist)`, {
        subject: bdf,
        errno: "EBUSY",
        fix: `vfioctl sriov ${bdf} off (destroys the VFs), then bind vfio-pci, then create VFs through vfio-pci (enable_sriov=Y); VFs created that way are token-protected`,
      });
    }
    if (denylisted(d) && mod.disableDenylist !== true) {
      throw new VfioctlError("REFUSED", `bind ${bdf} to vfio-pci: Linux would refuse with EINVAL (${(d.vendor ?? 0).toString(16).padStart(4, "0")}:${(d.device ?? 0).toString(16).padStart(4, "0")} exists in vfio-pci device denylist)`, {
        subject: bdf,
        errno: "EINVAL",
        fix: "keep the device on its kernel driver, or load vfio-pci with disable_denylist=1 if you accept the risk",
      });
    }
    if (d.iommuGroup === null) {
      throw new VfioctlError("REFUSED", `bind ${bdf} to vfio-pci: Linux would refuse with EINVAL (no IOMMU group)`, { subject: bdf, errno: "EINVAL", fix: "enable the IOMMU (intel_iommu=on / amd_iommu=on, VT-d/AMD-Vi in firmware)" });
    }
  }
  if (pf?.driver === "vfio-pci" && driver !== "vfio-pci") {
    if (d.driverOverride === "vfio-pci" && !opts.releaseCaptured) {
      throw new VfioctlError("REFUSED", `bind ${bdf} to ${driver}: the VF carries the driver_override "vfio-pci" captured by its vfio-pci PF ${pf.bdf}; with it Linux refuses every other driver (ENODEV)`, {
        subject: bdf,
        errno: "ENODEV",
        fix: `add --release-captured to replace it. Consequences: the PF's userspace driver shares trust with its VFs and can no longer rely on this VF being under vfio; the kernel warns "VF ${bdf} bound to driver ${driver} while PF bound to driver vfio-pci"`,
      });
    }
    warnings.push(`warning: ${bdf} leaves vfio while its PF ${pf.bdf} is owned by vfio-pci: the PF's userspace driver can no longer trust it, and the kernel logs "VF ${bdf} bound to driver ${driver} while PF bound to driver vfio-pci"`);
  }
  const vfs = await pfTrail(sys, d, opts, `unbinding ${d.driver} from`);
  if (d.driver) await refuseIfHeld(sys, d, vfs, `unbinding ${d.driver} from`);
  if (d.driver) await refuseIfHostUses(sys, bdf, [bdf, ...vfs.map((v) => v.bdf)], `unbinding ${d.driver}`, "unbind", opts.force);

  const steps: OpStep[] = [];
  if (d.driverOverride !== driver) steps.push({ op: "write", path: `${p}/driver_override`, data: driver, note: `only ${driver} may take the device` });
  if (d.driver) steps.push({ op: "write", path: `${p}/driver/unbind`, data: bdf, note: `${d.driver} lets go` });
  steps.push({ op: "write", path: "/sys/bus/pci/drivers_probe", data: bdf, note: `${driver} probes it` });
  const clear: OpStep[] = opts.clearOverride ? [{ op: "write", path: `${p}/driver_override`, data: "\n", note: "clear driver_override; the device stays bound" }] : [];
  const plan = [...steps, ...clear].map(stepText);
  if (opts.dryRun) return { bdf, driver, previous, changed: false, warnings, log: [], plan, dryRun: true, overrideLeft: opts.clearOverride ? null : driver };
  refuseOnCopiedTree(sys, "bind", steps);

  const kmsg = await watchKmsg(sys);
  let overrideWritten = false;
  let unbound = false;
  const rollback = async (): Promise<string | null> => {
    try {
      if (overrideWritten) await write(sys, `${p}/driver_override`, previous.driverOverride === null ? "\n" : previous.driverOverride, timeoutMs);
      const now = await linkBase(sys, `${p}/driver`);
      if (unbound && previous.driver && now === null) await write(sys, "/sys/bus/pci/drivers_probe", bdf, timeoutMs).catch(() => {});
      return await linkBase(sys, `${p}/driver`);
    } catch {
      return null;
    }
  };
  try {
    await runSteps(sys, steps, timeoutMs, (st) => {
      if (st.path.endsWith("/driver_override")) overrideWritten = true;
      else if (st.path.endsWith("/driver/unbind")) unbound = true;
    });
  } catch (e) {
    const log = await kmsg.drain();
    if (e instanceof TimeoutError) throw new VfioctlError("BLOCKED", `${e.message} (${bdf}); the write stays pending in the kernel until the device is released (held: ${await whoHolds(sys, d, vfs)})`, { subject: bdf, data: { log } });
    const back = await rollback();
    if (isErrno(e)) throw new VfioctlError("KERNEL", `bind ${bdf} to ${driver}: ${e.message}; rolled back (driver now ${back ?? "none"})`, { subject: bdf, errno: e.code, data: { log } });
    throw e;
  }
  const now = await linkBase(sys, `${p}/driver`);
  const log = await kmsg.drain();
  if (now !== driver) {
    const back = await rollback();
    const why = log.filter((l) => l.includes(bdf) || l.includes(driver)).join("; ");
    throw new VfioctlError("KERNEL", `bind ${bdf} to ${driver}: the driver did not take the device (driver link: ${now ?? "none"})${why ? `; kernel: ${why}` : ""}; rolled back to ${back ?? "no driver"}`, {
      subject: bdf,
      fix: `vfioctl explain ${bdf} --driver ${driver} lists the reasons Linux refuses binds`,
      data: { log },
    });
  }
  let overrideLeft: string | null = driver;
  if (clear.length) {
    await runSteps(sys, clear, timeoutMs);
    overrideLeft = null;
  } else warnings.push(overrideLeftNote(bdf, driver));
  return { bdf, driver, previous, changed: true, warnings, log, plan, overrideLeft };
}

/** Unbind the device's driver (optionally clearing driver_override so the next probe is free). */
export async function unbindDriver(sys: Syscalls, bdf: string, opts: BindOptions = {}): Promise<BindResult> {
  checkBdf(bdf);
  const timeoutMs = opts.timeoutMs ?? 5000;
  await requireDevice(sys, bdf);
  const d = await readDevice(sys, bdf);
  const previous = { driver: d.driver, driverOverride: d.driverOverride };
  const warnings: string[] = [];
  const p = devPath(bdf);
  if (!d.driver && !(opts.clearOverride && d.driverOverride !== null)) return { bdf, driver: null, previous, changed: false, warnings, log: [], plan: [], overrideLeft: d.driverOverride };
  const vfs = await pfTrail(sys, d, opts, "unbinding");
  await refuseIfHeld(sys, d, vfs, "unbinding");
  if (d.driver) await refuseIfHostUses(sys, bdf, [bdf, ...vfs.map((v) => v.bdf)], `unbinding ${d.driver}`, "unbind", opts.force);
  const steps: OpStep[] = [];
  if (d.driver) steps.push({ op: "write", path: `${p}/driver/unbind`, data: bdf, note: `${d.driver} lets go` });
  if (opts.clearOverride && d.driverOverride !== null) steps.push({ op: "write", path: `${p}/driver_override`, data: "\n", note: "clear driver_override" });
  const plan = steps.map(stepText);
  const overrideLeft = opts.clearOverride ? null : d.driverOverride;
  if (opts.dryRun) return { bdf, driver: d.driver, previous, changed: false, warnings, log: [], plan, dryRun: true, overrideLeft };
  refuseOnCopiedTree(sys, "unbind", steps);
  const kmsg = await watchKmsg(sys);
  try {
    await runSteps(sys, steps, timeoutMs);
  } catch (e) {
    const log = await kmsg.drain();
    if (e instanceof TimeoutError) throw new VfioctlError("BLOCKED", `${e.message} (${bdf}); the unbind stays pending in the kernel until the device is released (held: ${await whoHolds(sys, d, vfs)})`, { subject: bdf, data: { log } });
    if (isErrno(e)) throw new VfioctlError("KERNEL", `unbind ${bdf}: ${e.message}`, { subject: bdf, errno: e.code, data: { log } });
    throw e;
  }
  const now = await linkBase(sys, `${p}/driver`);
  const log = await kmsg.drain();
  if (now !== null) throw new VfioctlError("KERNEL", `unbind ${bdf}: still bound to ${now} after the write`, { subject: bdf, data: { log } });
  if (!opts.clearOverride && d.driverOverride !== null) warnings.push(`note: driver_override is still ${JSON.stringify(d.driverOverride)}: the next probe binds ${d.driverOverride} (add --clear-override to clear it)`);
  if (d.sriov && vfs.length) warnings.push(`note: ${vfs.length} VFs went away with the PF driver`);
  return { bdf, driver: null, previous, changed: true, warnings, log, plan, overrideLeft };
}

