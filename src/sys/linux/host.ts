/**
 * `LinuxSyscalls`: the seam answered by a real Linux host, over `node:fs` plus the FFI file
 * (ioctl, eventfd, lseek).
 *
 * - `read()` is one read(2) from the fd's current offset (sysfs and /dev/kmsg depend on that).
 * - `write()` is one write(2) run in libuv's threadpool, so a write Linux blocks (`sriov_numvfs`,
 *   driver `unbind`, `remove` while a VF is held open) leaves the event loop free: the caller can
 *   race it with a timer (`withTimeout`) and close the VF fd meanwhile to let it finish.
 * - `read()` is one read(2) into a reused buffer, on the JS thread when the file cannot block
 *   ({@link readCannotBlock}: sysfs attributes other than those whose show() takes the device
 *   lock), else in the threadpool: a read of `sriov_numvfs` blocks while a write to it is
 *   blocked (seen on 6.1 and 6.12: both take the device lock), and so may anything outside sysfs
 *   (/dev/kmsg, pipes, eventfds, device fds).
 * - opens, ioctls and the rest are synchronous system calls (they do not block on Linux).
 * - with the addon (src/sys/linux/native/batch.c), `readFiles()`, `readlinks()`, `lstats()`,
 *   `stats()` and `readdirs()` make many calls in one: reads that cannot block by the JS thread
 *   and a threadpool thread at once, in chunks ({@link LinuxSyscalls.twoWay}), the others in
 *   threadpool batches whose stuck read is answered null after the caller's timeout (see
 *   {@link LinuxSyscalls.readFiles}); without it they are absent and callers read one by one.
 * - `{ root }` runs it against a directory tree: every absolute path is looked up under `root`;
 *   `readlink` returns the target exactly as stored (as the kernel gives it).
 * - Errors are {@link SysError}s with the errno, the syscall and the caller's path, built without
 *   a stack trace (an expected ENOENT, like `sriov_totalvfs` on every VF, must stay cheap).
 *
 * @example
 * ```ts
 * import { LinuxSyscalls } from "./host.js";
 * import { readAttr } from "../fsutil.js";
 * const sys = new LinuxSyscalls();
 * await readAttr(sys, "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs"); // "8"
 * await sys.exit();
 * ```
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { SysError } from "../errno.js";
import type { FileKind, FileRead, ReadFilesOptions, Stat, Syscalls } from "../syscalls.js";
import { batchReads, eventfd as ffiEventfd, ioctlErrno as ffiIoctlErrno, lseek as ffiLseek, sysErrorFromErrno, type BatchAddon, type BatchHandle, type BatchResult, WORK, type WorkAnswer } from "./ioctl.js";
import { constants as osConstants } from "node:os";
import { VFIO } from "../../uapi/vfio.js";
import { CHUNK, PAGE } from "../fsutil.js";

export interface LinuxSyscallsOptions {
  /** Look every absolute path up under this folder (default: the real root). */
  root?: string;
  /**
   * The ioctl(2) to make: the result, or −errno (default: the FFI's `ioctlErrno`). Tests stand in
   * for a kernel this host lacks (a VFIO_GROUP_GET_DEVICE_FD that succeeds) through it.
   */
  ioctl?: (fd: number, request: number, arg: Buffer | number) => number;
  /**
   * With `root`: allow opening files for writing and ioctls (default: refused with EROFS, a
   * copied tree is for reading; tests that exercise the write path itself set this).
   */
  writable?: boolean;
}

/**
 * Run `f` with stack traces off: errors thrown inside (Node's own system errors, the SysErrors
 * built from them) capture no stack. A stack costs more than the system call that failed, and
 * these errors are answers (ENOENT of an absent attribute), not bugs.
 */
function noStack<T>(f: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return f();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export { BLOCKING_SYSFS_ATTRS, readCannotBlock } from "../blocking.js";
import { readCannotBlock } from "../blocking.js";

/** The answer of every ioctl that returns 0 (see LinuxSyscalls.ioctl). */
const RESOLVED_ZERO: Promise<number> = Promise.resolve(0);

/**
 * From how many paths a batch is read by two threads at once (LinuxSyscalls.twoWay): below it,
 * queueing the threadpool's part costs more (~50–100 µs) than it saves.
 */
const PARALLEL_MIN = 64;

/** The paths of one chunk of a two-thread batch (LinuxSyscalls.twoWay, batch.c workShared). */
const SHARED_CHUNK = 64;

/**
 * The reads that can block go in up to this many threadpool batches at once, each of at least
 * SLOW_WAY_MIN paths: libuv's threadpool has 4 threads (unless UV_THREADPOOL_SIZE says
 * otherwise), and the others are left to the shared batches of the reads that cannot block.
 */
const SLOW_WAYS = 2;
const SLOW_WAY_MIN = 256;

/** One buffer for every read made on the JS thread (the bytes read are copied out of it). */
const scratch = Buffer.allocUnsafe(CHUNK);

/**
 * Buffers for reads in the threadpool (each read in flight has its own; the bytes read are
 * copied out, the buffer kept for the next read): a 64 KiB allocation per read of
 * `driver_override` was most of the garbage a `list` made.
 */
const pool: Buffer[] = [];
const POOL_MAX = 64;

/** Turn a Node system error into the seam's SysError (keeping the caller's path). */
export function toSysError(e: unknown, syscall: string, path?: string): unknown {
  return noStack(() => sysErrorOf(e, syscall, path));
}

function sysErrorOf(e: unknown, syscall: string, path?: string): unknown {
  if (e instanceof SysError) return e;
  const ne = e as NodeJS.ErrnoException;
  if (typeof ne?.code === "string" && /^E[A-Z0-9]+$/.test(ne.code)) {
    const errno = typeof ne.errno === "number" ? Math.abs(ne.errno) : osConstants.errno[ne.code as keyof typeof osConstants.errno];
    if (typeof errno === "number") {
      const se = sysErrorFromErrno(errno, syscall, path);
      // Node's name for a number that has two (libuv says ENOTSUP for 95): the seam's name for
      // it, EOPNOTSUPP, as the model and the FFI give it; a libuv-only code keeps its name
      const alias = osConstants.errno[ne.code as keyof typeof osConstants.errno] === errno;
      return se.code === ne.code || alias ? se : new SysError(ne.code, syscall, path);
    }
    return new SysError(ne.code, syscall, path);
  }
  return e;
}

/** The seam's kind of a file from its st_mode: a link, a folder, a device (char or block), else a file. */
function kindOfMode(mode: number): FileKind {
  const fmt = mode & 0o170000;
  return fmt === 0o120000 ? "link" : fmt === 0o040000 ? "dir" : fmt === 0o020000 || fmt === 0o060000 ? "char" : "file";
}

function kindOf(st: fs.Stats): FileKind {
  return kindOfMode(st.mode);
}

export class LinuxSyscalls implements Syscalls {
  /**
   * When set, every file operation made is reported as one line (bench/c/replay.c's format:
   * `o FD FLAGS PATH`, `r FD LEN`, `c FD`, `l PATH`, `d PATH`, `s PATH`, `S PATH`, host paths),
   * whichever method made it: the list benchmark replays them in C.
   */
  static trace: ((op: string) => void) | undefined;
  readonly backend = "linux" as const;
  readonly pid = process.pid;
  readonly root: string | undefined;
  /** fds this object opened and has not closed, with the path each was opened on. */
  private readonly fds = new Map<number, string>();
  /** the fds among them whose reads cannot block ({@link readCannotBlock}) */
  private readonly jsThreadReads = new Set<number>();

  private readonly ioctlCall: (fd: number, request: number, arg: Buffer | number) => number;
  private readonly readOnly: boolean;

  /** Throws when `root` is not a directory, naming it (`--root /nonexistent: ENOENT ...`). */
  constructor(opts: LinuxSyscallsOptions = {}) {
    this.root = opts.root ? nodePath.resolve(opts.root) : undefined;
    this.ioctlCall = opts.ioctl ?? ffiIoctlErrno;
    this.readOnly = this.root !== undefined && !opts.writable;
    if (opts.root) {
      let st: fs.Stats;
      try {
        st = fs.statSync(this.root!);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? "EIO";
        throw new SysError(code, "--root", opts.root, code === "ENOENT" ? "no such directory" : undefined);
      }
      if (!st.isDirectory()) throw new SysError("ENOTDIR", "--root", opts.root, "not a directory: expected a copied tree with sys/ (and proc/, dev/)");
    }
  }

  /** EROFS for a change to a copied tree, naming the tree. */
  private readOnlyError(syscall: string, path: string | undefined): SysError {
    return new SysError("EROFS", syscall, path, `--root ${this.root} is a copied tree, read-only; run without --root on the host itself`);
  }

  /** The host path a seam path stands for. */
  resolve(path: string): string {
    if (!this.root || !path.startsWith("/")) return path;
    return this.root + path;
  }

  /** The fds currently open through this object. */
  openFds(): number[] {
    return [...this.fds.keys()];
  }

  private sync<T>(syscall: string, path: string | undefined, f: () => T): Promise<T> {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0; // Node's error for a failing call: no stack (see noStack)
    try {
      return Promise.resolve(f());
    } catch (e) {
      return Promise.reject(sysErrorOf(e, syscall, path));
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  /** open(2) on the JS thread (opens do not block); throws Node's error. */
  private openNow(path: string, flags: number): number {
    const host = this.resolve(path);
    let fd: number;
    try {
      fd = fs.openSync(host, flags);
    } catch (e) {
      LinuxSyscalls.trace?.(`o -1 ${flags} ${host}`);
      throw e;
    }
    LinuxSyscalls.trace?.(`o ${fd} ${flags} ${host}`);
    this.fds.set(fd, path);
    if (readCannotBlock(path)) this.jsThreadReads.add(fd);
    else this.jsThreadReads.delete(fd);
    return fd;
  }

  private closeNow(fd: number): void {
    LinuxSyscalls.trace?.(`c ${fd}`);
    this.fds.delete(fd);
    this.jsThreadReads.delete(fd);
    fs.closeSync(fd);
  }

  /** One read(2) on the JS thread into the reused buffer: only for an fd in jsThreadReads. */
  private readNow(fd: number, length: number): Buffer {
    LinuxSyscalls.trace?.(`r ${fd} ${length}`);
    const buf = length <= scratch.length ? scratch : Buffer.allocUnsafe(length);
    const n = fs.readSync(fd, buf, 0, length, null);
    return Buffer.from(buf.subarray(0, n));
  }

  open(path: string, flags: number): Promise<number> {
    if (this.readOnly && (flags & 3) !== 0) return Promise.reject(this.readOnlyError("open", path));
    return this.sync("open", path, () => this.openNow(path, flags));
  }

  close(fd: number): Promise<void> {
    return this.sync("close", this.fds.get(fd), () => this.closeNow(fd));
  }

  read(fd: number, length: number): Promise<Buffer> {
    const path = this.fds.get(fd);
    // an attribute whose read cannot block: one read(2) on the JS thread into the reused buffer
    if (this.jsThreadReads.has(fd)) return this.sync("read", path, () => this.readNow(fd, length));
    // Everything else in the threadpool: Linux blocks a read of sriov_numvfs while a write to it
    // is blocked (both take the device lock), and that must not stop the event loop either.
    LinuxSyscalls.trace?.(`r ${fd} ${length}`);
    const buf = length <= CHUNK ? (pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK)) : Buffer.allocUnsafeSlow(length);
    return new Promise((resolve, reject) => {
      fs.read(fd, buf, 0, length, null, (err, n) => {
        const out = err ? undefined : Buffer.from(buf.subarray(0, n));
        if (buf.length === CHUNK && pool.length < POOL_MAX) pool.push(buf);
        if (err) reject(toSysError(err, "read", path));
        else resolve(out!);
      });
    });
  }

  /**
   * A whole small file ({@link Syscalls.readFile}) when its reads cannot block
   * ({@link readCannotBlock}): open, read(s) into the reused buffer, close, all on the JS thread
   * and one Promise for the three; undefined for any other file (the caller makes the calls, so
   * a read that can block goes to the threadpool).
   */
  readFile(path: string, wholeIfShort: boolean): Promise<Buffer> | undefined {
    if (!readCannotBlock(path)) return undefined;
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    let syscall = "open";
    let fd = -1;
    try {
      fd = this.openNow(path, 0);
      syscall = "read";
      const first = this.readNow(fd, CHUNK);
      let out = first;
      if (first.length !== 0 && !(wholeIfShort && first.length < PAGE)) {
        const parts: Buffer[] = [first];
        for (;;) {
          const b = this.readNow(fd, CHUNK);
          if (b.length === 0) break;
          parts.push(b);
        }
        out = Buffer.concat(parts);
      }
      syscall = "close";
      const f = fd;
      fd = -1;
      this.closeNow(f);
      return Promise.resolve(out);
    } catch (e) {
      const err = sysErrorOf(e, syscall, path);
      if (fd >= 0) {
        try {
          this.closeNow(fd);
        } catch {
          /* the error of the read is the one reported */
        }
      }
      return Promise.reject(err);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  write(fd: number, data: Buffer | string): Promise<number> {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    const path = this.fds.get(fd);
    return new Promise((resolve, reject) => {
      // fs.write with a callback: one write(2) on a libuv threadpool thread
      fs.write(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(toSysError(err, "write", path)) : resolve(n)));
    });
  }

  lseek(fd: number, offset: number, whence: number): Promise<number> {
    return this.sync("lseek", this.fds.get(fd), () => ffiLseek(fd, offset, whence, this.fds.get(fd)));
  }

  /**
   * ioctl(2), synchronous, its answer as a Promise: a result of 0 (most ioctls) is one Promise
   * resolved once and returned to every caller (a settled Promise cannot change, and allocating
   * one per call was a measurable part of the seam's cost); a failure is a stack-less SysError.
   */
  ioctl(fd: number, request: number, arg?: Buffer | number): Promise<number> {
    if (this.readOnly) return Promise.reject(this.readOnlyError("ioctl", this.fds.get(fd)));
    let ret: number;
    try {
      ret = this.ioctlCall(fd, request, arg ?? 0);
    } catch (e) {
      return Promise.reject(e); // the FFI cannot be loaded
    }
    if (ret < 0) return Promise.reject(sysErrorFromErrno(-ret, "ioctl", this.fds.get(fd)));
    // VFIO_GROUP_GET_DEVICE_FD returns a new fd: it belongs to this process like an opened one
    if (request === VFIO.GROUP_GET_DEVICE_FD) this.fds.set(ret, `vfio-device:${Buffer.isBuffer(arg) ? arg.toString("latin1").replace(/\0.*$/s, "").split(" ")[0] : "?"}`);
    return ret === 0 ? RESOLVED_ZERO : Promise.resolve(ret);
  }

  eventfd(initval: number, flags: number): Promise<number> {
    return this.sync("eventfd", undefined, () => {
      const fd = ffiEventfd(initval, flags);
      this.fds.set(fd, "anon_inode:[eventfd]");
      return fd;
    });
  }

  readlink(path: string): Promise<string> {
    return this.sync("readlink", path, () => {
      const host = this.resolve(path);
      LinuxSyscalls.trace?.(`l ${host}`);
      return fs.readlinkSync(host);
    });
  }

  readdir(path: string): Promise<string[]> {
    return this.sync("readdir", path, () => {
      const host = this.resolve(path);
      LinuxSyscalls.trace?.(`d ${host}`);
      return fs.readdirSync(host);
    });
  }

  stat(path: string): Promise<Stat> {
    return this.statOf("stat", path);
  }

  lstat(path: string): Promise<Stat> {
    return this.statOf("lstat", path);
  }

  /**
   * stat(2)/lstat(2). An absent path (ENOENT: `exists()` of a /dev/vfio node, a class device's
   * `dev`) is answered without Node's exception (`throwIfNoEntry: false`), with the seam's error
   * only.
   */
  private statOf(syscall: "stat" | "lstat", path: string): Promise<Stat> {
    const host = this.resolve(path);
    LinuxSyscalls.trace?.(`${syscall === "stat" ? "s" : "S"} ${host}`);
    let st: fs.Stats | undefined;
    try {
      st = noStack(() => (syscall === "stat" ? fs.statSync(host, { throwIfNoEntry: false }) : fs.lstatSync(host, { throwIfNoEntry: false })));
    } catch (e) {
      return Promise.reject(toSysError(e, syscall, path));
    }
    if (st === undefined) return Promise.reject(sysErrorFromErrno(2, syscall, path));
    return Promise.resolve({ kind: kindOf(st), mode: st.mode & 0o7777, size: st.size, rdev: st.rdev, uid: st.uid, gid: st.gid });
  }

  /** the addon's batch reads, looked up once (undefined: absent) */
  private batchAddon: BatchAddon | undefined | null = null;
  private batch(): BatchAddon | undefined {
    if (this.batchAddon === null) this.batchAddon = batchReads();
    return this.batchAddon;
  }

  /**
   * {@link Syscalls.readFiles} through the addon (absent without it: callers read file by file).
   * Files whose read cannot block ({@link readCannotBlock}) are read in one synchronous call on
   * the JS thread; the others in one batch on a threadpool thread, queued first so that it runs
   * while the JS thread reads the rest. A path of that batch still in its read after
   * `timeoutMs` is answered null: the batch is cancelled (its thread stays in that read; the
   * fd it opened is this object's from then, closed once the read returns) and the paths after
   * it go on as a new batch. Every open, read and close is traced as the single calls trace them.
   */
  get readFiles(): ((paths: readonly string[], opts: ReadFilesOptions) => Promise<FileRead[]>) | undefined {
    const a = this.batch();
    return a ? (paths, opts) => this.batchReadFiles(a, paths, opts) : undefined;
  }

  /**
   * One of the addon's synchronous batches over `paths` (under --root's directory: the addon
   * prefixes it), read by two threads at once (batch.c workShared): a threadpool thread reads
   * chunks of {@link SHARED_CHUNK} paths from the front while this thread turns each finished
   * chunk's answer into per-path values with `each(answer, from)`, and reads chunks from the back
   * itself whenever none is waiting. So neither thread waits for the other, and a threadpool
   * that never starts the work (its threads all busy, e.g. in reads that block) only leaves
   * every chunk to this thread; each path is read once. The values are in path order; below
   * {@link PARALLEL_MIN} paths, or with a trace (traced in path order, as the single calls
   * are), it is all read here in one call.
   */
  private twoWay<K extends keyof WorkAnswer, T>(a: BatchAddon, kind: K, paths: readonly string[], whole: boolean, each: (answer: WorkAnswer[K], from: number) => T[]): Promise<T[]> {
    const root = this.root;
    const n = paths.length;
    const joined = paths.join("\0");
    if (n < PARALLEL_MIN || LinuxSyscalls.trace) {
      const call = [(j: string) => a.readFiles(j, whole, root), (j: string) => a.readlinks(j, root), (j: string) => a.lstats(j, root), (j: string) => a.readdirs(j, root), (j: string) => a.stats(j, root)][kind]!;
      return Promise.resolve(each(call(joined) as WorkAnswer[K], 0));
    }
    const out = new Array<T>(n);
    const h = a.workShared(kind, joined, whole, SHARED_CHUNK, root);
    for (let step = a.workStep<K>(h); step !== undefined; step = a.workStep<K>(h)) {
      const from = step[0];
      const values = each(step[1], from);
      for (let k = 0; k < values.length; k++) out[from + k] = values[k]!;
    }
    return Promise.resolve(out);
  }

  /** {@link Syscalls.readlinks} through the addon (absent without it), see {@link twoWay}. */
  get readlinks(): ((paths: readonly string[]) => Promise<(string | SysError)[]>) | undefined {
    return this.valuesBy(WORK.readlinks, "readlink", "l");
  }

  /** {@link Syscalls.lstats} through the addon (absent without it), see {@link twoWay}. */
  get lstats(): ((paths: readonly string[]) => Promise<(Stat | SysError)[]>) | undefined {
    return this.statsBy(WORK.lstats, "lstat", "S");
  }

  /** {@link Syscalls.stats} through the addon (absent without it), see {@link twoWay}. */
  get stats(): ((paths: readonly string[]) => Promise<(Stat | SysError)[]>) | undefined {
    return this.statsBy(WORK.stats, "stat", "s");
  }

  private statsBy(kind: typeof WORK.lstats | typeof WORK.stats, syscall: string, op: string): ((paths: readonly string[]) => Promise<(Stat | SysError)[]>) | undefined {
    const a = this.batch();
    if (!a) return undefined;
    return (paths) => {
      const trace = LinuxSyscalls.trace;
      return this.twoWay(a, kind, paths, false, (r, from) => {
        const out = new Array<Stat | SysError>(r.length / 6);
        for (let k = 0; k < out.length; k++) {
          trace?.(`${op} ${this.resolve(paths[from + k]!)}`);
          const o = 6 * k;
          if (r[o]! < 0) {
            out[k] = sysErrorFromErrno(-r[o]!, syscall, paths[from + k]);
            continue;
          }
          const mode = r[o + 1]!;
          out[k] = { kind: kindOfMode(mode), mode: mode & 0o7777, size: r[o + 2]!, rdev: r[o + 3]!, uid: r[o + 4]!, gid: r[o + 5]! };
        }
        return out;
      });
    };
  }

  /** {@link Syscalls.readdirs} through the addon (absent without it), see {@link twoWay}. */
  get readdirs(): ((paths: readonly string[]) => Promise<(string[] | SysError)[]>) | undefined {
    return this.valuesBy(WORK.readdirs, "readdir", "d");
  }

  /** A batch whose answer per path is its value or −errno (readlinks, readdirs), traced as `op PATH`. */
  private valuesBy<K extends typeof WORK.readlinks | typeof WORK.readdirs>(kind: K, syscall: string, op: string): ((paths: readonly string[]) => Promise<(Exclude<WorkAnswer[K][number], number> | SysError)[]>) | undefined {
    const a = this.batch();
    if (!a) return undefined;
    type V = Exclude<WorkAnswer[K][number], number>;
    return (paths) => {
      const trace = LinuxSyscalls.trace;
      return this.twoWay(a, kind, paths, false, (r, from) =>
        (r as (V | number)[]).map((v, k) => {
          trace?.(`${op} ${this.resolve(paths[from + k]!)}`);
          return typeof v === "number" ? sysErrorFromErrno(-v, syscall, paths[from + k]) : v;
        }),
      );
    };
  }

  private batchReadFiles(a: BatchAddon, paths: readonly string[], opts: ReadFilesOptions): Promise<FileRead[]> {
    const out = new Array<FileRead>(paths.length);
    const fast: number[] = [];
    const slow: number[] = [];
    paths.forEach((p, i) => (readCannotBlock(p) ? fast : slow).push(i));
    const pending = slow.length ? this.readAsyncWays(a, slow.map((i) => paths[i]!), opts) : undefined;
    const sub = fast.map((i) => paths[i]!);
    const quick = fast.length ? this.twoWay(a, WORK.readFiles, sub, opts.wholeIfShort, (r, from) => this.answers(r, sub, from)) : undefined;
    return Promise.all([quick, pending]).then(([q, res]) => {
      if (q) fast.forEach((i, k) => (out[i] = q[k]!));
      if (res) slow.forEach((i, k) => (out[i] = res[k]!));
      return out;
    });
  }

  /**
   * A batch's answers for paths[from…], traced as open, read(s),
   * close each: the bytes, or the SysError of the call that failed.
   */
  private answers(r: BatchResult, paths: readonly string[], from: number): FileRead[] {
    const trace = LinuxSyscalls.trace;
    const n = r.meta.length / 3;
    const res = new Array<FileRead>(n);
    let at = 0;
    for (let k = 0; k < n; k++) {
      const fd = r.meta[3 * k]!;
      const reads = r.meta[3 * k + 1]!;
      const len = r.meta[3 * k + 2]!;
      const path = paths[from + k]!;
      if (fd < 0) {
        trace?.(`o -1 0 ${this.resolve(path)}`);
        res[k] = sysErrorFromErrno(-fd, "open", path);
        continue;
      }
      if (trace) {
        trace(`o ${fd} 0 ${this.resolve(path)}`);
        for (let j = 0; j < reads; j++) trace(`r ${fd} ${CHUNK}`);
        trace(`c ${fd}`);
      }
      if (len < 0) res[k] = sysErrorFromErrno(-len, "read", path);
      else {
        res[k] = r.data.subarray(at, at + len);
        at += len;
      }
    }
    return res;
  }

  /**
   * The reads that can block in up to {@link SLOW_WAYS} threadpool batches at once, each of a
   * run of consecutive paths: with several reads stuck (a device lock held on several devices)
   * their timeouts run at the same time instead of one after the other.
   */
  private readAsyncWays(a: BatchAddon, paths: readonly string[], opts: ReadFilesOptions): Promise<FileRead[]> {
    const ways = Math.min(SLOW_WAYS, Math.ceil(paths.length / SLOW_WAY_MIN));
    if (ways <= 1) return this.readAsync(a, paths, opts);
    const size = Math.ceil(paths.length / ways);
    const parts: Promise<FileRead[]>[] = [];
    for (let at = 0; at < paths.length; at += size) parts.push(this.readAsync(a, paths.slice(at, at + size), opts));
    return Promise.all(parts).then((r) => r.flat());
  }

  /** The reads that can block, in threadpool batches bounded by opts.timeoutMs (see readFiles). */
  private readAsync(a: BatchAddon, paths: readonly string[], opts: ReadFilesOptions): Promise<FileRead[]> {
    const out = new Array<FileRead>(paths.length);
    const ms = opts.timeoutMs;
    return new Promise((resolve) => {
      const start = (base: number): void => {
        if (base >= paths.length) return resolve(out);
        let taken = base; // answers in out up to here
        let live = true;
        let timer: NodeJS.Timeout | undefined;
        let adopted = -1;
        const take = () => {
          const res = this.answers(a.batchTake(h, taken - base), paths, taken);
          for (const r of res) out[taken++] = r;
        };
        const onDone = () => {
          if (live) {
            clearTimeout(timer);
            take();
            return resolve(out);
          }
          // a cancelled batch: its stuck read has returned (its answer is not used); close its fd
          if (adopted >= 0 && this.fds.has(adopted)) {
            try {
              this.closeNow(adopted);
            } catch {
              /* closed behind our back */
            }
          }
        };
        const h: BatchHandle = a.readFilesAsync(paths.slice(base).join("\0"), opts.wholeIfShort, onDone, this.root);
        if (ms === undefined) return;
        const check = () => {
          const [done, cur, elapsed] = a.batchPoll(h);
          if (elapsed < ms || (cur < 0 && done > 0)) {
            // still within the timeout, or between two paths: look again when it would run out
            timer = setTimeout(check, cur < 0 ? 1 : Math.max(1, Math.ceil(ms - elapsed)));
            return;
          }
          live = false;
          adopted = a.batchCancel(h);
          take();
          if (cur < 0) {
            // not started within the timeout (the threadpool's threads are all in reads that
            // block): every path left is as blocked as a single read queued behind them
            while (taken < paths.length) out[taken++] = null;
            return resolve(out);
          }
          // the path in its read: blocked; its open and read traced as made, its fd this object's
          if (adopted >= 0) {
            LinuxSyscalls.trace?.(`o ${adopted} 0 ${this.resolve(paths[taken]!)}`);
            LinuxSyscalls.trace?.(`r ${adopted} ${CHUNK}`);
            this.fds.set(adopted, paths[taken]!);
          }
          out[taken] = null;
          start(taken + 1);
        };
        timer = setTimeout(check, ms);
      };
      start(0);
    });
  }

  async exit(): Promise<void> {
    for (const fd of [...this.fds.keys()]) {
      this.fds.delete(fd);
      this.jsThreadReads.delete(fd);
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed behind our back */
      }
    }
  }
}
