/**
 * The host tool applies its kernel's rules: readHostKernel (version, /dev/iommu, the vfio cdev),
 * and list / explain / audit / args on each row of the cdev table, plus the library's cdev open
 * with a token (openCdevSession).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import { readHostKernel } from "../src/lib/kernel.js";
import { explainOpen } from "../src/lib/explain.js";
import { audit } from "../src/lib/audit.js";
import { consumerArgs } from "../src/lib/args.js";
import { inventory } from "../src/lib/inventory.js";
import { openCdevSession, openGroupSession } from "../src/lib/vfio.js";
import { main } from "../src/cli/main.js";
import { SysError } from "../src/sys/errno.js";
import { formatRelease } from "../src/kernel/versions.js";
import { tokenOfForTests, VfioPciCoreDevice } from "../src/kernel/vfio/pci/vfio_pci_core.js";
import type { Kernel } from "../src/kernel/kernel.js";
import { materialize } from "../src/sim/materialize.js";
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const PF = "0000:af:00.0";
const VF = "0000:af:10.0";
const U1 = "2ab74924-c335-45f4-9b16-8569e5b08258";

async function host(profile: string) {
  const k = await bootKernel(undefined, { profile });
  return { k, sys: k.spawn("vfioctl") };
}

/** Set the PF token through the group path, as the PF's userspace driver would. */
async function setToken(k: Kernel, token = U1) {
  const sys = k.spawn("pfdriver");
  const g = Number((await sys.readlink(`/sys/bus/pci/devices/${PF}/iommu_group`)).split("/").pop());
  const s = await openGroupSession(sys, g);
  await s.deviceFd(`${PF} vf_token=${token}`);
  await s.close();
  assert.equal(tokenOfForTests(k.device(PF)!.drvdata as VfioPciCoreDevice), token);
}

async function cli(args: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  // the UTF-8 rendering (as on a UTF-8 terminal): the rows are asserted with their ✓/✗ marks
  const code = await main(args, { out: (s) => (out += s + "\n"), err: (s) => (out += s + "\n"), env: {}, utf8: true });
  return { code, out };
}

describe("readHostKernel", () => {
  const rows: [string, string, string, boolean, boolean | null, string][] = [
    ["6.1", "6.1.0-56-amd64", "6.1.192", false, false, "none"],
    ["6.12", "6.12.117+deb13-amd64", "6.12.117", false, false, "none"],
    ["6.12.58", "6.12.58", "6.12.58", true, true, "bypass"],
    ["6.16.1", "6.16.1", "6.16.1", true, true, "e2big"],
    ["6.17.1", "6.17.1", "6.17.1", true, true, "e2big"],
    ["6.18.3", "6.18.3", "6.18.3", true, true, "checked"],
    ["7.3.4", "7.3.4", "7.3.4", true, true, "checked"],
    ["5.15.0-91-generic", "5.15.0-91-generic", "5.15.0", false, false, "none"],
  ];
  for (const [profile, osrelease, release, iommufd, cdev, rule] of rows) {
    test(`${profile}: uname -r ${osrelease}, upstream ${release}, ${iommufd ? "" : "no "}/dev/iommu, cdev ${cdev}, token on the cdev: ${rule}`, async () => {
      const { sys } = await host(profile);
      const hk = await readHostKernel(sys);
      assert.equal(hk.osrelease, osrelease);
      assert.equal(formatRelease(hk.ident!.release), release);
      assert.equal(hk.iommufd, iommufd);
      assert.equal(hk.cdev, cdev);
      assert.equal(hk.cdevToken, rule);
    });
  }
  test("a version the table cannot resolve is reported, not guessed (the real backend on a copied tree)", async () => {
    const { k } = await host("6.1");
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-hk-"));
    try {
      await materialize(k.spawn("m"), d);
      fs.writeFileSync(path.join(d, "proc/sys/kernel/osrelease"), "6.1.0-57-amd64\n");
      fs.rmSync(path.join(d, "proc/version"));
      const hk = await readHostKernel(new LinuxSyscalls({ root: d }));
      assert.equal(hk.osrelease, "6.1.0-57-amd64");
      assert.equal(hk.ident, null);
      assert.match(hk.identifyError!, /Debian's ABI name does not say which 6\.1\.y it is/);
      assert.equal(hk.cdev, false, "vfio-dev class devices without a dev attribute: no cdev");
      assert.equal(hk.cdevToken, "none");
      fs.writeFileSync(path.join(d, "proc/version"), "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.194-1 (2026-12-01)\n");
      assert.equal(formatRelease((await readHostKernel(new LinuxSyscalls({ root: d }))).ident!.release), "6.1.194");
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
  test("one vfio-dev class device with a `dev` attribute is enough to see the vfio cdev (the kernel adds it to every vfio device or to none)", async () => {
    const { k } = await host("7.3.4");
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-hk-cdev-"));
    try {
      await materialize(k.spawn("m"), d);
      fs.rmSync(path.join(d, "dev/vfio/devices"), { recursive: true, force: true });
      const classDir = path.join(d, "sys/class/vfio-dev");
      const names = fs.readdirSync(classDir).filter((n) => /^vfio\d+$/.test(n));
      assert.ok(names.length >= 1, "the host has vfio devices");
      // a second class device without `dev` (as a copied tree missing a file would have)
      fs.mkdirSync(path.join(classDir, "vfio99"));
      assert.equal((await readHostKernel(new LinuxSyscalls({ root: d }))).cdev, true);
      for (const n of names) fs.rmSync(path.join(fs.realpathSync(path.join(classDir, n)), "dev"), { force: true });
      assert.equal((await readHostKernel(new LinuxSyscalls({ root: d }))).cdev, false, "vfio devices, none with a dev attribute: no cdev");
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
  test("list prints the kernel first; list --json carries it", async () => {
    const t = await cli(["--sim", "--profile", "6.12.58", "list"]);
    assert.equal(t.code, 0);
    assert.match(t.out.split("\n")[0]!, /^kernel 6\.12\.58: \/dev\/iommu, vfio cdev; VFIO_DEVICE_BIND_IOMMUFD does not check the VF token/);
    const j = JSON.parse((await cli(["--sim", "--json", "--profile", "6.12", "list"])).out);
    assert.equal(j.kernel.osrelease, "6.12.117+deb13-amd64");
    assert.equal(j.kernel.cdevToken, "none");
  });
  test("inventory: a VF's token line says what the cdev does on a bypass or E2BIG kernel; its cdev node", async () => {
    for (const [v, re] of [["6.12.58", /not through the vfio cdev/], ["6.17.1", /cannot be passed on this kernel \(E2BIG\)/], ["7.3.4", /^VF token required: PF 0000:af:00\.0 is owned by vfio-pci$/]] as const) {
      const { sys } = await host(v);
      const inv = await inventory(sys);
      const vf = inv.pfs.find((p) => p.bdf === PF)!.vfDevices[0]!;
      assert.match(vf.token.reason, re, v);
      assert.match(vf.cdevNode!, /^\/dev\/vfio\/devices\/vfio\d+$/);
    }
    const d = (await inventory((await host("6.1")).sys)).pfs.find((p) => p.bdf === PF)!.vfDevices[0]!;
    assert.equal(d.cdevNode, null);
    assert.match(d.vfioDevice!, /^vfio\d+$/);
  });
});

describe("explain on each row of the cdev table (a VF of a vfio-pci PF)", () => {
  const cause = (x: Awaited<ReturnType<typeof explainOpen>>, id: string) => x.causes.find((c) => c.id === id)!;
  test("no cdev (Debian's 6.12): no cdev rows, the group path only", async () => {
    const x = await explainOpen((await host("6.12")).sys, VF);
    assert.equal(x.cdev, null);
    assert.ok(!x.causes.some((c) => c.operation === "cdev"));
  });
  test("bypass (6.12.58): the bind succeeds without any token — a note that applies; a token is EINVAL", async () => {
    const x = await explainOpen((await host("6.12.58")).sys, VF);
    assert.equal(x.cdev!.verdict, "ok");
    assert.match(x.cdev!.summary, /without any token/);
    assert.equal(cause(x, "cdev-token-bypass").status, "applies");
    assert.equal(cause(x, "cdev-token-flags").status, "would");
    const t = await explainOpen((await host("6.12.58")).sys, VF, { token: true });
    assert.equal(t.cdev!.verdict, "fails");
    assert.equal(t.cdev!.errno, "EINVAL");
  });
  test("E2BIG (6.17.1): without a token EACCES, with one E2BIG — the VF cannot be opened through the cdev", async () => {
    const x = await explainOpen((await host("6.17.1")).sys, VF);
    assert.equal(x.cdev!.errno, "EACCES");
    const t = await explainOpen((await host("6.17.1")).sys, VF, { token: true, errno: "E2BIG" });
    assert.equal(t.cdev!.errno, "E2BIG");
    assert.equal(t.ranked![0]!.id, "cdev-token-e2big");
    assert.equal(cause(t, "cdev-token-efault").status, "would");
  });
  test("checked (7.3.4): without a token EACCES with the kernel's log line; with one it depends on the token", async () => {
    const x = await explainOpen((await host("7.3.4")).sys, VF);
    assert.equal(x.cdev!.errno, "EACCES");
    assert.equal(cause(x, "cdev-token-required").log, `vfio-pci ${VF}: VF token required to access device`);
    const t = await explainOpen((await host("7.3.4")).sys, VF, { token: true });
    assert.equal(t.cdev!.verdict, "cannot-tell");
    assert.equal(cause(t, "cdev-token-incorrect").status, "possible");
  });
  test("checked: the PF with a token and no VF open sets it — even when the bind then fails", async () => {
    const x = await explainOpen((await host("6.18.3")).sys, PF, { token: true });
    const c = cause(x, "cdev-pf-sets-token");
    assert.equal(c.status, "applies");
    assert.equal(c.note, true);
    assert.match(c.cause, /a bind that then fails \(EBADF, EBADFD, EBUSY\) has changed the token anyway/);
  });
  test("the group node held by a process: the cdev bind is EBUSY; a cdev fd of the group held elsewhere: the group node may be EBUSY", async () => {
    const { k, sys } = await host("7.3.4");
    const q = k.spawn("qemu");
    const g = Number((await sys.readlink(`/sys/bus/pci/devices/${VF}/iommu_group`)).split("/").pop());
    const gfd = await q.open(`/dev/vfio/${g}`, 2);
    const x = await explainOpen(sys, VF, { token: true });
    assert.equal(cause(x, "cdev-group-open").status, "applies");
    assert.equal(x.cdev!.errno, "EBUSY");
    await q.close(gfd);
    const node = (await explainOpen(sys, VF)).device.cdevNode!;
    await q.open(node, 2);
    const y = await explainOpen(sys, VF, { token: true });
    assert.equal(cause(y, "group-cdev-bound").status, "possible");
    assert.equal(cause(y, "cdev-already-bound").status, "possible");
  });
  test("the CLI: explain shows the kernel and a cdev line; its exit code stays the group path's", async () => {
    const a = await cli(["--sim", "--profile", "6.12.58", "explain", VF]);
    assert.equal(a.code, 1, "the group path still needs the token");
    assert.match(a.out, /^kernel: 6\.12\.58: /m);
    assert.match(a.out, /^cdev: ✓ bind \/dev\/vfio\/devices\/vfio\d+: should succeed without any token/m);
    assert.match(a.out, /^ {2}! note cdev: this kernel does not check the VF token on BIND_IOMMUFD/m);
    const b = await cli(["--sim", "--profile", "6.17.1", "explain", VF, "--with-token", "--errno", "E2BIG"]);
    assert.match(b.out, /Causes of E2BIG for 0000:af:10\.0, most likely first:\n {1}1\. ✗ E2BIG cdev/);
  });
});

describe("audit on each row", () => {
  for (const [v, id] of [["6.1", null], ["6.12", null], ["6.12.58", "cdev-token-bypass"], ["6.16.1", "cdev-token-unusable"], ["6.17.1", "cdev-token-unusable"], ["6.18.3", null], ["7.3.4", null]] as const) {
    test(`${v}: ${id ?? "no cdev finding"}`, async () => {
      const r = await audit((await host(v)).sys);
      const f = r.findings.filter((x) => x.id.startsWith("cdev-"));
      if (!id) return assert.deepEqual(f, []);
      assert.equal(f.length, 1);
      assert.equal(f[0]!.id, id);
      assert.equal(f[0]!.subject, PF);
      assert.equal(f[0]!.severity, id === "cdev-token-bypass" ? "error" : "warning");
      if (id === "cdev-token-bypass") assert.match(f[0]!.message, /any local user with access to the cdev node opens a VF of vfio-pci PF 0000:af:00\.0 without the token — 0000:af:10\.0 \(\/dev\/vfio\/devices\/vfio\d+\), 0000:af:10\.1/);
    });
  }
  test("the CLI exits 1 on a bypass kernel with VFs of a vfio-pci PF", async () => {
    const t = await cli(["--sim", "--profile", "6.12.58", "audit"]);
    assert.equal(t.code, 1);
    assert.match(t.out, /✗ \[cdev-token-bypass\] 0000:af:00\.0/);
  });
});

describe("args: what the consumers' cdev modes do with the token on this kernel", () => {
  const rows: [string, RegExp | null, RegExp | null][] = [
    ["6.12", null, null],
    ["6.12.58", /QEMU's iommufd backend .* binds with flags 0 and the kernel checks no token: the VF opens without one and vf-token= is ignored/, /cannot pass the token .* retries without it, which the kernel lets through unchecked/],
    ["6.17.1", /refuses a VF of a vfio-pci PF without its token .* no userspace can pass a token through the cdev here \(E2BIG/, /bind with the token fails E2BIG .* retry without the token fails EACCES .* names the kernel version/],
    ["7.3.4", /binds with flags 0, ignoring vf-token=, and the kernel refuses the VF \(EACCES/, /passes the token with VFIO_DEVICE_BIND_FLAG_TOKEN/],
  ];
  for (const [v, qemu, dpdk] of rows) {
    test(`${v}`, async () => {
      const { sys } = await host(v);
      const q = await consumerArgs(sys, "qemu", [VF], {});
      const d = await consumerArgs(sys, "dpdk", [VF], {});
      const s = await consumerArgs(sys, "spdk", [VF], {});
      const has = (caveats: string[], re: RegExp | null) => (re ? assert.ok(caveats.some((c) => re.test(c)), caveats.join("\n")) : assert.ok(!caveats.some((c) => /^on this kernel/.test(c))));
      has(q.caveats, qemu);
      has(d.caveats, dpdk);
      if (dpdk) assert.ok(s.caveats.some((c) => /SPDK runs through DPDK's EAL/.test(c)));
      assert.equal(q.kernel.osrelease, (await readHostKernel(sys)).osrelease);
    });
  }
  test("no cdev caveat for devices that need no token", async () => {
    const a = await consumerArgs((await host("6.12.58")).sys, "qemu", ["0000:05:00.0"], {});
    assert.ok(!a.caveats.some((c) => /^on this kernel/.test(c)));
  });
});

describe("openCdevSession: the library's cdev open with a token (as __vfio_device_bind_iommufd)", () => {
  test("checked kernel: binds with the PF's token, attaches to a new IOAS, and closes clean", async () => {
    const { k, sys } = await host("7.3.4");
    await setToken(k);
    const s = await openCdevSession(sys, VF, { token: U1 });
    assert.match(s.node, /^\/dev\/vfio\/devices\/vfio\d+$/);
    assert.deepEqual([s.ioasId, s.devid, s.ptId], [1, 2, 3]);
    const core = k.device(PF)!.drvdata as VfioPciCoreDevice;
    assert.equal(core.vfToken!.users, 1);
    await s.close();
    assert.equal(core.vfToken!.users, 0);
    assert.deepEqual(sys.fdNumbers(), []);
  });
  test("checked kernel: the wrong token is EACCES and nothing stays open", async () => {
    const { k, sys } = await host("6.18.3");
    await setToken(k);
    await assert.rejects(openCdevSession(sys, VF, { token: "00000000-0000-0000-0000-000000000002" }), (e: unknown) => e instanceof SysError && e.code === "EACCES");
    assert.deepEqual(sys.fdNumbers(), []);
  });
  test("E2BIG kernel: a token cannot be passed", async () => {
    const { k, sys } = await host("6.17.1");
    await setToken(k);
    await assert.rejects(openCdevSession(sys, VF, { token: U1 }), (e: unknown) => e instanceof SysError && e.code === "E2BIG");
  });
  test("bypass kernel: no token needed (and a token is EINVAL)", async () => {
    const { sys } = await host("6.12.58");
    const s = await openCdevSession(sys, VF);
    await s.close();
    await assert.rejects(openCdevSession(sys, VF, { token: U1 }), (e: unknown) => e instanceof SysError && e.code === "EINVAL");
  });
  test("no cdev: ENOENT (/dev/iommu or the node is missing)", async () => {
    await assert.rejects(openCdevSession((await host("6.12")).sys, VF), (e: unknown) => e instanceof SysError && e.code === "ENOENT");
    await assert.rejects(openCdevSession((await host("7.3.4")).sys, "0000:05:00.0"), (e: unknown) => e instanceof SysError && e.code === "ENOENT");
  });
});
