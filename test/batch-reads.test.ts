/**
 * The real backend's batch reads (src/sys/linux/native/batch.c through LinuxSyscalls.readFiles /
 * readlinks) against the same files read one by one: the same bytes and errors, the same system
 * calls traced; a read that blocks (a FIFO standing in for a `driver_override` whose show() waits
 * for the device lock) answered null after the timeout while the other paths' answers arrive and
 * timers keep running; inventory through the batches byte-identical to inventory without them;
 * without the addon (VFIOCTL_FFI=koffi) no batch methods at all.
 *
 * With VFIOCTL_BATCH_CHILD=DIR this file is a child process instead (no tests): it runs
 * {@link compare} on a tree of its own in DIR and prints the result as JSON (run as another user
 * to see EACCES, which root never gets).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import { batchReads } from "../src/sys/linux/ioctl.js";
import { readAttr, readText } from "../src/sys/fsutil.js";
import { SysError } from "../src/sys/errno.js";
import type { FileRead, Syscalls } from "../src/sys/syscalls.js";
import { inventory } from "../src/lib/inventory.js";
import { bootHostFile, bootKernel } from "../src/kernel/host/boot.js";
import { materialize } from "../src/sim/materialize.js";

const DEV = "/sys/bus/pci/devices/0000:01:00.0";
const batch = batchReads();
const skip = batch ? false : "the addon (build/native/ioctl.node, with batch reads) is not built: run `node tools/build-native.mjs`";
const repo = new URL("../../", import.meta.url).pathname;

/** LinuxSyscalls as it is without the addon's batch reads. */
class OneByOne extends LinuxSyscalls {
  override get readFiles(): undefined {
    return undefined;
  }
  override get readlinks(): undefined {
    return undefined;
  }
  override get lstats(): undefined {
    return undefined;
  }
  override get stats(): undefined {
    return undefined;
  }
  override get readdirs(): undefined {
    return undefined;
  }
}

/** A tree with one device folder holding every kind of answer (an unreadable file when `secret`). */
function makeTree(dir: string, secret: boolean): string[] {
  const dev = path.join(dir, DEV);
  fs.mkdirSync(path.join(dev, "subdir"), { recursive: true });
  fs.mkdirSync(path.join(dir, "etc"), { recursive: true });
  fs.writeFileSync(path.join(dev, "vendor"), "0x8086\n");
  fs.writeFileSync(path.join(dev, "empty"), "");
  fs.writeFileSync(path.join(dev, "one"), "1"); // a read of one byte
  fs.writeFileSync(path.join(dev, "short"), "s".repeat(4095)); // a first read one byte short of a page: the whole file
  fs.writeFileSync(path.join(dev, "page"), "p".repeat(4096)); // a first read of a whole page: read on to EOF
  fs.writeFileSync(path.join(dev, "big"), Buffer.alloc(70_000, 0x62)); // two reads of 64 KiB and the empty one
  fs.writeFileSync(path.join(dev, "driver_override"), "vfio-pci\n"); // a read that can block: the threadpool batch
  fs.writeFileSync(path.join(dev, "sriov_numvfs"), "3\n");
  fs.writeFileSync(path.join(dir, "etc/other"), "outside the attribute trees\n");
  const names = ["vendor", "empty", "one", "short", "page", "big", "driver_override", "subdir", "nope", "sriov_numvfs"].map((n) => `${DEV}/${n}`);
  names.push("/etc/other", "/etc/nope");
  if (secret) {
    fs.writeFileSync(path.join(dev, "secret"), "x\n", { mode: 0 });
    fs.writeFileSync(path.join(dev, "config"), "c", { mode: 0 });
    names.push(`${DEV}/secret`, `${DEV}/config`);
  }
  return names;
}

type Answer = { bytes: string } | { error: string; syscall: string; path?: string };
const answer = (r: FileRead | string): Answer => (r instanceof SysError ? { error: r.code, syscall: r.syscall, path: r.path } : { bytes: Buffer.isBuffer(r) ? r.toString("latin1") : String(r) });

/** Trace lines in groups of one path's operations (an open and what follows it), fds renamed, sorted by path. */
function groups(lines: string[]): string[] {
  const out: string[][] = [];
  for (const l of lines) {
    if (l.startsWith("o ") || l.startsWith("l ")) out.push([]);
    out[out.length - 1]!.push(l);
  }
  return out
    .map((g) => {
      const fd = g[0]!.split(" ")[1];
      return g.map((l) => l.split(" ").map((w, i) => (i === 1 && w === fd && !l.startsWith("l ") ? "FD" : w)).join(" ")).join(" | ");
    })
    .sort();
}

/** Every path of the tree in dir read both ways (batch and one by one), readAttr's and readText's way. */
async function compare(dir: string, secret: boolean) {
  const paths = makeTree(dir, secret);
  const res: Record<string, { one: Answer[]; batch: Answer[]; oneTrace: string[]; batchTrace: string[] }> = {};
  for (const wholeIfShort of [true, false]) {
    const one: Answer[] = [];
    const oneTrace: string[] = [];
    LinuxSyscalls.trace = (l) => void oneTrace.push(l);
    const a = new OneByOne({ root: dir });
    for (const p of paths) {
      try {
        const s = wholeIfShort ? await readAttr(a, p) : await readText(a, p);
        one.push({ bytes: Buffer.from(s, "utf8").toString("latin1") });
      } catch (e) {
        one.push(answer(e as SysError));
      }
    }
    const batchTrace: string[] = [];
    LinuxSyscalls.trace = (l) => void batchTrace.push(l);
    const b = new LinuxSyscalls({ root: dir });
    const got = await b.readFiles!(paths, { wholeIfShort, timeoutMs: 5000 });
    LinuxSyscalls.trace = undefined;
    const strip = (x: Answer): Answer => ("bytes" in x && wholeIfShort && x.bytes.endsWith("\n") ? { bytes: x.bytes.slice(0, -1) } : x);
    res[String(wholeIfShort)] = { one, batch: got.map((r) => strip(answer(r))), oneTrace: groups(oneTrace), batchTrace: groups(batchTrace) };
    assert.deepEqual(a.openFds(), []);
    assert.deepEqual(b.openFds(), []);
  }
  return res;
}

if (process.env.VFIOCTL_BATCH_CHILD) {
  process.stdout.write(JSON.stringify(await compare(process.env.VFIOCTL_BATCH_CHILD, true)));
} else {
  test("a batch gives each file's bytes and errors as one-by-one reads do, with the same system calls traced", { skip, timeout: 20_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-batch-"));
    try {
      const res = await compare(dir, false);
      for (const [mode, r] of Object.entries(res)) {
        assert.deepEqual(r.batch, r.one, `wholeIfShort ${mode}`);
        assert.deepEqual(r.batchTrace, r.oneTrace, `wholeIfShort ${mode}: trace`);
      }
      const t = res["true"]!;
      const at = (n: string) => t.batch[makeTreeNames().indexOf(`${DEV}/${n}`)];
      assert.deepEqual(at("vendor"), { bytes: "0x8086" });
      assert.deepEqual(at("nope"), { error: "ENOENT", syscall: "open", path: `${DEV}/nope` });
      assert.deepEqual(at("subdir"), { error: "EISDIR", syscall: "read", path: `${DEV}/subdir` });
      assert.equal((at("big") as { bytes: string }).bytes.length, 70_000);
      assert.ok(t.batchTrace.some((g) => g.endsWith(`${DEV}/big | r FD 65536 | r FD 65536 | r FD 65536 | c FD`)), t.batchTrace.join("\n"));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("EACCES of an unreadable file, sync and threadpool batch alike (as an unprivileged user)", { skip, timeout: 20_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-batch-acc-"));
    try {
      const asRoot = process.getuid?.() === 0;
      if (asRoot) fs.chmodSync(dir, 0o777);
      const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname], { env: { ...process.env, VFIOCTL_BATCH_CHILD: dir }, encoding: "utf8", ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
      assert.equal(r.status, 0, r.stderr);
      const res = JSON.parse(r.stdout) as Awaited<ReturnType<typeof compare>>;
      for (const [mode, x] of Object.entries(res)) {
        assert.deepEqual(x.batch, x.one, `wholeIfShort ${mode}`);
        assert.deepEqual(x.batchTrace, x.oneTrace, `wholeIfShort ${mode}: trace`);
      }
      const names = [...makeTreeNames(), `${DEV}/secret`, `${DEV}/config`];
      assert.deepEqual(res["true"]!.batch[names.indexOf(`${DEV}/secret`)], { error: "EACCES", syscall: "open", path: `${DEV}/secret` });
      assert.deepEqual(res["true"]!.batch[names.indexOf(`${DEV}/config`)], { error: "EACCES", syscall: "open", path: `${DEV}/config` });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("readlinks gives each link's target or error as readlink does, traced the same", { skip }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-batch-l-"));
    try {
      fs.mkdirSync(path.join(dir, DEV), { recursive: true });
      fs.symlinkSync("../../../bus/pci/drivers/vfio-pci", path.join(dir, DEV, "driver"));
      fs.symlinkSync("../../../kernel/iommu_groups/12", path.join(dir, DEV, "iommu_group"));
      fs.writeFileSync(path.join(dir, DEV, "vendor"), "x");
      const paths = ["driver", "iommu_group", "physfn", "vendor"].map((n) => `${DEV}/${n}`);
      const t1: string[] = [];
      LinuxSyscalls.trace = (l) => void t1.push(l);
      const a = new OneByOne({ root: dir });
      const one: Answer[] = [];
      for (const p of paths) one.push(await a.readlink(p).then(answer, answer));
      const t2: string[] = [];
      LinuxSyscalls.trace = (l) => void t2.push(l);
      const got = (await new LinuxSyscalls({ root: dir }).readlinks!(paths)).map(answer);
      LinuxSyscalls.trace = undefined;
      assert.deepEqual(got, one);
      assert.deepEqual(t2, t1);
      assert.deepEqual(got.slice(0, 2), [{ bytes: "../../../bus/pci/drivers/vfio-pci" }, { bytes: "../../../kernel/iommu_groups/12" }]);
      assert.deepEqual(got.slice(2).map((x) => "error" in x && x.error), ["ENOENT", "EINVAL"]);
    } finally {
      LinuxSyscalls.trace = undefined;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("lstats and readdirs answer as lstat and readdir do (entries in the same order), traced the same", { skip }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-batch-sd-"));
    try {
      const dev = path.join(dir, DEV);
      fs.mkdirSync(path.join(dev, "net"), { recursive: true });
      for (const n of ["virtfn10", "b", "virtfn2", "C", "a", "_x", "virtfn1"]) fs.writeFileSync(path.join(dev, n), "");
      fs.mkdirSync(path.join(dev, "net/eth0"));
      fs.writeFileSync(path.join(dev, "config"), "c", { mode: 0o600 });
      // an owner and a group of their own (a group node's, as udev sets them), when root can give them
      if (process.getuid?.() === 0) fs.chownSync(path.join(dev, "config"), 1234, 5678);
      fs.symlinkSync("../../../bus/pci/drivers/vfio-pci", path.join(dev, "driver"));
      const paths = [DEV, `${DEV}/net`, `${DEV}/config`, `${DEV}/driver`, `${DEV}/nope`, `${DEV}/config/x`];
      const t1: string[] = [];
      LinuxSyscalls.trace = (l) => void t1.push(l);
      const a = new OneByOne({ root: dir });
      const oneStat: unknown[] = [];
      const oneDir: unknown[] = [];
      for (const p of paths) oneStat.push(await a.lstat(p).catch((e: SysError) => answer(e)));
      for (const p of paths) oneDir.push(await a.readdir(p).catch((e: SysError) => answer(e)));
      const t2: string[] = [];
      LinuxSyscalls.trace = (l) => void t2.push(l);
      const b = new LinuxSyscalls({ root: dir });
      const gotStat = (await b.lstats!(paths)).map((r) => (r instanceof SysError ? answer(r) : r));
      const gotDir = (await b.readdirs!(paths)).map((r) => (r instanceof SysError ? answer(r) : r));
      LinuxSyscalls.trace = undefined;
      assert.deepEqual(gotStat, oneStat);
      assert.deepEqual(gotDir, oneDir);
      assert.deepEqual(t2, t1);
      assert.deepEqual((gotStat as { kind?: string }[]).slice(0, 4).map((x) => x.kind), ["dir", "dir", "file", "link"]);
      assert.deepEqual((gotStat[2] as { mode: number }).mode, 0o600);
      if (process.getuid?.() === 0) assert.deepEqual([(gotStat[2] as { uid: number }).uid, (gotStat[2] as { gid: number }).gid], [1234, 5678]);
      assert.deepEqual(gotDir[0], ["C", "_x", "a", "b", "config", "driver", "net", "virtfn1", "virtfn10", "virtfn2"]);
      assert.deepEqual(gotDir.slice(2).map((x) => (x as { error: string }).error), ["ENOTDIR", "ENOENT", "ENOENT", "ENOTDIR"]);
    } finally {
      LinuxSyscalls.trace = undefined;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  /**
   * A tree of `n` devices, each with a vendor file, a driver link and a net/ folder, and a char
   * device node for each: enough paths for a batch to be read in two halves at once.
   */
  function manyDevices(n: number) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-batch-many-"));
    const bdfs: string[] = [];
    for (let i = 0; i < n; i++) {
      const b = `0000:${(1 + (i >> 5)).toString(16).padStart(2, "0")}:${(i & 31).toString(16).padStart(2, "0")}.0`;
      bdfs.push(b);
      const dev = path.join(root, "sys/bus/pci/devices", b);
      fs.mkdirSync(path.join(dev, "net", `eth${i}`), { recursive: true });
      fs.writeFileSync(path.join(dev, "vendor"), `0x${(0x8000 + i).toString(16)}\n`);
      if (i % 3) fs.symlinkSync(`../../../bus/pci/drivers/drv${i % 7}`, path.join(dev, "driver"));
    }
    fs.mkdirSync(path.join(root, "dev"));
    fs.symlinkSync("/dev/null", path.join(root, "dev/null-link"));
    return { root, bdfs };
  }

  test("batches of hundreds of paths (read in two halves at once) answer and trace in path order as single calls do", { skip, timeout: 30_000 }, async () => {
    const { root, bdfs } = manyDevices(300);
    try {
      const files = bdfs.flatMap((b) => [`/sys/bus/pci/devices/${b}/vendor`, `/sys/bus/pci/devices/${b}/nope`]);
      const links = bdfs.map((b) => `/sys/bus/pci/devices/${b}/driver`);
      const dirs = bdfs.flatMap((b) => [`/sys/bus/pci/devices/${b}/net`, `/sys/bus/pci/devices/${b}/vendor`]);
      const stats = [...bdfs.map((b) => `/sys/bus/pci/devices/${b}/driver`), "/dev/null-link", "/dev/nope"];
      const t1: string[] = [];
      LinuxSyscalls.trace = (l) => void t1.push(l);
      const a = new OneByOne({ root });
      const one = {
        files: [] as Answer[],
        links: [] as unknown[],
        dirs: [] as unknown[],
        lstats: [] as unknown[],
        stats: [] as unknown[],
      };
      for (const p of files) one.files.push(await readAttr(a, p).then((s) => ({ bytes: s }), (e: SysError) => answer(e)));
      for (const p of links) one.links.push(await a.readlink(p).catch((e: SysError) => answer(e)));
      for (const p of dirs) one.dirs.push(await a.readdir(p).catch((e: SysError) => answer(e)));
      for (const p of stats) one.lstats.push(await a.lstat(p).catch((e: SysError) => answer(e)));
      for (const p of stats) one.stats.push(await a.stat(p).catch((e: SysError) => answer(e)));
      const t2: string[] = [];
      LinuxSyscalls.trace = (l) => void t2.push(l);
      const b = new LinuxSyscalls({ root });
      const val = (r: unknown) => (r instanceof SysError ? answer(r) : r);
      const batched = async () => ({
        files: (await b.readFiles!(files, { wholeIfShort: true })).map((r) => (Buffer.isBuffer(r) ? { bytes: r.toString("utf8").replace(/\n$/, "") } : answer(r as SysError))),
        links: (await b.readlinks!(links)).map(val),
        dirs: (await b.readdirs!(dirs)).map(val),
        lstats: (await b.lstats!(stats)).map(val),
        stats: (await b.stats!(stats)).map(val),
      });
      const got = await batched();
      LinuxSyscalls.trace = undefined;
      assert.deepEqual(got, one);
      // the same operations in the same order, fds renamed (each path's open, read and close)
      const norm = (t: string[]) => t.map((l) => l.replace(/^([orc]) -?\d+/, "$1 FD"));
      assert.deepEqual(norm(t2), norm(t1));
      // untraced, each batch is read by two threads at once (workShared): the same answers, in path order
      assert.deepEqual(await batched(), one);
      assert.deepEqual(got.files.slice(0, 4), [{ bytes: "0x8000" }, { error: "ENOENT", syscall: "open", path: files[1] }, { bytes: "0x8001" }, { error: "ENOENT", syscall: "open", path: files[3] }]);
      assert.equal((got.files[599] as { error: string }).error, "ENOENT");
      assert.deepEqual(got.links.slice(0, 3), [{ error: "ENOENT", syscall: "readlink", path: links[0] }, "../../../bus/pci/drivers/drv1", "../../../bus/pci/drivers/drv2"]);
      assert.deepEqual(got.dirs.slice(-2), [[`eth299`], { error: "ENOTDIR", syscall: "readdir", path: dirs[599] }]);
      assert.deepEqual([(got.lstats.at(-2) as { kind: string }).kind, (got.stats.at(-2) as { kind: string }).kind], ["link", "char"]);
      assert.equal((got.stats.at(-2) as { rdev: number }).rdev, fs.statSync("/dev/null").rdev);
      assert.deepEqual(got.stats.at(-1), { error: "ENOENT", syscall: "stat", path: "/dev/nope" });
      assert.deepEqual(b.openFds(), []);
    } finally {
      LinuxSyscalls.trace = undefined;
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test("a shared batch hands out every chunk once, each answered as the one-thread batch answers its paths, for every kind and chunk size", { skip, timeout: 30_000 }, () => {
    const { root, bdfs } = manyDevices(150);
    try {
      const a = batch!;
      const dev = (b: string, f: string) => `/sys/bus/pci/devices/${b}/${f}`;
      const kinds = [
        { kind: 0, paths: bdfs.flatMap((b) => [dev(b, "vendor"), dev(b, "nope")]), sync: (j: string) => a.readFiles(j, true, root) },
        { kind: 1, paths: bdfs.map((b) => dev(b, "driver")), sync: (j: string) => a.readlinks(j, root) },
        { kind: 2, paths: bdfs.flatMap((b) => [dev(b, "driver"), dev(b, "net")]), sync: (j: string) => a.lstats(j, root) },
        { kind: 3, paths: bdfs.flatMap((b) => [dev(b, "net"), dev(b, "vendor")]), sync: (j: string) => a.readdirs(j, root) },
        { kind: 4, paths: bdfs.map((b) => dev(b, "driver")), sync: (j: string) => a.stats(j, root) },
      ] as const;
      // one chunk's answer as plain values: files' {meta, data} as per-path [fd ≥ 0 or −errno, bytes]
      const plain = (kind: number, r: unknown, n: number): unknown[] => {
        if (kind === 0) {
          const { meta, data } = r as { meta: Int32Array; data: Buffer };
          let at = 0;
          return Array.from({ length: n }, (_, k) => {
            const len = meta[3 * k + 2]!;
            const bytes = meta[3 * k]! < 0 || len < 0 ? null : data.subarray(at, (at += len)).toString("latin1");
            return [meta[3 * k]! < 0 ? meta[3 * k] : "fd", meta[3 * k + 1], len, bytes];
          });
        }
        if (kind === 2 || kind === 4) return Array.from({ length: n }, (_, k) => Array.from((r as Float64Array).subarray(6 * k, 6 * k + 6)));
        return [...(r as unknown[])];
      };
      for (const { kind, paths, sync } of kinds) {
        const joined = paths.join("\0");
        const want = plain(kind, sync(joined), paths.length);
        for (const chunk of [1, 7, 64, paths.length - 1, paths.length, 10_000]) {
          const h = a.workShared(kind, joined, true, chunk, root);
          const seen = new Array<unknown>(paths.length);
          const froms: number[] = [];
          for (let step = a.workStep(h); step !== undefined; step = a.workStep(h)) {
            const [from, answer] = step;
            froms.push(from);
            assert.equal(from % chunk, 0, `kind ${kind} chunk ${chunk}: a chunk starts at a multiple of the chunk size`);
            const n = Math.min(chunk, paths.length - from);
            plain(kind, answer, n).forEach((v, k) => (seen[from + k] = v));
          }
          assert.deepEqual(
            froms.sort((x, y) => x - y),
            Array.from({ length: Math.ceil(paths.length / chunk) }, (_, c) => c * chunk),
            `kind ${kind} chunk ${chunk}: every chunk handed out once`,
          );
          assert.deepEqual(seen, want, `kind ${kind} chunk ${chunk}`);
          assert.equal(a.workStep(h), undefined, "nothing after the last chunk");
        }
      }
      assert.throws(() => a.workShared(0, "/x", true, 0), /chunk must be a positive integer/);
      assert.throws(() => a.workShared(5 as 0, "/x", true, 1), /kind must be 0 to 4/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test("without --root the batches read the host's own paths; with it only absolute paths are taken under the tree", { skip, timeout: 20_000 }, async () => {
    const { root, bdfs } = manyDevices(100);
    try {
      const abs = bdfs.map((b) => path.join(root, "sys/bus/pci/devices", b, "vendor"));
      const host = new LinuxSyscalls();
      const got = await host.readFiles!(abs, { wholeIfShort: true });
      assert.deepEqual(got.slice(0, 2).map(String), ["0x8000\n", "0x8001\n"]);
      assert.deepEqual((await host.readlinks!(abs.map((p) => p.replace(/vendor$/, "driver")))).slice(1, 2), ["../../../bus/pci/drivers/drv1"]);
      assert.equal(((await host.lstats!(abs))[99] as { kind: string }).kind, "file");
      assert.deepEqual((await host.readdirs!(abs.map((p) => p.replace(/vendor$/, "net"))))[5], ["eth5"]);
      // a relative path is the process's own (relative to its working directory), as for the single calls
      const tree = new LinuxSyscalls({ root });
      const rel = path.relative(process.cwd(), abs[3]!);
      assert.deepEqual((await tree.readFiles!([rel, `/sys/bus/pci/devices/${bdfs[3]}/vendor`], { wholeIfShort: true })).map(String), ["0x8003\n", "0x8003\n"]);
      assert.equal(String((await tree.readFiles!(Array(80).fill(rel), { wholeIfShort: true }))[79]), "0x8003\n");
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test("with every threadpool thread stuck in a read that blocks, a large batch is still answered, all on the JS thread", { skip, timeout: 30_000 }, async () => {
    const { root, bdfs } = manyDevices(200);
    const fifoDir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-batch-stuck-"));
    const size = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const fifos = Array.from({ length: size }, (_, i) => path.join(fifoDir, `f${i}`));
    for (const f of fifos) execFileSync("mkfifo", [f]);
    // an open for reading of a FIFO without a writer blocks its threadpool thread
    const stuck = fifos.map((f) => fs.promises.open(f, "r").then((h) => h.close()));
    await new Promise((r) => setTimeout(r, 200));
    const sys = new LinuxSyscalls({ root });
    try {
      const links = bdfs.map((b) => `/sys/bus/pci/devices/${b}/driver`);
      const t0 = Date.now();
      const got = await sys.readlinks!(links);
      const vendors = await sys.readFiles!(bdfs.map((b) => `/sys/bus/pci/devices/${b}/vendor`), { wholeIfShort: true });
      const ms = Date.now() - t0;
      assert.equal(got.length, 200);
      assert.equal(got[1], "../../../bus/pci/drivers/drv1");
      assert.ok(got[0] instanceof SysError && got[0].code === "ENOENT");
      assert.deepEqual(vendors.slice(0, 2).map((r) => String(r)), ["0x8000\n", "0x8001\n"]);
      assert.ok(ms < 5000, `answered in ${ms} ms while the threadpool was stuck`);
    } finally {
      // a writer for each FIFO: the stuck opens return and the threadpool is free again
      const ws = fifos.map((f) => fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      await Promise.all(stuck);
      for (const w of ws) fs.closeSync(w);
      await sys.exit();
      fs.rmSync(root, { recursive: true, force: true });
      fs.rmSync(fifoDir, { recursive: true, force: true });
    }
  });

  /** Three devices 0000:01:00.0–02.0 with driver_override; the middle one's is a FIFO held open (reads block). */
  function treeWithBlockingOverride() {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-batch-fifo-"));
    const bdfs = ["0000:01:00.0", "0000:01:01.0", "0000:01:02.0"];
    fs.mkdirSync(path.join(root, "sys/bus/pci/devices"), { recursive: true });
    fs.mkdirSync(path.join(root, "sys/bus/pci/drivers/vfio-pci"), { recursive: true });
    for (const [i, b] of bdfs.entries()) {
      const dev = path.join(root, "sys/devices/pci0000:00", b);
      fs.mkdirSync(dev, { recursive: true });
      fs.writeFileSync(path.join(dev, "vendor"), "0x8086\n");
      fs.writeFileSync(path.join(dev, "device"), "0x1521\n");
      fs.writeFileSync(path.join(dev, "class"), "0x020000\n");
      fs.writeFileSync(path.join(dev, "numa_node"), "-1\n");
      if (i !== 1) fs.writeFileSync(path.join(dev, "driver_override"), i === 0 ? "vfio-pci\n" : "(null)\n");
      fs.symlinkSync(`../../../devices/pci0000:00/${b}`, path.join(root, "sys/bus/pci/devices", b));
    }
    const fifo = path.join(root, "sys/devices/pci0000:00", bdfs[1]!, "driver_override");
    execFileSync("mkfifo", [fifo]);
    // held open for reading and writing: opening it for reading does not wait for a writer
    const holder = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    return { root, bdfs, fifo, holder };
  }

  /** A process of its own that writes `data` into the FIFO after `ms` (a blocked reader finishes). */
  function feedLater(fifo: string, ms: number, data: string) {
    const child = spawn("sh", ["-c", `sleep ${(ms / 1000).toFixed(2)}; printf '%s' "$2" > "$1"`, "sh", fifo, data], { stdio: "ignore" });
    const done = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    return { done, kill: () => child.kill("SIGKILL") };
  }

  test("a read that blocks is answered null after the timeout, the paths after it still arrive, the event loop stays free", { skip, timeout: 15_000 }, async () => {
    const { root, bdfs, fifo, holder } = treeWithBlockingOverride();
    const feeder = feedLater(fifo, 2000, "late\n");
    const trace: string[] = [];
    LinuxSyscalls.trace = (l) => void trace.push(l);
    const sys = new LinuxSyscalls({ root });
    try {
      let ticks = 0;
      const iv = setInterval(() => ticks++, 10).unref();
      const t0 = Date.now();
      const paths = bdfs.map((b) => `/sys/bus/pci/devices/${b}/driver_override`);
      const got = await sys.readFiles!(paths, { wholeIfShort: true, timeoutMs: 300 });
      const ms = Date.now() - t0;
      clearInterval(iv);
      assert.deepEqual(got.map((r) => (Buffer.isBuffer(r) ? r.toString() : r)), ["vfio-pci\n", null, "(null)\n"]);
      assert.ok(ms >= 290 && ms < 1500, `answered after ${ms} ms (timeout 300, the FIFO is fed at 2000)`);
      assert.ok(ticks >= 10, `timers ran ${ticks} times while the read was blocked`);
      // the stuck read's open and read are traced as made; its fd is this process's until the read returns
      const stuck = trace.find((l) => l.startsWith("o ") && l.endsWith(`${bdfs[1]}/driver_override`))!;
      const fd = Number(stuck.split(" ")[1]);
      assert.ok(fd >= 0, stuck);
      assert.equal(trace[trace.indexOf(stuck) + 1], `r ${fd} 65536`);
      assert.deepEqual(sys.openFds(), [fd]);
      await feeder.done;
      for (let i = 0; i < 300 && sys.openFds().length; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(sys.openFds(), [], "the fd is closed once the read returns");
      assert.ok(trace.includes(`c ${fd}`));
    } finally {
      LinuxSyscalls.trace = undefined;
      feeder.kill();
      fs.writeSync(holder, "0\n".repeat(16)); // no read stays pending on the FIFO
      await new Promise((r) => setTimeout(r, 50));
      await sys.exit();
      fs.closeSync(holder);
      fs.rmSync(root, { recursive: true });
    }
  });

  test("reads that block in different runs of paths time out together, not one after the other", { skip, timeout: 20_000 }, async () => {
    const { root, bdfs } = manyDevices(600);
    const stuck = [10, 550]; // in the first and the second run of 300 paths
    const holders: number[] = [];
    for (const i of stuck) {
      const f = path.join(root, "sys/bus/pci/devices", bdfs[i]!, "driver_override");
      execFileSync("mkfifo", [f]);
      holders.push(fs.openSync(f, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
    }
    for (const [i, b] of bdfs.entries()) if (!stuck.includes(i)) fs.writeFileSync(path.join(root, "sys/bus/pci/devices", b, "driver_override"), `d${i}\n`);
    const sys = new LinuxSyscalls({ root });
    try {
      const t0 = Date.now();
      const got = await sys.readFiles!(bdfs.map((b) => `/sys/bus/pci/devices/${b}/driver_override`), { wholeIfShort: true, timeoutMs: 400 });
      const ms = Date.now() - t0;
      assert.deepEqual(stuck.map((i) => got[i]), [null, null]);
      assert.deepEqual([got[0], got[299], got[301], got[599]].map(String), ["d0\n", "d299\n", "d301\n", "d599\n"]);
      assert.equal(got.filter((r) => r === null).length, 2);
      assert.ok(ms >= 390 && ms < 750, `answered after ${ms} ms: two reads stuck with a 400 ms timeout each, waited for at the same time`);
    } finally {
      for (const h of holders) fs.writeSync(h, "0\n".repeat(16));
      await new Promise((r) => setTimeout(r, 100));
      await sys.exit();
      for (const h of holders) fs.closeSync(h);
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test("inventory through the batches reports the blocked driver_override as one-by-one reads do", { skip, timeout: 20_000 }, async () => {
    const { root, bdfs, fifo, holder } = treeWithBlockingOverride();
    const feeder = feedLater(fifo, 4000, "late\n");
    const batched = new LinuxSyscalls({ root });
    const single = new OneByOne({ root });
    try {
      let ticks = 0;
      const iv = setInterval(() => ticks++, 10).unref();
      const t0 = Date.now();
      const a = await inventory(batched, { numvfsTimeoutMs: 300, holders: false });
      const ms = Date.now() - t0;
      clearInterval(iv);
      assert.ok(ms < 2500 && ticks >= 10, `inventory took ${ms} ms, timers ran ${ticks} times`);
      const b = await inventory(single, { numvfsTimeoutMs: 300, holders: false });
      assert.equal(JSON.stringify(a), JSON.stringify(b));
      assert.deepEqual(a.others.map((d) => [d.bdf, d.driverOverride, d.blockedReads ?? []]), [
        [bdfs[0], "vfio-pci", []],
        [bdfs[1], null, ["driver_override"]],
        [bdfs[2], null, []],
      ]);
    } finally {
      feeder.kill();
      // both stuck reads (the batch's and the single read's) must return before the next test:
      // the batch's fd is closed (and traced) when its read does
      for (let i = 0; i < 100 && (batched.openFds().length || single.openFds().length || i === 0); i++) {
        fs.writeSync(holder, "0\n");
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual([batched.openFds(), single.openFds()], [[], []]);
      await batched.exit();
      await single.exit();
      fs.closeSync(holder);
      fs.rmSync(root, { recursive: true });
    }
  });

  for (const [name, boot] of [
    ["the model's default host", () => bootKernel()],
    ["scenarios/hosts/lab-igb.yaml", () => bootHostFile(path.join(repo, "scenarios/hosts/lab-igb.yaml"))],
    ["test/fixtures/host-two-vfio-pfs.yaml", () => bootHostFile(path.join(repo, "test/fixtures/host-two-vfio-pfs.yaml"))],
  ] as const) {
    test(`inventory of ${name}, materialized: the same through the batches as one by one`, { skip, timeout: 60_000 }, async () => {
      const k = await boot();
      const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-batch-mat-"));
      try {
        await materialize(k.spawn("m"), d);
        const count = (sys: Syscalls) => {
          const ops: string[] = [];
          LinuxSyscalls.trace = (l) => void ops.push(l[0]!);
          return { ops, run: () => inventory(sys, { holders: false }).finally(() => (LinuxSyscalls.trace = undefined)) };
        };
        const x = count(new LinuxSyscalls({ root: d }));
        const a = await x.run();
        const y = count(new OneByOne({ root: d }));
        const b = await y.run();
        assert.equal(JSON.stringify(a, null, 2), JSON.stringify(b, null, 2));
        // the prefetch reads nothing the one-by-one pass does not: the same number of each operation
        const tally = (ops: string[]) => ops.reduce<Record<string, number>>((t, o) => ((t[o] = (t[o] ?? 0) + 1), t), {});
        assert.deepEqual(tally(x.ops), tally(y.ops));
        assert.ok(a.pfs.length + a.others.length > 0);
      } finally {
        fs.rmSync(d, { recursive: true, force: true });
      }
    });
  }

  test("without the addon (VFIOCTL_FFI=koffi) LinuxSyscalls has no batch methods and list reads one by one", { timeout: 30_000 }, () => {
    const script = `import("${path.join(repo, "dist/src/sys/linux/host.js")}").then(({ LinuxSyscalls }) => { const s = new LinuxSyscalls(); console.log(typeof s.readFiles, typeof s.readlinks); })`;
    const r = spawnSync(process.execPath, ["-e", script], { env: { ...process.env, VFIOCTL_FFI: "koffi" }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "undefined undefined");
    if (batch) {
      const r2 = spawnSync(process.execPath, ["-e", script], { env: { ...process.env, VFIOCTL_FFI: "" }, encoding: "utf8" });
      assert.equal(r2.stdout.trim(), "function function");
    }
  });
}

function makeTreeNames(): string[] {
  return [...["vendor", "empty", "one", "short", "page", "big", "driver_override", "subdir", "nope", "sriov_numvfs"].map((n) => `${DEV}/${n}`), "/etc/other", "/etc/nope"];
}
