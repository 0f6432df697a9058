/** `vfioctl lab …`: the real-kernel lab (lab/cli.ts), for the same options as `npm run lab --`. */
import { EXIT, type Command } from "../context.js";
import { register } from "./index.js";

const HELP = `usage: vfioctl lab [--report | --probe | --raw [SEQ…] | --rediff] [--kernel 6.1|6.12] [--jobs N] [--no-prepare] [SCENARIO…]

Boot Debian's Linux 6.1 and 6.12 in QEMU (TCG, no network) with an emulated Intel 82576 SR-IOV
NIC, run scenarios there through the real Linux syscalls backend, and compare every operation
with the kernel model. Prepares QEMU, the kernels and an initramfs on first use (root; cached
under /var/cache/vfioctl-lab). See docs/lab.md.

  --report       (default) scenarios/*.yaml × {6.1, 6.12}: match/diff, boot and run times;
                 exit 1 on any difference
  --probe        boot each kernel and prove node, the real backend and ioctl work on /dev/vfio
  --raw [SEQ…]   record raw transcripts (every kmsg record) into lab/transcripts/raw/
  --rediff       compare the last saved transcripts again, without booting
  --kernel K     only this kernel (repeatable)
  --jobs N       guests at once (default 2)

Examples:
  sudo vfioctl lab --report
  sudo vfioctl lab --kernel 6.12 scenarios/token-decision-table.yaml
`;

register({
  name: "lab",
  summary: "real-kernel lab: scenarios on Linux 6.1 and 6.12 in QEMU, compared with the model",
  help: HELP,
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
