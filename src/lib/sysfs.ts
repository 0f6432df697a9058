/**
 * Read-only views of one PCI device and of the vfio-pci module, from sysfs and /dev/vfio only.
 * Nothing here opens a device or writes a file; every path is built from a checked BDF.
 *
 * @example
 * ```ts
 * import { bootKernel, readDevice } from "vfioctl";
 * const k = await bootKernel();
 * const d = await readDevice(k.spawn("sh"), "0000:01:00.0");
 * d.sriov?.totalVfs; // 8
 * ```
 */
import { readAttr, linkBase, exists, withTimeout, TimeoutError } from "../sys/fsutil.js";
import { isErrno } from "../sys/errno.js";
import type { Stat, Syscalls } from "../sys/syscalls.js";
import { checkBdf, isBdf } from "./bdf.js";
import { parseBdf } from "../kernel/pci/bdf.js";
import { DENYLIST } from "../kernel/vfio/pci/denylist.js";
import { VfioctlError } from "./errors.js";

export const PCI_DEVICES = "/sys/bus/pci/devices";
export const PCI_DRIVERS = "/sys/bus/pci/drivers";
export const VFIO_PCI_PARAMS = "/sys/module/vfio_pci/parameters";

export const devPath = (bdf: string, attr?: string) => `${PCI_DEVICES}/${checkBdf(bdf)}${attr ? `/${attr}` : ""}`;

export interface SriovInfo {
  totalVfs: number;
  /** null when the read stayed blocked (6.1: a write to sriov_numvfs holds the PF's device lock) */
  numVfs: number | null;
  driversAutoprobe: boolean | null;
  /** VF addresses in virtfn order */
  vfs: string[];
}

export interface DeviceFacts {
  bdf: string;
  vendor: number | null;
  device: number | null;
  class: number | null;
  driver: string | null;
  /** null when unset ("(null)") */
  driverOverride: string | null;
  iommuGroup: number | null;
  /** "/dev/vfio/<N>" (or null without a group) and whether the node exists now */
  vfioNode: string | null;
  vfioNodeExists: boolean;
  /** the vfio device's class device name "vfio<N>" (sysfs vfio-dev/, 6.1+), null when not a vfio device */
  vfioDevice: string | null;
  /** "/dev/vfio/devices/vfio<N>" when that cdev node exists (CONFIG_VFIO_DEVICE_CDEV), else null */
  cdevNode: string | null;
  /** present on PFs (the sriov_* attributes exist only on PFs) */
  sriov: SriovInfo | null;
  /** the PF of a VF, and the VF's index */
  physfn: string | null;
  vfIndex: number | null;
  /** attributes whose read was still waiting after the timeout (driver_override, sriov_numvfs:
   * they take the device lock, which a removal waiting for a VF's user holds); their fields are null */
  blockedReads?: string[];
}

export interface VfioPciModule {
  /** the vfio-pci driver is registered (/sys/bus/pci/drivers/vfio-pci exists) */
  loaded: boolean;
  /** /sys/module/vfio_pci/parameters/enable_sriov; null when the parameter is absent */
  enableSriov: boolean | null;
  disableDenylist: boolean | null;
}

async function tryAttr(sys: Syscalls, path: string): Promise<string | null> {
  try {
    return await readAttr(sys, path);
  } catch {
    return null;
  }
}

const num = (s: string | null, base = 10): number | null => {
  if (s === null) return null;
  const n = base === 16 ? parseInt(s.replace(/^0x/, ""), 16) : parseInt(s, 10);
  return Number.isFinite(n) ? n : null;
};

const yn = (s: string | null): boolean | null => (s === null ? null : /^[Yy1]/.test(s));

/** Every PCI device address on the host, sorted. */
export async function listBdfs(sys: Syscalls): Promise<string[]> {
  const names = await sys.readdir(PCI_DEVICES);
  return names.filter(isBdf).sort();
}

/** Throws NO_DEVICE when the device is absent. */
export async function requireDevice(sys: Syscalls, bdf: string): Promise<void> {
  checkBdf(bdf);
  if (!(await exists(sys, devPath(bdf)))) {
    throw new VfioctlError("NO_DEVICE", `${bdf}: no such PCI device (${devPath(bdf)}: ENOENT)`, { subject: bdf, errno: "ENOENT", fix: "see `vfioctl list` for the devices of this host" });
  }
}

/**
 * What several {@link readDevice} calls of one pass over the host share: the PF attributes every
 * VF's index is worked out from (`sriov_offset`, `sriov_stride`) and the PF's `virtfn<N>` links,
 * each read once however many VFs (and the PF itself) ask for them. Make one per pass
 * ({@link readCache}); a value stays as first read for as long as the cache is kept.
 */
export interface ReadCache {
  readonly attrs: Map<string, Promise<string | null>>;
  readonly links: Map<string, Promise<string | null>>;
  /** attributes whose prefetched read ({@link prefetchDevices}) was still blocked after the timeout */
  readonly blocked: Set<string>;
  /** prefetched folder entries (or the readdir's error) and exists() answers */
  readonly dirs: Map<string, string[] | Error>;
  readonly exists: Map<string, boolean>;
}

export const readCache = (): ReadCache => ({ attrs: new Map(), links: new Map(), blocked: new Set(), dirs: new Map(), exists: new Map() });

function existsOf(sys: Syscalls, path: string, cache: ReadCache | undefined): Promise<boolean> {
  const e = cache?.exists.get(path);
  return e === undefined ? exists(sys, path) : Promise.resolve(e);
}

function dirOf(sys: Syscalls, path: string, cache: ReadCache | undefined): Promise<string[]> {
  const d = cache?.dirs.get(path);
  if (d === undefined) return sys.readdir(path);
  return d instanceof Error ? Promise.reject(d) : Promise.resolve(d);
}

/** An attribute as {@link tryAttr} reads it, answered from the cache when prefetched there. */
export function attrOf(sys: Syscalls, path: string, cache: ReadCache | undefined): Promise<string | null> {
  return cache?.attrs.get(path) ?? tryAttr(sys, path);
}

function linkOf(sys: Syscalls, path: string, cache: ReadCache | undefined): Promise<string | null> {
  return cache?.links.get(path) ?? linkBase(sys, path);
}

const base = (t: string): string => t.slice(t.lastIndexOf("/") + 1);

/**
 * Read ahead, into `cache`, what {@link readDevice} (and inventory's numa_node) will read for
 * each of `bdfs`, in a few batch calls of the backend (`Syscalls.readFiles`, `readlinks`):
 * the `driver`, `iommu_group`, `physfn` links; `vendor`, `device`, `class`, `numa_node`,
 * `sriov_totalvfs` (not on VFs), the PFs' `sriov_offset`/`sriov_stride`, with `driver_override`
 * in the same call (a read that can block: bounded by `timeoutMs`, as readDevice bounds it);
 * then the PFs' `sriov_numvfs` (bounded too) and `sriov_drivers_autoprobe`, and each VF's
 * `virtfn<N>` link as vfIndexOf works it out; with `lstats`/`readdirs` also `exists()` of each
 * `/dev/vfio/N` and cdev node, each device's `net/` and `vfio-dev/`, the PFs' folders. Reads
 * nothing readDevice would not read. Does nothing when the backend has no batch reads.
 */
export async function prefetchDevices(sys: Syscalls, bdfs: readonly string[], cache: ReadCache, timeoutMs: number): Promise<void> {
  if (!sys.readFiles || !sys.readlinks) return;
  const links = (paths: string[], res: (string | Error)[]) => paths.forEach((p, i) => {
    const t = res[i]!;
    cache.links.set(p, Promise.resolve(typeof t === "string" ? base(t) : null));
  });
  const files = (paths: string[], res: (Buffer | Error | null)[]) => paths.forEach((p, i) => {
    const r = res[i]!;
    if (r === null) return void cache.blocked.add(p);
    const s = Buffer.isBuffer(r) ? r.toString("utf8") : null;
    cache.attrs.set(p, Promise.resolve(s === null ? null : s.endsWith("\n") ? s.slice(0, -1) : s));
  });
  const statsInto = (paths: string[], res: (Stat | Error)[]) => paths.forEach((p, i) => cache.exists.set(p, !(res[i] instanceof Error)));
  const dirsInto = (paths: string[], res: (string[] | Error)[]) => paths.forEach((p, i) => cache.dirs.set(p, res[i]!));
  const first = bdfs.flatMap((b) => [devPath(b, "driver"), devPath(b, "iommu_group"), devPath(b, "physfn")]);
  links(first, await sys.readlinks(first));
  const physfn = new Map<string, string>();
  for (const b of bdfs) {
    const pf = await cache.links.get(devPath(b, "physfn"));
    if (pf && isBdf(pf)) physfn.set(b, pf);
  }
  const pfsOfVfs = [...new Set(physfn.values())];
  const attrs = bdfs.flatMap((b) => {
    const a = [devPath(b, "vendor"), devPath(b, "device"), devPath(b, "class"), devPath(b, "driver_override"), devPath(b, "numa_node")];
    if (!physfn.has(b)) a.push(devPath(b, "sriov_totalvfs"));
    return a;
  });
  for (const pf of pfsOfVfs) attrs.push(devPath(pf, "sriov_offset"), devPath(pf, "sriov_stride"));
  const pending = sys.readFiles(attrs, { wholeIfShort: true, timeoutMs });
  const lstats = sys.lstats && sys.readdirs ? { lstats: sys.lstats, readdirs: sys.readdirs } : undefined;
  if (lstats) {
    // while the threadpool reads driver_override: exists() of each /dev/vfio node, each device's
    // net/ and (on vfio-pci and its variants) vfio-dev/ folder
    const nodes: string[] = [];
    const dirs: string[] = [];
    for (const b of bdfs) {
      const g = await cache.links.get(devPath(b, "iommu_group"));
      if (g != null && /^\d+$/.test(g)) nodes.push(`/dev/vfio/${Number(g)}`);
      dirs.push(devPath(b, "net"));
      if (isVfioDriver((await cache.links.get(devPath(b, "driver"))) ?? null)) dirs.push(devPath(b, "vfio-dev"));
    }
    statsInto(nodes, await lstats.lstats(nodes));
    dirsInto(dirs, await lstats.readdirs(dirs));
  }
  files(attrs, await pending);
  const pfs: string[] = [];
  for (const b of bdfs) if (!physfn.has(b) && (await cache.attrs.get(devPath(b, "sriov_totalvfs"))) != null) pfs.push(b);
  const second = pfs.flatMap((b) => [devPath(b, "sriov_numvfs"), devPath(b, "sriov_drivers_autoprobe")]);
  const virtfn: string[] = [];
  for (const [vf, pf] of physfn) {
    const k = await candidateIndex(sys, pf, vf, cache);
    if (k !== null) virtfn.push(`${devPath(pf)}/virtfn${k}`);
  }
  if (lstats) {
    // the PFs' folders (their virtfn links), the vfio cdev nodes of the vfio devices
    dirsInto(pfs.map((b) => devPath(b)), await lstats.readdirs(pfs.map((b) => devPath(b))));
    const cdevs: string[] = [];
    for (const b of bdfs) {
      const v = cache.dirs.get(devPath(b, "vfio-dev"));
      const name = v === undefined || v instanceof Error ? undefined : v.find((n) => /^vfio\d+$/.test(n));
      if (name) cdevs.push(`/dev/vfio/devices/${name}`);
    }
    statsInto(cdevs, await lstats.lstats(cdevs));
  }
  const [res] = await Promise.all([second.length ? sys.readFiles(second, { wholeIfShort: true, timeoutMs }) : [], (async () => links(virtfn, await sys.readlinks!(virtfn)))()]);
  files(second, res);
}

/** The virtfn index a VF's routing ID names (see vfIndexOf), from the PF's cached offset and stride. */
async function candidateIndex(sys: Syscalls, pf: string, bdf: string, cache: ReadCache): Promise<number | null> {
  const a = parseBdf(pf);
  const v = parseBdf(bdf);
  if (!a || !v) return null;
  const pp = devPath(pf);
  const [offset, stride] = [num(await cachedAttr(sys, `${pp}/sriov_offset`, cache)), num(await cachedAttr(sys, `${pp}/sriov_stride`, cache))];
  const delta = ((v.bus << 8) | v.devfn) - ((a.bus << 8) | a.devfn) - (offset ?? 0);
  return offset !== null && stride && delta >= 0 && delta % stride === 0 ? delta / stride : null;
}

function cachedAttr(sys: Syscalls, path: string, cache: ReadCache | undefined): Promise<string | null> {
  if (!cache) return tryAttr(sys, path);
  let p = cache.attrs.get(path);
  if (!p) cache.attrs.set(path, (p = tryAttr(sys, path)));
  return p;
}

function cachedLink(sys: Syscalls, path: string, cache: ReadCache | undefined): Promise<string | null> {
  if (!cache) return linkBase(sys, path);
  let p = cache.links.get(path);
  if (!p) cache.links.set(path, (p = linkBase(sys, path)));
  return p;
}

/**
 * Read what sysfs says about one device. `numvfsTimeoutMs` bounds the read of sriov_numvfs,
 * which 6.1 blocks while another task's write to it waits for a VF to be released. `cache`:
 * see {@link ReadCache} (inventory reads every device with one).
 */
export async function readDevice(sys: Syscalls, bdf: string, opts: { numvfsTimeoutMs?: number; cache?: ReadCache } = {}): Promise<DeviceFacts> {
  const cache = opts.cache;
  const p = devPath(bdf);
  const t = opts.numvfsTimeoutMs ?? 2000;
  const blockedReads: string[] = [];
  // driver_override_show takes the device lock: on a device whose removal (or a PF whose
  // sriov_numvfs write) waits for a VF's user, the read waits too — bounded, and said so
  const timed = async (name: string): Promise<string | null> => {
    const at = cache?.attrs.get(`${p}/${name}`);
    if (at) return at;
    if (cache?.blocked.has(`${p}/${name}`)) {
      blockedReads.push(name);
      return null;
    }
    try {
      return await withTimeout(readAttr(sys, `${p}/${name}`), t, `read ${p}/${name}`);
    } catch (e) {
      if (e instanceof TimeoutError) blockedReads.push(name);
      else if (!isErrno(e)) throw e;
      return null;
    }
  };
  const [vendor, device, cls, driver, ovr, group, physfn] = await Promise.all([
    attrOf(sys, `${p}/vendor`, cache),
    attrOf(sys, `${p}/device`, cache),
    attrOf(sys, `${p}/class`, cache),
    linkOf(sys, `${p}/driver`, cache),
    timed("driver_override"),
    linkOf(sys, `${p}/iommu_group`, cache),
    linkOf(sys, `${p}/physfn`, cache),
  ]);
  const iommuGroup = group !== null && /^\d+$/.test(group) ? Number(group) : null;
  const vfioNode = iommuGroup === null ? null : `/dev/vfio/${iommuGroup}`;
  const facts: DeviceFacts = {
    bdf,
    vendor: num(vendor, 16),
    device: num(device, 16),
    class: num(cls, 16),
    driver,
    driverOverride: ovr === null || ovr === "(null)" || ovr === "" ? null : ovr,
    iommuGroup,
    vfioNode,
    vfioNodeExists: vfioNode !== null && (await existsOf(sys, vfioNode, cache)),
    vfioDevice: null,
    cdevNode: null,
    sriov: null,
    physfn: physfn !== null && isBdf(physfn) ? physfn : null,
    vfIndex: null,
  };
  if (driver !== null && isVfioDriver(driver)) {
    try {
      facts.vfioDevice = (await dirOf(sys, `${p}/vfio-dev`, cache)).find((n) => /^vfio\d+$/.test(n)) ?? null;
    } catch {
      /* no vfio-dev class device (before 6.1) */
    }
    if (facts.vfioDevice && (await existsOf(sys, `/dev/vfio/devices/${facts.vfioDevice}`, cache))) facts.cdevNode = `/dev/vfio/devices/${facts.vfioDevice}`;
  }
  // the sriov_* attributes are visible on PFs only (iov.c sriov_pf_attrs_are_visible: a VF has
  // no SR-IOV capability of its own), so a VF is not asked for them
  const total = facts.physfn ? null : await attrOf(sys, `${p}/sriov_totalvfs`, cache);
  if (total !== null) {
    const numVfs = num(await timed("sriov_numvfs"));
    const entries = await dirOf(sys, p, cache);
    const vfLinks = entries
      .filter((n) => /^virtfn\d+$/.test(n))
      .map((n) => Number(n.slice(6)))
      .sort((a, b) => a - b);
    const vfs: string[] = [];
    for (const i of vfLinks) {
      const b = await cachedLink(sys, `${p}/virtfn${i}`, cache);
      if (b && isBdf(b)) vfs.push(b);
    }
    facts.sriov = { totalVfs: num(total) ?? 0, numVfs, driversAutoprobe: yn(await attrOf(sys, `${p}/sriov_drivers_autoprobe`, cache)), vfs };
  }
  if (facts.physfn) facts.vfIndex = await vfIndexOf(sys, facts.physfn, bdf, cache);
  if (blockedReads.length) facts.blockedReads = blockedReads;
  return facts;
}

/**
 * The index N of the PF's virtfn<N> link that points back to this VF. The routing-ID arithmetic
 * (iov.c pci_iov_virtfn_bus/devfn: VF rid = PF rid + offset + stride·N, with the PF's current
 * sriov_offset and sriov_stride) names the candidate, so one readlink confirms it; only when it
 * does not (an unusual tree) are all the PF's virtfn links searched. Reading every VF of a PF is
 * then linear in the number of VFs, not quadratic.
 */
async function vfIndexOf(sys: Syscalls, pf: string, bdf: string, cache?: ReadCache): Promise<number | null> {
  const pp = devPath(pf);
  try {
    const a = parseBdf(pf)!;
    const v = parseBdf(bdf)!;
    const [offset, stride] = [num(await cachedAttr(sys, `${pp}/sriov_offset`, cache)), num(await cachedAttr(sys, `${pp}/sriov_stride`, cache))];
    const delta = ((v.bus << 8) | v.devfn) - ((a.bus << 8) | a.devfn) - (offset ?? 0);
    if (offset !== null && stride && delta >= 0 && delta % stride === 0 && (await cachedLink(sys, `${pp}/virtfn${delta / stride}`, cache)) === bdf) return delta / stride;
    for (const n of await sys.readdir(pp)) {
      if (/^virtfn\d+$/.test(n) && (await cachedLink(sys, `${pp}/${n}`, cache)) === bdf) return Number(n.slice(6));
    }
  } catch {
    /* PF directory unreadable: index unknown */
  }
  return null;
}

/** The vfio-pci module's state as /sys shows it. */
export async function readVfioPciModule(sys: Syscalls): Promise<VfioPciModule> {
  return {
    loaded: await exists(sys, `${PCI_DRIVERS}/vfio-pci`),
    enableSriov: yn(await tryAttr(sys, `${VFIO_PCI_PARAMS}/enable_sriov`)),
    disableDenylist: yn(await tryAttr(sys, `${VFIO_PCI_PARAMS}/disable_denylist`)),
  };
}

/** The devices of an IOMMU group (/sys/kernel/iommu_groups/<N>/devices). */
export async function groupMembers(sys: Syscalls, group: number): Promise<string[]> {
  try {
    return (await sys.readdir(`/sys/kernel/iommu_groups/${group}/devices`)).filter(isBdf).sort();
  } catch {
    return [];
  }
}

/** Drivers registered on the PCI bus. */
export async function listDrivers(sys: Syscalls): Promise<string[]> {
  try {
    return (await sys.readdir(PCI_DRIVERS)).sort();
  } catch {
    return [];
  }
}

/**
 * vfio_pci.c denylist (5.9+): Intel QAT PFs and VFs that vfio-pci refuses with EINVAL — the same
 * list the kernel model's vfio-pci uses (src/kernel/vfio/pci/denylist.ts).
 */
export const VFIO_PCI_DENYLIST = DENYLIST;

export function denylisted(d: Pick<DeviceFacts, "vendor" | "device">): boolean {
  return VFIO_PCI_DENYLIST.some(([v, id]) => v === d.vendor && id === d.device);
}

/** Drivers that vfio treats as not claiming DMA ownership (the group stays viable). */
export const DMA_SAFE_DRIVERS = new Set(["vfio-pci", "pci-stub"]);

/** True for vfio-pci and its variant drivers (mlx5_vfio_pci, hisi_acc_vfio_pci …). */
export const isVfioDriver = (d: string | null): boolean => d !== null && (d === "vfio-pci" || /vfio[_-]pci/.test(d));

/**
 * Drivers known to have (true) or lack (false) a `.sriov_configure` callback, so that
 * `sriov_numvfs` works through them. Unknown names give undefined ("cannot tell").
 */
export const SRIOV_CONFIGURE: Readonly<Record<string, boolean>> = {
  "vfio-pci": true,
  "pci-pf-stub": true,
  igb: true, ixgbe: true, i40e: true, ice: true, mlx5_core: true, bnxt_en: true, qede: true, nvme: true,
  qat_c62x: true, qat_c3xxx: true, qat_dh895xcc: true, qat_4xxx: true, ena: true, octeontx2_af: true, nfp: true,
  igbvf: false, ixgbevf: false, iavf: false, "pci-stub": false, ahci: false, xhci_hcd: false, e1000e: false,
};

export const hasSriovConfigure = (driver: string | null): boolean | undefined => (driver === null ? undefined : SRIOV_CONFIGURE[driver]);
