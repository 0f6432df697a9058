/**
 * The sysfs attribute row: every entry of the igb PF's and its VFs' directories under
 * /sys/bus/pci/devices/<BDF>/ in the states users put them in, recorded on a real kernel and on
 * the model, and compared.
 *
 * One guest run per kernel (job kind "attrs"): the guest loads igb, igbvf, pci-pf-stub and
 * vfio-pci (enable_sriov=1), then {@link walkStates} puts the PF through
 *   igb         PF on igb, 2 VFs on igbvf
 *   none        PF unbound (no VFs)
 *   vfio-pci    PF on vfio-pci, 2 VFs captured by vfio-pci (its bus notifier sets their driver_override)
 *   pci-pf-stub PF on pci-pf-stub, 2 VFs on igbvf
 * and in each state records, for the PF and each VF directory: every entry's name, type
 * (file / dir / link) and mode bits, a link's target as the kernel wrote it (relative), the
 * entries of the `power/` subdirectory, and the value of each attribute of {@link VALUES}
 * (or the errno its read failed with). The host runs the same walk through the model's seam
 * (scenarios/hosts/lab-igb.yaml with the kernel's profile, lab/kernels.ts) and compares.
 *
 * Rows: `attrs:<state>` per state. Selector: `attrs` (or `attrs:<state>`); `--rediff attrs`
 * compares the saved real walk again with the model as it is now (no guest).
 * docs/lab.md "The sysfs attribute row" says what is compared and what is normalised.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import * as path from "node:path";
import type { Syscalls } from "../src/sys/syscalls.js";
import { readAttr, writeText } from "../src/sys/fsutil.js";
import type { Cell, OpDiff } from "./conformance.js";

export const PF = "0000:01:00.0";
export const STATES = ["igb", "none", "vfio-pci", "pci-pf-stub"] as const;
export type State = (typeof STATES)[number];
const NUM_VFS = 2;

/**
 * Attributes whose value is read and compared: deterministic on an emulated 82576 in a given
 * state (`resource0`: what read(2) of a BAR file gives). Left out on purpose: `resource`,
 * `resource<N>` of an I/O BAR, `config` and `rom` (addresses or device registers), power and
 * wakeup-source counters and times. `irq`, `local_cpus` and `local_cpulist` are read but not
 * compared (the guest's interrupt routing and CPUs: {@link UNCOMPARED}).
 */
export const VALUES: readonly string[] = [
  "vendor", "device", "subsystem_vendor", "subsystem_device", "class", "revision",
  "modalias", "uevent", "enable", "msi_bus", "broken_parity_status", "d3cold_allowed",
  "numa_node", "driver_override", "reset_method", "power_state", "ari_enabled",
  "dma_mask_bits", "consistent_dma_mask_bits", "current_link_speed", "current_link_width",
  "max_link_speed", "max_link_width", "sriov_totalvfs", "sriov_numvfs", "sriov_offset",
  "sriov_stride", "sriov_vf_device", "sriov_drivers_autoprobe", "sriov_vf_total_msix",
  "sriov_vf_msix_count", "serial_number", "label", "index", "acpi_index", "devspec",
  "boot_vga", "irq", "local_cpus", "local_cpulist", "power/control", "power/async",
  "power/runtime_enabled", "power/runtime_status", "power/autosuspend_delay_ms", "power/wakeup",
  "aer/correctable_ratelimit_burst", "aer/correctable_ratelimit_interval_ms",
  "aer/nonfatal_ratelimit_burst", "aer/nonfatal_ratelimit_interval_ms", "link/l0s_aspm",
  "link/l1_aspm", "link/clkpm", "aer_dev_correctable", "aer_dev_fatal", "aer_dev_nonfatal",
  "resource0",
];

/** Values read but not compared: they say what the emulator and the guest's CPUs are, not the kernel. */
export const UNCOMPARED: readonly string[] = ["irq", "local_cpus", "local_cpulist"];

/** One entry of a device directory. */
export interface Entry {
  t: "file" | "dir" | "link" | "char" | "other";
  /** permission bits, octal string ("0644") */
  mode: string;
  /** link target as readlink gives it */
  target?: string;
  /** value read (trimmed), or "<ERRNO>" when the read failed */
  value?: string;
  /** a directory's entries (power/ only) */
  entries?: Record<string, Entry>;
}
export type DeviceWalk = Record<string, Entry>;
/** state → role ("pf", "vf0", "vf1") → the directory's entries */
export type AttrWalk = Record<string, Record<string, DeviceWalk>>;

const oct = (m: number) => "0" + (m & 0o7777).toString(8).padStart(3, "0");
const errCode = (e: unknown) => `<${(e as { code?: string }).code ?? String(e)}>`;

/**
 * Subdirectories whose entries are recorded too (how deep): power/ (drivers/base/power/sysfs.c),
 * aer/ (the AER ratelimit group), link/ (ASPM), wakeup/ (the device's wakeup sources: each a
 * class device wakeup<N> whose `name` is read). Of msi_irqs/ (named by IRQ number) the number of
 * entries is recorded; net/, ptp/ and vfio-dev/ are recorded as directories only.
 */
const SUBDIRS: Readonly<Record<string, number>> = { power: 1, aer: 1, link: 1, wakeup: 2 };

async function entry(sys: Syscalls, dir: string, name: string, depth: number): Promise<Entry> {
  const p = `${dir}/${name}`;
  const st = await sys.lstat(p);
  const t = st.kind === "file" || st.kind === "dir" || st.kind === "link" || st.kind === "char" ? st.kind : "other";
  const e: Entry = { t, mode: oct(st.mode) };
  if (t === "link") e.target = await sys.readlink(p);
  if (t === "dir" && depth > 0) {
    e.entries = {};
    for (const n of (await sys.readdir(p)).sort()) e.entries[n] = await entry(sys, p, n, depth - 1);
  }
  return e;
}

/** Every entry of one device directory, with the values of {@link VALUES}. */
export async function walkDevice(sys: Syscalls, bdf: string): Promise<DeviceWalk> {
  const dir = `/sys/bus/pci/devices/${bdf}`;
  const out: DeviceWalk = {};
  for (const n of (await sys.readdir(dir)).sort()) out[n] = await entry(sys, dir, n, SUBDIRS[n] ?? 0);
  // msi_irqs/: how many vectors the driver has (the entries are Linux IRQ numbers, not compared)
  if (out.msi_irqs?.t === "dir") out.msi_irqs.value = `${(await sys.readdir(`${dir}/msi_irqs`)).length} vectors`;
  // wakeup/wakeup<N>/name: the wakeup source's name (whose it is)
  for (const [n, w] of Object.entries(out.wakeup?.entries ?? {})) {
    const nm = w.entries?.name;
    if (nm && nm.t === "file") nm.value = await readAttr(sys, `${dir}/wakeup/${n}/name`).then((x) => x.trim(), errCode);
  }
  for (const v of VALUES) {
    const [a, b] = v.split("/") as [string, string | undefined];
    const e = b ? out[a]?.entries?.[b] : out[a];
    if (!e || e.t !== "file" || !(Number.parseInt(e.mode, 8) & 0o444)) continue;
    try {
      e.value = (await readAttr(sys, `${dir}/${v}`)).trim();
    } catch (err) {
      e.value = errCode(err);
    }
  }
  return out;
}

const base = (link: string) => link.slice(link.lastIndexOf("/") + 1);

async function bind(sys: Syscalls, drv: string | null): Promise<void> {
  const d = `/sys/bus/pci/devices/${PF}`;
  const cur = await sys.readlink(`${d}/driver`).then(base, () => null);
  if (cur) await writeText(sys, `/sys/bus/pci/drivers/${cur}/unbind`, PF);
  await writeText(sys, `${d}/driver_override`, drv ?? "\n");
  if (drv) await writeText(sys, "/sys/bus/pci/drivers_probe", PF);
}

async function walkState(sys: Syscalls, vfs: boolean): Promise<Record<string, DeviceWalk>> {
  const d = `/sys/bus/pci/devices/${PF}`;
  const out: Record<string, DeviceWalk> = {};
  if (vfs) await writeText(sys, `${d}/sriov_numvfs`, String(NUM_VFS));
  out.pf = await walkDevice(sys, PF);
  if (vfs) {
    for (let i = 0; i < NUM_VFS; i++) out[`vf${i}`] = await walkDevice(sys, base(await sys.readlink(`${d}/virtfn${i}`)));
    await writeText(sys, `${d}/sriov_numvfs`, "0");
  }
  return out;
}

/**
 * The four states, in order, from a PF on igb with igbvf, pci-pf-stub and vfio-pci
 * (enable_sriov=1) loaded. The same code runs on the real kernel and on the model.
 */
export async function walkStates(sys: Syscalls, say: (s: string) => void = () => {}): Promise<AttrWalk> {
  const out: AttrWalk = {};
  say("attrs: igb");
  out.igb = await walkState(sys, true);
  say("attrs: none");
  await bind(sys, null);
  out.none = await walkState(sys, false);
  say("attrs: vfio-pci");
  await bind(sys, "vfio-pci");
  out["vfio-pci"] = await walkState(sys, true);
  say("attrs: pci-pf-stub");
  await bind(sys, "pci-pf-stub");
  out["pci-pf-stub"] = await walkState(sys, true);
  await bind(sys, null);
  return out;
}

// ------------------------------------------------------------------ guest side

/** In the guest: load the drivers, walk the states → out/attrs.json. */
export async function runGuestAttrsJob(kernel: string, out: string): Promise<unknown> {
  const { execFileSync } = await import("node:child_process");
  const { LinuxSyscalls } = await import("../src/sys/linux/host.js");
  for (const [m, ...p] of [["igb"], ["igbvf"], ["pci-pf-stub"], ["vfio-pci", "enable_sriov=1"]] as string[][]) execFileSync("modprobe", ["-d", "/mnt", m!, ...p], { stdio: "inherit" });
  const t0 = performance.now();
  const walk = await walkStates(new LinuxSyscalls(), (s) => process.stdout.write(`${s}\n`));
  const res = { kernel, release: execFileSync("uname", ["-r"]).toString().trim(), ms: Math.round(performance.now() - t0), walk };
  writeFileSync(path.join(out, "attrs.json"), JSON.stringify(res, null, 1));
  return { ms: res.ms };
}

// ------------------------------------------------------------------ model and host side

/** The same walk on the model of a lab kernel (lab-igb.yaml: every driver loaded, the PF on igb). */
export async function runModelAttrs(kernel: string, cache: string): Promise<AttrWalk> {
  const { bootHostFile } = await import("../src/kernel/host/boot.js");
  const { modelProfileOf } = await import("./kernels.js");
  const { PROJECT } = await import("./vm.js");
  const mp = modelProfileOf(kernel, cache);
  const k = await bootHostFile(path.join(PROJECT, "scenarios/hosts/lab-igb.yaml"), { profile: mp.profile, config: mp.config });
  return walkStates(k.spawn("attrs") as unknown as Syscalls);
}

/**
 * What is compared of a device directory: every entry, but the values of {@link UNCOMPARED}
 * are dropped, and the wakeup sources (wakeup/wakeup<N>: N is a boot-wide counter) are named by
 * their `name` (wakeup/<0000:01:00.0>) with nothing of their own counters compared.
 */
export function normalise(w: DeviceWalk): DeviceWalk {
  const out: DeviceWalk = {};
  for (const [n, e] of Object.entries(w)) {
    if (n === "wakeup" && e.entries) {
      const ws: Record<string, Entry> = {};
      for (const [, src] of Object.entries(e.entries)) ws[`<${src.entries?.name?.value ?? "?"}>`] = { t: src.t, mode: src.mode };
      out[n] = { ...e, entries: ws };
      continue;
    }
    out[n] = UNCOMPARED.includes(n) ? { t: e.t, mode: e.mode, ...(e.target !== undefined ? { target: e.target } : {}) } : e;
  }
  return out;
}

/** Differences of one state: per device role and entry (`pf power/control value`). */
export function diffState(real0: Record<string, DeviceWalk>, model0: Record<string, DeviceWalk>): OpDiff[] {
  const norm = (x: Record<string, DeviceWalk>) => Object.fromEntries(Object.entries(x).map(([r, w]) => [r, normalise(w)]));
  const real = norm(real0);
  const model = norm(model0);
  const out: OpDiff[] = [];
  const roles = [...new Set([...Object.keys(real), ...Object.keys(model)])].sort();
  const cmp = (op: string, prefix: string, r: DeviceWalk | undefined, m: DeviceWalk | undefined) => {
    const names = [...new Set([...Object.keys(r ?? {}), ...Object.keys(m ?? {})])].sort();
    for (const n of names) {
      const a = r?.[n];
      const b = m?.[n];
      const f = prefix + n;
      if (!a || !b) {
        out.push({ op, field: f, real: a ? describe(a) : "(absent)", model: b ? describe(b) : "(absent)" });
        continue;
      }
      for (const k of ["t", "mode", "target", "value"] as const) if (a[k] !== b[k]) out.push({ op, field: `${f} ${k}`, real: a[k] ?? "(none)", model: b[k] ?? "(none)" });
      if (a.entries || b.entries) cmp(op, `${f}/`, a.entries ?? {}, b.entries ?? {});
    }
  };
  for (const role of roles) cmp(role, "", real[role], model[role]);
  return out;
}

const describe = (e: Entry) => `${e.t} ${e.mode}${e.target ? ` -> ${e.target}` : ""}${e.value !== undefined ? ` = ${JSON.stringify(e.value)}` : ""}`;

export const isAttrsSelector = (s: string) => s === "attrs" || s.startsWith("attrs:");

interface Saved {
  kernel: string;
  release: string;
  ms: number;
  walk: AttrWalk;
  model?: AttrWalk;
}

function cellsOf(kernel: string, saved: Saved, base: Partial<Cell>): Cell[] {
  return STATES.map((s) => {
    const diffs = saved.walk[s] && saved.model?.[s] ? diffState(saved.walk[s]!, saved.model[s]!) : [];
    const missing = !saved.walk[s] ? "no real walk of this state" : !saved.model?.[s] ? "no model walk of this state" : undefined;
    return { scenario: `attrs:${s}`, kernel, status: missing ? "error" : diffs.length ? "diff" : "match", diffs, ...base, ...(missing ? { error: missing } : {}) } as Cell;
  });
}

/** The real walks are kept with the project (lab/transcripts/attrs/<kernel>.json): the tests compare the model with them. */
const savedPath = (_dir: string, kernel: string) => path.join(ATTRS_DIR, `${kernel}.json`);
export const ATTRS_DIR = path.join(path.dirname(new URL(import.meta.url).pathname).replace(/\/dist\/lab$/, ""), "lab/transcripts/attrs");

/** One guest run on `kernel`, then the model; the rows of each state. */
export async function attrsCells(kernel: string, outDir: string): Promise<Cell[]> {
  const { runInGuest, dropRun, CACHE } = await import("./vm.js");
  const g = await runInGuest(kernel, { kind: "attrs" }, 600, { stallS: 150 });
  const base: Partial<Cell> = { bootS: g.bootS, wallMs: g.wallMs, ...(g.reruns ? { reruns: g.reruns } : {}) };
  let saved: Saved;
  try {
    saved = JSON.parse(readFileSync(path.join(g.runDir, "attrs.json"), "utf8"));
  } catch {
    const error = `guest produced no attrs.json (rc=${g.rc}): ${String((g.result as { error?: string } | null)?.error ?? g.console.slice(-1500))}`;
    return STATES.map((s) => ({ scenario: `attrs:${s}`, kernel, status: "error", diffs: [], error, ...base }) as Cell);
  }
  dropRun(g);
  mkdirSync(ATTRS_DIR, { recursive: true });
  writeFileSync(savedPath(outDir, kernel), JSON.stringify(saved, null, 1) + "\n");
  saved.model = await runModelAttrs(kernel, CACHE);
  return cellsOf(kernel, saved, { ...base, guestMs: saved.ms });
}

/** The saved real walk of `kernel` against the model as it is now (no guest). */
export async function remodelAttrs(kernel: string, outDir: string): Promise<Cell[]> {
  const { CACHE } = await import("./vm.js");
  const f = savedPath(outDir, kernel);
  if (!existsSync(f)) return STATES.map((s) => ({ scenario: `attrs:${s}`, kernel, status: "error", diffs: [], error: `no saved walk (${f}): run --report attrs first` }) as Cell);
  const saved = JSON.parse(readFileSync(f, "utf8")) as Saved;
  saved.model = await runModelAttrs(kernel, CACHE);
  return cellsOf(kernel, saved, {});
}

/**
 * `--report attrs` (jobs: guests at once) or `--rediff attrs` (jobs null: the saved walks
 * against the model as it is now): print states × kernels and the differences; 1 on any.
 */
export async function attrsReport(kernels: string[], selectors: string[], t0: number, jobs: number | null): Promise<number> {
  const { PROJECT } = await import("./vm.js");
  const { pool } = await import("./cli.js");
  const outDir = path.join(PROJECT, "lab/transcripts/conformance");
  const tasks = kernels.map((k) => () => (jobs === null ? remodelAttrs(k, outDir) : attrsCells(k, outDir)));
  const want = (c: Cell) => selectors.includes("attrs") || selectors.includes(c.scenario);
  const cells = (await pool(tasks, jobs ?? 1)).flat().filter(want);
  const rows = [...new Set(cells.map((c) => c.scenario))];
  console.log(`${"row".padEnd(20)}  ${kernels.map((k) => k.padEnd(22)).join("")}`);
  for (const r of rows) {
    const line = kernels.map((k) => {
      const c = cells.find((x) => x.scenario === r && x.kernel === k);
      if (!c) return "-".padEnd(22);
      const s = c.status === "diff" ? `DIFF(${c.diffs.length})` : c.status === "error" ? "ERROR" : "match";
      return `${s}${c.reruns ? "*" : ""}${c.wallMs ? ` ${(c.wallMs / 1000).toFixed(1)}s` : ""}`.padEnd(22);
    });
    console.log(`${r.padEnd(20)}  ${line.join("")}`);
  }
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const c of cells) {
    for (const x of c.reruns ?? []) console.log(`* ${c.kernel} ${c.scenario}: run again (${x})`);
    if (c.status === "match") continue;
    console.log(`\n--- ${c.kernel} ${c.scenario}: ${c.status}`);
    if (c.error) console.log(c.error.split("\n").slice(0, 15).join("\n"));
    for (const d of c.diffs) console.log(`  ${d.op} ${d.field}: real ${JSON.stringify(d.real)} | model ${JSON.stringify(d.model)}`);
  }
  return cells.some((c) => c.status !== "match") ? 1 : 0;
}
