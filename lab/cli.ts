/**
 * `npm run lab -- [options]`: the real-kernel lab.
 *
 *   --probe            boot each kernel, prove node + LinuxSyscalls + ioctl work on /dev/vfio
 *   --raw [SEQ…]       record raw transcripts (all sequences, or the named ones) into
 *                      lab/transcripts/raw/<kernel>-<seq>.{txt,json}
 *   --report           (default) run scenarios/*.yaml on both kernels and on the model, print
 *                      scenarios × kernels match/diff; exit 1 on any diff. With files, only
 *                      those; `host` (or host:apply, host:reboot, host:killed) runs the host
 *                      lifecycle rows (lab/host-check.ts); the CLI rows with
 *                      scenarios/cli/cli-state.yaml; `consumers` (or dpdk, qemu, dpdk:pf-vf,
 *                      dpdk:chroot, dpdk:mntns, qemu:vf) the real-consumer rows
 *                      (lab/consumers.ts: DPDK testpmd and QEMU beside vfioctl)
 *   --rediff           compare again the transcripts the last --report saved (no guest)
 *   --remodel          like --rediff, but run the model again against the saved real transcripts
 *                      (after a model change; the scenario and selftest rows)
 *   --kernel K         only this kernel (6.1, 6.12, 7.3, 6.12-cdev, 7.3-cdev, 7.3-e2big:
 *                      lab/kernels.ts); repeatable. Default: 6.1, 6.12 and the ready ones of
 *                      VFIOCTL_LAB_KERNELS (default all)
 *   --all              every kernel prepare made ready
 *   selftest           (as a file) only the kernel selftest rows (lab/selftest.ts)
 *   attrs              (as a file) only the sysfs attribute rows (lab/sysfs-attrs.ts: one guest
 *                      run per kernel; they also run with the whole report). With --rediff /
 *                      --remodel: the saved real walks against the model as it is now
 *   --jobs N           guests run at once (default 2)
 *   --no-prepare       do not run lab/prepare.sh first
 */
import { copyFileSync, mkdirSync, existsSync } from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { PROJECT, defaultKernels, prepare, runInGuest, dropRun, type GuestRun } from "./vm.js";
import { SEQUENCES } from "./sequences.js";

interface Args {
  mode: "probe" | "raw" | "report" | "rediff";
  kernels: string[];
  names: string[];
  jobs: number;
  prepare: boolean;
  files: string[];
  all: boolean;
  remodel: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { mode: "report", kernels: [], names: [], jobs: 2, prepare: true, files: [], all: false, remodel: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === "--probe") a.mode = "probe";
    else if (x === "--raw") a.mode = "raw";
    else if (x === "--report") a.mode = "report";
    else if (x === "--rediff") a.mode = "rediff";
    else if (x === "--remodel") {
      a.mode = "rediff";
      a.remodel = true;
    }
    else if (x === "--kernel") a.kernels.push(argv[++i]!);
    else if (x === "--jobs") a.jobs = Number(argv[++i]);
    else if (x === "--no-prepare") a.prepare = false;
    else if (x === "--all") a.all = true;
    else if (x.startsWith("--")) throw new Error(`unknown option ${x}`);
    else if (a.mode === "raw") a.names.push(x);
    else a.files.push(x);
  }
  return a;
}

/** Run tasks with at most `n` at once, keeping their order in the result. */
export async function pool<T>(tasks: (() => Promise<T>)[], n: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, n) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]!();
      }
    }),
  );
  return out;
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The lab's entry point, also reached as `vfioctl lab …`; resolves to the exit status. */
export async function labMain(argv: string[]): Promise<number> {
  const a = parseArgs(argv);
  const t0 = Date.now();
  // kernels: those named; else Debian's 6.1 and 6.12 plus VFIOCTL_LAB_KERNELS (all ready ones with --all)
  const pickKernels = () => {
    if (a.kernels.length === 0) a.kernels = defaultKernels(a.all);
  };
  if (a.mode === "rediff") pickKernels();
  const attrs = await import("./sysfs-attrs.js");
  // the attribute rows run with the whole report (like the selftest and host rows) or when named
  const whole = a.files.length === 0;
  const attrSel = whole && a.mode === "report" ? ["attrs"] : a.files.filter(attrs.isAttrsSelector);
  a.files = a.files.filter((f) => !attrs.isAttrsSelector(f));
  if (attrSel.length && a.mode === "rediff") return attrs.attrsReport(a.kernels, attrSel, t0, null);
  if (a.mode === "rediff") return (await import("./conformance.js")).rediff({ kernels: a.kernels, t0, remodel: a.remodel });
  if (a.prepare) console.error(`lab: prepare ${fmt(prepare())}`);
  pickKernels();
  if (a.mode === "probe") {
    const runs = await pool(a.kernels.map((k) => () => runInGuest(k, { kind: "probe" }, 300)), a.jobs);
    let bad = 0;
    for (const r of runs) {
      console.log(`${r.kernel}: rc=${r.rc} boot=${r.bootS}s end=${r.endS}s wall=${fmt(r.wallMs)} ${JSON.stringify(r.result)}`);
      if (r.rc !== 0 || !r.result?.ok) {
        bad++;
        console.log(r.console.slice(-3000));
      }
      dropRun(r);
    }
    return bad ? 1 : 0;
  }
  if (a.mode === "raw") {
    const names = a.names.length ? a.names : ["boot", ...Object.keys(SEQUENCES)];
    const dest = path.join(PROJECT, "lab/transcripts/raw");
    mkdirSync(dest, { recursive: true });
    const tasks: (() => Promise<GuestRun>)[] = [];
    for (const k of a.kernels) for (const n of names) tasks.push(() => runInGuest(k, { kind: "raw", sequence: n }, 300));
    const runs = await pool(tasks, a.jobs);
    let bad = 0;
    for (const r of runs) {
      const job = JSON.parse(JSON.stringify(r.result ?? {}));
      const name = names[runs.indexOf(r) % names.length]!;
      const base = `${r.kernel}-${name}`;
      const ok = r.rc === 0 && job.ok && existsSync(path.join(r.runDir, `${base}.txt`));
      console.log(`${base}: ${ok ? "ok" : "FAILED"} boot=${r.bootS}s job=${((job.ms ?? 0) / 1000).toFixed(1)}s wall=${fmt(r.wallMs)}`);
      if (ok) {
        for (const ext of ["txt", "json"]) copyFileSync(path.join(r.runDir, `${base}.${ext}`), path.join(dest, `${base}.${ext}`));
        dropRun(r);
      } else {
        bad++;
        console.log(`  run folder kept: ${r.runDir}\n  ${job.error ?? ""}\n${r.console.slice(-2000)}`);
      }
    }
    console.log(`lab: ${runs.length} guest runs in ${fmt(Date.now() - t0)}`);
    return bad ? 1 : 0;
  }
  const rcAttrs = attrSel.length ? await attrs.attrsReport(a.kernels, attrSel, t0, a.jobs) : 0;
  if (attrSel.length && !whole && !a.files.length) return rcAttrs;
  const { report } = await import("./conformance.js");
  return Math.max(rcAttrs, await report({ kernels: a.kernels, jobs: a.jobs, files: a.files, t0 }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  labMain(process.argv.slice(2)).then(
    (rc) => process.exit(rc),
    (e) => {
      console.error(e);
      process.exit(2);
    },
  );
}
