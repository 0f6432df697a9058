/**
 * Benchmarks of the kernel model itself, run through the syscalls seam as a user program would:
 *   - enabling and disabling all VFs of a 16-PF host at several VF counts per PF;
 *   - VFIO_GROUP_GET_DEVICE_FD("<VF> vf_token=…") + close cycles per second, on a small and a
 *     large host;
 *   - opening every VF of the host (group open, SET_CONTAINER, GET_DEVICE_FD with the token) and
 *     closing them again (process exit), at several sizes.
 * Sizes are measured side by side in one run; what matters is the ratio between sizes (the
 * model should be linear: the cost per VF roughly flat), not the absolute numbers.
 */
import { performance } from "node:perf_hooks";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { HostDesc } from "../src/kernel/host/host-file.js";
import type { Kernel } from "../src/kernel/kernel.js";
import type { ModelProcess } from "../src/kernel/process.js";
import { SeededRng } from "../src/kernel/clock.js";
import { readAttr, writeText } from "../src/sys/fsutil.js";
import { O_RDWR } from "../src/sys/syscalls.js";
import { VFIO, deviceNameBuf, intBuf } from "../src/uapi/vfio.js";

export const PFS = 16;
export const MAX_VFS = 256;
export const TOKEN = "2ab74924-c335-45f4-9b16-8569e5b08258";

/** PF i: 0000:<0x10+4i>:00.0, 8086:10fb on vfio-pci, 256 VFs at offset 1 stride 1 (VF255 on the next bus). */
export function pfBdf(i: number): string {
  return `0000:${(0x10 + 4 * i).toString(16).padStart(2, "0")}:00.0`;
}

export function benchHost(pfs = PFS, totalVfs = MAX_VFS): HostDesc {
  return {
    name: `bench-${pfs}x${totalVfs}`,
    modules: { vfio_pci: { enable_sriov: true } },
    drivers: ["pci-pf-stub", "vfio-pci"],
    devices: Array.from({ length: pfs }, (_, i) => ({
      bdf: pfBdf(i),
      vendor: 0x8086,
      device: 0x10fb,
      driver: "vfio-pci",
      sriov: { total_vfs: totalVfs, offset: 1, stride: 1, vf_device: 0x10ed, bus_end: 0x10 + 4 * i + 2 },
    })),
  };
}

export async function bootBench(pfs = PFS): Promise<{ k: Kernel; sh: ModelProcess }> {
  const k = await bootKernel(benchHost(pfs), { profile: "6.12", rng: new SeededRng(7) });
  return { k, sh: k.spawn("bench") };
}

/** The VF names of PF i (read from its virtfn links, as a tool would). */
export async function vfNames(sh: ModelProcess, pf: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let v = 0; v < n; v++) {
    const t = await sh.readlink(`/sys/bus/pci/devices/${pf}/virtfn${v}`);
    out.push(t.slice(t.lastIndexOf("/") + 1));
  }
  return out;
}

export interface SizeResult {
  vfsPerPf: number;
  totalVfs: number;
  ms: number;
  usPerVf: number;
}

async function setAll(sh: ModelProcess, n: number, pfs: number): Promise<void> {
  for (let i = 0; i < pfs; i++) await writeText(sh, `/sys/bus/pci/devices/${pfBdf(i)}/sriov_numvfs`, String(n));
}

/** Enable then disable n VFs on every PF; returns the time of each half. */
export async function enableDisable(n: number, pfs = PFS): Promise<{ enable: SizeResult; disable: SizeResult }> {
  const { sh } = await bootBench(pfs);
  const t0 = performance.now();
  await setAll(sh, n, pfs);
  const t1 = performance.now();
  if ((await readAttr(sh, `/sys/bus/pci/devices/${pfBdf(pfs - 1)}/sriov_numvfs`)) !== String(n)) throw new Error("enable failed");
  const t2 = performance.now();
  await setAll(sh, 0, pfs);
  const t3 = performance.now();
  const total = n * pfs;
  const res = (ms: number): SizeResult => ({ vfsPerPf: n, totalVfs: total, ms, usPerVf: (ms * 1000) / total });
  return { enable: res(t1 - t0), disable: res(t3 - t2) };
}

/** Open every VF (one container for all groups) and then exit the process, which closes them. */
export async function openAll(n: number, pfs = PFS): Promise<{ open: SizeResult; close: SizeResult }> {
  const { k, sh } = await bootBench(pfs);
  await setAll(sh, n, pfs);
  // set every PF's token through a PF open, as a PF owner would
  for (let i = 0; i < pfs; i++) {
    const c = await sh.open("/dev/vfio/vfio", O_RDWR);
    const g = await sh.open(`/dev/vfio/${await groupNumber(sh, pfBdf(i))}`, O_RDWR);
    await sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c));
    await sh.ioctl(c, VFIO.SET_IOMMU, 3);
    await sh.close(await sh.ioctl(g, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(`${pfBdf(i)} vf_token=${TOKEN}`)));
    await sh.close(g);
    await sh.close(c);
  }
  const names: string[] = [];
  for (let i = 0; i < pfs; i++) names.push(...(await vfNames(sh, pfBdf(i), n)));
  const qemu = k.spawn("qemu");
  const t0 = performance.now();
  const c = await qemu.open("/dev/vfio/vfio", O_RDWR);
  let first = true;
  for (const vf of names) {
    const g = await qemu.open(`/dev/vfio/${await groupNumber(qemu, vf)}`, O_RDWR);
    await qemu.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c));
    if (first) await qemu.ioctl(c, VFIO.SET_IOMMU, 3);
    first = false;
    await qemu.ioctl(g, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(`${vf} vf_token=${TOKEN}`));
  }
  const t1 = performance.now();
  await qemu.exit();
  const t2 = performance.now();
  const total = names.length;
  const res = (ms: number): SizeResult => ({ vfsPerPf: n, totalVfs: total, ms, usPerVf: (ms * 1000) / total });
  return { open: res(t1 - t0), close: res(t2 - t1) };
}

/**
 * Enable and disable all VFs of the host `cycles` times on one kernel (the log ring fills after
 * about five cycles); returns ms per cycle, so early and late cycles can be compared.
 */
export async function cycleOnOneKernel(n: number, cycles: number, pfs = PFS): Promise<number[]> {
  const { sh } = await bootBench(pfs);
  const out: number[] = [];
  for (let c = 0; c < cycles; c++) {
    const t0 = performance.now();
    await setAll(sh, n, pfs);
    await setAll(sh, 0, pfs);
    out.push(performance.now() - t0);
  }
  return out;
}

/** Find every VF the way tools do: readlink each PF's virtfn<N> links (after enabling n per PF). */
export async function readVirtfns(n: number, pfs = PFS): Promise<SizeResult> {
  const { sh } = await bootBench(pfs);
  await setAll(sh, n, pfs);
  const t0 = performance.now();
  let count = 0;
  for (let i = 0; i < pfs; i++) count += (await vfNames(sh, pfBdf(i), n)).length;
  const ms = performance.now() - t0;
  return { vfsPerPf: n, totalVfs: count, ms, usPerVf: (ms * 1000) / count };
}

/** GET_DEVICE_FD("<VF> vf_token=…") + close, repeated; returns cycles per second. */
export async function tokenCycles(n: number, iterations: number, pfs = PFS): Promise<number> {
  const { sh } = await bootBench(pfs);
  await setAll(sh, n, pfs);
  const pf = pfBdf(0);
  const c = await sh.open("/dev/vfio/vfio", O_RDWR);
  const pg = await sh.open(`/dev/vfio/${await groupNumber(sh, pf)}`, O_RDWR);
  await sh.ioctl(pg, VFIO.GROUP_SET_CONTAINER, intBuf(c));
  await sh.ioctl(c, VFIO.SET_IOMMU, 3);
  await sh.close(await sh.ioctl(pg, VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(`${pf} vf_token=${TOKEN}`)));
  const [vf] = await vfNames(sh, pf, 1);
  const g = await sh.open(`/dev/vfio/${await groupNumber(sh, vf!)}`, O_RDWR);
  await sh.ioctl(g, VFIO.GROUP_SET_CONTAINER, intBuf(c));
  const arg = deviceNameBuf(`${vf} vf_token=${TOKEN}`);
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) await sh.close(await sh.ioctl(g, VFIO.GROUP_GET_DEVICE_FD, arg));
  const ms = performance.now() - t0;
  return (iterations * 1000) / ms;
}

async function groupNumber(sh: ModelProcess, bdf: string): Promise<number> {
  const t = await sh.readlink(`/sys/bus/pci/devices/${bdf}/iommu_group`);
  return Number(t.slice(t.lastIndexOf("/") + 1));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
