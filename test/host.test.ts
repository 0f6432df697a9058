import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootHostFile, bootKernel } from "../src/kernel/host/boot.js";
import type { Kernel } from "../src/kernel/kernel.js";
import { hostFiles, type HostFiles } from "../src/sys/hostfs.js";
import { parseConfig, ConfigError } from "../src/host/config.js";
import { applyHost, planHost, statusHost } from "../src/host/host.js";
import { TokenStore, readTokenFileSafe } from "../src/host/store.js";
import { storeAndSet } from "../src/host/tokens.js";
import { listBdfs, readDevice, readVfioPciModule } from "../src/lib/sysfs.js";
import { verifyToken } from "../src/lib/tokenops.js";
import { openGroupSession } from "../src/lib/vfio.js";
import { newToken } from "../src/lib/token.js";
import { LAB_HOST } from "../testlib/vfio.js";

const tmpRoot = (): HostFiles => hostFiles(fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-host-")));

/** Every device's driver, override and VF count, and vfio-pci's parameters: the sysfs a rollback must restore. */
async function fullSnapshot(k: Kernel): Promise<string> {
  const sys = k.spawn("snap");
  try {
    const out: string[] = [];
    for (const b of await listBdfs(sys)) {
      const d = await readDevice(sys, b);
      out.push(`${b} ${d.driver} ${d.driverOverride} ${d.sriov?.numVfs ?? "-"}`);
    }
    const m = await readVfioPciModule(sys);
    out.push(`enable_sriov=${m.enableSriov} disable_denylist=${m.disableDenylist}`);
    return out.join("\n");
  } finally {
    await sys.exit();
  }
}

const LAB_CFG = `version: 1
pfs:
  - name: lab-igb
    match: { id: "8086:10c9", path: "0000:00:02.0/00.0" }
    driver: vfio-pci
    vfs: 3
    vf_drivers:
      - { vfs: "2", driver: igbvf, trust_host_driver: true }
    token: generate
`;

test("a host config names the field, what was expected and what was found", () => {
  const bad: [string, RegExp][] = [
    ["version: 2\npfs: []", /version: expected 1, got 2/],
    ["version: 1\npfs:\n  - match: { bdf: '0000:01:00.0' }\n    driver: vfio-pci\n    vfs: 2", /pfs\[0\]\.token: expected generate, external or \{ file: PATH \}/],
    ["version: 1\npfs:\n  - match: { bdf: '0000:01:00.0' }\n    driver: igb\n    vfs: 2\n    token: generate", /pfs\[0\]\.token: expected nothing for a PF on igb/],
    ["version: 1\npfs:\n  - match: { bdf: '0000:1:00.0' }\n    driver: igb", /pfs\[0\]\.match\.bdf: expected a PCI address/],
    ["version: 1\npfs:\n  - match: { path: '0000:00:02.0/00.0' }\n    driver: igb", /pfs\[0\]\.match\.id: expected vendor:device/],
    ["version: 1\npfs:\n  - match: { bdf: '0000:01:00.0', serial: '00-11-22-33-44-55-66-77' }\n    driver: igb", /pfs\[0\]\.match: expected exactly one of bdf, path/],
    ["version: 1\npfs:\n  - match: { bdf: '0000:01:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: generate\n    vf_drivers: [{ vfs: 1, driver: igbvf }]", /vf_drivers\[0\]\.trust_host_driver: expected true to put VFs of a vfio-pci PF on igbvf/],
    ["version: 1\npfs:\n  - match: { bdf: '0000:01:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: generate\n    vf_drivers: [{ vfs: '0-2', driver: vfio-pci }]", /vf_drivers\[0\]\.vfs: expected VF indexes 0\.\.1/],
    ["version: 1\npfs:\n  - match: { bdf: '0000:01:00.0' }\n    driver: vfio-pci\n    token: { file: relative/path }", /pfs\[0\]\.token\.file: expected an absolute path/],
    ["version: 1\npfs:\n  - { match: { bdf: '0000:01:00.0' }, driver: igb }\n  - { match: { bdf: '0000:01:00.0' }, driver: igb, name: other }", /pfs\[1\]\.match\.bdf: expected an address not used by pfs\[0\]/],
    ["version: 1\nbogus: 1\npfs: []", /bogus: expected one of version, store/],
    ["version: 1\npfs:\n  - { match: { bdf: '0000:01:00.0' }, driver: vfio-pci, token: { policy: external, readers: root } }", /expected only owner with external/],
  ];
  for (const [text, re] of bad) {
    assert.throws(() => parseConfig(text, "h.yaml"), (e: unknown) => e instanceof ConfigError && re.test(e.message) && e.message.startsWith("h.yaml: "), text);
  }
  const c = parseConfig(LAB_CFG, "h.yaml");
  assert.deepEqual(c.pfs[0]!.vfDrivers, [{ vfs: [2], driver: "igbvf", trustHostDriver: true }]);
  assert.deepEqual(c.pfs[0]!.match, { by: "path", vendor: 0x8086, device: 0x10c9, path: "0000:00:02.0/00.0" });
});

test("plan spells out the implied steps in Linux's order: VFs off before a PF rebind, through 0 on a count change, enable_sriov, token stored then set before VFs", async () => {
  const k = await bootHostFile(LAB_HOST);
  k.vfioPci.params.enable_sriov = false;
  const sys = k.spawn("t");
  // the PF starts on igb with 2 VFs
  const { setNumVfs } = await import("../src/lib/sriov.js");
  await setNumVfs(sys, "0000:01:00.0", 2);
  const files = tmpRoot();
  const cfg = parseConfig(LAB_CFG, "h.yaml");
  const { plan } = await planHost({ sys, files, cfg });
  assert.deepEqual(plan.blockers, []);
  assert.match(plan.matched[0]!.how, /8086:10c9 at path 0000:00:02\.0\/00\.0 \(now 0000:01:00\.0\)/);
  assert.deepEqual(
    plan.steps.map((s) => `${s.kind} ${s.device ?? ""} ${"to" in s ? s.to : "driver" in s ? s.driver : ""}`.trim()),
    ["param", "sriov 0000:01:00.0 0", "bind 0000:01:00.0 vfio-pci", "token-generate 0000:01:00.0", "token-set 0000:01:00.0", "sriov 0000:01:00.0 3", "bind 0000:01:10.4 igbvf"],
  );
  const bindPf = plan.steps[2]!;
  assert.deepEqual(bindPf.writes, [
    'write "vfio-pci" to /sys/bus/pci/devices/0000:01:00.0/driver_override',
    'write "0000:01:00.0" to /sys/bus/pci/devices/0000:01:00.0/driver/unbind',
    'write "0000:01:00.0" to /sys/bus/pci/drivers_probe',
  ]);
  assert.match(plan.steps[5]!.linux, /enables 3 VFs \(0000:01:10\.0, 0000:01:10\.2, 0000:01:10\.4\)/);
  // a count change on the same driver goes through 0
  const r = await applyHost({ sys, files, cfg });
  assert.equal(r.status, "done");
  const cfg4 = parseConfig(LAB_CFG.replace("vfs: 3", "vfs: 4"), "h.yaml");
  const p4 = (await planHost({ sys, files, cfg: cfg4 })).plan;
  assert.deepEqual(p4.steps.map((s) => s.kind === "sriov" ? `${s.from}→${s.to}` : s.kind), ["3→0", "0→4", "bind"]);
  assert.ok(p4.notes.some((n) => /goes through 0/.test(n.text)));
  await sys.exit();
});

test("apply converges, a second apply does nothing, and status says in sync; drift makes status exit non-zero", async () => {
  const k = await bootHostFile(LAB_HOST);
  const sys = k.spawn("t");
  const files = tmpRoot();
  const cfg = parseConfig(LAB_CFG, "h.yaml");
  const r = await applyHost({ sys, files, cfg });
  assert.equal(r.status, "done", JSON.stringify(r.failed));
  const pf = await readDevice(sys, "0000:01:00.0");
  assert.equal(pf.driver, "vfio-pci");
  assert.equal(pf.sriov!.numVfs, 3);
  assert.equal((await readDevice(sys, "0000:01:10.4")).driver, "igbvf");
  assert.equal((await readDevice(sys, "0000:01:10.2")).driver, "vfio-pci");
  const store = new TokenStore(files, cfg.store);
  const tok = store.read("lab-igb")!;
  assert.equal((await verifyToken(sys, "0000:01:10.0", tok)).result, "match");
  assert.equal((await applyHost({ sys, files, cfg })).status, "nothing-to-do");
  let s = await statusHost({ sys, files, cfg });
  assert.equal(s.inSync, true, JSON.stringify(s.pfs[0]!.drift));
  assert.equal(s.pfs[0]!.token.state, "match");
  // drift: someone moves a VF and the kernel token changes (a re-probe)
  const { bindDriver } = await import("../src/lib/bind.js");
  await bindDriver(sys, "0000:01:10.2", "igbvf", { releaseCaptured: true });
  s = await statusHost({ sys, files, cfg });
  assert.equal(s.inSync, false);
  assert.ok(s.pfs[0]!.drift.some((d) => /VF 1 \(0000:01:10\.2\): driver igbvf, config says vfio-pci/.test(d)), s.pfs[0]!.drift.join("; "));
  assert.equal((await applyHost({ sys, files, cfg })).status, "done");
  assert.equal((await statusHost({ sys, files, cfg })).inSync, true);
  // the journal never holds a token
  const j = fs.readFileSync(files.real(`${cfg.stateDir}/last.json`), "utf8");
  assert.ok(!j.includes(tok));
  await sys.exit();
});

test("an apply whose step N fails leaves the host exactly as it was, for every N", async () => {
  const cfgText = LAB_CFG;
  const probe = await bootHostFile(LAB_HOST);
  probe.vfioPci.params.enable_sriov = false;
  const { setNumVfs } = await import("../src/lib/sriov.js");
  const psys = probe.spawn("t");
  await setNumVfs(psys, "0000:01:00.0", 2);
  const steps = (await planHost({ sys: psys, files: tmpRoot(), cfg: parseConfig(cfgText, "h.yaml") })).plan.steps;
  assert.equal(steps.length, 7);
  for (let n = 0; n < steps.length; n++) {
    const k = await bootHostFile(LAB_HOST);
    k.vfioPci.params.enable_sriov = false;
    const sys = k.spawn("t");
    await setNumVfs(sys, "0000:01:00.0", 2);
    const before = await fullSnapshot(k);
    const files = tmpRoot();
    const cfg = parseConfig(cfgText, "h.yaml");
    const r = await applyHost({ sys, files, cfg }, {
      beforeStep: (i, s) => {
        if (i !== n) return;
        // make the step's first kernel call fail as the device would
        if (s.kind === "param") k.faults.add({ syscall: "write", path: "/sys/module/vfio_pci/parameters/enable_sriov", errno: "EIO" });
        else if (s.kind === "sriov") k.faults.add({ syscall: "write", path: `/sys/bus/pci/devices/${s.device}/sriov_numvfs`, errno: "EIO" });
        else if (s.kind === "bind") k.faults.add({ syscall: "write", path: "/sys/bus/pci/drivers_probe", errno: "ENOMEM" });
        else if (s.kind === "token-set") k.faults.add({ syscall: "ioctl", path: "/dev/vfio/7", errno: "EIO" });
        else throw Object.assign(new Error("disk full"), { code: "ENOSPC" });
      },
    });
    assert.equal(r.status, "rolled-back", `step ${n} (${steps[n]!.kind}): ${r.status} ${JSON.stringify(r.leftBehind)}`);
    assert.equal(r.journal!.steps.indexOf(r.failed!), n);
    assert.ok(r.failed!.error!.message.length > 0);
    assert.equal(await fullSnapshot(k), before, `step ${n} (${steps[n]!.kind})`);
    k.faults.clear();
    await sys.exit();
  }
  await psys.exit();
});

test("an apply killed half way is finished by the next apply, or undone with --undo-interrupted", async () => {
  for (const mode of ["finish", "undo"] as const) {
    const k = await bootHostFile(LAB_HOST);
    const sys = k.spawn("t");
    const files = tmpRoot();
    const cfg = parseConfig(LAB_CFG, "h.yaml");
    const before = await fullSnapshot(k);
    // the first apply stops for good inside step 4 (sriov 0 → 3): as if killed there
    void applyHost({ sys, files, cfg }, { beforeStep: (i) => (i === 3 ? new Promise<void>(() => {}) : undefined) });
    for (let i = 0; i < 50 && !fs.existsSync(files.real(`${cfg.stateDir}/current.json`)); i++) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 100; i++) {
      const j = JSON.parse(fs.readFileSync(files.real(`${cfg.stateDir}/current.json`), "utf8"));
      if (j.steps[3].status === "running") break;
      await new Promise((r) => setTimeout(r, 5));
    }
    // the dead apply's lock names this process; a new process would see a dead pid: simulate that
    fs.writeFileSync(files.real(`${cfg.stateDir}/apply.lock`), JSON.stringify({ pid: 2 ** 22 + 7, started: "earlier" }));
    const sys2 = k.spawn("t2");
    const r = await applyHost({ sys: sys2, files, cfg }, { undoInterrupted: mode === "undo" });
    assert.ok(r.recovered, mode);
    assert.equal(r.recovered!.action, mode === "finish" ? "finished" : "undone");
    if (mode === "finish") {
      assert.equal(r.status, "done");
      assert.equal((await statusHost({ sys: sys2, files, cfg })).inSync, true);
    } else {
      assert.equal(r.status, "interrupted-undone");
      assert.equal(await fullSnapshot(k), before);
    }
    await sys2.exit();
  }
});

test("apply refuses, naming the holder, when a VF it must remove is open, and changes nothing", async () => {
  const k = await bootHostFile(LAB_HOST);
  const sys = k.spawn("t");
  const files = tmpRoot();
  const cfg = parseConfig(LAB_CFG, "h.yaml");
  assert.equal((await applyHost({ sys, files, cfg })).status, "done");
  const tok = new TokenStore(files, cfg.store).read("lab-igb")!;
  const holder = k.spawn("qemu-kvm");
  const s = await openGroupSession(holder, (await readDevice(sys, "0000:01:10.0")).iommuGroup!);
  await s.deviceFd(`0000:01:10.0 vf_token=${tok}`);
  const before = await fullSnapshot(k);
  const r = await applyHost({ sys, files, cfg: parseConfig(LAB_CFG.replace("vfs: 3", "vfs: 4"), "h.yaml") });
  assert.equal(r.status, "blocked");
  assert.ok(r.plan.blockers.some((b) => (b.holders ?? []).some((h) => /0000:01:10\.0: pid \d+ \(qemu-kvm\)/.test(h))), JSON.stringify(r.plan.blockers));
  assert.equal(await fullSnapshot(k), before);
  await holder.exit();
  await sys.exit();
});

test("the token store writes 0700/0600 atomically and refuses links, FIFOs, devices, large and foreign-readable files", async () => {
  const files = tmpRoot();
  const st = new TokenStore(files);
  const t = newToken();
  st.write("pf0", "current", t);
  const dir = files.real("/etc/vfioctl/tokens");
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.equal(fs.statSync(`${dir}/pf0`).mode & 0o777, 0o700);
  assert.equal(fs.statSync(`${dir}/pf0/current`).mode & 0o777, 0o600);
  assert.deepEqual(fs.readdirSync(`${dir}/pf0`), ["current"]);
  assert.equal(st.read("pf0"), t);
  // an existing file readable by others is refused, not overwritten
  fs.chmodSync(`${dir}/pf0/current`, 0o644);
  assert.throws(() => st.write("pf0", "current", newToken()), /mode 0644: others may already have read it/);
  assert.throws(() => st.read("pf0"), /mode 0644, expected 0600/);
  fs.chmodSync(`${dir}/pf0/current`, 0o600);
  // a symlinked slot
  fs.symlinkSync("/etc/passwd", `${dir}/pf0/previous`);
  assert.throws(() => st.read("pf0", "previous"), /ELOOP/);
  assert.throws(() => st.write("pf0", "previous", t), /expected a regular file, got a symbolic link/);
  fs.unlinkSync(`${dir}/pf0/previous`);
  // a symlinked store directory
  fs.mkdirSync(files.real("/tmp/evil"), { recursive: true });
  fs.symlinkSync(files.real("/tmp/evil"), `${dir}/pf1`);
  assert.throws(() => st.write("pf1", "current", t), /a symbolic link/);
  assert.deepEqual(fs.readdirSync(files.real("/tmp/evil")), []);
  // FIFOs, directories, devices and large files are refused by the reader, each by its kind
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-tok-"));
  const { execFileSync } = await import("node:child_process");
  execFileSync("mkfifo", ["-m", "600", `${d}/fifo`]);
  assert.throws(() => readTokenFileSafe(`${d}/fifo`, "fifo"), /expected a regular file, got a FIFO/);
  assert.throws(() => readTokenFileSafe("/dev/null", "null"), /expected a regular file, got a character device/);
  assert.throws(() => readTokenFileSafe(d, "dir"), /expected a regular file, got a directory/);
  fs.writeFileSync(`${d}/big`, "x".repeat(5000), { mode: 0o600 });
  assert.throws(() => readTokenFileSafe(`${d}/big`, "big"), /5000 bytes, expected a UUID/);
  fs.rmSync(d, { recursive: true });
});

test("no store failure leaves the kernel with a token that exists nowhere else", async () => {
  const k = await bootHostFile(LAB_HOST);
  const sys = k.spawn("t");
  const files = tmpRoot();
  const cfg = parseConfig(LAB_CFG, "h.yaml");
  assert.equal((await applyHost({ sys, files, cfg })).status, "done");
  const store = new TokenStore(files, cfg.store);
  const tok = store.read("lab-igb")!;
  // 1. the PF's store directory is not writable (a read-only file system, a full disk): nothing reaches the kernel
  const pfDir = files.real(`${cfg.store}/lab-igb`);
  const full = new TokenStore(files, cfg.store, {
    writeSync: () => {
      throw Object.assign(new Error("no space"), { code: "ENOSPC" });
    },
  });
  await assert.rejects(storeAndSet(sys, full, { name: "lab-igb", pf: "0000:01:00.0", bootId: null }), /ENOSPC \(disk full\)/);
  const badSync = new TokenStore(files, cfg.store, {
    fsyncSync: () => {
      throw Object.assign(new Error("io"), { code: "EIO" });
    },
  });
  await assert.rejects(storeAndSet(sys, badSync, { name: "lab-igb", pf: "0000:01:00.0", bootId: null }), /cannot write: EIO/);
  assert.deepEqual(fs.readdirSync(pfDir).sort(), ["current", "meta.json"]);
  assert.equal((await verifyToken(sys, "0000:01:10.0", tok)).result, "match");
  assert.equal(store.read("lab-igb"), tok);
  // 2. a foreign-readable pending slot: refused before the kernel sees the new token
  fs.writeFileSync(`${pfDir}/pending`, newToken() + "\n", { mode: 0o644 });
  fs.chmodSync(`${pfDir}/pending`, 0o644);
  await assert.rejects(storeAndSet(sys, store, { name: "lab-igb", pf: "0000:01:00.0", bootId: null }), /others may already have read it/);
  assert.equal((await verifyToken(sys, "0000:01:10.0", tok)).result, "match");
  fs.unlinkSync(`${pfDir}/pending`);
  // 3. the kernel refuses the new token: the store keeps the kernel's token as current
  k.faults.add({ syscall: "ioctl", path: "/dev/vfio/7", errno: "EIO" });
  await assert.rejects(storeAndSet(sys, store, { name: "lab-igb", pf: "0000:01:00.0", bootId: null }));
  k.faults.clear();
  assert.equal(store.read("lab-igb"), tok);
  assert.equal((await verifyToken(sys, "0000:01:10.0", tok)).result, "match");
  // 4. a crash after the kernel took the token but before the store promoted it: pending is resolved by status/apply
  const next = newToken();
  store.write("lab-igb", "pending", next);
  const { setToken } = await import("../src/lib/tokenops.js");
  await setToken(sys, "0000:01:00.0", next);
  const s = await statusHost({ sys, files, cfg });
  assert.equal(s.pfs[0]!.token.state, "match");
  assert.equal(store.read("lab-igb"), next);
  assert.equal(store.read("lab-igb", "previous"), tok);
  assert.equal(store.read("lab-igb", "pending"), null);
  await sys.exit();
});

test("rotation while a VF is open: the open VF keeps working, new opens need the new token, status names the old-token user", async () => {
  const k = await bootHostFile(LAB_HOST);
  const sys = k.spawn("t");
  const files = tmpRoot();
  const cfg = parseConfig(LAB_CFG, "h.yaml");
  assert.equal((await applyHost({ sys, files, cfg })).status, "done");
  const store = new TokenStore(files, cfg.store);
  const old = store.read("lab-igb")!;
  const holder = k.spawn("dpdk-app");
  const g = (await readDevice(sys, "0000:01:10.0")).iommuGroup!;
  const hs = await openGroupSession(holder, g);
  const fd = await hs.deviceFd(`0000:01:10.0 vf_token=${old}`);
  k.advance(60_000);
  const r = await storeAndSet(sys, store, { name: "lab-igb", pf: "0000:01:00.0", bootId: null });
  assert.equal(r.method, "feature");
  assert.deepEqual(r.vfsHeld, ["0000:01:10.0"]);
  assert.equal(store.read("lab-igb", "previous"), old);
  const nu = store.read("lab-igb")!;
  assert.notEqual(nu, old);
  // the open VF still answers; a new open needs the new token
  const { VFIO, deviceInfoBuf } = await import("../src/uapi/vfio.js");
  await holder.ioctl(fd, VFIO.DEVICE_GET_INFO, deviceInfoBuf());
  assert.equal((await verifyToken(sys, "0000:01:10.2", old)).result, "mismatch");
  assert.equal((await verifyToken(sys, "0000:01:10.2", nu)).result, "match");
  const s = await statusHost({ sys, files, cfg });
  assert.equal(s.pfs[0]!.token.previous.kept, true);
  assert.deepEqual(s.pfs[0]!.token.oldTokenUsers.map((u) => `${u.bdf} ${u.comm}`), ["0000:01:10.0 dpdk-app"]);
  await holder.exit();
  await sys.exit();
});

test("an external token policy sets nothing and says who is expected to; a file policy reads the operator's file", async () => {
  const k = await bootKernel();
  const sys = k.spawn("t");
  const files = tmpRoot();
  const cfg = parseConfig("version: 1\npfs:\n  - name: acc100\n    match: { bdf: '0000:af:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: { policy: external, owner: pf_bb_config }\n", "h.yaml");
  const p = (await planHost({ sys, files, cfg })).plan;
  assert.deepEqual(p.steps, []);
  assert.ok(p.notes.some((n) => /pf_bb_config is expected to set 0000:af:00\.0's VF token; vfioctl sets none/.test(n.text)));
  const s = await statusHost({ sys, files, cfg });
  assert.equal(s.pfs[0]!.token.state, "external");
  assert.equal(s.inSync, true);
  const t = newToken();
  fs.mkdirSync(files.real("/etc/acc100"), { recursive: true });
  fs.writeFileSync(files.real("/etc/acc100/token"), t + "\n", { mode: 0o600 });
  const cfgF = parseConfig("version: 1\npfs:\n  - name: acc100\n    match: { bdf: '0000:af:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: { file: /etc/acc100/token }\n", "h.yaml");
  assert.equal((await applyHost({ sys, files, cfg: cfgF })).status, "done");
  assert.equal((await verifyToken(sys, "0000:af:10.0", t)).result, "match");
  assert.equal((await applyHost({ sys, files, cfg: cfgF })).status, "nothing-to-do");
  await sys.exit();
});

test("plan refuses to take a PF away from the host while its network interface is up (a copied tree through the real backend)", async () => {
  const { materialize } = await import("../src/sim/materialize.js");
  const { LinuxSyscalls } = await import("../src/sys/linux/host.js");
  const k = await bootHostFile(LAB_HOST);
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-tree-"));
  await materialize(k.spawn("m"), tree);
  const dev = fs.realpathSync(path.join(tree, "sys/bus/pci/devices/0000:01:00.0"));
  fs.mkdirSync(path.join(dev, "net/eth0"), { recursive: true });
  fs.writeFileSync(path.join(dev, "net/eth0/operstate"), "up\n");
  const sys = new LinuxSyscalls({ root: tree });
  const cfg = parseConfig(LAB_CFG, "h.yaml");
  let p = (await planHost({ sys, files: tmpRoot(), cfg })).plan;
  const b = p.blockers.find((x) => /eth0/.test(x.reason));
  assert.ok(b, JSON.stringify(p.blockers));
  assert.match(b.reason, /moving 0000:01:00\.0 from igb to vfio-pci takes eth0 \(0000:01:00\.0, operstate up\) away from the host while it is up/);
  assert.match(b.fix, /ip link set IF down/);
  fs.writeFileSync(path.join(dev, "net/eth0/operstate"), "down\n");
  p = (await planHost({ sys, files: tmpRoot(), cfg })).plan;
  assert.ok(!p.blockers.some((x) => /eth0/.test(x.reason)));
  await sys.exit();
  fs.rmSync(tree, { recursive: true, force: true });
});

test("after a re-probe that leaves no VF to check against, status says unknown and plan sets the stored token before it creates VFs", async () => {
  const k = await bootHostFile(LAB_HOST);
  const sys = k.spawn("t");
  const files = tmpRoot();
  const cfg = parseConfig(LAB_CFG, "h.yaml");
  assert.equal((await applyHost({ sys, files, cfg })).status, "done");
  const { setNumVfs } = await import("../src/lib/sriov.js");
  const { writeText } = await import("../src/sys/fsutil.js");
  await setNumVfs(sys, "0000:01:00.0", 0);
  await writeText(sys, "/sys/bus/pci/drivers/vfio-pci/unbind", "0000:01:00.0");
  await writeText(sys, "/sys/bus/pci/drivers/vfio-pci/bind", "0000:01:00.0");
  const s = await statusHost({ sys, files, cfg });
  assert.equal(s.pfs[0]!.token.state, "unknown");
  const kinds = s.plan.steps.map((x) => x.kind);
  assert.ok(kinds.indexOf("token-set") >= 0 && kinds.indexOf("token-set") < kinds.indexOf("sriov"), kinds.join(","));
  assert.equal((await applyHost({ sys, files, cfg })).status, "done");
  assert.equal((await verifyToken(sys, "0000:01:10.0", new TokenStore(files, cfg.store).read("lab-igb")!)).result, "match");
  // a PF back on its host driver has no token to judge
  const { bindDriver } = await import("../src/lib/bind.js");
  await setNumVfs(sys, "0000:01:00.0", 0);
  await bindDriver(sys, "0000:01:00.0", "igb");
  const s2 = await statusHost({ sys, files, cfg });
  assert.equal(s2.pfs[0]!.token.state, "none");
  assert.ok(s2.pfs[0]!.drift.some((d) => /driver: igb, config says vfio-pci/.test(d)));
  await sys.exit();
});
