/**
 * The `vfioctl` command: global options, backend selection (real host or `--sim` model) and
 * dispatch to the subcommands registered in ./commands.
 */
import { readFileSync } from "node:fs";
import { COMMANDS } from "./commands/index.js";
import { allCommands, loadCommand } from "./commands/modules.js";
import { EXIT, type Command, type Context, type GlobalOptions, type Output } from "./context.js";
import type { Syscalls } from "../sys/syscalls.js";
import type { Kernel } from "../kernel/kernel.js";
import { hostFiles, type HostFiles } from "../sys/hostfs.js";
import { isKernelVersion } from "../kernel/versions.js";

const USAGE = `usage: vfioctl [--sim [HOSTFILE] [--state DIR]] [--profile VERSION] [--root DIR] [--json] [--timeout MS] <command> [args]

Inspect and manage vfio-pci SR-IOV physical functions, their virtual functions and VF tokens,
on this Linux host or on the built-in kernel model (--sim).

Global options:
  --sim [HOSTFILE]   run on the kernel model; HOSTFILE is a YAML/JSON host description
                     (the built-in default host when omitted)
  --state DIR        with --sim: keep the simulated host in DIR between invocations (its
                     kernel, long-lived holders, and its files under DIR/root)
  --profile V        kernel for --sim: any version (6.17.1, 6.12.117+deb13-amd64,
                     6.8.0-51-generic) or the lab's Debian kernels 6.1 (default) / 6.12
  --root DIR         real backend against a directory tree (e.g. a copied /sys)
  --json             machine-readable output
  --timeout MS       how long to wait for writes Linux may block (default 5000)
  -h, --help         this help; 'vfioctl help COMMAND' for a command's help

Commands:
`;

export interface MainIo extends Output {
  env?: Record<string, string | undefined>;
  stdin?: () => Promise<string>;
}

const stdIo: MainIo = {
  out: (s) => process.stdout.write(s.endsWith("\n") ? s : s + "\n"),
  err: (s) => process.stderr.write(s.endsWith("\n") ? s : s + "\n"),
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

/** The usage text, listing the commands registered so far (every command once ./commands/all.js is loaded). */
export function usage(commands: readonly Command[] = COMMANDS): string {
  return USAGE + commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join("\n") + "\n";
}

/** The usage text with every command (loads every command module). */
const fullUsage = async () => usage(await allCommands());

/** Parse global options (anywhere before or after the command); returns the rest. */
export function parseGlobal(argv: string[]): { opts: GlobalOptions; rest: string[]; error?: string } {
  const opts: GlobalOptions = { sim: false, json: false, timeoutMs: 5000 };
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--sim") {
      opts.sim = true;
      const n = argv[i + 1];
      if (n !== undefined && /\.(ya?ml|json)$/i.test(n)) {
        opts.simFile = n;
        i++;
      }
    } else if (a.startsWith("--sim=")) {
      opts.sim = true;
      opts.simFile = a.slice(6);
    } else if (a === "--profile" || a.startsWith("--profile=")) {
      const v = a.includes("=") ? a.slice(10) : argv[++i];
      if (v === undefined || !isKernelVersion(v)) return { opts, rest, error: `--profile: expected a kernel version (6.1, 6.12, 6.17.1, 6.12.117+deb13-amd64, 6.8.0-51-generic …), got ${JSON.stringify(v ?? "")}` };
      opts.profile = v;
    } else if (a === "--root" || a.startsWith("--root=")) {
      const v = a.includes("=") ? a.slice(7) : argv[++i];
      if (!v) return { opts, rest, error: "--root: expected a directory" };
      opts.root = v;
    } else if (a === "--state" || a.startsWith("--state=")) {
      const v = a.includes("=") ? a.slice(8) : argv[++i];
      if (!v) return { opts, rest, error: "--state: expected a directory (the simulated host's state)" };
      opts.state = v;
    } else if (a === "--json") opts.json = true;
    else if (a === "--timeout" || a.startsWith("--timeout=")) {
      const v = a.includes("=") ? a.slice(10) : argv[++i];
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) return { opts, rest, error: `--timeout: expected milliseconds, got ${JSON.stringify(v ?? "")}` };
      opts.timeoutMs = n;
    } else rest.push(a);
  }
  return { opts, rest };
}

export interface Backend {
  sys: Syscalls;
  kernel?: Kernel;
  files: HostFiles;
  /** end the command: the process exits; a simulated host saves its state or drops its temporary root */
  close(): Promise<void>;
}

/** Open the backend the options ask for. */
export async function openBackend(opts: GlobalOptions, io?: Output): Promise<Backend> {
  if (opts.state && !opts.sim) throw new Error("--state: only with --sim (a real host keeps its own state)");
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
    // temporary root that goes away with the command
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const root = mkdtempSync(join(tmpdir(), "vfioctl-sim-"));
    return {
      sys,
      kernel,
      files: hostFiles(root),
      close: async () => {
        await sys.exit().catch(() => {});
        rmSync(root, { recursive: true, force: true });
      },
    };
  }
  const { LinuxSyscalls } = await import("../sys/linux/host.js");
  const sys = new LinuxSyscalls(opts.root ? { root: opts.root } : {});
  return { sys, files: hostFiles("/"), close: () => sys.exit().catch(() => {}) };
}

export async function main(argv: string[], io: MainIo = stdIo): Promise<number> {
  const { opts, rest, error } = parseGlobal(argv);
  if (error) {
    io.err(`vfioctl: ${error}`);
    return EXIT.USAGE;
  }
  const [name, ...args] = rest;
  if (!name || name === "-h" || name === "--help") {
    (name ? io.out : io.err)(await fullUsage());
    return name ? EXIT.OK : EXIT.USAGE;
  }
  if (name === "help") {
    const c = args[0] === undefined ? undefined : await loadCommand(args[0]);
    io.out(c ? c.help : await fullUsage());
    return c || !args[0] ? EXIT.OK : EXIT.USAGE;
  }
  if (name === "--version" || name === "version") {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
    io.out(`vfioctl ${pkg.version}`);
    return EXIT.OK;
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    io.err(`vfioctl: unknown command ${JSON.stringify(name)}\n${await fullUsage()}`);
    return EXIT.USAGE;
  }
  if (args.includes("-h") || args.includes("--help")) {
    io.out(cmd.help);
    return EXIT.OK;
  }
  let backend: Backend;
  try {
    backend = await openBackend(opts, io);
  } catch (e) {
    io.err(`vfioctl: ${(e as Error).message}`);
    return EXIT.USAGE;
  }
  const ctx: Context = {
    opts,
    sys: backend.sys,
    ...(backend.kernel ? { kernel: backend.kernel } : {}),
    files: backend.files,
    io,
    env: io.env ?? process.env,
    stdin: io.stdin ?? readStdin,
  };
  try {
    return await cmd.run(ctx, args);
  } finally {
    await backend.close();
  }
}
