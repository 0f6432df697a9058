/**
 * Model-based properties: random sequences of opens, token changes, closes, process exits,
 * sriov_numvfs changes and PF rebinds over several processes, with the token invariants checked
 * after every step (kernel-spec §2.4, §2.6, §2.8, §3.2).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Kernel } from "../src/kernel/kernel.js";
import type { ModelProcess } from "../src/kernel/process.js";
import { tokenOfForTests } from "../src/kernel/vfio/pci/vfio_pci_core.js";
import { readText, writeText } from "../src/sys/fsutil.js";
import { featureBuf, featureSetVfToken, VFIO, VFIO_DEVICE_FEATURE_GET, deviceInfoBuf } from "../src/uapi/vfio.js";
import { closeVfioDevice, labKernelWithVfioPf, openVfioDevice, PF, type OpenedDevice } from "../testlib/vfio.js";
import { relLink } from "../src/kernel/fs/vfs.js";

const TOKENS = ["2ab74924-c335-45f4-9b16-8569e5b08258", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "16fd2706-8baf-433b-82eb-8c7fada847da"];
const VFS = ["0000:01:10.0", "0000:01:10.2"];
const NPROC = 3;

type Cmd =
  | { t: "openPf"; p: number; tok: number | null }
  | { t: "openVf"; p: number; vf: number; tok: number | null }
  | { t: "setToken"; tok: number }
  | { t: "featureGet" }
  | { t: "close"; i: number }
  | { t: "exit"; p: number }
  | { t: "numvfs"; n: 0 | 2 }
  | { t: "rebind" };

const tok = fc.option(fc.integer({ min: 0, max: TOKENS.length - 1 }), { nil: null });
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ t: fc.constant("openPf" as const), p: fc.nat(NPROC - 1), tok }),
  fc.record({ t: fc.constant("openVf" as const), p: fc.nat(NPROC - 1), vf: fc.nat(VFS.length - 1), tok }),
  fc.record({ t: fc.constant("setToken" as const), tok: fc.nat(TOKENS.length - 1) }),
  fc.record({ t: fc.constant("featureGet" as const) }),
  fc.record({ t: fc.constant("close" as const), i: fc.nat(8) }),
  fc.record({ t: fc.constant("exit" as const), p: fc.nat(NPROC - 1) }),
  fc.record({ t: fc.constant("numvfs" as const), n: fc.constantFrom(0 as const, 2 as const) }),
  fc.record({ t: fc.constant("rebind" as const) }),
);

interface Open {
  p: number;
  kind: "pf" | "vf";
  vf?: number;
  d: OpenedDevice;
}

/** Token bytes must never come back: not in a sysfs file, not in an ioctl's output. */
function assertNoToken(k: Kernel, bytes: Buffer, where: string): void {
  const t = pfToken(k);
  if (!t) return;
  const raw = Buffer.from(t.replace(/-/g, ""), "hex");
  assert.ok(!bytes.includes(raw), `${where}: output contains the token bytes`);
  const s = bytes.toString("latin1").toLowerCase();
  assert.ok(!s.includes(t) && !s.includes(t.replace(/-/g, "")), `${where}: output contains the token text`);
}

function pfToken(k: Kernel): string | null {
  const core = k.vfioPci.core(k.device(PF)!);
  return core ? tokenOfForTests(core) : null;
}
function users(k: Kernel): number | null {
  return k.vfioPci.core(k.device(PF)!)?.vfToken?.users ?? null;
}

async function play(cmds: Cmd[], profile: "6.1" | "6.12"): Promise<void> {
  const k = await labKernelWithVfioPf(profile, 2);
  const procs: ModelProcess[] = Array.from({ length: NPROC }, (_, i) => k.spawn(`p${i}`));
  const admin = k.spawn("admin");
  let opens: Open[] = [];
  const numvfs = async () => Number((await readText(admin, `/sys/bus/pci/devices/${PF}/sriov_numvfs`)).trim());
  for (const c of cmds) {
    const before = pfToken(k);
    const openVfs = () => new Set(opens.filter((o) => o.kind === "vf").map((o) => o.vf)).size;
    switch (c.t) {
      case "openPf": {
        const given = c.tok === null ? null : TOKENS[c.tok]!;
        const vfsOpen = openVfs();
        try {
          const d = await openVfioDevice(procs[c.p]!, PF, given ? `${PF} vf_token=${given}` : PF);
          // a PF with open VFs is never opened without the current token
          if (vfsOpen > 0) assert.equal(given, before, "PF opened while VFs are open without the PF's token");
          else if (given) assert.equal(pfToken(k), given, "a PF open with users == 0 sets the token");
          opens.push({ p: c.p, kind: "pf", d });
        } catch (e) {
          assert.ok(["EACCES", "EBUSY", "ENOENT", "ENODEV"].includes((e as { code?: string }).code ?? ""), String(e));
        }
        break;
      }
      case "openVf": {
        const given = c.tok === null ? null : TOKENS[c.tok]!;
        try {
          const d = await openVfioDevice(procs[c.p]!, VFS[c.vf]!, given ? `${VFS[c.vf]} vf_token=${given}` : VFS[c.vf]!);
          // no VF of a vfio-pci PF is ever opened without the PF's current token
          assert.ok(before !== null, "a VF opened while the PF is not on vfio-pci");
          assert.equal(given, before, "VF opened without the PF's current token");
          opens.push({ p: c.p, kind: "vf", vf: c.vf, d });
        } catch (e) {
          assert.ok(["EACCES", "EBUSY", "ENOENT", "ENODEV"].includes((e as { code?: string }).code ?? ""), String(e));
          if ((e as { code?: string }).code === "EACCES") assert.notEqual(given, before, "the right token was refused");
        }
        break;
      }
      case "setToken": {
        const pf = opens.find((o) => o.kind === "pf");
        if (!pf) break;
        const b = featureSetVfToken(TOKENS[c.tok]!);
        assert.equal(await procs[pf.p]!.ioctl(pf.d.device, VFIO.DEVICE_FEATURE, b), 0);
        assert.equal(pfToken(k), TOKENS[c.tok], "FEATURE SET replaces the token");
        break;
      }
      case "featureGet": {
        const pf = opens.find((o) => o.kind === "pf");
        if (!pf) break;
        const b = featureBuf(VFIO_DEVICE_FEATURE_GET, 24, Buffer.alloc(16));
        await assert.rejects(procs[pf.p]!.ioctl(pf.d.device, VFIO.DEVICE_FEATURE, b), { code: "EINVAL" });
        assertNoToken(k, b, "FEATURE GET");
        const info = deviceInfoBuf();
        await procs[pf.p]!.ioctl(pf.d.device, VFIO.DEVICE_GET_INFO, info);
        assertNoToken(k, info, "DEVICE_GET_INFO");
        break;
      }
      case "close": {
        const o = opens[c.i % Math.max(1, opens.length)];
        if (!o) break;
        await closeVfioDevice(procs[o.p]!, o.d);
        opens = opens.filter((x) => x !== o);
        break;
      }
      case "exit": {
        await procs[c.p]!.exit();
        procs[c.p] = k.spawn(`p${c.p}`);
        opens = opens.filter((x) => x.p !== c.p);
        break;
      }
      case "numvfs": {
        // only when nothing of the PF's is held, so the write cannot block
        if (opens.some((o) => o.kind === "vf") || pfToken(k) === null) break;
        const cur = await numvfs();
        if (cur === c.n) break;
        await writeText(admin, `/sys/bus/pci/devices/${PF}/sriov_numvfs`, String(c.n));
        assert.equal(pfToken(k), before, "sriov_numvfs does not touch the token");
        break;
      }
      case "rebind": {
        if (opens.length) break;
        const d = `/sys/bus/pci/devices/${PF}`;
        await writeText(admin, "/sys/bus/pci/drivers/vfio-pci/unbind", PF);
        await writeText(admin, `${d}/driver_override`, "vfio-pci");
        await writeText(admin, "/sys/bus/pci/drivers_probe", PF);
        await writeText(admin, `${d}/sriov_numvfs`, "2");
        break;
      }
    }
    assert.deepEqual(k.blocked(), [], "no syscall is left sleeping");
    // users equals the number of open PF-linked VF devices
    const u = users(k);
    if (u !== null) assert.equal(u, openVfs(), "users counts open VF devices, not fds");
  }
  // nothing a process can read under the PF returns the token
  for (const name of await admin.readdir(`/sys/bus/pci/devices/${PF}`)) {
    const st = await admin.stat(`/sys/bus/pci/devices/${PF}/${name}`).catch(() => null);
    if (st?.kind !== "file" || !(st.mode & 0o444)) continue;
    const text = await readText(admin, `/sys/bus/pci/devices/${PF}/${name}`).catch(() => "");
    assertNoToken(k, Buffer.from(text, "latin1"), `sysfs ${name}`);
  }
}

for (const profile of ["6.1", "6.12"] as const) {
  test(`random open/close/token/sriov sequences over 3 processes keep the VF token invariants (${profile})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { maxLength: 30 }), (cmds) => play(cmds, profile)),
      { numRuns: 100, seed: profile === "6.1" ? 61 : 612 },
    );
  });
}

test("relLink gives the relative target sysfs writes, for any two absolute paths (against the component-wise definition)", () => {
  const ref = (fromDir: string, to: string): string => {
    const a = fromDir.split("/").filter(Boolean);
    const b = to.split("/").filter(Boolean);
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return [...Array(a.length - i).fill(".."), ...b.slice(i)].join("/") || ".";
  };
  const comp = fc.constantFrom("sys", "sy", "sys0", "bus", "pci", "devices", "0000:01:00.0", "0000:01:00.01", "a", "ab");
  const absPath = fc.array(comp, { maxLength: 6 }).map((cs) => "/" + cs.join("/"));
  fc.assert(
    fc.property(absPath, absPath, (x, y) => {
      assert.equal(relLink(x, y), ref(x, y), `${x} → ${y}`);
    }),
    { numRuns: 3000 },
  );
  assert.equal(relLink("/sys/bus/pci/devices", "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0"), "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0");
  assert.equal(relLink("/sys//bus/", "/sys/devices"), "../devices");
});
