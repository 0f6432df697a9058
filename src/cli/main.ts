/**
 * The `vfioctl` command: global options, backend selection (real host or `--sim` model) and
 * dispatch to the subcommands registered in ./commands. The options, the usage and every
 * command's help come from the definitions (./spec.ts).
 */
import { existsSync, fstatSync, readFileSync, writeSync } from "node:fs";
import { parseArgs as nodeParseArgs } from "node:util";
import { COMMANDS } from "./commands/index.js";
import { allCommands, COMMAND_MODULES, loadCommand } from "./commands/modules.js";
import { EXIT, type Command, type Context, type GlobalOptions, type Output } from "./context.js";
import { GLOBAL_OPTIONS, usageText } from "./spec.js";
import { styledOutput } from "./output.js";
import type { Syscalls } from "../sys/syscalls.js";
import type { Kernel } from "../kernel/kernel.js";
import { hostFiles, type HostFiles } from "../sys/hostfs.js";
import { isKernelVersion } from "../kernel/versions.js";

export interface MainIo extends Output {
  env?: Record<string, string | undefined>;
  stdin?: () => Promise<string>;
}

/** What went wrong writing standard output (ENOSPC on /dev/full, EIO …); EPIPE is not an error. */
let stdoutError: NodeJS.ErrnoException | null = null;
let stdoutClosed = false;

/**
 * Whether standard output is written with write(2) on fd 1 rather than through process.stdout:
 * when it is a pipe, a socket (what Node's child_process gives a child) or a regular file.
 * process.stdout of a pipe or socket is a net.Socket (net and the stream modules loaded: ~3 ms
 * of a `--sim list`) that libuv writes synchronously on Linux, and of a file a SyncWriteStream
 * that calls writeSync: the bytes, their order and the errors are the same (EPIPE and ENOSPC are
 * thrown here instead of emitted). A terminal or a character device (/dev/null, /dev/full) goes
 * through process.stdout; so does everything after a write(2) that would block (EAGAIN: a pipe
 * someone made non-blocking), which libuv then waits out.
 */
let stdoutDirect: boolean | undefined;

function directStdout(): boolean {
  if (stdoutDirect === undefined) {
    try {
      const st = fstatSync(1);
      stdoutDirect = st.isFIFO() || st.isSocket() || st.isFile();
    } catch {
      stdoutDirect = false;
    }
  }
  return stdoutDirect;
}

let stdoutStream: NodeJS.WriteStream | undefined;

/** process.stdout, with cli()'s error listener (EPIPE ends the output, anything else is reported). */
function stdoutStreamed(): NodeJS.WriteStream {
  if (!stdoutStream) {
    stdoutStream = process.stdout;
    stdoutStream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") stdoutClosed = true;
      else stdoutError ??= e;
    });
  }
  return stdoutStream;
}

function writeOut(s: string): void {
  if (stdoutClosed || stdoutError) return;
  const text = s.endsWith("\n") ? s : s + "\n";
  try {
    if (directStdout()) {
      const b = Buffer.from(text, "utf8");
      for (let off = 0; off < b.length; ) {
        try {
          off += writeSync(1, b, off);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
          stdoutDirect = false;
          stdoutStreamed().write(b.subarray(off));
          return;
        }
      }
      return;
    }
    // a file (stdout redirected) is written synchronously: its errors are thrown here
    stdoutStreamed().write(text);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EPIPE") stdoutClosed = true;
    else stdoutError ??= e as NodeJS.ErrnoException;
  }
}

/** Read one line from the terminal without echoing it (the prompt goes to stderr). */
function readSecret(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    let line = "";
    const wasRaw = stdin.isRaw;
    // echo off before the prompt appears: nothing typed after it is shown
    stdin.setRawMode(true);
    process.stderr.write(prompt);
    stdin.setEncoding("utf8");
    stdin.resume();
    const done = (e?: Error) => {
      stdin.setRawMode(wasRaw);
      stdin.pause();
      stdin.removeListener("data", onData);
      process.stderr.write("\n");
      if (e) reject(e);
      else resolve(line + "\n");
    };
    const onData = (d: string) => {
      for (const ch of d) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003") return done(Object.assign(new Error("interrupted"), { code: "EINTR" }));
        if (ch === "\u0004") return done();
        if (ch === "\u007f" || ch === "\b") line = line.slice(0, -1);
        else if (ch === "\u0015") line = "";
        else if (ch >= " ") line += ch;
      }
    };
    stdin.on("data", onData);
  });
}

const stdIo: MainIo = {
  out: writeOut,
  err: (s) => process.stderr.write(s.endsWith("\n") ? s : s + "\n"),
  // a pipe, a socket or a file is no terminal: process.stdout (and its stream) is not made to ask
  isTTY: directStdout() ? false : process.stdout.isTTY === true,
  // read when asked (token set at a terminal): process.stdin makes its stream, ~3 ms that no other command needs
  get stdinTTY() {
    return process.stdin.isTTY === true;
  },
  secret: readSecret,
};

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    if (process.stdin.isTTY) return resolve("");
    let s = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (d) => (s += d));
    process.stdin.on("end", () => resolve(s));
    process.stdin.on("error", reject);
  });
}

/** The names `vfioctl NAME` accepts besides the commands' own. */
const BUILTINS = ["help", "version", "completion", "man", "__complete"];

/** The usage text, listing the commands registered so far (every command once ./commands/all.js is loaded). */
export function usage(commands: readonly Command[] = COMMANDS): string {
  return usageText(commands);
}

/** The usage text with every command (loads every command module). */
const fullUsage = async () => usage(await allCommands());

/** The host description extensions --sim takes. */
const HOST_FILE = /\.(ya?ml|json)$/i;

export interface GlobalParse {
  opts: GlobalOptions;
  rest: string[];
  error?: string;
  help?: boolean;
  version?: boolean;
}

/**
 * Parse the global options (anywhere before or after the command; util.parseArgs tokenises,
 * everything it does not know is left, in order, for the command); returns the rest.
 * --sim takes the next argument as its host description when it names a .yaml, .yml or .json
 * file; any other file name there is an error (it is not taken for a command).
 */
export function parseGlobal(argv: string[]): GlobalParse {
  const opts: GlobalOptions = { sim: false, json: false, timeoutMs: 5000 };
  const config: Record<string, { type: "boolean" | "string"; short?: string; multiple?: boolean }> = {};
  for (const o of GLOBAL_OPTIONS) config[o.name] = { type: o.type, ...(o.short ? { short: o.short } : {}) };
  const { tokens } = nodeParseArgs({ args: argv, options: config, strict: false, allowPositionals: true, tokens: true });
  const consumed = new Set<number>();
  const out: GlobalParse = { opts, rest: [] };
  const known = (name: string) => GLOBAL_OPTIONS.some((o) => o.name === name);
  const byIndex = new Map<number, typeof tokens>();
  let terminator = argv.length;
  for (const t of tokens) {
    if (t.kind === "option-terminator") {
      terminator = t.index;
      break;
    }
    if (t.kind === "option") byIndex.set(t.index, [...(byIndex.get(t.index) ?? []), t]);
  }
  let firstPositional = -1;
  for (const t of tokens) if (t.kind === "positional" && t.index < terminator) {
    firstPositional = t.index;
    break;
  }
  const fail = (error: string): GlobalParse => ({ ...out, error });
  for (const [index, group] of byIndex) {
    // a negative number (sriov PF -1) and any group with an option of the command stay the command's
    if (/^-\d/.test(argv[index]!) || !group.every((t) => t.kind === "option" && known(t.name))) continue;
    for (const t of group) {
      if (t.kind !== "option") continue;
      consumed.add(index);
      const v = t.value;
      if (v !== undefined && !t.inlineValue) consumed.add(index + 1);
      if (config[t.name]!.type === "boolean" && t.inlineValue && t.name !== "sim") return fail(`--${t.name}: takes no value, got ${JSON.stringify(argv[index])}`);
      switch (t.name) {
        case "sim": {
          opts.sim = true;
          if (t.inlineValue) {
            const f = argv[index]!.slice("--sim=".length);
            if (!HOST_FILE.test(f)) return fail(`--sim ${f}: expected a host description file ending in .yaml, .yml or .json (docs/host-file.md), got ${JSON.stringify(f)}`);
            opts.simFile = f;
            break;
          }
          const n = argv[index + 1];
          if (n === undefined || index + 1 >= terminator || n.startsWith("-")) break;
          if (HOST_FILE.test(n)) {
            opts.simFile = n;
            consumed.add(index + 1);
            if (firstPositional === index + 1) firstPositional = -1;
          } else if (firstPositional === index + 1 && !isCommandName(n) && (existsSync(n) || /[/.]/.test(n))) {
            return fail(`--sim ${n}: expected a host description file ending in .yaml, .yml or .json (docs/host-file.md), got ${JSON.stringify(n)}${existsSync(n) ? " (the file exists, but is not named as a host description)" : ""}`);
          }
          break;
        }
        case "profile":
          if (v === undefined || !isKernelVersion(v)) return fail(`--profile: expected a kernel version (6.1, 6.12, 6.17.1, 6.12.117+deb13-amd64, 6.8.0-51-generic …), got ${JSON.stringify(v ?? "")}`);
          opts.profile = v;
          break;
        case "root":
          if (!v) return fail("--root: expected a directory");
          opts.root = v;
          break;
        case "state":
          if (!v) return fail("--state: expected a directory (the simulated host's state)");
          opts.state = v;
          break;
        case "json":
          opts.json = true;
          break;
        case "quiet":
          opts.quiet = true;
          break;
        case "timeout": {
          const n = Number(v);
          if (v === undefined || v === "" || !Number.isInteger(n) || n < 0) return fail(`--timeout: expected milliseconds, got ${JSON.stringify(v ?? "")}`);
          opts.timeoutMs = n;
          break;
        }
        case "help":
          out.help = true;
          break;
        case "version":
          out.version = true;
          break;
      }
    }
  }
  out.rest = argv.filter((_, i) => !consumed.has(i));
  return out;
}

function isCommandName(n: string): boolean {
  return BUILTINS.includes(n) || COMMAND_MODULES.some(([c]) => c === n);
}

/** The combinations of global options that make no sense, with why (checked before a backend opens). */
export function checkGlobal(opts: GlobalOptions, rest: readonly string[]): string | undefined {
  const simRun = rest[0] === "sim" && rest[1] === "run";
  if (opts.profile && !opts.sim && !simRun) return "--profile: only with --sim (it picks the simulated host's kernel; a real host runs its own)";
  if (opts.sim && opts.root) return "--root: not with --sim (--root reads a copied tree through the real backend; --sim runs the kernel model, which has its own sysfs)";
  if (opts.state && !opts.sim) return "--state: only with --sim (a real host keeps its own state)";
  return undefined;
}

export interface Backend {
  sys: Syscalls;
  kernel?: Kernel;
  files: HostFiles;
  /** end the command: the process exits; a simulated host saves its state or drops its temporary root */
  close(): Promise<void>;
}

/** Open the backend the options ask for. */
/**
 * Commands (and subcommands) that change the host's own files rather than sysfs: on a copied
 * tree (--root) they are refused before anything runs, unless --dry-run. bind, unbind, sriov and
 * token set/rotate are refused by the library at their first write, naming it.
 */
const HOST_FILE_CHANGES: Readonly<Record<string, true | readonly string[]>> = {
  apply: true,
  install: true,
  uninstall: true,
  cdi: true,
  config: ["install"],
  token: ["retire"],
};

/** The command line a copied tree refuses ("apply", "config install" …), or null. */
export function copiedTreeRefusal(name: string, args: readonly string[]): string | null {
  const c = HOST_FILE_CHANGES[name];
  if (!c || args.includes("--dry-run")) return null;
  if (c === true) return name;
  return args[0] !== undefined && c.includes(args[0]) ? `${name} ${args[0]}` : null;
}

export async function openBackend(opts: GlobalOptions, io?: Output): Promise<Backend> {
  if (opts.sim) {
    if (opts.state) {
      const { openSimState } = await import("../sim/state.js");
      return openSimState(opts.state, opts, io);
    }
    const { bootKernel, bootHostFile } = await import("../kernel/host/boot.js");
    const kopts = opts.profile ? { profile: opts.profile } : {};
    const kernel = opts.simFile ? await bootHostFile(opts.simFile, kopts) : await bootKernel(undefined, kopts);
    const sys = kernel.spawn("vfioctl");
    // an ephemeral simulated host still never writes the real file system: its files live in a
    // temporary root that goes away with the command. The root is made when a host file is
    // first named (most commands, `list` among them, never name one: making and removing the
    // folder was a third of a warm `--sim list`)
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    let root: string | undefined;
    let made: HostFiles | undefined;
    const f = () => (made ??= hostFiles((root = mkdtempSync(join(tmpdir(), "vfioctl-sim-")))));
    const files: HostFiles = {
      get root() {
        return f().root;
      },
      simulated: true,
      real: (p) => f().real(p),
      input: (p) => f().input(p),
      show: (p) => f().show(p),
    };
    return {
      sys,
      kernel,
      files,
      close: async () => {
        await sys.exit().catch(() => {});
        if (root !== undefined) rmSync(root, { recursive: true, force: true });
      },
    };
  }
  const { LinuxSyscalls } = await import("../sys/linux/host.js");
  const sys = new LinuxSyscalls(opts.root ? { root: opts.root } : {});
  return { sys, files: hostFiles("/"), close: () => sys.exit().catch(() => {}) };
}

/** A usage error (or a backend that cannot open): the message on stderr; with --json also a vfioctl.error/1 object on stdout. */
function fail(io: Output, opts: Pick<GlobalOptions, "json">, error: string, message: string, code: number = EXIT.USAGE, extra: Record<string, unknown> = {}): number {
  if (opts.json) io.out(JSON.stringify({ schema: "vfioctl.error/1", error, message, ...extra, exit: code }, null, 2));
  io.err(`vfioctl: ${message}`);
  return code;
}

export async function main(argv: string[], rawIo: MainIo = stdIo): Promise<number> {
  const env = rawIo.env ?? process.env;
  const g = parseGlobal(argv);
  const { opts, rest } = g;
  const io = styledOutput(rawIo, env, { json: opts.json, quiet: opts.quiet === true });
  if (g.error) return fail(io, opts, "USAGE", g.error);
  const [name, ...args] = rest;
  if (g.version || name === "version") {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
    io.out(opts.json ? JSON.stringify({ schema: "vfioctl.version/1", version: pkg.version }, null, 2) : `vfioctl ${pkg.version}`);
    return EXIT.OK;
  }
  if (!name) {
    if (g.help) {
      io.out(await fullUsage());
      return EXIT.OK;
    }
    if (opts.json) return fail(io, opts, "USAGE", "expected a command (vfioctl --help lists them)");
    io.err(await fullUsage());
    return EXIT.USAGE;
  }
  if (name === "help") {
    if (args[0] === undefined) {
      io.out(await fullUsage());
      return EXIT.OK;
    }
    if (args[0] === "completion" || args[0] === "man") {
      const { BUILTIN_HELP } = await import("./builtins.js");
      io.out(BUILTIN_HELP[args[0]]!);
      return EXIT.OK;
    }
    const c = await loadCommand(args[0]);
    if (!c) {
      const list = (await allCommands()).filter((x) => !x.hidden).map((x) => `  ${x.name.padEnd(10)} ${x.summary}`);
      return fail(io, opts, "USAGE", `unknown command ${args[0]}\ncommands:\n${list.join("\n")}`);
    }
    io.out(c.help);
    return EXIT.OK;
  }
  if (name === "completion" || name === "__complete" || name === "man") {
    const { builtin, BUILTIN_HELP } = await import("./builtins.js");
    if (g.help && name !== "__complete") {
      io.out(BUILTIN_HELP[name]!);
      return EXIT.OK;
    }
    return builtin(name, args, { io, opts, env, argv });
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    if (opts.json) fail(io, opts, "USAGE", `unknown command ${JSON.stringify(name)}`);
    else io.err(`vfioctl: unknown command ${JSON.stringify(name)}\n${await fullUsage()}`);
    return EXIT.USAGE;
  }
  if (g.help) {
    io.out(cmd.help);
    return EXIT.OK;
  }
  const bad = checkGlobal(opts, rest);
  if (bad) return fail(io, opts, "USAGE", bad);
  const ro = opts.root !== undefined ? copiedTreeRefusal(name, args) : null;
  if (ro) return fail(io, opts, "READ_ONLY_TREE", `--root ${opts.root} is a copied tree, read-only: ${ro} would change this host's files (${ro.startsWith("cdi") ? "the CDI spec" : "the host config, token store, journal or boot files"}) and the host the tree was copied from is not this one; run without --root on the host itself, or add --dry-run`);
  let backend: Backend;
  try {
    backend = await openBackend(opts, io);
  } catch (e) {
    const err = e as Error & { code?: string };
    const kind = err.name === "HostFileError" ? "HOST_FILE" : typeof err.code === "string" && /^[A-Z_]+$/.test(err.code) ? err.code : "BACKEND";
    return fail(io, opts, kind, err.message);
  }
  const ctx: Context = {
    opts,
    sys: backend.sys,
    ...(backend.kernel ? { kernel: backend.kernel } : {}),
    files: backend.files,
    io,
    env,
    stdin: rawIo.stdin ?? readStdin,
  };
  try {
    return await cmd.run(ctx, args);
  } finally {
    await backend.close();
  }
}

/**
 * Run vfioctl as a process: main(), then standard output flushed; a write error on standard
 * output (ENOSPC on /dev/full, EIO) is reported and makes the exit code 3; a closed pipe (EPIPE:
 * \`vfioctl list | head -1\`) ends the output quietly.
 */
export async function cli(argv: string[]): Promise<number> {
  // standard output as a stream (a terminal, /dev/null …) gets its error listener before it is written
  if (!directStdout()) stdoutStreamed();
  let code = await main(argv);
  // what went through process.stdout is flushed; write(2) on fd 1 left nothing behind
  await new Promise<void>((r) => (stdoutClosed || stdoutError || !stdoutStream ? r() : stdoutStream.write("", () => r())));
  if (stdoutError) {
    process.stderr.write(`vfioctl: cannot write standard output: ${stdoutError.code ?? stdoutError.message}\n`);
    if (code === EXIT.OK || code === EXIT.NO) code = EXIT.KERNEL;
  }
  return code;
}
