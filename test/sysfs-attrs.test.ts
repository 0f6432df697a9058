/**
 * A PCI device's sysfs directory on the model: the attributes of each kernel release and build
 * (src/kernel/pci/pci-sysfs.ts, iov.ts, versions.ts), what the driver state changes, and the
 * lab's recorded walks of real kernels (lab/transcripts/attrs/<kernel>.json, lab/sysfs-attrs.ts)
 * against the model's walk of the same states.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { bootHostFile } from "../src/kernel/host/boot.js";
import { parseHost } from "../src/kernel/host/host-file.js";
import type { KernelConfig } from "../src/kernel/profile.js";
import type { Syscalls } from "../src/sys/syscalls.js";
import { readAttr, writeText } from "../src/sys/fsutil.js";
import { ATTRS_DIR, STATES, diffState, normalise, runModelAttrs, walkDevice, type AttrWalk } from "../lab/sysfs-attrs.js";
import { PROJECT } from "../lab/vm.js";

const HOST = path.join(PROJECT, "scenarios/hosts/lab-igb.yaml");
const PF = "0000:01:00.0";
const VF0 = "0000:01:10.0";
const dev = (b: string) => `/sys/bus/pci/devices/${b}`;

async function boot(profile: string, config: Partial<KernelConfig> = {}) {
  const k = await bootHostFile(HOST, { profile, config });
  return { k, sh: k.spawn("t") as unknown as Syscalls };
}
async function names(profile: string, bdf = PF, config: Partial<KernelConfig> = {}, vfs = 0): Promise<string[]> {
  const { sh } = await boot(profile, config);
  if (vfs) await writeText(sh, `${dev(PF)}/sriov_numvfs`, String(vfs));
  return sh.readdir(dev(bdf));
}
const has = async (name: string, profile: string, bdf = PF, config: Partial<KernelConfig> = {}) => (await names(profile, bdf, config, bdf === PF ? 0 : 1)).includes(name);

// Debian's build options (a distribution kernel's default) and the lab's tinyconfig build
const DEBIAN: Partial<KernelConfig> = { NUMA: true, PM_SLEEP: true, PM_ADVANCED_DEBUG: true, PCIEAER: true, X86_PAT: true };
const LAB_BUILD: Partial<KernelConfig> = { NUMA: false, PM_SLEEP: false, PM_ADVANCED_DEBUG: false, PCIEAER: false, X86_PAT: false };

test("power_state arrives with 5.11 (9f1c0ebea21a)", async () => {
  assert.equal(await has("power_state", "5.10.200", PF, DEBIAN), false);
  assert.equal(await has("power_state", "5.11.0", PF, DEBIAN), true);
});

test("sriov_vf_total_msix (PF) and sriov_vf_msix_count (VF) arrive with 5.12", async () => {
  assert.equal(await has("sriov_vf_total_msix", "5.11.22", PF, DEBIAN), false);
  assert.equal(await has("sriov_vf_total_msix", "5.12.0", PF, DEBIAN), true);
  assert.equal(await has("sriov_vf_msix_count", "5.11.22", VF0, DEBIAN), false);
  assert.equal(await has("sriov_vf_msix_count", "5.12.0", VF0, DEBIAN), true);
  assert.equal(await has("sriov_vf_msix_count", "6.12", PF), false);
});

test("reset_method arrives with 5.15; reset is older", async () => {
  assert.equal(await has("reset_method", "5.14.21", PF, DEBIAN), false);
  assert.equal(await has("reset", "5.14.21", PF, DEBIAN), true);
  assert.equal(await has("reset_method", "5.15.0", PF, DEBIAN), true);
});

test("aer/ (the log ratelimits) arrives with 6.16 and needs CONFIG_PCIEAER; aer_dev_* need only the option", async () => {
  assert.equal(await has("aer", "6.15.11", PF, DEBIAN), false);
  assert.equal(await has("aer", "6.16.0", PF, DEBIAN), true);
  assert.equal(await has("aer", "6.16.0", PF, LAB_BUILD), false);
  assert.equal(await has("aer_dev_fatal", "6.1", PF), true);
  assert.equal(await has("aer_dev_fatal", "7.3.4-lab", PF), false); // the lab build: no PCIEAER
  const { sh } = await boot("7.3.4+deb13-amd64");
  assert.deepEqual((await sh.readdir(`${dev(PF)}/aer`)).sort(), ["correctable_ratelimit_burst", "correctable_ratelimit_interval_ms", "nonfatal_ratelimit_burst", "nonfatal_ratelimit_interval_ms"]);
  // the show prints jiffies, the store takes milliseconds: 5 s is 1250 at HZ=250 (the lab, 7.3.4)
  assert.equal(await readAttr(sh, `${dev(PF)}/aer/nonfatal_ratelimit_interval_ms`), "1250");
  assert.equal(await readAttr(sh, `${dev(PF)}/aer/nonfatal_ratelimit_burst`), "10");
  await writeText(sh, `${dev(PF)}/aer/nonfatal_ratelimit_interval_ms`, "1000");
  assert.equal(await readAttr(sh, `${dev(PF)}/aer/nonfatal_ratelimit_interval_ms`), "250");
  await writeText(sh, `${dev(PF)}/aer/nonfatal_ratelimit_interval_ms`, "-3");
  assert.equal(await readAttr(sh, `${dev(PF)}/aer/nonfatal_ratelimit_interval_ms`), "0");
  await assert.rejects(writeText(sh, `${dev(PF)}/aer/nonfatal_ratelimit_burst`, "x"), { code: "EINVAL" });
});

test("serial_number arrives with 6.19, for a device with a DSN only", async () => {
  const text = `devices:\n  - { bdf: "0000:01:00.0", vendor: 0x8086, device: 0x1521, dsn: "00-1b-21-ff-ff-aa-bb-cc" }\n  - { bdf: "0000:02:00.0", vendor: 0x8086, device: 0x1521 }\n`;
  const { bootKernel } = await import("../src/kernel/host/boot.js");
  const ls = async (v: string, b: string) => {
    const k = await bootKernel(parseHost(text, "h.yaml"), { profile: v });
    return (k.spawn("t") as unknown as Syscalls).readdir(dev(b));
  };
  assert.equal((await ls("6.18.5", "0000:01:00.0")).includes("serial_number"), false);
  assert.equal((await ls("6.19.0", "0000:01:00.0")).includes("serial_number"), true);
  assert.equal((await ls("6.19.0", "0000:02:00.0")).includes("serial_number"), false);
  const k = await bootKernel(parseHost(text, "h.yaml"), { profile: "7.3.4" });
  const sh = k.spawn("t") as unknown as Syscalls;
  assert.equal(await readAttr(sh, `${dev("0000:01:00.0")}/serial_number`), "00-1b-21-ff-ff-aa-bb-cc");
  assert.equal((await sh.stat(`${dev("0000:01:00.0")}/serial_number`)).mode, 0o400);
});

test("from 7.0 a VF with an ACPI companion has a wakeup source of its own (wakeup/, named after the companion)", async () => {
  assert.equal(await has("wakeup", "6.19.3", VF0, DEBIAN), false);
  assert.equal(await has("wakeup", "7.0.1", VF0, DEBIAN), true);
  assert.equal(await has("wakeup", "7.0.1", VF0, LAB_BUILD), false); // no PM_SLEEP
  const { sh } = await boot("7.3.4+deb13-amd64");
  const ws = await sh.readdir(`${dev(PF)}/wakeup`);
  const wsNames = await Promise.all(ws.map((w) => readAttr(sh, `${dev(PF)}/wakeup/${w}/name`)));
  assert.deepEqual(wsNames.sort(), ["0000:01:00.0", "device:03"]);
  const { sh: old } = await boot("6.12");
  const oldNames = await Promise.all((await old.readdir(`${dev(PF)}/wakeup`)).map((w) => readAttr(old, `${dev(PF)}/wakeup/${w}/name`)));
  assert.deepEqual(oldNames, ["0000:01:00.0"]);
});

test("build options decide numa_node, resource<N>_wc and power/'s files", async () => {
  assert.equal(await has("numa_node", "6.12", PF, { NUMA: false }), false);
  assert.equal(await has("numa_node", "6.12", PF), true);
  assert.equal(await has("resource0_wc", "6.12", VF0), true); // the VF BARs are prefetchable
  assert.equal(await has("resource0_wc", "6.12", VF0, { X86_PAT: false }), false);
  assert.equal(await has("resource0_wc", "6.12", PF), false); // the PF's are not
  assert.equal(await has("resource2", "6.12", PF), true); // the I/O BAR
  assert.equal(await has("resource1", "6.12", VF0), false);
  const power = async (c: Partial<KernelConfig>) => {
    const { sh } = await boot("6.12", c);
    return (await sh.readdir(`${dev(PF)}/power`)).sort();
  };
  assert.deepEqual(await power(LAB_BUILD), ["autosuspend_delay_ms", "control", "runtime_active_time", "runtime_status", "runtime_suspended_time"]);
  const full = await power({});
  for (const f of ["async", "runtime_enabled", "runtime_usage", "runtime_active_kids", "wakeup", "wakeup_count"]) assert.ok(full.includes(f), f);
});

test("a distribution kernel's default build has the sysfs options, an upstream release stands for the lab's build", async () => {
  const { profileOf } = await import("../src/kernel/profile.js");
  assert.equal(profileOf("6.12.117+deb13-amd64").config.PCIEAER, true);
  assert.equal(profileOf("6.8.0-51-generic").config.NUMA, true);
  assert.equal(profileOf("7.3.4-lab").config.PCIEAER, false);
  assert.equal(profileOf("7.3.4-lab", { PCIEAER: true }).config.PCIEAER, true);
});

test("driver state: enable, DMA mask, power/control, msi_irqs and ptp follow the driver", async () => {
  const { sh } = await boot("6.12");
  const r = (f: string, b = PF) => readAttr(sh, `${dev(b)}/${f}`);
  assert.equal(await r("enable"), "1"); // igb enabled it
  assert.equal(await r("dma_mask_bits"), "64");
  assert.equal(await r("power/control"), "on");
  assert.equal((await sh.readdir(`${dev(PF)}/msi_irqs`)).length, 3); // igb's 3 MSI-X vectors
  const irq = (await sh.readdir(`${dev(PF)}/msi_irqs`))[0]!;
  assert.equal(await readAttr(sh, `${dev(PF)}/msi_irqs/${irq}`), "msix");
  assert.deepEqual(await sh.readdir(`${dev(PF)}/ptp`), ["ptp0"]);
  await writeText(sh, "/sys/bus/pci/drivers/igb/unbind", PF);
  assert.equal(await r("enable"), "0");
  assert.equal(await r("dma_mask_bits"), "64"); // the mask stays as igb left it
  assert.ok(!(await sh.readdir(dev(PF))).includes("msi_irqs"));
  assert.ok(!(await sh.readdir(dev(PF))).includes("ptp"));
  await writeText(sh, `${dev(PF)}/driver_override`, "vfio-pci");
  await writeText(sh, "/sys/bus/pci/drivers_probe", PF);
  assert.equal(await r("power/control"), "auto");
  assert.equal(await r("power/runtime_status"), "suspended");
  await writeText(sh, `${dev(PF)}/sriov_numvfs`, "1");
  assert.equal(await r("power/runtime_status"), "active"); // vfio-pci holds a PF with VFs
  assert.equal(await r("dma_mask_bits", VF0), "32"); // vfio-pci never sets a VF's mask
  assert.equal(await r("enable", VF0), "0");
  assert.equal(await r("driver_override", VF0), "vfio-pci");
  assert.match(await r("uevent", VF0), /^DRIVER=vfio-pci\nPCI_CLASS=20000\nPCI_ID=8086:10CA\nPCI_SUBSYS_ID=1AF4:1100\nPCI_SLOT_NAME=0000:01:10.0\nMODALIAS=pci:v00008086d000010CAsv00001AF4sd00001100bc02sc00i00$/);
  await writeText(sh, `${dev(PF)}/sriov_numvfs`, "0");
  await writeText(sh, "/sys/bus/pci/drivers/vfio-pci/unbind", PF);
  assert.equal(await r("power/control"), "on");
});

test("reset_method lists the device's methods and takes a subset or default; enable takes 0 and 1", async () => {
  const { sh } = await boot("6.12");
  const r = (f: string, b = PF) => readAttr(sh, `${dev(b)}/${f}`);
  assert.equal(await r("reset_method"), "flr pm bus");
  await writeText(sh, `${dev(PF)}/reset_method`, "bus flr");
  assert.equal(await r("reset_method"), "bus flr");
  await writeText(sh, `${dev(PF)}/reset_method`, "default");
  assert.equal(await r("reset_method"), "flr pm bus");
  await writeText(sh, `${dev(PF)}/sriov_numvfs`, "1");
  assert.equal(await r("reset_method", VF0), "flr");
  await assert.rejects(writeText(sh, `${dev(VF0)}/reset_method`, "bus"), { code: "EINVAL" });
  await assert.rejects(writeText(sh, `${dev(VF0)}/sriov_vf_msix_count`, "4"), { code: "EOPNOTSUPP" });
  await assert.rejects(writeText(sh, `${dev(VF0)}/sriov_vf_msix_count`, "-1"), { code: "EINVAL" });
  await writeText(sh, `${dev(PF)}/sriov_numvfs`, "0");
  await writeText(sh, "/sys/bus/pci/drivers/igb/unbind", PF);
  await assert.rejects(writeText(sh, `${dev(PF)}/enable`, "0"), { code: "EIO" });
  await writeText(sh, `${dev(PF)}/enable`, "1");
  assert.equal(await r("enable"), "1");
});

test("host files describe BAR kinds, AER, ARI, PME, ASPM, the link and ACPI companions; bad values name the field", () => {
  const base = (extra: string) => `devices:\n  - { bdf: "0000:01:00.0", vendor: 0x8086, device: 0x10c9${extra} }\n`;
  assert.throws(() => parseHost(base(", bar_types: [mem, rom]"), "h.yaml"), /h\.yaml: devices\[0\]\.bar_types\[1\]: expected "mem", "mem-pref", "io", got "rom"/);
  assert.throws(() => parseHost(base(", link: { speed: 3, width: 1 }"), "h.yaml"), /devices\[0\]\.link\.speed: expected a PCIe speed/);
  assert.throws(() => parseHost(base(", aspm: [l3]"), "h.yaml"), /devices\[0\]\.aspm/);
  assert.throws(() => parseHost(base(", dsn: 12"), "h.yaml"), /devices\[0\]\.dsn/);
  assert.throws(() => parseHost(base(", acpi_node: \"/abs\""), "h.yaml"), /devices\[0\]\.acpi_node/);
  const h = parseHost(base(", bar_types: [mem, mem, io], aer: true, ari: true, pme: true, aspm: [l0s], link: { speed: 8, width: 4 }"), "h.yaml");
  assert.deepEqual(h.devices[0]!.link, { speed: 8, width: 4 });
});

test("the model's walk of lab-igb.yaml agrees with every real kernel the lab recorded (lab/transcripts/attrs)", async () => {
  const cache = mkdtempSync(path.join(tmpdir(), "attrs-"));
  const recorded = ["6.1", "6.12", "7.3", "7.3-cdev", "7.3-e2big"].filter((k) => existsSync(path.join(ATTRS_DIR, `${k}.json`)));
  assert.ok(recorded.length >= 3, `recorded walks: ${recorded.join(", ")}`);
  const saved = recorded.map((k) => JSON.parse(readFileSync(path.join(ATTRS_DIR, `${k}.json`), "utf8")) as { kernel: string; release: string; walk: AttrWalk });
  writeFileSync(path.join(cache, "kernels.json"), JSON.stringify(saved.map((s) => ({ name: s.kernel, version: s.release, dir: "/" }))));
  for (const s of saved) {
    const model = await runModelAttrs(s.kernel, cache);
    for (const st of STATES) assert.deepEqual(diffState(s.walk[st]!, model[st]!), [], `${s.kernel} ${st}`);
  }
});

test("the comparison fails on a missing entry, a wrong mode, a wrong link and a wrong value", () => {
  const real = { pf: { vendor: { t: "file" as const, mode: "0444", value: "0x8086" }, driver: { t: "link" as const, mode: "0777", target: "../igb" }, sriov_numvfs: { t: "file" as const, mode: "0644", value: "2" }, rom: { t: "file" as const, mode: "0600" } } };
  const model = { pf: { vendor: { t: "file" as const, mode: "0444", value: "0x8087" }, driver: { t: "link" as const, mode: "0777", target: "../vfio-pci" }, sriov_numvfs: { t: "file" as const, mode: "0664", value: "2" } } };
  const d = diffState(real, model);
  assert.deepEqual(d.map((x) => x.field).sort(), ["driver target", "rom", "sriov_numvfs mode", "vendor value"]);
  // wakeup sources are matched by name, whatever their number
  const w = (n: string, name: string) => ({ wakeup: { t: "dir" as const, mode: "0755", entries: { [n]: { t: "dir" as const, mode: "0755", entries: { name: { t: "file" as const, mode: "0444", value: name } } } } } });
  assert.deepEqual(diffState({ pf: w("wakeup14", "0000:01:00.0") }, { pf: w("wakeup0", "0000:01:00.0") }), []);
  assert.equal(diffState({ pf: w("wakeup14", "0000:01:00.0") }, { pf: w("wakeup14", "device:03") }).length, 2);
  assert.deepEqual(Object.keys(normalise(w("wakeup9", "device:03")).wakeup!.entries!), ["<device:03>"]);
});

test("walkDevice records type, mode, link target and the chosen values", async () => {
  const { sh } = await boot("6.12");
  const w = await walkDevice(sh, PF);
  assert.deepEqual(w.vendor, { t: "file", mode: "0444", value: "0x8086" });
  assert.deepEqual(w.driver, { t: "link", mode: "0777", target: "../../../../bus/pci/drivers/igb" });
  assert.equal(w.power!.entries!.control!.value, "on");
  assert.equal(w.remove!.mode, "0220");
  assert.equal(w.resource0!.value, "<EIO>"); // an mmap-only BAR file: read(2) is EIO
  assert.equal(w.resource1!.value, undefined); // not a chosen value
});

test("power/wakeup takes enabled or disabled, and the device's own wakeup source follows it", async () => {
  const { sh } = await boot("6.12");
  assert.equal(await readAttr(sh, `${dev(PF)}/power/wakeup`), "enabled");
  await writeText(sh, `${dev(PF)}/power/wakeup`, "disabled");
  assert.equal(await readAttr(sh, `${dev(PF)}/power/wakeup`), "disabled");
  assert.ok(!(await sh.readdir(dev(PF))).includes("wakeup"));
  await assert.rejects(writeText(sh, `${dev(PF)}/power/wakeup`, "maybe"), { code: "EINVAL" });
  await writeText(sh, `${dev(PF)}/power/wakeup`, "enabled");
  assert.deepEqual((await sh.readdir(`${dev(PF)}/wakeup`)).length, 1);
});

test("vfio-pci enables a device at its first open and disables it at the last close (enable, power/runtime_status)", async () => {
  const { labKernelWithVfioPf, openVfioDevice, closeVfioDevice } = await import("../testlib/vfio.js");
  const k = await labKernelWithVfioPf("6.12", 0);
  const sh = k.spawn("t") as unknown as Syscalls;
  const r = (f: string) => readAttr(sh, `${dev(PF)}/${f}`);
  assert.equal(await r("enable"), "0");
  assert.equal(await r("power/runtime_status"), "suspended");
  const o = await openVfioDevice(sh, PF);
  assert.equal(await r("enable"), "1");
  assert.equal(await r("power/runtime_status"), "active");
  await closeVfioDevice(sh, o);
  assert.equal(await r("enable"), "0");
  assert.equal(await r("power/runtime_status"), "suspended");
});

test("writing uevent synthesizes the event; config reads the header", async () => {
  const { k, sh } = await boot("6.12");
  k.takeUevents();
  await writeText(sh, `${dev(PF)}/uevent`, "add");
  assert.deepEqual(k.takeUevents().map((u) => [u.action, u.kernel]), [["add", PF]]);
  await writeText(sh, `${dev(PF)}/uevent`, "change");
  await assert.rejects(writeText(sh, `${dev(PF)}/uevent`, "explode"), { code: "EINVAL" });
  const fd = await sh.open(`${dev(PF)}/config`, 0);
  const b = await sh.read(fd, 64);
  await sh.close(fd);
  assert.equal(b.readUInt16LE(0), 0x8086);
  assert.equal(b.readUInt16LE(2), 0x10c9);
  assert.equal(b.readUInt16LE(0x2c), 0x1af4);
});
