/**
 * The host config: the desired state of an SR-IOV host in one YAML file (default
 * `/etc/vfioctl/host.yaml`). Per PF: how it is found, its driver, its VF count, which VFs go to
 * which driver, and who sets its VF token. Bad input names the field, what was expected and what
 * was found: "pfs[0].vfs: expected an integer 0..65535, got -1". Nothing here touches the host.
 *
 * ```yaml
 * version: 1
 * boot:
 *   before: [libvirtd.service]        # units that consume the VFs start after vfioctl
 * pfs:
 *   - name: lab-igb                   # key of the PF's token in the store
 *     match: { bdf: "0000:01:00.0" }  # or { id: "8086:10c9", path: "0000:00:02.0/00.0" } or { serial: "00-11-..." }
 *     driver: vfio-pci                # vfio-pci | pci-pf-stub | a host driver (igb, ice …)
 *     vfs: 2
 *     vf_drivers:                     # default: every VF on vfio-pci
 *       - { vfs: "1", driver: igbvf, trust_host_driver: true }
 *     token: generate                 # generate | external | { file: PATH } | { policy: …, readers: { group: kvm }, owner: … }
 * ```
 *
 * @example
 * ```ts
 * import { parseConfig } from "vfioctl";
 * const c = parseConfig("version: 1\npfs:\n  - match: { bdf: '0000:01:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: generate\n", "host.yaml");
 * c.pfs[0]!.token.policy; // "generate"
 * ```
 */
import { parse as parseYaml } from "yaml";
import { isBdf } from "../lib/bdf.js";
import { shown, VfioctlError } from "../lib/errors.js";

export const DEFAULT_CONFIG = "/etc/vfioctl/host.yaml";
export const DEFAULT_STORE = "/etc/vfioctl/tokens";
export const DEFAULT_STATE_DIR = "/var/lib/vfioctl";

/** How a configured PF is found on the host. */
export type Selector =
  | { by: "bdf"; bdf: string }
  /** vendor:device plus the PCI path from the root bus (devfn hops survive bus renumbering) */
  | { by: "path"; vendor: number; device: number; path: string }
  /** the PCIe Device Serial Number (extended capability 0x0003), as lspci prints it */
  | { by: "serial"; serial: string };

export type TokenPolicy =
  | { policy: "generate"; readers: Readers }
  | { policy: "file"; file: string; readers: Readers }
  | { policy: "external"; owner: string | null }
  | { policy: "none" };

/** Who may read a PF's token in the store: root only (0600), or a group (0640). */
export type Readers = { group: string | null };

export interface VfRule {
  /** VF indexes (virtfn numbers) the rule covers */
  vfs: number[];
  driver: string;
  /** a host driver on a VF of a vfio-pci PF: the operator acknowledged the kernel's trust warning */
  trustHostDriver: boolean;
}

export interface PfConfig {
  /** store key and display name */
  name: string;
  match: Selector;
  driver: string;
  vfs: number;
  vfDrivers: VfRule[];
  token: TokenPolicy;
  /** field path for messages: "pfs[0]" */
  field: string;
}

export interface HostConfig {
  file: string;
  version: 1;
  store: string;
  stateDir: string;
  boot: { before: string[] };
  pfs: PfConfig[];
}

export class ConfigError extends VfioctlError {
  constructor(
    readonly file: string,
    readonly field: string,
    expected: string,
    found: unknown,
  ) {
    super("BAD_INPUT", `${file}: ${field}: expected ${expected}, got ${shown(found)}`, { subject: file, fix: `edit ${file} (see docs/host-config.md)` });
  }
}

const DRIVER_RE = /^[a-z0-9_-]{1,32}$/;
const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const GROUP_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const PATH_RE = /^[0-9a-f]{4}:00:[01][0-9a-f]\.[0-7](\/[01][0-9a-f]\.[0-7])*$/;
const SERIAL_RE = /^[0-9a-f]{2}(-[0-9a-f]{2}){7}$/;
const UNIT_RE = /^[A-Za-z0-9:_.@\\-]+\.(service|target|socket|mount|path)$/;

/** Parse a VF index list: "all", 3, [0, 2], "0-3,5". */
function vfList(v: unknown, n: number, field: string, err: (f: string, e: string, x: unknown) => ConfigError): number[] {
  if (v === "all") return [...Array(n).keys()];
  const items = Array.isArray(v) ? v : typeof v === "number" ? [v] : typeof v === "string" ? v.split(",") : null;
  if (!items || items.length === 0) throw err(field, '"all", an index, a list of indexes or ranges like "0-3,5"', v);
  const out = new Set<number>();
  for (const it of items) {
    const s = String(it).trim();
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
    if (!m) throw err(field, '"all", an index, a list of indexes or ranges like "0-3,5"', v);
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    if (b < a || b >= n) throw err(field, `VF indexes 0..${n - 1} (the PF has vfs: ${n})`, s);
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

/** Parse and validate a host config (YAML or JSON text). */
export function parseConfig(text: string, file = DEFAULT_CONFIG): HostConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigError(file, "(file)", "YAML or JSON", (e as Error).message.split("\n")[0]);
  }
  return validateConfig(raw, file);
}

export function validateConfig(raw: unknown, file = DEFAULT_CONFIG): HostConfig {
  const err = (field: string, expected: string, found: unknown) => new ConfigError(file, field, expected, found);
  const mapping = (v: unknown, field: string, what: string): Record<string, unknown> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw err(field, what, v);
    return v as Record<string, unknown>;
  };
  const only = (m: Record<string, unknown>, field: string, keys: string[]) => {
    for (const k of Object.keys(m)) if (!keys.includes(k)) throw err(field ? `${field}.${k}` : k, `one of ${keys.join(", ")}`, k);
  };
  const absPath = (v: unknown, field: string): string => {
    if (typeof v !== "string" || !v.startsWith("/") || v.includes("\0") || /(^|\/)\.\.(\/|$)/.test(v)) throw err(field, "an absolute path without ..", v);
    return v;
  };
  const r = mapping(raw, "(top level)", "a mapping with version: 1 and a pfs list");
  only(r, "", ["version", "store", "state_dir", "boot", "pfs"]);
  if (r.version !== 1) throw err("version", "1", r.version);
  const cfg: HostConfig = { file, version: 1, store: DEFAULT_STORE, stateDir: DEFAULT_STATE_DIR, boot: { before: [] }, pfs: [] };
  if (r.store !== undefined) cfg.store = absPath(r.store, "store");
  if (r.state_dir !== undefined) cfg.stateDir = absPath(r.state_dir, "state_dir");
  if (r.boot !== undefined) {
    const b = mapping(r.boot, "boot", "a mapping (before: [units])");
    only(b, "boot", ["before"]);
    if (b.before !== undefined) {
      if (!Array.isArray(b.before)) throw err("boot.before", "a list of systemd units", b.before);
      cfg.boot.before = b.before.map((u, i) => {
        if (typeof u !== "string" || !UNIT_RE.test(u)) throw err(`boot.before[${i}]`, 'a systemd unit name like "libvirtd.service"', u);
        return u;
      });
    }
  }
  if (!Array.isArray(r.pfs)) throw err("pfs", "a list of PFs", r.pfs);
  const names = new Map<string, string>();
  const bdfs = new Map<string, string>();
  r.pfs.forEach((p0, i) => {
    const f = `pfs[${i}]`;
    const p = mapping(p0, f, "a mapping (match, driver, vfs, token)");
    only(p, f, ["name", "match", "driver", "vfs", "vf_drivers", "token"]);
    const m = mapping(p.match, `${f}.match`, 'a mapping: { bdf: "0000:01:00.0" }, { id: "8086:10c9", path: "0000:00:02.0/00.0" } or { serial: "…" }');
    only(m, `${f}.match`, ["bdf", "id", "path", "serial"]);
    let match: Selector;
    const kinds = ["bdf", "path", "serial"].filter((k) => m[k] !== undefined);
    if (kinds.length !== 1) throw err(`${f}.match`, "exactly one of bdf, path (with id) or serial", Object.keys(m));
    if (m.bdf !== undefined) {
      if (m.id !== undefined) throw err(`${f}.match.id`, "nothing with bdf (the address names one device)", m.id);
      if (!isBdf(m.bdf)) throw err(`${f}.match.bdf`, 'a PCI address "DDDD:BB:SS.F" in lowercase hex', m.bdf);
      match = { by: "bdf", bdf: m.bdf };
    } else if (m.path !== undefined) {
      if (typeof m.id !== "string" || !/^[0-9a-f]{4}:[0-9a-f]{4}$/.test(m.id)) throw err(`${f}.match.id`, 'vendor:device in lowercase hex like "8086:10c9" (required with path)', m.id);
      if (typeof m.path !== "string" || !PATH_RE.test(m.path)) throw err(`${f}.match.path`, 'the root-bus device then each hop\'s slot.function, like "0000:00:02.0/00.0"', m.path);
      match = { by: "path", vendor: parseInt(m.id.slice(0, 4), 16), device: parseInt(m.id.slice(5), 16), path: m.path };
    } else {
      const s = typeof m.serial === "string" ? m.serial.toLowerCase() : m.serial;
      if (typeof s !== "string" || !SERIAL_RE.test(s)) throw err(`${f}.match.serial`, 'a Device Serial Number as lspci prints it, like "00-1b-21-ff-ff-12-34-56"', m.serial);
      if (m.id !== undefined) throw err(`${f}.match.id`, "nothing with serial", m.id);
      match = { by: "serial", serial: s };
    }
    const name = p.name === undefined ? (match.by === "bdf" ? `pci-${match.bdf.replace(/:/g, "-")}` : match.by === "serial" ? `dsn-${match.serial}` : `path-${match.path.replace(/[:/]/g, "-")}`) : p.name;
    if (typeof name !== "string" || !NAME_RE.test(name)) throw err(`${f}.name`, "a name of lowercase letters, digits, . _ - (up to 63)", p.name);
    if (names.has(name)) throw err(`${f}.name`, `a name not used by ${names.get(name)}`, name);
    names.set(name, f);
    if (match.by === "bdf") {
      if (bdfs.has(match.bdf)) throw err(`${f}.match.bdf`, `an address not used by ${bdfs.get(match.bdf)}`, match.bdf);
      bdfs.set(match.bdf, f);
    }
    if (typeof p.driver !== "string" || !DRIVER_RE.test(p.driver)) throw err(`${f}.driver`, 'a driver name: vfio-pci, pci-pf-stub or a host driver like igb', p.driver);
    const vfs = p.vfs === undefined ? 0 : p.vfs;
    if (typeof vfs !== "number" || !Number.isInteger(vfs) || vfs < 0 || vfs > 65535) throw err(`${f}.vfs`, "an integer 0..65535", p.vfs);
    const vfDrivers: VfRule[] = [];
    if (p.vf_drivers !== undefined) {
      if (!Array.isArray(p.vf_drivers)) throw err(`${f}.vf_drivers`, "a list of { vfs, driver }", p.vf_drivers);
      const taken = new Map<number, number>();
      p.vf_drivers.forEach((v0, j) => {
        const vf = `${f}.vf_drivers[${j}]`;
        const v = mapping(v0, vf, "a mapping { vfs, driver }");
        only(v, vf, ["vfs", "driver", "trust_host_driver"]);
        const idx = vfList(v.vfs, vfs, `${vf}.vfs`, err);
        for (const x of idx) {
          if (taken.has(x)) throw err(`${vf}.vfs`, `VFs not already given a driver by ${f}.vf_drivers[${taken.get(x)}]`, x);
          taken.set(x, j);
        }
        if (typeof v.driver !== "string" || !DRIVER_RE.test(v.driver)) throw err(`${vf}.driver`, "a driver name like vfio-pci or iavf", v.driver);
        if (v.trust_host_driver !== undefined && typeof v.trust_host_driver !== "boolean") throw err(`${vf}.trust_host_driver`, "true or false", v.trust_host_driver);
        const trust = v.trust_host_driver === true;
        if (p.driver === "vfio-pci" && v.driver !== "vfio-pci" && !trust) {
          throw err(`${vf}.trust_host_driver`, `true to put VFs of a vfio-pci PF on ${v.driver} (the VF then leaves vfio: the PF's userspace driver can no longer rely on it, and the kernel logs "VF … bound to driver ${v.driver} while PF bound to driver vfio-pci")`, v.trust_host_driver);
        }
        vfDrivers.push({ vfs: idx, driver: v.driver, trustHostDriver: trust });
      });
    }
    const readers = (t: Record<string, unknown>, tf: string): Readers => {
      if (t.readers === undefined || t.readers === "root") return { group: null };
      const rd = mapping(t.readers, `${tf}.readers`, '"root" or { group: NAME }');
      only(rd, `${tf}.readers`, ["group"]);
      if (typeof rd.group !== "string" || !GROUP_RE.test(rd.group)) throw err(`${tf}.readers.group`, "a group name", rd.group);
      return { group: rd.group };
    };
    let token: TokenPolicy;
    const tf = `${f}.token`;
    if (p.driver !== "vfio-pci") {
      if (p.token !== undefined) throw err(tf, `nothing for a PF on ${p.driver} (only PFs on vfio-pci have a VF token)`, p.token);
      token = { policy: "none" };
    } else {
      if (p.token === undefined) throw err(tf, "generate, external or { file: PATH } (a PF on vfio-pci has a VF token: say who sets it)", p.token);
      const t: Record<string, unknown> = typeof p.token === "string" ? { policy: p.token } : mapping(p.token, tf, "generate, external or { file: PATH }");
      if (t.policy === undefined && t.file !== undefined) t.policy = "file";
      only(t, tf, ["policy", "file", "readers", "owner"]);
      if (t.policy === "generate") {
        if (t.file !== undefined || t.owner !== undefined) throw err(tf, "only readers with generate", t);
        token = { policy: "generate", readers: readers(t, tf) };
      } else if (t.policy === "file") {
        token = { policy: "file", file: absPath(t.file, `${tf}.file`), readers: readers(t, tf) };
        if (t.owner !== undefined) throw err(`${tf}.owner`, "nothing with file (the file is the source)", t.owner);
      } else if (t.policy === "external") {
        if (t.file !== undefined || t.readers !== undefined) throw err(tf, "only owner with external (vfioctl neither stores nor sets this token)", t);
        if (t.owner !== undefined && (typeof t.owner !== "string" || !t.owner.trim())) throw err(`${tf}.owner`, "the program that sets the token, e.g. pf_bb_config", t.owner);
        token = { policy: "external", owner: typeof t.owner === "string" ? t.owner : null };
      } else throw err(`${tf}.policy`, "generate, file or external", t.policy);
    }
    const pf: PfConfig = { name, match, driver: p.driver, vfs, vfDrivers, token, field: f };
    cfg.pfs.push(pf);
  });
  return cfg;
}

/** The driver VF `i` of `pf` should end up on. */
export function vfDriverOf(pf: PfConfig, i: number): VfRule | null {
  const r = pf.vfDrivers.find((x) => x.vfs.includes(i));
  if (r) return r;
  return pf.driver === "vfio-pci" ? { vfs: [i], driver: "vfio-pci", trustHostDriver: false } : null;
}

/** True when some PF needs vfio-pci's enable_sriov=1 (a vfio-pci PF with VFs). */
export function needsEnableSriov(cfg: HostConfig): boolean {
  return cfg.pfs.some((p) => p.driver === "vfio-pci" && p.vfs > 0);
}
