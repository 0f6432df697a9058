/**
 * The kernel log of each scenario operation, as level name + text, from the shared /dev/kmsg
 * reader (src/sys/kmsg.ts): opened and moved to the end before the run, drained after each op.
 */
import { KMSG_LEVELS, KmsgReader as Reader, parseKmsg } from "../sys/kmsg.js";
import type { Syscalls } from "../sys/syscalls.js";

export const LEVELS = KMSG_LEVELS;

export interface LogLine {
  /** "err", "warn", "notice", "info", "debug" … */
  level: string;
  text: string;
}

/** Parse one /dev/kmsg record; null for continuation-only input. */
export function parseKmsgRecord(rec: string): (LogLine & { seq: number; usec: number }) | null {
  const r = parseKmsg(rec);
  return r && { level: KMSG_LEVELS[r.level]!, seq: r.seq, usec: r.tsUs, text: r.text };
}

export class KmsgReader {
  private r: Reader | null = null;
  constructor(private readonly sys: Syscalls) {}

  /** records lost because the ring overwrote them (EPIPE) */
  get lost(): number {
    return this.r?.lost ?? 0;
  }

  /** Open /dev/kmsg and skip everything logged so far. */
  async start(): Promise<void> {
    this.r = await Reader.open(this.sys);
  }

  /** Every record logged since the last drain. */
  async drain(): Promise<LogLine[]> {
    return this.r ? (await this.r.drain()).map((x) => ({ level: KMSG_LEVELS[x.level]!, text: x.text })) : [];
  }

  async stop(): Promise<void> {
    await this.r?.close();
    this.r = null;
  }
}
