/** `vfioctl audit`: trust findings on this host; exit 1 when there are any. */
import { audit } from "../../lib/audit.js";
import { VfioctlError } from "../../lib/errors.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { guarded, parseArgs } from "./common.js";

register({
  name: "audit",
  summary: "trust audit: VFs leaked to host drivers, cleared overrides, enable_sriov, groups, holders",
  help: `usage: vfioctl audit

Reports (read-only):
  - VFs of a vfio-pci PF bound to host drivers (the PF's userspace driver lost trust)
  - VFs of a vfio-pci PF whose captured driver_override "vfio-pci" was cleared or changed
  - vfio-pci PFs with VFs while vfio-pci's enable_sriov is off (sriov_numvfs then fails ENOENT)
  - IOMMU groups mixing vfio-pci devices with devices on host drivers (not viable)
  - which processes hold /dev/vfio nodes, and the devices of those groups (/proc/*/fd)

Exit codes: 0 no findings, 1 findings.

Examples:
  vfioctl --sim audit
  vfioctl audit --json | jq '.findings[] | .id'`,
  async run(ctx, args) {
    return guarded(ctx, "audit", async () => {
      const p = parseArgs(args, [], []);
      if (p.positional.length) throw new VfioctlError("BAD_INPUT", `audit: expected no arguments, got ${JSON.stringify(p.positional[0])}`);
      const r = await audit(ctx.sys);
      if (ctx.opts.json) ctx.io.out(JSON.stringify(r, null, 2));
      else {
        const out: string[] = [];
        if (!r.findings.length) out.push("no findings");
        for (const f of r.findings) {
          out.push(`${f.severity === "error" ? "✗" : "!"} [${f.id}] ${f.subject}: ${f.message}`);
          out.push(`    fix: ${f.fix}`);
        }
        out.push("");
        if (!r.holders.length) out.push("no process holds a /dev/vfio node");
        else {
          out.push("Processes holding /dev/vfio nodes:");
          for (const h of r.holders) out.push(`  pid ${h.pid} (${h.comm}) fd ${h.fd} → ${h.target}${h.devices.length ? `  [${h.devices.join(", ")}]` : ""}`);
        }
        ctx.io.out(out.join("\n"));
      }
      return r.findings.length ? EXIT.NO : EXIT.OK;
    });
  },
});
