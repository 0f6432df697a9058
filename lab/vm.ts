/**
 * Host side of the lab: prepare (lab/prepare.sh), boot a kernel with a job (lab/boot.sh), collect
 * what the guest wrote to its run folder and the serial console.
 */
import { spawn, spawnSync } from "node:child_process";
import { createConnection } from "node:net";
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
/** Debian's two kernels, always in the lab. */
export const KERNELS = ["6.1", "6.12"] as const;
export type KernelName = string;

/**
 * The kernels a run covers when none is named: Debian's 6.1 and 6.12, and those of
 * VFIOCTL_LAB_KERNELS (default: every other lab kernel, lab/kernels.ts) that prepare made ready.
 * `all`: every ready kernel.
 */
export function defaultKernels(all = false): string[] {
  const extra = all ? null : (process.env.VFIOCTL_LAB_KERNELS ?? "7.3 7.3-cdev 6.12-cdev 7.3-e2big").split(/\s+/).filter((x) => x && x !== "none");
  const order = ["6.1", "6.12", "7.3", "6.12-cdev", "7.3-cdev", "7.3-e2big"];
  return order.filter((k) => KERNELS.includes(k as never) || ((extra === null || extra.includes(k)) && existsSync(path.join(CACHE, "trixie/lab", k, "initramfs.cpio.gz"))));
}

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
  /** the guest went silent for machine.stallS seconds (or froze, see `frozen`) and was killed */
  stalled?: boolean;
  /** why a silent guest was taken for frozen by the emulator: a vCPU's local APIC stuck (see apicStuck) */
  frozen?: string;
  /** why an earlier run of this job was dropped and the job run again */
  reruns?: string[];
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
  const abort = first.rc === null ? emulatorAbort(first.console) : null;
  if (first.bootS !== null && !first.stalled && !abort) return first;
  // a guest that never reached init, (with machine.stallS) went silent mid-job, or whose QEMU
  // aborted (TCG: iotlb_to_section's assertion, LAB.md): the emulator, not a kernel answer; run
  // it once more and say so
  const why = abort
    ? `QEMU aborted: ${abort}`
    : first.frozen
      ? `stalled: ${first.frozen}, after ${JSON.stringify(lastLine(first.console))}`
      : first.stalled
        ? `stalled: no console output for ${machine.stallS} s after ${JSON.stringify(lastLine(first.console))}`
        : "never reached init";
  dropRun(first);
  const second = await runOnce(kernel, job, timeoutS, machine);
  second.reruns = [why];
  return second;
}

/** QEMU's own assertion or abort line in the output of a guest whose job never reported, or null. */
export function emulatorAbort(console: string): string | null {
  const m = /^qemu-system-[\w-]+: .*(?:Assertion .* failed|[Aa]borted).*$/m.exec(console);
  return m ? m[0].trim() : null;
}

/** The last non-empty console line (where a stalled guest stopped). */
export function lastLine(console: string): string {
  // the lines QEMU and timeout print once the guest is killed are not where it stopped
  const l = console
    .split(/\r?\n/)
    .map((x) => x.trim())
    .filter((x) => x && !/^qemu-system-\S+: terminating on signal|^qemu-system-\S+: warning: nic /.test(x));
  return (l.at(-1) ?? "").slice(0, 200);
}

/** One vCPU's local APIC as QEMU's monitor shows it (`info lapic N`, `info registers -a`). */
export interface ApicState {
  cpu: number;
  /** vectors in service, pending */
  isr: number[];
  irr: number[];
  ppr: number;
  halted: boolean;
}

/** Parse `info lapic N` and the CPU's `HLT=` of `info registers -a`. */
export function parseApic(cpu: number, lapic: string, registers: string): ApicState | null {
  const list = (name: string) => {
    const m = new RegExp(`^${name}\\s+(.*)$`, "m").exec(lapic);
    return m ? m[1]!.split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number) : null;
  };
  const isr = list("ISR");
  const irr = list("IRR");
  const ppr = /\bPPR 0x([0-9a-f]+)/i.exec(lapic);
  if (!isr || !irr || !ppr) return null;
  const block = registers.split(/^CPU#/m).find((b) => b.startsWith(`${cpu}\n`) || b.startsWith(`${cpu}\r`)) ?? "";
  return { cpu, isr, irr, ppr: parseInt(ppr[1]!, 16), halted: /\bHLT=1\b/.test(block) };
}

/**
 * A vCPU frozen by the emulator: halted (the guest's idle loop) while its local APIC still has a
 * vector in service, and a pending vector that this in-service one masks (its priority class is
 * not above the PPR). Linux ends every interrupt (EOI) before it can idle, so the APIC lost that
 * EOI: the CPU takes no timer and no device interrupt any more, and whatever waits on it (an
 * msleep in a PCI reset, the console's transmit interrupt, a 9p reply) waits for ever. Seen under
 * TCG on 6.12 in the selftest guest (vector 236, the local timer, in service and pending).
 */
export function apicStuck(a: ApicState): string | null {
  if (!a.halted || !a.isr.length) return null;
  const top = Math.max(...a.isr);
  const blocked = a.irr.filter((v) => (v & 0xf0) <= (a.ppr & 0xf0));
  if (!blocked.length) return null;
  return `vCPU ${a.cpu} halted with vector ${top} in service and ${blocked.join(" ")} pending (PPR 0x${a.ppr.toString(16)})`;
}

/** Run HMP commands on QEMU's monitor socket; their outputs (echo and escapes removed). */
export function monitorCommands(sock: string, cmds: string[], timeoutMs = 5000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = createConnection(sock);
    const out: string[] = [];
    let buf = "";
    let i = -1; // -1: the banner before the first prompt
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`monitor: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    c.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.on("data", (d) => {
      buf += d.toString("utf8");
      while (buf.includes("(qemu) ")) {
        const at = buf.indexOf("(qemu) ");
        const text = buf.slice(0, at).replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
        buf = buf.slice(at + 7);
        if (i >= 0) out.push(text.slice(text.indexOf("\n") + 1)); // drop the echoed command line
        i++;
        if (i < cmds.length) c.write(cmds[i] + "\n");
        else {
          clearTimeout(timer);
          c.destroy();
          resolve(out);
          return;
        }
      }
    });
  });
}

/** The stuck vCPUs of a running guest (empty when none, or when the monitor does not answer). */
export async function stuckCpus(sock: string, cpus: number): Promise<string[]> {
  try {
    const cmds = [...Array.from({ length: cpus }, (_, n) => `info lapic ${n}`), "info registers -a"];
    const o = await monitorCommands(sock, cmds);
    const regs = o[cpus] ?? "";
    const r: string[] = [];
    for (let n = 0; n < cpus; n++) {
      const a = parseApic(n, o[n] ?? "", regs);
      const s = a && apicStuck(a);
      if (s) r.push(s);
    }
    return r;
  } catch {
    return [];
  }
}

/** A silent guest's vCPUs are looked at after this long, and taken for frozen when stuck twice this far apart. */
const FREEZE_CHECK_S = Number(process.env.VFIOCTL_LAB_FREEZE_CHECK_S ?? 30);
const FREEZE_CONFIRM_S = 10;

/** Per-run machine options (the consumer rows: 4 GiB and hugepages); unset: lab/boot.sh's defaults. */
export interface GuestMachine {
  /** guest memory in MiB (VFIOCTL_LAB_MEM for this run) */
  memMiB?: number;
  /** words added to the kernel command line (after VFIOCTL_LAB_APPEND) */
  append?: string;
  /** vCPUs (VFIOCTL_LAB_SMP for this run) */
  smp?: number;
  /**
   * per-operation timeout: a booted guest that prints nothing on its console for this long is
   * taken as stalled (TCG: seen inside a PF open after "resetting"), killed and run once more;
   * its jobs trace every system call (or test) on the console, so silence is not a slow answer
   */
  stallS?: number;
}

/** The environment lab/boot.sh gets for a run with these machine options. */
export function machineEnv(m: GuestMachine, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const e = { ...env };
  if (m.memMiB !== undefined) e.VFIOCTL_LAB_MEM = String(m.memMiB);
  if (m.smp !== undefined) e.VFIOCTL_LAB_SMP = String(m.smp);
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
      // diagnosis only: lab/stall-dump.sh dumps the guest's tasks and kernel log when the console is silent
      ...(process.env.VFIOCTL_LAB_GUEST_DUMP_S ? [`sh lab/stall-dump.sh ${Number(process.env.VFIOCTL_LAB_GUEST_DUMP_S)} </dev/null >/dev/null 2>&1 &`] : []),
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
    let stalled = false;
    const watchdog = setTimeout(() => {
      if (!booted) p.kill("SIGTERM");
    }, BOOT_WATCHDOG_MS);
    let last = Date.now();
    let frozen: string | undefined;
    // a silent guest's vCPUs: the first sample of a stuck APIC (and when), confirmed by a second
    let suspect: { at: number; what: string } | null = null;
    let checking = false;
    let lastCheck = 0;
    const cpus = Number(machineEnv(machine).VFIOCTL_LAB_SMP ?? 2);
    const checkFrozen = async () => {
      checking = true;
      const quietSince = last;
      const s = (await stuckCpus(path.join(runDir, "monitor.sock"), cpus)).join("; ");
      checking = false;
      if (last !== quietSince || stalled) return (suspect = null);
      if (!s) return (suspect = null);
      if (!suspect || suspect.what !== s) return (suspect = { at: Date.now(), what: s });
      if (Date.now() - suspect.at >= FREEZE_CONFIRM_S * 1000) {
        frozen = `emulator froze a vCPU: ${s}, unchanged for ${Math.round((Date.now() - suspect.at) / 1000)} s after ${Math.round((suspect.at - quietSince) / 1000)} s of silence (QEMU lost the EOI)`;
        stalled = true;
        p.kill("SIGTERM");
      }
    };
    const stallTimer = machine.stallS
      ? setInterval(() => {
          if (!booted || stalled) return;
          const quiet = Date.now() - last;
          if (quiet > machine.stallS! * 1000) {
            stalled = true;
            p.kill("SIGTERM");
          } else if (quiet > FREEZE_CHECK_S * 1000 && !checking && Date.now() - lastCheck >= 5000 && (!suspect || Date.now() - suspect.at >= FREEZE_CONFIRM_S * 1000)) {
            lastCheck = Date.now();
            void checkFrozen();
          }
        }, 1000)
      : undefined;
    const onData = (b: Buffer) => {
      chunks.push(b);
      last = Date.now();
      writeSync(live, b);
      // the serial console comes in pieces: look at what came so far, not at this piece alone
      if (!booted && Buffer.concat(chunks).includes("VFIOCTL-LAB: init")) booted = true;
    };
    p.stdout.on("data", onData);
    p.stderr.on("data", onData);
    p.on("error", reject);
    p.on("close", () => {
      clearTimeout(watchdog);
      if (stallTimer) clearInterval(stallTimer);
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
        ...(stalled ? { stalled } : {}),
        ...(frozen ? { frozen } : {}),
      });
    });
  });
}

/** Remove a run folder (keep it with VFIOCTL_LAB_KEEP=1). */
export function dropRun(r: GuestRun): void {
  if (!process.env.VFIOCTL_LAB_KEEP) rmSync(r.runDir, { recursive: true, force: true });
}
