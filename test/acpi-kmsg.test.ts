/**
 * Two details the lab's guests showed: /dev/kmsg escapes a backslash (and control and non-ASCII
 * bytes) as \xNN, and the first enable of a device on an ACPI interrupt link not yet in use logs
 * "ACPI: <link>: Enabled at IRQ <n>" once per boot.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { KernelLog, kmsgEscape } from "../src/kernel/printk.js";
import { bootKernel } from "../src/kernel/host/boot.js";
import { parseHost, HostFileError } from "../src/kernel/host/host-file.js";
import { openDevice, w } from "../testlib/spec/index.js";

test("kmsgEscape: backslash, control bytes and bytes >= 127 as \\xNN; plain text unchanged", () => {
  assert.equal(kmsgEscape("vfio-pci 0000:01:10.0: enabling device (0000 -> 0002)"), "vfio-pci 0000:01:10.0: enabling device (0000 -> 0002)");
  assert.equal(kmsgEscape("ACPI: \\_SB_.GSIA: Enabled at IRQ 16"), "ACPI: \\x5c_SB_.GSIA: Enabled at IRQ 16");
  assert.equal(kmsgEscape("a\tb\x7fé"), "a\\x09b\\x7f\\xc3\\xa9");
  const line = KernelLog.kmsgLine({ level: 6, seq: 7, tsUsec: 1, text: "x\\y", device: "+pci:a\\b" } as Parameters<typeof KernelLog.kmsgLine>[0]);
  assert.equal(line, "6,7,1,-;x\\x5cy\n DEVICE=+pci:a\\x5cb\n");
});

const HOST = `
name: acpi
modules: { vfio_pci: {} }
drivers: [vfio-pci]
devices:
  - { bdf: "0000:00:1f.2", vendor: 0x8086, device: 0x2922, class: 0x010601, iommu_group: 6, driver: none, reset_works: false, acpi_irq_link: { name: "\\\\_SB_.GSIA", irq: 16 } }
  - { bdf: "0000:00:1f.3", vendor: 0x8086, device: 0x2930, class: 0x0c0500, iommu_group: 6, driver: none, reset_works: false, acpi_irq_link: { name: "\\\\_SB_.GSIA", irq: 16 } }
`;

test("the first enable on an ACPI interrupt link logs it once per boot, whichever device; a device without a described link logs nothing", async () => {
  const k = await bootKernel(parseHost(HOST));
  const sh = k.spawn("sh");
  const acpi = () => k.log.records.filter((r) => r.text.startsWith("ACPI:")).map((r) => `${r.level} ${r.text}`);
  for (const bdf of ["0000:00:1f.2", "0000:00:1f.3"]) {
    assert.equal(await w(sh, `/sys/bus/pci/devices/${bdf}/driver_override`, "vfio-pci"), 8);
    assert.equal(await w(sh, "/sys/bus/pci/drivers_probe", bdf), bdf.length);
  }
  assert.deepEqual(acpi(), []);
  const a = await openDevice(sh, "0000:00:1f.3");
  assert.deepEqual(acpi(), ["6 ACPI: \\_SB_.GSIA: Enabled at IRQ 16"]);
  for (const fd of [a.device, a.group, a.container]) if (typeof fd === "number") await sh.close(fd);
  const b = await openDevice(sh, "0000:00:1f.2");
  assert.equal(typeof b.device, "number");
  assert.deepEqual(acpi(), ["6 ACPI: \\_SB_.GSIA: Enabled at IRQ 16"], "once per boot: the link stays set up");
});

test("host file: acpi_irq_link is checked", () => {
  assert.throws(() => parseHost(HOST.replace('name: "\\\\_SB_.GSIA", irq: 16', 'name: "GSIA", irq: 16'), "h.yaml"), (e: unknown) => e instanceof HostFileError && /acpi_irq_link/.test((e as Error).message));
  assert.throws(() => parseHost(HOST.replace("irq: 16", "irq: -1"), "h.yaml"), /acpi_irq_link\.irq/);
});

test("a host driver's probe at boot sets the link up (logged in the boot log); vfio-pci bound at boot leaves it to the first open", async () => {
  const host = (driver: string) => `
name: acpi-boot
modules: { vfio_pci: {} }
drivers: [igb, vfio-pci]
devices:
  - { bdf: "0000:02:00.0", vendor: 0x8086, device: 0x10c9, class: 0x020000, iommu_group: 9, driver: ${driver}, acpi_irq_link: { name: "\\\\_SB_.GSIB", irq: 17 } }
`;
  const acpi = (k: Awaited<ReturnType<typeof bootKernel>>) => k.log.records.filter((r) => r.text.startsWith("ACPI:")).map((r) => r.text);
  const igb = await bootKernel(parseHost(host("igb")));
  assert.deepEqual(acpi(igb), ["ACPI: \\_SB_.GSIB: Enabled at IRQ 17"]);
  const vfio = await bootKernel(parseHost(host("vfio-pci")));
  assert.deepEqual(acpi(vfio), []);
  const o = await openDevice(vfio.spawn("qemu"), "0000:02:00.0");
  assert.equal(typeof o.device, "number");
  assert.deepEqual(acpi(vfio), ["ACPI: \\_SB_.GSIB: Enabled at IRQ 17"]);
});
