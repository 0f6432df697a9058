/** `vfioctl list`: the PF → VF tree of this host (or the model). */
import { inventory } from "../../lib/inventory.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { guarded, parseArgs } from "./common.js";
import { renderTree } from "./render.js";
import type { OptionSpec } from "../spec.js";

const OPTIONS: OptionSpec[] = [
  { name: "all", type: "boolean", description: "show every VF (default: the first 16 per PF)" },
  { name: "no-holders", type: "boolean", description: "skip the /proc scan for processes holding /dev/vfio nodes" },
];

register({
  name: "list",
  summary: "PF → VF tree: drivers, overrides, IOMMU groups, /dev/vfio nodes, VF counts, token situation",
  description: `First the running kernel: its version (as vfioctl's table of kernel changes resolves it),
whether it has /dev/iommu and the vfio cdev, and how the cdev path treats the VF token.
Then every SR-IOV PF with its VFs, then the other PCI devices: driver and driver_override,
IOMMU group and whether its /dev/vfio node exists (and who holds it), sriov_numvfs/totalvfs,
vfio-pci's enable_sriov, and for each device whether opening it needs a VF token:
  ●  required     (VF of a PF owned by vfio-pci: kernel 5.18+ rule)
  ○  not required (a token given anyway fails EINVAL)
  ?  cannot tell from sysfs`,
  options: OPTIONS,
  exits: { 0: "listed" },
  examples: ["vfioctl --sim list", "vfioctl list --json | jq '.pfs[] | {bdf, driver, vfs: [.vfDevices[].bdf]}'", "vfioctl --root /tmp/sys-copy list"],
  async run(ctx, args) {
    return guarded(ctx, "list", async () => {
      const p = parseArgs(args, OPTIONS);
      if (p.positional.length) throw new (await import("../../lib/errors.js")).VfioctlError("BAD_INPUT", `list: expected no arguments, got ${JSON.stringify(p.positional[0])}`);
      const inv = await inventory(ctx.sys, { numvfsTimeoutMs: Math.min(ctx.opts.timeoutMs, 1000), holders: !p.flags.has("no-holders") });
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.list/1", ...inv }, null, 2));
      else ctx.io.out(`kernel ${inv.kernel.summary}\n${renderTree(inv, { all: p.flags.has("all") })}`);
      return EXIT.OK;
    });
  },
});
