/**
 * Who may open a vfio node: the caller's credentials (/proc/self/status), a node's mode and
 * owner (stat), the security modules that can deny an open Linux's permission bits allow
 * (SELinux, AppArmor) and their denials in the kernel log. Read-only; each piece is null when
 * it cannot be read.
 *
 * The errnos (fs/namei.c, security/, drivers/vfio/):
 * - permission bits: may_open → inode_permission → generic_permission: -EACCES;
 * - SELinux: avc_has_perm → -EACCES, logged "avc:  denied  { read write } … path="/dev/vfio/N"";
 * - AppArmor: aa_path_perm → -EACCES, logged `apparmor="DENIED" operation="open" … name="/dev/vfio/N"`;
 * - the device cgroup (a container): devcgroup_check_permission (cgroup v1 devices.allow) and
 *   the cgroup v2 BPF device program (__cgroup_bpf_check_dev_permission) → -EPERM.
 */
import type { Syscalls } from "../sys/syscalls.js";
import { readAttr } from "../sys/fsutil.js";
import { KmsgReader } from "../sys/kmsg.js";
import { devName } from "../sys/devnum.js";

export interface Caller {
  uid: number;
  gid: number;
  /** supplementary groups */
  groups: number[];
  /** CapEff bits (null when not shown) */
  capEff: bigint | null;
}

/** include/uapi/linux/capability.h */
export const CAP_DAC_OVERRIDE = 1n;
export const CAP_SYS_RAWIO = 17n;
export const CAP_IPC_LOCK = 14n;

/** Whether the caller has `cap` in its effective set (without CapEff: root has them all). */
export const hasCap = (c: Caller, cap: bigint): boolean => (c.capEff === null ? c.uid === 0 : ((c.capEff >> cap) & 1n) === 1n);

/** The caller's real uid, gid, groups and effective capabilities from /proc/self/status. */
export async function readCaller(sys: Syscalls): Promise<Caller | null> {
  let text: string;
  try {
    text = await readAttr(sys, "/proc/self/status");
  } catch {
    return null;
  }
  const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(text)?.[1]?.trim();
  const uid = field("Uid")?.split(/\s+/)[1];
  const gid = field("Gid")?.split(/\s+/)[1];
  if (uid === undefined || gid === undefined) return null;
  const groups = (field("Groups") ?? "").split(/\s+/).filter(Boolean).map(Number);
  const cap = field("CapEff");
  return { uid: Number(uid), gid: Number(gid), groups, capEff: cap && /^[0-9a-f]+$/i.test(cap) ? BigInt(`0x${cap}`) : null };
}

export interface NodeAccess {
  path: string;
  mode: number;
  /** owner and group; null when stat does not give them */
  uid: number | null;
  gid: number | null;
  /** "c 242:6" */
  dev: string;
}

/** stat of a node: its mode, owner and device number; null when it cannot be stat'ed. */
export async function nodeAccess(sys: Syscalls, path: string): Promise<NodeAccess | null> {
  try {
    const st = await sys.stat(path);
    return { path, mode: st.mode & 0o7777, uid: st.uid ?? null, gid: st.gid ?? null, dev: `c ${devName(st.rdev)}` };
  } catch {
    return null;
  }
}

/** "crw-rw----" for a char node's permission bits. */
export function modeString(mode: number): string {
  const rwx = (b: number) => `${b & 4 ? "r" : "-"}${b & 2 ? "w" : "-"}${b & 1 ? "x" : "-"}`;
  return `c${rwx((mode >> 6) & 7)}${rwx((mode >> 3) & 7)}${rwx(mode & 7)}`;
}

/** Whether `c` may open `n` read-write by its permission bits (generic_permission; CAP_DAC_OVERRIDE overrides). */
export function mayOpenRw(c: Caller, n: NodeAccess): boolean {
  if (hasCap(c, CAP_DAC_OVERRIDE)) return true;
  const owner = n.uid ?? 0;
  const group = n.gid ?? 0;
  const bits = c.uid === owner ? (n.mode >> 6) & 7 : c.gid === group || c.groups.includes(group) ? (n.mode >> 3) & 7 : n.mode & 7;
  return (bits & 6) === 6;
}

/** Who the bits let open it read-write, in words. */
export function whoMayOpen(n: NodeAccess): string {
  if ((n.mode & 6) === 6) return "every user";
  const who: string[] = [];
  if (((n.mode >> 6) & 6) === 6) who.push(n.uid === null ? "its owner" : `uid ${n.uid}`);
  if (((n.mode >> 3) & 6) === 6) who.push(n.gid === null ? "its group" : `group ${n.gid}`);
  return who.length ? who.join(" and ") : "only CAP_DAC_OVERRIDE";
}

export function describeNode(n: NodeAccess): string {
  return `${n.path} is ${modeString(n.mode)} (${n.mode.toString(8).padStart(4, "0")})${n.uid !== null ? ` owner ${n.uid} group ${n.gid}` : ""}`;
}

export interface Lsm {
  /** /sys/fs/selinux/enforce: "enforcing" (1), "permissive" (0), null without SELinux */
  selinux: "enforcing" | "permissive" | null;
  /** /sys/module/apparmor/parameters/enabled is Y */
  apparmor: boolean;
}

export async function readLsm(sys: Syscalls): Promise<Lsm> {
  const read = (p: string) => readAttr(sys, p).then((s) => s.trim(), () => null);
  const [enforce, aa] = await Promise.all([read("/sys/fs/selinux/enforce"), read("/sys/module/apparmor/parameters/enabled")]);
  return { selinux: enforce === "1" ? "enforcing" : enforce === "0" ? "permissive" : null, apparmor: aa === "Y" };
}

/** Kernel log lines of SELinux ("avc:  denied") or AppArmor (apparmor="DENIED") denials naming one of `paths`. */
export async function lsmDenials(sys: Syscalls, paths: string[]): Promise<string[] | null> {
  let r: KmsgReader;
  try {
    r = await KmsgReader.open(sys, true);
  } catch {
    return null;
  }
  try {
    const recs = await r.drain();
    return recs
      .map((x) => x.text)
      .filter((t) => {
        // AppArmor names the path (name="/dev/vfio/6"); SELinux the path (path="…") or only the
        // dentry (name="6" … tclass=chr_file)
        if (/apparmor="DENIED"/.test(t)) return paths.some((p) => t.includes(`name="${p}"`));
        if (/avc:\s+denied/.test(t)) return paths.some((p) => t.includes(`path="${p}"`) || (/tclass=chr_file/.test(t) && t.includes(`name="${p.slice(p.lastIndexOf("/") + 1)}"`)));
        return false;
      });
  } catch {
    return null;
  } finally {
    await r.close();
  }
}
