/**
 * Which processes hold vfio files, from /proc/<pid>/fd. Each fd is matched by its device number:
 * stat(/proc/PID/fd/N) gives the open file's st_rdev whatever path the process opened it by, and
 * that is compared with the st_rdev of /dev/vfio/vfio, each /dev/vfio/<group> node, each
 * /dev/vfio/devices/vfio<N> cdev and /dev/iommu (and the sysfs `dev` attributes of their class
 * devices). So a consumer in a chroot (its fd reads `<root>/dev/vfio/7`) or in a container (its
 * own paths) is found as well as one on the host; the link text is only a fallback when stat is
 * refused.
 *
 * A process that holds `/dev/vfio/<N>` holds IOMMU group N: it may have any device of that group
 * open. Device fds of the group path appear as `anon_inode:[vfio-device]` and do not say which
 * device they are: they are attributed to the groups their process holds. A process with device
 * fds and no group or cdev fd (it closed the group fd; the kernel keeps the group open for it)
 * is *unattributed*: it may hold any VF, so "is this VF open?" has no answer ("cannot tell").
 *
 * @example
 * ```ts
 * import { bootKernel, vfioHolders } from "vfioctl";
 * const k = await bootKernel();
 * const holders = await vfioHolders(k.spawn("sh"));
 * holders.filter((h) => h.group === 21); // who holds /dev/vfio/21
 * ```
 */
import { readAttr } from "../sys/fsutil.js";
import { readdirsOf, readFilesOf, readlinksOf, statsOf } from "../sys/batch.js";
import { devName, major, parseDevAttr } from "../sys/devnum.js";
import type { Syscalls } from "../sys/syscalls.js";

export type HolderKind = "group" | "container" | "cdev" | "iommufd" | "device-fd";

/** Where a holder process runs, as /proc shows it. */
export interface ProcessPlace {
  /** /proc/PID/root when it is readable and not "/" (a chroot) */
  root: string | null;
  /** "other": its own mount namespace (/proc/PID/ns/mnt differs from ours); null when unreadable */
  mntns: "same" | "other" | null;
  /** the container its cgroup names, when it names one */
  container: { runtime: string; id: string; pod?: string } | null;
  /** the cgroup v2 path (the "0::" line of /proc/PID/cgroup), or the first line's path */
  cgroup: string | null;
}

export interface VfioHolder {
  pid: number;
  comm: string;
  fd: number;
  /** what the fd links to: "/dev/vfio/21", "/srv/c/dev/vfio/21", "anon_inode:[vfio-device]" … */
  target: string;
  kind: HolderKind;
  /** the IOMMU group: of the group node, or of the cdev's device; else null */
  group: number | null;
  /** the device of a cdev fd (/dev/vfio/devices/vfio<N>), else null */
  device: string | null;
  /** how it was matched: "rdev" (the fd's st_rdev is the node's), "path" (link text only: stat was refused), "anon" (an anonymous vfio device fd) */
  via: "rdev" | "path" | "anon";
  /** "major:minor" of the fd's device, when stat gave one */
  rdev: string | null;
  where: ProcessPlace;
}

export interface HolderScan {
  holders: VfioHolder[];
  /** processes whose /proc/PID/fd this caller may not read (another user's, without root) */
  unreadable: number[];
  /** processes with vfio device fds but no group or cdev fd to attribute them to */
  unattributed: number[];
}

/** A vfio node of this host: its kind, group and device, by device number. */
interface NodeInfo {
  kind: Exclude<HolderKind, "device-fd">;
  group: number | null;
  device: string | null;
}

const ANON_DEVICE = "anon_inode:[vfio-device]";
/** link text fallback (stat refused): the node's path, also under a chroot prefix */
const PATH_TARGET = /(?:^|\/)dev\/vfio\/(?:(?:noiommu-)?(\d+)|(vfio)|devices\/vfio(\d+))$|(?:^|\/)dev\/(iommu)$/;

/**
 * The host's vfio nodes by device number: /dev/vfio/{vfio,<N>,noiommu-<N>,devices/vfio<N>},
 * /dev/iommu, and (when /dev lacks them, e.g. in a container) the sysfs `dev` attributes of
 * /sys/class/vfio/<N>, /sys/class/vfio-dev/vfio<N> and /sys/class/misc/{vfio,iommu}.
 */
export async function vfioNodeNumbers(sys: Syscalls): Promise<Map<string, NodeInfo>> {
  // every folder, then every node and attribute, then the cdevs' links, each in one batch
  // (src/sys/batch.ts); the answers are taken in the order below, the first for a number wins
  const [devVfio, devCdevs, classVfio, classVfioDev] = (await readdirsOf(sys, ["/dev/vfio", "/dev/vfio/devices", "/sys/class/vfio", "/sys/class/vfio-dev"])).map((d) => (d instanceof Error ? [] : d));
  const GROUP = /^(?:noiommu-)?(\d+)$/;
  const CDEV = /^vfio(\d+)$/;
  const groups = devVfio!.filter((n) => GROUP.test(n));
  const cdevs = devCdevs!.filter((n) => CDEV.test(n));
  const classGroups = classVfio!.filter((n) => GROUP.test(n));
  const classCdevs = classVfioDev!.filter((n) => CDEV.test(n));
  const statPaths = ["/dev/vfio/vfio", "/dev/iommu", ...groups.map((n) => `/dev/vfio/${n}`), ...cdevs.map((n) => `/dev/vfio/devices/${n}`)];
  const attrPaths = [...classGroups.map((n) => `/sys/class/vfio/${n}/dev`), ...classCdevs.map((n) => `/sys/class/vfio-dev/${n}/dev`), "/sys/class/misc/vfio/dev", "/sys/class/misc/iommu/dev"];
  const [st, attrs] = await Promise.all([statsOf(sys, statPaths), readFilesOf(sys, attrPaths, { wholeIfShort: true })]);
  const rdevs = new Map<string, number | null>();
  statPaths.forEach((p, i) => {
    const r = st[i]!;
    rdevs.set(p, r instanceof Error || r.kind !== "char" || !r.rdev ? null : r.rdev);
  });
  attrPaths.forEach((p, i) => {
    const r = attrs[i];
    rdevs.set(p, Buffer.isBuffer(r) ? parseDevAttr(r.toString("utf8").replace(/\n$/, "")) : null);
  });
  // a cdev's device and group: the class link ends in <BDF>/vfio-dev/vfio<N> (else its
  // `device` link, relative: "../../../<BDF>"), then that device's iommu_group link
  const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
  const idxs = [...new Set([...cdevs, ...classCdevs].map((n) => n.slice(4)))];
  const device = new Map<string, string | null>();
  const classLinks = await readlinksOf(sys, idxs.map((i) => `/sys/class/vfio-dev/vfio${i}`));
  idxs.forEach((i, k) => {
    const t = classLinks[k]!;
    device.set(i, typeof t === "string" ? (/([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\/vfio-dev\/vfio\d+\/?$/.exec(t)?.[1] ?? null) : null);
  });
  const unresolved = idxs.filter((i) => !device.get(i));
  const deviceLinks = await readlinksOf(sys, unresolved.map((i) => `/sys/class/vfio-dev/vfio${i}/device`));
  unresolved.forEach((i, k) => {
    const t = deviceLinks[k]!;
    const b = typeof t === "string" ? t.slice(t.lastIndexOf("/") + 1) : null;
    device.set(i, b && BDF.test(b) ? b : null);
  });
  const bdfs = [...new Set([...device.values()].filter((d): d is string => d !== null))];
  const groupLinks = await readlinksOf(sys, bdfs.map((b) => `/sys/bus/pci/devices/${b}/iommu_group`));
  const groupOf = new Map<string, number | null>();
  bdfs.forEach((b, k) => {
    const t = groupLinks[k]!;
    const g = typeof t === "string" ? t.slice(t.lastIndexOf("/") + 1) : null;
    groupOf.set(b, g !== null && /^\d+$/.test(g) ? Number(g) : null);
  });
  const cdevInfo = (n: string): NodeInfo => {
    const d = device.get(n.slice(4)) ?? null;
    return { kind: "cdev", device: d, group: d ? (groupOf.get(d) ?? null) : null };
  };
  const out = new Map<string, NodeInfo>();
  const put = (path: string, n: NodeInfo) => {
    const rdev = rdevs.get(path) ?? null;
    if (rdev !== null && !out.has(devName(rdev))) out.set(devName(rdev), n);
  };
  put("/dev/vfio/vfio", { kind: "container", group: null, device: null });
  put("/dev/iommu", { kind: "iommufd", group: null, device: null });
  for (const n of groups) put(`/dev/vfio/${n}`, { kind: "group", group: Number(GROUP.exec(n)![1]), device: null });
  for (const n of cdevs) put(`/dev/vfio/devices/${n}`, cdevInfo(n));
  for (const n of classGroups) put(`/sys/class/vfio/${n}/dev`, { kind: "group", group: Number(GROUP.exec(n)![1]), device: null });
  for (const n of classCdevs) put(`/sys/class/vfio-dev/${n}/dev`, cdevInfo(n));
  put("/sys/class/misc/vfio/dev", { kind: "container", group: null, device: null });
  put("/sys/class/misc/iommu/dev", { kind: "iommufd", group: null, device: null });
  return out;
}

/**
 * The device majors of this host's vfio nodes, from one node of each kind: vfio's groups share
 * one char region (alloc_chrdev_region in vfio_group_init), its cdevs another, the container and
 * iommufd are misc devices. So an fd whose device has none of these majors is no vfio node, and
 * {@link vfioNodeNumbers} (every node, O(groups)) is read only when an fd may be one. Null when no
 * node is seen at all (then every char device is looked up).
 */
export async function vfioMajors(sys: Syscalls): Promise<Set<number> | null> {
  const first = (d: string[] | Error, re: RegExp) => (d instanceof Error ? undefined : d.find((n) => re.test(n)));
  const [devVfio, devCdevs, classVfio, classVfioDev] = await readdirsOf(sys, ["/dev/vfio", "/dev/vfio/devices", "/sys/class/vfio", "/sys/class/vfio-dev"]);
  const group = first(devVfio!, /^(?:noiommu-)?\d+$/);
  const cdev = first(devCdevs!, /^vfio\d+$/);
  const classGroup = first(classVfio!, /^(?:noiommu-)?\d+$/);
  const classCdev = first(classVfioDev!, /^vfio\d+$/);
  const nodes = ["/dev/vfio/vfio", "/dev/iommu", ...(group ? [`/dev/vfio/${group}`] : []), ...(cdev ? [`/dev/vfio/devices/${cdev}`] : [])];
  const attrs = ["/sys/class/misc/vfio/dev", "/sys/class/misc/iommu/dev", ...(classGroup ? [`/sys/class/vfio/${classGroup}/dev`] : []), ...(classCdev ? [`/sys/class/vfio-dev/${classCdev}/dev`] : [])];
  const [st, files] = await Promise.all([statsOf(sys, nodes), readFilesOf(sys, attrs, { wholeIfShort: true })]);
  const out = new Set<number>();
  for (const r of st) if (!(r instanceof Error) && r.kind === "char" && r.rdev) out.add(major(r.rdev));
  for (const r of files) {
    const rdev = Buffer.isBuffer(r) ? parseDevAttr(r.toString("utf8").replace(/\n$/, "")) : null;
    if (rdev !== null) out.add(major(rdev));
  }
  return out.size ? out : null;
}

/** The container a cgroup path names (docker, podman, CRI-O, containerd, Kubernetes, systemd machines, LXC). */
export function containerOfCgroup(cg: string): ProcessPlace["container"] {
  const short = (id: string) => (/^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : id);
  const pod = /kubepods[^/]*\/(?:[^/]*\/)*?[^/]*pod([0-9a-f_-]{36})/.exec(cg)?.[1]?.replace(/_/g, "-");
  const rules: [RegExp, string][] = [
    [/(?:^|\/)docker-([0-9a-f]{64})\.scope/, "docker"],
    [/(?:^|\/)docker\/([0-9a-f]{64})(?:\/|$)/, "docker"],
    [/(?:^|\/)libpod-(?!conmon-)([0-9a-f]{64})\.scope/, "podman"],
    [/(?:^|\/)libpod_parent\/libpod-([0-9a-f]{64})/, "podman"],
    [/(?:^|\/)crio-(?!conmon-)([0-9a-f]{64})\.scope/, "cri-o"],
    [/(?:^|\/)cri-containerd-([0-9a-f]{64})\.scope/, "containerd"],
    [/(?:^|\/)kubepods[^\n]*\/([0-9a-f]{64})(?:\/|$)/, "kubernetes"],
    [/(?:^|\/)machine-([^/]+)\.scope/, "machine"],
    [/(?:^|\/)lxc\.payload\.([^/]+)/, "lxc"],
  ];
  for (const [re, runtime] of rules) {
    const m = re.exec(cg);
    if (m) return { runtime, id: short(m[1]!.replace(/\\x2d/g, "-")), ...(pod ? { pod } : {}) };
  }
  return pod ? { runtime: "kubernetes", id: "?", pod } : null;
}

async function placeOf(sys: Syscalls, pid: number, ownMnt: string | null): Promise<ProcessPlace> {
  let cgroup: string | null = null;
  try {
    const lines = (await readAttr(sys, `/proc/${pid}/cgroup`)).split("\n").filter(Boolean);
    const v2 = lines.find((l) => l.startsWith("0::"));
    cgroup = (v2 ?? lines[0] ?? "").replace(/^\d+:[^:]*:/, "") || null;
  } catch {
    /* gone or hidden */
  }
  let root: string | null = null;
  try {
    const r = await sys.readlink(`/proc/${pid}/root`);
    root = r === "/" ? null : r;
  } catch {
    /* another user's process: not readable */
  }
  let mntns: ProcessPlace["mntns"] = null;
  try {
    const m = await sys.readlink(`/proc/${pid}/ns/mnt`);
    mntns = ownMnt === null ? null : m === ownMnt ? "same" : "other";
  } catch {
    /* not readable */
  }
  return { root, mntns, container: cgroup ? containerOfCgroup(cgroup) : null, cgroup };
}

/**
 * Scan /proc for fds on vfio files, matched by device number. Processes whose fds we may not
 * read are listed in `unreadable`; processes with only anonymous device fds in `unattributed`.
 */
export async function scanVfioHolders(sys: Syscalls, opts: { includeSelf?: boolean } = {}): Promise<HolderScan> {
  let pids: string[];
  try {
    pids = (await sys.readdir("/proc")).filter((n) => /^\d+$/.test(n));
  } catch {
    return { holders: [], unreadable: [], unattributed: [] };
  }
  // what an fd's device number is, read the first time an fd may be a vfio node (vfioMajors)
  let majors: Set<number> | null | undefined;
  let nodes: Map<string, NodeInfo> | undefined;
  const nodeOf = async (rdev: number): Promise<NodeInfo | undefined> => {
    if (majors === undefined) majors = await vfioMajors(sys);
    if (majors !== null && !majors.has(major(rdev))) return undefined;
    nodes ??= await vfioNodeNumbers(sys);
    return nodes.get(devName(rdev));
  };
  let ownMnt: string | null = null;
  try {
    ownMnt = await sys.readlink(`/proc/${sys.pid}/ns/mnt`);
  } catch {
    /* no namespaces to compare */
  }
  const out: VfioHolder[] = [];
  const unreadable: number[] = [];
  const unattributed: number[] = [];
  for (const p of pids) {
    const pid = Number(p);
    if (!opts.includeSelf && pid === sys.pid) continue;
    let fds: string[];
    try {
      fds = await sys.readdir(`/proc/${p}/fd`);
    } catch (e) {
      if ((e as { code?: string }).code === "EACCES" || (e as { code?: string }).code === "EPERM") unreadable.push(pid);
      continue;
    }
    const mine: Omit<VfioHolder, "comm" | "where">[] = [];
    for (const fd of fds) {
      if (!/^\d+$/.test(fd)) continue;
      const link = `/proc/${p}/fd/${fd}`;
      let target: string;
      try {
        target = await sys.readlink(link);
      } catch {
        continue;
      }
      if (target === ANON_DEVICE) {
        mine.push({ pid, fd: Number(fd), target, kind: "device-fd", group: null, device: null, via: "anon", rdev: null });
        continue;
      }
      if (!target.startsWith("/")) continue; // sockets, pipes, other anonymous inodes
      let rdev: number | null = null;
      let statOk = true;
      try {
        const st = await sys.stat(link);
        rdev = st.kind === "char" && st.rdev ? st.rdev : null;
      } catch {
        statOk = false;
      }
      if (rdev !== null) {
        const n = await nodeOf(rdev);
        if (n) mine.push({ pid, fd: Number(fd), target, kind: n.kind, group: n.group, device: n.device, via: "rdev", rdev: devName(rdev) });
        continue;
      }
      if (statOk) continue; // not a char device: whatever its text says, it is not a vfio node
      const m = PATH_TARGET.exec(target);
      if (!m) continue;
      const kind: NodeInfo["kind"] = m[1] !== undefined ? "group" : m[2] ? "container" : m[3] !== undefined ? "cdev" : "iommufd";
      mine.push({ pid, fd: Number(fd), target, kind, group: m[1] !== undefined ? Number(m[1]) : null, device: null, via: "path", rdev: null });
    }
    if (!mine.length) continue;
    if (mine.some((h) => h.kind === "device-fd") && !mine.some((h) => h.kind === "group" || h.kind === "cdev")) unattributed.push(pid);
    let comm = "?";
    try {
      comm = await readAttr(sys, `/proc/${p}/comm`);
    } catch {
      /* gone */
    }
    const where = await placeOf(sys, pid, ownMnt);
    for (const h of mine) out.push({ ...h, comm, where });
  }
  out.sort((a, b) => a.pid - b.pid || a.fd - b.fd);
  return { holders: out, unreadable, unattributed };
}

/** Scan /proc for fds that point at vfio files (see {@link scanVfioHolders}). */
export async function vfioHolders(sys: Syscalls, opts: { includeSelf?: boolean } = {}): Promise<VfioHolder[]> {
  return (await scanVfioHolders(sys, opts)).holders;
}

/** The holders of IOMMU group `g`: its group node, or a cdev of one of its devices. */
export function holdersOf(holders: VfioHolder[], g: number | null): VfioHolder[] {
  return g === null ? [] : holders.filter((h) => h.group === g && (h.kind === "group" || h.kind === "cdev"));
}

/** The holders of the group node /dev/vfio/<g> itself (one open file per group: a second open fails EBUSY). */
export function groupNodeHolders(holders: VfioHolder[], g: number | null): VfioHolder[] {
  return g === null ? [] : holders.filter((h) => h.group === g && h.kind === "group");
}

/**
 * Whether a device of group `g` is held: "held" (a process holds the group or the device's
 * cdev), "free", or "unknown" (nobody visible holds it, but some process holds device fds that
 * name no group, or some processes' fds are not readable to this user).
 */
export function heldState(scan: HolderScan, g: number | null): "held" | "free" | "unknown" {
  if (holdersOf(scan.holders, g).length) return "held";
  return scan.unattributed.length || scan.unreadable.length ? "unknown" : "free";
}

/** Why {@link heldState} said "unknown", in words. */
export function unknownReason(scan: HolderScan): string {
  const parts: string[] = [];
  if (scan.unattributed.length) {
    const who = scan.unattributed.map((pid) => {
      const h = scan.holders.find((x) => x.pid === pid)!;
      return `pid ${pid} (${h.comm})${placeText(h.where)}`;
    });
    parts.push(`${who.join(", ")} hold${who.length === 1 ? "s" : ""} VFIO device fds without a group or cdev fd, so which devices they hold cannot be seen`);
  }
  if (scan.unreadable.length) parts.push(`${scan.unreadable.length} process${scan.unreadable.length === 1 ? "'s" : "es'"} fds are not readable to this user (run as root to see them)`);
  return parts.join("; ");
}

/** " [chroot /srv/c]", " [container docker 3f2a9c1b0d4e]", " [own mount namespace]", or "". */
export function placeText(w: ProcessPlace): string {
  const bits: string[] = [];
  if (w.container) bits.push(`container ${w.container.runtime} ${w.container.id}${w.container.pod ? ` pod ${w.container.pod}` : ""}`);
  else if (w.mntns === "other") bits.push("own mount namespace");
  if (w.root) bits.push(`chroot ${w.root}`);
  return bits.length ? ` [${bits.join(", ")}]` : "";
}

/** "pid 1234 (dpdk-testpmd) fd 5 → /srv/c/dev/vfio/21 [chroot /srv/c]" */
export const describeHolder = (h: VfioHolder): string => `pid ${h.pid} (${h.comm}) fd ${h.fd} → ${h.target}${placeText(h.where)}`;
