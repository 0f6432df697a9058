import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { bootFiles, bootNeedsFrom, mainUnit, modprobeConf, pfTemplate, systemdWord, udevRule, MAIN_UNIT, MODPROBE_CONF, UDEV_RULE, type BootNeeds } from "../src/host/units.js";
import { install, uninstall, reloadHost, MANIFEST, readManifest } from "../src/host/install.js";
import { hostFiles } from "../src/sys/hostfs.js";
import { VfioctlError } from "../src/lib/errors.js";
import { main } from "../src/cli/main.js";
import { EXIT } from "../src/cli/context.js";

const VERIFY = fileURLToPath(new URL("../../tools/systemd-verify/verify.sh", import.meta.url));
const CACHE = process.env.VFIOCTL_SYSTEMD_VERIFY_CACHE ?? "/var/cache/vfioctl-systemd-verify";

const ARGV = ["/usr/bin/node", "/opt/vfioctl/bin/vfioctl.js"];
const needs = (o: Parameters<typeof bootNeedsFrom>[0] = {}): BootNeeds => bootNeedsFrom({ vfioctl: ARGV, ...o });
/** A config whose paths systemd must quote: blanks, %, $, quotes, a backslash, non-ASCII. */
const WEIRD = needs({
  vfioctl: ["/opt/my node/bin/node", "/opt/vf ctl/bin/vfioctl.js"],
  configPath: `/etc/vfio ctl/host 50% $HOME "q" 'x' a\\b é.yaml`,
  before: ["libvirtd.service", "dpdk-app.service"],
  enableSriov: true,
  disableDenylist: true,
  sriovPfs: ["acc100"],
  denylistPfs: ["qat0"],
});

const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), `vfioctl-${p}-`));
const code = (c: string) => (e: unknown) => e instanceof VfioctlError && e.code === c;

/** [Section] → key → values, as systemd reads a unit file (comments dropped, keys repeat). */
function ini(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let sec = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (!line.trim() || /^[#;]/.test(line)) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      sec = new Map();
      out.set(s[1]!, sec);
      continue;
    }
    const eq = line.indexOf("=");
    const k = line.slice(0, eq);
    sec.set(k, [...(sec.get(k) ?? []), line.slice(eq + 1)]);
  }
  return out;
}
const words = (u: Map<string, Map<string, string[]>>, sec: string, key: string) => (u.get(sec)?.get(key) ?? []).flatMap((v) => v.split(/\s+/).filter(Boolean));
const one = (u: Map<string, Map<string, string[]>>, sec: string, key: string) => {
  const v = u.get(sec)?.get(key) ?? [];
  assert.equal(v.length, 1, `${sec}/${key}: expected one value, got ${JSON.stringify(v)}`);
  return v[0]!;
};

/**
 * A command line as systemd.service(5) reads it: words split at blanks unless quoted, C escapes,
 * then specifiers (%% → %, %I → instance) and, at exec time, $$ → $.
 */
function execArgv(line: string, instance = "%I"): string[] {
  const out: string[] = [];
  let i = 0;
  const esc: Record<string, string> = { n: "\n", t: "\t", "\\": "\\", '"': '"', "'": "'", " ": " ", ";": ";" };
  while (i < line.length) {
    while (line[i] === " ") i++;
    if (i >= line.length) break;
    let w = "";
    let q: string | null = null;
    for (; i < line.length; i++) {
      const c = line[i]!;
      if (!q && c === " ") break;
      if (c === "\\") {
        const n = line[++i]!;
        if (n === "x") {
          w += String.fromCharCode(parseInt(line.slice(i + 1, i + 3), 16));
          i += 2;
        } else w += esc[n] ?? assert.fail(`unknown escape \\${n} in ${line}`);
      } else if (q && c === q) q = null;
      else if (!q && (c === '"' || c === "'")) q = c;
      else w += c;
    }
    out.push(w);
  }
  return out.map((w) => w.replace(/%(.)/g, (_m, c: string) => (c === "%" ? "%" : c === "I" ? instance : assert.fail(`unexpected specifier %${c}`))).replace(/\$\$/g, "$"));
}

/** Every entry under `root`, with the content (or link target) it has, for before/after comparisons. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n);
      const st = fs.lstatSync(p);
      const rel = "/" + path.relative(root, p);
      if (st.isSymbolicLink()) out[rel] = `-> ${fs.readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[rel + "/"] = "dir";
        walk(p);
      } else out[rel] = `${(st.mode & 0o7777).toString(8)} ino ${st.ino} mtime ${st.mtimeMs} ${fs.readFileSync(p, "utf8")}`;
    }
  };
  walk(root);
  return out;
}

// ---------------------------------------------------------------- the generated files

test("vfioctl.service runs in early boot: DefaultDependencies=no, after module loading and the udev coldplug, before network-pre.target, basic.target and every consumer", () => {
  const n = needs({ before: ["libvirtd.service", "dpdk-app.service"] });
  const u = ini(mainUnit(n));
  assert.equal(one(u, "Unit", "DefaultDependencies"), "no");
  assert.deepEqual(words(u, "Unit", "After").sort(), ["systemd-modules-load.service", "systemd-udev-trigger.service"]);
  for (const b of ["network-pre.target", "basic.target", "libvirtd.service", "dpdk-app.service", "shutdown.target"]) assert.ok(words(u, "Unit", "Before").includes(b), `Before=${b}`);
  assert.deepEqual(words(u, "Unit", "Wants"), ["network-pre.target"]);
  assert.deepEqual(words(u, "Unit", "Conflicts"), ["shutdown.target"]);
  assert.equal(one(u, "Unit", "ConditionPathExists"), "/etc/vfioctl/host.yaml");
  assert.deepEqual(words(u, "Unit", "RequiresMountsFor"), ["/etc/vfioctl", "/var/lib/vfioctl", "/usr/bin", "/opt/vfioctl/bin"]);
  assert.equal(one(u, "Service", "Type"), "oneshot");
  assert.equal(one(u, "Service", "RemainAfterExit"), "yes");
  assert.deepEqual(execArgv(one(u, "Service", "ExecStart")), [...ARGV, "apply", "--boot", "--config", "/etc/vfioctl/host.yaml"]);
  assert.equal(one(u, "Install", "WantedBy"), "sysinit.target");
  // nothing orders it after what it must precede
  for (const a of words(u, "Unit", "After")) assert.ok(!words(u, "Unit", "Before").includes(a));
});

test("vfioctl-pf@.service re-runs for each probe: oneshot without RemainAfterExit, after vfioctl.service, apply --boot --device %I", () => {
  const u = ini(pfTemplate(needs({ before: ["libvirtd.service"] })));
  assert.equal(one(u, "Unit", "DefaultDependencies"), "no");
  assert.ok(words(u, "Unit", "After").includes(MAIN_UNIT));
  assert.ok(words(u, "Unit", "Before").includes("libvirtd.service"));
  assert.equal(one(u, "Service", "Type"), "oneshot");
  assert.equal(u.get("Service")!.has("RemainAfterExit"), false, "an active instance would swallow the next re-probe's start");
  assert.deepEqual(execArgv(one(u, "Service", "ExecStart"), "0000:01:00.0"), [...ARGV, "apply", "--boot", "--device", "0000:01:00.0", "--config", "/etc/vfioctl/host.yaml"]);
  assert.equal(u.has("Install"), false, "started by udev, never enabled");
});

test("ExecStart=, ConditionPathExists= and RequiresMountsFor= quote paths with blanks, %, $, quotes and backslashes so systemd reads the same paths back", () => {
  const u = ini(mainUnit(WEIRD));
  const cfg = WEIRD.configPath;
  assert.deepEqual(execArgv(one(u, "Service", "ExecStart")), [...WEIRD.vfioctl, "apply", "--boot", "--config", cfg]);
  assert.match(one(u, "Service", "ExecStart"), /^"\/opt\/my node\/bin\/node" "\/opt\/vf ctl\/bin\/vfioctl.js" apply --boot --config "\/etc\/vfio ctl\/host 50%% \$\$HOME \\"q\\" 'x' a\\\\b é.yaml"$/);
  assert.equal(one(u, "Unit", "ConditionPathExists"), cfg.replace(/%/g, "%%"));
  assert.equal(systemdWord("/plain/path-1.2_x:y"), "/plain/path-1.2_x:y");
  assert.equal(systemdWord("50%"), "50%%");
  assert.equal(systemdWord("$HOME", "list"), "$HOME");
  assert.equal(systemdWord("$HOME"), "$$HOME");
  assert.equal(systemdWord(""), '""');
  assert.equal(systemdWord(";"), '";"');
  assert.equal(systemdWord("a\nb"), '"a\\nb"');
});

test("every generated file starts with a comment naming vfioctl, its config and vfioctl uninstall", () => {
  for (const f of bootFiles(WEIRD).files) {
    const head = f.content.split("\n").slice(0, 3).join("\n");
    assert.match(head, /^# Generated by vfioctl from \/etc\/vfio ctl\/host 50% /, f.path);
    assert.match(head, /vfioctl uninstall/, f.path);
  }
});

test("the udev rule starts vfioctl-pf@<BDF>.service when vfio-pci binds an SR-IOV PF, through systemctl --no-block, and says why not SYSTEMD_WANTS", () => {
  const r = udevRule(needs());
  const rules = r.split("\n").filter((l) => l && !l.startsWith("#"));
  assert.deepEqual(rules, ['ACTION=="bind", SUBSYSTEM=="pci", DRIVER=="vfio-pci", ATTR{sriov_totalvfs}=="[1-9]*", RUN+="/usr/bin/systemctl --no-block start vfioctl-pf@$kernel.service"']);
  assert.match(r, /# Why RUN\+="systemctl --no-block start" and not ENV\{SYSTEMD_WANTS\}/);
  assert.match(r, /re-probe is an unbind and a bind of a device that\n# stays present/);
  assert.equal(bootFiles(needs()).files.find((f) => f.path === UDEV_RULE)?.mode, 0o644);
});

test("the modprobe options are written only when the config needs them, with the PFs that need them", () => {
  assert.equal(modprobeConf(needs()), null);
  assert.equal(bootFiles(needs()).files.some((f) => f.path === MODPROBE_CONF), false);
  const s = modprobeConf(needs({ enableSriov: true, sriovPfs: ["acc100", "lab-igb"] }))!;
  assert.deepEqual(s.split("\n").filter((l) => l && !l.startsWith("#")), ["options vfio_pci enable_sriov=1"]);
  assert.match(s, /\/etc\/vfioctl\/host\.yaml needs it for\n# acc100, lab-igb \(on vfio-pci with VFs\)/);
  const d = modprobeConf(needs({ disableDenylist: true }))!;
  assert.deepEqual(d.split("\n").filter((l) => l && !l.startsWith("#")), ["options vfio_pci disable_denylist=1"]);
  assert.deepEqual(modprobeConf(WEIRD)!.split("\n").filter((l) => l && !l.startsWith("#")), ["options vfio_pci enable_sriov=1 disable_denylist=1"]);
});

test("bootNeedsFrom names what it expected and what it got", () => {
  assert.throws(() => needs({ before: ["lib virtd"] }), (e: unknown) => code("BAD_INPUT")(e) && /--before: expected a unit name such as libvirtd.service .*got "lib virtd"/.test((e as Error).message));
  assert.throws(() => needs({ before: ["vfioctl.service"] }), code("BAD_INPUT"));
  assert.throws(() => needs({ configPath: "/etc/a\nb.yaml" }), /control characters/);
  assert.throws(() => bootNeedsFrom({ vfioctl: ["node", "x.js"] }), /vfioctl argv\[0\]: expected an absolute path, got "node"/);
  assert.equal(needs({ configPath: "host.yaml", cwd: "/srv/cfg" }).configPath, "/srv/cfg/host.yaml");
  assert.deepEqual(needs({ before: ["a.service", "a.service", "b.target"] }).before, ["a.service", "b.target"]);
  const d = bootNeedsFrom();
  assert.equal(d.vfioctl[0], process.execPath);
  assert.match(d.vfioctl[1]!, /bin\/vfioctl\.js$/);
  assert.ok(fs.existsSync(d.vfioctl[1]!));
});

// ---------------------------------------------------------------- install / uninstall

test("install places every file under the root, enables vfioctl.service with a sysinit.target.wants/ link and records each with its sha256", () => {
  const root = tmp("inst");
  const files = hostFiles(root);
  const r = install(files, needs({ enableSriov: true }));
  assert.equal(r.changed, true);
  assert.deepEqual(r.reload, [{ command: ["systemctl", "daemon-reload"], ok: true, skipped: "simulated host" }]);
  for (const f of bootFiles(needs({ enableSriov: true })).files) {
    assert.equal(fs.readFileSync(files.real(f.path), "utf8"), f.content);
    assert.equal(fs.statSync(files.real(f.path)).mode & 0o7777, 0o644);
  }
  const link = files.real("/etc/systemd/system/sysinit.target.wants/vfioctl.service");
  assert.equal(fs.readlinkSync(link), "../vfioctl.service");
  assert.equal(fs.readFileSync(link, "utf8"), fs.readFileSync(files.real("/etc/systemd/system/vfioctl.service"), "utf8"));
  const m = readManifest(files)!;
  const byPath = new Map(m.entries.map((e) => [e.path, e]));
  assert.equal(byPath.get(MODPROBE_CONF)?.kind, "file");
  assert.match(byPath.get(MODPROBE_CONF)!.sha256!, /^[0-9a-f]{64}$/);
  assert.equal(byPath.get("/etc/systemd/system/sysinit.target.wants/vfioctl.service")?.target, "../vfioctl.service");
  assert.equal(byPath.get("/var/lib/vfioctl")?.kind, "dir");
  // no temporary file left behind
  assert.deepEqual(Object.keys(tree(root)).filter((p) => p.includes(".vfioctl-")), []);
});

test("a second install changes nothing and says so", async () => {
  const root = tmp("idem");
  const files = hostFiles(root);
  install(files, needs({ before: ["libvirtd.service"] }));
  const before = tree(root);
  const r = install(files, needs({ before: ["libvirtd.service"] }));
  assert.equal(r.changed, false);
  assert.deepEqual(r.steps.map((s) => s.action), r.steps.map(() => "unchanged"));
  assert.deepEqual(r.reload, [], "nothing changed: no reload");
  assert.deepEqual(tree(root), before, "not one file rewritten (inode and mtime kept)");
});

test("a changed config rewrites only the files whose content changed, and removes the modprobe options once no PF needs them", () => {
  const root = tmp("chg");
  const files = hostFiles(root);
  install(files, needs({ enableSriov: true }));
  const t0 = tree(root);
  const r = install(files, needs({ enableSriov: true, before: ["libvirtd.service"] }));
  const act = Object.fromEntries(r.steps.map((s) => [s.path, s.action]));
  assert.equal(act["/etc/systemd/system/vfioctl.service"], "update");
  assert.equal(act["/etc/systemd/system/vfioctl-pf@.service"], "update");
  assert.equal(act[UDEV_RULE], "unchanged");
  assert.equal(act[MODPROBE_CONF], "unchanged");
  const t1 = tree(root);
  assert.equal(t1[UDEV_RULE], t0[UDEV_RULE], "the rule is not rewritten (same inode, same mtime)");
  assert.equal(t1[MODPROBE_CONF], t0[MODPROBE_CONF]);
  const r2 = install(files, needs({ enableSriov: false, before: ["libvirtd.service"] }));
  assert.equal(r2.steps.find((s) => s.path === MODPROBE_CONF)?.action, "remove");
  assert.equal(fs.existsSync(files.real(MODPROBE_CONF)), false);
  assert.equal(readManifest(files)!.entries.some((e) => e.path === MODPROBE_CONF), false);
});

test("uninstall removes exactly what the manifest lists and leaves everything else", () => {
  const root = tmp("uninst");
  const files = hostFiles(root);
  // the host's own files, there before install
  fs.mkdirSync(files.real("/etc/systemd/system/multi-user.target.wants"), { recursive: true });
  fs.writeFileSync(files.real("/etc/systemd/system/other.service"), "[Service]\nExecStart=/bin/true\n");
  fs.symlinkSync("../other.service", files.real("/etc/systemd/system/multi-user.target.wants/other.service"));
  fs.mkdirSync(files.real("/etc/udev/rules.d"), { recursive: true });
  fs.writeFileSync(files.real("/etc/udev/rules.d/70-other.rules"), "# theirs\n");
  const before = tree(root);
  install(files, needs({ enableSriov: true, disableDenylist: true }));
  // a file the host gets after install, in a directory install created
  fs.writeFileSync(files.real("/var/lib/vfioctl/journal.json"), "{}\n");
  const listed = readManifest(files)!.entries.map((e) => e.path);
  const r = uninstall(files);
  assert.deepEqual(r.kept, []);
  assert.equal(r.nothing, false);
  const after = tree(root);
  for (const p of listed) if (p !== "/var/lib/vfioctl" && p !== "/var/lib" && p !== "/var") assert.equal(p in after || p + "/" in after, false, `${p} removed`);
  assert.equal(fs.existsSync(files.real(MANIFEST)), false);
  assert.equal(after["/var/lib/vfioctl/journal.json"], tree(root)["/var/lib/vfioctl/journal.json"], "a file vfioctl did not place stays, and so does its directory");
  delete after["/var/"];
  delete after["/var/lib/"];
  delete after["/var/lib/vfioctl/"];
  delete after["/var/lib/vfioctl/journal.json"];
  assert.deepEqual(after, before);
  assert.equal(uninstall(files).nothing, true, "a second uninstall finds nothing");
});

test("uninstall leaves a file edited by hand in place and reports it; --force removes it", () => {
  const root = tmp("edit");
  const files = hostFiles(root);
  install(files, needs());
  fs.appendFileSync(files.real(UDEV_RULE), "# local tweak\n");
  const r = uninstall(files);
  assert.deepEqual(r.kept, [UDEV_RULE]);
  assert.match(r.steps.find((s) => s.path === UDEV_RULE)!.note!, /changed by hand since vfioctl installed it/);
  assert.match(fs.readFileSync(files.real(UDEV_RULE), "utf8"), /# local tweak/);
  assert.equal(fs.existsSync(files.real("/etc/systemd/system/vfioctl.service")), false);
  assert.deepEqual(readManifest(files)!.entries.filter((e) => e.kind !== "dir").map((e) => e.path), [UDEV_RULE], "the manifest still lists what was kept");
  const f = uninstall(files, { force: true });
  assert.deepEqual(f.removed.includes(UDEV_RULE), true);
  assert.deepEqual(Object.keys(tree(root)), [], "the root is empty again: every directory install created is gone");
});

test("uninstall refuses a manifest that lists a file vfioctl never places, and removes nothing", () => {
  const root = tmp("tamper");
  const files = hostFiles(root);
  install(files, needs());
  fs.writeFileSync(files.real("/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  const m = readManifest(files)!;
  m.entries.push({ path: "/etc/passwd", kind: "file", sha256: "0".repeat(64) });
  fs.writeFileSync(files.real(MANIFEST), JSON.stringify(m));
  const before = tree(root);
  assert.throws(() => uninstall(files), (e: unknown) => code("UNSAFE_FILE")(e) && /found "\/etc\/passwd", which vfioctl install never places/.test((e as Error).message));
  assert.deepEqual(tree(root), before);
});

test("install refuses to overwrite a hand-edited file or a file it did not install, names each, changes nothing; --force overwrites", () => {
  const root = tmp("conf");
  const files = hostFiles(root);
  install(files, needs());
  fs.appendFileSync(files.real("/etc/systemd/system/vfioctl.service"), "# mine\n");
  fs.mkdirSync(files.real("/etc/modprobe.d"), { recursive: true });
  fs.writeFileSync(files.real(MODPROBE_CONF), "options vfio_pci ids=8086:10c9\n");
  const before = tree(root);
  assert.throws(
    () => install(files, needs({ enableSriov: true, before: ["libvirtd.service"] })),
    (e: unknown) =>
      code("UNSAFE_FILE")(e) &&
      /2 files are not vfioctl's to change \(nothing was changed\)/.test((e as Error).message) &&
      /vfioctl.service \(simulated host: .*\): changed by hand since vfioctl installed it/.test((e as Error).message) &&
      /vfioctl.conf .*: exists and was not installed by vfioctl/.test((e as Error).message) &&
      /--force/.test((e as VfioctlError).fix!),
  );
  assert.deepEqual(tree(root), before);
  const r = install(files, needs({ enableSriov: true, before: ["libvirtd.service"] }), { force: true });
  assert.match(r.steps.find((s) => s.path === MODPROBE_CONF)!.note!, /--force/);
  assert.match(fs.readFileSync(files.real(MODPROBE_CONF), "utf8"), /enable_sriov=1/);
});

test("a masked vfioctl.service is reported as masked, not overwritten", () => {
  const root = tmp("mask");
  const files = hostFiles(root);
  fs.mkdirSync(files.real("/etc/systemd/system"), { recursive: true });
  fs.symlinkSync("/dev/null", files.real("/etc/systemd/system/vfioctl.service"));
  assert.throws(() => install(files, needs()), /is masked \(a symbolic link to \/dev\/null\): unmask it first/);
  assert.equal(fs.readlinkSync(files.real("/etc/systemd/system/vfioctl.service")), "/dev/null");
});

test("nothing is written outside the given root: a symbolic link inside it is never written through", () => {
  const base = tmp("escape");
  const root = path.join(base, "root");
  const outside = path.join(base, "outside");
  fs.mkdirSync(path.join(root, "etc"), { recursive: true });
  fs.mkdirSync(outside);
  fs.symlinkSync(outside, path.join(root, "etc", "udev"));
  const files = hostFiles(root);
  assert.throws(() => install(files, needs()), (e: unknown) => code("UNSAFE_FILE")(e) && /\/etc\/udev .*: expected a directory, found a symbolic link/.test((e as Error).message));
  assert.deepEqual(fs.readdirSync(outside), []);
  assert.deepEqual(Object.keys(tree(root)), ["/etc/", "/etc/udev"], "refused before anything was written");
  // a root without such links: every path written is under it
  const clean = path.join(base, "clean");
  fs.mkdirSync(clean);
  install(hostFiles(clean), WEIRD);
  assert.deepEqual(fs.readdirSync(base).sort(), ["clean", "outside", "root"]);
  for (const p of Object.keys(tree(clean))) assert.ok(p.startsWith("/etc/") || p.startsWith("/var/"), p);
});

test("a dry run prints what it would do and writes nothing", () => {
  const root = tmp("dry");
  const r = install(hostFiles(root), WEIRD, { dryRun: true });
  assert.equal(r.changed, true);
  assert.deepEqual(fs.readdirSync(root), []);
  assert.equal(r.steps.filter((s) => s.kind === "file").length, 4);
  assert.ok(r.steps.every((s) => s.kind !== "file" || (s.action === "create" && s.content!.startsWith("# Generated by vfioctl"))));
  install(hostFiles(root), WEIRD);
  const before = tree(root);
  const u = uninstall(hostFiles(root), { dryRun: true });
  assert.equal(u.removed.length, 5);
  assert.deepEqual(tree(root), before);
});

test("on a real host the reload runs systemctl daemon-reload and udevadm control --reload when they exist, and reports failures", () => {
  const bin = tmp("bin");
  fs.writeFileSync(path.join(bin, "udevadm"), "#!/bin/sh\nexit 1\n", { mode: 0o755 });
  const seen: string[][] = [];
  const r = reloadHost(hostFiles("/"), {
    path: bin,
    run: (argv) => {
      seen.push(argv);
      return { status: 1, stdout: "", stderr: "Failed to send reload request: No such file or directory\n" };
    },
  });
  assert.deepEqual(seen.at(-1), [path.join(bin, "udevadm"), "control", "--reload"]);
  assert.deepEqual(r.at(-1), { command: [path.join(bin, "udevadm"), "control", "--reload"], ok: false, error: "Failed to send reload request: No such file or directory" });
  if (!fs.existsSync("/run/systemd/system")) assert.match(r[0]!.skipped ?? "", /systemd is not running|not found/);
  assert.deepEqual(reloadHost(hostFiles(tmp("sim"))), [{ command: ["systemctl", "daemon-reload"], ok: true, skipped: "simulated host" }]);
});

// ---------------------------------------------------------------- the command

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (s) => (out += s + "\n"), err: (s) => (err += s + "\n"), env: {} });
  return { code, out, err };
}

test("vfioctl --sim install --dry-run prints every file with its content; repeated --before and bad input are handled", async () => {
  const r = await cli(["--sim", "install", "--dry-run", "--before", "libvirtd.service", "--before=dpdk-app.service,spdk.service", "--enable-sriov"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /^simulated host: host paths below live under \//m);
  for (const p of ["/etc/systemd/system/vfioctl.service", "/etc/systemd/system/vfioctl-pf@.service", UDEV_RULE, MODPROBE_CONF]) assert.match(r.out, new RegExp(`^--- ${p.replace(/[.@]/g, "\\$&")} \\(would create, mode 0644`, "m"));
  assert.match(r.out, /^Before=libvirtd.service\nBefore=dpdk-app.service\nBefore=spdk.service$/m);
  assert.match(r.out, /^options vfio_pci enable_sriov=1$/m);
  assert.match(r.out, /^dry run: nothing was changed$/m);
  const bad = await cli(["--sim", "install", "--before", "not a unit"]);
  assert.equal(bad.code, EXIT.USAGE);
  assert.match(bad.err, /vfioctl install: --before: expected a unit name such as libvirtd.service or dpdk-app.service, got "not a unit"\n {2}fix: /);
  const both = await cli(["--sim", "install", "--enable-sriov", "--no-enable-sriov"]);
  assert.equal(both.code, EXIT.USAGE);
  const j = await cli(["--sim", "--json", "install", "--config", "/etc/vfioctl/lab.yaml"]);
  assert.equal(j.code, EXIT.OK, j.err);
  const o = JSON.parse(j.out) as { changed: boolean; needs: BootNeeds; steps: { path: string; action: string; content?: string }[] };
  assert.equal(o.changed, true);
  assert.equal(o.needs.configPath, "/etc/vfioctl/lab.yaml");
  assert.ok(o.steps.some((s) => s.path === UDEV_RULE && s.action === "create" && s.content === undefined));
  const u = await cli(["--sim", "uninstall"]);
  assert.equal(u.code, EXIT.OK);
  assert.match(u.out, /nothing to remove/);
});

test("vfioctl install takes boot.before and enable_sriov from the host config when it exists; the flags add to it or override it", async () => {
  const dir = tmp("cfg");
  const cfg = path.join(dir, "host.yaml");
  fs.writeFileSync(cfg, "version: 1\nboot:\n  before: [libvirtd.service]\npfs:\n  - name: acc100\n    match: { bdf: '0000:af:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: generate\n");
  const r = await cli(["--sim", "install", "--dry-run", "--config", cfg, "--before", "dpdk-app.service"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /^Before=libvirtd.service\nBefore=dpdk-app.service$/m);
  assert.match(r.out, /^options vfio_pci enable_sriov=1$/m);
  assert.match(r.out, /needs it for\n# acc100 \(on vfio-pci with VFs\)/);
  assert.match(r.out, /^RequiresMountsFor=\S+ \/var\/lib\/vfioctl \/etc\/vfioctl\/tokens /m);
  const off = await cli(["--sim", "install", "--dry-run", "--config", cfg, "--no-enable-sriov"]);
  assert.doesNotMatch(off.out, /^options vfio_pci|modprobe.d\/vfioctl.conf/m);
  const none = await cli(["--sim", "install", "--dry-run", "--config", path.join(dir, "missing.yaml")]);
  assert.equal(none.code, EXIT.OK);
  assert.match(none.err, /missing.yaml does not exist: the units name it anyway/);
  fs.writeFileSync(cfg, "version: 1\npfs: 3\n");
  const bad = await cli(["--sim", "install", "--config", cfg]);
  assert.equal(bad.code, EXIT.USAGE);
  assert.match(bad.err, /host.yaml: pfs: expected/);
});

test("vfioctl help install and help uninstall show examples that run on --sim", async () => {
  const h = await cli(["help", "install"]);
  assert.match(h.out, /vfioctl --sim install --dry-run/);
  assert.match(h.out, /vfioctl --sim --state \/tmp\/h install/);
  assert.match((await cli(["help", "uninstall"])).out, /vfioctl --sim --state \/tmp\/h uninstall/);
  const again = await cli(["install", "--help"]);
  assert.equal(again.code, EXIT.OK);
});

// ---------------------------------------------------------------- Debian 13's systemd and udev

/** Why the Debian 13 checks cannot run here, or null when they can. */
function verifyUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root (chroot into the Debian 13 root)";
  if (!fs.existsSync(path.join(CACHE, "trixie/usr/bin/udevadm"))) return `no Debian 13 root at ${CACHE}/trixie: run sudo bash tools/systemd-verify/prepare.sh`;
  if (spawnSync("unshare", ["--mount", "true"]).status !== 0) return "cannot make a mount namespace (unshare --mount)";
  return null;
}

/** Un-shell-quote systemd's dump of a command line (quote_command_line: "…" with \-escapes). */
function dumpArgv(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m; (m = re.exec(line)); ) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]!.replace(/\\(.)/g, "$1"));
  return out.map((w) => w.replace(/\$\$/g, "$"));
}

function runVerify(root: string, n: BootNeeds, dumps: string[]): { code: number; out: string; dump: Map<string, string[]> } {
  const r = spawnSync("bash", [VERIFY, "--exec", n.vfioctl[0]!, ...dumps.flatMap((d) => ["--dump", d]), root], { encoding: "utf8", timeout: 120_000 });
  const dump = new Map<string, string[]>();
  for (const l of r.stdout.split("\n")) {
    const m = /^DUMP (\S+)\t(.*)$/.exec(l);
    if (m) dump.set(m[1]!, [...(dump.get(m[1]!) ?? []), m[2]!]);
  }
  return { code: r.status ?? -1, out: r.stdout + r.stderr, dump };
}

const CONFIGS: [string, BootNeeds][] = [
  ["the default config, no consumers, no module options", needs()],
  ["two consumers and enable_sriov", needs({ before: ["libvirtd.service", "dpdk-app.service"], enableSriov: true, sriovPfs: ["acc100"] })],
  ["paths with blanks, %, $, quotes, a backslash and non-ASCII; both module options", WEIRD],
];

for (const [name, n] of CONFIGS) {
  test(`Debian 13's systemd-analyze verify, udevadm verify and modprobe accept the files for ${name}, and systemd reads back the same argv and paths`, (t) => {
    const why = verifyUnavailable();
    if (why) return t.skip(why);
    const root = tmp("verify");
    install(hostFiles(root), n);
    const inst = "vfioctl-pf@0000:01:00.0.service";
    const r = runVerify(root, n, [MAIN_UNIT, inst]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^ok {4}udevadm verify \/etc\/udev\/rules.d\/90-vfioctl.rules$/m);
    assert.match(r.out, /^ok {4}systemctl is-enabled vfioctl.service: enabled$/m);
    assert.match(r.out, /^ok {4}boot transaction: no ordering cycle$/m);
    if (n.enableSriov) assert.match(r.out, /^ok {4}modprobe --showconfig -C \/etc\/modprobe.d\/vfioctl.conf: options vfio_pci enable_sriov=1/m);
    const main = r.dump.get(MAIN_UNIT)!;
    const pf = r.dump.get(inst)!;
    const val = (d: string[], k: string) => d.filter((l) => l.startsWith(k + ": ")).map((l) => l.slice(k.length + 2).replace(/ \(origin-file\)$/, ""));
    assert.deepEqual(val(main, "Command Line").map(dumpArgv), [[...n.vfioctl, "apply", "--boot", "--config", n.configPath]]);
    assert.deepEqual(val(pf, "Command Line").map(dumpArgv), [[...n.vfioctl, "apply", "--boot", "--device", "0000:01:00.0", "--config", n.configPath]]);
    assert.deepEqual(val(main, "ConditionPathExists"), [`${n.configPath} untested`]);
    assert.deepEqual(val(main, "RequiresMountsFor").sort(), [...new Set([path.dirname(n.configPath), "/var/lib/vfioctl", ...n.vfioctl.map((a) => path.dirname(a))])].sort());
    assert.deepEqual(val(main, "DefaultDependencies"), ["no"]);
    for (const b of ["network-pre.target", "basic.target", ...n.before]) assert.ok(val(main, "Before").includes(b), `vfioctl.service Before=${b}`);
    for (const a of ["systemd-modules-load.service", "systemd-udev-trigger.service"]) assert.ok(val(main, "After").includes(a), `After=${a}`);
    assert.ok(val(pf, "After").includes(MAIN_UNIT));
    assert.deepEqual(val(pf, "RemainAfterExit"), ["no"]);
  });
}

test("the Debian 13 checks fail on a broken unit, a broken rule and an ordering cycle", (t) => {
  const why = verifyUnavailable();
  if (why) return t.skip(why);
  const root = tmp("broken");
  const n = needs();
  install(hostFiles(root), n);
  const unit = path.join(root, "etc/systemd/system/vfioctl.service");
  fs.writeFileSync(unit, fs.readFileSync(unit, "utf8").replace("Type=oneshot", "Type=oneshott").replace("Before=basic.target", "Before=basic.target\nAfter=multi-user.target"));
  const rule = path.join(root, UDEV_RULE.slice(1));
  fs.writeFileSync(rule, fs.readFileSync(rule, "utf8").replace('DRIVER=="vfio-pci"', 'DRIVER="vfio-pci"'));
  const r = runVerify(root, n, []);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /^FAIL {2}systemd-analyze verify \/etc\/systemd\/system\/vfioctl.service/m);
  assert.match(r.out, /Failed to parse Type=oneshott/);
  assert.match(r.out, /^FAIL {2}udevadm verify \/etc\/udev\/rules.d\/90-vfioctl.rules/m);
  assert.match(r.out, /^FAIL {2}boot transaction has an ordering cycle/m);
});
