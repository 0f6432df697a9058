/**
 * The Linux backend's two implementations of ioctl/eventfd/lseek (src/sys/linux/ioctl.ts): the
 * Node-API addon (src/sys/linux/native/ioctl.c, built here from the source by
 * tools/build-native.mjs into a temporary folder) and koffi give the same answers for the same
 * calls, and the loader picks, forces and falls back as documented.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { ADDON_PATH, ffiInfo, loadAddon, loadKoffi, type Ffi } from "../src/sys/linux/ioctl.js";
import { readUserPointer, setUserPointer } from "../src/sys/userptr.js";
import { O_CLOEXEC } from "../src/sys/syscalls.js";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;
const FIONCLEX = 0x5450;
const FIOCLEX = 0x5451;
const FIONREAD = 0x541b;
const SIOCGIFCONF = 0x8912;
const VFIO_GET_API_VERSION = 0x3b64;
const ENOENT = 2, EBADF = 9, EINVAL = 22, ENOTTY = 25, ESPIPE = 29;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-addon-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

const linux = process.platform === "linux";
const haveCc = linux && spawnSync(process.env.CC || "cc", ["--version"]).status === 0;
/** the addon built from the current source (tools/build-native.mjs --strict), or why there is none */
const built = ((): string | { why: string } => {
  if (!haveCc) return { why: "no C compiler (cc): the addon cannot be built here" };
  if (!fs.existsSync(path.join(repo, "tools/build-native.mjs")) || !fs.existsSync(path.join(repo, "src/sys/linux/native/ioctl.c"))) return { why: `no tools/build-native.mjs or src/sys/linux/native/ioctl.c beside ${repo}dist/` };
  const out = path.join(tmp, "ioctl.node");
  const r = spawnSync(process.execPath, [path.join(repo, "tools/build-native.mjs"), "--strict", "--out", out], { encoding: "utf8" });
  // with a compiler the build must work: a failure is this test's failure, not a skip
  if (r.status !== 0) throw new Error(`tools/build-native.mjs failed (exit ${r.status}): ${r.stderr}`);
  return out;
})();
const skip = typeof built === "string" ? false : built.why;
const koffiSkip = linux ? false : "not Linux";

/** A FIFO opened non-blocking for reading and writing, with `bytes` written into it. */
function fifo(bytes: string): { r: number; w: number; close(): void } {
  const d = fs.mkdtempSync(path.join(tmp, "fifo-"));
  const p = path.join(d, "p");
  execFileSync("mkfifo", [p]);
  const r = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const w = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  if (bytes) fs.writeSync(w, bytes);
  return {
    r,
    w,
    close() {
      fs.closeSync(r);
      fs.closeSync(w);
      fs.rmSync(d, { recursive: true, force: true });
    },
  };
}

/** close-on-exec of an fd as the kernel reports it (/proc/self/fdinfo: O_CLOEXEC in flags) */
function cloexec(fd: number): boolean {
  const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
  assert.ok(m, `/proc/self/fdinfo/${fd} has a flags line`);
  return (parseInt(m[1]!, 8) & O_CLOEXEC) !== 0;
}

/** an fd number that is certainly closed */
function closedFd(): number {
  const fd = fs.openSync(os.tmpdir(), "r");
  fs.closeSync(fd);
  return fd;
}

function both(): [string, Ffi][] {
  return [
    ["addon", loadAddon(built as string)],
    ["koffi", loadKoffi()],
  ];
}

test("the addon is found at build/native/ioctl.node of the project, and used there when npm install built it", { skip: koffiSkip }, () => {
  assert.equal(ADDON_PATH, path.join(repo, "build/native/ioctl.node"));
  const info = ffiInfo();
  if (!process.env.VFIOCTL_FFI && !process.env.VFIOCTL_ADDON && fs.existsSync(ADDON_PATH)) assert.equal(info.kind, "addon", `${ADDON_PATH} exists but ${info.kind} is in use: ${info.addonSkipped}`);
  if (process.env.VFIOCTL_FFI === "koffi") assert.equal(info.kind, "koffi");
});

test("FIOCLEX and FIONCLEX with an integer argument set and clear close-on-exec, the same through the addon and koffi", { skip }, () => {
  const p = fifo("");
  try {
    for (const [name, f] of both()) {
      assert.equal(f.ioctlErrno(p.r, FIONCLEX, 0), 0, name);
      assert.equal(cloexec(p.r), false, `${name}: FIONCLEX cleared it`);
      assert.equal(f.ioctlErrno(p.r, FIOCLEX, 0), 0, name);
      assert.equal(cloexec(p.r), true, `${name}: FIOCLEX set it`);
    }
  } finally {
    p.close();
  }
});

test("FIONREAD writes the bytes waiting in a pipe back into the Buffer, at the Buffer's own offset, the same through the addon and koffi", { skip }, () => {
  for (const bytes of ["a", "hello", "x".repeat(300)]) {
    const p = fifo(bytes);
    try {
      for (const [name, f] of both()) {
        const n = Buffer.alloc(4, 0xff); // small: on V8's heap until its address is taken
        assert.equal(f.ioctlErrno(p.r, FIONREAD, n), 0, name);
        assert.equal(n.readInt32LE(0), bytes.length, `${name}: ${bytes.length} bytes waiting`);
        // a Buffer that is a slice of a larger one: the kernel writes at the slice, not before it
        const big = Buffer.alloc(64, 0xee);
        const slice = big.subarray(20, 24);
        assert.equal(f.ioctlErrno(p.r, FIONREAD, slice), 0, name);
        assert.equal(slice.readInt32LE(0), bytes.length, name);
        assert.ok(big.subarray(0, 20).every((b) => b === 0xee) && big.subarray(24).every((b) => b === 0xee), `${name}: only the slice's 4 bytes were written`);
      }
    } finally {
      p.close();
    }
  }
});

test("an integer argument reaches the kernel whole: a Buffer's address passed as a number gets FIONREAD's answer", { skip }, () => {
  const mod = { exports: {} as { address(b: Buffer): bigint; ioctlInt(fd: number, r: number, a: number | bigint): number; ioctl(fd: number, r: number, a?: Buffer | number): number } };
  process.dlopen(mod, built as string);
  const a = mod.exports;
  const p = fifo("abcdef");
  try {
    // a large allocation is mmap()ed, above 4 GiB: an argument cut to 32 bits would miss it
    const n = Buffer.alloc(1 << 22, 0xff).subarray(4096, 4100);
    const addr = a.address(n);
    assert.ok(addr > 0xffff_ffffn, `the Buffer's address ${addr.toString(16)} is above 4 GiB`);
    assert.equal(a.ioctlInt(p.r, FIONREAD, Number(addr)), 0);
    assert.equal(n.readInt32LE(0), 6);
    n.fill(0xff);
    assert.equal(a.ioctlInt(p.r, FIONREAD, addr), 0, "a BigInt argument");
    assert.equal(n.readInt32LE(0), 6);
    n.fill(0xff);
    assert.equal(a.ioctl(p.r, FIONREAD, n), 0, "ioctl() with a Buffer");
    assert.equal(n.readInt32LE(0), 6);
    assert.equal(a.ioctl(p.r, FIOCLEX), 0, "ioctl() with no argument");
    assert.equal(a.ioctl(p.r, VFIO_GET_API_VERSION), -ENOTTY);
    assert.throws(() => a.ioctlInt(p.r, FIONREAD, "1" as unknown as number), TypeError);
    assert.throws(() => (a as unknown as { ioctlBuf(fd: number, r: number, b: unknown): number }).ioctlBuf(p.r, FIONREAD, {}), TypeError);
  } finally {
    p.close();
  }
});

test("failures are −errno of this call: EBADF, ENOTTY, and no errno left over from an earlier failure or another system call", { skip }, () => {
  const p = fifo("hello");
  const bad = closedFd();
  try {
    for (const [name, f] of both()) {
      const n = Buffer.alloc(4);
      const seq: [string, () => number, number][] = [
        ["EBADF int", () => f.ioctlErrno(bad, FIOCLEX, 0), -EBADF],
        ["ENOTTY after EBADF", () => f.ioctlErrno(p.r, VFIO_GET_API_VERSION, 0), -ENOTTY],
        ["success after ENOTTY", () => f.ioctlErrno(p.r, FIOCLEX, 0), 0],
        ["EBADF Buffer", () => f.ioctlErrno(bad, FIONREAD, n), -EBADF],
        ["success with a Buffer after EBADF", () => f.ioctlErrno(p.r, FIONREAD, n), 0],
        ["ENOTTY with a Buffer", () => f.ioctlErrno(p.r, VFIO_GET_API_VERSION, Buffer.alloc(8)), -ENOTTY],
        ["EBADF after ENOTTY", () => f.ioctlErrno(bad, VFIO_GET_API_VERSION, 0), -EBADF],
      ];
      for (const [what, call, want] of seq) assert.equal(call(), want, `${name}: ${what}`);
      // a failed open(2) on this thread leaves errno ENOENT: the next answers are their own
      assert.throws(() => fs.openSync(path.join(tmp, "absent"), "r"), { code: "ENOENT" });
      assert.equal(f.ioctlErrno(p.r, FIOCLEX, 0), 0, `${name}: success after an ENOENT open`);
      assert.throws(() => fs.openSync(path.join(tmp, "absent"), "r"), { errno: -ENOENT });
      assert.equal(f.ioctlErrno(p.r, VFIO_GET_API_VERSION, 0), -ENOTTY, `${name}: ENOTTY after an ENOENT open`);
      assert.equal(n.readInt32LE(0), 5);
    }
  } finally {
    p.close();
  }
});

test("eventfd and lseek give the same fds, offsets and −errno through the addon and koffi", { skip }, () => {
  const file = path.join(tmp, "seek");
  fs.writeFileSync(file, "0123456789");
  const fd = fs.openSync(file, "r");
  const p = fifo("");
  try {
    for (const [name, f] of both()) {
      const efd = f.eventfd(3, 0);
      assert.ok(efd > 2, `${name}: eventfd ${efd}`);
      const b = Buffer.alloc(8);
      assert.equal(fs.readSync(efd, b), 8);
      assert.equal(b.readBigUInt64LE(0), 3n, `${name}: the eventfd counts from initval`);
      fs.closeSync(efd);
      assert.equal(f.eventfd(0, -1), -EINVAL, `${name}: bad flags`);
      assert.equal(f.lseek(fd, 4, 0), 4, `${name}: SEEK_SET`);
      assert.equal(f.lseek(fd, 0, 2), 10, `${name}: SEEK_END`);
      assert.equal(f.lseek(fd, -1, 0), -EINVAL, `${name}: a negative offset`);
      assert.equal(f.lseek(p.r, 0, 0), -ESPIPE, `${name}: a pipe`);
      assert.equal(f.lseek(closedFd(), 0, 0), -EBADF, `${name}: a closed fd`);
    }
  } finally {
    fs.closeSync(fd);
    p.close();
  }
});

/** A listening TCP socket's fd (SIOCGIFCONF works on any socket), or undefined. */
async function socketFd(): Promise<{ fd: number; close(): Promise<void> } | undefined> {
  const srv = net.createServer();
  try {
    await new Promise<void>((res, rej) => srv.once("error", rej).listen(0, "127.0.0.1", res));
  } catch {
    return undefined;
  }
  const fd = (srv as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    srv.close();
    return undefined;
  }
  return { fd, close: () => new Promise((res) => srv.close(() => res())) };
}

test("a struct with a user pointer (SIOCGIFCONF's ifc_buf): the kernel fills the target through its real address, the placeholder is back after, the same through the addon and koffi", { skip, timeout: 30_000 }, async () => {
  const s = await socketFd();
  if (!s) return void assert.fail("no TCP socket on 127.0.0.1 for SIOCGIFCONF");
  try {
    const answers: { ifcLen: number; names: string }[] = [];
    for (const [name, f] of both()) {
      const target = Buffer.alloc(40 * 16, 0xee); // room for 16 struct ifreq
      const ifc = Buffer.alloc(16); // struct ifconf: int ifc_len, (pad), char *ifc_buf
      ifc.writeInt32LE(target.length, 0);
      setUserPointer(ifc, 8, target);
      const placeholder = ifc.readBigUInt64LE(8);
      assert.equal(f.ioctlErrno(s.fd, SIOCGIFCONF, ifc), 0, `${name}: SIOCGIFCONF (EFAULT would mean the placeholder reached the kernel)`);
      const ifcLen = ifc.readInt32LE(0);
      assert.ok(ifcLen > 0 && ifcLen % 40 === 0 && ifcLen <= target.length, `${name}: ifc_len ${ifcLen}`);
      assert.equal(ifc.readBigUInt64LE(8), placeholder, `${name}: the placeholder is back`);
      assert.ok(readUserPointer(ifc, 8, 16)?.equals(target.subarray(0, 16)), `${name}: the struct still points at the target for the model`);
      assert.ok(target.subarray(ifcLen).every((b) => b === 0xee), `${name}: nothing written past ifc_len`);
      const names = [];
      for (let o = 0; o < ifcLen; o += 40) names.push(target.toString("latin1", o, o + 16).replace(/\0.*$/s, ""));
      assert.ok(names.includes("lo"), `${name}: the loopback interface is listed: ${names.join(" ")}`);
      answers.push({ ifcLen, names: names.join(" ") });
    }
    assert.deepEqual(answers[0], answers[1]);
  } finally {
    await s.close();
  }
});

/**
 * A child node process that loads the FFI with `env` and reports, through LinuxSyscalls, what a
 * few ioctls answer: the implementation in use and each answer or SysError.
 */
async function seamReport(env: Record<string, string | undefined>): Promise<{ info: { kind: string; addonSkipped?: string }; answers: unknown[] } | { error: string }> {
  const script = path.join(tmp, "seam-report.mjs");
  fs.writeFileSync(
    script,
    `import * as fs from "node:fs";
const { LinuxSyscalls } = await import(${JSON.stringify(path.join(repo, "dist/src/sys/linux/host.js"))});
const { ffiInfo } = await import(${JSON.stringify(path.join(repo, "dist/src/sys/linux/ioctl.js"))});
const [fifo, file] = process.argv.slice(2);
let info;
try { info = ffiInfo(); } catch (e) { console.log(JSON.stringify({ error: e.message })); process.exit(0); }
const sys = new LinuxSyscalls();
const r = await sys.open(fifo, 0o4000);
const w = await sys.open(fifo, 0o4001);
await sys.write(w, "hello!");
const f = await sys.open(file, 0);
const answers = [];
const n = Buffer.alloc(4, 0xff);
const err = (e) => ({ code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, name: e.constructor.name, frames: /\\n\\s+at /.test(e.stack ?? "") });
for (const [fd, req, arg] of [[r, 0x5451, 0], [r, 0x541b, n], [f, 0x3b64, 0], [f, 0x3b64, Buffer.alloc(8)], [9999, 0x5451, 0]]) {
  try { answers.push(await sys.ioctl(fd, req, arg)); } catch (e) { answers.push(err(e)); }
}
answers.push(n.readInt32LE(0));
const efd = await sys.eventfd(0, 0);
answers.push(typeof efd);
try { await sys.lseek(r, 0, 0); } catch (e) { answers.push(err(e)); }
await sys.exit();
console.log(JSON.stringify({ info, answers }));
`,
  );
  const d = fs.mkdtempSync(path.join(tmp, "seam-"));
  const fifoPath = path.join(d, "p");
  execFileSync("mkfifo", [fifoPath]);
  const file = path.join(d, "f");
  fs.writeFileSync(file, "x");
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  delete childEnv.VFIOCTL_FFI;
  delete childEnv.VFIOCTL_ADDON;
  for (const [k, v] of Object.entries(env)) if (v !== undefined) childEnv[k] = v;
  const { stdout } = await run(process.execPath, [script, fifoPath, file], { env: childEnv, timeout: 30_000 });
  return JSON.parse(stdout.trim().split("\n").pop()!);
}

test("through LinuxSyscalls the addon, forced koffi and the fallback from a missing or unloadable addon give the same answers and SysErrors", { skip, timeout: 60_000 }, async () => {
  const garbage = path.join(tmp, "garbage.node");
  fs.writeFileSync(garbage, "not a shared object\n");
  const addon = await seamReport({ VFIOCTL_ADDON: built as string });
  const koffi = await seamReport({ VFIOCTL_ADDON: built as string, VFIOCTL_FFI: "koffi" });
  const missing = await seamReport({ VFIOCTL_ADDON: path.join(tmp, "no-such.node") });
  const unloadable = await seamReport({ VFIOCTL_ADDON: garbage });
  assert.ok("info" in addon && "info" in koffi && "info" in missing && "info" in unloadable, JSON.stringify({ addon, koffi, missing, unloadable }));
  assert.equal(addon.info.kind, "addon");
  assert.equal(koffi.info.kind, "koffi");
  assert.match(koffi.info.addonSkipped ?? "", /VFIOCTL_FFI=koffi/);
  assert.equal(missing.info.kind, "koffi");
  assert.match(missing.info.addonSkipped ?? "", /no-such\.node: ENOENT.*tools\/build-native\.mjs/);
  assert.equal(unloadable.info.kind, "koffi");
  assert.match(unloadable.info.addonSkipped ?? "", /garbage\.node: .*tools\/build-native\.mjs/);
  const enotty = { code: "ENOTTY", errno: ENOTTY, syscall: "ioctl", name: "SysError", frames: false };
  assert.deepEqual(addon.answers, [
    0,
    0,
    { ...enotty, path: (addon.answers[2] as { path: string }).path },
    { ...enotty, path: (addon.answers[3] as { path: string }).path },
    { code: "EBADF", errno: EBADF, syscall: "ioctl", name: "SysError", frames: false }, // an fd this object did not open: no path
    6,
    "number",
    { code: "ESPIPE", errno: ESPIPE, syscall: "lseek", path: (addon.answers[7] as { path: string }).path, name: "SysError", frames: false },
  ]);
  assert.match((addon.answers[2] as { path: string }).path, /\/f$/, "the error names the file the fd was opened on");
  assert.match((addon.answers[7] as { path: string }).path, /\/p$/);
  // the paths differ (each child has its own folder) only in the folder
  const norm = (a: unknown[]) => JSON.parse(JSON.stringify(a).replace(/"path":"[^"]*\/([^/"]+)"/g, '"path":"$1"'));
  assert.deepEqual(norm(koffi.answers), norm(addon.answers));
  assert.deepEqual(norm(missing.answers), norm(addon.answers));
  assert.deepEqual(norm(unloadable.answers), norm(addon.answers));
});

test("VFIOCTL_FFI=addon refuses the fallback and names the file and the fix; an unknown VFIOCTL_FFI is refused", { skip: koffiSkip, timeout: 60_000 }, async () => {
  const forced = await seamReport({ VFIOCTL_FFI: "addon", VFIOCTL_ADDON: path.join(tmp, "no-such.node") });
  assert.ok("error" in forced, JSON.stringify(forced));
  assert.match(forced.error, /^VFIOCTL_FFI=addon: ioctl addon .*no-such\.node: ENOENT.*node tools\/build-native\.mjs.*apt-get install gcc/);
  const unknown = await seamReport({ VFIOCTL_FFI: "ctypes" });
  assert.ok("error" in unknown, JSON.stringify(unknown));
  assert.match(unknown.error, /VFIOCTL_FFI=ctypes: expected koffi or addon/);
});

test("tools/build-native.mjs without a C compiler says so, names the package, exits 0 (npm install goes on) and leaves no addon", { skip: koffiSkip, timeout: 60_000 }, () => {
  const out = path.join(tmp, "nocc", "ioctl.node");
  const r = spawnSync(process.execPath, [path.join(repo, "tools/build-native.mjs"), "--out", out], { encoding: "utf8", env: { ...process.env, CC: path.join(tmp, "no-such-cc") } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /native ioctl addon not built: cannot run the C compiler `.*no-such-cc`: ENOENT; install one \(Debian: apt-get install gcc libc6-dev\).*koffi/);
  assert.ok(!fs.existsSync(out));
  assert.deepEqual(fs.existsSync(path.dirname(out)) ? fs.readdirSync(path.dirname(out)) : [], [], "no temporary file left");
  const strict = spawnSync(process.execPath, [path.join(repo, "tools/build-native.mjs"), "--strict", "--out", out], { encoding: "utf8", env: { ...process.env, CC: path.join(tmp, "no-such-cc") } });
  assert.equal(strict.status, 1);
});
