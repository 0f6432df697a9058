/**
 * The model's batch reads (ModelProcess.readFiles, readlinks, lstats, readdirs) against the same
 * paths read one by one (readText / readAttr through open, read and close or readFile; readlink,
 * lstat, readdir): the same bytes and errors (code, syscall, path), the same fds afterwards, the
 * same injected faults used up, the same answers for an exited process, a chroot and a
 * container; a read that blocks behind a held device lock answered null after the timeout while
 * the others arrive, blocked as the one-by-one read blocks; inventory through the batches
 * byte-identical to inventory without them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { DeviceDesc } from "../src/kernel/host/host-file.js";
import type { Kernel } from "../src/kernel/kernel.js";
import type { ModelProcess } from "../src/kernel/process.js";
import { inventory } from "../src/lib/inventory.js";
import { SysError } from "../src/sys/errno.js";
import { readAttr, readText, TimeoutError, withTimeout } from "../src/sys/fsutil.js";
import { O_RDONLY, O_RDWR, type FileRead, type Syscalls } from "../src/sys/syscalls.js";
import { PF, PLAIN, VF0, VF1, dev, openDevice, specHost, tokenOf, w } from "../testlib/spec/index.js";
import { SeededRng } from "../src/kernel/clock.js";

/** An answer as the tests compare it: the bytes as text, or the error's code, syscall and path. */
function shown(v: unknown): unknown {
  if (v instanceof SysError) return { code: v.code, syscall: v.syscall, path: v.path ?? null };
  if (Buffer.isBuffer(v)) return v.toString("latin1");
  if (v instanceof Error) return { error: v.message };
  return v;
}

/** A single call's value, or the SysError it was rejected with. */
async function settled<T>(p: Promise<T>): Promise<T | SysError> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof SysError) return e;
    throw e;
  }
}

/** What readText (whole: readAttr) makes of one readFiles answer. */
function asRead(v: FileRead, whole: boolean): unknown {
  if (!Buffer.isBuffer(v)) return shown(v);
  const s = v.toString("utf8");
  return whole && s.endsWith("\n") ? s.slice(0, -1) : s;
}

/** The same paths read one by one, as readAttr (whole) or readText reads them. */
async function readOneByOne(sys: Syscalls, paths: readonly string[], whole: boolean): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const p of paths) out.push(shown(await settled(whole ? readAttr(sys, p) : readText(sys, p))));
  return out;
}

/** The process as a backend without batch reads: every call goes to it, the batch methods are absent. */
function oneByOne(p: ModelProcess): Syscalls {
  return {
    backend: p.backend,
    pid: p.pid,
    root: p.root,
    open: (path, flags) => p.open(path, flags),
    close: (fd) => p.close(fd),
    read: (fd, n) => p.read(fd, n),
    write: (fd, data) => p.write(fd, data),
    lseek: (fd, offset, whence) => p.lseek(fd, offset, whence),
    ioctl: (fd, req, arg) => p.ioctl(fd, req, arg),
    eventfd: (v, flags) => p.eventfd(v, flags),
    readlink: (path) => p.readlink(path),
    readdir: (path) => p.readdir(path),
    stat: (path) => p.stat(path),
    lstat: (path) => p.lstat(path),
    readFile: (path, whole) => p.readFile(path, whole),
    exit: () => p.exit(),
  };
}

/** Every entry of some device folders (attributes, links, folders, write-only files) and paths that fail in each way. */
async function manyPaths(sh: ModelProcess, bdfs: readonly string[]): Promise<string[]> {
  const paths: string[] = [];
  for (const b of bdfs) {
    for (const name of await sh.readdir(dev(b))) paths.push(`${dev(b)}/${name}`);
    paths.push(`${dev(b)}/no_such_attr`, `${dev(b)}/power/control`, `${dev(b)}/driver/`, `${dev(b)}/../${b}/vendor`, `${dev(b)}/vendor/x`);
  }
  paths.push(
    "/sys/bus/pci/devices",
    "/sys/bus/pci/drivers_probe",
    "/sys/bus/pci/drivers/vfio-pci/bind",
    "/sys/module/vfio_pci/parameters/enable_sriov",
    "/sys/kernel/iommu_groups/20/type",
    "/sys/kernel/iommu_groups/20/devices",
    "/sys/class/net",
    "/sys/no_such_dir/x",
    "/proc/self",
    "/proc/self/status",
    "/proc/self/fd",
    "/proc/version",
    "/proc/sys/kernel/osrelease",
    "/dev/vfio",
    "/dev/vfio/vfio",
    "/dev/vfio/12345",
    "/",
    "relative/path",
    "",
  );
  return paths;
}

const DEVICES = [PF, VF0, VF1, PLAIN];

async function bootSpec(profile: "6.1" | "6.12" = "6.1"): Promise<{ k: Kernel; sh: ModelProcess }> {
  const k = await bootKernel(specHost(), { profile, rng: new SeededRng(1) });
  const sh = k.spawn("bash");
  assert.equal(await w(sh, `${dev(PF)}/sriov_numvfs`, "2"), 1);
  return { k, sh };
}

test("readFiles answers every path as readAttr / readText one by one would, and gives every fd back", { timeout: 30_000 }, async () => {
  const { k, sh } = await bootSpec();
  const paths = await manyPaths(sh, DEVICES);
  const p = k.spawn("vfioctl");
  const held = await p.open("/dev/vfio/vfio", O_RDWR); // a held fd: the batch's files take the numbers above it
  for (const whole of [true, false]) {
    const single = await readOneByOne(oneByOne(p), paths, whole);
    assert.deepEqual(p.fdNumbers(), [held]);
    const batch = await p.readFiles(paths, { wholeIfShort: whole });
    assert.equal(batch.length, paths.length);
    assert.deepEqual(
      batch.map((v) => asRead(v, whole)),
      single,
    );
    assert.deepEqual(p.fdNumbers(), [held], "every file's fd was given back");
  }
  const batch = await p.readFiles(paths, { wholeIfShort: true });
  // the kinds of answers this compared: bytes, errors of the open and of the read
  const kinds = new Set(batch.map((v) => (Buffer.isBuffer(v) ? "bytes" : v instanceof SysError ? `${v.syscall} ${v.code}` : String(v))));
  for (const kind of ["bytes", "open ENOENT", "open ENOTDIR", "open EACCES", "read EISDIR", "read EINVAL"]) assert.ok(kinds.has(kind), `${kind} among ${[...kinds].join(", ")}`);
  assert.equal(await p.open(`${dev(PF)}/vendor`, O_RDONLY), held + 1, "the next open takes the lowest free number");
});

test("readlinks, lstats and readdirs answer every path as readlink, lstat and readdir", { timeout: 30_000 }, async () => {
  const { k, sh } = await bootSpec();
  const paths = await manyPaths(sh, DEVICES);
  const p = k.spawn("vfioctl");
  await p.open("/dev/vfio/vfio", O_RDWR);
  paths.push(`/proc/${p.pid}/fd/3`, "/proc/self/fd/3", "/proc/self/fd/4", "/proc/self/root", "/proc/self/ns/mnt", `/proc/${sh.pid}/fd`);
  const one = async <T>(f: (path: string) => Promise<T>) => {
    const out: unknown[] = [];
    for (const path of paths) out.push(shown(await settled(f(path))));
    return out;
  };
  assert.deepEqual((await p.readlinks(paths)).map(shown), await one((x) => p.readlink(x)));
  assert.deepEqual((await p.lstats(paths)).map(shown), await one((x) => p.lstat(x)));
  assert.deepEqual((await p.stats(paths)).map(shown), await one((x) => p.stat(x)));
  assert.deepEqual((await p.readdirs(paths)).map(shown), await one((x) => p.readdir(x)));
  const links = await p.readlinks(paths);
  assert.ok(links.some((l) => typeof l === "string" && l.endsWith("/bus/pci/drivers/vfio-pci")), "a driver link among the answers");
  assert.ok(links.some((l) => l instanceof SysError && l.code === "EINVAL" && l.syscall === "readlink"), "an attribute's EINVAL");
  const dirs = await p.readdirs(paths);
  assert.ok(dirs.some((l) => l instanceof SysError && l.code === "ENOTDIR"), "a file's ENOTDIR");
  assert.ok(dirs.some((l) => l instanceof SysError && l.code === "ENOENT"), "a missing folder's ENOENT");
  assert.deepEqual(p.fdNumbers(), [3]);
});

test("a chroot's and a container's batches look paths up and name their fds as their single calls do", { timeout: 30_000 }, async () => {
  const { k } = await bootSpec();
  for (const opts of [{ root: "/srv/c" }, { mounts: { "/host/sys": "/sys", "/dev/vfio": "/dev/vfio" } }]) {
    const p = k.spawn("c", opts);
    const fd = await p.open("/dev/vfio/vfio", O_RDWR);
    const base = "mounts" in opts ? "/host/sys/bus/pci/devices" : "/sys/bus/pci/devices";
    const paths = [`${base}/${PF}/vendor`, `${base}/${PF}/driver`, `${base}/${VF0}/physfn`, `${base}/${PF}/no_such`, `/proc/self/fd/${fd}`, "/proc/self/root", "/dev/vfio/vfio", "/sys/bus/pci/devices"];
    const one = async <T>(f: (path: string) => Promise<T>) => {
      const out: unknown[] = [];
      for (const path of paths) out.push(shown(await settled(f(path))));
      return out;
    };
    assert.deepEqual((await p.readlinks(paths)).map(shown), await one((x) => p.readlink(x)), JSON.stringify(opts));
    assert.deepEqual((await p.lstats(paths)).map(shown), await one((x) => p.lstat(x)));
    assert.deepEqual((await p.stats(paths)).map(shown), await one((x) => p.stat(x)));
    assert.deepEqual((await p.readdirs(paths)).map(shown), await one((x) => p.readdir(x)));
    assert.deepEqual((await p.readFiles(paths, { wholeIfShort: true })).map((v) => asRead(v, true)), await readOneByOne(oneByOne(p), paths, true));
    const target = (await p.readlinks([`/proc/self/fd/${fd}`]))[0];
    assert.equal(target, "root" in opts ? "/srv/c/dev/vfio/vfio" : "/dev/vfio/vfio");
    await p.exit();
  }
});

test("an injected open fault fails the batch's open as it fails the single one, and is used up the same way", { timeout: 30_000 }, async () => {
  const run = async (batched: boolean) => {
    const { k } = await bootSpec();
    const p = k.spawn("vfioctl");
    k.faults.add({ syscall: "open", path: `${dev(PF)}/*`, errno: "EIO", count: 3 });
    k.faults.add({ syscall: "open", path: `${dev(VF0)}/driver_override`, errno: "ENOMEM" });
    const paths = [`${dev(VF0)}/vendor`, `${dev(PF)}/vendor`, `${dev(PF)}/device`, `${dev(VF0)}/driver_override`, `${dev(PF)}/driver_override`, `${dev(PF)}/class`, `${dev(PF)}/numa_node`];
    const answers = batched ? (await p.readFiles(paths, { wholeIfShort: true, timeoutMs: 5000 })).map((v) => asRead(v, true)) : await readOneByOne(oneByOne(p), paths, true);
    return { answers, taken: k.faults.taken, left: k.faults.list(), fds: p.fdNumbers() };
  };
  const batch = await run(true);
  assert.deepEqual(batch, await run(false));
  assert.deepEqual(batch.answers.slice(0, 5), [
    "0x8086",
    { code: "EIO", syscall: "open", path: `${dev(PF)}/vendor` },
    { code: "EIO", syscall: "open", path: `${dev(PF)}/device` },
    { code: "ENOMEM", syscall: "open", path: `${dev(VF0)}/driver_override` },
    { code: "EIO", syscall: "open", path: `${dev(PF)}/driver_override` },
  ]);
  assert.equal(batch.taken, 4);
  assert.deepEqual(batch.left, []);
  // the other calls of the batches cannot be failed by a rule: Faults takes write, open and ioctl only
  const { k } = await bootSpec();
  for (const syscall of ["readlink", "lstat", "readdir", "read"]) assert.throws(() => k.faults.add({ syscall: syscall as "open", errno: "EIO" }), /syscall must be write, open or ioctl/);
});

test("an exited process's batches answer each path with the ESRCH its single calls fail with", { timeout: 30_000 }, async () => {
  const { k } = await bootSpec();
  const p = k.spawn("gone");
  await p.exit();
  const paths = [`${dev(PF)}/vendor`, `${dev(PF)}/driver_override`, `${dev(PF)}/driver`, "/proc/self", "/nope"];
  assert.deepEqual((await p.readFiles(paths, { wholeIfShort: true, timeoutMs: 100 })).map((v) => asRead(v, true)), await readOneByOne(oneByOne(p), paths, true));
  const calls: [(paths: readonly string[]) => Promise<unknown[]>, (path: string) => Promise<unknown>][] = [
    [p.readlinks, (x) => p.readlink(x)],
    [p.lstats, (x) => p.lstat(x)],
    [p.stats, (x) => p.stat(x)],
    [p.readdirs, (x) => p.readdir(x)],
  ];
  for (const [batch, single] of calls) {
    const got = (await batch(paths)).map(shown);
    const want: unknown[] = [];
    for (const x of paths) want.push(shown(await settled(single(x))));
    assert.deepEqual(got, want);
    assert.ok(got.every((g) => (g as { code?: string }).code === "ESRCH"));
  }
});

/**
 * 6.1's driver_override_show takes the device lock: a PF whose `sriov_numvfs` write waits for a
 * VF's user (qemu holds VF0) holds it, so reading the PF's driver_override or sriov_numvfs waits.
 */
async function withBlockedPf(): Promise<{ k: Kernel; qemu: ModelProcess; pending: Promise<unknown> }> {
  const { k, sh } = await bootSpec("6.1");
  const qemu = k.spawn("qemu");
  const o = await openDevice(qemu, VF0, `${VF0} vf_token=${tokenOf(k)}`);
  assert.equal(typeof o.device, "number");
  const pending = w(sh, `${dev(PF)}/sriov_numvfs`, "0");
  await new Promise((res) => setTimeout(res, 20));
  assert.ok(k.blocked().some((b) => b.syscall === "write"), "the sriov_numvfs write waits");
  return { k, qemu, pending };
}

test("a read behind a held device lock is answered null after the timeout while the others' answers arrive; it blocks as the one-by-one read blocks and gives its fd back when it returns", { timeout: 30_000 }, async () => {
  const { k, qemu, pending } = await withBlockedPf();
  const p = k.spawn("vfioctl");
  const cat = k.spawn("cat");
  const held = await p.open("/dev/vfio/vfio", O_RDWR);
  const paths = [`${dev(PF)}/vendor`, `${dev(PF)}/driver_override`, `${dev(PLAIN)}/driver_override`, `${dev(PF)}/sriov_numvfs`, `${dev(PF)}/class`, "/proc/self/stat"];
  let ticks = 0;
  const iv = setInterval(() => ticks++, 5);
  const t0 = Date.now();
  const res = await p.readFiles(paths, { wholeIfShort: true, timeoutMs: 200 });
  const ms = Date.now() - t0;
  clearInterval(iv);
  assert.ok(ms >= 190 && ms < 2000 && ticks >= 5, `answered after ${ms} ms, timers ran ${ticks} times`);
  assert.deepEqual(res.slice(0, 5).map((v) => asRead(v, true)), ["0x8086", null, "(null)", null, "0x020000"]);
  assert.match(String(asRead(res[5]!, true)), new RegExp(`^${p.pid} \\(vfioctl\\) D `), "the process is in D while its reads wait");
  // the blocked reads wait as a reader's one-by-one read(2)s wait, each holding its fd
  const single = paths.slice(1, 4).map((x) => withTimeout(readAttr(cat, x), 200, x).catch((e: unknown) => (e instanceof TimeoutError ? null : e)));
  assert.deepEqual(await Promise.all(single), [null, "(null)", null]);
  const waits = (pid: number) => k.blocked().filter((b) => b.pid === pid).map((b) => [b.syscall, b.path ?? null, b.waitingOn]);
  assert.deepEqual(waits(p.pid), waits(cat.pid));
  assert.equal(waits(p.pid).length, 2);
  // each blocked read holds the fd its open took (the opens are made in the order of the paths:
  // the PF's vendor took and gave back held+1, its driver_override took it; PLAIN's lock was
  // free, so its read was made at once and gave held+2 back, which sriov_numvfs then took)
  assert.deepEqual(p.fdNumbers(), [held, held + 1, held + 2]);
  assert.deepEqual(await p.readlinks([`/proc/self/fd/${held + 1}`, `/proc/self/fd/${held + 2}`]), [`${dev(PF)}/driver_override`, `${dev(PF)}/sriov_numvfs`]);
  await qemu.exit();
  assert.equal(await pending, 1);
  for (let i = 0; i < 50 && p.fdNumbers().length > 1; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(p.fdNumbers(), [held], "the blocked reads' fds are given back once they return");
  assert.deepEqual(cat.fdNumbers(), []);
});

test("more blocked reads than are read at once: each answered null after its own timeout, the one queued behind them answered, every fd given back once they return", { timeout: 30_000 }, async () => {
  const { k, qemu, pending } = await withBlockedPf();
  const p = k.spawn("vfioctl");
  const paths = [...Array.from({ length: 40 }, () => `${dev(PF)}/driver_override`), `${dev(PLAIN)}/driver_override`, `${dev(PF)}/vendor`];
  const t0 = Date.now();
  const res = await p.readFiles(paths, { wholeIfShort: true, timeoutMs: 150 });
  const ms = Date.now() - t0;
  // 32 reads at once, as inventory's one-by-one reads: the last 8 and PLAIN's start when the first 32 time out
  assert.ok(ms >= 290 && ms < 3000, `${ms} ms`);
  assert.deepEqual(res.map((v) => asRead(v, true)), [...Array.from({ length: 40 }, () => null), "(null)", "0x8086"]);
  assert.equal(p.fdNumbers().length, 40, "each blocked read holds its fd");
  await qemu.exit();
  await pending;
  for (let i = 0; i < 100 && p.fdNumbers().length; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(p.fdNumbers(), []);
});

test("without a timeout the batch waits for a blocked read and answers it", { timeout: 30_000 }, async () => {
  const { k, qemu, pending } = await withBlockedPf();
  const p = k.spawn("vfioctl");
  let answered: FileRead[] | undefined;
  const all = p.readFiles([`${dev(PF)}/vendor`, `${dev(PF)}/driver_override`], { wholeIfShort: true }).then((r) => (answered = r));
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(answered, undefined, "still waiting for the device lock");
  await qemu.exit();
  await pending;
  assert.deepEqual((await all).map((v) => asRead(v, true)), ["0x8086", "(null)"]);
  assert.deepEqual(p.fdNumbers(), []);
});

test("inventory is byte-identical with and without the batch reads (PFs, VFs, vfio-pci, ice, a held group, a blocked read)", { timeout: 60_000 }, async () => {
  const host = specHost();
  const ice: DeviceDesc = { bdf: "0000:12:00.0", vendor: 0x8086, device: 0x159b, class: 0x020000, driver: "ice", sriov: { total_vfs: 8, offset: 1, stride: 1, vf_device: 0x1889, num_vfs: 3 } };
  host.devices.push(ice);
  host.drivers = [...(host.drivers ?? []), "ice", "iavf"];
  const k = await bootKernel(host, { profile: "6.1", rng: new SeededRng(1) });
  const sh = k.spawn("bash");
  assert.equal(await w(sh, `${dev(PF)}/sriov_numvfs`, "3"), 1);
  const qemu = k.spawn("qemu");
  const o = await openDevice(qemu, VF0, `${VF0} vf_token=${tokenOf(k)}`);
  assert.equal(typeof o.device, "number");
  const holder = k.spawn("holder");
  await holder.open(`/dev/vfio/${(await sh.readlink(`${dev(VF1)}/iommu_group`)).split("/").pop()}`, O_RDWR);
  const pending = w(sh, `${dev(PF)}/sriov_numvfs`, "0");
  await new Promise((res) => setTimeout(res, 20));
  const a = k.spawn("vfioctl");
  const b = k.spawn("vfioctl");
  const batched = await inventory(a, { numvfsTimeoutMs: 150 });
  const single = await inventory(oneByOne(b), { numvfsTimeoutMs: 150 });
  assert.equal(JSON.stringify(batched), JSON.stringify(single));
  const pf = batched.pfs.find((x) => x.bdf === PF)!;
  assert.deepEqual(pf.blockedReads, ["driver_override", "sriov_numvfs"]);
  assert.ok(batched.pfs.some((x) => x.driver === "ice" && x.vfDevices.length === 3), "the ice PF with its VFs");
  assert.ok(batched.holders.some((h) => h.pid === holder.pid) && batched.holders.some((h) => h.pid === qemu.pid), "both holders");
  await qemu.exit();
  await holder.exit();
  assert.equal(await pending, 1);
  // the same host once nothing blocks
  assert.equal(JSON.stringify(await inventory(a, { numvfsTimeoutMs: 150 })), JSON.stringify(await inventory(oneByOne(b), { numvfsTimeoutMs: 150 })));
});
