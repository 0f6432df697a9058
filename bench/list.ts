/**
 * `list` benchmark: `vfioctl --root T list --json` on a 4,096-VF host tree (16 PFs × 256 VFs,
 * half on vfio-pci with captured VFs, half on ice with iavf VFs), materialized from the model
 * into a temp directory and read with the real backend, measured side by side in the same run
 * with what the same reads cost in C, with lspci and driverctl walking the same tree, and with
 * the same list on the model (`--sim HOSTFILE list --json` on the host the tree came from).
 *
 * The C side (bench/c/replay.c, built with the system's `cc`) makes exactly the file operations
 * vfioctl made: they are recorded in this run through the syscalls seam (every open, read, close,
 * readlink, stat, lstat and readdir of an in-process `main(["--root", T, "list", "--json"])`,
 * reported by `LinuxSyscalls.trace` from inside the backend, whichever method made them) and
 * replayed in order with plain system calls, so the two sides make the same opens, reads and
 * readlinks (the counts are in the row's note), and the C side is what a C program doing those
 * reads costs. lspci (`-A linux-sysfs -O sysfs.path=T/sys/bus/pci`) reads its own set of files
 * (vendor, device, class ... and a `config` the tree lacks); driverctl hard-codes
 * /sys/bus/<bus>/devices, so its script is copied with only that prefix redirected (its logic is
 * unchanged). Install the tools with bench/setup-tools.sh; a missing one skips its row with a note.
 *
 * bench/replay-node.ts replays the same operations with synchronous node:fs calls: the floor
 * for any Node program doing these reads (its ratio to C is what Node costs, vfioctl's ratio to
 * it what vfioctl adds).
 *
 * BENCH_LIST_TREE=DIR runs the same rows on a tree of one's own (a copy of a host's /sys, /proc
 * and /dev, as `vfioctl --root` reads it), BENCH_LIST_HOST=FILE adding the --sim row for the host
 * file it stands for; the tree is only read.
 *
 * Every side is measured as a whole process (fork + exec + walk), in interleaved rounds
 * (vfioctl, C, the node:fs replay, lspci, model, then the next round), and medians are compared: the ratios, not the
 * milliseconds, are the result. driverctl (bash, ~20 s) runs in the first round only.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { HostDesc } from "../src/kernel/host/host-file.js";
import { materialize } from "../src/sim/materialize.js";
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import { main } from "../src/cli/main.js";

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

const PFS = 16;
const VFS = 256;

/** 16 PFs × 256 VFs: PF i on bus 0x10+2i (VFs fill bus +0 and +1), even PFs on vfio-pci, odd on ice. */
export function benchHost(): HostDesc {
  const devices: HostDesc["devices"] = [];
  for (let i = 0; i < PFS; i++) {
    const bus = (0x10 + 2 * i).toString(16).padStart(2, "0");
    devices.push({
      bdf: `0000:${bus}:00.0`,
      vendor: 0x8086,
      device: 0x159b,
      class: 0x020000,
      driver: i % 2 === 0 ? "vfio-pci" : "ice",
      sriov: { total_vfs: VFS, offset: 1, stride: 1, vf_device: 0x1889, num_vfs: VFS },
    });
  }
  return { name: "bench-4096-vfs", modules: { vfio_pci: { enable_sriov: true } }, devices };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function timeRun(cmd: string, args: string[], opts: { okStatus?: number[] } = {}): { ms: number; out: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!(opts.okStatus ?? [0]).includes(r.status ?? -1)) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr.slice(0, 400)}`);
  return { ms, out: r.stdout };
}

function driverctlCopy(root: string, dir: string): string | null {
  let src: string;
  try {
    src = execFileSync("sh", ["-c", "command -v driverctl"], { encoding: "utf8" }).trim();
  } catch {
    return null;
  }
  if (!src) return null;
  const text = fs.readFileSync(src, "utf8").split('"/sys/bus/').join(`"${root}/sys/bus/`);
  const out = path.join(dir, "driverctl");
  fs.writeFileSync(out, text, { mode: 0o755 });
  return out;
}

/** A C compiler's path (`cc`, else gcc, else clang), or null. */
export function cCompiler(): string | null {
  for (const c of ["cc", "gcc", "clang"]) {
    try {
      const p = execFileSync("sh", ["-c", `command -v ${c}`], { encoding: "utf8" }).trim();
      if (p) return p;
    } catch {
      /* not installed */
    }
  }
  return null;
}

/** Build bench/c/<name>.c into dir with the system's compiler; null (and why) when impossible. */
export function buildC(name: string, dir: string): { bin: string } | { why: string } {
  const cc = cCompiler();
  if (!cc) return { why: "no C compiler (cc): run sh bench/setup-tools.sh" };
  const src = new URL(`../../bench/c/${name}.c`, import.meta.url).pathname;
  const bin = path.join(dir, name);
  const r = spawnSync(cc, ["-O2", "-o", bin, src], { encoding: "utf8" });
  if (r.status !== 0) return { why: `${cc} ${src}: ${r.stderr.slice(0, 300)}` };
  return { bin };
}

function which(cmd: string): string | null {
  try {
    return execFileSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * The file operations `vfioctl --root ROOT list --json` makes through the seam, as replay lines
 * (bench/c/replay.c), recorded by wrapping LinuxSyscalls' methods around one in-process run.
 */
export async function recordListOps(root: string): Promise<{ ops: string[]; counts: Record<string, number>; out: string }> {
  const ops: string[] = [];
  // every file operation LinuxSyscalls makes, whichever of its methods makes it (open, read,
  // close, readFile, readlink, readdir, stat, lstat), as the replay's lines
  LinuxSyscalls.trace = (op) => void ops.push(op);
  let out = "";
  let code: number;
  try {
    code = await main(["--root", root, "list", "--json"], { out: (s) => void (out += s), err: () => {} });
  } finally {
    LinuxSyscalls.trace = undefined;
  }
  if (code !== 0) throw new Error(`vfioctl --root ${root} list --json (in process) exited ${code}`);
  const names: Record<string, string> = { o: "open", r: "read", c: "close", l: "readlink", d: "readdir", s: "stat", S: "lstat" };
  const counts: Record<string, number> = {};
  for (const o of ops) counts[names[o[0]!]!] = (counts[names[o[0]!]!] ?? 0) + 1;
  return { ops, counts, out };
}

const ratio = (a: number, b: number) => Number((a / b).toFixed(2));

export async function benchList(opts: { runs?: number; tree?: string; host?: string } = {}): Promise<BenchResult[]> {
  const runs = opts.runs ?? Number(process.env.BENCH_LIST_RUNS ?? 5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-bench-list-"));
  // a tree of one's own (BENCH_LIST_TREE=DIR: a copied /sys, /proc, /dev as `vfioctl --root`
  // reads it) and, for the --sim row, the host file it stands for (BENCH_LIST_HOST=FILE); else
  // the 16×256 host, materialized from the model
  const given = opts.tree ?? process.env.BENCH_LIST_TREE;
  const root = given ? path.resolve(given) : path.join(dir, "root");
  const results: BenchResult[] = [];
  try {
    let hostFile: string | null = opts.host ?? process.env.BENCH_LIST_HOST ?? null;
    if (!given) {
      const t0 = performance.now();
      const k = await bootKernel(benchHost());
      const m = k.spawn("materialize");
      const stats = await materialize(m, root);
      await m.exit();
      results.push({ name: "list.materialize_ms", value: Math.round(performance.now() - t0), unit: "ms", note: `model boot + materialize ${stats.files} files, ${stats.links} links, ${stats.dirs} dirs` });
      hostFile = path.join(dir, "bench-host.json");
      fs.writeFileSync(hostFile, JSON.stringify(benchHost()));
    }
    const bin = new URL("../../bin/vfioctl.js", import.meta.url).pathname;
    const rec = await recordListOps(root);
    const opsFile = path.join(dir, "ops.txt");
    fs.writeFileSync(opsFile, rec.ops.join("\n") + "\n");
    const replay = buildC("replay", dir);
    const lspci = which("lspci");
    const dc = driverctlCopy(root, dir);
    const nodeReplay = new URL("./replay-node.js", import.meta.url).pathname;
    const t = { v: [] as number[], c: [] as number[], n: [] as number[], l: [] as number[], s: [] as number[], d: [] as number[] };
    let vOut = "";
    let dOut = "";
    let sOut = "";
    for (let i = 0; i < runs; i++) {
      const a = timeRun(process.execPath, [bin, "--root", root, "list", "--json"]);
      t.v.push(a.ms);
      vOut = a.out;
      if ("bin" in replay) t.c.push(timeRun(replay.bin, [opsFile]).ms);
      t.n.push(timeRun(process.execPath, [nodeReplay, opsFile]).ms);
      if (lspci) t.l.push(timeRun(lspci, ["-A", "linux-sysfs", "-O", `sysfs.path=${root}/sys/bus/pci`], { okStatus: [0, 1] }).ms);
      if (hostFile) {
        const s = timeRun(process.execPath, [bin, "--sim", hostFile, "list", "--json"]);
        t.s.push(s.ms);
        sOut = s.out;
      }
      if (dc && i === 0) {
        const b = timeRun("bash", [dc, "list-devices"]);
        t.d.push(b.ms);
        dOut = b.out;
      }
    }
    const inv = JSON.parse(vOut) as { pfs: { vfDevices: unknown[] }[]; others: unknown[] };
    const nDev = inv.pfs.length + inv.pfs.reduce((n, p) => n + p.vfDevices.length, 0) + inv.others.length;
    if (vOut !== rec.out + "\n") throw new Error("list --json: the recorded in-process run and the timed process printed different trees");
    const v = median(t.v);
    results.push({ name: "list.vfioctl_json_ms", value: Math.round(v), unit: "ms", note: `median of ${runs} runs, ${nDev} devices (${inv.pfs.length} PFs), real backend --root, whole process; ${(v / nDev * 1000).toFixed(0)} µs/device` });
    const counts = Object.entries(rec.counts).map(([k, n]) => `${n} ${k}`).join(", ");
    if ("bin" in replay) {
      const c = median(t.c);
      results.push({ name: "list.c_same_reads_ms", value: Math.round(c), unit: "ms", note: `bench/c/replay.c: the same ${rec.ops.length} operations (${counts}) as plain system calls, whole process, median of ${runs}` });
      results.push({ name: "list.ratio_vfioctl_to_c", value: ratio(v, c), unit: "x", note: "same run, interleaved; goal ≤ 1.5" });
      const n = median(t.n);
      results.push({ name: "list.node_same_reads_ms", value: Math.round(n), unit: "ms", note: `bench/replay-node.ts: the same operations with synchronous node:fs in a loop (Node's floor), whole process, median of ${runs}` });
      results.push({ name: "list.ratio_node_floor_to_c", value: ratio(n, c), unit: "x", note: "same run: what Node itself costs for these operations against C" });
      results.push({ name: "list.ratio_vfioctl_to_node_floor", value: ratio(v, n), unit: "x", note: "same run: vfioctl's own cost over Node's floor" });
    } else results.push({ name: "list.c_same_reads_ms", value: NaN, unit: "ms", note: replay.why });
    if (lspci) {
      const l = median(t.l);
      results.push({ name: "list.lspci_ms", value: Math.round(l), unit: "ms", note: `lspci -A linux-sysfs on the same tree, median of ${runs}` });
      results.push({ name: "list.ratio_vfioctl_to_lspci", value: ratio(v, l), unit: "x", note: "same run, interleaved" });
    } else results.push({ name: "list.lspci_ms", value: NaN, unit: "ms", note: "lspci not installed: run sh bench/setup-tools.sh" });
    if (hostFile) {
      const sInv = JSON.parse(sOut) as { pfs: { vfDevices: unknown[] }[]; others: unknown[] };
      const sDev = sInv.pfs.length + sInv.pfs.reduce((n, p) => n + p.vfDevices.length, 0) + sInv.others.length;
      const sm = median(t.s);
      results.push({ name: "list.sim_json_ms", value: Math.round(sm), unit: "ms", note: `vfioctl --sim HOST list --json on the host the tree came from (${sDev} devices), median of ${runs}, whole process` });
      results.push({ name: "list.ratio_sim_to_tree", value: ratio(sm, v), unit: "x", note: "same run, interleaved; goal ≤ 1" });
    } else results.push({ name: "list.sim_json_ms", value: NaN, unit: "ms", note: "BENCH_LIST_TREE without BENCH_LIST_HOST: no host file for the --sim row" });
    if (dc) {
      const lines = dOut.trim().split("\n").length;
      const d = median(t.d);
      results.push({ name: "list.driverctl_ms", value: Math.round(d), unit: "ms", note: `driverctl list-devices on the same tree (${lines} devices), one run (first round), whole process` });
      results.push({ name: "list.ratio_vfioctl_to_driverctl", value: ratio(v, d), unit: "x", note: "same run; < 1 means vfioctl is faster" });
    } else {
      results.push({ name: "list.driverctl_ms", value: NaN, unit: "ms", note: "driverctl not installed: run sh bench/setup-tools.sh" });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchList()) console.log(`${r.name.padEnd(36)} ${String(r.value).padStart(8)} ${r.unit}  ${r.note ?? ""}`);
}
