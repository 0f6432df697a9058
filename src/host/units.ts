/**
 * The boot integration's files, generated from what the host needs ({@link BootNeeds}): the
 * systemd units that run `vfioctl apply --boot` at boot and after vfio-pci (re)probes a PF, the
 * udev rule that starts the per-PF unit, and the vfio_pci module options. Pure functions: no
 * file is read or written here (`install.ts` places them).
 *
 * In the style of driverctl (`driverctl@.service` started for each device from a udev rule),
 * with these differences: one unit converges the whole host once at boot, ordered before the VF
 * consumers and the network; the per-device path is started on `bind` (not `add`), so it also
 * runs after a re-probe, when the kernel has given the PF a new random VF token; module options
 * are written only when the config needs them; and every path is quoted for systemd.
 *
 * @example
 * ```ts
 * import { bootFiles, bootNeedsFrom } from "vfioctl";
 * const needs = bootNeedsFrom({ vfioctl: ["/usr/bin/node", "/opt/vfioctl/bin/vfioctl.js"], before: ["libvirtd.service"], enableSriov: true });
 * const { files, links } = bootFiles(needs);
 * files.map((f) => f.path); // [".../vfioctl.service", ".../vfioctl-pf@.service", ".../90-vfioctl.rules", "/etc/modprobe.d/vfioctl.conf"]
 * links[0]!.path;           // "/etc/systemd/system/sysinit.target.wants/vfioctl.service"
 * ```
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { fileURLToPath } from "node:url";
import { VfioctlError, shown } from "../lib/errors.js";

/** The host config `vfioctl apply` reads when none is given. */
export const DEFAULT_CONFIG_PATH = "/etc/vfioctl/host.yaml";
/** vfioctl's state directory (the install manifest lives here; apply keeps its journal here). */
export const STATE_DIR = "/var/lib/vfioctl";
/** Where the units go: the administrator's unit directory, as for `systemctl enable`d local units. */
export const UNIT_DIR = "/etc/systemd/system";
export const MAIN_UNIT = "vfioctl.service";
export const PF_TEMPLATE = "vfioctl-pf@.service";
export const UDEV_RULE = "/etc/udev/rules.d/90-vfioctl.rules";
export const MODPROBE_CONF = "/etc/modprobe.d/vfioctl.conf";
/** The target whose `.wants/` enables vfioctl.service (its [Install] WantedBy=). */
export const WANTED_BY = "sysinit.target";
/** systemctl as udev runs it (merged /usr: /usr/bin on Debian, Fedora, Arch, SUSE). */
export const SYSTEMCTL = "/usr/bin/systemctl";

/** What the boot integration must do on this host; built by {@link bootNeedsFrom}. */
export interface BootNeeds {
  /** absolute argv prefix that runs vfioctl, e.g. [process.execPath, "/abs/bin/vfioctl.js"] */
  vfioctl: string[];
  /** absolute host path of the host config */
  configPath: string;
  /** some PF on vfio-pci gets VFs: vfio_pci needs enable_sriov=1 */
  enableSriov: boolean;
  /** some PF is on vfio-pci's denylist: vfio_pci needs disable_denylist=1 */
  disableDenylist?: boolean;
  /** units that consume the VFs (libvirtd.service, dpdk-app.service): they start after vfioctl */
  before: string[];
  /** the PFs that need enable_sriov / disable_denylist (named in the modprobe file's comment) */
  sriovPfs?: string[];
  denylistPfs?: string[];
  /** more directories the boot run reads or writes (token store, state dir): RequiresMountsFor= */
  paths?: string[];
}

/** One generated regular file. */
export interface GeneratedFile {
  /** absolute host path */
  path: string;
  content: string;
  mode: number;
  /** one line: what the file is for */
  why: string;
}

/** One generated symbolic link (the `.wants/` entry `systemctl enable` would make). */
export interface GeneratedLink {
  path: string;
  /** relative, so it resolves the same on the host, under a simulated root and in a chroot */
  target: string;
  why: string;
}

export interface BootFiles {
  files: GeneratedFile[];
  links: GeneratedLink[];
}

/** Plain values from the command line or the parsed host config; every field optional. */
export interface BootInput {
  vfioctl?: string[];
  configPath?: string;
  enableSriov?: boolean;
  disableDenylist?: boolean;
  before?: string[];
  sriovPfs?: string[];
  denylistPfs?: string[];
  paths?: string[];
  /** resolves a relative configPath (default process.cwd()) */
  cwd?: string;
}

/** The argv that runs this vfioctl: node and the package's bin/vfioctl.js, both absolute. */
export function defaultVfioctlArgv(): string[] {
  const bin = fileURLToPath(new URL("../../../bin/vfioctl.js", import.meta.url));
  let real = bin;
  try {
    real = fs.realpathSync(bin);
  } catch {
    /* not built next to bin/ (a bundled copy): keep the computed path */
  }
  return [process.execPath, real];
}

const UNIT_NAME = /^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.(service|socket|target|mount|automount|swap|path|timer|slice|scope|device)$/;
const CONTROL = /[\x00-\x1f\x7f]/;

function checkPath(what: string, p: string, flag: string): void {
  if (!nodePath.isAbsolute(p)) throw new VfioctlError("BAD_INPUT", `${what}: expected an absolute path, got ${shown(p)}`, { subject: p, fix: `give ${flag} an absolute path` });
  if (CONTROL.test(p)) throw new VfioctlError("BAD_INPUT", `${what}: expected a path without control characters (a unit file line cannot hold them), got ${shown(p)}`, { subject: p, fix: "rename the file or directory" });
  if (p !== p.trim()) throw new VfioctlError("BAD_INPUT", `${what}: expected a path without leading or trailing blanks (systemd strips them), got ${shown(p)}`, { subject: p, fix: "rename the file or directory" });
}

/**
 * Build and check {@link BootNeeds} from plain values: the one place they are made, for the
 * `install` command's flags today and for the parsed host config (`boot.before`, the PFs on
 * vfio-pci with VFs) later. Relative paths are resolved, unit names and paths are checked
 * (expected-versus-found), duplicates dropped.
 */
export function bootNeedsFrom(input: BootInput = {}): BootNeeds {
  const cwd = input.cwd ?? process.cwd();
  const vfioctl = input.vfioctl ?? defaultVfioctlArgv();
  if (vfioctl.length === 0) throw new VfioctlError("BAD_INPUT", "vfioctl argv: expected the program that runs vfioctl, got nothing");
  checkPath("vfioctl argv[0]", vfioctl[0]!, "the vfioctl argv");
  for (const a of vfioctl) if (a.includes("\0")) throw new VfioctlError("BAD_INPUT", `vfioctl argv: expected no NUL bytes, got ${shown(a)}`);
  const configPath = nodePath.resolve(cwd, input.configPath ?? DEFAULT_CONFIG_PATH);
  checkPath("--config", configPath, "--config");
  const before: string[] = [];
  for (const u of input.before ?? []) {
    if (!UNIT_NAME.test(u) || u.length > 255 || u.endsWith("@.service"))
      throw new VfioctlError("BAD_INPUT", `--before: expected a unit name such as libvirtd.service or dpdk-app.service, got ${shown(u)}`, { subject: u, fix: "name the unit as systemctl lists it (systemctl list-units --all)" });
    if (u === MAIN_UNIT || u.startsWith("vfioctl-pf@")) throw new VfioctlError("BAD_INPUT", `--before: expected a unit that uses the VFs, got vfioctl's own ${shown(u)}`, { subject: u });
    if (!before.includes(u)) before.push(u);
  }
  const paths: string[] = [];
  for (const p of input.paths ?? [STATE_DIR]) {
    const r = nodePath.resolve(cwd, p);
    checkPath("path", r, "the path");
    if (!paths.includes(r)) paths.push(r);
  }
  const needs: BootNeeds = { vfioctl: [...vfioctl], configPath, enableSriov: input.enableSriov ?? false, before, paths };
  if (input.disableDenylist) needs.disableDenylist = true;
  if (input.sriovPfs?.length) needs.sriovPfs = [...input.sriovPfs];
  if (input.denylistPfs?.length) needs.denylistPfs = [...input.denylistPfs];
  return needs;
}

/**
 * One word of a systemd command line (ExecStart=) or of a quoted list (RequiresMountsFor=), as
 * systemd.service(5) "Command lines" and systemd.unit(5) "Specifiers" read it: `%` is a
 * specifier (`%%` is a literal %), `$` expands environment variables in ExecStart= (`$$` is a
 * literal $), words split at blanks unless double-quoted, and backslash escapes are C-style
 * (`\\`, `\"`, `\n`). Plain words stay bare.
 */
export function systemdWord(s: string, kind: "exec" | "list" = "exec"): string {
  if (s.includes("\0")) throw new VfioctlError("BAD_INPUT", `a unit file cannot hold a NUL byte, got ${shown(s)}`);
  let w = s.replace(/%/g, "%%");
  if (kind === "exec") w = w.replace(/\$/g, "$$$$");
  if (w !== "" && w !== ";" && /^[A-Za-z0-9_@+=:,./%$-]+$/.test(w)) return w;
  const esc = w
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\n/g, "\\n")
    .replace(/\t/g, "\\t")
    .replace(/[\x01-\x1f\x7f]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
  return `"${esc}"`;
}

/** A value systemd takes literally apart from specifiers (Description=, ConditionPathExists=). */
const literal = (s: string) => s.replace(/%/g, "%%");

/** A path as shown in a comment line (control characters escaped so the comment stays one line). */
const inComment = (s: string) => (CONTROL.test(s) ? JSON.stringify(s) : s);

function header(needs: BootNeeds, what: string[]): string {
  return [
    `# Generated by vfioctl from ${inComment(needs.configPath)}. Do not edit: change the config`,
    "# and run `vfioctl install` again (a file edited here is left alone and reported).",
    "# Remove with `vfioctl uninstall`: it removes exactly the files it installed.",
    "#",
    ...what.map((l) => `# ${l}`.trimEnd()),
  ].join("\n");
}

function mounts(needs: BootNeeds): string[] {
  const dirs: string[] = [];
  const add = (d: string) => {
    if (!dirs.includes(d)) dirs.push(d);
  };
  add(nodePath.dirname(needs.configPath));
  for (const p of needs.paths ?? [STATE_DIR]) add(p);
  for (const a of needs.vfioctl) if (nodePath.isAbsolute(a)) add(nodePath.dirname(a));
  return dirs;
}

function execStart(needs: BootNeeds, extra: string[]): string {
  return [...needs.vfioctl, "apply", "--boot", ...extra, "--config", needs.configPath].map((a) => (a === "%I" ? a : systemdWord(a))).join(" ");
}

function ordering(needs: BootNeeds): string[] {
  return [
    "# The network is configured after the VFs (and their net devices) exist.",
    "Before=network-pre.target",
    "# Every service with default dependencies starts after basic.target, so it finds the VFs",
    "# in place; the units named here also when they start earlier.",
    "Before=basic.target",
    ...needs.before.map((u) => `Before=${u}`),
    "Conflicts=shutdown.target",
    "Before=shutdown.target",
  ];
}

/** vfioctl.service: converge the whole host config once at boot. */
export function mainUnit(needs: BootNeeds): string {
  return [
    header(needs, [
      "Converges the host config once at boot (`vfioctl apply --boot`): each PF on its driver,",
      "its VF token set again from vfioctl's token store, its VFs created and bound, before the",
      "network and the programs that use the VFs start.",
    ]),
    "[Unit]",
    `Description=vfioctl: SR-IOV PFs, VFs and VF tokens from ${literal(needs.configPath)}`,
    "# Early boot: no implicit After=basic.target (which would order it after its consumers).",
    "DefaultDependencies=no",
    "# After modules-load (vfio-pci from modules-load.d, with its modprobe.d options) and the",
    "# udev coldplug (host drivers already probed: vfioctl sees where each PF settled).",
    "After=systemd-modules-load.service systemd-udev-trigger.service",
    "# The config, the token store, the state directory and vfioctl itself are mounted.",
    `RequiresMountsFor=${mounts(needs).map((d) => systemdWord(d, "list")).join(" ")}`,
    "Wants=network-pre.target",
    ...ordering(needs),
    "# No config, nothing to converge: the unit is skipped, not failed.",
    `ConditionPathExists=${literal(needs.configPath)}`,
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=${execStart(needs, [])}`,
    "# Writes Linux may block (sriov_numvfs while a VF is open) are bounded by vfioctl's own",
    "# --timeout; this bounds the whole run, so a stuck device cannot hold the boot forever",
    "# (a oneshot unit has no start timeout by default).",
    "TimeoutStartSec=300",
    "SyslogIdentifier=vfioctl",
    "",
    "[Install]",
    `WantedBy=${WANTED_BY}`,
    "",
  ].join("\n");
}

/** vfioctl-pf@.service: one PF again after vfio-pci (re)probed it; the instance is its BDF. */
export function pfTemplate(needs: BootNeeds): string {
  return [
    header(needs, [
      "Started by 90-vfioctl.rules when vfio-pci binds an SR-IOV PF (the instance is the PF's",
      "address, e.g. vfioctl-pf@0000:01:00.0.service). At every probe the kernel gives the PF a",
      "new random VF token; this sets the stored one again and converges the PF's VFs. A PF that",
      "is not in the config exits 0 at once.",
    ]),
    "[Unit]",
    `Description=vfioctl: VF token and VFs of PF %I after vfio-pci probed it`,
    "DefaultDependencies=no",
    "# A bind seen during boot waits for the whole-host run (which may bind the PF itself).",
    `After=${MAIN_UNIT} systemd-modules-load.service`,
    `RequiresMountsFor=${mounts(needs).map((d) => systemdWord(d, "list")).join(" ")}`,
    ...ordering(needs),
    `ConditionPathExists=${literal(needs.configPath)}`,
    "",
    "[Service]",
    "# No RemainAfterExit=: the unit goes back to inactive, so the next re-probe starts it again.",
    "Type=oneshot",
    `ExecStart=${execStart(needs, ["--device", "%I"])}`,
    "TimeoutStartSec=300",
    "SyslogIdentifier=vfioctl",
    "",
  ].join("\n");
}

/** The udev rule: start vfioctl-pf@BDF.service when vfio-pci binds an SR-IOV PF. */
export function udevRule(needs: BootNeeds): string {
  return [
    header(needs, [
      "When vfio-pci binds an SR-IOV PF (sriov_totalvfs of 1 or more), at boot or after an",
      "unbind and re-probe, start vfioctl-pf@<BDF>.service: the kernel generated a new random VF",
      "token at the probe, and the VFs are gone.",
      "",
      "Why RUN+=\"systemctl --no-block start\" and not ENV{SYSTEMD_WANTS}: systemd acts on",
      "SYSTEMD_WANTS only for a device tagged \"systemd\" in that very event, and starts the wanted",
      "units when the device unit becomes plugged or when the property newly appears; a wanted",
      "unit that is already listed and active is skipped (systemd src/core/device.c,",
      "device_add_udev_wants; systemd.device(5): \"systemd will only act on Wants= dependencies",
      "when a device first becomes active\"). A re-probe is an unbind and a bind of a device that",
      "stays present (no remove, no add), so whether the bind re-triggers the unit would depend on",
      "the unbind event having untagged the device first. RUN+= runs on every matching bind;",
      "`systemctl --no-block` only queues the start job and returns, so the udev worker is not",
      "held (udev(7): RUN is for short tasks) and the apply runs as a unit, with its own",
      "ordering, timeout and journal.",
    ]),
    `ACTION=="bind", SUBSYSTEM=="pci", DRIVER=="vfio-pci", ATTR{sriov_totalvfs}=="[1-9]*", RUN+="${SYSTEMCTL} --no-block start vfioctl-pf@$kernel.service"`,
    "",
  ].join("\n");
}

/** /etc/modprobe.d/vfioctl.conf, or null when vfio_pci needs no option. */
export function modprobeConf(needs: BootNeeds): string | null {
  if (!needs.enableSriov && !needs.disableDenylist) return null;
  const opts: string[] = [];
  const why: string[] = [];
  if (needs.enableSriov) {
    opts.push("enable_sriov=1");
    why.push(
      "enable_sriov=1: vfio-pci creates VFs (sriov_numvfs) of the PFs it owns only with it; a",
      `write without it fails with ENOENT and logs nothing. ${inComment(needs.configPath)} needs it for`,
      needs.sriovPfs?.length ? `${needs.sriovPfs.join(", ")} (on vfio-pci with VFs).` : "a PF on vfio-pci with VFs.",
    );
  }
  if (needs.disableDenylist) {
    opts.push("disable_denylist=1");
    why.push(
      "disable_denylist=1: vfio-pci refuses the devices on its denylist without it;",
      `${inComment(needs.configPath)} binds ${needs.denylistPfs?.length ? needs.denylistPfs.join(", ") : "such a device"} to vfio-pci.`,
    );
  }
  return [
    header(needs, [
      ...why,
      "Options apply when vfio_pci loads: if the initramfs loads it, rebuild the initramfs",
      "(update-initramfs -u); on a running host, see /sys/module/vfio_pci/parameters/.",
    ]),
    `options vfio_pci ${opts.join(" ")}`,
    "",
  ].join("\n");
}

/** Every file and link of the boot integration, in install order. */
export function bootFiles(needs: BootNeeds): BootFiles {
  const files: GeneratedFile[] = [
    { path: `${UNIT_DIR}/${MAIN_UNIT}`, content: mainUnit(needs), mode: 0o644, why: "converges the host config once at boot" },
    { path: `${UNIT_DIR}/${PF_TEMPLATE}`, content: pfTemplate(needs), mode: 0o644, why: "sets a PF's VF token again after vfio-pci probed it" },
    { path: UDEV_RULE, content: udevRule(needs), mode: 0o644, why: "starts vfioctl-pf@<BDF>.service when vfio-pci binds an SR-IOV PF" },
  ];
  const mp = modprobeConf(needs);
  if (mp !== null) files.push({ path: MODPROBE_CONF, content: mp, mode: 0o644, why: "vfio_pci module options the config needs" });
  const links: GeneratedLink[] = [{ path: `${UNIT_DIR}/${WANTED_BY}.wants/${MAIN_UNIT}`, target: `../${MAIN_UNIT}`, why: `enables ${MAIN_UNIT} (as systemctl enable does)` }];
  return { files, links };
}
