/**
 * Reading the kernel log per operation through the seam: /dev/kmsg opened O_RDONLY|O_NONBLOCK,
 * `lseek(fd, 0, SEEK_END)` before the run, then drained until EAGAIN after each operation.
 * Each read returns one record, "prio,seq,usec,flags;text\n", followed by dictionary lines that
 * start with a space (SUBSYSTEM=…, DEVICE=…), which are ignored. Works the same on a real host and
 * on the model.
 */
import { O_NONBLOCK, O_RDONLY, SEEK_END, type Syscalls } from "../sys/syscalls.js";

export const LEVELS = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"] as const;

export interface LogLine {
  /** "err", "warn", "notice", "info", "debug" … */
  level: string;
  text: string;
}

/** Parse one /dev/kmsg record; null for continuation-only input. */
export function parseKmsgRecord(rec: string): (LogLine & { seq: number; usec: number }) | null {
  const first = rec.split("\n").find((l) => l.length > 0 && !l.startsWith(" "));
  if (!first) return null;
  const semi = first.indexOf(";");
  if (semi < 0) return null;
  const [prio, seq, usec] = first.slice(0, semi).split(",");
  const p = Number(prio);
  return {
    level: LEVELS[(Number.isFinite(p) ? p : 6) & 7]!,
    seq: Number(seq),
    usec: Number(usec),
    // /dev/kmsg escapes non-printable bytes as \xNN; a real newline inside a record is \x0a
    text: first.slice(semi + 1),
  };
}

export class KmsgReader {
  private fd = -1;
  /** records lost because the ring overwrote them (EPIPE) */
  lost = 0;
  constructor(private readonly sys: Syscalls) {}

  /** Open /dev/kmsg and skip everything logged so far. */
  async start(): Promise<void> {
    this.fd = await this.sys.open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
    await this.sys.lseek(this.fd, 0, SEEK_END);
  }

  /** Every record logged since the last drain. */
  async drain(): Promise<LogLine[]> {
    const out: LogLine[] = [];
    if (this.fd < 0) return out;
    for (;;) {
      let b: Buffer;
      try {
        b = await this.sys.read(this.fd, 8192);
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
      const r = parseKmsgRecord(b.toString("utf8"));
      if (r) out.push({ level: r.level, text: r.text });
    }
    return out;
  }

  async stop(): Promise<void> {
    if (this.fd >= 0) await this.sys.close(this.fd).catch(() => {});
    this.fd = -1;
  }
}
