/**
 * The `vfioctl` command's fast start (bin/vfioctl.js reads what this writes):
 *
 *   dist/cli/vfioctl.cjs         dist/src/cli/main.js and every module it can reach (commands are
 *                                still loaded lazily: esbuild keeps each dynamically imported
 *                                module behind its own init function), as one CommonJS file
 *   dist/cli/vfioctl.cjs.cache   a V8 code cache of that file, made after running `--sim list`,
 *                                `--sim list --json` and `--root EMPTY list` in a fresh process with
 *                                their output dropped: it holds the bytecode of the functions they
 *                                ran (compiled code, no values of the run: V8's code cache keeps
 *                                functions, not the heap)
 *   dist/cli/manifest.json       Node's and V8's versions, and every file of dist the bundle was
 *                                made from, the bundle and the cache, each with its size and
 *                                modification time (written last)
 *
 * Node 20 has no compile cache for ES modules: the command loaded ~90 of them, each resolved,
 * read and compiled on every run, and ran the code of `list` cold. Loaded from one file with its
 * code cache, nothing is compiled twice (docs/benchmarks.md, "Start-up").
 *
 *   node dist/tools/cli-bundle.js [DIST]     (npm run build, prepare, test and bench run it after tsc)
 *
 * In the bundle, `import.meta.url` is each module's own URL under dist (package.json, pci.ids,
 * koffi and yaml are found from there as before), and `import("node:…")` of a built-in becomes
 * its `require`: a dynamic import of anything else would fail in the bundle, so the build refuses it.
 */
import * as esbuild from "esbuild";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const BUNDLE = "vfioctl.cjs";
export const CACHE = "vfioctl.cjs.cache";
export const MANIFEST = "manifest.json";

export interface BundleManifest {
  schema: "vfioctl.cli-bundle/1";
  node: string;
  v8: string;
  arch: string;
  bundle: string;
  bundleSize: number;
  bundleMtimeMs: number;
  cache: string;
  /** the code cache's size and modification time (written once it is made) */
  cacheSize?: number;
  cacheMtimeMs?: number;
  /** [path relative to the bundle's directory, size, mtimeMs] of every module bundled */
  inputs: [string, number, number][];
}

/** The argument lists the code cache is trained on (`EMPTY`: an empty copied tree). */
export const TRAINING: readonly (readonly string[])[] = [["--sim", "list"], ["--sim", "list", "--json"], ["--root", "EMPTY", "list"], ["--version"]];

const repoOf = (dist: string) => path.dirname(dist);

/** Bundle DIST/src/cli/main.js into OUT (default DIST/cli), then train its code cache. */
export async function buildCliBundle(dist: string, out = path.join(dist, "cli")): Promise<BundleManifest> {
  dist = path.resolve(dist);
  out = path.resolve(out);
  fs.mkdirSync(out, { recursive: true });
  for (const f of [MANIFEST, CACHE, BUNDLE]) fs.rmSync(path.join(out, f), { force: true });
  const file = path.join(out, BUNDLE);
  const result = await esbuild.build({
    entryPoints: [path.join(dist, "src/cli/main.js")],
    outfile: file,
    absWorkingDir: out,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    // npm packages (yaml, koffi) stay in node_modules, loaded when first used, as from dist/src
    packages: "external",
    // ES modules are strict; the bundle's functions must be too
    banner: { js: '"use strict";\nconst __vfioctlModuleUrl = (rel) => require("node:url").pathToFileURL(require("node:path").join(__dirname, rel)).href;' },
    // no keepNames (its __name() call for every function was 6 ms of a `--sim list`, 7%): esbuild
    // renames a top-level name only where two modules declare the same one, and src never reads
    // a function's or class's name (test/cli-bundle.test.ts checks that)
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: "none",
    metafile: true,
    logLevel: "silent",
    plugins: [
      {
        name: "vfioctl-dist",
        setup(b) {
          b.onLoad({ filter: /\.js$/ }, async (a) => {
            const rel = path.relative(out, a.path);
            const text = (await fs.promises.readFile(a.path, "utf8"))
              .replaceAll("import.meta.url", `__vfioctlModuleUrl(${JSON.stringify(rel)})`)
              .replace(/\bimport\(("node:[a-z_/]+")\)/g, "Promise.resolve().then(() => require($1))");
            return { contents: text, loader: "js" };
          });
        },
      },
    ],
  });
  for (const w of result.warnings) throw new Error(`cli bundle: ${w.text} (${w.location?.file}:${w.location?.line})`);
  const code = fs.readFileSync(file, "utf8");
  const dyn = /(?<![\w$.'"])import\(/.exec(code);
  if (dyn) throw new Error(`cli bundle: a dynamic import() is left in ${file} at ${dyn.index}: ${code.slice(Math.max(0, dyn.index - 80), dyn.index + 60)}`);
  const inputs: [string, number, number][] = Object.keys(result.metafile.inputs)
    .map((i) => path.resolve(out, i))
    .sort()
    .map((abs) => {
      const st = fs.statSync(abs);
      return [path.relative(out, abs), st.size, st.mtimeMs];
    });
  const st = fs.statSync(file);
  const manifest: BundleManifest = {
    schema: "vfioctl.cli-bundle/1",
    node: process.version,
    v8: process.versions.v8,
    arch: process.arch,
    bundle: BUNDLE,
    bundleSize: st.size,
    bundleMtimeMs: st.mtimeMs,
    cache: CACHE,
    inputs,
  };
  fs.writeFileSync(path.join(out, MANIFEST), JSON.stringify(manifest) + "\n");
  trainCache(repoOf(dist), out);
  const cache = fs.statSync(path.join(out, CACHE));
  Object.assign(manifest, { cacheSize: cache.size, cacheMtimeMs: cache.mtimeMs });
  fs.writeFileSync(path.join(out, MANIFEST), JSON.stringify(manifest) + "\n");
  return manifest;
}

/**
 * Run the training commands through bin/vfioctl.js's own loader in a fresh process (output
 * dropped) and write the code cache of what they compiled.
 */
function trainCache(repo: string, out: string): void {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-cli-bundle-"));
  fs.mkdirSync(path.join(empty, "sys/bus/pci/devices"), { recursive: true });
  const script = `
const fs = require("node:fs");
const { loadBundle } = require(${JSON.stringify(path.join(repo, "bin/vfioctl.js"))});
const b = loadBundle(${JSON.stringify(out)});
if (!b.main) throw new Error("the bundle just made does not load: " + b.stale);
const silent = { out() {}, err() {} };
(async () => {
  for (const argv of ${JSON.stringify(TRAINING.map((a) => a.map((x) => (x === "EMPTY" ? empty : x))))}) {
    const code = await b.main(argv, silent);
    if (code !== 0) throw new Error(argv.join(" ") + " exited " + code);
  }
  fs.writeFileSync(${JSON.stringify(path.join(out, CACHE))}, b.script.createCachedData());
})().catch((e) => { console.error(e); process.exit(1); });
`;
  try {
    execFileSync(process.execPath, ["-e", script], { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, NO_COLOR: "1" } });
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const dist = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), ".."));
  const t0 = Date.now();
  const m = await buildCliBundle(dist);
  const size = (f: string) => (fs.statSync(path.join(dist, "cli", f)).size / 1024).toFixed(0);
  console.log(`dist/cli: ${m.bundle} ${size(m.bundle)} KiB from ${m.inputs.length} modules, ${m.cache} ${size(m.cache)} KiB (${Date.now() - t0} ms)`);
}
