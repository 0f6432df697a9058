/**
 * kernel-spec §4: SR-IOV through sysfs (drivers/pci/iov.c), vfio-pci's sriov_configure,
 * pci-pf-stub and the VF routing-ID arithmetic. One test per table row; each asserts the errno
 * and the exact log text (or that nothing was logged), on both profiles.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { virtfnRid, formatBdf } from "../src/kernel/pci/bdf.js";
import {
  HIGH_PF,
  IGD_PF,
  NARROW_PF,
  NATIVE_PF,
  PF,
  PLAIN,
  PROFILES,
  PartialPfDriver,
  STUB_PF,
  VF0,
  VF1,
  boot,
  bootWithVfs,
  dev,
  driverOf,
  drv,
  probeFailedLine,
  r,
  run,
  w,
  withoutEnumeration,
} from "../testlib/spec/index.js";

const NUMVFS = `${dev(PF)}/sriov_numvfs`;

for (const profile of PROFILES) {
  describe(`§4.1 SR-IOV attributes [${profile}]`, () => {
    test("a PF shows sriov_totalvfs, numvfs, offset, stride, vf_device and drivers_autoprobe in their kernel formats", async () => {
      const { sh } = await boot(profile);
      assert.equal(await r(sh, `${dev(PF)}/sriov_totalvfs`), "8\n");
      assert.equal(await r(sh, NUMVFS), "0\n");
      assert.equal(await r(sh, `${dev(PF)}/sriov_offset`), "128\n");
      assert.equal(await r(sh, `${dev(PF)}/sriov_stride`), "2\n");
      assert.equal(await r(sh, `${dev(PF)}/sriov_vf_device`), "10ed\n");
      assert.equal(await r(sh, `${dev(PF)}/sriov_drivers_autoprobe`), "1\n");
    });

    test("the SR-IOV attributes have the kernel's modes (0444, 0644 for sriov_numvfs and drivers_autoprobe, as the lab reads them)", async () => {
      const { sh } = await boot(profile);
      const mode = async (f: string) => (await sh.stat(`${dev(PF)}/${f}`)).mode;
      assert.equal(await mode("sriov_totalvfs"), 0o444);
      assert.equal(await mode("sriov_numvfs"), 0o644);
      assert.equal(await mode("sriov_offset"), 0o444);
      assert.equal(await mode("sriov_stride"), 0o444);
      assert.equal(await mode("sriov_vf_device"), 0o444);
      assert.equal(await mode("sriov_drivers_autoprobe"), 0o644);
    });

    test("a device without SR-IOV has no sriov_* files (ENOENT)", async () => {
      const { sh } = await boot(profile);
      for (const f of ["sriov_numvfs", "sriov_totalvfs", "sriov_offset", "sriov_stride", "sriov_vf_device", "sriov_drivers_autoprobe"]) {
        assert.equal(await r(sh, `${dev(PLAIN)}/${f}`), "ENOENT", f);
      }
    });

    test("a VF has a physfn link and no sriov_* files; the PF has one virtfnN link per VF", async () => {
      const { sh } = await bootWithVfs(profile, 2);
      assert.match(await sh.readlink(`${dev(VF0)}/physfn`), /\/0000:04:00\.0$/);
      assert.equal(await r(sh, `${dev(VF0)}/sriov_numvfs`), "ENOENT");
      assert.match(await sh.readlink(`${dev(PF)}/virtfn0`), /\/0000:04:10\.0$/);
      assert.match(await sh.readlink(`${dev(PF)}/virtfn1`), /\/0000:04:10\.2$/);
      assert.equal(await attemptLink(sh, `${dev(PF)}/virtfn2`), "ENOENT");
      assert.equal(await r(sh, NUMVFS), "2\n");
    });
  });

  describe(`§4.2 sriov_numvfs write [${profile}]`, () => {
    // kstrtou16(buf, 0): base auto-detection, one trailing "\n"; 6.x returns EINVAL for every parse error
    const parseRows: [string, string | number, string][] = [
      ["010", 3, "8\n"], // octal 010 = 8 = TotalVFs
      ["2\n", 2, "2\n"],
      ["+2", 2, "2\n"],
      ["0x10", "ERANGE", "0\n"], // hex 16 > TotalVFs 8: parsed as 16, so ERANGE not EINVAL
      ["\n", "EINVAL", "0\n"],
      ["-1", "EINVAL", "0\n"],
      ["\0", "EINVAL", "0\n"], // the empty string reaches the store only as "\0"
      ["abc", "EINVAL", "0\n"],
      ["2 ", "EINVAL", "0\n"],
      ["2\n\n", "EINVAL", "0\n"],
      ["65535", "ERANGE", "0\n"],
      ["65536", "EINVAL", "0\n"], // > u16: kstrtou16 fails → EINVAL since ≈5.15
      ["99999999999999999999999", "EINVAL", "0\n"],
      ["9", "ERANGE", "0\n"], // > TotalVFs, no log
    ];
    for (const [input, want, after] of parseRows) {
      test(`writing ${JSON.stringify(input)} gives ${typeof want === "number" ? "success" : want} and logs nothing but VF creation`, async () => {
        const { k, sh } = await boot(profile);
        const [rc, lines] = await run(k, () => w(sh, NUMVFS, input));
        assert.equal(rc, want);
        if (typeof want === "string") assert.deepEqual(lines, []);
        else assert.deepEqual(withoutEnumeration(lines).filter((l) => !l.includes("Captured")), []);
        assert.equal(await r(sh, NUMVFS), after);
      });
    }

    test('"0x10" is read as hex 16 (a PF with 200 VFs enables 16)', async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, `${dev(NARROW_PF)}/sriov_numvfs`, "0x10"), 4);
      assert.equal(await r(sh, `${dev(NARROW_PF)}/sriov_numvfs`), "16\n");
    });

    test("an empty write makes no store call and returns 0", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, NUMVFS, ""));
      assert.equal(rc, 0);
      assert.deepEqual(lines, []);
    });

    test("writing the current count is a no-op that succeeds and does not call the driver", async () => {
      const { k, sh } = await bootWithVfs(profile, 2);
      const [rc, lines] = await run(k, () => w(sh, NUMVFS, "2"));
      assert.equal(rc, 1);
      assert.deepEqual(lines, []);
      assert.equal(await r(sh, NUMVFS), "2\n");
    });

    test("writing 0 to a PF with no driver and no VFs succeeds without a log line", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, `${dev(HIGH_PF)}/sriov_numvfs`, "0"));
      assert.equal(rc, 1);
      assert.deepEqual(lines, []);
    });

    test("a PF with no driver: ENOENT, 'no driver bound to device; cannot configure SR-IOV' on the pci prefix", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, `${dev(HIGH_PF)}/sriov_numvfs`, "1"));
      assert.equal(rc, "ENOENT");
      assert.deepEqual(lines, [`pci ${HIGH_PF}: no driver bound to device; cannot configure SR-IOV`]);
      assert.equal(k.log.records.at(-1)!.level, 6);
    });

    test("a PF driver without sriov_configure: ENOENT, 'driver does not support SR-IOV configuration via sysfs'", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, `${dev(IGD_PF)}/sriov_numvfs`, "1"));
      assert.equal(rc, "ENOENT");
      assert.deepEqual(lines, [`i915 ${IGD_PF}: driver does not support SR-IOV configuration via sysfs`]);
      assert.equal(k.log.records.at(-1)!.level, 6);
    });

    test("vfio-pci with enable_sriov=N: ENOENT and no log line at all", async () => {
      const { k, sh } = await boot(profile, { enableSriov: false });
      const [rc, lines] = await run(k, () => w(sh, NUMVFS, "2"));
      assert.equal(rc, "ENOENT");
      assert.deepEqual(lines, []);
      assert.equal(await w(sh, NUMVFS, "0"), 1, "0 with 0 VFs never reaches the driver");
    });

    test("enable_sriov switched off while VFs exist: writing 0 gives ENOENT; unbinding the PF still removes the VFs", async () => {
      const { k, sh } = await bootWithVfs(profile, 2);
      assert.equal(await w(sh, "/sys/module/vfio_pci/parameters/enable_sriov", "N"), 1);
      const [rc, lines] = await run(k, () => w(sh, NUMVFS, "0"));
      assert.equal(rc, "ENOENT");
      assert.deepEqual(lines, []);
      assert.equal(await r(sh, NUMVFS), "2\n");
      assert.equal(await w(sh, `${drv("vfio-pci")}/unbind`, PF), PF.length);
      assert.equal(await r(sh, NUMVFS), "0\n");
      assert.equal(await r(sh, `${dev(VF0)}/vendor`), "ENOENT");
    });

    test("nonzero to a different nonzero: EBUSY with 'N VFs already enabled. Disable before enabling M VFs' (pci_warn)", async () => {
      const { k, sh } = await bootWithVfs(profile, 2);
      const [rc, lines] = await run(k, () => w(sh, NUMVFS, "3"));
      assert.equal(rc, "EBUSY");
      assert.deepEqual(lines, [`vfio-pci ${PF}: 2 VFs already enabled. Disable before enabling 3 VFs`]);
      assert.equal(k.log.records.at(-1)!.level, 4);
    });

    test("a driver that enables fewer VFs than asked: success with '%d VFs requested; only %d enabled'", async () => {
      const { k, sh } = await boot(profile);
      k.drivers.registerDriver(new PartialPfDriver(2));
      assert.equal(await w(sh, `${dev(HIGH_PF)}/driver_override`, "partial-pf"), 10);
      assert.equal(await w(sh, `${drv("partial-pf")}/bind`, HIGH_PF), HIGH_PF.length);
      const [rc, lines] = await run(k, () => w(sh, `${dev(HIGH_PF)}/sriov_numvfs`, "3"));
      assert.equal(rc, 1);
      assert.deepEqual(withoutEnumeration(lines), [`partial-pf ${HIGH_PF}: 3 VFs requested; only 2 enabled`]);
      assert.equal(k.log.records.at(-1)!.level, 4);
      assert.equal(await r(sh, `${dev(HIGH_PF)}/sriov_numvfs`), "2\n");
    });

    test("VFs beyond the bridge's bus range: ENOMEM with 'can't enable N VFs (bus BB out of range of [bus SS-EE])'", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, `${dev(NARROW_PF)}/sriov_numvfs`, "193"));
      assert.equal(rc, "ENOMEM");
      assert.deepEqual(lines, [`vfio-pci ${NARROW_PF}: can't enable 193 VFs (bus 42 out of range of [bus 40-41])`]);
      assert.equal(k.log.records.at(-1)!.level, 3);
      assert.equal(await r(sh, `${dev(NARROW_PF)}/sriov_numvfs`), "0\n");
      // vfio-pci took the PF off its sriov_pfs list again: a later enable works
      assert.equal(await w(sh, `${dev(NARROW_PF)}/sriov_numvfs`, "1"), 1);
    });
  });

  describe(`§4.2/§6.3 sriov_drivers_autoprobe [${profile}]`, () => {
    const rows: [string, string | number, string][] = [
      ["0", 1, "0\n"], ["1", 1, "1\n"], ["n", 1, "0\n"], ["Y", 1, "1\n"], ["N\n", 2, "0\n"], ["y\n", 2, "1\n"],
      ["on", 2, "1\n"], ["off", 3, "0\n"], ["ON", 2, "1\n"], ["oFf", 3, "0\n"], ["yes", 3, "1\n"], ["no", 2, "0\n"],
      ["o", "EINVAL", "1\n"], ["x", "EINVAL", "1\n"], ["2", "EINVAL", "1\n"], ["\n", "EINVAL", "1\n"], [" 1", "EINVAL", "1\n"],
    ];
    for (const [input, want, after] of rows) {
      test(`kstrtobool: writing ${JSON.stringify(input)} gives ${typeof want === "number" ? "success" : want}`, async () => {
        const { k, sh } = await boot(profile);
        const [rc, lines] = await run(k, () => w(sh, `${dev(PF)}/sriov_drivers_autoprobe`, input));
        assert.equal(rc, want);
        assert.deepEqual(lines, []);
        assert.equal(await r(sh, `${dev(PF)}/sriov_drivers_autoprobe`), after);
      });
    }

    test("autoprobe 0 on a PF with a native driver: new VFs stay unbound", async () => {
      const { sh } = await boot(profile);
      await w(sh, `${dev(NATIVE_PF)}/sriov_drivers_autoprobe`, "0");
      assert.equal(await w(sh, `${dev(NATIVE_PF)}/sriov_numvfs`, "1"), 1);
      assert.equal(await driverOf(sh, "0000:07:10.0"), null);
    });

    test("autoprobe 1 on a PF with a native driver: new VFs probe their native driver", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, `${dev(NATIVE_PF)}/sriov_numvfs`, "1"), 1);
      assert.equal(await driverOf(sh, "0000:07:10.0"), "ixgbevf");
    });

    test("autoprobe 0: bind without an override is ENODEV, drivers_probe is a quiet no-op, with an override both work", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, `${dev(NATIVE_PF)}/sriov_drivers_autoprobe`, "0");
      await w(sh, `${dev(NATIVE_PF)}/sriov_numvfs`, "2");
      const vf = "0000:07:10.0";
      const [b, bl] = await run(k, () => w(sh, `${drv("ixgbevf")}/bind`, vf));
      assert.equal(b, "ENODEV");
      assert.deepEqual(bl, [], "pci_device_probe's can-probe refusal is quiet (ENODEV)");
      assert.equal(await w(sh, "/sys/bus/pci/drivers_probe", vf), vf.length);
      assert.equal(await driverOf(sh, vf), null);
      await w(sh, `${dev(vf)}/driver_override`, "ixgbevf");
      assert.equal(await w(sh, "/sys/bus/pci/drivers_probe", vf), vf.length);
      assert.equal(await driverOf(sh, vf), "ixgbevf");
      const vf2 = "0000:07:10.2";
      await w(sh, `${dev(vf2)}/driver_override`, "ixgbevf");
      assert.equal(await w(sh, `${drv("ixgbevf")}/bind`, vf2), vf2.length);
    });

    test("autoprobe 0 on a vfio-pci PF: captured VFs still bind to vfio-pci (the override bypasses the check)", async () => {
      const { sh } = await boot(profile, { pfAutoprobe: false });
      assert.equal(await r(sh, `${dev(PF)}/sriov_drivers_autoprobe`), "0\n");
      assert.equal(await w(sh, NUMVFS, "1"), 1);
      assert.equal(await driverOf(sh, VF0), "vfio-pci");
    });
  });

  describe(`§4.5 vfio-pci sriov_configure [${profile}]`, () => {
    test("enabling VFs on a vfio-pci PF captures each VF (log on the PF) and binds it to vfio-pci", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, NUMVFS, "2"));
      assert.equal(rc, 1);
      assert.deepEqual(withoutEnumeration(lines), [`vfio-pci ${PF}: Captured SR-IOV VF ${VF0} driver_override`, `vfio-pci ${PF}: Captured SR-IOV VF ${VF1} driver_override`]);
      assert.equal(await r(sh, `${dev(VF0)}/driver_override`), "vfio-pci\n");
      assert.equal(await driverOf(sh, VF0), "vfio-pci");
      assert.equal(await driverOf(sh, VF1), "vfio-pci");
    });

    test("disabling removes every VF (numvfs 0, links gone) and logs nothing from vfio-pci", async () => {
      const { k, sh } = await bootWithVfs(profile, 2);
      const [rc, lines] = await run(k, () => w(sh, NUMVFS, "0"));
      assert.equal(rc, 1);
      assert.deepEqual(withoutEnumeration(lines), []);
      assert.equal(await r(sh, NUMVFS), "0\n");
      assert.equal(await r(sh, `${dev(VF0)}/vendor`), "ENOENT");
    });

    // §4.3 says sriov_disable removes VFs highest index first; the lab's 6.1 logged VF0's removal
    // before VF1's (6.1-a-vfio-pci.txt, 6.1-e-blocking-remove.txt), so the model removes in index order.
    test("6.1 logs 'Removing from iommu group N' for each removed VF, in index order (VF0 first); 6.12 does not", async () => {
      const { k, sh } = await bootWithVfs(profile, 2);
      const g0 = Number((await sh.readlink(`${dev(VF0)}/iommu_group`)).split("/").pop());
      const g1 = Number((await sh.readlink(`${dev(VF1)}/iommu_group`)).split("/").pop());
      const [, lines] = await run(k, () => w(sh, NUMVFS, "0"));
      if (profile === "6.1") assert.deepEqual(lines, [`pci ${VF0}: Removing from iommu group ${g0}`, `pci ${VF1}: Removing from iommu group ${g1}`]);
      else assert.deepEqual(lines, []);
    });

    // §4.3 leaves the enumeration line's wording and level open; the lab read it at level 6 (info)
    // on both kernels, 6.12 with " PCIe Endpoint" appended.
    test("enabling VFs logs, per VF, the enumeration line at info ('… PCIe Endpoint' on 6.12 only), 'Adding to iommu group N', then 'Captured …'", async () => {
      const { k, sh } = await boot(profile);
      const from = k.log.nextSeq;
      assert.equal(await w(sh, NUMVFS, "2"), 1);
      const recs = k.log.since(from);
      const g0 = Number((await sh.readlink(`${dev(VF0)}/iommu_group`)).split("/").pop());
      const g1 = Number((await sh.readlink(`${dev(VF1)}/iommu_group`)).split("/").pop());
      const enumLine = (vf: string) => `pci ${vf}: [8086:10ed] type 00 class 0x020000${profile === "6.12" ? " PCIe Endpoint" : ""}`;
      assert.deepEqual(
        recs.map((x) => [x.level, x.text, x.device]),
        [VF0, VF1].flatMap((vf, i) => [
          [6, enumLine(vf), `+pci:${vf}`],
          [6, `pci ${vf}: Adding to iommu group ${i === 0 ? g0 : g1}`, `+pci:${vf}`],
          [6, `vfio-pci ${PF}: Captured SR-IOV VF ${vf} driver_override`, `+pci:${PF}`],
        ]),
      );
    });

    test("unbinding the PF from vfio-pci disables SR-IOV first, bypassing enable_sriov", async () => {
      const { sh } = await bootWithVfs(profile, 2);
      await w(sh, "/sys/module/vfio_pci/parameters/enable_sriov", "0");
      assert.equal(await w(sh, `${dev(PF)}/driver/unbind`, PF), PF.length);
      assert.equal(await r(sh, NUMVFS), "0\n");
      assert.deepEqual((await sh.readdir("/sys/bus/pci/devices")).filter((d) => d.startsWith("0000:04:1")), []);
    });
  });

  describe(`§4.6 pci-pf-stub [${profile}]`, () => {
    test("pci-pf-stub claims its built-in Amazon id at probe with 'claimed by pci-pf-stub'", async () => {
      const { k, sh } = await boot(profile);
      assert.equal(await driverOf(sh, STUB_PF), "pci-pf-stub");
      assert.equal(await w(sh, `${drv("pci-pf-stub")}/unbind`, STUB_PF), STUB_PF.length);
      const [rc, lines] = await run(k, () => w(sh, `${drv("pci-pf-stub")}/bind`, STUB_PF));
      assert.equal(rc, STUB_PF.length);
      assert.deepEqual(lines, [`pci-pf-stub ${STUB_PF}: claimed by pci-pf-stub`]);
    });

    test("pci-pf-stub enables VFs without capturing them (no override, no notifier line)", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "2"));
      assert.equal(rc, 1);
      assert.deepEqual(withoutEnumeration(lines), []);
      assert.equal(await r(sh, `${dev("0000:06:00.1")}/driver_override`), "(null)\n");
      assert.equal(await driverOf(sh, "0000:06:00.1"), null, "no modelled driver matches 1d0f:0054");
      assert.equal(await w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "0"), 1);
      assert.equal(await r(sh, `${dev(STUB_PF)}/sriov_numvfs`), "0\n");
    });

    test("unbinding pci-pf-stub leaves the VFs: 'driver left SR-IOV enabled after remove'", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "2");
      const [rc, lines] = await run(k, () => w(sh, `${drv("pci-pf-stub")}/unbind`, STUB_PF));
      assert.equal(rc, STUB_PF.length);
      assert.deepEqual(lines, [`pci-pf-stub ${STUB_PF}: driver left SR-IOV enabled after remove`]);
      assert.equal(k.log.records.at(-1)!.level, 4);
      assert.equal(await r(sh, `${dev(STUB_PF)}/sriov_numvfs`), "2\n");
      assert.equal(await r(sh, `${dev("0000:06:00.2")}/vendor`), "0x1d0f\n");
    });

    test("vfio-pci cannot take a PF with SR-IOV left enabled: EBUSY, 'Cannot bind to PF with SR-IOV enabled' + the probe-failed line", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "1");
      await w(sh, `${drv("pci-pf-stub")}/unbind`, STUB_PF);
      await w(sh, `${dev(STUB_PF)}/driver_override`, "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/bind`, STUB_PF));
      assert.equal(rc, "EBUSY");
      assert.deepEqual(lines, [`vfio-pci ${STUB_PF}: Cannot bind to PF with SR-IOV enabled`, probeFailedLine(profile, "vfio-pci", STUB_PF, -16)]);
      assert.equal(k.log.records.at(-1)!.level, profile === "6.1" ? 4 : 3);
    });

    test("pci_sriov_configure_simple refuses while a VF is marked assigned: EPERM, 'Cannot modify SR-IOV while VFs are assigned'", async () => {
      // PCI_DEV_FLAGS_ASSIGNED is a legacy KVM/Xen flag nothing in vfio sets; the model sets it directly.
      const { k, sh } = await boot(profile);
      await w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "1");
      k.device("0000:06:00.1")!.assigned = true;
      const [rc, lines] = await run(k, () => w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "0"));
      assert.equal(rc, "EPERM");
      assert.deepEqual(lines, [`pci-pf-stub ${STUB_PF}: Cannot modify SR-IOV while VFs are assigned`]);
    });
  });

  describe(`§4.4 VF addressing [${profile}]`, () => {
    test("VF i of 0000:04:00.0 (offset 0x80, stride 2) is at 04:10.0, 04:10.2, 04:10.4 … and the PF's virtfn links say so", async () => {
      const { sh } = await bootWithVfs(profile, 8);
      const want = ["10.0", "10.2", "10.4", "10.6", "11.0", "11.2", "11.4", "11.6"].map((s) => `0000:04:${s}`);
      for (let i = 0; i < 8; i++) assert.match(await sh.readlink(`${dev(PF)}/virtfn${i}`), new RegExp(`/${want[i]!.replace(/\./g, "\\.")}$`));
    });

    test("VFs of 0000:3b:00.0 with offset 0x100 land on bus 3c (3c:00.0, 3c:00.1, 3c:00.2)", async () => {
      const { sh } = await boot(profile);
      await w(sh, `${dev(HIGH_PF)}/driver_override`, "vfio-pci");
      assert.equal(await w(sh, `${drv("vfio-pci")}/bind`, HIGH_PF), HIGH_PF.length);
      assert.equal(await w(sh, `${dev(HIGH_PF)}/sriov_numvfs`, "3"), 1);
      for (const v of ["0000:3c:00.0", "0000:3c:00.1", "0000:3c:00.2"]) assert.equal(await driverOf(sh, v), "vfio-pci", v);
    });

    test("VFs of an i915-style PF at devfn 0x10 (offset 1, stride 1) are 00:02.1, 00:02.2", async () => {
      const { sh } = await boot(profile);
      await w(sh, `${drv("i915")}/unbind`, IGD_PF);
      await w(sh, `${dev(IGD_PF)}/driver_override`, "vfio-pci");
      assert.equal(await w(sh, `${drv("vfio-pci")}/bind`, IGD_PF), IGD_PF.length);
      assert.equal(await w(sh, `${dev(IGD_PF)}/sriov_numvfs`, "2"), 1);
      assert.match(await sh.readlink(`${dev(IGD_PF)}/virtfn0`), /\/0000:00:02\.1$/);
      assert.match(await sh.readlink(`${dev(IGD_PF)}/virtfn1`), /\/0000:00:02\.2$/);
    });

    test("the 65th VF of 0000:40:00.0 (offset 0x80, stride 2) overflows devfn and lands on 0000:41:00.0", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, `${dev(NARROW_PF)}/sriov_numvfs`, "65"), 2);
      assert.match(await sh.readlink(`${dev(NARROW_PF)}/virtfn63`), /\/0000:40:1f\.6$/);
      assert.match(await sh.readlink(`${dev(NARROW_PF)}/virtfn64`), /\/0000:41:00\.0$/);
      assert.equal(await driverOf(sh, "0000:41:00.0"), "vfio-pci");
    });
  });
}

describe("§4.4 routing-ID arithmetic (pure)", () => {
  const rows: [string, number, number, number, number, string][] = [
    ["0000:04:00.0", 0x04, 0x00, 0x80, 2, "0000:04:10.0"],
    ["0000:04:00.0 VF1", 0x04, 0x00, 0x80, 2, "0000:04:10.2"],
    ["0000:04:00.0 VF2", 0x04, 0x00, 0x80, 2, "0000:04:10.4"],
    ["0000:04:00.0 VF63", 0x04, 0x00, 0x80, 2, "0000:04:1f.6"],
    ["0000:3b:00.0", 0x3b, 0x00, 0x100, 1, "0000:3c:00.0"],
    ["0000:3b:00.0 VF2", 0x3b, 0x00, 0x100, 1, "0000:3c:00.2"],
    ["0000:00:02.0", 0x00, 0x10, 1, 1, "0000:00:02.1"],
  ];
  for (const [name, bus, devfn, offset, stride, want] of rows) {
    const i = /VF(\d+)/.exec(name) ? Number(/VF(\d+)/.exec(name)![1]) : 0;
    test(`${name.split(" ")[0]} VF${i} (offset ${offset}, stride ${stride}) is ${want}`, () => {
      const rid = virtfnRid(bus, devfn, offset, stride, i);
      assert.equal(formatBdf(0, rid.bus, rid.devfn), want);
    });
  }
  test("rid_vf(i) = rid_pf + offset + stride·i in 16-bit routing-ID arithmetic", () => {
    for (const [bus, devfn, off, st, i] of [[4, 0, 0x80, 2, 200], [0x3b, 0, 0x100, 1, 127], [0, 0x10, 1, 1, 6], [0x80, 0xf8, 0x7, 3, 90]] as const) {
      const rid = virtfnRid(bus, devfn, off, st, i);
      assert.equal((rid.bus << 8) | rid.devfn, ((bus << 8) | devfn) + off + st * i);
    }
  });
});

async function attemptLink(sh: { readlink(p: string): Promise<string> }, p: string): Promise<string> {
  try {
    return await sh.readlink(p);
  } catch (e) {
    return (e as { code: string }).code;
  }
}
