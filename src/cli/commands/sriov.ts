/** `vfioctl sriov PF N|off`. */
import { VfioctlError } from "../../lib/errors.js";
import { resolveDevice } from "../../lib/resolve.js";
import { setNumVfs } from "../../lib/sriov.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { guarded, parseArgs } from "./common.js";
import { OPT, type OptionSpec } from "../spec.js";

const OPTIONS: OptionSpec[] = [
  { name: "via-zero", type: "boolean", description: "change a non-zero count by writing 0 first (destroys every VF)" },
  { name: "force", type: "boolean", description: "remove VFs even when this host uses them (a VF interface up, with addresses or routes, or enslaved; a mounted block device)" },
  { ...OPT.dryRun, description: "print the writes, in order, and change nothing" },
];

register({
  name: "sriov",
  summary: "set a PF's VF count (preflight of every sriov_numvfs refusal; names who blocks)",
  positionals: [{ name: "pf", complete: "pf" }, { name: "n|off", complete: { values: ["off", "0", "1", "2", "4", "8"] } }],
  description: `The PF is a PCI address (0000:01:00.0, or 01:00.0) or its network interface (eth2).
Write n to the PF's sriov_numvfs after checking what Linux would refuse:
  - n > sriov_totalvfs                                    ERANGE
  - no driver bound / driver without sriov_configure       ENOENT
  - PF on vfio-pci with enable_sriov=N (no kernel log!)    ENOENT
  - a different non-zero count while VFs exist              EBUSY (use --via-zero:
    it writes 0 first, which destroys every VF)
If the write blocks because a VF is held open, vfioctl waits --timeout ms, then names the
processes holding /dev/vfio nodes of which VFs (the write stays pending in the kernel).

Removing VFs this host uses (a VF interface up, with addresses or routes, or enslaved; a
mounted block device) is refused unless --force. --dry-run prints the writes and changes nothing.`,
  options: OPTIONS,
  exits: {
    0: "done or nothing to do",
    1: "refused because this host uses a VF (--force overrides)",
    3: "refused or failed (errno shown: ERANGE above sriov_totalvfs …)",
    4: "the write stayed blocked past --timeout",
  },
  examples: ["vfioctl --sim sriov 0000:01:00.0 4", "vfioctl --sim sriov 01:00.0 2 --dry-run", "vfioctl --sim sriov 0000:01:00.0 off", "vfioctl --timeout 2000 sriov 0000:af:00.0 4 --via-zero"],
  async run(ctx, args) {
    return guarded(ctx, "sriov", async () => {
      const p = parseArgs(args, OPTIONS);
      if (p.positional.length !== 2) throw new VfioctlError("BAD_INPUT", `sriov: expected <pf> <n|off>, got ${p.positional.length} argument${p.positional.length === 1 ? "" : "s"}`);
      const r = await setNumVfs(ctx.sys, await resolveDevice(ctx.sys, p.positional[0]!, "pf"), p.positional[1]!, {
        viaZero: p.flags.has("via-zero"),
        force: p.flags.has("force"),
        dryRun: p.flags.has("dry-run"),
        timeoutMs: ctx.opts.timeoutMs,
        // on a terminal: say what the wait is for and how long is left (--quiet drops it)
        ...(ctx.io.isTTY && !ctx.opts.json ? { onWait: (w: { elapsedMs: number; timeoutMs: number; holders: string }) => (ctx.io.info ?? ctx.io.err)(`waiting for Linux to remove the VFs: ${w.holders}; ${Math.max(0, Math.ceil((w.timeoutMs - w.elapsedMs) / 1000))} s left of --timeout ${w.timeoutMs} ms`) } : {}),
      });
      for (const n of r.notes) ctx.io.err(n);
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sriov/1", ...r }, null, 2));
      else if (r.dryRun) {
        ctx.io.out(`${r.pf}: dry run, nothing changed; ${r.from} → ${r.to} VFs would write:`);
        for (const l of r.plan) ctx.io.out(`  ${l}`);
      } else if (r.changed) {
        ctx.io.out(`${r.pf}: ${r.from} → ${r.to} VFs${r.vfs.length ? `: ${r.vfs.join(" ")}` : ""}`);
        for (const l of r.log) ctx.io.out(`  kernel: ${l}`);
      } else ctx.io.out(`${r.pf}: already ${r.to} VFs; nothing changed`);
      return EXIT.OK;
    });
  },
});
