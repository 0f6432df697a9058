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
 * What {@link prefetchDevices} read, for {@link readDevice} to answer from: attribute values,
 * link targets' last components, folders' entries and exists() answers, by path. Shared by
 * the devices of one pass over the host, so the PF attributes every VF's index is worked out
 * from (`sriov_offset`, `sriov_stride`) are read once however many VFs ask. Make one per pass
 * ({@link readCache}); a value stays as first read for as long as the cache is kept.
 */
export interface ReadCache {
  /** attribute values without their newline (null: absent or unreadable) */
  readonly attrs: Map<string, string | null>;
  /** the last component of each link's target (null: no link) */
  readonly links: Map<string, string | null>;
  /** attributes whose read was still blocked after the timeout */
  readonly blocked: Set<string>;
  /** folders' entries, or the readdir's error */
  readonly dirs: Map<string, string[] | Error>;
  readonly exists: Map<string, boolean>;
  /** the devices prefetchDevices has read into it, and whether with inventory's extras */
  readonly devices: Map<string, { extras: boolean }>;
}

export const readCache = (): ReadCache => ({ attrs: new Map(), links: new Map(), blocked: new Set(), dirs: new Map(), exists: new Map(), devices: new Map() });

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
 * `virtfn<N>` link as the routing ID names it (see vfIndexOf), exists() of the vfio cdev nodes;
 * (4) the PFs' `virtfn<N>` links not read yet. With `extras` also what inventory adds: each
 * device's `numa_node` and `net/`. Devices already in the cache are not read again.
 */
export async function prefetchDevices(sys: Syscalls, bdfs: readonly string[], cache: ReadCache, timeoutMs: number, opts: { extras?: boolean } = {}): Promise<void> {
  const extras = opts.extras ?? false;
  const todo = bdfs.filter((b) => {
    const d = cache.devices.get(b);
    return !d || (extras && !d.extras);
  });
  if (!todo.length) return;
  const links = async (paths: string[]) => {
    const res = await readlinksOf(sys, paths);
    paths.forEach((p, i) => {
      const t = res[i]!;
      cache.links.set(p, typeof t === "string" ? base(t) : null);
    });
  };
  const files = async (paths: string[]) => {
    const res = await readFilesOf(sys, paths, { wholeIfShort: true, timeoutMs });
    paths.forEach((p, i) => {
      const r = res[i]!;
      if (r === null) return void cache.blocked.add(p);
      const s = Buffer.isBuffer(r) ? r.toString("utf8") : null;
      cache.attrs.set(p, s === null ? null : s.endsWith("\n") ? s.slice(0, -1) : s);
    });
  };
  const stats = async (paths: string[]) => {
    const res = await lstatsOf(sys, paths);
    paths.forEach((p, i) => cache.exists.set(p, !(res[i] instanceof Error)));
  };
  const dirs = async (paths: string[]) => {
    const res = await readdirsOf(sys, paths);
    paths.forEach((p, i) => cache.dirs.set(p, res[i]!));
  };
  const unread = (m: Map<string, unknown>, paths: string[]) => paths.filter((p) => !m.has(p));
  await links(unread(cache.links, todo.flatMap((b) => [devPath(b, "driver"), devPath(b, "iommu_group"), devPath(b, "physfn")])));
  const physfn = new Map<string, string>();
  for (const b of todo) {
    const pf = cache.links.get(devPath(b, "physfn"));
    if (pf && isBdf(pf)) physfn.set(b, pf);
  }
  const attrs: string[] = [];
  const nodes: string[] = [];
  const folders: string[] = [];
  for (const b of todo) {
    const p = devPath(b);
    attrs.push(`${p}/vendor`, `${p}/device`, `${p}/class`, `${p}/driver_override`);
    if (extras) attrs.push(`${p}/numa_node`);
    if (!physfn.has(b)) attrs.push(`${p}/sriov_totalvfs`);
    const g = cache.links.get(`${p}/iommu_group`);
    if (g != null && /^\d+$/.test(g)) nodes.push(`/dev/vfio/${Number(g)}`);
    if (extras) folders.push(`${p}/net`);
    if (isVfioDriver(cache.links.get(`${p}/driver`) ?? null)) folders.push(`${p}/vfio-dev`);
  }
  for (const pf of new Set(physfn.values())) attrs.push(devPath(pf, "sriov_offset"), devPath(pf, "sriov_stride"));
  await Promise.all([files(unread(cache.attrs, attrs)), stats(unread(cache.exists, nodes)), dirs(folders)]);
  const pfs = todo.filter((b) => !physfn.has(b) && cache.attrs.get(devPath(b, "sriov_totalvfs")) != null);
  const virtfn: string[] = [];
  for (const [vf, pf] of physfn) {
    const k = candidateIndex(pf, vf, cache);
    if (k !== null) virtfn.push(`${devPath(pf)}/virtfn${k}`);
  }
  const cdevs: string[] = [];
  for (const b of todo) {
    const name = vfioDeviceName(cache.dirs.get(devPath(b, "vfio-dev")));
    if (name) cdevs.push(`/dev/vfio/devices/${name}`);
  }
  await Promise.all([
    files(pfs.flatMap((b) => [devPath(b, "sriov_numvfs"), devPath(b, "sriov_drivers_autoprobe")])),
    dirs(pfs.map((b) => devPath(b))),
    links(unread(cache.links, virtfn)),
    stats(unread(cache.exists, cdevs)),
  ]);
  const pfLinks = pfs.flatMap((b) => virtfnIndices(cache.dirs.get(devPath(b))).map((i) => `${devPath(b)}/virtfn${i}`));
  await links(unread(cache.links, pfLinks));
  for (const b of todo) cache.devices.set(b, { extras });
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

/**
 * The virtfn index a VF's routing ID names, from its PF's cached `sriov_offset` and
 * `sriov_stride` (iov.c pci_iov_virtfn_bus/devfn: VF rid = PF rid + offset + stride·N), or null.
 */
function candidateIndex(pf: string, bdf: string, cache: ReadCache): number | null {
  const a = parseBdf(pf);
  const v = parseBdf(bdf);
  if (!a || !v) return null;
  const pp = devPath(pf);
  const offset = num(cache.attrs.get(`${pp}/sriov_offset`) ?? null);
  const stride = num(cache.attrs.get(`${pp}/sriov_stride`) ?? null);
  const delta = ((v.bus << 8) | v.devfn) - ((a.bus << 8) | a.devfn) - (offset ?? 0);
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
  if (facts.physfn && facts.vfIndex === null) facts.vfIndex = await scanVfIndex(sys, facts.physfn, bdf, cache);
  return facts;
}

/**
 * A device's facts from what {@link prefetchDevices} read into the cache. A VF whose PF's
 * virtfn link at the routing ID's index does not point back to it has vfIndex null here
 * (readDevice then searches the PF's links: {@link scanVfIndex}).
 */
export function deviceFacts(bdf: string, cache: ReadCache): DeviceFacts {
  const p = devPath(bdf);
  const blockedReads: string[] = [];
  const attr = (name: string): string | null => cache.attrs.get(`${p}/${name}`) ?? null;
  const timed = (name: string): string | null => {
    if (cache.blocked.has(`${p}/${name}`)) blockedReads.push(name);
    return attr(name);
  };
  const link = (name: string): string | null => cache.links.get(`${p}/${name}`) ?? null;
  const driver = link("driver");
  const ovr = timed("driver_override");
  const group = link("iommu_group");
  const physfn = link("physfn");
  const iommuGroup = group !== null && /^\d+$/.test(group) ? Number(group) : null;
  const vfioNode = iommuGroup === null ? null : `/dev/vfio/${iommuGroup}`;
  const facts: DeviceFacts = {
    bdf,
    vendor: num(attr("vendor"), 16),
    device: num(attr("device"), 16),
    class: num(attr("class"), 16),
    driver,
    driverOverride: ovr === null || ovr === "(null)" || ovr === "" ? null : ovr,
    iommuGroup,
    vfioNode,
    vfioNodeExists: vfioNode !== null && cache.exists.get(vfioNode) === true,
    vfioDevice: null,
    cdevNode: null,
    sriov: null,
    physfn: physfn !== null && isBdf(physfn) ? physfn : null,
    vfIndex: null,
  };
  if (driver !== null && isVfioDriver(driver)) {
    // no vfio-dev class device before 6.1
    facts.vfioDevice = vfioDeviceName(cache.dirs.get(`${p}/vfio-dev`)) ?? null;
    if (facts.vfioDevice && cache.exists.get(`/dev/vfio/devices/${facts.vfioDevice}`) === true) facts.cdevNode = `/dev/vfio/devices/${facts.vfioDevice}`;
  }
  const total = facts.physfn ? null : attr("sriov_totalvfs");
  if (total !== null) {
    const numVfs = num(timed("sriov_numvfs"));
    const vfs: string[] = [];
    for (const i of virtfnIndices(cache.dirs.get(p))) {
      const b = cache.links.get(`${p}/virtfn${i}`) ?? null;
      if (b && isBdf(b)) vfs.push(b);
    }
    facts.sriov = { totalVfs: num(total) ?? 0, numVfs, driversAutoprobe: yn(attr("sriov_drivers_autoprobe")), vfs };
  }
  if (facts.physfn) {
    const k = candidateIndex(facts.physfn, bdf, cache);
    if (k !== null && cache.links.get(`${devPath(facts.physfn)}/virtfn${k}`) === bdf) facts.vfIndex = k;
  }
  if (blockedReads.length) facts.blockedReads = blockedReads;
  return facts;
}

/**
 * The index N of the PF's virtfn<N> link that points back to this VF, searched among all of the
 * PF's virtfn links: for an unusual tree where the routing-ID arithmetic (see candidateIndex)
 * names a link that does not (reading every VF of a PF stays linear in the number of VFs in the
 * usual case, where one readlink confirms it). Null when none does or the PF is unreadable.
 */
async function scanVfIndex(sys: Syscalls, pf: string, bdf: string, cache: ReadCache): Promise<number | null> {
  const pp = devPath(pf);
  let entries: string[];
  try {
    entries = await sys.readdir(pp);
  } catch {
    return null; // PF directory unreadable: index unknown
  }
  for (const n of entries) {
    if (!/^virtfn\d+$/.test(n)) continue;
    const path = `${pp}/${n}`;
    if (!cache.links.has(path)) await readlinksOf(sys, [path]).then(([t]) => cache.links.set(path, typeof t === "string" ? base(t) : null));
    if (cache.links.get(path) === bdf) return Number(n.slice(6));
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
