/**
 * Tests that check the answer where nothing did: each was written against a one-line mutation
 * that the rest of the suite let through (the mutation is named in the test's comment; each
 * fails under it).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel } from "../src/kernel/host/boot.js";
import { inventory } from "../src/lib/inventory.js";
import { readDevice } from "../src/lib/sysfs.js";
import { explainOpen } from "../src/lib/explain.js";
import { scanVfioHolders } from "../src/lib/holders.js";
import { setToken } from "../src/lib/tokenops.js";
import { renderTree } from "../src/cli/commands/render.js";
import { readAttr, writeText } from "../src/sys/fsutil.js";
import { errnoName, SysError } from "../src/sys/errno.js";
import { LinuxSyscalls, toSysError } from "../src/sys/linux/host.js";
import { sysErrorFromErrno } from "../src/sys/linux/ioctl.js";
import { makedev } from "../src/sys/devnum.js";
import { O_RDONLY, type FileKind, type Stat, type Syscalls } from "../src/sys/syscalls.js";
import { VFIO, deviceNameBuf } from "../src/uapi/vfio.js";
import { startConsumer } from "../testlib/consumers.js";

const PF = "0000:af:00.0";
const VF0 = "0000:af:10.0";
const T = "2ab74924-c335-45f4-9b16-8569e5b08258";

// ---------------------------------------------------------------- driver_override

test("an unset driver_override ('(null)') is null in inventory and list shows no override for it", async () => {
  // mutation: readDevice's `ovr === "(null)"` test dropped (list then showed "[override (null)]")
  const k = await bootKernel();
  const sh = k.spawn("sh");
  await writeText(sh, "/sys/bus/pci/devices/0000:01:00.0/driver_override", "igb");
  const inv = await inventory(sh, { holders: false });
  const all = [...inv.pfs, ...inv.pfs.flatMap((p) => p.vfDevices), ...inv.others];
  let unset = 0;
  for (const d of all) {
    const raw = await readAttr(sh, `/sys/bus/pci/devices/${d.bdf}/driver_override`);
    assert.equal(d.driverOverride, raw === "(null)" ? null : raw, d.bdf);
    if (raw === "(null)") unset++;
  }
  assert.ok(unset > 3, "the default host has devices without an override");
  assert.equal(all.find((d) => d.bdf === "0000:01:00.0")!.driverOverride, "igb");
  const text = renderTree(inv, { all: true });
  assert.doesNotMatch(text, /\(null\)/);
  const line = (bdf: string) => text.split("\n").find((l) => l.includes(bdf)) ?? "";
  assert.match(line("0000:01:00.0"), /\[override\]/, "an override equal to the bound driver");
  for (const d of all) if (d.driverOverride === null) assert.doesNotMatch(line(d.bdf), /override/, d.bdf);
});

// ---------------------------------------------------------------- the PF side of the token while a VF is held

test("while a VF is held, the PF needs the current token: inventory says required, explain's PF rows say possible; once released, neither", async () => {
  // mutations: explain's pf-token-required / pf-token-incorrect status without `vfsHeld.length`
  // (only 'may be in use' counted), inventory's PF token without the held VF
  const k = await bootKernel();
  const sh = k.spawn("sh");
  await setToken(sh, PF, T);
  const c = await startConsumer(k, "dpdk-testpmd", VF0, {}, T);

  const inv = await inventory(sh);
  const pf = inv.pfs.find((p) => p.bdf === PF)!;
  assert.equal(pf.token.state, "required");
  assert.equal(pf.token.ifGiven, "checked");
  assert.ok(pf.vfDevices.find((v) => v.bdf === VF0)!.heldBy.some((h) => h.pid === c.proc.pid));

  const without = await explainOpen(sh, PF);
  const cause = (x: typeof without, id: string) => x.causes.find((c) => c.id === id)!;
  assert.equal(cause(without, "pf-token-required").status, "possible");
  assert.match(cause(without, "pf-token-required").cause, /is in use \(0000:af:10\.0 group \d+: pid \d+ \(dpdk-testpmd\)/);
  assert.equal(cause(without, "pf-token-incorrect").status, "no", "no token given");
  const given = await explainOpen(sh, PF, { token: true });
  assert.equal(cause(given, "pf-token-incorrect").status, "possible");
  assert.equal(cause(given, "pf-token-required").status, "no", "a token is given");

  await c.proc.exit();
  const after = await inventory(sh);
  const pf2 = after.pfs.find((p) => p.bdf === PF)!;
  assert.equal(pf2.token.state, "not-required");
  assert.equal(pf2.token.ifGiven, "sets-it");
  assert.equal(cause(await explainOpen(sh, PF), "pf-token-required").status, "no");
  assert.equal(cause(await explainOpen(sh, PF, { token: true }), "pf-token-incorrect").status, "no");
});

// ---------------------------------------------------------------- holders of /dev/vfio/noiommu-N

type FakeNode = { t: "dir"; names: string[] } | { t: "link"; to: string } | { t: "file"; text: string } | { t: "char"; rdev: number };

/** A read-only Syscalls over a table of paths (stat follows links; `refuseStat` paths fail EACCES). */
class FakeHost implements Syscalls {
  readonly backend = "linux" as const;
  readonly pid = 1;
  private fds = new Map<number, { text: string; off: number }>();
  private next = 3;
  constructor(
    private readonly nodes: Record<string, FakeNode>,
    private readonly refuseStat: Set<string> = new Set(),
  ) {}
  private get(p: string, follow: boolean, syscall: string): FakeNode {
    for (let hops = 0; hops < 8; hops++) {
      const n = this.nodes[p];
      if (!n) throw new SysError("ENOENT", syscall, p);
      if (n.t !== "link" || !follow) return n;
      p = n.to;
    }
    throw new SysError("ELOOP", syscall, p);
  }
  private stat_(p: string, follow: boolean, syscall: string): Stat {
    if (this.refuseStat.has(p)) throw new SysError("EACCES", syscall, p);
    const n = this.get(p, follow, syscall);
    const kind: FileKind = n.t;
    return { kind, mode: 0o600, size: 0, rdev: n.t === "char" ? n.rdev : 0 };
  }
  async open(p: string): Promise<number> {
    const n = this.get(p, true, "open");
    if (n.t !== "file") throw new SysError("EACCES", "open", p);
    const fd = this.next++;
    this.fds.set(fd, { text: n.text, off: 0 });
    return fd;
  }
  async close(fd: number): Promise<void> {
    this.fds.delete(fd);
  }
  async read(fd: number, length: number): Promise<Buffer> {
    const f = this.fds.get(fd);
    if (!f) throw new SysError("EBADF", "read");
    const b = Buffer.from(f.text).subarray(f.off, f.off + length);
    f.off += b.length;
    return Buffer.from(b);
  }
  async write(): Promise<number> {
    throw new SysError("EROFS", "write");
  }
  async lseek(): Promise<number> {
    throw new SysError("ESPIPE", "lseek");
  }
  async ioctl(): Promise<number> {
    throw new SysError("ENOTTY", "ioctl");
  }
  async eventfd(): Promise<number> {
    throw new SysError("ENOSYS", "eventfd");
  }
  async readlink(p: string): Promise<string> {
    const n = this.get(p, false, "readlink");
    if (n.t !== "link") throw new SysError("EINVAL", "readlink", p);
    return n.to;
  }
  async readdir(p: string): Promise<string[]> {
    const n = this.get(p, true, "readdir");
    if (n.t !== "dir") throw new SysError("ENOTDIR", "readdir", p);
    return [...n.names];
  }
  async stat(p: string): Promise<Stat> {
    return this.stat_(p, true, "stat");
  }
  async lstat(p: string): Promise<Stat> {
    return this.stat_(p, false, "lstat");
  }
  async exit(): Promise<void> {}
}

const NOIOMMU = makedev(242, 3);

/** A host where pid 100 (comm "dpdk") holds /dev/vfio/noiommu-3 on fd 5. */
function noiommuHost(opts: { devNode: boolean; sysfsDev: boolean }): Record<string, FakeNode> {
  return {
    "/proc": { t: "dir", names: ["100", "self"] },
    "/proc/100/fd": { t: "dir", names: ["5"] },
    "/proc/100/fd/5": { t: "link", to: "/dev/vfio/noiommu-3" },
    "/proc/100/comm": { t: "file", text: "dpdk\n" },
    "/dev/vfio": { t: "dir", names: ["vfio", ...(opts.devNode ? ["noiommu-3"] : [])] },
    "/dev/vfio/vfio": { t: "char", rdev: makedev(10, 196) },
    ...(opts.devNode ? { "/dev/vfio/noiommu-3": { t: "char" as const, rdev: NOIOMMU } } : { "/elsewhere/noiommu-3": { t: "char" as const, rdev: NOIOMMU } }),
    ...(opts.devNode ? {} : { "/proc/100/fd/5": { t: "link" as const, to: "/elsewhere/noiommu-3" } }),
    ...(opts.sysfsDev ? { "/sys/class/vfio": { t: "dir" as const, names: ["noiommu-3"] }, "/sys/class/vfio/noiommu-3/dev": { t: "file" as const, text: "242:3\n" } } : {}),
  };
}

test("a holder of /dev/vfio/noiommu-N is found by device number and holds group N", async () => {
  // mutation: the /dev/vfio listing's /^(?:noiommu-)?(\d+)$/ without the noiommu- prefix
  const { holders } = await scanVfioHolders(new FakeHost(noiommuHost({ devNode: true, sysfsDev: false })));
  assert.equal(holders.length, 1);
  assert.equal(holders[0]!.pid, 100);
  assert.equal(holders[0]!.kind, "group");
  assert.equal(holders[0]!.group, 3);
  assert.equal(holders[0]!.via, "rdev");
});

test("with no /dev node (a container), /sys/class/vfio/noiommu-N/dev still names group N", async () => {
  // mutation: the /sys/class/vfio listing's regular expression without the noiommu- prefix
  const { holders } = await scanVfioHolders(new FakeHost(noiommuHost({ devNode: false, sysfsDev: true })));
  assert.equal(holders.length, 1);
  assert.equal(holders[0]!.group, 3);
  assert.equal(holders[0]!.via, "rdev");
});

test("when stat of the fd is refused, the link text /dev/vfio/noiommu-N still names group N", async () => {
  // mutation: PATH_TARGET without (?:noiommu-)?
  const { holders } = await scanVfioHolders(new FakeHost(noiommuHost({ devNode: true, sysfsDev: false }), new Set(["/proc/100/fd/5"])));
  assert.equal(holders.length, 1);
  assert.equal(holders[0]!.group, 3);
  assert.equal(holders[0]!.via, "path");
  assert.equal(holders[0]!.target, "/dev/vfio/noiommu-3");
});

test("when stat of every fd is refused, the link texts name each kind: a group, the container, a vfio cdev, iommufd", async () => {
  // sampled seed 16 (src/lib/holders.ts, the kind from PATH_TARGET's groups, an index moved by
  // one): a cdev or a group named by its path alone was taken for iommufd
  const fds = { "3": "/dev/vfio/7", "4": "/dev/vfio/vfio", "5": "/dev/vfio/devices/vfio2", "6": "/dev/iommu" };
  const nodes: Record<string, FakeNode> = {
    "/proc": { t: "dir", names: ["100", "self"] },
    "/proc/100/fd": { t: "dir", names: Object.keys(fds) },
    "/proc/100/comm": { t: "file", text: "dpdk\n" },
    ...Object.fromEntries(Object.entries(fds).map(([fd, to]) => [`/proc/100/fd/${fd}`, { t: "link" as const, to }])),
  };
  const { holders } = await scanVfioHolders(new FakeHost(nodes, new Set(Object.keys(fds).map((fd) => `/proc/100/fd/${fd}`))));
  assert.deepEqual(
    holders.map((h) => [h.fd, h.kind, h.group, h.via]),
    [
      [3, "group", 7, "path"],
      [4, "container", null, "path"],
      [5, "cdev", null, "path"],
      [6, "iommufd", null, "path"],
    ],
  );
});

// ---------------------------------------------------------------- a VF's index when the arithmetic does not name it

test("a VF's index is found by its PF's virtfn links when offset and stride do not point at it", async () => {
  // mutation: vfIndexOf's fallback loop over the PF's virtfn<N> links removed
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-answers-"));
  try {
    const dir = path.join(root, "sys/devices/pci0000:00/0000:00:01.0");
    const dev = (bdf: string, attrs: Record<string, string>, links: Record<string, string>) => {
      fs.mkdirSync(path.join(dir, bdf), { recursive: true });
      for (const [a, v] of Object.entries(attrs)) fs.writeFileSync(path.join(dir, bdf, a), v);
      for (const [a, t] of Object.entries(links)) fs.symlinkSync(t, path.join(dir, bdf, a));
      fs.mkdirSync(path.join(root, "sys/bus/pci/devices"), { recursive: true });
      fs.symlinkSync(`../../../devices/pci0000:00/0000:00:01.0/${bdf}`, path.join(root, "sys/bus/pci/devices", bdf));
    };
    // the PF says offset 1, stride 1, but its VFs sit at functions 4 and 6 (virtfn0, virtfn1)
    dev("0000:01:00.0", { vendor: "0x8086\n", device: "0x1572\n", class: "0x020000\n", sriov_totalvfs: "2\n", sriov_numvfs: "2\n", sriov_offset: "1\n", sriov_stride: "1\n", driver_override: "(null)\n" }, { virtfn0: "../0000:01:00.4", virtfn1: "../0000:01:00.6" });
    for (const vf of ["0000:01:00.4", "0000:01:00.6"]) dev(vf, { vendor: "0x8086\n", device: "0x154c\n", class: "0x020000\n", driver_override: "(null)\n" }, { physfn: "../0000:01:00.0" });
    const sys = new LinuxSyscalls({ root });
    assert.equal((await readDevice(sys, "0000:01:00.4")).vfIndex, 0);
    assert.equal((await readDevice(sys, "0000:01:00.6")).vfIndex, 1);
    const inv = await inventory(sys, { holders: false });
    assert.deepEqual(inv.pfs[0]!.vfDevices.map((v) => [v.bdf, v.vfIndex]), [["0000:01:00.4", 0], ["0000:01:00.6", 1]]);
    await sys.exit();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- the real backend's device fds

test("the real backend tracks the device fd a successful VFIO_GROUP_GET_DEVICE_FD returns, and exit closes it", async () => {
  // mutation: LinuxSyscalls.ioctl no longer records GET_DEVICE_FD's fd (only the failure path ran before)
  const devFds: number[] = [];
  const sys = new LinuxSyscalls({
    ioctl: (_fd, request, arg) => {
      if (request !== VFIO.GROUP_GET_DEVICE_FD) return request === VFIO.GET_API_VERSION ? 0 : -25;
      assert.ok(Buffer.isBuffer(arg));
      const fd = fs.openSync("/dev/null", "r"); // what the kernel hands back: a new fd of this process
      devFds.push(fd);
      return fd;
    },
  });
  const group = await sys.open("/dev/null", O_RDONLY);
  const dev = await sys.ioctl(group, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(`${VF0} vf_token=${T}`));
  assert.equal(dev, devFds[0]);
  assert.deepEqual(sys.openFds().sort((a, b) => a - b), [group, dev].sort((a, b) => a - b));
  // an ioctl that returns a number that is not an fd is not tracked
  assert.equal(await sys.ioctl(group, VFIO.GET_API_VERSION), 0);
  assert.equal(sys.openFds().length, 2);
  await sys.close(dev);
  assert.deepEqual(sys.openFds(), [group]);
  const again = await sys.ioctl(group, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(VF0));
  await sys.exit();
  assert.deepEqual(sys.openFds(), []);
  assert.throws(() => fs.fstatSync(again), { code: "EBADF" }, "exit closed the device fd");
  assert.throws(() => fs.fstatSync(group), { code: "EBADF" });
});

// ---------------------------------------------------------------- errno 95

test("errno 95 is EOPNOTSUPP everywhere: the errno table, the FFI's errors and Node's ENOTSUP", () => {
  // mutation: ioctl.ts's ERRNO_NAMES.set(95, "EOPNOTSUPP") dropped (95 then read ENOTSUP)
  assert.equal(errnoName(95), "EOPNOTSUPP");
  const e = sysErrorFromErrno(95, "ioctl", "/dev/vfio/devices/vfio0");
  assert.equal(e.code, "EOPNOTSUPP");
  assert.equal(e.errno, 95);
  assert.match(e.message, /EOPNOTSUPP \(Operation not supported\)/);
  // libuv names 95 ENOTSUP; the seam says EOPNOTSUPP, with its number
  const fromNode = toSysError(Object.assign(new Error("ENOTSUP: operation not supported on socket"), { code: "ENOTSUP", errno: -95 }), "read", "/x") as SysError;
  assert.ok(fromNode instanceof SysError);
  assert.equal(fromNode.code, "EOPNOTSUPP");
  assert.equal(fromNode.errno, 95);
  // other aliases keep the seam's usual name; a libuv-only code keeps its own
  assert.equal((toSysError(Object.assign(new Error("x"), { code: "EWOULDBLOCK", errno: -11 }), "read") as SysError).code, "EAGAIN");
  assert.equal((toSysError(Object.assign(new Error("x"), { code: "EOF", errno: -4095 }), "read") as SysError).code, "EOF");
});
