/**
 * The behaviour table (src/kernel/versions.ts): version strings identified, every entry tested on
 * both sides of its mainline release and of each stable backport, the profile names resolving to
 * exactly the lab's two kernels, and the table's effects seen through the model.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  BEHAVIOUR_CHANGES,
  carries,
  identifyKernel,
  parseRelease,
  resolveBehaviour,
  formatRelease,
  KernelVersionError,
  type BehaviourFlag,
} from "../src/kernel/versions.js";
import { profileOf, PROFILES } from "../src/kernel/profile.js";
import { bootKernel } from "../src/kernel/host/boot.js";
import { parseHost } from "../src/kernel/host/host-file.js";
import { parseGlobal } from "../src/cli/main.js";

/** The two vfio options of a configuration (the others decide sysfs files: test/sysfs-attrs.test.ts). */
const vfioOptions = (c: { IOMMUFD: boolean; VFIO_DEVICE_CDEV: boolean }) => ({ IOMMUFD: c.IOMMUFD, VFIO_DEVICE_CDEV: c.VFIO_DEVICE_CDEV });
import { PF, QAT, U1, U4, boot, bootWithVfs, openDevice, tokenOf, run, w, dev } from "../testlib/spec/index.js";

const below = (v: string) => {
  const r = parseRelease(v);
  return r.patch > 0 ? `${r.major}.${r.minor}.${r.patch - 1}` : r.minor > 0 ? `${r.major}.${r.minor - 1}.0` : `${r.major - 1}.19.0`;
};

describe("each behaviour change holds from its mainline release and its stable backports, and not before", () => {
  for (const c of BEHAVIOUR_CHANGES) {
    test(`${c.flag} (${c.commit ?? "commit not located"}): off on ${below(c.mainline + ".0")}, on from ${c.mainline}`, () => {
      assert.equal(carries(c, parseRelease(below(`${c.mainline}.0`))), false);
      assert.equal(carries(c, parseRelease(c.mainline)), true);
      assert.equal(resolveBehaviour(parseRelease(`${c.mainline}.7`))[c.flag], true);
    });
    for (const s of c.stable) {
      test(`${c.flag}: off on ${below(s)}, on from the stable release ${s} (and later in that branch)`, () => {
        assert.equal(carries(c, parseRelease(below(s))), false);
        assert.equal(carries(c, parseRelease(s)), true);
        const r = parseRelease(s);
        assert.equal(carries(c, { ...r, patch: r.patch + 40 }), true);
      });
    }
  }
  test("every flag is set by exactly one entry, and the table is in mainline order", () => {
    const flags = BEHAVIOUR_CHANGES.map((c) => c.flag);
    assert.equal(new Set(flags).size, flags.length);
    const order = BEHAVIOUR_CHANGES.map((c) => parseRelease(c.mainline));
    for (let i = 1; i < order.length; i++) assert.ok(order[i]!.major * 100 + order[i]!.minor >= order[i - 1]!.major * 100 + order[i - 1]!.minor, `${BEHAVIOUR_CHANGES[i]!.flag} after ${BEHAVIOUR_CHANGES[i - 1]!.flag}`);
  });
  test("stable backports are on branches older than the mainline release", () => {
    for (const c of BEHAVIOUR_CHANGES) for (const s of c.stable) assert.ok(carries(c, parseRelease(c.mainline)) && !carries({ ...c, stable: [] }, parseRelease(s)), `${c.flag} ${s}`);
  });
});

describe("version strings", () => {
  const rows: [string, string, string, RegExp?][] = [
    ["6.12.58", "6.12.58", "upstream"],
    ["7.3.4", "7.3.4", "upstream"],
    ["6.18-rc2", "6.18.0", "upstream"],
    ["6.17.1-lab", "6.17.1", "upstream"],
    ["6.12.117+deb13-amd64", "6.12.117", "debian"],
    ["6.16.12+deb13-cloud-amd64", "6.16.12", "debian"],
    ["6.1.0-56-amd64", "6.1.192", "debian", /lab/],
    ["6.8.0-51-generic", "6.8.0", "ubuntu"],
    ["5.15.0-91-generic", "5.15.0", "ubuntu"],
    ["5.14.0-427.13.1.el9_4.x86_64", "5.14.0", "rhel"],
  ];
  for (const [input, release, distro, basis] of rows) {
    test(`${input} is upstream ${release} (${distro})`, () => {
      const id = identifyKernel(input);
      assert.equal(formatRelease(id.release), release);
      assert.equal(id.distro, distro);
      assert.equal(id.osrelease, input);
      if (basis) assert.match(id.basis, basis);
    });
  }
  test("Ubuntu and RHEL names come with a caveat: their own backports are not in the table", () => {
    assert.match(identifyKernel("6.8.0-51-generic").caveat!, /resolved as 6\.8\.0/);
    assert.match(identifyKernel("5.14.0-427.13.1.el9_4.x86_64").caveat!, /RHEL/);
    assert.equal(identifyKernel("6.17.1").caveat, undefined);
  });
  test("a Debian 12 ABI name the lab has not read needs the upstream version or /proc/version", () => {
    assert.throws(() => identifyKernel("6.1.0-57-amd64"), (e: unknown) => e instanceof KernelVersionError && /upstream version/.test(e.message) && /Debian 6\.1\.NNN-N/.test(e.message));
    const pv = "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP PREEMPT_DYNAMIC Debian 6.1.194-1 (2026-12-01)";
    assert.equal(formatRelease(identifyKernel("6.1.0-57-amd64", { procVersion: pv }).release), "6.1.194");
    assert.equal(formatRelease(identifyKernel(pv).release), "6.1.194", "a /proc/version line on its own");
    const lab = "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)";
    assert.equal(formatRelease(identifyKernel(lab.replace("6.1.192-2", "6.1.199-1").replace(/6\.1\.0-56/, "6.1.0-58")).release), "6.1.199", "the kernel's Debian version, not the compiler's");
  });
  test("the profile names are the lab's Debian kernels, with their uname -r and /proc/version", () => {
    const a = identifyKernel("6.1");
    assert.equal(a.alias, "6.1");
    assert.equal(a.osrelease, "6.1.0-56-amd64");
    assert.equal(formatRelease(a.release), "6.1.192");
    assert.match(a.procVersion, /^Linux version 6\.1\.0-56-amd64 \(debian-kernel@lists\.debian\.org\) .* Debian 6\.1\.192-2 \(2026-11-16\)$/);
    const b = identifyKernel("6.12");
    assert.equal(b.osrelease, "6.12.117+deb13-amd64");
    assert.match(b.procVersion, /Debian 6\.12\.117-1 \(2026-11-12\)$/);
  });
  test("not a version: expected-versus-found message", () => {
    assert.throws(() => identifyKernel("latest"), /expected a release like 6\.12\.58.*got "latest"/);
    assert.throws(() => identifyKernel("6.12.1 foo"), /got "6\.12\.1 foo"/);
  });
});

describe("the profile names resolve to exactly what the lab compared", () => {
  test('"6.1": pr_warn probe line, no device type, logs iommu removal, reopens during removal, no cdev', () => {
    const p = PROFILES["6.1"];
    assert.deepEqual(p.probeFailed("vfio-pci", "0000:01:00.0", -16), { text: "vfio-pci: probe of 0000:01:00.0 failed with error -16", onDevice: false, level: 4 });
    assert.equal(p.enumLine(0x8086, 0x10ca, 0, 0x020000, true), "[8086:10ca] type 00 class 0x020000");
    assert.equal(p.logsIommuRemove, true);
    assert.equal(p.numvfsShowTakesLock, true);
    assert.equal(p.deviceInfoSize, 20);
    assert.equal(p.unregisterHidesDevice, false);
    assert.deepEqual(vfioOptions(p.config), { IOMMUFD: false, VFIO_DEVICE_CDEV: false });
    assert.equal(p.cdevToken, "none");
    assert.equal(p.behaviour.denylistDsaIax, true, "Debian's 6.1.y is past 6.1.91");
    assert.equal(p.behaviour.tokenBeforeContainer, true);
    assert.equal(p.behaviour.igbSriovAfterReinit, false);
  });
  test('"6.12": dev_err probe line, "PCIe Endpoint", silent iommu removal, hides during removal, no cdev', () => {
    const p = PROFILES["6.12"];
    assert.deepEqual(p.probeFailed("vfio-pci", "0000:01:00.0", -16), { text: "vfio-pci 0000:01:00.0: probe with driver vfio-pci failed with error -16", onDevice: true, level: 3 });
    assert.equal(p.enumLine(0x8086, 0x10ca, 0, 0x020000, true), "[8086:10ca] type 00 class 0x020000 PCIe Endpoint");
    assert.equal(p.enumLine(0x8086, 0x10ca, 0, 0x020000, false), "[8086:10ca] type 00 class 0x020000 conventional PCI endpoint");
    assert.equal(p.logsIommuRemove, false);
    assert.equal(p.numvfsShowTakesLock, true);
    assert.equal(p.deviceInfoSize, 20);
    assert.equal(p.unregisterHidesDevice, true);
    assert.deepEqual(vfioOptions(p.config), { IOMMUFD: false, VFIO_DEVICE_CDEV: false });
    assert.equal(p.cdevToken, "none");
    assert.equal(p.behaviour.denylistDsaIax, true);
    assert.equal(p.behaviour.igbSriovAfterReinit, true);
  });
  test("the Debian names of the same kernels resolve to the same behaviour", () => {
    assert.deepEqual(profileOf("6.1.0-56-amd64").behaviour, PROFILES["6.1"].behaviour);
    assert.deepEqual(profileOf("6.12.117+deb13-amd64").behaviour, PROFILES["6.12"].behaviour);
    assert.deepEqual(profileOf("6.12.117").behaviour, PROFILES["6.12"].behaviour);
  });
});

describe("the cdev token rows of issue 10 (with CONFIG_VFIO_DEVICE_CDEV=y)", () => {
  const rows: [string, string][] = [
    ["6.6.0", "bypass"],
    ["6.8.12", "bypass"],
    ["6.12.58", "bypass"],
    ["6.12.117", "bypass"],
    ["6.15.9", "bypass"],
    ["6.15.10", "e2big"],
    ["6.16.0", "bypass"],
    ["6.16.1", "e2big"],
    ["6.17.0", "e2big"],
    ["6.17.13", "e2big"],
    ["6.18.2", "e2big"],
    ["6.18.3", "checked"],
    ["6.19.0", "checked"],
    ["7.0.1", "checked"],
    ["7.3.4", "checked"],
  ];
  for (const [v, rule] of rows) {
    test(`${v}: ${rule}`, () => assert.equal(profileOf(v, { VFIO_DEVICE_CDEV: true }).cdevToken, rule));
  }
  test("below 6.6 there is no cdev to configure; below 6.2 no iommufd", () => {
    assert.throws(() => profileOf("6.5.13", { VFIO_DEVICE_CDEV: true }), /VFIO_DEVICE_CDEV: expected false on 6\.5\.13/);
    assert.throws(() => profileOf("6.1.192", { IOMMUFD: true }), /IOMMUFD: expected false on 6\.1\.192/);
    assert.throws(() => profileOf("6.17.1", { VFIO_DEVICE_CDEV: true, IOMMUFD: false }), /depends on IOMMUFD/);
    assert.equal(profileOf("5.15.0-91-generic").cdevToken, "none");
  });
  test("defaults: a plain upstream release is built as the lab builds it (cdev where it exists); Debian's without", () => {
    assert.deepEqual(vfioOptions(profileOf("6.17.1").config), { IOMMUFD: true, VFIO_DEVICE_CDEV: true });
    assert.deepEqual(vfioOptions(profileOf("6.4.2").config), { IOMMUFD: true, VFIO_DEVICE_CDEV: false });
    assert.deepEqual(vfioOptions(profileOf("7.3.4+deb13-amd64").config), { IOMMUFD: false, VFIO_DEVICE_CDEV: false });
    assert.deepEqual(vfioOptions(profileOf("6.17.1", { VFIO_DEVICE_CDEV: false }).config), { IOMMUFD: true, VFIO_DEVICE_CDEV: false });
    assert.deepEqual(vfioOptions(profileOf("6.17.1", { IOMMUFD: false }).config), { IOMMUFD: false, VFIO_DEVICE_CDEV: false });
    assert.deepEqual(vfioOptions(profileOf("7.3.4+deb13-amd64", { VFIO_DEVICE_CDEV: true }).config), { IOMMUFD: true, VFIO_DEVICE_CDEV: true });
  });
});

describe("--profile and host files take any version", () => {
  test("--profile accepts versions, keeps the names, and refuses what is not a version", () => {
    for (const v of ["6.1", "6.12", "6.12.58", "7.3.4", "5.15.0-91-generic", "6.8.0-51-generic", "6.1.0-56-amd64", "6.12.117+deb13-amd64"]) {
      const p = parseGlobal(["--sim", "--profile", v, "list"]);
      assert.equal(p.error, undefined, v);
      assert.equal(p.opts.profile, v);
    }
    assert.match(parseGlobal(["--profile=latest", "list"]).error!, /--profile: expected a kernel version .* got "latest"/);
    assert.match(parseGlobal(["--profile", "6.1.0-57-amd64", "list"]).error!, /got "6\.1\.0-57-amd64"/);
  });
  test("a host file's profile and kernel: { version, config } boot that kernel", async () => {
    const base = "devices:\n  - bdf: \"0000:01:00.0\"\n    vendor: 0x8086\n    device: 0x10c9\n";
    const a = await bootKernel(parseHost(`profile: "6.16.3"\n${base}`));
    assert.equal(a.profile.version, "6.16.3");
    assert.equal(a.profile.cdevToken, "e2big");
    const b = await bootKernel(parseHost(`kernel:\n  version: "6.12.117+deb13-amd64"\n  config: { VFIO_DEVICE_CDEV: true }\n${base}`));
    assert.deepEqual(vfioOptions(b.profile.config), { IOMMUFD: true, VFIO_DEVICE_CDEV: true });
    assert.equal(b.profile.cdevToken, "bypass");
    const c = await bootKernel(parseHost(`kernel:\n  config: { CONFIG_IOMMUFD: true }\n${base}`), { profile: "6.17.1" });
    assert.equal(c.profile.version, "6.17.1", "--profile wins over the file; its config still applies");
  });
  test("bad kernel fields name the field, what was expected and what was found", () => {
    const base = "devices: []\n";
    assert.throws(() => parseHost(`profile: "latest"\n${base}`, "h.yaml"), /h\.yaml: profile: expected a kernel version/);
    assert.doesNotThrow(() => parseHost(`kernel: { version: "6.12.58", config: { VFIO_DEVICE_CDEV: true } }\n${base}`, "h.yaml"));
    assert.throws(() => parseHost(`kernel: { version: "6.4.1", config: { VFIO_DEVICE_CDEV: true } }\n${base}`, "h.yaml"), /the vfio cdev arrived in 6\.6/);
    assert.throws(() => parseHost(`kernel: { config: { NOIOMMU: true } }\n${base}`, "h.yaml"), /kernel\.config\.NOIOMMU: expected one of IOMMUFD, VFIO_DEVICE_CDEV/);
    assert.throws(() => parseHost(`profile: "6.12"\nkernel: { version: "6.17.1" }\n${base}`, "h.yaml"), /kernel\.version: expected one kernel version/);
  });
});

describe("the table's effects, seen through the model on both sides of each boundary", () => {
  const flagOn = (v: string, f: BehaviourFlag) => profileOf(v).behaviour[f];

  test("tokenBeforeContainer: GET_DEVICE_FD('<PF> vf_token=X') without a container sets the token on 5.19, not on 5.18", async () => {
    assert.equal(flagOn("5.18.19", "tokenBeforeContainer"), false);
    for (const [v, changes] of [["5.18.19", false], ["5.19.0", true]] as const) {
      const { k, sh } = await boot(v);
      const before = tokenOf(k);
      const o = await openDevice(sh, PF, `${PF} vf_token=${U4}`, { setContainer: false });
      assert.equal(o.device, "EINVAL", v);
      assert.equal(tokenOf(k) === U4, changes, v);
      if (!changes) assert.equal(tokenOf(k), before);
    }
  });

  test("probeFailedDevErr: the probe-failed line on 6.8.12 and 6.9.0 (a denylisted QAT refused by vfio-pci)", async () => {
    for (const [v, line, level] of [
      ["6.8.12", `vfio-pci: probe of ${QAT} failed with error -22`, 4],
      ["6.9.0", `vfio-pci ${QAT}: probe with driver vfio-pci failed with error -22`, 3],
    ] as const) {
      const { k, sh } = await boot(v);
      await w(sh, `${dev(QAT)}/driver_override`, "vfio-pci");
      const from = k.log.nextSeq;
      assert.equal(await w(sh, "/sys/bus/pci/drivers/vfio-pci/bind", QAT), "EINVAL", v);
      const rec = k.log.since(from).find((x) => x.text.includes("failed with error"))!;
      assert.equal(rec.text, line, v);
      assert.equal(rec.level, level, v);
    }
  });

  test("pciEnumDeviceType: VF enumeration lines on 6.7.12 and 6.8.0", async () => {
    for (const [v, suffix] of [["6.7.12", ""], ["6.8.0", " PCIe Endpoint"]] as const) {
      const { k, sh } = await boot(v);
      const [, lines] = await run(k, () => w(sh, `${dev(PF)}/sriov_numvfs`, "1"));
      assert.ok(lines.includes(`pci 0000:04:10.0: [8086:10ed] type 00 class 0x020000${suffix}`), `${v}: ${lines.join(" | ")}`);
    }
  });

  test("iommuRemoveSilent: VF removal logs 'Removing from iommu group' on 6.4.16, not on 6.5.0", async () => {
    for (const [v, logs] of [["6.4.16", true], ["6.5.0", false]] as const) {
      const { k, sh } = await bootWithVfs(v, 1);
      const [, lines] = await run(k, () => w(sh, `${dev(PF)}/sriov_numvfs`, "0"));
      assert.equal(lines.some((l) => /Removing from iommu group/.test(l)), logs, v);
    }
  });

  test("denylistDsaIax: Intel DSA (8086:0b25) is refused from 6.10.0 and from the stable releases of 2024-05-17 (6.1.91, 6.6.31, 6.8.10, 6.9.1), probes vfio-pci before them", async () => {
    for (const [v, refused] of [["6.9.0", false], ["6.9.1", true], ["6.10.0", true], ["6.1.90", false], ["6.1.91", true], ["6.6.30", false], ["6.6.31", true], ["6.8.9", false], ["6.8.10", true]] as const) {
      const k = await bootKernel(parseHost('devices:\n  - { bdf: "0000:6a:01.0", vendor: 0x8086, device: 0x0b25, class: 0x088000, driver: none }\n'), { profile: v });
      const sh = k.spawn("sh");
      await w(sh, `${dev("0000:6a:01.0")}/driver_override`, "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, "/sys/bus/pci/drivers_probe", "0000:6a:01.0"));
      assert.equal(typeof rc, "number");
      assert.equal(lines.some((l) => l.includes("exists in vfio-pci device denylist")), refused, v);
    }
  });

  test("igbSriovAfterReinit: igb's 'N VFs allocated' before the VFs on 6.2.0, after them on 6.1.192", async () => {
    for (const [v, first] of [["6.1.192", false], ["6.2.0", true]] as const) {
      const k = await bootKernel(undefined, { profile: v });
      const sh = k.spawn("sh");
      const [, lines] = await run(k, () => w(sh, "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", "1"));
      const alloc = lines.findIndex((l) => l.endsWith("1 VFs allocated"));
      const vf = lines.findIndex((l) => l.startsWith("pci 0000:01:10.0"));
      assert.ok(alloc >= 0 && vf >= 0, lines.join(" | "));
      assert.equal(alloc < vf, first, v);
    }
  });

  test("unregisterHidesDevice: a VF whose removal waits for its holder reopens on 6.5.13, ENODEV on 6.6.0", async () => {
    for (const [v, reopens] of [["6.5.13", true], ["6.6.0", false]] as const) {
      const { k, sh } = await bootWithVfs(v, 1);
      const pfo = await openDevice(sh, PF, `${PF} vf_token=${U1}`);
      await sh.close(pfo.device as number);
      const qemu = k.spawn("qemu");
      const vf = await openDevice(qemu, "0000:04:10.0", `0000:04:10.0 vf_token=${U1}`);
      assert.equal(typeof vf.device, "number");
      const pending = w(sh, `${dev(PF)}/sriov_numvfs`, "0");
      await new Promise((r) => setTimeout(r, 5));
      const again = await run(k, () => qemu.ioctl(vf.group, 0x3b6a, Buffer.from(`0000:04:10.0 vf_token=${U1}\0`, "latin1")));
      assert.equal(typeof again[0] === "number", reopens, `${v}: ${again[0]}`);
      await qemu.exit();
      assert.equal(await pending, 1);
    }
  });
});
