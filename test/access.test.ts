/**
 * explain's permission causes: who may open /dev/vfio/N, /dev/vfio/vfio, the cdev and /dev/iommu
 * (EACCES by mode, owner and group; SELinux/AppArmor denials in the kernel log), the container's
 * device cgroup and noiommu's CAP_SYS_RAWIO (EPERM), and the locked-memory limit (ENOMEM).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import { bootHostFile } from "../src/kernel/host/boot.js";
import { KERN_NOTICE } from "../src/kernel/printk.js";
import { explainOpen } from "../src/lib/explain.js";
import { mayOpenRw, modeString, readCaller, whoMayOpen, type NodeAccess } from "../src/lib/access.js";
import type { Stat, Syscalls } from "../src/sys/syscalls.js";
import { SysError } from "../src/sys/errno.js";
import { devName } from "../src/sys/devnum.js";

const VF0 = "0000:af:10.0";

/**
 * The model's syscalls with some files replaced (/proc/self/status, LSM files) and some stats
 * given an owner, group and mode, as a real host shows them.
 */
function overlay(sys: Syscalls, files: Record<string, string>, stats: Record<string, Partial<Stat>> = {}, missing: string[] = []): Syscalls {
  const fake = new Map<number, { text: Buffer; off: number }>();
  let next = 100000;
  return new Proxy(sys, {
    get(t, prop) {
      if (prop === "open")
        return async (p: string, flags: number) => {
          if (!(p in files)) return t.open(p, flags);
          const fd = next++;
          fake.set(fd, { text: Buffer.from(files[p]!), off: 0 });
          return fd;
        };
      if (prop === "read")
        return async (fd: number, n: number) => {
          const f = fake.get(fd);
          if (!f) return t.read(fd, n);
          const b = f.text.subarray(f.off, f.off + n);
          f.off += b.length;
          return b;
        };
      if (prop === "close") return async (fd: number) => (fake.delete(fd) ? undefined : t.close(fd));
      if (prop === "lstat")
        return async (p: string) => {
          if (missing.includes(p)) throw new SysError("ENOENT", "lstat", p);
          return t.lstat(p);
        };
      if (prop === "stat")
        return async (p: string) => {
          if (missing.includes(p)) throw new SysError("ENOENT", "stat", p);
          if (p in files) return { kind: "file", mode: 0o444, size: 4096, rdev: 0 };
          return { ...(await t.stat(p)), ...(stats[p] ?? {}) };
        };
      // the calls above are the overlay: the backend's one-call and batch reads would go around it
      if (prop === "readFile" || prop === "readFiles" || prop === "readlinks" || prop === "lstats" || prop === "stats" || prop === "readdirs") return undefined;
      const v = Reflect.get(t, prop, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
}

const status = (uid: number, gid: number, groups: number[], cap = "0000000000000000") => `Name:\tqemu\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t${gid}\t${gid}\t${gid}\t${gid}\nGroups:\t${groups.join(" ")}\nCapEff:\t${cap}\n`;
const cause = (x: Awaited<ReturnType<typeof explainOpen>>, id: string) => x.causes.find((c) => c.id === id)!;

test("mayOpenRw follows owner, then group (and supplementary groups), then other; CAP_DAC_OVERRIDE opens anything", () => {
  const n: NodeAccess = { path: "/dev/vfio/6", mode: 0o660, uid: 0, gid: 36, dev: "c 242:6" };
  const user = { uid: 107, gid: 107, groups: [] as number[], capEff: 0n };
  assert.equal(mayOpenRw(user, n), false);
  assert.equal(mayOpenRw({ ...user, groups: [36] }, n), true);
  assert.equal(mayOpenRw({ ...user, gid: 36 }, n), true);
  assert.equal(mayOpenRw({ ...user, uid: 0 }, { ...n, mode: 0o060 }), false, "the owner's bits apply to the owner, not the group's");
  assert.equal(mayOpenRw({ ...user, capEff: 1n << 1n }, { ...n, mode: 0o000 }), true);
  assert.equal(mayOpenRw({ uid: 0, gid: 0, groups: [], capEff: null }, { ...n, mode: 0o000 }), true, "root without CapEff shown");
  assert.equal(modeString(0o600), "crw-------");
  assert.equal(whoMayOpen({ ...n, mode: 0o666 }), "every user");
  assert.equal(whoMayOpen(n), "uid 0 and group 36");
});

test("--errno EACCES on a VF: a user the group node does not let read and write gets an 'applies' permission cause naming mode, owner and uid", async () => {
  const k = await bootKernel();
  const sys = overlay(k.spawn("qemu"), { "/proc/self/status": status(107, 107, [100]) }, { "/dev/vfio/6": { mode: 0o600, uid: 0, gid: 0 }, "/dev/vfio/vfio": { mode: 0o666, uid: 0, gid: 0 } });
  assert.deepEqual(await readCaller(sys), { uid: 107, gid: 107, groups: [100], capEff: 0n });
  const x = await explainOpen(sys, VF0, { errno: "EACCES", token: true });
  const c = cause(x, "node-permission");
  assert.equal(c.status, "applies");
  assert.match(c.cause, /\/dev\/vfio\/6 is crw------- \(0600\) owner 0 group 0: read-write for uid 0/);
  assert.match(c.cause, /this caller is uid 107 gid 107 groups 100, which may not open \/dev\/vfio\/6/);
  assert.match(c.fix, /dynamic_ownership/);
  assert.equal(x.ranked![0]!.id, "node-permission", "an applying cause ranks before the possible token one");
  assert.equal(x.open.verdict, "fails");
  // the group lets it in: no longer applies
  const ok = overlay(k.spawn("qemu"), { "/proc/self/status": status(107, 107, [36]) }, { "/dev/vfio/6": { mode: 0o660, uid: 0, gid: 36 } });
  assert.equal(cause(await explainOpen(ok, VF0, { errno: "EACCES" }), "node-permission").status, "would", "this caller may open it; another user may not");
});

test("as root (the model), a 0600 group node is a 'would' permission cause: another user running the consumer would get EACCES", async () => {
  const k = await bootKernel();
  const x = await explainOpen(k.spawn("sh"), VF0, { errno: "EACCES" });
  const c = cause(x, "node-permission");
  assert.equal(c.status, "would");
  assert.match(c.when!, /QEMU run as a user/);
  assert.ok(x.ranked!.some((r) => r.id === "node-permission"));
});

test("SELinux enforcing or AppArmor: a 'would' row; a denial in the kernel log naming the node makes it 'possible' and quotes the line", async () => {
  const k = await bootKernel(undefined, { profile: "6.12.58" }); // an upstream build: no security module of its own
  const se = overlay(k.spawn("sh"), { "/sys/fs/selinux/enforce": "1" });
  const x = await explainOpen(se, VF0, { errno: "EACCES" });
  assert.equal(cause(x, "lsm-denied").status, "would");
  assert.match(cause(x, "lsm-denied").cause, /SELinux \(enforcing: \/sys\/fs\/selinux\/enforce\) is active.*avc:  denied/);
  assert.match(cause(x, "lsm-denied").cause, /the log shows no such denial/);
  assert.equal(cause(await explainOpen(k.spawn("sh"), VF0, { errno: "EACCES" }), "lsm-denied").status, "no", "an upstream build: neither module present");
  const debian = await bootKernel();
  assert.equal(cause(await explainOpen(debian.spawn("sh"), VF0, { errno: "EACCES" }), "lsm-denied").status, "would", "Debian's kernels enable AppArmor (the lab's guests read Y)");
  const line = 'audit: type=1400 audit(1700000000.123:42): apparmor="DENIED" operation="open" profile="libvirt-1234" name="/dev/vfio/6" pid=4242 comm="qemu-system-x86" requested_mask="wr" denied_mask="wr" fsuid=64055 ouid=0';
  k.log.printk(KERN_NOTICE, line);
  const aa = overlay(k.spawn("sh"), { "/sys/module/apparmor/parameters/enabled": "Y\n" });
  const y = await explainOpen(aa, VF0, { errno: "EACCES" });
  assert.equal(cause(y, "lsm-denied").status, "possible");
  assert.ok(cause(y, "lsm-denied").cause.includes('apparmor=\\"DENIED\\"'), cause(y, "lsm-denied").cause);
  assert.equal(cause(y, "lsm-denied").log, line);
  // a denial for another node does not count
  const k2 = await bootKernel();
  k2.log.printk(KERN_NOTICE, line.replace("/dev/vfio/6", "/dev/vfio/7"));
  assert.equal(cause(await explainOpen(overlay(k2.spawn("sh"), { "/sys/module/apparmor/parameters/enabled": "Y\n" }), VF0, { errno: "EACCES" }), "lsm-denied").status, "would");
  // SELinux names only the dentry: name="6" … tclass=chr_file
  const k3 = await bootKernel();
  k3.log.printk(KERN_NOTICE, 'audit: type=1400 audit(1700000000.5:7): avc:  denied  { read write } for  pid=99 comm="qemu-kvm" name="6" dev="devtmpfs" ino=1234 scontext=system_u:system_r:svirt_t:s0:c1,c2 tcontext=system_u:object_r:vfio_device_t:s0 tclass=chr_file permissive=0');
  assert.equal(cause(await explainOpen(overlay(k3.spawn("sh"), { "/sys/fs/selinux/enforce": "1" }), VF0, { errno: "EACCES" }), "lsm-denied").status, "possible");
});

test("--errno EPERM on a VF lists the container's device cgroup; noiommu needs CAP_SYS_RAWIO; a group that is not viable applies", async () => {
  const k = await bootKernel();
  const x = await explainOpen(k.spawn("sh"), VF0, { errno: "EPERM" });
  const ids = x.ranked!.map((c) => c.id);
  assert.ok(ids.includes("container-device-cgroup"), ids.join());
  // the group node's minor is vfio's IDA's (docs/kernel-notes.md row 33), not the group number
  const rdev = devName((await k.spawn("sh").stat("/dev/vfio/6")).rdev);
  assert.match(rdev, /^242:\d+$/);
  assert.ok(cause(x, "container-device-cgroup").cause.includes(`/dev/vfio/6 (c ${rdev}) and /dev/vfio/vfio (c 10:196)`), cause(x, "container-device-cgroup").cause);
  assert.equal(cause(x, "noiommu-rawio").status, "no", "noiommu mode is off");
  assert.equal(x.asked.works, false, "none applies: EPERM is not explained by this host's state");
  // a group with a member on a host driver: group-not-viable applies and ranks first
  const g = await bootHostFile(new URL("../../test/fixtures/host-shared-group.yaml", import.meta.url).pathname);
  const y = await explainOpen(g.spawn("sh"), VF0, { errno: "EPERM" });
  assert.equal(y.ranked![0]!.id, "group-not-viable");
  assert.equal(y.asked.works, true);
  // not listed unless EPERM is asked about (it holds on every host)
  assert.equal(cause(await explainOpen(k.spawn("sh"), VF0), "container-device-cgroup").status, "no");
});

test("--errno ENOMEM names RLIMIT_MEMLOCK for VFIO_IOMMU_MAP_DMA", async () => {
  const k = await bootKernel();
  const x = await explainOpen(k.spawn("sh"), VF0, { errno: "ENOMEM" });
  assert.equal(x.ranked![0]!.id, "memlock-limit");
  assert.match(x.ranked![0]!.log!, /RLIMIT_MEMLOCK/);
});

test("on a cdev kernel, the cdev node and /dev/iommu are checked for the caller too", async () => {
  const k = await bootKernel(undefined, { profile: "6.12.58" });
  const base = k.spawn("sh");
  const probe = await explainOpen(base, VF0);
  const node = probe.device.cdevNode!;
  assert.ok(node, "the VF has a cdev node");
  const sys = overlay(k.spawn("qemu"), { "/proc/self/status": status(107, 107, []) }, { [node]: { mode: 0o600, uid: 0, gid: 0 }, "/dev/iommu": { mode: 0o660, uid: 0, gid: 0 } });
  const x = await explainOpen(sys, VF0, { errno: "EACCES", cdev: true });
  const c = cause(x, "cdev-node-permission");
  assert.equal(c.operation, "cdev");
  assert.equal(c.status, "applies");
  assert.match(c.cause, new RegExp(`may not open ${node}, /dev/iommu`));
  assert.equal(x.asked.works, false);
});

test("the real backend's stat gives st_uid and st_gid; readCaller reads this process's own credentials", async () => {
  const { LinuxSyscalls } = await import("../src/sys/linux/host.js");
  const fs = await import("node:fs");
  const os = await import("node:os");
  const path = await import("node:path");
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-stat-")), "node");
  fs.writeFileSync(f, "");
  const sys = new LinuxSyscalls();
  const st = await sys.stat(f);
  assert.equal(st.uid, process.getuid!());
  assert.equal(st.gid, process.getgid!());
  const me = await readCaller(sys);
  assert.equal(me?.uid, process.getuid!());
  assert.equal(me?.gid, process.getgid!());
  await sys.exit();
});

test("a VF on vfio-pci whose group node is missing here (a container it was not passed to) is ENOENT naming --device", async () => {
  const k = await bootKernel();
  const x = await explainOpen(overlay(k.spawn("sh"), {}, {}, ["/dev/vfio/6"]), VF0, { errno: "ENOENT" });
  const c = cause(x, "group-node-missing");
  assert.equal(c.status, "applies");
  assert.match(c.fix, /--device \/dev\/vfio\/vfio --device \/dev\/vfio\/6/);
  assert.equal(x.open.verdict, "fails");
  assert.equal(cause(await explainOpen(k.spawn("sh"), VF0), "group-node-missing").status, "no");
});
