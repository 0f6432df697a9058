/**
 * Shared helpers for the kernel-spec table tests (test/spec-*.test.ts) and the model tests.
 * They live outside test/ so the runner does not count them as tests.
 *
 * The fixture is kernel-spec §10's topology: PF 0000:04:00.0 (8086:10fb, TotalVFs 8, offset
 * 0x80, stride 2, VF 8086:10ed) on vfio-pci with enable_sriov=Y, its VFs each in their own IOMMU
 * group, plus a few devices that the other tables need (a plain vfio-pci device, a pci-pf-stub
 * PF, a denylisted QAT, PFs whose VFs land on another bus, a PF with no driver, …).
 */
import assert from "node:assert/strict";
import { bootKernel } from "../../src/kernel/host/boot.js";
import type { HostDesc, DeviceDesc } from "../../src/kernel/host/host-file.js";
import type { Kernel, Task } from "../../src/kernel/kernel.js";
import type { PciDev, PciDeviceId, PciDriver } from "../../src/kernel/pci/pci.js";
import { pciDisableSriov, pciEnableSriov } from "../../src/kernel/pci/iov.js";
import type { KernelVersion } from "../../src/kernel/profile.js";
import type { ModelProcess } from "../../src/kernel/process.js";
import { SeededRng } from "../../src/kernel/clock.js";
import { tokenOfForTests, VfioPciCoreDevice } from "../../src/kernel/vfio/pci/vfio_pci_core.js";
import { readText, writeText } from "../../src/sys/fsutil.js";
import { O_RDWR } from "../../src/sys/syscalls.js";
import { SysError } from "../../src/sys/errno.js";
import { VFIO, deviceNameBuf, groupStatusBuf, intBuf } from "../../src/uapi/vfio.js";

export const PROFILES: readonly KernelVersion[] = ["6.1", "6.12"];

export const U1 = "2ab74924-c335-45f4-9b16-8569e5b08258";
export const U2 = "00000000-0000-0000-0000-000000000002";
export const U3 = "33333333-3333-4333-8333-333333333333";
export const U4 = "44444444-4444-4444-8444-444444444444";

/** §10 fixture addresses */
export const PF = "0000:04:00.0";
export const VF0 = "0000:04:10.0";
export const VF1 = "0000:04:10.2";
export const VF2 = "0000:04:10.4";
/** a device without SR-IOV on vfio-pci */
export const PLAIN = "0000:05:00.0";
/** Amazon PF that pci-pf-stub claims by its built-in id (4 VFs, offset 1, stride 1) */
export const STUB_PF = "0000:06:00.0";
/** Intel QAT C62x on vfio-pci's denylist, unbound */
export const QAT = "0000:3d:00.0";
/** PF whose VFs start on the next bus (offset 0x100, stride 1), no driver bound */
export const HIGH_PF = "0000:3b:00.0";
/** i915-style PF at devfn 0x10, offset 1, stride 1, bound to a driver without sriov_configure */
export const IGD_PF = "0000:00:02.0";
/** PF on vfio-pci whose bridge ends at bus 0x41: 193+ VFs do not fit (offset 0x80, stride 2) */
export const NARROW_PF = "0000:40:00.0";
/** PF on the native ixgbe driver (its VFs probe ixgbevf unless autoprobe is off) */
export const NATIVE_PF = "0000:07:00.0";
/** a PCI bridge (header type 1) */
export const BRIDGE = "0000:00:1c.0";
/** a device behind no IOMMU (no group) */
export const NOIOMMU = "0000:09:00.0";
/** two functions sharing IOMMU group 30: function 0 on vfio-pci, function 1 on nvme (group not viable) */
export const SHARED_VFIO = "0000:08:00.0";
export const SHARED_HOST = "0000:08:00.1";

export const dev = (bdf: string) => `/sys/bus/pci/devices/${bdf}`;
export const drv = (name: string) => `/sys/bus/pci/drivers/${name}`;

export function specHost(over: { enableSriov?: boolean; disableDenylist?: boolean; pfAutoprobe?: boolean; nativeAutoprobe?: boolean } = {}): HostDesc {
  const devices: DeviceDesc[] = [
    {
      bdf: PF,
      vendor: 0x8086,
      device: 0x10fb,
      iommu_group: 20,
      driver: "vfio-pci",
      sriov: { total_vfs: 8, offset: 0x80, stride: 2, vf_device: 0x10ed, drivers_autoprobe: over.pfAutoprobe ?? true },
    },
    { bdf: PLAIN, vendor: 0x144d, device: 0xa808, class: 0x010802, driver: "vfio-pci" },
    { bdf: STUB_PF, vendor: 0x1d0f, device: 0x0053, sriov: { total_vfs: 4, offset: 1, stride: 1, vf_device: 0x0054 } },
    { bdf: QAT, vendor: 0x8086, device: 0x37c8, class: 0x0b4000, driver: "none" },
    { bdf: HIGH_PF, vendor: 0x8086, device: 0x1592, driver: "none", sriov: { total_vfs: 4, offset: 0x100, stride: 1, vf_device: 0x1889 } },
    { bdf: IGD_PF, vendor: 0x8086, device: 0x3e92, class: 0x030000, driver: "i915", sriov: { total_vfs: 7, offset: 1, stride: 1, vf_device: 0x3e92 } },
    { bdf: NARROW_PF, vendor: 0x8086, device: 0x10fb, driver: "vfio-pci", sriov: { total_vfs: 200, offset: 0x80, stride: 2, vf_device: 0x10ed, bus_end: 0x41 } },
    {
      bdf: NATIVE_PF,
      vendor: 0x8086,
      device: 0x10fb,
      sriov: { total_vfs: 4, offset: 0x80, stride: 2, vf_device: 0x10ed, drivers_autoprobe: over.nativeAutoprobe ?? true },
    },
    { bdf: BRIDGE, vendor: 0x8086, device: 0xa110, class: 0x060400, header_type: 1, driver: "none" },
    { bdf: NOIOMMU, vendor: 0x1af4, device: 0x1041, iommu_group: null, driver: "none" },
    { bdf: SHARED_VFIO, vendor: 0x1af4, device: 0x1042, iommu_group: 30, driver: "vfio-pci" },
    { bdf: SHARED_HOST, vendor: 0x144d, device: 0xa808, class: 0x010802, iommu_group: 30 },
  ];
  return {
    name: "spec-fixture",
    modules: { vfio_pci: { enable_sriov: over.enableSriov ?? true, ...(over.disableDenylist ? { disable_denylist: true } : {}) } },
    drivers: [
      { name: "ixgbe", ids: ["8086:10fb"], sriovConfigure: true, disablesSriovOnRemove: true },
      { name: "ixgbevf", ids: ["8086:10ed"] },
      { name: "i915", ids: ["8086:3e92"] },
      "nvme",
      "pci-pf-stub",
      "vfio-pci",
    ],
    devices,
  };
}

export interface World {
  k: Kernel;
  sh: ModelProcess;
}

/** Boot the §10 fixture on a profile (seeded RNG unless given). */
export async function boot(profile: KernelVersion, over: Parameters<typeof specHost>[0] & { seed?: number } = {}): Promise<World> {
  const k = await bootKernel(specHost(over), { profile, rng: new SeededRng(over.seed ?? 1) });
  return { k, sh: k.spawn("bash") };
}

/** Boot, then enable `n` VFs on the fixture PF (through sysfs, as a user would). */
export async function bootWithVfs(profile: KernelVersion, n = 2, over: Parameters<typeof boot>[1] = {}): Promise<World> {
  const w = await boot(profile, over);
  assert.equal(await writeText(w.sh, `${dev(PF)}/sriov_numvfs`, String(n)), String(n).length);
  return w;
}

/** The value of a promise, or the errno code ("EINVAL") it was rejected with. */
export async function attempt<T>(p: Promise<T>): Promise<T | string> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof SysError) return e.code;
    throw e;
  }
}

/** `echo -n text > path` in one write: byte count or errno code. */
export const w = (sys: ModelProcess, path: string, text: string) => attempt(writeText(sys, path, text));
/** `cat path`: text or errno code. */
export const r = (sys: ModelProcess, path: string) => attempt(readText(sys, path));

/** Log texts recorded while `fn` runs. */
export async function logged<T>(k: Kernel, fn: () => Promise<T>): Promise<{ value: T; lines: string[]; records: Kernel["log"]["records"] }> {
  const from = k.log.nextSeq;
  const value = await fn();
  const records = k.log.since(from);
  return { value, lines: records.map((x) => x.text), records };
}

/** Run an operation and return [result-or-errno, log lines]. */
export async function run<T>(k: Kernel, p: () => Promise<T>): Promise<[T | string, string[]]> {
  const { value, lines } = await logged(k, () => attempt(p()));
  return [value, lines];
}

/** Log texts since a sequence number (k.log.nextSeq taken earlier). */
export const since = (k: Kernel, seq: number) => k.log.since(seq).map((x) => x.text);

/** Let the model's pending async work run (blocked syscalls reach their wait). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((res) => setImmediate(res));
}

/** Advance model time in steps so chained kernel timers (vfio's 10 s request loop) fire on time. */
export async function advance(k: Kernel, ms: number, step = 1000): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    k.advance(Math.min(step, ms - t));
    await settle(5);
  }
}

/** The IOMMU group number of a device (from its sysfs link, as a user finds it). */
export async function groupOf(sys: ModelProcess, bdf: string): Promise<number> {
  const t = await sys.readlink(`${dev(bdf)}/iommu_group`);
  return Number(t.slice(t.lastIndexOf("/") + 1));
}

export interface Opened {
  container: number;
  group: number;
  /** the device fd, or the errno code of GET_DEVICE_FD */
  device: number | string;
}

/**
 * The standard sequence of §8.3: open container, open the device's group, SET_CONTAINER,
 * SET_IOMMU(TYPE1v2), GET_DEVICE_FD(match). Steps can be skipped for the ordering tests.
 */
export async function openDevice(sys: ModelProcess, bdf: string, match = bdf, opts: { setContainer?: boolean; setIommu?: boolean } = {}): Promise<Opened> {
  const container = await sys.open("/dev/vfio/vfio", O_RDWR);
  const group = await sys.open(`/dev/vfio/${await groupOf(sys, bdf)}`, O_RDWR);
  if (opts.setContainer ?? true) {
    await sys.ioctl(group, VFIO.GROUP_SET_CONTAINER, intBuf(container));
    if (opts.setIommu ?? true) await sys.ioctl(container, VFIO.SET_IOMMU, 3);
  }
  const device = await attempt(sys.ioctl(group, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(match)));
  return { container, group, device };
}

/** GET_DEVICE_FD on an already open group fd: fd or errno code. */
export const getDeviceFd = (sys: ModelProcess, groupFd: number, match: string) => attempt(sys.ioctl(groupFd, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(match)));

/** VFIO_GROUP_GET_STATUS flags, or the errno code. */
export async function groupStatus(sys: ModelProcess, groupFd: number): Promise<number | string> {
  const b = groupStatusBuf();
  const rc = await attempt(sys.ioctl(groupFd, VFIO.GROUP_GET_STATUS, b));
  return typeof rc === "string" ? rc : b.readUInt32LE(4);
}

/** The vfio-pci core device of a bound device (model internals, for token/users assertions). */
export function core(k: Kernel, bdf: string): VfioPciCoreDevice {
  const d = k.device(bdf);
  assert.ok(d && d.drvdata instanceof VfioPciCoreDevice, `${bdf} is bound to vfio-pci`);
  return d.drvdata;
}

/** The PF's current token (the kernel never exposes it; tests read the model's state). */
export const tokenOf = (k: Kernel, bdf = PF) => tokenOfForTests(core(k, bdf));
/** The PF's `users` count (open PF-linked VF devices). */
export const usersOf = (k: Kernel, bdf = PF) => core(k, bdf).vfToken!.users;

/** Link base name (driver of a device), or null. */
export async function driverOf(sys: ModelProcess, bdf: string): Promise<string | null> {
  try {
    const t = await sys.readlink(`${dev(bdf)}/driver`);
    return t.slice(t.lastIndexOf("/") + 1);
  } catch {
    return null;
  }
}

/** Run `body` once per profile as a named subtest group. */
export function forProfiles(fn: (profile: KernelVersion) => void): void {
  for (const p of PROFILES) fn(p);
}

/** The driver core's probe-failed line as each kernel prints it (lab: 6.1 pr_warn, 6.12 dev_err). */
export function probeFailedLine(profile: KernelVersion, driver: string, bdf: string, err: number): string {
  return profile === "6.1" ? `${driver}: probe of ${bdf} failed with error ${err}` : `${driver} ${bdf}: probe with driver ${driver} failed with error ${err}`;
}

/** Drop PCI enumeration and IOMMU group lines (their exact wording is [U] in the spec). */
export const withoutEnumeration = (lines: string[]) => lines.filter((l) => !/: \[[0-9a-f]{4}:[0-9a-f]{4}\] type 0/.test(l) && !/(Adding to|Removing from) iommu group/.test(l));

/**
 * A PF driver whose sriov_configure enables fewer VFs than asked (at most `limit`), like drivers
 * that cap VFs by their own resources. Registered after boot; bind it with driver_override.
 */
export class PartialPfDriver implements PciDriver {
  readonly name = "partial-pf";
  readonly module = "partial_pf";
  readonly idTable: PciDeviceId[] = [];
  readonly dynids: PciDeviceId[] = [];
  readonly driverManagedDma = false;
  constructor(readonly limit: number) {}
  async probe(): Promise<number> {
    return 0;
  }
  async sriovConfigure(k: Kernel, task: Task, pdev: PciDev, nr: number): Promise<number> {
    if (nr === 0) {
      await pciDisableSriov(k, task, pdev);
      return 0;
    }
    const n = Math.min(nr, this.limit);
    const rc = await pciEnableSriov(k, task, pdev, n);
    return rc < 0 ? rc : n;
  }
}
