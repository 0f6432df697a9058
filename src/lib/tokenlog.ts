/**
 * What the kernel log says about the last VF-token check of a device. vfio-pci logs one line per
 * refused open (pci_info_ratelimited, so lines can be missing): "VF token required to access
 * device" (no token given), "Incorrect VF token provided for device" (a wrong one), "VF token
 * incorrectly provided, …" (one where none is needed).
 *
 * The last line alone misleads: DPDK, when an open with `vf_token=` fails for any reason, retries
 * at once with the bare address, so a wrong token leaves "Incorrect VF token provided" and, in
 * the same second, "VF token required". Lines of one device less than a second apart are read as
 * one attempt: an attempt with "Incorrect" was a wrong token (and was retried without one when a
 * "required" follows), not a missing token.
 *
 * @example
 * ```ts
 * import { bootKernel, readTokenLog } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * (await readTokenLog(sys, "0000:af:10.0")).last; // null: nothing logged for it
 * ```
 */
import { KmsgReader, type KmsgRecord } from "../sys/kmsg.js";
import type { Syscalls } from "../sys/syscalls.js";

export type TokenLogKind = "required" | "incorrect" | "pf-not-vfio" | "not-pf-or-vf";

export interface TokenLogEvent {
  kind: TokenLogKind;
  /** microseconds since boot (the /dev/kmsg timestamp) */
  tsUs: number;
  seq: number;
  text: string;
}

export interface TokenLogAttempt {
  /** no-token: only "required"; wrong-token: "Incorrect" (then maybe "required": retried without); not-needed: a token where none applies */
  verdict: "no-token" | "wrong-token" | "not-needed";
  /** a "required" line followed the refusal of a token: the consumer retried without it (DPDK does) */
  retriedWithout: boolean;
  events: TokenLogEvent[];
  /** the reading in words, quoting the lines */
  why: string;
}

export interface TokenLogReading {
  /** the device's token lines, oldest first */
  events: TokenLogEvent[];
  /** the last attempt the lines show, or null when there are none */
  last: TokenLogAttempt | null;
  /** false when /dev/kmsg could not be read (no privilege, dmesg_restrict) */
  readable: boolean;
}

const KINDS: [RegExp, TokenLogKind][] = [
  [/: VF token required to access device$/, "required"],
  [/: Incorrect VF token provided for device$/, "incorrect"],
  [/: VF token incorrectly provided, PF not bound to vfio-pci$/, "pf-not-vfio"],
  [/: VF token incorrectly provided, not a PF or VF$/, "not-pf-or-vf"],
];

/** Lines of one device closer than this are one attempt (DPDK's retry follows at once). */
export const ATTEMPT_WINDOW_US = 1_000_000;

const secs = (us: number) => `[${(us / 1e6).toFixed(6)}]`;

/** Read a device's token lines from records (any driver prefix: "vfio-pci BDF: …"). */
export function tokenEvents(records: KmsgRecord[], bdf: string): TokenLogEvent[] {
  const out: TokenLogEvent[] = [];
  for (const r of records) {
    const i = r.text.indexOf(` ${bdf}: `);
    if (i < 0 || r.text.slice(0, i).includes(" ")) continue; // "<driver> <BDF>: <message>"
    const k = KINDS.find(([re]) => re.test(r.text));
    if (k) out.push({ kind: k[1], tsUs: r.tsUs, seq: r.seq, text: r.text });
  }
  return out;
}

/** Group events into attempts (gaps under {@link ATTEMPT_WINDOW_US}) and read the last one. */
export function lastAttempt(events: TokenLogEvent[]): TokenLogAttempt | null {
  if (!events.length) return null;
  let start = events.length - 1;
  while (start > 0 && events[start]!.tsUs - events[start - 1]!.tsUs < ATTEMPT_WINDOW_US) start--;
  const ev = events.slice(start);
  const quote = (e: TokenLogEvent) => `${secs(e.tsUs)} "${e.text}"`;
  const inc = ev.findIndex((e) => e.kind === "incorrect");
  if (inc >= 0) {
    const retried = ev.slice(inc + 1).some((e) => e.kind === "required");
    return {
      verdict: "wrong-token",
      retriedWithout: retried,
      events: ev,
      why: retried
        ? `the kernel log shows ${quote(ev[inc]!)} then ${quote(ev.slice(inc + 1).find((e) => e.kind === "required")!)}: a wrong token, then the same open retried without any (DPDK retries that way); the last line is the retry, not the cause`
        : `the kernel log shows ${quote(ev[inc]!)}: the token given is not the PF's`,
    };
  }
  const nn = ev.find((e) => e.kind === "pf-not-vfio" || e.kind === "not-pf-or-vf");
  if (nn) return { verdict: "not-needed", retriedWithout: false, events: ev, why: `the kernel log shows ${quote(nn)}: a token was given where none is needed (EINVAL)` };
  return { verdict: "no-token", retriedWithout: false, events: ev, why: `the kernel log shows ${quote(ev[ev.length - 1]!)} with no "Incorrect VF token" line before it: the open carried no token` };
}

/** Read the whole kernel log ring for `bdf`'s token lines. Best effort: unreadable → readable false. */
export async function readTokenLog(sys: Syscalls, bdf: string): Promise<TokenLogReading> {
  let r: KmsgReader;
  try {
    r = await KmsgReader.open(sys, true);
  } catch {
    return { events: [], last: null, readable: false };
  }
  try {
    const events = tokenEvents(await r.drain(), bdf);
    return { events, last: lastAttempt(events), readable: true };
  } catch {
    return { events: [], last: null, readable: false };
  } finally {
    await r.close();
  }
}
