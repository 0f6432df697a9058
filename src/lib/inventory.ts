/**
 * The host's PCI devices as a PF → VF tree, with each device's driver, driver_override, IOMMU
 * group and /dev/vfio node, SR-IOV counts, vfio-pci's `enable_sriov`, who holds vfio nodes, and
 * the VF-token situation of each device (kernel-spec §2.4–2.5, 5.18+ rule).
 *
 * @example
 * ```ts
 * import { bootKernel, inventory } from "vfioctl";
 * const k = await bootKernel();
 * const inv = await inventory(k.spawn("sh"));
 * inv.pfs.map((pf) => `${pf.bdf} ${pf.driver} ${pf.sriov?.numVfs}/${pf.sriov?.totalVfs}`);
 * ```
 */
import type { Syscalls } from "../sys/syscalls.js";
import { holdersOf, scanVfioHolders, unknownReason, type VfioHolder } from "./holders.js";
import { readHostKernel, type HostKernel } from "./kernel.js";
import { interfaceNames } from "./hostuse.js";
import type { PciIds } from "./pciids.js";
import { deviceFacts, deviceRead, isVfioDriver, listBdfs, prefetchDevices, readCache, readDevice, readVfioPciModule, type DeviceFacts, type ReadCache, type VfioPciModule } from "./sysfs.js";

/** "required": opening needs the PF's token; "not-required"; "cannot-tell": sysfs does not say. */
export type TokenState = "required" | "not-required" | "cannot-tell";

export interface TokenSituation {
  state: TokenState;
  /** one line, e.g. "VF token required: PF 0000:01:00.0 is owned by vfio-pci" */
  reason: string;
  /** what happens if a token is passed anyway */
  ifGiven: "checked" | "sets-it" | "EINVAL";
}

export interface InventoryDevice extends DeviceFacts {
  role: "pf" | "vf" | "device";
  token: TokenSituation;
  /** processes holding this device's /dev/vfio group node */
  heldBy: VfioHolder[];
  /** the device's network interfaces (/sys/bus/pci/devices/BDF/net/*) */
  interfaces: string[];
  /** numa_node; null when the platform has none (-1) or the file is absent */
  numaNode: number | null;
  /** names from pci.ids (when inventory was given one): null when the file or the entry is absent */
  vendorName?: string | null;
  deviceName?: string | null;
}

/** The extra facts of one device (interfaces, NUMA node, pci.ids names) from what prefetchDevices read with `extras`. */
function extras(d: DeviceFacts, ids: PciIds | undefined, cache: ReadCache): Pick<InventoryDevice, "interfaces" | "numaNode" | "vendorName" | "deviceName"> {
  let numaNode: number | null = null;
  const r = deviceRead(cache, d.bdf);
  const s = r.attrs.numa_node ?? null; // null: no numa_node
  if (s !== null) {
    const n = Number(s);
    numaNode = Number.isInteger(n) && n >= 0 ? n : null;
  }
  const net = r.dirs.net;
  const interfaces = net === undefined || net instanceof Error ? [] : interfaceNames(net);
  const out: Pick<InventoryDevice, "interfaces" | "numaNode" | "vendorName" | "deviceName"> = { interfaces, numaNode };
  if (ids) {
    const n = ids.names(d.vendor, d.device);
    out.vendorName = n.vendor;
    out.deviceName = n.device;
  }
  return out;
}

export interface InventoryPf extends InventoryDevice {
  role: "pf";
  vfDevices: InventoryDevice[];
}

export interface Inventory {
  backend: "linux" | "model";
  /** with --root DIR: the copied tree read instead of this host */
  root?: string;
  /** the running kernel: version, iommufd / vfio cdev, how the cdev path treats the VF token */
  kernel: HostKernel;
  vfioPci: VfioPciModule;
  /** SR-IOV physical functions, each with its VFs */
  pfs: InventoryPf[];
  /** devices that are neither PFs nor VFs */
  others: InventoryDevice[];
  /** VFs whose PF is not visible (should not happen) */
  orphans: InventoryDevice[];
  holders: VfioHolder[];
}

/** The token situation of a device, from sysfs facts (kernel-spec §2.4 table, §2.5 5.18+ rule). */
export function tokenSituation(d: DeviceFacts, pf: DeviceFacts | null, vfGroupsHeld: boolean | null, unknownWhy?: string): TokenSituation {
  if (d.physfn) {
    if (!pf) return { state: "cannot-tell", reason: `cannot tell: PF ${d.physfn} is not readable`, ifGiven: "checked" };
    if (pf.driver === "vfio-pci") {
      // 5.18+: linked when the PF enabled SR-IOV through vfio-pci; the PF cannot bind to vfio-pci
      // while VFs exist, so a VF of a vfio-pci PF was created while vfio-pci was bound.
      const where = d.driver === "vfio-pci" ? "" : d.driver ? ` (once back on vfio-pci; now on ${d.driver})` : " (once bound to vfio-pci)";
      return { state: "required", reason: `VF token required: PF ${pf.bdf} is owned by vfio-pci${where}`, ifGiven: "checked" };
    }
    if (isVfioDriver(pf.driver)) {
      return { state: "cannot-tell", reason: `cannot tell: PF ${pf.bdf} is on the vfio variant driver ${pf.driver}; linked only if its VFs were created through it`, ifGiven: "checked" };
    }
    return { state: "not-required", reason: `not required: PF ${pf.bdf} is ${pf.driver ? `on ${pf.driver}` : "unbound"}, not vfio-pci (a token given anyway fails EINVAL)`, ifGiven: "EINVAL" };
  }
  if (d.sriov) {
    if (d.driver === "vfio-pci") {
      if (vfGroupsHeld === false) return { state: "not-required", reason: "not required now: no VF is open; opening the PF with vf_token= sets the token", ifGiven: "sets-it" };
      if (vfGroupsHeld === true) return { state: "required", reason: "VF token required: a VF group of this PF is held open (a VF may be open)", ifGiven: "checked" };
      return { state: "cannot-tell", reason: unknownWhy ? `cannot tell whether a VF is open (the token is required only then): ${unknownWhy}` : "cannot tell: required only while a VF is open", ifGiven: "checked" };
    }
    return { state: "not-required", reason: `not required: PF ${d.driver ? `on ${d.driver}` : "unbound"}, not vfio-pci`, ifGiven: "EINVAL" };
  }
  return { state: "not-required", reason: "not required: not an SR-IOV PF or VF (a token given anyway fails EINVAL)", ifGiven: "EINVAL" };
}

/** Build the PF → VF tree for the whole host. Read-only. */
export async function inventory(sys: Syscalls, opts: { numvfsTimeoutMs?: number; holders?: boolean; pciIds?: PciIds } = {}): Promise<Inventory> {
  const bdfs = await listBdfs(sys);
  const facts = new Map<string, DeviceFacts & Awaited<ReturnType<typeof extras>>>();
  const cache = readCache();
  // every device in a few stages of batch reads (the backend's own where it has them), the
  // holders, the kernel and vfio-pci's parameters at the same time: their reads are independent
  const [, scan, kernel, vfioPci] = await Promise.all([
    prefetchDevices(sys, bdfs, cache, opts.numvfsTimeoutMs ?? 2000, { extras: true }),
    opts.holders === false ? null : scanVfioHolders(sys),
    readHostKernel(sys),
    readVfioPciModule(sys),
  ]);
  for (const b of bdfs) {
    const d = deviceFacts(b, cache);
    if (d.physfn && d.vfIndex === null) d.vfIndex = (await readDevice(sys, b, { cache })).vfIndex;
    facts.set(b, Object.assign(d, extras(d, opts.pciIds, cache)));
  }
  const holders = scan?.holders ?? [];
  const unknown = scan && (scan.unattributed.length || scan.unreadable.length) ? unknownReason(scan) : null;
  const held = (g: number | null) => holdersOf(holders, g);
  const pfs: InventoryPf[] = [];
  const others: InventoryDevice[] = [];
  const orphans: InventoryDevice[] = [];
  const vfsOf = new Map<string, InventoryDevice[]>();
  for (const d of facts.values()) {
    if (!d.physfn) continue;
    const pf = facts.get(d.physfn) ?? null;
    // each device's facts object becomes its entry (Object.assign: no copy of every field)
    const v: InventoryDevice = Object.assign(d, { role: "vf" as const, token: tokenSituation(d, pf, null), heldBy: held(d.iommuGroup) });
    if (!pf) orphans.push(v);
    else {
      const list = vfsOf.get(pf.bdf);
      if (list) list.push(v);
      else vfsOf.set(pf.bdf, [v]);
    }
  }
  for (const d of facts.values()) {
    if (d.physfn) continue;
    if (d.sriov) {
      const vfs = (vfsOf.get(d.bdf) ?? []).sort((a, b) => (a.vfIndex ?? 0) - (b.vfIndex ?? 0));
      const anyHeld = opts.holders === false ? null : vfs.some((v) => v.heldBy.length > 0) ? true : unknown && vfs.length ? null : false;
      pfs.push(Object.assign(d, { role: "pf" as const, token: tokenSituation(d, null, anyHeld, unknown ?? undefined), heldBy: held(d.iommuGroup), vfDevices: vfs }));
    } else {
      others.push(Object.assign(d, { role: "device" as const, token: tokenSituation(d, null, null), heldBy: held(d.iommuGroup) }));
    }
  }
  // on the cdev path this kernel's own row applies (src/kernel/versions.ts)
  const cdevNote = kernel.cdevToken === "bypass" ? "; not through the vfio cdev: this kernel does not check it there (vfioctl audit)" : kernel.cdevToken === "e2big" ? "; through the vfio cdev it cannot be passed on this kernel (E2BIG), so only the group path opens it" : "";
  if (cdevNote) for (const pf of pfs) for (const vf of pf.vfDevices) if (vf.token.state === "required" && vf.cdevNode) vf.token = { ...vf.token, reason: vf.token.reason + cdevNote };
  return { backend: sys.backend, ...(sys.backend === "linux" && sys.root ? { root: sys.root } : {}), kernel, vfioPci, pfs, others, orphans, holders };
}

/**
 * The inventory narrowed to some devices (`vfioctl list DEVICE...`): a PF named keeps all its
 * VFs; a VF named keeps its PF with only the VFs named.
 */
export function filterInventory(inv: Inventory, bdfs: readonly string[]): Inventory {
  const want = new Set(bdfs);
  const pfs = inv.pfs
    .filter((pf) => want.has(pf.bdf) || pf.vfDevices.some((v) => want.has(v.bdf)))
    .map((pf) => (want.has(pf.bdf) ? pf : { ...pf, vfDevices: pf.vfDevices.filter((v) => want.has(v.bdf)) }));
  return { ...inv, pfs, others: inv.others.filter((d) => want.has(d.bdf)), orphans: inv.orphans.filter((d) => want.has(d.bdf)) };
}
