/** `vfioctl show BDF`: one device in detail. */
import { resolveDevice } from "../../lib/resolve.js";
import { pciIds } from "../../lib/pciids.js";
import { VfioctlError } from "../../lib/errors.js";
import { inventory } from "../../lib/inventory.js";
import { requireDevice } from "../../lib/sysfs.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { guarded, parseArgs } from "./common.js";
import { renderDevice } from "./render.js";
import type { OptionSpec } from "../spec.js";

const OPTIONS: OptionSpec[] = [];

register({
  name: "show",
  summary: "one device in detail: driver, override, group, node, SR-IOV, token situation",
  positionals: [{ name: "device", complete: "bdf" }],
  description: `Everything vfioctl knows about one PCI device from sysfs, /dev/vfio and /proc, with its network
interfaces, NUMA node and pci.ids names. The device is a PCI address (0000:01:00.0 or 01:00.0)
or a network interface (eth0).`,
  options: OPTIONS,
  exits: { 0: "shown" },
  examples: ["vfioctl --sim show 0000:af:10.0", "vfioctl --sim show 01:00.0", "vfioctl show 0000:01:00.0 --json"],
  async run(ctx, args) {
    return guarded(ctx, "show", async () => {
      const p = parseArgs(args, OPTIONS);
      if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `show: expected one BDF, got ${p.positional.length}`);
      const bdf = await resolveDevice(ctx.sys, p.positional[0]);
      await requireDevice(ctx.sys, bdf);
      const inv = await inventory(ctx.sys, { numvfsTimeoutMs: Math.min(ctx.opts.timeoutMs, 1000), pciIds: pciIds(ctx.env) });
      const pf = inv.pfs.find((x) => x.bdf === bdf || x.vfDevices.some((v) => v.bdf === bdf)) ?? null;
      const d = [...inv.pfs.flatMap((x) => [x, ...x.vfDevices]), ...inv.others, ...inv.orphans].find((x) => x.bdf === bdf)!;
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.show/1", ...(d.role === "vf" ? { ...d, pf: pf ? { bdf: pf.bdf, driver: pf.driver } : null } : d) }, null, 2));
      else ctx.io.out(renderDevice(d, d.role === "vf" ? pf : null, inv));
      return EXIT.OK;
    });
  },
});
