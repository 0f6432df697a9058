/**
 * Answers that the survivors of the sampled mutants of seed 14 (docs/benchmarks.md), and the
 * mutations written by hand beside that sample (dropped statements, changed strings and
 * offsets, which the sampler does not make), showed unchecked: boot_vga's visibility, BAR sizes
 * and the SR-IOV resources in `resource`, config's header against the identity attributes,
 * /proc/PID/stat's terminal fields, the real backend's readFile closing fd 0, the notes of
 * `vfioctl unbind`, audit's cdev finding, token-file warnings and errors, /dev/kmsg's EPIPE
 * count, a driver that enables fewer VFs, unreadable /proc fds, EBADFD's strerror. Each test
 * names the mutant it kills (testlib/mutants.ts keeps them) and why the answer it asserts is
 * the right one.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel } from "../src/kernel/host/boot.js";
import { DEFAULT_HOST } from "../src/kernel/host/default-host.js";
import { audit } from "../src/lib/audit.js";
import { VfioctlError } from "../src/lib/errors.js";
import { heldState, scanVfioHolders, unknownReason } from "../src/lib/holders.js";
import { setNumVfs } from "../src/lib/sriov.js";
import { checkKeepFile, checkToken, readTokenFile } from "../src/lib/token.js";
import { strerror, SysError } from "../src/sys/errno.js";
import { readAttr, writeText } from "../src/sys/fsutil.js";
import { KmsgReader } from "../src/sys/kmsg.js";
import type { Syscalls } from "../src/sys/syscalls.js";
import { VFIO } from "../src/uapi/vfio.js";
import { runCli } from "../testlib/cli.js";

const dev = (bdf: string) => `/sys/bus/pci/devices/${bdf}`;

describe("vfioctl unbind: the notes it prints say what the kernel did and will do", () => {
  // hand mutant unbind-vfs-note-dropped (src/lib/bind.ts unbindDriver: the "VFs went away" note
  // not pushed): the unbind of a PF with VFs printed nothing about the VFs it took away
  test("a PF unbound with --remove-vfs: the note counts the VFs the PF driver's remove destroyed", { timeout: 60_000 }, async () => {
    const k = await bootKernel();
    const sh = k.spawn("sh");
    const PF = "0000:01:00.0";
    await writeText(sh, `${dev(PF)}/sriov_numvfs`, "2");
    const r = await runCli(k, ["unbind", PF, "--remove-vfs"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, "note: 2 VFs went away with the PF driver\n");
    assert.match(r.out, /^0000:01:00\.0: unbound \(was igb\)\n/);
    // what the note says is so: igb's remove disabled SR-IOV (pci_disable_sriov), the VFs are gone
    assert.equal(await readAttr(sh, `${dev(PF)}/sriov_numvfs`), "0");
    assert.deepEqual((await sh.readdir("/sys/bus/pci/devices")).filter((b) => b.startsWith("0000:01:10.")), []);
  });

  // hand mutant unbind-override-note-dropped (src/lib/bind.ts unbindDriver: the override note not
  // pushed): an unbind that leaves driver_override set said nothing, though the next probe binds it
  test("an unbind that keeps driver_override says so, and the next probe does bind that driver", { timeout: 60_000 }, async () => {
    const k = await bootKernel();
    const sh = k.spawn("sh");
    const NVME = "0000:05:00.0";
    assert.equal((await runCli(k, ["bind", NVME, "vfio-pci"])).code, 0);
    const r = await runCli(k, ["unbind", NVME]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "0000:05:00.0: unbound (was vfio-pci, override vfio-pci)\n");
    assert.equal(r.err, 'note: driver_override is still "vfio-pci": the next probe binds vfio-pci (add --clear-override to clear it)\n');
    assert.equal(await readAttr(sh, `${dev(NVME)}/driver_override`), "vfio-pci");
    // driver_override decides the next probe (drivers/pci/pci-driver.c pci_match_device)
    await writeText(sh, "/sys/bus/pci/drivers_probe", NVME);
    assert.equal((await sh.readlink(`${dev(NVME)}/driver`)).split("/").pop(), "vfio-pci");
    // with --clear-override: no note, the override is gone
    const c = await runCli(k, ["unbind", NVME, "--clear-override"]);
    assert.equal(c.err, "");
    assert.equal(await readAttr(sh, `${dev(NVME)}/driver_override`), "(null)");
  });
});

describe("a PCI device's resources in sysfs", () => {
  const rows = (text: string) =>
    text
      .trimEnd()
      .split("\n")
      .map((l) => l.split(" ").map((x) => BigInt(x)))
      .map(([start, end, flags]) => ({ start: start!, end: end!, flags: flags!, size: flags === 0n && end === 0n ? 0n : end! - start! + 1n }));
  const pow2 = (n: bigint) => n > 0n && (n & (n - 1n)) === 0n;

  // sampled mutant of seed 14: src/kernel/host/default-host.ts, the E810's BAR 3 size 0x10000 →
  // 65537; and hand mutant resource-end-off-by-one (pci-sysfs.ts resourceLines: end = start + size)
  test("every BAR and ROM of every device of the built-in host, PF and VF, is a power of two in size and aligned to it", { timeout: 60_000 }, async () => {
    // a BAR decodes a naturally aligned power-of-two window (PCI Local Bus 3.0 §6.2.5.1: the size
    // is read back as the low writable address bits); resource_show prints start and end (inclusive)
    const k = await bootKernel();
    const sh = k.spawn("sh");
    await writeText(sh, `${dev("0000:01:00.0")}/sriov_numvfs`, "2");
    let seen = 0;
    for (const bdf of await sh.readdir("/sys/bus/pci/devices")) {
      const r = rows(await readAttr(sh, `${dev(bdf)}/resource`));
      for (const [i, x] of r.slice(0, 7).entries()) {
        if (x.size === 0n) continue;
        seen++;
        assert.ok(pow2(x.size), `${bdf} resource ${i}: size ${x.size.toString(16)} is not a power of two`);
        assert.equal(x.start % x.size, 0n, `${bdf} resource ${i}: start not aligned to its size`);
      }
    }
    assert.ok(seen >= 10, `only ${seen} BARs seen`);
  });

  // hand mutant resource-iov-size-numvfs (pci-sysfs.ts resourceLines: the IOV rows sized by the
  // enabled VFs instead of TotalVFs)
  test("a PF's SR-IOV resources (rows 7–12) span one VF BAR times TotalVFs, whatever NumVFs is", { timeout: 60_000 }, async () => {
    // drivers/pci/iov.c sriov_init: res->end = res->start + resource_size(res) * iov->total_VFs - 1,
    // set once at enumeration; a VF's BAR i is the i-th slice of it (pci_iov_resource_size)
    const k = await bootKernel();
    const sh = k.spawn("sh");
    const PF = "0000:01:00.0";
    // TotalVFs of the SR-IOV capability (the host's total_vfs), not sriov_totalvfs: that shows
    // pci_sriov_get_totalvfs, igb's own limit of 7 (pci_sriov_set_totalvfs)
    const total = BigInt(DEFAULT_HOST.devices.find((d) => d.bdf === PF)!.sriov!.total_vfs);
    assert.equal(total, 8n);
    assert.equal(await readAttr(sh, `${dev(PF)}/sriov_totalvfs`), "7");
    const before = rows(await readAttr(sh, `${dev(PF)}/resource`)).slice(7, 13);
    await writeText(sh, `${dev(PF)}/sriov_numvfs`, "2");
    const after = rows(await readAttr(sh, `${dev(PF)}/resource`)).slice(7, 13);
    assert.deepEqual(after, before, "NumVFs does not change the PF's IOV resources");
    const vf = rows(await readAttr(sh, `${dev("0000:01:10.0")}/resource`)).slice(0, 6);
    assert.ok(vf.some((x) => x.size > 0n));
    for (let i = 0; i < 6; i++) assert.equal(after[i]!.size, vf[i]!.size * total, `IOV BAR ${i}`);
  });

  // hand mutant config-no-revision (pci-sysfs.ts configSpace: the revision left out of dword 8)
  test("config's header agrees with the identity attributes: vendor, device, revision, class, subsystem ids, header type", { timeout: 60_000 }, async () => {
    // the type 0 header (PCI Local Bus 3.0 §6.1): 0x00 vendor, 0x02 device, 0x08 revision,
    // 0x09–0x0b class code, 0x0e header type, 0x2c subsystem vendor, 0x2e subsystem id; the
    // sysfs attributes are read from the same registers at enumeration (pci_setup_device)
    const k = await bootKernel();
    const sh = k.spawn("sh");
    await writeText(sh, `${dev("0000:01:00.0")}/sriov_numvfs`, "1");
    for (const bdf of await sh.readdir("/sys/bus/pci/devices")) {
      const a = async (n: string) => Number(await readAttr(sh, `${dev(bdf)}/${n}`));
      const fd = await sh.open(`${dev(bdf)}/config`, 0);
      const b = await sh.read(fd, 64);
      await sh.close(fd);
      assert.equal(b.length, 64, bdf);
      assert.deepEqual(
        [b.readUInt16LE(0), b.readUInt16LE(2), b.readUInt8(8), b.readUIntLE(9, 3), b.readUInt8(0x0e) & 0x7f, b.readUInt16LE(0x2c), b.readUInt16LE(0x2e)],
        [await a("vendor"), await a("device"), await a("revision"), await a("class"), 0, await a("subsystem_vendor"), await a("subsystem_device")],
        bdf,
      );
    }
  });
});

// sampled mutant of seed 14: src/kernel/pci/pci-sysfs.ts boot_vga's visibility `d.class >> 8 ===
// 0x0300` → 0x0301: no VGA device had boot_vga
test("boot_vga is there for a VGA controller only: not for a 3D controller, not for a NIC", { timeout: 60_000 }, async () => {
  // drivers/pci/pci-sysfs.c pci_dev_attrs_are_visible: boot_vga only when pci_is_vga(pdev), class
  // 0x0300xx (PCI_CLASS_DISPLAY_VGA); a 3D controller (0x0302xx) is not a VGA device
  const k = await bootKernel(
    {
      name: "vga",
      devices: [
        { bdf: "0000:00:02.0", vendor: 0x8086, device: 0x3e92, class: 0x030000 },
        { bdf: "0000:02:00.0", vendor: 0x10de, device: 0x1eb8, class: 0x030200 },
        { bdf: "0000:03:00.0", vendor: 0x8086, device: 0x10d3, class: 0x020000 },
      ],
    },
    { profile: "6.12.58" },
  );
  const sh = k.spawn("sh");
  const has = async (bdf: string) => (await sh.readdir(dev(bdf))).includes("boot_vga");
  assert.deepEqual([await has("0000:00:02.0"), await has("0000:02:00.0"), await has("0000:03:00.0")], [true, false, false]);
  // the only VGA device is the default one (vga_default_device() == pdev): "1"
  assert.equal(await readAttr(sh, `${dev("0000:00:02.0")}/boot_vga`), "1");
});

// sampled mutant of seed 14: src/kernel/fs/sysfs.ts procPidStat, tty_nr 0 → 1
test("/proc/PID/stat: a model process has no controlling terminal, so tty_nr is 0 beside tpgid -1", { timeout: 60_000 }, async () => {
  // fs/proc/array.c do_task_stat: tty_nr and tty_pgrp come from sig->tty; without one they stay
  // 0 and -1. The model's processes have none
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const other = k.spawn("qemu");
  for (const p of [sh, other]) {
    const pid = p.pid;
    const text = await readAttr(sh, `/proc/${pid}/stat`);
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // fields 3, 7 and 8: state, tty_nr, tpgid (no terminal: 0 and -1 together)
    assert.deepEqual([f[0], f[4], f[5]], ["S", "0", "-1"], `pid ${pid}: ${text}`);
    assert.equal(text.split(" ").length, 52);
  }
});

describe("audit on a kernel whose vfio cdev does not check the VF token (6.12.58)", () => {
  const PF = "0000:af:00.0";
  /** the model's syscalls, with the vfio cdev nodes given another mode, as udev rules or a runtime may */
  const withCdevMode = (sys: Syscalls, mode: number): Syscalls =>
    new Proxy(sys, {
      get(t, prop) {
        if (prop === "stat")
          return async (p: string) => {
            const st = await t.stat(p);
            return p.startsWith("/dev/vfio/devices/") ? { ...st, mode: (st.mode & ~0o777) | mode } : st;
          };
        const v = Reflect.get(t, prop, t);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });

  // hand mutants audit-list-3 (the list cut at 3 while "and N more" counts from 4) and
  // audit-world-open-missed (a node every local user can open reported as root-only)
  test("the finding lists the first four VFs and counts the rest, and says who can open the nodes by their mode", { timeout: 60_000 }, async () => {
    const k = await bootKernel(undefined, { profile: "6.12.58" });
    const sh = k.spawn("sh");
    await writeText(sh, `${dev(PF)}/sriov_numvfs`, "0");
    await writeText(sh, `${dev(PF)}/sriov_numvfs`, "6");
    const vfs = (await sh.readdir("/sys/bus/pci/devices")).filter((b) => b.startsWith("0000:af:10."));
    assert.equal(vfs.length, 6);
    const node = async (b: string) => `/dev/vfio/devices/${(await sh.readdir(`${dev(b)}/vfio-dev`))[0]}`;
    const listed = (await Promise.all(vfs.slice(0, 4).map(async (b) => `${b} (${await node(b)})`))).join(", ") + " and 2 more";
    const finding = async (sys: Syscalls) => {
      const f = (await audit(sys)).findings.filter((x) => x.id === "cdev-token-bypass");
      assert.equal(f.length, 1);
      assert.equal(f[0]!.subject, PF);
      return f[0]!.message;
    };
    const m600 = await finding(sh);
    assert.ok(m600.includes(`without the token — ${listed}; access: root (mode 0600), or whoever udev rules or a container runtime give the nodes to.`), m600);
    // the real host's modes (stat(2) of the nodes) decide the access text
    assert.ok((await finding(withCdevMode(sh, 0o660))).includes(`${listed}; access: nodes open to their group.`));
    assert.ok((await finding(withCdevMode(sh, 0o666))).includes(`${listed}; access: a node readable and writable by every local user.`));
  });
});

describe("token files", () => {
  const T = "2ab74924-c335-45f4-9b16-8569e5b08258";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-s14-"));
  const file = (name: string, mode: number, text = `${T}\n`) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    fs.chmodSync(p, mode);
    return p;
  };

  // hand mutant token-group-readable-no-warning (token.ts readTokenFile: `mode & 0o077` → `& 0o007`):
  // a token file its group can read was taken without a word
  test("a token file readable by its group or by others is read with a warning; 0600 and 0400 without", () => {
    for (const [mode, warned] of [[0o600, false], [0o400, false], [0o640, true], [0o660, true], [0o604, true], [0o644, true]] as const) {
      const p = file(`t${mode.toString(8)}`, mode);
      const r = readTokenFile(p);
      assert.equal(r.token, T);
      const want = `warning: token file ${p} has mode ${mode.toString(8).padStart(4, "0")}: other users can read it; chmod 600 ${p}`;
      assert.deepEqual(r.warnings, warned ? [want] : [], mode.toString(8));
    }
  });

  // hand mutant token-lines-dropped (token.ts checkToken: "on N lines" left out)
  test("a token file of several lines is refused with its length and its number of lines, never its text", () => {
    const p = file("two", 0o600, `${T}\n${T}\n`);
    assert.throws(() => readTokenFile(p), (e: unknown) => {
      assert.ok(e instanceof VfioctlError);
      assert.equal(e.code, "BAD_TOKEN");
      // trim() keeps the newline between the two: 36 + 1 + 36 characters
      assert.equal(e.message, `token from file ${p}: expected a UUID (8-4-4-4-12 hex digits, 36 characters), got 73 characters on 2 lines`);
      assert.ok(!e.message.includes(T));
      return true;
    });
    assert.throws(() => checkToken("  \n", "stdin"), /got nothing$/);
    assert.throws(() => checkToken(`{${T}}`, "stdin"), /got 38 characters$/);
  });

  // hand mutant keep-root-dir (token.ts checkKeepFile: the directory of "/name" taken as "" instead of "/")
  test("--keep of a new file directly under / checks the directory / (which exists), not the empty path", () => {
    const p = `/vfioctl-s14-${process.pid}-never-created.token`;
    assert.equal(fs.existsSync(p), false);
    assert.equal(checkKeepFile(p), null, "a file to be created: no stat, no error");
    assert.throws(() => checkKeepFile(path.join(dir, "no-such-dir", "t")), (e: unknown) => e instanceof VfioctlError && e.message.endsWith(`(directory ${path.join(dir, "no-such-dir")} does not exist)`));
  });
});

// hand mutant kmsg-lost-not-counted (src/sys/kmsg.ts drain: `this.lost++` left out)
test("KmsgReader: a read that fails EPIPE (records overwritten before they were read) is counted as lost, and reading goes on", async () => {
  // Documentation/ABI/testing/dev-kmsg, kernel/printk/printk.c devkmsg_read: a reader whose next
  // record the ring has overwritten gets EPIPE once, and its position moves to the oldest record
  // still there, so the next read(2) returns a record again; EAGAIN (O_NONBLOCK) at the end
  const reads: (string | Error)[] = ["6,10,100,-;first\n", new SysError("EPIPE", "read", "/dev/kmsg"), new SysError("EPIPE", "read", "/dev/kmsg"), "4,20,200,-;after the gap\n SUBSYSTEM=pci\n", new SysError("EAGAIN", "read", "/dev/kmsg")];
  const sys = {
    open: async () => 7,
    lseek: async () => 0,
    close: async () => undefined,
    read: async (fd: number) => {
      assert.equal(fd, 7);
      const r = reads.shift();
      if (r === undefined) return Buffer.alloc(0);
      if (r instanceof Error) throw r;
      return Buffer.from(r);
    },
  } as unknown as Syscalls;
  const r = await KmsgReader.open(sys);
  const got = await r.drain();
  assert.deepEqual(got.map((x) => [x.seq, x.level, x.text]), [[10, 6, "first"], [20, 4, "after the gap"]]);
  assert.equal(r.lost, 2);
  assert.equal(reads.length, 0, "drained up to EAGAIN");
  await r.close();
});

// hand mutant sriov-fewer-note-dropped (src/lib/sriov.ts setNumVfs: the `after !== n` warning left
// out): a driver that enabled fewer VFs than written went unremarked
test("sriov: a PF driver that enables fewer VFs than asked is reported (to: the count sriov_numvfs reads, with a warning)", { timeout: 60_000 }, async () => {
  // drivers/pci/iov.c sriov_numvfs_store: the driver's sriov_configure returns how many it enabled;
  // fewer is not an error (the write returns count, "N VFs requested; only M enabled" is logged)
  // and sriov_numvfs then reads M. The model's drivers always enable all; this stand-in for such a
  // driver passes 2 on to the kernel when 4 is written
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const PF = "0000:01:00.0";
  const numvfsFds = new Set<number>();
  const sys = new Proxy(sh, {
    get(t, prop) {
      if (prop === "open")
        return async (p: string, flags: number) => {
          const fd = await t.open(p, flags);
          if (p === `${dev(PF)}/sriov_numvfs`) numvfsFds.add(fd);
          return fd;
        };
      if (prop === "write") return async (fd: number, data: string | Buffer) => (numvfsFds.has(fd) && String(data) === "4" ? (await t.write(fd, "2"), 1) : t.write(fd, data));
      const v = Reflect.get(t, prop, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  }) as Syscalls;
  const r = await setNumVfs(sys, PF, 4);
  assert.equal(r.from, 0);
  assert.equal(r.to, 2);
  assert.equal(r.changed, true);
  assert.deepEqual(r.vfs, ["0000:01:10.0", "0000:01:10.2"]);
  assert.deepEqual(r.notes, ["warning: sriov_numvfs reads 2 after writing 4 (the driver enabled fewer VFs)"]);
  // all enabled: no warning
  const s = await setNumVfs(sh, "0000:3b:00.0", 3, { force: true });
  assert.equal(s.to, 3);
  assert.deepEqual(s.notes, []);
});

// sampled mutant of seed 14: src/sys/linux/host.ts readFile, the failure path's `fd >= 0` → `fd >= 1`
// (a descriptor 0 that opened but failed to read was never closed)
test("the real backend's one-call readFile closes the file it opened when the read fails, even as fd 0", { timeout: 60_000 }, () => {
  // open(2) returns the lowest free descriptor: 0 once a program has closed its stdin. A sysfs
  // directory opens O_RDONLY and then fails read(2) with EISDIR; afterwards fd 0 must be free again
  const host = new URL("../src/sys/linux/host.js", import.meta.url).href;
  const script = `
    import * as fs from "node:fs";
    import { LinuxSyscalls } from ${JSON.stringify(host)};
    fs.closeSync(0);
    const out = [];
    try { await new LinuxSyscalls().readFile("/sys/bus/pci", true); out.push("read"); } catch (e) { out.push(e.code); }
    try { fs.fstatSync(0); out.push("fd 0 still open: " + fs.readlinkSync("/proc/self/fd/0")); } catch (e) { out.push("fd 0 " + e.code); }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), ["EISDIR", "fd 0 EBADF"]);
});

// hand mutant holders-unreadable-plural (src/lib/holders.ts unknownReason: "process's" and
// "processes'" swapped)
test("holders: processes whose fds this user may not read make a group's state unknown, counted in the reason", { timeout: 60_000 }, async () => {
  // proc(5): /proc/PID/fd is a directory of mode 0500 owned by the process's user, so another
  // unprivileged user's readdir fails EACCES; the scan cannot tell whether such a process holds a
  // vfio node
  const k = await bootKernel();
  const sh = k.spawn("vfioctl");
  const others = [k.spawn("other1"), k.spawn("other2")];
  const hide = (pids: number[]): Syscalls =>
    new Proxy(sh, {
      get(t, prop) {
        if (prop === "readdir")
          return async (p: string) => {
            if (pids.some((pid) => p === `/proc/${pid}/fd`)) throw new SysError("EACCES", "open", p);
            return t.readdir(p);
          };
        const v = Reflect.get(t, prop, t);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
  const free = await scanVfioHolders(sh);
  assert.deepEqual([free.unreadable, heldState(free, 6), unknownReason(free)], [[], "free", ""]);
  const one = await scanVfioHolders(hide([others[0]!.pid]));
  assert.deepEqual(one.unreadable, [others[0]!.pid]);
  assert.equal(heldState(one, 6), "unknown");
  assert.equal(unknownReason(one), "1 process's fds are not readable to this user (run as root to see them)");
  const two = await scanVfioHolders(hide(others.map((p) => p.pid)));
  assert.equal(unknownReason(two), "2 processes' fds are not readable to this user (run as root to see them)");
});

// hand mutant errno-ebadfd-text (src/sys/errno.ts: EBADFD's strerror text left out, so messages
// said "EBADFD (EBADFD)")
test("strerror: EBADFD (77), the answer to SET_CONTAINER with a file that is no container, reads as glibc says it", { timeout: 60_000 }, async () => {
  // glibc's string for EBADFD; vfio_group_ioctl_set_container returns -EBADFD for an fd that is
  // neither a container nor an iommufd (drivers/vfio/group.c)
  assert.equal(strerror("EBADFD"), "File descriptor in bad state");
  assert.equal(strerror(77), "File descriptor in bad state");
  const k = await bootKernel();
  const sh = k.spawn("sh");
  const g = (await sh.readlink(`${dev("0000:af:10.0")}/iommu_group`)).split("/").pop();
  const gfd = await sh.open(`/dev/vfio/${g}`, 2);
  const other = await sh.open(`${dev("0000:af:10.0")}/vendor`, 0);
  const arg = Buffer.alloc(4);
  arg.writeInt32LE(other, 0);
  await assert.rejects(sh.ioctl(gfd, VFIO.GROUP_SET_CONTAINER, arg), (e: unknown) => e instanceof SysError && e.code === "EBADFD" && e.errno === 77 && e.message.endsWith(": EBADFD (File descriptor in bad state)"));
});
