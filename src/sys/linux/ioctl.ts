/**
 * The one FFI file of the Linux backend: ioctl(2), eventfd(2) and lseek(2) from the C library
 * (Node's `fs` has none of them), through one of two implementations:
 *
 * - **the addon** (`build/native/ioctl.node`, built from `src/sys/linux/native/ioctl.c` by
 *   `node tools/build-native.mjs`, which `npm install` runs when a C compiler is there): each call
 *   is one Node-API function that makes the system call and returns its result or −errno, errno
 *   read in C straight after the call;
 * - **koffi** (the npm package), when the addon is absent or does not load: libc's functions
 *   through koffi's generic FFI, errno read through koffi right after the call returned −1, with
 *   no JS in between that could make a failing system call.
 *
 * `VFIOCTL_FFI=koffi` uses koffi even when the addon loads, `VFIOCTL_FFI=addon` refuses to fall
 * back (the error says why the addon did not load); `VFIOCTL_ADDON=FILE` loads the addon from
 * FILE. Both give the same answers (test/ffi-addon.test.ts); the addon costs less per call
 * (docs/benchmarks.md, "The FFI").
 *
 * Loading is lazy: importing this module does nothing native; the first call loads the addon or
 * koffi and libc.so.6, and throws a plain Error there when neither is possible (see
 * {@link ffiAvailable}). Failures throw {@link SysError} (code from the errno number, no stack
 * trace); {@link ioctlErrno} returns −errno instead.
 *
 * @example
 * ```ts
 * import { ioctl, eventfd } from "./ioctl.js";
 * const efd = eventfd(0, 0);
 * ioctl(vfioFd, VFIO.GET_API_VERSION); // 0
 * ```
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import { constants as osConstants } from "node:os";
import { fileURLToPath } from "node:url";
import { SysError } from "../errno.js";
import { setUserPointer, userPointers } from "../userptr.js";

/** Which implementation makes the calls. */
export type FfiKind = "addon" | "koffi";

/** One implementation: every call returns its result, or −errno when it failed. */
export interface Ffi {
  readonly kind: FfiKind;
  /** the addon's batch reads (absent with koffi, or with an addon built before them) */
  readonly batch?: BatchAddon;
  /** the file loaded: the addon's path, or koffi's package folder */
  readonly from: string;
  /** ioctl(2) as {@link ioctlErrno} */
  ioctlErrno(fd: number, request: number, arg: Buffer | number): number;
  /** eventfd(2): a new fd or −errno */
  eventfd(initval: number, flags: number): number;
  /** lseek(2): the new offset or −errno */
  lseek(fd: number, offset: number, whence: number): number;
}

/**
 * Where the addon is looked for: build/native/ioctl.node of the project (this file is
 * dist/src/sys/linux/ioctl.js), or VFIOCTL_ADDON.
 */
export const ADDON_PATH = fileURLToPath(new URL("../../../../build/native/ioctl.node", import.meta.url));

/** What a batch of file reads returns (src/sys/linux/native/batch.c): per path fd|−errno, reads, bytes|−errno. */
export interface BatchResult {
  meta: Int32Array;
  data: Buffer;
}

/** An asynchronous batch in flight (batch.c readFilesAsync). */
export type BatchHandle = { readonly __batch: unique symbol };

/** A synchronous batch read by two threads at once (batch.c workShared). */
export type WorkHandle = { readonly __work: unique symbol };

/** The kinds of batch.c's workShared: the synchronous batch it reads on two threads. */
export const WORK = { readFiles: 0, readlinks: 1, lstats: 2, readdirs: 3, stats: 4 } as const;

/** What each kind's synchronous batch (and so each chunk of its workShared) answers. */
export interface WorkAnswer {
  0: BatchResult;
  1: (string | number)[];
  2: Float64Array;
  3: (string[] | number)[];
  4: Float64Array;
}

/** The batch reads of the addon (src/sys/linux/native/batch.c; paths NUL-separated). */
export interface BatchAddon {
  /** `root`: each absolute path taken under it (the backend's --root directory) */
  readFiles(paths: string, wholeIfShort: boolean, root?: string): BatchResult;
  readlinks(paths: string, root?: string): (string | number)[];
  readFilesAsync(paths: string, wholeIfShort: boolean, done: () => void, root?: string): BatchHandle;
  /** [paths done, index in progress or −1, ms since it (or the batch) started] */
  batchPoll(h: BatchHandle): [number, number, number];
  batchTake(h: BatchHandle, from: number): BatchResult;
  batchCancel(h: BatchHandle): number;
  /** per path 6 numbers: 0 or −errno, st_mode, st_size, st_rdev, st_uid, st_gid */
  lstats(paths: string, root?: string): Float64Array;
  /** per path its entries sorted as node:fs gives them, or −errno */
  readdirs(paths: string, root?: string): (string[] | number)[];
  /** as lstats, with stat(2) */
  stats(paths: string, root?: string): Float64Array;
  /** one of the synchronous batches read by this thread and a threadpool thread, in chunks of `chunk` paths */
  workShared<K extends keyof WorkAnswer>(kind: K, paths: string, wholeIfShort: boolean, chunk: number, root?: string): WorkHandle;
  /** the next chunk: its first path's index and the answer of its paths; undefined once all are handed out */
  workStep<K extends keyof WorkAnswer>(h: WorkHandle): [number, WorkAnswer[K]] | undefined;
}

/** The functions of src/sys/linux/native/ioctl.c (see there). */
interface Addon extends BatchAddon {
  ioctlInt(fd: number, request: number, arg: number | bigint): number;
  ioctlBuf(fd: number, request: number, arg: Buffer): number;
  address(buf: Buffer): bigint;
  eventfd(initval: number, flags: number): number;
  lseek(fd: number, offset: number, whence: number): number;
}

/**
 * The addon at `file` as an {@link Ffi}; throws an Error naming the file, why it did not load,
 * and how to build it.
 */
export function loadAddon(file: string = process.env.VFIOCTL_ADDON || ADDON_PATH): Ffi {
  const mod = { exports: {} as Partial<Addon> };
  try {
    if (process.platform !== "linux") throw new Error(`the Linux backend needs Linux, not ${process.platform}`);
    if (!fs.existsSync(file)) throw new Error("ENOENT: no such file");
    process.dlopen(mod, file);
    for (const f of ["ioctlInt", "ioctlBuf", "address", "eventfd", "lseek"] as const) {
      if (typeof mod.exports[f] !== "function") throw new Error(`not vfioctl's ioctl addon: it has no ${f}()`);
    }
  } catch (e) {
    throw new Error(`ioctl addon ${file}: ${(e as Error).message} (build it with \`node tools/build-native.mjs\`, which needs a C compiler: Debian: apt-get install gcc libc6-dev)`);
  }
  const a = mod.exports as Addon;
  const batchFns = ["readFiles", "readlinks", "readFilesAsync", "batchPoll", "batchTake", "batchCancel", "lstats", "readdirs", "workShared", "workStep", "stats"] as const;
  const batch: BatchAddon | undefined = batchFns.every((f) => typeof a[f] === "function") ? a : undefined;
  return {
    kind: "addon",
    from: file,
    batch,
    ioctlErrno(fd: number, request: number, arg: Buffer | number): number {
      if (typeof arg !== "object") return a.ioctlInt(fd, request, arg);
      const ptrs = userPointers(arg);
      // a flat struct: a pointer to the Buffer's own bytes (the kernel writes back into them)
      if (ptrs.length === 0) return a.ioctlBuf(fd, request, arg);
      // user pointers inside the struct (src/sys/userptr.ts) get their targets' real addresses
      // for the call, and the placeholders back after it
      for (const p of ptrs) arg.writeBigUInt64LE(a.address(p.target), p.offset);
      try {
        return a.ioctlBuf(fd, request, arg);
      } finally {
        for (const p of ptrs) setUserPointer(arg, p.offset, p.target);
      }
    },
    eventfd: a.eventfd,
    lseek: a.lseek,
  };
}

/** koffi and libc.so.6 as an {@link Ffi}; throws a plain Error when they cannot be loaded. */
export function loadKoffi(): Ffi {
  try {
    if (process.platform !== "linux") throw new Error(`the Linux backend needs Linux, not ${process.platform}`);
    const require = createRequire(import.meta.url);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require("koffi");
    const libc = koffi.load("libc.so.6");
    // ioctl is variadic in C; on the Linux ABIs koffi supports a fixed third argument of pointer or
    // long size is passed the same way, so fixed prototypes serve every kind of argument.
    const ioctlPtr = libc.func("int ioctl(int fd, unsigned long request, void *arg)");
    const ioctlInt = libc.func("int ioctl(int fd, unsigned long request, long arg)");
    // the struct's address as an integer: koffi passes an integer faster than a Buffer
    const ioctlAddr = libc.func("int ioctl(int fd, unsigned long request, uint64_t arg)");
    const eventfd = libc.func("int eventfd(unsigned int initval, int flags)");
    const lseek = libc.func("int64_t lseek(int fd, int64_t offset, int whence)");
    const errno = (v?: number): number => (v === undefined ? koffi.errno() : koffi.errno(v));
    const address = (buf: Buffer): bigint => koffi.address(buf) as bigint;
    return {
      kind: "koffi",
      from: require.resolve("koffi"),
      /**
       * A call with no user pointers in its struct allocates nothing, and errno is read only
       * after a call that returned −1 (straight after it, with no JS between).
       */
      ioctlErrno(fd: number, request: number, arg: Buffer | number): number {
        if (!Buffer.isBuffer(arg)) {
          const ret = ioctlInt(fd, request >>> 0, arg);
          return ret === -1 ? -(errno() || 5) /* EIO: failed without errno */ : ret;
        }
        const ptrs = userPointers(arg);
        if (ptrs.length === 0) {
          // the struct's address, passed as an integer; `pinned` keeps the Buffer reachable (its
          // memory in place) until the kernel is done with it, whatever the caller keeps
          pinned = arg;
          const ret = ioctlAddr(fd, request >>> 0, addressOf(address, arg));
          const r = ret === -1 ? -(errno() || 5) : ret;
          pinned = undefined;
          return r;
        }
        // user pointers inside the struct (src/sys/userptr.ts) get their targets' real addresses;
        // the targets stay referenced by the struct's record until the call returns
        for (const p of ptrs) arg.writeBigUInt64LE(address(p.target), p.offset);
        const ret = ioctlPtr(fd, request >>> 0, arg);
        const err = ret === -1 ? errno() || 5 : 0;
        for (const p of ptrs) setUserPointer(arg, p.offset, p.target);
        return ret === -1 ? -err : ret;
      },
      eventfd(initval, flags) {
        errno(0);
        const ret = eventfd(initval >>> 0, flags | 0);
        return ret === -1 ? -(errno() || 5) /* EIO: failed without errno */ : ret;
      },
      lseek(fd, offset, whence) {
        errno(0);
        const ret = Number(lseek(fd, offset, whence));
        return ret === -1 ? -(errno() || 5) : ret;
      },
    };
  } catch (e) {
    throw new Error(`cannot load ioctl/eventfd support (koffi, libc.so.6): ${(e as Error).message}`);
  }
}

/** The struct Buffer of the koffi ioctl in progress (see loadKoffi's ioctlErrno). */
let pinned: Buffer | undefined;

/**
 * The address of a struct Buffer's memory, remembered per Buffer: taking it moves a small
 * Buffer's bytes off V8's heap for good (koffi reads the view's backing store), so it stays
 * valid while the Buffer lives; a Buffer whose length changed (a detached ArrayBuffer reads as
 * empty) is looked up again.
 */
const ADDRESSES = new WeakMap<Buffer, { addr: bigint; len: number }>();
function addressOf(address: (b: Buffer) => bigint, buf: Buffer): bigint {
  const c = ADDRESSES.get(buf);
  if (c !== undefined && c.len === buf.length) return c.addr;
  const addr = address(buf);
  ADDRESSES.set(buf, { addr, len: buf.length });
  return addr;
}

let ffi: Ffi | undefined;
let loadError: Error | undefined;
/** why the addon is not the one in use (koffi forced, or its load error) */
let addonSkipped: string | undefined;

/**
 * The implementation every call of this module uses, chosen once: `VFIOCTL_FFI=koffi` koffi;
 * `VFIOCTL_FFI=addon` the addon or an error; unset, the addon when it loads, else koffi.
 */
function load(): Ffi {
  if (ffi) return ffi;
  if (loadError) throw loadError;
  const want = process.env.VFIOCTL_FFI || "";
  try {
    if (want !== "" && want !== "addon" && want !== "koffi") throw new Error(`VFIOCTL_FFI=${want}: expected koffi or addon (unset: the addon when it loads, else koffi)`);
    if (want === "koffi") {
      addonSkipped = "VFIOCTL_FFI=koffi";
    } else {
      try {
        return (ffi = loadAddon());
      } catch (e) {
        if (want === "addon") throw new Error(`VFIOCTL_FFI=addon: ${(e as Error).message}`);
        addonSkipped = (e as Error).message;
      }
    }
    try {
      return (ffi = loadKoffi());
    } catch (e) {
      throw new Error(`${(e as Error).message}; ${want === "koffi" ? "the addon was not tried (VFIOCTL_FFI=koffi)" : addonSkipped}`);
    }
  } catch (e) {
    loadError = e as Error;
    throw loadError;
  }
}

/**
 * The addon's batch reads, or undefined when the FFI in use is koffi (`VFIOCTL_FFI=koffi`, no
 * addon built, or one built before batch.c): callers then read file by file. Loads the addon
 * (never koffi) when nothing is loaded yet; the addon then serves the ioctls too, as load()
 * would have chosen it.
 */
export function batchReads(): BatchAddon | undefined {
  if (ffi) return ffi.batch;
  if (loadError || process.env.VFIOCTL_FFI === "koffi") return undefined;
  // the addon only: koffi has no batch reads, and loading it costs more than a list saves
  try {
    const want = process.env.VFIOCTL_FFI || "";
    if (want !== "" && want !== "addon") return undefined;
    return (ffi = loadAddon()).batch;
  } catch {
    return undefined;
  }
}

/** True when the FFI can be loaded on this machine (loads it). */
export function ffiAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/**
 * Which implementation is in use (loads it): its kind and file, and when it is koffi, why not
 * the addon. Throws as the first call would when neither loads.
 */
export function ffiInfo(): { kind: FfiKind; from: string; addonSkipped?: string } {
  const f = load();
  return f.kind === "koffi" ? { kind: f.kind, from: f.from, addonSkipped } : { kind: f.kind, from: f.from };
}

const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.errno)) {
  if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);
}
// prefer the usual names where Linux has aliases
ERRNO_NAMES.set(11, "EAGAIN");
ERRNO_NAMES.set(95, "EOPNOTSUPP");

/**
 * A SysError for an errno number, carrying the number even when the seam's table lacks the name.
 * Built without a stack trace: a failed call is an answer (ENOTTY, EAGAIN …), and capturing a
 * stack cost many times the system call.
 */
export function sysErrorFromErrno(errno: number, syscall: string, path?: string): SysError {
  const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  let e: SysError;
  try {
    e = new SysError(code, syscall, path);
  } finally {
    Error.stackTraceLimit = limit;
  }
  if (e.errno !== errno) Object.defineProperty(e, "errno", { value: errno, enumerable: true });
  return e;
}

/**
 * ioctl(2) without an error object: the non-negative result, or −errno when it failed. `arg` as
 * for {@link ioctl}. Throws only when the FFI cannot be loaded.
 */
export function ioctlErrno(fd: number, request: number, arg: Buffer | number = 0): number {
  return (ffi ?? load()).ioctlErrno(fd, request, arg);
}

/**
 * ioctl(2). `arg` an integer: passed by value; a Buffer: passed by pointer, and what the kernel
 * writes back lands in the same Buffer. Returns the non-negative result; throws SysError.
 */
export function ioctl(fd: number, request: number, arg: Buffer | number = 0, path?: string): number {
  const ret = ioctlErrno(fd, request, arg);
  if (ret < 0) throw sysErrorFromErrno(-ret, "ioctl", path);
  return ret;
}

/** eventfd(2): a new fd; throws SysError. */
export function eventfd(initval: number, flags: number): number {
  const ret = (ffi ?? load()).eventfd(initval >>> 0, flags | 0);
  if (ret < 0) throw sysErrorFromErrno(-ret, "eventfd");
  return ret;
}

/** lseek(2): the new offset; throws SysError. */
export function lseek(fd: number, offset: number, whence: number, path?: string): number {
  const ret = (ffi ?? load()).lseek(fd, offset, whence);
  if (ret < 0) throw sysErrorFromErrno(-ret, "lseek", path);
  return ret;
}
