/**
 * Which reads Linux can block: the rule both backends follow to decide whether a small file may
 * be read in one call (`Syscalls.readFile`) — on the JS thread on a real host, in one model call
 * on the model — or must go through separate open/read/close calls that can stay pending.
 */

/**
 * sysfs attributes whose read can block for as long as Linux blocks a write: their show() takes
 * the device lock, which a blocked `sriov_numvfs`/`unbind`/`remove` write holds (`sriov_numvfs`:
 * iov.c since 5.5, still on Debian's 6.12; `driver_override`: pci-sysfs.c; `sriov_vf_total_msix`:
 * iov.c), or waits on the device itself (`config`, `vpd`, `rom`).
 */
export const BLOCKING_SYSFS_ATTRS: ReadonlySet<string> = new Set(["sriov_numvfs", "driver_override", "sriov_vf_total_msix", "config", "vpd", "rom"]);

/** The parts of sysfs whose attributes are plain show() callbacks (no trace pipes, no debugfs). */
const ATTRIBUTE_TREES = ["/sys/bus/", "/sys/devices/", "/sys/class/", "/sys/module/", "/sys/kernel/iommu_groups/"];

/** Each of {@link ATTRIBUTE_TREES} by the character after "/sys/" (no two share it). */
const TREE_AT_5: ReadonlyMap<number, string> = new Map(ATTRIBUTE_TREES.map((t) => [t.charCodeAt(5), t]));

/**
 * True when a read of the file at this (seam) path cannot block, so `read()` makes it on the JS
 * thread: a sysfs attribute under {@link ATTRIBUTE_TREES} that is not in
 * {@link BLOCKING_SYSFS_ATTRS}. Everything else (those attributes, /dev, /proc, pipes, any other
 * file) is read in the threadpool, where a read Linux blocks leaves the event loop free.
 */
export function readCannotBlock(path: string): boolean {
  // asked for every path of every batch: one tree compared (the one its sixth character names)
  // and the last name looked up, instead of every tree and every attribute compared
  const tree = path.startsWith("/sys/") ? TREE_AT_5.get(path.charCodeAt(5)) : undefined;
  if (tree === undefined || !path.startsWith(tree)) return false;
  return !BLOCKING_SYSFS_ATTRS.has(path.slice(path.lastIndexOf("/") + 1));
}
