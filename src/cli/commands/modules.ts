/**
 * Which module registers each command, so that `vfioctl CMD` loads CMD's module (and what it
 * imports) and no other: loading every command's module graph, the kernel model and `yaml`
 * included, was most of a short command's start-up. The order is the order of `vfioctl help`
 * (the order in which ./all.ts registers them: sim.ts imports token.ts, so token comes first).
 * ./all.ts still imports every module (help, tests); test/cli.test.ts checks that the two agree.
 * A command missing here still runs: its name is looked up after loading every module.
 */
import type { Command } from "../context.js";
import { COMMANDS } from "./index.js";

export const COMMAND_MODULES: ReadonlyArray<readonly [command: string, module: string]> = [
  ["token", "token"],
  ["sim", "sim"],
  ["list", "list"],
  ["show", "show"],
  ["bind", "bind"],
  ["unbind", "bind"],
  ["sriov", "sriov"],
  ["explain", "explain"],
  ["audit", "audit"],
  ["args", "args"],
  ["lab", "lab"],
  ["plan", "host"],
  ["apply", "host"],
  ["status", "host"],
  ["config", "config"],
  ["install", "install"],
  ["uninstall", "install"],
  ["cdi", "cdi"],
  ["k8s", "k8s"],
];

/** Every command, registered by loading every module, in `vfioctl help` order. */
export async function allCommands(): Promise<Command[]> {
  await import("./all.js");
  const at = (c: Command) => {
    const i = COMMAND_MODULES.findIndex(([n]) => n === c.name);
    return i < 0 ? COMMAND_MODULES.length : i;
  };
  return [...COMMANDS].sort((a, b) => at(a) - at(b));
}

/** The command called `name`, loading only its module when it is known here; undefined if none. */
export async function loadCommand(name: string): Promise<Command | undefined> {
  const m = COMMAND_MODULES.find(([n]) => n === name);
  if (m) {
    await import(`./${m[1]}.js`);
    const c = COMMANDS.find((x) => x.name === name);
    if (c) return c;
  }
  return (await allCommands()).find((x) => x.name === name);
}
