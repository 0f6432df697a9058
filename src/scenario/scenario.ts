/**
 * Scenario files: a YAML (or JSON) list of operations that drives a kernel through the syscalls
 * seam with several processes, with what each operation is expected to return and log. The same
 * file runs on the kernel model and, in the lab, on a real Linux 6.1/6.12 guest, so it names
 * devices by BDF, IOMMU groups by a device in them (`group_of: BDF`), fds by per-process names
 * and VF tokens by names (U1, U2 …) defined in the file. See docs/scenarios.md for the format.
 *
 * This file parses and validates a scenario and expands macros (`vfio_open`, `get_device_fd`,
 * `set_token`, `req_eventfd`, lists of `close`) into plain operations, so a transcript only
 * ever shows plain operations.
 *
 * @example
 * ```ts
 * import { parseScenario } from "./scenario.js";
 * const sc = parseScenario(`
 * tokens: { U1: 2ab74924-c335-45f4-9b16-8569e5b08258 }
 * ops:
 *   - write: /sys/bus/pci/devices/0000:01:00.0/sriov_numvfs
 *     data: "2"
 *     expect: { ret: 1 }
 *   - name: pf
 *     vfio_open: { bdf: "0000:01:00.0", token: U1 }
 * `, "example.yaml");
 * sc.ops.length; // 6: write + container, group, SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD
 * ```
 */
import { readFileSync } from "node:fs";
import * as nodePath from "node:path";
import { parse as parseYaml } from "yaml";
import { uuidIsValid } from "../uapi/vfio.js";

/** A kernel log expectation: exact text, "/regex/", or text with a level. */
export type LogPattern = string | { level?: string; text: string };

/** A value that may differ per kernel profile: `{ "6.1": x, "6.12": y }`. */
export type PerProfile<T> = T | { [profile: string]: T };

export interface Expect {
  /** accept any outcome (no check) */
  any?: boolean;
  /** the return value: a number, or "fd" for any fd */
  ret?: PerProfile<number | "fd">;
  /** the errno name, or "none" for success */
  errno?: PerProfile<string>;
  /** true: the op must still be blocked after the block window */
  blocked?: PerProfile<boolean>;
  /** lines that must appear, in this order (other lines may come between) */
  log?: PerProfile<LogPattern[]>;
  /** the complete list of lines this op logged, once the ignore filter has run */
  log_exact?: PerProfile<LogPattern[]>;
  /** lines that must not appear */
  log_absent?: PerProfile<LogPattern[]>;
  /** read/readlink/exists result */
  value?: PerProfile<string | boolean>;
  /** fields of an ioctl's output struct */
  out?: PerProfile<Record<string, number>>;
}

export type OpKind = "write" | "read" | "readlink" | "exists" | "stat" | "open" | "close" | "ioctl" | "eventfd" | "exit" | "wait" | "sleep" | "signal" | "ensure";

/** A plain operation, after macro expansion and variable substitution. */
export interface Op {
  kind: OpKind;
  /** unique within the scenario; transcripts are compared by name */
  name: string;
  /** process name (created on first use) */
  proc: string;
  /** profiles/backends this op runs on ("6.1", "6.12", "model", "linux"); absent: all */
  only?: string[];
  expect: Expect;
  /** the macro op this came from, if any */
  from?: string;
  /** the fd name the result is stored under (open, eventfd, GET_DEVICE_FD) */
  as?: string;
  path?: string;
  /** open: resolve /dev/vfio/<N> from this device's iommu_group link */
  groupOf?: string;
  /** open: resolve /dev/vfio/devices/vfio<N> from this device's vfio-dev/ directory (the cdev) */
  cdevOf?: string;
  data?: string;
  flags?: number;
  /** readlink: keep only the last path component */
  base?: boolean;
  /** stat: lstat(2), do not follow the last link */
  nofollow?: boolean;
  fd?: string;
  request?: string;
  /** ioctl: the request number when the file gave a number (request "RAW") */
  raw?: number;
  /** read on an fd: how many bytes */
  size?: number;
  args?: Record<string, unknown>;
  /** wait: the op waited for; signal: the process signalled */
  target?: string;
  ms?: number;
  ensure?: EnsureGoal;
}

export type EnsureGoal =
  | { bdf: string; driver?: string; sriov_numvfs?: number }
  | { param: string; value: string }
  | { driver_loaded: string };

export interface Scenario {
  file: string;
  /** folder of the file (host paths are relative to it) */
  dir: string;
  title: string;
  description?: string;
  /** model host file, relative to the scenario file */
  host?: string;
  profiles: string[];
  vars: Record<string, string>;
  tokens: Record<string, string>;
  /** extra log lines to ignore in log_exact checks (regex sources) */
  logIgnore: string[];
  setup: Op[];
  ops: Op[];
}

export class ScenarioError extends Error {
  constructor(
    readonly file: string,
    readonly where: string,
    msg: string,
  ) {
    super(`${file}: ${where}: ${msg}`);
    this.name = "ScenarioError";
  }
}

export const PROFILE_NAMES = ["6.1", "6.12"];

const OPEN_FLAGS: Record<string, number> = { O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_NONBLOCK: 0o4000, O_CLOEXEC: 0o2000000 };

/** Read and parse a scenario file. */
export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ScenarioError(path, "(file)", `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseScenario(text, path);
}

/** Parse and validate scenario text (YAML or JSON). */
export function parseScenario(text: string, file = "<scenario>"): Scenario {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ScenarioError(file, "(file)", `expected YAML or JSON: ${(e as Error).message.split("\n")[0]}`);
  }
  return new Parser(file).scenario(raw);
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

const VERBS = ["write", "read", "readlink", "exists", "stat", "open", "close", "ioctl", "eventfd", "exit", "wait", "sleep", "signal", "ensure", "vfio_open", "get_device_fd", "set_token", "req_eventfd"] as const;
const COMMON = ["name", "proc", "only", "expect", "as", "comment"];

class Parser {
  private vars: Record<string, string> = {};
  private tokens: Record<string, string> = {};
  private names = new Set<string>();
  private counter = 0;
  private defaultProc = "main";

  constructor(private readonly file: string) {}

  err(where: string, msg: string): ScenarioError {
    return new ScenarioError(this.file, where, msg);
  }

  scenario(raw: unknown): Scenario {
    if (!isObj(raw)) throw this.err("(top level)", "expected a mapping with an ops list");
    const known = new Set(["title", "description", "host", "profiles", "vars", "tokens", "processes", "log_ignore", "setup", "ops"]);
    for (const k of Object.keys(raw)) if (!known.has(k)) throw this.err(k, `expected one of ${[...known].join(", ")}, got ${JSON.stringify(k)}`);
    if (raw.vars !== undefined) {
      if (!isObj(raw.vars)) throw this.err("vars", "expected a mapping NAME: value");
      for (const [k, v] of Object.entries(raw.vars)) this.vars[k] = this.subst(String(v), `vars.${k}`);
    }
    if (raw.tokens !== undefined) {
      if (!isObj(raw.tokens)) throw this.err("tokens", "expected a mapping NAME: uuid");
      for (const [k, v] of Object.entries(raw.tokens)) {
        if (typeof v !== "string" || !uuidIsValid(v)) throw this.err(`tokens.${k}`, `expected a UUID (8-4-4-4-12 hex digits), got ${JSON.stringify(v)}`);
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw this.err(`tokens.${k}`, "expected a token name like U1");
        this.tokens[k] = v;
      }
    }
    if (raw.processes !== undefined) {
      if (!Array.isArray(raw.processes) || raw.processes.length === 0) throw this.err("processes", "expected a non-empty list of process names");
      this.defaultProc = String(raw.processes[0]);
    }
    const profiles = raw.profiles === undefined ? [...PROFILE_NAMES] : this.profileList(raw.profiles, "profiles");
    const logIgnore: string[] = [];
    if (raw.log_ignore !== undefined) {
      if (!Array.isArray(raw.log_ignore)) throw this.err("log_ignore", "expected a list of regular expressions");
      raw.log_ignore.forEach((r, i) => {
        try {
          new RegExp(String(r));
        } catch (e) {
          throw this.err(`log_ignore[${i}]`, `expected a regular expression: ${(e as Error).message}`);
        }
        logIgnore.push(String(r));
      });
    }
    const setup = raw.setup === undefined ? [] : this.opList(raw.setup, "setup");
    if (!Array.isArray(raw.ops)) throw this.err("ops", "expected a list of operations");
    const ops = this.opList(raw.ops, "ops");
    const waits = new Set(ops.map((o) => o.name));
    for (const o of ops) if (o.kind === "wait" && !waits.has(o.target!)) throw this.err(`ops.${o.name}`, `wait: no op named ${JSON.stringify(o.target)}`);
    return {
      file: this.file,
      dir: nodePath.dirname(this.file),
      title: raw.title === undefined ? nodePath.basename(this.file) : String(raw.title),
      ...(raw.description !== undefined ? { description: String(raw.description) } : {}),
      ...(raw.host !== undefined ? { host: String(raw.host) } : {}),
      profiles,
      vars: this.vars,
      tokens: this.tokens,
      logIgnore,
      setup,
      ops,
    };
  }

  profileList(v: unknown, where: string): string[] {
    const list = Array.isArray(v) ? v : [v];
    return list.map((p, i) => {
      const s = typeof p === "number" ? String(p) : String(p);
      if (!PROFILE_NAMES.includes(s) && s !== "model" && s !== "linux") throw this.err(`${where}[${i}]`, `expected one of ${PROFILE_NAMES.join(", ")}, model, linux; got ${JSON.stringify(p)}`);
      return s;
    });
  }

  /** ${NAME}: a var, or a token's UUID. */
  subst(s: string, where: string): string {
    return s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, n: string) => {
      if (n in this.vars) return this.vars[n]!;
      if (n in this.tokens) return this.tokens[n]!;
      throw this.err(where, `unknown variable \${${n}} (vars: ${Object.keys(this.vars).join(", ") || "none"}; tokens: ${Object.keys(this.tokens).join(", ") || "none"})`);
    });
  }

  deep(v: unknown, where: string): unknown {
    if (typeof v === "string") return this.subst(v, where);
    if (Array.isArray(v)) return v.map((x, i) => this.deep(x, `${where}[${i}]`));
    if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.deep(x, `${where}.${k}`)]));
    return v;
  }

  opList(raw: unknown, where: string): Op[] {
    if (!Array.isArray(raw)) throw this.err(where, "expected a list of operations");
    const out: Op[] = [];
    raw.forEach((r, i) => out.push(...this.op(r, `${where}[${i}]`)));
    return out;
  }

  uniqueName(n: string, where: string): string {
    if (this.names.has(n)) throw this.err(where, `duplicate op name ${JSON.stringify(n)}`);
    this.names.add(n);
    return n;
  }

  token(v: unknown, where: string): string {
    const s = String(v);
    if (s in this.tokens) return s;
    if (uuidIsValid(s)) return s;
    throw this.err(where, `expected a token name (${Object.keys(this.tokens).join(", ") || "none defined"}) or a UUID, got ${JSON.stringify(v)}`);
  }

  op(r0: unknown, where: string): Op[] {
    if (!isObj(r0)) throw this.err(where, `expected a mapping with one of ${VERBS.join(", ")}`);
    const verbs = Object.keys(r0).filter((k) => (VERBS as readonly string[]).includes(k));
    if (verbs.length !== 1) throw this.err(where, `expected exactly one of ${VERBS.join(", ")}, got ${verbs.length ? verbs.join(" and ") : "none"}`);
    const verb = verbs[0]!;
    const r = this.deep(r0, where) as Raw;
    const idx = this.counter++;
    const name = this.uniqueName(r.name !== undefined ? String(r.name) : `#${idx}`, where);
    const proc = r.proc !== undefined ? String(r.proc) : this.defaultProc;
    const only = r.only !== undefined ? this.profileList(r.only, `${where}.only`) : undefined;
    const expect = this.expect(r.expect, `${where}.expect`);
    const base = { name, proc, ...(only ? { only } : {}) };
    const allowed = new Set([...COMMON, verb, ...extraKeys(verb)]);
    for (const k of Object.keys(r)) if (!allowed.has(k)) throw this.err(`${where}.${k}`, `not a field of a ${verb} op (fields: ${[...allowed].join(", ")})`);
    const str = (v: unknown, f: string): string => {
      if (typeof v !== "string" && typeof v !== "number") throw this.err(`${where}.${f}`, `expected a string, got ${JSON.stringify(v)}`);
      return String(v);
    };
    const as = r.as !== undefined ? str(r.as, "as") : undefined;
    // the file an open or stat names: PATH, or a device's group node or cdev node as the kernel
    // selftests find them (its iommu_group link, its vfio-dev/ directory)
    const nodeOf = (v: "open" | "stat"): Pick<Op, "path" | "groupOf" | "cdevOf"> => {
      const o = r[v];
      if (!isObj(o)) return { path: str(o, v) };
      if (o.group_of !== undefined) return { groupOf: str(o.group_of, `${v}.group_of`) };
      if (o.cdev_of !== undefined) return { cdevOf: str(o.cdev_of, `${v}.cdev_of`) };
      throw this.err(`${where}.${v}`, "expected a path, { group_of: BDF } or { cdev_of: BDF }");
    };
    if (as === "never-opened") throw this.err(`${where}.as`, "never-opened is the name of an fd no process has open; choose another name");
    switch (verb) {
      case "write":
        if (r.data === undefined) throw this.err(where, 'write needs data: "…"');
        return [{ kind: "write", ...base, expect, path: str(r.write, "write"), data: str(r.data, "data") }];
      case "read": {
        if (isObj(r.read)) {
          const o = r.read;
          for (const k of Object.keys(o)) if (k !== "fd" && k !== "size") throw this.err(`${where}.read.${k}`, "expected read: PATH or read: { fd: NAME, size?: N }");
          if (o.fd === undefined) throw this.err(`${where}.read`, "expected read: PATH or read: { fd: NAME, size?: N }");
          const size = o.size === undefined ? 4 : Number(o.size);
          if (!Number.isInteger(size) || size < 0) throw this.err(`${where}.read.size`, `expected a byte count, got ${JSON.stringify(o.size)}`);
          return [{ kind: "read", ...base, expect, fd: str(o.fd, "read.fd"), size }];
        }
        return [{ kind: "read", ...base, expect, path: str(r.read, "read") }];
      }
      case "readlink":
        return [{ kind: "readlink", ...base, expect, path: str(r.readlink, "readlink"), ...(r.base ? { base: true } : {}) }];
      case "exists":
        return [{ kind: "exists", ...base, expect, path: str(r.exists, "exists") }];
      case "stat": {
        // stat: PATH, or the group/cdev node of a device as open finds it
        return [{ kind: "stat", ...base, expect, ...(r.nofollow ? { nofollow: true } : {}), ...nodeOf("stat") }];
      }
      case "open": {
        const op: Op = { kind: "open", ...base, expect, as: as ?? name, flags: 0, ...nodeOf("open") };
        op.flags = r.flags !== undefined ? this.flags(r.flags, OPEN_FLAGS, `${where}.flags`) : op.groupOf || op.cdevOf || op.path!.startsWith("/dev/vfio") || op.path === "/dev/iommu" ? 2 : 0;
        return [op];
      }
      case "close": {
        const list = Array.isArray(r.close) ? r.close : [r.close];
        return list.map((fd, i) => ({ kind: "close" as const, ...base, name: i === 0 ? name : this.uniqueName(`${name}.${i}`, where), expect, fd: str(fd, "close") }));
      }
      case "eventfd":
        return [{ kind: "eventfd", ...base, expect, as: as ?? (typeof r.eventfd === "string" ? r.eventfd : name) }];
      case "exit":
        return [{ kind: "exit", ...base, proc: r.exit === null || r.exit === true ? proc : str(r.exit, "exit"), expect }];
      case "wait":
        return [{ kind: "wait", ...base, expect, target: str(r.wait, "wait") }];
      case "sleep": {
        const ms = Number(r.sleep);
        if (!Number.isFinite(ms) || ms < 0) throw this.err(`${where}.sleep`, `expected milliseconds, got ${JSON.stringify(r.sleep)}`);
        return [{ kind: "sleep", ...base, expect, ms }];
      }
      case "signal":
        return [{ kind: "signal", ...base, expect, target: str(r.signal, "signal") }];
      case "ensure":
        return [{ kind: "ensure", ...base, expect, ensure: this.ensure(r.ensure, `${where}.ensure`) }];
      case "ioctl": {
        if (r.fd === undefined) throw this.err(where, "ioctl needs fd: NAME");
        const rq = str(r.ioctl, "ioctl");
        const raw = /^(0x[0-9a-f]+|\d+)$/i.test(rq) ? Number(rq) : undefined;
        if (raw !== undefined && raw > 0xffffffff) throw this.err(`${where}.ioctl`, `expected a 32-bit request number, got ${rq}`);
        const request = raw !== undefined ? "RAW" : normaliseRequest(rq);
        if (!request) throw this.err(`${where}.ioctl`, `expected one of ${Object.keys(REQUESTS).join(", ")} or a request number (0x3b6e), got ${JSON.stringify(r.ioctl)}`);
        const args = r.args === undefined ? {} : r.args;
        if (!isObj(args)) throw this.err(`${where}.args`, "expected a mapping");
        if (args.token !== undefined) args.token = this.token(args.token, `${where}.args.token`);
        const op: Op = { kind: "ioctl", ...base, expect, fd: str(r.fd, "fd"), request, args };
        if (raw !== undefined) {
          op.raw = raw;
          for (const k of Object.keys(args)) if (k !== "int" && k !== "size" && k !== "argsz") throw this.err(`${where}.args.${k}`, "a request number takes args { int: N } or { size: BYTES, argsz?: N }");
          if (args.int !== undefined && args.size !== undefined) throw this.err(`${where}.args`, "expected int or size, not both");
        }
        if (request === "GROUP_GET_DEVICE_FD") op.as = as ?? name;
        return [op];
      }
      case "get_device_fd": {
        const a = r.get_device_fd;
        if (!isObj(a) || a.group === undefined) throw this.err(`${where}.get_device_fd`, "expected { group: FDNAME, bdf: BDF, token?: NAME } or { group, match: STRING }");
        const args: Raw = {};
        if (a.match !== undefined) args.match = String(a.match);
        else if (a.bdf !== undefined) args.bdf = String(a.bdf);
        else throw this.err(`${where}.get_device_fd`, "expected bdf or match");
        if (a.token !== undefined) args.token = this.token(a.token, `${where}.get_device_fd.token`);
        return [{ kind: "ioctl", ...base, expect, fd: String(a.group), request: "GROUP_GET_DEVICE_FD", args, as: as ?? name, from: name }];
      }
      case "set_token": {
        const a = r.set_token;
        if (!isObj(a) || a.fd === undefined || a.token === undefined) throw this.err(`${where}.set_token`, "expected { fd: FDNAME, token: NAME }");
        return [{ kind: "ioctl", ...base, expect, fd: String(a.fd), request: "DEVICE_FEATURE", args: { flags: "SET|PCI_VF_TOKEN", token: this.token(a.token, `${where}.set_token.token`) }, from: name }];
      }
      case "req_eventfd": {
        const a = r.req_eventfd;
        if (!isObj(a) || a.fd === undefined || a.eventfd === undefined) throw this.err(`${where}.req_eventfd`, "expected { fd: DEVICE-FD, eventfd: EVENTFD-NAME or -1 }");
        return [{ kind: "ioctl", ...base, expect, fd: String(a.fd), request: "DEVICE_SET_IRQS", args: { index: "REQ", eventfd: a.eventfd }, from: name }];
      }
      case "vfio_open": {
        const a = r.vfio_open;
        if (!isObj(a) || (a.bdf === undefined && a.match === undefined)) throw this.err(`${where}.vfio_open`, "expected { bdf: BDF, token?: NAME }");
        const bdf = String(a.bdf ?? String(a.match).split(" ")[0]);
        const dev = as ?? name;
        const ok: Expect = {};
        const sub = (suffix: string): string => this.uniqueName(`${name}.${suffix}`, where);
        const gArgs: Raw = a.match !== undefined ? { match: String(a.match) } : { bdf };
        if (a.token !== undefined) gArgs.token = this.token(a.token, `${where}.vfio_open.token`);
        const m = { proc, ...(only ? { only } : {}), from: name };
        return [
          { kind: "open", ...m, name: sub("container"), expect: ok, path: "/dev/vfio/vfio", flags: 2, as: `${dev}.c` },
          { kind: "open", ...m, name: sub("group"), expect: ok, groupOf: bdf, flags: 2, as: `${dev}.g` },
          { kind: "ioctl", ...m, name: sub("set_container"), expect: ok, fd: `${dev}.g`, request: "GROUP_SET_CONTAINER", args: { container: `${dev}.c` } },
          { kind: "ioctl", ...m, name: sub("set_iommu"), expect: ok, fd: `${dev}.c`, request: "SET_IOMMU", args: { type: "TYPE1v2" } },
          { kind: "ioctl", ...m, name, expect, fd: `${dev}.g`, request: "GROUP_GET_DEVICE_FD", args: gArgs, as: dev },
        ];
      }
    }
    throw this.err(where, `unknown op ${verb}`);
  }

  ensure(v: unknown, where: string): EnsureGoal {
    if (!isObj(v)) throw this.err(where, "expected { bdf, driver?, sriov_numvfs? } or { param: PATH, value } or { driver_loaded: NAME }");
    if (v.param !== undefined) return { param: String(v.param), value: String(v.value ?? "") };
    if (v.driver_loaded !== undefined) return { driver_loaded: String(v.driver_loaded) };
    if (v.bdf === undefined) throw this.err(where, "expected bdf");
    const g: EnsureGoal = { bdf: String(v.bdf) };
    if (v.driver !== undefined) g.driver = String(v.driver);
    if (v.sriov_numvfs !== undefined) g.sriov_numvfs = Number(v.sriov_numvfs);
    return g;
  }

  flags(v: unknown, table: Record<string, number>, where: string): number {
    return parseFlags(v, table, (m) => this.err(where, m));
  }

  expect(v: unknown, where: string): Expect {
    if (v === undefined) return {};
    if (v === "any") return { any: true };
    if (v === "ok") return {};
    if (v === "blocked") return { blocked: true };
    if (typeof v === "string" && /^E[A-Z0-9]+$/.test(v)) return { errno: v };
    if (!isObj(v)) throw this.err(where, 'expected a mapping (ret, errno, blocked, log, log_exact, log_absent, value, out), or "ok", "any", "blocked", or an errno name');
    const known = new Set(["ret", "errno", "blocked", "log", "log_exact", "log_absent", "value", "out", "nolog"]);
    for (const k of Object.keys(v)) if (!known.has(k)) throw this.err(`${where}.${k}`, `expected one of ${[...known].join(", ")}`);
    const e: Expect = {};
    if (v.ret !== undefined) e.ret = v.ret as Expect["ret"];
    if (v.errno !== undefined) e.errno = v.errno as Expect["errno"];
    if (v.blocked !== undefined) e.blocked = v.blocked as Expect["blocked"];
    if (v.log !== undefined) e.log = v.log as Expect["log"];
    if (v.log_exact !== undefined) e.log_exact = v.log_exact as Expect["log_exact"];
    if (v.nolog) e.log_exact = [];
    if (v.log_absent !== undefined) e.log_absent = v.log_absent as Expect["log_absent"];
    if (v.value !== undefined) e.value = typeof v.value === "number" ? String(v.value) : (v.value as Expect["value"]);
    if (v.out !== undefined) e.out = v.out as Expect["out"];
    return e;
  }
}

function extraKeys(verb: string): string[] {
  switch (verb) {
    case "write":
      return ["data"];
    case "readlink":
      return ["base"];
    case "stat":
      return ["nofollow"];
    case "open":
      return ["flags"];
    case "ioctl":
      return ["fd", "args"];
    default:
      return [];
  }
}

/** ioctl requests a scenario may name (without the VFIO_ prefix). */
export const REQUESTS = {
  GET_API_VERSION: 0,
  CHECK_EXTENSION: 1,
  SET_IOMMU: 2,
  GROUP_GET_STATUS: 3,
  GROUP_SET_CONTAINER: 4,
  GROUP_UNSET_CONTAINER: 5,
  GROUP_GET_DEVICE_FD: 6,
  DEVICE_GET_INFO: 7,
  GET_REGION_INFO: 8,
  GET_IRQ_INFO: 9,
  DEVICE_SET_IRQS: 10,
  DEVICE_RESET: 11,
  DEVICE_FEATURE: 17,
  DEVICE_BIND_IOMMUFD: 18,
  DEVICE_ATTACH_IOMMUFD_PT: 19,
  DEVICE_DETACH_IOMMUFD_PT: 20,
  /** iommufd (/dev/iommu): IOMMU_IOAS_ALLOC */
  IOMMU_IOAS_ALLOC: 0x81,
  /** a request number given as a number (`ioctl: 0x3b6e`) */
  RAW: -1,
} as const;
const ALIASES: Record<string, keyof typeof REQUESTS> = {
  DEVICE_GET_REGION_INFO: "GET_REGION_INFO",
  DEVICE_GET_IRQ_INFO: "GET_IRQ_INFO",
  SET_IRQS: "DEVICE_SET_IRQS",
  RESET: "DEVICE_RESET",
  FEATURE: "DEVICE_FEATURE",
  GET_DEVICE_FD: "GROUP_GET_DEVICE_FD",
  GET_INFO: "DEVICE_GET_INFO",
  BIND_IOMMUFD: "DEVICE_BIND_IOMMUFD",
  ATTACH_IOMMUFD_PT: "DEVICE_ATTACH_IOMMUFD_PT",
  DETACH_IOMMUFD_PT: "DEVICE_DETACH_IOMMUFD_PT",
  IOAS_ALLOC: "IOMMU_IOAS_ALLOC",
};

export function normaliseRequest(s: string): keyof typeof REQUESTS | null {
  const n = s.replace(/^VFIO_/, "");
  if (n === "RAW") return null;
  if (n in REQUESTS) return n as keyof typeof REQUESTS;
  return ALIASES[n] ?? null;
}

/** "A|B", ["A","B"], a number, or "0x…": OR of the named bits. */
export function parseFlags(v: unknown, table: Record<string, number>, err: (m: string) => Error): number {
  if (typeof v === "number") return v >>> 0;
  const parts = Array.isArray(v) ? v.map(String) : String(v).split("|");
  let f = 0;
  for (const p0 of parts) {
    const p = p0.trim();
    if (/^(0x[0-9a-f]+|\d+)$/i.test(p)) f |= Number(p);
    else if (p in table) f |= table[p]!;
    else throw err(`expected flag names (${Object.keys(table).join(", ")}) or a number, got ${JSON.stringify(p)}`);
  }
  return f >>> 0;
}

/** Resolve a per-profile value. */
export function forProfile<T>(v: PerProfile<T> | undefined, profile: string): T | undefined {
  if (v === undefined) return undefined;
  if (isObj(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => PROFILE_NAMES.includes(k))) return (v as Record<string, T>)[profile];
  return v as T;
}
