/** The command registry: one line per command module. */
import type { Command } from "../context.js";

export const COMMANDS: Command[] = [];

export function register(c: Command): void {
  COMMANDS.push(c);
}
