/**
 * The command's conventions, made from the definitions (src/cli/spec.ts): parsing, generated
 * help with exit codes, global options and their errors (--json included), the output layer
 * (ASCII off a terminal, colour only on one), shell completion in a real bash, the man page,
 * standard output errors, and the --token-stdin prompt.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { main, type MainIo } from "../src/cli/main.js";
import { allCommands } from "../src/cli/commands/modules.js";
import { allOptions, EXIT_RULE, parseOptions, type OptionSpec } from "../src/cli/spec.js";
import { completionScript, complete, manPage } from "../src/cli/builtins.js";
import { toAscii } from "../src/cli/output.js";
import { VfioctlError } from "../src/lib/errors.js";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;
const bin = path.join(repo, "bin/vfioctl.js");

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(argv: string[], io: Partial<MainIo> = {}): Promise<Run> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (s) => (out += s + "\n"), err: (s) => (err += s + "\n"), env: {}, ...io });
  return { code, out, err };
}

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

test("parseOptions: --x V, --x=V, booleans, repeatable values, --, negative numbers; unknown options and missing values are bad input", () => {
  const opts: OptionSpec[] = [
    { name: "config", type: "string", value: "FILE", description: "" },
    { name: "all", short: "a", type: "boolean", description: "" },
    { name: "before", type: "string", multiple: true, value: "UNIT", description: "" },
  ];
  const p = parseOptions(["x", "--config", "c.yaml", "-a", "--before=a", "--before", "b", "-1", "--", "--all"], opts);
  assert.deepEqual(p.positional, ["x", "-1", "--all"]);
  assert.equal(p.flags.get("config"), "c.yaml");
  assert.equal(p.flags.get("all"), true);
  assert.deepEqual(p.lists.get("before"), ["a", "b"]);
  assert.throws(() => parseOptions(["--nope"], opts, "list"), (e: unknown) => e instanceof VfioctlError && e.kind === "usage" && /^list: unknown option "--nope": expected --config FILE, --all, --before UNIT$/.test(e.message));
  assert.throws(() => parseOptions(["--config"], opts), /--config: expected a value \(FILE\), got nothing/);
  assert.throws(() => parseOptions(["--all=yes"], opts), /--all: takes no value/);
});

test("every command's --help is generated from its definition: usage, every option, the exit codes (2 always), examples", async () => {
  for (const c of await allCommands()) {
    const h = c.help;
    assert.match(h, new RegExp(`^usage: vfioctl .*${c.name}`), c.name);
    assert.match(h, /\nExit codes:\n(.*\n)*\s+2 {2}bad usage or bad input \(nothing changed\)/, c.name);
    assert.match(h, /\nExamples?:\n/, c.name);
    for (const { option } of allOptions(c)) if (!option.hidden) assert.ok(h.includes(`--${option.name}`), `${c.name} --help names --${option.name}`);
    for (const code of Object.keys(c.exits)) assert.ok(EXIT_RULE.some(([x]) => x === Number(code)), `${c.name}: exit ${code} is one of the documented codes`);
    const r = await cli([c.name, "--help"]);
    assert.equal(r.code, 0);
    assert.equal(r.out.trimEnd(), toAscii(h), c.name);
  }
});

test("an option a command does not declare is refused with exit 2, naming what it takes", async () => {
  const r = await cli(["--sim", "list", "--frob"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /vfioctl list: unknown option "--frob": expected --all, --no-holders/);
  const t = await cli(["--sim", "token", "verify", "0000:af:10.0", "--show-token"]);
  assert.equal(t.code, 2);
  assert.match(t.err, /token verify: unknown option "--show-token": expected --token-file F, --token-stdin, --token UUID, --from-store, --config FILE/);
});

test("the global usage lists the global options, every command and the exit-code rule", async () => {
  const r = await cli(["--help"]);
  assert.equal(r.code, 0);
  for (const o of ["--sim [HOSTFILE]", "--state DIR", "--profile VERSION", "--root DIR", "--json", "-q, --quiet", "--timeout MS"]) assert.ok(r.out.includes(o), o);
  for (const c of await allCommands()) assert.match(r.out, new RegExp(`^  ${c.name} `, "m"));
  assert.match(r.out, /^ {2}completion /m);
  for (const [code] of EXIT_RULE) assert.match(r.out, new RegExp(`^ +${code}  `, "m"));
  const none = await cli([]);
  assert.equal(none.code, 2);
  assert.match(none.err, /^usage: vfioctl/);
});

test("help nosuch: 'unknown command nosuch' and the command list on stderr, exit 2; help token: token's help", async () => {
  const r = await cli(["help", "nosuch"]);
  assert.equal(r.code, 2);
  assert.equal(r.out, "");
  assert.match(r.err, /^vfioctl: unknown command nosuch\ncommands:\n {2}token /);
  assert.match(r.err, /^ {2}list +PF -> VF tree/m);
  const t = await cli(["help", "token"]);
  assert.equal(t.code, 0);
  assert.match(t.out, /^usage: vfioctl token set <pf>/);
});

test("--sim HOSTFILE: a .yaml/.yml/.json file is the host; any other file name is an error naming it and the extensions (not a command)", async () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-global-"));
  fs.writeFileSync(path.join(d, "host.txt"), "pfs: []\n");
  const r = await cli(["--sim", path.join(d, "host.txt"), "list"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--sim .*host\.txt: expected a host description file ending in \.yaml, \.yml or \.json .*\(the file exists, but is not named as a host description\)/);
  const missing = await cli(["--sim", "host.txt", "list"]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /--sim host\.txt: expected a host description file ending in \.yaml, \.yml or \.json/);
  const eq = await cli(["--sim=host.txt", "list"]);
  assert.equal(eq.code, 2);
  // a command right after --sim is the command
  assert.equal((await cli(["--sim", "list"])).code, 0);
  const yaml = await cli(["--sim", "examples/does-not-exist.yaml", "list"]);
  assert.equal(yaml.code, 2);
  assert.match(yaml.err, /does-not-exist\.yaml/);
});

test("--profile without --sim and --sim with --root are usage errors saying why; --state needs --sim", async () => {
  const p = await cli(["--profile", "6.12", "list"]);
  assert.equal(p.code, 2);
  assert.match(p.err, /--profile: only with --sim \(it picks the simulated host's kernel; a real host runs its own\)/);
  const r = await cli(["--sim", "--root", "/tmp", "list"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--root: not with --sim/);
  const s = await cli(["--state", "/tmp/x", "list"]);
  assert.equal(s.code, 2);
  assert.match(s.err, /--state: only with --sim/);
  // sim run takes its own --profile
  const sc = await cli(["sim", "run", "scenarios/token-decision-table.yaml", "--profile", "6.12"], { utf8: true });
  assert.notEqual(sc.code, 2, sc.err);
});

test("--json holds for usage, global-option and backend errors: a vfioctl.error/1 object on stdout and the message on stderr", async () => {
  for (const [argv, kind, re] of [
    [["--json", "--profile", "6.12", "list"], "USAGE", /--profile: only with --sim/],
    [["--json", "--timeout", "soon", "list"], "USAGE", /--timeout: expected milliseconds/],
    [["--json", "nosuch"], "USAGE", /unknown command "nosuch"/],
    [["--json", "--sim", "x.yaml", "list"], "HOST_FILE", /x\.yaml/],
    [["--json", "--sim", "list", "--frob"], "BAD_INPUT", /unknown option "--frob"/],
    [["--json", "--sim", "show", "0000:99:00.0"], "NO_DEVICE", /0000:99:00\.0/],
  ] as const) {
    const r = await cli([...argv]);
    assert.equal(r.code, 2, argv.join(" "));
    const j = JSON.parse(r.out) as Record<string, unknown>;
    assert.equal(j.schema, "vfioctl.error/1");
    assert.equal(j.error, kind, argv.join(" "));
    assert.match(String(j.message), re);
    assert.equal(j.exit, 2);
    assert.match(r.err, re);
  }
});

test("the output layer: UTF-8 symbols on a UTF-8 terminal, ASCII when not a terminal or not a UTF-8 locale; colour only on a terminal without NO_COLOR", async () => {
  const tty = await cli(["--sim", "list"], { isTTY: true, env: { LANG: "en_US.UTF-8", TERM: "xterm" } });
  assert.match(tty.out, /├─ VF0/);
  assert.match(tty.out, /● VF token required/);
  assert.match(tty.out, /\x1b\[/, "colour on a terminal");
  const pipe = await cli(["--sim", "list"], { env: { LANG: "en_US.UTF-8" } });
  assert.match(pipe.out, /^\|- VF0 +0000:af:10\.0/m);
  assert.match(pipe.out, /^`- VF1 +0000:af:10\.1/m);
  assert.match(pipe.out, /\* VF token required/);
  assert.doesNotMatch(pipe.out, /[^\x00-\x7f]/, "plain ASCII off a terminal");
  assert.doesNotMatch(pipe.out, /\x1b\[/, "no colour off a terminal");
  const c = await cli(["--sim", "list"], { isTTY: true, env: { LANG: "C" } });
  assert.doesNotMatch(c.out, /[^\x00-\x7f]/, "plain ASCII in the C locale");
  const nocolor = await cli(["--sim", "list"], { isTTY: true, env: { LANG: "C.UTF-8", NO_COLOR: "1" } });
  assert.match(nocolor.out, /├─/);
  assert.doesNotMatch(nocolor.out, /\x1b\[/);
  const dumb = await cli(["--sim", "list"], { isTTY: true, env: { LC_ALL: "C.UTF-8", TERM: "dumb" } });
  assert.doesNotMatch(dumb.out, /\x1b\[/);
  const explain = await cli(["--sim", "explain", "0000:af:10.0", "--errno", "EACCES"], { env: {} });
  assert.match(explain.out, /^open: FAIL open 0000:af:10\.0: EACCES/m);
  assert.match(explain.out, /^ 2\. - EACCES/m);
  assert.equal(toAscii("✓ a → b … ✗ — c·d é"), "ok a -> b ... FAIL -- c-d e");
  // JSON is printed as the command made it
  const j = await cli(["--sim", "--json", "list"], { env: {} });
  assert.equal(JSON.parse(j.out).schema, "vfioctl.list/1");
});

test("--quiet: the result and errors, without the kernel log echo and notes", async () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-quiet-"));
  const loud = await cli(["--sim", "--state", d, "sriov", "0000:01:00.0", "2"]);
  assert.equal(loud.code, 0, loud.err);
  assert.match(loud.out, /kernel: /);
  const quiet = await cli(["--sim", "--state", d, "-q", "sriov", "0000:01:00.0", "3", "--via-zero"]);
  assert.equal(quiet.code, 0, quiet.err);
  assert.match(quiet.out, /0000:01:00\.0: .* 3 VFs/);
  assert.doesNotMatch(quiet.out, /kernel: /);
});

test("--token-stdin on a terminal prompts (without echo) for the device's token instead of waiting", async () => {
  const prompts: string[] = [];
  const r = await cli(["--sim", "token", "verify", "0000:af:10.0", "--token-stdin"], {
    stdinTTY: true,
    secret: async (p) => {
      prompts.push(p);
      return "01234567-89ab-cdef-0123-456789abcdef\n";
    },
  });
  assert.deepEqual(prompts, ["VF token for 0000:af:10.0: "]);
  assert.equal(r.code, 1, r.err);
  assert.match(r.out, /mismatch/);
});

test("vfioctl completion bash, sourced into bash, completes commands, subcommands, options, devices and drivers on --sim", { skip: !has("bash") && "bash is not installed" }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-compl-"));
  fs.symlinkSync(bin, path.join(dir, "vfioctl"));
  const script = path.join(dir, "vfioctl.bash");
  fs.writeFileSync(script, completionScript("bash"));
  const words = async (w: string[], cword: number, line?: string) => {
    const set = line === undefined ? `COMP_WORDS=(${w.map((x) => `'${x}'`).join(" ")}); COMP_CWORD=${cword}` : `COMP_LINE='${line}'; COMP_POINT=\${#COMP_LINE}`;
    const { stdout } = await run("bash", ["-c", `source ${script}; ${set}; _vfioctl; printf '%s\\n' "\${COMPREPLY[@]}"`], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, cwd: repo });
    return stdout.split("\n").filter(Boolean);
  };
  assert.deepEqual(await words(["vfioctl", "--sim", "bi"], 2), ["bind"]);
  assert.ok((await words(["vfioctl", ""], 1)).includes("explain"));
  assert.deepEqual(await words(["vfioctl", "--sim", "token", "s"], 3), ["set", "show"]);
  assert.ok((await words(["vfioctl", "--sim", "token", "set", "--s"], 4)).includes("--show-token"));
  const devices = await words(["vfioctl", "--sim", "bind", ""], 3);
  assert.ok(devices.includes("0000:05:00.0") && devices.includes("0000:af:10.0"), devices.join(" "));
  assert.deepEqual(await words(["vfioctl", "--sim", "sriov", "0000:0"], 3), ["0000:01:00.0", "0000:06:00.0"], "sriov completes PFs");
  const drivers = await words(["vfioctl", "--sim", "bind", "0000:05:00.0", ""], 4);
  assert.ok(drivers.includes("vfio-pci") && drivers.includes("igb"), drivers.join(" "));
  // from a real command line: bash breaks words at ':'; only the part after the last one is replaced
  assert.deepEqual(await words([], 0, "vfioctl --sim token verify 0000:af:1"), ["10.0", "10.1"]);
  // a state directory typed on the line is the host whose devices are completed
  const st = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-compl-state-"));
  assert.equal((await cli(["--sim", "--state", st, "sriov", "0000:01:00.0", "2"])).code, 0);
  assert.ok((await words(["vfioctl", "--sim", "--state", st, "show", "0000:01:1"], 5)).includes("0000:01:10.0"));
  assert.deepEqual(await words(["vfioctl", "--sim", "show", "0000:01:1"], 3), [], "the default host has no VFs on 0000:01:00.0");
  assert.ok((await words(["vfioctl", "--sim", "sim", "run", "scenarios/tok"], 4)).some((f) => f.startsWith("scenarios/token-")), "files");
});

test("__complete: values of options (--access, --errno, --profile, --state DIR) and help COMMAND", async () => {
  assert.deepEqual(await complete(["cdi", "--access", ""]), ["group", "cdev", "auto"]);
  assert.deepEqual(await complete(["cdi", "--access=c"]), ["--access=cdev"]);
  assert.ok((await complete(["--sim", "explain", "0000:af:10.0", "--errno", "EP"])).includes("EPERM"));
  assert.deepEqual(await complete(["--state", ""]), ["__vfioctl_dir__"]);
  assert.ok((await complete(["help", "ex"])).includes("explain"));
  assert.deepEqual(await complete(["completion", ""]), ["bash", "zsh", "fish"]);
});

test("zsh and fish completion scripts parse (zsh -n, fish -n) and call __complete", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-compl-"));
  for (const sh of ["zsh", "fish"] as const) {
    const text = completionScript(sh);
    assert.match(text, /__complete --/);
    const f = path.join(dir, `vfioctl.${sh}`);
    fs.writeFileSync(f, text);
    if (has(sh)) await run(sh, ["-n", f]);
    else t.diagnostic(`${sh} is not installed: checked the script's text only`);
  }
  assert.match(completionScript("zsh"), /^#compdef vfioctl/);
  assert.match(completionScript("fish"), /complete -c vfioctl -f -a '\(__vfioctl_complete\)'/);
  if (has("bash")) await run("bash", ["-n", "-c", completionScript("bash")]);
});

test("man/vfioctl.1 is up to date with the definitions (npm run man) and renders", async (t) => {
  const want = manPage(await allCommands());
  const have = fs.readFileSync(path.join(repo, "man/vfioctl.1"), "utf8");
  assert.equal(have.trimEnd(), want.trimEnd(), "man/vfioctl.1 is stale: npm run man");
  assert.equal((await cli(["man"])).out.trimEnd(), want.trimEnd());
  const renderer = has("groff") ? ["groff", ["-man", "-Tutf8", "-ww", "-z"]] : has("mandoc") ? ["mandoc", ["-Tlint"]] : null;
  if (!renderer) return t.diagnostic("neither groff nor mandoc is installed: the page was not rendered");
  const r = spawnSync(renderer[0] as string, [...(renderer[1] as string[]), path.join(repo, "man/vfioctl.1")], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), "", `${renderer[0]} warnings`);
  if (has("groff")) {
    const text = spawnSync("groff", ["-man", "-Tutf8", "-P-cbou", path.join(repo, "man/vfioctl.1")], { encoding: "utf8" }).stdout;
    assert.match(text, /VFIOCTL\(1\)/);
    assert.match(text, /--release-captured/);
    assert.match(text, /EXIT STATUS/);
  }
});

test("a write error on standard output fails the command (exit 3, message); a closed pipe ends it quietly", async () => {
  const full = spawnSync(process.execPath, [bin, "--sim", "list"], { stdio: ["ignore", fs.openSync("/dev/full", "w"), "pipe"], encoding: "utf8", cwd: repo });
  assert.equal(full.status, 3, full.stderr);
  assert.match(full.stderr, /vfioctl: cannot write standard output: ENOSPC/);
  const pipe = spawnSync("sh", ["-c", `"${process.execPath}" "${bin}" --sim list --all | head -c 10 >/dev/null; echo "exit \${PIPESTATUS:-}"`], { encoding: "utf8", cwd: repo });
  assert.equal(pipe.stderr, "", "no EPIPE trace");
});

test("--token-stdin on a real terminal (script(1)'s pty): the prompt is shown and the token typed is not echoed", { skip: !has("script") && "script(1) is not installed", timeout: 60_000 }, async () => {
  const { spawn } = await import("node:child_process");
  const token = "01234567-89ab-cdef-0123-456789abcdef";
  const child = spawn("script", ["-qec", `"${process.execPath}" "${bin}" --sim token verify 0000:af:10.0 --token-stdin`, "/dev/null"], { cwd: repo, env: { ...process.env, LANG: "C" } });
  let out = "";
  let sent = false;
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    // type the token only once the prompt is there (echo is off by then)
    if (!sent && out.includes("VF token for 0000:af:10.0: ")) {
      sent = true;
      child.stdin.write(`${token}\r`);
    }
  });
  const code = await new Promise<number | null>((r) => child.on("close", r));
  assert.ok(sent, `no prompt: ${out}`);
  assert.equal(code, 1, out);
  assert.match(out, /0000:af:10\.0: mismatch/);
  assert.ok(!out.includes(token), `the token was echoed: ${out}`);
});
