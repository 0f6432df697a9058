/**
 * `vfioctl cdi`: the CDI spec's structure per VF (nodes of one access path, the BDF in the
 * environment, the token as a read-only mount of the store file and never its value), where it
 * is written, and what is refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { Kernel } from "../src/kernel/kernel.js";
import { buildCdiSpec, type CdiSpec } from "../src/host/cdi.js";
import { runCli, simRoot } from "../testlib/cli.js";
import type { HostFiles } from "../src/sys/hostfs.js";

const CONFIG = new URL("../../examples/default-host.yaml", import.meta.url).pathname;

/** The default simulated host converged to examples/default-host.yaml (nic0: 4 VFs, VF3 on igbvf, a stored token). */
async function appliedHost(profile?: string): Promise<{ k: Kernel; files: HostFiles; token: string }> {
  const k = await bootKernel(undefined, profile ? { profile } : {});
  const files = simRoot();
  fs.mkdirSync(files.real("/etc/vfioctl"), { recursive: true });
  fs.copyFileSync(CONFIG, files.real("/etc/vfioctl/host.yaml"));
  const a = await runCli(k, ["apply"], { files });
  assert.equal(a.code, 0, a.err + a.out);
  const token = fs.readFileSync(files.real("/etc/vfioctl/tokens/nic0/current"), "utf8").trim();
  return { k, files, token };
}

const specOf = (files: HostFiles): CdiSpec => JSON.parse(fs.readFileSync(files.real("/var/run/cdi/vfioctl-vf.json"), "utf8")) as CdiSpec;

test("cdi writes one CDI device per VF (declared 0.8.0 by default) on vfio-pci: group nodes, the BDF in the environment, the token file mounted read-only", async () => {
  const { k, files, token } = await appliedHost();
  const r = await runCli(k, ["cdi"], { files });
  assert.equal(r.code, 0, r.err);
  const text = fs.readFileSync(files.real("/var/run/cdi/vfioctl-vf.json"), "utf8");
  assert.ok(!text.includes(token), "the token itself is never in the spec");
  assert.equal(fs.statSync(files.real("/var/run/cdi/vfioctl-vf.json")).mode & 0o777, 0o644);
  const spec = specOf(files);
  assert.equal(spec.cdiVersion, "0.8.0");
  assert.equal(spec.kind, "vfioctl/vf");
  assert.deepEqual(spec.devices.map((d) => d.name), ["nic0-vf0", "nic0-vf1", "nic0-vf2"]);
  const sh = k.spawn("sh");
  for (const d of spec.devices) {
    const e = d.containerEdits;
    const bdf = /^VFIOCTL_VF_NIC0_VF\d=(.+)$/.exec(e.env!.find((x) => x.startsWith("VFIOCTL_VF_NIC0"))!)![1]!;
    const g = (await sh.readlink(`/sys/bus/pci/devices/${bdf}/iommu_group`)).split("/").pop();
    assert.deepEqual(e.deviceNodes!.map((n) => n.path), ["/dev/vfio/vfio", `/dev/vfio/${g}`]);
    assert.ok(e.deviceNodes!.every((n) => n.type === "c"));
    assert.deepEqual(e.mounts, [{ hostPath: "/etc/vfioctl/tokens/nic0/current", containerPath: "/run/vfioctl/tokens/nic0", options: ["ro", "nosuid", "nodev", "noexec", "bind"] }]);
    assert.ok(e.env!.includes(`VFIOCTL_VF_TOKEN_FILE_${d.name.toUpperCase().replace(/-/g, "_")}=/run/vfioctl/tokens/nic0`));
    assert.ok(!e.env!.some((x) => x.includes(token)));
  }
  // the VF on igbvf (a host driver) is left out, with the reason
  assert.match(r.out, /left out: 0000:01:10\.6 is on the host driver igbvf, not vfio-pci/);
  assert.match(r.out, /podman run --device vfioctl\/vf=nic0-vf0/);
});

test("cdi --access cdev gives /dev/iommu and the VF's cdev node, never the group nodes", async () => {
  const { k, files } = await appliedHost("6.17.1");
  const r = await runCli(k, ["cdi", "--access", "cdev"], { files });
  assert.equal(r.code, 0, r.err);
  const sh = k.spawn("sh");
  for (const d of specOf(files).devices) {
    const bdf = d.containerEdits.env![0]!.split("=")[1]!;
    const idx = (await sh.readdir(`/sys/bus/pci/devices/${bdf}/vfio-dev`))[0];
    assert.deepEqual(d.containerEdits.deviceNodes!.map((n) => n.path), ["/dev/iommu", `/dev/vfio/devices/${idx}`]);
  }
  assert.match(r.out, /QEMU ignores vf-token on the iommufd path/);
});

test("cdi --access cdev on a kernel without the vfio cdev refuses, naming --access group", async () => {
  const { k, files } = await appliedHost("6.12");
  const r = await runCli(k, ["cdi", "--access", "cdev"], { files });
  assert.equal(r.code, 3);
  assert.match(r.err, /no VF can be given to a container: 0000:01:10\.0 has no vfio cdev .* \(use --access group\)/);
  assert.ok(!fs.existsSync(files.real("/var/run/cdi/vfioctl-vf.json")));
});

test("cdi --dry-run prints the spec and writes nothing; --out and --cdi-version are checked", async () => {
  const { k, files } = await appliedHost();
  const d = await runCli(k, ["cdi", "--dry-run", "--cdi-version", "0.5.0", "--out", "/etc/cdi"], { files });
  assert.equal(d.code, 0, d.err);
  assert.match(d.out, /"cdiVersion": "0\.5\.0"/);
  assert.ok(!fs.existsSync(files.real("/etc/cdi/vfioctl-vf.json")));
  assert.equal((await runCli(k, ["cdi", "--cdi-version", "2.0.0"], { files })).code, 2);
  assert.equal((await runCli(k, ["cdi", "--out", "cdi"], { files })).code, 2);
  assert.equal((await runCli(k, ["cdi", "--kind", "novendor"], { files })).code, 2);
});

test("a PF named without a config gets its store's token file when one exists, and none (with the reason) otherwise", async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const r = await buildCdiSpec(sh, [{ name: "acc100", bdf: "0000:af:00.0", tokenFile: null, noTokenWhy: "no token is stored" }]);
  assert.deepEqual(r.devices.map((d) => d.name), ["acc100-vf0", "acc100-vf1"]);
  assert.ok(r.spec.devices.every((d) => d.containerEdits.mounts === undefined));
  assert.ok(r.notes.some((n) => /acc100-vf0 \(0000:af:10\.0\) needs PF 0000:af:00\.0's VF token and there is no token file to mount: no token is stored/.test(n)));
  const g = await buildCdiSpec(sh, [{ name: "acc100", bdf: "0000:af:00.0", tokenFile: "/etc/vfioctl/tokens/acc100/current", readersGid: 36 }]);
  assert.deepEqual(g.spec.devices[0]!.containerEdits.additionalGids, [36]);
  assert.equal(g.minVersion, "0.7.0");
  const old = await buildCdiSpec(sh, [{ name: "acc100", bdf: "0000:af:00.0", tokenFile: "/x", readersGid: 36 }], { cdiVersion: "0.5.0" });
  assert.equal(old.spec.devices[0]!.containerEdits.additionalGids, undefined);
  assert.ok(old.notes.some((n) => /CDI 0\.5\.0 has no additionalGids \(0\.7\.0\)/.test(n)));
  await assert.rejects(buildCdiSpec(sh, [{ name: "acc100", bdf: "0000:af:10.0", tokenFile: null }]), /not an SR-IOV PF .*it is a VF of 0000:af:00\.0/);
});
