#!/usr/bin/env node
/**
 * The `vfioctl` command. A CommonJS script (bin/package.json): it starts without Node's ES module
 * loader when it can.
 *
 * Fast start: `npm run build` also writes dist/cli/ (tools/cli-bundle.ts): dist/src's command
 * line as one CommonJS file (`vfioctl.cjs`), a V8 code cache of the functions a `list` runs
 * (`vfioctl.cjs.cache`) and a manifest naming every file of dist the bundle was made from, with
 * its size and modification time. The bundle runs only when each of those files, and the bundle,
 * are still the ones it was made from (a `tsc` since the bundle makes it stale); the cache is
 * given to V8 only when the manifest's Node and V8 versions are this process's and the cache is
 * the one the same build wrote (its size and time). Otherwise, or when the bundle cannot be read
 * or compiled, the command runs from dist/src as ES modules: the same code, the same output.
 * (A file rewritten with its size and modification time kept is not seen, as make would not see
 * it: checking the bytes, zlib.crc32 of bundle and cache, loaded the stream modules, ~2 ms.)
 */
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const BUNDLE_DIR = path.join(__dirname, "..", "dist", "cli");

/** The wrapper the bundle is compiled in (the code cache is made for exactly this source). */
const wrap = (source) => `(function (exports, require, module, __filename, __dirname) {${source}\n})`;

/**
 * The bundle in `dir` if it is fresh: `{ cli, main, cache, script }` (cache: "used", "rejected"
 * by V8, or "none" when not given to it), or `{ stale: reason }`. Compiles the bundle and runs its
 * top level.
 */
function loadBundle(dir = BUNDLE_DIR) {
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
  } catch (e) {
    return { stale: `no manifest (${e.code || e.message})` };
  }
  if (manifest.schema !== "vfioctl.cli-bundle/1" || !Array.isArray(manifest.inputs)) return { stale: "unknown manifest" };
  const file = path.join(dir, manifest.bundle);
  for (const [rel, size, mtimeMs] of [[manifest.bundle, manifest.bundleSize, manifest.bundleMtimeMs], ...manifest.inputs]) {
    // (not path.join: normalizing ~130 paths costs more than the system calls; stat resolves "..")
    const st = fs.statSync(`${dir}/${rel}`, { throwIfNoEntry: false });
    if (!st || st.size !== size || st.mtimeMs !== mtimeMs) return { stale: `${rel} changed since the bundle was made` };
  }
  let cachedData;
  if (manifest.node === process.version && manifest.v8 === process.versions.v8 && manifest.arch === process.arch) {
    // V8 checks a cache's own versions and flags and the source's length, not its bytes: the
    // manifest ties it to the bundle it was made for (written last by the same build)
    const st = fs.statSync(`${dir}/${manifest.cache}`, { throwIfNoEntry: false });
    if (st && st.size === manifest.cacheSize && st.mtimeMs === manifest.cacheMtimeMs) {
      try {
        cachedData = fs.readFileSync(`${dir}/${manifest.cache}`);
      } catch {
        cachedData = undefined;
      }
    }
  }
  let script;
  try {
    script = new vm.Script(wrap(fs.readFileSync(file, "utf8")), { filename: file, ...(cachedData ? { cachedData } : {}) });
  } catch (e) {
    return { stale: `cannot compile ${manifest.bundle}: ${e.message}` };
  }
  const m = { exports: {} };
  try {
    script.runInThisContext()(m.exports, require, m, file, dir);
  } catch (e) {
    return { stale: `cannot load ${manifest.bundle}: ${e.message}` };
  }
  if (typeof m.exports.cli !== "function") return { stale: `${manifest.bundle} exports no cli()` };
  return { cli: m.exports.cli, main: m.exports.main, cache: cachedData ? (script.cachedDataRejected ? "rejected" : "used") : "none", script };
}

function start(argv) {
  let fast;
  try {
    fast = loadBundle();
  } catch (e) {
    fast = { stale: e.message };
  }
  // only now: V8 gives a code cache only to a process whose flags are the ones it was made with
  deferOptimizer();
  const cli = fast.cli ? Promise.resolve(fast.cli) : import("../dist/src/cli/main.js").then((m) => m.cli);
  // Exit explicitly: after a write that Linux keeps blocked (sriov_numvfs, unbind) was reported
  // with --timeout, a libuv thread is still inside write(2) and would keep the process alive.
  // cli() has flushed standard output (and reported a write error on it) before it resolves.
  cli.then((run) => run(argv)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`vfioctl: internal error: ${e && e.stack ? e.stack : e}\n`, () => process.exit(70));
    },
  );
}

/** How long a command runs before V8's optimizing compiler may start (see deferOptimizer). */
const TURBOFAN_AFTER_MS = 1000;

/**
 * V8's optimizing compiler (TurboFan) off for the command's first second, then on again. Most
 * commands are done well within it (`list` of 4,112 devices: ~0.3 s): their code runs in V8's
 * interpreter and baseline compiler, and the optimizing compiler's background thread, whose code
 * would barely pay back, no longer takes the second core from the threadpool thread that reads
 * half of /sys. Measured on 2 cores (docs/benchmarks.md, "fifth round"): a 16×256 `list` used
 * ~25% less CPU. A command that runs longer (a host apply, the model of a large host) gets
 * optimized code after the first second as before. Set once the bundle is compiled: V8 checks a
 * code cache against the flags it was made with, and a flag changed before would have it
 * rejected (then every function of a `list` compiled from source, ~25 ms). Nothing is hot yet
 * then; V8 reads this flag at each tier-up decision.
 */
function deferOptimizer(v8 = require("node:v8")) {
  v8.setFlagsFromString("--no-turbofan");
  setTimeout(() => v8.setFlagsFromString("--turbofan"), TURBOFAN_AFTER_MS).unref();
}

if (require.main === module) start(process.argv.slice(2));
else module.exports = { loadBundle, wrap, BUNDLE_DIR, deferOptimizer, TURBOFAN_AFTER_MS };
