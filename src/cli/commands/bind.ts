/** `vfioctl bind DEVICE... DRIVER` and `vfioctl unbind DEVICE`. */
import { bindDriver, unbindDriver, type BindResult } from "../../lib/bind.js";
import { VfioctlError } from "../../lib/errors.js";
import { resolveDevice } from "../../lib/resolve.js";
import { listDrivers } from "../../lib/sysfs.js";
import { EXIT, type Context } from "../context.js";
import { register } from "./index.js";
import { guarded, parseArgs, reportError } from "./common.js";
import { OPT, type OptionSpec } from "../spec.js";

const REMOVE_VFS: OptionSpec = { name: "remove-vfs", type: "boolean", description: "allow changing the driver of a PF whose VFs go away with its driver" };
const FORCE: OptionSpec = {
  name: "force",
  type: "boolean",
  description: "take the device from its driver even when this host uses it (an interface up, with addresses or routes, or enslaved; a block device mounted, held by dm/md or swap): refused without it",
};
const BIND_OPTIONS: OptionSpec[] = [
  { name: "release-captured", type: "boolean", description: "allow moving a captured VF of a vfio-pci PF to another driver" },
  REMOVE_VFS,
  FORCE,
  { name: "clear-override", type: "boolean", description: "clear driver_override once the device is bound (it stays bound); on a device already bound to DRIVER, only clear it" },
  { ...OPT.dryRun, description: "print the writes, in order, and change nothing" },
];
const UNBIND_OPTIONS: OptionSpec[] = [
  { name: "clear-override", type: "boolean", description: "also clear driver_override, so the next probe may pick any driver" },
  REMOVE_VFS,
  { ...FORCE, description: "unbind even when this host uses the device (see vfioctl help bind)" },
  { ...OPT.dryRun, description: "print the writes, in order, and change nothing" },
];

function report(ctx: Context, r: BindResult, verb: string, command: "bind" | "unbind", json = ctx.opts.json): number {
  for (const w of r.warnings) ctx.io.err(w);
  if (json) ctx.io.out(JSON.stringify({ schema: `vfioctl.${command}/1`, ...r }, null, 2));
  else if (r.dryRun) {
    ctx.io.out(`${r.bdf}: dry run, nothing changed; would write:`);
    for (const l of r.plan) ctx.io.out(`  ${l}`);
  } else if (!r.changed) ctx.io.out(`${r.bdf}: already ${r.driver ? `bound to ${r.driver}` : "unbound"}; nothing changed`);
  else if (r.previous.driver === r.driver) ctx.io.out(`${r.bdf}: driver_override cleared; still bound to ${r.driver}`);
  else {
    ctx.io.out(`${r.bdf}: ${verb} (was ${r.previous.driver ?? "unbound"}${r.previous.driverOverride ? `, override ${r.previous.driverOverride}` : ""})`);
    for (const l of r.log) ctx.io.out(`  kernel: ${l}`);
  }
  return EXIT.OK;
}

const DEVICE_NAMES = `A device is a PCI address (0000:01:00.0, or 01:00.0 for domain 0000) or a network interface
(eth2).`;

register({
  name: "bind",
  summary: "bind a device to a driver (driver_override + unbind + drivers_probe, verified, rolled back)",
  usage: ["bind <device>... <driver> [--release-captured] [--remove-vfs] [--force] [--clear-override] [--dry-run]", "bind <driver> <device>... [options]"],
  positionals: [{ name: "device", complete: "bdf", variadic: true }, { name: "driver", complete: "driver" }],
  description: `${DEVICE_NAMES} Several devices are bound one after the other; a failure on one is reported
and the others are still done (as dpdk-devbind does); the exit code is the first failure's.
The driver may also come first (dpdk-devbind's order: bind vfio-pci 01:00.0 01:00.1).

Set driver_override to DRIVER, unbind the current driver, write the BDF to drivers_probe and
read the driver link back. If the device did not end up on DRIVER, the previous override and
driver are restored. Binds Linux would refuse are refused first, with the reason:
  - vfio-pci on a PF with VFs enabled ("Cannot bind to PF with SR-IOV enabled", EBUSY)
  - vfio-pci on a denylisted device (EINVAL) or on a device without an IOMMU group (EINVAL)
  - a VF of a vfio-pci PF to any other driver: its driver_override "vfio-pci" was captured
    when the PF created it; --release-captured replaces it. The PF's userspace driver then
    can no longer trust that VF, and the kernel warns "VF … bound to driver … while PF bound
    to driver vfio-pci".
  - a device held open through /dev/vfio (the unbind would block until it is released)
  - a device this host uses (an interface up, with addresses or routes, or enslaved; a block
    device mounted, held or swap): exit 1 unless --force

driver_override stays DRIVER after a bind (said on stderr): the device comes back to DRIVER
after an unbind, a re-probe or a hotplug, until it is cleared (--clear-override).`,
  options: BIND_OPTIONS,
  exits: {
    0: "bound (or already bound)",
    1: "refused because this host uses the device (--force overrides)",
    3: "refused or failed (errno shown)",
    4: "a write stayed blocked past --timeout",
  },
  examples: [
    "vfioctl --sim bind 0000:05:00.0 vfio-pci",
    "vfioctl --sim bind 01:00.0 vfio-pci --dry-run",
    "vfioctl bind eth2 eth3 vfio-pci",
    "vfioctl bind 0000:01:10.0 igbvf --release-captured",
  ],
  async run(ctx, args) {
    return guarded(ctx, "bind", async () => {
      const p = parseArgs(args, BIND_OPTIONS);
      if (p.positional.length < 2) throw new VfioctlError("BAD_INPUT", `bind: expected <device>... <driver>, got ${p.positional.length} argument${p.positional.length === 1 ? "" : "s"}`);
      const pos = p.positional;
      const drivers = await listDrivers(ctx.sys);
      const driverFirst = !drivers.includes(pos[pos.length - 1]!) && drivers.includes(pos[0]!);
      const driver = driverFirst ? pos[0]! : pos[pos.length - 1]!;
      const devs = driverFirst ? pos.slice(1) : pos.slice(0, -1);
      const opts = { releaseCaptured: p.flags.has("release-captured"), removeVfs: p.flags.has("remove-vfs"), force: p.flags.has("force"), clearOverride: p.flags.has("clear-override"), dryRun: p.flags.has("dry-run"), timeoutMs: ctx.opts.timeoutMs };
      const one = async (dev: string) => {
        const r = await bindDriver(ctx.sys, await resolveDevice(ctx.sys, dev), driver, opts);
        if (ctx.opts.json && devs.length > 1) {
          for (const w of r.warnings) ctx.io.err(w);
          return { r, code: EXIT.OK };
        }
        return { r, code: report(ctx, r, `bound to ${r.driver}`, "bind") };
      };
      if (devs.length === 1) return (await one(devs[0]!)).code;
      // several devices: each is done and reported on its own; the first failure's code is the exit code
      let code: number = EXIT.OK;
      const results: unknown[] = [];
      for (const dev of devs) {
        try {
          results.push((await one(dev)).r);
        } catch (e) {
          const c = reportError({ ...ctx, opts: { ...ctx.opts, json: false } }, e, `bind ${dev}`);
          if (e instanceof VfioctlError) results.push({ device: dev, ...e.toJSON() });
          if (code === EXIT.OK) code = c;
        }
      }
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.bind/1", results }, null, 2));
      return code;
    });
  },
});

register({
  name: "unbind",
  summary: "unbind a device from its driver (refuses when that would block or remove VFs)",
  positionals: [{ name: "device", complete: "bdf" }],
  description: `${DEVICE_NAMES}

Write the BDF to its driver's unbind file and check the driver link is gone. Refused first
when Linux would block (a process holds the device's /dev/vfio group), when a PF's VFs would
go away with the driver (unless --remove-vfs), or when this host uses the device (unless --force).`,
  options: UNBIND_OPTIONS,
  exits: {
    0: "unbound (or already unbound)",
    1: "refused because this host uses the device (--force overrides)",
    3: "refused or failed (errno shown)",
    4: "a write stayed blocked past --timeout",
  },
  examples: ["vfioctl --sim unbind 0000:05:00.0", "vfioctl unbind 0000:af:00.0 --remove-vfs"],
  async run(ctx, args) {
    return guarded(ctx, "unbind", async () => {
      const p = parseArgs(args, UNBIND_OPTIONS);
      if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `unbind: expected one device, got ${p.positional.length}`);
      const r = await unbindDriver(ctx.sys, await resolveDevice(ctx.sys, p.positional[0]!), { clearOverride: p.flags.has("clear-override"), removeVfs: p.flags.has("remove-vfs"), force: p.flags.has("force"), dryRun: p.flags.has("dry-run"), timeoutMs: ctx.opts.timeoutMs });
      return report(ctx, r, "unbound", "unbind");
    });
  },
});
