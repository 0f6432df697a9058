/**
 * The one seam between vfioctl and an operating system.
 *
 * Everything above this file (library, `vfioctl` command, scenario runner) talks to a Linux host
 * only through {@link Syscalls}. Two backends answer it:
 *   - `LinuxSyscalls` (src/sys/linux/) — a real host: `node:fs` plus one FFI file for ioctl/eventfd;
 *   - `ModelProcess` (src/kernel/) — one process of the executable kernel model.
 * A `Syscalls` object stands for one process: it owns an fd table, and `exit()` closes every fd
 * it opened, as the kernel does when a process ends.
 *
 * Every call returns a Promise because Linux may block a write (`sriov_numvfs`, driver `unbind`)
 * while a VF is held open; the caller decides how long to wait (see `withTimeout` in
 * src/sys/fsutil.ts). Errors are thrown as `SysError` (errno, code, syscall, path).
 *
 * @example
 * ```ts
 * import { Kernel, readText } from "vfioctl";
 * const k = Kernel.withDefaultHost();
 * const p = k.spawn("shell");
 * const n = await readText(p, "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs"); // "8\n"
 * ```
 */

import type { SysError } from "./errno.js";

/** open(2) flags (x86_64 values). */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

/** lseek(2) whence values. */
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

/** eventfd(2) flags. */
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

export type FileKind = "file" | "dir" | "link" | "char";

export interface Stat {
  kind: FileKind;
  /** permission bits, e.g. 0o644 */
  mode: number;
  /** size in bytes as stat(2) reports it (4096 for sysfs attributes, 0 for char devices) */
  size: number;
  /**
   * st_rdev: the device number of a char or block device node (glibc encoding; see
   * src/sys/devnum.ts), 0 for everything else. stat() through /proc/PID/fd/N gives the open
   * file's own number whatever path the process opened it by (chroot, container).
   */
  rdev: number;
  /** st_uid / st_gid: owner and group (the model's files are all root's: 0) */
  uid?: number;
  gid?: number;
}

/** How {@link Syscalls.readFiles} reads each file. */
export interface ReadFilesOptions {
  /** as `readAttr`: a first read shorter than a page is the whole file (false: read to EOF, as `readText`) */
  wholeIfShort: boolean;
  /**
   * How long a read that can block (src/sys/blocking.ts `readCannotBlock` false: `driver_override`,
   * `sriov_numvfs` under the device lock) may take before it is answered `null` (blocked); the
   * other paths' answers still arrive. Unset: wait for it.
   */
  timeoutMs?: number;
}

/** One path's answer in {@link Syscalls.readFiles}: the bytes, its open's or read's error, or null: still blocked after the timeout. */
export type FileRead = Buffer | SysError | null;

export interface Syscalls {
  /** "linux" for a real host, "model" for the kernel model. */
  readonly backend: "linux" | "model";
  /** The process id the kernel knows this caller by. */
  readonly pid: number;
  /** A real backend run against a directory tree (`--root DIR`): that directory. */
  readonly root?: string | undefined;

  open(path: string, flags: number): Promise<number>;
  close(fd: number): Promise<void>;
  /** One read(2): at most `length` bytes from the fd's current offset (sysfs/kmsg semantics). */
  read(fd: number, length: number): Promise<Buffer>;
  /** One write(2); resolves to the byte count the kernel returned. May stay pending while Linux blocks. */
  write(fd: number, data: Buffer | string): Promise<number>;
  lseek(fd: number, offset: number, whence: number): Promise<number>;
  /**
   * ioctl(2). `arg` is either an integer (passed by value) or a Buffer whose bytes are the struct
   * (passed by pointer; the kernel's output is written back into the same Buffer).
   * Resolves to the ioctl's non-negative return value.
   */
  ioctl(fd: number, request: number, arg?: Buffer | number): Promise<number>;
  /** eventfd(2), used for the vfio-pci device request channel. */
  eventfd(initval: number, flags: number): Promise<number>;
  readlink(path: string): Promise<string>;
  readdir(path: string): Promise<string[]>;
  /** stat(2): follows symbolic links. */
  stat(path: string): Promise<Stat>;
  /** lstat(2): does not follow the last link. */
  lstat(path: string): Promise<Stat>;
  /**
   * Optional: the bytes of a small file read the way `readAttr` (`wholeIfShort`: a first read
   * shorter than a page is the whole file) or `readText` (reads until EOF) reads it, with the
   * same open, read(s) and close, made in one call. A backend offers it where that is cheaper
   * than three (the real backend, for files whose read cannot block); undefined means "not
   * here": the caller makes the calls itself. src/sys/fsutil.ts uses it when present.
   */
  readFile?(path: string, wholeIfShort: boolean): Promise<Buffer> | undefined;
  /**
   * Optional: many small files read at once, each with the open, read(s) and close `readFile`
   * would make, the answers in the order of `paths`. A read that can block never blocks the
   * caller: after `opts.timeoutMs` it is answered null while the others' answers arrive. Absent
   * where it would not be cheaper (the model; the real backend without its addon).
   */
  readFiles?: (paths: readonly string[], opts: ReadFilesOptions) => Promise<FileRead[]>;
  /** Optional: readlink(2) of many paths at once: per path the target as stored, or its error. */
  readlinks?: (paths: readonly string[]) => Promise<(string | SysError)[]>;
  /** Optional: lstat(2) of many paths at once, per path as `lstat` answers it. */
  lstats?: (paths: readonly string[]) => Promise<(Stat | SysError)[]>;
  /** Optional: stat(2) of many paths at once, per path as `stat` answers it. */
  stats?: (paths: readonly string[]) => Promise<(Stat | SysError)[]>;
  /** Optional: the entries of many folders at once, per path as `readdir` answers it. */
  readdirs?: (paths: readonly string[]) => Promise<(string[] | SysError)[]>;
  /** Close every fd this process opened (what the kernel does when a process ends). */
  exit(): Promise<void>;
}
