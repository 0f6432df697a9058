/** `vfioctl lab …`: the real-kernel lab (lab/cli.ts), for the same options as `npm run lab --`. */
import { EXIT, type Command } from "../context.js";
import { register } from "./index.js";
import type { CommandBody, OptionSpec } from "../spec.js";

// parsed by lab/cli.ts: listed here for help and completion
const OPTIONS: OptionSpec[] = [
  { name: "report", type: "boolean", description: "(default) scenarios/*.yaml x {6.1, 6.12}: match/diff, boot and run times; exit 1 on any difference" },
  { name: "probe", type: "boolean", description: "boot each kernel and prove node, the real backend and ioctl work on /dev/vfio" },
  { name: "raw", type: "boolean", value: "SEQ...", description: "record raw transcripts (every kmsg record) into lab/transcripts/raw/" },
  { name: "rediff", type: "boolean", description: "compare the last saved transcripts again, without booting" },
  { name: "kernel", type: "string", multiple: true, value: "K", description: "only this kernel (repeatable)", complete: { values: ["6.1", "6.12"] } },
  { name: "jobs", type: "string", value: "N", description: "guests at once (default 2)", complete: "none" },
  { name: "no-prepare", type: "boolean", description: "do not prepare QEMU, the kernels and the initramfs" },
];

const SPEC: CommandBody = {
  usage: [`lab [--report | --probe | --raw [SEQ…] | --rediff] [--kernel 6.1|6.12] [--jobs N] [--no-prepare] [SCENARIO…]`],
  description: `Boot Debian's Linux 6.1 and 6.12 in QEMU (TCG, no network) with an emulated Intel 82576 SR-IOV
NIC, run scenarios there through the real Linux syscalls backend, and compare every operation
with the kernel model. Prepares QEMU, the kernels and an initramfs on first use (root; cached
under /var/cache/vfioctl-lab). See docs/lab.md.`,
  positionals: [{ name: "scenario", complete: "file", optional: true, variadic: true }],
  options: OPTIONS,
  exits: { 0: "every run matched the model", 1: "a difference (--report)" },
  examples: [`sudo vfioctl lab --report`, `sudo vfioctl lab --kernel 6.12 scenarios/token-decision-table.yaml`],
};

register({
  name: "lab",
  summary: "real-kernel lab: scenarios on Linux 6.1 and 6.12 in QEMU, compared with the model",
  ...SPEC,
  async run(ctx, args) {
    try {
      const { labMain } = await import("../../../lab/cli.js");
      return await labMain(args);
    } catch (e) {
      ctx.io.err(`vfioctl lab: ${(e as Error).message}`);
      return EXIT.USAGE;
    }
  },
});
