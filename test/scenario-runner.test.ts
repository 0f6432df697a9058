import { test } from "node:test";
import assert from "node:assert/strict";
import { compareTranscripts, formatTranscript, modelBackend, parseKmsgRecord, parseScenario, runScenario, ScenarioError } from "../src/scenario/index.js";
import { main } from "../src/cli/main.js";
import { LAB_HOST } from "../testlib/vfio.js";

const U1 = "2ab74924-c335-45f4-9b16-8569e5b08258";
const head = `host: ${LAB_HOST}
vars: { PF: "0000:01:00.0", VF0: "0000:01:10.0" }
tokens: { U1: ${U1} }
setup:
  - ensure: { bdf: "\${PF}", driver: vfio-pci, sriov_numvfs: 1 }
`;

test("a /dev/kmsg record is parsed into level and text, and dictionary lines are ignored", () => {
  const r = parseKmsgRecord("4,812,123456,-;vfio-pci 0000:01:10.0: No device request channel registered\n SUBSYSTEM=pci\n DEVICE=+pci:0000:01:10.0\n");
  assert.deepEqual({ level: r?.level, text: r?.text, seq: r?.seq }, { level: "warn", text: "vfio-pci 0000:01:10.0: No device request channel registered", seq: 812 });
  assert.equal(parseKmsgRecord("14,1,2,-;hello")?.level, "info", "the facility bits are dropped");
});

test("macros expand to plain ops that keep the macro's name on the final call", () => {
  const sc = parseScenario(head + "ops:\n  - name: vf\n    vfio_open: { bdf: \"${VF0}\", token: U1 }\n", "t.yaml");
  assert.deepEqual(sc.ops.map((o) => `${o.name}:${o.kind}:${o.request ?? ""}`), ["vf.container:open:", "vf.group:open:", "vf.set_container:ioctl:GROUP_SET_CONTAINER", "vf.set_iommu:ioctl:SET_IOMMU", "vf:ioctl:GROUP_GET_DEVICE_FD"]);
});

test("bad scenario input names the field, what was expected and what was found", () => {
  assert.throws(() => parseScenario("ops:\n  - frobnicate: 1\n", "bad.yaml"), (e: Error) => e instanceof ScenarioError && /bad\.yaml: ops\[0\]: expected exactly one of write/.test(e.message));
  assert.throws(() => parseScenario("tokens: { U1: nope }\nops: []\n", "bad.yaml"), /tokens\.U1: expected a UUID/);
  assert.throws(() => parseScenario("ops:\n  - wait: nothing\n", "bad.yaml"), /wait: no op named "nothing"/);
});

test("a write that blocks is reported as blocked and a later wait records its result", async () => {
  const sc = parseScenario(
    head +
      `ops:
  - { name: pf, vfio_open: { bdf: "\${PF}", token: U1 } }
  - { name: vf, vfio_open: { bdf: "\${VF0}", token: U1 } }
  - { name: off, proc: w, write: "/sys/bus/pci/devices/\${PF}/sriov_numvfs", data: "0", expect: blocked }
  - { name: rel, close: vf }
  - { name: done, wait: off, expect: { ret: 1 } }
`,
    "block.yaml",
  );
  const t = await runScenario(sc, await modelBackend(sc, { profile: "6.12" }));
  assert.ok(t.ok, formatTranscript(t));
  const off = t.ops.find((o) => o.name === "off")!;
  assert.equal(off.blocked, true);
  assert.match(off.waitingOn ?? "", /0000:01:10\.0 held open/);
  assert.equal(off.completedDuring, "rel");
  assert.deepEqual(off.log.map((l) => l.text), ["vfio-pci 0000:01:10.0: No device request channel registered, blocked until released by user"]);
});

test("transcripts show tokens by name, fds as names and IOMMU groups symbolically", async () => {
  const sc = parseScenario(head + `ops:\n  - { name: pf, vfio_open: { bdf: "\${PF}", token: U1 } }\n  - { name: l, readlink: "/sys/bus/pci/devices/\${VF0}/iommu_group" }\n`, "t.yaml");
  const t = await runScenario(sc, await modelBackend(sc, { profile: "6.1" }));
  const json = JSON.stringify(t);
  assert.ok(!json.toLowerCase().includes(U1), "the token UUID never appears in a transcript");
  assert.ok(!json.includes(U1.replace(/-/g, "")), "nor its bytes in hex");
  assert.equal(t.ops.find((o) => o.name === "pf")!.ret, "fd");
  assert.match(String(t.ops.find((o) => o.name === "l")!.value), /iommu_groups\/@group(_of\(0000:01:10\.0\))?$/);
  assert.ok(t.setup.length === 1 && t.setup[0]!.actions!.some((a) => a.includes("drivers_probe")));
});

test("a failed expectation fails the run and compareTranscripts reports the differing op", async () => {
  const good = parseScenario(head + `ops:\n  - { name: vf, vfio_open: { bdf: "\${VF0}" }, expect: EACCES }\n`, "a.yaml");
  const bad = parseScenario(head + `ops:\n  - { name: vf, vfio_open: { bdf: "\${VF0}" }, expect: ENODEV }\n`, "b.yaml");
  const a = await runScenario(good, await modelBackend(good, { profile: "6.1" }));
  const b = await runScenario(bad, await modelBackend(bad, { profile: "6.12" }));
  assert.ok(a.ok);
  assert.ok(!b.ok);
  assert.match(b.failures[0]!.message, /expected ENODEV, got EACCES/);
  assert.deepEqual(compareTranscripts(a, b), [], "same behaviour on both runs");
  const c = structuredClone(b);
  c.ops.at(-1)!.errno = "EINVAL";
  c.ops.at(-1)!.log = [];
  const d = compareTranscripts(a, c);
  assert.deepEqual(d.map((x) => `${x.op}:${x.field}`), ["vf:errno", "vf:log"]);
});

test("vfioctl sim run exits 0 when the file holds and 1 when an expectation fails", async () => {
  const out: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
  const file = new URL("../../scenarios/token-decision-table.yaml", import.meta.url).pathname;
  assert.equal(await main(["sim", "run", file, "--profile", "6.12"], io), 0, out.join("\n"));
  assert.match(out.join("\n"), /VF token required to access device/);
  const { writeFileSync, mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const f = mkdtempSync(tmpdir() + "/sim-") + "/fail.json";
  // the PF boots on igb, which caps sriov_totalvfs at 7 (the lab read 7): "9" cannot hold
  writeFileSync(f, JSON.stringify({ host: LAB_HOST, ops: [{ name: "r", read: "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs", expect: { value: "9\n" } }] }));
  out.length = 0;
  assert.equal(await main(["sim", "run", f, "--json"], io), 1);
  const j = JSON.parse(out.join("")) as { schema: string; ok: boolean; runs: { ok: boolean; profile: string }[] };
  assert.equal(j.schema, "vfioctl.sim-run/1");
  assert.equal(j.ok, false);
  const runs = j.runs;
  assert.deepEqual(runs.map((r) => [r.profile, r.ok]), [["6.1", false], ["6.12", false]]);
  assert.equal(await main(["sim", "run"], io), 2);
});

test("vfioctl sim run --profile takes any kernel version: the kernel is that version, the file's expectations those of its family", async () => {
  const out: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
  const file = new URL("../../scenarios/token-ratelimit.yaml", import.meta.url).pathname;
  // the suppression line names the function holding the call sites: renamed in 6.17
  for (const [v, fn] of [["6.12.58", "vfio_pci_validate_vf_token"], ["7.3.4-lab", "vfio_pci_core_match_token_uuid"], ["6.1.148", "vfio_pci_validate_vf_token"]] as const) {
    out.length = 0;
    assert.equal(await main(["sim", "run", file, "--profile", v, "--json"], io), 0, out.join("\n"));
    const j = JSON.parse(out.join("")) as { runs: { profile: string; ops: { name: string; log: { text: string }[] }[] }[] };
    assert.equal(j.runs.length, 1);
    assert.equal(j.runs[0].profile, v.startsWith("6.1.") ? "6.1" : "6.12");
    const w13 = j.runs[0].ops.find((o) => o.name === "w13")!;
    assert.deepEqual(w13.log.map((l) => l.text).filter((t) => /suppressed/.test(t)), [`${fn}: 2 callbacks suppressed`], v);
  }
  // a kernel spec too, as the global --profile takes it: 7.3.4 without the 6.17 rename is back to the old name
  out.length = 0;
  assert.equal(await main(["sim", "run", file, "--profile", "7.3.4-lab -bindIommufdToken", "--json"], io), 0, out.join("\n"));
  const spec = JSON.parse(out.join("")) as { runs: { ops: { name: string; log: { text: string }[] }[] }[] };
  assert.ok(spec.runs[0].ops.find((o) => o.name === "w13")!.log.some((l) => l.text === "vfio_pci_validate_vf_token: 2 callbacks suppressed"));
  out.length = 0;
  assert.equal(await main(["sim", "run", file, "--profile", "7.3.4 -noSuchFlag"], io), 2);
  assert.match(out.join("\n"), /noSuchFlag/);
  out.length = 0;
  assert.equal(await main(["sim", "run", file, "--profile", "7.x"], io), 2);
  assert.match(out.join("\n"), /--profile: .*7\.x/);
  // a file that declares only 6.1 does not take a 6.12-family kernel
  const { writeFileSync, mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const f = mkdtempSync(tmpdir() + "/sim-") + "/only61.json";
  writeFileSync(f, JSON.stringify({ host: LAB_HOST, profiles: ["6.1"], ops: [{ name: "r", read: "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs", expect: { value: "7\n" } }] }));
  out.length = 0;
  assert.equal(await main(["sim", "run", f, "--profile", "6.17.1"], io), 2);
  assert.match(out.join("\n"), /declares profiles 6\.1; kernel 6\.17\.1 takes the expectations of 6\.12/);
});

test("log_exact leaves out a first open's reset lines (6.13+) as it does 'enabling device': the corpus's expectations hold on 7.3.4 too", async () => {
  const out: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
  for (const f of ["token-decision-table.yaml", "token-persistence.yaml", "pf-stub.yaml"]) {
    out.length = 0;
    const file = new URL(`../../scenarios/${f}`, import.meta.url).pathname;
    assert.equal(await main(["sim", "run", file, "--profile", "7.3.4-lab"], io), 0, `${f}: ${out.join("\n").split("\n").filter((l) => /expected|FAILED/.test(l)).join("\n")}`);
    assert.match(out.join("\n"), /resetting/, `${f}: 7.3.4 logs the reset lines, the expectations only leave them out`);
  }
});
