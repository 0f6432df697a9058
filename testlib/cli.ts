/**
 * Run one vfioctl command against a given model kernel and a given simulated root, capturing
 * its output (so a test can set up consumers, tokens and files first, then read what the command
 * says about them).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Kernel } from "../src/kernel/kernel.js";
import { COMMANDS } from "../src/cli/commands/index.js";
import "../src/cli/commands/all.js";
import type { Context } from "../src/cli/context.js";
import { hostFiles, type HostFiles } from "../src/sys/hostfs.js";

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** A fresh simulated root directory for the host's regular files (config, store, CDI specs). */
export function simRoot(): HostFiles {
  return hostFiles(fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-testroot-")));
}

export async function runCli(k: Kernel, argv: string[], o: { json?: boolean; env?: Record<string, string>; files?: HostFiles; stdin?: string; isTTY?: boolean; timeoutMs?: number } = {}): Promise<CliRun> {
  const [name, ...args] = argv;
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) throw new Error(`no command ${name}`);
  let out = "";
  let err = "";
  const sys = k.spawn("vfioctl");
  const ctx: Context = {
    opts: { sim: true, json: o.json ?? false, timeoutMs: o.timeoutMs ?? 200 },
    sys,
    kernel: k,
    files: o.files ?? simRoot(),
    io: { out: (s) => (out += s + "\n"), err: (s) => (err += s + "\n"), ...(o.isTTY ? { isTTY: true } : {}) },
    env: o.env ?? {},
    stdin: async () => o.stdin ?? "",
  };
  try {
    return { code: await cmd.run(ctx, args), out, err };
  } finally {
    await sys.exit();
  }
}
