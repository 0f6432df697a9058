import { test } from "node:test";
import assert from "node:assert/strict";
import { parseKmsg } from "../src/sys/kmsg.js";
import { diffTranscripts, labFiltered, modelOnlyOps } from "../lab/conformance.js";

test("a /dev/kmsg record is split into facility, level, sequence, time, text and dictionary", () => {
  const r = parseKmsg("4,438,13645353,-;vfio-pci 0000:01:10.0: No device request channel registered, blocked until released by user\n SUBSYSTEM=pci\n DEVICE=+pci:0000:01:10.0\n");
  assert.ok(r);
  assert.equal(r.facility, 0);
  assert.equal(r.level, 4);
  assert.equal(r.seq, 438);
  assert.equal(r.tsUs, 13645353);
  assert.equal(r.text, "vfio-pci 0000:01:10.0: No device request channel registered, blocked until released by user");
  assert.deepEqual(r.dict, { SUBSYSTEM: "pci", DEVICE: "+pci:0000:01:10.0" });
  assert.equal(parseKmsg("14,1,2,-;user text\n")?.facility, 1);
});

test("the filter drops igb and igbvf netdev lines and keeps every SR-IOV, PCI and VFIO line", () => {
  for (const t of [
    "igbvf 0000:01:10.2: Address: f2:89:9f:83:f1:5b",
    "igbvf 0000:01:10.2: Assigning random MAC address.",
    "igbvf 0000:01:10.2: PF still in reset state. Is the PF interface up?",
    "igbvf 0000:01:10.2: Intel(R) 82576 Virtual Function",
    "igb 0000:01:00.0: eth0: (PCIe:2.5Gb/s:Width x1) 52:54:00:12:34:56",
    "igb 0000:01:00.0: eth0: PBA No: 1040FF-0FF",
    "igb 0000:01:00.0: removed PHC on eth0",
    "igb 0000:01:00.0: Intel(R) Gigabit Ethernet Network Connection",
    "igb 0000:01:00.0: Using MSI-X interrupts. 2 rx queue(s), 2 tx queue(s)",
    "igb: Intel(R) Gigabit Ethernet Network Driver",
    "dca service started, version 1.12.1",
    "hrtimer: interrupt took 70589984 ns",
  ])
    assert.ok(labFiltered(t), t);
  for (const t of [
    "igb 0000:01:00.0: 2 VFs allocated",
    "igb 0000:01:00.0: IOV Disabled",
    "igb 0000:01:00.0: 2 VFs already enabled. Disable before enabling 3 VFs",
    "igbvf 0000:01:10.0: enabling device (0000 -> 0002)",
    "vfio-pci 0000:01:00.0: VF 0000:01:10.2 bound to driver igbvf while PF bound to driver vfio-pci",
    "pci 0000:01:10.0: [8086:10ca] type 00 class 0x020000 PCIe Endpoint",
    "pci 0000:01:10.0: Adding to iommu group @group_of(0000:01:10.0)",
    "pci-pf-stub 0000:01:00.0: driver left SR-IOV enabled after remove",
  ])
    assert.ok(!labFiltered(t), t);
});

const op = (name: string, o: Record<string, unknown> = {}) => ({ name, log: [], ...o }) as { name: string; log: { level: string; text: string }[] };
const tr = (ops: ReturnType<typeof op>[], unfinished: string[] = []) => ({ setup: [], ops, teardown: [], unfinished, failures: [], ok: true });

test("transcripts that agree on every op give no difference", () => {
  const a = tr([op("w", { ret: 1, log: [{ level: "info", text: "x" }] }), op("r", { value: "2\n" })]);
  assert.deepEqual(diffTranscripts(a, structuredClone(a)), []);
});

test("a different errno, value or log line is one difference each, named by op and field", () => {
  const real = tr([op("w", { errno: "EBUSY", log: [{ level: "warn", text: "a" }] }), op("r", { value: "2\n" })]);
  const model = tr([op("w", { errno: "EINVAL", log: [{ level: "info", text: "a" }] }), op("r", { value: "0\n" })]);
  const d = diffTranscripts(real, model);
  assert.deepEqual(
    d.map((x) => `${x.op}.${x.field}`),
    ["w.errno", "w.log", "r.value"],
  );
});

test("a blocked op is compared on being blocked and its log, not on a result it does not have yet", () => {
  const real = tr([op("disable", { blocked: true, log: [{ level: "warn", text: "No device request channel registered, blocked until released by user" }] })], ["disable"]);
  const model = tr([op("disable", { ret: 1 })]);
  const fields = diffTranscripts(real, model).map((x) => x.field);
  assert.deepEqual(fields, ["blocked", "log", "unfinished"]);
});

test("filtered netdev lines do not make a difference and model-only ops are not missed", () => {
  const real = tr([op("bind", { ret: 12, log: [{ level: "info", text: "igbvf 0000:01:10.2: Address: f2:89:9f:83:f1:5b" }] })]);
  const model = tr([op("bind", { ret: 12 }), op("sigint")]);
  const only = modelOnlyOps({ setup: [], ops: [{ name: "bind" }, { name: "sigint", only: ["model"] }] });
  assert.deepEqual([...only], ["sigint"]);
  assert.deepEqual(diffTranscripts(real, model, only), []);
  assert.equal(diffTranscripts(real, model).length, 1);
});

test("CLI conformance: the state scenario reaches both states on the model, and the normalisation hides only pids, fds, comms, group numbers and guest-only drivers", async () => {
  const { runModelCli, diffCli, normaliseCli, CLI_STATES } = await import("../lab/cli-check.js");
  const { PROJECT } = await import("../lab/vm.js");
  const run = await runModelCli("6.12", PROJECT);
  assert.equal((run.transcript as { ok: boolean }).ok, true);
  assert.deepEqual(Object.keys(run.snapshots), [...CLI_STATES]);
  for (const rows of Object.values(diffCli(run, run))) assert.deepEqual(rows, []);
  const snap = run.snapshots["state-vfio"]!;
  // as the guest sees it: every holder is one process, the groups are numbered differently, the root port is on pcieport
  const guest = JSON.parse(
    JSON.stringify(snap)
      .replace(/"pid":\d+/g, '"pid":4242')
      .replace(/"comm":"[^"]*"/g, '"comm":"node"')
      .replace(/pid \d+ \([^)]*\)/g, "pid 4242 (node)")
      .replace(/"(iommuGroup|group)":(\d+)/g, (_, k: string, n: string) => `"${k}":${Number(n) + 100}`)
      .replace(/\/dev\/vfio\/(\d+)/g, (_, n: string) => `/dev/vfio/${Number(n) + 100}`)
      .replace(/\/iommu_groups\/(\d+)/g, (_, n: string) => `/iommu_groups/${Number(n) + 100}`)
      .replace(/(IOMMU group|iommu_group|group) (\d+)/g, (_, w: string, n: string) => `${w} ${Number(n) + 100}`),
  );
  const inv = guest.list.out as { others: { bdf: string; driver: string | null }[] };
  inv.others.find((d) => d.bdf === "0000:00:02.0")!.driver = "pcieport";
  assert.deepEqual(normaliseCli(guest), normaliseCli(snap));
  // a real difference stays one
  const audit = guest.audit.out as { findings: unknown[] };
  audit.findings = [];
  assert.notDeepEqual(normaliseCli(guest), normaliseCli(snap));
  const vf = (guest.list.out as { pfs: { vfDevices: { driver: string }[] }[] }).pfs[0]!.vfDevices[0]!;
  vf.driver = "igbvf";
  const d = diffCli({ ms: 0, transcript: null, snapshots: { ...run.snapshots, "state-vfio": guest } }, run);
  assert.ok(d["cli:list"]!.some((x) => x.field.endsWith("[0000:01:10.0].driver")));
  assert.ok(d["cli:audit"]!.length > 0);
});

test("a guest whose QEMU aborted (TCG's iotlb_to_section assertion) is told from a kernel answer: emulatorAbort finds QEMU's line", async () => {
  const { emulatorAbort } = await import("../lab/vm.js");
  const console = "VFIOCTL-LAB: mounted 4.83 1.23\nqemu-system-x86_64: system/physmem.c:2671: iotlb_to_section: Assertion `section_index < d->map.sections_nb' failed.\n";
  assert.equal(emulatorAbort(console), "qemu-system-x86_64: system/physmem.c:2671: iotlb_to_section: Assertion `section_index < d->map.sections_nb' failed.");
  assert.equal(emulatorAbort("VFIOCTL-LAB: mounted 4.8 1.2\n[   3.1] vfio-pci 0000:01:00.0: resetting\n"), null);
});

test("a guest frozen by the emulator (a vCPU halted with its timer vector in service and pending, PPR 0xe0) is told from a slow one: parseApic and apicStuck", async () => {
  const { parseApic, apicStuck } = await import("../lab/vm.js");
  // QEMU 10.0.13's `info lapic 1` and `info registers -a` (trimmed) at a 6.12 selftest stall
  const lapic = [
    "dumping local APIC state for CPU 1 ",
    "",
    "LVTT\t 0x000000ec active-hi edge                 one-shot     Fixed  (vec 236)",
    "Timer\t DCR=0x3 (divide by 16) initial_count = 196134 current_count = 0",
    "ISR\t 236 ",
    "IRR\t 35 36 236 ",
    "",
    "APR 0x01 TPR 0x10 DFR 0x0f LDR 0x00 PPR 0xe0",
  ].join("\r\n");
  const regs = "\r\nCPU#0\r\nRIP=ffffffffa230fa3f RFL=00000216 [----AP-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n\r\nCPU#1\r\nRIP=ffffffffa230fa3f RFL=00000206 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n";
  const a = parseApic(1, lapic, regs)!;
  assert.deepEqual(a, { cpu: 1, isr: [236], irr: [35, 36, 236], ppr: 0xe0, halted: true });
  assert.equal(apicStuck(a), "vCPU 1 halted with vector 236 in service and 35 36 236 pending (PPR 0xe0)");
  // running (not halted), nothing in service, or nothing pending that the in-service vector masks: not frozen
  assert.equal(apicStuck({ ...a, halted: false }), null);
  assert.equal(apicStuck({ ...a, isr: [], ppr: 0x10 }), null);
  assert.equal(apicStuck({ ...a, irr: [0xfd] }), null);
  const idle = parseApic(0, lapic.replace("ISR\t 236 ", "ISR\t (none)").replace("IRR\t 35 36 236 ", "IRR\t (none)").replace("PPR 0xe0", "PPR 0x10"), regs)!;
  assert.deepEqual(idle, { cpu: 0, isr: [], irr: [], ppr: 0x10, halted: true });
  assert.equal(apicStuck(idle), null);
});
