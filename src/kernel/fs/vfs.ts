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
  /**
   * For an attribute whose show() can wait (a lock a blocked write holds): whether it would wait
   * now. False means show() answers at once, without a Promise, so a batch read reads it then
   * (ModelProcess.readFiles); absent, a batch leaves every read of it to a read that can be
   * timed out.
   */
  wouldBlock?: () => boolean;
}
export interface DirNode {
  t: "dir";
  list: () => string[];
  get: (name: string) => Node | undefined;
}
export interface LinkNode {
  t: "link";
  /** the link's text (what readlink returns) */
  readonly target: string;
  /**
   * For a link made by {@link sysLink}: the folder it is in and the absolute path its text
   * leads to from there, so that a lookup through it goes on at `to` without the text being
   * made (readlink makes it).
   */
  readonly from?: string;
  readonly to?: string;
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

/** A link in folder `from` to absolute path `to`, its text relative as sysfs writes links ({@link relLink}), made when read. */
class SysLink implements LinkNode {
  readonly t = "link";
  constructor(
    readonly from: string,
    readonly to: string,
  ) {}
  get target(): string {
    return relLink(this.from, this.to);
  }
}

/** The link sysfs makes in folder `from` to absolute `to` (sysfs_create_link: the text {@link relLink} gives). */
export const sysLink = (from: string, to: string): LinkNode => new SysLink(from, to);
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

/** Where a batch's lookup ended ({@link Resolved}) and how many text links it followed on the way. */
interface Walked extends Resolved {
  hops: number;
}

/**
 * The walks one batch of lookups has made (see {@link Vfs.resolve}): a path → where its walk
 * (following its last link) ended, the error it failed with, or null: left to a whole walk.
 * Good only while nothing changes in between: for lookups made one after the other in one
 * synchronous call.
 */
export type WalkedDirs = Map<string, Walked | SysErrorCode | null>;

/** An absolute path of names only: no empty, "." or ".." component, no trailing slash. */
const CLEAN_PATH = /^(?:\/(?!\.\.?(?:\/|$))[^/]+)+$/;

/**
 * The links a batch's lookup follows before it leaves the path to a whole walk (walk's own
 * limit, ELOOP, is 40: a lookup left below it fails where walk fails, never on ELOOP).
 */
const BATCH_HOPS = 8;

/**
 * The absolute path a link's text leads to from the link's folder `dir` (a walk's resolved
 * path), as walk follows it: an absolute text from the root, leading ".." climbing from `dir`
 * (not above the root), then names. Undefined for any other text ("." or ".." after a name,
 * empty components), which walk has to check name by name.
 */
function linkPath(dir: string, target: string): string | undefined {
  let base = target.startsWith("/") || dir === "/" ? "" : dir;
  let rest = target.startsWith("/") ? target.slice(1) : target;
  while (rest === ".." || rest.startsWith("../")) {
    base = base.slice(0, Math.max(0, base.lastIndexOf("/")));
    rest = rest.slice(3);
  }
  if (!rest) return base || "/";
  const to = `${base}/${rest}`;
  return CLEAN_PATH.test(to) ? to : undefined;
}

/** The path of entry `name` of the folder at `dir`. */
const childPath = (dir: string, name: string): string => (dir === "/" ? `/${name}` : `${dir}/${name}`);

export class Vfs {
  constructor(
    private readonly k: Kernel,
    private readonly root: (task: Task) => DirNode,
  ) {}

  /**
   * namei: resolve `path`; follow the last link unless `nofollow`. Throws SysErrorCode.
   *
   * With `dirs` (one batch of lookups), each folder on the way is walked once for all the
   * lookups that pass through it: a path of names only is looked up as its folder's walk (kept
   * in `dirs`) and one more name; a link followed on the way continues as the lookup of the
   * path its text leads to (linkPath), through `dirs` too. That is the walk resolve() makes
   * (the same nodes, the same errors at the same names: a folder's walk fails where the walk of
   * a path through it does); any other path, or one that follows more than BATCH_HOPS links,
   * takes the whole walk.
   */
  resolve(task: Task, path: string, nofollow = false, dirs?: WalkedDirs): Resolved {
    if (!dirs || !CLEAN_PATH.test(path)) return this.walk(task, path, nofollow);
    return this.lookup(task, path, !nofollow, dirs) ?? this.walk(task, path, nofollow);
  }

  /** A batch's lookup of a path of names only (see resolve); undefined: left to walk. */
  private lookup(task: Task, path: string, follow: boolean, dirs: WalkedDirs): Walked | undefined {
    const i = path.lastIndexOf("/");
    const dir = i === 0 ? this.rootWalk(task, dirs) : this.dirWalk(task, path.slice(0, i), dirs);
    return dir && this.step(task, dir, path.slice(i + 1), follow, dirs);
  }

  private rootWalk(task: Task, dirs: WalkedDirs): Walked {
    let w = dirs.get("/");
    if (!w) dirs.set("/", (w = { node: this.root(task), path: "/", hops: 0 }));
    return w as Walked;
  }

  /** The walk of folder path `at`, made once per batch: kept in `dirs`, with its error or its fallback. */
  private dirWalk(task: Task, at: string, dirs: WalkedDirs): Walked | undefined {
    let w = dirs.get(at);
    if (w === undefined) {
      try {
        w = this.lookup(task, at, true, dirs) ?? null;
      } catch (e) {
        if (!(e instanceof SysErrorCode)) throw e;
        w = e;
      }
      dirs.set(at, w);
    }
    if (w instanceof SysErrorCode) throw new SysErrorCode(w.errno);
    return w ?? undefined;
  }

  /** One name looked up in a walked folder, as walk takes it (a link followed when `follow`). */
  private step(task: Task, dir: Walked, name: string, follow: boolean, dirs: WalkedDirs): Walked | undefined {
    if (dir.node.t !== "dir") throw new SysErrorCode(ERRNO.ENOTDIR);
    const next = dir.node.get(name);
    if (!next) throw new SysErrorCode(ERRNO.ENOENT);
    if (next.t !== "link" || !follow) return { node: next, path: childPath(dir.path, name), hops: dir.hops };
    if (next.jump) {
      const to = next.jump();
      if (!to) throw new SysErrorCode(ERRNO.ENOENT);
      return { node: to, path: childPath(dir.path, name), hops: dir.hops };
    }
    const hops = dir.hops + 1;
    // a link that knows where its text leads from its own folder goes on there (the same path
    // linkPath gives for that text)
    const to = hops > BATCH_HOPS ? undefined : next.from === dir.path && next.to !== undefined && CLEAN_PATH.test(next.to) ? next.to : linkPath(dir.path, next.target);
    if (to === undefined) return undefined;
    const end = to === "/" ? this.rootWalk(task, dirs) : this.lookup(task, to, true, dirs);
    if (!end || end.hops + hops > BATCH_HOPS) return undefined;
    return { node: end.node, path: end.path, hops: end.hops + hops };
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
        const text = next.target;
        comps = [...text.split("/").filter(Boolean), ...rest];
        i = -1;
        // an absolute target starts again at the root; a relative one goes on from the link's
        // own directory (namei's walk of the link body): its ".." steps climb the directories
        // already walked, so the names before the link are not looked up a second time
        if (text.startsWith("/")) {
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
