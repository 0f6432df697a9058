/** `vfioctl list`: the PF → VF tree of this host (or the model). */
import { filterInventory, inventory } from "../../lib/inventory.js";
import { resolveDevices } from "../../lib/resolve.js";
import { requireDevice } from "../../lib/sysfs.js";
import { pciIds } from "../../lib/pciids.js";
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
  positionals: [{ name: "device", complete: "bdf", optional: true, variadic: true }],
  description: `With devices (0000:01:00.0, 01:00.0 or an interface name such as eth0), only those: a PF with
all its VFs, a VF with its PF.

First the running kernel: its version (as vfioctl's table of kernel changes resolves it),
whether it has /dev/iommu and the vfio cdev, and how the cdev path treats the VF token.
Then every SR-IOV PF with its VFs, then the other PCI devices: driver and driver_override,
IOMMU group and whether its /dev/vfio node exists (and who holds it), sriov_numvfs/totalvfs,
vfio-pci's enable_sriov, and for each device whether opening it needs a VF token:
  ●  required     (VF of a PF owned by vfio-pci: kernel 5.18+ rule)
  ○  not required (a token given anyway fails EINVAL)
  ?  cannot tell from sysfs
Each device shows its network interfaces and NUMA node (after the driver) and, for PFs and
other devices, its vendor and device names from the system's pci.ids (/usr/share/misc/pci.ids,
/usr/share/hwdata/pci.ids or /usr/share/pci.ids; VFIOCTL_PCI_IDS=FILE names another, empty none).`,
  options: OPTIONS,
  exits: { 0: "listed" },
  examples: ["vfioctl --sim list", "vfioctl --sim list 01:00.0", "vfioctl list --json | jq '.pfs[] | {bdf, driver, vfs: [.vfDevices[].bdf]}'", "vfioctl --root /tmp/sys-copy list"],
  async run(ctx, args) {
    return guarded(ctx, "list", async () => {
      const p = parseArgs(args, OPTIONS);
      const only = await resolveDevices(ctx.sys, p.positional);
      for (const b of only) await requireDevice(ctx.sys, b);
      const all = await inventory(ctx.sys, { numvfsTimeoutMs: Math.min(ctx.opts.timeoutMs, 1000), holders: !p.flags.has("no-holders"), pciIds: pciIds(ctx.env) });
      const inv = only.length ? filterInventory(all, only) : all;
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.list/1", ...inv }, null, 2));
      else ctx.io.out(`kernel ${inv.kernel.summary}\n${renderTree(inv, { all: p.flags.has("all") })}`);
      return EXIT.OK;
    });
  },
});
