/** Name suggestions (src/lib/names.ts) and the messages built on them. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { closestName, driverSuggestion, editDistance, suggestDriver } from "../src/lib/names.js";
import { bootKernel } from "../src/kernel/host/boot.js";
import { explainOpen } from "../src/lib/explain.js";

const DRIVERS = ["igb", "igbvf", "ice", "iavf", "mlx5_core", "nvme", "qat_c62x", "pci-pf-stub", "vfio-pci"];

test("editDistance counts inserts, deletes and substitutions", () => {
  assert.equal(editDistance("vfio-pci", "vfio-pci"), 0);
  assert.equal(editDistance("vfio_pci", "vfio-pci"), 1);
  assert.equal(editDistance("vfiopci", "vfio-pci"), 1);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
});

test("driverSuggestion: a module name, a name without its separator or a typo suggests the registered driver", () => {
  assert.equal(driverSuggestion("vfio_pci", DRIVERS), "did you mean vfio-pci? (vfio_pci is the module's name; sysfs knows the driver as vfio-pci)");
  assert.equal(driverSuggestion("pci_pf_stub", DRIVERS), "did you mean pci-pf-stub? (pci_pf_stub is the module's name; sysfs knows the driver as pci-pf-stub)");
  assert.equal(driverSuggestion("vfiopci", DRIVERS), "did you mean vfio-pci?");
  assert.equal(driverSuggestion("VFIO-PCI", DRIVERS), "did you mean vfio-pci?");
  assert.equal(driverSuggestion("vfio-pcu", DRIVERS), "did you mean vfio-pci?");
  assert.equal(driverSuggestion("mlx5-core", DRIVERS), "did you mean mlx5_core?");
  assert.equal(suggestDriver("igvf", DRIVERS), "igbvf");
});

test("driverSuggestion: a registered name, or nothing close, gives null", () => {
  assert.equal(driverSuggestion("vfio-pci", DRIVERS), null);
  assert.equal(driverSuggestion("e1000e", DRIVERS), null);
  assert.equal(driverSuggestion("xyz", DRIVERS), null);
  assert.equal(driverSuggestion("vfio_pci", []), null);
});

test("closestName: within two edits (one for short names), else null", () => {
  assert.equal(closestName("num_vf", ["num_vfs", "total_vfs"]), "num_vfs");
  assert.equal(closestName("totalvfs", ["num_vfs", "total_vfs"]), "total_vfs");
  assert.equal(closestName("bfd", ["bdf", "vendor"]), null, "two edits on a three-letter name is too far");
  assert.equal(closestName("bd", ["bdf", "vendor"]), "bdf");
  assert.equal(closestName("colour", ["bdf", "vendor"]), null);
});

test("explain --driver vfio_pci says did you mean vfio-pci, not modprobe vfio_pci", async () => {
  const k = await bootKernel();
  const x = await explainOpen(k.spawn("sh"), "0000:05:00.0", { driver: "vfio_pci" });
  const c = x.causes.find((c) => c.id === "bind-driver-missing")!;
  assert.equal(c.status, "applies");
  assert.match(c.cause, /did you mean vfio-pci\?/);
  assert.equal(c.fix, "vfioctl bind 0000:05:00.0 vfio-pci");
  const y = await explainOpen(k.spawn("sh"), "0000:05:00.0", { driver: "e1000e" });
  assert.equal(y.causes.find((c) => c.id === "bind-driver-missing")!.fix, "modprobe e1000e");
});

test("token verify on a VF in a group that is not viable names the device, the group, the member on a host driver, EPERM and the fix", async () => {
  const { bootHostFile } = await import("../src/kernel/host/boot.js");
  const { runCli } = await import("../testlib/cli.js");
  const k = await bootHostFile(new URL("../../test/fixtures/host-shared-group.yaml", import.meta.url).pathname);
  const r = await runCli(k, ["token", "verify", "0000:af:10.0", "--token-stdin"], { stdin: "2ab74924-c335-45f4-9b16-8569e5b08258\n" });
  assert.equal(r.code, 3);
  assert.doesNotMatch(r.err, /ioctl \/dev\/vfio\/7: EPERM/);
  assert.match(r.err, /token verify 0000:af:10\.0: IOMMU group 7 \(\/dev\/vfio\/7\) is not usable: 0000:05:00\.0 is bound to nvme/);
  assert.match(r.err, /EPERM/);
  assert.match(r.err, /the group's other devices: 0000:05:00\.0 on nvme, 0000:af:00\.0 on vfio-pci, 0000:af:10\.1 on vfio-pci/);
  assert.match(r.err, /fix: bind every device of \/sys\/kernel\/iommu_groups\/7\/devices to vfio-pci or unbind it: vfioctl bind 0000:05:00\.0 vfio-pci/);
  const j = await runCli(k, ["token", "verify", "0000:af:10.0", "--token-stdin"], { stdin: "2ab74924-c335-45f4-9b16-8569e5b08258\n", json: true });
  const e = JSON.parse(j.out);
  assert.equal(e.errno, "EPERM");
  assert.equal(e.subject, "0000:af:10.0");
  assert.deepEqual(e.data.members.find((m: { bdf: string }) => m.bdf === "0000:05:00.0"), { bdf: "0000:05:00.0", driver: "nvme" });
  // token set on the PF: the same message
  const s = await runCli(k, ["token", "set", "0000:af:00.0"]);
  assert.equal(s.code, 3);
  assert.match(s.err, /set the token of 0000:af:00\.0: IOMMU group 7 \(\/dev\/vfio\/7\) is not usable: 0000:05:00\.0 is bound to nvme/);
});
