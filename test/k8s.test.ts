/**
 * `vfioctl k8s device-plugin`: the SR-IOV network device plugin's resourceList, checked against
 * the plugin's own config schema (pkg/types ResourceConfig and the selector tables of its README).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { parse as parseYaml } from "yaml";
import { bootKernel } from "../src/kernel/host/boot.js";
import { runCli, simRoot } from "../testlib/cli.js";
import type { HostFiles } from "../src/sys/hostfs.js";

const CONFIG = new URL("../../examples/default-host.yaml", import.meta.url).pathname;
/** ResourceConfig's JSON fields, and the selectors each deviceType accepts (README "Device selectors"). */
const RESOURCE_KEYS = new Set(["resourceName", "resourcePrefix", "deviceType", "excludeTopology", "selectors", "additionalInfo"]);
const SELECTORS: Record<string, Set<string>> = {
  netDevice: new Set(["vendors", "devices", "drivers", "pciAddresses", "acpiIndexes", "pfNames", "rootDevices", "linkTypes", "ddpProfiles", "pKeys", "isRdma", "needVhostNet", "vdpaType"]),
  accelerator: new Set(["vendors", "devices", "drivers", "pciAddresses", "acpiIndexes"]),
};

interface Res {
  resourceName: string;
  deviceType: string;
  resourcePrefix?: string;
  selectors: Record<string, string[]>[];
}

function withConfig(text: string): HostFiles {
  const files = simRoot();
  fs.mkdirSync(files.real("/etc/vfioctl"), { recursive: true });
  fs.writeFileSync(files.real("/etc/vfioctl/host.yaml"), text);
  return files;
}

function checkSchema(list: Res[]) {
  for (const r of list) {
    for (const k of Object.keys(r)) assert.ok(RESOURCE_KEYS.has(k), `resource field ${k}`);
    assert.match(r.resourceName, /^[A-Za-z0-9_]+$/, "no special characters, no hyphens");
    assert.ok(SELECTORS[r.deviceType], `deviceType ${r.deviceType}`);
    for (const s of r.selectors) for (const k of Object.keys(s)) assert.ok(SELECTORS[r.deviceType]!.has(k), `${r.deviceType} selector ${k}`);
  }
}

test("the device plugin config pools a vfio-pci PF's VFs by PF address and VF index, with driver vfio-pci, and VFs a rule moves apart separately", async () => {
  const k = await bootKernel();
  const files = withConfig(fs.readFileSync(CONFIG, "utf8"));
  // before apply the E810 has no VFs, so which driver they get is not known yet
  const before = await runCli(k, ["k8s", "device-plugin"], { files });
  assert.match(before.err, /e810 \(0000:3b:00\.0\): VFs 0-7 have no driver now and no vf_drivers rule: left out/);
  assert.equal((await runCli(k, ["apply"], { files })).code, 0);
  const r = await runCli(k, ["k8s", "device-plugin"], { files });
  assert.equal(r.code, 0, r.err);
  const list = (JSON.parse(r.out) as { resourceList: Res[] }).resourceList;
  checkSchema(list);
  assert.deepEqual(list.map((x) => [x.resourceName, x.deviceType]), [["nic0", "netDevice"], ["nic0_igbvf", "netDevice"], ["e810", "netDevice"]]);
  assert.deepEqual(list[0]!.selectors, [{ vendors: ["8086"], devices: ["10ca"], drivers: ["vfio-pci"], rootDevices: ["0000:01:00.0#0-2"] }]);
  assert.deepEqual(list[1]!.selectors[0]!.rootDevices, ["0000:01:00.0#3"]);
  assert.deepEqual(list[1]!.selectors[0]!.drivers, ["igbvf"]);
  // the E810 keeps ice: its VFs are on iavf now, with no token
  assert.deepEqual(list[2]!.selectors[0]!.drivers, ["iavf"]);
  assert.match(r.err, /nic0: VFs of a vfio-pci PF need its VF token; do not put it in additionalInfo/);
});

test("an accelerator PF becomes deviceType accelerator selected by the VFs' addresses, and the token is never in the output", async () => {
  const k = await bootKernel();
  const files = withConfig("version: 1\npfs:\n  - name: acc100\n    match: { bdf: '0000:af:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: generate\n");
  const a = await runCli(k, ["apply"], { files });
  assert.equal(a.code, 0, a.err + a.out);
  const token = fs.readFileSync(files.real("/etc/vfioctl/tokens/acc100/current"), "utf8").trim();
  const r = await runCli(k, ["k8s", "device-plugin", "--prefix", "vfioctl.io"], { files });
  assert.equal(r.code, 0, r.err);
  assert.ok(!r.out.includes(token) && !r.err.includes(token));
  const list = (JSON.parse(r.out) as { resourceList: Res[] }).resourceList;
  checkSchema(list);
  assert.deepEqual(list, [{ resourceName: "acc100", resourcePrefix: "vfioctl.io", deviceType: "accelerator", selectors: [{ vendors: ["8086"], devices: ["0d5d"], drivers: ["vfio-pci"], pciAddresses: ["0000:af:10.0", "0000:af:10.1"] }] }]);
  assert.ok(!r.out.includes("additionalInfo"));
});

test("--configmap wraps the same config in the plugin's ConfigMap; bad input exits 2", async () => {
  const k = await bootKernel();
  const files = withConfig(fs.readFileSync(CONFIG, "utf8"));
  const plain = await runCli(k, ["k8s", "device-plugin"], { files });
  const cm = await runCli(k, ["k8s", "device-plugin", "--configmap"], { files });
  assert.equal(cm.code, 0, cm.err);
  const doc = parseYaml(cm.out) as { kind: string; metadata: { name: string; namespace: string }; data: Record<string, string> };
  assert.equal(doc.kind, "ConfigMap");
  assert.deepEqual(doc.metadata, { name: "sriovdp-config", namespace: "kube-system" });
  assert.deepEqual(JSON.parse(doc.data["config.json"]!), JSON.parse(plain.out));
  assert.equal((await runCli(k, ["k8s", "operator"], { files })).code, 2);
  assert.equal((await runCli(k, ["k8s", "device-plugin", "--prefix", "Bad_Prefix"], { files })).code, 2);
  assert.equal((await runCli(k, ["k8s", "device-plugin", "--config", "/nope.yaml"], { files })).code, 2);
});
