/**
 * FFI benchmark: an ioctl(2) through `LinuxSyscalls` (the seam: a Promise per call), through
 * `ioctl()` of src/sys/linux/ioctl.ts (the FFI in use alone, synchronous: the addon, or koffi
 * when the addon is absent or VFIOCTL_FFI=koffi), and through each implementation loaded on its
 * own (the addon when it loads, koffi), against the same ioctl in C (bench/c/ioctl.c, built with
 * the system's `cc`), per call, on a pipe (a FIFO here):
 *   int   FIOCLEX with an integer argument (by value)
 *   buf   FIONREAD into a 4-byte Buffer (by pointer, written back)
 *   fail  VFIO_GET_API_VERSION on the FIFO: ENOTTY, a SysError each time
 * In interleaved rounds (BENCH_FFI_ROUNDS, default 5; BENCH_FFI_CALLS calls per case, default
 * 200000), medians; the goal is the seam within 2× of C. Wall-clock ns per call, and CPU time per
 * call (this process's user+system time, CLOCK_PROCESS_CPUTIME_ID in C): on a machine whose cores
 * other work keeps busy, the wall-clock figures include the waits for a core, the CPU ones less so.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import { ffiAvailable, ffiInfo, ioctl, loadAddon, loadKoffi, sysErrorFromErrno, type Ffi } from "../src/sys/linux/ioctl.js";
import { O_NONBLOCK, O_RDONLY, O_WRONLY } from "../src/sys/syscalls.js";
import { VFIO } from "../src/uapi/vfio.js";
import { buildC, median, type BenchResult } from "./list.js";

const FIOCLEX = 0x5451;
const FIONREAD = 0x541b;
type Case = "int" | "buf" | "fail";
const CASES: Case[] = ["int", "buf", "fail"];

/**
 * ns per call of `await f()`, `calls` times in a loop. The loop is a function of its own: inside
 * benchFfi's body each `await` resumed that large async function (its whole frame saved and
 * restored), which cost more than the seam itself (150–500 ns per call here) and is not what a
 * caller of the seam pays.
 */
async function perCallAsync(f: () => Promise<unknown>, calls: number): Promise<Timing> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await f();
  return timing(t0, c0, calls);
}

/** ns per call of `f()`, `calls` times in a loop. */
function perCall(f: () => unknown, calls: number): Timing {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) f();
  return timing(t0, c0, calls);
}

/** wall-clock and CPU ns per call */
interface Timing {
  wall: number;
  cpu: number;
}
function timing(t0: bigint, c0: NodeJS.CpuUsage, calls: number): Timing {
  const wall = Number(process.hrtime.bigint() - t0) / calls;
  const c = process.cpuUsage(c0);
  return { wall, cpu: ((c.user + c.system) * 1000) / calls };
}

export async function benchFfi(opts: { rounds?: number; calls?: number } = {}): Promise<BenchResult[]> {
  const rounds = opts.rounds ?? Number(process.env.BENCH_FFI_ROUNDS ?? 5);
  const calls = opts.calls ?? Number(process.env.BENCH_FFI_CALLS ?? 200000);
  if (!ffiAvailable()) return [{ name: "ffi", value: NaN, unit: "-", note: "neither the addon nor koffi loads: no FFI rows" }];
  const inUse = ffiInfo();
  // each implementation on its own, as ioctl() uses it (an error thrown as a SysError)
  const alone: [string, Ffi | string][] = [];
  for (const [name, load] of [["addon", loadAddon], ["koffi", loadKoffi]] as const) {
    try {
      alone.push([name, load()]);
    } catch (e) {
      alone.push([name, (e as Error).message]);
    }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-bench-ffi-"));
  try {
    const c = buildC("ioctl", dir);
    const fifo = path.join(dir, "p");
    execFileSync("mkfifo", [fifo]);
    const sys = new LinuxSyscalls();
    const r = await sys.open(fifo, O_RDONLY | O_NONBLOCK);
    const w = await sys.open(fifo, O_WRONLY | O_NONBLOCK);
    await sys.write(w, "hello");
    const n = Buffer.alloc(4);
    const seam: Record<Case, () => Promise<unknown>> = {
      int: () => sys.ioctl(r, FIOCLEX, 0),
      buf: () => sys.ioctl(r, FIONREAD, n),
      fail: () => sys.ioctl(r, VFIO.GET_API_VERSION).catch((e: unknown) => e),
    };
    const raw: Record<Case, () => unknown> = {
      int: () => ioctl(r, FIOCLEX, 0),
      buf: () => ioctl(r, FIONREAD, n),
      fail: () => {
        try {
          return ioctl(r, VFIO.GET_API_VERSION);
        } catch (e) {
          return e;
        }
      },
    };
    const via = (f: Ffi): Record<Case, () => unknown> => {
      const call = (request: number, arg: Buffer | number) => {
        const ret = f.ioctlErrno(r, request, arg);
        if (ret < 0) throw sysErrorFromErrno(-ret, "ioctl");
        return ret;
      };
      return {
        int: () => call(FIOCLEX, 0),
        buf: () => call(FIONREAD, n),
        fail: () => {
          try {
            return call(VFIO.GET_API_VERSION, 0);
          } catch (e) {
            return e;
          }
        },
      };
    };
    const impls = alone.flatMap(([name, f]) => (typeof f === "string" ? [] : [[name, via(f)] as const]));
    const t = { seam: {} as Record<Case, Timing[]>, raw: {} as Record<Case, Timing[]>, c: {} as Record<Case, Timing[]> };
    const ti: Record<string, Record<Case, Timing[]>> = {};
    for (const k of CASES) (t.seam[k] = []), (t.raw[k] = []), (t.c[k] = []);
    for (const [name] of impls) ti[name] = { int: [], buf: [], fail: [] };
    // warm up the JIT
    for (const k of CASES) {
      for (let i = 0; i < 20000; i++) await seam[k]();
      for (let i = 0; i < 20000; i++) raw[k]();
      for (const [, f] of impls) for (let i = 0; i < 20000; i++) f[k]();
    }
    for (let round = 0; round < rounds; round++) {
      for (const k of CASES) {
        t.seam[k].push(await perCallAsync(seam[k], calls));
        t.raw[k].push(perCall(raw[k], calls));
        for (const [name, f] of impls) ti[name]![k].push(perCall(f[k], calls));
      }
      if ("bin" in c) {
        const j = JSON.parse(execFileSync(c.bin, [String(calls)], { encoding: "utf8" })) as Record<Case, number> & { cpu: Record<Case, number> };
        for (const k of CASES) t.c[k].push({ wall: j[k], cpu: j.cpu[k] });
      }
    }
    await sys.exit();
    const out: BenchResult[] = [];
    const what: Record<Case, string> = { int: "FIOCLEX, integer argument", buf: "FIONREAD into a Buffer", fail: "failing (ENOTTY → SysError)" };
    const wall = (v: Timing[]) => median(v.map((x) => x.wall));
    const cpu = (v: Timing[]) => median(v.map((x) => x.cpu));
    for (const k of CASES) {
      const s = wall(t.seam[k]);
      const rw = wall(t.raw[k]);
      out.push({ name: `ffi.${k}.seam_ns`, value: Math.round(s), unit: "ns/call", note: `await sys.ioctl() over the ${inUse.kind}: ${what[k]}, median of ${rounds} rounds × ${calls}` });
      out.push({ name: `ffi.${k}.ffi_ns`, value: Math.round(rw), unit: "ns/call", note: `ioctl() of src/sys/linux/ioctl.ts (the ${inUse.kind}), synchronous` });
      for (const [name] of impls) out.push({ name: `ffi.${k}.${name}_ns`, value: Math.round(wall(ti[name]![k])), unit: "ns/call", note: `the ${name} alone (loaded on its own), synchronous` });
      if ("bin" in c) {
        const cc = wall(t.c[k]);
        const ccpu = cpu(t.c[k]);
        out.push({ name: `ffi.${k}.c_ns`, value: Math.round(cc), unit: "ns/call", note: "bench/c/ioctl.c, same call in a loop" });
        out.push({ name: `ffi.${k}.ratio_seam_to_c`, value: Number((s / cc).toFixed(2)), unit: "x", note: "same run, interleaved; goal ≤ 2" });
        out.push({ name: `ffi.${k}.ratio_ffi_to_c`, value: Number((rw / cc).toFixed(2)), unit: "x", note: "same run" });
        for (const [name] of impls) out.push({ name: `ffi.${k}.ratio_${name}_to_c`, value: Number((wall(ti[name]![k]) / cc).toFixed(2)), unit: "x", note: "same run" });
        out.push({ name: `ffi.${k}.cpu.c_ns`, value: Math.round(ccpu), unit: "ns/call", note: "CPU time per call, C" });
        out.push({ name: `ffi.${k}.cpu.ratio_seam_to_c`, value: Number((cpu(t.seam[k]) / ccpu).toFixed(2)), unit: "x", note: `CPU time: the seam ${Math.round(cpu(t.seam[k]))} ns/call` });
        for (const [name] of impls) out.push({ name: `ffi.${k}.cpu.ratio_${name}_to_c`, value: Number((cpu(ti[name]![k]) / ccpu).toFixed(2)), unit: "x", note: `CPU time: the ${name} alone ${Math.round(cpu(ti[name]![k]))} ns/call` });
      }
    }
    if (!("bin" in c)) out.push({ name: "ffi.c_ns", value: NaN, unit: "-", note: c.why });
    for (const [name, f] of alone) if (typeof f === "string") out.push({ name: `ffi.${name}`, value: NaN, unit: "-", note: `no ${name} rows: ${f}` });
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchFfi()) console.log(`${r.name.padEnd(30)} ${String(r.value).padStart(8)} ${r.unit}  ${r.note ?? ""}`);
}
