/**
 * What every command gets: the syscalls seam (a real host or the model), output helpers and
 * the parsed global options. Commands never know which backend they talk to.
 */
import type { Syscalls } from "../sys/syscalls.js";
import type { Kernel } from "../kernel/kernel.js";
import type { HostFiles } from "../sys/hostfs.js";
import type { CommandSpec } from "./spec.js";

export interface GlobalOptions {
  /** --sim [FILE]: run on the kernel model; FILE is a host description (default host if absent) */
  sim: boolean;
  simFile?: string;
  /** --profile VERSION for --sim (any version string; 6.1 and 6.12 are the lab's Debian kernels) */
  profile?: string;
  /** --root DIR: real backend against a directory tree */
  root?: string;
  json: boolean;
  /** -q, --quiet: only errors and the essential result */
  quiet?: boolean;
  /** --timeout MS for writes Linux may block */
  timeoutMs: number;
  /** --state DIR with --sim: the simulated host persists in DIR between invocations */
  state?: string;
}

export interface Output {
  out(s: string): void;
  err(s: string): void;
  /** informational lines (progress, notes): dropped with --quiet */
  info?(s: string): void;
  /** standard output is a terminal (the output layer then may use UTF-8 symbols and colour) */
  isTTY?: boolean;
  /** the output may use UTF-8 symbols (set by the output layer from the locale and isTTY) */
  utf8?: boolean;
  /** colour escape sequences are wanted (a terminal, no NO_COLOR, TERM not dumb) */
  color?: boolean;
  /** standard input is a terminal (--token-stdin prompts) */
  stdinTTY?: boolean;
  /** read one line from the terminal without echo, after printing the prompt on stderr */
  secret?(prompt: string): Promise<string>;
}

export interface Context {
  opts: GlobalOptions;
  sys: Syscalls;
  /** present only with --sim */
  kernel?: Kernel;
  /** the host's regular files (config, token store, journal, units): real paths, or under the simulated host's root */
  files: HostFiles;
  io: Output;
  /** process.env (injectable for tests) */
  env: Record<string, string | undefined>;
  /** standard input text, read lazily (token from stdin) */
  stdin(): Promise<string>;
}

/** A subcommand: its definition (./spec.ts: options, help, exit codes, examples) and `run`, which returns the exit code. */
export interface Command extends CommandSpec {
  /** full --help text, generated from the definition */
  readonly help: string;
  run(ctx: Context, args: string[]): Promise<number>;
}

/** A command as a module declares it: the help is generated at registration. */
export type CommandDef = CommandSpec & { run(ctx: Context, args: string[]): Promise<number> };

/** Exit codes (stable). */
export const EXIT = {
  OK: 0,
  /** the check or prediction says "no" (explain: open would fail; verify: token wrong; audit: findings) */
  NO: 1,
  /** bad usage or bad input (nothing was changed) */
  USAGE: 2,
  /** the kernel refused an operation (errno reported) */
  KERNEL: 3,
  /** an operation stayed blocked past --timeout */
  BLOCKED: 4,
  /** failed half way and something is left behind (apply: rollback incomplete) */
  PARTIAL: 5,
  /** internal error (a bug; sysexits' EX_SOFTWARE) */
  INTERNAL: 70,
} as const;
