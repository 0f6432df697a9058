/**
 * Running a plan: one apply at a time (a lock file in the state directory), each step journaled
 * before it runs (with the inverse computed from the state it found) and after; on a failed step
 * the completed steps — and whatever the failed one changed — are undone in reverse order, and
 * the host is compared with a snapshot taken before the first step. An apply killed half way
 * leaves its journal behind; the next apply says so and either finishes it (plans again from
 * the host as it is, the default) or undoes it (`undoInterrupted`).
 *
 * Token steps have no inverse that restores the kernel's previous token (Linux never reveals
 * it); they are ordered so that a token is stored before it is set, and a stored token is kept.
 */
import * as fs from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { bindDriver, unbindDriver } from "../lib/bind.js";
import { VfioctlError } from "../lib/errors.js";
import { newToken } from "../lib/token.js";
import { setNumVfs } from "../lib/sriov.js";
import { devPath, readDevice, VFIO_PCI_PARAMS } from "../lib/sysfs.js";
import { isErrno } from "../sys/errno.js";
import { linkBase, readAttr, withTimeout, writeText } from "../sys/fsutil.js";
import type { HostFiles } from "../sys/hostfs.js";
import { AtomicWriteError, writeFileAtomic } from "../sys/atomic.js";
import type { Syscalls } from "../sys/syscalls.js";
import type { HostConfig } from "./config.js";
import type { Step } from "./plan.js";
import { TokenStore } from "./store.js";
import { readerGid, storeAndSet, wantedToken } from "./tokens.js";

/** What undoes one step, computed before it runs. */
export type Undo =
  | { kind: "modprobe-r"; module: string }
  | { kind: "param"; param: string; value: string }
  | { kind: "sriov"; pf: string; to: number; vfs: Binding[] }
  | { kind: "binding"; binding: Binding }
  | { kind: "none"; why: string };

export interface Binding {
  bdf: string;
  driver: string | null;
  override: string | null;
  /** a VF's index, so it can be found again after its PF re-creates it */
  vfIndex?: number | null;
}

export type StepStatus = "pending" | "running" | "done" | "failed" | "undone" | "undo-failed";

export interface JournalStep {
  step: Step;
  status: StepStatus;
  undo?: Undo;
  error?: { message: string; errno?: string; fix?: string };
  log?: string[];
  startedAt?: string;
  endedAt?: string;
}

export interface Journal {
  id: string;
  pid: number;
  started: string;
  config: string;
  configHash: string;
  status: "running" | "done" | "rolled-back" | "rollback-incomplete" | "interrupted-finished" | "interrupted-undone";
  steps: JournalStep[];
  /** set when this apply found an interrupted one */
  found?: { id: string; started: string; pid: number; at: string; action: "finished" | "undone" };
  leftBehind?: string[];
}

export interface Snapshot {
  enableSriov: string | null;
  devices: Record<string, { driver: string | null; override: string | null; numvfs: string | null }>;
}

/** The sysfs state apply can change, for every device of the configured PFs (full compare after a rollback). */
export async function snapshot(sys: Syscalls, bdfs: string[]): Promise<Snapshot> {
  const devices: Snapshot["devices"] = {};
  const seen = new Set<string>();
  const add = async (b: string) => {
    if (seen.has(b)) return;
    seen.add(b);
    const d = await readDevice(sys, b).catch(() => null);
    if (!d) return;
    devices[b] = { driver: d.driver, override: d.driverOverride, numvfs: d.sriov ? String(d.sriov.numVfs) : null };
    for (const v of d.sriov?.vfs ?? []) await add(v);
  };
  for (const b of bdfs) await add(b);
  let enableSriov: string | null = null;
  try {
    enableSriov = await readAttr(sys, `${VFIO_PCI_PARAMS}/enable_sriov`);
  } catch {
    /* absent */
  }
  return { enableSriov, devices };
}

export function diffSnapshots(a: Snapshot, b: Snapshot): string[] {
  const out: string[] = [];
  if (a.enableSriov !== b.enableSriov) out.push(`vfio-pci enable_sriov: ${a.enableSriov} before, ${b.enableSriov} now`);
  for (const k of new Set([...Object.keys(a.devices), ...Object.keys(b.devices)])) {
    const x = a.devices[k];
    const y = b.devices[k];
    if (!x) out.push(`${k}: did not exist before, exists now (driver ${y!.driver ?? "none"})`);
    else if (!y) out.push(`${k}: existed before (driver ${x.driver ?? "none"}), gone now`);
    else {
      if (x.driver !== y.driver) out.push(`${k}: driver ${x.driver ?? "none"} before, ${y.driver ?? "none"} now`);
      if (x.override !== y.override) out.push(`${k}: driver_override ${x.override ?? "(null)"} before, ${y.override ?? "(null)"} now`);
      if (x.numvfs !== y.numvfs) out.push(`${k}: sriov_numvfs ${x.numvfs} before, ${y.numvfs} now`);
    }
  }
  return out;
}

/** Each journal step's serialized form, with the field values it was made from. */
const stepJson = new WeakMap<JournalStep, { keys: string[]; values: unknown[]; bytes: Buffer }>();
const STEPS_MARK = "\u0000journal steps\u0000";

function stepBytes(js: JournalStep): Buffer {
  const rec = js as unknown as Record<string, unknown>;
  const keys = Object.keys(rec);
  const c = stepJson.get(js);
  if (c && c.keys.length === keys.length && keys.every((k, i) => k === c.keys[i] && rec[k] === c.values[i])) return c.bytes;
  // a step inside the journal's "steps" array is indented by 4 more spaces than on its own
  const bytes = Buffer.from(JSON.stringify(js, null, 2).replace(/\n/g, "\n    "));
  stepJson.set(js, { keys, values: keys.map((k) => rec[k]), bytes });
  return bytes;
}

/**
 * A journal as `JSON.stringify(j, null, 2) + "\n"`, byte for byte, from per-step pieces: a
 * step's serialized form is reused while none of its fields has been reassigned (runPlan and
 * undoJournal change a step only by assigning its fields). The journal is written before and
 * after every step and the sriov steps' kernel log holds lines for every VF, so serializing it
 * whole each time cost O(steps × VFs) of JSON.stringify; the bytes written (a whole-file atomic
 * rewrite each time) still are O(steps × VFs).
 */
export function journalBytes(j: Journal): Buffer {
  const top = JSON.stringify({ ...j, steps: STEPS_MARK }, null, 2) + "\n";
  const mark = JSON.stringify(STEPS_MARK);
  const at = top.indexOf(mark);
  if (!Array.isArray(j.steps) || at < 0 || top.indexOf(mark, at + 1) >= 0) return Buffer.from(JSON.stringify(j, null, 2) + "\n");
  const head = top.slice(0, at);
  const tail = top.slice(at + mark.length);
  if (!j.steps.length) return Buffer.from(`${head}[]${tail}`);
  const sep = Buffer.from(",\n    ");
  const parts: Buffer[] = [Buffer.from(`${head}[\n    `)];
  j.steps.forEach((js, i) => {
    if (i) parts.push(sep);
    parts.push(stepBytes(js));
  });
  parts.push(Buffer.from(`\n  ]${tail}`));
  return Buffer.concat(parts);
}

/** The state directory (journal and lock), under the host root. */
export class StateDir {
  constructor(
    readonly files: HostFiles,
    readonly dir: string,
  ) {}
  real(p = ""): string {
    return this.files.real(p ? `${this.dir}/${p}` : this.dir);
  }
  ensure(): void {
    const r = this.real();
    fs.mkdirSync(r, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(r);
    if (!st.isDirectory()) throw new VfioctlError("UNSAFE_FILE", `state directory ${this.files.show(this.dir)}: not a directory`, { subject: this.dir });
  }
  /** Atomic JSON write (temporary file, fsync, rename). */
  writeJson(name: string, v: unknown): void {
    this.write(name, JSON.stringify(v, null, 2) + "\n");
  }
  /** Atomic write of a journal: the same bytes as `writeJson(name, j)`, serialized step by step (see {@link journalBytes}). */
  writeJournal(name: string, j: Journal): void {
    this.write(name, journalBytes(j));
  }
  private write(name: string, data: string | Buffer): void {
    this.ensure();
    const target = this.real(name);
    try {
      writeFileAtomic(target, data, { mode: 0o600 });
    } catch (e) {
      const c = e instanceof AtomicWriteError ? e.code : ((e as NodeJS.ErrnoException).code ?? "EIO");
      throw new VfioctlError("UNSAFE_FILE", `state file ${this.files.show(`${this.dir}/${name}`)}: ${c}${c === "ENOSPC" ? " (disk full)" : ""}`, { subject: `${this.dir}/${name}`, errno: c, fix: "free space or fix the file system holding the state directory" });
    }
  }
  readJson<T>(name: string): T | null {
    try {
      return JSON.parse(fs.readFileSync(this.real(name), "utf8")) as T;
    } catch {
      return null;
    }
  }
  remove(name: string): void {
    fs.rmSync(this.real(name), { force: true });
  }
}

export interface Lock {
  release(): void;
  /** a previous holder that died without releasing */
  stale: { pid: number; started: string } | null;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
};

/** Take the apply lock (O_EXCL); refuse while a live process holds it; take over a dead one's. */
export function takeLock(state: StateDir): Lock {
  state.ensure();
  const p = state.real("apply.lock");
  let stale: Lock["stale"] = null;
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      fs.writeSync(fd, JSON.stringify({ pid: process.pid, started: new Date().toISOString() }) + "\n");
      fs.closeSync(fd);
      return {
        stale,
        release: () => {
          try {
            const cur = JSON.parse(fs.readFileSync(p, "utf8")) as { pid: number };
            if (cur.pid === process.pid) fs.rmSync(p, { force: true });
          } catch {
            /* gone */
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new VfioctlError("UNSAFE_FILE", `lock ${state.files.show(`${state.dir}/apply.lock`)}: ${(e as NodeJS.ErrnoException).code}`, { subject: p, errno: (e as NodeJS.ErrnoException).code ?? "EIO" });
      let holder: { pid: number; started: string } | null = null;
      try {
        holder = JSON.parse(fs.readFileSync(p, "utf8"));
      } catch {
        /* half-written: treat as stale */
      }
      if (holder && holder.pid !== process.pid && alive(holder.pid)) {
        throw new VfioctlError("BLOCKED", `another vfioctl apply is running (pid ${holder.pid}, started ${holder.started}; lock ${state.files.show(`${state.dir}/apply.lock`)})`, {
          subject: `${state.dir}/apply.lock`,
          fix: "wait for it to finish; one apply runs at a time",
        });
      }
      stale = holder ?? { pid: 0, started: "unknown" };
      fs.rmSync(p, { force: true });
    }
  }
  throw new VfioctlError("BLOCKED", `could not take the apply lock ${state.files.show(`${state.dir}/apply.lock`)}`, { subject: p });
}

export interface ApplyContext {
  sys: Syscalls;
  files: HostFiles;
  cfg: HostConfig;
  store: TokenStore;
  timeoutMs: number;
  bootId: string | null;
  /** test hook: called before each step runs (index, step) */
  beforeStep?: (i: number, s: Step) => void | Promise<void>;
}

async function computeUndo(ax: ApplyContext, s: Step): Promise<Undo> {
  const { sys } = ax;
  switch (s.kind) {
    case "modprobe":
      return { kind: "modprobe-r", module: s.module };
    case "param":
      return { kind: "param", param: s.param, value: await readAttr(sys, `${VFIO_PCI_PARAMS}/${s.param}`).catch(() => "N") };
    case "sriov": {
      const d = await readDevice(sys, s.device);
      const vfs: Binding[] = [];
      for (const v of d.sriov?.vfs ?? []) {
        const f = await readDevice(sys, v);
        vfs.push({ bdf: v, driver: f.driver, override: f.driverOverride, vfIndex: f.vfIndex });
      }
      return { kind: "sriov", pf: s.device, to: d.sriov?.numVfs ?? s.from, vfs };
    }
    case "bind": {
      const d = await readDevice(sys, s.device);
      return { kind: "binding", binding: { bdf: s.device, driver: d.driver, override: d.driverOverride } };
    }
    case "token-generate":
      return { kind: "none", why: "a generated token stays in the store (tokens are never discarded)" };
    case "token-set":
      return { kind: "none", why: "Linux never reveals a PF's previous token, so it cannot be put back; the stored token stays set" };
  }
}

/** modprobe on a real host (the model registers its drivers at boot and has no modules to load). */
async function modprobe(sys: Syscalls, args: string[]): Promise<void> {
  if (sys.backend !== "linux") throw new VfioctlError("REFUSED", `modprobe ${args.join(" ")}: the kernel model has no loadable modules (its drivers are registered at boot)`, { fix: "describe the driver in the host file's drivers:" });
  const { execFile } = await import("node:child_process");
  await new Promise<void>((resolve, reject) =>
    execFile("modprobe", args, { timeout: 30_000 }, (err, _out, stderr) =>
      err ? reject(new VfioctlError("KERNEL", `modprobe ${args.join(" ")}: ${(stderr || err.message).trim()}`, { subject: args[args.length - 1]!, fix: "check that the module exists for this kernel (modinfo vfio-pci)" })) : resolve(),
    ),
  );
}

async function write(sys: Syscalls, path: string, text: string, ms: number): Promise<void> {
  await withTimeout(writeText(sys, path, text), ms, `write ${path}`);
}

/** Put a device back on a recorded driver and driver_override. */
export async function restoreBinding(sys: Syscalls, b: Binding, ms: number): Promise<void> {
  const p = devPath(b.bdf);
  const now = await linkBase(sys, `${p}/driver`);
  const ovr = await readAttr(sys, `${p}/driver_override`).catch(() => "(null)");
  const curOvr = ovr === "(null)" || ovr === "" ? null : ovr;
  if (now === b.driver && curOvr === b.override) return;
  if (now !== null && now !== b.driver) await write(sys, `${p}/driver/unbind`, b.bdf, ms);
  if (curOvr !== b.override) await write(sys, `${p}/driver_override`, b.override ?? "\n", ms);
  if (b.driver && (await linkBase(sys, `${p}/driver`)) === null) {
    await write(sys, "/sys/bus/pci/drivers_probe", b.bdf, ms).catch(() => {});
    if ((await linkBase(sys, `${p}/driver`)) !== b.driver) await write(sys, `/sys/bus/pci/drivers/${b.driver}/bind`, b.bdf, ms).catch(() => {});
  }
  const after = await linkBase(sys, `${p}/driver`);
  if (after !== b.driver) throw new VfioctlError("KERNEL", `restore ${b.bdf}: driver is ${after ?? "none"}, expected ${b.driver ?? "none"}`, { subject: b.bdf });
}

async function runUndo(ax: ApplyContext, u: Undo): Promise<void> {
  const { sys, timeoutMs } = ax;
  switch (u.kind) {
    case "none":
      return;
    case "modprobe-r":
      await modprobe(sys, ["-r", u.module]);
      return;
    case "param":
      await write(sys, `${VFIO_PCI_PARAMS}/${u.param}`, u.value, timeoutMs);
      return;
    case "binding":
      await restoreBinding(sys, u.binding, timeoutMs);
      return;
    case "sriov": {
      const d = await readDevice(sys, u.pf);
      const cur = d.sriov?.numVfs ?? 0;
      if (cur !== u.to) {
        if (cur !== 0) await setNumVfs(sys, u.pf, 0, { timeoutMs });
        if (u.to !== 0) await setNumVfs(sys, u.pf, u.to, { timeoutMs });
      }
      const now = await readDevice(sys, u.pf);
      for (const b of u.vfs) {
        const bdf = b.vfIndex !== null && b.vfIndex !== undefined ? (now.sriov?.vfs[b.vfIndex] ?? b.bdf) : b.bdf;
        await restoreBinding(sys, { ...b, bdf }, timeoutMs);
      }
      return;
    }
  }
}

async function runStep(ax: ApplyContext, s: Step): Promise<string[]> {
  const { sys, timeoutMs, store, files, cfg } = ax;
  switch (s.kind) {
    case "modprobe":
      await modprobe(sys, [s.module]);
      return [];
    case "param":
      await write(sys, `${VFIO_PCI_PARAMS}/${s.param}`, s.value, timeoutMs);
      return [];
    case "sriov": {
      const r = await setNumVfs(sys, s.device, s.to, { timeoutMs });
      return r.log;
    }
    case "bind": {
      if (s.driver === null) return (await unbindDriver(sys, s.device, { timeoutMs })).log;
      const r = await bindDriver(sys, s.device, s.driver, { releaseCaptured: true, timeoutMs });
      return r.log;
    }
    case "token-generate": {
      const pc = cfg.pfs.find((p) => p.name === s.pf)!;
      if (store.read(s.pf, "current")) return [];
      const gid = readerGid(files, pc);
      const t = newToken();
      store.write(s.pf, "current", t, { gid });
      const now = new Date().toISOString();
      store.writeMeta(s.pf, { created: now, updated: now, source: "generated by vfioctl apply" }, gid);
      return [];
    }
    case "token-set": {
      const pc = cfg.pfs.find((p) => p.name === s.pf)!;
      const token = wantedToken(files, store, pc);
      if (!token) throw new VfioctlError("TOKEN_SOURCE", `${s.pf}: no token to set (${s.source.from === "file" ? s.source.file : `${store.dir}/${s.pf}/current`} is empty or missing)`, { subject: s.pf });
      if (s.source.from === "file") {
        // the operator's file is the store for this policy: it exists before the kernel sees the token
        const { setToken } = await import("../lib/tokenops.js");
        await setToken(sys, s.device, token);
        store.writeMeta(s.pf, { ...store.meta(s.pf), setOn: { bdf: s.device, at: new Date().toISOString(), bootId: ax.bootId, method: "open" }, source: `file ${s.source.file}` });
      } else {
        await storeAndSet(sys, store, { name: s.pf, pf: s.device, token, gid: readerGid(files, pc), bootId: ax.bootId });
      }
      return [];
    }
  }
}

const hashConfig = (cfg: HostConfig) => createHash("sha256").update(JSON.stringify(cfg.pfs)).digest("hex").slice(0, 16);

export interface ApplyReport {
  status: Journal["status"] | "nothing-to-do" | "dry-run" | "blocked";
  journal: Journal | null;
  failed: JournalStep | null;
  leftBehind: string[];
  interrupted: Journal | null;
}

/** Run `steps` with journal, lock held by the caller, rollback on failure. */
export async function runPlan(ax: ApplyContext, state: StateDir, steps: Step[], found?: Journal["found"]): Promise<ApplyReport> {
  const j: Journal = {
    id: `${new Date().toISOString().replace(/[:.]/g, "")}-${randomBytes(3).toString("hex")}`,
    pid: process.pid,
    started: new Date().toISOString(),
    config: ax.cfg.file,
    configHash: hashConfig(ax.cfg),
    status: "running",
    steps: steps.map((step) => ({ step, status: "pending" as StepStatus })),
    ...(found ? { found } : {}),
  };
  const bdfs = steps.map((s) => s.device).filter((d): d is string => d !== null);
  const before = await snapshot(ax.sys, bdfs);
  state.writeJournal("current.json", j);
  let failed: JournalStep | null = null;
  for (let i = 0; i < j.steps.length; i++) {
    const js = j.steps[i]!;
    js.undo = await computeUndo(ax, js.step);
    js.status = "running";
    js.startedAt = new Date().toISOString();
    state.writeJournal("current.json", j);
    try {
      await ax.beforeStep?.(i, js.step);
      js.log = await runStep(ax, js.step);
      js.status = "done";
    } catch (e) {
      js.status = "failed";
      js.error = e instanceof VfioctlError ? { message: e.message, ...(e.errno ? { errno: e.errno } : {}), ...(e.fix ? { fix: e.fix } : {}) } : { message: (e as Error).message, ...(isErrno(e) ? { errno: (e as { code: string }).code } : {}) };
      failed = js;
    }
    js.endedAt = new Date().toISOString();
    state.writeJournal("current.json", j);
    if (failed) break;
  }
  if (!failed) {
    j.status = "done";
    state.writeJournal("last.json", j);
    state.remove("current.json");
    return { status: "done", journal: j, failed: null, leftBehind: [], interrupted: null };
  }
  await undoJournal(ax, state, j);
  const after = await snapshot(ax.sys, bdfs.concat(Object.keys(before.devices)));
  j.leftBehind = diffSnapshots(before, after);
  j.status = j.leftBehind.length ? "rollback-incomplete" : "rolled-back";
  state.writeJournal("last.json", j);
  state.remove("current.json");
  return { status: j.status, journal: j, failed, leftBehind: j.leftBehind, interrupted: null };
}

/** Undo every step that ran (done, failed or running) in reverse order; records each in the journal. */
export async function undoJournal(ax: ApplyContext, state: StateDir, j: Journal): Promise<void> {
  for (let i = j.steps.length - 1; i >= 0; i--) {
    const js = j.steps[i]!;
    if (js.status !== "done" && js.status !== "failed" && js.status !== "running") continue;
    if (!js.undo) continue;
    try {
      await runUndo(ax, js.undo);
      js.status = "undone";
    } catch (e) {
      js.status = "undo-failed";
      js.error = { message: `${js.error ? js.error.message + "; " : ""}undo: ${(e as Error).message}` };
    }
    state.writeJournal("current.json", j);
  }
}

