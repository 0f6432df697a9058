/**
 * Small helpers over the seam: whole-file sysfs reads and writes, link targets, timeouts.
 * They only use {@link Syscalls}, so they behave the same on a real host and on the model.
 */
import { O_RDONLY, O_WRONLY, type Syscalls } from "./syscalls.js";

export const CHUNK = 65536;
/** sysfs attributes are at most a page: a first read shorter than this returned all of one. */
export const PAGE = 4096;

/** A small file's bytes: open, read(s) (see readToEnd), close; one call where the backend has readFile. */
export async function readBytes(sys: Syscalls, path: string, wholeIfShort: boolean): Promise<Buffer> {
  const whole = sys.readFile?.(path, wholeIfShort);
  if (whole) return whole;
  const fd = await sys.open(path, O_RDONLY);
  try {
    return await readToEnd((n) => sys.read(fd, n), wholeIfShort);
  } finally {
    await sys.close(fd);
  }
}

async function readFd(sys: Syscalls, path: string, wholeIfShort: boolean): Promise<string> {
  return (await readBytes(sys, path, wholeIfShort)).toString("utf8");
}

/**
 * The bytes of an open file, made of read(2)s of CHUNK bytes through `read`: until EOF, or with
 * `wholeIfShort` only the first when it is shorter than a page (an attribute: see readAttr).
 */
export async function readToEnd(read: (length: number) => Promise<Buffer>, wholeIfShort: boolean): Promise<Buffer> {
  const first = await read(CHUNK);
  if (first.length === 0 || (wholeIfShort && first.length < PAGE)) return first;
  const parts: Buffer[] = [first];
  for (;;) {
    const b = await read(CHUNK);
    if (b.length === 0) break;
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/** Read a whole (small) file the way `cat` does: open, read until EOF, close. */
export function readText(sys: Syscalls, path: string): Promise<string> {
  return readFd(sys, path, false);
}

/**
 * Read a sysfs attribute and strip the trailing newline. An attribute is one show() of at most
 * a page, and one read(2) of a page or more returns it whole, so a first read shorter than a
 * page is the whole attribute and no second read looks for the end of the file (a longer one is
 * followed by reads until EOF, as readText does). Also right for the small single-record /proc
 * files read with it (`comm`, `/proc/sys/...`).
 */
export async function readAttr(sys: Syscalls, path: string): Promise<string> {
  const s = await readFd(sys, path, true);
  return s.endsWith("\n") ? s.slice(0, -1) : s;
}

/** Write a string the way `echo X > file` does (one write call); resolves to the byte count. */
export async function writeText(sys: Syscalls, path: string, text: string): Promise<number> {
  const fd = await sys.open(path, O_WRONLY);
  try {
    return await sys.write(fd, text);
  } finally {
    await sys.close(fd);
  }
}

/** True when the path exists (stat succeeds). */
export async function exists(sys: Syscalls, path: string): Promise<boolean> {
  try {
    await sys.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The last path component of a link target (`../../../bus/pci/drivers/vfio-pci` → `vfio-pci`), or null when absent. */
export async function linkBase(sys: Syscalls, path: string): Promise<string | null> {
  try {
    const t = await sys.readlink(path);
    return t.slice(t.lastIndexOf("/") + 1);
  } catch {
    return null;
  }
}

export class TimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what}: still blocked after ${ms} ms`);
    this.name = "TimeoutError";
  }
}

/**
 * Race a pending operation against a timer; the operation keeps running if the timer wins.
 * The timer keeps the event loop alive: a write the kernel model blocks is a promise nothing
 * else keeps alive, and the timeout must still fire. It is cleared as soon as the race settles.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string, onWait?: (w: WaitProgress) => void, everyMs = 1000): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  let iv: NodeJS.Timeout | undefined;
  const t0 = Date.now();
  const timer = new Promise<never>((_, rej) => {
    t = setTimeout(() => rej(new TimeoutError(what, ms)), ms);
  });
  if (onWait) iv = setInterval(() => onWait({ what, elapsedMs: Date.now() - t0, timeoutMs: ms }), everyMs);
  return Promise.race([p, timer]).finally(() => {
    clearTimeout(t);
    if (iv) clearInterval(iv);
  });
}

/** How long a write Linux blocks has been waited for (given to a progress callback every second). */
export interface WaitProgress {
  what: string;
  elapsedMs: number;
  timeoutMs: number;
}
