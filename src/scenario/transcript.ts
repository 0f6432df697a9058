/**
 * Transcripts: the text formatter and the comparison the lab uses to set a model run beside a
 * real-kernel run of the same scenario.
 *
 * @example
 * ```ts
 * import { compareTranscripts } from "./transcript.js";
 * const diffs = compareTranscripts(modelRun, labRun, { ignoreLog: [/^igbvf /] });
 * for (const d of diffs) console.log(d.op, d.field, d.a, "≠", d.b);
 * ```
 */
import { DEFAULT_LOG_IGNORE, type OpResult, type Transcript } from "./runner.js";
import type { LogLine } from "./kmsg.js";

export interface CompareFilter {
  /** log lines to leave out on both sides (default: {@link DEFAULT_LOG_IGNORE}) */
  ignoreLog?: RegExp[];
  /** keep the default ignore list as well as ignoreLog (default true) */
  defaultIgnore?: boolean;
  /** drop lines less important than this level (default "info": debug lines are dropped) */
  minLevel?: string;
  /** compare log levels as well as text (default true) */
  levels?: boolean;
  /** compare the setup ops too (default false: setup depends on the host's boot state) */
  setup?: boolean;
  /** compare log lines at all (default true) */
  logs?: boolean;
}

export interface OpDiff {
  op: string;
  field: "missing" | "ret" | "errno" | "blocked" | "value" | "out" | "fd" | "groups" | "log" | "fd-table";
  a: unknown;
  b: unknown;
}

const LEVEL_ORDER = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"];

/** Per-op differences between two transcripts of the same scenario (ops matched by name). */
export function compareTranscripts(a: Transcript, b: Transcript, filter: CompareFilter = {}): OpDiff[] {
  const ignore = [...(filter.defaultIgnore === false ? [] : DEFAULT_LOG_IGNORE), ...(filter.ignoreLog ?? [])];
  const minLevel = LEVEL_ORDER.indexOf(filter.minLevel ?? "info");
  const keep = (l: LogLine) => LEVEL_ORDER.indexOf(l.level) <= minLevel && !ignore.some((r) => r.test(l.text));
  const show = (l: LogLine) => (filter.levels === false ? l.text : `${l.level}: ${l.text}`);
  const ops = (t: Transcript) => [...(filter.setup ? t.setup : []), ...t.ops];
  const bm = new Map(ops(b).map((o) => [o.name, o]));
  const am = new Map(ops(a).map((o) => [o.name, o]));
  const out: OpDiff[] = [];
  for (const x of ops(a)) {
    const y = bm.get(x.name);
    if (!y) {
      out.push({ op: x.name, field: "missing", a: x.call, b: undefined });
      continue;
    }
    const blockedA = !!x.blocked;
    const blockedB = !!y.blocked;
    if (blockedA !== blockedB) out.push({ op: x.name, field: "blocked", a: blockedA, b: blockedB });
    if (!blockedA && !blockedB) {
      if ((x.errno ?? null) !== (y.errno ?? null)) out.push({ op: x.name, field: "errno", a: x.errno ?? null, b: y.errno ?? null });
      else if (x.ret !== y.ret) out.push({ op: x.name, field: "ret", a: x.ret, b: y.ret });
      if (x.value !== y.value && (x.value !== undefined || y.value !== undefined)) out.push({ op: x.name, field: "value", a: x.value, b: y.value });
      if (JSON.stringify(x.out ?? null) !== JSON.stringify(y.out ?? null)) out.push({ op: x.name, field: "out", a: x.out, b: y.out });
      if (x.fd !== y.fd) out.push({ op: x.name, field: "fd", a: x.fd, b: y.fd });
    }
    if (JSON.stringify(x.groups ?? null) !== JSON.stringify(y.groups ?? null)) out.push({ op: x.name, field: "groups", a: x.groups, b: y.groups });
    if (filter.logs !== false) {
      const la = x.log.filter(keep).map(show);
      const lb = y.log.filter(keep).map(show);
      if (la.join("\n") !== lb.join("\n")) out.push({ op: x.name, field: "log", a: la, b: lb });
    }
  }
  for (const y of ops(b)) if (!am.has(y.name)) out.push({ op: y.name, field: "missing", a: undefined, b: y.call });
  if (a.fds?.table !== b.fds?.table) out.push({ op: "(fd table)", field: "fd-table", a: a.fds?.table, b: b.fds?.table });
  return out;
}

function outcome(r: OpResult): string {
  if (r.blocked) return `BLOCKED${r.waitingOn ? ` (${r.waitingOn})` : ""}${r.completedDuring ? `; finished during ${r.completedDuring}` : ""}`;
  let s = r.errno ? r.errno : r.ret === undefined ? "ok" : r.ret === "fd" && r.fd !== undefined ? `fd base+${r.fd}` : String(r.ret);
  if (r.value !== undefined) s += ` ${JSON.stringify(r.value)}`;
  if (r.out) s += ` {${Object.entries(r.out).map(([k, v]) => `${k}: ${k === "flags" || k === "offset" ? "0x" + v.toString(16) : v}`).join(", ")}}`;
  if (r.completedDuring) s += ` (blocked; finished during ${r.completedDuring})`;
  return s;
}

function line(r: OpResult): string[] {
  const mark = r.failures?.length ? "✗" : " ";
  const out = [`${mark} [${r.proc}] ${r.name.padEnd(14)} ${r.call} → ${outcome(r)}`];
  for (const a of r.actions ?? []) out.push(`      · ${a}`);
  for (const l of r.log) out.push(`      ${l.level.padEnd(6)} ${l.text}`);
  for (const f of r.failures ?? []) out.push(`      ✗ ${f}`);
  return out;
}

/** Human-readable transcript: one line per op, then its log lines, then failed expectations. */
export function formatTranscript(t: Transcript): string {
  const out = [`# ${t.scenario} — ${t.backend}, profile ${t.profile}`];
  if (t.setup.length) {
    out.push("setup:");
    for (const r of t.setup) out.push(...line(r));
    out.push("ops:");
  }
  for (const r of t.ops) out.push(...line(r));
  if (t.teardown.some((r) => r.log.length)) {
    out.push("teardown:");
    for (const r of t.teardown) if (r.log.length) out.push(...line(r));
  }
  if (t.unfinished.length) out.push(`still blocked at the end: ${t.unfinished.join(", ")}`);
  out.push(t.ok ? "ok: every expectation held" : `FAILED: ${t.failures.length} expectation(s) did not hold`);
  return out.join("\n");
}

/** Text for a list of differences. */
export function formatDiffs(diffs: OpDiff[]): string {
  if (diffs.length === 0) return "no differences";
  return diffs
    .map((d) => {
      if (d.field === "log") return `${d.op}: log differs\n    a: ${(d.a as string[]).join("\n       ") || "(none)"}\n    b: ${(d.b as string[]).join("\n       ") || "(none)"}`;
      return `${d.op}: ${d.field}: ${JSON.stringify(d.a)} ≠ ${JSON.stringify(d.b)}`;
    })
    .join("\n");
}
