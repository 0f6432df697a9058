/**
 * Host descriptions: a YAML or JSON file that lists a host's PCI devices (SR-IOV capability,
 * IOMMU groups, initial drivers) and module parameters. Bad input names the field, what was
 * expected and what was found: "devices[2].sriov.total_vfs: expected an integer 0..65535, got -1".
 *
 * @example
 * ```ts
 * import { parseHost, Kernel } from "vfioctl";
 * const desc = parseHost(`devices:\n  - bdf: "0000:01:00.0"\n    vendor: 0x8086\n    device: 0x10c9\n`, "host.yaml");
 * const k = await Kernel.fromHost(desc);
 * ```
 */
import type { NetIfConfig } from "../net.js";
import { createRequire } from "node:module";
import { CONFIG_NAMES, KernelConfigError, profileOf, type KernelConfig, type KernelVersion } from "../profile.js";
import type { HostDriverSpec } from "../drivers/host-driver.js";
import { parseIdSpec } from "../drivers/host-driver.js";
import { formatBdf, parseBdf, virtfnRid } from "../pci/bdf.js";
import { closestName } from "./suggest.js";

export interface SriovDesc {
  total_vfs: number;
  offset: number;
  stride: number;
  vf_device: number;
  /** "own" (default): each VF in a new IOMMU group; "pf": VFs share the PF's group */
  vf_iommu_group?: "own" | "pf";
  /** VFs enabled at boot through the PF's driver */
  num_vfs?: number;
  drivers_autoprobe?: boolean;
  vf_bars?: number[];
  /** kinds of the VF BARs: "mem" (default), "mem-pref" (prefetchable: resource<N>_wc), "io" */
  vf_bar_types?: BarType[];
  /** VF i's ACPI companion, a path under /sys/devices (firmware_node), for the VFs the file knows */
  vf_acpi_nodes?: string[];
  /** last bus number behind the PF's bridge (default: wide enough) */
  bus_end?: number;
}

export type BarType = "mem" | "mem-pref" | "io";
const BAR_TYPES: readonly BarType[] = ["mem", "mem-pref", "io"];

export interface DeviceDesc {
  bdf: string;
  vendor: number;
  device: number;
  class?: number;
  subsystem_vendor?: number;
  subsystem_device?: number;
  revision?: number;
  header_type?: number;
  pcie?: boolean;
  numa_node?: number;
  /** IOMMU group number; devices naming the same number share it; omitted: a group of its own */
  iommu_group?: number | null;
  /** sysfs parent device (bridge), e.g. "0000:00:01.0"; default derived from the bus */
  parent?: string;
  /** driver to bind at boot: a name, "none", or omitted (probe like Linux does) */
  driver?: string;
  driver_override?: string;
  bars?: number[];
  /** kinds of the BARs: "mem" (default), "mem-pref" (prefetchable: resource<N>_wc), "io" */
  bar_types?: BarType[];
  rom_size?: number;
  reset_works?: boolean;
  /** the ACPI PCI interrupt link the device's INTx is routed through (x86 firmware): the first
   *  pci_enable_device of a device on a link not yet in use logs "ACPI: <name>: Enabled at IRQ <irq>" */
  acpi_irq_link?: { name: string; irq: number };
  /** the INTx line the firmware routed (sysfs irq; default 0) */
  irq?: number;
  /** an AER capability (aer_dev_*, aer/); VFs have their PF's */
  aer?: boolean;
  /** an ARI capability the bridge above forwards (ari_enabled of the device's bus) */
  ari?: boolean;
  /** the PCI PM capability (default true): d3cold_allowed, the "pm" reset */
  pm?: boolean;
  /** PME from the PM capability, wakeup enabled: power/wakeup*, wakeup/wakeup<N> */
  pme?: boolean;
  /** the ACPI companion, a path under /sys/devices ("LNXSYSTM:00/LNXSYBUS:00/PNP0A08:00/device:02/device:03") */
  acpi_node?: string;
  /** the PCIe link: { speed: GT/s (2.5, 5, 8, 16, 32, 64), width: lanes } (default 2.5 x1) */
  link?: { speed: number; width: number };
  /** the ASPM states the link supports: link/<state>_aspm (l0s, l1) */
  aspm?: string[];
  /** a Device Serial Number capability ("00-11-22-33-44-55-66-77" or a 64-bit number) */
  dsn?: string;
  sriov?: SriovDesc;
  /** free text shown by `vfioctl list` */
  label?: string;
}

/** The modelled kernel: its version and build options (the version's default where absent). */
export interface KernelDesc {
  version?: KernelVersion;
  config?: Partial<KernelConfig>;
}

export interface HostDesc {
  name?: string;
  /** the kernel version (any version string; "6.1" and "6.12" are the lab's Debian kernels) */
  profile?: KernelVersion;
  /** the kernel as a version and a configuration, e.g. { version: "6.17.1", config: { VFIO_DEVICE_CDEV: true } } */
  kernel?: KernelDesc;
  /** module parameters, e.g. { vfio_pci: { enable_sriov: true } } */
  modules?: { vfio_pci?: Partial<Record<"enable_sriov" | "disable_denylist" | "disable_idle_d3" | "nointxmask" | "disable_vga", boolean>> };
  /** drivers in registration order: names of modelled drivers or full specs */
  drivers?: (string | HostDriverSpec)[];
  devices: DeviceDesc[];
  /** what the host does with its network interfaces (named eth0, eth1 … in probe order):
   * { eth1: { up: true, addresses: ["192.168.122.10/24"], routes: ["default via 192.168.122.1"] } } */
  net?: Record<string, NetIfConfig>;
}

export class HostFileError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly expected: string,
    readonly found: unknown,
  ) {
    super(`${file}: ${field}: expected ${expected}, got ${show(found)}`);
    this.name = "HostFileError";
  }
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  try {
    const s = JSON.stringify(v);
    return s.length > 60 ? s.slice(0, 57) + "..." : s;
  } catch {
    return String(v);
  }
}

/** yaml's parse, loaded on first use: booting the default host needs no parser. */
let yamlParse: ((text: string) => unknown) | undefined;
function parseYaml(text: string): unknown {
  yamlParse ??= (createRequire(import.meta.url)("yaml") as typeof import("yaml")).parse;
  return yamlParse(text);
}

/** The number of keys of every mapping in a JSON value. */
function keyCount(v: unknown): number {
  if (typeof v !== "object" || v === null) return 0;
  let n = 0;
  if (Array.isArray(v)) for (const x of v) n += keyCount(x);
  else for (const k in v) n += 1 + keyCount((v as Record<string, unknown>)[k]);
  return n;
}

/**
 * JSON text as JSON.parse reads it, or undefined when it is not JSON or names a key twice in one
 * mapping (JSON.parse keeps the last silently; yaml refuses it, and gives the error). In valid
 * JSON every `"` outside a string opens one, so the string literals are found left to right, and
 * a literal followed by `:` is a key: the keys written equal the keys parsed unless one repeats.
 * A JSON host file then boots without loading yaml (~40 ms) and its parse (~40 ms for 16 PFs).
 */
function parseJson(text: string): unknown {
  if (!/^\s*[{[]/.test(text)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  let written = 0;
  for (const m of text.matchAll(/"(?:[^"\\]|\\.)*"(\s*:)?/g)) if (m[1] !== undefined) written++;
  return written === keyCount(raw) ? raw : undefined;
}

/** Parse and validate a host description (YAML or JSON text). */
export function parseHost(text: string, file = "<host>"): HostDesc {
  let raw = parseJson(text);
  if (raw === undefined) {
    try {
      raw = parseYaml(text);
    } catch (e) {
      throw new HostFileError(file, "(file)", "YAML or JSON", (e as Error).message.split("\n")[0]);
    }
  }
  return validateHost(raw, file);
}

export function validateHost(raw: unknown, file = "<host>"): HostDesc {
  const err = (field: string, expected: string, found: unknown) => new HostFileError(file, field, expected, found);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw err("(top level)", "a mapping with a devices list", raw);
  const r = raw as Record<string, unknown>;
  const known = new Set(["name", "profile", "kernel", "modules", "drivers", "devices", "net"]);
  for (const k of Object.keys(r)) if (!known.has(k)) throw err(k, `one of ${[...known].join(", ")}${didYouMean(k, known)}`, k);
  const int = (v: unknown, field: string, lo: number, hi: number): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) throw err(field, `an integer ${lo}..${hi}`, v);
    return v;
  };
  const bool = (v: unknown, field: string): boolean => {
    if (typeof v !== "boolean") throw err(field, "true or false", v);
    return v;
  };
  const out: HostDesc = { devices: [] };
  if (r.name !== undefined) {
    if (typeof r.name !== "string") throw err("name", "a string", r.name);
    out.name = r.name;
  }
  const versionOk = (v: string, field: string) => {
    try {
      profileOf(v);
    } catch (e) {
      throw err(field, 'a kernel version ("6.1", "6.12", "6.17.1", "6.12.117+deb13-amd64", "6.8.0-51-generic" …)', `${v} (${(e as Error).message})`);
    }
  };
  if (r.profile !== undefined) {
    const p = String(r.profile);
    versionOk(p, "profile");
    out.profile = p;
  }
  if (r.kernel !== undefined) {
    if (typeof r.kernel !== "object" || r.kernel === null || Array.isArray(r.kernel)) throw err("kernel", "a mapping (version, config)", r.kernel);
    const kr = r.kernel as Record<string, unknown>;
    for (const k of Object.keys(kr)) if (k !== "version" && k !== "config") throw err(`kernel.${k}`, `version or config${didYouMean(k, ["version", "config"])}`, k);
    const kd: KernelDesc = {};
    if (kr.version !== undefined) {
      const v = String(kr.version);
      versionOk(v, "kernel.version");
      kd.version = v;
    }
    if (out.profile !== undefined && kd.version !== undefined) throw err("kernel.version", "one kernel version (profile and kernel.version both given)", kd.version);
    if (kr.config !== undefined) {
      if (typeof kr.config !== "object" || kr.config === null || Array.isArray(kr.config)) throw err("kernel.config", `a mapping of ${CONFIG_NAMES.join(", ")} to true/false`, kr.config);
      const c: Partial<KernelConfig> = {};
      for (const [k, v] of Object.entries(kr.config as Record<string, unknown>)) {
        const name = k.replace(/^CONFIG_/, "") as keyof KernelConfig;
        if (!CONFIG_NAMES.includes(name)) throw err(`kernel.config.${k}`, `one of ${CONFIG_NAMES.join(", ")}`, k);
        c[name] = bool(v, `kernel.config.${k}`);
      }
      kd.config = c;
    }
    // checked against the file's own version; without one, at boot against the version that runs
    const v = kd.version ?? out.profile;
    if (v !== undefined) {
      try {
        profileOf(v, kd.config ?? {});
      } catch (e) {
        if (e instanceof KernelConfigError) throw err(`kernel.config.${e.field}`, e.expected, e.found);
        throw e;
      }
    }
    out.kernel = kd;
  }
  if (r.net !== undefined) {
    if (typeof r.net !== "object" || r.net === null || Array.isArray(r.net)) throw err("net", "a mapping of interface names (eth0 …) to { up, addresses, routes, master }", r.net);
    const net: Record<string, NetIfConfig> = {};
    const cidr = /^(?:\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2}|[0-9a-f:]+:[0-9a-f:]*\/\d{1,3})$/i;
    for (const [name, v] of Object.entries(r.net as Record<string, unknown>)) {
      const f = `net.${name}`;
      if (!/^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$/.test(name)) throw err(f, "an interface name (eth0, at most 15 characters)", name);
      if (typeof v !== "object" || v === null || Array.isArray(v)) throw err(f, "a mapping (up, addresses, routes, master)", v);
      const o = v as Record<string, unknown>;
      const keys = ["up", "addresses", "routes", "master"];
      for (const k of Object.keys(o)) if (!keys.includes(k)) throw err(`${f}.${k}`, `one of ${keys.join(", ")}${didYouMean(k, keys)}`, k);
      const c: NetIfConfig = {};
      if (o.up !== undefined) c.up = bool(o.up, `${f}.up`);
      const list = (k: "addresses" | "routes", ok: (x: string) => boolean, what: string): string[] | undefined => {
        if (o[k] === undefined) return undefined;
        if (!Array.isArray(o[k])) throw err(`${f}.${k}`, `a list of ${what}`, o[k]);
        return (o[k] as unknown[]).map((x, i) => {
          if (typeof x !== "string" || !ok(x)) throw err(`${f}.${k}[${i}]`, what, x);
          return x;
        });
      };
      const a = list("addresses", (x) => cidr.test(x), 'an address with its prefix ("10.0.0.5/24", "2001:db8::5/64")');
      if (a) c.addresses = a;
      const rt = list("routes", (x) => /^(default|\S+\/\d+)( via \S+)?$/.test(x), '"default", "default via GW" or "NET/LEN [via GW]"');
      if (rt) c.routes = rt;
      if (o.master !== undefined) {
        if (typeof o.master !== "string" || !/^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$/.test(o.master)) throw err(`${f}.master`, "an interface name (bond0, br0)", o.master);
        c.master = o.master;
      }
      net[name] = c;
    }
    out.net = net;
  }
  if (r.modules !== undefined) {
    if (typeof r.modules !== "object" || r.modules === null) throw err("modules", "a mapping", r.modules);
    const m = r.modules as Record<string, unknown>;
    for (const k of Object.keys(m)) if (k !== "vfio_pci") throw err(`modules.${k}`, `vfio_pci${k.replace(/-/g, "_") === "vfio_pci" || closestName(k, ["vfio_pci"]) ? " (module names are written with _)" : ""}`, k);
    if (m.vfio_pci !== undefined) {
      const vp = m.vfio_pci as Record<string, unknown>;
      if (typeof vp !== "object" || vp === null) throw err("modules.vfio_pci", "a mapping of parameters", vp);
      const params = ["enable_sriov", "disable_denylist", "disable_idle_d3", "nointxmask", "disable_vga"] as const;
      const o: Record<string, boolean> = {};
      for (const [k, v] of Object.entries(vp)) {
        if (!(params as readonly string[]).includes(k)) throw err(`modules.vfio_pci.${k}`, `one of ${params.join(", ")}${didYouMean(k, params)}`, k);
        o[k] = bool(v, `modules.vfio_pci.${k}`);
      }
      out.modules = { vfio_pci: o };
    }
  }
  if (r.drivers !== undefined) {
    if (!Array.isArray(r.drivers)) throw err("drivers", "a list of driver names or specs", r.drivers);
    out.drivers = r.drivers.map((d, i) => {
      if (typeof d === "string") return d;
      if (typeof d !== "object" || d === null) throw err(`drivers[${i}]`, "a driver name or a spec", d);
      const s = d as Record<string, unknown>;
      if (typeof s.name !== "string" || !/^[a-z0-9_-]+$/.test(s.name)) throw err(`drivers[${i}].name`, "a driver name [a-z0-9_-]", s.name);
      if (!Array.isArray(s.ids)) throw err(`drivers[${i}].ids`, 'a list like ["8086:10c9"]', s.ids);
      s.ids.forEach((id, j) => {
        try {
          parseIdSpec(String(id));
        } catch {
          throw err(`drivers[${i}].ids[${j}]`, '"vvvv:dddd" or "class:cccccc/mmmmmm"', id);
        }
      });
      return s as unknown as HostDriverSpec;
    });
  }
  if (!Array.isArray(r.devices)) throw err("devices", "a list of devices", r.devices);
  const seen = new Map<string, number>();
  r.devices.forEach((d0, i) => {
    const f = `devices[${i}]`;
    if (typeof d0 !== "object" || d0 === null) throw err(f, "a mapping", d0);
    const d = d0 as Record<string, unknown>;
    const fields = new Set(["bdf", "vendor", "device", "class", "subsystem_vendor", "subsystem_device", "revision", "header_type", "pcie", "numa_node", "iommu_group", "parent", "driver", "driver_override", "bars", "bar_types", "rom_size", "reset_works", "acpi_irq_link", "irq", "aer", "ari", "pm", "pme", "acpi_node", "link", "aspm", "dsn", "sriov", "label"]);
    for (const k of Object.keys(d)) if (!fields.has(k)) throw err(`${f}.${k}`, `a known device field${didYouMean(k, fields) || ` (${[...fields].join(", ")})`}`, k);
    if (typeof d.bdf !== "string" || !parseBdf(d.bdf)) throw err(`${f}.bdf`, 'a PCI address like "0000:01:00.0" (lowercase hex)', d.bdf);
    if (seen.has(d.bdf)) throw err(`${f}.bdf`, `an address not used by another device (devices[${seen.get(d.bdf)}] is ${d.bdf})`, d.bdf);
    seen.set(d.bdf, i);
    const dev: DeviceDesc = { bdf: d.bdf, vendor: int(d.vendor, `${f}.vendor`, 0, 0xffff), device: int(d.device, `${f}.device`, 0, 0xffff) };
    if (d.class !== undefined) dev.class = int(d.class, `${f}.class`, 0, 0xffffff);
    if (d.subsystem_vendor !== undefined) dev.subsystem_vendor = int(d.subsystem_vendor, `${f}.subsystem_vendor`, 0, 0xffff);
    if (d.subsystem_device !== undefined) dev.subsystem_device = int(d.subsystem_device, `${f}.subsystem_device`, 0, 0xffff);
    if (d.revision !== undefined) dev.revision = int(d.revision, `${f}.revision`, 0, 0xff);
    if (d.header_type !== undefined) dev.header_type = int(d.header_type, `${f}.header_type`, 0, 2);
    if (d.pcie !== undefined) dev.pcie = bool(d.pcie, `${f}.pcie`);
    if (d.numa_node !== undefined) dev.numa_node = int(d.numa_node, `${f}.numa_node`, -1, 1023);
    if (d.iommu_group !== undefined) dev.iommu_group = d.iommu_group === null ? null : int(d.iommu_group, `${f}.iommu_group`, 0, 65535);
    if (d.parent !== undefined) {
      if (typeof d.parent !== "string" || !parseBdf(d.parent)) throw err(`${f}.parent`, 'a bridge address like "0000:00:01.0"', d.parent);
      dev.parent = d.parent;
    }
    if (d.driver !== undefined) {
      if (typeof d.driver !== "string" || !/^[a-z0-9_-]+$/.test(d.driver)) throw err(`${f}.driver`, 'a driver name or "none"', d.driver);
      dev.driver = d.driver;
    }
    if (d.driver_override !== undefined) {
      if (typeof d.driver_override !== "string") throw err(`${f}.driver_override`, "a driver name", d.driver_override);
      dev.driver_override = d.driver_override;
    }
    if (d.bars !== undefined) {
      if (!Array.isArray(d.bars) || d.bars.length > 6) throw err(`${f}.bars`, "a list of up to 6 BAR sizes", d.bars);
      dev.bars = d.bars.map((b, j) => int(b, `${f}.bars[${j}]`, 0, Number.MAX_SAFE_INTEGER));
    }
    const barTypes = (v: unknown, field: string): BarType[] => {
      if (!Array.isArray(v) || v.length > 6) throw err(field, `a list of up to 6 BAR kinds (${BAR_TYPES.join(", ")})`, v);
      return v.map((t, j) => {
        if (!BAR_TYPES.includes(t as BarType)) throw err(`${field}[${j}]`, BAR_TYPES.map((x) => JSON.stringify(x)).join(", "), t);
        return t as BarType;
      });
    };
    const acpiPath = (v: unknown, field: string): string => {
      if (typeof v !== "string" || !/^[A-Za-z0-9_:.\-]+(\/[A-Za-z0-9_:.\-]+)*$/.test(v)) throw err(field, 'a path under /sys/devices like "LNXSYSTM:00/LNXSYBUS:00/PNP0A08:00/device:03"', v);
      return v;
    };
    if (d.bar_types !== undefined) dev.bar_types = barTypes(d.bar_types, `${f}.bar_types`);
    if (d.irq !== undefined) dev.irq = int(d.irq, `${f}.irq`, 0, 1023);
    for (const b of ["aer", "ari", "pm", "pme"] as const) if (d[b] !== undefined) dev[b] = bool(d[b], `${f}.${b}`);
    if (d.acpi_node !== undefined) dev.acpi_node = acpiPath(d.acpi_node, `${f}.acpi_node`);
    if (d.link !== undefined) {
      const l = d.link as Record<string, unknown>;
      if (typeof l !== "object" || l === null || ![2.5, 5, 8, 16, 32, 64].includes(l.speed as number)) throw err(`${f}.link.speed`, "a PCIe speed in GT/s: 2.5, 5, 8, 16, 32 or 64", (l as { speed?: unknown })?.speed);
      dev.link = { speed: l.speed as number, width: int(l.width, `${f}.link.width`, 1, 32) };
    }
    if (d.aspm !== undefined) {
      if (!Array.isArray(d.aspm) || d.aspm.some((x) => !["l0s", "l1", "l1_1", "l1_2", "l1_1_pcipm", "l1_2_pcipm", "clkpm"].includes(x as string))) throw err(`${f}.aspm`, 'a list of ASPM states ("l0s", "l1", "l1_1", "l1_2", "l1_1_pcipm", "l1_2_pcipm", "clkpm")', d.aspm);
      dev.aspm = d.aspm as string[];
    }
    if (d.dsn !== undefined) {
      const v = String(d.dsn).toLowerCase();
      if (!/^([0-9a-f]{2}-){7}[0-9a-f]{2}$|^0x[0-9a-f]{1,16}$/.test(v)) throw err(`${f}.dsn`, 'a Device Serial Number "00-11-22-33-44-55-66-77" or 0x…', d.dsn);
      dev.dsn = v;
    }
    if (d.rom_size !== undefined) dev.rom_size = int(d.rom_size, `${f}.rom_size`, 0, 1 << 24);
    if (d.reset_works !== undefined) dev.reset_works = bool(d.reset_works, `${f}.reset_works`);
    if (d.acpi_irq_link !== undefined) {
      const l = d.acpi_irq_link as Record<string, unknown>;
      const lf = `${f}.acpi_irq_link`;
      if (typeof l !== "object" || l === null || typeof l.name !== "string" || !/^\\[A-Z0-9_.]+$/.test(l.name) || Object.keys(l).some((k) => k !== "name" && k !== "irq")) throw err(lf, 'a mapping { name: "\\_SB_.GSIA", irq: 16 }', l);
      dev.acpi_irq_link = { name: l.name, irq: int(l.irq, `${lf}.irq`, 0, 1023) };
    }
    if (d.label !== undefined) dev.label = String(d.label);
    if (d.sriov !== undefined) {
      const s = d.sriov as Record<string, unknown>;
      const sf = `${f}.sriov`;
      if (typeof s !== "object" || s === null) throw err(sf, "a mapping (total_vfs, offset, stride, vf_device)", s);
      const sk = new Set(["total_vfs", "offset", "stride", "vf_device", "vf_iommu_group", "num_vfs", "drivers_autoprobe", "vf_bars", "vf_bar_types", "vf_acpi_nodes", "bus_end"]);
      for (const k of Object.keys(s)) if (!sk.has(k)) throw err(`${sf}.${k}`, `a known SR-IOV field${didYouMean(k, sk) || ` (${[...sk].join(", ")})`}`, k);
      const sr: SriovDesc = {
        total_vfs: int(s.total_vfs, `${sf}.total_vfs`, 0, 65535),
        offset: int(s.offset, `${sf}.offset`, 0, 65535),
        stride: int(s.stride, `${sf}.stride`, 0, 65535),
        vf_device: int(s.vf_device, `${sf}.vf_device`, 0, 0xffff),
      };
      if (sr.total_vfs > 0 && sr.offset === 0) throw err(`${sf}.offset`, "a First VF Offset > 0 (sriov_init fails with EIO on 0)", 0);
      if (sr.total_vfs > 1 && sr.stride === 0) throw err(`${sf}.stride`, "a VF Stride > 0 when total_vfs > 1", 0);
      if (s.vf_iommu_group !== undefined) {
        if (s.vf_iommu_group !== "own" && s.vf_iommu_group !== "pf") throw err(`${sf}.vf_iommu_group`, '"own" or "pf"', s.vf_iommu_group);
        sr.vf_iommu_group = s.vf_iommu_group;
      }
      if (s.num_vfs !== undefined) {
        if (typeof s.num_vfs === "number" && Number.isInteger(s.num_vfs) && s.num_vfs > sr.total_vfs) throw err(`${sf}.num_vfs`, `at most total_vfs (${sr.total_vfs}): a PF cannot enable more VFs than its SR-IOV capability's TotalVFs`, s.num_vfs);
        sr.num_vfs = int(s.num_vfs, `${sf}.num_vfs`, 0, sr.total_vfs);
      }
      if (s.drivers_autoprobe !== undefined) sr.drivers_autoprobe = bool(s.drivers_autoprobe, `${sf}.drivers_autoprobe`);
      if (s.vf_bars !== undefined) {
        if (!Array.isArray(s.vf_bars) || s.vf_bars.length > 6) throw err(`${sf}.vf_bars`, "a list of up to 6 BAR sizes", s.vf_bars);
        sr.vf_bars = s.vf_bars.map((b, j) => int(b, `${sf}.vf_bars[${j}]`, 0, Number.MAX_SAFE_INTEGER));
      }
      if (s.vf_bar_types !== undefined) sr.vf_bar_types = barTypes(s.vf_bar_types, `${sf}.vf_bar_types`);
      if (s.vf_acpi_nodes !== undefined) {
        if (!Array.isArray(s.vf_acpi_nodes) || s.vf_acpi_nodes.length > sr.total_vfs) throw err(`${sf}.vf_acpi_nodes`, `a list of at most total_vfs (${sr.total_vfs}) paths under /sys/devices`, s.vf_acpi_nodes);
        sr.vf_acpi_nodes = s.vf_acpi_nodes.map((x, j) => acpiPath(x, `${sf}.vf_acpi_nodes[${j}]`));
      }
      if (s.bus_end !== undefined) sr.bus_end = int(s.bus_end, `${sf}.bus_end`, 0, 255);
      dev.sriov = sr;
    }
    out.devices.push(dev);
  });
  checkVfAddresses(out, err);
  return out;
}

/** " (did you mean X?)" for a key within two edits of a known one, else "". */
function didYouMean(k: string, known: Iterable<string>): string {
  const c = closestName(k, [...known]);
  return c ? ` (did you mean ${c}?)` : "";
}

/**
 * Every VF a PF can have (VF i at rid = PF rid + offset + stride·i, pci_iov_virtfn_bus/devfn,
 * for i < total_vfs) must land on a bus number ≤ 255 and on an address no declared device and no
 * other PF's VF uses: on hardware the routing IDs are the PF's, so a declared device there is
 * impossible (the model would silently replace it when the VF is created).
 */
function checkVfAddresses(host: HostDesc, err: (field: string, expected: string, found: unknown) => HostFileError): void {
  const declared = new Map(host.devices.map((d, i) => [d.bdf, i]));
  const vfOwner = new Map<string, { pf: number; vf: number }>();
  host.devices.forEach((d, i) => {
    const s = d.sriov;
    if (!s || s.total_vfs === 0) return;
    const a = parseBdf(d.bdf)!;
    const sf = `devices[${i}].sriov`;
    for (let vf = 0; vf < s.total_vfs; vf++) {
      const r = virtfnRid(a.bus, a.devfn, s.offset, s.stride, vf);
      if (r.bus > 255) {
        throw err(`${sf}.total_vfs`, `VFs that fit below bus 0xff: with offset ${s.offset} and stride ${s.stride}, VF${vf} of ${d.bdf} would be on bus 0x${r.bus.toString(16)} (at most ${vf} VFs fit)`, s.total_vfs);
      }
      const bdf = formatBdf(a.domain, r.bus, r.devfn);
      const other = declared.get(bdf);
      if (other !== undefined) {
        throw err(`devices[${other}].bdf`, `an address outside the VFs of devices[${i}] (${d.bdf}: offset ${s.offset}, stride ${s.stride}, total_vfs ${s.total_vfs} puts VF${vf} at ${bdf})`, bdf);
      }
      const prev = vfOwner.get(bdf);
      if (prev !== undefined) {
        const p = host.devices[prev.pf]!;
        throw err(`${sf}.offset`, `VF addresses apart from devices[${prev.pf}]'s (${p.bdf} VF${prev.vf} is ${bdf}, and so would ${d.bdf} VF${vf} be)`, s.offset);
      }
      vfOwner.set(bdf, { pf: i, vf });
    }
  });
}
