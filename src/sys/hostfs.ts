/**
 * The host's own regular files (vfioctl's config, token store, journal, boot units), apart from
 * the kernel's files that the {@link Syscalls} seam answers.
 *
 * On a real host they are the real paths. On the simulated host (`--sim --state DIR`) every
 * absolute host path lives under `DIR/root`, so nothing the simulated host writes reaches the
 * real file system; without `--state` the simulated host gets a fresh temporary root that is
 * removed when the command ends. Relative paths name the caller's own input files (a config
 * or token file in the working directory) and are not mapped; an absolute input path is the
 * simulated host's file when it exists there, else the caller's (`input`). Writes always go
 * to the simulated root.
 *
 * @example
 * ```ts
 * import { hostFiles } from "vfioctl";
 * const f = hostFiles("/tmp/state/root");
 * f.real("/etc/vfioctl/host.yaml"); // "/tmp/state/root/etc/vfioctl/host.yaml"
 * ```
 */
import { existsSync } from "node:fs";
import * as nodePath from "node:path";

export interface HostFiles {
  /** "/" on a real host, the simulated host's root folder otherwise */
  readonly root: string;
  /** true when `root` is not the real root (the simulated host) */
  readonly simulated: boolean;
  /** The real path of a host path (absolute paths are mapped under `root`). */
  real(p: string): string;
  /**
   * The real path of a file the caller gives as input (a token file, a config): on the simulated
   * host, the simulated root's file when it exists there, else the caller's own file.
   */
  input(p: string): string;
  /** How to show a host path to the user (the host path, plus where it really is when simulated). */
  show(p: string): string;
}

export function hostFiles(root = "/"): HostFiles {
  const r = nodePath.resolve(root);
  const simulated = r !== "/";
  return {
    root: r,
    simulated,
    real(p: string): string {
      if (!simulated || !p.startsWith("/")) return p;
      return nodePath.join(r, nodePath.normalize(p));
    },
    input(p: string): string {
      if (!simulated || !p.startsWith("/")) return p;
      const m = nodePath.join(r, nodePath.normalize(p));
      return existsSync(m) ? m : p;
    },
    show(p: string): string {
      return simulated && p.startsWith("/") ? `${p} (simulated host: ${nodePath.join(r, nodePath.normalize(p))})` : p;
    },
  };
}
