/**
 * Every command's help examples that name `--sim --state /tmp/h` form a story: run in order on
 * one fresh state directory, each exits as its comment says ("(exit N)"), else 0 or 1 (an answer
 * of "no"), never a usage error or a failure.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { COMMANDS } from "../src/cli/commands/index.js";
import "../src/cli/commands/all.js";
import { main } from "../src/cli/main.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** Split a shell-like example line (no quotes are used in examples). */
const words = (line: string) => line.replace(/#.*$/, "").trim().split(/\s+/);

for (const c of COMMANDS) {
  const lines = c.help.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("vfioctl --sim --state /tmp/h "));
  if (!lines.length) continue;
  test(`the help examples of '${c.name}' work in order on one --state directory`, async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-help-"));
    const cwd = process.cwd();
    process.chdir(REPO);
    try {
      for (const line of lines) {
        const argv = words(line).slice(1).map((w) => (w === "/tmp/h" ? d : w));
        const want = /\(exit (\d)\)/.exec(line);
        let out = "";
        const code = await main(argv, { out: (s) => void (out += s + "\n"), err: (s) => void (out += s + "\n"), env: {}, stdin: async () => "" });
        if (want) assert.equal(code, Number(want[1]), `${line}\n${out}`);
        else assert.ok(code === 0 || code === 1, `${line} exited ${code}\n${out}`);
      }
    } finally {
      process.chdir(cwd);
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
}
