/**
 * The changes a command makes, as data: each step is one write(2) to a sysfs file or one ioctl,
 * in the order the command makes them. `--dry-run` prints them and changes nothing; on a copied
 * tree (`--root DIR`) they are refused before the first one is made, naming the file.
 *
 * @example
 * ```ts
 * import { stepText } from "vfioctl";
 * stepText({ op: "write", path: "/sys/bus/pci/drivers_probe", data: "0000:01:00.0" });
 * // 'write "0000:01:00.0" to /sys/bus/pci/drivers_probe'
 * ```
 */
import type { Syscalls } from "../sys/syscalls.js";
import { VfioctlError } from "./errors.js";

export interface WriteStep {
  op: "write";
  path: string;
  /** the bytes written (never a token: those steps are ioctls with `<token>` in their args) */
  data: string;
  /** why, in a few words */
  note?: string;
}

export interface IoctlStep {
  op: "ioctl";
  /** the file the ioctl is made on (a /dev node, or the device fd named by its BDF) */
  path: string;
  ioctl: string;
  /** the arguments as text; a token is shown as <token> */
  args: string;
  note?: string;
}

export interface OpenStep {
  op: "open";
  path: string;
  /** what the open passes (e.g. `O_RDWR`, or `VFIO_GROUP_GET_DEVICE_FD "BDF vf_token=<token>"`) */
  args: string;
  note?: string;
}

export type OpStep = WriteStep | IoctlStep | OpenStep;

/** The bytes as a shell user would see them: quoted, with a newline shown as \n. */
const bytes = (s: string) => JSON.stringify(s);

/** One line per step: `write "vfio-pci" to /sys/.../driver_override`, `ioctl /dev/vfio/5 VFIO_GROUP_SET_CONTAINER (fd of /dev/vfio/vfio)`. */
export function stepText(s: OpStep): string {
  const note = s.note ? `   # ${s.note}` : "";
  if (s.op === "write") return `write ${bytes(s.data)} to ${s.path}${note}`;
  if (s.op === "open") return `open ${s.path} ${s.args}${note}`;
  return `ioctl ${s.path} ${s.ioctl}${s.args ? ` (${s.args})` : ""}${note}`;
}

/** The directory a real backend runs against (`--root DIR`), or undefined on a host or the model. */
export function copiedTree(sys: Syscalls): string | undefined {
  return sys.backend === "linux" ? sys.root : undefined;
}

/**
 * A copied tree is for reading: refuse a command that would change it, before any step, naming
 * the tree and the first file it would write (exit 2, nothing changed).
 */
export function refuseOnCopiedTree(sys: Syscalls, command: string, steps: readonly OpStep[]): void {
  const root = copiedTree(sys);
  if (root === undefined || steps.length === 0) return;
  const first = steps[0]!;
  const what = first.op === "write" ? `write ${root}${first.path}` : first.op === "open" ? `open ${root}${first.path}` : `make ${first.ioctl} on ${root}${first.path}`;
  throw new VfioctlError("READ_ONLY_TREE", `--root ${root} is a copied tree, read-only: ${command} would ${what}; run without --root on the host itself`, {
    subject: root,
    fix: "run the command on the host itself (with sudo), or use --dry-run to see what it would do",
    data: { steps: steps.map(stepText) },
  });
}
