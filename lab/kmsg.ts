/**
 * /dev/kmsg records, read through the seam (one read(2) per record, O_NONBLOCK, drained until EAGAIN).
 *
 * A record is `PRI,SEQ,TS_US,FLAGS[,…];TEXT` followed by continuation lines ` KEY=VALUE`
 * (Documentation/ABI/testing/dev-kmsg). PRI = facility * 8 + level.
 */
import { O_NONBLOCK, O_RDONLY, SEEK_END, type Syscalls } from "../src/sys/syscalls.js";
import { isErrno } from "../src/sys/errno.js";

export interface KmsgRecord {
  /** the record exactly as read, without the final newline (continuation lines included) */
  raw: string;
  facility: number;
  level: number;
  seq: number;
  tsUs: number;
  text: string;
  /** SUBSYSTEM=pci, DEVICE=+pci:0000:01:00.0, … */
  dict: Record<string, string>;
}

export function parseKmsg(raw: string): KmsgRecord {
  const lines = raw.replace(/\n$/, "").split("\n");
  const head = lines[0]!;
  const semi = head.indexOf(";");
  const [pri, seq, ts] = head.slice(0, semi).split(",");
  const p = Number(pri);
  const dict: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const m = /^ ([^=]+)=(.*)$/.exec(l);
    if (m) dict[m[1]!] = m[2]!;
  }
  return { raw: raw.replace(/\n$/, ""), facility: p >> 3, level: p & 7, seq: Number(seq), tsUs: Number(ts), text: head.slice(semi + 1), dict };
}

export class Kmsg {
  private constructor(
    private readonly sys: Syscalls,
    private readonly fd: number,
  ) {}

  /** Open /dev/kmsg; `fromStart` keeps the records already in the buffer (boot), else seeks to the end. */
  static async open(sys: Syscalls, fromStart = false): Promise<Kmsg> {
    const fd = await sys.open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
    if (!fromStart) await sys.lseek(fd, 0, SEEK_END);
    return new Kmsg(sys, fd);
  }

  /** Every record logged since the last drain. */
  async drain(): Promise<KmsgRecord[]> {
    const out: KmsgRecord[] = [];
    for (;;) {
      let b: Buffer;
      try {
        b = await this.sys.read(this.fd, 16384);
      } catch (e) {
        if (isErrno(e, "EAGAIN")) break;
        if (isErrno(e, "EPIPE")) continue; // records were overwritten: the next read resumes
        throw e;
      }
      if (b.length === 0) break;
      out.push(parseKmsg(b.toString("utf8")));
    }
    return out;
  }

  async close(): Promise<void> {
    await this.sys.close(this.fd);
  }
}
