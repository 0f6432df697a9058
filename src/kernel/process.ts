/**
 * A process of the model: its own fd table, answering the syscalls seam. Ending a process
 * (exit) closes every fd, which is how the kernel releases vfio devices of a killed program.
 */
import { ERRNO, SysError, errnoName } from "../sys/errno.js";
import { O_ACCMODE, O_RDONLY, O_RDWR, O_WRONLY, type Stat, type Syscalls } from "../sys/syscalls.js";
import { readCannotBlock } from "../sys/blocking.js";
import { readToEnd } from "../sys/fsutil.js";
import { EventFdFile } from "./eventfd.js";
import { SysErrorCode } from "./errors.js";
import type { OpenFile } from "./fs/file.js";
import { getFile, putFile } from "./fs/file.js";
import { SysfsFile } from "./fs/sysfs.js";
import type { Node } from "./fs/vfs.js";
import type { Kernel, Task } from "./kernel.js";

/**
 * Where a model process runs (model-only; Linux sets these with chroot(2), mount namespaces and
 * cgroups). The model has one file tree: a chroot or a container sees the same /dev, /sys and
 * /proc (as if bind-mounted in), and only what other processes read in /proc about it changes.
 */
export interface SpawnOptions {
  /**
   * chroot(2) into this directory (as the initial namespace names it): the process opens
   * "/dev/vfio/7" and /proc/PID/fd shows "<root>/dev/vfio/7"; /proc/PID/root links to it.
   */
  root?: string;
  /**
   * Its own mount namespace (a container): paths it opens are looked up through this map first
   * (its path → the host's, exact or a directory prefix), /proc/PID/fd shows its own paths, and
   * /proc/PID/ns/mnt differs from the host's.
   */
  mounts?: Record<string, string>;
  /** the cgroup v2 path /proc/PID/cgroup shows ("0::<path>"); default "/" */
  cgroup?: string;
  /**
   * Draw fd numbers from this number space, shared with the other processes given the same one
   * (model-only). Each process still owns its fds (another one's number is EBADF to it); only
   * the numbers come from one table, lowest free first. This is how the lab's guests run a
   * scenario: every scenario process is a set of fds of the one node process.
   */
  fdNumbers?: FdNumberSpace;
}

/** fd numbers shared by several model processes (see {@link SpawnOptions.fdNumbers}). */
export class FdNumberSpace {
  readonly used = new Set<number>();
  /** every number below this one is in use (files->next_fd) */
  next: number;
  /** `first`: the lowest number handed out (3: 0–2 are the standard streams) */
  constructor(first = 3) {
    this.next = first;
  }
}

/** include/uapi/asm-generic/ioctls.h: set / clear close-on-exec */
const FIONCLEX = 0x5450;
const FIOCLEX = 0x5451;

/** The initial mount namespace's inode number (what /proc/1/ns/mnt shows on Linux: mnt:[4026531841]). */
export const INIT_MNT_NS = 4026531841;
let nextMntNs = INIT_MNT_NS + 1;

export class ModelProcess implements Syscalls {
  readonly backend = "model" as const;
  private fds = new Map<number, OpenFile>();
  exited = false;
  /** model time (ns since boot) when the process was spawned: /proc/<pid>/stat starttime */
  readonly startNs: bigint;

  readonly root: string;
  readonly mounts: ReadonlyMap<string, string>;
  readonly cgroup: string;
  /** the mount namespace's inode number (/proc/PID/ns/mnt) */
  readonly mntNs: number;
  /** fd → the text /proc/PID/fd/N shows when it is not the file's own (chroot, container) */
  private readonly fdText = new Map<number, string>();
  /** fd → the inode it was opened on (stat through /proc/PID/fd/N) */
  private readonly fdInode = new Map<number, Node>();

  constructor(
    private readonly k: Kernel,
    readonly pid: number,
    readonly comm: string,
    opts: SpawnOptions = {},
  ) {
    this.startNs = k.clock.now();
    this.root = opts.root && opts.root !== "/" ? opts.root.replace(/\/+$/, "") : "/";
    this.mounts = new Map(Object.entries(opts.mounts ?? {}).map(([a, b]) => [a.replace(/\/+$/, ""), b.replace(/\/+$/, "")]));
    this.cgroup = opts.cgroup ?? "/";
    this.mntNs = this.mounts.size ? nextMntNs++ : INIT_MNT_NS;
    this.space = opts.fdNumbers;
  }

  /** The model path a path this process uses stands for (its container mounts applied). */
  private lookupPath(path: string): string {
    for (const [inside, host] of this.mounts) {
      if (path === inside) return host;
      if (path.startsWith(inside + "/")) return host + path.slice(inside.length);
    }
    return path;
  }

  /** What readlink(/proc/PID/fd/N) returns. */
  fdLink(fd: number): string | undefined {
    return this.fdText.get(fd) ?? this.fds.get(fd)?.procLink;
  }

  /** The inode behind fd N (an anonymous inode for files not opened by path). */
  fdNode(fd: number): Node | undefined {
    if (!this.fds.has(fd)) return undefined;
    return this.fdInode.get(fd) ?? { t: "anon" };
  }

  fileOf(fd: number): OpenFile | undefined {
    return this.fds.get(fd);
  }
  fdNumbers(): number[] {
    return [...this.fds.keys()].sort((a, b) => a - b);
  }
  /**
   * fs/file.c alloc_fd: every number below `nextFd` is in use (files->next_fd), so the search
   * for the lowest free number starts there instead of at 3 — opening n files is O(n), not O(n²).
   */
  private nextFd = 3;
  /** the shared number space, when spawned with one */
  private readonly space: FdNumberSpace | undefined;

  /** fd_install at the lowest free number ≥ 3 (0–2 are the standard streams). */
  installFd(f: OpenFile): number {
    const sp = this.space;
    let fd = sp ? sp.next : this.nextFd;
    while (sp ? sp.used.has(fd) : this.fds.has(fd)) fd++;
    this.fds.set(fd, getFile(f));
    if (sp) {
      sp.used.add(fd);
      sp.next = fd + 1;
    } else this.nextFd = fd + 1;
    return fd;
  }

  /** __put_unused_fd: a freed number below the hint becomes the new hint. */
  private freeFd(fd: number): void {
    this.fds.delete(fd);
    this.fdText.delete(fd);
    this.fdInode.delete(fd);
    const sp = this.space;
    if (sp) {
      sp.used.delete(fd);
      if (fd < sp.next) sp.next = fd;
    } else if (fd < this.nextFd) this.nextFd = fd;
  }

  private async run<T>(syscall: string, path: string | undefined, fn: (task: Task) => Promise<T> | T): Promise<T> {
    if (this.exited) throw new SysError("ESRCH", syscall, path, "process has exited");
    const task = this.k.beginTask(this, syscall, path);
    try {
      // model-only fault injection: the call fails before it runs, so it changes nothing
      const injected = this.k.faults.take(syscall, path);
      if (injected !== undefined) throw new SysErrorCode(injected);
      const r = await fn(task);
      if (typeof r === "number" && r < 0) throw new SysErrorCode(-r);
      return r;
    } catch (e) {
      if (e instanceof SysErrorCode) throw stackless(() => new SysError(errnoName(e.errno), syscall, path));
      throw e;
    } finally {
      this.k.endTask(task);
    }
  }

  private file(fd: number): OpenFile {
    const f = this.fds.get(fd);
    if (!f) throw new SysErrorCode(ERRNO.EBADF);
    return f;
  }

  open(path: string, flags: number): Promise<number> {
    return this.run("open", path, (task) => this.openIn(task, path, flags));
  }

  /**
   * A whole small file in one call (Syscalls.readFile), for a file whose read cannot block
   * (src/sys/blocking.ts, the rule the real backend follows): the same open, reads and close
   * as three calls would make, with the same fd taken and given back and the same errors (a
   * failed read is the read's error), in one task instead of three. Undefined otherwise.
   */
  readFile(path: string, wholeIfShort: boolean): Promise<Buffer> | undefined {
    if (this.exited || !readCannotBlock(path)) return undefined;
    return this.run("open", path, async (task) => {
      const fd = this.openIn(task, path, O_RDONLY);
      const f = this.fds.get(fd)!;
      try {
        const read = f.read?.bind(f);
        if (!read) throw new SysErrorCode(ERRNO.EINVAL);
        return await readToEnd(async (n) => read(task, n), wholeIfShort);
      } catch (e) {
        if (e instanceof SysErrorCode) throw stackless(() => new SysError(errnoName(e.errno), "read", undefined));
        throw e;
      } finally {
        this.freeFd(fd);
        putFile(task, f);
      }
    });
  }

  private openIn(task: Task, path: string, flags: number): number {
    const { node } = this.k.vfs.resolve(task, this.lookupPath(path));
    const acc = flags & O_ACCMODE;
    const wantW = acc === O_WRONLY || acc === O_RDWR;
    const wantR = acc !== O_WRONLY;
    let f: OpenFile;
    switch (node.t) {
      case "dir":
        if (wantW) throw new SysErrorCode(ERRNO.EISDIR);
        f = { procLink: path, flags, refs: 0, read: async () => { throw new SysErrorCode(ERRNO.EISDIR); } };
        break;
      case "attr":
        if ((wantW && !node.store) || (wantR && !node.show)) throw new SysErrorCode(ERRNO.EACCES);
        f = new SysfsFile(path, flags, node);
        break;
      case "char": {
        const r = node.open(task, flags);
        if (typeof r === "number") throw new SysErrorCode(-r);
        f = r;
        break;
      }
      default:
        throw new SysErrorCode(ERRNO.ELOOP);
    }
    const fd = this.installFd(f);
    this.fdInode.set(fd, node);
    // d_path from the reader's root: a chroot's files under its directory, a container's by its own paths
    if (this.root !== "/" && path.startsWith("/")) this.fdText.set(fd, this.root + path);
    else if (this.mounts.size && f.procLink.startsWith("/")) this.fdText.set(fd, path);
    return fd;
  }

  close(fd: number): Promise<void> {
    return this.run("close", undefined, (task) => {
      const f = this.file(fd);
      this.freeFd(fd);
      putFile(task, f);
    });
  }

  read(fd: number, length: number): Promise<Buffer> {
    return this.run("read", undefined, async (task) => {
      const f = this.file(fd);
      if ((f.flags & O_ACCMODE) === O_WRONLY) throw new SysErrorCode(ERRNO.EBADF);
      if (!f.read) throw new SysErrorCode(ERRNO.EINVAL);
      return f.read(task, length);
    });
  }

  write(fd: number, data: Buffer | string): Promise<number> {
    const f0 = this.fds.get(fd);
    return this.run("write", f0?.procLink, async (task) => {
      const f = this.file(fd);
      if ((f.flags & O_ACCMODE) === 0) throw new SysErrorCode(ERRNO.EBADF);
      if (!f.write) throw new SysErrorCode(ERRNO.EINVAL);
      return f.write(task, typeof data === "string" ? Buffer.from(data, "latin1") : data);
    });
  }

  lseek(fd: number, offset: number, whence: number): Promise<number> {
    return this.run("lseek", undefined, () => {
      const f = this.file(fd);
      if (!f.lseek) throw new SysErrorCode(ERRNO.ESPIPE);
      return f.lseek(offset, whence);
    });
  }

  ioctl(fd: number, request: number, arg?: Buffer | number): Promise<number> {
    return this.run("ioctl", this.fds.get(fd)?.procLink, async (task) => {
      const f = this.file(fd);
      // fs/ioctl.c do_vfs_ioctl answers these for every file before its own ioctl (the lab's
      // 6.1, 6.12 and 7.3 kernels: 0 on vfio container, group, device and cdev fds, where an
      // unknown number is ENOTTY or EINVAL); the model has no exec, so close-on-exec is not kept
      if (request >>> 0 === FIOCLEX || request >>> 0 === FIONCLEX) return 0;
      if (!f.ioctl) throw new SysErrorCode(ERRNO.ENOTTY);
      return f.ioctl(task, this, request >>> 0, arg);
    });
  }

  eventfd(initval: number, flags: number): Promise<number> {
    return this.run("eventfd", undefined, () => this.installFd(new EventFdFile(initval, flags | O_RDWR)));
  }

  readlink(path: string): Promise<string> {
    return this.run("readlink", path, (task) => {
      const { node } = this.k.vfs.resolve(task, this.lookupPath(path), true);
      if (node.t !== "link") throw new SysErrorCode(ERRNO.EINVAL);
      return node.target;
    });
  }

  readdir(path: string): Promise<string[]> {
    return this.run("readdir", path, (task) => {
      const { node } = this.k.vfs.resolve(task, this.lookupPath(path));
      if (node.t !== "dir") throw new SysErrorCode(ERRNO.ENOTDIR);
      return node.list();
    });
  }

  stat(path: string): Promise<Stat> {
    return this.run("stat", path, (task) => this.k.vfs.stat(task, this.lookupPath(path), false));
  }

  lstat(path: string): Promise<Stat> {
    return this.run("lstat", path, (task) => this.k.vfs.stat(task, this.lookupPath(path), true));
  }

  /** do_exit: close every fd (files whose last reference goes run their release). */
  async exit(): Promise<void> {
    if (this.exited) return;
    const task = this.k.beginTask(this, "exit", undefined);
    try {
      for (const fd of [...this.fds.keys()].sort((a, b) => b - a)) {
        const f = this.fds.get(fd)!;
        this.freeFd(fd);
        putFile(task, f);
      }
    } finally {
      this.k.endTask(task);
    }
    this.exited = true;
    this.k.reap(this);
  }
}

/** A SysError built without a stack trace: the model's failing calls are answers (ENOENT …), not bugs. */
function stackless(make: () => SysError): SysError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
