/**
 * kernel/printk: the kernel log ring as /dev/kmsg shows it, dev_printk prefixes and
 * lib/ratelimit.c (interval 5 s, burst 10 per call site, "%s: %d callbacks suppressed").
 */
import type { Clock } from "./clock.js";

export const KERN_ERR = 3;
export const KERN_WARNING = 4;
export const KERN_NOTICE = 5;
export const KERN_INFO = 6;
export const KERN_DEBUG = 7;


export interface LogRecord {
  seq: number;
  level: number;
  /** microseconds since boot (model clock) */
  tsUsec: number;
  text: string;
  /** dev_printk dictionary: SUBSYSTEM and DEVICE (e.g. "pci", "+pci:0000:01:00.0") */
  subsystem?: string;
  device?: string;
}

/** Something dev_printk can name: a driver-or-bus name plus the device name. */
export interface PrintkDevice {
  readonly name: string;
  /** dev_driver_string(): the bound driver's name, else the bus name ("pci"). */
  driverString(): string;
}

interface RateState {
  begin: number;
  printed: number;
  missed: number;
}

export class KernelLog {
  readonly records: LogRecord[] = [];
  private seq = 0;
  private rate = new Map<string, RateState>();
  /** The ring keeps at least the newest `capacity` records (at most 1/8 more; keeps long runs bounded). */
  capacity = 1 << 16;
  private listeners: (() => void)[] = [];

  constructor(private readonly clock: Clock) {}

  get nextSeq(): number {
    return this.seq;
  }

  printk(level: number, text: string, dev?: PrintkDevice): LogRecord {
    const r: LogRecord = {
      seq: this.seq++,
      level,
      tsUsec: Number(this.clock.now() / 1000n),
      text,
    };
    if (dev) {
      r.subsystem = "pci";
      r.device = `+pci:${dev.name}`;
    }
    this.records.push(r);
    // Drop the oldest records in batches (down to `capacity` once it is exceeded by 1/8): a
    // splice per record made every printk O(capacity) once the ring was full.
    if (this.records.length > this.capacity + (this.capacity >> 3)) this.records.splice(0, this.records.length - this.capacity);
    const l = this.listeners;
    this.listeners = [];
    for (const f of l) f();
    return r;
  }

  /** dev_printk: "<driver or bus> <device>: <msg>". */
  dev(level: number, dev: PrintkDevice, msg: string): LogRecord {
    return this.printk(level, `${dev.driverString()} ${dev.name}: ${msg}`, dev);
  }

  /**
   * dev_*_ratelimited: each call site (`site`, the containing kernel function) has its own state.
   * Returns false when the message was suppressed.
   */
  devRatelimited(level: number, dev: PrintkDevice, msg: string, site: string, interval = 5000, burst = 10): boolean {
    if (!this.ratelimit(site, interval, burst)) return false;
    this.dev(level, dev, msg);
    return true;
  }

  /**
   * lib/ratelimit.c ___ratelimit. `site` names one call site ("func#n"); the suppression line
   * names the function (the part before '#'), as __ratelimit passes __func__. The defaults
   * (DEFAULT_RATELIMIT_INTERVAL 5 s, DEFAULT_RATELIMIT_BURST 10) are the caller's,
   * {@link devRatelimited}'s.
   */
  ratelimit(site: string, interval: number, burst: number): boolean {
    const now = this.clock.nowMs();
    let rs = this.rate.get(site);
    if (!rs) {
      rs = { begin: now, printed: 0, missed: 0 };
      this.rate.set(site, rs);
    }
    if (now - rs.begin > interval) {
      if (rs.missed) {
        this.printk(KERN_WARNING, `${site.split("#")[0]}: ${rs.missed} callbacks suppressed`);
        rs.missed = 0;
      }
      rs.begin = now;
      rs.printed = 0;
    }
    if (burst > rs.printed) {
      rs.printed++;
      return true;
    }
    rs.missed++;
    return false;
  }

  /** Records with seq ≥ from. */
  since(from: number): LogRecord[] {
    const first = this.records[0]?.seq ?? this.seq;
    return this.records.slice(Math.max(0, from - first));
  }

  /** Resolves when a new record is logged. */
  whenNew(): Promise<void> {
    return new Promise((r) => this.listeners.push(r));
  }

  /** The /dev/kmsg line for a record: "prio,seq,usec,flags;text\n" plus dictionary lines. */
  static kmsgLine(r: LogRecord): string {
    let s = `${r.level},${r.seq},${r.tsUsec},-;${kmsgEscape(r.text)}\n`;
    if (r.subsystem) s += ` SUBSYSTEM=${kmsgEscape(r.subsystem)}\n`;
    if (r.device) s += ` DEVICE=${kmsgEscape(r.device)}\n`;
    return s;
  }
}

/**
 * kernel/printk/printk.c (msg_add_ext_text): /dev/kmsg writes a control character, a byte ≥ 127
 * and the backslash itself as a hex escape (backslash, x, two digits), so the ACPI line naming
 * the link "\_SB_.GSIA" reads "\x5c_SB_.GSIA" there (the lab's kernels do so).
 */
export function kmsgEscape(text: string): string {
  if (!/[\x00-\x1f\x7f-\uffff\\]/.test(text)) return text;
  let out = "";
  for (const b of Buffer.from(text, "utf8")) out += b < 0x20 || b >= 0x7f || b === 0x5c ? `\\x${b.toString(16).padStart(2, "0")}` : String.fromCharCode(b);
  return out;
}
