import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BLOCKING_SYSFS_ATTRS, LinuxSyscalls, readCannotBlock } from "../src/sys/linux/host.js";
import { readDevice } from "../src/lib/sysfs.js";
import { ffiAvailable, ioctl, ioctlErrno, eventfd } from "../src/sys/linux/ioctl.js";
import { O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK, SEEK_SET, SEEK_END, EFD_NONBLOCK } from "../src/sys/syscalls.js";
import { readAttr, readText, writeText, linkBase, withTimeout, TimeoutError } from "../src/sys/fsutil.js";
import { isErrno, SysError } from "../src/sys/errno.js";
import { VFIO } from "../src/uapi/vfio.js";

const FIONREAD = 0x541b;

function tree(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-linux-"));
  const dev = path.join(d, "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0");
  fs.mkdirSync(dev, { recursive: true });
  fs.writeFileSync(path.join(dev, "sriov_totalvfs"), "8\n");
  fs.writeFileSync(path.join(dev, "sriov_numvfs"), "0\n");
  fs.mkdirSync(path.join(d, "sys/bus/pci/devices"), { recursive: true });
  fs.mkdirSync(path.join(d, "sys/bus/pci/drivers/vfio-pci"), { recursive: true });
  fs.symlinkSync("../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0", path.join(d, "sys/bus/pci/devices/0000:01:00.0"));
  fs.symlinkSync("../../../bus/pci/drivers/vfio-pci", path.join(dev, "driver"));
  return d;
}

test("paths are looked up under the root prefix and link targets come back as stored", async () => {
  const root = tree();
  const sys = new LinuxSyscalls({ root, writable: true });
  assert.equal(sys.backend, "linux");
  assert.equal(sys.pid, process.pid);
  assert.equal(await readAttr(sys, "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs"), "8");
  assert.equal(await sys.readlink("/sys/bus/pci/devices/0000:01:00.0"), "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0");
  assert.equal(await linkBase(sys, "/sys/bus/pci/devices/0000:01:00.0/driver"), "vfio-pci");
  assert.deepEqual(await sys.readdir("/sys/bus/pci/devices"), ["0000:01:00.0"]);
  assert.equal((await sys.lstat("/sys/bus/pci/devices/0000:01:00.0")).kind, "link");
  assert.equal((await sys.stat("/sys/bus/pci/devices/0000:01:00.0")).kind, "dir");
  const st = await sys.stat("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs");
  assert.equal(st.kind, "file");
  assert.equal(st.mode, 0o644 & ~process.umask());
  assert.equal(await writeText(sys, "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", "2"), 1);
  // a regular file keeps its old tail ("0\n" overwritten at offset 0 by "2")
  assert.equal(await readText(sys, "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs"), "2\n");
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

test("a missing path fails with ENOENT naming the syscall and the caller's path", async () => {
  const root = tree();
  const sys = new LinuxSyscalls({ root, writable: true });
  await assert.rejects(sys.open("/sys/bus/pci/devices/0000:02:00.0/sriov_numvfs", O_RDONLY), (e: unknown) => {
    assert.ok(e instanceof SysError);
    assert.equal(e.code, "ENOENT");
    assert.equal(e.errno, 2);
    assert.equal(e.syscall, "open");
    assert.equal(e.path, "/sys/bus/pci/devices/0000:02:00.0/sriov_numvfs");
    return true;
  });
  await assert.rejects(sys.readlink("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs"), (e) => isErrno(e, "EINVAL"));
  await assert.rejects(sys.readdir("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs"), (e) => isErrno(e, "ENOTDIR"));
  await assert.rejects(sys.open("/sys/bus/pci/devices", O_WRONLY), (e) => isErrno(e, "EISDIR"));
  await assert.rejects(sys.read(9999, 10), (e) => isErrno(e, "EBADF"));
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

test("read is a single read(2) from the current offset and lseek moves that offset", async () => {
  const root = tree();
  fs.writeFileSync(path.join(root, "f"), "abcdefgh");
  const sys = new LinuxSyscalls({ root, writable: true });
  const fd = await sys.open("/f", O_RDONLY);
  assert.equal((await sys.read(fd, 3)).toString(), "abc");
  assert.equal((await sys.read(fd, 3)).toString(), "def");
  assert.equal(await sys.lseek(fd, 1, SEEK_SET), 1);
  assert.equal((await sys.read(fd, 100)).toString(), "bcdefgh");
  assert.equal((await sys.read(fd, 100)).length, 0);
  assert.equal(await sys.lseek(fd, 0, SEEK_END), 8);
  await sys.close(fd);
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

test("exit closes every fd the process opened and no other", async () => {
  const root = tree();
  const other = fs.openSync(path.join(root, "sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs"), "r");
  const sys = new LinuxSyscalls({ root, writable: true });
  const a = await sys.open("/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs", O_RDONLY);
  const b = await sys.open("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", O_RDWR);
  assert.deepEqual(sys.openFds().sort(), [a, b].sort());
  await sys.exit();
  assert.deepEqual(sys.openFds(), []);
  assert.throws(() => fs.fstatSync(a), { code: "EBADF" });
  assert.throws(() => fs.fstatSync(b), { code: "EBADF" });
  assert.ok(fs.fstatSync(other).isFile());
  fs.closeSync(other);
  fs.rmSync(root, { recursive: true });
});

const ffi = ffiAvailable();

test("an ioctl the file does not know fails with ENOTTY on a regular file", { skip: !ffi && "no FFI" }, async () => {
  const root = tree();
  const sys = new LinuxSyscalls({ root, writable: true });
  const fd = await sys.open("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", O_RDONLY);
  await assert.rejects(sys.ioctl(fd, VFIO.GET_API_VERSION), (e: unknown) => {
    assert.ok(e instanceof SysError);
    assert.equal(e.code, "ENOTTY");
    assert.equal(e.errno, 25);
    assert.equal(e.syscall, "ioctl");
    assert.equal(e.path, "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs");
    return true;
  });
  await assert.rejects(sys.ioctl(fd, VFIO.GROUP_GET_STATUS, Buffer.alloc(8)), (e) => isErrno(e, "ENOTTY"));
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

test("a failing ioctl is a SysError without a stack trace, through the seam and the FFI; ioctlErrno gives −errno", { skip: !ffi && "no FFI" }, async () => {
  const root = tree();
  const sys = new LinuxSyscalls({ root, writable: true });
  const fd = await sys.open("/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs", O_RDONLY);
  const noFrames = (e: unknown) => {
    assert.ok(e instanceof SysError);
    assert.equal(e.code, "ENOTTY");
    assert.equal(e.errno, 25);
    assert.ok(!/\n\s+at /.test(e.stack ?? ""), `no stack frames: ${e.stack}`);
    return true;
  };
  for (let i = 0; i < 3; i++) await assert.rejects(sys.ioctl(fd, VFIO.GET_API_VERSION), noFrames);
  assert.throws(() => ioctl(fd, VFIO.GET_API_VERSION, 0, "/x"), noFrames);
  assert.throws(() => ioctl(fd, VFIO.GROUP_GET_STATUS, Buffer.alloc(8)), noFrames);
  assert.equal(ioctlErrno(fd, VFIO.GET_API_VERSION), -25);
  assert.equal(ioctlErrno(fd, VFIO.GROUP_GET_STATUS, Buffer.alloc(8)), -25);
  assert.ok(Error.stackTraceLimit > 0);
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

test("a struct Buffer reused across ioctls gets each call's answer (its address is taken once)", { skip: !ffi && "no FFI" }, async () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-fifo-"));
  const fifo = path.join(d, "p");
  const { execFileSync } = await import("node:child_process");
  execFileSync("mkfifo", [fifo]);
  const sys = new LinuxSyscalls();
  const r = await sys.open(fifo, O_RDONLY | O_NONBLOCK);
  const w = await sys.open(fifo, O_WRONLY | O_NONBLOCK);
  const n = Buffer.alloc(4); // small: V8 keeps it on its heap until its address is taken
  const pooled = Buffer.from([0, 0, 0, 0]); // a slice of Node's shared pool
  for (let i = 1; i <= 5; i++) {
    await sys.write(w, "ab");
    assert.equal(await sys.ioctl(r, FIONREAD, n), 0);
    assert.equal(n.readInt32LE(0), 2 * i);
    assert.equal(ioctl(r, FIONREAD, pooled), 0);
    assert.equal(pooled.readInt32LE(0), 2 * i);
    // allocations in between may run a garbage collection; the Buffers' memory stays where it was
    for (let j = 0; j < 2000; j++) Buffer.alloc(64);
  }
  await sys.exit();
  fs.rmSync(d, { recursive: true });
});

test("an ioctl on a closed fd fails with EBADF", { skip: !ffi && "no FFI" }, () => {
  const fd = fs.openSync(os.tmpdir(), "r");
  fs.closeSync(fd);
  assert.throws(() => ioctl(fd, FIONREAD, Buffer.alloc(4)), (e) => isErrno(e, "EBADF"));
});

test("FIONREAD on a pipe writes the kernel's answer back into the Buffer", { skip: !ffi && "no FFI" }, async () => {
  const sys = new LinuxSyscalls();
  // /proc/self/fd of a pipe made by a child would do too; a FIFO in a temp dir keeps it in-process
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-fifo-"));
  const fifo = path.join(d, "p");
  const { execFileSync } = await import("node:child_process");
  execFileSync("mkfifo", [fifo]);
  const r = await sys.open(fifo, O_RDONLY | O_NONBLOCK);
  const w = await sys.open(fifo, O_WRONLY | O_NONBLOCK);
  assert.equal(await sys.write(w, "hello"), 5);
  const n = Buffer.alloc(4);
  assert.equal(await sys.ioctl(r, FIONREAD, n), 0);
  assert.equal(n.readInt32LE(0), 5);
  assert.equal((await sys.read(r, 100)).toString(), "hello");
  await assert.rejects(sys.read(r, 100), (e) => isErrno(e, "EAGAIN"));
  await sys.exit();
  fs.rmSync(d, { recursive: true });
});

test("an eventfd counts what is written and a non-blocking read of zero fails with EAGAIN", { skip: !ffi && "no FFI" }, async () => {
  const sys = new LinuxSyscalls();
  const efd = await sys.eventfd(0, EFD_NONBLOCK);
  assert.ok(efd > 2);
  await assert.rejects(sys.read(efd, 8), (e) => isErrno(e, "EAGAIN"));
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(3n);
  assert.equal(await sys.write(efd, one), 8);
  assert.equal(await sys.write(efd, one), 8);
  assert.equal((await sys.read(efd, 8)).readBigUInt64LE(0), 6n);
  await assert.rejects(sys.write(efd, Buffer.alloc(4)), (e) => isErrno(e, "EINVAL"));
  await sys.exit();
  assert.throws(() => fs.fstatSync(efd), { code: "EBADF" });
  assert.throws(() => eventfd(0, 0x7fffffff), (e) => isErrno(e, "EINVAL"));
});

/**
 * A process of its own that unblocks a FIFO after `ms`: `drain` reads what is in it (a blocked
 * writer finishes), `feed` writes `data` into it (a blocked reader finishes). If the backend made
 * the blocking call on the JS thread, that thread would stay stuck until then, so a test that
 * checks timers ran fails instead of hanging.
 */
async function unblockLater(fifo: string, ms: number, how: { drain: true } | { feed: string }) {
  const { spawn } = await import("node:child_process");
  const s = (ms / 1000).toFixed(2);
  const script = "drain" in how ? `sleep ${s}; dd if="$1" of=/dev/null bs=65536 count=1 iflag=nonblock 2>/dev/null; true` : `sleep ${s}; printf '%s' "$2" > "$1"`;
  const child = spawn("sh", ["-c", script, "sh", fifo, "feed" in how ? how.feed : ""], { stdio: "ignore" });
  const done = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return { done, kill: () => child.kill("SIGKILL") };
}

test("a write the kernel blocks leaves the event loop free until the reader drains", { skip: !ffi && "no FFI", timeout: 15_000 }, async () => {
  // A write to a full pipe stands in for sriov_numvfs while a VF is held open.
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-fifo-"));
  const fifo = path.join(d, "p");
  const { execFileSync } = await import("node:child_process");
  execFileSync("mkfifo", [fifo]);
  const sys = new LinuxSyscalls();
  const r = await sys.open(fifo, O_RDONLY | O_NONBLOCK);
  const filler = await sys.open(fifo, O_WRONLY | O_NONBLOCK);
  const w = await sys.open(fifo, O_WRONLY);
  const chunk = Buffer.alloc(4096, 0x61);
  for (;;) {
    try {
      await sys.write(filler, chunk);
    } catch (e) {
      assert.ok(isErrno(e, "EAGAIN"));
      break;
    }
  }
  // a write made on the JS thread would block it until this drains the pipe, 1.5 s from now
  const drainer = await unblockLater(fifo, 1500, { drain: true });
  try {
    const pending = sys.write(w, "x");
    let ticks = 0;
    const iv = setInterval(() => ticks++, 10).unref(); // unref: a failed assertion must not leave it keeping the process alive
    await assert.rejects(withTimeout(pending, 200, "fifo write"), (e) => e instanceof TimeoutError);
    clearInterval(iv);
    assert.ok(ticks >= 5, `timers ran ${ticks} times while the write was blocked`);
    assert.ok((await sys.read(r, 65536)).length > 0);
    assert.equal(await pending, 1);
  } finally {
    drainer.kill();
    await sys.exit();
    fs.rmSync(d, { recursive: true });
  }
});

/** A tree whose PF's sriov_numvfs is a FIFO: its reads block until something is written. */
async function treeWithBlockingNumvfs(): Promise<{ root: string; numvfs: string; holder: number }> {
  const root = tree();
  const numvfs = path.join(root, "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/sriov_numvfs");
  fs.rmSync(numvfs);
  const { execFileSync } = await import("node:child_process");
  execFileSync("mkfifo", [numvfs]);
  // held open for reading and writing, so that opening it for reading does not wait for a writer
  const holder = fs.openSync(numvfs, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  return { root, numvfs, holder };
}

test("a read of sriov_numvfs that Linux blocks leaves the JS thread free (threadpool), on the real backend over a tree", { timeout: 15_000 }, async () => {
  // 6.1 and 6.12 block `cat sriov_numvfs` while a write to it waits for a VF to be released
  // (scenarios/blocking-removal.yaml read-numvfs); a FIFO stands in for it.
  const { root, numvfs, holder } = await treeWithBlockingNumvfs();
  const sys = new LinuxSyscalls({ root, writable: true });
  const feeder = await unblockLater(numvfs, 1500, { feed: "3\n" });
  try {
    let ticks = 0;
    const iv = setInterval(() => ticks++, 10).unref(); // unref: a failed assertion must not leave it keeping the process alive
    const t0 = Date.now();
    const d = await readDevice(sys, "0000:01:00.0", { numvfsTimeoutMs: 200 });
    clearInterval(iv);
    assert.equal(d.sriov?.totalVfs, 8);
    assert.equal(d.sriov?.numVfs, null, "the blocked read is reported as unknown after the timeout");
    assert.ok(Date.now() - t0 < 1400, `readDevice returned after ${Date.now() - t0} ms, before the FIFO was fed`);
    assert.ok(ticks >= 5, `timers ran ${ticks} times while the read was blocked`);
    // the read itself is still pending in the threadpool; once fed it finishes and its fd is closed
    assert.equal(sys.openFds().length, 1);
    await feeder.done;
    for (let i = 0; i < 200 && sys.openFds().length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(sys.openFds(), []);
  } finally {
    feeder.kill();
    // whatever happened, no read stays pending on the FIFO (it would keep this process alive)
    fs.writeSync(holder, "0\n".repeat(16));
    await new Promise((r) => setTimeout(r, 50));
    await sys.exit();
    fs.closeSync(holder);
    fs.rmSync(root, { recursive: true });
  }
});

test("which reads are made on the JS thread: sysfs attributes that cannot block, and nothing else", () => {
  for (const p of ["/sys/bus/pci/devices/0000:01:00.0/vendor", "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs", "/sys/devices/pci0000:00/0000:00:01.0/class", "/sys/module/vfio_pci/parameters/enable_sriov", "/sys/kernel/iommu_groups/3/type", "/sys/class/vfio-dev/vfio0/dev"]) {
    assert.equal(readCannotBlock(p), true, p);
  }
  // show() takes the device lock (a blocked sriov_numvfs/unbind/remove write holds it), or waits on the device
  for (const a of ["sriov_numvfs", "driver_override", "sriov_vf_total_msix", "config", "vpd", "rom"]) {
    assert.equal(readCannotBlock(`/sys/bus/pci/devices/0000:01:00.0/${a}`), false, a);
    assert.ok(BLOCKING_SYSFS_ATTRS.has(a));
  }
  for (const p of ["/dev/kmsg", "/dev/vfio/3", "/proc/self/comm", "/proc/sys/kernel/random/boot_id", "/sys/kernel/tracing/trace_pipe", "/sys/kernel/debug/x", "/tmp/fifo", "relative/vendor"]) {
    assert.equal(readCannotBlock(p), false, p);
  }
});

test("a blocking attribute is read in the threadpool even as a regular file; others complete on the JS thread", async () => {
  const root = tree();
  const sys = new LinuxSyscalls({ root, writable: true });
  const settlesInMicrotasks = async (p: Promise<unknown>) => {
    let done = false;
    void p.then(() => (done = true));
    for (let i = 0; i < 20; i++) await null;
    return done;
  };
  const numvfs = await sys.open("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", O_RDONLY);
  const total = await sys.open("/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs", O_RDONLY);
  const a = sys.read(numvfs, 64);
  assert.equal(await settlesInMicrotasks(a), false, "sriov_numvfs: a threadpool read, answered by a later turn of the event loop");
  assert.equal((await a).toString(), "0\n");
  const b = sys.read(total, 64);
  assert.equal(await settlesInMicrotasks(b), true, "sriov_totalvfs: read on the JS thread");
  assert.equal((await b).toString(), "8\n");
  // the one-call read (Syscalls.readFile) likewise: none for an attribute that can block (its
  // caller reads it with open/read/close, in the threadpool), whole on the JS thread otherwise
  assert.equal(sys.readFile("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", true), undefined);
  assert.equal(sys.readFile("/sys/bus/pci/devices/0000:01:00.0/driver_override", true), undefined);
  const whole = sys.readFile("/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs", true);
  assert.ok(whole instanceof Promise && (await settlesInMicrotasks(whole)));
  assert.equal((await whole).toString(), "8\n");
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

test("each read returns its own bytes, though JS-thread reads share one buffer", async () => {
  const root = tree();
  const sys = new LinuxSyscalls({ root, writable: true });
  const a = await sys.open("/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs", O_RDONLY);
  const first = await sys.read(a, 65536);
  const b = await sys.open("/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs", O_RDONLY);
  fs.writeFileSync(path.join(root, "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/sriov_totalvfs"), "64\n");
  const second = await sys.read(b, 65536);
  assert.equal(first.toString(), "8\n");
  assert.equal(second.toString(), "64\n");
  assert.equal(first.length, 2);
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

test("an expected ENOENT is a SysError without a stack trace", async () => {
  const root = tree();
  const sys = new LinuxSyscalls({ root, writable: true });
  for (const p of [sys.open("/sys/bus/pci/devices/0000:01:00.0/physfn/sriov_totalvfs", O_RDONLY), sys.readlink("/sys/bus/pci/devices/0000:01:00.0/physfn"), sys.lstat("/dev/vfio/7")]) {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof SysError);
      assert.equal(e.code, "ENOENT");
      assert.ok(!/\n\s+at /.test(e.stack ?? ""), `no stack frames: ${e.stack}`);
      return true;
    });
  }
  assert.ok(Error.stackTraceLimit > 0, "stack traces are back on for everything else");
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

test("readAttr makes one read(2) for an attribute shorter than a page; readText reads to EOF", async () => {
  const root = tree();
  fs.writeFileSync(path.join(root, "big"), "y".repeat(70000) + "\n");
  const inner = new LinuxSyscalls({ root });
  const reads: number[] = [];
  // through open/read/close (readFile not offered: what a backend without it gets)
  const sys = Object.assign(Object.create(inner) as LinuxSyscalls, {
    readFile: undefined,
    read: async (fd: number, n: number) => {
      const b = await inner.read(fd, n);
      reads.push(b.length);
      return b;
    },
  });
  assert.equal(await readAttr(sys, "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs"), "8");
  assert.deepEqual(reads, [2]);
  reads.length = 0;
  assert.equal(await readText(sys, "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs"), "8\n");
  assert.deepEqual(reads, [2, 0]);
  reads.length = 0;
  assert.equal((await readAttr(sys, "/big")).length, 70000);
  assert.deepEqual(reads, [65536, 70001 - 65536, 0]);
  assert.deepEqual(inner.openFds(), []);
  // through readFile (the backend's own whole-file read): the same system calls, as traced
  const ops: string[] = [];
  LinuxSyscalls.trace = (op) => void ops.push(op.replace(/ \d+/, " FD"));
  try {
    const attr = "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs";
    assert.equal(await readAttr(inner, attr), "8");
    assert.deepEqual(ops, [`o FD 0 ${root}${attr}`, "r FD 65536", "c FD"]);
    ops.length = 0;
    assert.equal(await readText(inner, attr), "8\n");
    assert.deepEqual(ops, [`o FD 0 ${root}${attr}`, "r FD 65536", "r FD 65536", "c FD"]);
    ops.length = 0;
    // /big is outside the attribute trees: no readFile, the three calls in the threadpool way
    assert.equal((await readAttr(inner, "/big")).length, 70000);
    assert.deepEqual(ops, [`o FD 0 ${root}/big`, "r FD 65536", "r FD 65536", "r FD 65536", "c FD"]);
    ops.length = 0;
    fs.writeFileSync(path.join(root, "sys/bus/pci/devices/0000:01:00.0/long"), "z".repeat(5000) + "\n");
    assert.equal((await readAttr(inner, "/sys/bus/pci/devices/0000:01:00.0/long")).length, 5000);
    assert.deepEqual(ops.slice(1), ["r FD 65536", "r FD 65536", "c FD"], "a first read of a page or more is followed to EOF");
    ops.length = 0;
    await assert.rejects(readAttr(inner, "/sys/bus/pci/devices/0000:01:00.0/absent"), (e) => isErrno(e, "ENOENT") && (e as SysError).syscall === "open");
    assert.deepEqual(ops, [`o -1 FD ${root}/sys/bus/pci/devices/0000:01:00.0/absent`]);
  } finally {
    LinuxSyscalls.trace = undefined;
  }
  assert.deepEqual(inner.openFds(), []);
  await inner.exit();
  fs.rmSync(root, { recursive: true });
});

test("exit also closes the device fds that VFIO_GROUP_GET_DEVICE_FD returned", { skip: !ffi && "no FFI" }, async () => {
  // On a host without VFIO the ioctl fails, so nothing is tracked; this checks the failure path
  // leaves the table unchanged and that a tracked fd of any origin is closed by exit.
  const sys = new LinuxSyscalls();
  const f = await sys.open(os.tmpdir(), O_RDONLY);
  await assert.rejects(sys.ioctl(f, VFIO.GROUP_GET_DEVICE_FD, Buffer.from("0000:01:00.0\0")), (e) => isErrno(e, "ENOTTY"));
  assert.deepEqual(sys.openFds(), [f]);
  await sys.exit();
  assert.deepEqual(sys.openFds(), []);
});

test("stat and lstat of an absent path: ENOENT without Node's exception; under a file: ENOTDIR; readAttr of an absent attribute: open's ENOENT, no stack", async () => {
  const root = tree();
  const sys = new LinuxSyscalls({ root });
  const absent = "/sys/bus/pci/devices/0000:01:00.0/nothing";
  for (const p of [sys.lstat(absent), sys.stat(absent)]) {
    await assert.rejects(p, (e: unknown) => e instanceof SysError && e.code === "ENOENT" && e.errno === 2 && e.path === absent && !/\n\s+at /.test(e.stack ?? ""));
  }
  await assert.rejects(sys.lstat(absent), (e) => (e as SysError).syscall === "lstat");
  await assert.rejects(sys.stat(absent), (e) => (e as SysError).syscall === "stat");
  await assert.rejects(sys.lstat("/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs/x"), (e) => isErrno(e, "ENOTDIR"));
  await assert.rejects(readAttr(sys, absent), (e: unknown) => e instanceof SysError && e.code === "ENOENT" && e.syscall === "open" && e.path === absent && !/\n\s+at /.test(e.stack ?? ""));
  await assert.rejects(readAttr(sys, "/sys/bus/pci/devices"), (e) => isErrno(e, "EISDIR") && (e as SysError).syscall === "read");
  assert.deepEqual(sys.openFds(), [], "a failed read closes the fd it opened");
  assert.equal((await sys.stat("/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs")).kind, "file");
  await sys.exit();
  fs.rmSync(root, { recursive: true });
});

test("inventory on a tree reads each PF's sriov_offset, sriov_stride and virtfn links once, and no VF's sriov_* attributes", { timeout: 60_000 }, async () => {
  const { bootKernel } = await import("../src/kernel/host/boot.js");
  const { materialize } = await import("../src/sim/materialize.js");
  const { inventory } = await import("../src/lib/inventory.js");
  const devices = [0, 1].map((i) => ({ bdf: `0000:${(0x10 + 2 * i).toString(16)}:00.0`, vendor: 0x8086, device: 0x159b, class: 0x020000, driver: i ? "ice" : "vfio-pci", sriov: { total_vfs: 4, offset: 1, stride: 1, vf_device: 0x1889, num_vfs: 4 } }));
  const k = await bootKernel({ name: "t", modules: { vfio_pci: { enable_sriov: true } }, devices });
  const want = await inventory(k.spawn("i"));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-inv-"));
  const m = k.spawn("m");
  await materialize(m, dir);
  await m.exit();
  const ops: string[] = [];
  LinuxSyscalls.trace = (op) => void ops.push(op);
  try {
    const sys = new LinuxSyscalls({ root: dir });
    const inv = await inventory(sys);
    await sys.exit();
    const vfs = inv.pfs.flatMap((p) => p.vfDevices);
    assert.equal(vfs.length, 8);
    assert.deepEqual(vfs.map((v) => [v.bdf, v.physfn, v.vfIndex, v.sriov]), want.pfs.flatMap((p) => p.vfDevices).map((v) => [v.bdf, v.physfn, v.vfIndex, null]));
    const opened = (re: RegExp) => ops.filter((o) => o.startsWith("o ") && re.test(o)).length;
    for (const pf of inv.pfs) {
      for (const a of ["sriov_offset", "sriov_stride", "sriov_totalvfs"]) assert.equal(opened(new RegExp(`/${pf.bdf}/${a}$`)), 1, `${pf.bdf}/${a}`);
      for (let i = 0; i < 4; i++) assert.equal(ops.filter((o) => o.endsWith(`/${pf.bdf}/virtfn${i}`)).length, 1, `${pf.bdf}/virtfn${i}`);
      // the PF's directory is listed once (for its virtfn links): each VF's index comes from the
      // routing-ID arithmetic, confirmed by one link, not from a scan of the directory
      assert.equal(ops.filter((o) => o === `d ${dir}/sys/bus/pci/devices/${pf.bdf}`).length, 1, `readdir ${pf.bdf}`);
    }
    for (const v of vfs) assert.equal(opened(new RegExp(`/${v.bdf}/sriov_`)), 0, `${v.bdf}: no sriov_* attribute`);
  } finally {
    LinuxSyscalls.trace = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
