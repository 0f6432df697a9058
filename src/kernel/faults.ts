/**
 * Fault injection for the kernel model (a model-only control, never part of the syscalls seam):
 * a rule makes the next `count` matching syscalls fail with an errno before they run, so the
 * failing call changes nothing in the model — the way a test provokes the EIO of a flaky device
 * or a full disk without hardware.
 *
 * A rule matches a syscall by name (`write`, `open`, `ioctl`) and, optionally, by path: the path
 * given to open(2), or for write/ioctl the path the fd was opened with (what /proc/<pid>/fd/<n>
 * shows). A path ending in `*` is a prefix.
 *
 * @example
 * ```ts
 * import { bootKernel } from "vfioctl";
 * const k = await bootKernel();
 * k.faults.add({ syscall: "write", path: "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", errno: "EIO" });
 * // the next write to that file fails with EIO; the one after it runs normally
 * ```
 */
import { errnoNumber } from "../sys/errno.js";

export type FaultSyscall = "write" | "open" | "ioctl";

export interface FaultSpec {
  syscall: FaultSyscall;
  /** exact path, or a prefix ending in "*"; any path when absent */
  path?: string;
  /** errno name, e.g. "EIO" */
  errno: string;
  /** how many matching calls fail (default 1) */
  count?: number;
}

export interface ActiveFault extends Required<Omit<FaultSpec, "path">> {
  path?: string;
  /** matching calls that still fail */
  remaining: number;
}

export class Faults {
  private rules: ActiveFault[] = [];
  /** how many syscalls have failed by injection so far (lets a recorder notice a consumed rule) */
  taken = 0;

  /** Add a rule; throws on an unknown syscall, errno or a count below 1. */
  add(spec: FaultSpec): void {
    if (spec.syscall !== "write" && spec.syscall !== "open" && spec.syscall !== "ioctl") {
      throw new Error(`faults: syscall must be write, open or ioctl, got ${JSON.stringify(spec.syscall)}`);
    }
    const errno = spec.errno.toUpperCase();
    if (errnoNumber(errno) === undefined) throw new Error(`faults: unknown errno ${JSON.stringify(spec.errno)}`);
    const count = spec.count ?? 1;
    if (!Number.isInteger(count) || count < 1) throw new Error(`faults: count must be a positive integer, got ${count}`);
    this.rules.push({ syscall: spec.syscall, ...(spec.path !== undefined ? { path: spec.path } : {}), errno, count, remaining: count });
  }

  /** Remove every rule. */
  clear(): void {
    this.rules = [];
  }

  /** The rules that still have failures left. */
  list(): ActiveFault[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /**
   * Called by a process before a syscall runs: the errno number it must fail with (consuming one
   * failure of the first matching rule), or undefined.
   */
  take(syscall: string, path: string | undefined): number | undefined {
    if (this.rules.length === 0) return undefined;
    const i = this.rules.findIndex((r) => r.syscall === syscall && matchPath(r.path, path));
    if (i < 0) return undefined;
    const r = this.rules[i]!;
    if (--r.remaining <= 0) this.rules.splice(i, 1);
    this.taken++;
    return errnoNumber(r.errno)!;
  }
}

function matchPath(pattern: string | undefined, path: string | undefined): boolean {
  if (pattern === undefined) return true;
  if (path === undefined) return false;
  if (pattern.endsWith("*")) return path.startsWith(pattern.slice(0, -1));
  return path === pattern;
}
