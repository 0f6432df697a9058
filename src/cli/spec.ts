/**
 * One definition per command, and everything made from it: argument parsing (Node's
 * `util.parseArgs` does the tokenising), the `--help` text, the global usage, shell completion
 * (./completion.ts) and the man page (./man.ts). A command adds an option by adding one line to
 * its `options`.
 */
import { parseArgs as nodeParseArgs } from "node:util";
import { VfioctlError } from "../lib/errors.js";

/** What a shell may complete a positional or an option value with. */
export type CompletionKind = "bdf" | "pf" | "vf" | "driver" | "file" | "dir" | "command" | "none" | { values: readonly string[] };

export interface OptionSpec {
  /** long name without the dashes */
  name: string;
  /** one letter, without the dash */
  short?: string;
  type: "boolean" | "string";
  /** may be given more than once (every value is kept) */
  multiple?: boolean;
  /** the value's name in help (string options) */
  value?: string;
  description: string;
  complete?: CompletionKind;
  /** accepted, left out of help and completion */
  hidden?: boolean;
}

export interface PositionalSpec {
  name: string;
  complete?: CompletionKind;
  optional?: boolean;
  variadic?: boolean;
}

/** A subcommand (`token set`, `sim hold`): its own positionals and options. */
export interface SubcommandSpec {
  name: string;
  summary: string;
  positionals?: PositionalSpec[];
  options?: OptionSpec[];
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** usage lines after "vfioctl " (generated from positionals and options when absent) */
  usage?: string[];
  /** what the command does: the body of --help */
  description: string;
  positionals?: PositionalSpec[];
  options?: OptionSpec[];
  subcommands?: SubcommandSpec[];
  /** exit code → meaning; 2 (bad usage) is added to every command */
  exits: Readonly<Record<number, string>>;
  /** example command lines (and "# comment" lines) */
  examples: string[];
  /** not listed in usage, help or completion (`__complete`) */
  hidden?: boolean;
}

/** The one exit-code rule every command follows (docs/cli.md). */
export const EXIT_RULE: ReadonlyArray<readonly [number, string]> = [
  [0, "did it, would work, or found nothing wrong"],
  [1, "the answer is no: explain: the operation would fail; token verify: wrong token; audit: findings; status: drift; plan: there are steps; sim run: an expectation failed; bind/unbind/sriov: this host uses the device (--force)"],
  [2, "bad usage or bad input, or a changing command on a copied tree (--root): nothing was changed"],
  [3, "Linux refused an operation (the errno is shown)"],
  [4, "a write Linux blocks stayed blocked past --timeout"],
  [5, "failed half way and something is left behind (apply: the rollback did not complete)"],
  [70, "internal error: a bug in vfioctl (the stack trace is printed; please report it)"],
];

export const USAGE_EXIT = "bad usage or bad input (nothing changed)";

/** Options every command takes (parsed before the command, wherever they appear). */
export const GLOBAL_OPTIONS: OptionSpec[] = [
  { name: "sim", type: "boolean", value: "HOSTFILE", description: "run on the kernel model; HOSTFILE (the next argument when it names a .yaml, .yml or .json file) is a host description; the built-in default host when omitted", complete: "file" },
  { name: "state", type: "string", value: "DIR", description: "with --sim: keep the simulated host in DIR between invocations (its kernel, long-lived holders, and its files under DIR/root)", complete: "dir" },
  { name: "profile", type: "string", value: "VERSION", description: "kernel for --sim: any version (6.17.1, 6.12.117+deb13-amd64, 6.8.0-51-generic) or the lab's Debian kernels 6.1 (default) / 6.12", complete: { values: ["6.1", "6.12", "6.17.1", "6.19"] } },
  { name: "root", type: "string", value: "DIR", description: "real backend against a directory tree (e.g. a copied /sys); not with --sim", complete: "dir" },
  { name: "json", type: "boolean", description: "machine-readable output (errors too: a vfioctl.error/1 object on stdout)" },
  { name: "quiet", short: "q", type: "boolean", description: "print only errors and the essential result" },
  { name: "timeout", type: "string", value: "MS", description: "how long to wait for writes Linux may block (default 5000)", complete: "none" },
  { name: "help", short: "h", type: "boolean", description: "this help; 'vfioctl help COMMAND' for a command's help" },
  { name: "version", type: "boolean", description: "print vfioctl's version" },
];

/** Shared option definitions. */
export const OPT = {
  tokenFile: { name: "token-file", type: "string", value: "F", description: "read the VF token from file F (mode 0600; no links)", complete: "file" },
  tokenStdin: { name: "token-stdin", type: "boolean", description: "read the VF token from standard input (prompted for, without echo, on a terminal)" },
  token: { name: "token", type: "string", value: "UUID", description: "the VF token on the command line (warned: every local user can read it in /proc/PID/cmdline)", complete: "none" },
  config: { name: "config", type: "string", value: "FILE", description: "the host config (default /etc/vfioctl/host.yaml; with --sim, under the simulated host's root)", complete: "file" },
  dryRun: { name: "dry-run", type: "boolean", description: "print what would be done and change nothing" },
  showToken: { name: "show-token", type: "boolean", description: "print the token itself (it is never printed otherwise)" },
} satisfies Record<string, OptionSpec>;

export interface ParsedArgs {
  positional: string[];
  /** the last value of each option given (true for a boolean) */
  flags: Map<string, string | true>;
  /** every value of each option given, in order */
  lists: Map<string, string[]>;
}

const optionList = (options: readonly OptionSpec[]) => {
  const shown = options.filter((o) => !o.hidden);
  return shown.length ? shown.map((o) => (o.type === "string" ? `--${o.name} ${o.value ?? "V"}` : `--${o.name}`)).join(", ") : "no options";
};

/** A negative number is a value (sriov BDF -1 is refused by the command, not by the parser). */
const NEGATIVE = /^-\d/;

/**
 * Parse a command's arguments against the options it declares: `--x V`, `--x=V`, `-x V`, `--`,
 * booleans without a value. Unknown options and missing values are bad input (exit 2), naming
 * what was expected and what was found.
 */
export function parseOptions(args: readonly string[], options: readonly OptionSpec[] = [], where = ""): ParsedArgs {
  const config: Record<string, { type: "boolean" | "string"; short?: string; multiple?: boolean }> = {};
  for (const o of options) config[o.name] = { type: o.type, ...(o.short ? { short: o.short } : {}), multiple: true };
  const { tokens } = nodeParseArgs({ args: [...args], options: config, strict: false, allowPositionals: true, tokens: true });
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  const lists = new Map<string, string[]>();
  const prefix = where ? `${where}: ` : "";
  let seen = -1;
  for (const t of tokens) {
    if (t.kind === "positional") positional.push(t.value);
    else if (t.kind === "option-terminator") continue;
    else {
      const raw = args[t.index]!;
      if (NEGATIVE.test(raw)) {
        if (t.index !== seen) positional.push(raw);
        seen = t.index;
        continue;
      }
      const o = options.find((x) => x.name === t.name);
      if (!o) throw new VfioctlError("BAD_INPUT", `${prefix}unknown option ${JSON.stringify(t.rawName.startsWith("--") ? raw.split("=")[0] : t.rawName)}: expected ${optionList(options)}`);
      if (o.type === "string") {
        if (t.value === undefined) throw new VfioctlError("BAD_INPUT", `${prefix}--${o.name}: expected a value (${o.value ?? "V"}), got nothing`);
        flags.set(o.name, t.value);
        lists.set(o.name, [...(lists.get(o.name) ?? []), t.value]);
      } else {
        if (t.inlineValue) throw new VfioctlError("BAD_INPUT", `${prefix}--${o.name}: takes no value, got ${JSON.stringify(raw)}`);
        flags.set(o.name, true);
      }
    }
  }
  return { positional, flags, lists };
}

const wrap = (text: string, width: number, indent: number): string[] => {
  const out: string[] = [];
  let line = "";
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + w.length > width - indent) {
      out.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) out.push(line);
  return out;
};

export function optionLabel(o: OptionSpec): string {
  const v = o.type === "string" ? ` ${o.value ?? "V"}` : o.value ? ` [${o.value}]` : "";
  return `${o.short ? `-${o.short}, ` : ""}--${o.name}${v}`;
}

/** "  --x V   description" rows, wrapped at 96 columns. */
export function optionRows(options: readonly OptionSpec[]): string[] {
  const shown = options.filter((o) => !o.hidden);
  const w = Math.min(26, Math.max(...shown.map((o) => optionLabel(o).length)));
  const out: string[] = [];
  for (const o of shown) {
    const label = optionLabel(o);
    const lines = wrap(o.description, 96, w + 4);
    if (label.length > w) {
      out.push(`  ${label}`);
      out.push(...lines.map((l) => `  ${" ".repeat(w + 2)}${l}`));
    } else lines.forEach((l, i) => out.push(`  ${(i === 0 ? label : "").padEnd(w)}  ${l}`));
  }
  return out;
}

const positionalText = (p: PositionalSpec) => {
  const n = p.variadic ? `<${p.name}>...` : `<${p.name}>`;
  return p.optional ? `[${n}]` : n;
};

/** The usage lines of a command, generated unless the definition gives them. */
export function usageLines(c: CommandSpec): string[] {
  if (c.usage) return c.usage.map((u) => `vfioctl ${u}`);
  const subs = c.subcommands?.length ? c.subcommands : [{ name: "", summary: "", positionals: c.positionals, options: c.options }];
  return subs.map((s) => {
    const opts = (s.options ?? []).filter((o) => !o.hidden).map((o) => `[${optionLabel(o).replace(/^-., /, "")}]${o.multiple ? "..." : ""}`);
    return ["vfioctl", c.name, s.name, ...(s.positionals ?? []).map(positionalText), ...opts].filter(Boolean).join(" ");
  });
}

/** Every option of a command and its subcommands, once, with the subcommands that take it. */
export function allOptions(c: CommandSpec): { option: OptionSpec; subs: string[] }[] {
  const out: { option: OptionSpec; subs: string[] }[] = [];
  for (const o of c.options ?? []) out.push({ option: o, subs: [] });
  for (const s of c.subcommands ?? [])
    for (const o of s.options ?? []) {
      const e = out.find((x) => x.option.name === o.name);
      if (e) e.subs.push(s.name);
      else out.push({ option: o, subs: [s.name] });
    }
  return out;
}

/** The exit codes a command lists: its own, and 2 for bad usage. */
export function exitRows(c: CommandSpec): [number, string][] {
  const m = new Map<number, string>(Object.entries(c.exits).map(([k, v]) => [Number(k), v]));
  if (!m.has(2)) m.set(2, USAGE_EXIT);
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

/** The command's --help text. */
export function helpText(c: CommandSpec): string {
  const usage = usageLines(c);
  const out: string[] = [`usage: ${usage[0]}`, ...usage.slice(1).map((u) => `       ${u}`), "", c.description.replace(/\s+$/, "")];
  const opts = allOptions(c).filter((x) => !x.option.hidden);
  if (opts.length) {
    out.push("", "Options:");
    out.push(...optionRows(opts.map((x) => (x.subs.length && c.subcommands && x.subs.length < c.subcommands.length ? { ...x.option, description: `${x.option.description} (${x.subs.join(", ")})` } : x.option))));
  }
  out.push("", "Exit codes:");
  for (const [code, text] of exitRows(c)) out.push(...wrap(text, 96, 8).map((l, i) => `  ${i === 0 ? String(code).padStart(2) : "  "}  ${l}`));
  out.push("", "Global options (vfioctl --help): --sim [HOSTFILE], --state DIR, --profile V, --root DIR, --json, -q/--quiet, --timeout MS");
  if (c.examples.length) {
    out.push("", "Examples:");
    out.push(...c.examples.map((e) => `  ${e}`));
  }
  return out.join("\n");
}

/** The global usage: synopsis, global options, commands, exit codes. */
export function usageText(commands: readonly CommandSpec[]): string {
  const shown = commands.filter((c) => !c.hidden);
  return [
    "usage: vfioctl [--sim [HOSTFILE] [--state DIR]] [--profile VERSION] [--root DIR] [--json] [-q] [--timeout MS] <command> [args]",
    "",
    "Inspect and manage vfio-pci SR-IOV physical functions, their virtual functions and VF tokens,",
    "on this Linux host or on the built-in kernel model (--sim).",
    "",
    "Global options:",
    ...optionRows(GLOBAL_OPTIONS),
    "",
    "Commands:",
    ...shown.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    `  ${"completion".padEnd(10)} print a bash, zsh or fish completion script (vfioctl completion bash)`,
    `  ${"man".padEnd(10)} print the manual page (roff; vfioctl man | man -l -)`,
    "",
    "Exit codes:",
    ...EXIT_RULE.map(([c, t]) => `  ${String(c).padStart(2)}  ${t}`),
    "",
  ].join("\n");
}

/** A definition without its name and summary (declared apart from `register`). */
export type CommandBody = Omit<CommandSpec, "name" | "summary">;
