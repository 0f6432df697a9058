/**
 * `list` benchmark: `vfioctl list --json` on a 4,096-VF host tree (16 PFs × 256 VFs, half on
 * vfio-pci with captured VFs, half on ice with iavf VFs), materialized from the model into a temp
 * directory and read with the real backend (`--root DIR`), measured side by side in the same run
 * with driverctl's `list-devices` walking the same tree.
 *
 * driverctl hard-codes /sys/bus/<bus>/devices; its script is copied with only that prefix
 * redirected to the temp tree (its logic is unchanged). Install it with bench/setup-tools.sh;
 * without it the comparison row is skipped with a note.
 *
 * Both sides are measured as whole processes (fork + exec + walk), alternating, and the median
 * of the runs is reported. vfioctl reads far more per device (IOMMU group, /dev/vfio node,
 * SR-IOV attributes, virtfn links, token situation, /proc scan) than driverctl (override and
 * driver link only).
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { HostDesc } from "../src/kernel/host/host-file.js";
import { materialize } from "../src/sim/materialize.js";

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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeRun(cmd: string, args: string[]): { ms: number; out: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr.slice(0, 400)}`);
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

export async function benchList(opts: { runs?: number } = {}): Promise<BenchResult[]> {
  const runs = opts.runs ?? 3;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-bench-list-"));
  const root = path.join(dir, "root");
  const results: BenchResult[] = [];
  try {
    const t0 = performance.now();
    const k = await bootKernel(benchHost());
    const m = k.spawn("materialize");
    const stats = await materialize(m, root);
    await m.exit();
    results.push({ name: "list.materialize_ms", value: Math.round(performance.now() - t0), unit: "ms", note: `model boot + materialize ${stats.files} files, ${stats.links} links, ${stats.dirs} dirs` });
    const bin = new URL("../../bin/vfioctl.js", import.meta.url).pathname;
    const dc = driverctlCopy(root, dir);
    const v: number[] = [];
    const d: number[] = [];
    let vOut = "";
    let dOut = "";
    for (let i = 0; i < runs; i++) {
      const a = timeRun(process.execPath, [bin, "--root", root, "list", "--json"]);
      v.push(a.ms);
      vOut = a.out;
      if (dc) {
        const b = timeRun("bash", [dc, "list-devices"]);
        d.push(b.ms);
        dOut = b.out;
      }
    }
    const inv = JSON.parse(vOut) as { pfs: { vfDevices: unknown[] }[]; others: unknown[] };
    const nDev = inv.pfs.length + inv.pfs.reduce((n, p) => n + p.vfDevices.length, 0) + inv.others.length;
    results.push({ name: "list.vfioctl_json_ms", value: Math.round(median(v)), unit: "ms", note: `median of ${runs} runs, ${nDev} devices (${inv.pfs.length} PFs), real backend --root, whole process` });
    if (dc) {
      const lines = dOut.trim().split("\n").length;
      results.push({ name: "list.driverctl_ms", value: Math.round(median(d)), unit: "ms", note: `driverctl list-devices on the same tree (${lines} devices), median of ${runs} runs, whole process` });
      results.push({ name: "list.ratio_vfioctl_to_driverctl", value: Number((median(v) / median(d)).toFixed(2)), unit: "x", note: "same run, alternating; < 1 means vfioctl is faster" });
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
