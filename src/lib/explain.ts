/**
 * `explain`: predict, without side effects, whether opening a device through vfio would work,
 * and what writing `sriov_numvfs` or binding a driver would do — with the exact cause, errno,
 * kernel log line and fix for each row of kernel-spec §2.4 (VF token), §4 (sriov_numvfs) and
 * §6 (driver binding), plus the group rules of §8.2. It reads sysfs, checks /dev/vfio nodes and
 * scans /proc/<pid>/fd; it never opens a device and never writes.
 *
 * Some things sysfs cannot show: whether a given token is the PF's (only an open can tell:
 * `verifyToken`), and whether a process holding a VF's group has the VF itself open. Those rows
 * come back as "possible" rather than "applies".
 *
 * The rules are the running kernel's (readHostKernel: its version resolved against
 * src/kernel/versions.ts and what /dev/iommu and /dev/vfio/devices show): on a kernel with the
 * vfio cdev the "cdev" rows give the VFIO_DEVICE_BIND_IOMMUFD outcomes of that kernel's row —
 * no token check (6.6–6.16, 6.12.y), a token that cannot be passed (E2BIG), or checked.
 *
 * @example
 * ```ts
 * import { bootKernel, explainOpen } from "vfioctl";
 * const k = await bootKernel();
 * const x = await explainOpen(k.spawn("sh"), "0000:af:10.0", { token: false });
 * x.open.verdict; // "fails"
 * x.open.errno;   // "EACCES" (VF token required: PF 0000:af:00.0 is owned by vfio-pci)
 * ```
 */
import type { Syscalls } from "../sys/syscalls.js";
import { checkBdf, checkDriverName } from "./bdf.js";
import { VfioctlError } from "./errors.js";
import { errnoName, errnoNumber, isErrno } from "../sys/errno.js";
import { readAttr } from "../sys/fsutil.js";
import { driverSuggestion, suggestDriver } from "./names.js";
import { CAP_SYS_RAWIO, describeNode, hasCap, lsmDenials, mayOpenRw, nodeAccess, readCaller, readLsm, whoMayOpen, type NodeAccess } from "./access.js";
import { describeHolder, groupNodeHolders, holdersOf, scanVfioHolders, unknownReason, type VfioHolder } from "./holders.js";
import { readTokenLog, type TokenLogReading } from "./tokenlog.js";
import { tokenSituation, type TokenSituation } from "./inventory.js";
import { readHostKernel, type HostKernel } from "./kernel.js";
import { DMA_SAFE_DRIVERS, denylisted, groupMembers, hasSriovConfigure, isVfioDriver, listDrivers, readDevice, readVfioPciModule, requireDevice, type DeviceFacts, type VfioPciModule } from "./sysfs.js";

/** applies: true on this host now (for the input given); possible: sysfs cannot tell; would: true for some input (see `when`); no: does not apply. */
export type CauseStatus = "applies" | "possible" | "would" | "no";

export interface Cause {
  /** stable id, e.g. "token-required" */
  id: string;
  /** kernel-spec section */
  spec: string;
  /** "open": the group path; "cdev": /dev/vfio/devices/vfio<N> with VFIO_DEVICE_BIND_IOMMUFD */
  operation: "open" | "cdev" | "sriov_numvfs" | "bind";
  /** the errno Linux returns; null when the operation blocks instead (or, with `note`, succeeds) */
  errno: string | null;
  /** not a refusal: something the operation does that the user should know (it succeeds) */
  note?: true;
  status: CauseStatus;
  /** for "would": the input or condition that triggers it */
  when?: string;
  cause: string;
  fix: string;
  /** the kernel log line that goes with it ("" when Linux logs nothing) */
  log?: string;
}

export interface ExplainOptions {
  /** a token the user means to pass (true: some token, value unknown), false/undefined: none */
  token?: string | boolean;
  /** the count the user means to write to sriov_numvfs */
  numvfs?: number;
  /** the driver the user means to bind (default vfio-pci) */
  driver?: string;
  /** rank the causes for this errno (what the user saw) */
  errno?: string;
  /** read the kernel log's token lines for the device (default: when `errno` is given) */
  log?: boolean;
  /** predict VFIO_DEVICE_BIND_IOMMUFD on the device's cdev as the asked operation */
  cdev?: boolean;
}

/**
 * What was asked, and whether it would work: the preflight answer behind `explain`'s exit code.
 * The asked operations are sriov_numvfs (with `numvfs`), bind (with `driver`), the cdev bind
 * (with `cdev`) and the group-path open (with a token, or when nothing else is asked). With only
 * `errno` the question is instead "is that errno explained on this host now".
 */
export interface Preflight {
  question: "operations" | "errno";
  operations: Cause["operation"][];
  /** operations: true every asked operation should succeed; false one fails or may fail. errno: true a cause applies or may apply */
  works: boolean;
  /** the ids of the rows that decide the answer (✗ and ? rows of the asked operations; for errno the ✗/? causes) */
  deciding: string[];
  summary: string;
}

export interface Explanation {
  bdf: string;
  role: "pf" | "vf" | "device";
  device: DeviceFacts;
  pf: DeviceFacts | null;
  vfioPci: VfioPciModule;
  token: TokenSituation;
  holders: VfioHolder[];
  /** the running kernel whose rules these are */
  kernel: HostKernel;
  open: { verdict: "ok" | "fails" | "cannot-tell"; errno: string | null; summary: string };
  /** opening through the vfio cdev; null when this kernel has none */
  cdev: { node: string | null; verdict: "ok" | "fails" | "cannot-tell"; errno: string | null; summary: string } | null;
  causes: Cause[];
  /** with opts.errno: the causes with that errno, most likely first */
  ranked?: Cause[];
  /** the kernel log's reading of the device's last token check (with opts.log / opts.errno) */
  tokenLog?: TokenLogReading;
  /** what was asked and whether it would work (`explain`'s exit code) */
  asked: Preflight;
}

/** The errnos explain has causes for (what `--errno` accepts). */
export const EXPLAIN_ERRNOS = ["E2BIG", "EACCES", "EBUSY", "EFAULT", "EINVAL", "ENODEV", "ENOENT", "ENOMEM", "EPERM", "ERANGE"] as const;

/**
 * An `--errno` argument: a name (EACCES, eacces, -EACCES) or a number (13, -13), checked against
 * the errnos explain has causes for. Throws BAD_INPUT listing them.
 */
export function parseErrnoArg(v: string): string {
  const t = v.trim().replace(/^-/, "");
  const name = /^\d+$/.test(t) ? errnoName(Number(t)) : t.toUpperCase();
  if ((EXPLAIN_ERRNOS as readonly string[]).includes(name)) return name;
  // a real errno explain has no causes for (EIO, 5) is named as such
  const real = /^\d+$/.test(t) ? !/^E\d+$/.test(name) : errnoNumber(name) !== undefined;
  throw new VfioctlError("BAD_INPUT", `--errno: expected one of ${EXPLAIN_ERRNOS.join(", ")} (or its number, e.g. 13 for EACCES), got ${JSON.stringify(v)}${real ? ` (${name}: vfioctl knows no vfio cause of it)` : ""}`, { fix: "give the errno the failing call reported, by name or number" });
}

const RANK: Record<CauseStatus, number> = { applies: 0, possible: 1, would: 2, no: 3 };

/**
 * The reads an answer depends on: readDevice treats an unreadable attribute as absent, which
 * would turn "the kernel refused the read" into a confident wrong answer (a PF whose
 * sriov_totalvfs cannot be read looks like a device without SR-IOV). Absent (ENOENT) is an
 * answer; any other errno is a KERNEL error naming the file (exit 3).
 */
async function readsNeeded(sys: Syscalls, bdf: string, opts: ExplainOptions): Promise<void> {
  const p = `/sys/bus/pci/devices/${bdf}`;
  const attr = async (name: string) => {
    try {
      await readAttr(sys, `${p}/${name}`);
      return true;
    } catch (e) {
      if (isErrno(e, "ENOENT")) return false;
      if (!isErrno(e)) throw e;
      throw new VfioctlError("KERNEL", `${bdf}: read ${p}/${name}: ${e.code} — explain cannot answer without it`, { subject: bdf, errno: e.code, fix: e.code === "EACCES" || e.code === "EPERM" ? "run explain as root (or as a user that can read sysfs)" : "check the device and the kernel log (dmesg)" });
    }
  };
  const link = async (name: string) => {
    try {
      await sys.readlink(`${p}/${name}`);
    } catch (e) {
      if (isErrno(e, "ENOENT") || isErrno(e, "EINVAL")) return;
      if (!isErrno(e)) throw e;
      throw new VfioctlError("KERNEL", `${bdf}: readlink ${p}/${name}: ${e.code} — explain cannot answer without it`, { subject: bdf, errno: e.code, fix: "run explain as root" });
    }
  };
  await link("driver");
  await link("iommu_group");
  if (opts.driver !== undefined) await attr("driver_override");
  // sriov_numvfs itself is read by readDevice with a timeout (on 6.1 a read blocks while a write of 0 waits)
  if (opts.numvfs !== undefined) await attr("sriov_totalvfs");
}

/** Predict open / sriov_numvfs / bind outcomes for one device. Read-only. */
export async function explainOpen(sys: Syscalls, bdf: string, opts: ExplainOptions = {}): Promise<Explanation> {
  checkBdf(bdf);
  const target = checkDriverName(opts.driver ?? "vfio-pci");
  let errnoWanted: string | undefined;
  if (opts.errno !== undefined) {
    errnoWanted = opts.errno.trim().toUpperCase().replace(/^-/, "");
    if (/^\d+$/.test(errnoWanted)) errnoWanted = errnoName(Number(errnoWanted));
    if (!/^E[A-Z0-9]+$/.test(errnoWanted)) throw new VfioctlError("BAD_INPUT", `--errno: expected an errno name like EACCES, EBUSY or ENOENT, got ${JSON.stringify(opts.errno)}`);
  }
  if (opts.numvfs !== undefined && (!Number.isInteger(opts.numvfs) || opts.numvfs < 0 || opts.numvfs > 65535)) {
    throw new VfioctlError("BAD_INPUT", `--numvfs: expected an integer 0..65535, got ${JSON.stringify(opts.numvfs)}`);
  }
  await requireDevice(sys, bdf);
  await readsNeeded(sys, bdf, opts);
  const d = await readDevice(sys, bdf);
  if (opts.numvfs !== undefined && d.sriov && d.sriov.numVfs === null) {
    throw new VfioctlError("KERNEL", `${bdf}: /sys/bus/pci/devices/${bdf}/sriov_numvfs could not be read (refused, or blocked behind a pending write of 0) — explain cannot answer --numvfs without the current count`, { subject: bdf, fix: "run explain as root; if a write of 0 is pending, its VF users must close first (vfioctl list names them)" });
  }
  const pf = d.physfn ? await readDevice(sys, d.physfn) : null;
  const mod = await readVfioPciModule(sys);
  const scan = await scanVfioHolders(sys);
  const holders = scan.holders;
  // nobody visible holds a VF, but a process holds device fds naming no group (or some fds are unreadable)
  const heldUnknown = scan.unattributed.length > 0 || scan.unreadable.length > 0 ? unknownReason(scan) : null;
  const drivers = await listDrivers(sys);
  const vfs = d.sriov ? await Promise.all(d.sriov.vfs.map((v) => readDevice(sys, v))) : [];
  const vfsHeld = vfs.filter((v) => holdersOf(holders, v.iommuGroup).length > 0);
  const vfsUnknown = !vfsHeld.length && vfs.length > 0 && heldUnknown !== null;
  const token = tokenSituation(d, pf, d.sriov ? (vfsHeld.length > 0 ? true : vfsUnknown ? null : false) : null, heldUnknown ?? undefined);
  const role: Explanation["role"] = d.sriov ? "pf" : d.physfn ? "vf" : "device";
  const given = opts.token !== undefined && opts.token !== false;
  const causes: Cause[] = [];
  const add = (c: Cause) => causes.push(c);
  const groupHeld = groupNodeHolders(holders, d.iommuGroup);
  const members = d.iommuGroup === null ? [] : await groupMembers(sys, d.iommuGroup);
  const memberFacts = await Promise.all(members.filter((m) => m !== bdf).map((m) => readDevice(sys, m)));
  const blockers = memberFacts.filter((m) => m.driver !== null && !DMA_SAFE_DRIVERS.has(m.driver) && !isVfioDriver(m.driver));
  const hk = await readHostKernel(sys);
  // cdev nodes of this device's group held open: one of them may be bound, which blocks the group node
  const cdevOfMembers = new Set([d, ...memberFacts].map((m) => m.cdevNode).filter((n): n is string => n !== null));
  const memberBdfs = new Set([d, ...memberFacts].map((m) => m.bdf));
  const cdevHeld = holders.filter((h) => h.kind === "cdev" && (h.device ? memberBdfs.has(h.device) : cdevOfMembers.has(h.target)));

  // ---------------------------------------------------------------- open (§8.2, §2.4)
  // a noiommu group's node is /dev/vfio/noiommu-<G> (vfio_group_alloc: "noiommu-%d")
  const noiommuNode = d.iommuGroup !== null && (await sys.stat(`/dev/vfio/noiommu-${d.iommuGroup}`).then(() => true, () => false)) ? `/dev/vfio/noiommu-${d.iommuGroup}` : null;
  add({
    id: "no-iommu-group",
    spec: "§6.6, §8.1",
    operation: "open",
    errno: "ENOENT",
    status: d.iommuGroup === null ? "applies" : "no",
    cause: `${bdf} has no IOMMU group (no iommu_group link): there is no /dev/vfio node to open, and vfio-pci refuses to bind it (EINVAL)`,
    fix: "enable the IOMMU (intel_iommu=on / amd_iommu=on on the kernel command line, VT-d/AMD-Vi in firmware); noiommu mode is unsafe and needs CAP_SYS_RAWIO",
  });
  const notVfio = d.driver === null || !isVfioDriver(d.driver);
  add({
    id: "not-bound-to-vfio",
    spec: "§8.1",
    operation: "open",
    errno: d.vfioNodeExists ? "ENODEV" : "ENOENT",
    status: d.iommuGroup !== null && notVfio ? "applies" : "no",
    cause: `${bdf} is ${d.driver ? `bound to ${d.driver}` : "not bound to any driver"}, not vfio-pci: ${d.vfioNodeExists ? `${d.vfioNode} exists for other devices of the group, but VFIO_GROUP_GET_DEVICE_FD finds no ${bdf} (ENODEV)` : `${d.vfioNode ?? "/dev/vfio/<group>"} does not exist (ENOENT)`}`,
    fix: `vfioctl bind ${bdf} vfio-pci`,
  });
  add({
    id: "group-node-missing",
    spec: "§8.1",
    operation: "open",
    errno: "ENOENT",
    status: d.iommuGroup !== null && !notVfio && !d.vfioNodeExists && noiommuNode === null ? "applies" : "no",
    cause: `${bdf} is bound to ${d.driver} and sysfs shows IOMMU group ${d.iommuGroup}, but ${d.vfioNode ?? "its group node"} does not exist here: a container the node was not passed to, a chroot or /dev without devtmpfs, or a node removed by hand (the kernel creates it on bind)`,
    fix: `pass the nodes in: docker/podman --device /dev/vfio/vfio --device ${d.vfioNode ?? "/dev/vfio/<group>"} (or a CDI spec: vfioctl cdi); in a chroot bind-mount /dev/vfio; on the host check that /dev is devtmpfs`,
  });
  add({
    id: "group-busy",
    spec: "§8.2, §10.2#19",
    operation: "open",
    errno: "EBUSY",
    status: groupHeld.length ? "applies" : heldUnknown !== null && d.vfioNodeExists ? "possible" : "no",
    cause: groupHeld.length || heldUnknown === null
      ? `${d.vfioNode ?? "the group"} is already open (one open file per group): ${groupHeld.map(describeHolder).join("; ") || "nobody"}`
      : `${d.vfioNode ?? "the group"} may be open (one open file per group; a device fd keeps its group open after the group fd is closed): ${heldUnknown}`,
    fix: "use the device from the process that holds the group, or stop that process; a second program cannot open the same group",
  });
  add({
    id: "group-cdev-bound",
    spec: "§8.5",
    operation: "open",
    errno: "EBUSY",
    status: cdevHeld.length ? "possible" : "no",
    when: hk.cdev === false ? undefined : "a device of the group is bound through its cdev",
    cause: `a device of IOMMU group ${d.iommuGroup ?? "?"} is open through the vfio cdev (${cdevHeld.map(describeHolder).join("; ") || "nobody now"}); once it is bound (VFIO_DEVICE_BIND_IOMMUFD) the group node cannot be opened (cdev_device_open_cnt)`,
    fix: "use the device through the cdev in that process, or close its cdev fd; the group path and the cdev path exclude each other",
  });
  // vfio_container_attach_group → iommu_group_claim_dma_owner: -EPERM while a kernel driver holds the group's DMA ownership (group->owner_cnt)
  add({
    id: "group-not-viable",
    spec: "§8.2",
    operation: "open",
    errno: "EPERM",
    status: blockers.length ? "applies" : "no",
    cause: `IOMMU group ${d.iommuGroup} is not viable: ${blockers.map((b) => `${b.bdf} is bound to ${b.driver}`).join(", ") || "every other member is unbound or on vfio-pci"}; VFIO_GROUP_GET_STATUS has no VIABLE flag and VFIO_GROUP_SET_CONTAINER fails EPERM`,
    fix: `bind every device of /sys/kernel/iommu_groups/${d.iommuGroup}/devices to vfio-pci (or unbind it): ${blockers.map((b) => `vfioctl bind ${b.bdf} vfio-pci`).join("; ") || "nothing to do"}`,
  });
  // §2.4 token rows
  const pfLinked = role === "vf" && pf?.driver === "vfio-pci";
  const pfVariant = role === "vf" && pf !== null && pf.driver !== "vfio-pci" && isVfioDriver(pf.driver);
  add({
    id: "token-required",
    spec: "§2.4",
    operation: "open",
    errno: "EACCES",
    status: pfLinked && !given ? "applies" : pfVariant && !given ? "possible" : "no",
    when: role === "vf" ? "opening the VF without vf_token=" : undefined,
    cause: `VF token required: PF ${pf?.bdf ?? "?"} is owned by ${pf?.driver ?? "vfio-pci"}, so every open of ${bdf} must carry the PF's token`,
    fix: `pass the token the PF's driver set: DPDK --vfio-vf-token, QEMU vf-token= (see \`vfioctl args\`); check one with \`vfioctl token verify ${bdf} --token-file F\``,
    log: `vfio-pci ${bdf}: VF token required to access device`,
  });
  add({
    id: "token-incorrect",
    spec: "§2.4",
    operation: "open",
    errno: "EACCES",
    status: pfLinked && given ? "possible" : pfLinked ? "would" : "no",
    when: "the token given is not the PF's current token",
    cause: `Incorrect VF token: ${bdf} opens only with PF ${pf?.bdf ?? "?"}'s current token; sysfs cannot show the token (the kernel never lets it be read), so whether a given token matches can only be learned by trying`,
    fix: `vfioctl token verify ${bdf} --token-file F (opens and closes the VF at once); the PF's token is random until its PF driver sets one, and a PF driver restart may set a new one`,
    log: `vfio-pci ${bdf}: Incorrect VF token provided for device`,
  });
  add({
    id: "token-pf-not-vfio",
    spec: "§2.4, §2.5",
    operation: "open",
    errno: "EINVAL",
    status: role === "vf" && pf !== null && !isVfioDriver(pf.driver) ? (given ? "applies" : "would") : "no",
    when: "a token is passed",
    cause: `VF token given where none is needed: PF ${pf?.bdf ?? "?"} is ${pf?.driver ? `on ${pf.driver}` : "unbound"}, not vfio-pci, so the VF is not linked to a PF token`,
    fix: "drop the token (DPDK: no --vfio-vf-token; QEMU: no vf-token=)",
    log: `vfio-pci ${bdf}: VF token incorrectly provided, PF not bound to vfio-pci`,
  });
  add({
    id: "token-not-pf-or-vf",
    spec: "§2.4",
    operation: "open",
    errno: "EINVAL",
    status: role === "device" ? (given ? "applies" : "would") : "no",
    when: "a token is passed",
    cause: `VF token given where none is needed: ${bdf} is neither an SR-IOV PF nor a VF`,
    fix: "drop the token; pass tokens only to SR-IOV devices",
    log: `vfio-pci ${bdf}: VF token incorrectly provided, not a PF or VF`,
  });
  const pfOnVfio = role === "pf" && d.driver === "vfio-pci";
  add({
    id: "pf-token-required",
    spec: "§2.4, §2.6",
    operation: "open",
    errno: "EACCES",
    status: pfOnVfio && !given ? (vfsHeld.length || vfsUnknown ? "possible" : "no") : "no",
    cause: `a VF of PF ${bdf} ${vfsUnknown ? `may be in use (${heldUnknown})` : `is in use (${vfsHeld.map((v) => `${v.bdf} group ${v.iommuGroup}: ${holdersOf(holders, v.iommuGroup).map(describeHolder).join(", ")}`).join("; ") || "none now"})`}; while any VF is open the PF itself opens only with the current token`,
    fix: "open the PF with the current token (restarting a PF driver while VFs run needs it), or close the VF users first",
    log: `vfio-pci ${bdf}: VF token required to access device`,
  });
  add({
    id: "pf-token-incorrect",
    spec: "§2.4",
    operation: "open",
    errno: "EACCES",
    status: pfOnVfio && given && (vfsHeld.length || vfsUnknown) ? "possible" : "no",
    cause: `while a VF of ${bdf} is open, a token other than the current one is refused (it is not replaced)`,
    fix: "pass the current token, then set a new one with VFIO_DEVICE_FEATURE (vfioctl token set --current-token-file F)",
    log: `vfio-pci ${bdf}: Incorrect VF token provided for device`,
  });

  // ---------------------------------------------------------------- who may open the nodes (EACCES, EPERM, ENOMEM)
  const caller = await readCaller(sys);
  const groupNode = noiommuNode ?? (d.vfioNodeExists ? d.vfioNode : null);
  const groupAcc = groupNode ? await nodeAccess(sys, groupNode) : null;
  const contAcc = await nodeAccess(sys, "/dev/vfio/vfio");
  const lsm = await readLsm(sys);
  const readLog = opts.log ?? errnoWanted !== undefined;
  const accessRows = (op: "open" | "cdev", nodes: (NodeAccess | null)[], idp: string) => {
    const ns = nodes.filter((n): n is NodeAccess => n !== null);
    if (!ns.length) return;
    const denied = caller ? ns.filter((n) => !mayOpenRw(caller, n)) : [];
    const tight = ns.filter((n) => (n.mode & 6) !== 6);
    // may_open → inode_permission → generic_permission: -EACCES for a node the bits do not open read-write
    add({
      id: `${idp}node-permission`,
      spec: "§8.1",
      operation: op,
      errno: "EACCES",
      status: denied.length ? "applies" : tight.length ? "would" : "no",
      when: "the program that opens it runs as a user the node's mode, owner and group do not let read and write (QEMU run as a user, libvirt's qemu user, a DPDK app without root)",
      cause: `${ns.map((n) => `${describeNode(n)}: read-write for ${whoMayOpen(n)}`).join("; ")}${caller ? `; this caller is uid ${caller.uid} gid ${caller.gid}${caller.groups.length ? ` groups ${caller.groups.join(",")}` : ""}${denied.length ? `, which may not open ${denied.map((n) => n.path).join(", ")}` : ""}` : ""}`,
      fix: `run the consumer as a user or group the node lets read and write, or give it the node: a udev rule (SUBSYSTEM=="vfio", GROUP="kvm", MODE="0660") or chown/chgrp + chmod 0660; libvirt chowns /dev/vfio/<group> to its qemu user itself when dynamic_ownership = 1 (/etc/libvirt/qemu.conf)${op === "open" ? "; /dev/vfio/vfio (the container) is normally 0666" : ""}`,
    });
  };
  accessRows("open", [groupAcc, contAcc], "");
  const denials = readLog && groupNode ? await lsmDenials(sys, [groupNode, "/dev/vfio/vfio", ...(d.cdevNode ? [d.cdevNode, "/dev/iommu"] : [])]) : null;
  const lsmName = [lsm.selinux ? `SELinux (${lsm.selinux}: /sys/fs/selinux/enforce)` : null, lsm.apparmor ? "AppArmor (/sys/module/apparmor/parameters/enabled: Y)" : null].filter(Boolean).join(" and ");
  // avc_has_perm (SELinux) and aa_path_perm (AppArmor) return -EACCES after the mode bits allowed the open
  add({
    id: "lsm-denied",
    spec: "§8.1",
    operation: "open",
    errno: "EACCES",
    status: denials?.length ? "possible" : lsm.selinux === "enforcing" || lsm.apparmor ? "would" : "no",
    when: "the security policy of the program that opens it (its SELinux domain, its AppArmor profile) does not allow the vfio nodes",
    cause: denials?.length
      ? `the kernel log shows a denial for this device's nodes: ${denials.slice(-2).map((t) => JSON.stringify(t)).join("; ")}`
      : `${lsmName || "a security module"} ${lsmName.includes(" and ") ? "are" : "is"} active: it can refuse an open the mode bits allow (EACCES), and says so in the kernel log ("avc:  denied { read write }" for SELinux, apparmor="DENIED" operation="open" for AppArmor)${readLog ? "; the log shows no such denial for this device's nodes" : " (explain --errno EACCES reads the log for them)"}`,
    fix: lsm.selinux ? "look for avc: denied in the kernel log or ausearch -m avc; libvirt labels the nodes for its guests (svirt); for another program a policy module (audit2allow) or the right context on /dev/vfio/*" : "look for apparmor=\"DENIED\" in the kernel log; libvirt's virt-aa-helper adds the nodes to the guest's profile; for another program add the nodes (/dev/vfio/* rw) to its profile",
    log: denials?.length ? denials[denials.length - 1]! : lsm.apparmor ? 'apparmor="DENIED" operation="open" … name="/dev/vfio/<N>" requested_mask="wr"' : 'avc:  denied  { read write } for … name="<N>" … tclass=chr_file',
  });
  // devcgroup_check_permission (cgroup v1 devices.allow) / __cgroup_bpf_check_dev_permission (v2): -EPERM
  add({
    id: "container-device-cgroup",
    spec: "§8.1",
    operation: "open",
    errno: "EPERM",
    // true of every host: listed when EPERM is asked about (--errno EPERM, --all)
    status: groupAcc && errnoWanted === "EPERM" ? "would" : "no",
    when: "the program runs in a container whose device cgroup does not allow the nodes",
    cause: `a container may open only the devices its cgroup allows: ${[groupAcc, contAcc].filter((n): n is NodeAccess => n !== null).map((n) => `${n.path} (${n.dev})`).join(" and ")} must both be allowed, or the open fails EPERM even as root in the container`,
    fix: "pass both nodes to the container (docker/podman --device /dev/vfio/vfio --device <group node>, a CDI spec: vfioctl cdi, the SR-IOV device plugin); libvirt adds them to its cgroup_device_acl. A node that is not passed at all is missing in the container: ENOENT",
    log: "",
  });
  // vfio_group_fops_open and vfio_container_attach_group: a noiommu group needs CAP_SYS_RAWIO (-EPERM); attach also refuses to mix noiommu and IOMMU groups in one container (-EPERM)
  const rawio = caller ? hasCap(caller, CAP_SYS_RAWIO) : null;
  add({
    id: "noiommu-rawio",
    spec: "§8.4",
    operation: "open",
    errno: "EPERM",
    status: noiommuNode ? (rawio === false ? "applies" : "would") : hk.noiommu ? "would" : "no",
    when: "the program that opens a noiommu group lacks CAP_SYS_RAWIO, or puts it in a container with IOMMU-backed groups",
    cause: noiommuNode
      ? `${bdf}'s group is a noiommu group (${noiommuNode}): opening it, VFIO_GROUP_SET_CONTAINER and VFIO_SET_IOMMU(VFIO_NOIOMMU_IOMMU) need CAP_SYS_RAWIO${rawio === false ? "; this caller does not have it" : ""}, and one container cannot hold noiommu and IOMMU groups together`
      : "vfio's enable_unsafe_noiommu_mode is on: a device without an IOMMU group that binds to vfio-pci gets a noiommu group, usable only with CAP_SYS_RAWIO",
    fix: "run the consumer with CAP_SYS_RAWIO (root), one container per kind of group; better: enable the IOMMU and leave noiommu mode off",
  });
  // group-not-viable (above) is vfio_container_attach_group → iommu_group_claim_dma_owner: -EPERM while group->owner_cnt is held by a kernel driver
  // vfio_iommu_type1.c vfio_pin_pages_remote: pages beyond RLIMIT_MEMLOCK without CAP_IPC_LOCK → -ENOMEM (not EPERM)
  add({
    id: "memlock-limit",
    spec: "§8.3",
    operation: "open",
    errno: "ENOMEM",
    // true of every host: listed when ENOMEM is asked about
    status: errnoWanted === "ENOMEM" ? "would" : "no",
    when: "VFIO_IOMMU_MAP_DMA pins more memory than the program's RLIMIT_MEMLOCK allows (it lacks CAP_IPC_LOCK)",
    cause: "type1 pins every page it maps for DMA and counts it against the mapping process's locked-memory limit: past the limit VFIO_IOMMU_MAP_DMA fails ENOMEM (the open itself succeeds; the guest or DPDK app fails when it maps its memory)",
    fix: "raise the limit for the consumer (ulimit -l, LimitMEMLOCK= in its systemd unit, memlock in /etc/security/limits.conf; libvirt raises it for its guests) or give it CAP_IPC_LOCK",
    log: "vfio_pin_pages_remote: RLIMIT_MEMLOCK (<bytes>) exceeded",
  });
  // ---------------------------------------------------------------- the cdev path (§2.9, §8.5)
  const rule = hk.cdevToken;
  const cdevKernel = hk.cdev === true || (hk.cdev === null && hk.behaviour?.vfioDeviceCdev === true);
  const cdevNode = d.cdevNode;
  if (cdevKernel || rule !== "none") {
    const r = rule === "unknown" && hk.behaviour?.vfioDeviceCdev ? (!hk.behaviour.bindIommufdToken ? "bypass" : !hk.behaviour.bindIommufdFullStruct ? "e2big" : "checked") : rule;
    const known = rule !== "unknown";
    const st = (cond: boolean): CauseStatus => (cond ? (known ? "applies" : "possible") : "no");
    const node = cdevNode ?? (d.vfioDevice ? `/dev/vfio/devices/${d.vfioDevice}` : "/dev/vfio/devices/vfio<N>");
    const logDev = `vfio-pci ${bdf}`;
    accessRows("cdev", [cdevNode ? await nodeAccess(sys, cdevNode) : null, hk.iommufd ? await nodeAccess(sys, "/dev/iommu") : null], "cdev-");
    add({
      id: "cdev-no-node",
      spec: "§8.1",
      operation: "cdev",
      errno: "ENOENT",
      status: notVfio ? "applies" : "no",
      cause: `${bdf} is not bound to vfio-pci: it has no vfio-dev/vfio<N>, so no ${node}`,
      fix: `vfioctl bind ${bdf} vfio-pci`,
    });
    add({
      id: "cdev-no-iommufd",
      spec: "§8.5",
      operation: "cdev",
      errno: "ENOENT",
      status: hk.iommufd ? "no" : "applies",
      cause: "/dev/iommu does not exist: BIND_IOMMUFD needs an iommufd (open(/dev/iommu) fails ENOENT)",
      fix: "modprobe iommufd (CONFIG_IOMMUFD)",
    });
    add({
      id: "cdev-group-open",
      spec: "§8.5",
      operation: "cdev",
      errno: "EBUSY",
      status: groupHeld.length ? "applies" : "no",
      cause: `${d.vfioNode ?? "the group node"} is open (${groupHeld.map(describeHolder).join("; ") || "nobody"}): vfio_device_block_group refuses a cdev bind while the group path is in use`,
      fix: "close the group fd (and its container) first, or use the group path",
    });
    add({
      id: "cdev-already-bound",
      spec: "§8.5",
      operation: "cdev",
      errno: "EINVAL",
      status: cdevNode !== null && holders.some((h) => h.kind === "cdev" && (h.device === bdf || h.target === cdevNode)) ? "possible" : "no",
      cause: `${node} is open in ${holders.filter((h) => h.kind === "cdev" && (h.device === bdf || h.target === cdevNode)).map(describeHolder).join("; ") || "no process"}; the cdev path opens a device once: a second bind (of that fd or another) is EINVAL`,
      fix: "use the device from the process that bound it, or stop that process",
    });
    add({
      id: "cdev-not-viable",
      spec: "§8.2",
      operation: "cdev",
      errno: "EPERM",
      status: blockers.length ? "applies" : "no",
      cause: `IOMMU group ${d.iommuGroup} has ${blockers.map((b) => `${b.bdf} on ${b.driver}`).join(", ") || "no device on a host driver"}: a kernel driver holds the group's DMA ownership, so iommufd cannot claim it (iommu_device_claim_dma_owner: EPERM)`,
      fix: `bind every device of the group to vfio-pci or unbind it: ${blockers.map((b) => `vfioctl bind ${b.bdf} vfio-pci`).join("; ") || "nothing to do"}`,
    });
    // another member bound through its cdev: its iommufd owns the group's DMA (the lab: EPERM on 7.3.4-lab and 6.12.117-lab)
    const otherMemberCdev = cdevHeld.filter((h) => (h.device ? h.device !== bdf : h.target !== cdevNode));
    add({
      id: "cdev-group-owned",
      spec: "§8.2",
      operation: "cdev",
      errno: "EPERM",
      status: otherMemberCdev.length ? "possible" : "no",
      cause: `another device of IOMMU group ${d.iommuGroup ?? "?"} is open through its cdev (${otherMemberCdev.map(describeHolder).join("; ") || "nobody now"}); once it is bound, that iommufd owns the group's DMA and a bind to any other iommufd fails EPERM (iommu_device_claim_dma_owner)`,
      fix: "bind every device of the group through one iommufd (in one process), or close the other device's cdev fd",
    });
    add({
      id: "cdev-unbound",
      spec: "§1.1",
      operation: "cdev",
      errno: "EINVAL",
      status: "would",
      when: "an ioctl other than BIND_IOMMUFD is made on the cdev fd before the bind",
      cause: "every ioctl but VFIO_DEVICE_BIND_IOMMUFD (and every read, write and mmap) fails EINVAL until the bind succeeds",
      fix: "bind first: open /dev/iommu, IOMMU_IOAS_ALLOC, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_ATTACH_IOMMUFD_PT",
    });
    // the VF token on BIND_IOMMUFD, by kernel row
    add({
      id: "cdev-token-bypass",
      spec: "§2.9",
      operation: "cdev",
      errno: null,
      note: true,
      status: r === "bypass" && (pfLinked || pfOnVfio) ? st(true) : "no",
      cause:
        role === "pf"
          ? `this kernel does not check the VF token on BIND_IOMMUFD: ${bdf} binds without proving the token even while its VFs are in use, and a bind cannot set the token (flags must be 0)`
          : `this kernel does not check the VF token on BIND_IOMMUFD: ${bdf} (a VF of vfio-pci PF ${pf?.bdf ?? "?"}) opens through ${node} without the token, and counts as a token user of the PF once open (the PF then needs the token)`,
      fix: "a kernel with 86624ba3b522 (6.15.10+, 6.16.1+, 6.17+; usable with 2f03f21fe751: 6.18.3+, 6.19+); until then keep the cdev nodes of such VFs root-only (mode 0600) and see `vfioctl audit`",
    });
    add({
      id: "cdev-token-flags",
      spec: "§2.9",
      operation: "cdev",
      errno: "EINVAL",
      status: r === "bypass" ? (given ? st(true) : "would") : "no",
      when: "a token is passed (VFIO_DEVICE_BIND_FLAG_TOKEN)",
      cause: "this kernel's BIND_IOMMUFD has no token field: flags other than 0 are EINVAL",
      fix: "bind with flags 0 and argsz 16 on this kernel (the token is not checked here)",
      log: "",
    });
    add({
      id: "cdev-token-e2big",
      spec: "§2.9",
      operation: "cdev",
      errno: "E2BIG",
      status: r === "e2big" ? (given ? st(true) : "would") : "no",
      when: "a token is passed (argsz 24 with token_uuid_ptr)",
      cause: "this kernel copies only the first 16 bytes of struct vfio_device_bind_iommufd (copy_struct_from_user with the old size), so a non-zero token_uuid_ptr is E2BIG: the token cannot be passed",
      fix: "a kernel with 2f03f21fe751 (6.18.3+, 6.19+), or the group path, which takes the token in the match string",
      log: "",
    });
    add({
      id: "cdev-token-efault",
      spec: "§2.9",
      operation: "cdev",
      errno: "EFAULT",
      status: r === "e2big" || r === "checked" ? "would" : "no",
      when: "VFIO_DEVICE_BIND_FLAG_TOKEN with argsz 16 or a null token_uuid_ptr",
      cause: "with FLAG_TOKEN the kernel copies 16 bytes from token_uuid_ptr; a 16-byte struct leaves it 0, so the copy faults",
      fix: "argsz 24 and token_uuid_ptr pointing at the 16 UUID bytes (vfioctl's openCdevSession does this)",
      log: "",
    });
    add({
      id: "cdev-token-required",
      spec: "§2.9, §2.4",
      operation: "cdev",
      errno: "EACCES",
      status: !(r === "e2big" || r === "checked") || !(pfLinked || pfOnVfio) ? "no" : given ? "would" : pfLinked ? st(true) : vfsHeld.length ? "possible" : "would",
      when: "binding without VFIO_DEVICE_BIND_FLAG_TOKEN",
      cause:
        r === "e2big"
          ? `${bdf} needs the token and this kernel cannot take one through the cdev (E2BIG): it cannot be opened through ${node} at all`
          : `VF token required on BIND_IOMMUFD: ${role === "pf" ? `a VF of ${bdf} is in use` : `PF ${pf?.bdf ?? "?"} is owned by vfio-pci`}; QEMU's iommufd backend binds with flags 0 and fails here`,
      fix: r === "e2big" ? "use the group path (vf_token= in the match string), or a kernel with 2f03f21fe751 (6.18.3+, 6.19+)" : "bind with VFIO_DEVICE_BIND_FLAG_TOKEN and token_uuid_ptr (vfioctl's openCdevSession); for QEMU use the group path (no iommufd=)",
      log: `${logDev}: VF token required to access device`,
    });
    add({
      id: "cdev-token-incorrect",
      spec: "§2.9, §2.4",
      operation: "cdev",
      errno: "EACCES",
      status: r === "checked" && (pfLinked || (pfOnVfio && vfsHeld.length > 0)) ? (given ? "possible" : "would") : "no",
      when: "the token given is not the PF's current token",
      cause: `BIND_IOMMUFD compares the token with PF ${role === "pf" ? bdf : (pf?.bdf ?? "?")}'s current one (the same table as the group path)`,
      fix: `vfioctl token verify ${bdf} --token-file F`,
      log: `${logDev}: Incorrect VF token provided for device`,
    });
    add({
      id: "cdev-token-not-needed",
      spec: "§2.9, §2.4",
      operation: "cdev",
      errno: "EINVAL",
      status: r === "checked" && (role === "device" || (role === "vf" && pf !== null && !isVfioDriver(pf.driver))) ? (given ? st(true) : "would") : "no",
      when: "a token is passed",
      cause: role === "device" ? `${bdf} is neither an SR-IOV PF nor a VF: a token is refused` : `PF ${pf?.bdf ?? "?"} is not on vfio-pci: a token is refused`,
      fix: "bind with flags 0",
      log: role === "device" ? `${logDev}: VF token incorrectly provided, not a PF or VF` : `${logDev}: VF token incorrectly provided, PF not bound to vfio-pci`,
    });
    add({
      id: "cdev-pf-sets-token",
      spec: "§2.9, §2.4",
      operation: "cdev",
      errno: null,
      note: true,
      status: r === "checked" && pfOnVfio ? (given && !vfsHeld.length ? st(true) : "would") : "no",
      when: "the PF is bound with a token while no VF is open",
      cause: `binding ${bdf} with VFIO_DEVICE_BIND_FLAG_TOKEN while no VF is open makes that the PF's token (no log) — and the token step runs before the iommufd fd is looked up, so a bind that then fails (EBADF, EBADFD, EBUSY) has changed the token anyway`,
      fix: "bind the PF with the token its VF users are given, and check the iommufd fd first",
    });
  }

  // ---------------------------------------------------------------- sriov_numvfs (§4)
  if (role === "pf" && d.sriov) {
    const s = d.sriov;
    const cur = s.numVfs;
    const n = opts.numvfs;
    const changes = n === undefined ? true : n !== cur;
    add({
      id: "numvfs-erange",
      spec: "§4.2 step 2",
      operation: "sriov_numvfs",
      errno: "ERANGE",
      status: n !== undefined ? (n > s.totalVfs ? "applies" : "no") : "would",
      when: `writing more than sriov_totalvfs (${s.totalVfs})`,
      cause: `sriov_numvfs: expected 0..${s.totalVfs}, got ${n ?? "more"}`,
      fix: `write at most ${s.totalVfs}`,
      log: "",
    });
    add({
      id: "numvfs-einval-parse",
      spec: "§4.2 step 1",
      operation: "sriov_numvfs",
      errno: "EINVAL",
      status: n !== undefined ? "no" : "would",
      when: "the text written is not a number (kstrtou16; \"0x10\" and \"010\" parse as 16 and 8)",
      cause: "sriov_numvfs accepts one unsigned number",
      fix: `write a decimal count: vfioctl sriov ${bdf} N`,
      log: "",
    });
    const ebusy = cur !== null && cur !== 0 && (n === undefined || (n !== 0 && n !== cur && n <= s.totalVfs));
    add({
      id: "numvfs-ebusy",
      spec: "§4.2 step 8",
      operation: "sriov_numvfs",
      errno: "EBUSY",
      status: ebusy ? (n === undefined ? "would" : "applies") : "no",
      when: `changing ${cur ?? "?"} VFs to a different non-zero count`,
      cause: `${cur} VFs already enabled: a different non-zero count needs going through 0, which destroys every VF`,
      fix: `vfioctl sriov ${bdf} ${n ?? "N"} --via-zero (after stopping every VF user)`,
      log: `${d.driver ?? "pci"} ${bdf}: ${cur} VFs already enabled. Disable before enabling ${n ?? "N"} VFs`,
    });
    add({
      id: "numvfs-enoent-no-driver",
      spec: "§4.2 step 5",
      operation: "sriov_numvfs",
      errno: "ENOENT",
      status: d.driver === null && changes ? "applies" : "no",
      cause: `${bdf} has no driver bound; only a driver can configure SR-IOV`,
      fix: `bind a PF driver (its native driver, pci-pf-stub, or vfio-pci with enable_sriov=Y): vfioctl bind ${bdf} DRIVER`,
      log: `pci ${bdf}: no driver bound to device; cannot configure SR-IOV`,
    });
    const cfg = hasSriovConfigure(d.driver);
    add({
      id: "numvfs-enoent-no-sriov-configure",
      spec: "§4.2 step 6",
      operation: "sriov_numvfs",
      errno: "ENOENT",
      status: d.driver !== null && changes ? (cfg === false ? "applies" : cfg === undefined ? "possible" : "no") : "no",
      cause: `${d.driver ?? "the driver"} ${cfg === false ? "has no" : cfg === undefined ? "may lack a" : "has a"} sriov_configure callback: it cannot create VFs through sysfs`,
      fix: `bind a driver that can: vfioctl bind ${bdf} pci-pf-stub (VFs then need no token) or vfio-pci with enable_sriov=Y (a userspace PF driver then owns the token)`,
      log: `${d.driver ?? "pci"} ${bdf}: driver does not support SR-IOV configuration via sysfs`,
    });
    add({
      id: "numvfs-enoent-enable-sriov",
      spec: "§4.5",
      operation: "sriov_numvfs",
      errno: "ENOENT",
      status: d.driver === "vfio-pci" && mod.enableSriov !== true && changes ? "applies" : "no",
      cause: `${bdf} is on vfio-pci and vfio-pci's enable_sriov is ${mod.enableSriov === null ? "absent (module without CONFIG_PCI_IOV?)" : "N"}: vfio-pci refuses every change, including 0, and logs nothing`,
      fix: "echo Y > /sys/module/vfio_pci/parameters/enable_sriov (or modprobe vfio-pci enable_sriov=1); the PF's userspace driver must support SR-IOV",
      log: "",
    });
    add({
      id: "numvfs-blocks-vf-open",
      spec: "§7.2",
      operation: "sriov_numvfs",
      errno: null,
      status: vfsHeld.length ? (n === undefined || n === 0 ? "applies" : "no") : vfsUnknown && (n === undefined || n === 0) ? "possible" : "no",
      when: "writing 0 (or unbinding the PF) while a VF is open",
      cause: `the write blocks until every VF user closes: ${vfsHeld.map((v) => `${v.bdf}: ${holdersOf(holders, v.iommuGroup).map(describeHolder).join(", ")}`).join("; ") || (vfsUnknown ? `which VFs are held cannot be seen: ${heldUnknown}` : "no VF is held")}; on 6.1 reading sriov_numvfs blocks meanwhile too`,
      fix: "stop the VF users first; vfioctl sriov takes --timeout and then names the holders",
      log: `vfio-pci <VF>: No device request channel registered, blocked until released by user`,
    });
  } else {
    add({
      id: "numvfs-not-a-pf",
      spec: "§4.1",
      operation: "sriov_numvfs",
      errno: "ENOENT",
      status: "applies",
      cause: `${bdf} has no sriov_numvfs: ${d.physfn ? `it is a VF; VFs are created on its PF ${d.physfn}` : "it is not an SR-IOV PF"}`,
      fix: d.physfn ? `vfioctl sriov ${d.physfn} N` : "nothing to configure",
    });
  }

  // ---------------------------------------------------------------- bind (§6)
  const have = drivers.includes(target);
  const suggested = have ? null : suggestDriver(target, drivers);
  add({
    id: "bind-driver-missing",
    spec: "§6.2",
    operation: "bind",
    errno: "ENOENT",
    status: have ? "no" : "applies",
    cause: `no driver ${target} is registered (/sys/bus/pci/drivers/${target} does not exist)${suggested ? `: ${driverSuggestion(target, drivers)}` : ""}`,
    fix: suggested ? `vfioctl bind ${bdf} ${suggested}` : `modprobe ${target.replace(/-/g, "_")}`,
  });
  add({
    id: "bind-override-other",
    spec: "§6.1",
    operation: "bind",
    errno: "ENODEV",
    status: d.driverOverride !== null && d.driverOverride !== target ? "applies" : "no",
    cause:
      d.driverOverride === "vfio-pci" && pf?.driver === "vfio-pci"
        ? `${bdf}'s driver_override is "vfio-pci", captured when vfio-pci PF ${pf.bdf} created it: no other driver matches it`
        : `${bdf}'s driver_override is ${JSON.stringify(d.driverOverride)}: only that driver matches it, so binding ${target} fails ENODEV`,
    fix:
      d.driverOverride === "vfio-pci" && pf?.driver === "vfio-pci"
        ? `vfioctl bind ${bdf} ${target} --release-captured (replaces the override; the kernel warns "VF ${bdf} bound to driver ${target} while PF bound to driver vfio-pci", and the PF's userspace driver can no longer trust that VF is under vfio)`
        : `vfioctl bind ${bdf} ${target} (sets driver_override to ${target} first)`,
  });
  add({
    id: "bind-already-bound",
    spec: "§6.2",
    operation: "bind",
    errno: "EBUSY",
    status: d.driver !== null && d.driver !== target ? "applies" : "no",
    cause: `${bdf} is already bound to ${d.driver}: writing it to ${target}/bind fails EBUSY (ENODEV before 5.13)`,
    fix: `unbind first, or let vfioctl do both: vfioctl bind ${bdf} ${target}`,
  });
  const isVfioTarget = target === "vfio-pci";
  add({
    id: "bind-pf-sriov-enabled",
    spec: "§6.6 step 3",
    operation: "bind",
    errno: "EBUSY",
    status: isVfioTarget && d.driver !== target && role === "pf" && (d.sriov?.numVfs ?? 0) > 0 ? "applies" : "no",
    cause: `${bdf} has ${d.sriov?.numVfs ?? 0} VFs enabled: vfio-pci refuses to bind a PF with SR-IOV enabled`,
    fix: `vfioctl sriov ${bdf} off (destroys the VFs), bind vfio-pci, then create VFs again through vfio-pci (enable_sriov=Y)`,
    log: `vfio-pci ${bdf}: Cannot bind to PF with SR-IOV enabled`,
  });
  add({
    id: "bind-denylist",
    spec: "§6.5",
    operation: "bind",
    errno: "EINVAL",
    status: isVfioTarget && d.driver !== target && denylisted(d) && mod.disableDenylist !== true ? "applies" : "no",
    cause: `${(d.vendor ?? 0).toString(16).padStart(4, "0")}:${(d.device ?? 0).toString(16).padStart(4, "0")} is on vfio-pci's device denylist (Intel QAT)`,
    fix: "use the device's kernel driver, or load vfio-pci with disable_denylist=1 if you accept the risk",
    log: `vfio-pci ${bdf}: ${(d.vendor ?? 0).toString(16).padStart(4, "0")}:${(d.device ?? 0).toString(16).padStart(4, "0")} exists in vfio-pci device denylist, driver probing disallowed.`,
  });
  add({
    id: "bind-no-iommu-group",
    spec: "§6.6 step 4",
    operation: "bind",
    errno: "EINVAL",
    status: isVfioTarget && d.iommuGroup === null ? "applies" : "no",
    cause: `${bdf} has no IOMMU group: vfio-pci's probe fails`,
    fix: "enable the IOMMU in firmware and on the kernel command line",
  });
  add({
    id: "bind-vf-autoprobe-off",
    spec: "§6.3",
    operation: "bind",
    errno: "ENODEV",
    status: role === "vf" && pf?.sriov?.driversAutoprobe === false && d.driverOverride === null ? "applies" : "no",
    cause: `PF ${pf?.bdf ?? "?"} has sriov_drivers_autoprobe=0 and ${bdf} has no driver_override: the PCI core lets no driver probe it`,
    fix: `vfioctl bind ${bdf} ${target} (sets driver_override, which lifts the autoprobe rule)`,
  });

  // ---------------------------------------------------------------- the kernel log's last token check
  let tokenLog: TokenLogReading | undefined;
  if (opts.log ?? errnoWanted !== undefined) {
    tokenLog = await readTokenLog(sys, bdf);
    const last = tokenLog.last;
    const c = (id: string) => causes.find((x) => x.id === id);
    const [req, inc] = role === "pf" ? [c("pf-token-required"), c("pf-token-incorrect")] : [c("token-required"), c("token-incorrect")];
    if (last?.verdict === "wrong-token" && inc && (pfLinked || pfOnVfio)) {
      // DPDK's retry: "Incorrect …" then "required" in the same second is a wrong token, not a missing one
      inc.status = "applies";
      inc.cause += `; ${last.why}`;
      if (req && req.status === "applies") {
        req.status = "possible";
        req.cause += ` — but ${last.retriedWithout ? "the \"VF token required\" line the kernel logged last is the consumer's retry without the token, after the wrong one" : "the kernel logged \"Incorrect VF token\": the last open did carry a token"}`;
      }
    } else if (last?.verdict === "no-token" && req && req.status !== "no") {
      req.cause += `; ${last.why}`;
      if (req.status === "possible") req.status = "applies";
    }
  }

  // ---------------------------------------------------------------- verdict
  const openCauses = causes.filter((c) => c.operation === "open");
  const firstApplies = openCauses.find((c) => c.status === "applies");
  const firstPossible = openCauses.find((c) => c.status === "possible");
  let open: Explanation["open"];
  if (firstApplies) open = { verdict: "fails", errno: firstApplies.errno, summary: `open ${bdf}: ${firstApplies.errno} (${firstApplies.cause})` };
  else if (firstPossible) open = { verdict: "cannot-tell", errno: firstPossible.errno, summary: `open ${bdf}: may fail ${firstPossible.errno} (${firstPossible.cause})` };
  else open = { verdict: "ok", errno: null, summary: `open ${bdf}: should succeed${given && token.ifGiven === "sets-it" ? " (and the token given becomes the PF's token: no VF is open)" : pfLinked ? " with the PF's token" : ""}` };

  let cdev: Explanation["cdev"] = null;
  const cdevCauses = causes.filter((c) => c.operation === "cdev" && !c.note);
  if (cdevCauses.length) {
    const a = cdevCauses.find((c) => c.status === "applies");
    const p = cdevCauses.find((c) => c.status === "possible");
    const n = d.cdevNode;
    const bypass = causes.find((c) => c.id === "cdev-token-bypass" && c.status !== "no");
    if (a) cdev = { node: n, verdict: "fails", errno: a.errno, summary: `bind ${n ?? bdf}: ${a.errno} (${a.cause})` };
    else if (p) cdev = { node: n, verdict: "cannot-tell", errno: p.errno, summary: `bind ${n ?? bdf}: may fail ${p.errno} (${p.cause})` };
    else cdev = { node: n, verdict: "ok", errno: null, summary: `bind ${n ?? bdf}: should succeed${bypass ? " without any token (this kernel does not check it)" : pfLinked ? " with the PF's token" : ""}` };
  }

  const ranked = errnoWanted ? causes.filter((c) => c.errno === errnoWanted && c.status !== "no").sort((a, b) => RANK[a.status] - RANK[b.status]) : undefined;
  const asked = preflight(bdf, causes, opts, given, cdev, ranked, errnoWanted);
  const out: Explanation = { bdf, role, device: d, pf, vfioPci: mod, token, holders, kernel: hk, open, cdev, causes, ...(tokenLog ? { tokenLog } : {}), asked };
  if (ranked) out.ranked = ranked;
  return out;
}

/** The preflight answer: which operations were asked, and whether each would work (see Preflight). */
function preflight(bdf: string, causes: Cause[], opts: ExplainOptions, given: boolean, cdev: Explanation["cdev"], ranked: Cause[] | undefined, errnoWanted: string | undefined): Preflight {
  const ops: Cause["operation"][] = [];
  if (opts.numvfs !== undefined) ops.push("sriov_numvfs");
  if (opts.driver !== undefined) ops.push("bind");
  if (opts.cdev) ops.push("cdev");
  if (given || (!ops.length && errnoWanted === undefined)) ops.unshift("open");
  if (!ops.length && ranked) {
    const known = ranked.filter((c) => c.status === "applies" || c.status === "possible");
    return {
      question: "errno",
      operations: [],
      works: known.length > 0,
      deciding: known.map((c) => c.id),
      summary: known.length
        ? `${errnoWanted} on ${bdf}: explained (${known.map((c) => `${c.id} ${c.status === "applies" ? "applies" : "may apply"}`).join(", ")})`
        : `${errnoWanted} on ${bdf}: no known cause applies to this host's state now${ranked.length ? " (the rows listed are what would produce it)" : ""}`,
    };
  }
  // a row decides against an operation when it applies (✗) or may apply (?); notes never do
  const against = causes.filter((c) => ops.includes(c.operation) && !c.note && (c.status === "applies" || c.status === "possible"));
  const parts: string[] = [];
  for (const op of ops) {
    const rows = against.filter((c) => c.operation === op);
    const a = rows.find((c) => c.status === "applies");
    const what = op === "open" ? "open" : op === "cdev" ? "cdev bind" : op === "sriov_numvfs" ? `sriov_numvfs = ${opts.numvfs}` : `bind ${opts.driver}`;
    if (op === "cdev" && cdev === null) parts.push(`${what}: fails (this kernel has no vfio cdev)`);
    else if (a) parts.push(`${what}: fails ${a.errno ?? "(blocks)"} (${a.id})`);
    else if (rows.length) parts.push(`${what}: may fail ${rows[0]!.errno ?? "(may block)"} (${rows.map((c) => c.id).join(", ")}: sysfs cannot tell${rows.some((c) => c.id.includes("token-incorrect")) ? "; vfioctl token verify answers it" : ""})`);
    else parts.push(`${what}: should succeed`);
  }
  const noCdev = ops.includes("cdev") && cdev === null;
  return { question: "operations", operations: ops, works: !against.length && !noCdev, deciding: against.map((c) => c.id), summary: parts.join("; ") };
}
