/**
 * What this host uses a PCI device for, from the files Linux shows (read through the syscalls
 * seam, so the model and `--root DIR` answer too): its network interfaces that are up
 * (/sys/class/net/IF/flags IFF_UP), have addresses (/proc/net/fib_trie local entries matched to
 * the interface by /proc/net/route; /proc/net/if_inet6), carry routes (/proc/net/route,
 * /proc/net/ipv6_route) or are enslaved to a bond, bridge or team (/sys/class/net/IF/master);
 * its block devices (…/nvme/nvmeN/nvmeNnM, …/block/X and their partitions) that are mounted
 * (/proc/self/mountinfo major:minor), held by dm/md (/sys/block/X/holders) or used as swap
 * (/proc/swaps). Taking such a device from its driver takes these away from the host: `bind`,
 * `unbind` and `sriov` refuse unless `--force`.
 *
 * @example
 * ```ts
 * import { bootKernel, hostUse } from "vfioctl";
 * const k = await bootKernel();
 * k.net.configure("eth0", { up: true, addresses: ["10.0.0.5/24"], routes: ["default via 10.0.0.1"] });
 * (await hostUse(k.spawn("sh"), "0000:01:00.0")).map((u) => u.text); // ["eth0 is up with address 10.0.0.5/24 and the default route"]
 * ```
 */
import { linkBase, readAttr, readText } from "../sys/fsutil.js";
import type { Syscalls } from "../sys/syscalls.js";
import { VfioctlError } from "./errors.js";
import { devPath } from "./sysfs.js";

export interface NetUse {
  kind: "net";
  bdf: string;
  ifname: string;
  up: boolean;
  operstate: string | null;
  addresses: string[];
  /** "default" or a destination prefix */
  routes: string[];
  master: string | null;
  text: string;
}

export interface BlockUse {
  kind: "block";
  bdf: string;
  /** the block device (nvme0n1, nvme0n1p2, sda1) */
  name: string;
  dev: string;
  mounts: string[];
  holders: string[];
  swap: boolean;
  text: string;
}

export type HostUse = NetUse | BlockUse;

const IFNAME_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;
const BLOCK_RE = /^[A-Za-z0-9_.:-]{1,31}$/;

async function tryText(sys: Syscalls, path: string): Promise<string | null> {
  try {
    return await readText(sys, path);
  } catch {
    return null;
  }
}
async function tryDir(sys: Syscalls, path: string): Promise<string[]> {
  try {
    return await sys.readdir(path);
  } catch {
    return [];
  }
}

/** The device's network interface names (/sys/bus/pci/devices/BDF/net/*). */
export async function interfacesOf(sys: Syscalls, bdf: string): Promise<string[]> {
  return interfaceNames(await tryDir(sys, devPath(bdf, "net")));
}

/** The interface names among the entries of a device's net/ folder, sorted. */
export const interfaceNames = (entries: readonly string[]): string[] => entries.filter((n) => IFNAME_RE.test(n)).sort();

interface Route4 {
  iface: string;
  dst: number;
  mask: number;
  gw: number;
}

const le32 = (h: string) => {
  const v = parseInt(h, 16);
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | ((v >>> 24) & 0xff)) >>> 0;
};
const fmt4 = (v: number) => [24, 16, 8, 0].map((s) => (v >>> s) & 255).join(".");
const ip4 = (s: string) => s.split(".").reduce((a, x) => ((a << 8) | Number(x)) >>> 0, 0);
const popcount = (m: number) => {
  let n = 0;
  for (let x = m >>> 0; x; x = (x & (x - 1)) >>> 0) n++;
  return n;
};

/** /proc/net/route rows (Iface, Destination, Gateway, Flags, …, Mask), addresses as numbers. */
export function parseProcRoute(text: string): Route4[] {
  const out: Route4[] = [];
  for (const l of text.split("\n").slice(1)) {
    const f = l.trim().split(/\s+/);
    if (f.length < 8 || !/^[0-9A-Fa-f]{8}$/.test(f[1]!) || !/^[0-9A-Fa-f]{8}$/.test(f[7]!)) continue;
    const flags = parseInt(f[3]!, 16);
    if (!(flags & 1)) continue; // RTF_UP
    out.push({ iface: f[0]!, dst: le32(f[1]!), gw: le32(f[2]!), mask: le32(f[7]!) });
  }
  return out;
}

/** The local IPv4 addresses in /proc/net/fib_trie ("|-- A.B.C.D" followed by "/32 host LOCAL"). */
export function parseFibTrieLocal(text: string): string[] {
  const out = new Set<string>();
  let last: string | null = null;
  for (const l of text.split("\n")) {
    const a = /\|--\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l);
    if (a) {
      last = a[1]!;
      continue;
    }
    if (last && /^\s*\/32\s+host\s+LOCAL/.test(l)) out.add(last);
    else if (!/^\s*\/\d+/.test(l)) last = null;
  }
  return [...out];
}

function v6text(hex: string): string {
  const g = hex.match(/.{4}/g)!.map((x) => parseInt(x, 16).toString(16));
  // the longest run of zero groups becomes ::
  let best = [-1, 0];
  for (let i = 0; i < 8; ) {
    if (g[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === "0") j++;
    if (j - i > best[1]! && j - i > 1) best = [i, j - i];
    i = j;
  }
  if (best[0]! < 0) return g.join(":");
  return `${g.slice(0, best[0]).join(":")}::${g.slice(best[0]! + best[1]!).join(":")}`;
}

/** /proc/net/if_inet6: global and site addresses per interface (link-local ones every interface has are left out). */
export function parseIfInet6(text: string): { iface: string; address: string; prefix?: string }[] {
  const out: { iface: string; address: string; prefix?: string }[] = [];
  for (const l of text.split("\n")) {
    const f = l.trim().split(/\s+/);
    if (f.length < 6 || !/^[0-9a-f]{32}$/i.test(f[0]!)) continue;
    const scope = parseInt(f[3]!, 16);
    if (scope === 0x20 || scope === 0x10) continue; // link, host
    const len = parseInt(f[2]!, 16);
    const bits = [...f[0]!.toLowerCase()].map((c) => parseInt(c, 16).toString(2).padStart(4, "0")).join("");
    const net = bits.slice(0, len).padEnd(128, "0").match(/.{4}/g)!.map((b) => parseInt(b, 2).toString(16)).join("");
    out.push({ iface: f[5]!, address: `${v6text(f[0]!.toLowerCase())}/${len}`, prefix: `${v6text(net)}/${len}` });
  }
  return out;
}

/** /proc/net/ipv6_route: routes through an interface, without link-local, multicast and local (own address) ones. */
export function parseIpv6Route(text: string): { iface: string; dst: string }[] {
  const out: { iface: string; dst: string }[] = [];
  for (const l of text.split("\n")) {
    const f = l.trim().split(/\s+/);
    if (f.length < 10 || !/^[0-9a-f]{32}$/i.test(f[0]!)) continue;
    const flags = parseInt(f[8]!, 16);
    const len = parseInt(f[1]!, 16);
    const dst = f[0]!.toLowerCase();
    if (flags & 0x80000000 || !(flags & 1) || dst.startsWith("ff") || dst.startsWith("fe8") || f[9] === "lo") continue; // RTF_LOCAL, !RTF_UP
    out.push({ iface: f[9]!, dst: len === 0 ? "default" : `${v6text(dst)}/${len}` });
  }
  return out;
}

/** /proc/self/mountinfo: major:minor → mount points. */
export function parseMountinfo(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of text.split("\n")) {
    const f = l.split(" ");
    if (f.length < 5 || !/^\d+:\d+$/.test(f[2]!)) continue;
    const mp = f[4]!.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    const list = out.get(f[2]!);
    if (list) list.push(mp);
    else out.set(f[2]!, [mp]);
  }
  return out;
}

/** /proc/swaps: the swap files and partitions (first column). */
export function parseSwaps(text: string): string[] {
  return text
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter(Boolean);
}

/** What the host reads once for any number of devices. */
interface NetTables {
  routes: Route4[];
  local4: string[];
  inet6: { iface: string; address: string; prefix?: string }[];
  routes6: { iface: string; dst: string }[];
}

async function netTables(sys: Syscalls): Promise<NetTables> {
  const [route, fib, inet6, r6] = await Promise.all(["/proc/net/route", "/proc/net/fib_trie", "/proc/net/if_inet6", "/proc/net/ipv6_route"].map((p) => tryText(sys, p)));
  return { routes: parseProcRoute(route ?? ""), local4: parseFibTrieLocal(fib ?? ""), inet6: parseIfInet6(inet6 ?? ""), routes6: parseIpv6Route(r6 ?? "") };
}

function netText(u: Omit<NetUse, "text">): string {
  const parts: string[] = [];
  if (u.addresses.length) parts.push(`${u.addresses.length === 1 ? "address" : "addresses"} ${u.addresses.join(", ")}`);
  const def = u.routes.includes("default");
  const other = u.routes.filter((r) => r !== "default");
  if (def) parts.push("the default route");
  if (other.length) parts.push(`${other.length === 1 ? "the route" : "routes"} to ${other.join(", ")}`);
  const state = u.up ? "is up" : "is down";
  const with_ = parts.length ? ` with ${parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}` : parts[0]}` : "";
  return `${u.ifname} ${state}${with_}${u.master ? `, enslaved to ${u.master}` : ""}`;
}

async function netUses(sys: Syscalls, bdf: string, tables: () => Promise<NetTables>): Promise<NetUse[]> {
  const names = await interfacesOf(sys, bdf);
  if (!names.length) return [];
  const t = await tables();
  const out: NetUse[] = [];
  for (const ifname of names) {
    const flags = await tryText(sys, `/sys/class/net/${ifname}/flags`);
    const operstate = (await tryText(sys, `/sys/class/net/${ifname}/operstate`))?.trim() ?? null;
    const up = flags !== null ? (parseInt(flags.trim().replace(/^0x/, ""), 16) & 1) === 1 : operstate === "up";
    const master = await linkBase(sys, `/sys/class/net/${ifname}/master`);
    const mine = t.routes.filter((r) => r.iface === ifname);
    const addresses: string[] = [];
    for (const a of t.local4) {
      const v = ip4(a);
      const on = mine.find((r) => r.mask !== 0 && r.gw === 0 && ((v & r.mask) >>> 0) === r.dst);
      if (on) addresses.push(`${a}/${popcount(on.mask)}`);
    }
    addresses.push(...t.inet6.filter((x) => x.iface === ifname).map((x) => x.address));
    const routes = [...new Set([...mine.map((r) => (r.mask === 0 ? "default" : `${fmt4(r.dst)}/${popcount(r.mask)}`)), ...t.routes6.filter((r) => r.iface === ifname).map((r) => r.dst)])];
    // a subnet route that only follows from one of the interface's own addresses is not a separate use
    const own = new Set(addresses.map((a) => (a.includes(":") ? "" : `${fmt4((ip4(a.split("/")[0]!) & (Number(a.split("/")[1]) ? (0xffffffff << (32 - Number(a.split("/")[1]))) >>> 0 : 0)) >>> 0)}/${a.split("/")[1]}`)));
    for (const x of t.inet6) if (x.iface === ifname && x.prefix) own.add(x.prefix);
    const u = { kind: "net" as const, bdf, ifname, up, operstate, addresses, routes: routes.filter((r) => !own.has(r)), master };
    if (u.up || u.addresses.length || u.routes.length || u.master) out.push({ ...u, text: netText(u) });
  }
  return out;
}

/** The device's block devices: nvme namespaces and block/ children, each with its partitions. */
async function blockDevicesOf(sys: Syscalls, bdf: string): Promise<string[]> {
  const p = devPath(bdf);
  const names: string[] = [];
  for (const ctrl of await tryDir(sys, `${p}/nvme`)) {
    if (!/^nvme\d+$/.test(ctrl)) continue;
    for (const ns of await tryDir(sys, `${p}/nvme/${ctrl}`)) if (/^nvme\d+(c\d+)?n\d+$/.test(ns)) names.push(ns);
  }
  for (const b of await tryDir(sys, `${p}/block`)) if (BLOCK_RE.test(b)) names.push(b);
  const all: string[] = [];
  for (const n of [...new Set(names)].sort()) {
    all.push(n);
    for (const part of await tryDir(sys, `/sys/block/${n}`)) if (part.startsWith(n) && part !== n && BLOCK_RE.test(part)) all.push(part);
  }
  return all;
}

async function blockUses(sys: Syscalls, bdf: string, files: () => Promise<{ mounts: Map<string, string[]>; swaps: string[] }>): Promise<BlockUse[]> {
  const names = await blockDevicesOf(sys, bdf);
  if (!names.length) return [];
  const f = await files();
  const out: BlockUse[] = [];
  for (const name of names) {
    const base = names.includes(name.replace(/p?\d+$/, "")) && name !== name.replace(/p?\d+$/, "") ? `/sys/block/${name.replace(/p?\d+$/, "")}/${name}` : `/sys/block/${name}`;
    let dev = "";
    try {
      dev = await readAttr(sys, `${base}/dev`);
    } catch {
      /* no dev attribute: no number to match mounts against */
    }
    const mounts = dev ? (f.mounts.get(dev) ?? []) : [];
    const holders = (await tryDir(sys, `${base}/holders`)).filter((h) => BLOCK_RE.test(h));
    const swap = f.swaps.some((s) => s === `/dev/${name}`);
    if (!mounts.length && !holders.length && !swap) continue;
    const parts = [...(mounts.length ? [`mounted on ${mounts.join(", ")}`] : []), ...(holders.length ? [`held by ${holders.join(", ")}`] : []), ...(swap ? ["in use as swap"] : [])];
    out.push({ kind: "block", bdf, name, dev, mounts, holders, swap, text: `${name}${dev ? ` (${dev})` : ""} is ${parts.join(" and ")}` });
  }
  return out;
}

/** What the host uses each of these devices for (empty when nothing). */
export async function hostUse(sys: Syscalls, bdfs: string | readonly string[]): Promise<HostUse[]> {
  let t: Promise<NetTables> | null = null;
  let f: Promise<{ mounts: Map<string, string[]>; swaps: string[] }> | null = null;
  const tables = () => (t ??= netTables(sys));
  const files = () =>
    (f ??= Promise.all([tryText(sys, "/proc/self/mountinfo"), tryText(sys, "/proc/swaps")]).then(([m, s]) => ({ mounts: parseMountinfo(m ?? ""), swaps: parseSwaps(s ?? "") })));
  const out: HostUse[] = [];
  for (const bdf of typeof bdfs === "string" ? [bdfs] : bdfs) out.push(...(await netUses(sys, bdf, tables)), ...(await blockUses(sys, bdf, files)));
  return out;
}

/**
 * Refuse (IN_USE, exit 1) when the host uses any of `devices` (the device itself, the VFs that go
 * with it), unless `force`. `bdf` is the device the command names; `action` says what would take
 * them away ("unbinding igb"), `flag` what --force would do ("unbind it").
 */
export async function refuseIfHostUses(sys: Syscalls, bdf: string, devices: readonly string[], action: string, flag: string, force: boolean | undefined): Promise<HostUse[]> {
  const uses = await hostUse(sys, devices);
  if (!uses.length || force) return uses;
  const byDev = new Map<string, string[]>();
  for (const u of uses) byDev.set(u.bdf, [...(byDev.get(u.bdf) ?? []), u.text]);
  const what = [...byDev].map(([b, ts]) => `${b === bdf ? "" : `${b}: `}${ts.join("; ")}`).join("; ");
  const down = uses.every((u) => u.kind === "net") ? `takes ${uses.length === 1 ? "it" : "them"} down` : `takes ${uses.length === 1 ? "it" : "them"} away from the host`;
  throw new VfioctlError("IN_USE", `${bdf}: in use by this host: ${what}; ${action} ${down}. Use --force to ${flag} anyway.`, {
    subject: bdf,
    fix: `stop using ${uses.map((u) => (u.kind === "net" ? u.ifname : u.name)).join(", ")} first (ip link set IF down, ip addr flush dev IF, umount, swapoff, remove the dm/md holder) — check you are not logged in through it — or add --force`,
    data: { uses },
  });
}
