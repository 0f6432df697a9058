import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { formatTranscript, loadScenario, modelBackend, runScenario } from "../src/scenario/index.js";

const dir = new URL("../../scenarios/", import.meta.url).pathname;
const files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();

test("the scenario corpus is not empty", () => {
  assert.ok(files.length >= 10, `expected at least 10 scenarios in ${dir}, got ${files.length}`);
});

for (const f of files) {
  const sc = loadScenario(dir + f);
  for (const profile of sc.profiles.filter((p) => p === "6.1" || p === "6.12")) {
    test(`scenario ${f} holds on the model under ${profile}`, async () => {
      const t = await runScenario(sc, await modelBackend(sc, { profile }));
      assert.ok(t.ok, formatTranscript(t));
      assert.deepEqual(t.unfinished, [], "no op may stay blocked after every process exited");
      assert.equal(t.backend, "model");
    });
  }
}
