/**
 * `npm run bench`: the kernel-model benchmarks (bench/model.ts) at several sizes, side by side in
 * one run, then the `list` benchmark (bench/list.ts) when present, then the host-management
 * benchmarks (bench/host.ts: plan, apply, status); the start-up (bench/startup.ts) and FFI
 * (bench/ffi.ts) benchmarks run after the list one. Prints a table and writes bench/results.json.
 * Growth is judged by ratios between sizes, never by absolute thresholds.
 *
 * Options (environment): BENCH_RUNS (repeats of the largest size, median kept; smaller sizes are
 * repeated proportionally more, up to 8×; default 3), BENCH_SIZES (VFs per PF, comma-separated;
 * default 32,64,128,256), BENCH_CYCLES (GET_DEVICE_FD + close iterations; default 20000),
 * BENCH_HOST_RUNS (interleaved rounds of the host benchmarks; default 2), BENCH_ONLY (sections to run,
 * comma-separated: model, list, startup, ffi, host; default all — results.json then keeps the other
 * sections' rows from its previous run).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { MAX_VFS, PFS, cycleOnOneKernel, enableDisable, median, openAll, readVirtfns, tokenCycles, type SizeResult } from "./model.js";
import { benchHostMgmt } from "./host.js";
import { benchStartup } from "./startup.js";
import { benchFfi } from "./ffi.js";

interface Row {
  bench: string;
  size: string;
  value: number;
  unit: string;
  note?: string;
}

const runs = Number(process.env.BENCH_RUNS ?? 3);
const sizes = (process.env.BENCH_SIZES ?? "32,64,128,256").split(",").map(Number).filter((n) => n > 0 && n <= MAX_VFS);
const SECTIONS = ["model", "list", "startup", "ffi", "host"] as const;
type Section = (typeof SECTIONS)[number];
const only = new Set((process.env.BENCH_ONLY ?? SECTIONS.join(",")).split(",").map((s) => s.trim()));
for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`BENCH_ONLY: expected a list of ${SECTIONS.join(", ")}, got ${JSON.stringify(s)}`);
const runsSection = (s: Section) => only.has(s);
/** Which section a row of results.json belongs to (to keep the rows of sections not run). */
const sectionOf = (r: Row): Section =>
  r.bench.startsWith("host") ? "host" : r.size === "list" || r.bench === "list" ? "list" : r.size === "startup" ? "startup" : r.size === "ffi" ? "ffi" : "model";

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

async function series(name: string, fn: (n: number) => Promise<SizeResult>, rows: Row[]): Promise<{ perVf: number[]; ratio: number }> {
  const perVf: number[] = [];
  // warm this code path up first, so the smallest size is not measured on a cold JIT
  for (let r = 0; r < 3; r++) await fn(sizes[0]!);
  for (const n of sizes) {
    const samples: SizeResult[] = [];
    // smaller sizes are repeated more (same total work per size), which also steadies their median
    const repeats = Math.min(runs * 8, Math.max(runs, Math.round((runs * sizes.at(-1)!) / n)));
    for (let r = 0; r < repeats; r++) samples.push(await fn(n));
    const us = median(samples.map((s) => s.usPerVf));
    const ms = median(samples.map((s) => s.ms));
    perVf.push(us);
    rows.push({ bench: name, size: `${PFS}x${n} (${PFS * n} VFs)`, value: us, unit: "µs/VF", note: `${fmt(ms)} ms total` });
  }
  const ratio = perVf[perVf.length - 1]! / perVf[0]!;
  rows.push({ bench: name, size: `ratio ${sizes.at(-1)}/${sizes[0]} per VF`, value: ratio, unit: "×", note: ratio < 1.5 ? "linear (per-VF cost flat)" : "SUPER-LINEAR" });
  return { perVf, ratio };
}

async function modelBenchmarks(rows: Row[]): Promise<Record<string, unknown>> {
  // warm up the JIT on a small host
  await enableDisable(16, 4);
  await openAll(16, 4);
  await tokenCycles(8, 2000, 2);

  const enable = await series("enable all VFs (sriov_numvfs=N on 16 PFs)", async (n) => (await enableDisable(n)).enable, rows);
  const disable = await series("disable all VFs (sriov_numvfs=0 on 16 PFs)", async (n) => (await enableDisable(n)).disable, rows);
  const opened = await series("open every VF (group + SET_CONTAINER + GET_DEVICE_FD w/ token)", async (n) => (await openAll(n)).open, rows);
  const closed = await series("close every VF (process exit)", async (n) => (await openAll(n)).close, rows);

  const virtfn = await series("find every VF (readlink PF/virtfn<N>)", (n) => readVirtfns(n), rows);

  const iters = Number(process.env.BENCH_CYCLES ?? 20000);
  const cyclesAt = async (n: number) => {
    const xs: number[] = [];
    for (let r = 0; r < runs; r++) xs.push(await tokenCycles(n, iters));
    return median(xs);
  };
  const small = await cyclesAt(sizes[0]!);
  const large = await cyclesAt(sizes.at(-1)!);
  const T = "GET_DEVICE_FD(VF vf_token=…) + close";
  rows.push({ bench: T, size: `${PFS}x${sizes[0]} host`, value: small, unit: "cycles/s" });
  rows.push({ bench: T, size: `${PFS}x${sizes.at(-1)} host`, value: large, unit: "cycles/s" });
  rows.push({ bench: T, size: "ratio small/large host", value: small / large, unit: "×", note: small / large < 1.5 ? "independent of host size" : "DEPENDS ON HOST SIZE" });

  const C = `enable+disable ${PFS}x${sizes.at(-1)} repeatedly on one kernel`;
  const per = await cycleOnOneKernel(sizes.at(-1)!, 10);
  const early = median(per.slice(1, 5));
  const late = median(per.slice(6));
  rows.push({ bench: C, size: "cycles 2-5 (log ring filling)", value: early, unit: "ms/cycle" });
  rows.push({ bench: C, size: "cycles 7-10 (log ring full)", value: late, unit: "ms/cycle" });
  rows.push({ bench: C, size: "ratio late/early", value: late / early, unit: "×", note: late / early < 1.5 ? "steady" : "SLOWS DOWN" });
  return {
    enablePerVfRatio: enable.ratio,
    disablePerVfRatio: disable.ratio,
    openPerVfRatio: opened.ratio,
    closePerVfRatio: closed.ratio,
    virtfnPerVfRatio: virtfn.ratio,
    tokenCyclesPerSecond: { small, large },
    cycleMs: { early, late },
  };
}

async function listBenchmark(rows: Row[]): Promise<void> {
  // the list benchmark (another engineer's bench/list.ts), if present
  const here = path.dirname(fileURLToPath(import.meta.url));
  const listJs = path.join(here, "list.js");
  let listNote: string | undefined;
  if (fs.existsSync(listJs)) {
    try {
      const mod = (await import(listJs)) as { benchList?: () => Promise<{ name: string; value: number; unit: string; note?: string }[]> };
      if (typeof mod.benchList === "function") {
        for (const r of await mod.benchList()) rows.push({ bench: r.name, size: "list", value: r.value, unit: r.unit, ...(r.note ? { note: r.note } : {}) });
      } else listNote = "bench/list.js has no benchList(); skipped";
    } catch (e) {
      listNote = `bench/list.js failed: ${(e as Error).message}`;
    }
  } else listNote = "bench/list.ts not present; list benchmark skipped";
  if (listNote) rows.push({ bench: "list", size: "-", value: NaN, unit: "-", note: listNote });
}

interface Results {
  date: string;
  node: string;
  runs: number;
  sizes: number[];
  pfs: number;
  seconds: number;
  /** per section: when it was last run and how long it took */
  sections?: Partial<Record<Section, { date: string; seconds: number }>>;
  summary: Record<string, unknown>;
  rows: Row[];
}

async function main(): Promise<void> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const file = path.join(here, "..", "..", "bench", "results.json");
  let prev: Results | null = null;
  try {
    prev = JSON.parse(fs.readFileSync(file, "utf8")) as Results;
  } catch {
    /* no previous results */
  }
  const rows: Row[] = [];
  const t0 = Date.now();
  const sections: NonNullable<Results["sections"]> = { ...(prev?.sections ?? {}) };
  let summary: Record<string, unknown> = {};
  const timed = async (s: Section, fn: () => Promise<void>) => {
    if (!runsSection(s)) return;
    const t = Date.now();
    await fn();
    sections[s] = { date: new Date().toISOString(), seconds: (Date.now() - t) / 1000 };
  };
  await timed("model", async () => {
    summary = { ...summary, ...(await modelBenchmarks(rows)) };
  });
  await timed("list", () => listBenchmark(rows));
  await timed("startup", async () => {
    for (const r of await benchStartup()) rows.push({ bench: r.name, size: "startup", value: r.value, unit: r.unit, ...(r.note ? { note: r.note } : {}) });
  });
  await timed("ffi", async () => {
    for (const r of await benchFfi()) rows.push({ bench: r.name, size: "ffi", value: r.value, unit: r.unit, ...(r.note ? { note: r.note } : {}) });
  });
  await timed("host", async () => {
    const r = await benchHostMgmt({ sizes, rounds: Number(process.env.BENCH_HOST_RUNS ?? 2), log: (s) => console.error(s) });
    rows.push(...r.rows);
    summary.host = r.summary;
  });
  // sections not run this time keep their previous rows and summary
  if (prev && SECTIONS.some((s) => !runsSection(s))) {
    rows.push(...prev.rows.filter((r) => !runsSection(sectionOf(r))));
    rows.sort((a, b) => SECTIONS.indexOf(sectionOf(a)) - SECTIONS.indexOf(sectionOf(b)));
    for (const s of SECTIONS) if (!runsSection(s) && !sections[s] && prev.rows.some((r) => sectionOf(r) === s)) sections[s] = { date: prev.date, seconds: prev.seconds };
    const prevSummary = { ...prev.summary };
    if (runsSection("model")) for (const k of Object.keys(prevSummary)) if (k !== "host") delete prevSummary[k];
    if (runsSection("host")) delete prevSummary.host;
    summary = { ...prevSummary, ...summary };
  }

  const w = [Math.max(...rows.map((r) => r.bench.length)), Math.max(...rows.map((r) => r.size.length)), 12];
  const line = (a: string, b: string, c: string, d: string, e: string) => `${a.padEnd(w[0]!)}  ${b.padEnd(w[1]!)}  ${c.padStart(w[2]!)} ${d.padEnd(8)} ${e}`;
  console.log(line("benchmark", "size", "value", "unit", "note"));
  console.log("-".repeat(w[0]! + w[1]! + w[2]! + 30));
  for (const r of rows) console.log(line(r.bench, r.size, Number.isNaN(r.value) ? "-" : fmt(r.value), r.unit, r.note ?? ""));

  const out: Results = {
    date: new Date().toISOString(),
    node: process.version,
    runs,
    sizes,
    pfs: PFS,
    seconds: (Date.now() - t0) / 1000,
    sections,
    summary,
    rows,
  };
  fs.writeFileSync(file, JSON.stringify(out, null, 2) + "\n");
  console.log(`\nwrote ${path.relative(process.cwd(), file)} (${out.seconds.toFixed(1)} s)`);
}

await main();
