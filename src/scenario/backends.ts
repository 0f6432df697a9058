/**
 * Backends for the scenario runner: the kernel model booted from the scenario's host file, or a
 * real Linux host (the lab's guests) through `LinuxSyscalls`.
 *
 * @example
 * ```ts
 * import { loadScenario, modelBackend, linuxBackend, runScenario } from "./index.js";
 * const sc = loadScenario("scenarios/sriov-numvfs.yaml");
 * const onModel = await runScenario(sc, await modelBackend(sc, { profile: "6.1" }));
 * const onGuest = await runScenario(sc, await linuxBackend({ profile: "6.1", blockWindowMs: 1500 }));
 * ```
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { bootHostFile, bootKernel } from "../kernel/host/boot.js";
import { FdNumberSpace } from "../kernel/process.js";
import type { KernelConfig, KernelVersion } from "../kernel/profile.js";
import type { ScenarioBackend } from "./runner.js";
import type { Scenario } from "./scenario.js";

/** The model host a scenario names (`host:`, relative to the file), else scenarios/hosts/lab-igb.yaml next to it. */
export function scenarioHostPath(sc: Scenario, override?: string): string {
  if (override) return override;
  return nodePath.resolve(sc.dir, sc.host ?? "hosts/lab-igb.yaml");
}

/**
 * Boot a fresh model for a scenario. `sharedFds`: every scenario process draws its fd numbers
 * from one table (each still owns its fds), as in the lab's guests, where the scenario's
 * processes are sets of fds of one node process; without it each process has its own table.
 */
export async function modelBackend(sc: Scenario, opts: { profile?: string; config?: Partial<KernelConfig>; host?: string; seed?: number; sharedFds?: boolean } = {}): Promise<ScenarioBackend> {
  const profile = (opts.profile ?? sc.profiles[0] ?? "6.1") as KernelVersion;
  const host = scenarioHostPath(sc, opts.host);
  const ko = opts.config ? { profile, config: opts.config } : { profile };
  const kernel = host === "default" ? await bootKernel(undefined, ko) : await bootHostFile(host, ko);
  const space = opts.sharedFds ? new FdNumberSpace(3) : undefined;
  return {
    kind: "model",
    kernel,
    profile,
    blockWindowMs: 0,
    fdTable: space ? "shared" : "per-process",
    fdBase: 3,
    spawn: async (comm) => kernel.spawn(comm, space ? { fdNumbers: space } : {}),
  };
}

/**
 * A real Linux host: every process is a fresh `LinuxSyscalls` — a set of fds of this node
 * process, so they all draw numbers from one table (`fdTable: "shared"`).
 *
 * fd numbers: Linux gives the lowest free number. Before the scenario, every hole in this
 * process's fd table below its highest open fd is filled with an fd on /dev/null (kept open),
 * so the lowest free number (`fdBase`) has nothing open above it and the scenario's fds are
 * numbered from it exactly as in a table of their own that starts there. After each op
 * `foreignFds` lists /proc/self/fd and names any fd no scenario process opened (and any of
 * theirs that is gone): then something else in the process took numbers and they are not
 * comparable.
 */
export async function linuxBackend(opts: { profile: string; blockWindowMs?: number; settleMs?: number; root?: string }): Promise<ScenarioBackend> {
  const { LinuxSyscalls } = await import("../sys/linux/host.js");
  const { ffiAvailable } = await import("../sys/linux/ioctl.js");
  const procs: InstanceType<typeof LinuxSyscalls>[] = [];
  // what the first ioctl or eventfd would load (koffi, libc) is loaded before the table is looked at
  ffiAvailable();
  const table = fdTableOf();
  const before = table ? plugFdHoles(table) : undefined;
  const be: ScenarioBackend = {
    kind: "linux",
    profile: opts.profile,
    blockWindowMs: opts.blockWindowMs ?? 1500,
    settleMs: opts.settleMs ?? 300,
    fdTable: "shared",
    spawn: async () => {
      const p = new LinuxSyscalls(opts.root ? { root: opts.root } : {});
      procs.push(p);
      return p;
    },
  };
  if (before) {
    be.fdBase = Math.max(-1, ...before) + 1;
    be.foreignFds = () => {
      const now = fdTableOf() ?? [];
      const mine = new Set<number>(before);
      for (const p of procs) for (const fd of p.openFds()) mine.add(fd);
      const out: string[] = [];
      for (const fd of now) {
        if (mine.has(fd)) continue;
        let target: string;
        try {
          target = fs.readlinkSync(`/proc/self/fd/${fd}`); // fdTableOf left out the listing's own fd
        } catch {
          continue; // closed since the listing
        }
        out.push(`fd ${fd} → ${target}`);
      }
      const listed = new Set(now);
      for (const fd of mine) if (!listed.has(fd)) out.push(`fd ${fd} closed behind the scenario's back`);
      return out;
    };
  }
  return be;
}

/** The open fd numbers of this process (/proc/self/fd), or undefined where there is none. */
function fdTableOf(): number[] | undefined {
  try {
    return fs
      .readdirSync("/proc/self/fd")
      .map(Number)
      .filter((n) => {
        try {
          fs.fstatSync(n);
          return true;
        } catch {
          return false; // the listing's own directory fd
        }
      })
      .sort((a, b) => a - b);
  } catch {
    return undefined;
  }
}

/** Fill every hole below the highest open fd with /dev/null; returns the table afterwards. */
function plugFdHoles(table: number[]): number[] {
  const open = new Set(table);
  const max = Math.max(-1, ...table);
  for (let n = 0; n < max; n++) {
    if (open.has(n)) continue;
    const fd = fs.openSync("/dev/null", "r"); // the lowest free number: n
    open.add(fd);
    if (fd !== n) break; // something else is opening fds right now: foreignFds will tell
  }
  return [...open].sort((a, b) => a - b);
}
