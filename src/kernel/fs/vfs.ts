/**
 * The model's file system: /sys (bus/pci, devices, kernel/iommu_groups, module), /dev (vfio,
 * kmsg) and /proc (/proc/<pid>/{fd,comm,stat}, /proc/stat, /proc/uptime). Nodes are computed
 * from kernel state on lookup, so what userspace reads is always what the model holds.
 * Symbolic links resolve like namei.
 */
import { ERRNO } from "../../sys/errno.js";
import type { FileKind, Stat } from "../../sys/syscalls.js";
import { SysErrorCode } from "../errors.js";
import type { Kernel, Task } from "../kernel.js";
import type { OpenFile } from "./file.js";

export interface AttrNode {
  t: "attr";
  mode: number;
  show?: (task: Task) => string | Promise<string>;
  /** sysfs store: gets the written bytes (count ≤ PAGE_SIZE); returns count or −errno */
  store?: (task: Task, buf: Buffer, count: number) => number | Promise<number>;
}
export interface DirNode {
  t: "dir";
  list: () => string[];
  get: (name: string) => Node | undefined;
}
export interface LinkNode {
  t: "link";
  target: string;
  /**
   * A /proc "magic link" (/proc/PID/fd/N, /proc/PID/root): following it goes to this node
   * (proc_fd_link → nd_jump_link), not to a lookup of the link's text, which names the file as
   * the process opened it (a chroot's path, a path in another mount namespace).
   */
  jump?: () => Node | undefined;
}
export interface CharNode {
  t: "char";
  mode: number;
  /** st_rdev (src/sys/devnum.ts encoding); 0 when the model gives the node no number */
  rdev?: number;
  open: (task: Task, flags: number) => OpenFile | number;
}
/** An anonymous inode (anon_inode:[vfio-device], [eventfd]): stat gives no file type, mode 0600. */
export interface AnonNode {
  t: "anon";
}
export type Node = AttrNode | DirNode | LinkNode | CharNode | AnonNode;

export function staticDir(entries: Record<string, Node>): DirNode {
  return { t: "dir", list: () => Object.keys(entries), get: (n) => (Object.hasOwn(entries, n) ? entries[n] : undefined) };
}

/**
 * A directory of fixed names whose nodes are made only when looked up: a lookup that passes
 * through it (every /sys path passes through /sys) builds one child, not all of them.
 */
export function thunkDir(entries: Record<string, () => Node | undefined>): DirNode {
  return { t: "dir", list: () => Object.keys(entries), get: (n) => (Object.hasOwn(entries, n) ? entries[n]!() : undefined) };
}

/** A directory whose entries are computed by two functions (fast for large listings). */
export function lazyDir(list: () => string[], get: (name: string) => Node | undefined): DirNode {
  return { t: "dir", list, get };
}

export const link = (target: string): LinkNode => ({ t: "link", target });
export const ro = (show: (task: Task) => string | Promise<string>): AttrNode => ({ t: "attr", mode: 0o444, show });
export const rw = (
  show: (task: Task) => string | Promise<string>,
  store: (task: Task, buf: Buffer, count: number) => number | Promise<number>,
  mode = 0o644,
): AttrNode => ({ t: "attr", mode, show, store });
export const wo = (store: (task: Task, buf: Buffer, count: number) => number | Promise<number>): AttrNode => ({ t: "attr", mode: 0o200, store });

/** Relative link target from directory `fromDir` to absolute `to` (as sysfs writes links). */
export function relLink(fromDir: string, to: string): string {
  // the model's own paths (absolute, no empty component, no trailing slash): one scan, no arrays
  if (fromDir.startsWith("/") && to.startsWith("/") && !fromDir.includes("//") && !to.includes("//") && !fromDir.endsWith("/") && !to.endsWith("/")) {
    const n = Math.min(fromDir.length, to.length);
    let i = 0;
    let common = 0; // length of the longest shared run of whole components ("/sys/bus")
    while (i < n && fromDir.charCodeAt(i) === to.charCodeAt(i)) {
      if (fromDir.charCodeAt(i) === 47) common = i;
      i++;
    }
    if (i === n && (fromDir.length === to.length || (fromDir.length < to.length ? to.charCodeAt(i) === 47 : fromDir.charCodeAt(i) === 47))) common = i;
    let ups = 0;
    for (let j = common; j < fromDir.length; j++) if (fromDir.charCodeAt(j) === 47) ups++;
    const tail = to.slice(common + 1);
    const up = ups ? "../".repeat(ups) : "";
    const r = tail ? up + tail : up.slice(0, -1);
    return r || ".";
  }
  return relLinkOf(fromDir, to);
}

function relLinkOf(fromDir: string, to: string): string {
  const a = fromDir.split("/").filter(Boolean);
  const b = to.split("/").filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...Array(a.length - i).fill(".."), ...b.slice(i)].join("/") || ".";
}

export interface Resolved {
  node: Node;
  path: string;
}

/**
 * The directories one batch of lookups has walked (see {@link Vfs.resolve}): a directory's path
 * as the lookups name it → where its walk ended, or the error it failed with. Good only while
 * nothing changes in between: for lookups made one after the other in one synchronous call.
 */
export type WalkedDirs = Map<string, Resolved | SysErrorCode>;

export class Vfs {
  constructor(
    private readonly k: Kernel,
    private readonly root: (task: Task) => DirNode,
  ) {}

  /**
   * namei: resolve `path`; follow the last link unless `nofollow`. Throws SysErrorCode. With
   * `dirs`, the directory the last name is looked up in is walked once for all the lookups
   * sharing it (the walk to it is the one resolve(dir) makes: the same nodes, links followed and
   * errors; a last name that is a link to follow takes the whole walk again).
   */
  resolve(task: Task, path: string, nofollow = false, dirs?: WalkedDirs): Resolved {
    return dirs ? this.resolveIn(task, path, nofollow, dirs) : this.walk(task, path, nofollow);
  }

  private resolveIn(task: Task, path: string, nofollow: boolean, dirs: WalkedDirs): Resolved {
    const i = path.lastIndexOf("/");
    const name = path.slice(i + 1);
    if (i <= 0 || name === "" || name === "." || name === "..") return this.walk(task, path, nofollow);
    const at = path.slice(0, i);
    let dir = dirs.get(at);
    if (dir === undefined) {
      try {
        dir = this.walk(task, at, false);
      } catch (e) {
        if (!(e instanceof SysErrorCode)) throw e;
        dir = e;
      }
      dirs.set(at, dir);
    }
    if (dir instanceof SysErrorCode) throw new SysErrorCode(dir.errno);
    if (dir.node.t !== "dir") throw new SysErrorCode(ERRNO.ENOTDIR);
    const next = dir.node.get(name);
    if (!next) throw new SysErrorCode(ERRNO.ENOENT);
    if (next.t === "link" && !nofollow) return this.walk(task, path, nofollow);
    return { node: next, path: dir.path === "/" ? `/${name}` : `${dir.path}/${name}` };
  }

  private walk(task: Task, path: string, nofollow: boolean): Resolved {
    if (!path.startsWith("/")) throw new SysErrorCode(ERRNO.ENOENT);
    let comps = path.split("/").filter((c) => c.length > 0);
    let cur: Node = this.root(task);
    let curPath: string[] = [];
    let hops = 0;
    const stack: Node[] = [cur];
    for (let i = 0; i < comps.length; i++) {
      const c = comps[i]!;
      if (c === ".") continue;
      if (c === "..") {
        if (curPath.length) {
          curPath.pop();
          stack.pop();
          cur = stack[stack.length - 1]!;
        }
        continue;
      }
      if (cur.t !== "dir") throw new SysErrorCode(ERRNO.ENOTDIR);
      const next = cur.get(c);
      if (!next) throw new SysErrorCode(ERRNO.ENOENT);
      const last = i === comps.length - 1;
      if (next.t === "link" && next.jump && (!last || !nofollow)) {
        const to = next.jump();
        if (!to) throw new SysErrorCode(ERRNO.ENOENT);
        cur = to;
        curPath.push(c);
        stack.push(cur);
        continue;
      }
      if (next.t === "link" && (!last || !nofollow)) {
        if (++hops > 40) throw new SysErrorCode(ERRNO.ELOOP);
        const rest = comps.slice(i + 1);
        comps = [...next.target.split("/").filter(Boolean), ...rest];
        i = -1;
        // an absolute target starts again at the root; a relative one goes on from the link's
        // own directory (namei's walk of the link body): its ".." steps climb the directories
        // already walked, so the names before the link are not looked up a second time
        if (next.target.startsWith("/")) {
          cur = this.root(task);
          curPath = [];
          stack.length = 0;
          stack.push(cur);
        }
        continue;
      }
      cur = next;
      curPath.push(c);
      stack.push(cur);
    }
    return { node: cur, path: "/" + curPath.join("/") };
  }

  stat(task: Task, path: string, nofollow: boolean, dirs?: WalkedDirs): Stat {
    const { node } = this.resolve(task, path, nofollow, dirs);
    const kind: FileKind = node.t === "attr" || node.t === "anon" ? "file" : node.t;
    const mode = node.t === "attr" || node.t === "char" ? node.mode : node.t === "dir" ? 0o755 : node.t === "anon" ? 0o600 : 0o777;
    // every file of the model is root's, as sysfs, /proc and a default /dev are
    return { kind, mode, size: node.t === "attr" ? 4096 : 0, rdev: node.t === "char" ? (node.rdev ?? 0) : 0, uid: 0, gid: 0 };
  }
}
