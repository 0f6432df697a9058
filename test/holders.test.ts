/**
 * Holders by device number: fds are matched by st_rdev (stat through /proc/PID/fd/N) against the
 * vfio nodes', so consumers in a chroot or a container are found; anonymous device fds alone
 * give "cannot tell"; the seam's stat gives rdev on both backends.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { bootKernel } from "../src/kernel/host/boot.js";
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import { O_RDONLY } from "../src/sys/syscalls.js";
import { devName, major, makedev, minor, parseDevAttr } from "../src/sys/devnum.js";
import { containerOfCgroup, describeHolder, heldState, holdersOf, scanVfioHolders } from "../src/lib/holders.js";
import { inventory } from "../src/lib/inventory.js";
import { setToken, verifyToken } from "../src/lib/tokenops.js";
import { unbindDriver } from "../src/lib/bind.js";
import { DOCKER_ID, IN_DOCKER, fdLinks, startConsumer } from "../testlib/consumers.js";
import { runCli } from "../testlib/cli.js";

const PF = "0000:af:00.0";
const VF0 = "0000:af:10.0";
const VF1 = "0000:af:10.1";
const T = "2ab74924-c335-45f4-9b16-8569e5b08258";

async function hostWithToken() {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  await setToken(sh, PF, T);
  return { k, sh };
}

test("device numbers encode like glibc's makedev and read back, small and large", () => {
  assert.equal(makedev(10, 196), (10 << 8) | 196);
  for (const [ma, mi] of [[10, 196], [242, 7], [511, 1048575], [4095, 255], [1, 11]] as const) {
    const d = makedev(ma, mi);
    assert.equal(major(d), ma);
    assert.equal(minor(d), mi);
    assert.equal(devName(d), `${ma}:${mi}`);
    assert.equal(parseDevAttr(`${ma}:${mi}\n`), d);
  }
  assert.equal(parseDevAttr("vfio"), null);
});

test("the model's vfio nodes have stable device numbers: the container is misc 10:196, groups major 242 with minors 0…n−1 from vfio's IDA", async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  assert.equal(devName((await sh.stat("/dev/vfio/vfio")).rdev), "10:196");
  const groups = (await sh.readdir("/dev/vfio")).filter((n) => /^\d+$/.test(n));
  assert.ok(groups.length >= 2, groups.join(","));
  const numbers = await Promise.all(groups.map(async (g) => devName((await sh.stat(`/dev/vfio/${g}`)).rdev)));
  // no group was released since boot: the minors are exactly 0 … n−1, whatever the group numbers
  assert.deepEqual(numbers.map((n) => n.split(":")[0]), groups.map(() => "242"));
  assert.deepEqual(numbers.map((n) => Number(n.split(":")[1])).sort((a, b) => a - b), groups.map((_, i) => i));
  assert.equal(devName((await sh.stat("/dev/kmsg")).rdev), "1:11");
  assert.equal((await sh.stat("/sys/bus/pci/devices/0000:af:00.0/sriov_numvfs")).rdev, 0);
});

test("the real backend's stat gives st_rdev, also through /proc/self/fd of an open device", async () => {
  const sys = new LinuxSyscalls();
  const want = fs.statSync("/dev/null").rdev;
  assert.equal((await sys.stat("/dev/null")).rdev, want);
  assert.equal(devName(want), "1:3");
  const fd = await sys.open("/dev/null", O_RDONLY);
  try {
    assert.equal((await sys.stat(`/proc/self/fd/${fd}`)).rdev, want);
    assert.equal((await sys.stat(`/proc/self/fd/${fd}`)).kind, "char");
  } finally {
    await sys.exit();
  }
});

test("a consumer in a chroot is found by its group fd's device number and named with its chroot", async () => {
  const { k, sh } = await hostWithToken();
  const c = await startConsumer(k, "dpdk-testpmd", VF0, { root: "/srv/dpdk" }, T);
  // what the issue saw: the link text is under the chroot, so matching ^/dev/vfio/N$ misses it
  assert.ok((await fdLinks(sh, c.proc.pid)).includes("/srv/dpdk/dev/vfio/6"));
  const scan = await scanVfioHolders(sh);
  const g = holdersOf(scan.holders, 6);
  assert.equal(g.length, 1);
  assert.equal(g[0]!.via, "rdev");
  assert.equal(g[0]!.rdev, devName((await sh.stat("/dev/vfio/6")).rdev));
  assert.equal(g[0]!.where.root, "/srv/dpdk");
  assert.match(describeHolder(g[0]!), /^pid \d+ \(dpdk-testpmd\) fd \d+ → \/srv\/dpdk\/dev\/vfio\/6 \[chroot \/srv\/dpdk\]$/);
  assert.ok(scan.holders.some((h) => h.pid === c.proc.pid && h.kind === "container"));
  assert.equal(heldState(scan, 6), "held");
  assert.deepEqual(scan.unattributed, []);
});

test("a consumer in a container with its own device path is found by device number and named by its cgroup", async () => {
  const { k, sh } = await hostWithToken();
  // the container opens the host's /dev/vfio/7 as /dev/vfio/dpdk0 (a CDI path that differs from its hostPath)
  const c = await startConsumer(k, "qemu-kvm", VF1, { ...IN_DOCKER, mounts: { "/dev/vfio/dpdk0": "/dev/vfio/7" } }, T, "/dev/vfio/dpdk0");
  assert.ok((await fdLinks(sh, c.proc.pid)).includes("/dev/vfio/dpdk0"));
  const scan = await scanVfioHolders(sh);
  const g = holdersOf(scan.holders, 7);
  assert.equal(g.length, 1, JSON.stringify(scan.holders));
  assert.equal(g[0]!.target, "/dev/vfio/dpdk0");
  assert.deepEqual(g[0]!.where.container, { runtime: "docker", id: DOCKER_ID.slice(0, 12) });
  assert.equal(g[0]!.where.mntns, "other");
  assert.match(describeHolder(g[0]!), /\[container docker 3f2a9c1b0d4e\]$/);
});

test("a char device whose path reads like a group node but is another device is not a holder", async () => {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  // a container whose /dev/vfio/6 is really /dev/kmsg: text matching would call it group 6
  const p = k.spawn("impostor", { mounts: { "/dev/vfio/6": "/dev/kmsg" } });
  await p.open("/dev/vfio/6", O_RDONLY);
  assert.ok((await fdLinks(sh, p.pid)).includes("/dev/vfio/6"));
  const scan = await scanVfioHolders(sh);
  assert.deepEqual(scan.holders, []);
  assert.equal(heldState(scan, 6), "free");
});

test("a process left with only anonymous device fds makes 'is this VF open?' unanswerable, and list says cannot tell", async () => {
  const { k, sh } = await hostWithToken();
  const c = await startConsumer(k, "dpdk-testpmd", VF0, { root: "/srv/dpdk" }, T);
  await c.dropGroupFds();
  assert.deepEqual(await fdLinks(sh, c.proc.pid), ["anon_inode:[vfio-device]"]);
  const scan = await scanVfioHolders(sh);
  assert.deepEqual(scan.unattributed, [c.proc.pid]);
  assert.equal(heldState(scan, 6), "unknown");
  const inv = await inventory(sh);
  const pf = inv.pfs.find((p) => p.bdf === PF)!;
  assert.equal(pf.token.state, "cannot-tell");
  assert.match(pf.token.reason, /cannot tell whether a VF is open .*pid \d+ \(dpdk-testpmd\) \[chroot \/srv\/dpdk\] holds VFIO device fds without a group or cdev fd/);
  // and it really is open: the PF now needs the token (a verify on the other VF still matches)
  assert.equal((await verifyToken(sh, VF1, T)).result, "match");
});

test("inventory no longer says 'no VF is open' for a PF whose VF a chrooted consumer holds", async () => {
  const { k, sh } = await hostWithToken();
  await startConsumer(k, "dpdk-testpmd", VF0, { root: "/srv/dpdk" }, T);
  const inv = await inventory(sh);
  const pf = inv.pfs.find((p) => p.bdf === PF)!;
  assert.equal(pf.token.state, "required");
  assert.doesNotMatch(pf.token.reason, /no VF is open/);
  assert.equal(pf.vfDevices.find((v) => v.bdf === VF0)!.heldBy.length, 1);
});

test("setting the token while a chrooted consumer holds the PF's group names that consumer in the EBUSY error", async () => {
  const { k, sh } = await hostWithToken();
  await startConsumer(k, "dpdk-pf", PF, { root: "/srv/pf" }, T);
  await assert.rejects(setToken(sh, PF, "00000000-0000-0000-0000-000000000002"), (e: Error) => {
    assert.match(e.message, /EBUSY \(the group is already open: pid \d+ \(dpdk-pf\) fd \d+ → \/srv\/pf\/dev\/vfio\/5 \[chroot \/srv\/pf\]\)/);
    assert.doesNotMatch(e.message, /not visible in \/proc/);
    return true;
  });
});

test("container runtimes are recognised from cgroup paths", () => {
  const id = DOCKER_ID;
  assert.deepEqual(containerOfCgroup(`/system.slice/docker-${id}.scope`), { runtime: "docker", id: id.slice(0, 12) });
  assert.deepEqual(containerOfCgroup(`/machine.slice/libpod-${id}.scope/container`), { runtime: "podman", id: id.slice(0, 12) });
  assert.deepEqual(containerOfCgroup(`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0e5f1a2b_3c4d_4e5f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-${id}.scope`), {
    runtime: "containerd",
    id: id.slice(0, 12),
    pod: "0e5f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
  });
  assert.deepEqual(containerOfCgroup(`/kubepods.slice/kubepods-pod0e5f1a2b_3c4d_4e5f_8a9b_0c1d2e3f4a5b.slice/crio-${id}.scope`)?.runtime, "cri-o");
  assert.deepEqual(containerOfCgroup("/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope"), { runtime: "machine", id: "qemu-1-vm1" });
  assert.equal(containerOfCgroup("/user.slice/user-1000.slice/session-2.scope"), null);
});

test("a cdev fd is matched by device number to its device and that device's group", async () => {
  const k = await bootKernel(undefined, { profile: "6.17.1" });
  const sh = k.spawn("sh");
  const idx = (await sh.readdir(`/sys/bus/pci/devices/${VF0}/vfio-dev`))[0]!;
  assert.equal(devName((await sh.stat(`/dev/vfio/devices/${idx}`)).rdev), (await import("../src/sys/fsutil.js").then((m) => m.readAttr(sh, `/sys/bus/pci/devices/${VF0}/vfio-dev/${idx}/dev`))));
  const c = k.spawn("qemu-kvm", { ...IN_DOCKER, mounts: { "/dev/vfio/devices/vf": `/dev/vfio/devices/${idx}` } });
  await c.open("/dev/vfio/devices/vf", O_RDONLY | 2);
  const scan = await scanVfioHolders(sh);
  const h = scan.holders.filter((x) => x.pid === c.pid);
  assert.equal(h.length, 1, JSON.stringify(scan.holders));
  assert.equal(h[0]!.kind, "cdev");
  assert.equal(h[0]!.device, VF0);
  assert.equal(h[0]!.group, 6);
  assert.equal(heldState(scan, 6), "held");
  assert.equal(heldState(scan, 7), "free");
});

test("list names a chrooted holder with its chroot and does not say 'no VF is open' for its PF", async () => {
  const { k } = await hostWithToken();
  await startConsumer(k, "dpdk-testpmd", VF0, { root: "/srv/dpdk" }, T);
  const r = await runCli(k, ["list"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /group 6 \(\/dev\/vfio\/6, held by dpdk-testpmd\[\d+\] \[chroot \/srv\/dpdk\]\)/);
  assert.match(r.out, /pid \d+ \(dpdk-testpmd\) fd \d+ → \/srv\/dpdk\/dev\/vfio\/6 \[chroot \/srv\/dpdk\]/);
  assert.doesNotMatch(r.out, /no VF is open/);
});

test("an unbind that blocks on a VF held only through device fds names that process, not 'nobody'", async () => {
  const { k, sh } = await hostWithToken();
  const c = await startConsumer(k, "dpdk-testpmd", VF0, IN_DOCKER, T);
  await c.dropGroupFds();
  await assert.rejects(unbindDriver(sh, VF0, { timeoutMs: 50 }), (e: Error) => {
    assert.match(e.message, /still blocked|blocked/);
    assert.match(e.message, /held: pid \d+ \(dpdk-testpmd\) \[container docker 3f2a9c1b0d4e\] holds VFIO device fds without a group or cdev fd/);
    return true;
  });
  await c.proc.exit();
});

test("vfio node numbers from sysfs alone (a container's /dev without them): misc vfio and iommu, group and cdev class devices, a cdev's device by its `device` link when the class entry is not a link", async () => {
  const os = await import("node:os");
  const path = await import("node:path");
  const { vfioNodeNumbers } = await import("../src/lib/holders.js");
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-nodes-"));
  try {
    const put = (rel: string, text: string) => {
      fs.mkdirSync(path.dirname(path.join(d, rel)), { recursive: true });
      fs.writeFileSync(path.join(d, rel), text);
    };
    put("sys/class/misc/vfio/dev", "10:196\n");
    put("sys/class/misc/iommu/dev", "10:257\n");
    put("sys/class/vfio/12/dev", "509:0\n");
    put("sys/class/vfio/noiommu-13/dev", "509:1\n");
    // vfio3: a folder (a copied tree keeps no class link), its device link relative as the kernel's is
    put("sys/class/vfio-dev/vfio3/dev", "511:3\n");
    fs.symlinkSync("../../../0000:01:00.0", path.join(d, "sys/class/vfio-dev/vfio3/device"));
    // vfio4: the kernel's class link, ending in <BDF>/vfio-dev/vfio4
    fs.mkdirSync(path.join(d, "sys/devices/pci0000:00/0000:01:00.1/vfio-dev/vfio4"), { recursive: true });
    fs.writeFileSync(path.join(d, "sys/devices/pci0000:00/0000:01:00.1/vfio-dev/vfio4/dev"), "511:4\n");
    fs.symlinkSync("../../devices/pci0000:00/0000:01:00.1/vfio-dev/vfio4", path.join(d, "sys/class/vfio-dev/vfio4"));
    for (const [bdf, g] of [["0000:01:00.0", 12], ["0000:01:00.1", 14]] as const) {
      fs.mkdirSync(path.join(d, "sys/bus/pci/devices", bdf), { recursive: true });
      fs.symlinkSync(`../../../../kernel/iommu_groups/${g}`, path.join(d, "sys/bus/pci/devices", bdf, "iommu_group"));
    }
    const nodes = await vfioNodeNumbers(new LinuxSyscalls({ root: d }));
    assert.deepEqual(Object.fromEntries(nodes), {
      "509:0": { kind: "group", group: 12, device: null },
      "509:1": { kind: "group", group: 13, device: null },
      "511:3": { kind: "cdev", device: "0000:01:00.0", group: 12 },
      "511:4": { kind: "cdev", device: "0000:01:00.1", group: 14 },
      "10:196": { kind: "container", group: null, device: null },
      "10:257": { kind: "iommufd", group: null, device: null },
    });
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test("a holders scan reads every vfio node's number only when an fd may be one: a held /dev/kmsg costs the same however many groups, a held group is still found", async () => {
  const { writeText } = await import("../src/sys/fsutil.js");
  const { scanVfioHolders } = await import("../src/lib/holders.js");
  const single = new Set(["open", "close", "read", "write", "lseek", "ioctl", "eventfd", "readlink", "readdir", "stat", "lstat"]);
  /** the process's single calls, counted (its batch reads hidden, so each path is one call) */
  const counted = (sys: import("../src/sys/syscalls.js").Syscalls) => {
    const c = { n: 0 };
    const p = new Proxy(sys, {
      get(t, prop) {
        const v = Reflect.get(t, prop, t);
        if (typeof prop === "string" && single.has(prop)) return (...a: unknown[]) => (c.n++, (v as (...x: unknown[]) => unknown).apply(t, a));
        if (prop === "readFile" || prop === "readFiles" || prop === "readlinks" || prop === "lstats" || prop === "stats" || prop === "readdirs") return undefined;
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
    return { p, c };
  };
  const scanCost = async (vfs: number) => {
    const k = await bootKernel();
    const sh = k.spawn("sh");
    await writeText(sh, `/sys/bus/pci/devices/${PF}/sriov_numvfs`, "0");
    await writeText(sh, `/sys/bus/pci/devices/${PF}/sriov_numvfs`, String(vfs));
    const other = k.spawn("journald");
    await other.open("/dev/kmsg", O_RDONLY);
    const { p, c } = counted(k.spawn("vfioctl"));
    const scan = await scanVfioHolders(p);
    assert.deepEqual(scan.holders, []);
    const groups = (await sh.readdir("/dev/vfio")).filter((n) => /^\d+$/.test(n)).length;
    return { calls: c.n, groups, k, p };
  };
  const small = await scanCost(1);
  const large = await scanCost(7);
  assert.ok(large.groups >= small.groups + 6, `${small.groups} → ${large.groups} groups`);
  assert.equal(large.calls, small.calls, "no call per vfio node while no fd is on a vfio major");
  // a process holding a group: found by its device number
  const holder = large.k.spawn("qemu");
  const g = Number((await holder.readlink(`/sys/bus/pci/devices/${VF0}/iommu_group`)).split("/").pop());
  const fd = await holder.open(`/dev/vfio/${g}`, 2);
  const scan = await scanVfioHolders(large.p);
  assert.deepEqual(scan.holders.map((h) => [h.comm, h.fd, h.kind, h.group, h.via]), [["qemu", fd, "group", g, "rdev"]]);
});
