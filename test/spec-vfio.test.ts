/**
 * kernel-spec §3 (VFIO_DEVICE_FEATURE matrix on PF, VF and non-PF) and §8 (group, container
 * and device-fd ioctls): one test per row, errno plus "nothing logged".
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { O_RDWR, O_RDONLY, EFD_NONBLOCK } from "../src/sys/syscalls.js";
import {
  VFIO,
  deviceInfoBuf,
  featureBuf,
  groupStatusBuf,
  intBuf,
  irqInfoBuf,
  regionInfoBuf,
  reqEventfdBuf,
} from "../src/uapi/vfio.js";
import {
  PF,
  PLAIN,
  PROFILES,
  SHARED_HOST,
  SHARED_VFIO,
  U1,
  U2,
  VF0,
  attempt,
  boot,
  bootWithVfs,
  dev,
  getDeviceFd,
  groupOf,
  groupStatus,
  openDevice,
  run,
  tokenOf,
  w,
} from "../testlib/spec/index.js";
import type { KernelVersion } from "../src/kernel/profile.js";

const uuidBytes = (u: string) => Buffer.from(u.replace(/-/g, ""), "hex");

/** Open PF (token U1), VF0 (token U1) and PLAIN; return their device fds. */
async function threeDevices(profile: KernelVersion) {
  const wd = await bootWithVfs(profile, 1);
  const pf = await openDevice(wd.sh, PF, `${PF} vf_token=${U1}`);
  const vf = await openDevice(wd.sh, VF0, `${VF0} vf_token=${U1}`);
  const plain = await openDevice(wd.sh, PLAIN);
  for (const o of [pf, vf, plain]) assert.equal(typeof o.device, "number");
  return { ...wd, pf: pf.device as number, vf: vf.device as number, plain: plain.device as number, groups: { pf, vf, plain } };
}

for (const profile of PROFILES) {
  describe(`§3.2 FEATURE PCI_VF_TOKEN matrix [${profile}]`, () => {
    // [flags, argsz, PF result, VF/non-PF result, token replaced on the PF]
    const rows: [number, number, number | string, number | string, boolean][] = [
      [0x00020000, 24, 0, "ENOTTY", true],
      [0x00020000, 23, "EINVAL", "ENOTTY", false],
      [0x00010000, 24, "EINVAL", "ENOTTY", false],
      [0x00050000, 24, "EINVAL", "ENOTTY", false],
      [0x00060000, 24, 0, "ENOTTY", false],
      [0x00060000, 8, 0, "ENOTTY", false],
      [0x00040000, 24, 0, "ENOTTY", false],
      [0x00000000, 24, "EINVAL", "ENOTTY", false],
      [0x00030000, 24, "EINVAL", "EINVAL", false], // generic §3.1 step 4 runs before dispatch
      [0x00070000, 24, "EINVAL", "ENOTTY", false],
      [0x00080000, 24, "EINVAL", "EINVAL", false], // unknown bit 19: generic step 3
      [0x80020000, 24, "EINVAL", "EINVAL", false], // bit 31
      [0x00020000, 7, "EINVAL", "EINVAL", false], // argsz < 8: generic step 2
      [0x00060000, 7, "EINVAL", "EINVAL", false],
    ];
    for (const [flags, argsz, onPf, onOther, replaced] of rows) {
      const name = `flags 0x${flags.toString(16).padStart(8, "0")} argsz ${argsz}: PF ${onPf}, VF and non-PF ${onOther}`;
      test(name, async () => {
        const { k, sh, pf, vf, plain } = await threeDevices(profile);
        const buf = () => featureBuf(flags, argsz, uuidBytes(U2));
        const [a, la] = await run(k, () => sh.ioctl(pf, VFIO.DEVICE_FEATURE, buf()));
        assert.equal(a, onPf);
        assert.equal(tokenOf(k), replaced ? U2 : U1);
        const [b, lb] = await run(k, () => sh.ioctl(vf, VFIO.DEVICE_FEATURE, buf()));
        assert.equal(b, onOther);
        const [c, lc] = await run(k, () => sh.ioctl(plain, VFIO.DEVICE_FEATURE, buf()));
        assert.equal(c, onOther);
        assert.deepEqual([...la, ...lb, ...lc], [], "no log line for any FEATURE call");
      });
    }

    test("FEATURE SET replaces the token with the 16 payload bytes in string order (scenario 7)", async () => {
      const { k, sh, pf } = await threeDevices(profile);
      const b = featureBuf(0x20000, 24, uuidBytes(U2));
      assert.equal(await sh.ioctl(pf, VFIO.DEVICE_FEATURE, b), 0);
      assert.equal(tokenOf(k), U2);
    });
  });

  describe(`§3.1/§3.3 other feature indices [${profile}]`, () => {
    for (const idx of [1, 2, 6, 7, 8]) {
      test(`index ${idx} (core-handled migration / DMA logging) on plain vfio-pci → ENOTTY, also with PROBE`, async () => {
        const { sh, pf } = await threeDevices(profile);
        assert.equal(await attempt(sh.ioctl(pf, VFIO.DEVICE_FEATURE, featureBuf(0x10000 | idx, 8))), "ENOTTY");
        assert.equal(await attempt(sh.ioctl(pf, VFIO.DEVICE_FEATURE, featureBuf(0x40000 | 0x20000 | idx, 8))), "ENOTTY");
      });
    }
    for (const idx of [9, 10, 11, 12, 0xffff]) {
      test(`index ${idx} goes to vfio-pci's device_feature op, which answers ENOTTY`, async () => {
        const { sh, pf, vf } = await threeDevices(profile);
        assert.equal(await attempt(sh.ioctl(pf, VFIO.DEVICE_FEATURE, featureBuf(0x20000 | idx, 8))), "ENOTTY");
        assert.equal(await attempt(sh.ioctl(vf, VFIO.DEVICE_FEATURE, featureBuf(0x40000 | idx, 8))), "ENOTTY");
      });
    }
    test("LOW_POWER_ENTRY (3) and EXIT (5): SET → 0, GET → EINVAL, PROBE|SET → 0 on a device without VFs", async () => {
      const { sh, plain } = await threeDevices(profile);
      assert.equal(await attempt(sh.ioctl(plain, VFIO.DEVICE_FEATURE, featureBuf(0x20003, 8))), 0);
      assert.equal(await attempt(sh.ioctl(plain, VFIO.DEVICE_FEATURE, featureBuf(0x20005, 8))), 0);
      assert.equal(await attempt(sh.ioctl(plain, VFIO.DEVICE_FEATURE, featureBuf(0x10003, 8))), "EINVAL");
      assert.equal(await attempt(sh.ioctl(plain, VFIO.DEVICE_FEATURE, featureBuf(0x60003, 8))), 0);
    });
    test("LOW_POWER_ENTRY on a PF with VFs enabled → EBUSY (model: vfio_pci_set_power_state refuses D3 with VFs)", async () => {
      // kernel-spec §3.3 marks the exact errno path [U]; the model answers EBUSY directly.
      const { sh, pf } = await threeDevices(profile);
      assert.equal(await attempt(sh.ioctl(pf, VFIO.DEVICE_FEATURE, featureBuf(0x20003, 8))), "EBUSY");
    });
  });

  describe(`§8.1/§8.2 device nodes and the group fd [${profile}]`, () => {
    test("/dev/vfio/vfio is 0666 and every open is a new container", async () => {
      const { sh } = await boot(profile);
      assert.equal((await sh.stat("/dev/vfio/vfio")).mode, 0o666);
      const a = await sh.open("/dev/vfio/vfio", O_RDWR);
      const b = await sh.open("/dev/vfio/vfio", O_RDWR);
      const g = await sh.open(`/dev/vfio/${await groupOf(sh, PF)}`, O_RDWR);
      assert.equal(await sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(a)), 0);
      assert.equal(await attempt(sh.ioctl(b, VFIO.SET_IOMMU, 3)), "EINVAL", "container b has no group");
      assert.equal(await sh.ioctl(a, VFIO.SET_IOMMU, 3), 0);
    });

    test("/dev/vfio/<G> of a VF exists while the VF is bound to vfio-pci and goes away when it is removed", async () => {
      const { sh } = await bootWithVfs(profile, 1);
      const g = await groupOf(sh, VF0);
      assert.ok((await sh.readdir("/dev/vfio")).includes(String(g)));
      assert.equal((await sh.stat(`/dev/vfio/${g}`)).mode, 0o600);
      await w(sh, `${dev(PF)}/sriov_numvfs`, "0");
      assert.ok(!(await sh.readdir("/dev/vfio")).includes(String(g)));
      assert.equal(await attempt(sh.open(`/dev/vfio/${g}`, O_RDWR)), "ENOENT", "the node is gone (the kernel's ENODEV needs a racing open)");
    });

    test("a group can be open only once at a time: a second open is EBUSY, from any process (scenario 19)", async () => {
      const { k, sh } = await boot(profile);
      const path = `/dev/vfio/${await groupOf(sh, PF)}`;
      const g = await sh.open(path, O_RDWR);
      assert.equal(await attempt(sh.open(path, O_RDWR)), "EBUSY");
      const other = k.spawn("qemu");
      assert.equal(await attempt(other.open(path, O_RDWR)), "EBUSY");
      await sh.close(g);
      assert.equal(typeof (await other.open(path, O_RDWR)), "number");
    });

    test("GET_STATUS: argsz < 8 → EINVAL; VIABLE (1) before SET_CONTAINER, VIABLE|CONTAINER_SET (3) after", async () => {
      const { sh } = await bootWithVfs(profile, 1);
      const c = await sh.open("/dev/vfio/vfio", O_RDWR);
      const g = await sh.open(`/dev/vfio/${await groupOf(sh, VF0)}`, O_RDWR);
      const bad = Buffer.alloc(8);
      bad.writeUInt32LE(7, 0);
      assert.equal(await attempt(sh.ioctl(g, VFIO.GROUP_GET_STATUS, bad)), "EINVAL");
      const b = groupStatusBuf();
      assert.equal(await sh.ioctl(g, VFIO.GROUP_GET_STATUS, b), 0);
      assert.deepEqual([...b], [8, 0, 0, 0, 1, 0, 0, 0]);
      await sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c));
      assert.equal(await sh.ioctl(g, VFIO.GROUP_GET_STATUS, b), 0);
      assert.deepEqual([...b.subarray(4)], [3, 0, 0, 0]);
    });

    test("a group with a device on a kernel driver is not viable: GET_STATUS 0, SET_CONTAINER EPERM", async () => {
      const { sh } = await boot(profile);
      const c = await sh.open("/dev/vfio/vfio", O_RDWR);
      const g = await sh.open(`/dev/vfio/${await groupOf(sh, SHARED_VFIO)}`, O_RDWR);
      assert.equal(await groupOf(sh, SHARED_HOST), await groupOf(sh, SHARED_VFIO));
      assert.equal(await groupStatus(sh, g), 0);
      assert.equal(await attempt(sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c))), "EPERM");
      await w(sh, `${dev(SHARED_HOST)}/driver/unbind`, SHARED_HOST);
      assert.equal(await groupStatus(sh, g), 1, "an unbound device does not claim DMA ownership");
      assert.equal(await sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c)), 0);
    });

    test("SET_CONTAINER: not an fd → EBADF; already set → EINVAL; not a container → EBADFD", async () => {
      const { sh } = await boot(profile);
      const c = await sh.open("/dev/vfio/vfio", O_RDWR);
      const g = await sh.open(`/dev/vfio/${await groupOf(sh, PF)}`, O_RDWR);
      assert.equal(await attempt(sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(99))), "EBADF");
      const ev = await sh.eventfd(0, EFD_NONBLOCK);
      assert.equal(await attempt(sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(ev))), "EBADFD");
      const f = await sh.open(`${dev(PF)}/vendor`, O_RDONLY);
      assert.equal(await attempt(sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(f))), "EBADFD");
      assert.equal(await sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c)), 0);
      assert.equal(await attempt(sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c))), "EINVAL");
    });

    test("UNSET_CONTAINER: nothing attached → EINVAL; a device open → EBUSY; else 0 and the status drops to 1", async () => {
      const { sh } = await boot(profile);
      const o = await openDevice(sh, PLAIN);
      assert.equal(await attempt(sh.ioctl(o.group, VFIO.GROUP_UNSET_CONTAINER)), "EBUSY");
      await sh.close(o.device as number);
      assert.equal(await sh.ioctl(o.group, VFIO.GROUP_UNSET_CONTAINER), 0);
      assert.equal(await groupStatus(sh, o.group), 1);
      assert.equal(await attempt(sh.ioctl(o.group, VFIO.GROUP_UNSET_CONTAINER)), "EINVAL");
    });

    test("GET_DEVICE_FD needs SET_IOMMU on the container: EINVAL without it", async () => {
      const { sh } = await boot(profile);
      assert.equal((await openDevice(sh, PLAIN, PLAIN, { setIommu: false })).device, "EINVAL");
    });

    test("the device fd is an anon inode [vfio-device] and the same device can be opened twice", async () => {
      const { sh } = await boot(profile);
      const o = await openDevice(sh, PLAIN);
      assert.equal(await sh.readlink(`/proc/${sh.pid}/fd/${o.device}`), "anon_inode:[vfio-device]");
      assert.equal(typeof (await getDeviceFd(sh, o.group, PLAIN)), "number");
    });

    test("an unknown ioctl on a group fd → ENOTTY; on a device fd → ENOTTY", async () => {
      const { sh } = await boot(profile);
      const o = await openDevice(sh, PLAIN);
      assert.equal(await attempt(sh.ioctl(o.group, 0x3b7f)), "ENOTTY");
      assert.equal(await attempt(sh.ioctl(o.group, VFIO.DEVICE_GET_INFO, deviceInfoBuf())), "ENOTTY");
      assert.equal(await attempt(sh.ioctl(o.device as number, 0x3b7f)), "ENOTTY");
      assert.equal(await attempt(sh.ioctl(o.device as number, VFIO.GROUP_GET_STATUS, groupStatusBuf())), "ENOTTY");
    });

    test("a stale group fd after its last device left: GET_STATUS/SET_CONTAINER ENODEV, GET_DEVICE_FD ENODEV, UNSET EINVAL", async () => {
      const { sh } = await bootWithVfs(profile, 1);
      const c = await sh.open("/dev/vfio/vfio", O_RDWR);
      const c2 = await sh.open("/dev/vfio/vfio", O_RDWR);
      const g = await sh.open(`/dev/vfio/${await groupOf(sh, VF0)}`, O_RDWR);
      await sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c));
      assert.equal(await w(sh, `${dev(PF)}/sriov_numvfs`, "0"), 1, "a group fd alone does not block removal in 6.x");
      assert.equal(await groupStatus(sh, g), "ENODEV");
      assert.equal(await attempt(sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c2))), "ENODEV");
      assert.equal(await getDeviceFd(sh, g, VF0), "ENODEV");
      assert.equal(await attempt(sh.ioctl(g, VFIO.GROUP_UNSET_CONTAINER)), "EINVAL");
    });
  });

  describe(`§8.3 container fd [${profile}]`, () => {
    test("GET_API_VERSION returns 0", async () => {
      const { sh } = await boot(profile);
      const c = await sh.open("/dev/vfio/vfio", O_RDWR);
      assert.equal(await sh.ioctl(c, VFIO.GET_API_VERSION), 0);
    });

    const fresh: [number, number][] = [[1, 1], [3, 1], [8, 0], [9, 1], [10, 0], [4, 0], [2, 0], [5, 0], [7, 0], [0, 0], [99, 0]];
    for (const [ext, want] of fresh) {
      test(`CHECK_EXTENSION(${ext}) on a fresh container (type1 loaded, no noiommu) = ${want}`, async () => {
        const { sh } = await boot(profile);
        const c = await sh.open("/dev/vfio/vfio", O_RDWR);
        assert.equal(await sh.ioctl(c, VFIO.CHECK_EXTENSION, ext), want);
      });
    }

    test("CHECK_EXTENSION after SET_IOMMU(TYPE1v2) asks type1 only: UPDATE_VADDR 1 (no emulated devices), DMA_CC 1, NOIOMMU 0", async () => {
      const { sh } = await boot(profile);
      const o = await openDevice(sh, PLAIN);
      assert.equal(await sh.ioctl(o.container, VFIO.CHECK_EXTENSION, 10), 1);
      assert.equal(await sh.ioctl(o.container, VFIO.CHECK_EXTENSION, 4), 1);
      assert.equal(await sh.ioctl(o.container, VFIO.CHECK_EXTENSION, 3), 1);
      assert.equal(await sh.ioctl(o.container, VFIO.CHECK_EXTENSION, 8), 0);
    });

    test("SET_IOMMU before any group is attached → EINVAL (scenario 19); a second SET_IOMMU → EINVAL", async () => {
      const { sh } = await boot(profile);
      const c = await sh.open("/dev/vfio/vfio", O_RDWR);
      assert.equal(await attempt(sh.ioctl(c, VFIO.SET_IOMMU, 3)), "EINVAL");
      const g = await sh.open(`/dev/vfio/${await groupOf(sh, PLAIN)}`, O_RDWR);
      await sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c));
      assert.equal(await sh.ioctl(c, VFIO.SET_IOMMU, 3), 0);
      assert.equal(await attempt(sh.ioctl(c, VFIO.SET_IOMMU, 3)), "EINVAL");
    });

    test("SET_IOMMU of a type no backend offers → ENODEV; of an extension type1 reports but cannot open (UNMAP_ALL) → EINVAL", async () => {
      const { sh } = await boot(profile);
      const c = await sh.open("/dev/vfio/vfio", O_RDWR);
      const g = await sh.open(`/dev/vfio/${await groupOf(sh, PLAIN)}`, O_RDWR);
      await sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c));
      assert.equal(await attempt(sh.ioctl(c, VFIO.SET_IOMMU, 2)), "ENODEV");
      assert.equal(await attempt(sh.ioctl(c, VFIO.SET_IOMMU, 8)), "ENODEV");
      assert.equal(await attempt(sh.ioctl(c, VFIO.SET_IOMMU, 9)), "EINVAL");
      assert.equal(await sh.ioctl(c, VFIO.SET_IOMMU, 1), 0);
    });

    test("an unknown ioctl on a container: EINVAL without an IOMMU driver, ENOTTY (type1) with one", async () => {
      const { sh } = await boot(profile);
      const o = await openDevice(sh, PLAIN);
      const bare = await sh.open("/dev/vfio/vfio", O_RDWR);
      assert.equal(await attempt(sh.ioctl(bare, 0x3b7f)), "EINVAL");
      assert.equal(await attempt(sh.ioctl(o.container, 0x3b7f)), "ENOTTY");
    });
  });

  describe(`§8.6 device-fd ioctls [${profile}]`, () => {
    test("GET_INFO: argsz 15 → EINVAL; argsz 16 fills flags/regions/irqs only; argsz 20 also cap_offset", async () => {
      const { sh, pf, vf } = await threeDevices(profile);
      assert.equal(await attempt(sh.ioctl(pf, VFIO.DEVICE_GET_INFO, deviceInfoBuf(15))), "EINVAL");
      const b16 = Buffer.alloc(20, 0xee);
      b16.writeUInt32LE(16, 0);
      assert.equal(await sh.ioctl(vf, VFIO.DEVICE_GET_INFO, b16), 0);
      assert.deepEqual([b16.readUInt32LE(4), b16.readUInt32LE(8), b16.readUInt32LE(12)], [3, 9, 5]);
      assert.equal(b16.readUInt32LE(16), 0xeeeeeeee, "cap_offset is not written for argsz 16");
      const b20 = Buffer.alloc(20, 0xee);
      b20.writeUInt32LE(20, 0);
      assert.equal(await sh.ioctl(vf, VFIO.DEVICE_GET_INFO, b20), 0);
      assert.equal(b20.readUInt32LE(16), 0);
    });

    test("GET_REGION_INFO: argsz 31 → EINVAL; config is 4096 bytes RW at 7<<40; VGA and index 9 → EINVAL; a VF has no ROM", async () => {
      const { sh, vf } = await threeDevices(profile);
      assert.equal(await attempt(sh.ioctl(vf, VFIO.DEVICE_GET_REGION_INFO, regionInfoBuf(7, 31))), "EINVAL");
      const cfg = regionInfoBuf(7);
      assert.equal(await sh.ioctl(vf, VFIO.DEVICE_GET_REGION_INFO, cfg), 0);
      assert.deepEqual([cfg.readUInt32LE(4), cfg.readBigUInt64LE(16), cfg.readBigUInt64LE(24)], [3, 4096n, 0x70000000000n]);
      assert.equal(await attempt(sh.ioctl(vf, VFIO.DEVICE_GET_REGION_INFO, regionInfoBuf(8))), "EINVAL");
      assert.equal(await attempt(sh.ioctl(vf, VFIO.DEVICE_GET_REGION_INFO, regionInfoBuf(9))), "EINVAL");
      const rom = regionInfoBuf(6);
      assert.equal(await sh.ioctl(vf, VFIO.DEVICE_GET_REGION_INFO, rom), 0);
      assert.deepEqual([rom.readUInt32LE(4), rom.readBigUInt64LE(16), rom.readBigUInt64LE(24)], [0, 0n, 6n << 40n]);
      const bar0 = regionInfoBuf(0);
      assert.equal(await sh.ioctl(vf, VFIO.DEVICE_GET_REGION_INFO, bar0), 0);
      assert.deepEqual([bar0.readUInt32LE(4), bar0.readBigUInt64LE(24)], [7, 0n]);
    });

    test("GET_IRQ_INFO: argsz 15 / index 5 → EINVAL; a VF reports INTx count 0; ERR and REQ are EVENTFD|NORESIZE count 1", async () => {
      const { sh, pf, vf } = await threeDevices(profile);
      assert.equal(await attempt(sh.ioctl(vf, VFIO.DEVICE_GET_IRQ_INFO, irqInfoBuf(0, 15))), "EINVAL");
      assert.equal(await attempt(sh.ioctl(vf, VFIO.DEVICE_GET_IRQ_INFO, irqInfoBuf(5))), "EINVAL");
      const info = async (fd: number, i: number) => {
        const b = irqInfoBuf(i);
        await sh.ioctl(fd, VFIO.DEVICE_GET_IRQ_INFO, b);
        return [b.readUInt32LE(4), b.readUInt32LE(12)];
      };
      assert.deepEqual(await info(vf, 0), [7, 0]);
      assert.deepEqual(await info(pf, 0), [7, 1]);
      assert.deepEqual(await info(vf, 3), [9, 1]);
      assert.deepEqual(await info(vf, 4), [9, 1]);
    });

    test("SET_IRQS generic validation: argsz 19, index 5, unknown flag bits, two data types, start past count, short payload → EINVAL", async () => {
      const { sh, vf } = await threeDevices(profile);
      const set = (argsz: number, flags: number, index: number, start: number, count: number, extra = 4) => {
        const b = Buffer.alloc(20 + extra);
        b.writeUInt32LE(argsz, 0);
        b.writeUInt32LE(flags, 4);
        b.writeUInt32LE(index, 8);
        b.writeUInt32LE(start, 12);
        b.writeUInt32LE(count, 16);
        return attempt(sh.ioctl(vf, VFIO.DEVICE_SET_IRQS, b));
      };
      assert.equal(await set(19, 0x24, 4, 0, 1), "EINVAL");
      assert.equal(await set(24, 0x24, 5, 0, 1), "EINVAL");
      assert.equal(await set(24, 0x40 | 0x24, 4, 0, 1), "EINVAL");
      assert.equal(await set(24, 0x26, 4, 0, 1), "EINVAL");
      assert.equal(await set(24, 0x24, 4, 1, 1), "EINVAL");
      assert.equal(await set(20, 0x24, 4, 0, 1), "EINVAL");
      assert.equal(await set(24, 0x0c, 4, 0, 1), "ENOTTY", "an action other than TRIGGER on REQ");
    });

    test("SET_IRQS on REQ: an eventfd registers (0), a non-eventfd fd → EINVAL, a closed fd → EBADF, -1 unregisters, DATA_BOOL signals", async () => {
      const { sh, vf } = await threeDevices(profile);
      const ev = await sh.eventfd(0, EFD_NONBLOCK);
      assert.equal(await sh.ioctl(vf, VFIO.DEVICE_SET_IRQS, reqEventfdBuf(ev)), 0);
      const loop = Buffer.alloc(21);
      loop.writeUInt32LE(21, 0);
      loop.writeUInt32LE(0x22, 4);
      loop.writeUInt32LE(4, 8);
      loop.writeUInt32LE(1, 16);
      loop[20] = 1;
      assert.equal(await sh.ioctl(vf, VFIO.DEVICE_SET_IRQS, loop), 0);
      assert.equal((await sh.read(ev, 8)).readBigUInt64LE(0), 1n);
      const f = await sh.open(`${dev(PF)}/vendor`, O_RDONLY);
      assert.equal(await attempt(sh.ioctl(vf, VFIO.DEVICE_SET_IRQS, reqEventfdBuf(f))), "EINVAL");
      assert.equal(await attempt(sh.ioctl(vf, VFIO.DEVICE_SET_IRQS, reqEventfdBuf(77))), "EBADF");
      assert.equal(await sh.ioctl(vf, VFIO.DEVICE_SET_IRQS, reqEventfdBuf(-1)), 0);
    });

    test("DEVICE_RESET on a device whose function reset works → 0", async () => {
      const { sh, vf } = await threeDevices(profile);
      assert.equal(await sh.ioctl(vf, VFIO.DEVICE_RESET), 0);
    });
  });
}

