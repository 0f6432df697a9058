/**
 * The npm package: `npm pack` ships what users run (bin/, dist/src/, the man page, docs, README)
 * and not the tests, lab, benchmarks or test library; a user's TypeScript project that installs
 * the tarball compiles against it with moduleResolution node16, nodenext and bundler. Offline:
 * the tarball is unpacked into the project's node_modules and its dependencies are linked from
 * this checkout's (what `npm install ./vfioctl-*.tgz` would put there).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

test("npm pack ships bin, dist/src, the man page and docs, not tests, lab or benchmarks; a TypeScript project compiles against it", { timeout: 120_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-pack-"));
  try {
    // dist/ is built by `npm test` before the tests run: no prepare script here
    const { stdout } = await run(npm, ["pack", "--json", "--ignore-scripts", "--pack-destination", tmp], { cwd: repo, maxBuffer: 64 << 20 });
    const [info] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    const files = info!.files.map((f) => f.path);
    for (const f of ["bin/vfioctl.js", "dist/src/index.js", "dist/src/index.d.ts", "dist/src/cli/main.js", "man/vfioctl.1", "README.md", "package.json", "docs/cli.md", "docs/json.md"]) assert.ok(files.includes(f), `the package has ${f}`);
    // the addon's C sources and its build script (the package's install script) are the only ones shipped
    const native = ["src/sys/linux/native/ioctl.c", "src/sys/linux/native/batch.c", "tools/build-native.mjs"];
    for (const f of native) assert.ok(files.includes(f), `the package has ${f}`);
    for (const f of files) if (!native.includes(f)) assert.ok(!/^(dist\/(test|lab|bench|testlib)|test|lab|bench|testlib|src|scenarios|tools|build)\//.test(f), `the package does not ship ${f}`);
    assert.ok(!files.some((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")), "no TypeScript sources");

    // a user's project with the tarball installed
    const proj = path.join(tmp, "app");
    const mod = path.join(proj, "node_modules");
    fs.mkdirSync(path.join(mod, "vfioctl"), { recursive: true });
    await run("tar", ["xzf", path.join(tmp, info!.filename), "-C", path.join(mod, "vfioctl"), "--strip-components=1"]);
    const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    fs.mkdirSync(path.join(mod, "@types"), { recursive: true });
    for (const dep of [...Object.keys(pkg.dependencies), "@types/node"]) fs.symlinkSync(fs.realpathSync(path.join(repo, "node_modules", dep)), path.join(mod, dep));
    fs.writeFileSync(path.join(proj, "package.json"), JSON.stringify({ name: "app", type: "module", private: true }));
    fs.writeFileSync(
      path.join(proj, "index.ts"),
      `import { bootKernel, readAttr, VfioctlError, inventory, type Inventory } from "vfioctl";
const k = await bootKernel();
const sh = k.spawn("sh");
const total: string = await readAttr(sh, "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs");
const inv: Inventory = await inventory(sh, { holders: false });
const e = new VfioctlError("BAD_BDF", "x");
console.log(total.trim(), inv.pfs.length, e.code);
`,
    );
    const tsc = path.join(repo, "node_modules/typescript/bin/tsc");
    // node16 checks the package's declarations themselves too (skipLibCheck off) and emits; the others resolve and type the imports
    for (const [module, resolution, emit] of [
      ["node16", "node16", true],
      ["nodenext", "nodenext", false],
      ["esnext", "bundler", false],
    ] as const) {
      fs.writeFileSync(path.join(proj, "tsconfig.json"), JSON.stringify({ compilerOptions: { target: "es2022", module, moduleResolution: resolution, strict: true, noEmit: !emit, outDir: "out", types: ["node"], skipLibCheck: !emit }, files: ["index.ts"] }));
      await run(process.execPath, [tsc, "-p", proj], { cwd: proj }).catch((e: { stdout?: string }) => assert.fail(`tsc --moduleResolution ${resolution}: ${e.stdout}`));
    }
    // the node16 build runs against the installed package
    const r = await run(process.execPath, [path.join(proj, "out/index.js")], { cwd: proj });
    assert.match(r.stdout, /^\d+ 5 BAD_BDF$/m);
    const v = await run(process.execPath, [path.join(mod, "vfioctl/bin/vfioctl.js"), "--version"], { cwd: proj });
    assert.match(v.stdout, /^vfioctl \d+\.\d+\.\d+/);
    // what npm runs as the package's install script builds the addon from the shipped sources,
    // and the installed package's backend loads it (skipped without a compiler: the script says
    // so and exits 0, and the backend uses koffi)
    const installScript = (JSON.parse(fs.readFileSync(path.join(mod, "vfioctl/package.json"), "utf8")) as { scripts: Record<string, string> }).scripts.install;
    assert.equal(installScript, "node tools/build-native.mjs");
    await run("sh", ["-c", installScript!], { cwd: path.join(mod, "vfioctl") });
    if (fs.existsSync(path.join(repo, "build/native/ioctl.node"))) {
      const info = await run(process.execPath, ["--input-type=module", "-e", `const m = await import(${JSON.stringify(path.join(mod, "vfioctl/dist/src/sys/linux/ioctl.js"))}); const i = m.ffiInfo(); console.log(i.kind, i.from, typeof m.batchReads()?.workShared)`], { cwd: proj });
      assert.equal(info.stdout.trim(), `addon ${path.join(mod, "vfioctl/build/native/ioctl.node")} function`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
