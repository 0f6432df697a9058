#!/usr/bin/env node
// Builds the Linux backend's native addon (src/sys/linux/native/ioctl.c: ioctl, eventfd, lseek
// and, from batch.c, batch reads, through Node-API) into build/native/ioctl.node with the system's C compiler, and checks that
// this node loads it. Run by `npm install` (package.json "install", also when the published
// package is installed: it ships this script and the C sources); by hand:
//
//   node tools/build-native.mjs [--out FILE] [--strict]
//
// Without a compiler, without Node's headers, or off Linux, it says why and exits 0 (--strict:
// 1): the addon is then absent and src/sys/linux/ioctl.ts uses koffi, as it does when
// VFIOCTL_FFI=koffi. Compiler: $CC, else `cc`. Headers: <node prefix>/include/node (from
// process.execPath), else /usr/include/node.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const source = path.join(root, "src/sys/linux/native/ioctl.c");
const args = process.argv.slice(2);
const strict = args.includes("--strict");
const outAt = args.indexOf("--out");
const out = path.resolve(outAt >= 0 && args[outAt + 1] ? args[outAt + 1] : path.join(root, "build/native/ioctl.node"));

function skip(why, fix) {
  console.error(`vfioctl: native ioctl addon not built: ${why}${fix ? `; ${fix}` : ""}. The Linux backend uses koffi instead (slower per ioctl).`);
  process.exit(strict ? 1 : 0);
}

if (process.platform !== "linux") skip(`the addon is for Linux, this is ${process.platform}`);
const headerDirs = [path.join(path.dirname(path.dirname(process.execPath)), "include/node"), "/usr/include/node"];
const headers = headerDirs.find((d) => fs.existsSync(path.join(d, "node_api.h")));
if (!headers) skip(`no node_api.h in ${headerDirs.join(" or ")}`, "install Node's headers (Debian: apt-get install libnode-dev, or the nodejs package of nodesource)");
const cc = process.env.CC || "cc";
const tmp = `${out}.${process.pid}.tmp`;
fs.mkdirSync(path.dirname(out), { recursive: true });
const r = spawnSync(cc, ["-O2", "-Wall", "-Wextra", "-shared", "-fPIC", "-pthread", `-I${headers}`, "-o", tmp, source], { encoding: "utf8" });
if (r.error) {
  fs.rmSync(tmp, { force: true });
  const e = /** @type {NodeJS.ErrnoException} */ (r.error);
  skip(`cannot run the C compiler \`${cc}\`: ${e.code ?? e.message}`, e.code === "ENOENT" ? "install one (Debian: apt-get install gcc libc6-dev) and run `node tools/build-native.mjs`" : undefined);
}
if (r.status !== 0) {
  fs.rmSync(tmp, { force: true });
  skip(`\`${cc}\` failed on ${path.relative(root, source)} (exit ${r.status}):\n${(r.stderr || r.stdout).trim()}`, "Debian: apt-get install gcc libc6-dev");
}
if (r.stderr.trim()) console.error(r.stderr.trim());
// loaded before it replaces a previous build (a new inode: a process that has the old one mapped
// keeps it): an addon this node cannot load is never left in place
try {
  const mod = { exports: {} };
  process.dlopen(mod, tmp);
  const addon = mod.exports;
  const ebadf = addon.ioctl(-1, 0x5451 /* FIOCLEX */, 0);
  if (ebadf !== -9) throw new Error(`ioctl(-1, FIOCLEX, 0) returned ${ebadf}, expected -9 (-EBADF)`);
  const missing = addon.readlinks("/nonexistent/vfioctl-build-check")[0];
  if (missing !== -2) throw new Error(`readlinks(["/nonexistent/..."]) gave ${missing}, expected -2 (-ENOENT)`);
} catch (e) {
  fs.rmSync(tmp, { force: true });
  skip(`the built addon does not work in ${process.execPath} ${process.version}: ${e.message}`);
}
fs.renameSync(tmp, out);
console.error(`vfioctl: built ${path.relative(process.cwd(), out) || out} (${cc}, ${headers})`);
