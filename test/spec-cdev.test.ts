/**
 * The vfio cdev path (/dev/iommu, /dev/vfio/devices/vfio<N>, VFIO_DEVICE_BIND_IOMMUFD, the IOAS
 * ioctls, group/cdev exclusion) as tables: errno × kernel row. The rows are issue 10's:
 * no cdev (< 6.6, or Debian's kernels), bypass (6.6–6.16, 6.12.y), E2BIG (6.15.y/6.16.y
 * backports, 6.17, 6.18.0–6.18.2), checked (6.18.3+, 6.19+, 7.x). The fixture is kernel-spec §10's.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { O_RDWR } from "../src/sys/syscalls.js";
import { IOMMUFD, destroyBuf, ioasAllocBuf } from "../src/uapi/iommufd.js";
import { VFIO, attachIommufdPtBuf, bindIommufdBuf, detachIommufdPtBuf, deviceInfoBuf, deviceNameBuf, VFIO_DEVICE_BIND_FLAG_TOKEN } from "../src/uapi/vfio.js";
import type { CdevTokenRule } from "../src/kernel/profile.js";
import { PF, PLAIN, SHARED_VFIO, U1, U2, VF0, VF1, attempt, boot, bootWithVfs, dev, groupOf, logged, openDevice, r, settle, tokenOf, usersOf, w } from "../testlib/spec/index.js";
import { bind, cdevPath, openCdev, openIommufd, plainBind } from "../testlib/spec/cdev.js";

const ROWS: { v: string; rule: Exclude<CdevTokenRule, "none"> }[] = [
  { v: "6.12.58", rule: "bypass" },
  { v: "6.16.1", rule: "e2big" },
  { v: "6.17.1", rule: "e2big" },
  { v: "6.18.3", rule: "checked" },
  { v: "7.3.4", rule: "checked" },
];
const legacy = (rule: string) => rule === "bypass";

/** VFs enabled and the PF token set to U1 through the group path (then everything closed). */
async function world(v: string, vfs = 2) {
  const wd = await bootWithVfs(v, vfs);
  const o = await openDevice(wd.sh, PF, `${PF} vf_token=${U1}`);
  for (const fd of [o.device as number, o.group, o.container]) await wd.sh.close(fd);
  assert.equal(tokenOf(wd.k), U1);
  return wd;
}

/** 7.3.4, VF0 bound through its cdev with the PF's token (out_devid 2) and attached to IOAS 1; `a` is the ATTACH buffer the kernel wrote back. */
async function attachedVf0() {
  const { sh } = await world("7.3.4");
  const ifd = await openIommufd(sh);
  const fd = await openCdev(sh, VF0);
  assert.equal(await bind(sh, fd, ifd.fd, { token: U1 }), 2);
  const a = attachIommufdPtBuf(ifd.ioas);
  assert.equal(await sh.ioctl(fd, VFIO.DEVICE_ATTACH_IOMMUFD_PT, a), 0);
  return { sh, ifd, fd, a };
}

describe("kernels without the cdev: Debian's 6.1 and 6.12, and anything before 6.6", () => {
  for (const [v, iommufd] of [["6.1", false], ["6.12", false], ["6.5.13", true]] as const) {
    test(`${v}: ${iommufd ? "/dev/iommu (iommufd is 6.2+)" : "no /dev/iommu"}, no /dev/vfio/devices; BIND_IOMMUFD on a device fd is ENOTTY`, async () => {
      const { sh } = await bootWithVfs(v, 1);
      assert.equal(typeof (await attempt(sh.stat("/dev/iommu"))) === "object", iommufd);
      assert.equal(await attempt(sh.stat("/dev/vfio/devices")), "ENOENT");
      assert.ok(!(await sh.readdir("/dev/vfio")).includes("devices"));
      const o = await openDevice(sh, PF, `${PF} vf_token=${U1}`);
      assert.equal(await attempt(sh.ioctl(o.device as number, VFIO.DEVICE_BIND_IOMMUFD, bindIommufdBuf(3))), "ENOTTY");
      assert.equal(await attempt(sh.ioctl(o.device as number, VFIO.DEVICE_ATTACH_IOMMUFD_PT, attachIommufdPtBuf(1))), "ENOTTY");
    });
  }
  test("6.1 and 6.12 still have vfio-dev/vfio<N> in sysfs (a class device since 6.1), without a dev attribute", async () => {
    for (const v of ["6.1", "6.12"]) {
      const { sh } = await boot(v);
      const names = await sh.readdir(`${dev(PF)}/vfio-dev`);
      assert.equal(names.length, 1);
      assert.match(names[0]!, /^vfio\d+$/);
      assert.deepEqual((await sh.readdir(`${dev(PF)}/vfio-dev/${names[0]}`)).sort(), ["device", "subsystem", "uevent"]);
      assert.ok((await sh.readdir("/sys/class/vfio-dev")).includes(names[0]!));
    }
  });
  test("5.15 has no vfio-dev class device at all", async () => {
    const { sh } = await boot("5.15.0-91-generic");
    assert.equal(await attempt(sh.readdir(`${dev(PF)}/vfio-dev`)), "ENOENT");
  });
  test("the kernel's names: /proc/sys/kernel/osrelease and /proc/version", async () => {
    const { sh } = await boot("6.1");
    assert.equal(await r(sh, "/proc/sys/kernel/osrelease"), "6.1.0-56-amd64\n");
    assert.match((await r(sh, "/proc/version")) as string, /^Linux version 6\.1\.0-56-amd64 .*Debian 6\.1\.192-2 \(2026-11-16\)\n$/);
    const b = await boot("7.3.4");
    assert.equal(await r(b.sh, "/proc/sys/kernel/osrelease"), "7.3.4\n");
  });
});

describe("nodes of a cdev kernel", () => {
  test("/dev/iommu (0660), /dev/vfio/devices/vfio<N> (0600) per vfio device, vfio-dev/vfio<N>/dev = MAJOR:N", async () => {
    const { sh } = await bootWithVfs("6.17.1", 2);
    const st = await sh.stat("/dev/iommu");
    assert.deepEqual([st.kind, st.mode], ["char", 0o660]);
    const nodes = await sh.readdir("/dev/vfio/devices");
    assert.equal(nodes.length, 6, `PF, PLAIN, NARROW_PF, SHARED_VFIO, 2 VFs: ${nodes}`);
    for (const bdf of [PF, VF0, VF1, PLAIN]) {
      const p = await cdevPath(sh, bdf);
      const n = p.slice("/dev/vfio/devices/vfio".length);
      assert.ok(nodes.includes(`vfio${n}`));
      assert.equal((await sh.stat(p)).mode, 0o600);
      assert.equal(await r(sh, `${dev(bdf)}/vfio-dev/vfio${n}/dev`), `510:${n}\n`);
    }
    assert.ok((await sh.readdir("/dev/vfio")).includes("devices"));
  });
  test("a VF's node goes when SR-IOV is disabled; /dev/vfio/devices with the last node", async () => {
    const { sh } = await bootWithVfs("6.18.3", 1);
    const p = await cdevPath(sh, VF0);
    assert.equal(await w(sh, `${dev(PF)}/sriov_numvfs`, "0"), 1);
    assert.equal(await attempt(sh.stat(p)), "ENOENT");
  });
  test("every ioctl but BIND is EINVAL before the bind; IOAS_ALLOC numbers from 1", async () => {
    const { sh } = await bootWithVfs("7.3.4", 1);
    const fd = await openCdev(sh, PLAIN);
    assert.equal(await attempt(sh.ioctl(fd, VFIO.DEVICE_GET_INFO, deviceInfoBuf())), "EINVAL");
    assert.equal(await attempt(sh.ioctl(fd, VFIO.DEVICE_ATTACH_IOMMUFD_PT, attachIommufdPtBuf(1))), "EINVAL");
    assert.equal(await attempt(sh.ioctl(fd, 0x3b99)), "EINVAL");
    const ifd = await openIommufd(sh);
    assert.equal(ifd.ioas, 1);
  });
});

describe("VFIO_DEVICE_BIND_IOMMUFD × kernel row", () => {
  // [case, bypass, e2big, checked]
  type Case = { name: string; bdf: string; opts: (rule: string) => Parameters<typeof bindIommufdBuf>[1]; want: Record<Exclude<CdevTokenRule, "none">, string | "ok">; log?: Partial<Record<Exclude<CdevTokenRule, "none">, string>> };
  const cases: Case[] = [
    {
      name: "a VF of a vfio-pci PF, no token (the bind QEMU's iommufd backend makes)",
      bdf: VF0,
      opts: (rule) => plainBind(legacy(rule)),
      want: { bypass: "ok", e2big: "EACCES", checked: "EACCES" },
      log: { e2big: `vfio-pci ${VF0}: VF token required to access device`, checked: `vfio-pci ${VF0}: VF token required to access device` },
    },
    { name: "a VF with the right token (FLAG_TOKEN, argsz 24, token_uuid_ptr)", bdf: VF0, opts: () => ({ token: U1 }), want: { bypass: "EINVAL", e2big: "E2BIG", checked: "ok" } },
    {
      name: "a VF with a wrong token",
      bdf: VF0,
      opts: () => ({ token: U2 }),
      want: { bypass: "EINVAL", e2big: "E2BIG", checked: "EACCES" },
      log: { checked: `vfio-pci ${VF0}: Incorrect VF token provided for device` },
    },
    { name: "FLAG_TOKEN with argsz 16 (no room for the pointer)", bdf: VF0, opts: () => ({ token: U1, argsz: 16 }), want: { bypass: "EINVAL", e2big: "EFAULT", checked: "EFAULT" } },
    { name: "FLAG_TOKEN with a null token_uuid_ptr", bdf: VF0, opts: () => ({ flags: VFIO_DEVICE_BIND_FLAG_TOKEN, rawTokenPtr: 0n }), want: { bypass: "EINVAL", e2big: "EFAULT", checked: "EFAULT" } },
    { name: "unknown flag bit 2", bdf: PLAIN, opts: (rule) => ({ ...plainBind(legacy(rule)), flags: 2 }), want: { bypass: "EINVAL", e2big: "EINVAL", checked: "EINVAL" } },
    { name: "argsz 15", bdf: PLAIN, opts: () => ({ argsz: 15 }), want: { bypass: "EINVAL", e2big: "EINVAL", checked: "EINVAL" } },
    {
      name: "a token on a device that is neither PF nor VF",
      bdf: PLAIN,
      opts: () => ({ token: U1 }),
      want: { bypass: "EINVAL", e2big: "E2BIG", checked: "EINVAL" },
      log: { checked: `vfio-pci ${PLAIN}: VF token incorrectly provided, not a PF or VF` },
    },
    {
      name: "the PF while a VF is open, no token",
      bdf: PF,
      opts: (rule) => plainBind(legacy(rule)),
      want: { bypass: "ok", e2big: "EACCES", checked: "EACCES" },
      log: { e2big: `vfio-pci ${PF}: VF token required to access device`, checked: `vfio-pci ${PF}: VF token required to access device` },
    },
  ];
  for (const c of cases) {
    for (const { v, rule } of ROWS) {
      test(`${c.name} on ${v} (${rule}): ${c.want[rule]}`, async () => {
        const { k, sh } = await world(v);
        if (c.name.startsWith("the PF while")) {
          // a VF held open through the group path
          const q = k.spawn("qemu");
          assert.equal(typeof (await openDevice(q, VF1, `${VF1} vf_token=${U1}`)).device, "number");
        }
        const ifd = await openIommufd(sh);
        const fd = await openCdev(sh, c.bdf);
        const b = bindIommufdBuf(ifd.fd, c.opts(rule));
        const { value, lines } = await logged(k, () => attempt(sh.ioctl(fd, VFIO.DEVICE_BIND_IOMMUFD, b)));
        const want = c.want[rule];
        assert.equal(want === "ok" ? value === 0 : value, want === "ok" ? true : want, `${v}: got ${value}`);
        const line = c.log?.[rule];
        // (a VF's first successful open also logs pci_enable_device's "enabling device (0000 -> 0002)",
        // and from 6.13 the open's function reset "resetting" / "reset done": pciResetLogged)
        assert.deepEqual(lines.filter((l) => !l.includes("enabling device") && !/: reset(ting| done)$/.test(l)), line ? [line] : [], v);
      });
    }
  }

  for (const { v, rule } of ROWS) {
    test(`argsz 32 with a non-zero byte past every struct on ${v}: ${legacy(rule) ? "ignored (16-byte copy)" : "E2BIG (copy_struct_from_user)"}`, async () => {
      const { sh } = await world(v);
      const ifd = await openIommufd(sh);
      const fd = await openCdev(sh, PLAIN);
      const b = bindIommufdBuf(ifd.fd, { argsz: 32 });
      b[31] = 1;
      assert.equal(await attempt(sh.ioctl(fd, VFIO.DEVICE_BIND_IOMMUFD, b)), legacy(rule) ? 0 : "E2BIG");
    });
  }

  test("the out_devid is an iommufd object id: IOAS 1, device 2; ATTACH to the IOAS returns the automatic hwpt's id", async () => {
    const { sh, ifd, fd, a } = await attachedVf0();
    assert.equal(a.readUInt32LE(8), 3, "pt_id is rewritten to the hwpt");
    assert.equal(await attempt(sh.ioctl(ifd.fd, IOMMUFD.DESTROY, destroyBuf(ifd.ioas))), "EBUSY", "an IOAS with an attached device");
    assert.equal(await attempt(sh.ioctl(ifd.fd, IOMMUFD.DESTROY, destroyBuf(2))), "EBUSY", "the device object");
    assert.equal(await attempt(sh.ioctl(fd, VFIO.DEVICE_ATTACH_IOMMUFD_PT, attachIommufdPtBuf(99))), "ENOENT");
    assert.equal(await attempt(sh.ioctl(fd, VFIO.DEVICE_ATTACH_IOMMUFD_PT, attachIommufdPtBuf(2))), "EINVAL", "a device is not a page table");
    assert.equal(await attempt(sh.ioctl(fd, VFIO.DEVICE_ATTACH_IOMMUFD_PT, attachIommufdPtBuf(1, { argsz: 11 }))), "EINVAL");
    assert.equal(await attempt(sh.ioctl(fd, VFIO.DEVICE_ATTACH_IOMMUFD_PT, attachIommufdPtBuf(1, { flags: 1 }))), "EINVAL");
    assert.equal(await sh.ioctl(fd, VFIO.DEVICE_DETACH_IOMMUFD_PT, detachIommufdPtBuf()), 0);
    assert.equal(await sh.ioctl(fd, VFIO.DEVICE_DETACH_IOMMUFD_PT, detachIommufdPtBuf()), 0, "detaching twice is not an error");
    assert.equal(await sh.ioctl(ifd.fd, IOMMUFD.DESTROY, destroyBuf(ifd.ioas)), 0);
    assert.equal(await attempt(sh.ioctl(ifd.fd, IOMMUFD.DESTROY, destroyBuf(ifd.ioas))), "ENOENT");
    // once bound, device ioctls work
    const info = deviceInfoBuf();
    assert.equal(await sh.ioctl(fd, VFIO.DEVICE_GET_INFO, info), 0);
  });

  test("ATTACH to the IOAS the device is already attached to is a no-op: the same hwpt, still in use (DESTROY EBUSY), gone with the detach", async () => {
    const { sh, ifd, fd, a } = await attachedVf0();
    const hwpt = a.readUInt32LE(8);
    const again = attachIommufdPtBuf(ifd.ioas);
    assert.equal(await sh.ioctl(fd, VFIO.DEVICE_ATTACH_IOMMUFD_PT, again), 0, "iommufd_device_replace with the same domain");
    assert.equal(again.readUInt32LE(8), hwpt);
    assert.equal(await attempt(sh.ioctl(ifd.fd, IOMMUFD.DESTROY, destroyBuf(hwpt))), "EBUSY", "the automatic hwpt is still the device's");
    assert.equal(await sh.ioctl(fd, VFIO.DEVICE_DETACH_IOMMUFD_PT, detachIommufdPtBuf()), 0);
    assert.equal(await attempt(sh.ioctl(ifd.fd, IOMMUFD.DESTROY, destroyBuf(hwpt))), "ENOENT", "an automatic hwpt goes with its last device");
  });

  test("IOAS_ALLOC: flags EOPNOTSUPP, size < 12 EINVAL, a larger size with a non-zero tail E2BIG", async () => {
    const { sh } = await boot("6.17.1");
    const ifd = await sh.open("/dev/iommu", O_RDWR);
    assert.equal(await attempt(sh.ioctl(ifd, IOMMUFD.IOAS_ALLOC, ioasAllocBuf({ flags: 1 }))), "EOPNOTSUPP");
    assert.equal(await attempt(sh.ioctl(ifd, IOMMUFD.IOAS_ALLOC, ioasAllocBuf({ size: 8 }))), "EINVAL");
    const big = Buffer.concat([ioasAllocBuf({ size: 16 }), Buffer.alloc(4)]);
    big[13] = 1;
    assert.equal(await attempt(sh.ioctl(ifd, IOMMUFD.IOAS_ALLOC, big)), "E2BIG");
    assert.equal(await attempt(sh.ioctl(ifd, IOMMUFD.IOAS_MAP, ioasAllocBuf())), "ENOTTY", "not modelled");
  });
});

describe("the token on the cdev path", () => {
  test("checked kernels: a PF bound with a token while no VF is open sets it (no log); the VF then needs it", async () => {
    const { k, sh } = await world("6.18.3");
    const ifd = await openIommufd(sh);
    const pf = await openCdev(sh, PF);
    const { value, lines } = await logged(k, () => bind(sh, pf, ifd.fd, { token: U2 }));
    assert.equal(typeof value, "number");
    // nothing about the token; the open's function reset (pciResetLogged, 6.13+) logs its two lines
    assert.deepEqual(lines, [`vfio-pci ${PF}: resetting`, `vfio-pci ${PF}: reset done`]);
    assert.equal(tokenOf(k), U2);
    const vf = await openCdev(sh, VF0);
    assert.equal(await bind(sh, vf, ifd.fd, { token: U1 }), "EACCES");
    assert.equal(typeof (await bind(sh, vf, ifd.fd, { token: U2 })), "number");
    assert.equal(usersOf(k), 1);
  });

  test("checked kernels: a PF bind that fails after the token step (bad iommufd: EBADF, a non-iommufd fd: EBADFD) has changed the token anyway", async () => {
    const { k, sh } = await world("7.3.4");
    const pf = await openCdev(sh, PF);
    assert.equal(await bind(sh, pf, 999, { token: U2 }), "EBADF");
    assert.equal(tokenOf(k), U2);
    const kmsg = await sh.open("/dev/kmsg", O_RDWR);
    assert.equal(await bind(sh, pf, kmsg, { token: U1 }), "EBADFD");
    assert.equal(tokenOf(k), U1);
  });

  test("E2BIG kernels: a PF bind with a token fails before the token step, so the token is unchanged", async () => {
    for (const v of ["6.16.1", "6.17.1", "6.18.2"]) {
      const { k, sh } = await world(v);
      const ifd = await openIommufd(sh);
      const pf = await openCdev(sh, PF);
      assert.equal(await bind(sh, pf, ifd.fd, { token: U2 }), "E2BIG", v);
      assert.equal(tokenOf(k), U1, v);
    }
  });

  test("bypass kernels: a VF user increments users without ever proving the token; the PF then needs the token on the group path and cannot set a new one by opening", async () => {
    const { k, sh } = await world("6.12.58");
    const attacker = k.spawn("anyone");
    const ifd = await openIommufd(attacker);
    const vf = await openCdev(attacker, VF0);
    assert.equal(typeof (await bind(attacker, vf, ifd.fd, { argsz: 16 })), "number");
    assert.equal(usersOf(k), 1);
    const owner = await openDevice(sh, PF, PF);
    assert.equal(owner.device, "EACCES");
    const g = owner.group;
    assert.equal(await attempt(sh.ioctl(g, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(`${PF} vf_token=${U2}`))), "EACCES");
    assert.equal(tokenOf(k), U1, "unchanged: users > 0");
    await attacker.exit();
    assert.equal(usersOf(k), 0);
  });

  test("bypass kernels: a PF opened through the cdev never sets a token (flags must be 0)", async () => {
    const { k, sh } = await world("6.12.58");
    const ifd = await openIommufd(sh);
    const pf = await openCdev(sh, PF);
    assert.equal(await bind(sh, pf, ifd.fd, { token: U2, argsz: 24 }), "EINVAL");
    assert.equal(typeof (await bind(sh, pf, ifd.fd, { argsz: 16 })), "number");
    assert.equal(tokenOf(k), U1);
  });

  test("the rate-limit suppression line names vfio_pci_core_match_token_uuid from 6.17 (vfio_pci_validate_vf_token before)", async () => {
    for (const [v, fn] of [["6.16.0", "vfio_pci_validate_vf_token"], ["6.17.1", "vfio_pci_core_match_token_uuid"]] as const) {
      const { k, sh } = await world(v);
      const o = await openDevice(sh, VF0, VF0);
      for (let i = 0; i < 12; i++) await attempt(sh.ioctl(o.group, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(VF0)));
      k.advance(6000);
      const { lines } = await logged(k, () => attempt(sh.ioctl(o.group, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(VF0))));
      assert.ok(lines.some((l) => l.startsWith(`${fn}: `) && l.endsWith("callbacks suppressed")), `${v}: ${lines}`);
    }
  });
});

describe("group path and cdev path exclude each other", () => {
  for (const { v, rule } of ROWS) {
    test(`${v}: the group node open → BIND EBUSY; a cdev bind → the group node EBUSY until the cdev fd closes`, async () => {
      const { sh, k } = await world(v);
      const other = k.spawn("other");
      const gfd = await other.open(`/dev/vfio/${await groupOf(sh, PLAIN)}`, O_RDWR);
      const ifd = await openIommufd(sh);
      const fd = await openCdev(sh, PLAIN);
      assert.equal(await bind(sh, fd, ifd.fd, plainBind(legacy(rule))), "EBUSY");
      await other.close(gfd);
      assert.equal(typeof (await bind(sh, fd, ifd.fd, plainBind(legacy(rule)))), "number");
      assert.equal(await attempt(other.open(`/dev/vfio/${await groupOf(sh, PLAIN)}`, O_RDWR)), "EBUSY");
      // a second bind of the same fd, or of another cdev fd of the same device: EINVAL
      assert.equal(await bind(sh, fd, ifd.fd, plainBind(legacy(rule))), "EINVAL");
      const fd2 = await openCdev(other, PLAIN);
      const ifd2 = await openIommufd(other);
      assert.equal(await bind(other, fd2, ifd2.fd, plainBind(legacy(rule))), "EINVAL");
      await sh.close(fd);
      assert.equal(typeof (await other.open(`/dev/vfio/${await groupOf(sh, PLAIN)}`, O_RDWR)), "number");
    });
  }
  test("a group-path device fd: BIND is EINVAL after the struct checks (only cdev fds bind)", async () => {
    for (const { v, rule } of ROWS) {
      const { sh } = await world(v);
      const o = await openDevice(sh, PF, `${PF} vf_token=${U1}`);
      assert.equal(await attempt(sh.ioctl(o.device as number, VFIO.DEVICE_BIND_IOMMUFD, bindIommufdBuf(3, plainBind(legacy(rule))))), "EINVAL", v);
      assert.equal(await attempt(sh.ioctl(o.device as number, VFIO.DEVICE_BIND_IOMMUFD, bindIommufdBuf(3, { argsz: 8 }))), "EINVAL", v);
    }
  });
  test("a group that is not viable (a member on a host driver) cannot be bound through the cdev either: EPERM (iommu_device_claim_dma_owner: the driver's count has no owner)", async () => {
    const { sh } = await boot("7.3.4");
    const ifd = await openIommufd(sh);
    const fd = await openCdev(sh, SHARED_VFIO);
    assert.equal(await bind(sh, fd, ifd.fd), "EPERM");
  });
  test("closing /dev/iommu does not unbind: the device holds the iommufd context", async () => {
    const { sh } = await world("7.3.4");
    const ifd = await openIommufd(sh);
    const fd = await openCdev(sh, PLAIN);
    assert.equal(typeof (await bind(sh, fd, ifd.fd)), "number");
    await sh.close(ifd.fd);
    assert.equal(await sh.ioctl(fd, VFIO.DEVICE_GET_INFO, deviceInfoBuf()), 0);
  });
});

describe("removal while a cdev fd is open", () => {
  test("even an unbound cdev fd holds the device: sriov_numvfs=0 blocks until it closes; the node is gone as soon as removal starts", async () => {
    const { k, sh } = await bootWithVfs("6.17.1", 1);
    const q = k.spawn("qemu");
    const p = await cdevPath(sh, VF0);
    const fd = await q.open(p, O_RDWR);
    let done = false;
    const pending = w(sh, `${dev(PF)}/sriov_numvfs`, "0").then((x) => ((done = true), x));
    await settle();
    assert.equal(done, false);
    assert.ok(k.log.records.some((x) => x.text === `vfio-pci ${VF0}: No device request channel registered, blocked until released by user`));
    assert.equal(await attempt(sh.stat(p)), "ENOENT", "device_del before the wait (6.6+)");
    assert.equal(await attempt(sh.open(p, O_RDWR)), "ENOENT");
    await q.close(fd);
    assert.equal(await pending, 1);
  });
});
