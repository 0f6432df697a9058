/**
 * drivers/vfio/pci/vfio_pci.c vfio_pci_dev_in_denylist: devices vfio-pci refuses to probe (EINVAL)
 * unless disable_denylist=Y. One list for the model's vfio-pci and the library's `explain`/`bind`.
 */

/** Intel QAT C3xxx, C62x and DH895xCC, each PF and VF (5.9+). */
export const DENYLIST: ReadonlyArray<readonly [number, number]> = [
  [0x8086, 0x19e2], [0x8086, 0x19e3], [0x8086, 0x37c8], [0x8086, 0x37c9], [0x8086, 0x0435], [0x8086, 0x0443],
];

/**
 * Intel DSA and IAX on Sapphire Rapids (0x0b25, 0x0cfe), added by upstream 95feb3160eef (v6.10).
 * The 6.12 profile has them; whether Debian's 6.1.y carries the stable backport is unverified.
 */
export const DENYLIST_V6_10: ReadonlyArray<readonly [number, number]> = [[0x8086, 0x0b25], [0x8086, 0x0cfe]];
