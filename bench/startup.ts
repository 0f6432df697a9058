/**
 * Start-up benchmark: whole `vfioctl` processes against `node -e 0` (the floor: a Node process
 * that does nothing), in interleaved rounds, medians compared.
 *
 *   node -e 0                        the anchor
 *   vfioctl --version                main and the command table only
 *   vfioctl --sim list               the default simulated host: the kernel model booted, `list`
 *                                    through the seam, the tree printed (goal: within 1.5× of the anchor)
 *   vfioctl --root EMPTY list        the real backend on an empty tree (what `list` costs before
 *                                    it reads anything)
 *   --sim list from dist/src         the same command from the ES modules of dist/src, what
 *                                    bin/vfioctl.js runs when dist/cli's bundle is missing or stale
 *
 * `vfioctl` is bin/vfioctl.js, which runs dist/cli's bundle with its code cache
 * (tools/cli-bundle.ts): the benchmark refuses to run when that is stale (npm run bench makes it).
 * BENCH_STARTUP_RUNS rounds (default 21).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import type { BenchResult } from "./list.js";

function ms(cmd: string, args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const t = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr.slice(0, 300)}`);
  return t;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchStartup(opts: { runs?: number } = {}): Promise<BenchResult[]> {
  const runs = opts.runs ?? Number(process.env.BENCH_STARTUP_RUNS ?? 21);
  const bin = new URL("../../bin/vfioctl.js", import.meta.url).pathname;
  const { stale } = (createRequire(import.meta.url)(bin) as { loadBundle(): { stale?: string } }).loadBundle();
  if (stale) throw new Error(`dist/cli's bundle is not used (${stale}): npm run build makes it`);
  const mainJs = new URL("../src/cli/main.js", import.meta.url).href;
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-bench-startup-"));
  fs.mkdirSync(path.join(empty, "sys/bus/pci/devices"), { recursive: true });
  const cases: [string, string, string[]][] = [
    ["node -e 0", process.execPath, ["-e", "0"]],
    ["vfioctl --version", process.execPath, [bin, "--version"]],
    ["vfioctl --sim list", process.execPath, [bin, "--sim", "list"]],
    ["vfioctl --root EMPTY list", process.execPath, [bin, "--root", empty, "list"]],
    ["--sim list from dist/src", process.execPath, ["--input-type=module", "-e", `import { cli } from ${JSON.stringify(mainJs)}; cli(["--sim", "list"]).then((c) => process.exit(c));`]],
  ];
  const t = cases.map(() => [] as number[]);
  try {
    for (const [, cmd, args] of cases) ms(cmd, args); // warm the page cache
    for (let r = 0; r < runs; r++) cases.forEach(([, cmd, args], i) => t[i]!.push(ms(cmd, args)));
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
  const anchor = median(t[0]!);
  const out: BenchResult[] = [{ name: "startup.node_e_0_ms", value: Number(anchor.toFixed(1)), unit: "ms", note: `anchor, median of ${runs} interleaved runs` }];
  cases.slice(1).forEach(([name], j) => {
    const m = median(t[j + 1]!);
    const key = name.replace(/^vfioctl /, "").replace(/ from dist\/src$/, " esm").replace(/[^a-z]+/gi, "_").replace(/^_|_$/g, "").toLowerCase();
    out.push({ name: `startup.${key}_ms`, value: Number(m.toFixed(1)), unit: "ms", note: `${name}, median of ${runs}` });
    out.push({ name: `startup.ratio_${key}`, value: Number((m / anchor).toFixed(2)), unit: "x", note: `${name} / node -e 0, same run${name === "vfioctl --sim list" ? "; goal ≤ 1.5" : ""}` });
  });
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchStartup()) console.log(`${r.name.padEnd(36)} ${String(r.value).padStart(8)} ${r.unit}  ${r.note ?? ""}`);
}
