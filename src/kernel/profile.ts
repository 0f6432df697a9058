/**
 * Kernel profiles: where Linux 6.1 (Debian 12) and 6.12 (Debian 13) differ in what userspace sees.
 * The behaviour rules are the same in both for everything vfioctl models; wording and a few
 * locking details differ. The lab checks these against the real kernels.
 */
export type KernelVersion = "6.1" | "6.12";

export interface KernelProfile {
  readonly version: KernelVersion;
  /**
   * drivers/base/dd.c call_driver_probe: the probe-failed line. 6.1: pr_warn without a device;
   * 6.12: dev_err on the device (the 2024 dd.c change replaced pr_warn with dev_err), so level 3.
   */
  probeFailed(drv: string, dev: string, err: number): { text: string; onDevice: boolean; level: number };
  /** drivers/iommu/iommu.c: "Removing from iommu group N" when a device leaves its group (6.1 only). */
  readonly logsIommuRemove: boolean;
  /**
   * drivers/pci/iov.c sriov_numvfs_show takes device_lock (35ff867b7657). The spec expected the
   * 2024 revert to be in 6.12; the lab showed Debian's 6.12.117 still blocks the read behind a
   * blocked disable, so both profiles take the lock.
   */
  readonly numvfsShowTakesLock: boolean;
  /** drivers/pci/probe.c pci_setup_device: the enumeration line for a new device. */
  enumLine(vendor: number, device: number, headerType: number, cls: number, pcie: boolean): string;
  /** sizeof(struct vfio_device_info) copied back (20 in both 6.1 and 6.12 headers). */
  readonly deviceInfoSize: number;
  /**
   * vfio_unregister_group_dev hides the device from GET_DEVICE_FD name lookups at once (6.12:
   * ENODEV). On 6.1 the lab opened a second fd of a VF whose removal was already waiting for
   * userspace; the removal then waits for that fd too.
   */
  readonly unregisterHidesDevice: boolean;
}

const hex4 = (n: number) => n.toString(16).padStart(4, "0");
const hex6 = (n: number) => n.toString(16).padStart(6, "0");

export const PROFILES: Record<KernelVersion, KernelProfile> = {
  "6.1": {
    version: "6.1",
    probeFailed: (drv, dev, err) => ({ text: `${drv}: probe of ${dev} failed with error ${err}`, onDevice: false, level: 4 }),
    logsIommuRemove: true,
    numvfsShowTakesLock: true,
    enumLine: (v, d, ht, cls) => `[${hex4(v)}:${hex4(d)}] type ${ht.toString(16).padStart(2, "0")} class 0x${hex6(cls)}`,
    deviceInfoSize: 20,
    unregisterHidesDevice: false,
  },
  "6.12": {
    version: "6.12",
    probeFailed: (drv, dev, err) => ({
      text: `${drv} ${dev}: probe with driver ${drv} failed with error ${err}`,
      onDevice: true,
      level: 3,
    }),
    logsIommuRemove: false,
    numvfsShowTakesLock: true,
    enumLine: (v, d, ht, cls, pcie) =>
      `[${hex4(v)}:${hex4(d)}] type ${ht.toString(16).padStart(2, "0")} class 0x${hex6(cls)}${pcie ? " PCIe Endpoint" : " conventional PCI endpoint"}`,
    deviceInfoSize: 20,
    unregisterHidesDevice: true,
  },
};

export function profileOf(v: string): KernelProfile {
  const p = PROFILES[v as KernelVersion];
  if (!p) throw new Error(`kernel profile: expected one of ${Object.keys(PROFILES).join(", ")}, got ${JSON.stringify(v)}`);
  return p;
}
