/** `vfioctl bind BDF DRIVER` and `vfioctl unbind BDF`. */
import { bindDriver, unbindDriver, type BindResult } from "../../lib/bind.js";
import { VfioctlError } from "../../lib/errors.js";
import { EXIT, type Context } from "../context.js";
import { register } from "./index.js";
import { guarded, parseArgs } from "./common.js";
import type { OptionSpec } from "../spec.js";

const REMOVE_VFS: OptionSpec = { name: "remove-vfs", type: "boolean", description: "allow changing the driver of a PF whose VFs go away with its driver" };
const BIND_OPTIONS: OptionSpec[] = [
  { name: "release-captured", type: "boolean", description: "allow moving a captured VF of a vfio-pci PF to another driver" },
  REMOVE_VFS,
];
const UNBIND_OPTIONS: OptionSpec[] = [
  { name: "clear-override", type: "boolean", description: "also clear driver_override, so the next probe may pick any driver" },
  REMOVE_VFS,
];

function report(ctx: Context, r: BindResult, verb: string, command: "bind" | "unbind"): number {
  for (const w of r.warnings) ctx.io.err(w);
  if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: `vfioctl.${command}/1`, ...r }, null, 2));
  else if (!r.changed) ctx.io.out(`${r.bdf}: already ${r.driver ? `bound to ${r.driver}` : "unbound"}; nothing changed`);
  else {
    ctx.io.out(`${r.bdf}: ${verb} (was ${r.previous.driver ?? "unbound"}${r.previous.driverOverride ? `, override ${r.previous.driverOverride}` : ""})`);
    for (const l of r.log) ctx.io.out(`  kernel: ${l}`);
  }
  return EXIT.OK;
}

register({
  name: "bind",
  summary: "bind a device to a driver (driver_override + unbind + drivers_probe, verified, rolled back)",
  positionals: [{ name: "bdf", complete: "bdf" }, { name: "driver", complete: "driver" }],
  description: `Set driver_override to DRIVER, unbind the current driver, write the BDF to drivers_probe and
read the driver link back. If the device did not end up on DRIVER, the previous override and
driver are restored. Binds Linux would refuse are refused first, with the reason:
  - vfio-pci on a PF with VFs enabled ("Cannot bind to PF with SR-IOV enabled", EBUSY)
  - vfio-pci on a denylisted device (EINVAL) or on a device without an IOMMU group (EINVAL)
  - a VF of a vfio-pci PF to any other driver: its driver_override "vfio-pci" was captured
    when the PF created it; --release-captured replaces it. The PF's userspace driver then
    can no longer trust that VF, and the kernel warns "VF … bound to driver … while PF bound
    to driver vfio-pci".
  - a device held open through /dev/vfio (the unbind would block until it is released)`,
  options: BIND_OPTIONS,
  exits: { 0: "bound (or already bound)", 3: "refused or failed (errno shown)", 4: "a write stayed blocked past --timeout" },
  examples: ["vfioctl --sim bind 0000:05:00.0 vfio-pci", "vfioctl bind 0000:01:10.0 igbvf --release-captured"],
  async run(ctx, args) {
    return guarded(ctx, "bind", async () => {
      const p = parseArgs(args, BIND_OPTIONS);
      if (p.positional.length !== 2) throw new VfioctlError("BAD_INPUT", `bind: expected <bdf> <driver>, got ${p.positional.length} argument${p.positional.length === 1 ? "" : "s"}`);
      const r = await bindDriver(ctx.sys, p.positional[0]!, p.positional[1]!, { releaseCaptured: p.flags.has("release-captured"), removeVfs: p.flags.has("remove-vfs"), timeoutMs: ctx.opts.timeoutMs });
      return report(ctx, r, `bound to ${r.driver}`, "bind");
    });
  },
});

register({
  name: "unbind",
  summary: "unbind a device from its driver (refuses when that would block or remove VFs)",
  positionals: [{ name: "bdf", complete: "bdf" }],
  description: `Write the BDF to its driver's unbind file and check the driver link is gone. Refused first
when Linux would block (a process holds the device's /dev/vfio group) or when a PF's VFs would
go away with the driver (unless --remove-vfs).`,
  options: UNBIND_OPTIONS,
  exits: { 0: "unbound (or already unbound)", 3: "refused or failed (errno shown)", 4: "a write stayed blocked past --timeout" },
  examples: ["vfioctl --sim unbind 0000:05:00.0", "vfioctl unbind 0000:af:00.0 --remove-vfs"],
  async run(ctx, args) {
    return guarded(ctx, "unbind", async () => {
      const p = parseArgs(args, UNBIND_OPTIONS);
      if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `unbind: expected one BDF, got ${p.positional.length}`);
      const r = await unbindDriver(ctx.sys, p.positional[0]!, { clearOverride: p.flags.has("clear-override"), removeVfs: p.flags.has("remove-vfs"), timeoutMs: ctx.opts.timeoutMs });
      return report(ctx, r, "unbound", "unbind");
    });
  },
});
