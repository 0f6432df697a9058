/**
 * The scenario runner: plays a {@link Scenario} against a backend (the kernel model, or a real
 * Linux host through `LinuxSyscalls`) and returns a transcript: per operation the return value,
 * the errno name, the kernel log lines it produced, and whether it is still blocked.
 *
 * - Processes are created on first use with `backend.spawn(name)`; fds are known by name.
 * - Blocking: on the model an op that has not settled once the event loop is idle is blocked
 *   (`kernel.blocked()` names what it sleeps on); on a real kernel, one that has not settled within
 *   `blockWindowMs`. A later `wait: <op>` records its result. While something is blocked, every
 *   following op gives it `settleMs` to finish, so lines logged by the completion are attributed
 *   to the op that released it (e.g. the `close` of the held VF), the same way on both backends.
 * - The kernel log comes from /dev/kmsg through the seam (see ./kmsg.ts).
 * - Host-specific numbers are normalised: fds are names, IOMMU group numbers become
 *   `@group_of(<BDF>)`, `task "comm" (pid)` becomes `task "<comm>" (<pid>)`, timestamps are dropped.
 *   The numbers are recorded beside the names, so a comparison can hold them to Linux's rules:
 *   each new fd as its number minus the backend's `fdBase` (`OpResult.fd`), each IOMMU group
 *   number an op saw under its symbolic form (`OpResult.groups`).
 * - An op may use the name of a closed fd (its last number) or `never-opened` ({@link
 *   NEVER_OPENED_FD}): the kernel's EBADF is recorded like any errno.
 *
 * @example
 * ```ts
 * import { loadScenario, modelBackend, runScenario, formatTranscript } from "vfioctl/scenario";
 * const sc = loadScenario("scenarios/token-decision-table.yaml");
 * const t = await runScenario(sc, await modelBackend(sc, { profile: "6.12" }));
 * console.log(formatTranscript(t));
 * ```
 */
import { SysError } from "../sys/errno.js";
import { exists, linkBase, readAttr, readText, writeText } from "../sys/fsutil.js";
import type { Stat, Syscalls } from "../sys/syscalls.js";
import { major, minor } from "../sys/devnum.js";
import type { Kernel } from "../kernel/kernel.js";
import { buildIoctl } from "./ioctl-args.js";
import { KmsgReader, type LogLine } from "./kmsg.js";
import { forProfile, ScenarioError, type EnsureGoal, type Expect, type LogPattern, type Op, type Scenario } from "./scenario.js";

export interface ScenarioBackend {
  kind: "model" | "linux";
  /** a new process (its own fd table) */
  spawn(comm: string): Promise<Syscalls>;
  /** real kernel: how long an op may take before it counts as blocked */
  blockWindowMs: number;
  /** real kernel: how long a blocked op is given to finish after each later op (default 300) */
  settleMs?: number;
  /** the model, when kind is "model" */
  kernel?: Kernel;
  /** the kernel profile ("6.1", "6.12"); the model's own profile when absent */
  profile?: string;
  /**
   * How the backend's processes number their fds: "per-process" (each has its own table, as
   * the model's processes do by default) or "shared" (one table for all: the lab's guests run
   * every scenario process as a set of fds of one node process). Default "per-process".
   */
  fdTable?: "shared" | "per-process";
  /** the lowest free fd number when the scenario starts (default 3); transcripts record fd − fdBase */
  fdBase?: number;
  /** real kernel: fds that appeared in the table and no scenario process opened (checked after each op) */
  foreignFds?: () => string[];
}

/** The number an op on `never-opened` uses: no scenario opens this many fds (below the default RLIMIT_NOFILE 1024). */
export const NEVER_OPENED_FD = 999;
/** The fd name that stands for a number no process has open. */
export const NEVER_OPENED = "never-opened";

export interface OpResult {
  name: string;
  proc: string;
  kind: Op["kind"];
  /** the macro op this came from */
  from?: string;
  /** the call, with tokens by name and fds by name */
  call: string;
  /** return value; "fd" for a new fd (its number is in `fd`) */
  ret?: number | "fd";
  /** a new fd: its number minus the backend's fdBase (Linux: the lowest free number) */
  fd?: number;
  /** IOMMU group numbers this op saw, by their symbolic form (`@group_of(<BDF>)` → 7) */
  groups?: Record<string, number>;
  errno?: string;
  /** still blocked when the runner moved on */
  blocked?: boolean;
  /** the later op during which this blocked op finished */
  completedDuring?: string;
  /** model only: what the blocked task sleeps on */
  waitingOn?: string;
  value?: string | boolean;
  out?: Record<string, number>;
  log: LogLine[];
  /** ensure: the actions taken */
  actions?: string[];
  /** expectations that did not hold */
  failures?: string[];
}

export interface Transcript {
  scenario: string;
  file: string;
  profile: string;
  backend: "model" | "linux";
  setup: OpResult[];
  ops: OpResult[];
  /** processes still alive at the end are exited; what that logged */
  teardown: OpResult[];
  /** ops still blocked after teardown */
  unfinished: string[];
  failures: { op: string; message: string }[];
  ok: boolean;
  /** how fd numbers were drawn ({@link ScenarioBackend.fdTable}) and from which base */
  fds: { table: "shared" | "per-process"; base: number };
  /** real kernel: fds in the table that no scenario process opened (the fd numbers are not to be trusted then) */
  foreignFds?: string[];
}

/**
 * Lines ignored by `log_exact` (and by default in the library's comparisons; the lab compares
 * them): enumeration and IOMMU-group chatter, and what a first open of a device logs whatever
 * the token does — "enabling device (…)" and, from 6.13, the function reset's "resetting" /
 * "reset done" (check those with `log` / `log_absent`).
 */
export const DEFAULT_LOG_IGNORE: RegExp[] = [
  /^pci [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]: \[[0-9a-f]{4}:[0-9a-f]{4}\] type /,
  /: (Adding to|Removing from) iommu group /,
  /^pci [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]: (VF )?(BAR|reg) /,
  /: enabling device \(/,
  /^[a-z0-9_-]+ [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]: (resetting|reset done)$/,
];

interface Outcome {
  ret?: number | "fd";
  fd?: number;
  errno?: string;
  value?: string | boolean;
  out?: Record<string, number>;
  actions?: string[];
}

interface Proc {
  name: string;
  sys: Syscalls;
  fds: Map<string, number>;
  /** fds this process closed, by name: their last number (an op on one is answered EBADF) */
  closed: Map<string, number>;
  /** the op of this process that is blocked, if any */
  blockedOp?: string;
}

interface Pending {
  op: Op;
  result: OpResult;
  settled: boolean;
  outcome?: Outcome;
  promise: Promise<void>;
}

const BDF_RE = /^(\S+) ([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]): /;
const idle = () => new Promise<void>((r) => setImmediate(r));
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface RunOptions {
  profile?: string;
  /** called after each op of `ops:` (not setup) has been recorded, before the next one starts:
   *  a caller can look at the state the scenario reached (e.g. run read-only commands) */
  afterOp?: (name: string) => Promise<void>;
}

export async function runScenario(sc: Scenario, backend: ScenarioBackend, opts: RunOptions = {}): Promise<Transcript> {
  const profile = opts.profile ?? backend.profile ?? backend.kernel?.profile.version ?? "6.1";
  return new Runner(sc, backend, profile, opts.afterOp).run();
}

class Runner {
  private procs = new Map<string, Proc>();
  private pending = new Map<string, Pending>();
  private outcomes = new Map<string, Outcome>();
  /** IOMMU group number → a device in it, as last seen */
  private groups = new Map<string, string>();
  private kmsg!: KmsgReader;
  private kmsgSys!: Syscalls;
  private readonly ignore: RegExp[];
  private readonly fdBase: number;
  /** the group numbers seen during the current op */
  private seenGroups = new Map<string, number>();
  /** dynamic char majors seen by stat ops, in order of first sight → "dyn1", "dyn2", … */
  private dynMajors = new Map<number, string>();
  /** foreign fds (see ScenarioBackend.foreignFds) → the op after which each was first seen */
  private foreign = new Map<string, string>();

  constructor(
    private readonly sc: Scenario,
    private readonly be: ScenarioBackend,
    private readonly profile: string,
    private readonly afterOp?: (name: string) => Promise<void>,
  ) {
    this.ignore = [...DEFAULT_LOG_IGNORE, ...sc.logIgnore.map((r) => new RegExp(r))];
    this.fdBase = be.fdBase ?? 3;
  }

  async run(): Promise<Transcript> {
    const t: Transcript = {
      scenario: this.sc.title,
      file: this.sc.file,
      profile: this.profile,
      backend: this.be.kind,
      setup: [],
      ops: [],
      teardown: [],
      unfinished: [],
      failures: [],
      ok: true,
      fds: { table: this.be.fdTable ?? "per-process", base: this.fdBase },
    };
    this.kmsgSys = await this.be.spawn("dmesg");
    this.kmsg = new KmsgReader(this.kmsgSys);
    await this.kmsg.start();
    try {
      for (const op of this.sc.setup) {
        if (!this.applies(op)) continue;
        const r = await this.step(op);
        t.setup.push(r);
        for (const f of r.failures ?? []) t.failures.push({ op: `setup ${op.name}`, message: f });
      }
      if (t.failures.length === 0) {
        for (const op of this.sc.ops) {
          if (!this.applies(op)) continue;
          const r = await this.step(op);
          t.ops.push(r);
          for (const f of r.failures ?? []) t.failures.push({ op: op.name, message: f });
          if (this.afterOp) await this.afterOp(op.name);
        }
      }
    } finally {
      await this.teardown(t);
      await this.kmsg.stop();
      await this.kmsgSys.exit().catch(() => {});
    }
    if (this.foreign.size) {
      t.foreignFds = [...this.foreign].map(([x, op]) => `${x} (first seen after ${op})`);
      t.failures.push({ op: "(fd table)", message: `fds no scenario process opened: ${t.foreignFds.join("; ")} (fd numbers are not comparable)` });
    }
    t.ok = t.failures.length === 0;
    return t;
  }

  private applies(op: Op): boolean {
    if (!op.only) return true;
    const profiles = op.only.filter((x) => x !== "model" && x !== "linux");
    const backends = op.only.filter((x) => x === "model" || x === "linux");
    return (profiles.length === 0 || profiles.includes(this.profile)) && (backends.length === 0 || backends.includes(this.be.kind));
  }

  private async proc(name: string): Promise<Proc> {
    let p = this.procs.get(name);
    if (!p) {
      p = { name, sys: await this.be.spawn(name), fds: new Map(), closed: new Map() };
      this.procs.set(name, p);
    }
    return p;
  }

  private err(op: Op, msg: string): ScenarioError {
    return new ScenarioError(this.sc.file, `op ${op.name}`, msg);
  }

  /** Run one op: start it, decide blocked or not, let blocked ones settle, drain the log, check. */
  private async step(op: Op): Promise<OpResult> {
    const before = [...this.pending.values()].filter((p) => !p.settled);
    const result: OpResult = { name: op.name, proc: op.proc, kind: op.kind, ...(op.from && op.from !== op.name ? { from: op.from } : {}), call: "", log: [] };
    this.seenGroups = new Map();
    if (op.kind === "wait") {
      result.call = `wait ${op.target}`;
      const p = this.pending.get(op.target!);
      if (p) {
        if (!p.settled) await this.settleOne(p, this.be.kind === "model" ? 0 : this.be.blockWindowMs);
        if (p.settled) {
          this.pending.delete(op.target!);
          Object.assign(result, strip(p.outcome!));
        } else {
          result.blocked = true;
          this.waitingOn(p.op, result);
        }
      } else {
        const o = this.outcomes.get(op.target!);
        if (!o) throw this.err(op, `wait: ${op.target} has not run`);
        Object.assign(result, strip(o));
      }
    } else {
      const proc = op.kind === "signal" ? null : await this.proc(op.proc);
      if (proc?.blockedOp) throw this.err(op, `process ${proc.name} is blocked in ${proc.blockedOp}; add a wait: ${proc.blockedOp} first`);
      const { call, run } = this.prepare(op, proc);
      result.call = call;
      const p: Pending = { op, result, settled: false, promise: Promise.resolve() };
      p.promise = run().then(
        (o) => {
          p.settled = true;
          p.outcome = o;
        },
        (e) => {
          p.settled = true;
          if (e instanceof SysError) p.outcome = { errno: e.code };
          else p.outcome = { errno: "EXCEPTION", value: String((e as Error)?.message ?? e) };
        },
      );
      await this.settleOne(p, this.be.kind === "model" ? 0 : this.be.blockWindowMs);
      if (p.settled) {
        if (p.outcome!.errno === "EXCEPTION") throw this.err(op, String(p.outcome!.value));
        Object.assign(result, strip(p.outcome!));
        this.outcomes.set(op.name, p.outcome!);
        if (p.outcome!.actions) result.actions = p.outcome!.actions;
      } else {
        result.blocked = true;
        this.waitingOn(op, result);
        this.pending.set(op.name, p);
        if (proc) proc.blockedOp = op.name;
        void p.promise.then(() => {
          this.outcomes.set(op.name, p.outcome!);
          if (proc && proc.blockedOp === op.name) delete proc.blockedOp;
        });
      }
    }
    await this.settleOthers(op, before);
    result.log = (await this.kmsg.drain()).map((l) => ({ level: l.level, text: this.normLog(l.text) }));
    if (result.value !== undefined && typeof result.value === "string") result.value = this.normValue(result.value);
    if (this.seenGroups.size) result.groups = Object.fromEntries([...this.seenGroups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    this.checkFdTable(op.name);
    const f = this.check(op.expect, result);
    if (f.length) result.failures = f;
    return result;
  }

  private waitingOn(op: Op, r: OpResult): void {
    const k = this.be.kernel;
    const sys = this.procs.get(op.proc)?.sys;
    if (!k || !sys) return;
    const b = k.blocked().find((x) => x.pid === sys.pid);
    r.waitingOn = b ? b.waitingOn : "(not in kernel.blocked(): the model lost a wakeup?)";
  }

  /** Wait until `p` settles: model — until the event loop is idle; real — up to `ms`. */
  private async settleOne(p: Pending, ms: number): Promise<void> {
    if (this.be.kind === "model") {
      for (let i = 0; i < 3 && !p.settled; i++) await idle();
      return;
    }
    if (p.settled) return;
    await Promise.race([p.promise, delay(ms)]);
  }

  /** Give blocked ops a chance to finish after `cause`; mark those that did. */
  private async settleOthers(cause: Op, before?: Pending[]): Promise<void> {
    const open = (before ?? [...this.pending.values()]).filter((p) => p.op !== cause && p.op.name !== cause.target);
    if (open.length === 0) return;
    if (this.be.kind === "model") {
      for (let i = 0; i < 3; i++) await idle();
    } else {
      const deadline = Date.now() + (this.be.settleMs ?? 300);
      for (const p of open) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        await Promise.race([p.promise, delay(left)]);
      }
    }
    for (const p of open) if (p.settled && !p.result.completedDuring) p.result.completedDuring = cause.name;
  }

  private async teardown(t: Transcript): Promise<void> {
    for (const p of [...this.procs.values()]) {
      if (p.blockedOp && !this.pending.get(p.blockedOp)?.settled) continue;
      const r: OpResult = { name: `exit ${p.name}`, proc: p.name, kind: "exit", call: "exit", log: [] };
      await p.sys.exit().catch(() => {});
      this.procs.delete(p.name);
      await this.settleOthers({ kind: "exit", name: r.name, proc: p.name, expect: {} });
      this.seenGroups = new Map();
      r.log = (await this.kmsg.drain()).map((l) => ({ level: l.level, text: this.normLog(l.text) }));
      if (this.seenGroups.size) r.groups = Object.fromEntries([...this.seenGroups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      this.checkFdTable(r.name);
      t.teardown.push(r);
    }
    for (const [name, p] of this.pending) {
      if (!p.settled) await this.settleOne(p, this.be.blockWindowMs);
      if (!p.settled) t.unfinished.push(name);
    }
    // processes whose op was blocked: exit them last
    for (const p of this.procs.values()) await p.sys.exit().catch(() => {});
    this.procs.clear();
  }

  // ------------------------------------------------------------------ ops

  /**
   * The number behind an fd name of `proc`: an open fd, a closed one (its last number: the
   * kernel answers EBADF), or {@link NEVER_OPENED}. A closed fd's number that is open again —
   * in this process, or in any scenario process when they share one table — is refused: the
   * call would reach that other file, not answer EBADF.
   */
  private fdOf(op: Op, proc: Proc, name: string): number {
    const fd = proc.fds.get(name);
    if (fd !== undefined) return fd;
    if (name === NEVER_OPENED) return NEVER_OPENED_FD;
    const old = proc.closed.get(name);
    if (old === undefined) throw this.err(op, `process ${proc.name} has no fd named ${JSON.stringify(name)} (has: ${[...proc.fds.keys()].join(", ") || "none"}; closed: ${[...proc.closed.keys()].join(", ") || "none"})`);
    const shared = this.be.fdTable === "shared";
    for (const p of this.procs.values()) {
      if (p !== proc && !shared) continue;
      for (const [n, x] of p.fds) if (x === old) throw this.err(op, `fd ${name} of ${proc.name} was closed and its number is open again as ${p.name}'s ${n}: the call would reach that file (use ${NEVER_OPENED}, or close it later)`);
    }
    return old;
  }

  /** An fd of `proc` got number `fd` under `name`. */
  private newFd(proc: Proc, name: string, fd: number): Outcome {
    proc.fds.set(name, fd);
    proc.closed.delete(name);
    return { ret: "fd", fd: fd - this.fdBase };
  }

  private checkFdTable(after: string): void {
    for (const x of this.be.foreignFds?.() ?? []) if (!this.foreign.has(x)) this.foreign.set(x, after);
  }

  private uuid(op: Op, t: string): string {
    if (t in this.sc.tokens) return this.sc.tokens[t]!;
    if (/^[0-9a-fA-F-]{36}$/.test(t)) return t;
    throw this.err(op, `unknown token ${t}`);
  }

  /** Hide every token UUID in text behind its name. */
  private maskTokens(s: string): string {
    let out = s;
    for (const [n, u] of Object.entries(this.sc.tokens)) out = out.replace(new RegExp(u.replace(/-/g, "-"), "gi"), `{${n}}`);
    return out;
  }

  private async groupPath(op: Op, sys: Syscalls, bdf: string): Promise<string> {
    let target: string;
    try {
      target = await sys.readlink(`/sys/bus/pci/devices/${bdf}/iommu_group`);
    } catch (e) {
      throw this.err(op, `group_of ${bdf}: cannot read its iommu_group link (${(e as SysError).code ?? e})`);
    }
    const n = target.slice(target.lastIndexOf("/") + 1);
    this.groups.set(n, bdf);
    this.seenGroups.set(`@group_of(${bdf})`, Number(n));
    return `/dev/vfio/${n}`;
  }

  /** /dev/vfio/devices/vfio<N> of a device, from its vfio-dev/ directory (as the kernel selftests find it) */
  private async cdevPath(op: Op, sys: Syscalls, bdf: string): Promise<string> {
    let names: string[];
    try {
      names = await sys.readdir(`/sys/bus/pci/devices/${bdf}/vfio-dev`);
    } catch (e) {
      throw this.err(op, `cdev_of ${bdf}: cannot read its vfio-dev directory (${(e as SysError).code ?? e})`);
    }
    const n = names.find((x) => /^vfio\d+$/.test(x));
    if (!n) throw this.err(op, `cdev_of ${bdf}: no vfio<N> in its vfio-dev directory`);
    return `/dev/vfio/devices/${n}`;
  }

  /** The file an open or stat op names: its path, or the device's group or cdev node. */
  private nodePath(op: Op, sys: Syscalls): Promise<string> {
    if (op.groupOf) return this.groupPath(op, sys, op.groupOf);
    if (op.cdevOf) return this.cdevPath(op, sys, op.cdevOf);
    return Promise.resolve(op.path!);
  }

  /**
   * A stat result as one comparable line: kind, permission bits, owner, and for a device node
   * its number. A major Linux hands out at run time (fs/char_dev.c find_dynamic_major: 254…234,
   * then 511…384) is shown as dyn1, dyn2 … in the order the run first saw it, so two kernels
   * compare equal when they give every node the same major as each other node, whatever number
   * it got; a fixed major (10 misc, 1 mem) and every minor are compared as numbers.
   */
  private statValue(st: Stat): string {
    const owner = `${st.uid ?? "?"}:${st.gid ?? "?"}`;
    const head = `${st.kind} ${st.mode.toString(8).padStart(4, "0")} ${owner}`;
    if (st.kind !== "char") return head;
    const ma = major(st.rdev);
    const dynamic = (ma >= 234 && ma <= 254) || (ma >= 384 && ma <= 511);
    let shown = String(ma);
    if (dynamic) {
      shown = this.dynMajors.get(ma) ?? `dyn${this.dynMajors.size + 1}`;
      this.dynMajors.set(ma, shown);
    }
    return `${head} ${shown}:${minor(st.rdev)}`;
  }

  private prepare(op: Op, proc: Proc | null): { call: string; run: () => Promise<Outcome> } {
    const sys = proc?.sys as Syscalls;
    switch (op.kind) {
      case "write":
        return { call: this.maskTokens(`write ${op.path} ${JSON.stringify(op.data)}`), run: async () => ({ ret: await writeText(sys, op.path!, op.data!) }) };
      case "read":
        if (op.fd !== undefined) {
          // read(2) on an fd of the process: ret = the byte count
          return {
            call: `read ${op.fd} ${op.size ?? 4} bytes`,
            run: async () => ({ ret: (await sys.read(this.fdOf(op, proc!, op.fd!), op.size ?? 4)).length }),
          };
        }
        return { call: `read ${op.path}`, run: async () => ({ value: await readText(sys, op.path!) }) };
      case "readlink":
        return {
          call: `readlink ${op.path}${op.base ? " (last component)" : ""}`,
          run: async () => {
            const v = await sys.readlink(op.path!);
            return { value: op.base ? v.slice(v.lastIndexOf("/") + 1) : v };
          },
        };
      case "exists":
        return { call: `exists ${op.path}`, run: async () => ({ value: await exists(sys, op.path!) }) };
      case "stat":
        return {
          call: `${op.nofollow ? "lstat" : "stat"} ${nodeText(op)}`,
          run: async () => {
            const path = await this.nodePath(op, sys);
            const st = op.nofollow ? await sys.lstat(path) : await sys.stat(path);
            return { value: this.statValue(st) };
          },
        };
      case "open":
        return {
          call: `open ${nodeText(op)} as ${op.as}`,
          run: async () => {
            const path = await this.nodePath(op, sys);
            return this.newFd(proc!, op.as!, await sys.open(path, op.flags ?? 0));
          },
        };
      case "close":
        return {
          call: `close ${op.fd}`,
          run: async () => {
            const fd = this.fdOf(op, proc!, op.fd!);
            if (proc!.fds.delete(op.fd!)) proc!.closed.set(op.fd!, fd);
            await sys.close(fd);
            return { ret: 0 };
          },
        };
      case "eventfd":
        return {
          call: `eventfd as ${op.as}`,
          run: async () => {
            return this.newFd(proc!, op.as!, await sys.eventfd(0, 0));
          },
        };
      case "exit":
        return {
          call: "exit",
          run: async () => {
            await sys.exit();
            this.procs.delete(proc!.name);
            return { ret: 0 };
          },
        };
      case "sleep":
        return {
          call: `sleep ${op.ms} ms`,
          run: async () => {
            if (this.be.kernel) {
              this.be.kernel.advance(op.ms!);
              await idle();
            } else await delay(op.ms!);
            return { ret: 0 };
          },
        };
      case "signal":
        return {
          call: `signal ${op.target}`,
          run: async () => {
            const target = this.procs.get(op.target!);
            if (!target) throw this.err(op, `signal: no process ${op.target}`);
            if (!this.be.kernel) throw this.err(op, "signal: only the model can signal a process (mark the op only: model)");
            this.be.kernel.signal(target.sys.pid);
            return { ret: 0 };
          },
        };
      case "ensure":
        return { call: `ensure ${JSON.stringify(op.ensure)}`, run: () => this.ensure(op, sys, op.ensure!) };
      case "ioctl": {
        const ctx = { fd: (n: string) => this.fdOf(op, proc!, n), uuid: (t: string) => this.uuid(op, t), err: (m: string) => this.err(op, m) };
        // the call text needs no fd numbers, so it can be built before the fds exist
        const textCtx = { ...ctx, fd: () => 0 };
        const shown = buildIoctl(op.request as never, op.fd!, op.args ?? {}, textCtx, op.raw).text;
        return {
          call: `ioctl ${this.maskTokens(shown)}${op.as && op.request === "GROUP_GET_DEVICE_FD" ? ` as ${op.as}` : ""}`,
          run: async () => {
            const b = buildIoctl(op.request as never, op.fd!, op.args ?? {}, ctx, op.raw);
            const fd = this.fdOf(op, proc!, op.fd!);
            const ret = await sys.ioctl(fd, b.request, b.arg);
            if (op.request === "GROUP_GET_DEVICE_FD") return this.newFd(proc!, op.as!, ret);
            const o: Outcome = { ret };
            if (b.decode && b.arg instanceof Buffer) o.out = b.decode(b.arg);
            return o;
          },
        };
      }
      default:
        throw this.err(op, `cannot run ${op.kind} here`);
    }
  }

  /** setup: bring a device, module parameter or driver into the wanted state with plain writes. */
  private async ensure(op: Op, sys: Syscalls, g: EnsureGoal): Promise<Outcome> {
    const actions: string[] = [];
    const w = async (path: string, data: string, mayFail = false): Promise<void> => {
      try {
        await writeText(sys, path, data);
        actions.push(`write ${path} ${JSON.stringify(data)}`);
      } catch (e) {
        actions.push(`write ${path} ${JSON.stringify(data)} → ${(e as SysError).code ?? e}`);
        if (!mayFail) throw this.err(op, `setup: write ${path} ${JSON.stringify(data)} failed: ${(e as SysError).code ?? e}`);
      }
    };
    if ("driver_loaded" in g) {
      if (!(await exists(sys, `/sys/bus/pci/drivers/${g.driver_loaded}`))) throw this.err(op, `setup: driver ${g.driver_loaded} is not loaded (no /sys/bus/pci/drivers/${g.driver_loaded})`);
      return { ret: 0, actions };
    }
    if ("param" in g) {
      const cur = (await readAttr(sys, g.param)).trim();
      const b = (s: string) => (/^(y|1|on|true)$/i.test(s) ? "Y" : /^(n|0|off|false)$/i.test(s) ? "N" : s);
      if (b(cur) !== b(g.value)) await w(g.param, g.value);
      return { ret: 0, actions };
    }
    const dev = `/sys/bus/pci/devices/${g.bdf}`;
    if (!(await exists(sys, dev))) throw this.err(op, `setup: no device ${g.bdf}`);
    const hasSriov = await exists(sys, `${dev}/sriov_numvfs`);
    const numvfs = async () => (hasSriov ? Number(await readAttr(sys, `${dev}/sriov_numvfs`)) : 0);
    if (g.driver !== undefined) {
      const want = g.driver === "none" ? null : g.driver;
      const cur = await linkBase(sys, `${dev}/driver`);
      if (cur !== want) {
        if ((await numvfs()) > 0) await w(`${dev}/sriov_numvfs`, "0", true);
        if ((await numvfs()) > 0 && !cur && (await exists(sys, "/sys/bus/pci/drivers/pci-pf-stub"))) {
          // a PF whose driver left SR-IOV enabled (pci-pf-stub unbound): no driver can disable
          // the VFs and vfio-pci refuses the PF, so borrow pci-pf-stub to turn SR-IOV off
          await w(`${dev}/driver_override`, "pci-pf-stub");
          await w("/sys/bus/pci/drivers_probe", g.bdf);
          await w(`${dev}/sriov_numvfs`, "0");
          await w("/sys/bus/pci/drivers/pci-pf-stub/unbind", g.bdf);
          await w(`${dev}/driver_override`, "\n");
        }
        if (cur) await w(`/sys/bus/pci/drivers/${cur}/unbind`, g.bdf);
        if (want) {
          if (!(await exists(sys, `/sys/bus/pci/drivers/${want}`))) throw this.err(op, `setup: driver ${want} is not loaded`);
          await w(`${dev}/driver_override`, want);
          await w("/sys/bus/pci/drivers_probe", g.bdf);
          await w(`${dev}/driver_override`, "\n");
          const now = await linkBase(sys, `${dev}/driver`);
          if (now !== want) throw this.err(op, `setup: ${g.bdf} did not bind to ${want} (driver: ${now ?? "none"})`);
        }
      }
    }
    if (g.sriov_numvfs !== undefined) {
      if (!hasSriov) throw this.err(op, `setup: ${g.bdf} has no sriov_numvfs`);
      const cur = await numvfs();
      if (cur !== g.sriov_numvfs) {
        if (cur > 0 && g.sriov_numvfs > 0) await w(`${dev}/sriov_numvfs`, "0");
        await w(`${dev}/sriov_numvfs`, String(g.sriov_numvfs));
      }
    }
    return { ret: 0, actions };
  }

  // ------------------------------------------------------------------ normalising

  normLog(text0: string): string {
    let text = text0.replace(/task "[^"]*" \(\d+\)/g, 'task "<comm>" (<pid>)');
    text = this.maskTokens(text);
    const m = BDF_RE.exec(text);
    if (/iommu group \d+/.test(text)) {
      if (m && /(Adding to|Removing from) iommu group \d+/.test(text)) {
        const n = /iommu group (\d+)/.exec(text)![1]!;
        this.groups.set(n, m[2]!);
        this.seenGroups.set(`@group_of(${m[2]})`, Number(n));
        text = text.replace(/iommu group \d+/, `iommu group @group_of(${m[2]})`);
      } else text = text.replace(/iommu group (\d+)/g, (_x, n: string) => `iommu group ${this.symbolic(n)}`);
    }
    return text;
  }

  normValue(v: string): string {
    return this.maskTokens(v).replace(/iommu_groups\/(\d+)/g, (_x, n: string) => `iommu_groups/${this.symbolic(n)}`);
  }

  /** `@group_of(<BDF>)` for a group number seen before (else `@group`); records the number */
  private symbolic(n: string): string {
    const s = this.groups.has(n) ? `@group_of(${this.groups.get(n)})` : "@group";
    this.seenGroups.set(s === "@group" ? `@group(${n})` : s, Number(n));
    return s;
  }

  // ------------------------------------------------------------------ expectations

  private check(e: Expect, r: OpResult): string[] {
    if (e.any) return [];
    const f: string[] = [];
    const P = this.profile;
    const wantBlocked = forProfile(e.blocked, P) ?? false;
    const got = () => (r.blocked ? "blocked" : r.errno ? r.errno : `ret ${r.ret ?? "-"}`);
    if (!!r.blocked !== wantBlocked) f.push(`expected ${wantBlocked ? "blocked" : "it to finish"}, got ${got()}${r.waitingOn && !wantBlocked ? ` (waiting on ${r.waitingOn})` : ""}`);
    if (!r.blocked && !wantBlocked) {
      const errno = forProfile(e.errno, P) ?? "none";
      if ((r.errno ?? "none") !== errno) f.push(`expected ${errno === "none" ? "success" : errno}, got ${got()}`);
      const ret = forProfile(e.ret, P);
      if (ret !== undefined && r.ret !== ret) f.push(`expected ret ${ret}, got ${got()}`);
      const value = forProfile(e.value, P);
      if (value !== undefined && r.value !== value) f.push(`expected value ${JSON.stringify(value)}, got ${JSON.stringify(r.value)}`);
      const out = forProfile(e.out, P);
      if (out) for (const [k, v] of Object.entries(out)) if (r.out?.[k] !== Number(v)) f.push(`expected out.${k} = ${v}, got ${r.out?.[k]}`);
    }
    const log = forProfile(e.log, P);
    if (log) {
      let i = 0;
      for (const pat of log) {
        while (i < r.log.length && !logMatch(pat, r.log[i]!)) i++;
        if (i >= r.log.length) {
          f.push(`expected log line ${showPat(pat)}${r.log.length ? "" : " (nothing was logged)"}`);
          break;
        }
        i++;
      }
    }
    const exact = forProfile(e.log_exact, P);
    if (exact) {
      const lines = r.log.filter((l) => !this.ignore.some((re) => re.test(l.text)));
      const ok = lines.length === exact.length && exact.every((p, j) => logMatch(p, lines[j]!));
      if (!ok) f.push(`expected exactly ${exact.length ? exact.map(showPat).join(", ") : "no log lines"}; got ${lines.length ? lines.map((l) => JSON.stringify(l.text)).join(", ") : "none"}`);
    }
    const absent = forProfile(e.log_absent, P);
    if (absent) for (const p of absent) if (r.log.some((l) => logMatch(p, l))) f.push(`expected no log line ${showPat(p)}`);
    return f;
  }
}

function strip(o: Outcome): Partial<OpResult> {
  const r: Partial<OpResult> = {};
  if (o.ret !== undefined) r.ret = o.ret;
  if (o.fd !== undefined) r.fd = o.fd;
  if (o.errno !== undefined) r.errno = o.errno;
  if (o.value !== undefined) r.value = o.value;
  if (o.out !== undefined) r.out = o.out;
  return r;
}

export function logMatch(p: LogPattern, l: LogLine): boolean {
  const text = typeof p === "string" ? p : p.text;
  if (typeof p === "object" && p.level && p.level !== l.level) return false;
  if (text.length > 1 && text.startsWith("/") && text.endsWith("/")) return new RegExp(text.slice(1, -1)).test(l.text);
  return text === l.text;
}

function showPat(p: LogPattern): string {
  return typeof p === "string" ? JSON.stringify(p) : `${p.level ?? ""} ${JSON.stringify(p.text)}`;
}

/** How an open or stat op names its file in the transcript. */
function nodeText(op: Op): string {
  return op.groupOf ? `group_of(${op.groupOf})` : op.cdevOf ? `cdev_of(${op.cdevOf})` : op.path!;
}
