/**
 * kernel-spec §2: the VF token — match-string grammar (§2.3), the decision table (§2.4), the
 * users counter (§2.6), the 6.x order of checks in GET_DEVICE_FD (§2.7) and the token's
 * lifetime (§2.8), plus the §10.2 scenarios 3–13. Each row asserts errno and exact log text.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ModelProcess } from "../src/kernel/process.js";
import { featureSetVfToken, VFIO } from "../src/uapi/vfio.js";
import {
  NATIVE_PF,
  PF,
  PLAIN,
  PROFILES,
  STUB_PF,
  U1,
  U2,
  U3,
  U4,
  VF0,
  VF1,
  attempt,
  boot,
  bootWithVfs,
  dev,
  drv,
  getDeviceFd,
  openDevice,
  run,
  tokenOf,
  usersOf,
  w,
} from "../testlib/spec/index.js";
import type { KernelVersion } from "../src/kernel/profile.js";

const REQUIRED = "VF token required to access device";
const INCORRECT = "Incorrect VF token provided for device";
const NOT_VFIO_PF = "VF token incorrectly provided, PF not bound to vfio-pci";
const NOT_PF_OR_VF = "VF token incorrectly provided, not a PF or VF";
/**
 * Not a token line: the first open of a new VF through vfio-pci enables it (pci_enable_device,
 * PCI_COMMAND 0 → MEMORY), as the lab's kernels log; later opens of the same VF do not.
 */
const ENABLING = "enabling device (0000 -> 0002)";

/** Set the PF token the way userspace does: open the PF with vf_token= while no VF is open, then close everything. */
async function setPfToken(sh: ModelProcess, uuid: string): Promise<void> {
  const o = await openDevice(sh, PF, `${PF} vf_token=${uuid}`);
  assert.equal(typeof o.device, "number", `PF open with token: ${o.device}`);
  await sh.close(o.device as number);
  await sh.close(o.group);
  await sh.close(o.container);
}

/** A world with 2 captured VFs and the PF token set to U1. */
async function tokenWorld(profile: KernelVersion) {
  const wd = await bootWithVfs(profile, 2);
  await setPfToken(wd.sh, U1);
  return wd;
}

/** Move the first VF of the ixgbe PF to vfio-pci (a VF that is not PF-linked). */
async function unlinkedVf(profile: KernelVersion) {
  const wd = await boot(profile);
  const vf = "0000:07:10.0";
  await w(wd.sh, `${dev(NATIVE_PF)}/sriov_numvfs`, "1");
  await w(wd.sh, `${drv("ixgbevf")}/unbind`, vf);
  await w(wd.sh, `${dev(vf)}/driver_override`, "vfio-pci");
  assert.equal(await w(wd.sh, `${drv("vfio-pci")}/bind`, vf), vf.length);
  return { ...wd, vf };
}

for (const profile of PROFILES) {
  describe(`§2.3 match-string grammar (VF ${VF0}, PF token U1) [${profile}]`, () => {
    const U1UP = U1.toUpperCase();
    const rows: [string, string, "fd" | string, string[]][] = [
      ["the bare name", VF0, "EACCES", [REQUIRED]],
      ["the name and trailing spaces", `${VF0}   `, "EACCES", [REQUIRED]],
      ["the name and a token", `${VF0} vf_token=${U1}`, "fd", []],
      ["extra spaces and an uppercase token", `${VF0}    vf_token=${U1UP}   `, "fd", []],
      ["an all-zero token (valid syntax)", `${VF0} vf_token=00000000-0000-0000-0000-000000000000`, "EACCES", [INCORRECT]],
      ["a tab instead of a space", `${VF0}\tvf_token=${U1}`, "ENODEV", []],
      ["a newline after the name", `${VF0}\n`, "ENODEV", []],
      ["an extra digit after the name", "0000:04:10.01", "ENODEV", []],
      ["a name without the domain", "04:10.0", "ENODEV", []],
      ["a short token", `${VF0} vf_token=2ab74924`, "EINVAL", []],
      ["a token with a bad hex digit", `${VF0} vf_token=2ab74924-c335-45f4-9b16-8569e5b0825g`, "EINVAL", []],
      ["a token in braces", `${VF0} vf_token={${U1}}`, "EINVAL", []],
      ["a duplicate vf_token", `${VF0} vf_token=${U1} vf_token=${U1}`, "EINVAL", []],
      ["a character right after the UUID", `${VF0} vf_token=${U1}x`, "EINVAL", []],
      ["a 37th hex digit", `${VF0} vf_token=${U1}0`, "EINVAL", []],
      ["an unknown option", `${VF0} foo=bar`, "EINVAL", []],
      ["an uppercase option name", `${VF0} VF_TOKEN=${U1}`, "EINVAL", []],
      ["a space after vf_token=", `${VF0} vf_token= ${U1}`, "EINVAL", []],
      ["a tab between options", `${VF0} vf_token=${U1}\tfoo`, "EINVAL", []],
      ["another device's name", "0000:04:10.1", "ENODEV", []],
      ["strlen 4095 (fits strndup_user)", VF0.padEnd(4095, " "), "EACCES", [REQUIRED]],
      ["strlen 4096 (too long for strndup_user)", VF0.padEnd(4096, " "), "EINVAL", []],
    ];
    for (const [what, s, want, log] of rows) {
      const logName = log.length ? ` with '${log[0]}'` : want === "fd" ? `, no token log line (only the first open's '${ENABLING}')` : ", no log";
      test(`${what} → ${want === "fd" ? "a device fd" : want}${logName}`, async () => {
        const { k, sh } = await tokenWorld(profile);
        const o = await openDevice(sh, VF0, "0000:ff:00.0");
        const [rc, lines] = await run(k, () => sh.ioctl(o.group, VFIO.GROUP_GET_DEVICE_FD, Buffer.concat([Buffer.from(s, "latin1"), Buffer.from([0])])));
        if (want === "fd") assert.equal(typeof rc, "number");
        else assert.equal(rc, want);
        // every row is the VF's first open: a success also enables it
        assert.deepEqual(lines, [...log, ...(want === "fd" ? [ENABLING] : [])].map((l) => `vfio-pci ${VF0}: ${l}`));
      });
    }
  });

  describe(`§2.4 decision table [${profile}]`, () => {
    test("VF, not PF-linked, no token → fd, no log (ixgbevf's probe already enabled the VF)", async () => {
      const { k, sh, vf } = await unlinkedVf(profile);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, vf)).device);
      assert.equal(typeof rc, "number");
      assert.deepEqual(lines, []);
    });

    test(`VF, not PF-linked, token → EINVAL '${NOT_VFIO_PF}'`, async () => {
      const { k, sh, vf } = await unlinkedVf(profile);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, vf, `${vf} vf_token=${U1}`)).device);
      assert.equal(rc, "EINVAL");
      assert.deepEqual(lines, [`vfio-pci ${vf}: ${NOT_VFIO_PF}`]);
      assert.equal(k.log.records.at(-1)!.level, 6);
    });

    test(`VF of a pci-pf-stub PF moved to vfio-pci (scenario 13): token → EINVAL '${NOT_VFIO_PF}', none → fd`, async () => {
      const { k, sh } = await boot(profile);
      const vf = "0000:06:00.1";
      await w(sh, `${dev(STUB_PF)}/sriov_numvfs`, "1");
      await w(sh, `${dev(vf)}/driver_override`, "vfio-pci");
      assert.equal(await w(sh, "/sys/bus/pci/drivers_probe", vf), vf.length);
      const o = await openDevice(sh, vf, `${vf} vf_token=${U1}`);
      assert.equal(o.device, "EINVAL");
      assert.equal(k.log.records.at(-1)!.text, `vfio-pci ${vf}: ${NOT_VFIO_PF}`);
      assert.equal(typeof (await getDeviceFd(sh, o.group, vf)), "number");
    });

    test(`VF, PF-linked, no token → EACCES '${REQUIRED}' on the VF`, async () => {
      const { k, sh } = await tokenWorld(profile);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, VF0)).device);
      assert.equal(rc, "EACCES");
      assert.deepEqual(lines, [`vfio-pci ${VF0}: ${REQUIRED}`]);
      assert.equal(k.log.records.at(-1)!.level, 6);
    });

    test(`VF, PF-linked, wrong token → EACCES '${INCORRECT}'`, async () => {
      const { k, sh } = await tokenWorld(profile);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, VF0, `${VF0} vf_token=${U2}`)).device);
      assert.equal(rc, "EACCES");
      assert.deepEqual(lines, [`vfio-pci ${VF0}: ${INCORRECT}`]);
    });

    test(`VF, PF-linked, the PF's token → fd, users 1, no token log line ('${ENABLING}' on the first open only)`, async () => {
      const { k, sh } = await tokenWorld(profile);
      const [o, lines] = await run(k, () => openDevice(sh, VF0, `${VF0} vf_token=${U1}`));
      assert.ok(typeof o === "object" && typeof o.device === "number");
      assert.deepEqual(lines, [`vfio-pci ${VF0}: ${ENABLING}`]);
      assert.equal(usersOf(k), 1);
      await sh.close(o.device);
      assert.equal(usersOf(k), 0);
      const [again, relines] = await run(k, () => getDeviceFd(sh, o.group, `${VF0} vf_token=${U1}`));
      assert.equal(typeof again, "number");
      assert.deepEqual(relines, [], "a later open of the same VF finds it enabled");
      assert.equal(usersOf(k), 1);
    });

    test("a VF cannot be opened before anyone set the PF token: the initial random token is secret", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      assert.notEqual(tokenOf(k), U1);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, VF0, `${VF0} vf_token=${U1}`)).device);
      assert.equal(rc, "EACCES");
      assert.deepEqual(lines, [`vfio-pci ${VF0}: ${INCORRECT}`]);
    });

    test("PF, users > 0: no token → EACCES, wrong token → EACCES, its token → fd (scenario 6), logs on the PF", async () => {
      const { k, sh } = await tokenWorld(profile);
      assert.equal(typeof (await openDevice(sh, VF0, `${VF0} vf_token=${U1}`)).device, "number");
      const o = await openDevice(sh, PF, "0000:ff:00.0");
      const [a, la] = await run(k, () => sh.ioctl(o.group, VFIO.GROUP_GET_DEVICE_FD, nameBuf(PF)));
      assert.equal(a, "EACCES");
      assert.deepEqual(la, [`vfio-pci ${PF}: ${REQUIRED}`]);
      const [b, lb] = await run(k, () => sh.ioctl(o.group, VFIO.GROUP_GET_DEVICE_FD, nameBuf(`${PF} vf_token=${U2}`)));
      assert.equal(b, "EACCES");
      assert.deepEqual(lb, [`vfio-pci ${PF}: ${INCORRECT}`]);
      const [c, lc] = await run(k, () => sh.ioctl(o.group, VFIO.GROUP_GET_DEVICE_FD, nameBuf(`${PF} vf_token=${U1}`)));
      assert.equal(typeof c, "number");
      assert.deepEqual(lc, []);
      assert.equal(tokenOf(k), U1);
    });

    test("PF, users == 0, token → fd and the token silently becomes the given UUID", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, PF, `${PF} vf_token=${U3}`)).device);
      assert.equal(typeof rc, "number");
      assert.deepEqual(lines, []);
      assert.equal(tokenOf(k), U3);
    });

    test("PF, users == 0, no token → fd and the token is unchanged", async () => {
      const { k, sh } = await tokenWorld(profile);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, PF)).device);
      assert.equal(typeof rc, "number");
      assert.deepEqual(lines, []);
      assert.equal(tokenOf(k), U1);
    });

    test("a PF with SR-IOV off is still a PF: a token sets it", async () => {
      const { k, sh } = await boot(profile);
      assert.equal(typeof (await openDevice(sh, PF, `${PF} vf_token=${U2}`)).device, "number");
      assert.equal(tokenOf(k), U2);
    });

    test(`neither PF nor VF, token → EINVAL '${NOT_PF_OR_VF}' (scenario 11)`, async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, PLAIN, `${PLAIN} vf_token=${U1}`)).device);
      assert.equal(rc, "EINVAL");
      assert.deepEqual(lines, [`vfio-pci ${PLAIN}: ${NOT_PF_OR_VF}`]);
    });

    test("neither PF nor VF, no token → fd, no log (a boot device already decodes: no 'enabling device')", async () => {
      const { k, sh } = await boot(profile);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, PLAIN)).device);
      assert.equal(typeof rc, "number");
      assert.deepEqual(lines, []);
    });

    test("the check runs on every GET_DEVICE_FD, also for a second fd of an open VF (scenario 5)", async () => {
      const { k, sh } = await tokenWorld(profile);
      const o = await openDevice(sh, VF0, `${VF0} vf_token=${U1}`);
      assert.equal(typeof o.device, "number");
      const [rc, lines] = await run(k, () => getDeviceFd(sh, o.group, VF0));
      assert.equal(rc, "EACCES");
      assert.deepEqual(lines, [`vfio-pci ${VF0}: ${REQUIRED}`]);
      assert.equal(typeof (await getDeviceFd(sh, o.group, `${VF0} vf_token=${U1}`)), "number");
      assert.equal(usersOf(k), 1, "users counts devices, not fds");
    });

    test("whether the PF itself is open does not matter for the PF's users test", async () => {
      const { k, sh } = await tokenWorld(profile);
      const pf = await openDevice(sh, PF, `${PF} vf_token=${U1}`);
      assert.equal(typeof pf.device, "number");
      assert.equal(typeof (await getDeviceFd(sh, pf.group, PF)), "number", "users 0: the PF opens again without a token");
      assert.equal(usersOf(k), 0);
    });
  });

  describe(`§2.6 users counter [${profile}]`, () => {
    test("users counts open VF devices, shared by all processes, and drops at the last close", async () => {
      const { k, sh } = await tokenWorld(profile);
      const a = await openDevice(sh, VF0, `${VF0} vf_token=${U1}`);
      assert.equal(usersOf(k), 1);
      const other = k.spawn("qemu");
      const b = await openDevice(other, VF1, `${VF1} vf_token=${U1}`);
      assert.equal(typeof b.device, "number");
      assert.equal(usersOf(k), 2);
      const second = await getDeviceFd(sh, a.group, `${VF0} vf_token=${U1}`);
      assert.equal(usersOf(k), 2);
      await sh.close(a.device as number);
      assert.equal(usersOf(k), 2, "one fd of VF0 is still open");
      await sh.close(second as number);
      assert.equal(usersOf(k), 1);
      await other.exit();
      assert.equal(usersOf(k), 0);
    });

    test("a VF open that fails after the token check (no container) does not raise users", async () => {
      const { k, sh } = await tokenWorld(profile);
      const o = await openDevice(sh, VF0, `${VF0} vf_token=${U1}`, { setContainer: false });
      assert.equal(o.device, "EINVAL");
      assert.equal(usersOf(k), 0);
    });

    test("after every VF fd is closed users is 0 and a PF open may set a new token (scenario 8)", async () => {
      const { k, sh } = await tokenWorld(profile);
      const a = await openDevice(sh, VF0, `${VF0} vf_token=${U1}`);
      await sh.close(a.device as number);
      assert.equal(usersOf(k), 0);
      assert.equal(typeof (await openDevice(sh, PF, `${PF} vf_token=${U3}`)).device, "number");
      assert.equal(tokenOf(k), U3);
    });
  });

  describe(`§2.7 order of checks in GET_DEVICE_FD (6.x) [${profile}]`, () => {
    test("PF token given on a group with no container: EINVAL, yet the token is set (scenario 12)", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, PF, `${PF} vf_token=${U4}`, { setContainer: false })).device);
      assert.equal(rc, "EINVAL");
      assert.deepEqual(lines, []);
      assert.equal(tokenOf(k), U4);
      assert.equal(typeof (await openDevice(sh, VF0, `${VF0} vf_token=${U4}`)).device, "number");
    });

    test("PF token given with a container but no IOMMU set: EINVAL, yet the token is set", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      const o = await openDevice(sh, PF, `${PF} vf_token=${U2}`, { setIommu: false });
      assert.equal(o.device, "EINVAL");
      assert.equal(tokenOf(k), U2);
    });

    test("token errors come before container errors: a VF without a token on a bare group is EACCES with its log line", async () => {
      const { k, sh } = await tokenWorld(profile);
      const [rc, lines] = await run(k, async () => (await openDevice(sh, VF0, VF0, { setContainer: false })).device);
      assert.equal(rc, "EACCES");
      assert.deepEqual(lines, [`vfio-pci ${VF0}: ${REQUIRED}`]);
    });

    test("the name match comes before container errors: an unknown name on a bare group is ENODEV", async () => {
      const { sh } = await tokenWorld(profile);
      const o = await openDevice(sh, VF0, "0000:04:10.6", { setContainer: false });
      assert.equal(o.device, "ENODEV");
    });
  });

  describe(`§2.8 token lifetime [${profile}]`, () => {
    test("the token persists across PF close and reopen (selftest pf_early_close, scenario 9)", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      await setPfToken(sh, U1); // opens the PF with U1 and closes device, group and container
      assert.equal(typeof (await openDevice(sh, VF0, `${VF0} vf_token=${U1}`)).device, "number");
      assert.equal(tokenOf(k), U1);
    });

    test("the token persists across SR-IOV disable and enable", async () => {
      const { k, sh } = await tokenWorld(profile);
      await w(sh, `${dev(PF)}/sriov_numvfs`, "0");
      await w(sh, `${dev(PF)}/sriov_numvfs`, "1");
      assert.equal(tokenOf(k), U1);
      assert.equal(typeof (await openDevice(sh, VF0, `${VF0} vf_token=${U1}`)).device, "number");
    });

    test("unbinding and rebinding the PF makes a new random token (the old one no longer opens a VF)", async () => {
      const { k, sh } = await tokenWorld(profile);
      await w(sh, `${drv("vfio-pci")}/unbind`, PF);
      await w(sh, `${dev(PF)}/driver_override`, "vfio-pci");
      assert.equal(await w(sh, `${drv("vfio-pci")}/bind`, PF), PF.length);
      assert.notEqual(tokenOf(k), U1);
      await w(sh, `${dev(PF)}/sriov_numvfs`, "1");
      assert.equal((await openDevice(sh, VF0, `${VF0} vf_token=${U1}`)).device, "EACCES");
    });

    test("FEATURE SET on an open PF while a VF is open: 0, the open VF is unaffected, later opens need the new token (scenario 7)", async () => {
      const { k, sh } = await tokenWorld(profile);
      const vf0 = await openDevice(sh, VF0, `${VF0} vf_token=${U1}`);
      const pf = await openDevice(sh, PF, `${PF} vf_token=${U1}`);
      const [rc, lines] = await run(k, () => sh.ioctl(pf.device as number, VFIO.DEVICE_FEATURE, featureSetVfToken(U2)));
      assert.equal(rc, 0);
      assert.deepEqual(lines, []);
      assert.equal(tokenOf(k), U2);
      const vf1 = await openDevice(sh, VF1, `${VF1} vf_token=${U1}`);
      assert.equal(vf1.device, "EACCES");
      assert.equal(typeof (await getDeviceFd(sh, vf1.group, `${VF1} vf_token=${U2}`)), "number");
      assert.equal(usersOf(k), 2);
      const info = Buffer.alloc(20);
      info.writeUInt32LE(20, 0);
      assert.equal(await attempt(sh.ioctl(vf0.device as number, VFIO.DEVICE_GET_INFO, info)), 0, "VF0 keeps working");
    });

    test("FEATURE SET works with SR-IOV disabled too (no check of num_VFs)", async () => {
      const { k, sh } = await boot(profile);
      const pf = await openDevice(sh, PF);
      assert.equal(await attempt(sh.ioctl(pf.device as number, VFIO.DEVICE_FEATURE, featureSetVfToken(U3))), 0);
      assert.equal(tokenOf(k), U3);
    });
  });
}

function nameBuf(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, "latin1"), Buffer.from([0])]);
}

