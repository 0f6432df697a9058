import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import {
  CONSUMER_ROWS,
  CONTAINER_CGROUPS,
  checkConsumers,
  consumerRowsFor,
  diffConsumers,
  isConsumerSelector,
  maskTokens,
  normaliseConsumerSnap,
  normaliseLogLine,
  parseQemu,
  parseQmpStream,
  parseTestpmd,
  pciIdsOf,
  runModelConsumers,
  stepsOf,
  type ConsumerRun,
  type StepRun,
  worldWritableParent,
} from "../lab/consumers.js";
import { devNum } from "../lab/consumers-guest.js";
import { machineEnv } from "../lab/vm.js";
import { labFiltered } from "../lab/conformance.js";

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// testpmd's output as the lab recorded it (a VF user with a wrong token; DPDK 24.11, Debian 13)
const TESTPMD_WRONG = [
  "EAL: Detected CPU lcores: 2",
  "EAL: Using IOMMU type 1 (Type 1)",
  "EAL: Getting a vfio_dev_fd for 0000:01:10.0 failed",
  "PCI_BUS: Requested device 0000:01:10.0 cannot be used",
  "EAL: Bus (pci) probe failed.",
  "EAL: Cannot set up DMA remapping, error 22 (Invalid argument)",
  "testpmd: No probed ethernet devices",
  "testpmd> show port summary all\r",
  "testpmd> quit\r",
  "Done",
  "Number of available ports: 0",
  "Port MAC Address       Name         Driver         Status   Link",
  "",
  "Bye...",
].join("\n");
const TESTPMD_RIGHT = [
  "EAL: Selected IOVA mode 'VA'",
  "Port 0: 8A:6A:73:CE:E7:85",
  "testpmd> show port summary all",
  "testpmd> quit",
  "Number of available ports: 1",
  "Port MAC Address       Name         Driver         Status   Link",
  "0    8A:6A:73:CE:E7:85 0000:01:10.0 net_e1000_igb_vf up       1 Gbps",
  "",
  "Bye...",
].join("\n");

test("consumer output: testpmd's port table and EAL lines, QEMU's errors, QMP replies", () => {
  const w = parseTestpmd(TESTPMD_WRONG);
  assert.deepEqual(w.ports, []);
  assert.deepEqual(w.devFdFailed, ["0000:01:10.0"]);
  assert.equal(w.prompt, true);
  assert.ok(w.eal!.includes("PCI_BUS: Requested device 0000:01:10.0 cannot be used"));
  assert.ok(w.eal!.includes("testpmd: No probed ethernet devices"));
  const r = parseTestpmd(TESTPMD_RIGHT);
  assert.deepEqual(r.ports, [{ port: 0, name: "0000:01:10.0", driver: "net_e1000_igb_vf", status: "up", link: "1 Gbps" }]);
  assert.deepEqual(r.devFdFailed, []);

  const q = parseQemu(
    "qemu-system-x86_64: warning: nic igb.0 has no peer\nqemu-system-x86_64: -device vfio-pci,host=0000:01:10.0,vf-token=<W>: vfio 0000:01:10.0: error getting device from group 8: Permission denied\nVerify all devices in group 8 are bound to vfio-<bus> or pci-stub and not already in use\n",
  );
  assert.deepEqual(q.qemuErrors, ["qemu-system-x86_64: -device vfio-pci,host=0000:01:10.0,vf-token=<W>: vfio 0000:01:10.0: error getting device from group 8: Permission denied", "Verify all devices in group 8 are bound to vfio-<bus> or pci-stub and not already in use"]);

  const stream = '{"QMP": {"version": {}}}\r\n{"return": {}}\r\n{"error": {"class": "GenericError", "desc": "vfio 0000:01:10.0: error getting device from group 8: Permission denied"}}\r\n';
  assert.deepEqual(parseQmpStream(stream), [{ QMP: { version: {} } }, { return: {} }, { error: { class: "GenericError", desc: "vfio 0000:01:10.0: error getting device from group 8: Permission denied" } }]);
  const pci = { return: [{ bus: 0, devices: [{ id: { vendor: 0x8086, device: 0x1237 } }, { id: { vendor: 0x8086, device: 0x10ca } }, { id: { vendor: 0x1b36, device: 1 }, pci_bridge: { devices: [{ id: { vendor: 0x1af4, device: 0x1000 } }] } }] }] };
  assert.deepEqual(pciIdsOf(pci), ["8086:1237", "8086:10ca", "1b36:0001", "1af4:1000"]);
  assert.deepEqual(pciIdsOf({ error: {} }), []);
});

test("consumer rows: tokens masked, kernel lines' group numbers named, dev_t decoded, machine options", () => {
  const t = { U: "7c1e5a34-2b9d-4c61-9f0e-3a8d5b6c7e21" };
  assert.equal(maskTokens("--vfio-vf-token=7c1e5a34-2b9d-4c61-9f0e-3a8d5b6c7e21 and 7C1E5A34-2B9D-4C61-9F0E-3A8D5B6C7E21", t), "--vfio-vf-token=<U> and <U>");
  const g = new Map<number, string>();
  assert.equal(normaliseLogLine("pci 0000:01:10.0: Adding to iommu group 8", g), "pci 0000:01:10.0: Adding to iommu group @group_of(0000:01:10.0)");
  assert.equal(normaliseLogLine("vfio-pci 0000:01:10.0: Removing from iommu group 8", g), "vfio-pci 0000:01:10.0: Removing from iommu group @group_of(0000:01:10.0)");
  assert.equal(normaliseLogLine('vfio-pci 0000:01:10.0: Device is currently in use, task "dpdk-testpmd" (204) blocked', g), 'vfio-pci 0000:01:10.0: Device is currently in use, task "<comm>" (<pid>) blocked');
  assert.equal(normaliseLogLine("something about iommu group 9", g), "something about iommu group @group");
  assert.deepEqual(devNum(245 * 256 + 1), [245, 1]);
  assert.deepEqual(devNum(10 * 256 + 196), [10, 196]);
  assert.deepEqual(devNum(0x4561_2378), [0x123, 0x45678]); // glibc makedev: minor's high bits above bit 20
  assert.deepEqual(machineEnv({ memMiB: 4096, append: "hugepages=256" }, { VFIOCTL_LAB_APPEND: "foo=1", X: "y" }), { VFIOCTL_LAB_APPEND: "foo=1 hugepages=256", VFIOCTL_LAB_MEM: "4096", X: "y" });
  assert.deepEqual(machineEnv({}, { X: "y" }), { X: "y" });
  assert.ok(isConsumerSelector("dpdk") && isConsumerSelector("qemu:vf") && isConsumerSelector("consumers") && !isConsumerSelector("host"));
  assert.deepEqual(consumerRowsFor(["dpdk"]), ["dpdk:pf-vf", "dpdk:chroot", "dpdk:mntns"]);
  assert.deepEqual(consumerRowsFor(["qemu:vf", "dpdk:chroot"]), ["dpdk:chroot", "qemu:vf"]);
  assert.deepEqual(consumerRowsFor([]), [...CONSUMER_ROWS]);
});

const holder = (pid: number, target: string, where: Record<string, unknown>) => ({ pid, fd: 19, target, kind: "group", group: 8, device: null, via: "rdev", rdev: "245:1", comm: "dpdk-testpmd", where });

test("consumer snapshots: pids become roles, fds/rdev/seq/times placeholders, the guest's /host and missing cgroups; comm stays", () => {
  const list = { backend: "linux", kernel: { osrelease: "6.12.117+deb13-amd64", procVersion: "Linux version 6.12.117+deb13-amd64 …", behaviour: { iommufd: true } }, pfs: [{ bdf: "0000:01:00.0", iommuGroup: 7, vfDevices: [{ bdf: "0000:01:10.0", iommuGroup: 8 }] }], others: [{ bdf: "0000:00:02.0", iommuGroup: 2, role: "device", driver: "pcieport" }] };
  const real = normaliseConsumerSnap(
    {
      list: { exit: 0, out: list, err: "" },
      "show-vf0": { exit: 0, out: { bdf: "0000:01:10.0", iommuGroup: 8, heldBy: [holder(204, "/host/dev/vfio/8", { root: "/host", mntns: "other", container: null, cgroup: null })] }, err: "" },
      "explain-vf0": { exit: 1, out: { open: { summary: "EBUSY (/dev/vfio/8 is already open: pid 204 (dpdk-testpmd) fd 19 → /host/dev/vfio/8 [own mount namespace, chroot /host])" }, tokenLog: { events: [{ seq: 461, tsUs: 17957360, text: "x" }], why: 'the kernel log shows [17.957360] "vfio-pci …"' } }, err: "" },
    },
    { "204": "vfR" },
    "real",
    { noCgroups: true },
  );
  assert.deepEqual(real.list!.out, { kernel: { behaviour: { iommufd: true } }, pfs: [{ bdf: "0000:01:00.0", iommuGroup: "@group_of(0000:01:00.0)", vfDevices: [{ bdf: "0000:01:10.0", iommuGroup: "@group_of(0000:01:10.0)" }] }], others: [{ bdf: "0000:00:02.0", iommuGroup: "@group_of(0000:00:02.0)", role: "device", driver: null }] });
  assert.deepEqual((real["show-vf0"]!.out as { heldBy: unknown[] }).heldBy, [{ pid: "vfR", fd: "<fd>", target: "/dev/vfio/@group_of(0000:01:10.0)", kind: "group", group: "@group_of(0000:01:10.0)", device: null, via: "rdev", rdev: "<rdev>", comm: "dpdk-testpmd", where: { root: null, mntns: "other", container: null, cgroup: "/" } }]);
  assert.deepEqual(real["explain-vf0"]!.out, {
    open: { summary: "EBUSY (/dev/vfio/@group_of(0000:01:10.0) is already open: pid vfR (dpdk-testpmd) fd <fd> → /dev/vfio/@group_of(0000:01:10.0) [own mount namespace])" },
    tokenLog: { events: [{ seq: "<seq>", tsUs: "<tsUs>", text: "x" }], why: 'the kernel log shows [<time>] "vfio-pci …"' },
  });
  // the model's paths are its own: nothing of the guest's /host is taken away there, and a chroot stays a chroot
  const model = normaliseConsumerSnap({ "show-vf0": { exit: 0, out: { heldBy: [holder(1005, "/host/dev/vfio/8", { root: "/var/cache/vfioctl-lab/trixie", mntns: "same", container: null, cgroup: null })] }, err: "" } }, { "1005": "vfR" }, "model");
  assert.deepEqual((model["show-vf0"]!.out as { heldBy: { target: string; where: unknown }[] }).heldBy[0]!.where, { root: "/var/cache/vfioctl-lab/trixie", mntns: "same", container: null, cgroup: null });
  assert.equal((model["show-vf0"]!.out as { heldBy: { target: string }[] }).heldBy[0]!.target, "/host/dev/vfio/@group(8)");
  // another process than the consumers is a <pid>
  const other = normaliseConsumerSnap({ audit: { exit: 0, out: { holders: [{ pid: 77, fd: 3, comm: "x", target: "/dev/vfio/vfio" }] }, err: "" } }, {}, "real");
  assert.deepEqual(other.audit!.out, { holders: [{ pid: "<pid>", fd: "<fd>", comm: "x", target: "/dev/vfio/vfio" }] });
});

/** A run of the dpdk rows as the guest records it, reduced to what the checks read. */
function fakeRun(o: { showVf0HeldBy: unknown[]; explainVf0Errno: string; rankedAfterWrong: string; rankedAfterWrongNoFlag?: string; argsPfExit: number; place?: { root: string; otherMntNs: boolean } }): ConsumerRun {
  const PFS = { bdf: "0000:01:00.0", iommuGroup: 7 };
  const pfTruth = { role: "pf", pid: 100, comm: "dpdk-testpmd", root: "/", otherMntNs: false, fds: [{ fd: 19, target: "/dev/vfio/7", rdev: "245:0", group: 7, kind: "group" as const }] };
  const vfTruth = { role: "vfR", pid: 200, comm: "dpdk-testpmd", root: o.place?.root ?? "/", otherMntNs: o.place?.otherMntNs ?? false, fds: [{ fd: 19, target: `${o.place?.root === "/" || !o.place ? "" : o.place.root}/dev/vfio/8`, rdev: "245:1", group: 8, kind: "group" as const }] };
  const explain = (errno: string, g: number) => ({ exit: 1, out: { device: { iommuGroup: g }, open: { verdict: "fails", errno, summary: `open: ${errno}` } }, err: "" });
  const steps: StepRun[] = [
    { name: "vfs", ms: 0, log: [], snapshot: { "explain-vf0": explain("EACCES", 8), "explain-vf0-token": { exit: 1, out: { device: { iommuGroup: 8 }, open: { verdict: "cannot-tell", errno: "EACCES", summary: "may fail" } }, err: "" } }, truth: [pfTruth], probes: [] },
    {
      name: "vf-right",
      ms: 0,
      log: ["<info> vfio-pci 0000:01:10.0: enabling device (0000 -> 0002)"],
      snapshot: { "show-pf": { exit: 0, out: { ...PFS, heldBy: [{ pid: 100, comm: "dpdk-testpmd", group: 7 }] }, err: "" }, "show-vf0": { exit: 0, out: { bdf: "0000:01:10.0", iommuGroup: 8, heldBy: o.showVf0HeldBy }, err: "" }, "explain-vf0": explain(o.explainVf0Errno, 8) },
      truth: [pfTruth, vfTruth],
      probes: [{ group: 7, path: "/dev/vfio/7", errno: "EBUSY" }, { group: 8, path: "/dev/vfio/8", errno: "EBUSY" }],
    },
    { name: "vf-wrong", ms: 0, log: ["<info> vfio-pci 0000:01:10.0: Incorrect VF token provided for device", "<info> vfio-pci 0000:01:10.0: VF token required to access device"], snapshot: {} },
    {
      name: "vf-wrong-exit",
      ms: 0,
      log: [],
      snapshot: {
        "explain-vf0-token-eacces": { exit: 1, out: { ranked: [{ id: o.rankedAfterWrong, status: "applies", errno: "EACCES" }] }, err: "" },
        "explain-vf0-eacces": { exit: 1, out: { ranked: [{ id: o.rankedAfterWrongNoFlag ?? o.rankedAfterWrong, status: "applies", errno: "EACCES" }] }, err: "" },
      },
    },
    { name: "vf-none", ms: 0, log: ["<info> vfio-pci 0000:01:10.0: VF token required to access device"], snapshot: {} },
    { name: "vf-none-exit", ms: 0, log: [], snapshot: { "explain-vf0-eacces": { exit: 1, out: { ranked: [{ id: "token-required", status: "applies", errno: "EACCES" }] }, err: "" } } },
  ];
  const tp = (role: string, text: string) => ({ role, comm: "dpdk-testpmd", argv: [], pid: 1, exit: 0, signal: null, output: text, stderr: "", facts: parseTestpmd(text), ms: 0 });
  return {
    row: "dpdk:chroot",
    kernel: "6.12",
    ms: 0,
    env: {},
    steps,
    consumers: {
      pf: tp("pf", TESTPMD_RIGHT.replace("0000:01:10.0 net_e1000_igb_vf", "0000:01:00.0 net_e1000_igb")),
      vfR: tp("vfR", TESTPMD_RIGHT),
      vfW: tp("vfW", TESTPMD_WRONG),
      vfN: tp("vfN", TESTPMD_WRONG),
    },
    args: { "dpdk-pf": { exit: o.argsPfExit, out: o.argsPfExit ? "" : { argv: ["-a", "0000:01:00.0", "--vfio-vf-token=<U>"] }, err: o.argsPfExit ? "vfioctl args: 0000:01:00.0 is a PF" : "", argv: o.argsPfExit ? [] : ["-a", "0000:01:00.0", "--vfio-vf-token=<U>"] } },
    roles: { "100": "pf", "200": "vfR" },
  };
}

test("vfioctl against the consumers: a holder in a chroot not named, EBUSY not predicted, the EACCES ranking, args for the PF", () => {
  const chroot = { root: "/var/cache/vfioctl-lab/trixie", otherMntNs: false };
  const bad = checkConsumers(fakeRun({ showVf0HeldBy: [], explainVf0Errno: "EACCES", rankedAfterWrong: "token-incorrect", rankedAfterWrongNoFlag: "token-required", argsPfExit: 2, place: chroot }));
  assert.deepEqual(bad.consumer, []);
  assert.equal(bad.wrong.length, 4, bad.wrong.join("\n"));
  assert.match(bad.wrong[0]!, /^vf-right: show 0000:01:10\.0: heldBy nobody; vfR \(pid 200, dpdk-testpmd\) in a chroot \(\/var\/cache\/vfioctl-lab\/trixie\) holds \/var\/cache\/vfioctl-lab\/trixie\/dev\/vfio\/8/);
  assert.match(bad.wrong[1]!, /^vf-right: explain 0000:01:10\.0: open fails EACCES .*a second open of \/dev\/vfio\/8 failed EBUSY/);
  assert.match(bad.wrong[2]!, /^vf-wrong-exit: explain 0000:01:10\.0 --errno EACCES ranks token-required first; the kernel said "vfio-pci 0000:01:10\.0: Incorrect VF token provided for device"/);
  assert.match(bad.wrong[3]!, /^args dpdk 0000:01:00\.0 --token-file F: exit 2/);

  const good = checkConsumers(fakeRun({ showVf0HeldBy: [{ pid: 200, comm: "dpdk-testpmd", group: 8 }], explainVf0Errno: "EBUSY", rankedAfterWrong: "token-incorrect", argsPfExit: 0, place: chroot }));
  assert.deepEqual(good.wrong, []);
  assert.ok(good.agreed.some((a) => /show 0000:01:10\.0 names vfR \(pid 200, dpdk-testpmd\) in a chroot/.test(a)));
  assert.ok(good.agreed.some((a) => /explain 0000:01:10\.0 predicts EBUSY/.test(a)));
  assert.ok(good.agreed.some((a) => /vfs: explain 0000:01:10\.0 predicts EACCES without a token/.test(a)));
  // a holder named with another comm than /proc's, and one named that holds nothing of the group
  const comm = checkConsumers(fakeRun({ showVf0HeldBy: [{ pid: 200, comm: "ld-linux-x86-64", group: 8 }, { pid: 100, comm: "dpdk-testpmd", group: 8 }], explainVf0Errno: "EBUSY", rankedAfterWrong: "token-incorrect", argsPfExit: 0 }));
  assert.deepEqual(comm.wrong, ['vf-right: show 0000:01:10.0: names pid 200 as "ld-linux-x86-64", /proc says "dpdk-testpmd"', "vf-right: show 0000:01:10.0: heldBy names pid 100 (dpdk-testpmd), which holds no fd of group 8"]);
  // the consumers' own expectations: a VF user that got a port with a wrong token is the lab going wrong
  const run = fakeRun({ showVf0HeldBy: [{ pid: 200, comm: "dpdk-testpmd", group: 8 }], explainVf0Errno: "EBUSY", rankedAfterWrong: "token-incorrect", argsPfExit: 0 });
  run.consumers.vfW = { ...run.consumers.vfW!, facts: parseTestpmd(TESTPMD_RIGHT) };
  run.steps.find((s) => s.name === "vf-wrong")!.log = ["<info> vfio-pci 0000:01:10.0: VF token required to access device"];
  const c = checkConsumers(run).consumer;
  assert.ok(c.some((x) => /^vfW: no "Getting a vfio_dev_fd for 0000:01:10\.0 failed"/.test(x)), c.join("\n"));
  assert.ok(c.some((x) => /^vfW: testpmd listed ports/.test(x)));
  assert.ok(c.some((x) => /^vf-wrong: the kernel did not log "Incorrect VF token" then "VF token required"/.test(x)));
});

test("real against model: vfioctl's answers per step after normalisation, and the step's kernel lines after the lab filter", () => {
  const step = (name: string, heldPid: number, log: string[]): StepRun => ({ name, ms: 1, log, snapshot: { "show-vf0": { exit: 0, out: { bdf: "0000:01:10.0", iommuGroup: 8, heldBy: [{ pid: heldPid, fd: 4, comm: "dpdk-testpmd", target: "/dev/vfio/8", group: 8 }] }, err: "" } } });
  const real = { steps: [step("vf-right", 204, ["<info> vfio-pci 0000:01:10.0: enabling device (0000 -> 0002)", "<info> igbvf 0000:01:10.2: Address: 8a:6a:73:ce:e7:85"]), step("extra", 204, [])], roles: { "204": "vfR" } };
  const model = { row: "dpdk:pf-vf" as const, kernel: "6.12", ms: 0, steps: [step("vf-right", 1005, ["<info> vfio-pci 0000:01:10.0: enabling device (0000 -> 0002)"])], roles: { "1005": "vfR" }, transcriptOk: true, failures: [] };
  assert.deepEqual(diffConsumers(real, model, labFiltered), [{ op: "extra", field: "presence", real: "ran", model: "absent" }]);
  model.roles = { "1005": "vfW" };
  model.steps[0]!.log = [];
  const d = diffConsumers(real, model, labFiltered);
  assert.deepEqual(
    d.map((x) => [x.op, x.field]),
    [
      ["vf-right show 0000:01:10.0", "out.heldBy[0].pid"],
      ["vf-right", "log"],
      ["extra", "presence"],
    ],
  );
});

test("the model side of every consumer row: the scenario holds, every step is there, consumers named as Linux names them", async () => {
  for (const k of ["6.1", "6.12"]) {
    for (const row of CONSUMER_ROWS) {
      const m = await runModelConsumers(k, PROJECT, row, "/var/cache/vfioctl-lab/trixie");
      assert.equal(m.transcriptOk, true, `${k} ${row}: ${JSON.stringify(m.failures)}`);
      assert.deepEqual(
        m.steps.map((s) => s.name),
        stepsOf(row).map((s) => s.name),
      );
      const s = m.steps.find((x) => x.name === (row === "qemu:vf" ? "qemu-right" : "vf-right"))!;
      const held = (s.snapshot["show-vf0"]!.out as { heldBy: { comm: string; pid: number; where?: { root: string | null; mntns: string } }[] }).heldBy;
      assert.equal(held.length, 1, `${k} ${row}`);
      assert.equal(held[0]!.comm, row === "qemu:vf" ? "qemu-system-x86" : "dpdk-testpmd");
      assert.equal(m.roles[String(held[0]!.pid)], row === "qemu:vf" ? "qR" : "vfR");
      if (row === "dpdk:chroot") assert.equal(held[0]!.where?.root, "/var/cache/vfioctl-lab/trixie");
      if (row === "dpdk:mntns") {
        assert.equal(held[0]!.where?.mntns, "other");
        assert.deepEqual((held[0]!.where as { container?: unknown }).container, CONTAINER_CGROUPS.vfR!.container);
      }
      // vfioctl sriov under the held PF: done, and its note names the PF's userspace driver
      const sr = m.steps.find((x) => x.name === "pf-sriov")!.snapshot["sriov-2"]!;
      assert.equal(sr.exit, 0, sr.err);
      const pfPid = Object.entries(m.roles).find(([, r]) => r === "pf")![0];
      assert.ok((sr.out as { notes: string[] }).notes.some((n) => n.includes(`0000:01:00.0 is open in pid ${pfPid} (dpdk-testpmd), its userspace driver`) && n.includes("cannot open the PF while it runs (EBUSY: the group is open)")), JSON.stringify(sr.out));
      // status: the PF testpmd holds the PF; the VF user VF0
      const st = (s.snapshot.status!.out as { pfs: { holders: { bdf: string; pid: number }[] }[] }).pfs[0]!.holders;
      assert.deepEqual(st.map((h) => [h.bdf, m.roles[String(h.pid)]]).sort(), [["0000:01:00.0", "pf"], ["0000:01:10.0", row === "qemu:vf" ? "qR" : "vfR"]]);
      // DPDK's retry: a wrong token, then the same open without it
      if (row !== "qemu:vf") assert.deepEqual(m.steps.find((x) => x.name === "vf-wrong")!.log, ["<info> vfio-pci 0000:01:10.0: Incorrect VF token provided for device", "<info> vfio-pci 0000:01:10.0: VF token required to access device"]);
      else assert.deepEqual(m.steps.find((x) => x.name === "qemu-wrong")!.log, ["<info> vfio-pci 0000:01:10.0: Incorrect VF token provided for device"]);
    }
  }
});

test("vfioctl against the consumers: status's holders, the container named from a holder's cgroup, vfioctl sriov while the PF is held", () => {
  const docker = CONTAINER_CGROUPS.vfR!;
  const fd = (n: number, g: number | null, kind: "group" | "container") => ({ fd: n, target: g === null ? "/dev/vfio/vfio" : `/dev/vfio/${g}`, rdev: g === null ? "10:196" : `245:${g - 7}`, group: g, kind });
  const mk = (o: { statusHolders: { bdf: string; pid: number; comm: string }[]; container: unknown; explainText: string; sriovExit: number; fallback?: { errno: string | null } }): ConsumerRun => ({
    row: "dpdk:mntns",
    kernel: "6.12",
    ms: 0,
    env: o.fallback ? { sriovFallback: o.fallback } : {},
    steps: [
      { name: "pf-sriov", ms: 0, log: [], snapshot: { "sriov-2": { exit: o.sriovExit, out: {}, err: o.sriovExit ? "vfioctl sriov: refused" : "" } } },
      { name: "vfs", ms: 0, log: [], snapshot: { "show-pf": { exit: 0, out: { bdf: "0000:01:00.0", iommuGroup: 7, sriov: { numVfs: 2 }, heldBy: [] }, err: "" } } },
      {
        name: "vf-right",
        ms: 0,
        log: [],
        truth: [
          { role: "pf", pid: 100, comm: "dpdk-testpmd", root: "/", otherMntNs: false, cgroup: "/", fds: [fd(8, null, "container"), fd(19, 7, "group")] },
          { role: "vfR", pid: 200, comm: "dpdk-testpmd", root: "/host", otherMntNs: true, cgroup: docker.cgroup, fds: [fd(8, null, "container"), fd(19, 8, "group")] },
        ],
        snapshot: {
          status: { exit: 0, out: { pfs: [{ holders: o.statusHolders }] }, err: "" },
          list: { exit: 0, out: { holders: [{ pid: 200, comm: "dpdk-testpmd", target: "/host/dev/vfio/8", where: { container: o.container } }] }, err: "" },
          "show-pf": { exit: 0, out: { bdf: "0000:01:00.0", iommuGroup: 7, heldBy: [{ pid: 100, comm: "dpdk-testpmd", group: 7 }] }, err: "" },
          "show-vf0": { exit: 0, out: { bdf: "0000:01:10.0", iommuGroup: 8, heldBy: [{ pid: 200, comm: "dpdk-testpmd", group: 8, where: { container: o.container } }] }, err: "" },
          "explain-pf": { exit: 0, out: { causes: [{ id: "pf-vf-open", cause: o.explainText }] }, err: "" },
        },
      },
    ],
    consumers: {},
    args: {},
    roles: { "100": "pf", "200": "vfR" },
  });
  const both = [
    { bdf: "0000:01:00.0", pid: 100, comm: "dpdk-testpmd" },
    { bdf: "0000:01:10.0", pid: 200, comm: "dpdk-testpmd" },
  ];
  const good = checkConsumers(mk({ statusHolders: both, container: docker.container, explainText: `pid 200 (dpdk-testpmd) fd 19 → /dev/vfio/8 [container docker ${docker.container.id}, chroot /host]`, sriovExit: 0 }));
  assert.deepEqual(good.wrong, []);
  assert.ok(good.agreed.includes("vf-right: status names vfR (pid 200) as a holder of 0000:01:10.0"), good.agreed.join("\n"));
  assert.ok(good.agreed.includes(`vf-right: list names vfR's container docker ${docker.container.id}`));
  assert.ok(good.agreed.some((a) => /^pf-sriov: vfioctl sriov 0000:01:00\.0 2 created the VFs while testpmd held the PF/.test(a)));

  const bad = checkConsumers(mk({ statusHolders: [both[0]!, { bdf: "0000:01:10.2", pid: 300, comm: "qemu" }], container: null, explainText: "pid 200 (dpdk-testpmd) fd 19 → /dev/vfio/8 [own mount namespace]", sriovExit: 3, fallback: { errno: null } }));
  assert.ok(!bad.consumer.some((c) => /cgroup|sriov/.test(c)), bad.consumer.join("\n"));
  const has = (re: RegExp) => assert.ok(bad.wrong.some((w) => re.test(w)), `${re} in:\n${bad.wrong.join("\n")}`);
  has(/^vf-right: status: holders .*; vfR \(pid 200, dpdk-testpmd\) holds \/dev\/vfio\/8 \(0000:01:10\.0's group\)$/);
  has(/^vf-right: status names 0000:01:10\.2 pid 300 \(qemu\) as a holder; no consumer of the step holds a group fd under that pid$/);
  has(/^vf-right: list: pid 200 \(vfR\) fd \/host\/dev\/vfio\/8 in cgroup \/system\.slice\/docker-3f2a9c1b0d4e[0-9a-f]+\.scope: container null, expected \{"runtime":"docker","id":"3f2a9c1b0d4e"\}$/);
  has(/^vf-right: show 0000:01:10\.0: pid 200 \(vfR\) in cgroup .*: container null/);
  has(/^vf-right: explain 0000:01:00\.0: no "\[container docker 3f2a9c1b0d4e" for vfR/);
  has(/^pf-sriov: vfioctl sriov 0000:01:00\.0 2 exit 3 \(vfioctl sriov: refused\); writing 2 to sriov_numvfs then worked$/);
  // the lab's own side: a VF user not in the cgroup it was put in is the lab going wrong, not vfioctl
  const run = mk({ statusHolders: both, container: docker.container, explainText: "", sriovExit: 0 });
  run.steps[2]!.truth![1]!.cgroup = "/";
  assert.ok(checkConsumers(run).consumer.some((c) => /^vf-right: vfR runs in cgroup "\/", not \/system\.slice\/docker-/.test(c)));
});

test("a lab cache below a world-writable folder is refused for the DPDK rows, naming that folder (EAL loads no driver from under it)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-ww-"));
  try {
    fs.chmodSync(dir, 0o755);
    const sub = path.join(dir, "cache", "trixie");
    const tmp = fs.statSync(os.tmpdir()).mode & 0o002 ? path.resolve(os.tmpdir()) : null;
    assert.equal(worldWritableParent(sub), tmp);
    fs.chmodSync(dir, 0o777);
    assert.equal(worldWritableParent(sub), dir, "the nearest world-writable folder is named");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(worldWritableParent("/usr/lib/x86_64-linux-gnu"), null);
});
