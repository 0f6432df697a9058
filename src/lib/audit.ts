/**
 * A trust audit of the host's vfio-pci SR-IOV state: VFs of vfio-pci PFs on host drivers, VFs
 * whose captured driver_override was cleared, PFs with VFs while vfio-pci's enable_sriov is off,
 * IOMMU groups that are not viable, VFs of vfio-pci PFs behind a vfio cdev that does not check
 * the VF token (or cannot take one), and which processes hold /dev/vfio nodes. Read-only.
 *
 * @example
 * ```ts
 * import { bootKernel, audit } from "vfioctl";
 * const r = await audit((await bootKernel()).spawn("sh"));
 * r.findings.length; // 0 on the default host
 * ```
 */
import type { Syscalls } from "../sys/syscalls.js";
import type { VfioHolder } from "./holders.js";
import { inventory, type InventoryDevice } from "./inventory.js";
import { DMA_SAFE_DRIVERS, isVfioDriver } from "./sysfs.js";

export interface Finding {
  id: "vf-on-host-driver" | "vf-override-cleared" | "vfs-while-enable-sriov-off" | "group-not-viable" | "old-token-user" | "token-drift" | "cdev-token-bypass" | "cdev-token-unusable";
  severity: "warning" | "error";
  subject: string;
  message: string;
  fix: string;
}

export interface AuditReport {
  findings: Finding[];
  /** every process fd pointing at a vfio node, with the device(s) of the group */
  holders: (VfioHolder & { devices: string[] })[];
}

export async function audit(sys: Syscalls): Promise<AuditReport> {
  const inv = await inventory(sys);
  const findings: Finding[] = [];
  const all: InventoryDevice[] = [...inv.pfs.flatMap((p) => [p, ...p.vfDevices]), ...inv.others, ...inv.orphans];
  for (const pf of inv.pfs) {
    if (pf.driver !== "vfio-pci") continue;
    for (const vf of pf.vfDevices) {
      if (vf.driver !== null && !isVfioDriver(vf.driver)) {
        findings.push({
          id: "vf-on-host-driver",
          severity: "error",
          subject: vf.bdf,
          message: `VF ${vf.bdf} is bound to the host driver ${vf.driver} while its PF ${pf.bdf} is owned by vfio-pci: the PF's userspace driver shares trust with a VF the host now drives (the kernel warned "VF ${vf.bdf} bound to driver ${vf.driver} while PF bound to driver vfio-pci")`,
          fix: `vfioctl bind ${vf.bdf} vfio-pci (restores the override), or stop the PF's userspace driver if the VF must stay on the host`,
        });
      }
      if (vf.driverOverride !== "vfio-pci") {
        findings.push({
          id: "vf-override-cleared",
          severity: "warning",
          subject: vf.bdf,
          message: `VF ${vf.bdf} of vfio-pci PF ${pf.bdf} has driver_override ${vf.driverOverride === null ? "cleared" : JSON.stringify(vf.driverOverride)} instead of the captured "vfio-pci": any matching host driver may take it at the next probe`,
          fix: `echo vfio-pci > /sys/bus/pci/devices/${vf.bdf}/driver_override (or vfioctl bind ${vf.bdf} vfio-pci)`,
        });
      }
    }
    // the vfio cdev of this kernel and the VF token (src/kernel/versions.ts rows)
    const cdevVfs = pf.vfDevices.filter((vf) => vf.cdevNode !== null);
    if (cdevVfs.length && (inv.kernel.cdevToken === "bypass" || inv.kernel.cdevToken === "e2big")) {
      const modes = await Promise.all(cdevVfs.map(async (vf) => sys.stat(vf.cdevNode!).then((st) => st.mode & 0o777, () => null)));
      const open = modes.some((m) => m !== null && (m & 0o007) !== 0) ? "a node readable and writable by every local user" : modes.some((m) => m !== null && (m & 0o070) !== 0) ? "nodes open to their group" : "root (mode 0600), or whoever udev rules or a container runtime give the nodes to";
      const list = cdevVfs.slice(0, 4).map((vf) => `${vf.bdf} (${vf.cdevNode})`).join(", ") + (cdevVfs.length > 4 ? ` and ${cdevVfs.length - 4} more` : "");
      if (inv.kernel.cdevToken === "bypass") {
        findings.push({
          id: "cdev-token-bypass",
          severity: "error",
          subject: pf.bdf,
          message: `this kernel does not check the VF token on VFIO_DEVICE_BIND_IOMMUFD (${inv.kernel.ident?.osrelease ?? "this kernel"}; fixed upstream by 86624ba3b522): any local user with access to the cdev node opens a VF of vfio-pci PF ${pf.bdf} without the token — ${list}; access: ${open}. Once open, such a VF also counts as a token user, so the PF's driver must present the current token to reopen the PF`,
          fix: "move to a kernel with the token check (6.15.10+, 6.16.1+, 6.17+; 6.18.3+ / 6.19+ to pass the token through the cdev), or keep every /dev/vfio/devices node of these VFs root-only and out of containers; the group path (/dev/vfio/<group>) still checks the token",
        });
      } else {
        findings.push({
          id: "cdev-token-unusable",
          severity: "warning",
          subject: pf.bdf,
          message: `this kernel checks the VF token on VFIO_DEVICE_BIND_IOMMUFD but cannot be given one (the bind copies only 16 bytes of the 24-byte struct: E2BIG, fixed by 2f03f21fe751 in 6.18.3 / 6.19): the VFs of vfio-pci PF ${pf.bdf} cannot be opened through the vfio cdev at all — ${list}. QEMU's iommufd backend and DPDK's cdev mode fail (EACCES without a token, E2BIG with one)`,
          fix: "give these VFs to their users through the group path (/dev/vfio/<group>, vf_token= in the match string), or move to 6.18.3+ / 6.19+",
        });
      }
    }
    if ((pf.sriov?.numVfs ?? pf.vfDevices.length) > 0 && inv.vfioPci.enableSriov !== true) {
      findings.push({
        id: "vfs-while-enable-sriov-off",
        severity: "warning",
        subject: pf.bdf,
        message: `PF ${pf.bdf} on vfio-pci has ${pf.sriov?.numVfs ?? pf.vfDevices.length} VFs while vfio-pci's enable_sriov is ${inv.vfioPci.enableSriov === null ? "absent" : "N"}: sriov_numvfs now fails ENOENT for every change, including 0, and logs nothing`,
        fix: `echo Y > /sys/module/vfio_pci/parameters/enable_sriov to manage the VFs, or unbind the PF (vfioctl unbind ${pf.bdf} --remove-vfs) to remove them`,
      });
    }
  }
  // group viability: a group with a vfio-bound device and a device on a DMA-owning host driver
  const groups = new Map<number, InventoryDevice[]>();
  for (const d of all) if (d.iommuGroup !== null) groups.set(d.iommuGroup, [...(groups.get(d.iommuGroup) ?? []), d]);
  for (const [g, devs] of [...groups].sort((a, b) => a[0] - b[0])) {
    const onVfio = devs.filter((d) => isVfioDriver(d.driver));
    const owners = devs.filter((d) => d.driver !== null && !isVfioDriver(d.driver) && !DMA_SAFE_DRIVERS.has(d.driver));
    if (onVfio.length && owners.length) {
      findings.push({
        id: "group-not-viable",
        severity: "error",
        subject: `iommu_group ${g}`,
        message: `IOMMU group ${g} is not viable: ${onVfio.map((d) => d.bdf).join(", ")} on vfio-pci, but ${owners.map((d) => `${d.bdf} on ${d.driver}`).join(", ")}; opening /dev/vfio/${g} works but attaching it to a container fails EPERM`,
        fix: `bind every device of the group to vfio-pci or unbind it: ${owners.map((d) => `vfioctl bind ${d.bdf} vfio-pci`).join("; ")}`,
      });
    }
  }
  const holders = inv.holders.map((h) => ({ ...h, devices: h.group === null ? [] : (groups.get(h.group) ?? []).map((d) => d.bdf) }));
  return { findings, holders };
}
