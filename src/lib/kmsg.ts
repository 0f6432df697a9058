/**
 * What the kernel logged while an operation ran: /dev/kmsg is opened non-blocking and moved to
 * its end before the operation, then drained after it (the shared reader, src/sys/kmsg.ts).
 * Best effort: where /dev/kmsg cannot be read (no privilege, dmesg_restrict), the watch returns
 * no lines.
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
import { KmsgReader } from "../sys/kmsg.js";
import type { Syscalls } from "../sys/syscalls.js";

export interface KmsgWatch {
  /** lines logged since the watch started (message text only) */
  drain(): Promise<string[]>;
}

export async function watchKmsg(sys: Syscalls): Promise<KmsgWatch> {
  let r: KmsgReader;
  try {
    r = await KmsgReader.open(sys);
  } catch {
    return { drain: async () => [] };
  }
  return {
    async drain() {
      try {
        return (await r.drain(1000)).map((x) => x.text);
      } catch {
        return [];
      } finally {
        await r.close();
      }
    },
  };
}
