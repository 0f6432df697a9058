/**
 * /dev/kmsg through the seam: one read(2) per record, opened O_RDONLY|O_NONBLOCK, drained until
 * EAGAIN. A record is `PRI,SEQ,TS_US,FLAGS[,…];TEXT` followed by continuation lines ` KEY=VALUE`
 * (Documentation/ABI/testing/dev-kmsg); PRI = facility·8 + level. The same reader serves the
 * library (log lines of a bind or an sriov change), the scenario runner and the lab's recorder,
 * on a real host and on the kernel model alike.
 *
 * @example
 * ```ts
 * import { bootKernel, KmsgReader } from "vfioctl";
 * const sys = (await bootKernel()).spawn("dmesg");
 * const r = await KmsgReader.open(sys);          // skips what is already logged
 * // … an operation …
 * for (const rec of await r.drain()) console.log(rec.level, rec.text);
 * await r.close();
 * ```
 */
import { O_NONBLOCK, O_RDONLY, SEEK_END, type Syscalls } from "./syscalls.js";

export const KMSG_LEVELS = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"] as const;

export interface KmsgRecord {
  /** the record exactly as read, without the final newline (continuation lines included) */
  raw: string;
  facility: number;
  /** 0 (emerg) … 7 (debug); KMSG_LEVELS[level] names it */
  level: number;
  seq: number;
  tsUs: number;
  /** the message (non-printable bytes stay escaped as \xNN, as /dev/kmsg shows them) */
  text: string;
  /** SUBSYSTEM=pci, DEVICE=+pci:0000:01:00.0, … */
  dict: Record<string, string>;
}

/** Parse one record; null when it has no `PRI,…;TEXT` line. */
export function parseKmsg(raw: string): KmsgRecord | null {
  const lines = raw.replace(/\n$/, "").split("\n");
  const head = lines.find((l) => l.length > 0 && !l.startsWith(" "));
  const semi = head ? head.indexOf(";") : -1;
  if (!head || semi < 0) return null;
  const [pri, seq, ts] = head.slice(0, semi).split(",");
  const p = Number(pri);
  const prio = Number.isFinite(p) ? p : 6;
  const dict: Record<string, string> = {};
  for (const l of lines) {
    const m = /^ ([^=]+)=(.*)$/.exec(l);
    if (m) dict[m[1]!] = m[2]!;
  }
  return { raw: raw.replace(/\n$/, ""), facility: prio >> 3, level: prio & 7, seq: Number(seq), tsUs: Number(ts), text: head.slice(semi + 1), dict };
}

export class KmsgReader {
  /** records lost because the ring overwrote them before they were read (EPIPE) */
  lost = 0;
  private constructor(
    private readonly sys: Syscalls,
    private fd: number,
  ) {}

  /** Open /dev/kmsg; `fromStart` keeps the records already in the buffer (boot), else skips them. */
  static async open(sys: Syscalls, fromStart = false): Promise<KmsgReader> {
    const fd = await sys.open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
    try {
      if (!fromStart) await sys.lseek(fd, 0, SEEK_END);
    } catch (e) {
      await sys.close(fd).catch(() => {});
      throw e;
    }
    return new KmsgReader(sys, fd);
  }

  /** Every record logged since the last drain (at most `max`). */
  async drain(max = Infinity): Promise<KmsgRecord[]> {
    const out: KmsgRecord[] = [];
    while (this.fd >= 0 && out.length < max) {
      let b: Buffer;
      try {
        b = await this.sys.read(this.fd, 16384);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "EAGAIN") break;
        if (code === "EPIPE") {
          this.lost++;
          continue;
        }
        throw e;
      }
      if (b.length === 0) break;
      const r = parseKmsg(b.toString("utf8"));
      if (r) out.push(r);
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.fd >= 0) await this.sys.close(this.fd).catch(() => {});
    this.fd = -1;
  }
}
