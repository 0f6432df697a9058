/** `vfioctl explain BDF`: predict opens, sriov_numvfs writes and binds without side effects. */
import { VfioctlError } from "../../lib/errors.js";
import { EXPLAIN_ERRNOS, explainOpen, parseErrnoArg, type Cause, type ExplainOptions } from "../../lib/explain.js";
import { resolveDevice } from "../../lib/resolve.js";
import { EXIT, type Context } from "../context.js";
import { register } from "./index.js";
import { flagStr, guarded, parseArgs } from "./common.js";
import { storeNameOf, tokenFrom } from "./token.js";
import { loadConfig } from "../../host/host.js";
import { DEFAULT_CONFIG } from "../../host/config.js";
import { OPT, type OptionSpec } from "../spec.js";

const MARK: Record<Cause["status"], string> = { applies: "✗", possible: "?", would: "·", no: " " };

function causeLines(c: Cause, verbose: boolean): string[] {
  const head = `${c.note && c.status === "applies" ? "!" : MARK[c.status]} ${c.errno ?? (c.note ? "note" : "blocks")} ${c.operation}${c.when && c.status !== "applies" ? ` — if ${c.when}` : ""}: ${c.cause}`;
  const out = [head, `    fix: ${c.fix}`];
  if (verbose && c.log) out.push(`    kernel log: ${c.log}`);
  if (verbose && c.log === "") out.push("    kernel log: (nothing)");
  return out;
}

/** Who the host config says sets this PF's token (none without a config naming the PF). */
async function tokenOwner(ctx: Context, pf: string | null, cfgPath: string | undefined): Promise<{ policy: string; name: string; text: string } | null> {
  if (!pf) return null;
  let cfg;
  try {
    cfg = loadConfig(ctx.files, cfgPath ?? DEFAULT_CONFIG);
  } catch (e) {
    if (cfgPath) throw e;
    return null;
  }
  const { name, pc } = await storeNameOf(ctx, cfg, pf);
  if (!pc) return null;
  const t = pc.token;
  const text =
    t.policy === "external"
      ? `${t.owner ?? "the PF's userspace driver"} is expected to set ${pf}'s token (host config ${pc.field}: token external); vfioctl sets none — VF users get the token from it`
      : t.policy === "generate"
        ? `vfioctl (host config ${pc.field}: token generate): stored in ${cfg.store}/${name}/current and set after every probe of ${pf}; \`vfioctl status\` says whether the kernel holds it`
        : t.policy === "file"
          ? `vfioctl sets it from ${t.file} (host config ${pc.field}) after every probe of ${pf}`
          : `no VF token: the config puts ${pf} on ${pc.driver}`;
  return { policy: t.policy, name, text };
}

const OPTIONS: OptionSpec[] = [
  OPT.tokenFile,
  OPT.tokenStdin,
  OPT.token,
  { name: "with-token", type: "boolean", description: "predict for an open that passes a token (the token itself is not needed)" },
  { name: "errno", type: "string", value: "E", description: "rank the causes of errno E (what you saw) on this host; a name or a number (13)", complete: { values: [...EXPLAIN_ERRNOS] } },
  { name: "numvfs", type: "string", value: "N", description: "predict a write of N to sriov_numvfs", complete: "none" },
  { name: "driver", type: "string", value: "D", description: "predict a bind to D (default vfio-pci)", complete: "driver" },
  { name: "cdev", type: "boolean", description: "predict the bind through the vfio cdev as the asked operation" },
  OPT.config,
  { name: "all", type: "boolean", description: "also list the rows that do not apply" },
];

register({
  name: "explain",
  summary: "predict (read-only) whether opening/configuring/binding a device works, and why not",
  description: `The device is a PCI address (0000:01:00.0, or 01:00.0) or a network interface (eth2).
Predicts, without opening the device or writing anything (sysfs, /dev/vfio node existence and a
/proc fd scan only), whether opening <bdf> through vfio would succeed, and lists the causes of
every refusal Linux has for it: the VF token table (EACCES required / incorrect, EINVAL not a
PF or VF / PF not on vfio-pci), the group rules (no node, EBUSY already open, EPERM not
viable), sriov_numvfs (ERANGE, EINVAL, EBUSY, ENOENT: no driver / no sriov_configure /
vfio-pci enable_sriov=N which logs nothing; blocking on open VFs) and driver binding
(override, EBUSY already bound, "Cannot bind to PF with SR-IOV enabled", denylist EINVAL,
no IOMMU group, autoprobe off); who may open the nodes (EACCES: mode/owner/group, SELinux/AppArmor
denials in the kernel log; EPERM: a container's device cgroup, noiommu without CAP_SYS_RAWIO).

The rules are the running kernel's (/proc/sys/kernel/osrelease resolved against vfioctl's table
of kernel changes, and what /dev/iommu and /dev/vfio/devices show). On a kernel with the vfio
cdev (6.6+, CONFIG_VFIO_DEVICE_CDEV) it also predicts VFIO_DEVICE_BIND_IOMMUFD on
/dev/vfio/devices/vfio<N>: no token check at all (6.6–6.16, 6.12.y), a token that cannot be
passed (E2BIG: 6.15.y/6.16.y backports, 6.17, 6.18.0–6.18.2), or checked (6.18.3+, 6.19+, 7.x);
the group/cdev exclusion (EBUSY), a second bind (EINVAL), EFAULT for a missing token pointer, and
that binding a PF with a token sets it — even when the bind then fails.

Whether a given token is the right one cannot be seen in sysfs (the kernel never reveals it):
use 'vfioctl token verify'.

  ✗ applies now   ? possible (sysfs cannot tell)   · would apply for the input shown
  ! a note that applies (the operation succeeds, but you should know this)

The exit code answers what was asked: --numvfs asks the sriov_numvfs write, --driver the bind
(the kernel's bind write), --cdev the cdev bind, a token option or no option the open through
the group; several may be asked at once. With only --errno E the question is whether E is
explained here: 0 a cause applies or may apply now, 1 none does ("none known", or only rows
that would apply for other input).`,
  positionals: [{ name: "device", complete: "bdf" }],
  options: OPTIONS,
  exits: {
    0: "what was asked should succeed (with only --errno: a cause of it applies or may apply here)",
    1: "it would fail or may fail (a ✗ or ? row for it); with only --errno: no cause applies",
    3: "the kernel refused a read needed to answer",
  },
  examples: [
    `vfioctl --sim explain 0000:af:10.0`,
    `vfioctl --sim explain 0000:af:10.0 --errno EACCES`,
    `vfioctl --sim explain 0000:01:00.0 --numvfs 9 --errno ERANGE`,
    `vfioctl --sim --profile 6.12.58 explain 0000:af:10.0     # a cdev kernel without the token check`,
    `vfioctl --sim --profile 6.17.1 explain 0000:af:10.0 --with-token --errno E2BIG`,
    `vfioctl explain 0000:3b:00.0 --errno ENOENT`,
    `if vfioctl explain 0000:01:00.0 --numvfs 4; then vfioctl sriov 0000:01:00.0 4; fi   # a preflight`,
  ],
  async run(ctx, args) {
    return guarded(ctx, "explain", async () => {
      const p = parseArgs(args, OPTIONS);
      if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `explain: expected one BDF, got ${p.positional.length}`);
      const t = await tokenFrom(ctx, p);
      const o: ExplainOptions = {};
      if (t) o.token = true; // the value is never needed: sysfs cannot check it
      else if (p.flags.has("with-token")) o.token = true;
      const e = flagStr(p, "errno");
      if (e !== undefined) o.errno = parseErrnoArg(e);
      const n = flagStr(p, "numvfs");
      if (n !== undefined) {
        if (!/^\d+$/.test(n)) throw new VfioctlError("BAD_INPUT", `--numvfs: expected a count 0..65535, got ${JSON.stringify(n)}`);
        o.numvfs = Number(n);
      }
      const d = flagStr(p, "driver");
      if (d !== undefined) o.driver = d;
      if (p.flags.has("cdev")) o.cdev = true;
      const x = await explainOpen(ctx.sys, await resolveDevice(ctx.sys, p.positional[0]!), o);
      const owner = await tokenOwner(ctx, x.role === "vf" ? (x.pf?.bdf ?? null) : x.role === "pf" ? x.bdf : null, flagStr(p, "config"));
      const code = x.asked.works ? EXIT.OK : EXIT.NO;
      if (ctx.opts.json) {
        ctx.io.out(JSON.stringify({ schema: "vfioctl.explain/1", ...(p.flags.has("all") ? x : { ...x, causes: x.causes.filter((c) => c.status !== "no") }), ...(owner ? { tokenOwner: owner } : {}) }, null, 2));
        return code;
      }
      const out: string[] = [];
      out.push(`${x.bdf} (${x.role === "pf" ? "SR-IOV PF" : x.role === "vf" ? `VF of ${x.pf?.bdf}` : "not an SR-IOV PF or VF"}, ${x.device.driver ?? "no driver"}${x.device.iommuGroup !== null ? `, group ${x.device.iommuGroup}` : ""})`);
      out.push(`kernel: ${x.kernel.summary}`);
      out.push(`token: ${x.token.reason}`);
      if (owner) out.push(`token owner: ${owner.text}`);
      out.push("");
      out.push(`open: ${x.open.verdict === "ok" ? "✓" : x.open.verdict === "fails" ? "✗" : "?"} ${x.open.summary}`);
      if (x.cdev) out.push(`cdev: ${x.cdev.verdict === "ok" ? "✓" : x.cdev.verdict === "fails" ? "✗" : "?"} ${x.cdev.summary}`);
      if (x.ranked) {
        out.push("");
        out.push(`Causes of ${o.errno!.toUpperCase()} for ${x.bdf}, most likely first:`);
        if (!x.ranked.length) out.push(`  none known for ${o.errno!.toUpperCase()} on this device`);
        else if (!x.ranked.some((c) => c.status === "applies" || c.status === "possible")) out.push("  (none applies to this host's state now; these are what would produce it)");
        x.ranked.forEach((c, i) => out.push(...causeLines(c, true).map((l, j) => (j === 0 ? `${String(i + 1).padStart(2)}. ${l}` : `    ${l}`))));
      } else {
        for (const op of ["open", "cdev", "sriov_numvfs", "bind"] as const) {
          const rows = x.causes.filter((c) => c.operation === op && (p.flags.has("all") || c.status !== "no"));
          if (!rows.length) continue;
          out.push("");
          out.push(op === "open" ? "Opening it through vfio:" : op === "cdev" ? `Opening it through the vfio cdev (${x.cdev?.node ?? "/dev/vfio/devices/vfio<N>"}, VFIO_DEVICE_BIND_IOMMUFD):` : op === "sriov_numvfs" ? `Writing sriov_numvfs${o.numvfs !== undefined ? ` = ${o.numvfs}` : ""}:` : `Binding ${o.driver ?? "vfio-pci"}:`);
          for (const c of rows) out.push(...causeLines(c, true).map((l) => `  ${l}`));
        }
      }
      out.push("");
      out.push(`${x.asked.question === "errno" ? "answer" : "preflight"}: ${x.asked.works ? "✓" : "✗"} ${x.asked.summary}`);
      ctx.io.out(out.join("\n"));
      return code;
    });
  },
});
