/** `vfioctl plan`, `vfioctl apply` and `vfioctl status`: running a host from its config. */
import { applyHost, loadConfig, planHost, statusHost, type HostApplyReport } from "../../host/host.js";
import { DEFAULT_CONFIG } from "../../host/config.js";
import type { Plan } from "../../host/plan.js";
import { EXIT, type Context } from "../context.js";
import { register } from "./index.js";
import { flagStr, guarded, parseArgs } from "./common.js";
import { OPT, type OptionSpec } from "../spec.js";

const CONFIG_OPTIONS: OptionSpec[] = [{ ...OPT.config, description: `the host config (default ${DEFAULT_CONFIG}; with --sim, under the simulated host's root)` }];
const APPLY_OPTIONS: OptionSpec[] = [
  ...CONFIG_OPTIONS,
  { name: "dry-run", type: "boolean", description: "print the plan and change nothing" },
  { name: "undo-interrupted", type: "boolean", description: "undo an interrupted apply instead of finishing it" },
  { name: "boot", type: "boolean", description: "run as the boot unit does (quiet when there is nothing to do)" },
  { name: "device", type: "string", value: "BDF", description: "only the PF at BDF, and set its token again (the udev rule runs this after vfio-pci re-probes a PF: the kernel regenerated its token); a device that is not in the config is ignored (exit 0)", complete: "pf" },
];

export function renderPlan(plan: Plan): string {
  const out: string[] = [];
  for (const m of plan.matched) out.push(m.bdf ? `${m.pf}: matched ${m.how}` : `${m.pf}: NOT MATCHED — ${m.problem} (${m.how})`);
  if (!plan.steps.length && !plan.blockers.length) out.push("nothing to do: the host matches the config");
  plan.steps.forEach((s, i) => {
    out.push(`${String(i + 1).padStart(3)}. ${s.text}`);
    out.push(`       Linux: ${s.linux}`);
    for (const w of s.writes) out.push(`       - ${w}`);
  });
  for (const n of plan.notes) out.push(`note: ${n.pf ? `${n.pf}: ` : ""}${n.text}`);
  for (const b of plan.blockers) {
    out.push(`BLOCKED: ${b.reason}`);
    for (const h of b.holders ?? []) out.push(`  held: ${h}`);
    out.push(`  fix: ${b.fix}`);
  }
  return out.join("\n");
}

function loadCfg(ctx: Context, file: string | undefined) {
  return loadConfig(ctx.files, file ?? DEFAULT_CONFIG);
}

register({
  name: "plan",
  summary: "the steps from this host's state to its config, in order, with what Linux does at each",
  description: `Read the host config and the host, and print the exact steps apply would take, in order, with
what Linux will do at each and every write it makes: implied steps included (VFs removed before
their PF changes driver, a VF count change going through 0, vfio-pci's enable_sriov, the token
stored before it is set and set before VFs exist). Anything that would block is named (the
processes holding a VF, a non-viable IOMMU group). Changes nothing (it may open a free VF to
check the kernel's token, and closes it at once).`,
  options: CONFIG_OPTIONS,
  exits: { 0: "nothing to do", 1: "there are steps", 3: "something blocks (named)" },
  examples: [`# one story on one state directory`, `vfioctl --sim --state /tmp/h config install examples/default-host.yaml`, `vfioctl --sim --state /tmp/h plan                       # steps to take (exit 1)`, `vfioctl --sim --state /tmp/h plan --json`],
  async run(ctx, args) {
    return guarded(ctx, "plan", async () => {
      const p = parseArgs(args, CONFIG_OPTIONS);
      const cfg = loadCfg(ctx, flagStr(p, "config"));
      const { plan } = await planHost({ sys: ctx.sys, files: ctx.files, cfg, timeoutMs: ctx.opts.timeoutMs });
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.plan/1", ...plan }, null, 2));
      else ctx.io.out(renderPlan(plan));
      return plan.blockers.length ? EXIT.KERNEL : plan.steps.length ? EXIT.NO : EXIT.OK;
    });
  },
});

function renderApply(r: HostApplyReport): string {
  const out: string[] = [];
  if (r.recovered) {
    const j = r.recovered.journal;
    const at = j.steps.find((s) => s.status === "running");
    const done = j.steps.filter((s) => s.status === "done").length;
    out.push(`found an interrupted apply (pid ${j.pid}, started ${j.started}): ${done} of ${j.steps.length} steps done${at ? `, killed during "${at.step.text}"` : ""}`);
    out.push(r.recovered.action === "finished" ? "  finishing it: the plan below starts from the host as it is now" : "  undoing it: its completed steps were reversed (newest first)");
  }
  if (r.status === "interrupted-undone") {
    out.push("undone; the host is back where the interrupted apply started (apply again to converge)");
    return out.join("\n");
  }
  if (r.status === "dry-run") {
    out.push("dry run: nothing was changed");
    out.push(renderPlan(r.plan));
    return out.join("\n");
  }
  if (r.status === "blocked") {
    out.push("refused: nothing was changed");
    out.push(renderPlan(r.plan));
    return out.join("\n");
  }
  if (r.status === "nothing-to-do") {
    out.push("nothing to do: the host matches the config");
    for (const n of r.plan.notes) out.push(`note: ${n.pf ? `${n.pf}: ` : ""}${n.text}`);
    return out.join("\n");
  }
  const j = r.journal!;
  j.steps.forEach((s, i) => {
    const mark = s.status === "done" ? "✓" : s.status === "undone" ? "↶" : s.status === "failed" ? "✗" : s.status === "undo-failed" ? "!" : "·";
    out.push(`${mark} ${String(i + 1).padStart(2)}. ${s.step.text}${s.status === "undone" ? " (undone)" : s.status === "undo-failed" ? " (UNDO FAILED)" : s.status === "pending" ? " (not run)" : ""}`);
    const log = s.log ?? [];
    for (const l of log.slice(0, 3)) out.push(`       kernel: ${l}`);
    if (log.length > 3) out.push(`       kernel: … ${log.length - 3} more lines (--json has them all)`);
    if (s.error) out.push(`       error: ${s.error.message}${s.error.errno ? ` [${s.error.errno}]` : ""}${s.error.fix ? `\n       fix: ${s.error.fix}` : ""}`);
  });
  if (r.status === "done") out.push(`applied ${j.steps.length} steps (journal ${j.id})`);
  else if (r.status === "rolled-back") out.push(`step ${j.steps.indexOf(r.failed!) + 1} failed; the completed steps were undone in reverse order and the host is as it was before this apply`);
  else {
    out.push(`step ${j.steps.indexOf(r.failed!) + 1} failed and the rollback could not restore everything; left behind:`);
    for (const l of r.leftBehind) out.push(`  - ${l}`);
  }
  return out.join("\n");
}

register({
  name: "apply",
  summary: "converge this host to its config (journaled, one at a time, rolled back on failure)",
  description: `Converge the host to its config: exactly the steps \`vfioctl plan\` shows. One apply runs at a
time (a lock in the state directory, default /var/lib/vfioctl); each step is journaled before
and after it runs. When a step fails, the completed steps are undone in reverse order and the
host is compared with a snapshot taken before the first step: the report says what failed (the
device, the errno, the fix) and anything that could not be put back. A second apply does
nothing. An apply killed half way is noticed by the next one, which finishes it (the default)
or, with --undo-interrupted, undoes its completed steps.

Tokens: a generated token is written to the store (fsynced) before the kernel sees it, and set
before the PF gets VFs, so no VF ever exists with a token nobody knows.`,
  options: APPLY_OPTIONS,
  exits: { 0: "done, dry run, or nothing to do", 3: "blocked, or a step failed (rolled back)", 4: "a write stayed blocked past --timeout", 5: "the rollback left something behind (listed)" },
  examples: [`vfioctl --sim --state /tmp/h config install examples/default-host.yaml`, `vfioctl --sim --state /tmp/h apply --dry-run`, `vfioctl --sim --state /tmp/h apply`, `vfioctl --sim --state /tmp/h apply          # again: nothing to do`],
  async run(ctx, args) {
    return guarded(ctx, "apply", async () => {
      const p = parseArgs(args, APPLY_OPTIONS);
      const cfg = loadCfg(ctx, flagStr(p, "config"));
      const device = flagStr(p, "device");
      const r = await applyHost({ sys: ctx.sys, files: ctx.files, cfg, timeoutMs: ctx.opts.timeoutMs }, { dryRun: p.flags.has("dry-run"), undoInterrupted: p.flags.has("undo-interrupted"), ...(device ? { device } : {}) });
      const quiet = p.flags.has("boot") && r.status === "nothing-to-do" && !r.recovered;
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.apply/1", status: r.status, plan: r.plan, journal: r.journal, leftBehind: r.leftBehind, recovered: r.recovered ? { id: r.recovered.journal.id, action: r.recovered.action } : null }, null, 2));
      else if (!quiet) ctx.io.out(renderApply(r));
      switch (r.status) {
        case "done":
        case "nothing-to-do":
        case "dry-run":
        case "interrupted-undone":
          return EXIT.OK;
        case "rollback-incomplete":
          return EXIT.PARTIAL;
        default:
          return r.failed?.error?.message.includes("still blocked") ? EXIT.BLOCKED : EXIT.KERNEL;
      }
    });
  },
});

register({
  name: "status",
  summary: "drift between the host config and this host, per PF (exit 1 when they differ)",
  description: `For each PF of the host config: which device the rule matched and how, its driver and VF count
against the config, each VF's driver, the token (policy; whether the kernel holds the stored
token, checked by opening a free VF; a leftover pending token; the previous token kept after a
rotation and the VF users whose process started before it), and who holds the vfio groups.`,
  options: CONFIG_OPTIONS,
  exits: { 0: "in sync", 1: "drift (listed)" },
  examples: [`vfioctl --sim --state /tmp/h config install examples/default-host.yaml`, `vfioctl --sim --state /tmp/h status                     # drift before apply (exit 1)`, `vfioctl --sim --state /tmp/h apply`, `vfioctl --sim --state /tmp/h status --json`],
  async run(ctx, args) {
    return guarded(ctx, "status", async () => {
      const p = parseArgs(args, CONFIG_OPTIONS);
      const cfg = loadCfg(ctx, flagStr(p, "config"));
      const s = await statusHost({ sys: ctx.sys, files: ctx.files, cfg, timeoutMs: ctx.opts.timeoutMs });
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.status/1", ...s }, null, 2));
      else {
        const out: string[] = [];
        for (const pf of s.pfs) {
          out.push(`${pf.drift.length ? "✗" : "✓"} ${pf.name}: ${pf.matched.bdf ? `${pf.matched.bdf} (matched by ${pf.matched.how})` : `not matched: ${pf.matched.problem}`}`);
          out.push(`    driver ${pf.driver.have ?? "none"} (config ${pf.driver.want}), VFs ${pf.vfs.have ?? "?"} (config ${pf.vfs.want})`);
          out.push(`    token: ${pf.token.policy}, ${pf.token.state}${pf.token.how ? ` — ${pf.token.how}` : ""}`);
          if (pf.token.previous.kept) out.push(`    previous token kept since rotation at ${pf.token.previous.rotatedAt ?? "?"} (retire it with: vfioctl token retire ${pf.matched.bdf ?? pf.name})`);
          for (const u of pf.token.oldTokenUsers) out.push(`    may hold the old token: ${u.bdf} pid ${u.pid} (${u.comm}) started ${u.startedAt ?? "at an unknown time"}, before the rotation`);
          for (const h of pf.holders) out.push(`    held: ${h.bdf} by pid ${h.pid} (${h.comm}) fd ${h.fd} → ${h.target}`);
          for (const d of pf.drift) out.push(`    drift: ${d}`);
        }
        for (const h of s.host) out.push(`✗ host: ${h}`);
        out.push(s.inSync ? "in sync with the config" : `drift: run \`vfioctl plan\` for the steps, \`vfioctl apply\` to converge`);
        ctx.io.out(out.join("\n"));
      }
      return s.inSync ? EXIT.OK : EXIT.NO;
    });
  },
});
