/**
 * The fast start (tools/cli-bundle.ts, bin/vfioctl.js): the command run from dist/cli's bundle
 * and code cache gives the same standard output, standard error and exit code as the command
 * run from dist/src's ES modules; a bundle that is stale (a bundled file changed), damaged or
 * missing is not run, and then the ES modules give the same output; a code cache made by another
 * Node, or rewritten after the build, is not used.
 *
 * Each test works on a copy of the package's layout in a temporary directory (bin/, package.json,
 * a copy of dist/src and dist/lab, node_modules linked) with its own dist/cli built there: the
 * checkout's dist/cli is never rewritten while other test files run the command.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { buildCliBundle, BUNDLE, CACHE, MANIFEST, type BundleManifest } from "../tools/cli-bundle.js";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;
const require = createRequire(import.meta.url);

interface Layout {
  root: string;
  bin: string;
  cli: string;
  /** the file: URLs of the ES modules the last run() loaded (through a loader hook) */
  loaded(): string[];
  run(argv: string[], env?: Record<string, string>): Promise<{ code: number; out: string; err: string }>;
  manifest(): BundleManifest;
  writeManifest(m: BundleManifest): void;
}

async function layout(): Promise<Layout> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-cli-bundle-"));
  fs.cpSync(path.join(repo, "bin"), path.join(root, "bin"), { recursive: true });
  fs.copyFileSync(path.join(repo, "package.json"), path.join(root, "package.json"));
  for (const d of ["src", "lab"]) fs.cpSync(path.join(repo, "dist", d), path.join(root, "dist", d), { recursive: true });
  fs.symlinkSync(fs.realpathSync(path.join(repo, "node_modules")), path.join(root, "node_modules"));
  await buildCliBundle(path.join(root, "dist"));
  const log = path.join(root, "loaded.log");
  const hook = `import { appendFileSync } from "node:fs"; export async function load(url, ctx, next) { if (url.startsWith("file:")) appendFileSync(${JSON.stringify(log)}, url + "\\n"); return next(url, ctx); }`;
  const register = path.join(root, "register.mjs");
  fs.writeFileSync(register, `import { register } from "node:module";\nregister("data:text/javascript," + encodeURIComponent(${JSON.stringify(hook)}));\n`);
  const cli = path.join(root, "dist/cli");
  const bin = path.join(root, "bin/vfioctl.js");
  return {
    root,
    bin,
    cli,
    loaded: () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : []),
    async run(argv, env = {}) {
      fs.rmSync(log, { force: true });
      try {
        const r = await run(process.execPath, ["--import", register, bin, ...argv], { cwd: repo, env: { ...process.env, NO_COLOR: "1", ...env }, maxBuffer: 64 << 20 });
        return { code: 0, out: r.stdout, err: r.stderr };
      } catch (e) {
        const x = e as { code?: unknown; stdout?: string; stderr?: string };
        if (typeof x.code !== "number") throw e;
        return { code: x.code, out: x.stdout ?? "", err: x.stderr ?? "" };
      }
    },
    manifest: () => JSON.parse(fs.readFileSync(path.join(cli, MANIFEST), "utf8")) as BundleManifest,
    writeManifest: (m) => fs.writeFileSync(path.join(cli, MANIFEST), JSON.stringify(m)),
  };
}

/**
 * What bin/vfioctl.js's loadBundle() says of the layout's dist/cli, asked in a fresh process (in
 * this one, V8's in-memory compilation cache answers for a source compiled before, and a code
 * cache is then neither used nor rejected).
 */
function loadState(l: Layout): { stale?: string; cache?: string } {
  const script = `const b = require(${JSON.stringify(l.bin)}).loadBundle(${JSON.stringify(l.cli)}); console.log(JSON.stringify({ stale: b.stale, cache: b.cache }));`;
  return JSON.parse(execFileSync(process.execPath, ["-e", script], { encoding: "utf8" })) as { stale?: string; cache?: string };
}

const fromDistSrc = (l: Layout) => l.loaded().some((u) => u.endsWith("/dist/src/cli/main.js"));

const host = path.join(repo, "scenarios/hosts", fs.readdirSync(path.join(repo, "scenarios/hosts")).filter((f) => /\.ya?ml$/.test(f)).sort()[0]!);

/** Commands compared: list in its forms, a host file (yaml is loaded), help, errors, other commands. */
const COMMANDS: string[][] = [
  ["--sim", "list"],
  ["--sim", "list", "--json"],
  ["--sim", host, "list", "--json"],
  ["--sim", host, "list"],
  ["help"],
  ["help", "list"],
  ["--version"],
  ["--sim", "explain", "0000:01:10.0"],
  ["--sim", "show", "0000:01:00.0", "--json"],
  ["--sim", "audit"],
  ["nosuch"],
  ["--sim", "list", "--json", "--root", "/nonexistent"],
  ["completion", "bash"],
];

test("the bundle and dist/src's ES modules print the same for list, list --json, a host file, help, errors and other commands", { timeout: 300_000 }, async () => {
  const l = await layout();
  try {
    const fast: Awaited<ReturnType<Layout["run"]>>[] = [];
    for (const argv of COMMANDS) {
      fast.push(await l.run(argv));
      assert.ok(!fromDistSrc(l), `${argv.join(" ")}: run from the bundle, not dist/src (loaded ${l.loaded().join(" ")})`);
    }
    // without dist/cli: the ES modules
    fs.rmSync(l.cli, { recursive: true });
    for (const [i, argv] of COMMANDS.entries()) {
      const plain = await l.run(argv);
      assert.ok(fromDistSrc(l), `${argv.join(" ")}: run from dist/src once the bundle is gone`);
      assert.deepEqual(fast[i], plain, `vfioctl ${argv.join(" ")}: same exit code, stdout and stderr from the bundle and from dist/src`);
    }
    assert.equal(fast[0]!.code, 0);
    assert.match(fast[0]!.out, /^kernel .*\n.*\n\nPF 0000:01:00\.0/);
    assert.equal(fast[10]!.code, 2, "an unknown command is a usage error");
  } finally {
    fs.rmSync(l.root, { recursive: true, force: true });
  }
});

test("a bundle made from other files of dist is not run: a changed module, a changed bundle, a damaged bundle, a missing manifest", { timeout: 300_000 }, async () => {
  const l = await layout();
  try {
    const expected = await l.run(["--sim", "list", "--json"]);
    assert.ok(!fromDistSrc(l) && expected.code === 0);
    const m = l.manifest();
    const { loadBundle } = require(l.bin) as { loadBundle(dir: string): { stale?: string; cache?: string } };
    assert.equal(loadBundle(l.cli).stale, undefined);

    // one module of dist/src rewritten since (tsc run again, no bundle made)
    const mod = path.join(l.root, "dist/src/lib/pciids.js");
    const before = fs.readFileSync(mod);
    fs.appendFileSync(mod, "\n// rebuilt\n");
    assert.match(loadBundle(l.cli).stale ?? "", /\.\.\/src\/lib\/pciids\.js changed since the bundle was made/);
    let r = await l.run(["--sim", "list", "--json"]);
    assert.ok(fromDistSrc(l), "a stale bundle is not run");
    assert.deepEqual(r, expected);
    // the same size, another modification time
    fs.writeFileSync(mod, before);
    fs.utimesSync(mod, new Date(), new Date(Date.now() + 5000));
    assert.match(loadBundle(l.cli).stale ?? "", /pciids\.js changed/);
    r = await l.run(["--sim", "list", "--json"]);
    assert.ok(fromDistSrc(l));
    assert.deepEqual(r, expected);
    l.writeManifest({ ...m, inputs: m.inputs.map(([f, size, t]) => [f, size, f.endsWith("pciids.js") ? fs.statSync(mod).mtimeMs : t]) });
    assert.equal(loadBundle(l.cli).stale, undefined, "fresh again once the manifest names the file as it is");

    // the bundle itself damaged: it fails to compile (the manifest rewritten to name it, on purpose)
    const bundle = path.join(l.cli, BUNDLE);
    fs.appendFileSync(bundle, "\n}}} this is not JavaScript");
    const st = fs.statSync(bundle);
    l.writeManifest({ ...l.manifest(), bundleSize: st.size, bundleMtimeMs: st.mtimeMs });
    assert.match(loadBundle(l.cli).stale ?? "", /cannot compile vfioctl\.cjs/);
    r = await l.run(["--sim", "list", "--json"]);
    assert.ok(fromDistSrc(l), "a bundle that does not compile is not run");
    assert.deepEqual(r, expected);
    // …and by the manifest as it was made, it is stale by its size
    l.writeManifest(m);
    assert.match(loadBundle(l.cli).stale ?? "", /vfioctl\.cjs changed since the bundle was made/);

    fs.rmSync(path.join(l.cli, MANIFEST));
    assert.match(loadBundle(l.cli).stale ?? "", /no manifest/);
    r = await l.run(["--sim", "list", "--json"]);
    assert.ok(fromDistSrc(l));
    assert.deepEqual(r, expected);
  } finally {
    fs.rmSync(l.root, { recursive: true, force: true });
  }
});

test("the code cache is given to V8 only when the manifest names this Node and V8 and the cache is the one the build wrote; the output is the same without it", { timeout: 300_000 }, async () => {
  const l = await layout();
  try {
    assert.equal(loadState(l).cache, "used");
    const expected = await l.run(["--sim", "list"]);
    const m = l.manifest();
    l.writeManifest({ ...m, node: "v18.0.0" });
    assert.equal(loadState(l).cache, "none", "a cache made by another Node is not read");
    assert.deepEqual(await l.run(["--sim", "list"]), expected);
    assert.ok(!fromDistSrc(l), "the bundle itself is still run: it is the same JavaScript as dist/src");
    l.writeManifest({ ...m, v8: "0.0" });
    assert.equal(loadState(l).cache, "none");
    l.writeManifest(m);
    assert.equal(loadState(l).cache, "used");
    // rewritten (another build's cache, or damaged): not the one the manifest names
    const cache = path.join(l.cli, CACHE);
    const bytes = fs.readFileSync(cache);
    for (let i = 0; i < bytes.length; i += 97) bytes[i] = bytes[i]! ^ 0x5a;
    fs.writeFileSync(cache, bytes);
    assert.equal(loadState(l).cache, "none", "a cache written after the manifest is not given to V8");
    assert.deepEqual(await l.run(["--sim", "list"]), expected);
    fs.writeFileSync(cache, bytes.subarray(0, 1000));
    l.writeManifest({ ...m, cacheMtimeMs: fs.statSync(cache).mtimeMs });
    assert.equal(loadState(l).cache, "none", "nor one of another size");
    // a cache V8 itself refuses: made for another source (a different length)
    const vm = require("node:vm") as typeof import("node:vm");
    fs.writeFileSync(cache, new vm.Script("(function () { return 42 })").createCachedData());
    const st = fs.statSync(cache);
    l.writeManifest({ ...m, cacheSize: st.size, cacheMtimeMs: st.mtimeMs });
    assert.equal(loadState(l).cache, "rejected");
    assert.deepEqual(await l.run(["--sim", "list"]), expected);
    fs.rmSync(cache);
    assert.equal(loadState(l).cache, "none");
    assert.deepEqual(await l.run(["--sim", "list"]), expected);
  } finally {
    fs.rmSync(l.root, { recursive: true, force: true });
  }
});

test("the bundle made by the build: every input is a module of dist, it leaves npm packages in node_modules and has no dynamic import left", { timeout: 120_000 }, async () => {
  const l = await layout();
  try {
    const m = l.manifest();
    assert.ok(m.inputs.some(([f]) => f === "../src/cli/main.js") && m.inputs.some(([f]) => f === "../src/kernel/kernel.js"), "main and the kernel model are bundled");
    for (const [f] of m.inputs) assert.match(f, /^\.\.\/(src|lab)\/.*\.js$/, `bundled ${f}`);
    const code = fs.readFileSync(path.join(l.cli, BUNDLE), "utf8");
    assert.ok(!/class YAMLMap\b/.test(code), "yaml is not in the bundle (it is loaded from node_modules by a host file)");
    assert.ok(!/(?<![\w$.'"])import\(/.test(code), "no import() left (a vm.Script has no module loader)");
    assert.ok(!code.includes("import.meta"), "import.meta is each module's own URL, written in");
    assert.equal(m.node, process.version);
  } finally {
    fs.rmSync(l.root, { recursive: true, force: true });
  }
});

test("src never reads a class's or function's own name (the bundle is built without keepNames: esbuild renames a top-level name two modules share, as KmsgReader and TokenStore)", { timeout: 120_000 }, async () => {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith(".ts")) files.push(path.join(d, e.name));
    }
  };
  walk(path.join(repo, "src"));
  assert.ok(files.length > 50);
  const reads = /\.constructor\.name\b|\bnew\.target\b|\binspect\(|\bconsole\.|\bformatWithOptions\(/;
  for (const f of files) {
    const code = fs.readFileSync(f, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
    const m = reads.exec(code);
    assert.equal(m, null, `${path.relative(repo, f)} reads a name the bundle may change: ${m?.[0]}`);
  }
  // the renames the bundle has now are of classes nothing prints
  const l = await layout();
  const code = fs.readFileSync(path.join(l.cli, BUNDLE), "utf8");
  fs.rmSync(l.root, { recursive: true, force: true });
  const renamed = [...new Set([...code.matchAll(/\b([A-Z][\w$]*\d)=class\b|\bclass ([A-Z][\w$]*\d)\b/g)].map((m) => m[1] ?? m[2]))].filter((n) => !files.some((f) => fs.readFileSync(f, "utf8").includes(`class ${n}`)));
  for (const n of renamed) assert.ok(!/Error\d*$/.test(n!), `an error class renamed in the bundle: ${n}`);
});

test("from the bundle, --sim list loads no npm package and neither node:crypto nor net (standard output a socket)", { timeout: 120_000 }, async () => {
  const l = await layout();
  try {
    const report = path.join(l.root, "report.cjs");
    fs.writeFileSync(report, `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(path.join(l.root, "report.json"))}, JSON.stringify({ builtins: process.moduleLoadList.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice(13)), packages: Object.keys(require.cache).filter((k) => k.includes("/node_modules/")) })));\n`);
    const { stdout } = await run(process.execPath, ["-r", report, l.bin, "--sim", "list"], { env: { ...process.env, NO_COLOR: "1" } });
    assert.match(stdout, /^kernel /);
    const r = JSON.parse(fs.readFileSync(path.join(l.root, "report.json"), "utf8")) as { builtins: string[]; packages: string[] };
    assert.ok(r.builtins.includes("vm") && !r.builtins.includes("internal/modules/esm/translators"), "run from the bundle (vm), no ES module loaded");
    assert.deepEqual(r.packages, []);
    // (the stream modules are loaded, by node:v8, which the command needs for its flags: see
    // bin/vfioctl.js deferOptimizer; standard output, a socket here, is still written without net)
    assert.ok(r.builtins.includes("v8"));
    for (const m of ["crypto", "net", "zlib", "child_process"]) assert.ok(!r.builtins.includes(m), `${m} loaded: ${r.builtins.join(" ")}`);
  } finally {
    fs.rmSync(l.root, { recursive: true, force: true });
  }
});

test("the command runs its first second without V8's optimizing compiler, which comes back after it", { timeout: 30_000 }, async () => {
  const bin = path.join(repo, "bin/vfioctl.js");
  // the flags the command sets, as a preload sees them (v8.setFlagsFromString wrapped)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-v8flags-"));
  try {
    const pre = path.join(dir, "flags.cjs");
    // and whether V8 took the bundle's code cache (it refuses one made under other flags)
    fs.writeFileSync(
      pre,
      `const v8 = require("node:v8"); const set = v8.setFlagsFromString; v8.setFlagsFromString = (f) => { process.stderr.write("flag " + f + "\\n"); set(f); };\n` +
        `const vm = require("node:vm"); const S = vm.Script; vm.Script = class extends S { constructor(src, o) { super(src, o); if (o && o.cachedData) process.stderr.write("cache " + (this.cachedDataRejected ? "rejected" : "used") + "\\n"); } };\n`,
    );
    const r = await promisify(execFile)(process.execPath, ["--require", pre, bin, "--version"], { encoding: "utf8" });
    // (a stale bundle, as in a copy of the checkout whose files' times changed, runs from dist/src: no cache then)
    const fresh = (require(bin) as { loadBundle(): { stale?: string } }).loadBundle().stale === undefined;
    assert.match(r.stderr, fresh ? /^cache used\nflag --no-turbofan\n/ : /^flag --no-turbofan\n/, "set before the command runs, after the bundle is compiled with its cache");
    assert.doesNotMatch(r.stderr, /flag --turbofan\n/, "a command done within the first second exits before the compiler is back");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const { deferOptimizer, TURBOFAN_AFTER_MS } = require(bin) as { deferOptimizer(v8: { setFlagsFromString(f: string): void }): void; TURBOFAN_AFTER_MS: number };
  const calls: [string, number][] = [];
  const t0 = Date.now();
  deferOptimizer({ setFlagsFromString: (f) => void calls.push([f, Date.now() - t0]) });
  assert.deepEqual(calls.map((c) => c[0]), ["--no-turbofan"]);
  await new Promise((r) => setTimeout(r, TURBOFAN_AFTER_MS + 200));
  assert.deepEqual(calls.map((c) => c[0]), ["--no-turbofan", "--turbofan"]);
  assert.ok(calls[1]![1] >= TURBOFAN_AFTER_MS - 5, `back after ${calls[1]![1]} ms`);
});
