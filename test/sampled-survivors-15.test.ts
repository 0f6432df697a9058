/**
 * Answers that the survivors of the sampled mutants of seeds 15 and 16 (docs/benchmarks.md)
 * showed unchecked. Each test names the mutant it kills and why the answer it asserts is the
 * right one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import { explainOpen } from "../src/lib/explain.js";
import { kstrtoull } from "../src/kernel/pci/iov.js";
import { ERRNO } from "../src/sys/errno.js";
import { readText, writeText } from "../src/sys/fsutil.js";
import { SysError } from "../src/sys/errno.js";
import type { Syscalls } from "../src/sys/syscalls.js";

/** `sys` with the fds of `pids` unreadable, as /proc/PID/fd of another user's process is to an unprivileged one (EACCES). */
function hidingFdsOf(sys: Syscalls, pids: number[]): Syscalls {
  const hidden = (p: string) => pids.some((pid) => p === `/proc/${pid}/fd`);
  return new Proxy(sys, {
    get(t, prop) {
      if (prop === "readdir") return async (p: string) => (hidden(p) ? Promise.reject(new SysError("EACCES", "open", p)) : t.readdir(p));
      // the batch form too: read one by one through the readdir above
      if (prop === "readdirs") return undefined;
      const v = Reflect.get(t, prop, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
}

// seed 15, src/lib/explain.ts (group-busy's cause, `heldUnknown === null` → `!==`): with nobody
// seen holding the group the cause said "may be open …: null", and with some fds unreadable it
// said "already open …: nobody"
test("explain's EBUSY cause: 'already open' names the holders; with fds it cannot read, 'may be open' says why", { timeout: 60_000 }, async () => {
  const k = await bootKernel();
  const sh = k.spawn("vfioctl");
  const other = k.spawn("other");
  const VF = "0000:af:10.0";
  const busy = (x: Awaited<ReturnType<typeof explainOpen>>) => x.causes.find((c) => c.id === "group-busy")!;
  const free = busy(await explainOpen(sh, VF));
  assert.equal(free.status, "no");
  assert.match(free.cause, /^\/dev\/vfio\/\d+ is already open \(one open file per group\): nobody$/);
  const unknown = busy(await explainOpen(hidingFdsOf(sh, [other.pid]), VF));
  assert.equal(unknown.status, "possible");
  assert.match(unknown.cause, /^\/dev\/vfio\/\d+ may be open \(one open file per group; a device fd keeps its group open after the group fd is closed\): 1 process's fds are not readable to this user \(run as root to see them\)$/);
});

// seed 15, src/kernel/pci/iov.ts kstrtoull (`c <= "9"` → `c < "9"`): the digit 9 was no digit,
// so "9" and "19" were EINVAL (lib/kstrtox.c _parse_integer: '0' <= c <= '9' is the digit c - '0')
test("kstrtoull takes every decimal digit, 9 included, in each base it is a digit of", () => {
  for (let d = 0; d <= 9; d++) assert.equal(kstrtoull(String(d), 10), d);
  assert.deepEqual([kstrtoull("19", 0), kstrtoull("99\n", 10), kstrtoull("0x9f", 0), kstrtoull("9F", 16)], [19, 99, 0x9f, 0x9f]);
  // 8 and 9 are no octal digits: a leading 0 makes base 8
  assert.deepEqual([kstrtoull("07", 0), kstrtoull("09", 0), kstrtoull("9", 8)], [7, -ERRNO.EINVAL, -ERRNO.EINVAL]);
});

// seed 15, src/kernel/base/driver-core.ts removeIdStore (`d.device === device && (subvendor …)`
// → `||`): with subvendor, subdevice and class omitted (any), remove_id took the first dynid,
// whatever its vendor and device
test("remove_id removes the dynid with that vendor and device, not another of the same vendor", { timeout: 60_000 }, async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const drv = "/sys/bus/pci/drivers/vfio-pci";
  const w = (f: string, v: string) => writeText(sh, f, v).then((n) => n, (e: SysError) => e.code);
  assert.equal(await w(`${drv}/new_id`, "8086 1521"), 9);
  assert.equal(await w(`${drv}/new_id`, "8086 1522"), 9);
  assert.equal(await w(`${drv}/remove_id`, "8086 1522"), 9);
  // the second is gone, the first is still there
  assert.equal(await w(`${drv}/remove_id`, "8086 1522"), "ENODEV");
  assert.equal(await w(`${drv}/remove_id`, "8086 1521"), 9);
});

// seed 15, src/kernel/net.ts procRoute (the default route's destination 0 → 1): /proc/net/route
// gave the default route a destination of 1.0.0.0 (01000000), which is no default route
test("/proc/net/route: a default route is destination 0.0.0.0, mask 0, flags UP|GATEWAY, its gateway little-endian; a connected one UP only", { timeout: 60_000 }, async () => {
  const k = await bootKernel();
  k.net.configure("eth0", { up: true, addresses: ["10.0.0.5/24"], routes: ["default via 10.0.0.1", "default"] });
  const sys = k.spawn("t");
  const rows = (await readText(sys, "/proc/net/route")).split("\n").filter((l) => l.startsWith("eth0\t"));
  // net/ipv4/fib_trie.c fib_route_seq_show: "%s\t%08X\t%08X\t%04X\t%d\t%u\t%d\t%08X\t%d\t%u\t%u" of the raw __be32 values
  assert.deepEqual(rows, [
    "eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0",
    "eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0",
    "eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
  ]);
});

// sampled seed 16, src/kernel/pci/pci-sysfs.ts speedString (a digit count moved by one): it
// went through because nothing read a link faster than 2.5 GT/s, and the model printed "16 GT/s
// PCIe" where drivers/pci/probe.c's speed_strings say "16.0 GT/s PCIe" (the lab's igb links are
// all 2.5 GT/s, the only speed the recordings have)
test("current_link_speed and max_link_speed print every PCIe speed as probe.c's speed_strings do", { timeout: 60_000 }, async () => {
  const speeds = [2.5, 5, 8, 16, 32, 64];
  const k = await bootKernel({
    devices: speeds.map((speed, i) => ({ bdf: `0000:0${i + 1}:00.0`, vendor: 0x8086, device: 0x10c9, link: { speed, width: 4 } })),
  } as Parameters<typeof bootKernel>[0]);
  const sh = k.spawn("sh");
  const got: string[] = [];
  for (let i = 0; i < speeds.length; i++) {
    const d = `/sys/bus/pci/devices/0000:0${i + 1}:00.0`;
    got.push(`${await readText(sh, `${d}/current_link_speed`)}|${await readText(sh, `${d}/max_link_speed`)}`);
  }
  assert.deepEqual(
    got,
    ["2.5", "5.0", "8.0", "16.0", "32.0", "64.0"].map((s) => `${s} GT/s PCIe\n|${s} GT/s PCIe\n`),
  );
});

// sampled seed 16, src/kernel/base/driver-core.ts driverAttach (its check under the device lock,
// `!dev.driver && dev.present` → `||`): new_id probed a device that another driver had bound
// while new_id waited for its lock (dd.c __driver_attach checks dev->driver again under
// device_lock, so a device bound meanwhile is left alone)
test("new_id leaves alone a device another driver bound while new_id waited for its device lock", { timeout: 60_000 }, async () => {
  const PLAIN = "0000:05:00.0"; // the built-in host's 144d:a808 NVMe, on nvme
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const dev = k.pci.devices.get(PLAIN)!;
  const driverOf = async () => (await sh.readlink(`/sys/bus/pci/devices/${PLAIN}/driver`).catch(() => null))?.split("/").pop() ?? null;
  assert.equal(await writeText(sh, "/sys/bus/pci/drivers/nvme/unbind", PLAIN), PLAIN.length);
  assert.equal(await driverOf(), null);
  // another task holds the device lock
  const holder = k.kernelTask();
  let release!: () => void;
  const held = k.withDeviceLock(holder, dev, () => new Promise<void>((r) => (release = r)));
  await new Promise((r) => setImmediate(r));
  // vfio-pci's new_id finds the device unbound and waits for its lock …
  const newId = writeText(sh, "/sys/bus/pci/drivers/vfio-pci/new_id", "144d a808");
  await new Promise((r) => setTimeout(r, 20));
  // … while the holder binds it to nvme, then lets go
  assert.equal(await k.drivers.probe(holder, k.drivers.driver("nvme")!, dev), 0);
  release();
  await held;
  assert.equal(await newId, 9);
  assert.equal(await driverOf(), "nvme", "still nvme's: new_id did not probe it again");
});
