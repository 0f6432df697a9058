/**
 * Conformance: every scenario file runs on a real kernel (a lab guest, through LinuxSyscalls) and
 * on the kernel model with the matching profile; the two transcripts are compared per operation.
 *
 * Compared per op (matched by name, setup + ops + teardown): blocked or not, return value, errno,
 * the value read back (read/readlink/exists), ioctl output fields, and the kernel log lines
 * (level + text, after the runner's normalisation of IOMMU group numbers, pids and tokens) —
 * and, as numbers, each new fd (its number above the table's lowest free fd at the start: Linux
 * gives the lowest free number) and every IOMMU group number the op saw (Linux numbers groups
 * from an IDA, lowest free id first; scenarios/hosts/lab-igb.yaml numbers the guest's boot
 * groups as the guests do). The model runs with one fd table for all scenario processes
 * (`sharedFds`), because in the guest they are fds of one node process.
 *
 * The filter (lines that are not the model's business), see docs/lab.md:
 *   {@link LAB_LOG_FILTER} — lines logged by the network drivers igb/igbvf about their netdev
 *   (MAC address, link, queue and interrupt set-up, "Intel(R) … Network Driver" banners), and
 *   netdev renames; and "hrtimer: interrupt took N ns" (a TCG stall). Nothing from vfio,
 *   vfio-pci, pci, pci-pf-stub, iommu, or any SR-IOV line of igb/igbvf is filtered.
 *   Timestamps and sequence numbers are never compared.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { Syscalls } from "../src/sys/syscalls.js";

/** igb/igbvf netdev chatter that the model does not produce (see the file comment). */
export const LAB_LOG_FILTER: RegExp[] = [
  // driver banners at module load
  /^(igb|igbvf): Intel\(R\) Gigabit (Ethernet |Virtual Function )?Network Driver/,
  /^(igb|igbvf): Copyright \(c\)/,
  /^dca service started, version /,
  // netdev set-up of a probed igb/igbvf device (the PCI address prefix stays, the text is netdev's)
  /^(igb|igbvf) [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]( \S+)?: (Intel\(R\) (82576|PRO|Gigabit)|eth\d+: |Address: |MAC: |(PBA|Part) [Nn]o|Using (MSI-X|MSI|legacy) interrupts|\d+ (rx|tx) queue\(s\)|(added|removed) PHC on|renamed from|PF still resetting|Link is|Invalid MAC Address|Assigning random MAC|mailbox|PF still in reset)/,
  /^(igb|igbvf) [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7] (eth|enp)\w*: renamed from/,
  // the emulator, not the kernel under test: TCG stalls a vCPU long enough for the hrtimer core
  // to warn (seen in the lab at any op, more often with other guests on the same host)
  /^hrtimer: interrupt took \d+ ns$/,
  // the same for the clocksource watchdog (seen in the consumer rows, two guests sharing the cores)
  /^clocksource: (Long readout interval, skipping watchdog check: |Watchdog remote CPU \d+ read timed out)/,
];

export function labFiltered(text: string): boolean {
  return LAB_LOG_FILTER.some((re) => re.test(text));
}

// ------------------------------------------------------------------ guest side

/** Modules the model's lab host has loaded (scenarios/hosts/lab-igb.yaml): load them the same way. */
export const GUEST_MODULES: [string, ...string[]][] = [["vfio-pci", "enable_sriov=1"], ["pci-pf-stub"], ["igb"], ["igbvf"]];

/** In the guest: load the modules, run each scenario file through LinuxSyscalls, write its transcript. */
export async function runGuestScenarios(kernel: string, files: string[], out: string): Promise<unknown> {
  const host = await import("./host-check.js");
  if (files.length === 1 && files[0] === host.HOST_JOB) return host.runGuestHostJob(kernel, out);
  const { loadScenario, runScenario } = await import("../src/scenario/index.js");
  const { labKernel } = await import("./kernels.js");
  const family = labKernel(kernel).family;
  const loaded = loadGuestModules();
  mkdirSync(path.join(out, "scn"), { recursive: true });
  const res: Record<string, unknown> = {};
  for (const f of files) {
    const t0 = performance.now();
    const sc = loadScenario(f);
    // TCG is slow: a VF removal takes ~1 s after its holder closes, so "blocked" means still
    // pending after 3 s here (VFIOCTL_LAB_BLOCK_MS), not the runner's 1.5 s default.
    // settleMs: while an op is blocked, each later op waits this long for it, so that what its
    // completion logs is attributed to the op that released it, as on the model (TCG is slow).
    const be = await guestBackend(family);
    const tr = await runScenario(sc, be, { profile: family });
    const ms = Math.round(performance.now() - t0);
    writeFileSync(path.join(out, "scn", `${path.basename(f).replace(/\.ya?ml$/, "")}.json`), JSON.stringify({ ms, transcript: tr }, null, 1));
    res[path.basename(f)] = { ok: tr.ok, ms };
    process.stdout.write(`scenario ${path.basename(f)}: ${tr.ok ? "ok" : "expectations failed"} (${ms} ms)\n`);
  }
  return { loaded, scenarios: res };
}

function loadGuestModules(): string[] {
  const loaded: string[] = [];
  for (const [m, ...params] of GUEST_MODULES) {
    execFileSync("modprobe", ["-d", "/mnt", m, ...params], { stdio: "inherit" });
    loaded.push(m);
  }
  return loaded;
}

/** The scenario runner's backend in the guest (LinuxSyscalls, lab timings, traced processes). */
async function guestBackend(kernel: string) {
  const { linuxBackend } = await import("../src/scenario/index.js");
  // the console stream is set up before linuxBackend looks at the fd table (traced() writes to it)
  process.stdout.write("");
  const be = await linuxBackend({
    profile: kernel,
    blockWindowMs: Number(process.env.VFIOCTL_LAB_BLOCK_MS ?? 3000),
    settleMs: Number(process.env.VFIOCTL_LAB_SETTLE_MS ?? 2000),
  });
  const spawn = be.spawn.bind(be);
  be.spawn = async (comm: string) => traced(await spawn(comm), comm);
  return be;
}

/** In the guest: load the modules, run the CLI conformance state scenario and snapshots (lab/cli-check.ts) → out/cli.json. */
export async function runGuestCliJob(kernel: string, project: string, out: string): Promise<unknown> {
  const { runGuestCli } = await import("./cli-check.js");
  const loaded = loadGuestModules();
  const run = await runGuestCli(kernel, project, await guestBackend(kernel));
  writeFileSync(path.join(out, "cli.json"), JSON.stringify(run, null, 1));
  process.stdout.write(`cli: ${Object.keys(run.snapshots).length} states (${run.ms} ms)\n`);
  return { loaded, ms: run.ms, states: Object.keys(run.snapshots) };
}

/** A Syscalls that prints each call on the console before making it (to see where a guest hangs). */
function traced(sys: Syscalls, comm: string): Syscalls {
  if (process.env.VFIOCTL_LAB_TRACE === "0") return sys;
  const say = (s: string) => process.stdout.write(`sys[${comm}] ${s}\n`);
  const fdPath = new Map<number, string>();
  const t = Object.create(sys) as Syscalls;
  return Object.assign(t, {
    open: async (p: string, f: number) => {
      say(`open ${p}`);
      const fd = await sys.open(p, f);
      fdPath.set(fd, p);
      return fd;
    },
    write: (fd: number, d: Buffer | string) => {
      say(`write ${fdPath.get(fd) ?? fd} ${JSON.stringify(d.toString())}`);
      return sys.write(fd, d);
    },
    read: (fd: number, n: number) => {
      if (fdPath.get(fd) !== "/dev/kmsg") say(`read ${fdPath.get(fd) ?? fd}`);
      return sys.read(fd, n);
    },
    ioctl: (fd: number, req: number, arg?: Buffer | number) => {
      say(`ioctl ${fdPath.get(fd) ?? fd} 0x${req.toString(16)}`);
      return sys.ioctl(fd, req, arg);
    },
    close: (fd: number) => {
      if (fdPath.get(fd) !== "/dev/kmsg") say(`close ${fdPath.get(fd) ?? fd}`);
      return sys.close(fd);
    },
    exit: () => {
      say("exit");
      return sys.exit();
    },
  });
}

// ------------------------------------------------------------------ comparison

interface OpLike {
  name: string;
  call?: string;
  ret?: number | "fd";
  fd?: number;
  groups?: Record<string, number>;
  errno?: string;
  blocked?: boolean;
  value?: string | boolean;
  out?: Record<string, number>;
  log: { level: string; text: string }[];
}

interface TranscriptLike {
  setup: OpLike[];
  ops: OpLike[];
  teardown: OpLike[];
  unfinished: string[];
  failures: { op: string; message: string }[];
  ok: boolean;
  fds?: { table: string; base: number };
  foreignFds?: string[];
}

export interface OpDiff {
  op: string;
  field: string;
  real: unknown;
  model: unknown;
}

const show = (l: { level: string; text: string }) => `<${l.level}> ${l.text}`;

/** Per-op differences between a real-kernel transcript and the model's (real wins). */
export function diffTranscripts(real: TranscriptLike, model: TranscriptLike, modelOnly: Set<string> = new Set()): OpDiff[] {
  const d: OpDiff[] = [];
  const sections: [string, OpLike[], OpLike[]][] = [
    ["setup", real.setup, model.setup],
    ["ops", real.ops, model.ops],
    ["teardown", real.teardown, model.teardown],
  ];
  for (const [sec, ra, ma] of sections) {
    const mm = new Map(ma.map((o) => [o.name, o]));
    const seen = new Set<string>();
    for (const r of ra) {
      const m = mm.get(r.name);
      const id = sec === "ops" ? r.name : `${sec}:${r.name}`;
      seen.add(r.name);
      if (!m) {
        d.push({ op: id, field: "presence", real: r.call ?? "ran", model: "absent" });
        continue;
      }
      const cmp = (field: string, a: unknown, b: unknown) => {
        if (JSON.stringify(a ?? null) !== JSON.stringify(b ?? null)) d.push({ op: id, field, real: a ?? null, model: b ?? null });
      };
      cmp("blocked", !!r.blocked, !!m.blocked);
      if (!r.blocked && !m.blocked) {
        cmp("errno", r.errno, m.errno);
        cmp("ret", r.ret, m.ret);
        cmp("value", r.value, m.value);
        cmp("out", r.out, m.out);
        cmp("fd", r.fd, m.fd);
      }
      cmp("groups", r.groups, m.groups);
      const rl = r.log.filter((l) => !labFiltered(l.text)).map(show);
      const ml = m.log.filter((l) => !labFiltered(l.text)).map(show);
      cmp("log", rl, ml);
    }
    for (const m of ma) if (!seen.has(m.name) && !modelOnly.has(m.name)) d.push({ op: sec === "ops" ? m.name : `${sec}:${m.name}`, field: "presence", real: "absent", model: m.call ?? "ran" });
  }
  // fd numbers are comparable only from tables laid out alike, and only if nothing else took numbers
  if ((real.fds?.table ?? null) !== (model.fds?.table ?? null)) d.push({ op: "(fd table)", field: "table", real: real.fds?.table ?? null, model: model.fds?.table ?? null });
  if (real.foreignFds?.length || model.foreignFds?.length) d.push({ op: "(fd table)", field: "foreign", real: real.foreignFds ?? [], model: model.foreignFds ?? [] });
  const ru = [...real.unfinished].sort();
  const mu = [...model.unfinished].sort();
  if (JSON.stringify(ru) !== JSON.stringify(mu)) d.push({ op: "(end)", field: "unfinished", real: ru, model: mu });
  return d;
}

/** Ops a scenario runs on the model only (`only: [model]`): their absence on a real kernel is no diff. */
export function modelOnlyOps(sc: { setup: { name: string; only?: string[] }[]; ops: { name: string; only?: string[] }[] }): Set<string> {
  const s = new Set<string>();
  for (const op of [...sc.setup, ...sc.ops]) if (op.only && op.only.includes("model") && !op.only.includes("linux")) s.add(op.name);
  return s;
}

// ------------------------------------------------------------------ host side

export interface Cell {
  scenario: string;
  kernel: string;
  status: "match" | "diff" | "error";
  diffs: OpDiff[];
  realOk?: boolean;
  modelOk?: boolean;
  error?: string;
  bootS?: number | null;
  guestMs?: number;
  wallMs?: number;
  /** expectations of the host rows that did not hold (lab/host-check.ts) */
  expectations?: string[];
  /** where vfioctl disagreed with what a real consumer did (lab/consumers.ts) */
  wrong?: string[];
  /** the guest was run again: why (a stall under TCG, a boot that never reached init) */
  reruns?: string[];
  /** the guest stalled on both runs: no kernel answer to compare (not a difference) */
  stalled?: boolean;
}

function scenarioFiles(project: string, given: string[]): string[] {
  if (given.length) return given.map((f) => path.resolve(f));
  const dir = path.join(project, "scenarios");
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

/** `npm run lab -- --report`: scenarios × kernels on real kernels and on the model. Exit code 1 on any diff. */
export async function report(o: { kernels: string[]; jobs: number; files: string[]; t0: number }): Promise<number> {
  const { PROJECT, runInGuest, dropRun } = await import("./vm.js");
  const { pool } = await import("./cli.js");
  const { loadScenario, runScenario, modelBackend } = await import("../src/scenario/index.js");
  const { CLI_SCENARIO } = await import("./cli-check.js");
  const { isHostSelector, hostCells } = await import("./host-check.js");
  const { isConsumerSelector, consumerRowsFor, consumerCell } = await import("./consumers.js");
  const cliFile = path.join(PROJECT, CLI_SCENARIO);
  // the CLI rows run with the whole report, or when the CLI state file is named; the host rows
  // (lab/host-check.ts) with the whole report, or when "host" (or one of their names) is given;
  // the consumer rows (lab/consumers.ts) likewise with "consumers", "dpdk", "qemu" or a row name
  const consumerSel = o.files.filter(isConsumerSelector);
  const consumerRows = o.files.length === 0 ? consumerRowsFor([]) : consumerSel.length ? consumerRowsFor(consumerSel) : [];
  const { isSelftestSelector: isSel } = await import("./selftest.js");
  const given = o.files.filter((f) => !isHostSelector(f) && !isConsumerSelector(f) && !isSel(f));
  const withCli = o.files.length === 0 || given.some((f) => path.resolve(f) === cliFile);
  const withHost = o.files.length === 0 || o.files.some(isHostSelector);
  const files = o.files.length && !given.length ? [] : scenarioFiles(PROJECT, given).filter((f) => f !== cliFile);
  const outDir = path.join(PROJECT, "lab/transcripts/conformance");
  mkdirSync(outDir, { recursive: true });
  const { KERNELS } = await import("./vm.js");
  const { labKernel, modelProfileOf, hasCdev } = await import("./kernels.js");
  // the cdev scenarios (scenarios/cdev/*.yaml) run on the kernels that have the vfio cdev, with the
  // whole report or with "cdev"; a file named explicitly runs on those kernels too
  const cdevDir = path.join(PROJECT, "scenarios/cdev");
  const cdevFiles = o.files.length === 0 || o.files.includes("cdev") ? existsSync(cdevDir) ? readdirSync(cdevDir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(cdevDir, f)) : [] : [];
  const { CACHE } = await import("./vm.js");
  const { isSelftestSelector, selftestCells } = await import("./selftest.js");
  const withSelftest = o.files.length === 0 || o.files.some(isSelftestSelector);
  const tasks: (() => Promise<Cell | Cell[]>)[] = [];
  for (const k of o.kernels) {
    // the CLI, host and consumer rows compare the group path on Debian's two kernels
    const debian = (KERNELS as readonly string[]).includes(k);
    const family = labKernel(k).family;
    const mp = modelProfileOf(k, CACHE);
    if (withCli && debian) tasks.push(() => cliCells(k, outDir));
    if (withHost && debian) tasks.push(() => hostCells(k, outDir));
    if (debian) for (const r of consumerRows) tasks.push(() => consumerCell(k, r, outDir));
    if (withSelftest) tasks.push(() => selftestCells(k, outDir));
    const mine = [...files.filter((f) => hasCdev(k) || path.dirname(f) !== cdevDir), ...(hasCdev(k) ? cdevFiles.filter((f) => !files.includes(f)) : [])];
    for (const f of mine) {
      tasks.push(async () => {
        const name = path.basename(f).replace(/\.ya?ml$/, "");
        const cell: Cell = { scenario: name, kernel: k, status: "error", diffs: [] };
        try {
          const sc = loadScenario(f);
          if (sc.profiles.length && !sc.profiles.includes(family)) {
            cell.status = "match";
            cell.error = "not for this kernel";
            return cell;
          }
          const g = await runInGuest(k, { kind: "scenarios", files: [f] }, 600, { stallS: STALL_S });
          cell.bootS = g.bootS;
          cell.wallMs = g.wallMs;
          if (g.reruns) cell.reruns = g.reruns;
          if (g.stalled) {
            cell.stalled = true;
            cell.error = `guest stalled twice (${g.frozen ?? `no console output for ${STALL_S} s`}); last line ${JSON.stringify(g.console.trim().split("\n").at(-1))}`;
            return cell;
          }
          let real: { ms: number; transcript: TranscriptLike } | undefined;
          try {
            real = JSON.parse(readFileSync(path.join(g.runDir, "scn", `${name}.json`), "utf8"));
          } catch {
            cell.error = `guest produced no transcript (rc=${g.rc}): ${String((g.result as { error?: string } | null)?.error ?? g.console.slice(-1500))}`;
            return cell;
          }
          dropRun(g);
          cell.guestMs = real!.ms;
          const model = (await runScenario(sc, await modelBackend(sc, { ...mp, sharedFds: true }), { profile: family })) as unknown as TranscriptLike;
          cell.realOk = real!.transcript.ok;
          cell.modelOk = model.ok;
          cell.diffs = diffTranscripts(real!.transcript, model, modelOnlyOps(sc));
          cell.status = cell.diffs.length ? "diff" : "match";
          writeFileSync(path.join(outDir, `${k}-${name}.json`), JSON.stringify({ real: real!.transcript, model, diffs: cell.diffs }, null, 1) + "\n");
        } catch (e) {
          cell.error = (e as Error).stack ?? String(e);
        }
        return cell;
      });
    }
  }
  const cells = (await pool(tasks, o.jobs)).flat();
  printReport(cells, o.kernels, Date.now() - o.t0);
  // report.json keeps the cells of earlier runs that this run did not redo (other kernels, rows)
  let kept: Cell[] = [];
  try {
    kept = (JSON.parse(readFileSync(path.join(outDir, "report.json"), "utf8")) as Cell[]).filter((c) => !cells.some((x) => x.kernel === c.kernel && x.scenario === c.scenario));
  } catch {
    /* none yet */
  }
  writeFileSync(path.join(outDir, "report.json"), JSON.stringify([...kept, ...cells], null, 1) + "\n");
  return cells.some((c) => c.status !== "match") ? 1 : 0;
}

/** Per-operation timeout of the scenario and selftest guests (VFIOCTL_LAB_STALL_S, default 150 s). */
export const STALL_S = Number(process.env.VFIOCTL_LAB_STALL_S ?? 150);

/** The CLI conformance rows of one kernel (lab/cli-check.ts): one guest run, then the model. */
async function cliCells(k: string, outDir: string): Promise<Cell[]> {
  const { PROJECT, runInGuest, dropRun } = await import("./vm.js");
  const { CLI_ROWS, CLI_SCENARIO, runModelCli, diffCli } = await import("./cli-check.js");
  const { loadScenario } = await import("../src/scenario/index.js");
  const rows = ["cli:setup", ...Object.keys(CLI_ROWS)];
  const cells: Cell[] = rows.map((r) => ({ scenario: r, kernel: k, status: "error", diffs: [] }));
  try {
    const g = await runInGuest(k, { kind: "cli" }, 600);
    for (const c of cells) Object.assign(c, { bootS: g.bootS, wallMs: g.wallMs });
    let real: import("./cli-check.js").CliRun;
    try {
      real = JSON.parse(readFileSync(path.join(g.runDir, "cli.json"), "utf8"));
    } catch {
      const err = `guest produced no cli.json (rc=${g.rc}): ${String((g.result as { error?: string } | null)?.error ?? g.console.slice(-1500))}`;
      for (const c of cells) c.error = err;
      return cells;
    }
    dropRun(g);
    const model = await runModelCli(k, PROJECT);
    const sc = loadScenario(path.join(PROJECT, CLI_SCENARIO));
    const byRow: Record<string, OpDiff[]> = { "cli:setup": diffTranscripts(real.transcript as TranscriptLike, model.transcript as TranscriptLike, modelOnlyOps(sc)), ...diffCli(real, model) };
    for (const c of cells) {
      c.guestMs = real.ms;
      c.realOk = (real.transcript as TranscriptLike).ok;
      c.modelOk = (model.transcript as TranscriptLike).ok;
      c.diffs = byRow[c.scenario] ?? [];
      c.status = c.diffs.length ? "diff" : "match";
    }
    writeFileSync(path.join(outDir, `${k}-cli.json`), JSON.stringify({ real, model, diffs: byRow }, null, 1) + "\n");
  } catch (e) {
    for (const c of cells) c.error = (e as Error).stack ?? String(e);
  }
  return cells;
}

/** Compare again the transcripts a previous --report saved (after a change of the filter). */
export async function rediff(o: { kernels: string[]; t0: number; remodel?: boolean }): Promise<number> {
  const { PROJECT } = await import("./vm.js");
  const dir = path.join(PROJECT, "lab/transcripts/conformance");
  const old = JSON.parse(readFileSync(path.join(dir, "report.json"), "utf8")) as Cell[];
  const cells: Cell[] = [];
  for (const c of old) {
    if (!o.kernels.includes(c.kernel)) continue;
    try {
      if (/^(dpdk|qemu):/.test(c.scenario)) {
        const { rediffConsumer, savedName } = await import("./consumers.js");
        const saved = JSON.parse(readFileSync(path.join(dir, savedName(c.kernel, c.scenario as never)), "utf8"));
        cells.push(rediffConsumer(c, saved, labFiltered));
        continue;
      }
      if (c.scenario.startsWith("selftest:") || c.scenario.startsWith("cdev:")) {
        const { rediffSelftest, runModelSelftest } = await import("./selftest.js");
        const saved = JSON.parse(readFileSync(path.join(dir, `${c.kernel}-selftest.json`), "utf8"));
        if (o.remodel) saved.model = await runModelSelftest(c.kernel, (await import("./vm.js")).CACHE);
        cells.push(rediffSelftest(c, saved));
        continue;
      }
      if (c.scenario.startsWith("host:")) {
        const { rediffHost } = await import("./host-check.js");
        const saved = JSON.parse(readFileSync(path.join(dir, `${c.kernel}-host.json`), "utf8"));
        cells.push(rediffHost(c.kernel, saved, labFiltered, [c]).find((x) => x.scenario === c.scenario)!);
        continue;
      }
      if (c.scenario.startsWith("cli:")) {
        const { CLI_SCENARIO, diffCli } = await import("./cli-check.js");
        const { loadScenario } = await import("../src/scenario/index.js");
        const saved = JSON.parse(readFileSync(path.join(dir, `${c.kernel}-cli.json`), "utf8"));
        const diffs =
          c.scenario === "cli:setup" ? diffTranscripts(saved.real.transcript, saved.model.transcript, modelOnlyOps(loadScenario(path.join(PROJECT, CLI_SCENARIO)))) : (diffCli(saved.real, saved.model)[c.scenario] ?? []);
        cells.push({ ...c, diffs, status: diffs.length ? "diff" : "match" });
        continue;
      }
      const saved = JSON.parse(readFileSync(path.join(dir, `${c.kernel}-${c.scenario}.json`), "utf8"));
      const { loadScenario, runScenario, modelBackend } = await import("../src/scenario/index.js");
      const inCdev = path.join(PROJECT, "scenarios/cdev", `${c.scenario}.yaml`);
      const sc = loadScenario(existsSync(inCdev) ? inCdev : path.join(PROJECT, "scenarios", `${c.scenario}.yaml`));
      if (o.remodel) {
        // the saved real transcript against the model as it is now
        const { labKernel, modelProfileOf } = await import("./kernels.js");
        const { CACHE } = await import("./vm.js");
        saved.model = await runScenario(sc, await modelBackend(sc, { ...modelProfileOf(c.kernel, CACHE), sharedFds: true }), { profile: labKernel(c.kernel).family });
        writeFileSync(path.join(dir, `${c.kernel}-${c.scenario}.json`), JSON.stringify({ ...saved, diffs: diffTranscripts(saved.real, saved.model, modelOnlyOps(sc)) }, null, 1) + "\n");
      }
      const diffs = diffTranscripts(saved.real, saved.model, modelOnlyOps(sc));
      cells.push({ ...c, diffs, status: diffs.length ? "diff" : "match" });
    } catch {
      cells.push(c);
    }
  }
  printReport(cells, o.kernels, Date.now() - o.t0);
  return cells.some((c) => c.status !== "match") ? 1 : 0;
}

function printReport(cells: Cell[], kernels: string[], totalMs: number): void {
  const names = [...new Set(cells.map((c) => c.scenario))];
  const w = Math.max(10, ...names.map((n) => n.length));
  const head = `${"scenario".padEnd(w)}  ${kernels.map((k) => k.padEnd(26)).join("")}`;
  console.log(head);
  for (const n of names) {
    const row = kernels.map((k) => {
      const c = cells.find((x) => x.scenario === n && x.kernel === k);
      if (!c) return "-".padEnd(26);
      const t = c.wallMs ? ` ${(c.wallMs / 1000).toFixed(1)}s` : "";
      const w = c.wrong?.length ? `WRONG(${c.wrong.length})` : "";
      const s = c.status === "diff" ? [c.diffs.length || !w ? `DIFF(${c.diffs.length})` : "", w].filter(Boolean).join(" ") : c.status === "error" ? (c.stalled ? "STALL" : "ERROR") : c.error ? "n/a" : "match";
      return `${s}${c.reruns ? "*" : ""}${t}${c.realOk === false ? " real-exp-fail" : ""}`.padEnd(26);
    });
    console.log(`${n.padEnd(w)}  ${row.join("")}`);
  }
  const boots = cells.map((c) => c.bootS).filter((x): x is number => typeof x === "number");
  if (boots.length) console.log(`boot (guest uptime at share mount): min ${Math.min(...boots).toFixed(1)} s, max ${Math.max(...boots).toFixed(1)} s`);
  console.log(`total ${(totalMs / 1000).toFixed(1)} s for ${cells.length} runs`);
  for (const c of cells) for (const r of c.reruns ?? []) console.log(`* ${c.kernel} ${c.scenario}: run again (${r})`);
  for (const c of cells) {
    if (c.status === "match" && !c.expectations?.length) continue;
    console.log(`\n--- ${c.kernel} ${c.scenario}: ${c.status}`);
    for (const x of c.expectations ?? []) console.log(`  expectation: ${x}`);
    for (const x of c.wrong ?? []) console.log(`  vfioctl wrong: ${x}`);
    if (c.error) console.log(c.error.split("\n").slice(0, 15).join("\n"));
    for (const d of c.diffs) console.log(`  ${d.op} ${d.field}: real ${JSON.stringify(d.real)} | model ${JSON.stringify(d.model)}`);
  }
}
