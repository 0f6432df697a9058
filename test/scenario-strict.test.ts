import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { compareTranscripts, linuxBackend, modelBackend, parseScenario, runScenario, ScenarioError, NEVER_OPENED_FD, type OpResult, type Transcript } from "../src/scenario/index.js";
import { diffTranscripts } from "../lab/conformance.js";
import { LAB_HOST } from "../testlib/vfio.js";

const U1 = "2ab74924-c335-45f4-9b16-8569e5b08258";
const head = `host: ${LAB_HOST}
processes: [main, other]
vars: { PF: "0000:01:00.0", VF0: "0000:01:10.0" }
tokens: { U1: ${U1} }
setup:
  - ensure: { bdf: "\${PF}", driver: vfio-pci, sriov_numvfs: 1 }
`;
const run = async (ops: string, opts: { sharedFds?: boolean; profile?: string } = {}) => {
  const sc = parseScenario(head + "ops:\n" + ops, "t.yaml");
  return runScenario(sc, await modelBackend(sc, { profile: opts.profile ?? "6.12", ...(opts.sharedFds ? { sharedFds: true } : {}) }));
};
const byName = (t: Transcript, n: string): OpResult => {
  const r = [...t.setup, ...t.ops, ...t.teardown].find((o) => o.name === n);
  assert.ok(r, `op ${n} in the transcript`);
  return r;
};

test("each new fd is recorded as its number above the lowest free one, and a closed number is given out again", async () => {
  const t = await run(`  - { name: a, open: /dev/vfio/vfio, as: a }
  - { name: b, open: /dev/vfio/vfio, as: b }
  - { name: ca, close: a }
  - { name: c, open: /dev/vfio/vfio, as: c }
  - { name: ev, eventfd: ev }
`);
  assert.ok(t.ok, JSON.stringify(t.failures));
  // the runner's own /dev/kmsg reader is a process of its own: per-process tables start at 0
  assert.deepEqual(t.fds, { table: "per-process", base: 3 });
  assert.deepEqual(["a", "b", "c", "ev"].map((n) => byName(t, n).fd), [0, 1, 0, 2]);
  assert.equal(byName(t, "a").ret, "fd");
});

test("with one shared fd table the processes' fds are numbered from one lowest free number", async () => {
  const ops = `  - { name: a, open: /dev/vfio/vfio, as: a }
  - { name: b, proc: other, open: /dev/vfio/vfio, as: b }
  - { name: ca, close: a }
  - { name: c, proc: other, open: /dev/vfio/vfio, as: c }
`;
  const shared = await run(ops, { sharedFds: true });
  assert.equal(shared.fds.table, "shared");
  // base+0 is the kmsg reader's /dev/kmsg
  assert.deepEqual(["a", "b", "c"].map((n) => byName(shared, n).fd), [1, 2, 1]);
  const own = await run(ops);
  assert.deepEqual(["a", "b", "c"].map((n) => byName(own, n).fd), [0, 0, 1]);
});

test("an open group records its IOMMU group number beside the symbolic name, as do the enumeration lines", async () => {
  const t = await run(`  - { name: g, open: { group_of: "\${VF0}" }, as: g }
`);
  // scenarios/hosts/lab-igb.yaml: the guest's boot groups 0–6, the PF 7, its first VF the next free id
  assert.deepEqual(byName(t, "g").groups, { "@group_of(0000:01:10.0)": 8 });
  const enable = t.setup.find((o) => o.log.some((l) => /Adding to iommu group/.test(l.text)));
  assert.deepEqual(enable?.groups, { "@group_of(0000:01:10.0)": 8 });
});

test("an unknown request number is answered, not refused by the runner: EINVAL on a bare container, ENOTTY on a group and a device", async () => {
  const t = await run(`  - { name: pf, vfio_open: { bdf: "\${PF}", token: U1 } }
  - { name: c, open: /dev/vfio/vfio, as: c }
  - { name: c-unknown, ioctl: 0x3b99, fd: c, expect: EINVAL }
  - { name: g, open: { group_of: "\${VF0}" }, as: g }
  - { name: g-unknown, ioctl: 0x3b99, fd: g, expect: ENOTTY }
  - { name: g-sized, ioctl: 0xc0083b67, fd: g, args: { size: 8 }, expect: ENOTTY }
  - { name: g-fioclex, ioctl: 0x5451, fd: g, args: { int: 0 }, expect: { ret: 0 } }
  - { name: set, ioctl: GROUP_SET_CONTAINER, fd: g, args: { container: c } }
  - { name: iommu, ioctl: SET_IOMMU, fd: c, args: { type: TYPE1v2 } }
  - { name: c-type1, ioctl: 0x3b99, fd: c, expect: ENOTTY }
  - { name: vf, get_device_fd: { group: g, bdf: "\${VF0}", token: U1 } }
  - { name: vf-sized, ioctl: 0x80183b6b, fd: vf, args: { size: 24 }, expect: ENOTTY }
  - { name: vf-tcgets, ioctl: 0x5401, fd: vf, expect: ENOTTY }
`);
  assert.ok(t.ok, JSON.stringify(t.failures));
  assert.equal(byName(t, "g-sized").call, "ioctl 0xc0083b67(g, 8 bytes argsz=8)");
});

test("read, ioctl and close on a closed or never-opened fd record EBADF instead of stopping the run", async () => {
  const t = await run(`  - { name: c, open: /dev/vfio/vfio, as: c }
  - { name: g, open: { group_of: "\${VF0}" }, as: g }
  - { name: g-read, read: { fd: g, size: 4 }, expect: EINVAL }
  - { name: close-c, close: c }
  - { name: c-ioctl, ioctl: GET_API_VERSION, fd: c, expect: EBADF }
  - { name: c-read, read: { fd: c }, expect: EBADF }
  - { name: c-close, close: c, expect: EBADF }
  - { name: set-closed, ioctl: GROUP_SET_CONTAINER, fd: g, args: { container: c }, expect: EBADF }
  - { name: never, ioctl: 0x3b99, fd: never-opened, expect: EBADF }
  - { name: never-close, close: never-opened, expect: EBADF }
`);
  assert.ok(t.ok, JSON.stringify(t.failures));
  assert.equal(NEVER_OPENED_FD, 999);
});

test("a closed fd whose number is open again is refused: the call would reach the other file", async () => {
  await assert.rejects(
    run(`  - { name: a, open: /dev/vfio/vfio, as: a }
  - { name: ca, close: a }
  - { name: b, open: /dev/vfio/vfio, as: b }
  - { name: a-again, ioctl: GET_API_VERSION, fd: a, expect: EBADF }
`),
    (e: Error) => e instanceof ScenarioError && /fd a of main was closed and its number is open again as main's b/.test(e.message),
  );
  // a name never seen is still a mistake in the file
  await assert.rejects(run(`  - { name: x, close: nothing }\n`), /no fd named "nothing"/);
  assert.throws(() => parseScenario(head + "ops:\n  - { name: o, open: /dev/vfio/vfio, as: never-opened }\n", "t.yaml"), /never-opened is the name of an fd no process has open/);
  assert.throws(() => parseScenario(head + "ops:\n  - { name: o, ioctl: 0x3b99, fd: c, args: { ext: 1 } }\n", "t.yaml"), /a request number takes args/);
});

// ------------------------------------------------------------------ the comparison

const labTr = (ops: Partial<OpResult>[], fds = { table: "shared", base: 3 }) => ({ setup: [], ops: ops.map((o) => ({ log: [], ...o }) as OpResult), teardown: [], unfinished: [], failures: [], ok: true, fds });

test("the lab reports a different fd number as a difference of that op", () => {
  const real = labTr([{ name: "c", ret: "fd", fd: 2 }]);
  const model = labTr([{ name: "c", ret: "fd", fd: 1 }]);
  assert.deepEqual(diffTranscripts(real, model), [{ op: "c", field: "fd", real: 2, model: 1 }]);
  assert.deepEqual(diffTranscripts(real, labTr([{ name: "c", ret: "fd", fd: 2 }])), []);
});

test("the lab reports a different IOMMU group number as a difference even when the symbolic log lines agree", () => {
  const line = { level: "info", text: "pci 0000:01:10.0: Adding to iommu group @group_of(0000:01:10.0)" };
  const real = labTr([{ name: "enable", ret: 1, log: [line], groups: { "@group_of(0000:01:10.0)": 8 } }]);
  const model = labTr([{ name: "enable", ret: 1, log: [line], groups: { "@group_of(0000:01:10.0)": 9 } }]);
  assert.deepEqual(diffTranscripts(real, model), [{ op: "enable", field: "groups", real: { "@group_of(0000:01:10.0)": 8 }, model: { "@group_of(0000:01:10.0)": 9 } }]);
});

test("fd numbers from tables laid out differently, or with foreign fds in the guest, are a difference", () => {
  const a = labTr([{ name: "c", ret: "fd", fd: 1 }]);
  const b = labTr([{ name: "c", ret: "fd", fd: 1 }], { table: "per-process", base: 3 });
  assert.deepEqual(diffTranscripts(a, b).map((d) => `${d.op}.${d.field}`), ["(fd table).table"]);
  const foreign = { ...labTr([{ name: "c", ret: "fd", fd: 1 }]), foreignFds: ["fd 17 → /dev/null (first seen after #0)"] };
  assert.deepEqual(diffTranscripts(foreign, a).map((d) => `${d.op}.${d.field}`), ["(fd table).foreign"]);
});

test("the library comparison sees fd and group numbers too", async () => {
  const ops = `  - { name: g, open: { group_of: "\${VF0}" }, as: g }
`;
  const a = await run(ops, { sharedFds: true });
  const b = structuredClone(a);
  assert.deepEqual(compareTranscripts(a, b), []);
  byName(b, "g").fd = 5;
  byName(b, "g").groups = { "@group_of(0000:01:10.0)": 9 };
  assert.deepEqual(compareTranscripts(a, b).map((d) => d.field), ["fd", "groups"]);
});

test("on Linux the backend numbers from the lowest free fd, with every hole below it filled, and names an fd no scenario process opened", { skip: !fs.existsSync("/proc/self/fd") }, async () => {
  const be = await linuxBackend({ profile: "6.12" });
  assert.equal(be.fdTable, "shared");
  const p = await be.spawn("main");
  const fd = await p.open("/dev/null", 0);
  assert.equal(fd, be.fdBase);
  assert.deepEqual(be.foreignFds!(), []);
  const stray = fs.openSync("/dev/null", "r");
  try {
    assert.equal(stray, be.fdBase! + 1);
    assert.deepEqual(be.foreignFds!(), [`fd ${stray} → /dev/null`]);
  } finally {
    fs.closeSync(stray);
  }
  await p.exit();
  assert.deepEqual(be.foreignFds!(), []);
  fs.closeSync(fs.openSync("/dev/null", "r")); // and behind the scenario's back: a closed fd it held
  const q = await be.spawn("other");
  const g = await q.open("/dev/null", 0);
  fs.closeSync(g);
  assert.deepEqual(be.foreignFds!(), [`fd ${g} closed behind the scenario's back`]);
});

test("stat records kind, mode, owner and device number, with run-time majors named in the order first seen", async () => {
  const t = await run(`  - { name: c, stat: /dev/vfio/vfio }
  - { name: pf, stat: { group_of: "\${PF}" } }
  - { name: vf, stat: { group_of: "\${VF0}" } }
  - { name: k, stat: /dev/kmsg }
  - { name: l, stat: "/sys/bus/pci/devices/\${PF}/iommu_group", nofollow: true }
  - { name: gone, stat: /dev/vfio/4095, expect: ENOENT }
`);
  assert.ok(t.ok, JSON.stringify(t.failures));
  assert.equal(byName(t, "c").value, "char 0666 0:0 10:196");
  // vfio_group_alloc's IDA: the PF's group was made first (minor 0), the VF's next, whatever
  // their IOMMU group numbers; both in one run-time region
  assert.equal(byName(t, "pf").value, "char 0600 0:0 dyn1:0");
  assert.equal(byName(t, "vf").value, "char 0600 0:0 dyn1:1");
  assert.equal(byName(t, "k").value, "char 0644 0:0 1:11");
  assert.equal(byName(t, "l").value, "link 0777 0:0");
  assert.equal(byName(t, "gone").errno, "ENOENT");
  assert.throws(() => parseScenario(head + "ops:\n  - { name: x, stat: { fd: a } }\n", "t.yaml"), (e: unknown) => e instanceof ScenarioError && /expected a path, \{ group_of: BDF \} or \{ cdev_of: BDF \}/.test(String(e)));
  assert.throws(() => parseScenario(head + "ops:\n  - { name: x, stat: /dev/kmsg, base: true }\n", "t.yaml"), (e: unknown) => e instanceof ScenarioError && /not a field of a stat op/.test(String(e)));
});

test("a group's minor is released only when its node's last fd closes; a new group takes the lowest free one", async () => {
  const t = await run(`  - { name: g, proc: other, open: { group_of: "\${VF0}" }, as: g }
  - { name: off, write: "/sys/bus/pci/devices/\${PF}/sriov_numvfs", data: "0" }
  - { name: on, write: "/sys/bus/pci/devices/\${PF}/sriov_numvfs", data: "1" }
  - { name: held, stat: { group_of: "\${VF0}" } }
  - { name: cg, proc: other, close: g }
  - { name: off2, write: "/sys/bus/pci/devices/\${PF}/sriov_numvfs", data: "0" }
  - { name: on2, write: "/sys/bus/pci/devices/\${PF}/sriov_numvfs", data: "1" }
  - { name: freed, stat: { group_of: "\${VF0}" } }
`);
  assert.ok(t.ok, JSON.stringify(t.failures));
  assert.equal(byName(t, "held").value, "char 0600 0:0 dyn1:2");
  assert.equal(byName(t, "freed").value, "char 0600 0:0 dyn1:1");
});
