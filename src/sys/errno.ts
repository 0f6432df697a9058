/**
 * Linux errno values (x86_64 / asm-generic) and the error type every syscall of the seam throws.
 *
 * A {@link SysError} is shaped like Node's system errors (`errno`, `code`, `syscall`, `path`), so
 * callers can treat an error from the kernel model and one from a real host the same way.
 *
 * @example
 * ```ts
 * import { SysError, errnoName } from "vfioctl";
 * const e = new SysError("EACCES", "ioctl", "/dev/vfio/21");
 * errnoName(e.errno); // "EACCES"
 * ```
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  ERANGE: 34,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  EBADFD: 77,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  EPROBE_DEFER: 517,
} as const;

export type ErrnoName = keyof typeof ERRNO;

const BY_NUMBER = new Map<number, ErrnoName>(
  (Object.entries(ERRNO) as [ErrnoName, number][]).map(([k, v]) => [v, k]),
);

/** The symbolic name of an errno number ("EACCES" for 13); "E<n>" when unknown. */
export function errnoName(n: number): string {
  return BY_NUMBER.get(Math.abs(n)) ?? `E${Math.abs(n)}`;
}

/** The errno number of a name ("EACCES" → 13); undefined when unknown. */
export function errnoNumber(name: string): number | undefined {
  const table = ERRNO as Record<string, number>;
  return table[name] ?? table[name.toUpperCase()];
}

const MESSAGES: Partial<Record<ErrnoName, string>> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  EIO: "Input/output error",
  E2BIG: "Argument list too long",
  EBADF: "Bad file descriptor",
  EAGAIN: "Resource temporarily unavailable",
  ENOMEM: "Cannot allocate memory",
  EACCES: "Permission denied",
  EFAULT: "Bad address",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  ENODEV: "No such device",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EINVAL: "Invalid argument",
  ENOTTY: "Inappropriate ioctl for device",
  ERANGE: "Numerical result out of range",
  ENOSYS: "Function not implemented",
  EBADFD: "File descriptor in bad state",
  EOPNOTSUPP: "Operation not supported",
  ETIMEDOUT: "Connection timed out",
};

/** strerror(3) text for an errno name or number. */
export function strerror(e: number | string): string {
  const name = typeof e === "number" ? errnoName(e) : e;
  return MESSAGES[name as ErrnoName] ?? name;
}

/** A failed system call: what failed, on which path, and the errno. Thrown by every seam backend. */
export class SysError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  readonly path?: string;
  constructor(code: ErrnoName | string, syscall: string, path?: string, detail?: string) {
    const errno = errnoNumber(code) ?? 0;
    super(`${syscall}${path ? ` ${path}` : ""}: ${code} (${detail ?? strerror(code)})`);
    this.name = "SysError";
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
  }
}

/** True when `e` is a system error with the given code (e.g. isErrno(e, "EBUSY")). */
export function isErrno(e: unknown, code?: string): e is SysError {
  if (typeof e !== "object" || e === null) return false;
  const c = (e as { code?: unknown }).code;
  if (typeof c !== "string" || !/^E[A-Z0-9_]+$/.test(c)) return false;
  return code === undefined || c === code;
}
