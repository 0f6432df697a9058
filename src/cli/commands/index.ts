/** The command registry: one line per command module. */
import type { Command, CommandDef } from "../context.js";
import { helpText } from "../spec.js";

export const COMMANDS: Command[] = [];

/** Register a command; its --help is generated from its definition. */
export function register(c: CommandDef): Command {
  const cmd = c as Command;
  Object.defineProperty(cmd, "help", { get: () => helpText(cmd), enumerable: false, configurable: true });
  COMMANDS.push(cmd);
  return cmd;
}
