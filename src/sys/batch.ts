/**
 * Many reads at once over any backend: the backend's batch method when it has one
 * (`Syscalls.readFiles`, `readlinks`, `lstats`, `stats`, `readdirs`: the real backend with its addon),
 * else the single calls, at most {@link IN_FLIGHT} at a time, with the same answers: per path
 * the value or its error (an error that is not an errno, a bug, is thrown), in path order.
 * So a caller reads in stages of whole batches and its code is the same on every backend.
 */
import { isErrno, type SysError } from "./errno.js";
import { readCannotBlock } from "./blocking.js";
import { readBytes, TimeoutError, withTimeout } from "./fsutil.js";
import { type FileRead, type ReadFilesOptions, type Stat, type Syscalls } from "./syscalls.js";

/**
 * How many single calls are in flight at once without a batch method: a read that can block
 * goes to the real backend's threadpool, and with several in flight their waits overlap.
 */
export const IN_FLIGHT = 32;

/** `f` over `xs` with at most `n` calls pending at once; the results in the order of `xs`. */
export async function mapLimit<T, R>(xs: readonly T[], n: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(xs.length);
  let next = 0;
  const worker = async () => {
    while (next < xs.length) {
      const i = next++;
      out[i] = await f(xs[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, xs.length) }, worker));
  return out;
}

/** The call's value, or its errno error as a value (any other error is thrown). */
async function settle<T>(p: Promise<T>): Promise<T | SysError> {
  try {
    return await p;
  } catch (e) {
    if (isErrno(e)) return e;
    throw e;
  }
}

/** {@link Syscalls.readFiles}, or {@link readFilesEach}. */
export function readFilesOf(sys: Syscalls, paths: readonly string[], opts: ReadFilesOptions): Promise<FileRead[]> {
  return sys.readFiles ? sys.readFiles(paths, opts) : readFilesEach(sys, paths, opts);
}

/** Syscalls.readFiles' answers made of single calls: each file read on its own, with the same timeout rule. */
export function readFilesEach(sys: Syscalls, paths: readonly string[], opts: ReadFilesOptions): Promise<FileRead[]> {
  const ms = opts.timeoutMs;
  return mapLimit(paths, IN_FLIGHT, async (p) => {
    const read = readBytes(sys, p, opts.wholeIfShort);
    if (ms === undefined || readCannotBlock(p)) return settle(read);
    try {
      return await withTimeout(read, ms, `read ${p}`);
    } catch (e) {
      if (e instanceof TimeoutError) return null;
      if (isErrno(e)) return e;
      throw e;
    }
  });
}

/** {@link Syscalls.readlinks}, or readlink(2) path by path. */
export function readlinksOf(sys: Syscalls, paths: readonly string[]): Promise<(string | SysError)[]> {
  return sys.readlinks ? sys.readlinks(paths) : mapLimit(paths, IN_FLIGHT, (p) => settle(sys.readlink(p)));
}

/** {@link Syscalls.lstats}, or lstat(2) path by path. */
export function lstatsOf(sys: Syscalls, paths: readonly string[]): Promise<(Stat | SysError)[]> {
  return sys.lstats ? sys.lstats(paths) : mapLimit(paths, IN_FLIGHT, (p) => settle(sys.lstat(p)));
}

/** {@link Syscalls.stats}, or stat(2) path by path. */
export function statsOf(sys: Syscalls, paths: readonly string[]): Promise<(Stat | SysError)[]> {
  return sys.stats ? sys.stats(paths) : mapLimit(paths, IN_FLIGHT, (p) => settle(sys.stat(p)));
}

/** {@link Syscalls.readdirs}, or readdir path by path. */
export function readdirsOf(sys: Syscalls, paths: readonly string[]): Promise<(string[] | SysError)[]> {
  return sys.readdirs ? sys.readdirs(paths) : mapLimit(paths, IN_FLIGHT, (p) => settle(sys.readdir(p)));
}
