/**
 * Fault injection in the kernel model (kernel.faults): a matching syscall fails with the given
 * errno before it runs and changes nothing; the rule is used up after `count` failures.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import { O_RDWR, O_WRONLY } from "../src/sys/syscalls.js";
import { SysError } from "../src/sys/errno.js";

const NUMVFS = "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs";

async function errnoOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    if (e instanceof SysError) return e.code;
    throw e;
  }
}

async function readNum(sh: { open: (p: string, f: number) => Promise<number>; read: (fd: number, n: number) => Promise<Buffer>; close: (fd: number) => Promise<void> }, path: string): Promise<string> {
  const fd = await sh.open(path, 0);
  const b = await sh.read(fd, 4096);
  await sh.close(fd);
  return b.toString().trim();
}

describe("fault injection", () => {
  test("an injected write fault fails the write with that errno and leaves sriov_numvfs unchanged", async () => {
    const k = await bootKernel();
    const sh = k.spawn("sh");
    k.faults.add({ syscall: "write", path: NUMVFS, errno: "EIO" });
    const fd = await sh.open(NUMVFS, O_WRONLY);
    assert.equal(await errnoOf(sh.write(fd, "2")), "EIO");
    assert.equal(await readNum(sh, NUMVFS), "0");
    // the rule is used up: the next write runs
    assert.equal(await sh.write(fd, "2"), 1);
    assert.equal(await readNum(sh, NUMVFS), "2");
  });

  test("a prefix rule with a count fails that many opens, then opens succeed", async () => {
    const k = await bootKernel();
    const sh = k.spawn("sh");
    k.faults.add({ syscall: "open", path: "/dev/vfio/*", errno: "ENODEV", count: 2 });
    assert.equal(await errnoOf(sh.open("/dev/vfio/vfio", O_RDWR)), "ENODEV");
    assert.equal(await errnoOf(sh.open("/dev/vfio/vfio", O_RDWR)), "ENODEV");
    assert.equal(await sh.open("/dev/vfio/vfio", O_RDWR), 3);
    // other paths were never affected
    assert.equal(await readNum(sh, NUMVFS), "0");
  });

  test("clear removes every rule and an unknown errno is refused", async () => {
    const k = await bootKernel();
    const sh = k.spawn("sh");
    k.faults.add({ syscall: "ioctl", errno: "EIO", count: 5 });
    assert.equal(k.faults.list().length, 1);
    k.faults.clear();
    assert.equal(k.faults.list().length, 0);
    const fd = await sh.open("/dev/vfio/vfio", O_RDWR);
    assert.equal(await sh.ioctl(fd, 0x3b64), 0); // VFIO_GET_API_VERSION
    assert.throws(() => k.faults.add({ syscall: "write", errno: "ENOTANERRNO" }), /unknown errno/);
  });
});
