/**
 * Devices named the way dpdk-devbind and driverctl users name them: a canonical BDF
 * (`0000:01:00.0`), a short one (`01:00.0`: domain 0000, or the one domain that has it), an
 * uppercase one, or a network interface (`eth2`: /sys/class/net/eth2/device → its BDF).
 *
 * @example
 * ```ts
 * import { bootKernel, resolveDevice } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * await resolveDevice(sys, "01:00.0"); // "0000:01:00.0"
 * await resolveDevice(sys, "eth0");    // "0000:01:00.0" (igb's interface)
 * ```
 */
import type { Syscalls } from "../sys/syscalls.js";
import { checkBdf, isBdf } from "./bdf.js";
import { shown, VfioctlError } from "./errors.js";
import { listBdfs } from "./sysfs.js";

const SHORT_BDF_RE = /^[0-9a-fA-F]{2}:[01][0-9a-fA-F]\.[0-7]$/;
const IFNAME_RE = /^[A-Za-z][A-Za-z0-9_.@-]{0,14}$/;

/** The host's network interfaces that belong to a PCI device, with its BDF. */
export async function pciInterfaces(sys: Syscalls): Promise<{ ifname: string; bdf: string }[]> {
  let names: string[];
  try {
    names = await sys.readdir("/sys/class/net");
  } catch {
    return [];
  }
  const out: { ifname: string; bdf: string }[] = [];
  for (const n of names.sort()) {
    if (!IFNAME_RE.test(n)) continue;
    try {
      const t = await sys.readlink(`/sys/class/net/${n}/device`);
      const b = t.slice(t.lastIndexOf("/") + 1);
      if (isBdf(b)) out.push({ ifname: n, bdf: b });
    } catch {
      /* a virtual interface (lo, bond0, br0): no device link */
    }
  }
  return out;
}

/** The BDF a device argument names (see the module comment). Throws BAD_BDF or NO_DEVICE. */
export async function resolveDevice(sys: Syscalls, s: unknown, what = "bdf"): Promise<string> {
  if (isBdf(s)) return s;
  if (typeof s !== "string") return checkBdf(s, what);
  if (isBdf(s.toLowerCase())) return s.toLowerCase();
  if (SHORT_BDF_RE.test(s)) {
    const short = s.toLowerCase();
    const all = await listBdfs(sys).catch(() => [] as string[]);
    if (all.includes(`0000:${short}`)) return `0000:${short}`;
    const any = all.filter((b) => b.endsWith(`:${short}`));
    if (any.length === 1) return any[0]!;
    if (any.length > 1) throw new VfioctlError("BAD_BDF", `${what}: ${short} is in several PCI domains (${any.join(", ")}): give the full address`, { subject: s });
    return `0000:${short}`; // absent: the caller's existence check names it
  }
  if (IFNAME_RE.test(s) && !/^[0-9a-fA-F:.]+$/.test(s)) {
    try {
      const t = await sys.readlink(`/sys/class/net/${s}/device`);
      const b = t.slice(t.lastIndexOf("/") + 1);
      if (isBdf(b)) return b;
      throw new VfioctlError("NO_DEVICE", `${what}: network interface ${s} is not a PCI device (/sys/class/net/${s}/device → ${t})`, { subject: s });
    } catch (e) {
      if (e instanceof VfioctlError) throw e;
      const ifs = await pciInterfaces(sys);
      throw new VfioctlError("NO_DEVICE", `${what}: no network interface ${shown(s)} (/sys/class/net/${s}/device: ENOENT); ${ifs.length ? `interfaces of PCI devices: ${ifs.map((i) => `${i.ifname} (${i.bdf})`).join(", ")}` : "this host shows no interface of a PCI device"}`, {
        subject: s,
        errno: "ENOENT",
        fix: "name the device by its PCI address (vfioctl list) or by one of those interfaces",
      });
    }
  }
  return checkBdf(s, what);
}

/** resolveDevice for each argument, in order. */
export async function resolveDevices(sys: Syscalls, args: readonly string[], what = "bdf"): Promise<string[]> {
  const out: string[] = [];
  for (const a of args) out.push(await resolveDevice(sys, a, what));
  return out;
}
