/**
 * In a lab guest: `node dist/lab/cli-snap.js` runs the CLI conformance commands
 * (lab/cli-check.ts CLI_COMMANDS) over LinuxSyscalls in a process of its own and prints
 * `{ <command>: { exit, out, err } }` as JSON on stdout (each command's time on stderr).
 */
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import { runCliCommands } from "./cli-check.js";

const sys = new LinuxSyscalls();
const snap = await runCliCommands(sys, { log: (s) => process.stderr.write(`cli-snap: ${s}\n`) });
await sys.exit().catch(() => {});
process.stdout.write(JSON.stringify(snap));
process.exit(0);
