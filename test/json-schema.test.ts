/**
 * Every command's --json output on --sim carries the schema id docs/json.md documents for it,
 * and every top-level field documented there is present.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { main } from "../src/cli/main.js";

const repo = new URL("../../", import.meta.url).pathname;

/** schema id → the top-level fields docs/json.md lists for it. */
function documented(): Map<string, string[]> {
  const md = fs.readFileSync(path.join(repo, "docs/json.md"), "utf8");
  const out = new Map<string, string[]>();
  for (const sec of md.split(/^## /m).slice(1)) {
    const ids = [...sec.split("\n")[0]!.matchAll(/`(vfioctl\.[a-z0-9-]+\/\d+)`/g)].map((m) => m[1]!);
    const rows = sec.split("\n").filter((l) => /^\| `/.test(l));
    if (rows.some((r) => /^\| `vfioctl\./.test(r))) {
      // a table of schemas: | `id` | command | `field` (type), … |
      for (const r of rows) {
        const cells = r.split(" | ");
        const id = /`(vfioctl\.[^`]+)`/.exec(cells[0]!)![1]!;
        const fields = [...cells[2]!.replace(/\(.*?\)/g, "").matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]!);
        out.set(id, ["schema", ...fields.filter((f) => !["given", "none"].includes(f))]);
      }
      continue;
    }
    const fields = rows.map((r) => /^\| `([A-Za-z]+)`/.exec(r)![1]!);
    for (const id of ids) out.set(id, fields);
  }
  return out;
}

test("docs/json.md documents every schema with its fields", () => {
  const d = documented();
  for (const id of ["vfioctl.error/1", "vfioctl.list/1", "vfioctl.show/1", "vfioctl.explain/1", "vfioctl.sim-run/1", "vfioctl.sim-holders/1"]) assert.ok(d.get(id)?.includes("schema"), id);
});

test("every command's --json on --sim has its documented schema id and every documented top-level field", { timeout: 120_000 }, async () => {
  const docs = documented();
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-json-"));
  const state = path.join(d, "h");
  const lines: [string[], string, number?][] = [
    [["config", "install", "examples/default-host.yaml"], "vfioctl.config/1"],
    [["config", "check", "examples/default-host.yaml"], "vfioctl.config/1"],
    [["list"], "vfioctl.list/1"],
    [["show", "0000:af:10.0"], "vfioctl.show/1"],
    [["explain", "0000:af:10.0"], "vfioctl.explain/1", 1],
    [["audit"], "vfioctl.audit/1"],
    [["plan"], "vfioctl.plan/1", 1],
    [["apply"], "vfioctl.apply/1"],
    [["status"], "vfioctl.status/1"],
    [["bind", "0000:05:00.0", "vfio-pci"], "vfioctl.bind/1"],
    [["sriov", "0000:06:00.0", "2"], "vfioctl.sriov/1"],
    [["token", "set", "0000:af:00.0"], "vfioctl.token/1"],
    [["token", "verify", "0000:af:10.0", "--from-store"], "vfioctl.token-verify/1"],
    [["token", "path", "0000:af:00.0"], "vfioctl.token/1"],
    [["token", "rotate", "0000:af:00.0"], "vfioctl.token/1"],
    [["token", "retire", "0000:af:00.0"], "vfioctl.token/1"],
    [["args", "dpdk", "0000:af:10.0"], "vfioctl.args/1"],
    [["cdi", "--dry-run"], "vfioctl.cdi/1"],
    [["k8s", "device-plugin"], "vfioctl.k8s-device-plugin/1"],
    [["install", "--dry-run"], "vfioctl.install/1"],
    [["uninstall", "--dry-run"], "vfioctl.uninstall/1"],
    [["sim", "hold", "0000:05:00.0", "--as", "q"], "vfioctl.sim-hold/1"],
    [["sim", "holders"], "vfioctl.sim-holders/1"],
    [["sim", "fault", "write", "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", "EIO"], "vfioctl.sim-faults/1"],
    [["sim", "fault", "list"], "vfioctl.sim-faults/1"],
    [["sim", "fault", "clear"], "vfioctl.sim-faults/1"],
    [["sim", "status"], "vfioctl.sim-status/1"],
    [["sim", "release", "q"], "vfioctl.sim-release/1"],
    [["unbind", "0000:05:00.0"], "vfioctl.unbind/1"],
    [["sim", "reboot"], "vfioctl.sim-reboot/1"],
    [["version"], "vfioctl.version/1"],
    [["show", "0000:99:00.0"], "vfioctl.error/1", 2],
  ];
  const seen = new Set<string>();
  for (const [argv, id, code = 0] of lines) {
    let out = "";
    let err = "";
    const c = await main(["--sim", "--state", state, "--json", ...argv], { out: (s) => (out += s + "\n"), err: (s) => (err += s + "\n"), env: {} });
    assert.equal(c, code, `${argv.join(" ")}: ${err}`);
    const j = JSON.parse(out) as Record<string, unknown>;
    assert.equal(j.schema, id, argv.join(" "));
    const fields = docs.get(id);
    assert.ok(fields, `docs/json.md documents ${id}`);
    for (const f of fields!) assert.ok(f in j, `${argv.join(" ")}: documented field ${f} of ${id}`);
    seen.add(id);
  }
  let out = "";
  assert.equal(await main(["sim", "run", "scenarios/token-decision-table.yaml", "--json", "--profile", "6.12"], { out: (s) => (out += s), err: () => {}, env: {} }), 0);
  const run = JSON.parse(out) as Record<string, unknown>;
  assert.equal(run.schema, "vfioctl.sim-run/1");
  for (const f of docs.get("vfioctl.sim-run/1")!) assert.ok(f in run, `sim run: ${f}`);
  seen.add("vfioctl.sim-run/1");
  // every documented schema was produced by some command here
  for (const id of docs.keys()) assert.ok(seen.has(id), `${id} is checked`);
});
