/**
 * Setting and verifying a PF's VF token on the host (kernel-spec §2.4, §2.8, §3.2).
 *
 * - set: open the PF through its group with "<PF> vf_token=<uuid>". While no VF is open the
 *   kernel silently takes that UUID as the PF's token. While a VF is open the open needs the
 *   current token; with it, VFIO_DEVICE_FEATURE SET replaces the token (open VFs keep working,
 *   later VF opens need the new one).
 * - verify: open the VF with the token and close it at once: match, mismatch (EACCES "Incorrect
 *   VF token"), or not needed (the PF is not on vfio-pci).
 *
 * @example
 * ```ts
 * import { bootKernel, setToken, verifyToken, newToken } from "vfioctl";
 * const k = await bootKernel();
 * const sys = k.spawn("sh");
 * const t = newToken();
 * await setToken(sys, "0000:af:00.0", t);
 * (await verifyToken(sys, "0000:af:10.0", t)).result; // "match"
 * ```
 */
import { isErrno } from "../sys/errno.js";
import type { Syscalls } from "../sys/syscalls.js";
import { checkBdf } from "./bdf.js";
import { VfioctlError } from "./errors.js";
import { refuseOnCopiedTree, type OpStep } from "./steps.js";
import { describeHolder, groupNodeHolders, holdersOf, scanVfioHolders, unknownReason } from "./holders.js";
import { checkToken } from "./token.js";
import { openGroupSession } from "./vfio.js";
import { DMA_SAFE_DRIVERS, groupMembers, isVfioDriver, readDevice, requireDevice, type DeviceFacts } from "./sysfs.js";

export interface SetTokenResult {
  pf: string;
  /** "open": PF opened with vf_token= while no VF was open; "feature": VFIO_DEVICE_FEATURE SET with the current token */
  method: "open" | "feature";
  /** VFs whose groups are held open (they keep working with the old token until reopened) */
  vfsHeld: string[];
}

async function groupBusy(sys: Syscalls, d: DeviceFacts, what: string): Promise<VfioctlError> {
  const scan = await scanVfioHolders(sys);
  const holders = groupNodeHolders(scan.holders, d.iommuGroup);
  const cdev = holdersOf(scan.holders, d.iommuGroup).filter((h) => h.kind === "cdev");
  const who = holders.length
    ? holders.map(describeHolder).join("; ")
    : cdev.length
      ? `a device of the group is bound through its cdev: ${cdev.map(describeHolder).join("; ")}`
      : unknownReason(scan) || "no process visible in /proc holds it (the kernel may hold it for a process that has exited only partly, or a kernel user)";
  return new VfioctlError("KERNEL", `open ${d.vfioNode} (${d.bdf}): EBUSY (the group is already open: ${who})`, {
    subject: d.bdf,
    errno: "EBUSY",
    fix: `${what} through the program that holds the group, or stop it first; a group can be open in one place at a time`,
    data: { holders },
  });
}

/**
 * EPERM from opening a group and attaching it to a container: vfio_container_attach_group →
 * iommu_group_claim_dma_owner returns -EPERM while a kernel driver owns the group's DMA
 * (group->owner_cnt), i.e. another device of the group is bound to a host driver. Names the
 * device, the group, each member on a host driver, the errno and the fix.
 */
async function groupNotViable(sys: Syscalls, d: DeviceFacts, what: string): Promise<VfioctlError> {
  const members = d.iommuGroup === null ? [] : await groupMembers(sys, d.iommuGroup);
  const others = await Promise.all(members.filter((m) => m !== d.bdf).map((m) => readDevice(sys, m)));
  const blockers = others.filter((m) => m.driver !== null && !DMA_SAFE_DRIVERS.has(m.driver) && !isVfioDriver(m.driver));
  const listed = others.map((m) => `${m.bdf} ${m.driver ? `on ${m.driver}` : "unbound"}`).join(", ");
  const why = blockers.length
    ? `${blockers.map((b) => `${b.bdf} is bound to ${b.driver}`).join(", ")} (a host driver owns the group's DMA)`
    : "a device of the group is bound to a host driver (none seen now: it may have been unbound since)";
  return new VfioctlError("KERNEL", `${what} ${d.bdf}: IOMMU group ${d.iommuGroup} (${d.vfioNode}) is not usable: ${why}; EPERM (VFIO_GROUP_GET_STATUS has no VIABLE flag: VFIO_GROUP_SET_CONTAINER fails EPERM)${listed ? ` — the group's other devices: ${listed}` : ""}`, {
    subject: d.bdf,
    errno: "EPERM",
    fix: blockers.length
      ? `bind every device of /sys/kernel/iommu_groups/${d.iommuGroup}/devices to vfio-pci or unbind it: ${blockers.map((b) => `vfioctl bind ${b.bdf} vfio-pci`).join("; ")} (that takes them from the host), or put ${d.bdf} in a group of its own (ACS on the upstream port)`
      : `check /sys/kernel/iommu_groups/${d.iommuGroup}/devices and try again`,
    data: { group: d.iommuGroup, members: others.map((m) => ({ bdf: m.bdf, driver: m.driver })) },
  });
}

function needVfioPci(d: DeviceFacts, role: string): void {
  if (d.driver !== "vfio-pci") {
    throw new VfioctlError("REFUSED", `${d.bdf}: ${role} is ${d.driver ? `bound to ${d.driver}` : "not bound to any driver"}, not vfio-pci: it has no VF token`, {
      subject: d.bdf,
      errno: "EINVAL",
      fix: `bind it first: vfioctl bind ${d.bdf} vfio-pci`,
    });
  }
  if (!d.vfioNodeExists) throw new VfioctlError("REFUSED", `${d.bdf}: ${d.vfioNode ?? "no IOMMU group"}: ENOENT (no vfio group node)`, { subject: d.bdf, errno: "ENOENT", fix: "check that the device has an IOMMU group and is bound to vfio-pci" });
}

/**
 * The system calls setting a PF's token makes, in order (tokens shown as <token>): the container
 * and group opened, the group put in the container with an IOMMU, then the PF opened with the
 * new token (no VF open) or with the current one and the new one set by VFIO_DEVICE_FEATURE.
 */
export function setTokenSteps(pf: string, group: number, method: "open" | "feature"): OpStep[] {
  const g = `/dev/vfio/${group}`;
  const steps: OpStep[] = [
    { op: "open", path: "/dev/vfio/vfio", args: "O_RDWR", note: "a container" },
    { op: "open", path: g, args: "O_RDWR", note: `the PF's group ${group}` },
    { op: "ioctl", path: g, ioctl: "VFIO_GROUP_GET_STATUS", args: "", note: "viable?" },
    { op: "ioctl", path: g, ioctl: "VFIO_GROUP_SET_CONTAINER", args: "fd of /dev/vfio/vfio" },
    { op: "ioctl", path: "/dev/vfio/vfio", ioctl: "VFIO_SET_IOMMU", args: "VFIO_TYPE1v2_IOMMU" },
  ];
  if (method === "open") steps.push({ op: "ioctl", path: g, ioctl: "VFIO_GROUP_GET_DEVICE_FD", args: `"${pf} vf_token=<token>"`, note: "no VF is open: opening the PF with a token sets it" });
  else {
    steps.push({ op: "ioctl", path: g, ioctl: "VFIO_GROUP_GET_DEVICE_FD", args: `"${pf} vf_token=<current token>"`, note: "a VF is open: the PF opens only with the current token" });
    steps.push({ op: "ioctl", path: `device fd of ${pf}`, ioctl: "VFIO_DEVICE_FEATURE", args: "VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, <token>", note: "the new token; open VFs keep running" });
  }
  return steps;
}

/** What `setToken` would do, checked like it (device, SR-IOV, vfio-pci), without opening anything. */
export async function planSetToken(sys: Syscalls, pf: string): Promise<{ pf: string; method: "open" | "feature"; vfsHeld: string[]; steps: OpStep[] }> {
  checkBdf(pf, "pf");
  const { d, vfsHeld } = await checkSetToken(sys, pf);
  const method = vfsHeld.length ? "feature" : "open";
  return { pf, method, vfsHeld, steps: setTokenSteps(pf, d.iommuGroup!, method) };
}

/** The checks of a token set (device, SR-IOV, vfio-pci) and which of the PF's VFs are held open. */
async function checkSetToken(sys: Syscalls, pf: string): Promise<{ d: DeviceFacts; vfsHeld: string[] }> {
  await requireDevice(sys, pf);
  const d = await readDevice(sys, pf);
  if (!d.sriov) throw new VfioctlError("REFUSED", `${pf}: not an SR-IOV PF (no sriov_totalvfs): a token would be refused with EINVAL ("VF token incorrectly provided, not a PF or VF")`, { subject: pf, errno: "EINVAL", fix: d.physfn ? `VF tokens are set on the PF: vfioctl token set ${d.physfn}` : "VF tokens exist only for SR-IOV PFs bound to vfio-pci" });
  needVfioPci(d, "the PF");
  const { holders } = await scanVfioHolders(sys);
  const vfsHeld = (await Promise.all(d.sriov.vfs.map((v) => readDevice(sys, v)))).filter((v) => holdersOf(holders, v.iommuGroup).length > 0).map((v) => v.bdf);
  return { d, vfsHeld };
}

/**
 * Set the PF's VF token. `current` is needed only while a VF is open. Nothing stays open.
 * Throws VfioctlError naming the PF, the errno and the fix.
 */
export async function setToken(sys: Syscalls, pf: string, token: string, opts: { current?: string } = {}): Promise<SetTokenResult> {
  checkBdf(pf, "pf");
  token = checkToken(token, "the new token");
  const current = opts.current !== undefined ? checkToken(opts.current, "the current token") : undefined;
  const { d, vfsHeld } = await checkSetToken(sys, pf);
  refuseOnCopiedTree(sys, "token set", setTokenSteps(pf, d.iommuGroup!, vfsHeld.length ? "feature" : "open"));
  let s;
  try {
    s = await openGroupSession(sys, d.iommuGroup!);
  } catch (e) {
    if (isErrno(e, "EBUSY")) throw await groupBusy(sys, d, "set the token");
    if (isErrno(e, "EPERM")) throw await groupNotViable(sys, d, "set the token of");
    throw e;
  }
  try {
    try {
      await s.deviceFd(`${pf} vf_token=${token}`);
      return { pf, method: "open", vfsHeld };
    } catch (e) {
      if (!isErrno(e, "EACCES")) throw e;
    }
    // EACCES: a VF is open (users > 0), so the PF opens only with the current token
    if (current === undefined) {
      throw new VfioctlError("KERNEL", `open ${pf}: EACCES (a VF of this PF is open${vfsHeld.length ? `: ${vfsHeld.join(", ")}` : ""}, so the PF opens only with the current token)`, {
        subject: pf,
        errno: "EACCES",
        fix: "pass the current token (--current-token-file F); the new one is then set with VFIO_DEVICE_FEATURE: open VFs keep running, later VF opens need the new token. Or close every VF user first",
      });
    }
    let fd: number;
    try {
      fd = await s.deviceFd(`${pf} vf_token=${current}`);
    } catch (e) {
      if (isErrno(e, "EACCES")) throw new VfioctlError("KERNEL", `open ${pf}: EACCES (Incorrect VF token: the current token given does not match the PF's)`, { subject: pf, errno: "EACCES", fix: "check which token the running VF users were given" });
      throw e;
    }
    await s.setVfToken(fd, token);
    return { pf, method: "feature", vfsHeld };
  } finally {
    await s.close();
  }
}

export type VerifyResult = "match" | "mismatch" | "not-needed" | "pf-not-vfio-pci";

export interface VerifyOutcome {
  vf: string;
  pf: string | null;
  result: VerifyResult;
  detail: string;
}

/**
 * Check a token against a VF by opening the VF with it and closing it at once. Refuses a PF
 * (opening a PF with a token while no VF is open would replace its token).
 */
export async function verifyToken(sys: Syscalls, vf: string, token: string): Promise<VerifyOutcome> {
  checkBdf(vf, "vf");
  token = checkToken(token, "the token");
  await requireDevice(sys, vf);
  const d = await readDevice(sys, vf);
  if (d.sriov) {
    throw new VfioctlError("REFUSED", `${vf} is a PF: verifying a token on a PF is not read-only (opening it with vf_token= while no VF is open replaces the token)`, { subject: vf, fix: `verify on one of its VFs: ${d.sriov.vfs[0] ?? "(enable VFs first)"}` });
  }
  if (!d.physfn) return { vf, pf: null, result: "not-needed", detail: `${vf} is not an SR-IOV VF: no token is needed, and passing one fails EINVAL (not a PF or VF)` };
  const pf = await readDevice(sys, d.physfn);
  if (pf.driver !== "vfio-pci") {
    return { vf, pf: pf.bdf, result: "pf-not-vfio-pci", detail: `PF ${pf.bdf} is ${pf.driver ? `on ${pf.driver}` : "unbound"}, not vfio-pci: no token is needed, and passing one fails EINVAL (PF not bound to vfio-pci)` };
  }
  needVfioPci(d, "the VF");
  let s;
  try {
    s = await openGroupSession(sys, d.iommuGroup!);
  } catch (e) {
    if (isErrno(e, "EBUSY")) throw await groupBusy(sys, d, "verify the token");
    if (isErrno(e, "EPERM")) throw await groupNotViable(sys, d, "token verify");
    throw e;
  }
  try {
    await s.deviceFd(`${vf} vf_token=${token}`);
    return { vf, pf: pf.bdf, result: "match", detail: `the token opens ${vf} (PF ${pf.bdf}); the VF was closed again at once` };
  } catch (e) {
    if (isErrno(e, "EACCES")) return { vf, pf: pf.bdf, result: "mismatch", detail: `open ${vf}: EACCES (Incorrect VF token: it is not PF ${pf.bdf}'s token)` };
    if (isErrno(e, "EINVAL")) return { vf, pf: pf.bdf, result: "not-needed", detail: `open ${vf}: EINVAL (the VF is not linked to a vfio-pci PF: no token is needed)` };
    throw e;
  } finally {
    await s.close();
  }
}
