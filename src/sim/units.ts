/**
 * The simulated host's own configuration, read from its root folder (`DIR/root`): vfio_pci
 * module options in /etc/modprobe.d/*.conf, and systemd units in /etc/systemd/system (enabled
 * boot units, template instances) whose ExecStart runs vfioctl.
 *
 * Only vfioctl itself runs on the simulated host: an ExecStart or udev RUN whose argv contains
 * `vfioctl` (any path ending in /vfioctl) or `bin/vfioctl.js` runs in-process with the arguments
 * after it; `systemctl [--no-block] start|restart UNIT…` starts those units of the simulated
 * host; anything else is reported as skipped.
 */
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { HostFiles } from "../sys/hostfs.js";

const VFIO_PCI_PARAMS = ["enable_sriov", "disable_denylist", "disable_idle_d3", "nointxmask", "disable_vga"];

export interface ModprobeOptions {
  params: Record<string, boolean>;
  /** lines or parameters that were ignored, with the reason */
  warnings: string[];
}

/** kernel/params.c param_set_bool: y/Y/1/true/on and n/N/0/false/off; a bare name is true. */
function parseBool(v: string | undefined): boolean | undefined {
  if (v === undefined || v === "") return true;
  if (/^(y|yes|1|true|on)$/i.test(v)) return true;
  if (/^(n|no|0|false|off)$/i.test(v)) return false;
  return undefined;
}

/** `options vfio_pci k=v …` (or vfio-pci) lines of /etc/modprobe.d/*.conf, files in name order. */
export function readModprobe(files: HostFiles): ModprobeOptions {
  const dir = files.real("/etc/modprobe.d");
  const out: ModprobeOptions = { params: {}, warnings: [] };
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".conf")).sort()) {
    const text = readFileSync(join(dir, name), "utf8").replace(/\\\n/g, " ");
    for (const raw of text.split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      const [cmd, mod, ...opts] = line.split(/\s+/);
      if (cmd !== "options" || !mod || mod.replace(/-/g, "_") !== "vfio_pci") continue;
      for (const o of opts) {
        const eq = o.indexOf("=");
        const k = (eq < 0 ? o : o.slice(0, eq)).replace(/-/g, "_");
        const v = eq < 0 ? undefined : o.slice(eq + 1).replace(/^"(.*)"$/, "$1");
        if (!VFIO_PCI_PARAMS.includes(k)) {
          out.warnings.push(`/etc/modprobe.d/${name}: vfio_pci: unknown parameter '${k}' ignored`);
          continue;
        }
        const b = parseBool(v);
        if (b === undefined) out.warnings.push(`/etc/modprobe.d/${name}: vfio_pci: '${v}' invalid for parameter '${k}'`);
        else out.params[k] = b;
      }
    }
  }
  return out;
}

/** Split a command line the way systemd does for ExecStart (quotes and backslashes). */
export function splitArgv(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let has = false;
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q) {
      if (c === q) q = null;
      else if (c === "\\" && q === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      q = c;
      has = true;
    } else if (c === "\\" && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = "";
      has = false;
    } else cur += c;
  }
  if (has || cur) out.push(cur);
  return out;
}

/** The vfioctl arguments of a command line, or null when it does not run vfioctl. */
export function vfioctlArgs(argv: string[]): string[] | null {
  const i = argv.findIndex((a) => basename(a) === "vfioctl" || a.endsWith("bin/vfioctl.js") || a === "vfioctl.js");
  return i < 0 ? null : argv.slice(i + 1);
}

/** The units of `systemctl [options] start|restart UNIT…`, or null for any other command line. */
export function systemctlStart(argv: string[]): string[] | null {
  if (!argv.length || basename(argv[0]!) !== "systemctl") return null;
  const words = argv.slice(1).filter((a) => !a.startsWith("-"));
  if (words[0] !== "start" && words[0] !== "restart") return null;
  const units = words.slice(1).map((u) => (/\.[a-z]+$/.test(u) ? u : `${u}.service`));
  return units.length ? units : null;
}

export interface UnitExec {
  /** the command line as written (after specifier substitution) */
  line: string;
  argv: string[];
  /** "-" prefix: a failure does not fail the unit */
  ignoreFailure: boolean;
  /** vfioctl's arguments, or null when the line does not run vfioctl */
  vfioctl: string[] | null;
  /** the units a `systemctl start` line starts, or null */
  starts: string[] | null;
}

export interface Unit {
  name: string;
  /** host path of the unit file that was read */
  file: string;
  execs: UnitExec[];
  /** ConditionPathExists= of [Unit] (a leading ! negates), checked on the simulated host */
  conditions: string[];
}

/** The first ConditionPathExists= that does not hold, or null when the unit may start. */
export function failedCondition(files: HostFiles, u: Unit): string | null {
  for (const c of u.conditions) {
    const neg = c.startsWith("!");
    const p = neg ? c.slice(1) : c;
    if (existsSync(files.real(p)) === neg) return `ConditionPathExists=${c}`;
  }
  return null;
}

const UNIT_DIR = "/etc/systemd/system";

/** systemd-escape --unescape: \xNN → byte; for %I. */
function unescapeInstance(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/**
 * Load unit `name` ("x.service" or "x@inst.service"): the instance file if it exists, else the
 * template; ExecStart lines with %i/%I/%n/%% substituted. Null when there is no such unit file.
 */
export function loadUnit(files: HostFiles, name: string): Unit | null {
  const m = /^([^@]+)@(.*)\.service$/.exec(name);
  const candidates = m ? [`${UNIT_DIR}/${name}`, `${UNIT_DIR}/${m[1]}@.service`] : [`${UNIT_DIR}/${name}`];
  const file = candidates.find((c) => existsSync(files.real(c)));
  if (!file) return null;
  const inst = m ? m[2]! : "";
  const text = readFileSync(files.real(file), "utf8").replace(/\\\n/g, " ");
  let section = "";
  let execs: UnitExec[] = [];
  const conditions: string[] = [];
  const spec = (v: string) => v.replace(/%([%iInN])/g, (_m, c: string) => (c === "%" ? "%" : c === "i" ? inst : c === "I" ? unescapeInstance(inst) : name));
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      continue;
    }
    const cond = /^ConditionPathExists\s*=\s*(.*)$/.exec(line);
    if (section === "Unit" && cond) {
      if (cond[1] === "") conditions.length = 0;
      else conditions.push(spec(cond[1]!.replace(/^\|/, "")));
      continue;
    }
    if (section !== "Service") continue;
    const kv = /^ExecStart\s*=\s*(.*)$/.exec(line);
    if (!kv) continue;
    let v = kv[1]!;
    if (v === "") {
      execs = []; // an empty ExecStart= resets the list
      continue;
    }
    let ignoreFailure = false;
    while (/^[-@+!:]/.test(v)) {
      if (v[0] === "-") ignoreFailure = true;
      v = v.slice(1);
    }
    v = spec(v);
    // $$ is a literal $ (environment variables are not modelled)
    const argv = splitArgv(v).map((a) => a.replace(/\$\$/g, "$"));
    execs.push({ line: v, argv, ignoreFailure, vfioctl: vfioctlArgs(argv), starts: systemctlStart(argv) });
  }
  return { name, file, execs, conditions };
}

/**
 * The enabled units: entries of every /etc/systemd/system/*.wants/ folder (symlinks to unit
 * files, as `systemctl enable` makes them), by name, each once.
 */
export function enabledUnits(files: HostFiles): string[] {
  const dir = files.real(UNIT_DIR);
  if (!existsSync(dir)) return [];
  const names = new Set<string>();
  for (const w of readdirSync(dir).filter((n) => n.endsWith(".wants")).sort()) {
    const wd = join(dir, w);
    if (!lstatSync(wd).isDirectory()) continue;
    for (const n of readdirSync(wd).sort()) {
      if (!n.endsWith(".service")) continue;
      // the link's own name is the unit; its target is not followed (it may be an absolute
      // host path, which on the simulated host lives under the root folder)
      const st = lstatSync(join(wd, n));
      if (st.isSymbolicLink() || st.isFile()) names.add(n);
    }
  }
  return [...names].sort();
}
