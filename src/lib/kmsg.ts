/**
 * What the kernel logged while an operation ran: /dev/kmsg is opened non-blocking and moved to
 * its end before the operation, then drained after it. Best effort: where /dev/kmsg cannot be
 * read (no privilege, dmesg_restrict), the watch returns no lines.
 *
 * @example
 * ```ts
 * import { bootKernel, watchKmsg } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * const w = await watchKmsg(sys);
 * // … write to sysfs …
 * const lines = await w.drain(); // ["vfio-pci 0000:01:00.0: Cannot bind to PF with SR-IOV enabled"]
 * ```
 */
import { O_NONBLOCK, O_RDONLY, SEEK_END, type Syscalls } from "../sys/syscalls.js";

export interface KmsgWatch {
  /** lines logged since the watch started (message text only) */
  drain(): Promise<string[]>;
}

export async function watchKmsg(sys: Syscalls): Promise<KmsgWatch> {
  let fd: number | null = null;
  try {
    fd = await sys.open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
    await sys.lseek(fd, 0, SEEK_END);
  } catch {
    if (fd !== null) await sys.close(fd).catch(() => {});
    return { drain: async () => [] };
  }
  const f = fd;
  return {
    async drain() {
      const out: string[] = [];
      try {
        for (let i = 0; i < 1000; i++) {
          const b = await sys.read(f, 8192);
          if (b.length === 0) break;
          const rec = b.toString("utf8");
          const semi = rec.indexOf(";");
          out.push((semi >= 0 ? rec.slice(semi + 1) : rec).split("\n")[0]!);
        }
      } catch {
        /* EAGAIN: no more records */
      }
      await sys.close(f).catch(() => {});
      return out;
    },
  };
}
