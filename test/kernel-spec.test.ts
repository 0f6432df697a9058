/**
 * "A version minus one fix": kernel specs that revert or add behaviour-table entries
 * (src/kernel/versions.ts parseKernelSpec), as --profile, host files and lab/kernels.ts give them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseKernelSpec, KernelVersionError, resolveBehaviour, parseRelease } from "../src/kernel/versions.js";
import { profileOf } from "../src/kernel/profile.js";
import { parseHost } from "../src/kernel/host/host-file.js";
import { bootKernel } from "../src/kernel/host/boot.js";

test("a plain version string is a spec without overrides", () => {
  assert.deepEqual(parseKernelSpec("7.3.4"), { version: "7.3.4", overrides: {} });
  assert.deepEqual(parseKernelSpec("  6.12.117+deb13-amd64 "), { version: "6.12.117+deb13-amd64", overrides: {} });
});

test("-flag reverts a table entry and +flag adds one", () => {
  assert.deepEqual(parseKernelSpec("7.3.4 -bindIommufdFullStruct").overrides, { bindIommufdFullStruct: false });
  assert.deepEqual(parseKernelSpec("6.12.117 +bindIommufdToken -driverOverrideGeneric").overrides, { bindIommufdToken: true, driverOverrideGeneric: false });
});

test("7.3.4 minus the E2BIG fix differs from 7.3.4 in that flag alone, and its cdev row is e2big", () => {
  const full = profileOf("7.3.4-lab", { VFIO_DEVICE_CDEV: true });
  const minus = profileOf("7.3.4-lab -bindIommufdFullStruct", { VFIO_DEVICE_CDEV: true });
  const differ = Object.keys(full.behaviour).filter((f) => full.behaviour[f as keyof typeof full.behaviour] !== minus.behaviour[f as keyof typeof minus.behaviour]);
  assert.deepEqual(differ, ["bindIommufdFullStruct"]);
  assert.equal(full.cdevToken, "checked");
  assert.equal(minus.cdevToken, "e2big");
  assert.equal(minus.ident.osrelease, "7.3.4-lab");
  assert.deepEqual(minus.overrides, { bindIommufdFullStruct: false });
  // unlike the old stand-in 6.18.2, it keeps the generic driver_override of 7.0
  assert.equal(minus.behaviour.driverOverrideGeneric, true);
  assert.equal(resolveBehaviour(parseRelease("6.18.2")).driverOverrideGeneric, false);
});

test("an override that matches the release changes nothing", () => {
  assert.deepEqual(profileOf("7.3.4 +bindIommufdFullStruct").behaviour, profileOf("7.3.4").behaviour);
  assert.deepEqual(profileOf("6.1.192 -bindIommufdFullStruct").behaviour, profileOf("6.1.192").behaviour);
});

test("an unknown flag, a bare word or a flag given twice is refused with what was expected", () => {
  assert.throws(() => parseKernelSpec("7.3.4 -bindIommufdFullstruct"), (e: unknown) => e instanceof KernelVersionError && /did you mean -bindIommufdFullStruct/.test(e.message));
  assert.throws(() => parseKernelSpec("7.3.4 bindIommufdFullStruct"), /expected -FLAG or \+FLAG/);
  assert.throws(() => parseKernelSpec("7.3.4 -iommufd +iommufd"), /each flag once/);
  assert.throws(() => profileOf("7.3.4 -nosuchflag"), KernelVersionError);
});

test("a host file and --profile take a spec", async () => {
  const base = `devices:\n  - { bdf: "0000:01:00.0", vendor: 0x8086, device: 0x10c9 }\n`;
  const h = parseHost(`kernel: { version: "7.3.4 -bindIommufdFullStruct", config: { VFIO_DEVICE_CDEV: true } }\n${base}`, "h.yaml");
  assert.equal((await bootKernel(h)).profile.cdevToken, "e2big");
  assert.throws(() => parseHost(`profile: "7.3.4 -bogus"\n${base}`, "h.yaml"), /h\.yaml: profile: expected a kernel version/);
  const k = await bootKernel(parseHost(base, "h.yaml"), { profile: "6.12.117 -driverOverrideGeneric" });
  assert.equal(k.profile.behaviour.driverOverrideGeneric, false);
});

test("--profile's check takes a spec", async () => {
  const { isKernelVersion } = await import("../src/kernel/versions.js");
  assert.equal(isKernelVersion("7.3.4 -bindIommufdFullStruct"), true);
  assert.equal(isKernelVersion("7.3.4 -bogus"), false);
  assert.equal(isKernelVersion("7.3.4 bindIommufdFullStruct"), false);
});
