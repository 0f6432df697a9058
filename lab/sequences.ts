/**
 * The raw sequences recorded in a lab guest (one fresh boot each). They are written as plain
 * code over {@link Recorder} so that every step is one system call (or one modprobe) with the
 * kernel log records it produced.
 */
import { readdirSync, readlinkSync, readFileSync } from "node:fs";
import { O_RDWR } from "../src/sys/syscalls.js";
import {
  VFIO,
  VFIO_TYPE1v2_IOMMU,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  deviceNameBuf,
  featureBuf,
  featureSetVfToken,
  groupStatusBuf,
  intBuf,
  reqEventfdBuf,
} from "../src/uapi/vfio.js";
import type { Recorder } from "./record.js";

export const PF = "0000:01:00.0";
const DEV = (bdf: string) => `/sys/bus/pci/devices/${bdf}`;
const P = DEV(PF);
export const U1 = "2ab74924-c335-45f4-9b16-8569e5b08258";
export const U2 = "11111111-2222-3333-4444-555555555555";
export const U3 = "0b6c8cf6-8a3c-4a5f-8a2e-93f0a1d2c3e4";
export const U4 = "deadbeef-0000-4000-8000-000000000004";

const base = (s: string | undefined) => (s ? s.slice(s.lastIndexOf("/") + 1) : undefined);

/** Every PCI device of the guest: ids, class, IOMMU group, driver (read with node:fs, one op). */
export function pciList(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const bdf of readdirSync("/sys/bus/pci/devices").sort()) {
    const d = DEV(bdf);
    const rd = (a: string) => {
      try {
        return readFileSync(`${d}/${a}`, "utf8").trim();
      } catch {
        return undefined;
      }
    };
    const rl = (a: string) => {
      try {
        return base(readlinkSync(`${d}/${a}`));
      } catch {
        return undefined;
      }
    };
    out.push({
      bdf,
      vendor: rd("vendor"),
      device: rd("device"),
      subsystem_vendor: rd("subsystem_vendor"),
      subsystem_device: rd("subsystem_device"),
      class: rd("class"),
      revision: rd("revision"),
      iommu_group: rl("iommu_group"),
      driver: rl("driver") ?? null,
      sriov_totalvfs: rd("sriov_totalvfs"),
      sriov_offset: rd("sriov_offset"),
      sriov_stride: rd("sriov_stride"),
      sriov_vf_device: rd("sriov_vf_device"),
      physfn: rl("physfn"),
    });
  }
  return out;
}

async function lspci(r: Recorder, what: string): Promise<void> {
  await r.op("lspci", `lspci-like list (${what})`, async () => pciList());
}

/** The VFs' BDFs as the PF's virtfnN links give them. */
async function vfs(r: Recorder): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < 8; i++) {
    try {
      out.push(base(await r.sys.readlink(`${P}/virtfn${i}`))!);
    } catch {
      break;
    }
  }
  return out;
}

async function vfState(r: Recorder): Promise<string[]> {
  const list = await vfs(r);
  for (let i = 0; i < list.length; i++) {
    const vf = list[i]!;
    await r.readlink(`${P}/virtfn${i}`);
    await r.read(`${DEV(vf)}/driver_override`);
    await r.readlink(`${DEV(vf)}/driver`);
    await r.readlink(`${DEV(vf)}/iommu_group`);
    await r.readlink(`${DEV(vf)}/physfn`);
  }
  await r.ls("/dev/vfio");
  return list;
}

/** igb binds the PF at load; unbind it, driver_override=vfio-pci, drivers_probe. */
async function bindPfVfio(r: Recorder, viaIgb = true): Promise<void> {
  if (viaIgb) {
    await r.modprobe("igb");
    await r.readlink(`${P}/driver`);
    await r.write("/sys/bus/pci/drivers/igb/unbind", PF);
  }
  await r.write(`${P}/driver_override`, "vfio-pci");
  await r.write("/sys/bus/pci/drivers_probe", PF);
  await r.readlink(`${P}/driver`);
  await r.readlink(`${P}/iommu_group`);
  await r.ls("/dev/vfio");
}

export async function seqBoot(r: Recorder, bootLog: import("../src/sys/kmsg.js").KmsgRecord[]): Promise<void> {
  r.note("kernel log since boot (all records, unfiltered)");
  r.t.ops.push({ i: r.t.ops.length, op: "log", desc: "boot log", outcome: { ok: true }, ms: 0, kmsg: bootLog });
  r.note("PCI devices after boot (no driver for the igb loaded)");
  await lspci(r, "boot");
  await r.read("/proc/cmdline");
  await r.ls("/sys/kernel/iommu_groups");
  await r.ls("/dev/vfio");
  await r.read("/proc/modules");
  for (const a of ["sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_vf_device", "sriov_drivers_autoprobe", "vendor", "device", "class", "driver_override", "reset_method"]) await r.read(`${P}/${a}`);
  await r.ls(P);
}

export async function seqA(r: Recorder): Promise<void> {
  r.note("a) vfio-pci enable_sriov=1; PF taken from igb; 2 VFs");
  await r.modprobe("vfio-pci", "enable_sriov=1");
  await r.read("/sys/module/vfio_pci/parameters/enable_sriov");
  await bindPfVfio(r);
  r.note("enable 2 VFs");
  await r.write(`${P}/sriov_numvfs`, "2");
  await r.read(`${P}/sriov_numvfs`);
  await vfState(r);
  await lspci(r, "2 VFs on vfio-pci");
  r.note("invalid and repeated counts");
  await r.write(`${P}/sriov_numvfs`, "3");
  await r.write(`${P}/sriov_numvfs`, "9");
  await r.write(`${P}/sriov_numvfs`, "abc");
  await r.write(`${P}/sriov_numvfs`, "-1");
  await r.write(`${P}/sriov_numvfs`, "2");
  await r.write(`${P}/sriov_numvfs`, "2\n");
  await r.write(`${P}/sriov_numvfs`, " 2");
  await r.read(`${P}/sriov_numvfs`);
  r.note("disable");
  await r.write(`${P}/sriov_numvfs`, "0");
  await r.read(`${P}/sriov_numvfs`);
  await r.exists(DEV("0000:01:10.0"));
  await r.ls("/dev/vfio");
  await r.write(`${P}/sriov_numvfs`, "0");
  r.note("enable 8 (all), then 0");
  await r.write(`${P}/sriov_numvfs`, "8");
  await vfState(r);
  await r.write(`${P}/sriov_numvfs`, "0");
  r.note("unbind the PF from vfio-pci and clear driver_override");
  await r.write("/sys/bus/pci/drivers/vfio-pci/unbind", PF);
  await r.write(`${P}/driver_override`, "\n");
  await r.read(`${P}/driver_override`);
}

export async function seqB1(r: Recorder): Promise<void> {
  r.note("b1) vfio-pci with enable_sriov=0 (the default)");
  await r.modprobe("vfio-pci");
  await r.read("/sys/module/vfio_pci/parameters/enable_sriov");
  await bindPfVfio(r, false);
  await r.write(`${P}/sriov_numvfs`, "2");
  await r.read(`${P}/sriov_numvfs`);
  await r.write(`${P}/sriov_numvfs`, "0");
  r.note("enable_sriov=1 at run time through /sys/module");
  await r.write("/sys/module/vfio_pci/parameters/enable_sriov", "1");
  await r.read("/sys/module/vfio_pci/parameters/enable_sriov");
  await r.write(`${P}/sriov_numvfs`, "2");
  await r.read(`${P}/sriov_numvfs`);
  await vfState(r);
  r.note("enable_sriov=0 again while 2 VFs are enabled");
  await r.write("/sys/module/vfio_pci/parameters/enable_sriov", "0");
  await r.write(`${P}/sriov_numvfs`, "0");
  await r.read(`${P}/sriov_numvfs`);
  await r.write(`${P}/sriov_numvfs`, "2");
}

export async function seqB2(r: Recorder): Promise<void> {
  r.note("b2) igb bound to the PF, igbvf not loaded");
  await r.modprobe("igb");
  await r.readlink(`${P}/driver`);
  await r.write(`${P}/sriov_numvfs`, "2");
  await r.read(`${P}/sriov_numvfs`);
  await vfState(r);
  await lspci(r, "2 VFs under igb, igbvf not loaded");
  await r.write(`${P}/sriov_numvfs`, "3");
  await r.write(`${P}/sriov_numvfs`, "2");
  await r.write(`${P}/sriov_numvfs`, "0");
  r.note("igbvf loaded, VFs enabled again");
  await r.modprobe("igbvf");
  await r.write(`${P}/sriov_numvfs`, "2");
  await vfState(r);
  await r.write(`${P}/sriov_numvfs`, "0");
  r.note("sriov_drivers_autoprobe=0");
  await r.write(`${P}/sriov_drivers_autoprobe`, "0");
  await r.write(`${P}/sriov_numvfs`, "1");
  await vfState(r);
  await r.write(`${P}/sriov_numvfs`, "0");
  await r.write(`${P}/sriov_drivers_autoprobe`, "1");
  r.note("unbind igb while VFs are enabled");
  await r.write(`${P}/sriov_numvfs`, "2");
  await r.write("/sys/bus/pci/drivers/igb/unbind", PF);
  await r.read(`${P}/sriov_numvfs`);
  await r.exists(DEV("0000:01:10.0"));
}

export async function seqB3(r: Recorder): Promise<void> {
  r.note("b3) no driver bound to the PF");
  await r.readlink(`${P}/driver`);
  await r.write(`${P}/sriov_numvfs`, "2");
  await r.write(`${P}/sriov_numvfs`, "0");
  await r.read(`${P}/sriov_numvfs`);
  r.note("no driver, vfio-pci loaded but not bound");
  await r.modprobe("vfio-pci", "enable_sriov=1");
  await r.write(`${P}/sriov_numvfs`, "1");
}

export async function seqC(r: Recorder): Promise<void> {
  r.note("c) pci-pf-stub enables a VF, is unbound, then vfio-pci cannot take the PF");
  await r.modprobe("pci-pf-stub");
  await r.modprobe("vfio-pci", "enable_sriov=1");
  await r.write(`${P}/driver_override`, "pci-pf-stub");
  await r.write("/sys/bus/pci/drivers_probe", PF);
  await r.readlink(`${P}/driver`);
  await r.write(`${P}/sriov_numvfs`, "1");
  await r.read(`${P}/sriov_numvfs`);
  await vfState(r);
  r.note("unbind pci-pf-stub with the VF enabled");
  await r.write("/sys/bus/pci/drivers/pci-pf-stub/unbind", PF);
  await r.readlink(`${P}/driver`);
  await r.read(`${P}/sriov_numvfs`);
  await r.exists(DEV("0000:01:10.0"));
  r.note("vfio-pci on the PF: driver_override + drivers_probe, then bind");
  await r.write(`${P}/driver_override`, "vfio-pci");
  await r.write("/sys/bus/pci/drivers_probe", PF);
  await r.readlink(`${P}/driver`);
  await r.write("/sys/bus/pci/drivers/vfio-pci/bind", PF);
  await r.readlink(`${P}/driver`);
  r.note("sriov_numvfs with no driver bound but SR-IOV left enabled");
  await r.write(`${P}/sriov_numvfs`, "0");
  await r.write(`${P}/sriov_numvfs`, "1");
  await r.read(`${P}/sriov_numvfs`);
  r.note("pci-pf-stub again, disable, then vfio-pci binds");
  await r.write(`${P}/driver_override`, "pci-pf-stub");
  await r.write("/sys/bus/pci/drivers_probe", PF);
  await r.readlink(`${P}/driver`);
  await r.write(`${P}/sriov_numvfs`, "0");
  await r.write("/sys/bus/pci/drivers/pci-pf-stub/unbind", PF);
  await r.write(`${P}/driver_override`, "vfio-pci");
  await r.write("/sys/bus/pci/drivers_probe", PF);
  await r.readlink(`${P}/driver`);
}

function statusOut(b: Buffer) {
  return { argsz: b.readUInt32LE(0), flags: b.readUInt32LE(4) };
}

async function groupOf(r: Recorder, bdf: string): Promise<string> {
  return base(await r.sys.readlink(`${DEV(bdf)}/iommu_group`))!;
}

/** container + group + SET_CONTAINER (+ SET_IOMMU when asked); returns [container, group]. */
async function openGroup(r: Recorder, bdf: string, container: number | undefined, setIommu: boolean): Promise<number | undefined> {
  const g = await groupOf(r, bdf);
  const gfd = await r.open(`/dev/vfio/${g}`, O_RDWR);
  if (gfd === undefined) return undefined;
  await r.ioctl(gfd, `group ${g} (${bdf})`, VFIO.GROUP_GET_STATUS, groupStatusBuf(), "{argsz=8}", statusOut);
  if (container !== undefined) {
    await r.ioctl(gfd, `group ${g}`, VFIO.GROUP_SET_CONTAINER, intBuf(container), `&${container}`);
    if (setIommu) await r.ioctl(container, "container", VFIO.SET_IOMMU, VFIO_TYPE1v2_IOMMU, "VFIO_TYPE1v2_IOMMU");
    await r.ioctl(gfd, `group ${g}`, VFIO.GROUP_GET_STATUS, groupStatusBuf(), "{argsz=8}", statusOut);
  }
  return gfd;
}

function getFd(r: Recorder, gfd: number, name: string): Promise<number | undefined> {
  return r.ioctl(gfd, "group", VFIO.GROUP_GET_DEVICE_FD, deviceNameBuf(name), JSON.stringify(name));
}

async function setupVfioPf(r: Recorder, n: number): Promise<string[]> {
  await r.modprobe("vfio-pci", "enable_sriov=1");
  await bindPfVfio(r, false);
  await r.write(`${P}/sriov_numvfs`, String(n));
  return vfState(r);
}

export async function seqD(r: Recorder): Promise<void> {
  r.note("d) VF token: setup (vfio-pci, enable_sriov=1, 2 VFs)");
  const [vf0, vf1] = await setupVfioPf(r, 2);
  r.note("container, PF group, SET_CONTAINER, SET_IOMMU(TYPE1v2), GET_DEVICE_FD(PF vf_token=U1)");
  const c = await r.open("/dev/vfio/vfio", O_RDWR);
  await r.ioctl(c!, "container", VFIO.GET_API_VERSION, 0, "0");
  await r.ioctl(c!, "container", VFIO.CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU, "VFIO_TYPE1v2_IOMMU");
  const gpf = await openGroup(r, PF, c, true);
  const pf = await getFd(r, gpf!, `${PF} vf_token=${U1}`);
  r.note("VF 0 without token, with another token, with U1");
  const g0 = await openGroup(r, vf0!, c, false);
  await getFd(r, g0!, vf0!);
  await getFd(r, g0!, `${vf0} vf_token=${U2}`);
  const v0 = await getFd(r, g0!, `${vf0} vf_token=${U1}`);
  r.note("token syntax variants on VF 1");
  const g1 = await openGroup(r, vf1!, c, false);
  for (const name of [`${vf1} vf_token=${U1.toUpperCase()}`, `${vf1} vf_token=not-a-uuid`, `${vf1}  vf_token=${U1}`, `${vf1} vf_token=${U1} extra`, `${vf1} token=${U1}`, `${vf1}vf_token=${U1}`]) {
    const fd = await getFd(r, g1!, name);
    if (fd !== undefined) await r.close(fd, "VF 1 device");
  }
  r.note("PF open again while a VF is open: without token, wrong token, right token");
  await getFd(r, gpf!, PF);
  await getFd(r, gpf!, `${PF} vf_token=${U2}`);
  const pf2 = await getFd(r, gpf!, `${PF} vf_token=${U1}`);
  if (pf2 !== undefined) await r.close(pf2, "second PF device fd");
  r.note("DEVICE_FEATURE on the PF: PROBE, GET, SET token U3 (while VF 0 is open)");
  const F = VFIO_DEVICE_FEATURE_PCI_VF_TOKEN;
  await r.ioctl(pf!, "PF device", VFIO.DEVICE_FEATURE, featureBuf(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | F, 8), "PROBE|SET|PCI_VF_TOKEN argsz=8");
  await r.ioctl(pf!, "PF device", VFIO.DEVICE_FEATURE, featureBuf(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | F, 8), "PROBE|GET|PCI_VF_TOKEN argsz=8");
  await r.ioctl(pf!, "PF device", VFIO.DEVICE_FEATURE, featureBuf(VFIO_DEVICE_FEATURE_GET | F, 24), "GET|PCI_VF_TOKEN argsz=24");
  await r.ioctl(pf!, "PF device", VFIO.DEVICE_FEATURE, featureBuf(VFIO_DEVICE_FEATURE_SET | F, 16), "SET|PCI_VF_TOKEN argsz=16");
  await r.ioctl(pf!, "PF device", VFIO.DEVICE_FEATURE, featureSetVfToken(U3), `SET|PCI_VF_TOKEN ${U3}`);
  await r.ioctl(v0!, "VF 0 device", VFIO.DEVICE_FEATURE, featureSetVfToken(U3), `SET|PCI_VF_TOKEN ${U3} on a VF`);
  await getFd(r, g1!, `${vf1} vf_token=${U1}`);
  const v1 = await getFd(r, g1!, `${vf1} vf_token=${U3}`);
  r.note("close everything");
  for (const [fd, w] of [[v1, "VF 1 device"], [v0, "VF 0 device"], [pf, "PF device"], [g1, "VF 1 group"], [g0, "VF 0 group"], [gpf, "PF group"], [c, "container"]] as const) {
    if (fd !== undefined) await r.close(fd, w);
  }
  r.note("GET_DEVICE_FD(PF vf_token=U4) on a group with no container, then a VF with U4 and U3");
  const gpf2 = await openGroup(r, PF, undefined, false);
  await getFd(r, gpf2!, `${PF} vf_token=${U4}`);
  const c2 = await r.open("/dev/vfio/vfio", O_RDWR);
  const g0b = await openGroup(r, vf0!, c2, true);
  await getFd(r, g0b!, `${vf0} vf_token=${U3}`);
  const v0b = await getFd(r, g0b!, `${vf0} vf_token=${U4}`);
  r.note("PF with no token while a VF is open (token users > 0)");
  await r.ioctl(gpf2!, "PF group", VFIO.GROUP_SET_CONTAINER, intBuf(c2!), `&${c2}`);
  await getFd(r, gpf2!, PF);
  const pf3 = await getFd(r, gpf2!, `${PF} vf_token=${U4}`);
  r.note("VF 1 bound elsewhere: clear driver_override, unbind from vfio-pci, bind igbvf");
  await r.write(`${DEV(vf1!)}/driver_override`, "\n");
  await r.write("/sys/bus/pci/drivers/vfio-pci/unbind", vf1!);
  await r.modprobe("igbvf");
  await r.readlink(`${DEV(vf1!)}/driver`);
  await r.write("/sys/bus/pci/drivers/igbvf/bind", vf1!);
  await r.readlink(`${DEV(vf1!)}/driver`);
  r.note("PF without the token after the VF went to igbvf (VF 0 still open)");
  if (pf3 !== undefined) await r.close(pf3, "PF device");
  await getFd(r, gpf2!, PF);
  r.note("close all and disable");
  if (v0b !== undefined) await r.close(v0b, "VF 0 device");
  for (const [fd, w] of [[g0b, "VF 0 group"], [gpf2, "PF group"], [c2, "container"]] as const) if (fd !== undefined) await r.close(fd, w);
  await r.write(`${P}/sriov_numvfs`, "0");
  await r.read(`${P}/sriov_numvfs`);
}

export async function seqE(r: Recorder): Promise<void> {
  r.note("e) blocking removal: setup (vfio-pci, enable_sriov=1, 2 VFs)");
  const [vf0] = await setupVfioPf(r, 2);
  const c = await r.open("/dev/vfio/vfio", O_RDWR);
  const gpf = await openGroup(r, PF, c, true);
  const pf = await getFd(r, gpf!, `${PF} vf_token=${U1}`);
  const g0 = await openGroup(r, vf0!, c, false);
  const v0 = await getFd(r, g0!, `${vf0} vf_token=${U1}`);
  r.note("hold VF 0's device fd; write 0 to sriov_numvfs in the threadpool");
  const w = await r.startWrite(`${P}/sriov_numvfs`, "0");
  await r.settle(w, 2000);
  r.note("while the removal of VF 0 is blocked: open VF 0 again, VF 1, the PF");
  const again = await getFd(r, g0!, `${vf0} vf_token=${U1}`);
  if (again !== undefined) await r.close(again, "VF 0 device, second fd");
  await r.settle(w, 2000);
  await r.read(`${P}/sriov_numvfs`, 1000);
  await r.read(`${P}/sriov_totalvfs`, 1000);
  await r.exists(DEV(vf0!));
  await r.ls("/dev/vfio");
  r.note("close VF 0's device fd: the write completes");
  await r.close(v0!, "VF 0 device");
  let done = await r.settle(w, 5000);
  if (!done) {
    r.note("still blocked: close VF 0's group fd");
    await r.close(g0!, "VF 0 group");
    done = await r.settle(w, 5000);
  } else {
    await r.close(g0!, "VF 0 group");
  }
  await r.read(`${P}/sriov_numvfs`);
  await r.ls("/dev/vfio");
  r.note("again with a device request eventfd registered on the VF (VFIO_PCI_REQ_IRQ_INDEX)");
  await r.write(`${P}/sriov_numvfs`, "2");
  const g0c = await openGroup(r, vf0!, c, false);
  const v0c = await getFd(r, g0c!, `${vf0} vf_token=${U1}`);
  const efd = await r.op("eventfd", "eventfd(0, EFD_NONBLOCK)", () => r.sys.eventfd(0, 0o4000), (fd) => ({ ret: fd }));
  await r.ioctl(v0c!, "VF 0 device", VFIO.DEVICE_SET_IRQS, reqEventfdBuf(efd!), `REQ eventfd ${efd}`);
  const w2 = await r.startWrite(`${P}/sriov_numvfs`, "0");
  await r.settle(w2, 2000);
  await r.op("read", `read eventfd ${efd}`, async () => (await r.sys.read(efd!, 8)).readBigUInt64LE(0).toString());
  await r.close(v0c!, "VF 0 device");
  await r.settle(w2, 5000);
  await r.close(g0c!, "VF 0 group");
  r.note("unbind the PF from vfio-pci while a VF is held open");
  await r.write(`${P}/sriov_numvfs`, "1");
  const g0d = await openGroup(r, vf0!, c, false);
  const v0d = await getFd(r, g0d!, `${vf0} vf_token=${U1}`);
  await r.close(pf!, "PF device");
  await r.close(gpf!, "PF group");
  const w3 = await r.startWrite("/sys/bus/pci/drivers/vfio-pci/unbind", PF);
  await r.settle(w3, 2000);
  await r.close(v0d!, "VF 0 device");
  await r.settle(w3, 5000);
  await r.readlink(`${P}/driver`);
  await r.read(`${P}/sriov_numvfs`);
  await r.close(g0d!, "VF 0 group");
  await r.close(c!, "container");
}

export const SEQUENCES: Record<string, (r: Recorder) => Promise<void>> = {
  "a-vfio-pci": seqA,
  "b1-enable-sriov-0": seqB1,
  "b2-igb": seqB2,
  "b3-no-driver": seqB3,
  "c-pci-pf-stub": seqC,
  "d-vf-token": seqD,
  "e-blocking-remove": seqE,
};
