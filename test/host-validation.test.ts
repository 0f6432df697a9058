/**
 * Host descriptions that describe impossible hosts are refused with the file, the field path and
 * expected-versus-found (docs/host-file.md "Validation").
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { bootHostFile, bootKernel } from "../src/kernel/host/boot.js";
import { parseHost, validateHost } from "../src/kernel/host/host-file.js";
import { DEFAULT_HOST } from "../src/kernel/host/default-host.js";
import { readAttr } from "../src/sys/fsutil.js";

const IGB = `    vendor: 0x8086\n    device: 0x10c9\n`;
const igbPf = (sriov: string, bdf = "0000:01:00.0") => `  - bdf: "${bdf}"\n${IGB}    sriov: { total_vfs: 8, offset: 128, stride: 2, vf_device: 0x10ca${sriov} }\n`;

function hostFile(text: string): string {
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-hostfile-")), "host.yaml");
  fs.writeFileSync(f, text);
  return f;
}

async function bootFails(text: string): Promise<string> {
  const f = hostFile(text);
  try {
    await bootHostFile(f);
  } catch (e) {
    const m = (e as Error).message;
    assert.ok(m.startsWith(`${f}: `), m);
    return m.slice(f.length + 2);
  }
  assert.fail("booted");
}

test("num_vfs above the driver's cap (igb: 7 on the 82576's 8) is refused naming the cap, the driver and TotalVFs", async () => {
  const m = await bootFails(`devices:\n${igbPf(", num_vfs: 8")}`);
  assert.equal(m, "devices[0].sriov.num_vfs: expected 0..7 (igb caps 8086:10c9 at 7 VFs: sriov_totalvfs 7, the device's TotalVFs 8), got 8");
  // 7 boots, and shows 7 of 7
  const k = await bootHostFile(hostFile(`devices:\n${igbPf(", num_vfs: 7")}`));
  const sh = k.spawn("sh");
  assert.equal(await readAttr(sh, "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs"), "7");
  assert.equal(await readAttr(sh, "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs"), "7");
});

test("num_vfs above total_vfs is refused as a TotalVFs error", () => {
  assert.throws(() => parseHost(`devices:\n${igbPf(", num_vfs: 9")}`, "h.yaml"), {
    message: "h.yaml: devices[0].sriov.num_vfs: expected at most total_vfs (8): a PF cannot enable more VFs than its SR-IOV capability's TotalVFs, got 9",
  });
});

test("a declared device on a VF's address is refused naming both devices and the VF", () => {
  // 0000:01:00.0 offset 128 stride 2: VF0 is 0000:01:10.0, VF3 0000:01:10.6
  const text = `devices:\n${igbPf("")}  - bdf: "0000:01:10.6"\n    vendor: 0x144d\n    device: 0xa808\n`;
  assert.throws(() => parseHost(text, "h.yaml"), {
    message: 'h.yaml: devices[1].bdf: expected an address outside the VFs of devices[0] (0000:01:00.0: offset 128, stride 2, total_vfs 8 puts VF3 at 0000:01:10.6), got "0000:01:10.6"',
  });
  // one function further is free
  assert.doesNotThrow(() => parseHost(text.replace("0000:01:10.6", "0000:01:10.7"), "h.yaml"));
});

test("two PFs whose VFs would share addresses are refused naming both", () => {
  const text = `devices:\n${igbPf("")}${igbPf("", "0000:01:00.2")}`;
  assert.throws(() => parseHost(text, "h.yaml"), /h\.yaml: devices\[1\]\.sriov\.offset: expected VF addresses apart from devices\[0\]'s \(0000:01:00\.0 VF1 is 0000:01:10\.2, and so would 0000:01:00\.2 VF0 be\), got 128/);
});

test("VFs past bus 0xff are refused", () => {
  const text = `devices:\n  - bdf: "0000:ff:00.0"\n${IGB}    sriov: { total_vfs: 8, offset: 256, stride: 1, vf_device: 0x10ca }\n`;
  assert.throws(() => parseHost(text, "h.yaml"), /devices\[0\]\.sriov\.total_vfs: expected VFs that fit below bus 0xff: with offset 256 and stride 1, VF0 of 0000:ff:00\.0 would be on bus 0x100 \(at most 0 VFs fit\), got 8/);
});

test("a duplicate BDF names the device that has it", () => {
  const text = `devices:\n  - bdf: "0000:05:00.0"\n    vendor: 1\n    device: 2\n  - bdf: "0000:05:00.0"\n    vendor: 1\n    device: 3\n`;
  assert.throws(() => parseHost(text, "h.yaml"), { message: 'h.yaml: devices[1].bdf: expected an address not used by another device (devices[0] is 0000:05:00.0), got "0000:05:00.0"' });
});

test("a driver the model does not have is refused with the registered ones and a suggestion", async () => {
  const m = await bootFails(`devices:\n  - bdf: "0000:01:00.0"\n${IGB}    driver: vfio_pci\n`);
  assert.match(m, /^devices\[0\]\.driver: expected a registered driver \(igb, .*vfio-pci; did you mean vfio-pci\?\), or "none", got "vfio_pci"$/);
  const n = await bootFails(`devices:\n  - bdf: "0000:01:00.0"\n${IGB}    driver: e1000e\n`);
  assert.doesNotMatch(n, /did you mean/);
});

test("unknown keys suggest the right one", () => {
  const cases: [string, RegExp][] = [
    [`devices:\n${igbPf(", num_vf: 2")}`, /devices\[0\]\.sriov\.num_vf: expected a known SR-IOV field \(did you mean num_vfs\?\), got "num_vf"/],
    [`devices:\n  - bdf: "0000:05:00.0"\n    vendor: 1\n    device: 2\n    iommu_grop: 3\n`, /devices\[0\]\.iommu_grop: expected a known device field \(did you mean iommu_group\?\)/],
    [`devices:\n  - bdf: "0000:05:00.0"\n    vendor: 1\n    device: 2\n    colour: red\n`, /devices\[0\]\.colour: expected a known device field \(bdf, vendor, device, /],
    [`device: []\n`, /h\.yaml: device: expected one of name, profile, kernel, modules, drivers, devices, net \(did you mean devices\?\)/],
    [`modules: { vfio_pci: { enable_srio: true } }\ndevices: []\n`, /modules\.vfio_pci\.enable_srio: expected one of .* \(did you mean enable_sriov\?\)/],
    [`modules: { vfio-pci: { enable_sriov: true } }\ndevices: []\n`, /modules\.vfio-pci: expected vfio_pci \(module names are written with _\)/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseHost(text, "h.yaml"), re, text);
});

test("the default host and the repository's host files pass the checks", async () => {
  assert.doesNotThrow(() => validateHost(JSON.parse(JSON.stringify(DEFAULT_HOST)), "default"));
  await bootKernel();
  for (const f of ["test/fixtures/host-two-vfio-pfs.yaml", "test/fixtures/host-shared-group.yaml", "scenarios/hosts/lab-igb.yaml"]) {
    await bootHostFile(new URL(`../../${f}`, import.meta.url).pathname);
  }
});

test("net: a host file says what the host does with its interfaces; bind then refuses the one in use, and bad entries are refused by field", async () => {
  const { runCli } = await import("../testlib/cli.js");
  const host = parseHost(
    `devices:\n  - { bdf: "0000:01:00.0", vendor: 0x8086, device: 0x10c9, class: 0x020000, driver: igb }\nnet:\n  eth0: { up: true, addresses: ["10.1.2.3/16"], routes: ["default via 10.1.0.1"] }\n`,
    "h.yaml",
  );
  const k = await bootKernel(host);
  const r = await runCli(k, ["bind", "01:00.0", "vfio-pci"]);
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, /0000:01:00\.0: in use by this host: eth0 is up with address 10\.1\.2\.3\/16 and the default route/);
  for (const [text, re] of [
    [`net: { eth0: { up: yes } }`, /h\.yaml: net\.eth0\.up: expected true or false/],
    [`net: { eth0: { addresses: ["10.0.0.5"] } }`, /h\.yaml: net\.eth0\.addresses\[0\]: expected an address with its prefix/],
    [`net: { eth0: { adresses: [] } }`, /h\.yaml: net\.eth0\.adresses: expected one of up, addresses, routes, master \(did you mean addresses\?\)/],
    [`net: [eth0]`, /h\.yaml: net: expected a mapping of interface names/],
    // a name Linux would not take (dev_valid_name; at most 15 characters): a string that is no name as well as a number (sampled seed 16)
    [`net: { eth0: { master: "0bond" } }`, /h\.yaml: net\.eth0\.master: expected an interface name \(bond0, br0\), got "0bond"/],
    [`net: { eth0: { master: "bond-with-a-long-name" } }`, /h\.yaml: net\.eth0\.master: expected an interface name/],
    [`net: { eth0: { master: 7 } }`, /h\.yaml: net\.eth0\.master: expected an interface name/],
  ] as const) assert.throws(() => parseHost(`devices: []\n${text}\n`, "h.yaml"), re, text);
  assert.equal(parseHost(`devices: []\nnet: { eth0: { master: bond0 } }\n`, "h.yaml").net?.eth0?.master, "bond0");
});

test("a JSON host file reads as yaml reads it, and a key named twice in one mapping is refused as yaml refuses it", async () => {
  const { parse } = await import("yaml");
  const desc = {
    name: 'a "quoted": name, {with} [brackets]\\ and \u00e9',
    devices: [
      { bdf: "0000:01:00.0", vendor: 0x8086, device: 0x10c9, sriov: { total_vfs: 8, offset: 128, stride: 2, vf_device: 0x10ca } },
      { bdf: "0000:02:00.0", vendor: 0x8086, device: 0x10c9, driver: "vfio-pci" },
    ],
  };
  for (const text of [JSON.stringify(desc), JSON.stringify(desc, null, 2), `\n\t ${JSON.stringify(desc, null, "\t")}\n`]) {
    assert.deepEqual(parseHost(text, "h.json"), validateHost(parse(text), "h.json"));
  }
  // the same key twice: in the top level, inside a device, and beside a string value that looks like a key
  const twice = [
    '{"name": "a", "name": "b", "devices": []}',
    '{"devices": [{"bdf": "0000:01:00.0", "vendor": 1, "device": 2, "vendor": 3}]}',
    '{"name": "x\\": 1, \\"y", "devices": [], "devices": []}',
  ];
  for (const text of twice) {
    assert.throws(() => parse(text), /unique|Map keys/i);
    assert.throws(() => parseHost(text, "h.json"), (e: unknown) => e instanceof Error && /^h\.json: \(file\): expected YAML or JSON/.test(e.message), text);
  }
  // a string value holding `": ` is not counted as a key
  assert.equal(parseHost('{"name": "a\\": b", "devices": []}', "h.json").name, 'a": b');
});

test("a JSON host file is read without loading yaml; a YAML one, or JSON naming a key twice, loads it", { timeout: 30_000 }, () => {
  const mod = new URL("../src/kernel/host/host-file.js", import.meta.url).href;
  const loaded = (text: string): string =>
    execFileSync(
      process.execPath,
      ["--input-type=module", "-e", `import { createRequire } from "node:module"; const { parseHost } = await import(${JSON.stringify(mod)}); let r; try { r = parseHost(process.argv[1], "h").devices.length; } catch (e) { r = "error"; } const req = createRequire(import.meta.url); console.log(r, Object.keys(req.cache).some((k) => k.includes("/node_modules/yaml/")));`, text],
      { encoding: "utf8" },
    ).trim();
  const dev = { bdf: "0000:01:00.0", vendor: 0x8086, device: 0x10c9 };
  assert.equal(loaded(JSON.stringify({ devices: [dev] })), "1 false");
  assert.equal(loaded(`devices:\n  - bdf: "0000:01:00.0"\n${IGB}`), "1 true");
  assert.equal(loaded('{"devices": [], "devices": []}'), "error true");
});
