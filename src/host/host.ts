/**
 * Running an SR-IOV host from its config: `plan`, `apply` and `status` as library calls over
 * the syscalls seam and the host's files, the same on a real host and on the simulated one.
 *
 * @example
 * ```ts
 * import { bootKernel, hostFiles, loadConfig, planHost, applyHost } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * const files = hostFiles("/tmp/sim-root");
 * const cfg = loadConfig(files, "/etc/vfioctl/host.yaml");
 * const { plan } = await planHost({ sys, files, cfg });
 * const r = await applyHost({ sys, files, cfg });   // r.status: "done" | "nothing-to-do" | "rolled-back" …
 * ```
 */
import * as fs from "node:fs";
import { VfioctlError } from "../lib/errors.js";
import type { HostFiles } from "../sys/hostfs.js";
import type { Syscalls } from "../sys/syscalls.js";
import { runPlan, StateDir, takeLock, undoJournal, type ApplyReport, type Journal } from "./apply.js";
import { DEFAULT_CONFIG, parseConfig, type HostConfig } from "./config.js";
import { observe, type HostState } from "./observe.js";
import { makePlan, type Plan } from "./plan.js";
import { TokenStore } from "./store.js";
import { surveyTokens, type TokenSurvey } from "./tokens.js";

/** Read and validate the host config (a host path: under the simulated root with --sim; relative paths are the caller's files). */
export function loadConfig(files: HostFiles, path = DEFAULT_CONFIG): HostConfig {
  let text: string;
  try {
    const st = fs.statSync(files.input(path));
    if (!st.isFile()) throw Object.assign(new Error("not a regular file"), { code: st.isDirectory() ? "EISDIR" : "EINVAL" });
    if (st.size > 1 << 20) throw Object.assign(new Error("too large"), { code: "EFBIG" });
    text = fs.readFileSync(files.input(path), "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new VfioctlError("BAD_INPUT", `config ${files.show(path)}: ${code} (${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "a directory" : code === "EFBIG" ? "larger than 1 MiB" : "cannot read"})`, {
      subject: path,
      errno: code,
      fix: code === "ENOENT" ? `write the host config there (see docs/host-config.md), or pass --config FILE` : "check the file",
    });
  }
  return parseConfig(text, path);
}

export interface HostCtx {
  sys: Syscalls;
  files: HostFiles;
  cfg: HostConfig;
  timeoutMs?: number;
}

export interface PlanResult {
  plan: Plan;
  host: HostState;
  tokens: TokenSurvey;
}

/** Restrict a config to the PF that a device is (for `apply --device BDF` after a re-probe). */
export function onlyDevice(cfg: HostConfig, host: HostState, bdf: string): { cfg: HostConfig; host: HostState } | null {
  const hit = host.pfs.filter((p) => p.match.bdf === bdf);
  if (!hit.length) return null;
  return { cfg: { ...cfg, pfs: hit.map((h) => h.cfg) }, host: { ...host, pfs: hit } };
}

/** Observe the host and plan (read-only, apart from opening free VFs to check tokens). */
export async function planHost(hc: HostCtx, opts: { device?: string; forceToken?: boolean } = {}): Promise<PlanResult & { skipped?: boolean }> {
  const store = new TokenStore(hc.files, hc.cfg.store);
  let cfg = hc.cfg;
  let host = await observe(hc.sys, cfg, hc.timeoutMs !== undefined ? { numvfsTimeoutMs: hc.timeoutMs } : {});
  if (opts.device) {
    const o = onlyDevice(cfg, host, opts.device);
    if (!o) return { plan: { config: cfg.file, steps: [], blockers: [], notes: [{ pf: null, text: `${opts.device} is not a PF of ${cfg.file}: nothing to do` }], matched: [] }, host, tokens: { storedTokens: new Set(), how: new Map(), problems: [], resolved: [] }, skipped: true };
    cfg = o.cfg;
    host = o.host;
  }
  const tokens = await surveyTokens(hc.sys, hc.files, store, host);
  const force = opts.forceToken ? new Set(cfg.pfs.filter((p) => p.token.policy === "generate" || p.token.policy === "file").map((p) => p.name)) : undefined;
  const plan = makePlan(cfg, host, { ...tokens, ...(force ? { force } : {}) });
  for (const p of tokens.problems) plan.blockers.push({ pf: p.pf, device: null, reason: p.message, fix: p.fix ?? "fix the token source" });
  for (const r of tokens.resolved) plan.notes.push({ pf: null, text: r });
  const prev = new StateDir(hc.files, hc.cfg.stateDir).readJson<Journal>("current.json");
  if (prev && prev.status === "running") {
    const at = prev.steps.find((s) => s.status === "running");
    plan.notes.push({ pf: null, text: `an apply started ${prev.started} (pid ${prev.pid}) did not finish${at ? ` (it was in "${at.step.text}")` : ""}: the next apply finishes it with the steps above, or undoes it with --undo-interrupted` });
  }
  return { plan, host, tokens };
}

export interface ApplyOptions {
  dryRun?: boolean;
  /** undo an interrupted apply instead of finishing it */
  undoInterrupted?: boolean;
  /** only this PF (a re-probe: its token is set again) */
  device?: string;
  beforeStep?: (i: number, s: import("./plan.js").Step) => void | Promise<void>;
}

export interface HostApplyReport extends ApplyReport {
  plan: Plan;
  /** what was found of an interrupted apply and what was done about it */
  recovered: { journal: Journal; action: "finished" | "undone" } | null;
}

/** Converge the host to the config: lock, recover an interrupted apply, plan, refuse on blockers, run with rollback. */
export async function applyHost(hc: HostCtx, opts: ApplyOptions = {}): Promise<HostApplyReport> {
  const timeoutMs = hc.timeoutMs ?? 5000;
  const state = new StateDir(hc.files, hc.cfg.stateDir);
  const store = new TokenStore(hc.files, hc.cfg.store);
  if (opts.dryRun) {
    const pr = await planHost(hc, { ...(opts.device ? { device: opts.device, forceToken: true } : {}) });
    return { status: "dry-run", journal: null, failed: null, leftBehind: [], interrupted: null, plan: pr.plan, recovered: null };
  }
  const lock = takeLock(state);
  try {
    let recovered: HostApplyReport["recovered"] = null;
    const prev = state.readJson<Journal>("current.json");
    if (prev && prev.status === "running") {
      const ax0 = { sys: hc.sys, files: hc.files, cfg: hc.cfg, store, timeoutMs, bootId: null };
      if (opts.undoInterrupted) {
        await undoJournal(ax0, state, prev);
        prev.status = "interrupted-undone";
        state.writeJson(`interrupted-${prev.id}.json`, prev);
        state.remove("current.json");
        recovered = { journal: prev, action: "undone" };
        const pr = await planHost(hc);
        return { status: "interrupted-undone", journal: prev, failed: null, leftBehind: [], interrupted: prev, plan: pr.plan, recovered };
      }
      prev.status = "interrupted-finished";
      state.writeJson(`interrupted-${prev.id}.json`, prev);
      state.remove("current.json");
      recovered = { journal: prev, action: "finished" };
    }
    const pr = await planHost(hc, opts.device ? { device: opts.device, forceToken: true } : {});
    const base = { plan: pr.plan, recovered, interrupted: recovered?.journal ?? null };
    if (pr.plan.blockers.length) {
      return { ...base, status: "blocked", journal: null, failed: null, leftBehind: [] };
    }
    if (!pr.plan.steps.length) return { ...base, status: "nothing-to-do", journal: null, failed: null, leftBehind: [] };
    const found = recovered ? { id: recovered.journal.id, started: recovered.journal.started, pid: recovered.journal.pid, at: recovered.journal.steps.find((s) => s.status === "running")?.step.text ?? "between steps", action: recovered.action } : undefined;
    const r = await runPlan({ sys: hc.sys, files: hc.files, cfg: hc.cfg, store, timeoutMs, bootId: pr.host.bootId, ...(opts.beforeStep ? { beforeStep: opts.beforeStep } : {}) }, state, pr.plan.steps, found);
    return { ...r, ...base };
  } finally {
    lock.release();
  }
}

export interface PfStatus {
  name: string;
  field: string;
  matched: { bdf: string | null; how: string; problem: string | null };
  driver: { want: string; have: string | null };
  vfs: { want: number; have: number | null };
  vfDrivers: { bdf: string; index: number; want: string; have: string | null }[];
  token: {
    policy: string;
    /** "match" | "mismatch" | "unknown" | "not stored" | "external" | "none" */
    state: string;
    how: string;
    pending: boolean;
    previous: { kept: boolean; rotatedAt: string | null };
    /** VF users whose process started before the last rotation (they may hold the old token) */
    oldTokenUsers: { bdf: string; pid: number; comm: string; startedAt: string | null }[];
  };
  holders: { bdf: string; pid: number; comm: string; fd: number; target: string }[];
  drift: string[];
}

export interface HostStatus {
  config: string;
  inSync: boolean;
  pfs: PfStatus[];
  host: string[];
  plan: Plan;
}

/** Drift between the config and the host, per PF (read-only apart from opening free VFs). */
export async function statusHost(hc: HostCtx): Promise<HostStatus> {
  const { processStartMs } = await import("./tokens.js");
  const store = new TokenStore(hc.files, hc.cfg.store);
  const pr = await planHost(hc);
  const pfs: PfStatus[] = [];
  for (const st of pr.host.pfs) {
    const pc = st.cfg;
    const pf = st.pf;
    const drift: string[] = [];
    if (!pf) drift.push(st.match.problem ?? "not matched");
    const vfDrivers: PfStatus["vfDrivers"] = [];
    const { vfDriverOf } = await import("./config.js");
    if (pf) {
      if (pf.driver !== pc.driver) drift.push(`driver: ${pf.driver ?? "none"}, config says ${pc.driver}`);
      if (pf.sriov?.numVfs !== pc.vfs) drift.push(`VFs: ${pf.sriov?.numVfs ?? "unknown"}, config says ${pc.vfs}`);
      st.vfs.forEach((v, i) => {
        const idx = v.vfIndex ?? i;
        const r = vfDriverOf(pc, idx);
        if (!r) return;
        vfDrivers.push({ bdf: v.bdf, index: idx, want: r.driver, have: v.driver });
        if (v.driver !== r.driver && pf.sriov?.numVfs === pc.vfs) drift.push(`VF ${idx} (${v.bdf}): driver ${v.driver ?? "none"}, config says ${r.driver}`);
      });
    }
    const tk = pc.token;
    let state = tk.policy === "external" ? "external" : tk.policy === "none" ? "none" : "unknown";
    let how = tk.policy === "external" ? `${tk.owner ?? "the PF's userspace driver"} is expected to set the token; vfioctl sets none` : tk.policy === "none" ? `no VF token (PF on ${pc.driver})` : (pr.tokens.how.get(pc.name) ?? "");
    if (tk.policy === "generate" || tk.policy === "file") {
      const k = pr.tokens.kernelToken?.get(pc.name);
      if (!pr.tokens.storedTokens.has(pc.name)) state = tk.policy === "file" ? "unreadable" : "not stored";
      else if (k) state = k;
      else if (pf && pf.driver !== "vfio-pci") state = "none";
      const idle = pf?.driver === "vfio-pci" && (pf.sriov?.numVfs ?? 0) === 0 && pc.vfs === 0;
      if (state !== "match" && state !== "none" && !idle) drift.push(`token: ${state} (${how})`);
    }
    const meta = tk.policy === "generate" ? store.meta(pc.name) : {};
    const rotatedAt = meta.rotatedAt ?? null;
    const holders = [...st.holders.entries()].flatMap(([bdf, hs]) => hs.map((h) => ({ bdf, pid: h.pid, comm: h.comm, fd: h.fd, target: h.target })));
    const oldTokenUsers: PfStatus["token"]["oldTokenUsers"] = [];
    if (rotatedAt) {
      const t = Date.parse(rotatedAt);
      for (const h of holders) {
        if (h.bdf === pf?.bdf) continue;
        const s = await processStartMs(hc.sys, h.pid);
        if (s === null || s < t) oldTokenUsers.push({ bdf: h.bdf, pid: h.pid, comm: h.comm, startedAt: s === null ? null : new Date(s).toISOString() });
      }
    }
    let pending = false;
    let prevKept = false;
    if (tk.policy === "generate") {
      try {
        pending = store.read(pc.name, "pending") !== null;
        prevKept = store.read(pc.name, "previous") !== null;
      } catch {
        /* reported by the survey */
      }
    }
    if (pending) drift.push("token: a pending token from an interrupted change (apply or status resolves it once a VF is free)");
    pfs.push({
      name: pc.name,
      field: pc.field,
      matched: { bdf: st.match.bdf, how: st.match.how, problem: st.match.problem },
      driver: { want: pc.driver, have: pf?.driver ?? null },
      vfs: { want: pc.vfs, have: pf?.sriov?.numVfs ?? null },
      vfDrivers,
      token: { policy: tk.policy, state, how, pending, previous: { kept: prevKept, rotatedAt }, oldTokenUsers },
      holders,
      drift,
    });
  }
  const host: string[] = [];
  for (const s of pr.plan.steps) if (s.kind === "param") host.push(`vfio-pci enable_sriov: ${pr.host.module.enableSriov ? "Y" : "N"}, the config needs Y`);
  const inSync = pfs.every((p) => p.drift.length === 0) && host.length === 0 && pr.plan.steps.length === 0 && pr.plan.blockers.length === 0;
  return { config: hc.cfg.file, inSync, pfs, host, plan: pr.plan };
}
