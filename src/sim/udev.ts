/**
 * A small udev rules matcher for the persisted simulated host: the rules in
 * `/etc/udev/rules.d/*.rules` of its root folder, applied to the model's uevents.
 *
 * Supported: match keys ACTION, SUBSYSTEM, DRIVER, KERNEL, DEVPATH, ATTR{name} (read through the
 * model's sysfs, trailing whitespace stripped), ENV{key}, and the parent-searching SUBSYSTEMS,
 * DRIVERS, KERNELS, ATTRS{name} (matched on the event device only: PCI devices are the first
 * link of their chain); operators `==` and `!=`; patterns with `*`, `?`, `[…]` and `|`.
 * Assignments: TAG+= / TAG=, ENV{key}= / ENV{key}+=, RUN+= / RUN=, with `%k`/`$kernel`,
 * `%p`/`$devpath`, `%%`/`$$` substituted. A device tagged "systemd" with ENV{SYSTEMD_WANTS}
 * asks systemd to start those units. Other keys (GOTO, LABEL, OPTIONS, NAME, …) are not modelled:
 * a rule using one is reported and skipped.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Uevent } from "../kernel/kernel.js";
import type { HostFiles } from "../sys/hostfs.js";

type MatchKey = "ACTION" | "SUBSYSTEM" | "DRIVER" | "KERNEL" | "DEVPATH" | "ATTR" | "ENV";

interface Match {
  key: MatchKey;
  attr?: string;
  neg: boolean;
  pattern: string;
}
interface Assign {
  key: "TAG" | "ENV" | "RUN";
  attr?: string;
  op: "=" | "+=";
  value: string;
}
export interface UdevRule {
  /** "file.rules:LINE" */
  where: string;
  matches: Match[];
  assigns: Assign[];
}

const PARENT_KEYS: Record<string, MatchKey> = { SUBSYSTEMS: "SUBSYSTEM", DRIVERS: "DRIVER", KERNELS: "KERNEL", ATTRS: "ATTR" };
const MATCH_KEYS = new Set<string>(["ACTION", "SUBSYSTEM", "DRIVER", "KERNEL", "DEVPATH", "ATTR", "ENV"]);

/** Parse the rules files (in file-name order, as udev sorts them). */
export function readRules(files: HostFiles): { rules: UdevRule[]; warnings: string[] } {
  const dir = files.real("/etc/udev/rules.d");
  const rules: UdevRule[] = [];
  const warnings: string[] = [];
  if (!existsSync(dir)) return { rules, warnings };
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".rules")).sort()) {
    const lines = readFileSync(join(dir, name), "utf8").split("\n");
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i]!;
      const start = i + 1;
      while (line.endsWith("\\") && i + 1 < lines.length) line = line.slice(0, -1) + lines[++i]!;
      line = line.trim();
      if (!line || line.startsWith("#")) continue;
      const r = parseRule(line, `${name}:${start}`);
      if (typeof r === "string") warnings.push(`udev: /etc/udev/rules.d/${r}`);
      else rules.push(r);
    }
  }
  return { rules, warnings };
}

/** One rule line; a string (the reason) when it cannot be modelled. */
export function parseRule(line: string, where: string): UdevRule | string {
  const re = /\s*([A-Z_]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  const rule: UdevRule = { where, matches: [], assigns: [] };
  let pos = 0;
  while (pos < line.length) {
    re.lastIndex = pos;
    const m = re.exec(line);
    if (!m) return `${where}: cannot parse ${JSON.stringify(line.slice(pos))}: skipped`;
    pos = re.lastIndex;
    const [, rawKey, attr, op, value] = m as unknown as [string, string, string | undefined, string, string];
    const key: string = PARENT_KEYS[rawKey] ?? rawKey;
    if (op === "==" || op === "!=") {
      if (!MATCH_KEYS.has(key)) return `${where}: match key ${rawKey} is not modelled: rule skipped`;
      rule.matches.push({ key: key as MatchKey, ...(attr !== undefined ? { attr } : {}), neg: op === "!=", pattern: value });
    } else if ((key === "TAG" || key === "RUN" || key === "ENV") && (op === "=" || op === "+=" || op === ":=")) {
      if (key === "ENV" && !attr) return `${where}: ENV without {key}: rule skipped`;
      rule.assigns.push({ key: key as Assign["key"], ...(attr !== undefined ? { attr } : {}), op: op === "+=" ? "+=" : "=", value });
    } else return `${where}: ${rawKey}${op} is not modelled: rule skipped`;
  }
  return rule;
}

/** udev's fnmatch with '|' alternatives. */
export function globMatch(pattern: string, s: string): boolean {
  return pattern.split("|").some((alt) => {
    let re = "^";
    for (let i = 0; i < alt.length; i++) {
      const c = alt[i]!;
      if (c === "*") re += ".*";
      else if (c === "?") re += ".";
      else if (c === "[") {
        const j = alt.indexOf("]", i + 1);
        if (j < 0) re += "\\[";
        else {
          const body = alt.slice(i + 1, j).replace(/\\/g, "\\\\");
          re += `[${body.startsWith("!") ? "^" + body.slice(1) : body}]`;
          i = j;
        }
      } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
    }
    return new RegExp(re + "$", "s").test(s);
  });
}

export interface UdevOutcome {
  /** RUN commands, substituted */
  run: string[];
  /** units systemd is asked to start (tag "systemd" + SYSTEMD_WANTS) */
  wants: string[];
  /** the rules that matched, "file:line" */
  matched: string[];
}

/** Apply every rule to one event. `attr(name)` reads the device's sysfs attribute (undefined when absent). */
export async function applyRules(rules: UdevRule[], ev: Uevent, attr: (name: string) => Promise<string | undefined>): Promise<UdevOutcome> {
  const env: Record<string, string> = {
    ACTION: ev.action,
    DEVPATH: ev.devpath,
    SUBSYSTEM: ev.subsystem,
    SEQNUM: String(ev.seq),
    PCI_SLOT_NAME: ev.kernel,
    ...(ev.driver !== undefined && (ev.action !== "unbind" || ev.synth) ? { DRIVER: ev.driver } : {}),
    ...(ev.synth ? { SYNTH_UUID: "0" } : {}),
  };
  const tags = new Set<string>();
  let run: string[] = [];
  const matched: string[] = [];
  const subst = (v: string) =>
    v.replace(/%%|\$\$|%k|\$kernel|%p|\$devpath/g, (t) => (t === "%%" ? "%" : t === "$$" ? "$" : t === "%k" || t === "$kernel" ? ev.kernel : ev.devpath));
  for (const r of rules) {
    let ok = true;
    for (const m of r.matches) {
      let v: string;
      switch (m.key) {
        case "ACTION":
          v = ev.action;
          break;
        case "SUBSYSTEM":
          v = ev.subsystem;
          break;
        case "DRIVER":
          v = env.DRIVER ?? "";
          break;
        case "KERNEL":
          v = ev.kernel;
          break;
        case "DEVPATH":
          v = ev.devpath;
          break;
        case "ENV":
          v = env[m.attr ?? ""] ?? "";
          break;
        case "ATTR":
          v = ((await attr(m.attr ?? "")) ?? "").replace(/\s+$/, "");
          break;
      }
      if (globMatch(m.pattern, v) === m.neg) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    matched.push(r.where);
    for (const a of r.assigns) {
      const v = subst(a.value);
      if (a.key === "TAG") {
        if (a.op === "=") tags.clear();
        tags.add(v);
      } else if (a.key === "ENV") {
        const k = a.attr!;
        env[k] = a.op === "+=" && env[k] ? `${env[k]} ${v}` : v;
      } else {
        if (a.op === "=") run = [];
        run.push(v);
      }
    }
  }
  const wants = tags.has("systemd") && env.SYSTEMD_WANTS ? env.SYSTEMD_WANTS.split(/\s+/).filter(Boolean) : [];
  return { run, wants, matched };
}
