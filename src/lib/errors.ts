/**
 * The tool's own errors: one registry of stable codes, each error naming the device or file,
 * the errno (when the kernel is involved) and the fix. Commands turn them into exit codes.
 *
 * @example
 * ```ts
 * import { VfioctlError } from "vfioctl";
 * const e = new VfioctlError("BAD_BDF", 'bdf: expected "DDDD:BB:SS.F" (lowercase hex), got "../../etc"');
 * e.code; // "BAD_BDF"
 * ```
 */

/** Stable error codes (published: do not renumber or rename). */
export const ERROR_CODES = {
  /** bad input: a malformed BDF, count, token, driver name or option (nothing was changed) */
  BAD_BDF: "usage",
  BAD_INPUT: "usage",
  BAD_TOKEN: "usage",
  /** the input names something this host does not have */
  NO_DEVICE: "usage",
  UNKNOWN_DRIVER: "usage",
  /** a token source could not be read (missing file, empty stdin, unset variable) */
  TOKEN_SOURCE: "usage",
  /** a file vfioctl was asked to write is unsafe (permissions broader than 0600) */
  UNSAFE_FILE: "usage",
  /** a changing command on a copied tree (--root DIR): refused before any write */
  READ_ONLY_TREE: "usage",
  /** the host uses the device (an interface up, an address, a route, a mount, swap, a holder): refused unless --force */
  IN_USE: "no",
  /** vfioctl refused before trying because Linux would refuse (the errno Linux would give is attached) */
  REFUSED: "kernel",
  /** the kernel refused an operation (errno attached) */
  KERNEL: "kernel",
  /** an operation stayed blocked past the timeout */
  BLOCKED: "blocked",
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetail {
  /** the device (BDF) or file the error is about */
  subject?: string;
  /** errno name, when the kernel returned (or would return) one */
  errno?: string;
  /** what to do about it */
  fix?: string;
  /** extra facts for --json */
  data?: Record<string, unknown>;
}

export class VfioctlError extends Error {
  readonly subject?: string;
  readonly errno?: string;
  readonly fix?: string;
  readonly data?: Record<string, unknown>;
  constructor(
    readonly code: ErrorCode,
    message: string,
    detail: ErrorDetail = {},
  ) {
    super(message);
    this.name = "VfioctlError";
    if (detail.subject !== undefined) this.subject = detail.subject;
    if (detail.errno !== undefined) this.errno = detail.errno;
    if (detail.fix !== undefined) this.fix = detail.fix;
    if (detail.data !== undefined) this.data = detail.data;
  }

  /** "usage" | "no" | "kernel" | "blocked": how the command should exit. */
  get kind(): (typeof ERROR_CODES)[ErrorCode] {
    return ERROR_CODES[this.code];
  }

  toJSON(): Record<string, unknown> {
    return { error: this.code, message: this.message, ...(this.subject ? { subject: this.subject } : {}), ...(this.errno ? { errno: this.errno } : {}), ...(this.fix ? { fix: this.fix } : {}), ...(this.data ? { data: this.data } : {}) };
  }
}

/** Quote a user-supplied value for an expected-versus-found message. */
export function shown(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s.length > 64 ? s.slice(0, 61) + '..."' : s;
}
