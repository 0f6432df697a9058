/**
 * The model's own machinery that the spec relies on: processes with their own fd tables (exit
 * closes every fd), the injected RNG (a fixed seed gives a fixed PF token) and clock, and
 * lib/ratelimit.c as kernel-spec §2.10 describes it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import { SeededRng } from "../src/kernel/clock.js";
import { O_RDWR } from "../src/sys/syscalls.js";
import { PF, PLAIN, PROFILES, U1, U2, VF0, advance, attempt, boot, bootWithVfs, groupOf, openDevice, r, since, specHost, tokenOf, usersOf } from "../testlib/spec/index.js";

for (const profile of PROFILES) {
  describe(`processes [${profile}]`, () => {
    test("each process has its own fd table starting at 3", async () => {
      const { k, sh } = await boot(profile);
      const other = k.spawn("qemu");
      assert.equal(await sh.open("/dev/vfio/vfio", O_RDWR), 3);
      assert.equal(await other.open("/dev/vfio/vfio", O_RDWR), 3);
      assert.equal(await sh.open("/dev/vfio/vfio", O_RDWR), 4);
      assert.deepEqual((await sh.readdir(`/proc/${sh.pid}/fd`)).sort(), ["3", "4"]);
      assert.deepEqual(await other.readdir(`/proc/${other.pid}/fd`), ["3"]);
      assert.equal(await other.readlink("/proc/self/fd/3"), "/dev/vfio/vfio");
      assert.equal(await attempt(other.close(4)), "EBADF");
    });

    test("the lowest free fd is reused after a close", async () => {
      const { sh } = await boot(profile);
      for (let i = 0; i < 5; i++) await sh.open("/dev/vfio/vfio", O_RDWR);
      await sh.close(4);
      assert.equal(await sh.open("/dev/vfio/vfio", O_RDWR), 4);
      assert.equal(await sh.open("/dev/vfio/vfio", O_RDWR), 8);
    });

    test("exit closes every fd: the group can be opened by another process and the VF user count drops", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      await openDevice(sh, PF, `${PF} vf_token=${U1}`).then(async (o) => {
        await sh.close(o.device as number);
        await sh.close(o.group);
        await sh.close(o.container);
      });
      const qemu = k.spawn("qemu");
      const o = await openDevice(qemu, VF0, `${VF0} vf_token=${U1}`);
      assert.equal(usersOf(k), 1);
      const path = `/dev/vfio/${await groupOf(sh, VF0)}`;
      assert.equal(await attempt(sh.open(path, O_RDWR)), "EBUSY");
      await qemu.exit();
      assert.equal(usersOf(k), 0);
      assert.equal(typeof (await sh.open(path, O_RDWR)), "number");
      assert.equal(await attempt(qemu.open("/dev/vfio/vfio", O_RDWR)), "ESRCH");
      assert.ok(!(await sh.readdir("/proc")).includes(String(qemu.pid)));
      void o;
    });

    test("/proc/<pid>/comm shows the process name", async () => {
      const { k, sh } = await boot(profile);
      const q = k.spawn("qemu-system-x86");
      assert.equal(await r(sh, `/proc/${q.pid}/comm`), "qemu-system-x86\n");
    });
  });

  describe(`injected RNG and clock [${profile}]`, () => {
    test("a fixed seed gives a fixed PF token; another seed gives another", async () => {
      const a = await bootKernel(specHost(), { profile, rng: new SeededRng(42) });
      const b = await bootKernel(specHost(), { profile, rng: new SeededRng(42) });
      const c = await bootKernel(specHost(), { profile, rng: new SeededRng(43) });
      assert.equal(tokenOf(a), tokenOf(b));
      assert.notEqual(tokenOf(a), tokenOf(c));
    });

    test("the initial token is a version-4 RFC 4122 UUID (uuid_gen)", async () => {
      for (const seed of [1, 2, 3, 4, 5]) {
        const k = await bootKernel(specHost(), { profile, rng: new SeededRng(seed) });
        assert.match(tokenOf(k)!, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      }
    });

    test("model time moves only when advanced; log timestamps follow it", async () => {
      const { k } = await boot(profile);
      const t0 = k.clock.nowMs();
      k.advance(1500);
      assert.equal(k.clock.nowMs(), t0 + 1500);
      const rec = k.log.printk(6, "x");
      assert.equal(rec.tsUsec, (t0 + 1500) * 1000);
    });
  });

  describe(`§2.10 rate limiting [${profile}]`, () => {
    test("each call site prints at most 10 lines per 5 s; the next allowed line after the window is preceded by '<function>: N callbacks suppressed'", async () => {
      const { k, sh } = await bootWithVfs(profile, 1);
      const o = await openDevice(sh, PF, `${PF} vf_token=${U1}`);
      await sh.close(o.device as number);
      const vf = await openDevice(sh, VF0, "0000:ff:00.0");
      const from = k.log.nextSeq;
      const open = (s: string) => attempt(sh.ioctl(vf.group, 0x3b6a, Buffer.from(s + "\0", "latin1")));
      for (let i = 0; i < 13; i++) assert.equal(await open(VF0), "EACCES");
      const req = `vfio-pci ${VF0}: VF token required to access device`;
      assert.deepEqual(since(k, from), Array(10).fill(req));
      // another call site ("Incorrect …") has its own budget
      assert.equal(await open(`${VF0} vf_token=${U2}`), "EACCES");
      assert.equal(since(k, from).at(-1), `vfio-pci ${VF0}: Incorrect VF token provided for device`);
      // exactly 5 s later the window has not ended yet (time_is_before_jiffies is strict)
      await advance(k, 5000);
      assert.equal(await open(VF0), "EACCES");
      assert.equal(since(k, from).length, 11);
      await advance(k, 1);
      const mark = k.log.nextSeq;
      assert.equal(await open(VF0), "EACCES");
      assert.deepEqual(since(k, mark), ["vfio_pci_validate_vf_token: 4 callbacks suppressed", req]);
      const sup = k.log.records.find((x) => x.seq === mark)!;
      assert.equal(sup.level, 4);
      assert.equal(sup.device, undefined, "printk_deferred without a device");
    });

    test("the budget is per call site, not per device", async () => {
      const { k, sh } = await bootWithVfs(profile, 2);
      const o = await openDevice(sh, PF, `${PF} vf_token=${U1}`);
      await sh.close(o.device as number);
      const from = k.log.nextSeq;
      const g0 = await openDevice(sh, VF0, "0000:ff:00.0");
      const g1 = await openDevice(sh, "0000:04:10.2", "0000:ff:00.0");
      for (let i = 0; i < 6; i++) await attempt(sh.ioctl(g0.group, 0x3b6a, Buffer.from(VF0 + "\0")));
      for (let i = 0; i < 6; i++) await attempt(sh.ioctl(g1.group, 0x3b6a, Buffer.from("0000:04:10.2\0")));
      assert.equal(since(k, from).length, 10);
    });

    test("a non-SR-IOV device's 'not a PF or VF' line is rate-limited the same way", async () => {
      const { k, sh } = await boot(profile);
      const o = await openDevice(sh, PLAIN, "0000:ff:00.0");
      const from = k.log.nextSeq;
      for (let i = 0; i < 12; i++) assert.equal(await attempt(sh.ioctl(o.group, 0x3b6a, Buffer.from(`${PLAIN} vf_token=${U1}\0`))), "EINVAL");
      assert.equal(since(k, from).length, 10);
    });
  });
}

test("the model's one-call read of a small file answers as open, read and close do, and leaves no fd behind", async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const slow = async (path: string): Promise<Buffer | string> => {
    try {
      const fd = await sh.open(path, 0);
      try {
        return await sh.read(fd, 65536);
      } finally {
        await sh.close(fd);
      }
    } catch (e) {
      return `${(e as { code?: string }).code} ${(e as { syscall?: string }).syscall}`;
    }
  };
  const fast = async (path: string): Promise<Buffer | string | undefined> => {
    const p = sh.readFile(path, true);
    if (p === undefined) return undefined;
    try {
      return await p;
    } catch (e) {
      return `${(e as { code?: string }).code} ${(e as { syscall?: string }).syscall}`;
    }
  };
  const dev = "/sys/bus/pci/devices/0000:af:00.0";
  for (const path of [`${dev}/vendor`, `${dev}/sriov_totalvfs`, `${dev}/uevent`, `${dev}/nonexistent`, `${dev}/remove`, `${dev}/power`]) {
    const before = sh.fdNumbers();
    assert.deepEqual(await fast(path), await slow(path), path);
    assert.deepEqual(sh.fdNumbers(), before, `${path}: no fd left open`);
  }
  assert.equal(await fast(`${dev}/remove`), "EACCES open", "a write-only attribute is refused at open");
  // reads Linux can block (the device lock, /dev, /proc) are not made in one call
  for (const path of [`${dev}/sriov_numvfs`, `${dev}/driver_override`, "/dev/kmsg", "/proc/self/comm"]) assert.equal(sh.readFile(path, true), undefined, path);
});
