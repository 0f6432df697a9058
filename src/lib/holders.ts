/**
 * Which processes hold /dev/vfio nodes, from /proc/<pid>/fd links (and /proc/<pid>/comm).
 * A process that holds `/dev/vfio/<N>` holds IOMMU group N: it may have any device of that
 * group open. Device fds themselves appear as `anon_inode:[vfio-device]` and do not say which
 * device they are, so they are counted but cannot be attributed.
 *
 * @example
 * ```ts
 * import { bootKernel, vfioHolders } from "vfioctl";
 * const k = await bootKernel();
 * const holders = await vfioHolders(k.spawn("sh"));
 * holders.filter((h) => h.group === 21); // who holds /dev/vfio/21
 * ```
 */
import { readAttr } from "../sys/fsutil.js";
import type { Syscalls } from "../sys/syscalls.js";

export interface VfioHolder {
  pid: number;
  comm: string;
  fd: number;
  /** what the fd links to: "/dev/vfio/21", "/dev/vfio/vfio", "anon_inode:[vfio-device]" … */
  target: string;
  /** the IOMMU group for /dev/vfio/<N> (and noiommu-<N>), else null */
  group: number | null;
}

const VFIO_TARGET = /^(?:\/dev\/vfio\/(?:noiommu-)?(\d+)|\/dev\/vfio\/vfio|\/dev\/vfio\/devices\/vfio\d+|anon_inode:\[vfio-device\])$/;

/** Scan /proc for fds that point at vfio files. Processes we may not inspect are skipped. */
export async function vfioHolders(sys: Syscalls, opts: { includeSelf?: boolean } = {}): Promise<VfioHolder[]> {
  let pids: string[];
  try {
    pids = (await sys.readdir("/proc")).filter((n) => /^\d+$/.test(n));
  } catch {
    return [];
  }
  const out: VfioHolder[] = [];
  for (const p of pids) {
    const pid = Number(p);
    if (!opts.includeSelf && pid === sys.pid) continue;
    let fds: string[];
    try {
      fds = await sys.readdir(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    let comm: string | null = null;
    for (const fd of fds) {
      if (!/^\d+$/.test(fd)) continue;
      let target: string;
      try {
        target = await sys.readlink(`/proc/${p}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = VFIO_TARGET.exec(target);
      if (!m) continue;
      if (comm === null) {
        try {
          comm = await readAttr(sys, `/proc/${p}/comm`);
        } catch {
          comm = "?";
        }
      }
      out.push({ pid, comm, fd: Number(fd), target, group: m[1] !== undefined ? Number(m[1]) : null });
    }
  }
  return out.sort((a, b) => a.pid - b.pid || a.fd - b.fd);
}

/** "pid 1234 (dpdk-testpmd)" lines for the holders of group `g`. */
export function holdersOf(holders: VfioHolder[], g: number | null): VfioHolder[] {
  return g === null ? [] : holders.filter((h) => h.group === g);
}

export const describeHolder = (h: VfioHolder): string => `pid ${h.pid} (${h.comm}) fd ${h.fd} → ${h.target}`;
