/**
 * Ubuntu's kernels name their upstream base in /proc/version_signature
 * ("Ubuntu 6.8.0-51.52-generic 6.8.12"): uname -r alone (6.8.0-51-generic) does not say which
 * 6.8.y it is, so stable backports (e.g. the DSA/IAX denylist of 6.8.10) are resolved from it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { identifyKernel, formatRelease } from "../src/kernel/versions.js";
import { bootKernel } from "../src/kernel/host/boot.js";
import { readHostKernel } from "../src/lib/kernel.js";

test("a version signature gives the upstream release; uname -r alone stays the base .0 with its caveat", () => {
  const s = identifyKernel("6.8.0-51-generic", { versionSignature: "Ubuntu 6.8.0-51.52-generic 6.8.12\n" });
  assert.equal(formatRelease(s.release), "6.8.12");
  assert.equal(s.distro, "ubuntu");
  assert.equal(s.versionSignature, "Ubuntu 6.8.0-51.52-generic 6.8.12");
  assert.match(s.basis, /rebased on upstream 6\.8\.12 \(\/proc\/version_signature\)/);
  const bare = identifyKernel("6.8.0-51-generic");
  assert.equal(formatRelease(bare.release), "6.8.0");
  assert.match(bare.caveat!, /resolved as 6\.8\.0/);
  // the signature string itself is a profile; an HWE kernel's "~22.04.1" is part of its ABI
  const hwe = identifyKernel("Ubuntu 6.8.0-51.52~22.04.1-generic 6.8.12");
  assert.equal(hwe.osrelease, "6.8.0-51-generic");
  assert.equal(formatRelease(hwe.release), "6.8.12");
  // a signature of another kernel than uname -r is not used
  const other = identifyKernel("6.8.0-40-generic", { versionSignature: "Ubuntu 6.8.0-51.52-generic 6.8.12" });
  assert.equal(formatRelease(other.release), "6.8.0");
  // nor with a /proc/version line of another kernel; with its own, yes
  const pv = (r: string) => `Linux version ${r} (buildd@lcy02-amd64-091) (x86_64-linux-gnu-gcc-13 (Ubuntu 13.2.0-23ubuntu4) 13.2.0) #52-Ubuntu SMP PREEMPT_DYNAMIC`;
  assert.equal(formatRelease(identifyKernel(pv("6.8.0-40-generic"), { versionSignature: "Ubuntu 6.8.0-51.52-generic 6.8.12" }).release), "6.8.0");
  assert.equal(formatRelease(identifyKernel(pv("6.8.0-51-generic"), { versionSignature: "Ubuntu 6.8.0-51.52-generic 6.8.12" }).release), "6.8.12");
});

test("the stable backports follow the signature: 6.8.0-51 (6.8.12) has the DSA/IAX denylist of 6.8.10, 6.8.0 does not", async () => {
  const on = await bootKernel(undefined, { profile: "Ubuntu 6.8.0-51.52-generic 6.8.12" });
  assert.equal(on.profile.behaviour.denylistDsaIax, true);
  const off = await bootKernel(undefined, { profile: "6.8.0-51-generic" });
  assert.equal(off.profile.behaviour.denylistDsaIax, false);
});

test("the host tool reads /proc/version_signature: the model of an Ubuntu kernel has it, others do not", async () => {
  const k = await bootKernel(undefined, { profile: "Ubuntu 6.8.0-51.52-generic 6.8.12" });
  const hk = await readHostKernel(k.spawn("sh"));
  assert.equal(hk.osrelease, "6.8.0-51-generic");
  assert.equal(formatRelease(hk.ident!.release), "6.8.12");
  assert.match(hk.summary, /6\.8\.0-51-generic \(upstream 6\.8\.12\)/);
  const d = await bootKernel(undefined, { profile: "6.12.58" });
  const sh = d.spawn("sh");
  await assert.rejects(sh.open("/proc/version_signature", 0), /ENOENT/);
});

test("a signature takes -flag / +flag words after it like any version, and a /proc/version line is one version", async () => {
  const { parseKernelSpec } = await import("../src/kernel/versions.js");
  assert.deepEqual(parseKernelSpec("Ubuntu 6.8.0-51.52-generic 6.8.12 +bindIommufdToken"), { version: "Ubuntu 6.8.0-51.52-generic 6.8.12", overrides: { bindIommufdToken: true } });
  const pv = "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)";
  assert.deepEqual(parseKernelSpec(pv), { version: pv, overrides: {} });
  const k = await bootKernel(undefined, { profile: pv });
  assert.equal(formatRelease(k.profile.ident.release), "6.1.192");
});
