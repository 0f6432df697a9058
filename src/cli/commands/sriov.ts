/** `vfioctl sriov PF N|off`. */
import { VfioctlError } from "../../lib/errors.js";
import { setNumVfs } from "../../lib/sriov.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { guarded, parseArgs } from "./common.js";
import type { OptionSpec } from "../spec.js";

const OPTIONS: OptionSpec[] = [{ name: "via-zero", type: "boolean", description: "change a non-zero count by writing 0 first (destroys every VF)" }];

register({
  name: "sriov",
  summary: "set a PF's VF count (preflight of every sriov_numvfs refusal; names who blocks)",
  positionals: [{ name: "pf", complete: "pf" }, { name: "n|off", complete: { values: ["off", "0", "1", "2", "4", "8"] } }],
  description: `Write n to the PF's sriov_numvfs after checking what Linux would refuse:
  - n > sriov_totalvfs                                    ERANGE
  - no driver bound / driver without sriov_configure       ENOENT
  - PF on vfio-pci with enable_sriov=N (no kernel log!)    ENOENT
  - a different non-zero count while VFs exist              EBUSY (use --via-zero:
    it writes 0 first, which destroys every VF)
If the write blocks because a VF is held open, vfioctl waits --timeout ms, then names the
processes holding /dev/vfio nodes of which VFs (the write stays pending in the kernel).`,
  options: OPTIONS,
  exits: { 0: "done or nothing to do", 3: "refused or failed (errno shown)", 4: "the write stayed blocked past --timeout" },
  examples: ["vfioctl --sim sriov 0000:01:00.0 4", "vfioctl --sim sriov 0000:01:00.0 off", "vfioctl --timeout 2000 sriov 0000:af:00.0 4 --via-zero"],
  async run(ctx, args) {
    return guarded(ctx, "sriov", async () => {
      const p = parseArgs(args, OPTIONS);
      if (p.positional.length !== 2) throw new VfioctlError("BAD_INPUT", `sriov: expected <pf> <n|off>, got ${p.positional.length} argument${p.positional.length === 1 ? "" : "s"}`);
      const r = await setNumVfs(ctx.sys, p.positional[0]!, p.positional[1]!, { viaZero: p.flags.has("via-zero"), timeoutMs: ctx.opts.timeoutMs });
      for (const n of r.notes) ctx.io.err(n);
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sriov/1", ...r }, null, 2));
      else if (r.changed) {
        ctx.io.out(`${r.pf}: ${r.from} → ${r.to} VFs${r.vfs.length ? `: ${r.vfs.join(" ")}` : ""}`);
        for (const l of r.log) ctx.io.out(`  kernel: ${l}`);
      } else ctx.io.out(`${r.pf}: already ${r.to} VFs; nothing changed`);
      return EXIT.OK;
    });
  },
});
