/**
 * Shared pieces of the subcommands (not a command itself): option parsing, error reporting with
 * exit codes, token sources and the argv warning, and small text helpers.
 */
import { isErrno, SysError } from "../../sys/errno.js";
import { TimeoutError } from "../../sys/fsutil.js";
import { EXIT, type Context } from "../context.js";
import { VfioctlError } from "../../lib/errors.js";

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
}

/**
 * Parse `args` against the options a command accepts: `valued` take a value (`--x V` or
 * `--x=V`), `bool` do not. Unknown options are an error (expected-versus-found).
 */
export function parseArgs(args: string[], valued: string[], bool: string[]): ParsedArgs {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (valued.includes(name)) {
        const v = eq > 0 ? a.slice(eq + 1) : args[++i];
        if (v === undefined) throw new VfioctlError("BAD_INPUT", `--${name}: expected a value, got nothing`);
        flags.set(name, v);
      } else if (bool.includes(name) && eq < 0) flags.set(name, true);
      else {
        const known = [...valued.map((v) => `--${v} V`), ...bool.map((b) => `--${b}`)];
        throw new VfioctlError("BAD_INPUT", `unknown option ${JSON.stringify(a)}: expected ${known.length ? known.join(", ") : "no options"}`);
      }
    } else positional.push(a);
  }
  return { positional, flags };
}

export const flagStr = (p: ParsedArgs, name: string): string | undefined => {
  const v = p.flags.get(name);
  return typeof v === "string" ? v : undefined;
};

/** Print an error the way every command does, and return its exit code. */
export function reportError(ctx: Context, e: unknown, cmd: string): number {
  if (e instanceof VfioctlError) {
    if (ctx.opts.json) ctx.io.out(JSON.stringify(e.toJSON(), null, 2));
    ctx.io.err(`vfioctl ${cmd}: ${e.message}${e.fix ? `\n  fix: ${e.fix}` : ""}`);
    return e.kind === "usage" ? EXIT.USAGE : e.kind === "no" ? EXIT.NO : e.kind === "blocked" ? EXIT.BLOCKED : EXIT.KERNEL;
  }
  if (e instanceof TimeoutError) {
    if (ctx.opts.json) ctx.io.out(JSON.stringify({ error: "BLOCKED", message: e.message }, null, 2));
    ctx.io.err(`vfioctl ${cmd}: ${e.message}`);
    return EXIT.BLOCKED;
  }
  if (e instanceof SysError || isErrno(e)) {
    const se = e as SysError;
    if (ctx.opts.json) ctx.io.out(JSON.stringify({ error: "KERNEL", errno: se.code, syscall: se.syscall, path: se.path, message: se.message }, null, 2));
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
