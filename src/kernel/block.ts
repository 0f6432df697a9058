/**
 * Block devices of the model's storage driver (nvme), as far as a tool deciding whether the host
 * uses a device can see them: nvme's probe adds controller nvmeN with namespace nvmeNn1
 * (/sys/bus/pci/devices/BDF/nvme/nvmeN/nvmeNn1, /sys/block/nvmeNn1 with its `dev` 259:M), its
 * remove deletes them. What the host does with them (partitions, mounts, swap, dm/md holders) is
 * a model property set with {@link BlockCore.configure}; it shows in /sys/block/X/{dev,holders,
 * partitions}, /proc/PID/mountinfo and /proc/swaps.
 *
 * @example
 * ```ts
 * const k = await bootKernel();
 * k.disks.configure("nvme0n1", { partitions: 2, mounts: { nvme0n1p1: "/boot" }, swap: ["nvme0n1p2"] });
 * ```
 */
import type { Kernel } from "./kernel.js";
import type { PciDev } from "./pci/pci.js";

/** What the host does with a namespace (model-only). */
export interface BlockConfig {
  /** partitions nvmeNn1p1 … (default none) */
  partitions?: number;
  /** block device name (the namespace or a partition) → mount point */
  mounts?: Record<string, string>;
  /** block device names used as swap */
  swap?: string[];
  /** block device name → holders (dm-0, md0) */
  holders?: Record<string, string[]>;
}

export interface BlockDisk {
  ctrl: string;
  name: string;
  /** minor of the namespace; partitions follow it */
  minor: number;
  dev: PciDev;
}

/** drivers/nvme/host/core.c: the block major nvme gets ("blkext" 259 on Linux, dynamic in principle) */
export const NVME_BLOCK_MAJOR = 259;

export class BlockCore {
  private readonly ctrls = new Map<string, number>();
  private readonly live = new Map<string, BlockDisk>();
  private readonly config = new Map<string, BlockConfig>();
  private nextMinor = 0;

  constructor(k: Kernel) {
    k.drivers.registerNotifier((_k, _t, ev, dev) => {
      if (ev === "bound_driver" && dev.driver?.name === "nvme") this.add(dev);
      else if (ev === "unbind_driver" || ev === "del_device") for (const [n, d] of this.live) if (d.dev === dev) this.live.delete(n);
    });
  }

  private add(dev: PciDev): void {
    let i = this.ctrls.get(dev.name);
    if (i === undefined) {
      i = this.ctrls.size;
      this.ctrls.set(dev.name, i);
    }
    const name = `nvme${i}n1`;
    this.live.set(name, { ctrl: `nvme${i}`, name, minor: this.nextMinor, dev });
    this.nextMinor += 16;
  }

  configure(disk: string, cfg: BlockConfig): void {
    this.config.set(disk, { ...cfg });
  }

  configOf(disk: string): BlockConfig {
    return this.config.get(disk) ?? {};
  }

  disks(): BlockDisk[] {
    return [...this.live.values()].sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
  }

  get(name: string): BlockDisk | undefined {
    return this.live.get(name);
  }

  partitions(d: BlockDisk): string[] {
    return Array.from({ length: this.configOf(d.name).partitions ?? 0 }, (_, i) => `${d.name}p${i + 1}`);
  }

  /** major:minor of a disk or one of its partitions */
  devOf(d: BlockDisk, part?: string): string {
    const i = part ? Number(part.slice(d.name.length + 1)) : 0;
    return `${NVME_BLOCK_MAJOR}:${d.minor + i}`;
  }

  holdersOf(d: BlockDisk, name: string): string[] {
    return this.configOf(d.name).holders?.[name] ?? [];
  }

  /** fs/proc_namespace.c show_mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS - FSTYPE SOURCE SUPER" */
  procMountinfo(): string {
    const rows = ["21 1 0:20 / / rw,relatime shared:1 - tmpfs none rw", "22 21 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw", "23 21 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:3 - sysfs sysfs rw"];
    let id = 30;
    for (const d of this.disks()) {
      for (const [name, mp] of Object.entries(this.configOf(d.name).mounts ?? {})) {
        if (name !== d.name && !this.partitions(d).includes(name)) continue;
        rows.push(`${id++} 21 ${this.devOf(d, name === d.name ? undefined : name)} / ${mp.replace(/ /g, "\\040")} rw,relatime shared:${id} - ext4 /dev/${name} rw`);
      }
    }
    return rows.join("\n") + "\n";
  }

  /** mm/swapfile.c swap_show */
  procSwaps(): string {
    const rows = ["Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"];
    for (const d of this.disks()) for (const n of this.configOf(d.name).swap ?? []) if (n === d.name || this.partitions(d).includes(n)) rows.push(`/dev/${n}`.padEnd(40) + "partition\t1048572\t\t0\t\t-2");
    return rows.join("\n") + "\n";
  }
}
