import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import { ffiAvailable, ioctl, eventfd } from "../src/sys/linux/ioctl.js";
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
  const sys = new LinuxSyscalls({ root });
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
  const sys = new LinuxSyscalls({ root });
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
  const sys = new LinuxSyscalls({ root });
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
  const sys = new LinuxSyscalls({ root });
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
  const sys = new LinuxSyscalls({ root });
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

test("a write the kernel blocks leaves the event loop free until the reader drains", { skip: !ffi && "no FFI" }, async () => {
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
  const pending = sys.write(w, "x");
  let ticks = 0;
  const iv = setInterval(() => ticks++, 10);
  await assert.rejects(withTimeout(pending, 200, "fifo write"), (e) => e instanceof TimeoutError);
  clearInterval(iv);
  assert.ok(ticks >= 5, `timers ran ${ticks} times while the write was blocked`);
  assert.ok((await sys.read(r, 65536)).length > 0);
  assert.equal(await pending, 1);
  await sys.exit();
  fs.rmSync(d, { recursive: true });
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
