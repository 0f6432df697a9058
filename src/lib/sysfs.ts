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
import { readAttr, exists } from "../sys/fsutil.js";
import { lstatsOf, readdirsOf, readFilesOf, readlinksOf } from "../sys/batch.js";
import type { FileRead, Syscalls } from "../sys/syscalls.js";
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

/** The attributes {@link prefetchDevices} reads (the sriov_* ones on PFs only). */
type AttrName = "vendor" | "device" | "class" | "driver_override" | "numa_node" | "sriov_totalvfs" | "sriov_offset" | "sriov_stride" | "sriov_numvfs" | "sriov_drivers_autoprobe";
type LinkName = "driver" | "iommu_group" | "physfn";
type DirName = "net" | "vfio-dev" | "self";

/**
 * What {@link prefetchDevices} read of one device (undefined: not read). Attribute values are
 * without their newline (null: absent or unreadable), links are their target's last component
 * (null: no link), folders their entries or the readdir's error.
 */
export interface DeviceRead {
  /** /sys/bus/pci/devices/<BDF> */
  readonly path: string;
  attrs: Partial<Record<AttrName, string | null>>;
  /** attributes whose read was still blocked after the timeout */
  blocked: AttrName[];
  links: Partial<Record<LinkName, string | null>>;
  /** the PF's virtfn<N> links, by N */
  virtfn: Map<number, string | null>;
  dirs: Partial<Record<DirName, string[] | Error>>;
  /** exists() of /dev/vfio/<group> and of the vfio cdev node */
  nodeExists?: boolean;
  cdevExists?: boolean;
  /** read whole by prefetchDevices, and with inventory's extras (numa_node, net/) */
  read: false | "device" | "extras";
  /** the routing ID (bus << 8 | devfn) of its BDF, once asked ({@link ridOf}); null: no BDF */
  rid: number | null | undefined;
}

/**
 * What {@link prefetchDevices} read, for {@link readDevice} to answer from, by device. Shared
 * by the devices of one pass over the host, so the PF attributes every VF's index is worked out
 * from (`sriov_offset`, `sriov_stride`) are read once however many VFs ask. Make one per pass
 * ({@link readCache}); a value stays as first read for as long as the cache is kept.
 */
export interface ReadCache {
  readonly devices: Map<string, DeviceRead>;
}

export const readCache = (): ReadCache => ({ devices: new Map() });

/** The cache's record of a device, made empty when it has none. */
export function deviceRead(cache: ReadCache, bdf: string): DeviceRead {
  let r = cache.devices.get(bdf);
  if (!r) {
    // every key there from the start (undefined: not read), so that all records have one shape
    const attrs = { vendor: undefined, device: undefined, class: undefined, driver_override: undefined, numa_node: undefined, sriov_totalvfs: undefined, sriov_offset: undefined, sriov_stride: undefined, sriov_numvfs: undefined, sriov_drivers_autoprobe: undefined };
    r = { path: devPath(bdf), attrs, blocked: [], links: { driver: undefined, iommu_group: undefined, physfn: undefined }, virtfn: new Map(), dirs: { net: undefined, "vfio-dev": undefined, self: undefined }, read: false, rid: undefined };
    cache.devices.set(bdf, r);
  }
  return r;
}

const base = (t: string): string => t.slice(t.lastIndexOf("/") + 1);

/**
 * Read, into `cache`, everything {@link readDevice} works each of `bdfs` out from, in stages
 * of whole batches (src/sys/batch.ts: the backend's batch reads, or single calls where it has
 * none): (1) the `driver`, `iommu_group`, `physfn` links; (2) `vendor`, `device`, `class`,
 * `driver_override` (a read that can block: answered blocked after `timeoutMs`),
 * `sriov_totalvfs` (not on VFs: the sriov_* attributes are visible on PFs only, iov.c
 * sriov_pf_attrs_are_visible), the VFs' PFs' `sriov_offset`/`sriov_stride`, exists() of each
 * `/dev/vfio/<group>`, the `vfio-dev/` folder of each device on vfio-pci or a variant; (3) the
 * PFs' `sriov_numvfs` (can block too) and `sriov_drivers_autoprobe` and folders, each VF's
 * `virtfn<N>` link as the routing ID names it (see candidateIndex), exists() of the vfio cdev nodes;
 * (4) the PFs' `virtfn<N>` links not read yet. With `extras` also what inventory adds: each
 * device's `numa_node` and `net/`. Devices already in the cache are not read again.
 */
export async function prefetchDevices(sys: Syscalls, bdfs: readonly string[], cache: ReadCache, timeoutMs: number, opts: { extras?: boolean } = {}): Promise<void> {
  const extras = opts.extras ?? false;
  const todo: DeviceRead[] = [];
  for (const b of bdfs) {
    const r = deviceRead(cache, b);
    if (!r.read || (extras && r.read !== "extras")) todo.push(r);
  }
  if (!todo.length) return;
  // one batch per kind of read: the paths, and for each the record and the key its answer goes to
  const batch = <K>() => ({ paths: [] as string[], recs: [] as DeviceRead[], keys: [] as K[] });
  type Batch<K> = ReturnType<typeof batch<K>>;
  const add = <K>(b: Batch<K>, path: string, r: DeviceRead, k: K) => {
    b.paths.push(path);
    b.recs.push(r);
    b.keys.push(k);
  };
  const links = async (b: Batch<LinkName | number>) => {
    const res = await readlinksOf(sys, b.paths);
    for (let i = 0; i < res.length; i++) {
      const t = res[i]!;
      const v = typeof t === "string" ? base(t) : null;
      const k = b.keys[i]!;
      if (typeof k === "number") b.recs[i]!.virtfn.set(k, v);
      else b.recs[i]!.links[k] = v;
    }
  };
  const files = async (b: Batch<AttrName>) => {
    const res = await readFilesOf(sys, b.paths, { wholeIfShort: true, timeoutMs });
    for (let i = 0; i < res.length; i++) {
      const v = res[i]!;
      const r = b.recs[i]!;
      if (v === null) r.blocked.push(b.keys[i]!);
      else {
        const s = Buffer.isBuffer(v) ? v.toString("utf8") : null;
        r.attrs[b.keys[i]!] = s === null ? null : s.endsWith("\n") ? s.slice(0, -1) : s;
      }
    }
  };
  const stats = async (b: Batch<"node" | "cdev">) => {
    const res = await lstatsOf(sys, b.paths);
    for (let i = 0; i < res.length; i++) {
      const ok = !(res[i] instanceof Error);
      if (b.keys[i] === "node") b.recs[i]!.nodeExists = ok;
      else b.recs[i]!.cdevExists = ok;
    }
  };
  const dirs = async (b: Batch<DirName>) => {
    const res = await readdirsOf(sys, b.paths);
    for (let i = 0; i < res.length; i++) b.recs[i]!.dirs[b.keys[i]!] = res[i]!;
  };
  const l1 = batch<LinkName | number>();
  // driver_override first, on its own: its reads can block, so the real backend makes them in
  // the threadpool, where they go on while the links and the other attributes are read (they
  // need nothing the links say); its answers are awaited with the second stage's
  const f0 = batch<AttrName>();
  for (const r of todo) {
    for (const n of ["driver", "iommu_group", "physfn"] as const) if (r.links[n] === undefined) add(l1, `${r.path}/${n}`, r, n);
    if (r.attrs.driver_override === undefined) add(f0, `${r.path}/driver_override`, r, "driver_override");
  }
  const overrides = files(f0);
  overrides.catch(() => {}); // handled: its error (a bug, not an errno) comes out of the stage below
  await links(l1);
  const pfOf = new Map<DeviceRead, DeviceRead>();
  for (const r of todo) {
    const pf = r.links.physfn;
    if (pf && isBdf(pf)) pfOf.set(r, deviceRead(cache, pf));
  }
  const f2 = batch<AttrName>();
  const s2 = batch<"node" | "cdev">();
  const d2 = batch<DirName>();
  const names: AttrName[] = extras ? ["vendor", "device", "class", "numa_node"] : ["vendor", "device", "class"];
  for (const r of todo) {
    for (const n of names) if (r.attrs[n] === undefined) add(f2, `${r.path}/${n}`, r, n);
    if (!pfOf.has(r) && r.attrs.sriov_totalvfs === undefined) add(f2, `${r.path}/sriov_totalvfs`, r, "sriov_totalvfs");
    const g = r.links.iommu_group;
    if (g != null && /^\d+$/.test(g) && r.nodeExists === undefined) add(s2, `/dev/vfio/${Number(g)}`, r, "node");
    if (extras) add(d2, `${r.path}/net`, r, "net");
    if (isVfioDriver(r.links.driver ?? null)) add(d2, `${r.path}/vfio-dev`, r, "vfio-dev");
  }
  for (const pf of new Set(pfOf.values())) {
    for (const n of ["sriov_offset", "sriov_stride"] as const) if (pf.attrs[n] === undefined) add(f2, `${pf.path}/${n}`, pf, n);
  }
  await Promise.all([files(f2), stats(s2), dirs(d2), overrides]);
  const pfs = todo.filter((r) => !pfOf.has(r) && r.attrs.sriov_totalvfs != null);
  const f3 = batch<AttrName>();
  const d3 = batch<DirName>();
  const l3 = batch<LinkName | number>();
  const s3 = batch<"node" | "cdev">();
  for (const r of pfs) {
    add(f3, `${r.path}/sriov_numvfs`, r, "sriov_numvfs");
    add(f3, `${r.path}/sriov_drivers_autoprobe`, r, "sriov_drivers_autoprobe");
    add(d3, r.path, r, "self");
  }
  const asked = new Set<string>();
  for (const [vf, pf] of pfOf) {
    const k = candidateIndex(pf, vf);
    const path = `${pf.path}/virtfn${k}`;
    if (k !== null && !pf.virtfn.has(k) && !asked.has(path)) {
      asked.add(path);
      add(l3, path, pf, k);
    }
  }
  for (const r of todo) {
    const name = vfioDeviceName(r.dirs["vfio-dev"]);
    if (name && r.cdevExists === undefined) add(s3, `/dev/vfio/devices/${name}`, r, "cdev");
  }
  await Promise.all([files(f3), dirs(d3), links(l3), stats(s3)]);
  const l4 = batch<LinkName | number>();
  for (const r of pfs) for (const i of virtfnIndices(r.dirs.self)) if (!r.virtfn.has(i)) add(l4, `${r.path}/virtfn${i}`, r, i);
  await links(l4);
  for (const r of todo) r.read = extras ? "extras" : "device";
}

/** The vfio<N> entry of a vfio-dev/ folder read into the cache (undefined: none, or no folder). */
const vfioDeviceName = (d: string[] | Error | undefined): string | undefined => (d === undefined || d instanceof Error ? undefined : d.find((n) => /^vfio\d+$/.test(n)));

/** The N of a PF folder's virtfn<N> entries, in order. */
const virtfnIndices = (d: string[] | Error | undefined): number[] =>
  d === undefined || d instanceof Error
    ? []
    : d
        .filter((n) => /^virtfn\d+$/.test(n))
        .map((n) => Number(n.slice(6)))
        .sort((a, b) => a - b);

/** A record's routing ID (bus << 8 | devfn), parsed from its path once (every VF's index asks twice). */
function ridOf(r: DeviceRead): number | null {
  if (r.rid === undefined) {
    const b = parseBdf(base(r.path));
    r.rid = b ? (b.bus << 8) | b.devfn : null;
  }
  return r.rid;
}

/**
 * The virtfn index a VF's routing ID names, from its PF's cached `sriov_offset` and
 * `sriov_stride` (iov.c pci_iov_virtfn_bus/devfn: VF rid = PF rid + offset + stride·N), or null.
 */
function candidateIndex(pf: DeviceRead, vf: DeviceRead): number | null {
  const a = ridOf(pf);
  const v = ridOf(vf);
  if (a === null || v === null) return null;
  const offset = num(pf.attrs.sriov_offset ?? null);
  const stride = num(pf.attrs.sriov_stride ?? null);
  const delta = v - a - (offset ?? 0);
  return offset !== null && stride && delta >= 0 && delta % stride === 0 ? delta / stride : null;
}

/**
 * Read what sysfs says about one device. `numvfsTimeoutMs` bounds the reads that can block
 * (`driver_override`, `sriov_numvfs`: they take the device lock, which a removal or a PF's
 * `sriov_numvfs` write waiting for a VF's user holds); such a read is named in `blockedReads`
 * and its field is null. `cache`: see {@link ReadCache} (inventory reads every device into one
 * first, with {@link prefetchDevices}).
 */
export async function readDevice(sys: Syscalls, bdf: string, opts: { numvfsTimeoutMs?: number; cache?: ReadCache } = {}): Promise<DeviceFacts> {
  const cache = opts.cache ?? readCache();
  checkBdf(bdf);
  await prefetchDevices(sys, [bdf], cache, opts.numvfsTimeoutMs ?? 2000);
  const facts = deviceFacts(bdf, cache);
  if (facts.physfn && facts.vfIndex === null) facts.vfIndex = await scanVfIndex(sys, deviceRead(cache, facts.physfn), bdf);
  return facts;
}

/**
 * A device's facts from what {@link prefetchDevices} read into the cache. A VF whose PF's
 * virtfn link at the routing ID's index does not point back to it has vfIndex null here
 * (readDevice then searches the PF's links: {@link scanVfIndex}).
 */
export function deviceFacts(bdf: string, cache: ReadCache): DeviceFacts {
  const r = deviceRead(cache, bdf);
  const a = r.attrs;
  const driver = r.links.driver ?? null;
  const ovr = a.driver_override ?? null;
  const group = r.links.iommu_group ?? null;
  const physfn = r.links.physfn ?? null;
  const iommuGroup = group !== null && /^\d+$/.test(group) ? Number(group) : null;
  const vfioNode = iommuGroup === null ? null : `/dev/vfio/${iommuGroup}`;
  const facts: DeviceFacts = {
    bdf,
    vendor: num(a.vendor ?? null, 16),
    device: num(a.device ?? null, 16),
    class: num(a.class ?? null, 16),
    driver,
    driverOverride: ovr === null || ovr === "(null)" || ovr === "" ? null : ovr,
    iommuGroup,
    vfioNode,
    vfioNodeExists: vfioNode !== null && r.nodeExists === true,
    vfioDevice: null,
    cdevNode: null,
    sriov: null,
    physfn: physfn !== null && isBdf(physfn) ? physfn : null,
    vfIndex: null,
  };
  if (driver !== null && isVfioDriver(driver)) {
    // no vfio-dev class device before 6.1
    facts.vfioDevice = vfioDeviceName(r.dirs["vfio-dev"]) ?? null;
    if (facts.vfioDevice && r.cdevExists === true) facts.cdevNode = `/dev/vfio/devices/${facts.vfioDevice}`;
  }
  const total = facts.physfn ? null : (a.sriov_totalvfs ?? null);
  if (total !== null) {
    const vfs: string[] = [];
    for (const i of virtfnIndices(r.dirs.self)) {
      const b = r.virtfn.get(i) ?? null;
      if (b && isBdf(b)) vfs.push(b);
    }
    facts.sriov = { totalVfs: num(total) ?? 0, numVfs: num(a.sriov_numvfs ?? null), driversAutoprobe: yn(a.sriov_drivers_autoprobe ?? null), vfs };
  }
  if (facts.physfn) {
    const pf = deviceRead(cache, facts.physfn);
    const k = candidateIndex(pf, r);
    if (k !== null && pf.virtfn.get(k) === bdf) facts.vfIndex = k;
  }
  // in the order readDevice has always named them
  const blocked = (["driver_override", "sriov_numvfs"] as const).filter((n) => r.blocked.includes(n) && (n === "driver_override" || total !== null));
  if (blocked.length) facts.blockedReads = blocked;
  return facts;
}

/**
 * The index N of the PF's virtfn<N> link that points back to this VF, searched among all of the
 * PF's virtfn links: for an unusual tree where the routing-ID arithmetic (see candidateIndex)
 * names a link that does not (reading every VF of a PF stays linear in the number of VFs in the
 * usual case, where one readlink confirms it). Null when none does or the PF is unreadable.
 */
async function scanVfIndex(sys: Syscalls, pf: DeviceRead, bdf: string): Promise<number | null> {
  let entries: string[];
  try {
    entries = await sys.readdir(pf.path);
  } catch {
    return null; // PF directory unreadable: index unknown
  }
  for (const n of entries) {
    if (!/^virtfn\d+$/.test(n)) continue;
    const i = Number(n.slice(6));
    if (!pf.virtfn.has(i)) {
      const [t] = await readlinksOf(sys, [`${pf.path}/${n}`]);
      pf.virtfn.set(i, typeof t === "string" ? base(t) : null);
    }
    if (pf.virtfn.get(i) === bdf) return i;
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
