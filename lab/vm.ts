/**
 * Host side of the lab: prepare (lab/prepare.sh), boot a kernel with a job (lab/boot.sh), collect
 * what the guest wrote to its run folder and the serial console.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync, readFileSync, existsSync, rmSync, openSync, writeSync, closeSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** The project's folder (where package.json is), from dist/lab/vm.js or lab/vm.ts. */
export const PROJECT = (() => {
  let d = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(d, "package.json")) && d !== "/") d = path.dirname(d);
  return d;
})();

export const CACHE = process.env.VFIOCTL_LAB_CACHE ?? "/var/cache/vfioctl-lab";
export const KERNELS = ["6.1", "6.12"] as const;
export type KernelName = (typeof KERNELS)[number];

/** Run lab/prepare.sh (cheap when everything is cached); returns its wall time in ms. */
export function prepare(log: (s: string) => void = (s) => process.stderr.write(s)): number {
  const t0 = Date.now();
  const r = spawnSync("bash", [path.join(PROJECT, "lab/prepare.sh")], { stdio: ["ignore", "pipe", "pipe"], env: process.env });
  log(r.stderr.toString());
  if (r.status !== 0) throw new Error(`lab/prepare.sh failed (exit ${r.status})`);
  return Date.now() - t0;
}

export interface GuestRun {
  kernel: string;
  runDir: string;
  /** exit status of the guest's job (from the console), or null when it never reported */
  rc: number | null;
  /** host wall time from QEMU start to QEMU exit */
  wallMs: number;
  /** guest uptime when the host share was mounted (≈ boot time), seconds */
  bootS: number | null;
  /** guest uptime at the end of the job, seconds */
  endS: number | null;
  console: string;
  result: Record<string, unknown> | null;
}

let seq = 0;

/** A guest that has not printed its init line by then is stuck in early boot (seen under load). */
const BOOT_WATCHDOG_MS = Number(process.env.VFIOCTL_LAB_BOOT_WATCHDOG_MS ?? 120_000);

/**
 * Boot `kernel` and run `job` (given to node dist/lab/guest.js) in it. A boot that never reaches
 * the guest's init (TCG on a loaded host can panic in the IO-APIC timer check or stall in the
 * firmware) is retried once; the job itself is never retried.
 */
export async function runInGuest(kernel: string, job: Record<string, unknown>, timeoutS = 900, machine: GuestMachine = {}): Promise<GuestRun> {
  const first = await runOnce(kernel, job, timeoutS, machine);
  if (first.bootS !== null) return first;
  dropRun(first);
  return runOnce(kernel, job, timeoutS, machine);
}

/** Per-run machine options (the consumer rows: 4 GiB and hugepages); unset: lab/boot.sh's defaults. */
export interface GuestMachine {
  /** guest memory in MiB (VFIOCTL_LAB_MEM for this run) */
  memMiB?: number;
  /** words added to the kernel command line (after VFIOCTL_LAB_APPEND) */
  append?: string;
}

/** The environment lab/boot.sh gets for a run with these machine options. */
export function machineEnv(m: GuestMachine, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const e = { ...env };
  if (m.memMiB !== undefined) e.VFIOCTL_LAB_MEM = String(m.memMiB);
  if (m.append) e.VFIOCTL_LAB_APPEND = [env.VFIOCTL_LAB_APPEND, m.append].filter(Boolean).join(" ");
  return e;
}

function runOnce(kernel: string, job: Record<string, unknown>, timeoutS: number, machine: GuestMachine = {}): Promise<GuestRun> {
  const runDir = path.join(CACHE, "runs", `${kernel}-${process.pid}-${Date.now()}-${seq++}`);
  mkdirSync(runDir, { recursive: true });
  writeFileSync(path.join(runDir, "job.json"), JSON.stringify({ kernel, ...job }));
  writeFileSync(
    path.join(runDir, "run.sh"),
    [
      "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root UV_THREADPOOL_SIZE=16",
      `cd ${JSON.stringify(PROJECT)} || exit 3`,
      `exec node dist/lab/guest.js /tmp/job.json`,
      "",
    ].join("\n"),
  );
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const p = spawn("bash", [path.join(PROJECT, "lab/boot.sh"), kernel, runDir, String(timeoutS)], {
      stdio: ["ignore", "pipe", "pipe"],
      env: machineEnv(machine),
    });
    const chunks: Buffer[] = [];
    const live = openSync(path.join(runDir, "console.log"), "w"); // readable while the guest runs
    let booted = false;
    const watchdog = setTimeout(() => {
      if (!booted) p.kill("SIGTERM");
    }, BOOT_WATCHDOG_MS);
    const onData = (b: Buffer) => {
      chunks.push(b);
      writeSync(live, b);
      // the serial console comes in pieces: look at what came so far, not at this piece alone
      if (!booted && Buffer.concat(chunks).includes("VFIOCTL-LAB: init")) booted = true;
    };
    p.stdout.on("data", onData);
    p.stderr.on("data", onData);
    p.on("error", reject);
    p.on("close", () => {
      clearTimeout(watchdog);
      const cons = Buffer.concat(chunks).toString("utf8");
      closeSync(live);
      const done = /VFIOCTL-LAB-DONE rc=(\d+) uptime=([\d.]+)/.exec(cons);
      const mounted = /VFIOCTL-LAB: mounted ([\d.]+)/.exec(cons);
      let result: Record<string, unknown> | null = null;
      try {
        result = JSON.parse(readFileSync(path.join(runDir, "result.json"), "utf8"));
      } catch {
        /* none */
      }
      resolve({
        kernel,
        runDir,
        rc: done ? Number(done[1]) : null,
        wallMs: Date.now() - t0,
        bootS: mounted ? Number(mounted[1]) : null,
        endS: done ? Number(done[2]) : null,
        console: cons,
        result,
      });
    });
  });
}

/** Remove a run folder (keep it with VFIOCTL_LAB_KEEP=1). */
export function dropRun(r: GuestRun): void {
  if (!process.env.VFIOCTL_LAB_KEEP) rmSync(r.runDir, { recursive: true, force: true });
}
