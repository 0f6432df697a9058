/**
 * drivers/pci/iov.c: SR-IOV enable/disable, VF creation and removal, the sriov_* sysfs
 * attributes and pci_sriov_configure_simple (used by pci-pf-stub).
 */
import { ERRNO } from "../../sys/errno.js";
import type { Kernel, Task } from "../kernel.js";
import { KERN_ERR, KERN_INFO, KERN_WARNING } from "../printk.js";
import { formatBdf, virtfnRid } from "./bdf.js";
import { PciDev } from "./pci.js";
import { ro, rw } from "../fs/vfs.js";
import type { DevAttr } from "./pci-sysfs.js";

/** lib/kstrtox.c kstrtou16(buf, 0): negative errno or the value. */
export function kstrtou16(buf: string): number {
  const v = kstrtoull(buf, 0);
  if (v < 0) return v;
  if (v > 0xffff) return -ERRNO.ERANGE;
  return v;
}

/** lib/kstrtox.c _kstrtoull with base auto-detection (0x → 16, 0 → 8); one trailing "\n" allowed. */
export function kstrtoull(buf: string, base0: number): number {
  let s = buf;
  const nul = s.indexOf("\0");
  if (nul >= 0) s = s.slice(0, nul);
  if (s[0] === "+") s = s.slice(1);
  let base = base0;
  if (base === 0) {
    if (s[0] === "0") {
      if ((s[1] === "x" || s[1] === "X") && /[0-9a-fA-F]/.test(s[2] ?? "")) base = 16;
      else base = 8;
    } else base = 10;
  }
  if (base === 16 && s[0] === "0" && (s[1] === "x" || s[1] === "X")) s = s.slice(2);
  let i = 0;
  let val = 0n;
  let overflow = false;
  for (; i < s.length; i++) {
    const c = s[i]!.toLowerCase();
    const d = c >= "0" && c <= "9" ? c.charCodeAt(0) - 48 : c >= "a" && c <= "f" ? c.charCodeAt(0) - 87 : 99;
    if (d >= base) break;
    val = val * BigInt(base) + BigInt(d);
    if (val > 0xffffffffffffffffn) overflow = true;
  }
  if (overflow) return -ERRNO.ERANGE;
  if (i === 0) return -ERRNO.EINVAL;
  let rest = s.slice(i);
  if (rest[0] === "\n") rest = rest.slice(1);
  if (rest.length) return -ERRNO.EINVAL;
  return val > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(val);
}

/** lib/kstrtox.c kstrtobool: 1/y/Y/t/T/on → true, 0/n/N/f/F/off → false, else EINVAL (returned as null). */
export function kstrtobool(buf: string): boolean | null {
  const c = buf[0];
  switch (c) {
    case "y": case "Y": case "t": case "T": case "1":
      return true;
    case "n": case "N": case "f": case "F": case "0":
      return false;
    case "o": case "O":
      if (buf[1] === "n" || buf[1] === "N") return true;
      if (buf[1] === "f" || buf[1] === "F") return false;
      return null;
    default:
      return null;
  }
}

/** pci_sriov_get_totalvfs: the driver-set limit if any, else TotalVFs. */
export function sriovGetTotalVFs(pf: PciDev): number {
  return pf.sriov ? pf.sriov.driverMaxVFs : 0;
}

/** iov.c sriov_numvfs_store. May block (device_lock; a vfio VF held open during disable). */
export async function sriovNumvfsStore(k: Kernel, task: Task, pf: PciDev, buf: string, count: number): Promise<number> {
  const n = kstrtou16(buf);
  // `if (kstrtou16(buf, 0, &num_vfs) < 0) return -EINVAL;`: since ≈5.15 every parse failure,
  // including a value over 65535 (kstrtou16's ERANGE), is reported as EINVAL.
  if (n < 0) return -ERRNO.EINVAL;
  if (n > sriovGetTotalVFs(pf)) return -ERRNO.ERANGE;
  return k.withDeviceLock(task, pf, async () => {
    const iov = pf.sriov!;
    if (n === iov.numVFs) return count;
    const drv = pf.driver;
    if (!drv) {
      k.log.dev(KERN_INFO, pf, "no driver bound to device; cannot configure SR-IOV");
      return -ERRNO.ENOENT;
    }
    if (!drv.sriovConfigure) {
      k.log.dev(KERN_INFO, pf, "driver does not support SR-IOV configuration via sysfs");
      return -ERRNO.ENOENT;
    }
    if (n === 0) {
      const r = await drv.sriovConfigure(k, task, pf, 0);
      return r < 0 ? r : count;
    }
    if (iov.numVFs) {
      k.log.dev(KERN_WARNING, pf, `${iov.numVFs} VFs already enabled. Disable before enabling ${n} VFs`);
      return -ERRNO.EBUSY;
    }
    const r = await drv.sriovConfigure(k, task, pf, n);
    if (r < 0) return r;
    if (r !== n) k.log.dev(KERN_WARNING, pf, `${n} VFs requested; only ${r} enabled`);
    return count;
  });
}

/** iov.c sriov_numvfs_show: 6.1 takes device_lock (blocks behind a blocked disable); 6.12 does not. */
export async function sriovNumvfsShow(k: Kernel, task: Task, pf: PciDev): Promise<string> {
  if (k.profile.numvfsShowTakesLock) {
    return k.withDeviceLock(task, pf, () => `${pf.sriov!.numVFs}\n`);
  }
  return `${pf.sriov!.numVFs}\n`;
}

/** pci_enable_sriov → sriov_enable. Returns 0 or a negative errno. */
export async function pciEnableSriov(k: Kernel, task: Task, pf: PciDev, n: number): Promise<number> {
  const iov = pf.sriov;
  if (!iov) return -ERRNO.ENOSYS;
  if (n === 0) return 0;
  if (iov.numVFs) return -ERRNO.EINVAL;
  if (iov.initialVFs > iov.totalVFs) return -ERRNO.EIO;
  if (n > iov.initialVFs) return -ERRNO.EINVAL;
  const last = virtfnRid(pf.bus, pf.devfn, iov.offset, iov.stride, n - 1);
  if (last.bus > iov.busEnd) {
    const hx = (b: number) => b.toString(16).padStart(2, "0");
    k.log.dev(KERN_ERR, pf, `can't enable ${n} VFs (bus ${hx(last.bus)} out of range of [bus ${hx(pf.bus)}-${hx(iov.busEnd)}])`);
    return -ERRNO.ENOMEM;
  }
  for (let i = 0; i < n; i++) await pciIovAddVirtfn(k, task, pf, i);
  iov.numVFs = n;
  return 0;
}

/** iov.c pci_iov_add_virtfn: create VF i, device_add (bus notifiers), links, then probe. */
export async function pciIovAddVirtfn(k: Kernel, task: Task, pf: PciDev, i: number): Promise<PciDev> {
  const iov = pf.sriov!;
  const rid = virtfnRid(pf.bus, pf.devfn, iov.offset, iov.stride, i);
  const vf = new PciDev(pf.domain, rid.bus, rid.devfn);
  vf.vendor = pf.vendor;
  vf.device = iov.vfDevice;
  vf.subsystemVendor = pf.subsystemVendor;
  vf.subsystemDevice = pf.subsystemDevice;
  vf.class = pf.class;
  vf.revision = pf.revision;
  vf.pcie = pf.pcie;
  vf.numaNode = pf.numaNode;
  vf.bars = iov.vfBars.slice();
  vf.barKinds = iov.vfBarKinds.slice();
  // a VF has no PM capability in the model (d3cold_allowed 0, no "pm" reset), the PF's AER
  // (the 82576's VFs have one: the lab), its ACPI companion if the host file names it
  vf.pmCap = false;
  vf.aer = pf.aer;
  vf.acpiNode = iov.vfAcpiNodes[i] ?? null;
  vf.irqPin = 0;
  vf.command = 0;
  vf.msiVectors = 0;
  vf.msixVectors = 3;
  vf.physfn = pf;
  vf.vfIndex = i;
  vf.sysfsDir = `${pf.sysfsDir.slice(0, pf.sysfsDir.lastIndexOf("/"))}/${vf.name}`;
  iov.vfs[i] = vf;
  k.pci.addDevice(task, vf);
  await k.pci.busAddDevice(task, vf);
  return vf;
}

/**
 * pci_disable_sriov → sriov_disable → sriov_del_vfs: VFs are removed in index order, VF0 first
 * (each may block). The spec said highest index first; the lab showed 6.1 logging
 * "Removing from iommu group" for VF0 before VF1, and VF1 still present while VF0 blocks.
 */
export async function pciDisableSriov(k: Kernel, task: Task, pf: PciDev): Promise<void> {
  const iov = pf.sriov;
  if (!iov || !iov.numVFs) return;
  const n = iov.numVFs;
  for (let i = 0; i < n; i++) {
    const vf = iov.vfs[i];
    // pci_iov_remove_virtfn: the virtfnN and physfn links go first (stopAndRemove clears
    // `present` before it may block), then the device.
    if (vf) await k.pci.stopAndRemove(task, vf);
  }
  iov.vfs.length = 0;
  iov.numVFs = 0;
}

/** iov.c pci_iov_remove: after a PF driver's remove. */
export function pciIovRemove(k: Kernel, dev: PciDev): void {
  const iov = dev.sriov;
  if (!iov) return;
  iov.driverMaxVFs = iov.totalVFs;
  if (iov.numVFs) k.log.dev(KERN_WARNING, dev, "driver left SR-IOV enabled after remove");
}

/** iov.c pci_sriov_configure_simple (pci-pf-stub's sriov_configure). */
export async function pciSriovConfigureSimple(k: Kernel, task: Task, dev: PciDev, nr: number): Promise<number> {
  if (!dev.isPhysfn) return -ERRNO.ENODEV;
  if (dev.sriov!.vfs.some((vf) => vf?.assigned)) {
    k.log.dev(KERN_WARNING, dev, "Cannot modify SR-IOV while VFs are assigned");
    return -ERRNO.EPERM;
  }
  if (nr === 0) {
    await pciDisableSriov(k, task, dev);
    return 0;
  }
  const rc = await pciEnableSriov(k, task, dev, nr);
  return rc < 0 ? rc : nr;
}

const str = (b: Buffer, c: number) => b.subarray(0, c).toString("latin1");

/**
 * iov.c sriov_pf_dev_attr_group (a PF: is_physfn) and sriov_vf_dev_attr_group (a VF). Modes as
 * DEVICE_ATTR_RO/RW give them: sriov_numvfs is 0644 (the lab reads 0644 on 6.1, 6.12 and 7.3;
 * the 0664 of the first sriov_numvfs, __ATTR(S_IWUSR|S_IWGRP), is long gone).
 */
export const SRIOV_ATTRS: readonly DevAttr[] = [
  { name: "sriov_totalvfs", visible: (d) => d.isPhysfn, make: (d) => ro(() => `${sriovGetTotalVFs(d)}\n`) },
  {
    name: "sriov_numvfs",
    visible: (d) => d.isPhysfn,
    make: (d, k) =>
      rw(
        (task) => sriovNumvfsShow(k, task, d),
        (task, b, c) => sriovNumvfsStore(k, task, d, str(b, c), c),
      ),
  },
  { name: "sriov_offset", visible: (d) => d.isPhysfn, make: (d) => ro(() => `${d.sriov!.offset}\n`) },
  { name: "sriov_stride", visible: (d) => d.isPhysfn, make: (d) => ro(() => `${d.sriov!.stride}\n`) },
  { name: "sriov_vf_device", visible: (d) => d.isPhysfn, make: (d) => ro(() => `${d.sriov!.vfDevice.toString(16)}\n`) },
  {
    name: "sriov_drivers_autoprobe",
    visible: (d) => d.isPhysfn,
    make: (d) =>
      rw(
        () => `${d.sriov!.driversAutoprobe ? 1 : 0}\n`,
        (_t, b, c) => {
          const v = kstrtobool(str(b, c));
          if (v === null) return -ERRNO.EINVAL;
          d.sriov!.driversAutoprobe = v;
          return c;
        },
      ),
  },
  // sriov_vf_total_msix_show: the PF driver's sriov_get_vf_total_msix, else 0 (no modelled driver has one)
  { name: "sriov_vf_total_msix", since: "sriovVfMsixSysfs", visible: (d) => d.isPhysfn, make: (d, k) => ro((task) => k.withDeviceLock(task, d, () => "0\n")) },
  {
    // sriov_vf_msix_count_store: kstrtoint; the PF driver's sriov_set_msix_vec_count (none modelled: EOPNOTSUPP); a bound VF: EBUSY
    name: "sriov_vf_msix_count",
    since: "sriovVfMsixSysfs",
    visible: (d) => d.isVirtfn,
    make: () => ({
      t: "attr",
      mode: 0o200,
      store: (_t, b, c) => {
        const v = str(b, c).trim();
        if (!/^(\+?\d+|0x[0-9a-f]+)$/i.test(v)) return -ERRNO.EINVAL; // kstrtoint failure or val < 0
        return -ERRNO.EOPNOTSUPP;
      },
    }),
  },
];
