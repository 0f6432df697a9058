/**
 * Answers that the survivors of the sampled mutants of seed 13 (docs/benchmarks.md) showed
 * unchecked: the uevents a write to a device's `uevent` file synthesizes (what `udevadm trigger
 * --action=…` sends) and the DRIVER= they carry; PCI domains above 9 (a host file's addresses
 * and the VFs made from them); `--timeout 0` for an unbind that blocks.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { HostDesc } from "../src/kernel/host/host-file.js";
import { applyRules, parseRule, type UdevRule } from "../src/sim/udev.js";
import { bootNeedsFrom, udevRule } from "../src/host/units.js";
import { readAttr, writeText } from "../src/sys/fsutil.js";
import { formatBdf, parseBdf } from "../src/kernel/pci/bdf.js";
import { setToken } from "../src/lib/tokenops.js";
import { IN_DOCKER, startConsumer } from "../testlib/consumers.js";
import { runCli } from "../testlib/cli.js";

const HOST: HostDesc = {
  name: "survivors-13",
  modules: { vfio_pci: { enable_sriov: true } },
  devices: [
    { bdf: "0000:10:00.0", vendor: 0x8086, device: 0x159b, class: 0x020000, driver: "vfio-pci", sriov: { total_vfs: 4, offset: 1, stride: 1, vf_device: 0x1889, num_vfs: 0 } },
    { bdf: "0000:20:00.0", vendor: 0x8086, device: 0x1521, class: 0x020000, driver: "igb" },
    { bdf: "0000:30:00.0", vendor: 0x8086, device: 0x10d3, class: 0x020000 },
  ],
};
const VFIO_PF = "0000:10:00.0";
const dev = (bdf: string) => `/sys/bus/pci/devices/${bdf}`;

const rulesOf = (text: string): UdevRule[] =>
  text
    .split("\n")
    .filter((l) => l.trim() && !l.startsWith("#"))
    .map((l, i) => {
      const r = parseRule(l, `t.rules:${i + 1}`);
      assert.ok(typeof r !== "string", String(r));
      return r;
    });

describe("a write to a device's uevent file (udevadm trigger)", () => {
  test("the event carries DRIVER= as the uevent file shows it, for each action, bound or not", { timeout: 60_000 }, async () => {
    const k = await bootKernel(HOST, { profile: "6.12.58" });
    const sh = k.spawn("udevadm");
    for (const bdf of [VFIO_PF, "0000:20:00.0", "0000:30:00.0"]) {
      const shown = /^DRIVER=(.*)$/m.exec(await readAttr(sh, `${dev(bdf)}/uevent`))?.[1];
      assert.equal(shown, { [VFIO_PF]: "vfio-pci", "0000:20:00.0": "igb" }[bdf], bdf);
      for (const action of ["add", "bind", "unbind", "remove"] as const) {
        k.takeUevents();
        await writeText(sh, `${dev(bdf)}/uevent`, action);
        const evs = k.takeUevents();
        assert.deepEqual(
          evs.map((e) => [e.action, e.kernel, e.driver, e.synth]),
          [[action, bdf, shown, true]],
          `${action} on ${bdf}`,
        );
      }
    }
    // the device is still there and bound: a synthesized event changes nothing
    assert.equal((await sh.readlink(`${dev(VFIO_PF)}/driver`)).split("/").pop(), "vfio-pci");
  });

  test("`udevadm trigger --action=bind` on a vfio-pci PF runs vfioctl's installed rule; coldplug's add matches DRIVER== too", { timeout: 60_000 }, async () => {
    const k = await bootKernel(HOST, { profile: "6.12.58" });
    const sh = k.spawn("udevadm");
    const rules = rulesOf(udevRule(bootNeedsFrom()));
    assert.equal(rules.length, 1, "the installed file has one rule");
    const attr = (bdf: string) => async (n: string) => readAttr(sh, `${dev(bdf)}/${n}`).catch(() => undefined);
    const trigger = async (bdf: string, action: string) => {
      k.takeUevents();
      await writeText(sh, `${dev(bdf)}/uevent`, action);
      const [ev, ...more] = k.takeUevents();
      assert.ok(ev && more.length === 0);
      return ev;
    };
    const bind = await trigger(VFIO_PF, "bind");
    assert.deepEqual((await applyRules(rules, bind, attr(VFIO_PF))).run, [`/usr/bin/systemctl --no-block start vfioctl-pf@${VFIO_PF}.service`]);
    // a device on another driver does not start it
    assert.deepEqual((await applyRules(rules, await trigger("0000:20:00.0", "bind"), attr("0000:20:00.0"))).run, []);
    // udev's coldplug (`udevadm trigger --action=add`) on a bound device: DRIVER= is there
    const coldplug = rulesOf('ACTION=="add", DRIVER=="vfio-pci", ENV{SYNTH_UUID}=="0", RUN+="/usr/bin/vfioctl show %k"');
    assert.deepEqual((await applyRules(coldplug, await trigger(VFIO_PF, "add"), attr(VFIO_PF))).run, [`/usr/bin/vfioctl show ${VFIO_PF}`]);
    assert.deepEqual((await applyRules(coldplug, await trigger("0000:30:00.0", "add"), attr("0000:30:00.0"))).run, []);
    // a synthesized unbind of a bound device has DRIVER= (dev->driver is set); a real one has not
    const anyUnbind = rulesOf('ACTION=="unbind", DRIVER=="vfio-pci", RUN+="/usr/bin/vfioctl show %k"');
    assert.deepEqual((await applyRules(anyUnbind, await trigger(VFIO_PF, "unbind"), attr(VFIO_PF))).run, [`/usr/bin/vfioctl show ${VFIO_PF}`]);
    k.takeUevents();
    await writeText(sh, "/sys/bus/pci/drivers/vfio-pci/unbind", VFIO_PF);
    const real = k.takeUevents().filter((e) => e.action === "unbind");
    assert.deepEqual(real.map((e) => [e.kernel, e.driver, e.synth]), [[VFIO_PF, "vfio-pci", undefined]]);
    assert.deepEqual((await applyRules(anyUnbind, real[0]!, attr(VFIO_PF))).run, []);
  });
});

test("devices in PCI domains above 9 keep their addresses: a host file's, their VFs', and parseBdf's", { timeout: 60_000 }, async () => {
  const domains = ["0001", "000f", "0010", "00a0", "1000", "ffff"];
  for (const d of domains) {
    const a = parseBdf(`${d}:01:00.0`);
    assert.equal(a?.domain, Number.parseInt(d, 16), d);
    assert.equal(formatBdf(a!.domain, a!.bus, a!.devfn), `${d}:01:00.0`);
  }
  const k = await bootKernel(
    {
      name: "domains",
      devices: [
        { bdf: "0010:01:00.0", vendor: 0x8086, device: 0x1521, class: 0x020000, driver: "igb", sriov: { total_vfs: 2, offset: 0x80, stride: 1, vf_device: 0x1520, num_vfs: 0 } },
        ...domains.filter((d) => d !== "0010").map((d) => ({ bdf: `${d}:02:00.0`, vendor: 0x8086, device: 0x10d3, class: 0x020000 })),
      ],
    },
    { profile: "6.12.58" },
  );
  const sh = k.spawn("sh");
  const listed = () => sh.readdir("/sys/bus/pci/devices").then((l) => [...l].sort());
  assert.deepEqual(await listed(), ["0001:02:00.0", "000f:02:00.0", "0010:01:00.0", "00a0:02:00.0", "1000:02:00.0", "ffff:02:00.0"]);
  assert.match(await sh.readlink("/sys/bus/pci/devices/ffff:02:00.0"), /\/devices\/pciffff:00\/ffff:00:[0-9a-f]{2}\.\d\/ffff:02:00\.0$/);
  await writeText(sh, "/sys/bus/pci/devices/0010:01:00.0/sriov_numvfs", "2");
  assert.deepEqual((await listed()).filter((b) => b.startsWith("0010:")), ["0010:01:00.0", "0010:01:10.0", "0010:01:10.1"]);
  assert.equal((await sh.readlink("/sys/bus/pci/devices/0010:01:10.1/physfn")).split("/").pop(), "0010:01:00.0");
});

test("--timeout 0: an unbind that blocks gives up at once (exit 4, 'after 0 ms'), not after the default 5000 ms", { timeout: 60_000 }, async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const T = "2ab74924-c335-45f4-9b16-8569e5b08258";
  await setToken(sh, "0000:af:00.0", T);
  // a holder the pre-check does not see as a group holder (device fds only): the write blocks
  const c = await startConsumer(k, "dpdk-testpmd", "0000:af:10.0", IN_DOCKER, T);
  await c.dropGroupFds();
  const t0 = Date.now();
  const r = await runCli(k, ["unbind", "0000:af:10.0"], { timeoutMs: 0 });
  const ms = Date.now() - t0;
  assert.equal(r.code, 4, r.err);
  assert.match(r.err, /still blocked after 0 ms \(0000:af:10\.0\); the unbind stays pending/);
  assert.ok(ms < 4000, `gave up after ${ms} ms`);
  // another --timeout: the same message with its time
  const d = await runCli(k, ["unbind", "0000:af:10.0"], { timeoutMs: 30 });
  assert.match(d.err, /still blocked after 30 ms/);
  await c.proc.exit();
});
