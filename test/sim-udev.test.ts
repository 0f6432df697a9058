/**
 * The pieces of the persisted simulated host that read its own files: the udev rules matcher,
 * systemd unit ExecStart lines, modprobe.d options, and the record log reader.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyRules, globMatch, parseRule, type UdevRule } from "../src/sim/udev.js";
import { failedCondition, loadUnit, readModprobe, splitArgv, systemctlStart, vfioctlArgs } from "../src/sim/units.js";
import { SimLog } from "../src/sim/log.js";
import { hostFiles } from "../src/sys/hostfs.js";
import type { Uevent } from "../src/kernel/kernel.js";

const bind: Uevent = { seq: 7, action: "bind", devpath: "/devices/pci0000:00/0000:00:01.0/0000:01:00.0", subsystem: "pci", kernel: "0000:01:00.0", driver: "vfio-pci" };
const rule = (line: string): UdevRule => {
  const r = parseRule(line, "t.rules:1");
  assert.ok(typeof r !== "string", String(r));
  return r;
};
const noAttrs = async () => undefined;

describe("udev rules matcher", () => {
  test("globs: * and ? and [] and | alternatives match like udev's fnmatch", () => {
    assert.ok(globMatch("0000:01:00.?", "0000:01:00.0"));
    assert.ok(!globMatch("0000:01:00.?", "0000:01:00.10"));
    assert.ok(globMatch("vfio-*|igb", "igb"));
    assert.ok(globMatch("[0-9]*", "42"));
    assert.ok(!globMatch("[!0-9]*", "42"));
    assert.ok(globMatch("?*", "x") && !globMatch("?*", ""));
  });

  test("a matching rule with TAG systemd and SYSTEMD_WANTS asks for the unit with %k substituted", async () => {
    const r = rule('ACTION=="bind", SUBSYSTEM=="pci", DRIVER=="vfio-pci", KERNEL=="0000:01:*", TAG+="systemd", ENV{SYSTEMD_WANTS}+="vfs@%k.service"');
    const o = await applyRules([r], bind, noAttrs);
    assert.deepEqual(o.wants, ["vfs@0000:01:00.0.service"]);
    // without the systemd tag, SYSTEMD_WANTS asks for nothing
    const untagged = rule('ACTION=="bind", ENV{SYSTEMD_WANTS}+="vfs@%k.service"');
    assert.deepEqual((await applyRules([untagged], bind, noAttrs)).wants, []);
  });

  test("!=, ATTR{…} read through the callback, and RUN with $kernel", async () => {
    const r = rule('ACTION!="remove", ATTR{vendor}=="0x8086", ATTR{missing}=="", RUN+="/usr/bin/vfioctl show $kernel"');
    const attrs = async (n: string) => (n === "vendor" ? "0x8086\n" : undefined);
    assert.deepEqual((await applyRules([r], bind, attrs)).run, ["/usr/bin/vfioctl show 0000:01:00.0"]);
    assert.deepEqual((await applyRules([r], { ...bind, action: "remove" }, attrs)).run, []);
    assert.deepEqual((await applyRules([r], bind, async () => "0x1af4")).run, []);
  });

  test("an unbind event carries no DRIVER for DRIVER== (as in Linux), and RUN= replaces earlier RUN+=", async () => {
    const unbind: Uevent = { ...bind, action: "unbind", driver: "igb" };
    const r1 = rule('DRIVER=="igb", RUN+="/usr/bin/vfioctl a"');
    const r2 = rule('DRIVER=="", RUN="/usr/bin/vfioctl b"');
    assert.deepEqual((await applyRules([r1, r2], unbind, noAttrs)).run, ["/usr/bin/vfioctl b"]);
  });

  test("keys the matcher does not model are reported and the rule is skipped", () => {
    assert.match(String(parseRule('ACTION=="add", GOTO="end"', "x.rules:3")), /x\.rules:3: GOTO= is not modelled/);
    assert.match(String(parseRule('ACTION=="add" garbage', "x.rules:4")), /cannot parse/);
  });
});

describe("host files of the simulated host", () => {
  test("ExecStart lines: prefixes, quotes, template specifiers, and which ones run vfioctl", () => {
    const root = mkdtempSync(join(tmpdir(), "vfioctl-units-"));
    try {
      mkdirSync(join(root, "etc", "systemd", "system"), { recursive: true });
      writeFileSync(join(root, "etc", "systemd", "system", "x@.service"), '[Unit]\nExecStart=/bin/no\n[Service]\nExecStart=-/usr/bin/vfioctl sriov %I 2\nExecStart=/usr/bin/node /opt/v/bin/vfioctl.js show "%i"\nExecStart=/bin/echo %n\n');
      const u = loadUnit(hostFiles(root), "x@0000:01:00.0.service")!;
      assert.equal(u.execs.length, 3);
      assert.equal(u.execs[0]!.ignoreFailure, true);
      assert.deepEqual(u.execs[0]!.vfioctl, ["sriov", "0000:01:00.0", "2"]);
      assert.deepEqual(u.execs[1]!.vfioctl, ["show", "0000:01:00.0"]);
      assert.equal(u.execs[2]!.vfioctl, null);
      assert.equal(u.execs[2]!.line, "/bin/echo x@0000:01:00.0.service");
      assert.equal(loadUnit(hostFiles(root), "y.service"), null);
      assert.deepEqual(splitArgv(`a "b c" 'd' e\\ f`), ["a", "b c", "d", "e f"]);
      assert.equal(vfioctlArgs(["/usr/bin/vfioctld", "x"]), null);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("systemctl start lines name the units they start, and ConditionPathExists is checked in the simulated root", () => {
    assert.deepEqual(systemctlStart(["/usr/bin/systemctl", "--no-block", "start", "vfioctl-pf@0000:01:00.0.service", "x"]), ["vfioctl-pf@0000:01:00.0.service", "x.service"]);
    assert.equal(systemctlStart(["/usr/bin/systemctl", "stop", "x.service"]), null);
    assert.equal(systemctlStart(["/usr/bin/vfioctl", "start"]), null);
    const root = mkdtempSync(join(tmpdir(), "vfioctl-cond-"));
    try {
      mkdirSync(join(root, "etc", "systemd", "system"), { recursive: true });
      writeFileSync(join(root, "etc", "systemd", "system", "c.service"), "[Unit]\nConditionPathExists=/etc/vfioctl/host.yaml\nConditionPathExists=!/run/off\n[Service]\nExecStart=/usr/bin/vfioctl list\n");
      const f = hostFiles(root);
      const u = loadUnit(f, "c.service")!;
      assert.match(String(failedCondition(f, u)), /ConditionPathExists=\/etc\/vfioctl\/host\.yaml/);
      mkdirSync(join(root, "etc", "vfioctl"));
      writeFileSync(join(root, "etc", "vfioctl", "host.yaml"), "version: 1\n");
      assert.equal(failedCondition(f, u), null);
      mkdirSync(join(root, "run"));
      writeFileSync(join(root, "run", "off"), "");
      assert.match(String(failedCondition(f, u)), /!\/run\/off/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("modprobe.d: vfio_pci and vfio-pci options lines, bool spellings, unknown parameters warned", () => {
    const root = mkdtempSync(join(tmpdir(), "vfioctl-modprobe-"));
    try {
      mkdirSync(join(root, "etc", "modprobe.d"), { recursive: true });
      writeFileSync(join(root, "etc", "modprobe.d", "a.conf"), "options vfio_pci enable_sriov=1 bogus=1 # comment\noptions igb max_vfs=7\n");
      writeFileSync(join(root, "etc", "modprobe.d", "b.conf"), "options vfio-pci disable_denylist=Y enable_sriov=N\n");
      const m = readModprobe(hostFiles(root));
      assert.deepEqual(m.params, { enable_sriov: false, disable_denylist: true });
      assert.equal(m.warnings.length, 1);
      assert.match(m.warnings[0]!, /unknown parameter 'bogus'/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("the log reader ignores a cut-off last line and refuses a broken line in the middle", () => {
    const dir = mkdtempSync(join(tmpdir(), "vfioctl-log-"));
    try {
      const f = join(dir, "log.jsonl");
      writeFileSync(f, '{"t":"boot","v":1,"boot":1,"seed":1,"wallMs":0,"modules":{}}\n{"t":"clock","ms":0,"wallMs":0}\n{"t":"spa');
      assert.equal(new SimLog(f, dir).read().length, 2);
      writeFileSync(f, '{"t":"boot","v":1,"boot":1,"seed":1,"wallMs":0,"modules":{}}\n{"t":"spa\n{"t":"clock","ms":0,"wallMs":0}\n');
      assert.throws(() => new SimLog(f, dir).read(), /line 2 is not a JSON record.*rm -r/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
