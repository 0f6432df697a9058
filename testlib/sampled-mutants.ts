/**
 * Sampled mutation testing: operator mutations picked at random (seeded) from every site in the
 * built model, library and real backend (dist/src/{kernel,lib,sys}), each run against the whole
 * suite, which is stopped at its first failing test. It complements the curated set in
 * ./mutants.ts (mutants written by hand against answers that once went unchecked): a curated set
 * only shows that those answers are checked, a sample estimates how much of the code is.
 *
 *   npm run build && node dist/testlib/sampled-mutants.js [--count 60] [--seed 1] [--under src/lib] [--json FILE] [--timeout 240]
 *
 * Operators, on the syntax tree (never inside strings, comments or regular expressions):
 * `===`↔`!==`, `==`↔`!=`, `<`→`<=`, `<=`→`<`, `>`→`>=`, `>=`→`>`, `&&`↔`||`, `??`→`||`,
 * `true`↔`false`, an integer literal n→n+1, `!x`→`x`, `+`↔`-` (numbers only: both sides not
 * strings). A mutant is killed when a test fails or the suite times out (`--timeout` seconds, 240
 * unless given: raise it when the machine is loaded enough that the unmutated suite needs longer; a
 * hang is a detected wrong answer); it survives when the whole suite passes. Mutants are applied to a copy of dist/,
 * one at a time. Exit 0 always: the score is a measurement (docs/benchmarks.md).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

export interface Site {
  file: string;
  start: number;
  end: number;
  from: string;
  to: string;
  line: number;
  op: string;
}

const SWAP: Partial<Record<ts.SyntaxKind, string>> = {
  [ts.SyntaxKind.EqualsEqualsEqualsToken]: "!==",
  [ts.SyntaxKind.ExclamationEqualsEqualsToken]: "===",
  [ts.SyntaxKind.EqualsEqualsToken]: "!=",
  [ts.SyntaxKind.ExclamationEqualsToken]: "==",
  [ts.SyntaxKind.LessThanToken]: "<=",
  [ts.SyntaxKind.LessThanEqualsToken]: "<",
  [ts.SyntaxKind.GreaterThanToken]: ">=",
  [ts.SyntaxKind.GreaterThanEqualsToken]: ">",
  [ts.SyntaxKind.AmpersandAmpersandToken]: "||",
  [ts.SyntaxKind.BarBarToken]: "&&",
  [ts.SyntaxKind.QuestionQuestionToken]: "||",
};

const isStringy = (n: ts.Node): boolean => ts.isStringLiteral(n) || ts.isTemplateExpression(n) || ts.isNoSubstitutionTemplateLiteral(n);

/** Every mutation site of one JavaScript file. */
export function sitesOf(file: string, text: string): Site[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const out: Site[] = [];
  const add = (start: number, end: number, to: string, op: string) =>
    out.push({ file, start, end, from: text.slice(start, end), to, op, line: sf.getLineAndCharacterOfPosition(start).line + 1 });
  const visit = (n: ts.Node): void => {
    if (ts.isBinaryExpression(n)) {
      const k = n.operatorToken.kind;
      const to = SWAP[k];
      if (to) add(n.operatorToken.getStart(sf), n.operatorToken.end, to, `${n.operatorToken.getText(sf)}→${to}`);
      else if ((k === ts.SyntaxKind.PlusToken || k === ts.SyntaxKind.MinusToken) && !isStringy(n.left) && !isStringy(n.right) && (ts.isNumericLiteral(n.right) || ts.isNumericLiteral(n.left)))
        add(n.operatorToken.getStart(sf), n.operatorToken.end, k === ts.SyntaxKind.PlusToken ? "-" : "+", k === ts.SyntaxKind.PlusToken ? "+→-" : "-→+");
    } else if (n.kind === ts.SyntaxKind.TrueKeyword) add(n.getStart(sf), n.end, "false", "true→false");
    else if (n.kind === ts.SyntaxKind.FalseKeyword) add(n.getStart(sf), n.end, "true", "false→true");
    else if (ts.isNumericLiteral(n) && /^\d+$/.test(n.text) && !ts.isPropertyAssignment(n.parent) && !ts.isEnumMember(n.parent)) {
      add(n.getStart(sf), n.end, String(Number(n.text) + 1), "n→n+1");
    } else if (ts.isPrefixUnaryExpression(n) && n.operator === ts.SyntaxKind.ExclamationToken && !(ts.isPrefixUnaryExpression(n.operand) && n.operand.operator === ts.SyntaxKind.ExclamationToken) && !(ts.isPrefixUnaryExpression(n.parent) && n.parent.operator === ts.SyntaxKind.ExclamationToken)) {
      const s = n.getStart(sf);
      add(s, s + 1, "", "!x→x");
    }
    // import/export declarations and type-only positions do not run
    if (ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) return;
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

function listJs(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listJs(p));
    else if (e.name.endsWith(".js")) out.push(p);
  }
  return out.sort();
}

/** mulberry32: a small seeded generator, so a sample can be run again. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Run the suite in `cwd`; resolves "killed" at the first failing test, "survived" when all pass. */
function runSuite(cwd: string, timeoutMs: number): Promise<{ verdict: "killed" | "survived" | "timeout"; first?: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["--test", "--test-timeout=60000", "dist/test/"], { cwd, detached: true, stdio: ["ignore", "pipe", "ignore"] });
    let buf = "";
    let done = false;
    const finish = (v: { verdict: "killed" | "survived" | "timeout"; first?: string }) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      try {
        process.kill(-p.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
      resolve(v);
    };
    const t = setTimeout(() => finish({ verdict: "timeout" }), timeoutMs);
    p.stdout!.setEncoding("utf8");
    p.stdout!.on("data", (d: string) => {
      buf += d;
      const m = /^\s*not ok \d+ - (.*)$/m.exec(buf);
      if (m) finish({ verdict: "killed", first: m[1] });
      if (buf.length > 1 << 20) buf = buf.slice(-4096);
    });
    p.on("exit", (code) => finish(code === 0 ? { verdict: "survived" } : { verdict: "killed", first: `exit ${code}` }));
  });
}

export interface SampleResult {
  seed: number;
  sites: number;
  results: Array<Site & { verdict: string; first?: string; ms: number }>;
}

export async function sampleMutants(opts: { repo: string; count: number; seed: number; under: string[]; log?: (s: string) => void; timeoutMs?: number }): Promise<SampleResult> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const dist = path.join(opts.repo, "dist");
  const all: Site[] = [];
  for (const u of opts.under) for (const f of listJs(path.join(dist, u))) all.push(...sitesOf(path.relative(dist, f), fs.readFileSync(f, "utf8")));
  const r = rng(opts.seed);
  const picked: Site[] = [];
  const pool = [...all];
  while (picked.length < opts.count && pool.length) picked.push(pool.splice(Math.floor(r() * pool.length), 1)[0]!);
  // a copy of the checkout (tests read bin/, examples/, scenarios/, lab/ …) with its own dist/
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-sampled-"));
  // as readable as a checkout: a test runs part of the suite as an unprivileged user (batch-reads' EACCES case)
  fs.chmodSync(tmp, 0o755);
  for (const e of fs.readdirSync(opts.repo)) {
    if (e === "node_modules" || e === ".git") continue;
    fs.cpSync(path.join(opts.repo, e), path.join(tmp, e), { recursive: true });
  }
  fs.symlinkSync(path.join(opts.repo, "node_modules"), path.join(tmp, "node_modules"));
  const results: SampleResult["results"] = [];
  try {
    const base = await runSuite(tmp, opts.timeoutMs ?? 240_000);
    if (base.verdict !== "survived") throw new Error(`the unmutated suite does not pass in the copy (${base.verdict}${base.first ? `: ${base.first}` : ""}): no mutant can be judged`);
    log(`baseline: the unmutated suite passes in the copy`);
    for (const s of picked) {
      const f = path.join(tmp, "dist", s.file);
      const orig = fs.readFileSync(f, "utf8");
      fs.writeFileSync(f, orig.slice(0, s.start) + s.to + orig.slice(s.end));
      const t0 = Date.now();
      try {
        const v = await runSuite(tmp, opts.timeoutMs ?? 240_000);
        const ms = Date.now() - t0;
        results.push({ ...s, ...v, ms });
        const src = orig.split("\n")[s.line - 1]!.trim().slice(0, 110);
        log(`${v.verdict.padEnd(8)} ${s.file}:${s.line} ${s.op}  ${src}${v.first ? `  [${v.first.slice(0, 80)}]` : ""} (${(ms / 1000).toFixed(1)} s)`);
      } finally {
        fs.writeFileSync(f, orig);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return { seed: opts.seed, sites: all.length, results };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  const a = process.argv.slice(2);
  const val = (n: string) => {
    const i = a.indexOf(n);
    return i >= 0 ? a[i + 1] : undefined;
  };
  const under = a.flatMap((x, i) => (a[i - 1] === "--under" ? [x] : []));
  const t0 = Date.now();
  const timeoutS = Number(val("--timeout") ?? 240);
  if (!(timeoutS > 0)) throw new Error(`--timeout: a number of seconds above 0, got ${val("--timeout")}`);
  const res = await sampleMutants({ repo, count: Number(val("--count") ?? 60), seed: Number(val("--seed") ?? 1), under: under.length ? under : ["src/kernel", "src/lib", "src/sys"], timeoutMs: timeoutS * 1000 });
  const killed = res.results.filter((x) => x.verdict !== "survived").length;
  console.log(`\n${killed}/${res.results.length} sampled mutants killed (seed ${res.seed}, ${res.sites} sites; ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  const out = val("--json");
  if (out) fs.writeFileSync(out, JSON.stringify(res, null, 2) + "\n");
}
