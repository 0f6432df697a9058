/**
 * The output layer between the commands and the terminal: every command writes through the
 * `Output` it is given, and this layer decides, once, how that text looks:
 *   - UTF-8 symbols (✓ ✗ → … ├─) only when standard output is a terminal and the locale
 *     (LC_ALL, else LC_CTYPE, else LANG) is UTF-8; otherwise their ASCII equivalents;
 *   - colour only on a terminal, never with NO_COLOR set or TERM=dumb;
 *   - --quiet drops informational lines (the kernel log echo, notes);
 *   - --json output is left exactly as the command printed it.
 */
import type { Output } from "./context.js";

/** ASCII equivalents of the symbols vfioctl prints. */
const ASCII: ReadonlyArray<readonly [string, string]> = [
  ["├─", "|-"],
  ["└─", "`-"],
  ["│", "|"],
  ["─", "-"],
  ["✓", "ok"],
  ["✗", "FAIL"],
  ["→", "->"],
  ["←", "<-"],
  ["↶", "undo"],
  ["…", "..."],
  ["—", "--"],
  ["–", "-"],
  ["−", "-"],
  ["·", "-"],
  ["●", "*"],
  ["○", "o"],
  ["≥", ">="],
  ["≤", "<="],
  ["≠", "!="],
  ["≈", "~"],
  ["×", "x"],
  ["²", "^2"],
  ["§", "S."],
];

/** The text with every non-ASCII character replaced by an ASCII equivalent. */
export function toAscii(s: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(s)) return s;
  let t = s;
  for (const [u, a] of ASCII) t = t.split(u).join(a);
  // accented letters lose their accent; anything else left becomes "?"
  // eslint-disable-next-line no-control-regex
  return t.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").replace(/[^\x00-\x7f]/g, "?");
}

/** Whether the locale the environment names is UTF-8 (POSIX order: LC_ALL, LC_CTYPE, LANG). */
export function localeIsUtf8(env: Record<string, string | undefined>): boolean {
  const l = env.LC_ALL || env.LC_CTYPE || env.LANG || "";
  return /utf-?8/i.test(l);
}

export interface OutputStyle {
  utf8: boolean;
  color: boolean;
}

/** What the output may use, from what the io says about itself and the environment. */
export function outputStyle(io: Pick<Output, "isTTY" | "utf8" | "color">, env: Record<string, string | undefined>): OutputStyle {
  const tty = io.isTTY === true;
  const utf8 = io.utf8 ?? (tty && localeIsUtf8(env));
  const color = io.color ?? (tty && env.NO_COLOR === undefined && env.TERM !== "dumb");
  return { utf8, color: color && env.NO_COLOR === undefined };
}

const SGR = { red: "\x1b[31m", green: "\x1b[32m", yellow: "\x1b[33m", bold: "\x1b[1m", reset: "\x1b[0m" };

function colorize(s: string): string {
  return s
    .replace(/(✓|(?<![A-Za-z])ok(?= ))/g, `${SGR.green}$1${SGR.reset}`)
    .replace(/(✗|\bFAIL\b|\bBLOCKED\b|\bNOT MATCHED\b)/g, `${SGR.red}$1${SGR.reset}`)
    .replace(/^(warning:|note:)/gm, `${SGR.yellow}$1${SGR.reset}`)
    .replace(/^(PF|Other devices:|Processes holding \/dev\/vfio:)/gm, `${SGR.bold}$1${SGR.reset}`)
    .replace(/^(vfioctl(?: [a-z-]+)*: )/gm, `${SGR.bold}$1${SGR.reset}`);
}

/** Lines --quiet leaves out: the kernel log echo and notes (results, warnings and errors stay). */
const INFO = /^\s*(kernel|note): /;

const quietFilter = (s: string) =>
  s
    .split("\n")
    .filter((l) => !INFO.test(l))
    .join("\n");

/** Wrap the io a command writes to with the conventions above. */
export function styledOutput(io: Output, env: Record<string, string | undefined>, opts: { json: boolean; quiet: boolean }): Output {
  const style = outputStyle(io, env);
  const text = (s: string, stream: "out" | "err") => {
    let t = s;
    if (opts.json && stream === "out") return t;
    if (opts.quiet) {
      t = quietFilter(t);
      if (!t.trim() && s.trim()) return null;
    }
    if (!style.utf8) t = toAscii(t);
    if (style.color) t = colorize(t);
    return t;
  };
  const out: Output = {
    out: (s) => {
      const t = text(s, "out");
      if (t !== null) io.out(t);
    },
    err: (s) => {
      const t = text(s, "err");
      if (t !== null) io.err(t);
    },
    info: (s) => {
      if (!opts.quiet) out.err(s);
    },
    utf8: style.utf8,
    color: style.color,
  };
  if (io.isTTY !== undefined) out.isTTY = io.isTTY;
  // forwarded when read, not copied: reading it may make process.stdin's stream (main's stdIo)
  if ("stdinTTY" in io) Object.defineProperty(out, "stdinTTY", { get: () => io.stdinTTY, enumerable: true });
  if (io.secret) out.secret = io.secret.bind(io);
  return out;
}
