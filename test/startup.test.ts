/**
 * Start-up: a command loads its own module and what it imports, nothing else (no other
 * command, no `yaml` unless a file needs parsing, no kernel model on the real backend), and the
 * table that maps commands to modules (src/cli/commands/modules.ts) agrees with ./all.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { COMMANDS } from "../src/cli/commands/index.js";
import { COMMAND_MODULES } from "../src/cli/commands/modules.js";

const run = promisify(execFile);
const dist = new URL("../src/", import.meta.url).pathname;

/**
 * The modules (paths under dist/src/) and the npm packages a `main(argv)` in a fresh process
 * loads: a loader hook reports every module URL, the CJS cache shows packages such as yaml.
 */
async function loadedBy(argv: string[]): Promise<{ modules: string[]; packages: string[]; builtins: string[] }> {
  const script = `
import { register, createRequire } from "node:module";
import { MessageChannel } from "node:worker_threads";
const { port1, port2 } = new MessageChannel();
const urls = [];
port1.on("message", (u) => urls.push(u));
port1.unref();
register("data:text/javascript," + encodeURIComponent("let port; export function initialize(d) { port = d.port; } export async function load(url, ctx, next) { port.postMessage(url); return next(url, ctx); }"), { data: { port: port2 }, transferList: [port2] });
const { main } = await import(${JSON.stringify(dist + "cli/main.js")});
const code = await main(${JSON.stringify(argv)}, { out() {}, err(s) { process.stderr.write(s + "\\n"); } });
await new Promise((r) => setTimeout(r, 100));
const require = createRequire(import.meta.url);
const packages = [...new Set(Object.keys(require.cache).map((k) => /node_modules\\/([^/]+)/.exec(k)?.[1]).filter(Boolean))];
const builtins = process.moduleLoadList.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice(13));
console.log(JSON.stringify({ code, builtins, modules: urls.filter((u) => u.startsWith("file://" + ${JSON.stringify(dist)})).map((u) => u.slice(${JSON.stringify("file://" + dist)}.length)), packages }));
`;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { maxBuffer: 16 << 20 });
  const r = JSON.parse(stdout.trim().split("\n").pop()!) as { code: number; modules: string[]; packages: string[]; builtins: string[] };
  assert.equal(r.code, 0, `${argv.join(" ")} exited ${r.code}`);
  return r;
}

test("vfioctl --sim list loads list's module, the library and the kernel model: no other command, no yaml, no host or scenario layer, no real backend, no node:crypto", { timeout: 60_000 }, async () => {
  const { modules, packages, builtins } = await loadedBy(["--sim", "list"]);
  assert.ok(modules.includes("cli/commands/list.js") && modules.includes("kernel/kernel.js"), modules.join(" "));
  const commands = modules.filter((m) => m.startsWith("cli/commands/"));
  assert.deepEqual(commands.sort(), ["cli/commands/common.js", "cli/commands/index.js", "cli/commands/list.js", "cli/commands/modules.js", "cli/commands/render.js"]);
  for (const m of modules) assert.ok(!/^(host|scenario|sim)\/|^sys\/linux\//.test(m), `--sim list loaded ${m}`);
  assert.deepEqual(packages, [], "no npm package (yaml) for the built-in host");
  // the kernel draws boot_id (and a CSPRNG's bytes) when first asked: the default host's boot and list ask neither
  assert.ok(!builtins.includes("crypto"), `node:crypto loaded: ${builtins.join(" ")}`);
});

test("vfioctl --root DIR list loads the real backend and neither the kernel model nor koffi", { timeout: 60_000 }, async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-startup-"));
  fs.mkdirSync(path.join(root, "sys/bus/pci/devices"), { recursive: true });
  try {
    const { modules, packages } = await loadedBy(["--root", root, "list"]);
    assert.ok(modules.includes("sys/linux/host.js"), modules.join(" "));
    for (const m of modules) assert.ok(!/^kernel\/(kernel|process|fs\/|host\/|iommufd\/|vfio\/vfio_main)/.test(m) && !/^(host|scenario|sim)\//.test(m), `--root list loaded ${m}`);
    assert.deepEqual(packages, []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("a host file still loads yaml, on first use", { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-startup-"));
  const file = path.join(dir, "h.yaml");
  fs.writeFileSync(file, "name: one\ndevices:\n  - { bdf: 0000:01:00.0, vendor: 0x8086, device: 0x10c9, class: 0x020000, driver: igb }\n");
  try {
    const { packages } = await loadedBy(["--sim", file, "list"]);
    assert.deepEqual(packages, ["yaml"]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the command-to-module table lists every command ./all.js registers, in its order, and loading a command's module alone registers it", { timeout: 60_000 }, async () => {
  await import("../src/cli/commands/all.js");
  assert.deepEqual(
    COMMAND_MODULES.map(([c]) => c),
    COMMANDS.map((c) => c.name),
    "src/cli/commands/modules.ts COMMAND_MODULES must name every command of ./all.ts, in the same order",
  );
  const byModule = new Map<string, string[]>();
  for (const [c, m] of COMMAND_MODULES) byModule.set(m, [...(byModule.get(m) ?? []), c]);
  await Promise.all(
    [...byModule].map(async ([m, names]) => {
      const script = `const { COMMANDS } = await import(${JSON.stringify(dist + "cli/commands/index.js")}); await import(${JSON.stringify(dist + `cli/commands/${m}.js`)}); console.log(JSON.stringify(COMMANDS.map((c) => c.name)));`;
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script]);
      // (a module may register more: sim.ts and args.ts import token.ts)
      const registered = JSON.parse(stdout) as string[];
      for (const n of names) assert.ok(registered.includes(n), `cli/commands/${m}.js registers ${n} (it registered ${registered.join(", ")})`);
    }),
  );
});
