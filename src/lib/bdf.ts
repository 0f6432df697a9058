/**
 * PCI addresses as sysfs names them ("DDDD:BB:SS.F", pci_name()). Every BDF that reaches a path
 * is checked here first, so input such as `../../etc` never becomes part of a path.
 *
 * @example
 * ```ts
 * import { checkBdf } from "vfioctl";
 * checkBdf("0000:01:10.0"); // "0000:01:10.0"
 * checkBdf("../../etc");    // throws VfioctlError BAD_BDF
 * ```
 */
import { BDF_RE } from "../kernel/pci/bdf.js";
import { VfioctlError, shown } from "./errors.js";

/** Lowercase hex, 4:2:2 digits (slot 00–1f) and one function digit 0–7: exactly what pci_name() prints. */
export const STRICT_BDF_RE = BDF_RE;

/** True when `s` is a canonical BDF. */
export function isBdf(s: unknown): s is string {
  return typeof s === "string" && STRICT_BDF_RE.test(s);
}

/**
 * Return `s` if it is a canonical BDF, else throw BAD_BDF with expected-versus-found.
 * Uppercase and domain-less forms are refused with a hint, because the kernel's match string
 * compares bytes: "0000:04:10.A" or "04:10.0" never match a device.
 */
export function checkBdf(s: unknown, what = "bdf"): string {
  if (isBdf(s)) return s;
  let hint = "";
  if (typeof s === "string") {
    if (isBdf(s.toLowerCase())) hint = ` (use lowercase: ${s.toLowerCase()})`;
    else if (/^[0-9a-fA-F]{2}:[01][0-9a-fA-F]\.[0-7]$/.test(s)) hint = ` (add the domain: 0000:${s.toLowerCase()})`;
  }
  throw new VfioctlError("BAD_BDF", `${what}: expected a PCI address "DDDD:BB:SS.F" (lowercase hex, e.g. 0000:01:00.0), got ${shown(s)}${hint}`, {
    ...(typeof s === "string" ? { subject: s } : {}),
    fix: "give the address as `lspci -D` or /sys/bus/pci/devices shows it",
  });
}

/** A driver name as it appears under /sys/bus/pci/drivers (no path characters). */
export const DRIVER_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,63}$/;

export function checkDriverName(s: unknown): string {
  if (typeof s === "string" && DRIVER_NAME_RE.test(s) && s !== "." && s !== "..") return s;
  throw new VfioctlError("BAD_INPUT", `driver: expected a driver name like vfio-pci or igbvf, got ${shown(s)}`, { fix: "see `ls /sys/bus/pci/drivers` for the drivers this host has" });
}
