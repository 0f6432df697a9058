/**
 * The one FFI file of the Linux backend: ioctl(2), eventfd(2) and lseek(2) from the C library
 * through `koffi` (Node's `fs` has none of them).
 *
 * Loading is lazy: importing this module does nothing native; the first call loads koffi and
 * libc.so.6, and throws a plain Error there when that is not possible (see {@link ffiAvailable}).
 *
 * errno: each call is made synchronously on the JS thread, and when it returns −1 errno is read
 * straight after it with no JS in between that could make a failing system call, so the errno
 * belongs to this call (eventfd and lseek also clear it first). Failures throw {@link SysError}
 * (code from the errno number, no stack trace); {@link ioctlErrno} returns −errno instead.
 *
 * @example
 * ```ts
 * import { ioctl, eventfd } from "./ioctl.js";
 * const efd = eventfd(0, 0);
 * ioctl(vfioFd, VFIO.GET_API_VERSION); // 0
 * ```
 */
import { createRequire } from "node:module";
import { constants as osConstants } from "node:os";
import { SysError } from "../errno.js";
import { setUserPointer, userPointers } from "../userptr.js";

interface Ffi {
  /** the address of a Buffer's memory (koffi.address) */
  address(buf: Buffer): bigint;
  errno(value?: number): number;
  ioctlPtr(fd: number, request: number, arg: Buffer): number;
  ioctlInt(fd: number, request: number, arg: number | bigint): number;
  /** ioctl with the struct's address as an integer (koffi passes an integer faster than a Buffer) */
  ioctlAddr(fd: number, request: number, addr: bigint): number;
  eventfd(initval: number, flags: number): number;
  lseek(fd: number, offset: number | bigint, whence: number): number | bigint;
}

let ffi: Ffi | undefined;
let loadError: Error | undefined;

function load(): Ffi {
  if (ffi) return ffi;
  if (loadError) throw loadError;
  try {
    if (process.platform !== "linux") throw new Error(`the Linux backend needs Linux, not ${process.platform}`);
    const require = createRequire(import.meta.url);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require("koffi");
    const libc = koffi.load("libc.so.6");
    // ioctl is variadic in C; on the Linux ABIs koffi supports a fixed third argument of pointer or
    // long size is passed the same way, so two fixed prototypes serve both kinds of argument.
    const ioctlPtr = libc.func("int ioctl(int fd, unsigned long request, void *arg)");
    const ioctlInt = libc.func("int ioctl(int fd, unsigned long request, long arg)");
    const ioctlAddr = libc.func("int ioctl(int fd, unsigned long request, uint64_t arg)");
    const eventfd = libc.func("int eventfd(unsigned int initval, int flags)");
    const lseek = libc.func("int64_t lseek(int fd, int64_t offset, int whence)");
    ffi = {
      address: (buf: Buffer) => koffi.address(buf) as bigint,
      errno: (v?: number) => (v === undefined ? koffi.errno() : koffi.errno(v)),
      ioctlPtr,
      ioctlInt,
      ioctlAddr,
      eventfd,
      lseek,
    };
    return ffi;
  } catch (e) {
    loadError = new Error(`cannot load ioctl/eventfd support (koffi, libc.so.6): ${(e as Error).message}`);
    throw loadError;
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

function checked(ret: number, err: number, syscall: string, path?: string): number {
  if (ret === -1) throw sysErrorFromErrno(err || 5 /* EIO: failed without errno */, syscall, path);
  return ret;
}

/** The struct Buffer of the ioctl in progress (see ioctlErrno). */
let pinned: Buffer | undefined;

/**
 * The address of a struct Buffer's memory, remembered per Buffer: taking it moves a small
 * Buffer's bytes off V8's heap for good (koffi reads the view's backing store), so it stays
 * valid while the Buffer lives; a Buffer whose length changed (a detached ArrayBuffer reads as
 * empty) is looked up again.
 */
const ADDRESSES = new WeakMap<Buffer, { addr: bigint; len: number }>();
function addressOf(f: Ffi, buf: Buffer): bigint {
  const c = ADDRESSES.get(buf);
  if (c !== undefined && c.len === buf.length) return c.addr;
  const addr = f.address(buf);
  ADDRESSES.set(buf, { addr, len: buf.length });
  return addr;
}

/**
 * ioctl(2) without an error object: the non-negative result, or −errno when it failed. The FFI
 * functions are made once (load); a call with no user pointers in its struct allocates nothing,
 * and errno is read only after a call that returned −1 (straight after it, with no JS between).
 * `arg` as for {@link ioctl}. Throws only when the FFI cannot be loaded.
 */
export function ioctlErrno(fd: number, request: number, arg: Buffer | number = 0): number {
  const f = ffi ?? load();
  if (!Buffer.isBuffer(arg)) {
    const ret = f.ioctlInt(fd, request >>> 0, arg);
    return ret === -1 ? -(f.errno() || 5) /* EIO: failed without errno */ : ret;
  }
  const ptrs = userPointers(arg);
  if (ptrs.length === 0) {
    // the struct's address, passed as an integer; `pinned` keeps the Buffer reachable (its
    // memory in place) until the kernel is done with it, whatever the caller keeps
    pinned = arg;
    const ret = f.ioctlAddr(fd, request >>> 0, addressOf(f, arg));
    const r = ret === -1 ? -(f.errno() || 5) : ret;
    pinned = undefined;
    return r;
  }
  // user pointers inside the struct (src/sys/userptr.ts) get their targets' real addresses;
  // the targets stay referenced by the struct's record until the call returns
  for (const p of ptrs) arg.writeBigUInt64LE(f.address(p.target), p.offset);
  const ret = f.ioctlPtr(fd, request >>> 0, arg);
  const err = ret === -1 ? f.errno() || 5 : 0;
  for (const p of ptrs) setUserPointer(arg, p.offset, p.target);
  return ret === -1 ? -err : ret;
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
  const f = load();
  f.errno(0);
  const ret = f.eventfd(initval >>> 0, flags | 0);
  const err = f.errno();
  return checked(ret, err, "eventfd");
}

/** lseek(2): the new offset; throws SysError. */
export function lseek(fd: number, offset: number, whence: number, path?: string): number {
  const f = load();
  f.errno(0);
  const ret = Number(f.lseek(fd, offset, whence));
  const err = f.errno();
  return checked(ret, err, "lseek", path);
}
