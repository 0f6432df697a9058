/**
 * kernel-spec §6: driver_override, pci_match_device, bind / unbind / drivers_probe /
 * drivers_autoprobe / new_id / remove_id, probe-failed lines, the vfio-pci denylist, vfio-pci's
 * probe refusals and module parameters. Every row asserts the errno and the exact log text.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseHost } from "../src/kernel/host/host-file.js";
import {
  BRIDGE,
  NATIVE_PF,
  NOIOMMU,
  PF,
  PLAIN,
  PROFILES,
  QAT,
  VF0,
  boot,
  bootWithVfs,
  dev,
  driverOf,
  drv,
  probeFailedLine,
  r,
  run,
  w,
} from "../testlib/spec/index.js";

const OVR = (bdf: string) => `${dev(bdf)}/driver_override`;

for (const profile of PROFILES) {
  describe(`§6.1 driver_override store and read [${profile}]`, () => {
    const rows: [string, string, number | string, string][] = [
      ["an unset override", "", 0, "(null)\n"],
      ["a name with a newline", "vfio-pci\n", 9, "vfio-pci\n"],
      ["a name without a newline", "vfio-pci", 8, "vfio-pci\n"],
      ["text with an inner newline", "a\nb", 3, "a\n"],
      ["text cut at the first NUL", "ixgbevf\0junk", 12, "ixgbevf\n"],
      ["a lone newline (echo > driver_override)", "\n", 1, "(null)\n"],
      ["a lone NUL", "\0", 1, "(null)\n"],
      ["a NUL then text", "\0vfio-pci", 9, "(null)\n"],
      ["4094 bytes (PAGE_SIZE - 2)", "x".repeat(4094), 4094, "x".repeat(4094) + "\n"],
      ["4095 bytes (PAGE_SIZE - 1)", "x".repeat(4095), "EINVAL", "(null)\n"],
      ["4096 bytes", "x".repeat(4096), "EINVAL", "(null)\n"],
      ["4097 bytes (more than kernfs takes in one write)", "x".repeat(4097), "E2BIG", "(null)\n"],
    ];
    for (const [what, input, want, read] of rows) {
      test(`writing ${what} gives ${typeof want === "number" ? `count ${want}` : want} and reads back ${JSON.stringify(read.length > 20 ? read.slice(0, 8) + "…" : read)}`, async () => {
        const { k, sh } = await boot(profile);
        const [rc, lines] = await run(k, () => w(sh, OVR(NATIVE_PF), input));
        assert.equal(rc, want);
        assert.deepEqual(lines, []);
        assert.equal(await r(sh, OVR(NATIVE_PF)), read);
      });
    }

    test("a set override is cleared by a later '\\n' write", async () => {
      const { sh } = await boot(profile);
      await w(sh, OVR(NATIVE_PF), "vfio-pci");
      assert.equal(await w(sh, OVR(NATIVE_PF), "\n"), 1);
      assert.equal(await r(sh, OVR(NATIVE_PF)), "(null)\n");
    });

    test("setting an override neither unbinds nor probes anything by itself", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, OVR(NATIVE_PF), "vfio-pci"));
      assert.equal(rc, 8);
      assert.deepEqual(lines, []);
      assert.equal(await driverOf(sh, NATIVE_PF), "ixgbe");
    });

    test("driver_override has mode 0644", async () => {
      const { sh } = await boot(profile);
      assert.equal((await sh.stat(OVR(PF))).mode, 0o644);
    });
  });

  describe(`§6.1 pci_match_device [${profile}]`, () => {
    test("an override naming another driver stops a matching driver: bind gives ENODEV, no log", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, `${drv("ixgbe")}/unbind`, NATIVE_PF);
      await w(sh, OVR(NATIVE_PF), "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, `${drv("ixgbe")}/bind`, NATIVE_PF));
      assert.equal(rc, "ENODEV");
      assert.deepEqual(lines, []);
    });

    test("vfio-pci's override_only id does not match without an override: bind gives ENODEV", async () => {
      const { sh } = await boot(profile);
      await w(sh, `${drv("ixgbe")}/unbind`, NATIVE_PF);
      assert.equal(await w(sh, `${drv("vfio-pci")}/bind`, NATIVE_PF), "ENODEV");
    });

    test("an override equal to the driver's name matches even with no id: vfio-pci binds an ixgbe PF", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, `${drv("ixgbe")}/unbind`, NATIVE_PF);
      await w(sh, OVR(NATIVE_PF), "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/bind`, NATIVE_PF));
      assert.equal(rc, NATIVE_PF.length);
      assert.deepEqual(lines, [], "a successful vfio-pci bind prints nothing");
      assert.equal(await driverOf(sh, NATIVE_PF), "vfio-pci");
    });

    test("drivers_probe with an override skips earlier-registered drivers whose ids match", async () => {
      const { sh } = await boot(profile);
      await w(sh, `${drv("vfio-pci")}/unbind`, PLAIN);
      assert.equal(await w(sh, `${drv("nvme")}/bind`, PLAIN), PLAIN.length, "nvme's class id matches");
      await w(sh, `${drv("nvme")}/unbind`, PLAIN);
      await w(sh, OVR(PLAIN), "vfio-pci");
      assert.equal(await w(sh, "/sys/bus/pci/drivers_probe", PLAIN), PLAIN.length);
      assert.equal(await driverOf(sh, PLAIN), "vfio-pci");
    });

    test("dynamic ids are checked before the static table (new_id lets vfio-pci bind without an override)", async () => {
      const { sh } = await boot(profile);
      await w(sh, `${drv("ixgbe")}/unbind`, NATIVE_PF);
      assert.equal(await w(sh, `${drv("vfio-pci")}/new_id`, "8086 10fb"), 9);
      assert.equal(await driverOf(sh, NATIVE_PF), "vfio-pci", "new_id runs driver_attach at once");
    });
  });

  describe(`§6.2 bind [${profile}]`, () => {
    test("bind of an unknown device: ENODEV", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/bind`, "0000:ff:1f.7"));
      assert.equal(rc, "ENODEV");
      assert.deepEqual(lines, []);
      assert.equal(await w(sh, `${drv("vfio-pci")}/bind`, "garbage"), "ENODEV");
    });

    test("bind of a device already bound to another (matching) driver: EBUSY (5.13+)", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, `${drv("nvme")}/bind`, PLAIN));
      assert.equal(rc, "EBUSY");
      assert.deepEqual(lines, []);
    });

    test("bind accepts a trailing newline (sysfs_streq) and returns the byte count", async () => {
      const { sh } = await boot(profile);
      await w(sh, `${drv("ixgbe")}/unbind`, NATIVE_PF);
      assert.equal(await w(sh, `${drv("ixgbe")}/bind`, NATIVE_PF + "\n"), 13);
      assert.equal(await driverOf(sh, NATIVE_PF), "ixgbe");
    });

    test("bind returns the probe's errno (EINVAL for a bridge) with only the probe-failed line", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, OVR(BRIDGE), "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/bind`, BRIDGE));
      assert.equal(rc, "EINVAL");
      assert.deepEqual(lines, [probeFailedLine(profile, "vfio-pci", BRIDGE, -22)]);
    });
  });

  describe(`§6.2 unbind [${profile}]`, () => {
    test("unbind of an unknown device, an unbound device, or a device on another driver: ENODEV", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, `${drv("vfio-pci")}/unbind`, "0000:ff:00.0"), "ENODEV");
      assert.equal(await w(sh, `${drv("vfio-pci")}/unbind`, QAT), "ENODEV");
      assert.equal(await w(sh, `${drv("vfio-pci")}/unbind`, NATIVE_PF), "ENODEV");
    });

    test("unbind through the device's driver link releases it and returns the count", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, `${dev(PLAIN)}/driver/unbind`, PLAIN));
      assert.equal(rc, PLAIN.length);
      assert.deepEqual(lines, []);
      assert.equal(await driverOf(sh, PLAIN), null);
    });
  });

  describe(`§6.2 drivers_probe and drivers_autoprobe [${profile}]`, () => {
    test("drivers_probe of an unknown device: ENODEV", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, "/sys/bus/pci/drivers_probe", "0000:ff:00.0"), "ENODEV");
    });

    test("drivers_probe returns the count even when no driver takes the device", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, () => w(sh, "/sys/bus/pci/drivers_probe", BRIDGE));
      assert.equal(rc, BRIDGE.length);
      assert.deepEqual(lines, []);
      assert.equal(await driverOf(sh, BRIDGE), null);
    });

    test("drivers_probe of a bound device does nothing and returns the count", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, "/sys/bus/pci/drivers_probe", NATIVE_PF), NATIVE_PF.length);
      assert.equal(await driverOf(sh, NATIVE_PF), "ixgbe");
    });

    test("drivers_probe tries drivers in registration order: an earlier driver wins over a later dynid", async () => {
      const { sh } = await boot(profile);
      // ixgbe is registered before vfio-pci; give vfio-pci a dynid for the same device
      assert.equal(await w(sh, `${drv("vfio-pci")}/new_id`, "8086 10fb"), 9);
      await w(sh, `${drv("ixgbe")}/unbind`, NATIVE_PF);
      assert.equal(await w(sh, "/sys/bus/pci/drivers_probe", NATIVE_PF), NATIVE_PF.length);
      assert.equal(await driverOf(sh, NATIVE_PF), "ixgbe");
    });

    const auto: [string, string][] = [["0", "0\n"], ["1", "1\n"], ["0abc", "0\n"], ["x", "1\n"], ["\n", "1\n"], ["00", "0\n"]];
    for (const [input, read] of auto) {
      test(`drivers_autoprobe: writing ${JSON.stringify(input)} returns the count and reads ${JSON.stringify(read)}`, async () => {
        const { sh } = await boot(profile);
        assert.equal(await r(sh, "/sys/bus/pci/drivers_autoprobe"), "1\n");
        if (read === "1\n") await w(sh, "/sys/bus/pci/drivers_autoprobe", "0");
        assert.equal(await w(sh, "/sys/bus/pci/drivers_autoprobe", input), input.length);
        assert.equal(await r(sh, "/sys/bus/pci/drivers_autoprobe"), read);
      });
    }

    test("the bus-wide drivers_autoprobe does not stop VF probing (pci_bus_add_device calls device_attach directly)", async () => {
      // kernel-spec §6.2 marks this [U]; the model follows the source reading.
      const { sh } = await boot(profile);
      await w(sh, "/sys/bus/pci/drivers_autoprobe", "0");
      await w(sh, `${dev(NATIVE_PF)}/sriov_numvfs`, "1");
      assert.equal(await driverOf(sh, "0000:07:10.0"), "ixgbevf");
    });
  });

  describe(`§6.2 new_id / remove_id [${profile}]`, () => {
    test("new_id with fewer than two fields: EINVAL", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, `${drv("vfio-pci")}/new_id`, "8086"), "EINVAL");
      assert.equal(await w(sh, `${drv("vfio-pci")}/new_id`, "zz 10fb"), "EINVAL");
    });

    test("new_id of an id the driver's static table already matches: EEXIST", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, `${drv("ixgbevf")}/new_id`, "8086 10ed"), "EEXIST");
    });

    test("new_id of an id already added as a dynid: EEXIST (pci_match_device checks dynids too)", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, `${drv("vfio-pci")}/new_id`, "144d a808"), 9);
      assert.equal(await w(sh, `${drv("vfio-pci")}/new_id`, "144d a808"), "EEXIST");
    });

    test("new_id with all seven fields skips the EEXIST check but driver_data must match a table entry", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, `${drv("ixgbevf")}/new_id`, "8086 10ed ffffffff ffffffff 0 0 0"), 33);
      assert.equal(await w(sh, `${drv("ixgbevf")}/new_id`, "8086 1234 ffffffff ffffffff 0 0 5"), "EINVAL");
    });

    test("new_id binds every unbound matching device at once (vfio-pci's override_only entry does not make it EEXIST)", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, `${drv("vfio-pci")}/unbind`, PLAIN);
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/new_id`, "144d a808\n"));
      assert.equal(rc, 10);
      assert.deepEqual(lines, []);
      assert.equal(await driverOf(sh, PLAIN), "vfio-pci");
    });

    test("new_id respects overrides: a device whose override names another driver is not taken", async () => {
      const { sh } = await boot(profile);
      await w(sh, `${drv("vfio-pci")}/unbind`, PLAIN);
      await w(sh, OVR(PLAIN), "nvme");
      await w(sh, `${drv("vfio-pci")}/new_id`, "144d a808");
      assert.equal(await driverOf(sh, PLAIN), null);
    });

    test("remove_id removes a matching dynid (count), a second time ENODEV; bound devices stay bound", async () => {
      const { sh } = await boot(profile);
      await w(sh, `${drv("vfio-pci")}/unbind`, PLAIN);
      await w(sh, `${drv("vfio-pci")}/new_id`, "144d a808");
      assert.equal(await w(sh, `${drv("vfio-pci")}/remove_id`, "144d a808"), 9);
      assert.equal(await w(sh, `${drv("vfio-pci")}/remove_id`, "144d a808"), "ENODEV");
      assert.equal(await driverOf(sh, PLAIN), "vfio-pci");
      assert.equal(await w(sh, `${drv("vfio-pci")}/remove_id`, "144d"), "EINVAL");
    });

    test("remove_id with omitted subvendor/subdevice matches a dynid added with specific ones", async () => {
      const { sh } = await boot(profile);
      assert.equal(await w(sh, `${drv("vfio-pci")}/new_id`, "144d a808 1234 5678"), 19);
      assert.equal(await w(sh, `${drv("vfio-pci")}/remove_id`, "144d a808"), 9);
      assert.equal(await w(sh, `${drv("vfio-pci")}/remove_id`, "144d a808"), "ENODEV");
    });
  });

  describe(`§6.4 vfio-pci module parameters [${profile}]`, () => {
    test("/sys/module/vfio_pci/parameters shows the runtime-visible parameters, not ids", async () => {
      const { sh } = await boot(profile);
      const names = (await sh.readdir("/sys/module/vfio_pci/parameters")).sort();
      assert.deepEqual(names, ["disable_denylist", "disable_idle_d3", "disable_vga", "enable_sriov", "nointxmask"]);
    });

    test("enable_sriov reads N by default, is 0644 and takes kstrtobool values", async () => {
      const { sh } = await boot(profile, { enableSriov: false });
      const P = "/sys/module/vfio_pci/parameters/enable_sriov";
      assert.equal(await r(sh, P), "N\n");
      assert.equal((await sh.stat(P)).mode, 0o644);
      assert.equal(await w(sh, P, "1"), 1);
      assert.equal(await r(sh, P), "Y\n");
      assert.equal(await w(sh, P, "off"), 3);
      assert.equal(await r(sh, P), "N\n");
      assert.equal(await w(sh, P, "x"), "EINVAL");
    });

    test("ids= is not modelled: a host file may not set it (gap: no 'vfio_pci: add [vvvv:dddd[…]] class …' lines)", () => {
      // kernel-spec §6.4: ids= adds dynamic ids at module init and logs per entry. The model has no
      // module-init ids; host files give vfio-pci devices with driver/driver_override instead.
      assert.throws(() => parseHost("modules:\n  vfio_pci:\n    ids: true\ndevices: []\n", "h.yaml"), /modules\.vfio_pci\.ids: expected one of/);
    });

    test("noiommu is not modelled: /sys/module/vfio/parameters has no enable_unsafe_noiommu_mode (neither Debian kernel builds CONFIG_VFIO_NOIOMMU)", async () => {
      const { sh } = await boot(profile);
      assert.deepEqual(await sh.readdir("/sys/module/vfio/parameters"), []);
    });

    test("disable_denylist is read-only at runtime (0444): opening it for writing is EACCES", async () => {
      const { sh } = await boot(profile);
      const P = "/sys/module/vfio_pci/parameters/disable_denylist";
      assert.equal(await r(sh, P), "N\n");
      assert.equal((await sh.stat(P)).mode, 0o444);
      assert.equal(await w(sh, P, "Y"), "EACCES");
    });
  });

  describe(`§6.5 denylist [${profile}]`, () => {
    test("binding a denylisted QAT: EINVAL, the denylist warning and the probe-failed line", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, OVR(QAT), "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/bind`, QAT));
      assert.equal(rc, "EINVAL");
      assert.deepEqual(lines, [`vfio-pci ${QAT}: 8086:37c8 exists in vfio-pci device denylist, driver probing disallowed.`, probeFailedLine(profile, "vfio-pci", QAT, -22)]);
      assert.deepEqual(k.log.records.slice(-2).map((x) => x.level), [4, profile === "6.1" ? 4 : 3]);
    });

    test("drivers_probe of a denylisted device returns the count, logs the same lines, and leaves it unbound", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, OVR(QAT), "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, "/sys/bus/pci/drivers_probe", QAT));
      assert.equal(rc, QAT.length);
      assert.deepEqual(lines, [`vfio-pci ${QAT}: 8086:37c8 exists in vfio-pci device denylist, driver probing disallowed.`, probeFailedLine(profile, "vfio-pci", QAT, -22)]);
      assert.equal(await driverOf(sh, QAT), null);
    });

    test("disable_denylist=Y: module init warns 'vfio_pci: device denylist disabled.' and the bind succeeds with 'device denylist disabled - allowing device'", async () => {
      const { k, sh } = await boot(profile, { disableDenylist: true });
      assert.ok(k.log.records.some((x) => x.text === "vfio_pci: device denylist disabled." && x.level === 4));
      await w(sh, OVR(QAT), "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/bind`, QAT));
      assert.equal(rc, QAT.length);
      assert.deepEqual(lines, [`vfio-pci ${QAT}: device denylist disabled - allowing device 8086:37c8.`]);
    });

    for (const [id, on61, on612] of [["37c8", true, true], ["37c9", true, true], ["0435", true, true], ["0443", true, true], ["19e2", true, true], ["19e3", true, true], ["0b25", true, true], ["0cfe", true, true], ["6f54", false, false]] as const) {
      const listed = profile === "6.1" ? on61 : on612;
      test(`8086:${id} is ${listed ? "" : "not "}on the denylist`, async () => {
        // DSA/IAX SPR0 (0b25, 0cfe): upstream 95feb3160eef, v6.10, and stable 6.1.91 (Debian's 6.1.y
        // is past it), 6.6.31, 6.8.10, 6.9.1.
        const { k } = await boot(profile);
        const d = { vendor: 0x8086, device: parseInt(id, 16) } as Parameters<typeof k.vfioPci.isDenylisted>[0];
        assert.equal(k.vfioPci.isDenylisted(d, k.profile.version), listed);
      });
    }
  });

  describe(`§6.6 vfio-pci probe refusals [${profile}]`, () => {
    test("a device with no IOMMU group: EINVAL with only the probe-failed line", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, OVR(NOIOMMU), "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/bind`, NOIOMMU));
      assert.equal(rc, "EINVAL");
      assert.deepEqual(lines, [probeFailedLine(profile, "vfio-pci", NOIOMMU, -22)]);
    });

    test("vfio-pci binds any VF, captured or not, with no log line (no VF-specific refusal)", async () => {
      const { k, sh } = await boot(profile);
      await w(sh, `${dev(NATIVE_PF)}/sriov_numvfs`, "1");
      const vf = "0000:07:10.0";
      await w(sh, `${drv("ixgbevf")}/unbind`, vf);
      await w(sh, OVR(vf), "vfio-pci");
      const [rc, lines] = await run(k, () => w(sh, `${drv("vfio-pci")}/bind`, vf));
      assert.equal(rc, vf.length);
      assert.deepEqual(lines, []);
    });

    test("a VF bound elsewhere with ENODEV-style refusals logs nothing (ENODEV/ENXIO are debug only)", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      await w(sh, `${drv("vfio-pci")}/unbind`, VF0);
      const [rc, lines] = await run(k, () => w(sh, `${drv("ixgbevf")}/bind`, VF0));
      assert.equal(rc, "ENODEV");
      assert.deepEqual(lines, []);
    });
  });
}
