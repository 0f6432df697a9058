/** `vfioctl install` and `vfioctl uninstall`: the boot integration (systemd units, udev rule, modprobe options). */
import { VfioctlError } from "../../lib/errors.js";
import * as fs from "node:fs";
import { bootNeedsFrom, DEFAULT_CONFIG_PATH, STATE_DIR, type BootInput } from "../../host/units.js";
import { needsEnableSriov, parseConfig } from "../../host/config.js";
import { install, uninstall, type InstallReport, type ReloadResult, type Step, type UninstallReport } from "../../host/install.js";
import { EXIT, type Context } from "../context.js";
import { register } from "./index.js";
import { flagStr, guarded, parseArgs, plural } from "./common.js";
import { OPT, type CommandBody, type OptionSpec } from "../spec.js";

const COMMON_OPTIONS: OptionSpec[] = [
  { name: "force", type: "boolean", description: "also overwrite or remove files changed by hand or not installed by vfioctl" },
  { name: "no-reload", type: "boolean", description: "do not run systemctl daemon-reload / udevadm control --reload" },
];
const INSTALL_OPTIONS: OptionSpec[] = [
  { ...OPT.config, description: `the host config the boot run converges (default ${DEFAULT_CONFIG_PATH}); its boot.before and vfio-pci PFs decide --before and --enable-sriov` },
  { name: "before", type: "string", multiple: true, value: "UNIT", description: "a unit that uses the VFs and must start after them (repeatable, or comma-separated)", complete: "none" },
  { name: "enable-sriov", type: "boolean", description: "write vfio_pci enable_sriov=1 (default: when the config has a PF on vfio-pci with VFs)" },
  { name: "no-enable-sriov", type: "boolean", description: "no enable_sriov=1, whatever the config says" },
  { name: "disable-denylist", type: "boolean", description: "a PF is on vfio-pci's denylist: write vfio_pci disable_denylist=1" },
  { name: "dry-run", type: "boolean", description: "print every file with its content; change nothing" },
  ...COMMON_OPTIONS,
];
const UNINSTALL_OPTIONS: OptionSpec[] = [{ name: "dry-run", type: "boolean", description: "print what would be removed; change nothing" }, ...COMMON_OPTIONS];

const INSTALL_SPEC: CommandBody = {
  description: `Install what brings this host's vfioctl state back at every boot, in the style of driverctl:
  /etc/systemd/system/vfioctl.service       runs "vfioctl apply --boot --config FILE" once at
                                            boot, after module loading and the udev coldplug,
                                            before network-pre.target, basic.target and each
                                            --before UNIT (enabled in sysinit.target.wants/)
  /etc/systemd/system/vfioctl-pf@.service   runs "vfioctl apply --boot --device BDF" for one PF
  /etc/udev/rules.d/90-vfioctl.rules        starts vfioctl-pf@BDF.service whenever vfio-pci
                                            binds an SR-IOV PF (each probe gives the PF a new
                                            random VF token: the stored one is set again)
  /etc/modprobe.d/vfioctl.conf              "options vfio_pci enable_sriov=1", only with
                                            --enable-sriov (and disable_denylist=1 with
                                            --disable-denylist)
and records them, with their sha256, in /var/lib/vfioctl/installed.json. Writes are atomic and
never follow a symbolic link. Running it again changes nothing (and says so); after a change of
options only the files whose content changed are rewritten. A file edited by hand, or one that
vfioctl did not install, is never overwritten without --force. On a real host it then runs
"systemctl daemon-reload" and "udevadm control --reload" (skip with --no-reload). With --sim the
files go to the simulated host's root, never to the real /etc.`,
  options: INSTALL_OPTIONS,
  exits: { 0: "installed, or nothing to change", 3: "a file could not be written or a reload failed" },
  examples: [`vfioctl --sim install --dry-run --before libvirtd.service --enable-sriov`, `vfioctl --sim install --dry-run --config examples/lab-igb.yaml`, `vfioctl --sim --state /tmp/h install --before libvirtd.service`, `vfioctl --sim --state /tmp/h install          # again: "nothing to change"`, `sudo vfioctl install --config /etc/vfioctl/host.yaml --before libvirtd.service --enable-sriov`, `vfioctl help uninstall`],
};

const UNINSTALL_SPEC: CommandBody = {
  description: `Remove exactly the files and symlinks "vfioctl install" placed, as listed in
/var/lib/vfioctl/installed.json, then the directories it created when they are empty. A file
changed by hand since install is left in place and reported (exit 1); --force removes it too.
On a real host it then runs "systemctl daemon-reload" and "udevadm control --reload" (skip with
--no-reload). The host config, the token store and the running VFs are not touched.`,
  options: UNINSTALL_OPTIONS,
  exits: { 0: "removed, or nothing to remove", 1: "a file changed by hand was kept (listed; --force removes it)", 3: "a file could not be removed" },
  examples: [`vfioctl --sim --state /tmp/h uninstall --dry-run`, `vfioctl --sim --state /tmp/h uninstall`, `sudo vfioctl uninstall --force`],
};

const VERB: Record<Step["action"], string> = { create: "created", update: "updated", unchanged: "unchanged", remove: "removed", kept: "KEPT", gone: "gone" };
const DRY: Record<Step["action"], string> = { create: "would create", update: "would update", unchanged: "unchanged", remove: "would remove", kept: "would keep", gone: "gone" };

function stepLine(s: Step, dry: boolean): string {
  const what = s.kind === "symlink" ? `${s.path} -> ${s.target}` : s.kind === "dir" ? `${s.path}/` : s.path;
  return `  ${(dry ? DRY : VERB)[s.action].padEnd(12)} ${what}${s.note ? `  (${s.note})` : ""}`;
}

function reloadLines(ctx: Context, r: ReloadResult[]): boolean {
  let ok = true;
  for (const x of r) {
    const cmd = x.command.join(" ");
    if (x.skipped) ctx.io.out(`  reload: ${cmd}: skipped (${x.skipped})`);
    else if (x.ok) ctx.io.out(`  reload: ${cmd}: ok`);
    else {
      ok = false;
      ctx.io.err(`warning: ${cmd} failed: ${x.error}. The files are in place; run it by hand (systemd reads them at the next boot anyway)`);
    }
  }
  return ok;
}

function where(ctx: Context): void {
  if (ctx.files.simulated) ctx.io.out(`simulated host: host paths below live under ${ctx.files.root}`);
}

function printInstall(ctx: Context, r: InstallReport, config: string): void {
  where(ctx);
  if (r.dryRun) {
    for (const s of r.steps) {
      if (s.kind === "file") {
        ctx.io.out(`--- ${s.path} (${DRY[s.action]}, mode ${s.mode!.toString(8).padStart(4, "0")}: ${s.why})`);
        ctx.io.out(s.content!.replace(/\n$/, ""));
      } else ctx.io.out(`--- ${stepLine(s, true).trim()}${s.why ? `  (${s.why})` : ""}`);
    }
    ctx.io.out(`--- ${r.manifest} (${r.changed ? "would record" : "unchanged"}: each file and symlink above with its sha256)`);
    ctx.io.out(r.changed ? "dry run: nothing was changed" : "dry run: nothing to change");
  } else if (!r.changed) {
    ctx.io.out(`vfioctl install: nothing to change (${plural(r.steps.length, "file")} for ${config} up to date, recorded in ${r.manifest})`);
  } else {
    ctx.io.out(`vfioctl install: boot files for ${config}`);
    for (const s of r.steps) ctx.io.out(stepLine(s, false));
    ctx.io.out(`  recorded     ${r.manifest}`);
  }
  for (const n of r.notes) ctx.io.err(`note: ${n}`);
}

function printUninstall(ctx: Context, r: UninstallReport): void {
  where(ctx);
  if (r.nothing) {
    ctx.io.out(`vfioctl uninstall: nothing to remove (${r.notes[0]})`);
    return;
  }
  ctx.io.out(`vfioctl uninstall${r.dryRun ? " (dry run: nothing is changed)" : ""}:`);
  for (const s of r.steps) ctx.io.out(stepLine(s, r.dryRun));
  for (const n of r.notes) ctx.io.err(`note: ${n}`);
}

/**
 * What the host config says about boot, when it exists: its consumers (boot.before), the PFs on
 * vfio-pci with VFs (enable_sriov), and the store and state directories (RequiresMountsFor=).
 */
function fromConfig(ctx: Context, configPath: string): { input: BootInput; found: boolean } {
  const real = ctx.files.input(configPath);
  let text: string;
  try {
    text = fs.readFileSync(real, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { input: {}, found: false };
    const errno = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new VfioctlError("KERNEL", `read ${ctx.files.show(configPath)}: ${errno}`, { subject: configPath, errno, fix: "make the config readable, or give another with --config FILE" });
  }
  const cfg = parseConfig(text, configPath);
  const sriov = cfg.pfs.filter((p) => p.driver === "vfio-pci" && p.vfs > 0).map((p) => p.name);
  return { input: { before: cfg.boot.before, enableSriov: needsEnableSriov(cfg), sriovPfs: sriov, paths: [...new Set([cfg.stateDir, cfg.store, STATE_DIR])] }, found: true };
}

register({
  name: "install",
  summary: "install the systemd units, udev rule and module options that bring the host state back at boot",
  ...INSTALL_SPEC,
  async run(ctx, args) {
    return guarded(ctx, "install", async () => {
      const p = parseArgs(args, INSTALL_OPTIONS);
      const before = (p.lists.get("before") ?? []).flatMap((v) => v.split(",").map((s) => s.trim()).filter(Boolean));
      if (p.positional.length) throw new VfioctlError("BAD_INPUT", `install: expected no arguments, got ${JSON.stringify(p.positional.join(" "))}`, { fix: "see vfioctl help install" });
      if (p.flags.has("enable-sriov") && p.flags.has("no-enable-sriov")) throw new VfioctlError("BAD_INPUT", "install: expected one of --enable-sriov and --no-enable-sriov, got both");
      const configPath = flagStr(p, "config") ?? DEFAULT_CONFIG_PATH;
      const cfg = fromConfig(ctx, configPath);
      const needs = bootNeedsFrom({
        ...cfg.input,
        configPath,
        before: [...(cfg.input.before ?? []), ...before],
        // the flags win over what the config implies
        enableSriov: p.flags.has("enable-sriov") ? true : p.flags.has("no-enable-sriov") ? false : (cfg.input.enableSriov ?? false),
        disableDenylist: p.flags.has("disable-denylist"),
      });
      if (!cfg.found) ctx.io.err(`note: ${needs.configPath} does not exist: the units name it anyway (vfioctl.service is skipped at boot until it does); --before and --enable-sriov come from the flags only`);
      const r = install(ctx.files, needs, { dryRun: p.flags.has("dry-run"), force: p.flags.has("force"), reload: !p.flags.has("no-reload") });
      if (ctx.opts.json) {
        ctx.io.out(JSON.stringify({ schema: "vfioctl.install/1", needs, ...r, steps: r.steps.map((s) => (r.dryRun || s.kind !== "file" ? s : { ...s, content: undefined })) }, null, 2));
        return EXIT.OK;
      }
      printInstall(ctx, r, needs.configPath);
      reloadLines(ctx, r.reload);
      return EXIT.OK;
    });
  },
});

register({
  name: "uninstall",
  summary: "remove exactly the boot files vfioctl install placed (hand-edited ones are kept and reported)",
  ...UNINSTALL_SPEC,
  async run(ctx, args) {
    return guarded(ctx, "uninstall", async () => {
      const p = parseArgs(args, UNINSTALL_OPTIONS);
      if (p.positional.length) throw new VfioctlError("BAD_INPUT", `uninstall: expected no arguments, got ${JSON.stringify(p.positional.join(" "))}`);
      const r = uninstall(ctx.files, { dryRun: p.flags.has("dry-run"), force: p.flags.has("force"), reload: !p.flags.has("no-reload") });
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.uninstall/1", ...r }, null, 2));
      else {
        printUninstall(ctx, r);
        reloadLines(ctx, r.reload);
      }
      return r.kept.length ? EXIT.NO : EXIT.OK;
    });
  },
});
