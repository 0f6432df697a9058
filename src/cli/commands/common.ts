/**
 * Shared pieces of the subcommands (not a command itself): option parsing, error reporting with
 * exit codes, token sources and the argv warning, and small text helpers.
 */
import { isErrno, SysError } from "../../sys/errno.js";
import { TimeoutError } from "../../sys/fsutil.js";
import { EXIT, type Context } from "../context.js";
import { VfioctlError } from "../../lib/errors.js";
import { parseOptions, type OptionSpec, type ParsedArgs } from "../spec.js";

export type { ParsedArgs } from "../spec.js";

/**
 * Parse `args` against the options a command (or subcommand) declares in its definition
 * (../spec.ts: Node's util.parseArgs underneath). Unknown options are an error (expected-versus-found).
 */
export function parseArgs(args: string[], options: readonly OptionSpec[] = [], where = ""): ParsedArgs {
  return parseOptions(args, options, where);
}

/** The error object --json prints on stdout (docs/json.md, vfioctl.error/1). */
export function errorJson(error: string, message: string, exit: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ schema: "vfioctl.error/1", error, message, ...extra, exit }, null, 2);
}

export const flagStr = (p: ParsedArgs, name: string): string | undefined => {
  const v = p.flags.get(name);
  return typeof v === "string" ? v : undefined;
};

/** Print an error the way every command does, and return its exit code. */
export function reportError(ctx: Context, e: unknown, cmd: string): number {
  if (e instanceof VfioctlError) {
    const code = e.kind === "usage" ? EXIT.USAGE : e.kind === "no" ? EXIT.NO : e.kind === "blocked" ? EXIT.BLOCKED : EXIT.KERNEL;
    if (ctx.opts.json) {
      const { error, message, ...rest } = e.toJSON() as { error: string; message: string };
      ctx.io.out(errorJson(error, message, code, rest));
    }
    ctx.io.err(`vfioctl ${cmd}: ${e.message}${e.fix ? `\n  fix: ${e.fix}` : ""}`);
    return code;
  }
  if (e instanceof TimeoutError) {
    if (ctx.opts.json) ctx.io.out(errorJson("BLOCKED", e.message, EXIT.BLOCKED));
    ctx.io.err(`vfioctl ${cmd}: ${e.message}`);
    return EXIT.BLOCKED;
  }
  if (e instanceof SysError || isErrno(e)) {
    const se = e as SysError;
    if (ctx.opts.json) ctx.io.out(errorJson("KERNEL", se.message, EXIT.KERNEL, { errno: se.code, syscall: se.syscall, path: se.path }));
    ctx.io.err(`vfioctl ${cmd}: ${se.message}`);
    return EXIT.KERNEL;
  }
  throw e;
}

/** Run a command body; errors become messages and exit codes. */
export async function guarded(ctx: Context, cmd: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    return reportError(ctx, e, cmd);
  }
}

/** The stderr warning printed whenever a token arrives on the command line. */
export const ARGV_TOKEN_WARNING =
  "warning: a token on the command line is visible to every user of this host (/proc/PID/cmdline, ps); prefer --token-file FILE (mode 0600), --token-stdin or VFIOCTL_VF_TOKEN";

export const plural = (n: number, one: string, many = one + "s") => `${n} ${n === 1 ? one : many}`;
