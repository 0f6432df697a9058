/**
 * What the host looks like now, for the PFs a host config names: which device each rule
 * matched (and by what), its driver and override, its VFs and theirs, vfio-pci's parameters and
 * who holds the vfio groups. Read-only: nothing here writes a file or opens a device for more
 * than reading its sysfs attributes.
 */
import { isBdf } from "../lib/bdf.js";
import { VfioctlError } from "../lib/errors.js";
import { holdersOf, vfioHolders, type VfioHolder } from "../lib/holders.js";
import { devPath, listBdfs, readDevice, readVfioPciModule, type DeviceFacts, type VfioPciModule } from "../lib/sysfs.js";
import { readText } from "../sys/fsutil.js";
import { O_RDONLY, type Syscalls } from "../sys/syscalls.js";
import type { HostConfig, PfConfig, Selector } from "./config.js";

export interface MatchResult {
  /** the matched PF, or null */
  bdf: string | null;
  /** how it was matched, for the user: "bdf 0000:01:00.0", "8086:10c9 at path 0000:00:02.0/00.0", "serial …" */
  how: string;
  /** why nothing (or too much) matched */
  problem: string | null;
}

export interface PfState {
  cfg: PfConfig;
  match: MatchResult;
  pf: DeviceFacts | null;
  vfs: DeviceFacts[];
  /** holders of the PF's and each VF's group: bdf → holders */
  holders: Map<string, VfioHolder[]>;
  /** other devices in the PF's IOMMU group and their drivers */
  groupPeers: { bdf: string; driver: string | null }[];
  /** network interfaces of the PF and its VFs that are up (taking the device away takes them down) */
  netUp: { bdf: string; ifname: string; operstate: string }[];
}

export interface HostState {
  module: VfioPciModule;
  pfs: PfState[];
  allHolders: VfioHolder[];
  /** the kernel's boot id, when /proc shows one */
  bootId: string | null;
  /** each matched PF's First VF Offset and VF Stride (to name the VFs it will get) */
  pfOffsets: Map<string, { offset: number; stride: number }>;
}

/** The PCI path of a device: its root-bus ancestor's address, then each hop's slot.function. */
export async function pciPath(sys: Syscalls, bdf: string): Promise<string | null> {
  let target: string;
  try {
    target = await sys.readlink(devPath(bdf));
  } catch {
    return null;
  }
  const parts = target.split("/").filter((p) => isBdf(p));
  if (!parts.length) return null;
  return [parts[0]!, ...parts.slice(1).map((p) => p.slice(8))].join("/");
}

/** The PCIe Device Serial Number from the device's config space (extended capability 0x0003), as lspci prints it. */
export function dsnFromConfig(cfg: Buffer): string | null {
  let off = 0x100;
  for (let hops = 0; off >= 0x100 && off + 12 <= cfg.length && hops < 64; hops++) {
    const h = cfg.readUInt32LE(off);
    if (h === 0 || h === 0xffffffff) return null;
    if ((h & 0xffff) === 0x0003) {
      const lo = cfg.readUInt32LE(off + 4);
      const hi = cfg.readUInt32LE(off + 8);
      const bytes = [hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff, lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff];
      return bytes.map((b) => b.toString(16).padStart(2, "0")).join("-");
    }
    off = (h >>> 20) & 0xffc;
  }
  return null;
}

async function serialOf(sys: Syscalls, bdf: string): Promise<string | null> {
  let fd: number;
  try {
    fd = await sys.open(devPath(bdf, "config"), O_RDONLY);
  } catch {
    return null;
  }
  try {
    const parts: Buffer[] = [];
    let n = 0;
    while (n < 4096) {
      const b = await sys.read(fd, 4096 - n);
      if (b.length === 0) break;
      parts.push(b);
      n += b.length;
    }
    return dsnFromConfig(Buffer.concat(parts));
  } catch {
    return null;
  } finally {
    await sys.close(fd).catch(() => {});
  }
}

/** Find the device a selector names. Only PFs (devices with sriov_totalvfs) or, for bdf, any device. */
export async function matchSelector(sys: Syscalls, sel: Selector, bdfs?: string[]): Promise<MatchResult> {
  if (sel.by === "bdf") {
    const all = bdfs ?? (await listBdfs(sys));
    return all.includes(sel.bdf) ? { bdf: sel.bdf, how: `bdf ${sel.bdf}`, problem: null } : { bdf: null, how: `bdf ${sel.bdf}`, problem: `no PCI device ${sel.bdf} on this host` };
  }
  const all = bdfs ?? (await listBdfs(sys));
  const hits: string[] = [];
  const idText = sel.by === "path" ? `${sel.vendor.toString(16).padStart(4, "0")}:${sel.device.toString(16).padStart(4, "0")}` : "";
  for (const b of all) {
    if (sel.by === "path") {
      const d = await readDevice(sys, b);
      if (d.vendor !== sel.vendor || d.device !== sel.device || d.physfn) continue;
      if ((await pciPath(sys, b)) === sel.path) hits.push(b);
    } else {
      const d = await readDevice(sys, b);
      if (d.physfn) continue;
      if ((await serialOf(sys, b)) === sel.serial) hits.push(b);
    }
  }
  const how = sel.by === "path" ? `${idText} at path ${sel.path}` : `serial ${sel.serial}`;
  if (hits.length === 1) return { bdf: hits[0]!, how: `${how} (now ${hits[0]})`, problem: null };
  if (hits.length === 0) return { bdf: null, how, problem: sel.by === "path" ? `no ${idText} device at PCI path ${sel.path}` : `no device with Device Serial Number ${sel.serial} (config space unreadable without root, or the device has none)` };
  return { bdf: null, how, problem: `${hits.length} devices match (${hits.join(", ")}): the selector must name one` };
}

/** The kernel's boot id (/proc/sys/kernel/random/boot_id, else /proc/stat's btime), or null. */
export async function bootId(sys: Syscalls): Promise<string | null> {
  try {
    return (await readText(sys, "/proc/sys/kernel/random/boot_id")).trim() || null;
  } catch {
    try {
      const m = /^btime (\d+)$/m.exec(await readText(sys, "/proc/stat"));
      return m ? `btime-${m[1]}` : null;
    } catch {
      return null;
    }
  }
}

/** The device's network interfaces whose operstate is not "down" (/sys/bus/pci/devices/BDF/net/IF/operstate). */
export async function netUp(sys: Syscalls, bdf: string): Promise<{ bdf: string; ifname: string; operstate: string }[]> {
  let names: string[];
  try {
    names = await sys.readdir(devPath(bdf, "net"));
  } catch {
    return [];
  }
  const out: { bdf: string; ifname: string; operstate: string }[] = [];
  for (const n of names) {
    if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(n)) continue;
    let op = "unknown";
    try {
      op = (await readText(sys, `${devPath(bdf, "net")}/${n}/operstate`)).trim();
    } catch {
      /* unreadable: treat as unknown (not down) */
    }
    if (op !== "down" && op !== "notpresent" && op !== "lowerlayerdown") out.push({ bdf, ifname: n, operstate: op });
  }
  return out;
}

/** Observe the host for a config (read-only). */
export async function observe(sys: Syscalls, cfg: HostConfig, opts: { numvfsTimeoutMs?: number } = {}): Promise<HostState> {
  const [module, allHolders, bdfs, boot] = await Promise.all([readVfioPciModule(sys), vfioHolders(sys), listBdfs(sys), bootId(sys)]);
  const pfs: PfState[] = [];
  const pfOffsets = new Map<string, { offset: number; stride: number }>();
  const claimed = new Map<string, string>();
  for (const pc of cfg.pfs) {
    const match = await matchSelector(sys, pc.match, bdfs);
    if (match.bdf && claimed.has(match.bdf)) {
      match.problem = `${match.bdf} is also matched by ${claimed.get(match.bdf)}`;
      match.bdf = null;
    }
    const st: PfState = { cfg: pc, match, pf: null, vfs: [], holders: new Map(), groupPeers: [], netUp: [] };
    if (match.bdf) {
      claimed.set(match.bdf, pc.field);
      const pf = await readDevice(sys, match.bdf, opts.numvfsTimeoutMs !== undefined ? { numvfsTimeoutMs: opts.numvfsTimeoutMs } : {});
      if (!pf.sriov) {
        match.problem = `${match.bdf} is not an SR-IOV PF (no sriov_totalvfs)${pf.physfn ? `: it is a VF of ${pf.physfn}` : ""}`;
      } else {
        st.pf = pf;
        try {
          const [o, s] = await Promise.all([readText(sys, devPath(pf.bdf, "sriov_offset")), readText(sys, devPath(pf.bdf, "sriov_stride"))]);
          pfOffsets.set(pf.bdf, { offset: Number(o.trim()), stride: Number(s.trim()) });
        } catch {
          /* not readable: VF names cannot be predicted */
        }
        st.vfs = await Promise.all(pf.sriov.vfs.map((v) => readDevice(sys, v)));
        for (const d of [pf, ...st.vfs]) {
          const h = holdersOf(allHolders, d.iommuGroup);
          if (h.length) st.holders.set(d.bdf, h);
          if (d.driver && d.driver !== "vfio-pci") st.netUp.push(...(await netUp(sys, d.bdf)));
        }
        if (pf.iommuGroup !== null) {
          try {
            const members = (await sys.readdir(`/sys/kernel/iommu_groups/${pf.iommuGroup}/devices`)).filter((b) => isBdf(b) && b !== pf.bdf);
            for (const m of members) st.groupPeers.push({ bdf: m, driver: (await readDevice(sys, m)).driver });
          } catch {
            /* no group directory */
          }
        }
      }
    }
    pfs.push(st);
  }
  return { module, pfs, allHolders, bootId: boot, pfOffsets };
}

/** Throw a clear error when a PF rule matched nothing (for commands that need the device). */
export function requireMatched(st: PfState): DeviceFacts {
  if (!st.pf) {
    throw new VfioctlError("NO_DEVICE", `${st.cfg.field} (${st.cfg.name}): ${st.match.problem ?? "not matched"} (matched by ${st.match.how})`, {
      subject: st.cfg.name,
      errno: "ENODEV",
      fix: "check the match: of the PF in the config against `vfioctl list`",
    });
  }
  return st.pf;
}
