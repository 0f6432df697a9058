/**
 * Write a model's /sys tree (and its /dev/vfio nodes, and optionally /proc/<pid>/{comm,fd}) into
 * a real directory: attribute files with the contents a read returns now, symbolic links with
 * the kernel's relative targets, directories as directories. Character devices become empty
 * regular files (only their existence matters to readers). Write-only attributes become empty
 * files. The result can be read by the real backend (`LinuxSyscalls({ root })`, `--root DIR`)
 * or by other tools whose /sys paths are redirected to it — for benchmarks and backend tests.
 *
 * @example
 * ```ts
 * import { bootKernel } from "vfioctl";
 * import { materialize } from "./materialize.js";
 * const k = await bootKernel();
 * await materialize(k.spawn("materialize"), "/tmp/host-root"); // /tmp/host-root/sys/bus/pci/...
 * ```
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { readText } from "../sys/fsutil.js";
import type { Syscalls } from "../sys/syscalls.js";

export interface MaterializeOptions {
  /**
   * trees to copy (default: /sys, /dev/vfio, /dev/iommu and the kernel's names in
   * /proc/sys/kernel/osrelease and /proc/version); add "/proc" for holder scans
   */
  trees?: string[];
  /** skip paths for which this returns true */
  skip?: (p: string) => boolean;
}

export interface MaterializeStats {
  dirs: number;
  files: number;
  links: number;
  /** attributes whose read failed (written as empty files) */
  unreadable: number;
}

/** Copy the model's trees under `dest` (created if missing). */
export async function materialize(sys: Syscalls, dest: string, opts: MaterializeOptions = {}): Promise<MaterializeStats> {
  const stats: MaterializeStats = { dirs: 0, files: 0, links: 0, unreadable: 0 };
  const trees = opts.trees ?? ["/sys", "/dev/vfio", "/dev/iommu", "/proc/sys/kernel/osrelease", "/proc/version"];
  const walk = async (p: string): Promise<void> => {
    if (opts.skip?.(p)) return;
    const out = path.join(dest, p);
    const st = await sys.lstat(p);
    if (st.kind === "link") {
      fs.mkdirSync(path.dirname(out), { recursive: true });
      fs.symlinkSync(await sys.readlink(p), out);
      stats.links++;
      return;
    }
    if (st.kind === "dir") {
      fs.mkdirSync(out, { recursive: true });
      stats.dirs++;
      for (const name of await sys.readdir(p)) await walk(`${p === "/" ? "" : p}/${name}`);
      return;
    }
    let text = "";
    if (st.kind === "file" && st.mode & 0o444) {
      try {
        text = await readText(sys, p);
      } catch {
        stats.unreadable++;
      }
    }
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, text, { mode: st.kind === "char" ? 0o600 : (st.mode & 0o777) | 0o200 });
    stats.files++;
  };
  for (const t of trees) {
    try {
      await sys.lstat(t);
    } catch {
      continue;
    }
    if (t === "/proc") {
      // only numeric pids: /proc/self would point at the materializing process
      fs.mkdirSync(path.join(dest, "proc"), { recursive: true });
      for (const n of await sys.readdir("/proc")) if (/^\d+$/.test(n)) await walk(`/proc/${n}`);
    } else await walk(t);
  }
  return stats;
}
