/**
 * Suggestions for a mistyped name: a driver written as its module name (`vfio_pci` for the
 * driver `vfio-pci`: modprobe takes either, sysfs only the driver's own name), without its
 * separator (`vfiopci`), or one or two letters off (`vfio-pcu`), and the closest of a set of
 * known keys (host description fields).
 *
 * @example
 * ```ts
 * import { driverSuggestion } from "vfioctl";
 * driverSuggestion("vfio_pci", ["igb", "vfio-pci"]); // "did you mean vfio-pci?"
 * driverSuggestion("nvme", ["igb", "vfio-pci"]);     // null
 * ```
 */

import { closestName, editDistance } from "../kernel/host/suggest.js";

export { closestName, editDistance };

/** A driver name with module-name spelling removed: lowercase, no "-" or "_". */
const bare = (s: string) => s.toLowerCase().replace(/[-_]/g, "");

/**
 * The registered driver a mistyped driver name most likely means: the same name with "-" and
 * "_" swapped (a module name such as vfio_pci, pci_pf_stub), the same without separators
 * (vfiopci), else the closest within two edits (one for names of four letters or fewer).
 * Returns the driver, or null when `name` is registered or nothing is close.
 */
export function suggestDriver(name: string, knownDrivers: readonly string[]): string | null {
  if (knownDrivers.includes(name)) return null;
  const sep = knownDrivers.find((d) => d.toLowerCase().replace(/_/g, "-") === name.toLowerCase().replace(/_/g, "-"));
  if (sep) return sep;
  const nosep = knownDrivers.find((d) => bare(d) === bare(name));
  if (nosep) return nosep;
  const b = bare(name);
  const close = closestName(b, knownDrivers.map(bare), b.length <= 4 ? 1 : 2);
  return close === null ? null : knownDrivers[knownDrivers.map(bare).indexOf(close)]!;
}

/**
 * The message for a driver name that is not registered: "did you mean vfio-pci?" (with why, when
 * it is the module's name), or null when nothing is close (then loading a module is the advice).
 */
export function driverSuggestion(name: string, knownDrivers: readonly string[]): string | null {
  const d = suggestDriver(name, knownDrivers);
  if (d === null) return null;
  // a module's name has "_" where its driver's has "-" (modprobe takes either; sysfs does not)
  const moduleSpelling = d.includes("-") && d.replace(/-/g, "_") === name.toLowerCase();
  return `did you mean ${d}?${moduleSpelling ? ` (${name} is the module's name; sysfs knows the driver as ${d})` : ""}`;
}
