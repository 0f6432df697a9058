import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { Kernel } from "../src/kernel/kernel.js";
import { main } from "../src/cli/main.js";
import { EXIT } from "../src/cli/context.js";
import { inventory } from "../src/lib/inventory.js";
import { bindDriver, unbindDriver } from "../src/lib/bind.js";
import { setNumVfs } from "../src/lib/sriov.js";
import { hostUse, parseFibTrieLocal, parseIfInet6, parseIpv6Route, parseMountinfo, parseProcRoute } from "../src/lib/hostuse.js";
import { resolveDevice } from "../src/lib/resolve.js";
import { VfioctlError } from "../src/lib/errors.js";
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import { readAttr, readText } from "../src/sys/fsutil.js";
import { materialize } from "../src/sim/materialize.js";
import { runCli } from "../testlib/cli.js";

const PF = "0000:01:00.0"; // the default host's igb PF (eth0), sriov_totalvfs 7 under igb

/** Everything a changing command could change, as one string: the inventory, every driver_override and sriov_numvfs, the kernel log. */
async function snapshot(k: Kernel): Promise<string> {
  const sh = k.spawn("snapshot");
  const inv = await inventory(sh, { holders: false });
  const raw: string[] = [];
  for (const b of await sh.readdir("/sys/bus/pci/devices")) {
    raw.push(`${b} ${await readAttr(sh, `/sys/bus/pci/devices/${b}/driver_override`)}`);
    try {
      raw.push(`${b} numvfs ${await readAttr(sh, `/sys/bus/pci/devices/${b}/sriov_numvfs`)}`);
    } catch {
      /* not a PF */
    }
  }
  await sh.exit();
  return JSON.stringify({ inv, raw, log: k.log.records.length });
}

function upEth0(k: Kernel): void {
  k.net.configure("eth0", { up: true, addresses: ["10.0.0.5/24"], routes: ["default via 10.0.0.1"] });
}

// ---------------------------------------------------------------- host usage

test("the model's igb registers eth0 under its PCI device, with flags, operstate and /proc/net tables that follow its configuration", async () => {
  const k = await bootKernel();
  const sys = k.spawn("t");
  assert.deepEqual(await sys.readdir(`/sys/bus/pci/devices/${PF}/net`), ["eth0"]);
  assert.equal(await sys.readlink("/sys/class/net/eth0/device"), `../../../${PF}`);
  assert.equal(await readAttr(sys, "/sys/class/net/eth0/flags"), "0x1002");
  assert.equal(await readAttr(sys, "/sys/class/net/eth0/operstate"), "down");
  assert.deepEqual(await hostUse(sys, PF), [], "a down interface without addresses is not in use");
  upEth0(k);
  assert.equal(await readAttr(sys, "/sys/class/net/eth0/flags"), "0x1003");
  const route = parseProcRoute(await readText(sys, "/proc/net/route"));
  assert.ok(route.some((r) => r.iface === "eth0" && r.mask === 0 && r.gw !== 0), JSON.stringify(route));
  assert.deepEqual(parseFibTrieLocal(await readText(sys, "/proc/net/fib_trie")).sort(), ["10.0.0.5", "192.168.122.10"], "eth0 beside the default host's own eth1");
  const uses = await hostUse(sys, PF);
  assert.equal(uses.length, 1);
  assert.equal(uses[0]!.text, "eth0 is up with address 10.0.0.5/24 and the default route");
  // unbinding igb unregisters the netdev; rebinding gives it the same name back
  await unbindDriver(sys, PF, { force: true });
  assert.ok(!(await sys.readdir("/sys/class/net")).includes("eth0"));
  assert.deepEqual(await hostUse(sys, PF), []);
  await bindDriver(sys, PF, "igb");
  assert.ok((await sys.readdir("/sys/class/net")).includes("eth0"));
  await sys.exit();
});

test("bind and unbind refuse a device whose interface the host uses, with the reason and --force (exit 1), and change nothing", async () => {
  const k = await bootKernel();
  upEth0(k);
  const before = await snapshot(k);
  const msg = `${PF}: in use by this host: eth0 is up with address 10.0.0.5/24 and the default route; unbinding igb takes it down. Use --force to unbind anyway.`;
  const sys = k.spawn("t");
  await assert.rejects(bindDriver(sys, PF, "vfio-pci"), (e: unknown) => e instanceof VfioctlError && e.code === "IN_USE" && e.message === msg);
  await assert.rejects(unbindDriver(sys, PF), (e: unknown) => e instanceof VfioctlError && e.code === "IN_USE");
  for (const argv of [["bind", PF, "vfio-pci"], ["unbind", PF], ["bind", "eth0", "vfio-pci", "--dry-run"]]) {
    const r = await runCli(k, argv);
    assert.equal(r.code, EXIT.NO, argv.join(" "));
    assert.ok(r.err.includes(msg), r.err);
  }
  assert.equal(await snapshot(k), before);
  // down, but still with an address in the tables? Linux drops the local routes with the link; enslaved counts on its own
  k.net.configure("eth0", { master: "bond0" });
  await assert.rejects(bindDriver(sys, PF, "vfio-pci"), /eth0 is down, enslaved to bond0; unbinding igb takes it down/);
  k.net.configure("eth0", { up: true, addresses: ["2001:db8::5/64"] });
  await assert.rejects(bindDriver(sys, PF, "vfio-pci"), /eth0 is up with address 2001:db8::5\/64;/);
  const r = await runCli(k, ["bind", PF, "vfio-pci", "--force"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /bound to vfio-pci \(was igb\)/);
  await sys.exit();
});

test("sriov refuses removing VFs whose interfaces the host uses unless --force; the PF's own interface does not count", async () => {
  const k = await bootKernel();
  const sys = k.spawn("t");
  upEth0(k);
  await setNumVfs(sys, PF, 2);
  const vfIfs: string[] = [];
  for (const n of await sys.readdir("/sys/class/net")) if ((await sys.readlink(`/sys/class/net/${n}/device`)).includes("0000:01:10.")) vfIfs.push(n);
  assert.equal(vfIfs.length, 2, "igbvf registers an interface per VF");
  assert.equal((await setNumVfs(sys, PF, 0)).to, 0, "the PF's eth0 is not taken away by removing VFs");
  await setNumVfs(sys, PF, 2);
  k.net.configure(vfIfs[1]!, { up: true });
  const before = await snapshot(k);
  const r = await runCli(k, ["sriov", PF, "off"]);
  assert.equal(r.code, EXIT.NO);
  assert.match(r.err, new RegExp(`${PF}: in use by this host: 0000:01:10\\.\\d: ${vfIfs[1]} is up; removing its 2 VFs takes it down\\. Use --force to remove them anyway\\.`));
  assert.equal(await snapshot(k), before);
  assert.equal((await runCli(k, ["sriov", PF, "off", "--force"])).code, EXIT.OK);
  await sys.exit();
});

test("host usage of block devices from a fake /sys and /proc: mounted (mountinfo major:minor), held by dm, swap", async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-blk-"));
  const w = (p: string, s: string) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), s);
  };
  const NV = "0000:05:00.0";
  fs.mkdirSync(path.join(root, "sys/bus/pci/devices", NV, "nvme/nvme0/nvme0n1"), { recursive: true });
  w("sys/block/nvme0n1/dev", "259:0\n");
  w("sys/block/nvme0n1/nvme0n1p1/dev", "259:1\n");
  w("sys/block/nvme0n1/nvme0n1p2/dev", "259:2\n");
  w("sys/block/nvme0n1/nvme0n1p3/dev", "259:3\n");
  fs.mkdirSync(path.join(root, "sys/block/nvme0n1/nvme0n1p3/holders/dm-0"), { recursive: true });
  w("proc/self/mountinfo", "22 1 259:1 / /boot\\040efi rw,relatime shared:1 - vfat /dev/nvme0n1p1 rw\n23 1 0:21 / /proc rw - proc proc rw\n");
  w("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/nvme0n1p2                          partition\t1048572\t0\t-2\n");
  const sys = new LinuxSyscalls({ root });
  const uses = await hostUse(sys, NV);
  assert.deepEqual(
    uses.map((u) => u.text),
    ["nvme0n1p1 (259:1) is mounted on /boot efi", "nvme0n1p2 (259:2) is in use as swap", "nvme0n1p3 (259:3) is held by dm-0"],
  );
  // the real backend's net tables, as the kernel prints them
  w("proc/net/route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth2\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\neth2\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n");
  w("proc/net/fib_trie", "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.0.0/24 2 0 2\n        |-- 10.0.0.0\n           /24 link UNICAST\n        |-- 10.0.0.7\n           /32 host LOCAL\n");
  w("proc/net/if_inet6", "fe800000000000005054fffe123456 02 40 20 80     eth2\n20010db8000000000000000000000007 02 40 00 80     eth2\n".replace("fe800000000000005054fffe123456", "fe80000000000000505400fffe123456"));
  w("proc/net/ipv6_route", "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth2\nff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth2\n");
  const NIC = "0000:02:00.0";
  fs.mkdirSync(path.join(root, "sys/bus/pci/devices", NIC, "net/eth2"), { recursive: true });
  w("sys/class/net/eth2/flags", "0x1003\n");
  const nu = await hostUse(sys, NIC);
  assert.deepEqual(nu.map((u) => u.text), ["eth2 is up with addresses 10.0.0.7/24, 2001:db8::7/64 and the default route"]);
  assert.deepEqual(parseIfInet6(fs.readFileSync(path.join(root, "proc/net/if_inet6"), "utf8")), [{ iface: "eth2", address: "2001:db8::7/64", prefix: "2001:db8::/64" }]);
  assert.deepEqual(parseIpv6Route(fs.readFileSync(path.join(root, "proc/net/ipv6_route"), "utf8")), [{ iface: "eth2", dst: "2001:db8::/64" }]);
  assert.deepEqual([...parseMountinfo("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")], [["8:1", ["/"]]]);
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

// ---------------------------------------------------------------- --dry-run

test("--dry-run prints the exact writes in order and changes nothing (bind, unbind, sriov)", async () => {
  const k = await bootKernel();
  const before = await snapshot(k);
  let r = await runCli(k, ["bind", PF, "vfio-pci", "--dry-run"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.equal(
    r.out,
    [
      `${PF}: dry run, nothing changed; would write:`,
      `  write "vfio-pci" to /sys/bus/pci/devices/${PF}/driver_override   # only vfio-pci may take the device`,
      `  write "${PF}" to /sys/bus/pci/devices/${PF}/driver/unbind   # igb lets go`,
      `  write "${PF}" to /sys/bus/pci/drivers_probe   # vfio-pci probes it`,
      "",
    ].join("\n"),
  );
  r = await runCli(k, ["bind", PF, "vfio-pci", "--dry-run", "--clear-override"]);
  assert.match(r.out, /write "\\n" to \/sys\/bus\/pci\/devices\/0000:01:00\.0\/driver_override {3}# clear driver_override; the device stays bound\n$/);
  r = await runCli(k, ["unbind", PF, "--dry-run"]);
  assert.match(r.out, /^ {2}write "0000:01:00\.0" to \/sys\/bus\/pci\/devices\/0000:01:00\.0\/driver\/unbind/m);
  r = await runCli(k, ["sriov", PF, "3", "--dry-run"], { json: true });
  const j = JSON.parse(r.out) as { dryRun: boolean; changed: boolean; plan: string[] };
  assert.equal(j.dryRun, true);
  assert.equal(j.changed, false);
  assert.deepEqual(j.plan, [`write "3" to /sys/bus/pci/devices/${PF}/sriov_numvfs   # creates 3 VFs`]);
  assert.equal(await snapshot(k), before);
  // with VFs: via zero is two writes
  await runCli(k, ["sriov", PF, "2"]);
  const mid = await snapshot(k);
  r = await runCli(k, ["sriov", PF, "4", "--via-zero", "--dry-run"]);
  assert.match(r.out, /write "0" to .*sriov_numvfs {3}# destroys the 2 VFs\n {2}write "4" to .*sriov_numvfs {3}# creates 4 VFs/);
  assert.equal(await snapshot(k), mid);
});

// ---------------------------------------------------------------- --root: a copied tree is for reading

test("--root: changing commands are refused naming the tree and the file (exit 2, tree unchanged); a missing root is named; list says tree DIR", async () => {
  const k = await bootKernel();
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-ro-"));
  await materialize(k.spawn("m"), tree);
  const numvfs = path.join(tree, "sys/bus/pci/devices", PF, "sriov_numvfs");
  const override = path.join(tree, "sys/bus/pci/devices", PF, "driver_override");
  const [n0, o0] = [fs.readFileSync(numvfs, "utf8"), fs.readFileSync(override, "utf8")];
  const cli = async (argv: string[]) => {
    let out = "";
    let err = "";
    const code = await main(argv, { out: (s) => (out += s + "\n"), err: (s) => (err += s + "\n") });
    return { code, out, err };
  };
  let r = await cli(["--root", tree, "sriov", PF, "2"]);
  assert.equal(r.code, EXIT.USAGE, r.err);
  assert.ok(r.err.includes(`--root ${tree} is a copied tree, read-only: sriov would write ${tree}/sys/bus/pci/devices/${PF}/sriov_numvfs; run without --root on the host itself`), r.err);
  r = await cli(["--root", tree, "bind", PF, "vfio-pci", "--force"]);
  assert.equal(r.code, EXIT.USAGE, r.err);
  assert.match(r.err, /bind would write .*driver_override/);
  r = await cli(["--root", tree, "unbind", PF, "--force"]);
  assert.equal(r.code, EXIT.USAGE, r.err);
  assert.equal(fs.readFileSync(numvfs, "utf8"), n0);
  assert.equal(fs.readFileSync(override, "utf8"), o0, "no \\n written over the override");
  // the seam itself refuses opening for writing under a read-only root
  const sys = new LinuxSyscalls({ root: tree });
  await assert.rejects(sys.open(`/sys/bus/pci/devices/${PF}/sriov_numvfs`, 1), /EROFS .*--root .* is a copied tree, read-only/);
  // --dry-run still answers there
  r = await cli(["--root", tree, "sriov", PF, "2", "--dry-run"]);
  assert.equal(r.code, EXIT.OK, r.err);
  r = await cli(["--root", tree, "list", "--no-holders"]);
  assert.match(r.out, new RegExp(`\\(tree ${tree}\\)`));
  assert.doesNotMatch(r.out, /this host/);
  r = await cli(["--root", "/nonexistent", "list"]);
  assert.equal(r.code, EXIT.USAGE);
  assert.match(r.err, /--root \/nonexistent: ENOENT/);
  // commands that change the host's own files (config, store, journal, units, CDI spec) are refused
  // on a copied tree before anything runs; with --dry-run they answer
  for (const argv of [["apply"], ["install"], ["uninstall"], ["cdi"], ["config", "install", "examples/default-host.yaml"], ["token", "retire", PF]]) {
    r = await cli(["--root", tree, ...argv]);
    assert.equal(r.code, EXIT.USAGE, `${argv.join(" ")}: ${r.err}`);
    assert.ok(r.err.includes(`--root ${tree} is a copied tree, read-only: ${argv.slice(0, argv[0] === "config" || argv[0] === "token" ? 2 : 1).join(" ")} would change this host's files`), r.err);
  }
  const to = path.join(tree, "host.yaml");
  r = await cli(["--root", tree, "config", "install", "examples/default-host.yaml", "--to", to, "--dry-run"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /dry run, nothing changed; would write .*host\.yaml/);
  assert.equal(fs.existsSync(to), false);
  fs.rmSync(tree, { recursive: true });
});

test("a rolled-back bind on the model leaves driver_override exactly as it was", async () => {
  const k = await bootKernel();
  const sys = k.spawn("t");
  // drivers_probe fails: the override written first is put back as it was ("\n" clears it on sysfs)
  k.faults.add({ syscall: "write", path: "/sys/bus/pci/drivers_probe", errno: "EIO" });
  await assert.rejects(bindDriver(sys, PF, "vfio-pci", { force: true }), /EIO.*rolled back \(driver now igb\)/);
  assert.equal(await readAttr(sys, `/sys/bus/pci/devices/${PF}/driver_override`), "(null)");
  await sys.exit();
});

// ---------------------------------------------------------------- driver_override left behind

test("bind says driver_override stays, and --clear-override clears it keeping the device bound", async () => {
  const k = await bootKernel();
  let r = await runCli(k, ["bind", PF, "vfio-pci"]);
  assert.equal(r.code, EXIT.OK);
  assert.match(r.err, /driver_override stays vfio-pci, so 0000:01:00\.0 comes back to vfio-pci after an unbind, a re-probe or a hotplug; `vfioctl bind 0000:01:00\.0 vfio-pci --clear-override` clears it/);
  r = await runCli(k, ["bind", PF, "vfio-pci", "--clear-override"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /driver_override cleared; still bound to vfio-pci/);
  const sys = k.spawn("t");
  assert.equal(await readAttr(sys, `/sys/bus/pci/devices/${PF}/driver_override`), "(null)");
  assert.match(await sys.readlink(`/sys/bus/pci/devices/${PF}/driver`), /vfio-pci$/);
  // in one go: bound, then cleared, nothing said about a leftover
  r = await runCli(k, ["bind", PF, "igb", "--clear-override"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.doesNotMatch(r.err, /stays/);
  assert.equal(await readAttr(sys, `/sys/bus/pci/devices/${PF}/driver_override`), "(null)");
  await sys.exit();
});

// ---------------------------------------------------------------- device names

test("devices by short BDF, uppercase, interface name; an unknown interface is named with the host's interfaces", async () => {
  const k = await bootKernel();
  const sys = k.spawn("t");
  assert.equal(await resolveDevice(sys, "01:00.0"), PF);
  assert.equal(await resolveDevice(sys, "0000:AF:00.0"), "0000:af:00.0");
  assert.equal(await resolveDevice(sys, "eth0"), PF);
  await assert.rejects(resolveDevice(sys, "eth9"), (e: unknown) => e instanceof VfioctlError && e.code === "NO_DEVICE" && /no network interface "eth9" .*interfaces of PCI devices: eth0 \(0000:01:00\.0\)/.test(e.message));
  await assert.rejects(resolveDevice(sys, "../../etc"), /expected a PCI address/);
  const r = await runCli(k, ["sriov", "eth0", "2"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /0000:01:00\.0: 0 → 2 VFs/);
  await sys.exit();
});

test("bind takes several devices (driver last, or first as dpdk-devbind writes it); a failure on one is reported and the rest are done", async () => {
  const k = await bootKernel();
  await runCli(k, ["sriov", PF, "2"]);
  let r = await runCli(k, ["bind", "01:10.0", "01:10.2", "vfio-pci"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /^0000:01:10\.0: bound to vfio-pci \(was igbvf\)$/m);
  assert.match(r.out, /^0000:01:10\.2: bound to vfio-pci \(was igbvf\)$/m);
  r = await runCli(k, ["bind", "igbvf", "01:10.0", "eth9", "01:10.2"]);
  assert.equal(r.code, EXIT.USAGE);
  assert.match(r.err, /vfioctl bind eth9: bdf: no network interface "eth9"/);
  assert.match(r.out, /^0000:01:10\.0: bound to igbvf \(was vfio-pci, override vfio-pci\)$/m);
  assert.match(r.out, /^0000:01:10\.2: bound to igbvf \(was vfio-pci, override vfio-pci\)$/m);
  r = await runCli(k, ["bind", "01:10.0", "01:10.2", "vfio-pci"], { json: true });
  const j = (JSON.parse(r.out) as { schema: string; results: { bdf: string; driver: string }[] }).results;
  assert.deepEqual(j.map((x) => [x.bdf, x.driver]), [["0000:01:10.0", "vfio-pci"], ["0000:01:10.2", "vfio-pci"]]);
});

// ---------------------------------------------------------------- ERANGE

test("sriov above sriov_totalvfs says it as Linux does (ERANGE, exit 3) and changes nothing", async () => {
  const k = await bootKernel();
  const before = await snapshot(k);
  const r = await runCli(k, ["sriov", "0000:01:00.0", "8"]);
  assert.equal(r.code, EXIT.KERNEL);
  assert.match(r.err, /^vfioctl sriov: 0000:01:00\.0: sriov_numvfs 8: ERANGE \(Numerical result out of range\): the device supports at most 7 VFs \(sriov_totalvfs\)$/m);
  assert.equal(await snapshot(k), before);
});

// ---------------------------------------------------------------- list and show: interfaces, NUMA node, pci.ids names

const FIXTURE_IDS = path.join(import.meta.dirname, "..", "..", "test", "fixtures", "pci.ids");

test("pci.ids: only the vendor asked for is parsed; names are cached; no file gives null names", async () => {
  const { PciIds } = await import("../src/lib/pciids.js");
  const ids = new PciIds(FIXTURE_IDS);
  assert.deepEqual(ids.names(0x8086, 0x10c9), { vendor: "Intel Corporation", device: "82576 Gigabit Network Connection" });
  assert.deepEqual(ids.names(0x8086, 0x10ca), { vendor: "Intel Corporation", device: "82576 Virtual Function" }, "a subsystem line in between is skipped");
  assert.deepEqual(ids.names(0x8086, 0x1234), { vendor: "Intel Corporation", device: null });
  assert.deepEqual(ids.names(0x15b3, 0x1017), { vendor: "Mellanox Technologies", device: "MT27800 Family [ConnectX-5]" });
  assert.deepEqual(ids.names(0x1d0f, 0x0053), { vendor: null, device: null });
  assert.deepEqual(new PciIds(null).names(0x8086, 0x10c9), { vendor: null, device: null });
  assert.deepEqual(new PciIds("/nonexistent/pci.ids").names(0x8086, 0x10c9), { vendor: null, device: null });
});

test("list and show give interfaces, NUMA node (-1: none) and pci.ids names; --json adds fields", async () => {
  const k = await bootKernel();
  const env = { VFIOCTL_PCI_IDS: FIXTURE_IDS };
  let r = await runCli(k, ["list"], { env });
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /^PF 0000:01:00\.0 .* igb +eth0 {2}numa 0 {2}group 0 /m);
  assert.match(r.out, /^ {5}Intel Corporation 82576 Gigabit Network Connection$/m);
  r = await runCli(k, ["list"], { env: { VFIOCTL_PCI_IDS: "" } });
  assert.doesNotMatch(r.out, /Intel Corporation/);
  r = await runCli(k, ["list"], { env, json: true });
  const inv = JSON.parse(r.out) as { pfs: { bdf: string; interfaces: string[]; numaNode: number | null; vendorName: string | null; deviceName: string | null; driver: string }[] };
  const pf = inv.pfs.find((p) => p.bdf === PF)!;
  assert.deepEqual([pf.interfaces, pf.numaNode, pf.vendorName, pf.deviceName, pf.driver], [["eth0"], 0, "Intel Corporation", "82576 Gigabit Network Connection", "igb"]);
  r = await runCli(k, ["show", "eth0"], { env });
  assert.match(r.out, /^name +Intel Corporation 82576 Gigabit Network Connection$/m);
  assert.match(r.out, /^interfaces +eth0$/m);
  assert.match(r.out, /^numa node +0$/m);
  // a device without a NUMA node (numa_node -1)
  const other = [...k.pci.devices.values()].find((d) => d.name === PF)!;
  other.numaNode = -1;
  r = await runCli(k, ["show", "01:00.0"], { env });
  assert.match(r.out, /^numa node +\(none\)$/m);
});

test("token set/rotate --dry-run print the opens and ioctls in order with <token>, write no store file and change nothing; --root refuses token set before the store is written", async () => {
  const k = await bootKernel();
  const { simRoot } = await import("../testlib/cli.js");
  const files = simRoot();
  const before = await snapshot(k);
  const T = "4f2c8e1a-9b3d-4c5e-8f70-1a2b3c4d5e6f";
  let r = await runCli(k, ["token", "set", "0000:af:00.0", "--dry-run"], { files, env: { VFIOCTL_VF_TOKEN: T } });
  assert.equal(r.code, EXIT.OK, r.err);
  const lines = r.out.trim().split("\n").map((l) => l.trim());
  assert.equal(lines[0], "0000:af:00.0: dry run, nothing changed; token set would make:");
  assert.match(lines[1]!, /^write <token> to \/etc\/vfioctl\/tokens\/pci-0000-af-00\.0\/pending/);
  assert.deepEqual(lines.slice(2, 8).map((l) => l.replace(/ {3}#.*/, "")), [
    "open /dev/vfio/vfio O_RDWR",
    "open /dev/vfio/5 O_RDWR",
    "ioctl /dev/vfio/5 VFIO_GROUP_GET_STATUS",
    "ioctl /dev/vfio/5 VFIO_GROUP_SET_CONTAINER (fd of /dev/vfio/vfio)",
    "ioctl /dev/vfio/vfio VFIO_SET_IOMMU (VFIO_TYPE1v2_IOMMU)",
    'ioctl /dev/vfio/5 VFIO_GROUP_GET_DEVICE_FD ("0000:af:00.0 vf_token=<token>")',
  ]);
  assert.ok(!r.out.includes(T) && !r.err.includes(T), "the token is never shown");
  assert.ok(!fs.existsSync(files.real("/etc/vfioctl/tokens")), "no store file written");
  assert.equal(await snapshot(k), before);
  // rotate needs a stored token; with one, a dry run leaves it as it is
  assert.equal((await runCli(k, ["token", "set", "0000:af:00.0"], { files, env: { VFIOCTL_VF_TOKEN: T } })).code, EXIT.OK);
  const cur = fs.readFileSync(files.real("/etc/vfioctl/tokens/pci-0000-af-00.0/current"), "utf8");
  r = await runCli(k, ["token", "rotate", "0000:af:00.0", "--dry-run"], { files });
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /VFIO_GROUP_GET_DEVICE_FD/);
  assert.equal(fs.readFileSync(files.real("/etc/vfioctl/tokens/pci-0000-af-00.0/current"), "utf8"), cur);
  assert.ok(!fs.existsSync(files.real("/etc/vfioctl/tokens/pci-0000-af-00.0/previous")));
  // on a copied tree: refused naming the tree, the store untouched
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-ro-tok-"));
  await materialize(k.spawn("m"), tree);
  const sys = new LinuxSyscalls({ root: tree });
  const { planSetToken } = await import("../src/lib/tokenops.js");
  const { refuseOnCopiedTree } = await import("../src/lib/steps.js");
  const plan = await planSetToken(sys, "0000:af:00.0");
  assert.throws(() => refuseOnCopiedTree(sys, "token set", plan.steps), (e: unknown) => e instanceof VfioctlError && e.code === "READ_ONLY_TREE" && e.message.startsWith(`--root ${tree} is a copied tree, read-only: token set would open ${tree}/dev/vfio/vfio;`));
  const { setToken } = await import("../src/lib/tokenops.js");
  await assert.rejects(setToken(sys, "0000:af:00.0", T), (e: unknown) => e instanceof VfioctlError && e.code === "READ_ONLY_TREE");
  await sys.exit();
  fs.rmSync(tree, { recursive: true });
});

test("list takes devices (BDF, short BDF, interface) and shows only those; token commands take them too", async () => {
  const k = await bootKernel();
  let r = await runCli(k, ["list", "eth0", "af:10.1", "--no-holders"], { env: { VFIOCTL_PCI_IDS: "" } });
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /^PF 0000:01:00\.0 /m);
  assert.match(r.out, /^└─ VF1 +0000:af:10\.1 /m);
  assert.doesNotMatch(r.out, /0000:af:10\.0|0000:3b:00\.0/);
  r = await runCli(k, ["list", "eth7"]);
  assert.equal(r.code, EXIT.USAGE);
  assert.match(r.err, /no network interface "eth7"/);
  r = await runCli(k, ["token", "path", "af:00.0"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /pci-0000-af-00\.0/);
});

test("the model's nvme shows its namespace and partitions; bind refuses a mounted or swap namespace (exit 1) and --force goes on", async () => {
  const k = await bootKernel();
  const NV = "0000:05:00.0";
  const sys = k.spawn("t");
  assert.deepEqual(await sys.readdir(`/sys/bus/pci/devices/${NV}/nvme/nvme0`), ["nvme0n1"]);
  assert.equal(await readAttr(sys, "/sys/block/nvme0n1/dev"), "259:0");
  assert.deepEqual(await hostUse(sys, NV), []);
  k.disks.configure("nvme0n1", { partitions: 2, mounts: { nvme0n1p1: "/" }, swap: ["nvme0n1p2"] });
  assert.match(await readText(sys, "/proc/self/mountinfo"), / 259:1 \/ \/ rw,relatime .* - ext4 \/dev\/nvme0n1p1 rw/);
  const before = await snapshot(k);
  let r = await runCli(k, ["bind", NV, "vfio-pci"]);
  assert.equal(r.code, EXIT.NO);
  assert.match(r.err, /0000:05:00\.0: in use by this host: nvme0n1p1 \(259:1\) is mounted on \/; nvme0n1p2 \(259:2\) is in use as swap; unbinding nvme takes them away from the host\. Use --force to unbind anyway\./);
  assert.equal(await snapshot(k), before);
  r = await runCli(k, ["bind", NV, "vfio-pci", "--force"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.ok(!(await sys.readdir("/sys/block")).includes("nvme0n1"), "the namespace goes with the driver");
  await sys.exit();
});

test("sriov on a terminal says, while Linux blocks the write, who holds the VFs and how long is left of --timeout", { timeout: 30_000 }, async () => {
  const k = await bootKernel();
  const pf = "0000:af:00.0";
  const vf = "0000:af:10.0";
  const qemu = k.spawn("qemu-system-x86");
  const { openDevice } = await import("../testlib/spec/index.js");
  const U = "2ab74924-c335-45f4-9b16-8569e5b08258";
  // set a known token through the PF, then hold the VF
  const p = await openDevice(qemu, pf, `${pf} vf_token=${U}`);
  await qemu.close(p.device as number);
  await qemu.close(p.group);
  await qemu.close(p.container);
  const o = await openDevice(qemu, vf, `${vf} vf_token=${U}`);
  assert.equal(typeof o.device, "number", String(o.device));
  const r = await runCli(k, ["sriov", pf, "0"], { isTTY: true, timeoutMs: 2600 });
  assert.equal(r.code, EXIT.BLOCKED, r.err);
  const lines = r.err.split("\n").filter((l) => l.startsWith("waiting for Linux to remove the VFs"));
  assert.ok(lines.length >= 2, r.err);
  assert.match(lines[0]!, new RegExp(`^waiting for Linux to remove the VFs: ${vf.replace(/\./g, "\\.")} held by pid ${qemu.pid} \\(qemu-system-x86\\); [12] s left of --timeout 2600 ms$`));
  await qemu.exit();
});

test("token retire --dry-run names the store file it would remove and removes nothing", async () => {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-retire-"));
  const cli = async (argv: string[]) => {
    let out = "";
    let err = "";
    const code = await main(["--sim", "--state", state, ...argv], { out: (s) => (out += s + "\n"), err: (s) => (err += s + "\n") });
    return { code, out, err };
  };
  const pf = "0000:af:00.0";
  assert.equal((await cli(["token", "set", pf])).code, EXIT.OK);
  assert.equal((await cli(["token", "rotate", pf])).code, EXIT.OK);
  const prev = path.join(state, "root/etc/vfioctl/tokens/pci-0000-af-00.0/previous");
  assert.ok(fs.existsSync(prev));
  const r = await cli(["token", "retire", pf, "--dry-run"]);
  assert.equal(r.code, EXIT.OK, r.err);
  assert.match(r.out, /dry run, nothing changed; would remove \/etc\/vfioctl\/tokens\/pci-0000-af-00\.0\/previous/);
  assert.ok(fs.existsSync(prev), "the previous token is still there");
  assert.equal((await cli(["token", "retire", pf])).code, EXIT.OK);
  assert.ok(!fs.existsSync(prev));
  fs.rmSync(state, { recursive: true });
});
