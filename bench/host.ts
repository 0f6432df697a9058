/**
 * Host-management benchmarks: `planHost`, `applyHost` and `statusHost` (src/host/host.ts) on a
 * simulated host of 16 PFs at several VF counts, the host's files (token store, journal, lock)
 * under a temporary HostFiles root (real files, fsynced; on /dev/shm when there is one, see
 * rootParent), measured beside anchors taken in the same run.
 *
 * The host (`mgmtHost`): 16 PFs (8086:159b) on ice at boot with no VFs, each with TotalVFs N at
 * offset 1, stride 1 (VF 255 lands on the next bus). The config (`mgmtConfig`) moves every PF
 * to vfio-pci with all N VFs and a generated token. Variants: VFs 0-3 of every PF also on iavf
 * (trust_host_driver: true), and N/8 VFs of every PF on iavf (the number of steps then grows
 * with N).
 *
 * Per sample, on one fresh kernel and one fresh root (`mgmtOnce`; each part timed after a full
 * garbage collection, and its syscalls through the seam counted):
 *   plan                planHost on the host as booted (reads the PFs; no VF exists yet)
 *   apply (cold)        applyHost: PF rebind, token generated, stored and set, sriov_numvfs
 *                       0 → N (and the iavf binds), each step journaled, with the snapshot
 *   converged plan      planHost on the converged host (no steps)
 *   converged apply     applyHost on the converged host ("nothing-to-do")
 *   status              statusHost on the converged host (in sync)
 *   list (anchor)       the library's inventory() (what `vfioctl list` reads) on the same host
 * and the anchor "enable": N written to every PF's sriov_numvfs and nothing else, on a kernel of
 * its own with the PFs already on vfio-pci (bench/model.ts enableDisable, median of three),
 * after every sample. Sizes and variants run in interleaved rounds (`benchHostMgmt`).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { HostDesc } from "../src/kernel/host/host-file.js";
import { SeededRng } from "../src/kernel/clock.js";
import { hostFiles } from "../src/sys/hostfs.js";
import type { Stat, Syscalls } from "../src/sys/syscalls.js";
import { parseConfig, type HostConfig } from "../src/host/config.js";
import { applyHost, planHost, statusHost } from "../src/host/host.js";
import { inventory } from "../src/lib/inventory.js";
import { MAX_VFS, PFS, enableDisable, median, pfBdf } from "./model.js";

/**
 * A full garbage collection before each measured part, so that no part pays for the previous
 * part's garbage (a 16×256 host leaves hundreds of MB; the 30 ms enable anchor measured after it
 * otherwise often includes a major collection).
 */
const gc: () => void = (() => {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
})();

/**
 * Where the temporary HostFiles roots go: BENCH_HOST_ROOT, else /dev/shm when it is a writable
 * directory (tmpfs: the journal's and the store's fsyncs cost next to nothing, so other work's
 * disk traffic does not swamp the figures), else os.tmpdir().
 */
export function rootParent(): string {
  if (process.env.BENCH_HOST_ROOT) return process.env.BENCH_HOST_ROOT;
  try {
    fs.accessSync("/dev/shm", fs.constants.W_OK);
    if (fs.statSync("/dev/shm").isDirectory()) return "/dev/shm";
  } catch {
    /* no /dev/shm */
  }
  return os.tmpdir();
}

export interface HostBenchRow {
  bench: string;
  size: string;
  value: number;
  unit: string;
  note?: string;
}

/** 16 PFs on ice with TotalVFs n (no VFs at boot), vfio-pci loaded with enable_sriov=Y. */
export function mgmtHost(n: number, pfs = PFS): HostDesc {
  return {
    name: `bench-host-${pfs}x${n}`,
    modules: { vfio_pci: { enable_sriov: true } },
    drivers: ["ice", "iavf", "pci-pf-stub", "vfio-pci"],
    devices: Array.from({ length: pfs }, (_, i) => ({
      bdf: pfBdf(i),
      vendor: 0x8086,
      device: 0x159b,
      class: 0x020000,
      driver: "ice",
      sriov: { total_vfs: n, offset: 1, stride: 1, vf_device: 0x1889, bus_end: 0x10 + 4 * i + 2 },
    })),
  };
}

/** Every PF to vfio-pci with all n VFs and a generated token; with hostVfs > 0, VFs 0..hostVfs-1 of every PF on iavf. */
export function mgmtConfig(n: number, hostVfs = 0, pfs = PFS): HostConfig {
  const lines = ["version: 1", "pfs:"];
  for (let i = 0; i < pfs; i++) {
    lines.push(`  - name: pf${i}`, `    match: { bdf: "${pfBdf(i)}" }`, "    driver: vfio-pci", `    vfs: ${n}`, "    token: generate");
    if (hostVfs > 0) lines.push("    vf_drivers:", `      - { vfs: "0-${hostVfs - 1}", driver: iavf, trust_host_driver: true }`);
  }
  return parseConfig(lines.join("\n") + "\n", "bench-host.yaml");
}

export interface MgmtSample {
  n: number;
  vfs: number;
  steps: number;
  /** ms each */
  plan: number;
  apply: number;
  convergedPlan: number;
  convergedApply: number;
  status: number;
  list: number;
  /** syscalls through the seam, per part (deterministic: the growth measure that no noise blurs) */
  calls: Partial<Record<"plan" | "apply" | "convergedPlan" | "convergedApply" | "status" | "list", number>>;
}

/** The syscalls seam of a process, counting the calls made through it (like strace -c). */
class CountingSys implements Syscalls {
  calls = 0;
  constructor(private readonly s: Syscalls) {}
  get backend() {
    return this.s.backend;
  }
  get pid() {
    return this.s.pid;
  }
  open(path: string, flags: number): Promise<number> {
    this.calls++;
    return this.s.open(path, flags);
  }
  close(fd: number): Promise<void> {
    this.calls++;
    return this.s.close(fd);
  }
  read(fd: number, length: number): Promise<Buffer> {
    this.calls++;
    return this.s.read(fd, length);
  }
  write(fd: number, data: Buffer | string): Promise<number> {
    this.calls++;
    return this.s.write(fd, data);
  }
  lseek(fd: number, offset: number, whence: number): Promise<number> {
    this.calls++;
    return this.s.lseek(fd, offset, whence);
  }
  ioctl(fd: number, request: number, arg?: Buffer | number): Promise<number> {
    this.calls++;
    return this.s.ioctl(fd, request, arg);
  }
  eventfd(initval: number, flags: number): Promise<number> {
    this.calls++;
    return this.s.eventfd(initval, flags);
  }
  readlink(path: string): Promise<string> {
    this.calls++;
    return this.s.readlink(path);
  }
  readdir(path: string): Promise<string[]> {
    this.calls++;
    return this.s.readdir(path);
  }
  stat(path: string): Promise<Stat> {
    this.calls++;
    return this.s.stat(path);
  }
  lstat(path: string): Promise<Stat> {
    this.calls++;
    return this.s.lstat(path);
  }
  exit(): Promise<void> {
    return this.s.exit();
  }
}

/** One fresh host of 16 PFs × n VFs: plan, apply, converged plan and apply, status, list (ms each). */
export async function mgmtOnce(n: number, hostVfs = 0, opts: { pfs?: number; rootParent?: string; coldOnly?: boolean } = {}): Promise<MgmtSample> {
  const pfs = opts.pfs ?? PFS;
  const k = await bootKernel(mgmtHost(n, pfs), { profile: "6.12", rng: new SeededRng(7) });
  const sys = new CountingSys(k.spawn("vfioctl"));
  const dir = fs.mkdtempSync(path.join(opts.rootParent ?? rootParent(), "vfioctl-bench-host-"));
  const what = `bench host ${pfs}x${n}${hostVfs ? ` (${hostVfs} VFs/PF on iavf)` : ""}`;
  try {
    const hc = { sys, files: hostFiles(dir), cfg: mgmtConfig(n, hostVfs, pfs) };
    const calls: MgmtSample["calls"] = {};
    const timed = async <T>(part: keyof MgmtSample["calls"], fn: () => Promise<T>): Promise<[T, number]> => {
      gc();
      const c0 = sys.calls;
      const t0 = performance.now();
      const r = await fn();
      const ms = performance.now() - t0;
      calls[part] = sys.calls - c0;
      return [r, ms];
    };
    const [p0, plan] = await timed("plan", () => planHost(hc));
    const [a0, apply] = await timed("apply", () => applyHost(hc));
    if (p0.plan.blockers.length || !p0.plan.steps.length) throw new Error(`${what}: unexpected plan (${p0.plan.steps.length} steps; ${p0.plan.blockers.map((b) => b.reason).join("; ")})`);
    if (a0.status !== "done") throw new Error(`${what}: apply ${a0.status}${a0.failed ? `: ${a0.failed.error?.message}` : ""}`);
    // the journal apply wrote is exactly JSON.stringify(journal, null, 2) (src/host/apply.ts journalBytes)
    const last = fs.readFileSync(path.join(hc.files.real(hc.cfg.stateDir), "last.json"), "utf8");
    if (JSON.stringify(JSON.parse(last), null, 2) + "\n" !== last) throw new Error(`${what}: last.json is not JSON.stringify(journal, null, 2)`);
    const sample: MgmtSample = { n, vfs: pfs * n, steps: p0.plan.steps.length, plan, apply, convergedPlan: NaN, convergedApply: NaN, status: NaN, list: NaN, calls };
    if (opts.coldOnly) return sample;
    const [p1, convergedPlan] = await timed("convergedPlan", () => planHost(hc));
    const [a1, convergedApply] = await timed("convergedApply", () => applyHost(hc));
    const [st, status] = await timed("status", () => statusHost(hc));
    const [inv, list] = await timed("list", () => inventory(sys));
    if (p1.plan.steps.length || p1.plan.blockers.length) throw new Error(`${what}: converged plan has ${p1.plan.steps.length} steps`);
    if (a1.status !== "nothing-to-do") throw new Error(`${what}: converged apply ${a1.status}`);
    if (!st.inSync) throw new Error(`${what}: status not in sync: ${st.pfs.flatMap((p) => p.drift).slice(0, 3).join("; ")}`);
    const vfs = inv.pfs.reduce((s, p) => s + p.vfDevices.length, 0);
    if (vfs !== pfs * n) throw new Error(`${what}: ${vfs} VFs after apply`);
    const onIavf = inv.pfs.reduce((s, p) => s + p.vfDevices.filter((v) => v.driver === "iavf").length, 0);
    if (onIavf !== pfs * hostVfs) throw new Error(`${what}: ${onIavf} VFs on iavf after apply`);
    return { ...sample, convergedPlan, convergedApply, status, list };
  } finally {
    await sys.exit();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The enable anchor (ms): median of three `sriov_numvfs=n` on every PF of a fresh kernel. It runs
 * right after a large host's plan/apply, and a single 30 ms measurement then often includes a
 * garbage-collector pause for that host's garbage.
 */
async function enableAnchor(n: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 3; i++) {
    gc();
    xs.push((await enableDisable(n)).enable.ms);
  }
  return median(xs);
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

const METRICS = [
  { key: "plan", name: "plan (unconverged: PFs on ice, no VFs)", anchor: null },
  { key: "apply", name: "apply (cold: rebind, token, sriov_numvfs 0→N)", anchor: "enable" },
  { key: "convergedPlan", name: "plan, converged host", anchor: "list" },
  { key: "convergedApply", name: "apply, converged host (nothing to do)", anchor: "list" },
  { key: "convergedBoth", name: "plan + apply, converged host", anchor: "list" },
  { key: "status", name: "status, converged host", anchor: "list" },
  { key: "list", name: "anchor: list (inventory) on the converged host", anchor: null },
  { key: "enable", name: "anchor: enable through sriov_numvfs alone", anchor: null },
] as const;
type MetricKey = (typeof METRICS)[number]["key"];

export interface HostBenchResult {
  rows: HostBenchRow[];
  summary: Record<string, unknown>;
}

/** The median; for an even count, the mean of the two middle values. */
function mid(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

interface Variant {
  label: string;
  /** VFs per PF on iavf, for N VFs per PF */
  hostVfs: (n: number) => number;
  sizes: number[];
  coldOnly: boolean;
  /** samples per size in each round */
  perRound: (n: number) => number;
}

/**
 * The host-management benchmarks at each size, side by side in one run. The sizes are measured
 * in `rounds` interleaved rounds (every size and variant once per round, smaller sizes with
 * proportionally more samples, up to 4×), so that a slow phase of the machine falls on all
 * sizes alike; medians of all samples are kept.
 */
export async function benchHostMgmt(opts: { sizes?: number[]; rounds?: number; hostVfs?: number; log?: (s: string) => void } = {}): Promise<HostBenchResult> {
  const sizes = (opts.sizes ?? [32, 64, 128, 256]).filter((n) => n > 0 && n <= MAX_VFS);
  const rounds = opts.rounds ?? 2;
  const few = opts.hostVfs ?? 4;
  const log = opts.log ?? (() => {});
  const rows: HostBenchRow[] = [];
  const summary: Record<string, unknown> = { rounds, root: rootParent() };
  const largest = sizes.at(-1)!;
  const ends = [sizes[0]!, largest].filter((n, i, a) => a.indexOf(n) === i);
  const perRound = (n: number) => Math.min(4, Math.max(1, Math.round(largest / n)));
  const variants: Variant[] = [
    { label: "host", hostVfs: () => 0, sizes, coldOnly: false, perRound },
    { label: `host, ${few} VFs/PF on iavf`, hostVfs: (n) => Math.min(few, n), sizes: ends, coldOnly: false, perRound },
    // the number of steps grows with N here (cold apply only)
    { label: "host, N/8 VFs/PF on iavf", hostVfs: (n) => Math.max(1, n / 8), sizes: ends, coldOnly: true, perRound: (n) => (n === largest ? 1 : 2) },
  ];
  // warm the code paths up on a small host first
  for (let r = 0; r < 3; r++) {
    await mgmtOnce(8, 0);
    await mgmtOnce(8, 2);
    await enableDisable(8);
  }
  type Samples = Record<MetricKey, number[]>;
  const empty = (): Samples => ({ plan: [], apply: [], convergedPlan: [], convergedApply: [], convergedBoth: [], status: [], list: [], enable: [] });
  const got = variants.map((v) => new Map<number, { samples: Samples; steps: number; calls: MgmtSample["calls"] }>(v.sizes.map((n) => [n, { samples: empty(), steps: 0, calls: {} }])));
  for (let round = 0; round < rounds; round++) {
    const t0 = performance.now();
    for (const [vi, v] of variants.entries()) {
      for (const n of v.sizes) {
        const g = got[vi]!.get(n)!;
        for (let r = 0; r < v.perRound(n); r++) {
          const s = await mgmtOnce(n, v.hostVfs(n), { coldOnly: v.coldOnly });
          const enable = await enableAnchor(n);
          g.steps = s.steps;
          for (const [part, c] of Object.entries(s.calls) as [keyof MgmtSample["calls"], number][]) {
            const before = g.calls[part];
            if (before !== undefined && before !== c) log(`note: ${v.label} ${PFS}x${n} ${part}: ${c} syscalls, ${before} in an earlier sample`);
            g.calls[part] = c;
          }
          const x = { ...s, convergedBoth: s.convergedPlan + s.convergedApply, enable } as Record<MetricKey, number>;
          for (const m of METRICS) if (!Number.isNaN(x[m.key])) g.samples[m.key].push(x[m.key]);
        }
      }
    }
    log(`host benchmarks: round ${round + 1}/${rounds}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  for (const [vi, v] of variants.entries()) {
    const vs = v.sizes;
    const metrics = METRICS.filter((m) => !v.coldOnly || m.key === "apply" || m.key === "enable");
    const ms = (k: MetricKey) => vs.map((n) => mid(got[vi]!.get(n)!.samples[k]));
    const perVf = (k: MetricKey) => ms(k).map((x, i) => (x * 1000) / (PFS * vs[i]!));
    const steps = vs.map((n) => got[vi]!.get(n)!.steps);
    const vsum: Record<string, unknown> = { sizes: vs, steps, samples: vs.map((n) => got[vi]!.get(n)!.samples.enable.length) };
    for (const m of metrics) {
      const name = `${v.label}: ${m.name}`;
      const tot = ms(m.key);
      const per = perVf(m.key);
      const anchor = m.anchor ? ms(m.anchor) : null;
      // syscalls per VF through the seam (plan + apply: the sum of both)
      const callsOf = (n: number): number | null => {
        const c = got[vi]!.get(n)!.calls;
        const x = m.key === "convergedBoth" ? (c.convergedPlan ?? NaN) + (c.convergedApply ?? NaN) : m.key === "enable" ? NaN : (c[m.key] ?? NaN);
        return Number.isNaN(x) ? null : x / (PFS * n);
      };
      const calls = vs.map(callsOf);
      vs.forEach((n, i) => {
        const note = `${fmt(tot[i]!)} ms total${anchor ? `; ${fmt(tot[i]! / anchor[i]!)}× ${m.anchor}` : ""}${calls[i] !== null ? `; ${fmt(calls[i]!)} syscalls/VF` : ""}${m.key === "apply" ? `; ${steps[i]} steps` : ""}; ${got[vi]!.get(n)!.samples[m.key].length} samples`;
        rows.push({ bench: name, size: `${PFS}x${n} (${PFS * n} VFs)`, value: per[i]!, unit: "µs/VF", note });
      });
      if (vs.length < 2) continue;
      const ratio = per.at(-1)! / per[0]!;
      const anchorRatio = m.anchor ? perVf(m.anchor).at(-1)! / perVf(m.anchor)[0]! : null;
      rows.push({
        bench: name,
        size: `ratio ${vs.at(-1)}/${vs[0]} per VF`,
        value: ratio,
        unit: "×",
        note: `${ratio < 1.5 ? "linear (per-VF cost flat or falling)" : "SUPER-LINEAR"}${anchorRatio !== null ? `; anchor ${m.anchor} ${fmt(anchorRatio)}×` : ""}${calls[0] && calls.at(-1) ? `; syscalls/VF ${fmt(calls.at(-1)! / calls[0])}×` : ""}`,
      });
      vsum[m.key] = { usPerVf: per, ms: tot, perVfRatio: ratio, ...(calls[0] !== null ? { syscallsPerVf: calls, syscallsPerVfRatio: calls.at(-1)! / calls[0]! } : {}), ...(anchor ? { anchor: m.anchor, toAnchor: tot.map((x, i) => x / anchor[i]!) } : {}) };
    }
    summary[v.label] = vsum;
  }
  return { rows, summary };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = process.env.BENCH_SIZES ? process.env.BENCH_SIZES.split(",").map(Number) : undefined;
  const r = await benchHostMgmt({ ...(sizes ? { sizes } : {}), rounds: Number(process.env.BENCH_HOST_RUNS ?? 2), log: (s) => console.error(s) });
  for (const x of r.rows) console.log(`${x.bench.padEnd(72)} ${x.size.padEnd(22)} ${fmt(x.value).padStart(8)} ${x.unit.padEnd(6)} ${x.note ?? ""}`);
}
