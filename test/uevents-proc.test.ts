/**
 * Model additions used by the persisted simulated host: uevents queued by the driver core
 * (kernel.takeUevents), /proc/<pid>/stat with starttime, /proc/stat with btime.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import { readAttr, writeText } from "../src/sys/fsutil.js";

const PF = "0000:01:00.0";

describe("uevents", () => {
  test("boot queues add and bind events, and takeUevents empties the queue", async () => {
    const k = await bootKernel();
    const evs = k.takeUevents();
    const pf = evs.filter((e) => e.kernel === PF);
    assert.deepEqual(pf.map((e) => e.action), ["add", "bind"]);
    assert.equal(pf[1]!.driver, "igb");
    assert.equal(pf[0]!.subsystem, "pci");
    assert.match(pf[0]!.devpath, /^\/devices\/pci0000:00\/.*0000:01:00\.0$/);
    assert.deepEqual(k.takeUevents(), []);
  });

  test("unbind and bind through sysfs queue unbind (with the old driver) then bind events in order", async () => {
    const k = await bootKernel();
    const sh = k.spawn("sh");
    k.takeUevents();
    await writeText(sh, `/sys/bus/pci/devices/${PF}/driver/unbind`, PF);
    await writeText(sh, `/sys/bus/pci/devices/${PF}/driver_override`, "vfio-pci");
    await writeText(sh, "/sys/bus/pci/drivers/vfio-pci/bind", PF);
    const evs = k.takeUevents().map((e) => `${e.action} ${e.kernel} ${e.driver ?? "-"}`);
    assert.deepEqual(evs, [`unbind ${PF} igb`, `bind ${PF} vfio-pci`]);
  });

  test("enabling VFs queues add and bind events for each VF", async () => {
    const k = await bootKernel();
    const sh = k.spawn("sh");
    k.takeUevents();
    await writeText(sh, `/sys/bus/pci/devices/${PF}/sriov_numvfs`, "2");
    const adds = k.takeUevents().filter((e) => e.action === "add");
    assert.equal(adds.length, 2);
  });
});

describe("/proc stat files", () => {
  test("/proc/<pid>/stat has the pid, comm and a starttime in clock ticks from the model clock", async () => {
    const k = await bootKernel();
    k.advance(12_340);
    const p = k.spawn("holder");
    const f = (await readAttr(p, `/proc/${p.pid}/stat`)).split(" ");
    assert.equal(f.length, 52);
    assert.equal(f[0], String(p.pid));
    assert.equal(f[1], "(holder)");
    assert.equal(f[2], "S");
    assert.equal(f[21], "1234"); // 12.34 s at USER_HZ 100
  });

  test("/proc/stat has the btime line and /proc/uptime the model time", async () => {
    const k = await bootKernel();
    k.btime = 1_800_000_000;
    k.advance(2_500);
    const sh = k.spawn("sh");
    assert.match(await readAttr(sh, "/proc/stat"), /^btime 1800000000$/m);
    assert.equal(await readAttr(sh, "/proc/uptime"), "2.50 0.00");
  });
});
