/**
 * `vfioctl args`: DPDK (or QEMU) as the PF's userspace driver, QEMU with several devices and
 * several PFs (a by-reference piece and a token per device's PF), token files made absolute,
 * devices a consumer cannot open refused with the reason, and --from-env on the SR-IOV network
 * device plugin's variables (pkg/resources/pool_stub.go GetEnvs: PCIDEVICE_<PREFIX>_<RESOURCE>
 * and its _INFO JSON of generic / vfio / extra providers).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel } from "../src/kernel/host/boot.js";
import { parseHost } from "../src/kernel/host/host-file.js";
import { consumerArgs } from "../src/lib/args.js";
import { devicePluginVar, readDevicePluginEnv } from "../src/lib/dpenv.js";
import { runCli, simRoot } from "../testlib/cli.js";

const PF = "0000:af:00.0";
const VF0 = "0000:af:10.0";
const VF1 = "0000:af:10.1";
const T = "2ab74924-c335-45f4-9b16-8569e5b08258";

/** A token file the way the store writes one (0600), in a fresh directory. */
function tokenFile(token = T): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-args-"));
  const file = path.join(dir, "acc100.token");
  fs.writeFileSync(file, token + "\n", { mode: 0o600 });
  return { dir, file };
}

test("args dpdk on a vfio-pci PF prints the PF driver's EAL pieces with its token, saying the token given sets the PF's token", async () => {
  const k = await bootKernel();
  const { file } = tokenFile();
  const r = await runCli(k, ["args", "dpdk", PF, "--token-file", file]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^-a 0000:af:00\.0 --vfio-vf-token=<VF-TOKEN>$/m);
  assert.ok(r.out.includes(`--vfio-vf-token="$(cat ${file})"`));
  assert.match(r.out, /0000:af:00\.0 is a PF on vfio-pci: DPDK is then the PF's userspace driver, and opening the PF with this token sets it as the PF's VF token while no VF is open/);
  // a PF on a host driver cannot be driven through VFIO
  const igb = await runCli(k, ["args", "dpdk", "0000:01:00.0"]);
  assert.equal(igb.code, 3);
  assert.match(igb.err, /0000:01:00\.0 \(a PF\) is on the host driver igb, not vfio-pci: DPDK could not open it through VFIO \(ENODEV\)/);
});

test("args qemu with several devices prints a by-reference piece for each device, not only the first", async () => {
  const k = await bootKernel();
  const { file } = tokenFile();
  const a = await consumerArgs(k.spawn("t"), "qemu", [VF0, VF1], { token: T, tokenFile: file });
  assert.deepEqual(a.byReferenceEach, [`-device vfio-pci,host=${VF0},vf-token="$(cat ${file})"`, `-device vfio-pci,host=${VF1},vf-token="$(cat ${file})"`]);
  const r = await runCli(k, ["args", "qemu", VF0, VF1, "--token-file", file]);
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.includes(`  -device vfio-pci,host=${VF0},vf-token="$(cat ${file})" \\\n  -device vfio-pci,host=${VF1},vf-token="$(cat ${file})"`), r.out);
});

test("VFs of two PFs get one placeholder per PF, and by reference each PF's own stored file", async () => {
  const k = await bootKernel();
  const files = simRoot();
  fs.mkdirSync(files.real("/etc/vfioctl"), { recursive: true });
  fs.writeFileSync(
    files.real("/etc/vfioctl/host.yaml"),
    "version: 1\npfs:\n  - name: nic0\n    match: { bdf: '0000:01:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: generate\n  - name: acc100\n    match: { bdf: '0000:af:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: generate\n",
  );
  assert.equal((await runCli(k, ["apply"], { files })).code, 0);
  const r = await runCli(k, ["args", "qemu", VF0, "0000:01:10.0"], { files, json: true });
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { argv: string[]; byReferenceEach: string[]; caveats: string[] };
  assert.deepEqual(j.argv, ["-device", `vfio-pci,host=${VF0},vf-token=<VF-TOKEN:${PF}>`, "-device", "vfio-pci,host=0000:01:10.0,vf-token=<VF-TOKEN:0000:01:00.0>"]);
  assert.deepEqual(j.byReferenceEach, [`-device vfio-pci,host=${VF0},vf-token="$(cat /etc/vfioctl/tokens/acc100/current)"`, `-device vfio-pci,host=0000:01:10.0,vf-token="$(cat /etc/vfioctl/tokens/nic0/current)"`]);
  assert.ok(j.caveats.some((c) => /belong to 2 PFs, each with its own token/.test(c)));
  // --show-token prints each PF's own stored token in place
  const shown = JSON.parse((await runCli(k, ["args", "qemu", VF0, "0000:01:10.0", "--show-token"], { files, json: true })).out) as { argv: string[] };
  const tok = (n: string) => fs.readFileSync(files.real(`/etc/vfioctl/tokens/${n}/current`), "utf8").trim();
  assert.deepEqual(shown.argv, ["-device", `vfio-pci,host=${VF0},vf-token=${tok("acc100")}`, "-device", `vfio-pci,host=0000:01:10.0,vf-token=${tok("nic0")}`]);
  assert.notEqual(tok("acc100"), tok("nic0"));
});

test("a relative token file is made absolute in the by-reference form, and the library refuses one", async () => {
  const k = await bootKernel();
  const { dir } = tokenFile();
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const r = await runCli(k, ["args", "dpdk", VF0, "--token-file", "acc100.token"]);
    assert.equal(r.code, 0, r.err);
    assert.ok(r.out.includes(`--vfio-vf-token="$(cat ${path.join(fs.realpathSync(dir), "acc100.token")})"`) || r.out.includes(`--vfio-vf-token="$(cat ${path.join(dir, "acc100.token")})"`), r.out);
    assert.doesNotMatch(r.out, /cat acc100\.token/);
  } finally {
    process.chdir(cwd);
  }
  await assert.rejects(consumerArgs(k.spawn("t"), "dpdk", [VF0], { tokenFile: "acc100.token" }), /token file: expected an absolute path/);
});

test("a VF on a host driver and a device without an IOMMU group are refused with the reason, exit 3", async () => {
  const k = await bootKernel();
  const files = simRoot();
  fs.mkdirSync(files.real("/etc/vfioctl"), { recursive: true });
  fs.copyFileSync(new URL("../../examples/default-host.yaml", import.meta.url).pathname, files.real("/etc/vfioctl/host.yaml"));
  assert.equal((await runCli(k, ["apply"], { files })).code, 0);
  const r = await runCli(k, ["args", "dpdk", "0000:01:10.0", "0000:01:10.6"], { files });
  assert.equal(r.code, 3);
  assert.match(r.err, /0000:01:10\.6 is on the host driver igbvf, not vfio-pci: DPDK could not open it through VFIO \(ENODEV\); vfioctl bind 0000:01:10\.6 vfio-pci/);
  assert.equal(r.out, "");
  const k2 = await bootKernel(parseHost("devices:\n  - { bdf: '0000:07:00.0', vendor: 0x144d, device: 0xa808, class: 0x010802, iommu_group: null, driver: none }\n"));
  const n = await runCli(k2, ["args", "qemu", "0000:07:00.0"]);
  assert.equal(n.code, 3);
  assert.match(n.err, /0000:07:00\.0 has no IOMMU group: there is no \/dev\/vfio node to open \(ENOENT\)/);
});

const INFO = (devs: string[], extra: Record<string, string> = {}) =>
  JSON.stringify(Object.fromEntries(devs.map((d, i) => [d, { generic: { deviceID: d }, vfio: { mount: "/dev/vfio/vfio", "dev-mount": `/dev/vfio/${6 + i}` }, ...(Object.keys(extra).length ? { extra } : {}) }])));

test("--from-env reads the device plugin's PCIDEVICE_<PREFIX>_<RESOURCE> and its _INFO, by full or bare resource name", async () => {
  const k = await bootKernel();
  const { file } = tokenFile();
  assert.equal(devicePluginVar("intel.com/acc100"), "PCIDEVICE_INTEL_COM_ACC100");
  const env = { PCIDEVICE_INTEL_COM_ACC100: `${VF0},${VF1}`, PCIDEVICE_INTEL_COM_ACC100_INFO: INFO([VF0, VF1]) };
  const e = readDevicePluginEnv(env, "intel.com/acc100");
  assert.deepEqual(e.devices, [VF0, VF1]);
  assert.deepEqual(e.info[VF1], { bdf: VF1, deviceID: VF1, devMount: "/dev/vfio/7", mount: "/dev/vfio/vfio", extra: {} });
  for (const res of ["intel.com/acc100", "acc100"]) {
    const r = await runCli(k, ["args", "dpdk", "--from-env", res, "--token-file", file], { env });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^-a ${VF0} -a ${VF1} --vfio-vf-token=<VF-TOKEN>$`, "m"));
    assert.match(r.out, /devices from PCIDEVICE_INTEL_COM_ACC100: 0000:af:10\.0, 0000:af:10\.1/);
    assert.doesNotMatch(r.out, /mounted its group node/);
  }
  // a dev-mount that is not the group's node is pointed out
  const moved = await runCli(k, ["args", "qemu", "--from-env", "acc100", "--token-file", file], { env: { PCIDEVICE_INTEL_COM_ACC100: VF0, PCIDEVICE_INTEL_COM_ACC100_INFO: JSON.stringify({ [VF0]: { vfio: { "dev-mount": "/dev/vfio/169" } } }) } });
  assert.match(moved.out, /0000:af:10\.0: the device plugin mounted its group node at \/dev\/vfio\/169 \(sysfs says \/dev\/vfio\/6\)/);
});

test("--from-env uses a token the plugin put in extra only without another source, warning that it sits in the pod's environment", async () => {
  const k = await bootKernel();
  const env = { PCIDEVICE_INTEL_COM_ACC100: VF0, PCIDEVICE_INTEL_COM_ACC100_INFO: INFO([VF0], { token: T }) };
  const r = await runCli(k, ["args", "dpdk", "--from-env", "intel.com/acc100", "--show-token"], { env });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`--vfio-vf-token=${T}`));
  assert.match(r.out, /the token came from the device plugin's PCIDEVICE_INTEL_COM_ACC100_INFO \("extra":\{"token":…\}, its additionalInfo\): it is in this pod's environment/);
  const j = await runCli(k, ["args", "dpdk", "--from-env", "intel.com/acc100"], { env, json: true });
  assert.equal(j.code, 0, j.err);
  assert.deepEqual((JSON.parse(j.out) as { fromEnv: { info: Record<string, { extra: string[] }> } }).fromEnv.info[VF0]!.extra, ["token"]);
  assert.ok(!j.out.includes(T), "the JSON output does not echo the token");
});

test("--from-env refuses a missing, ambiguous or malformed variable, and BDFs given as well (exit 2)", async () => {
  const k = await bootKernel();
  const missing = await runCli(k, ["args", "dpdk", "--from-env", "intel.com/acc100"], { env: { PCIDEVICE_INTEL_COM_NIC: VF0 } });
  assert.equal(missing.code, 2);
  assert.match(missing.err, /PCIDEVICE_INTEL_COM_ACC100 is not set \(set: PCIDEVICE_INTEL_COM_NIC\)/);
  const two = await runCli(k, ["args", "dpdk", "--from-env", "acc100"], { env: { PCIDEVICE_INTEL_COM_ACC100: VF0, PCIDEVICE_EXAMPLE_COM_ACC100: VF1 } });
  assert.equal(two.code, 2);
  assert.match(two.err, /expected one device plugin variable ending in _ACC100, got 2/);
  const bad = await runCli(k, ["args", "dpdk", "--from-env", "acc100"], { env: { PCIDEVICE_INTEL_COM_ACC100: VF0, PCIDEVICE_INTEL_COM_ACC100_INFO: "{not json" } });
  assert.equal(bad.code, 2);
  assert.match(bad.err, /_INFO: expected the device plugin's JSON/);
  const both = await runCli(k, ["args", "dpdk", VF0, "--from-env", "acc100"], { env: { PCIDEVICE_INTEL_COM_ACC100: VF0 } });
  assert.equal(both.code, 2);
});

test("a token given without a file (stdin, environment) gives no by-reference line: there is no file to read at launch", async () => {
  const k = await bootKernel();
  for (const c of ["dpdk", "spdk", "qemu"] as const) {
    const a = await consumerArgs(k.spawn("t"), c, [VF0], { token: T });
    assert.equal(a.byReference, undefined, `${c}: ${a.byReference}`);
    assert.ok(a.tokenNeeded && /vf-token=/.test(a.argv.join(" ")), `${c}: the pieces still carry the token (or its placeholder): ${a.argv.join(" ")}`);
  }
  const { file } = tokenFile();
  for (const c of ["dpdk", "spdk"] as const) {
    const a = await consumerArgs(k.spawn("t"), c, [VF0], { token: T, tokenFile: file });
    assert.ok(a.byReference?.includes(`$(cat ${file})`), `${c}: ${a.byReference}`);
  }
});
