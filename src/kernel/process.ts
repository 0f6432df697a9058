/**
 * A process of the model: its own fd table, answering the syscalls seam. Ending a process
 * (exit) closes every fd, which is how the kernel releases vfio devices of a killed program.
 */
import { ERRNO, SysError, errnoName } from "../sys/errno.js";
import { O_ACCMODE, O_RDONLY, O_RDWR, O_WRONLY, type FileRead, type ReadFilesOptions, type Stat, type Syscalls } from "../sys/syscalls.js";
import { readCannotBlock } from "../sys/blocking.js";
import { readToEnd } from "../sys/fsutil.js";
import { EventFdFile } from "./eventfd.js";
import { SysErrorCode } from "./errors.js";
import type { OpenFile } from "./fs/file.js";
import { getFile, putFile } from "./fs/file.js";
import { SysfsFile } from "./fs/sysfs.js";
import type { Node, WalkedDirs } from "./fs/vfs.js";
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

/**
 * How many reads that can block one readFiles call makes at once (the others' files are open,
 * their reads queued until one of these has its answer or its timeout): as many as inventory's
 * one-by-one reads have in flight (READ_AHEAD).
 */
const READS_IN_FLIGHT = 32;

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
    if (this.mounts.size === 0) return path;
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
    if (this.exited) throw exitedError(syscall, path);
    const task = this.k.beginTask(this, syscall, path);
    try {
      this.injectFault(syscall, path);
      return returned(await fn(task));
    } catch (e) {
      throw failure(e, syscall, path);
    } finally {
      this.k.endTask(task);
    }
  }

  /**
   * {@link run} for a call whose work never waits (the batch calls' readlink, lstat, readdir,
   * readFiles' opens): the same checks, task and fault, its answer or its SysError given back
   * without a Promise. (An open made so is open(2) but for its Promise: run makes the call
   * itself synchronously too, before its first await.)
   */
  private runNow<T>(syscall: string, path: string, fn: (task: Task) => T): T | SysError {
    if (this.exited) return exitedError(syscall, path);
    const task = this.k.beginTask(this, syscall, path);
    try {
      this.injectFault(syscall, path);
      return returned(fn(task));
    } catch (e) {
      return answer(failure(e, syscall, path));
    } finally {
      this.k.endTask(task);
    }
  }

  /** model-only fault injection: the call fails before it runs, so it changes nothing */
  private injectFault(syscall: string, path: string | undefined): void {
    const injected = this.k.faults.take(syscall, path);
    if (injected !== undefined) throw new SysErrorCode(injected);
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
    return this.run("open", path, (task) => this.readOpened(task, path, (f) => readToEnd(readsOf(task, f), wholeIfShort)));
  }

  /**
   * The open (in `task`), the reads `reads` makes on the open file and the close of a one-call
   * read: the open's error is thrown as its SysErrorCode (for the caller to name as the open's),
   * a read's as the read's SysError; the fd is given back once the reads are done. Without a
   * Promise when `reads` answers without one.
   */
  private readOpened(task: Task, path: string, reads: (f: OpenFile) => Buffer | Promise<Buffer>, dirs?: WalkedDirs): Buffer | Promise<Buffer> {
    const fd = this.openIn(task, path, O_RDONLY, dirs);
    const f = this.fds.get(fd)!;
    const close = () => {
      this.freeFd(fd);
      putFile(task, f);
    };
    let r: Buffer | Promise<Buffer>;
    try {
      r = reads(f);
    } catch (e) {
      close();
      throw failure(e, "read", undefined);
    }
    if (!(r instanceof Promise)) {
      close();
      return r;
    }
    return r.then(
      (b) => {
        close();
        return b;
      },
      (e: unknown) => {
        close();
        throw failure(e, "read", undefined);
      },
    );
  }

  /**
   * Syscalls.readFiles: each path read with the open, read(s) and close its one-by-one read
   * makes, the answers in the order of `paths`. A file whose read cannot block
   * (src/sys/blocking.ts) is read as {@link readFile} reads it, in one task; an attribute whose
   * show() answers at once (nearly all of them) is answered then, without a Promise. The others
   * (`driver_override`, `sriov_numvfs` … behind a device lock, /proc, /dev) are opened as
   * open(2) opens them (runNow: the call's checks, task and fault, without its Promise) and then
   * read and closed by the separate read and close calls fsutil makes, so that a task that
   * blocks is the same blocked read(2) the one-by-one reads show in blocked(); a read still
   * pending `timeoutMs` after it started is answered null, its fd given back when it returns.
   * The opens are made in the order of `paths`, in the call (with the folders the paths share
   * walked once: Vfs.resolve with WalkedDirs); the reads that can block READS_IN_FLIGHT at a time.
   */
  readonly readFiles = (paths: readonly string[], opts: ReadFilesOptions): Promise<FileRead[]> => {
    const out = new Array<FileRead | undefined>(paths.length);
    const now: Promise<unknown>[] = [];
    /** the reads that can block: path index and the fd its open took */
    const opened: [number, number][] = [];
    const dirs: WalkedDirs = new Map();
    // with a fault rule set, every read that can block is made by the separate calls (each one's faults as one by one)
    const faultless = this.k.faults.list().length === 0;
    try {
      for (let i = 0; i < paths.length; i++) {
        const path = paths[i]!;
        if (!readCannotBlock(path)) {
          const fd = this.runNow("open", path, (task) => this.openIn(task, path, O_RDONLY, dirs));
          if (fd instanceof SysError) out[i] = fd;
          else if (faultless && this.readsNow(fd)) {
            const r = this.readAndCloseNow(fd);
            if (r instanceof Promise) now.push(bounded(r, opts.timeoutMs).then((v) => (out[i] = v)));
            else out[i] = r;
          }
          else opened.push([i, fd]);
          continue;
        }
        const r = this.readNow(path, opts.wholeIfShort, dirs);
        if (r instanceof Promise) now.push(r.then((v) => (out[i] = v)));
        else out[i] = r;
      }
    } catch (e) {
      return Promise.reject(e);
    }
    // what the loop walked is good only within it: not kept while the reads that can block wait
    dirs.clear();
    if (!now.length && !opened.length) return Promise.resolve(out as FileRead[]);
    // the reads that can block, READS_IN_FLIGHT at a time as inventory's one-by-one reads are
    // made, each answered null when still pending opts.timeoutMs after it started
    let next = 0;
    const reader = async () => {
      while (next < opened.length) {
        const [i, fd] = opened[next++]!;
        out[i] = await bounded(this.readAndClose(fd, opts.wholeIfShort).catch(answer), opts.timeoutMs);
      }
    };
    const reads = Array.from({ length: Math.min(READS_IN_FLIGHT, opened.length) }, reader);
    return Promise.all([...now, ...reads]).then(() => out as FileRead[]);
  };

  /** One path of {@link readFiles} whose read cannot block: its answer, without a Promise when its show() answers at once. */
  private readNow(path: string, wholeIfShort: boolean, dirs: WalkedDirs): FileRead | Promise<FileRead> {
    if (this.exited) return exitedError("open", path);
    const task = this.k.beginTask(this, "open", path);
    let r: Buffer | Promise<Buffer>;
    try {
      this.injectFault("open", path);
      r = this.readOpened(task, path, (f) => (f instanceof SysfsFile ? f.contents(task) : readToEnd(readsOf(task, f), wholeIfShort)), dirs);
    } catch (e) {
      this.k.endTask(task);
      return answer(failure(e, "open", path));
    }
    if (!(r instanceof Promise)) {
      this.k.endTask(task);
      return r;
    }
    return r.then(
      (b) => {
        this.k.endTask(task);
        return b;
      },
      (e: unknown) => {
        this.k.endTask(task);
        return answer(failure(e, "open", path));
      },
    );
  }

  /** Whether the file open at `fd` is an attribute whose show() would not wait now (SysfsFile.readsNow). */
  private readsNow(fd: number): boolean {
    const f = this.fds.get(fd);
    return f instanceof SysfsFile && (f.flags & O_ACCMODE) !== O_WRONLY && f.readsNow();
  }

  /**
   * The read and the close after the open of a read that can block, made at once because its
   * show() would not wait ({@link readsNow}): the read in its own task (read(2)'s, as the
   * separate call's), its bytes or its error as the read's, and the fd given back, without a
   * Promise. That is the one-by-one read that found the lock free; a show() that waits after
   * all (readsNow was wrong) is waited for as the separate read would be, the fd given back
   * when it returns.
   */
  private readAndCloseNow(fd: number): FileRead | Promise<FileRead> {
    const f = this.fds.get(fd) as SysfsFile;
    const task = this.k.beginTask(this, "read", undefined);
    const done = () => {
      this.k.endTask(task);
      this.freeFd(fd);
      putFile(task, f);
    };
    let r: Buffer | Promise<Buffer>;
    try {
      r = f.contents(task);
    } catch (e) {
      done();
      return answer(failure(e, "read", undefined));
    }
    if (!(r instanceof Promise)) {
      done();
      return r;
    }
    return r.then(
      (b) => (done(), b),
      (e: unknown) => (done(), answer(failure(e, "read", undefined))),
    );
  }

  /** The reads and the close that follow the open of a read that can block, as fsutil's one-by-one read makes them. */
  private async readAndClose(fd: number, wholeIfShort: boolean): Promise<Buffer> {
    try {
      return await readToEnd((n) => this.read(fd, n), wholeIfShort);
    } finally {
      await this.close(fd);
    }
  }

  private openIn(task: Task, path: string, flags: number, dirs?: WalkedDirs): number {
    const { node } = this.k.vfs.resolve(task, this.lookupPath(path), false, dirs);
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
    return this.run("readlink", path, (task) => this.linkTarget(task, path));
  }

  readdir(path: string): Promise<string[]> {
    return this.run("readdir", path, (task) => this.entries(task, path));
  }

  stat(path: string): Promise<Stat> {
    return this.run("stat", path, (task) => this.k.vfs.stat(task, this.lookupPath(path), false));
  }

  lstat(path: string): Promise<Stat> {
    return this.run("lstat", path, (task) => this.k.vfs.stat(task, this.lookupPath(path), true));
  }

  /**
   * Syscalls.readlinks: each path's readlink(2), made at once (none waits), the folders the
   * paths share walked once for all of them.
   */
  readonly readlinks = (paths: readonly string[]): Promise<(string | SysError)[]> => {
    const dirs: WalkedDirs = new Map();
    return this.batch(() => paths.map((p) => this.runNow("readlink", p, (task) => this.linkTarget(task, p, dirs))));
  };

  /** Syscalls.lstats: each path's lstat(2), made at once as {@link readlinks} are. */
  readonly lstats = (paths: readonly string[]): Promise<(Stat | SysError)[]> => {
    const dirs: WalkedDirs = new Map();
    return this.batch(() => paths.map((p) => this.runNow("lstat", p, (task) => this.k.vfs.stat(task, this.lookupPath(p), true, dirs))));
  };

  /** stat(2) of many paths at once, per path as `stat` answers it, made at once as {@link readlinks} are. */
  readonly stats = (paths: readonly string[]): Promise<(Stat | SysError)[]> => {
    const dirs: WalkedDirs = new Map();
    return this.batch(() => paths.map((p) => this.runNow("stat", p, (task) => this.k.vfs.stat(task, this.lookupPath(p), false, dirs))));
  };

  /** Syscalls.readdirs: each path's entries, made at once as {@link readlinks} are. */
  readonly readdirs = (paths: readonly string[]): Promise<(string[] | SysError)[]> => {
    const dirs: WalkedDirs = new Map();
    return this.batch(() => paths.map((p) => this.runNow("readdir", p, (task) => this.entries(task, p, dirs))));
  };

  /** A batch call's answers as a Promise (rejected with what a bug in the model threw). */
  private batch<T>(answers: () => T): Promise<T> {
    try {
      return Promise.resolve(answers());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private linkTarget(task: Task, path: string, dirs?: WalkedDirs): string {
    const { node } = this.k.vfs.resolve(task, this.lookupPath(path), true, dirs);
    if (node.t !== "link") throw new SysErrorCode(ERRNO.EINVAL);
    return node.target;
  }

  private entries(task: Task, path: string, dirs?: WalkedDirs): string[] {
    const { node } = this.k.vfs.resolve(task, this.lookupPath(path), false, dirs);
    if (node.t !== "dir") throw new SysErrorCode(ERRNO.ENOTDIR);
    return node.list();
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

/** What a call on an exited process fails with. */
const exitedError = (syscall: string, path: string | undefined): SysError => new SysError("ESRCH", syscall, path, "process has exited");

/** A call's answer of -errno as its SysErrorCode. */
function returned<T>(r: T): T {
  if (typeof r === "number" && r < 0) throw new SysErrorCode(-r);
  return r;
}

/** What a failed call throws: the model's errno as the call's SysError, anything else as it is. */
function failure(e: unknown, syscall: string, path: string | undefined): unknown {
  return e instanceof SysErrorCode ? stackless(() => new SysError(errnoName(e.errno), syscall, path)) : e;
}

/** A batch call's answer for a path whose call failed: its SysError (anything else is a bug, thrown on). */
function answer(e: unknown): SysError {
  if (e instanceof SysError) return e;
  throw e;
}

/** readToEnd's reads of an open file (EINVAL for a file without read, as read(2) answers). */
function readsOf(task: Task, f: OpenFile): (length: number) => Promise<Buffer> {
  const read = f.read?.bind(f);
  if (!read) throw new SysErrorCode(ERRNO.EINVAL);
  return async (n) => read(task, n);
}

/**
 * A read's answer, or null when it is still pending `ms` after this call (`ms` undefined: wait
 * for it). The timer keeps the event loop alive (a read the model blocks is a Promise nothing
 * else keeps alive) and is cleared once the read has its answer.
 */
function bounded<T>(read: Promise<T>, ms: number | undefined): Promise<T | null> {
  if (ms === undefined) return read;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(null), ms);
    read.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
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
