/**
 * `vfioctl sim run FILE`: play a scenario file on the kernel model and print its transcript.
 * Exits 1 when an expectation of the file did not hold, 2 on a bad file or bad usage.
 */
import { register } from "./index.js";
import { EXIT, type Command, type Context } from "../context.js";
import { formatTranscript, loadScenario, modelBackend, runScenario, ScenarioError, type Transcript } from "../../scenario/index.js";
import { HostFileError } from "../../kernel/host/host-file.js";

const HELP = `usage: vfioctl sim run FILE [--profile 6.1|6.12] [--host HOSTFILE] [--json]

Play a scenario file (YAML or JSON, see docs/scenarios.md) on the kernel model and print, per
operation, the return value, the errno and the kernel log lines it produced. The file's
expectations are checked: the exit code is 1 when one did not hold.

  --profile V      run only this kernel profile (default: every profile the file declares)
  --host FILE      model host description (default: the file's host:, else hosts/lab-igb.yaml
                   next to the scenario)
  --json           print the transcript(s) as JSON

Examples:
  vfioctl sim run scenarios/token-decision-table.yaml
  vfioctl sim run scenarios/blocking-removal.yaml --profile 6.12 --json
`;

export const sim: Command = {
  name: "sim",
  summary: "run a scenario file on the kernel model (sim run FILE)",
  help: HELP,
  async run(ctx: Context, args: string[]): Promise<number> {
    const [sub, ...rest] = args;
    if (sub !== "run") {
      ctx.io.err(sub ? `vfioctl sim: unknown subcommand ${JSON.stringify(sub)}\n${HELP}` : HELP);
      return EXIT.USAGE;
    }
    let file: string | undefined;
    let profile = ctx.opts.profile as string | undefined;
    let host: string | undefined;
    let json = ctx.opts.json;
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i]!;
      if (a === "--profile") profile = rest[++i];
      else if (a.startsWith("--profile=")) profile = a.slice(10);
      else if (a === "--host") host = rest[++i];
      else if (a.startsWith("--host=")) host = a.slice(7);
      else if (a === "--json") json = true;
      else if (!file && !a.startsWith("-")) file = a;
      else {
        ctx.io.err(`vfioctl sim run: unexpected argument ${JSON.stringify(a)}\n${HELP}`);
        return EXIT.USAGE;
      }
    }
    if (!file) {
      ctx.io.err(`vfioctl sim run: expected a scenario FILE\n${HELP}`);
      return EXIT.USAGE;
    }
    if (profile !== undefined && profile !== "6.1" && profile !== "6.12") {
      ctx.io.err(`vfioctl sim run: --profile: expected 6.1 or 6.12, got ${JSON.stringify(profile)}`);
      return EXIT.USAGE;
    }
    const runs: Transcript[] = [];
    try {
      const sc = loadScenario(file);
      const profiles = profile ? [profile] : sc.profiles.filter((p) => p === "6.1" || p === "6.12");
      for (const p of profiles) runs.push(await runScenario(sc, await modelBackend(sc, { profile: p, ...(host ? { host } : {}) })));
    } catch (e) {
      if (e instanceof ScenarioError || e instanceof HostFileError) {
        ctx.io.err(`vfioctl sim run: ${e.message}`);
        return EXIT.USAGE;
      }
      throw e;
    }
    if (json) ctx.io.out(JSON.stringify(runs.length === 1 ? runs[0] : runs, null, 2));
    else ctx.io.out(runs.map(formatTranscript).join("\n\n"));
    return runs.every((t) => t.ok) ? EXIT.OK : EXIT.NO;
  },
};

register(sim);
