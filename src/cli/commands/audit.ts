/** `vfioctl audit`: trust findings on this host; exit 1 when there are any. */
import { audit } from "../../lib/audit.js";
import { VfioctlError } from "../../lib/errors.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { flagStr, guarded, parseArgs } from "./common.js";
import { loadConfig, statusHost } from "../../host/host.js";
import { DEFAULT_CONFIG } from "../../host/config.js";
import { OPT, type OptionSpec } from "../spec.js";

const OPTIONS: OptionSpec[] = [OPT.config];

register({
  name: "audit",
  summary: "trust audit: VFs leaked to host drivers, cleared overrides, enable_sriov, groups, holders",
  description: `Reports (read-only):
  - VFs of a vfio-pci PF bound to host drivers (the PF's userspace driver lost trust)
  - VFs of a vfio-pci PF whose captured driver_override "vfio-pci" was cleared or changed
  - vfio-pci PFs with VFs while vfio-pci's enable_sriov is off (sriov_numvfs then fails ENOENT)
  - IOMMU groups mixing vfio-pci devices with devices on host drivers (not viable)
  - VFs of a vfio-pci PF behind a vfio cdev that does not check the VF token (6.6–6.16,
    6.12.y: anyone with access to /dev/vfio/devices/vfio<N> opens them without it), or that
    cannot be given one (E2BIG: 6.15.y/6.16.y backports, 6.17, 6.18.0–6.18.2)
  - which processes hold /dev/vfio nodes, and the devices of those groups (/proc/*/fd)
  - with a host config (--config F, default /etc/vfioctl/host.yaml when present): VF users whose
    process started before the PF's last token rotation (they may hold the old token), and PFs
    whose kernel token is not the stored one`,
  options: OPTIONS,
  exits: { 0: "no findings", 1: "findings (listed)" },
  examples: [`vfioctl --sim audit`, `vfioctl --sim --profile 6.12.58 audit      # a cdev kernel without the token check`, `vfioctl audit --json | jq '.findings[] | .id'`],
  async run(ctx, args) {
    return guarded(ctx, "audit", async () => {
      const p = parseArgs(args, OPTIONS);
      if (p.positional.length) throw new VfioctlError("BAD_INPUT", `audit: expected no arguments, got ${JSON.stringify(p.positional[0])}`);
      const r = await audit(ctx.sys);
      // with a host config: the token's lifecycle findings (VF users that may hold a rotated-out token)
      const cfgPath = flagStr(p, "config");
      let cfg = null;
      try {
        cfg = loadConfig(ctx.files, cfgPath ?? DEFAULT_CONFIG);
      } catch (e) {
        if (cfgPath) throw e;
      }
      if (cfg) {
        const s = await statusHost({ sys: ctx.sys, files: ctx.files, cfg, timeoutMs: ctx.opts.timeoutMs });
        for (const pf of s.pfs) {
          for (const u of pf.token.oldTokenUsers) {
            r.findings.push({
              id: "old-token-user",
              severity: "warning",
              subject: u.bdf,
              message: `pid ${u.pid} (${u.comm}) started ${u.startedAt ?? "at an unknown time"}, before ${pf.name}'s token was rotated (${pf.token.previous.rotatedAt}): it may hold the previous token and cannot reopen the VF with it`,
              fix: `restart it with the current token (vfioctl args … reads the store), then vfioctl token retire ${pf.matched.bdf ?? pf.name}`,
            });
          }
          if (pf.token.state === "mismatch") {
            r.findings.push({ id: "token-drift", severity: "error", subject: pf.matched.bdf ?? pf.name, message: `the kernel's VF token is not the one in the store for ${pf.name}: VF users given the stored token get EACCES`, fix: "vfioctl apply (sets it from the store while no VF is open)" });
          }
        }
      }
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.audit/1", ...r }, null, 2));
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
