import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { checkExpectations, diffHost, normaliseHost, runModelHost, tokenShaped, type PhaseRun } from "../lab/host-check.js";
import { labFiltered } from "../lab/conformance.js";

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

test("host rows: times, journal ids, pids and the simulated root are normalised; nothing else", () => {
  const journal = {
    id: "2026-03-01T102030123Z-0a1b2c",
    pid: 4242,
    started: "2026-03-01T10:20:30.123Z",
    configHash: "d392d593eea15d4c",
    steps: [{ status: "done", startedAt: "2026-03-01T10:20:30.200Z", log: ["igb 0000:01:00.0: removed PHC on eth0", "igb 0000:01:00.0: IOV Disabled"] }],
  };
  const n = normaliseHost(
    {
      exit: 0,
      ms: 12,
      info: { anything: 1 },
      out: { journal, recovered: { id: journal.id, action: "finished" }, how: "set by vfioctl at 2026-03-01T10:20:30.300Z during this boot" },
      err: "lock /var/lib/vfioctl/apply.lock (simulated host: /tmp/vfioctl-lab-host-x/var/lib/vfioctl/apply.lock) held by pid 77",
    },
    labFiltered,
  );
  assert.deepEqual(n, {
    exit: 0,
    out: {
      journal: { id: "<journal>", pid: "<pid>", started: "<time>", configHash: "d392d593eea15d4c", steps: [{ status: "done", startedAt: "<time>", log: ["igb 0000:01:00.0: IOV Disabled"] }] },
      recovered: { id: "<journal>", action: "finished" },
      how: "set by vfioctl at <time> during this boot",
    },
    err: "lock /var/lib/vfioctl/apply.lock held by pid <pid>",
  });
  // a token would be normalised away, so it is looked for before: any UUID is reported
  assert.deepEqual(tokenShaped({ out: "token 0a1b2c3d-1111-4222-8333-444455556666 set" }), ["0a1b2c3d-1111-4222-8333-444455556666"]);
  assert.deepEqual(tokenShaped({ out: { id: journal.id } }), []);
  assert.equal(JSON.stringify(normaliseHost("x 0A1B2C3D-1111-4222-8333-444455556666")), '"x <uuid>"');
});

const run = (phase: PhaseRun["phase"], acts: PhaseRun["acts"]): PhaseRun => ({ phase, ms: 0, env: {}, acts });

test("host rows: differences are named by act and field; arrays of devices are matched by BDF", () => {
  const snap = (driver: string) => ({ snapshot: { enableSriov: "Y", devices: { "0000:01:00.0": { driver, override: null, numvfs: "0" } } }, ms: 1 });
  const cmd = (exit: number, out: unknown) => ({ exit, out, err: "", ms: 5 });
  const real = run("fresh", {
    before: snap("igb"),
    apply: cmd(0, { status: "done", journal: { id: "2026-03-01T102030123Z-0a1b2c", steps: [] } }),
    status: cmd(0, { inSync: true, pfs: [{ name: "lab-igb", vfDrivers: [{ bdf: "0000:01:10.0", have: "vfio-pci" }, { bdf: "0000:01:10.2", have: "vfio-pci" }] }] }),
    "apply-again": cmd(0, { status: "nothing-to-do" }),
    verify: cmd(0, { result: "match" }),
    after: snap("vfio-pci"),
  });
  const model = structuredClone(real);
  (model.acts.apply as { out: { journal: { id: string } } }).out.journal.id = "2026-03-02T000000000Z-ffffff";
  assert.deepEqual(diffHost("fresh", real, model), [], "journal ids and times are not differences");
  (model.acts.status as { out: { pfs: { vfDrivers: unknown[] }[] } }).out.pfs[0]!.vfDrivers.reverse();
  assert.deepEqual(diffHost("fresh", real, model), [], "device lists are compared by BDF");
  (model.acts.status as { out: { pfs: { vfDrivers: { have: string }[] }[] } }).out.pfs[0]!.vfDrivers[0]!.have = "igbvf";
  (model.acts.verify as { exit: number }).exit = 1;
  delete (model.acts as Record<string, unknown>).after;
  assert.deepEqual(
    diffHost("fresh", real, model).map((d) => `${d.op} ${d.field}: ${JSON.stringify(d.real)} | ${JSON.stringify(d.model)}`),
    ['status out.pfs[0].vfDrivers[0000:01:10.2].have: "vfio-pci" | "igbvf"', "verify exit: 0 | 1", 'after presence: "ran" | "absent"'],
  );
  // expectations are checked per side
  assert.deepEqual(checkExpectations("fresh", real.acts), []);
  assert.deepEqual(checkExpectations("fresh", { ...real.acts, verify: cmd(1, { result: "mismatch" }) }), ['verify: exit is 1, expected 0', 'verify: out.result is "mismatch", expected "match"']);
});

test("host rows on the model: every phase tells its story on both profiles (apply, reboot and re-probe, kill -9 then undo or finish)", async () => {
  const runs = { "6.1": await runModelHost(PROJECT, "6.1"), "6.12": await runModelHost(PROJECT, "6.12") };
  for (const [profile, r] of Object.entries(runs)) for (const phase of ["fresh", "reboot", "killed"] as const) assert.deepEqual(checkExpectations(phase, r[phase].acts), [], `${profile} ${phase}`);
  // the model compared with itself differs nowhere once normalised (times, ids, pids, MACs vary between runs)
  const again = await runModelHost(PROJECT, "6.12");
  for (const phase of ["fresh", "reboot", "killed"] as const) assert.deepEqual(diffHost(phase, runs["6.12"][phase], again[phase], labFiltered), [], `6.12 ${phase} twice`);
  // the two profiles tell the same story; they differ only where the kernels do (6.12's enumeration line)
  const between = (["fresh", "reboot", "killed"] as const).flatMap((p) => diffHost(p, runs["6.1"][p], runs["6.12"][p], labFiltered));
  assert.ok(between.length > 0 && between.every((d) => JSON.stringify(d.model).includes("PCIe Endpoint")), JSON.stringify(between.slice(0, 3)));
});
