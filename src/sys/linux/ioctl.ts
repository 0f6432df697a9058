/**
 * The one FFI file of the Linux backend: ioctl(2), eventfd(2) and lseek(2) from the C library
 * through `koffi` (Node's `fs` has none of them).
 *
 * Loading is lazy: importing this module does nothing native; the first call loads koffi and
 * libc.so.6, and throws a plain Error there when that is not possible (see {@link ffiAvailable}).
 *
 * errno: each call clears errno, makes the call synchronously on the JS thread, and reads errno
 * straight after it with no JS in between that could make a failing system call, so the errno
 * belongs to this call. Failures throw {@link SysError} (code from the errno number).
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
    const eventfd = libc.func("int eventfd(unsigned int initval, int flags)");
    const lseek = libc.func("int64_t lseek(int fd, int64_t offset, int whence)");
    ffi = {
      address: (buf: Buffer) => koffi.address(buf) as bigint,
      errno: (v?: number) => (v === undefined ? koffi.errno() : koffi.errno(v)),
      ioctlPtr,
      ioctlInt,
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

/** A SysError for an errno number, carrying the number even when the seam's table lacks the name. */
export function sysErrorFromErrno(errno: number, syscall: string, path?: string): SysError {
  const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
  const e = new SysError(code, syscall, path);
  if (e.errno !== errno) Object.defineProperty(e, "errno", { value: errno, enumerable: true });
  return e;
}

function checked(ret: number, err: number, syscall: string, path?: string): number {
  if (ret === -1) throw sysErrorFromErrno(err || 5 /* EIO: failed without errno */, syscall, path);
  return ret;
}

/**
 * ioctl(2). `arg` an integer: passed by value; a Buffer: passed by pointer, and what the kernel
 * writes back lands in the same Buffer. Returns the non-negative result; throws SysError.
 */
export function ioctl(fd: number, request: number, arg: Buffer | number = 0, path?: string): number {
  const f = load();
  // user pointers inside the struct (src/sys/userptr.ts) get their targets' real addresses;
  // the targets stay referenced by the struct's record until the call returns
  if (Buffer.isBuffer(arg)) for (const p of userPointers(arg)) arg.writeBigUInt64LE(f.address(p.target), p.offset);
  f.errno(0);
  const ret = Buffer.isBuffer(arg) ? f.ioctlPtr(fd, request >>> 0, arg) : f.ioctlInt(fd, request >>> 0, arg);
  const err = f.errno();
  if (Buffer.isBuffer(arg)) for (const p of userPointers(arg)) setUserPointer(arg, p.offset, p.target);
  return checked(ret, err, "ioctl", path);
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
