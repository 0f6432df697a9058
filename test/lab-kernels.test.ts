/**
 * The lab's kernels beyond Debian's 6.1 and 6.12 (lab/kernels.ts) and the selftest rows
 * (lab/selftest.ts): what the model is told for each kernel, and what the model predicts there.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { LAB_KERNELS, labKernel, modelProfileOf } from "../lab/kernels.js";
import { allVariants, parseTap, runModelSelftest, selftestDiffs } from "../lab/selftest.js";
import { profileOf } from "../src/kernel/profile.js";

const cache = mkdtempSync(path.join(tmpdir(), "lab-kernels-"));
writeFileSync(
  path.join(cache, "kernels.json"),
  JSON.stringify([
    { name: "6.1", version: "6.1.0-57-amd64", dir: "/lab/6.1" },
    { name: "7.3", version: "7.3.4+deb13-amd64", dir: "/lab/7.3" },
    { name: "7.3-cdev", version: "7.3.4-lab", dir: "/lab/7.3-cdev" },
    { name: "6.12-cdev", version: "6.12.117-lab", dir: "/lab/6.12-cdev" },
  ]),
);

test("each lab kernel resolves to a model profile with the configuration it was built with", () => {
  const want: Record<string, [string, boolean]> = { "6.1": ["none", false], "6.12": ["none", false], "7.3": ["none", false], "6.12-cdev": ["bypass", true], "7.3-cdev": ["checked", true], "7.3-e2big": ["e2big", true] };
  for (const k of LAB_KERNELS) {
    const mp = modelProfileOf(k.name, cache);
    const p = profileOf(mp.profile, mp.config);
    assert.equal(p.cdevToken, want[k.name]![0], k.name);
    assert.equal(p.config.VFIO_DEVICE_CDEV, want[k.name]![1], k.name);
  }
  assert.equal(modelProfileOf("7.3", cache).profile, "7.3.4+deb13-amd64");
  assert.equal(modelProfileOf("7.3-cdev", cache).profile, "7.3.4-lab");
  assert.throws(() => labKernel("5.15"));
});

test("7.3-e2big's model is 7.3.4 with bindIommufdFullStruct reverted: every other flag is 7.3-cdev's, the generic driver_override included", () => {
  const e = profileOf(modelProfileOf("7.3-e2big", cache).profile, labKernel("7.3-e2big").config);
  const c = profileOf(modelProfileOf("7.3-cdev", cache).profile, labKernel("7.3-cdev").config);
  const differ = Object.keys(c.behaviour).filter((f) => c.behaviour[f as keyof typeof c.behaviour] !== e.behaviour[f as keyof typeof e.behaviour]);
  assert.deepEqual(differ, ["bindIommufdFullStruct"]);
  assert.equal(e.behaviour.driverOverrideGeneric, true);
  assert.equal(e.release.major * 100 + e.release.minor, 703);
  assert.equal(modelProfileOf("7.3-e2big", cache).profile, "7.3.4-lab-e2big -bindIommufdFullStruct");
});

test("parseTap reads the kselftest harness's verdicts", () => {
  const t = parseTap("TAP version 13\n1..2\n# Starting 2 tests\n#  RUN  x.a ...\nok 1 x.a\nnot ok 2 x.b\nok 3 x.c # SKIP no iommufd\n");
  assert.deepEqual(t, { "x.a": "ok", "x.b": "not ok", "x.c": "skip" });
  assert.equal(allVariants().length, 45);
});

test("the model's selftest verdicts per kernel: container modes everywhere, iommufd compat where /dev/iommu is, iommufd where the token can be passed", async () => {
  const count = async (k: string) => Object.values((await runModelSelftest(k, cache)).logic).filter((v) => v.verdict === "ok").length;
  assert.equal(await count("6.12"), 18);
  assert.equal(await count("6.12-cdev"), 36); // iommufd: the PF bind with a token is EINVAL (flags ≠ 0)
  assert.equal(await count("7.3-e2big"), 36); // iommufd: the PF bind with a token is E2BIG
  assert.equal(await count("7.3-cdev"), 45);
});

test("cdev checks on the model: bypass, E2BIG and fixed rows", async () => {
  const c = async (k: string) => (await runModelSelftest(k, cache)).cdev;
  const by = await c("6.12-cdev");
  assert.equal(by["cdev:vf-none"]!.vf_bind, "ok"); // no token proven
  assert.equal(by["cdev:vf-right"]!.vf_bind, "EINVAL");
  const fx = await c("7.3-cdev");
  assert.deepEqual([fx["cdev:vf-right"]!.vf_bind, fx["cdev:vf-wrong"]!.vf_bind, fx["cdev:vf-none"]!.vf_bind], ["ok", "EACCES", "EACCES"]);
  assert.equal(fx["cdev:pf-token"]!.vf_group_u1, "ok"); // the PF's cdev bind with a token set it
  assert.equal((await c("7.3-e2big"))["cdev:vf-right"]!.vf_bind, "E2BIG");
  for (const k of ["6.12-cdev", "7.3-cdev"]) assert.equal((await c(k))["cdev:exclusion"]!.pf_cdev_bind_while_group, "EBUSY");
});

test("selftestDiffs compares the binary's verdicts with the model's and the port's steps", () => {
  const logic = Object.fromEntries(allVariants().map((v) => [v, { verdict: "ok" as const, steps: { pf: "ok" } }]));
  const real = { kernel: "x", release: "x", bin: "/b", binRc: 0, binMs: 1, tap: Object.fromEntries(allVariants().map((v) => [v, "ok" as const])), tapText: "", logic, logicMs: 1, cdev: { "cdev:a": { x: "ok" } } };
  const model = { logic: { ...logic, [allVariants()[0]!]: { verdict: "not ok" as const, steps: { pf: "EINVAL" } } }, cdev: { "cdev:a": { x: "EBUSY" } } };
  const d = selftestDiffs({ real, model });
  assert.equal(d["selftest:sriov_uapi"]!.length, 1);
  assert.equal(d["selftest:logic"]!.length, 1);
  assert.deepEqual(d["cdev:a"], [{ op: "cdev:a", field: "x", real: "ok", model: "EBUSY" }]);
});

test("scenarios/cdev/cdev-token.yaml on the model: open cdev_of, IOAS_ALLOC, BIND_IOMMUFD with and without a token, ATTACH_IOMMUFD_PT, per row", async () => {
  const { loadScenario, runScenario, modelBackend } = await import("../src/scenario/index.js");
  const sc = loadScenario(new URL("../../scenarios/cdev/cdev-token.yaml", import.meta.url).pathname);
  const run = async (k: string) => {
    const t = await runScenario(sc, await modelBackend(sc, modelProfileOf(k, cache)), { profile: "6.12" });
    return Object.fromEntries(t.ops.map((o) => [o.name, o.errno ?? o.ret]));
  };
  const fixed = await run("7.3-cdev");
  assert.deepEqual([fixed["pf-bind-token"], fixed["vf0-bind-none"], fixed["vf0-bind-wrong"], fixed["vf0-bind-right"], fixed["vf0-group-node"]], [0, "EACCES", "EACCES", 0, "EBUSY"]);
  const bypass = await run("6.12-cdev");
  assert.deepEqual([bypass["pf-bind-token"], bypass["pf-bind-plain"], bypass["vf0-bind-none"]], ["EINVAL", 0, 0]);
  const e2big = await run("7.3-e2big");
  assert.deepEqual([e2big["pf-bind-token"], e2big["vf0-bind-right"], e2big["vf1-bind-16-flags1"]], ["E2BIG", "E2BIG", "EFAULT"]);
});
