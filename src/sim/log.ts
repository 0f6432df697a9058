/**
 * The record log of a persisted simulated host (`DIR/log.jsonl`): one JSON object per line,
 * appended synchronously (one write(2) per record, `fs.appendFileSync`) as each state-changing
 * syscall is issued and as it completes, so a `kill -9` of vfioctl at any moment leaves a
 * prefix of whole lines (at worst one partial last line, which reading ignores).
 *
 * Record kinds (field `t`):
 *   boot   first line of every boot: boot count, RNG seed, wall-clock time, vfio_pci options
 *   clock  model time advanced by the wall time elapsed since the previous invocation
 *   spawn  a model process was created (pid, comm, kind cmd|holder, what a holder holds)
 *   call   a syscall was issued (id, pid, sc, arguments; fd numbers as the process saw them)
 *   done   the call with that id completed: ret, or errno, and `fd: true` when ret is a new fd
 *   fault  a fault-injection rule was added (`add`) or every rule cleared (`clear`)
 *
 * Secrets never appear here: see src/sim/secrets.ts.
 */
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import type { FaultSpec } from "../kernel/faults.js";

/** A secret's place in a buffer: bytes [off, off+len) are zero in the record; `ref` names the value in the token store. */
export interface SecretRef {
  off: number;
  len: number;
  ref: string;
}

export interface BootRec {
  t: "boot";
  v: 1;
  boot: number;
  seed: number;
  wallMs: number;
  /** vfio_pci parameters from DIR/root/etc/modprobe.d at this boot (over the host file's modules:) */
  modules: Record<string, boolean>;
}
export interface ClockRec {
  t: "clock";
  ms: number;
  /** the wall-clock time (ms since the epoch) the invocation started */
  wallMs: number;
}
export interface SpawnRec {
  t: "spawn";
  pid: number;
  comm: string;
  kind: "cmd" | "holder";
  /** for a holder: the device it holds */
  holds?: string;
}
export type CallBody =
  | { sc: "open"; path: string; flags: number }
  | { sc: "close"; fd: number }
  | { sc: "write"; fd: number; text?: string; hex?: string; secrets?: SecretRef[] }
  | { sc: "lseek"; fd: number; offset: number; whence: number }
  | { sc: "ioctl"; fd: number; req: number; int?: number; hex?: string; fds?: number[]; secrets?: SecretRef[] }
  | { sc: "eventfd"; initval: number; flags: number }
  | { sc: "exit" };
export type CallRec = { t: "call"; id: number; pid: number } & CallBody;
export interface DoneRec {
  t: "done";
  id: number;
  ret?: number;
  /** the returned number is a new fd of the process */
  fd?: true;
  errno?: string;
  /** a failure that was not an errno (a model error): its message */
  error?: string;
}
export interface FaultRec {
  t: "fault";
  add?: FaultSpec;
  clear?: true;
}
export type Rec = BootRec | ClockRec | SpawnRec | CallRec | DoneRec | FaultRec;

/** The state dir is not what this version of vfioctl wrote, or disagrees with a replay. */
export class SimStateError extends Error {
  constructor(dir: string, what: string) {
    super(`--state ${dir}: ${what}. The state dir is inconsistent; start over with: rm -r ${dir}`);
    this.name = "SimStateError";
  }
}

export class SimLog {
  constructor(
    readonly path: string,
    private readonly dir: string,
  ) {}

  append(r: Rec): void {
    appendFileSync(this.path, JSON.stringify(r) + "\n");
  }

  /** Every whole record, with its line number; a partial last line (a killed append) is ignored. */
  read(): { rec: Rec; line: number }[] {
    if (!existsSync(this.path)) throw new SimStateError(this.dir, `${this.path} is missing`);
    const text = readFileSync(this.path, "utf8");
    const lines = text.split("\n");
    const out: { rec: Rec; line: number }[] = [];
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      if (l === "") continue;
      let r: unknown;
      try {
        r = JSON.parse(l);
      } catch {
        // only the last line can be cut short by a killed append
        if (i === lines.length - 1) break;
        throw new SimStateError(this.dir, `${this.path} line ${i + 1} is not a JSON record`);
      }
      if (typeof r !== "object" || r === null || typeof (r as { t?: unknown }).t !== "string") {
        throw new SimStateError(this.dir, `${this.path} line ${i + 1}: expected a record with a "t" field`);
      }
      out.push({ rec: r as Rec, line: i + 1 });
    }
    if (!out.length || out[0]!.rec.t !== "boot") throw new SimStateError(this.dir, `${this.path} does not start with a boot record`);
    return out;
  }
}

/** A write's bytes as text when they are plain printable ASCII (readable logs), else hex. */
export function encodeData(b: Buffer): { text: string } | { hex: string } {
  for (const c of b) if (!(c === 0x0a || c === 0x09 || (c >= 0x20 && c < 0x7f))) return { hex: b.toString("hex") };
  return { text: b.toString("latin1") };
}

export function decodeData(r: { text?: string; hex?: string }): Buffer {
  return r.hex !== undefined ? Buffer.from(r.hex, "hex") : Buffer.from(r.text ?? "", "latin1");
}

/** One line describing a call record, for error messages. */
export function describeCall(r: CallRec): string {
  switch (r.sc) {
    case "open":
      return `pid ${r.pid} open ${r.path} (flags 0x${r.flags.toString(16)})`;
    case "close":
      return `pid ${r.pid} close fd ${r.fd}`;
    case "write":
      return `pid ${r.pid} write fd ${r.fd}${r.text !== undefined ? ` ${JSON.stringify(r.text)}` : ""}`;
    case "lseek":
      return `pid ${r.pid} lseek fd ${r.fd}`;
    case "ioctl":
      return `pid ${r.pid} ioctl fd ${r.fd} 0x${r.req.toString(16)}`;
    case "eventfd":
      return `pid ${r.pid} eventfd`;
    case "exit":
      return `pid ${r.pid} exit`;
  }
}
