/**
 * The persisted simulated host: `vfioctl --sim [HOSTFILE] --state DIR <command>`.
 *
 * The kernel model is deterministic (seeded RNG, model clock), so the state of a simulated host
 * is its host description, its boot's RNG seed and the state-changing syscalls issued since that
 * boot. Each invocation boots a fresh kernel from the stored description and seed, replays the
 * log in order (re-creating processes: the kernel allocates pids sequentially, so they come out
 * the same, and replay checks it), then hands the command a recording process. DIR holds:
 *
 *   DIR/host.json   { v, source, host (the description used at first boot), profile, boot,
 *                     seed, bootWallMs, lastWallMs, createdMs } — the log's boot record is the
 *                     authority for boot and seed; host.json mirrors it
 *   DIR/log.jsonl   this boot's records (src/sim/log.ts), appended synchronously as each call
 *                     is issued and as it completes: a kill -9 at any moment leaves a prefix
 *   DIR/root/       the simulated host's own files (hostFiles(DIR/root)): /etc/modprobe.d,
 *                     /etc/systemd/system, /etc/udev/rules.d, the token store, the unit journal
 *   DIR/lock        O_EXCL lock file with the owner's pid (stale when that pid is gone)
 *
 * Replay rules: a call with no `done` record (abandoned at --timeout, or its invocation was
 * killed) is issued and not awaited, so it stays pending in the replayed kernel and completes
 * when whatever blocks it goes away — as on Linux; if it then completes in a live invocation,
 * its `done` record is appended then. A replayed call whose result differs from the record, or
 * that is still pending where the record says it completed, stops the invocation with an error
 * naming DIR and the record. fd numbers are mapped from the recorded ones to the replayed ones
 * (also inside VFIO_GROUP_SET_CONTAINER and VFIO_DEVICE_SET_IRQS eventfd arguments). A command
 * process that never recorded its exit (its vfioctl was killed) is exited after replay, as the
 * kernel does when a process dies; holder processes (`sim hold`) persist until `sim release`.
 *
 * Secrets: VF tokens handed to the kernel are never written to the log: see src/sim/secrets.ts
 * (the log keeps zero bytes and an HMAC reference; the values live in the 0600 token store
 * DIR/root/var/lib/vfioctl/sim-tokens, dropped at reboot).
 *
 * Time: at the start of each invocation the model clock advances by the wall time elapsed since
 * the previous one (a `clock` record, so replays reproduce it); /proc/stat btime is the boot's
 * wall-clock time.
 *
 * Boot units, udev: `sim reboot` (src/cli/commands/sim.ts → SimSession.reboot) starts a new boot
 * and runs the enabled vfioctl units; after every command the queued uevents are matched against
 * the host's udev rules and the units or RUN commands they ask for run (src/sim/udev.ts).
 * Commands run that way go through `main()` in-process with `--sim --state DIR` prepended; they
 * share the running session (no second lock, no second replay).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { createHash, randomInt } from "node:crypto";
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Backend, MainIo } from "../cli/main.js";
import type { GlobalOptions, Output } from "../cli/context.js";
import { SeededRng } from "../kernel/clock.js";
import type { FaultSpec } from "../kernel/faults.js";
import { bootKernel } from "../kernel/host/boot.js";
import { DEFAULT_HOST } from "../kernel/host/default-host.js";
import { parseHost, HostFileError, type HostDesc } from "../kernel/host/host-file.js";
import type { Kernel } from "../kernel/kernel.js";
import type { ModelProcess } from "../kernel/process.js";
import { isErrno } from "../sys/errno.js";
import { hostFiles, type HostFiles } from "../sys/hostfs.js";
import { decodeData, describeCall, SimLog, SimStateError, type BootRec, type CallRec, type DoneRec, type Rec } from "./log.js";
import { failureOf, RecordingProcess, type RecorderHost } from "./recorder.js";
import { restoreSecrets, TokenStore, TOKEN_STORE } from "./secrets.js";
import { applyRules, readRules } from "./udev.js";
import { enabledUnits, failedCondition, loadUnit, readModprobe, splitArgv, systemctlStart, vfioctlArgs } from "./units.js";

export { SimStateError } from "./log.js";

export interface HostJson {
  v: 1;
  /** the host file given at first use, or "(built-in default host)" */
  source: string;
  host: HostDesc;
  profile: string;
  boot: number;
  seed: number;
  bootWallMs: number;
  lastWallMs: number;
  createdMs: number;
}

/** The unit journal of the simulated host (output of units and udev RUN commands). */
export const SIM_JOURNAL = "/var/log/vfioctl-sim/journal.log";

const DEFAULT_SOURCE = "(built-in default host)";
/** fd number handed to replay for a recorded fd that has no replayed counterpart (gives EBADF) */
const NO_FD = 1 << 30;
/** udev passes after a command: events caused by the commands rules ran are handled this often */
const UDEV_ROUNDS = 3;

type Settled = { ok: true; v: unknown } | { ok: false; e: unknown };

export interface SimProc {
  pid: number;
  comm: string;
  kind: "cmd" | "holder";
  holds?: string;
  proc: ModelProcess;
  /** recorded fd number → replayed fd number */
  fdmap: Map<number, number>;
  /** recorded fd number → the path it was opened with (for messages) */
  fdPath: Map<number, string>;
  exited: boolean;
}

interface PendingCall {
  rec: CallRec;
  line: number;
  settled: Settled | null;
  done: Promise<void>;
  hasDone: boolean;
}

/** A call replayed without a done record that completed in this (live) invocation. */
export interface LateCompletion {
  pid: number;
  what: string;
  result: string;
}

export interface UnitRun {
  unit: string;
  /** why: "boot", or the uevent that asked for it */
  why: string;
  lines: { line: string; code: number | null; skipped?: string }[];
  ok: boolean;
  output: string[];
}

const active = new AsyncLocalStorage<SimSession>();
const byKernel = new WeakMap<Kernel, SimSession>();

/** The persisted session a kernel belongs to (commands use it through ctx.kernel). */
export function simSessionOf(kernel: Kernel | undefined): SimSession | undefined {
  return kernel ? byKernel.get(kernel) : undefined;
}

/** Open DIR for one invocation (or join the running one from a boot unit or udev run). */
export async function openSimState(dir: string, opts: GlobalOptions, io?: Output): Promise<Backend> {
  const abs = resolve(dir);
  const outer = active.getStore();
  if (outer && outer.dir === abs && !outer.closed) return outer.nestedBackend(opts);
  const s = await SimSession.open(abs, opts, io ?? stdOutput);
  return s.backend();
}

const stdOutput: Output = {
  out: (s) => process.stdout.write(s.endsWith("\n") ? s : s + "\n"),
  err: (s) => process.stderr.write(s.endsWith("\n") ? s : s + "\n"),
};

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x));
}

function writeJsonAtomic(path: string, v: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(v, null, 2) + "\n");
  renameSync(tmp, path);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Take DIR/lock (O_EXCL, with our pid); a lock whose pid is gone is stale and replaced. */
async function acquireLock(dir: string, waitMs = 10_000): Promise<string> {
  const path = join(dir, "lock");
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(path, "wx", 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let pid = NaN;
    let age = 0;
    try {
      pid = parseInt(readFileSync(path, "utf8"), 10);
      age = Date.now() - statSync(path).mtimeMs;
    } catch {
      continue; // removed meanwhile
    }
    // an empty lock file is a writer killed between create and write: stale after 2 s
    const stale = Number.isInteger(pid) && pid > 0 ? !pidAlive(pid) : age > 2000;
    if (stale) {
      try {
        unlinkSync(path);
      } catch {
        /* someone else removed it */
      }
      continue;
    }
    if (Date.now() > deadline) throw new Error(`--state ${dir}: in use by another vfioctl (pid ${Number.isNaN(pid) ? "?" : pid}, ${path}); invocations on one state dir run one at a time`);
    await sleep(20);
  }
}

/** Wait until a replayed call settles, giving the model's microtasks and a few event-loop turns. */
async function settle(pc: PendingCall): Promise<void> {
  for (let i = 0; i < 64 && !pc.settled; i++) await undefined;
  for (let i = 0; i < 20 && !pc.settled; i++) await new Promise<void>((r) => setImmediate(r));
}

function resultText(s: Settled): string {
  if (s.ok) return s.v === undefined ? "ok" : `ret ${String(s.v)}`;
  const f = failureOf(s.e);
  return f.errno ?? `error ${f.error}`;
}

export class SimSession implements RecorderHost {
  kernel!: Kernel;
  /** boot generation: bumped by a reboot, so processes of the old kernel stop recording */
  gen = 0;
  closed = false;
  readonly files: HostFiles;
  readonly log: SimLog;
  readonly tokens: TokenStore;
  host!: HostJson;
  bootRec!: BootRec;
  readonly procs = new Map<number, SimProc>();
  private nextId = 1;
  private replaying = true;
  private lockPath = "";
  private cmd: RecordingProcess | null = null;
  /** calls replayed without a done record that completed live */
  readonly late: LateCompletion[] = [];
  /** records in the log (for `sim status`) */
  records = 0;

  private constructor(
    readonly dir: string,
    public io: Output,
  ) {
    this.files = hostFiles(join(dir, "root"));
    this.log = new SimLog(join(dir, "log.jsonl"), dir);
    this.tokens = new TokenStore(this.files.real(TOKEN_STORE), dir);
  }

  // ------------------------------------------------------------------ RecorderHost

  recording(gen: number): boolean {
    return !this.closed && !this.replaying && gen === this.gen;
  }
  nextCallId(): number {
    return this.nextId++;
  }
  append(r: Rec): void {
    this.log.append(r);
    this.records++;
  }
  exited(pid: number): void {
    const p = this.procs.get(pid);
    if (p) p.exited = true;
  }

  // ------------------------------------------------------------------ opening

  static async open(dir: string, opts: GlobalOptions, io: Output): Promise<SimSession> {
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`--state ${dir}: not a directory`);
    mkdirSync(dir, { recursive: true });
    const s = new SimSession(dir, io);
    s.lockPath = await acquireLock(dir);
    try {
      await s.start(opts);
    } catch (e) {
      s.closed = true;
      s.releaseLock();
      throw e;
    }
    byKernel.set(s.kernel, s);
    return s;
  }

  private hostPath(): string {
    return join(this.dir, "host.json");
  }

  /** The description and profile this invocation asks for (undefined: whatever is stored). */
  private wanted(opts: GlobalOptions): { source?: string; host?: HostDesc; profile?: string } {
    const out: { source?: string; host?: HostDesc; profile?: string } = {};
    if (opts.simFile) {
      let text: string;
      try {
        text = readFileSync(opts.simFile, "utf8");
      } catch (e) {
        throw new HostFileError(opts.simFile, "(file)", "a readable host description", (e as NodeJS.ErrnoException).code ?? "EIO");
      }
      out.source = resolve(opts.simFile);
      out.host = JSON.parse(JSON.stringify(parseHost(text, opts.simFile))) as HostDesc;
    }
    if (opts.profile) out.profile = opts.profile;
    return out;
  }

  /** Refuse a host file or profile that is not the one this state dir was created with. */
  checkSame(opts: GlobalOptions): void {
    const w = this.wanted(opts);
    const h = this.host;
    if (w.host && canonical(w.host) !== canonical(h.host)) {
      throw new Error(`--state ${this.dir}: this simulated host was created from ${h.source}; --sim ${opts.simFile} describes a different host. Name the same host file (or none), or start over with: rm -r ${this.dir}`);
    }
    if (w.profile && w.profile !== h.profile) {
      throw new Error(`--state ${this.dir}: this simulated host runs profile ${h.profile}, not ${w.profile}. Leave out --profile, or start over with: rm -r ${this.dir}`);
    }
  }

  private async start(opts: GlobalOptions): Promise<void> {
    const now = Date.now();
    if (!existsSync(this.hostPath())) {
      // a first use that was cut short (log header written, host.json not yet) starts over
      const other = readdirSync(this.dir).filter((n) => n !== "root" && n !== "lock" && n !== "log.jsonl" && !n.endsWith(".tmp"));
      if (other.length) throw new Error(`--state ${this.dir}: not a vfioctl state dir (no host.json, but it holds ${other.slice(0, 3).join(", ")}${other.length > 3 ? ", …" : ""}); name an empty or new directory`);
      const w = this.wanted(opts);
      const host = w.host ?? (JSON.parse(JSON.stringify(DEFAULT_HOST)) as HostDesc);
      const mod = readModprobe(this.files);
      for (const m of mod.warnings) this.io.err(`vfioctl: ${m}`);
      const boot: BootRec = { t: "boot", v: 1, boot: 1, seed: randomInt(1, 2 ** 31), wallMs: now, modules: mod.params };
      mkdirSync(join(this.dir, "root"), { recursive: true });
      this.writeLogHeader(boot);
      this.host = { v: 1, source: w.source ?? DEFAULT_SOURCE, host, profile: w.profile ?? host.profile ?? host.kernel?.version ?? "6.1", boot: 1, seed: boot.seed, bootWallMs: now, lastWallMs: now, createdMs: now };
      writeJsonAtomic(this.hostPath(), this.host);
    } else {
      try {
        this.host = JSON.parse(readFileSync(this.hostPath(), "utf8")) as HostJson;
      } catch (e) {
        throw new SimStateError(this.dir, `host.json is unreadable (${(e as Error).message})`);
      }
      if (this.host.v !== 1 || !this.host.host || !Array.isArray(this.host.host.devices)) throw new SimStateError(this.dir, "host.json is not a vfioctl state description");
      this.checkSame(opts);
      mkdirSync(join(this.dir, "root"), { recursive: true });
    }
    const records = this.log.read();
    this.records = records.length;
    const boot = records[0]!.rec as BootRec;
    await this.bootFrom(boot);
    await this.replay(records.slice(1));
    // the events of the boot and of the replay were handled when they happened
    this.kernel.takeUevents();
    this.replaying = false;
    // a command process whose vfioctl died without exiting: the kernel closes its files
    for (const p of this.procs.values()) if (p.kind === "cmd" && !p.exited) await new RecordingProcess(p.proc, this, this.gen).exit();
    const last = [...records].reverse().find((r) => r.rec.t === "clock")?.rec as { wallMs: number } | undefined;
    const since = last?.wallMs ?? boot.wallMs;
    const elapsed = Math.max(0, now - since);
    this.append({ t: "clock", ms: elapsed, wallMs: now });
    this.kernel.advance(elapsed);
    this.host.lastWallMs = now;
    this.host.boot = boot.boot;
    this.host.seed = boot.seed;
    this.host.bootWallMs = boot.wallMs;
  }

  private writeLogHeader(boot: BootRec): void {
    const tmp = `${this.log.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(boot) + "\n");
    renameSync(tmp, this.log.path);
  }

  private async bootFrom(boot: BootRec): Promise<void> {
    const h = this.host.host;
    const desc: HostDesc = { ...h, modules: { ...(h.modules ?? {}), vfio_pci: { ...(h.modules?.vfio_pci ?? {}), ...boot.modules } } };
    this.kernel = await bootKernel(desc, { profile: this.host.profile, rng: new SeededRng(boot.seed), file: this.host.source });
    this.kernel.btime = Math.floor(boot.wallMs / 1000);
    // one boot id per simulated boot, the same in every invocation that replays it
    const bh = createHash("sha256").update(`boot-id:${boot.seed}:${boot.boot}:${boot.wallMs}`).digest("hex");
    this.kernel.bootId = `${bh.slice(0, 8)}-${bh.slice(8, 12)}-4${bh.slice(13, 16)}-${((parseInt(bh[16]!, 16) & 3) | 8).toString(16)}${bh.slice(17, 20)}-${bh.slice(20, 32)}`;
    this.bootRec = boot;
    this.procs.clear();
    this.nextId = 1;
  }

  // ------------------------------------------------------------------ replay

  private inconsistent(line: number, what: string): SimStateError {
    return new SimStateError(this.dir, `replaying ${this.log.path} line ${line}: ${what}`);
  }

  private async replay(records: { rec: Rec; line: number }[]): Promise<void> {
    const withDone = new Set<number>();
    for (const { rec } of records) if (rec.t === "done") withDone.add(rec.id);
    const calls = new Map<number, PendingCall>();
    for (const { rec, line } of records) {
      switch (rec.t) {
        case "boot":
          throw this.inconsistent(line, "a second boot record");
        case "clock":
          this.kernel.advance(rec.ms);
          break;
        case "spawn": {
          const p = this.kernel.spawn(rec.comm);
          if (p.pid !== rec.pid) throw this.inconsistent(line, `process ${rec.comm} came out as pid ${p.pid}, recorded pid ${rec.pid}`);
          this.procs.set(p.pid, { pid: p.pid, comm: rec.comm, kind: rec.kind, ...(rec.holds ? { holds: rec.holds } : {}), proc: p, fdmap: new Map(), fdPath: new Map(), exited: false });
          break;
        }
        case "fault":
          if (rec.add) this.kernel.faults.add(rec.add);
          else this.kernel.faults.clear();
          break;
        case "call": {
          const sp = this.procs.get(rec.pid);
          if (!sp) throw this.inconsistent(line, `${describeCall(rec)}: no such process was spawned`);
          if (rec.id >= this.nextId) this.nextId = rec.id + 1;
          const pc: PendingCall = { rec, line, settled: null, done: Promise.resolve(), hasDone: withDone.has(rec.id) };
          let p: Promise<unknown>;
          try {
            p = this.invoke(sp, rec);
          } catch (e) {
            p = Promise.reject(e);
          }
          pc.done = p.then(
            (v) => void (pc.settled = { ok: true, v }),
            (e: unknown) => void (pc.settled = { ok: false, e }),
          );
          if (!pc.hasDone) void pc.done.then(() => this.completedLate(sp, pc));
          calls.set(rec.id, pc);
          break;
        }
        case "done": {
          const pc = calls.get(rec.id);
          if (!pc) throw this.inconsistent(line, `a done record for call ${rec.id}, which was never issued`);
          calls.delete(rec.id);
          await settle(pc);
          this.check(pc, rec, line);
          break;
        }
        default:
          throw this.inconsistent(line, `unknown record ${JSON.stringify((rec as { t: string }).t)}`);
      }
    }
  }

  private invoke(sp: SimProc, rec: CallRec): Promise<unknown> {
    const P = sp.proc;
    const fd = (n: number) => sp.fdmap.get(n) ?? NO_FD;
    switch (rec.sc) {
      case "open":
        return P.open(rec.path, rec.flags);
      case "close": {
        const real = fd(rec.fd);
        sp.fdmap.delete(rec.fd);
        return P.close(real);
      }
      case "write":
        return P.write(fd(rec.fd), restoreSecrets(this.tokens, decodeData(rec), rec.secrets));
      case "lseek":
        return P.lseek(fd(rec.fd), rec.offset, rec.whence);
      case "ioctl": {
        let arg: Buffer | number | undefined = rec.int;
        if (rec.hex !== undefined) {
          const b = restoreSecrets(this.tokens, Buffer.from(rec.hex, "hex"), rec.secrets);
          for (const off of rec.fds ?? []) {
            const v = b.readInt32LE(off);
            if (v >= 0) b.writeInt32LE(sp.fdmap.get(v) ?? v, off);
          }
          arg = b;
        }
        return P.ioctl(fd(rec.fd), rec.req, arg);
      }
      case "eventfd":
        return P.eventfd(rec.initval, rec.flags);
      case "exit":
        return P.exit().then(() => void (sp.exited = true));
    }
  }

  private check(pc: PendingCall, rec: DoneRec, line: number): void {
    const what = `${describeCall(pc.rec)} (line ${pc.line})`;
    const s = pc.settled;
    const recorded = rec.errno ?? (rec.error !== undefined ? `error ${rec.error}` : rec.ret !== undefined ? `ret ${rec.ret}` : "ok");
    if (!s) throw this.inconsistent(line, `${what} completed with ${recorded} when it was recorded, but is still blocked in the replay`);
    const got = resultText(s);
    const sp = this.procs.get(pc.rec.pid)!;
    if (rec.errno !== undefined || rec.error !== undefined) {
      if (s.ok || (rec.errno !== undefined && !isErrno(s.e, rec.errno)) || (rec.error !== undefined && isErrno(s.e))) throw this.inconsistent(line, `${what} gave ${got} in the replay, recorded ${recorded}`);
      return;
    }
    if (!s.ok) throw this.inconsistent(line, `${what} gave ${got} in the replay, recorded ${recorded}`);
    if (rec.fd && typeof s.v === "number" && rec.ret !== undefined) {
      sp.fdmap.set(rec.ret, s.v);
      if (pc.rec.sc === "open") sp.fdPath.set(rec.ret, pc.rec.path);
    }
    else if (rec.ret !== undefined && s.v !== rec.ret) throw this.inconsistent(line, `${what} gave ${got} in the replay, recorded ${recorded}`);
  }

  /** A call with no done record settled: when that happens in the live part, record it now. */
  private completedLate(sp: SimProc, pc: PendingCall): void {
    if (this.replaying || this.closed || !pc.settled) return;
    const s = pc.settled;
    this.append({ t: "done", id: pc.rec.id, ...(s.ok ? (typeof s.v === "number" ? { ret: s.v } : {}) : failureOf(s.e)) });
    const r = pc.rec;
    const on = "fd" in r ? sp.fdPath.get(r.fd) : undefined;
    const what = r.sc === "write" && on ? `write ${r.text !== undefined ? JSON.stringify(r.text.replace(/\n$/, "")) : "(bytes)"} to ${on}` : on ? `${r.sc} ${on}` : describeCall(r);
    this.late.push({ pid: sp.pid, what, result: resultText(s) });
  }

  // ------------------------------------------------------------------ processes

  /** Spawn a recorded model process. */
  spawn(comm: string, kind: "cmd" | "holder", holds?: string): RecordingProcess {
    const p = this.kernel.spawn(comm);
    this.append({ t: "spawn", pid: p.pid, comm, kind, ...(holds ? { holds } : {}) });
    this.procs.set(p.pid, { pid: p.pid, comm, kind, ...(holds ? { holds } : {}), proc: p, fdmap: new Map(), fdPath: new Map(), exited: false });
    return new RecordingProcess(p, this, this.gen);
  }

  /** Holder processes that are alive. */
  holders(): SimProc[] {
    return [...this.procs.values()].filter((p) => p.kind === "holder" && !p.exited && !p.proc.exited);
  }

  /** End a process (recorded): its files close, as when the kernel reaps a process. */
  async exitProcess(pid: number): Promise<void> {
    const p = this.procs.get(pid);
    if (!p || p.exited) return;
    await new RecordingProcess(p.proc, this, this.gen).exit();
    // let calls that were waiting on what this process held run on
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  }

  addFault(spec: FaultSpec): void {
    this.kernel.faults.add(spec);
    this.append({ t: "fault", add: { ...spec } });
  }
  clearFaults(): void {
    this.kernel.faults.clear();
    this.append({ t: "fault", clear: true });
  }

  // ------------------------------------------------------------------ backends

  backend(): Backend {
    this.cmd = this.spawn("vfioctl", "cmd");
    return { sys: this.cmd, kernel: this.kernel, files: this.files, close: () => this.close() };
  }

  /** A command run from a boot unit or a udev rule: its own process in the running session. */
  nestedBackend(opts: GlobalOptions): Backend {
    this.checkSame(opts);
    const sys = this.spawn("vfioctl", "cmd");
    return { sys, kernel: this.kernel, files: this.files, close: () => sys.exit().catch(() => {}) };
  }

  /** True while a boot unit or udev command of this session runs. */
  nested(): boolean {
    return active.getStore() === this;
  }

  private releaseLock(): void {
    try {
      if (this.lockPath && readFileSync(this.lockPath, "utf8").trim() === String(process.pid)) unlinkSync(this.lockPath);
    } catch {
      /* already gone */
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.cmd && this.cmd.gen === this.gen) await this.cmd.exit().catch(() => {});
      await this.runUdev();
      writeJsonAtomic(this.hostPath(), this.host);
    } catch (e) {
      this.io.err(`vfioctl: --state ${this.dir}: ${(e as Error).message}`);
    } finally {
      this.closed = true;
      this.releaseLock();
    }
  }

  // ------------------------------------------------------------------ reboot, units, udev

  /** Start a new boot: new seed, boot count + 1, empty log, no holders; then the boot units. */
  async reboot(): Promise<{ boot: number; modules: Record<string, boolean>; warnings: string[]; units: UnitRun[] }> {
    if (this.nested()) throw new Error("sim reboot: not from a boot unit or a udev rule (that would loop)");
    const mod = readModprobe(this.files);
    const boot: BootRec = { t: "boot", v: 1, boot: this.bootRec.boot + 1, seed: randomInt(1, 2 ** 31), wallMs: Date.now(), modules: mod.params };
    this.gen++; // the old kernel's processes stop recording
    this.replaying = true;
    this.tokens.reset();
    this.writeLogHeader(boot);
    this.records = 1;
    this.host = { ...this.host, boot: boot.boot, seed: boot.seed, bootWallMs: boot.wallMs, lastWallMs: boot.wallMs };
    writeJsonAtomic(this.hostPath(), this.host);
    await this.bootFrom(boot);
    this.late.length = 0;
    this.replaying = false;
    byKernel.set(this.kernel, this);
    const units: UnitRun[] = [];
    for (const name of enabledUnits(this.files)) units.push(await this.runUnit(name, "boot"));
    return { boot: boot.boot, modules: mod.params, warnings: mod.warnings, units };
  }

  /** Run vfioctl in-process in this session; output goes to `io`. */
  private async runVfioctl(args: string[], io: MainIo): Promise<number> {
    const { main } = await import("../cli/main.js");
    return active.run(this, () => main(["--sim", "--state", this.dir, ...args], io));
  }

  private journal(unit: string, line: string): void {
    const f = this.files.real(SIM_JOURNAL);
    mkdirSync(dirname(f), { recursive: true });
    appendFileSync(f, `${new Date().toISOString()} boot ${this.bootRec.boot} ${unit}: ${line}\n`);
  }

  /** Units running now (a unit that starts itself, directly or through others, is not started again). */
  private running = new Set<string>();

  /** Run one unit's ExecStart lines (vfioctl ones in-process, `systemctl start` ones as units; others are skipped). */
  async runUnit(name: string, why: string): Promise<UnitRun> {
    const run: UnitRun = { unit: name, why, lines: [], ok: true, output: [] };
    const u = loadUnit(this.files, name);
    if (!u) {
      run.ok = false;
      run.lines.push({ line: "", code: null, skipped: `no unit file /etc/systemd/system/${name}` });
      this.journal(name, `not found (${why})`);
      return run;
    }
    const cond = failedCondition(this.files, u);
    if (cond) {
      run.lines.push({ line: "", code: null, skipped: `${cond} does not hold: the unit is skipped` });
      this.journal(name, `skipped: ${cond} (${why})`);
      return run;
    }
    if (this.running.has(name)) {
      run.lines.push({ line: "", code: null, skipped: "already running" });
      return run;
    }
    this.running.add(name);
    try {
      this.journal(name, `starting (${why})`);
      for (const x of u.execs) {
        if (x.starts) {
          let code = 0;
          for (const sub of x.starts) {
            const r = await this.runUnit(sub, `${name}: ${x.line}`);
            run.output.push(...r.lines.map((l) => `${sub}: ${l.line || "(no file)"} → ${l.code === null ? `skipped: ${l.skipped}` : `exit ${l.code}`}`), ...r.output.map((o) => `${sub}: ${o}`));
            if (!r.ok) code = 1;
          }
          run.lines.push({ line: x.line, code });
          if (code !== 0 && !x.ignoreFailure) {
            run.ok = false;
            break;
          }
          continue;
        }
        if (!x.vfioctl) {
          run.lines.push({ line: x.line, code: null, skipped: "not a vfioctl command (only vfioctl runs on the simulated host)" });
          this.journal(name, `skipped: ${x.line}`);
          continue;
        }
        const io = this.captureIo(name, run.output);
        const code = await this.runVfioctl(x.vfioctl, io);
        run.lines.push({ line: x.line, code });
        this.journal(name, `${x.line}: exit ${code}`);
        if (code !== 0 && !x.ignoreFailure) {
          run.ok = false;
          break;
        }
      }
    } finally {
      this.running.delete(name);
    }
    return run;
  }

  private captureIo(unit: string, into: string[]): MainIo {
    const put = (s: string) => {
      for (const l of s.replace(/\n$/, "").split("\n")) {
        into.push(l);
        this.journal(unit, l);
      }
    };
    return { out: put, err: put, stdin: async () => "" };
  }

  /** Read a sysfs attribute of the event's device without a process (udev's ATTR{…}). */
  private async attrOf(devpath: string, name: string): Promise<string | undefined> {
    try {
      const k = this.kernel;
      const task = k.kernelTask();
      const { node } = k.vfs.resolve(task, `/sys${devpath}/${name}`);
      if (node.t !== "attr" || !node.show) return undefined;
      let v: string | undefined;
      const p = Promise.resolve(node.show(task)).then((s) => void (v = s), () => {});
      // an attribute whose show waits (a device lock held by a blocked write) reads as absent
      await Promise.race([p, new Promise<void>((r) => setImmediate(r))]);
      return v;
    } catch {
      return undefined;
    }
  }

  /** Match queued uevents against the host's rules and run what they ask for (bounded rounds). */
  async runUdev(): Promise<void> {
    const { rules, warnings } = readRules(this.files);
    if (!rules.length) {
      this.kernel.takeUevents();
      for (const w of warnings) this.io.err(`vfioctl: ${w}`);
      return;
    }
    for (const w of warnings) this.io.err(`vfioctl: ${w}`);
    const ran = new Set<string>();
    for (let round = 0; ; round++) {
      const evs = this.kernel.takeUevents();
      if (!evs.length) break;
      if (round >= UDEV_ROUNDS) {
        this.io.err(`vfioctl: udev: ${evs.length} more uevent(s) after ${UDEV_ROUNDS} rounds not handled: the commands rules run keep causing events`);
        break;
      }
      for (const ev of evs) {
        const o = await applyRules(rules, ev, (n) => this.attrOf(ev.devpath, n));
        const why = `${ev.action} ${ev.kernel}${ev.driver ? ` (${ev.driver})` : ""}`;
        const startUnit = async (unit: string, how: string) => {
          const r = await this.runUnit(unit, `udev: ${why}`);
          const codes = r.lines.map((l) => (l.code === null ? `skipped (${l.skipped})` : `exit ${l.code}`)).join(", ");
          this.io.err(`udev: ${why} → ${how}${how.includes(unit) ? "" : ` → ${unit}`}: ${codes || "nothing to run"}  (output: ${this.files.show(SIM_JOURNAL)})`);
        };
        for (const unit of o.wants) {
          if (ran.has(`unit ${unit}`)) continue;
          ran.add(`unit ${unit}`);
          await startUnit(unit, unit);
        }
        for (const cmd of o.run) {
          if (ran.has(`run ${cmd}`)) continue;
          ran.add(`run ${cmd}`);
          const argv = splitArgv(cmd);
          const starts = systemctlStart(argv);
          if (starts) {
            for (const unit of starts) {
              if (ran.has(`unit ${unit}`)) continue;
              ran.add(`unit ${unit}`);
              await startUnit(unit, `RUN ${cmd}`);
            }
            continue;
          }
          const args = vfioctlArgs(argv);
          if (!args) {
            this.journal("udev", `RUN skipped (not vfioctl): ${cmd}`);
            this.io.err(`udev: ${why} → RUN ${cmd}: skipped (only vfioctl runs on the simulated host)`);
            continue;
          }
          const out: string[] = [];
          const code = await this.runVfioctl(args, this.captureIo("udev", out));
          this.journal("udev", `RUN ${cmd}: exit ${code}`);
          this.io.err(`udev: ${why} → RUN ${cmd}: exit ${code}  (output: ${this.files.show(SIM_JOURNAL)})`);
        }
      }
    }
  }
}
