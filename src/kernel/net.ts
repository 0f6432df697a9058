/**
 * Network interfaces of the model's NIC drivers, as far as a tool deciding whether the host uses
 * a device can see them: a net driver's probe registers a netdev under the PCI device
 * (/sys/bus/pci/devices/BDF/net/ethN, /sys/class/net/ethN), its remove unregisters it. What the
 * host does with the interface (link up, addresses, routes, a bond or bridge master) is a model
 * property set with {@link NetCore.configure}; it shows in /sys/class/net/IF/{flags,operstate,
 * master} and /proc/net/{route,ipv6_route,if_inet6,fib_trie} in the kernel's formats.
 * Interface names are given in probe order (eth0, eth1, …) and kept per device across rebinds,
 * the way a udev rule keeps a name.
 *
 * @example
 * ```ts
 * const k = await bootKernel();
 * k.net.configure("eth0", { up: true, addresses: ["10.0.0.5/24"], routes: ["default via 10.0.0.1"] });
 * ```
 */
import type { Kernel } from "./kernel.js";
import type { PciDev } from "./pci/pci.js";

/** What the host does with an interface (model-only). */
export interface NetIfConfig {
  /** IFF_UP (ip link set IF up); operstate "up" */
  up?: boolean;
  /** "10.0.0.5/24", "2001:db8::5/64": shown while the interface is up */
  addresses?: string[];
  /** "default via 10.0.0.1", "default", "192.168.7.0/24": routes through the interface while it is up */
  routes?: string[];
  /** the bond, bridge or team it is enslaved to (/sys/class/net/IF/master) */
  master?: string;
}

export interface NetDev {
  name: string;
  ifindex: number;
  dev: PciDev;
}

/** Drivers whose probe registers a netdev (the modelled NIC drivers). */
const NET_DRIVERS = new Set(["igb", "igbvf", "ice", "iavf", "mlx5_core", "ixgbe", "ixgbevf", "i40e"]);

export class NetCore {
  private readonly names = new Map<string, string>();
  private readonly live = new Map<string, NetDev>();
  private readonly config = new Map<string, NetIfConfig>();
  private nextIndex = 2; // 1 is lo
  /** every name ever given (the values of `names`) and the lowest ethN that may be free */
  private readonly used = new Set<string>();
  private nextEth = 0;
  /** the live netdev of each PCI device (a device has one name, so at most one) */
  private readonly byDev = new Map<PciDev, NetDev>();
  /** `devices()` until the next register/unregister */
  private sorted: NetDev[] | null = null;

  constructor(k: Kernel) {
    k.drivers.registerNotifier((_k, _t, ev, dev) => {
      if (ev === "bound_driver" && dev.driver && NET_DRIVERS.has(dev.driver.name)) this.register(dev);
      else if (ev === "unbind_driver" || ev === "del_device") this.unregister(dev);
    });
  }

  private register(dev: PciDev): void {
    let name = this.names.get(dev.name);
    if (!name) {
      // names are never given back (a device keeps its name across rebinds), so the lowest
      // free ethN only moves up: one counter instead of a set of every name per probe
      while (this.used.has(`eth${this.nextEth}`)) this.nextEth++;
      name = `eth${this.nextEth}`;
      this.names.set(dev.name, name);
      this.used.add(name);
    }
    const old = this.live.get(name);
    if (old) this.byDev.delete(old.dev);
    const nd = { name, ifindex: this.nextIndex++, dev };
    this.live.set(name, nd);
    this.byDev.set(dev, nd);
    this.sorted = null;
  }

  private unregister(dev: PciDev): void {
    const name = this.names.get(dev.name);
    if (name && this.live.get(name)?.dev === dev) {
      this.live.delete(name);
      this.byDev.delete(dev);
      this.sorted = null;
    }
  }

  /** Set what the host does with interface `name` (it need not exist yet). */
  configure(name: string, cfg: NetIfConfig): void {
    this.config.set(name, { ...cfg });
  }

  configOf(name: string): NetIfConfig {
    return this.config.get(name) ?? {};
  }

  /** The registered netdevs, by name. */
  devices(): NetDev[] {
    this.sorted ??= [...this.live.values()].sort((a, b) => byName(a.name, b.name));
    return [...this.sorted];
  }

  get(name: string): NetDev | undefined {
    return this.live.get(name);
  }

  /** The netdevs of one PCI device. */
  of(dev: PciDev): NetDev[] {
    const n = this.byDev.get(dev);
    return n ? [n] : [];
  }

  /** include/uapi/linux/if.h: IFF_UP 0x1, IFF_BROADCAST 0x2, IFF_MULTICAST 0x1000 (a down NIC reads 0x1002) */
  flags(name: string): number {
    return 0x1002 | (this.configOf(name).up ? 1 : 0);
  }

  private upDevs(): { n: NetDev; c: NetIfConfig }[] {
    return this.devices()
      .map((n) => ({ n, c: this.configOf(n.name) }))
      .filter((x) => x.c.up);
  }

  /** net/ipv4/route.c rt_cache_seq_show's table (/proc/net/route): main-table IPv4 routes. */
  procRoute(): string {
    const rows = ["Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"];
    const line = (iface: string, dst: number, gw: number, flags: number, mask: number) =>
      `${iface}\t${hexLe(dst)}\t${hexLe(gw)}\t${flags.toString(16).padStart(4, "0")}\t0\t0\t0\t${hexLe(mask)}\t0\t0\t0`;
    for (const { n, c } of this.upDevs()) {
      for (const r of c.routes ?? []) {
        const m = /^default(?: via (\d+\.\d+\.\d+\.\d+))?$/.exec(r);
        if (m) rows.push(line(n.name, 0, m[1] ? ip4(m[1]) : 0, m[1] ? 0x3 : 0x1, 0));
        else {
          const cidr = parse4(r);
          if (cidr) rows.push(line(n.name, cidr.net, 0, 0x1, cidr.mask));
        }
      }
      for (const a of c.addresses ?? []) {
        const cidr = parse4(a);
        if (cidr && cidr.len < 32) rows.push(line(n.name, cidr.net, 0, 0x1, cidr.mask));
      }
    }
    return rows.join("\n") + "\n";
  }

  /** net/ipv4/fib_trie.c fib_trie_seq_show, reduced: each prefix and each local address. */
  procFibTrie(): string {
    const out: string[] = [];
    for (const table of ["Main", "Local"]) {
      out.push(`${table}:`, "  +-- 0.0.0.0/0 3 0 5");
      for (const { c } of this.upDevs()) {
        for (const a of c.addresses ?? []) {
          const cidr = parse4(a);
          if (!cidr) continue;
          out.push(`     |-- ${fmt4(cidr.net)}`, `        /${cidr.len} link UNICAST`);
          if (table === "Local") out.push(`     |-- ${fmt4(cidr.addr)}`, "        /32 host LOCAL");
        }
      }
    }
    return out.join("\n") + "\n";
  }

  /** net/ipv6/addrconf.c if6_seq_show: address, ifindex, prefix length, scope, flags, name. */
  procIfInet6(): string {
    const out: string[] = [];
    for (const { n, c } of this.upDevs()) {
      for (const a of c.addresses ?? []) {
        const v6 = parse6(a);
        if (v6) out.push(`${v6.hex} ${hex2(n.ifindex)} ${hex2(v6.len)} ${v6.hex.startsWith("fe8") ? "20" : "00"} 80 ${n.name.padStart(8)}`);
      }
    }
    return out.length ? out.join("\n") + "\n" : "";
  }

  /** net/ipv6/route.c ipv6_route_seq_show: dest, len, src, len, next hop, metric, refcnt, use, flags, device. */
  procIpv6Route(): string {
    const z = "0".repeat(32);
    const out: string[] = [];
    for (const { n, c } of this.upDevs()) {
      for (const a of c.addresses ?? []) {
        const v6 = parse6(a);
        if (v6) out.push(`${v6.net} ${hex2(v6.len)} ${z} 00 ${z} 00000100 00000001 00000000 00000001 ${n.name.padStart(8)}`);
      }
      for (const r of c.routes ?? []) if (/^(default6|::\/0)/.test(r)) out.push(`${z} 00 ${z} 00 ${z} 00000400 00000001 00000000 00000003 ${n.name.padStart(8)}`);
    }
    return out.length ? out.join("\n") + "\n" : "";
  }
}

/**
 * Interface names in natural order (eth2 before eth10), as `localeCompare(b, "en", { numeric:
 * true })` orders them; the ethN names the model gives are compared by number without building
 * an ICU collator (the first one costs milliseconds of start-up).
 */
function byName(a: string, b: string): number {
  const ma = /^eth(\d{1,9})$/.exec(a);
  const mb = ma && /^eth(\d{1,9})$/.exec(b);
  if (ma && mb) return Number(ma[1]) - Number(mb[1]);
  return a.localeCompare(b, "en", { numeric: true });
}

const hex2 = (n: number) => n.toString(16).padStart(2, "0");
/** An IPv4 address as /proc/net/route prints it: the 32-bit value in host (little-endian) byte order, %08X. */
function hexLe(v: number): string {
  const b = [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  return b.reverse().map((x) => x.toString(16).toUpperCase().padStart(2, "0")).join("");
}
const ip4 = (s: string) => s.split(".").reduce((a, x) => ((a << 8) | Number(x)) >>> 0, 0);
const fmt4 = (v: number) => [24, 16, 8, 0].map((s) => (v >>> s) & 255).join(".");
function parse4(s: string): { addr: number; net: number; mask: number; len: number } | null {
  const m = /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?$/.exec(s);
  if (!m) return null;
  const len = m[2] === undefined ? 32 : Number(m[2]);
  const addr = ip4(m[1]!);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return { addr, net: (addr & mask) >>> 0, mask, len };
}
function parse6(s: string): { hex: string; net: string; len: number } | null {
  const m = /^([0-9a-fA-F:]+:[0-9a-fA-F:]*)\/(\d+)$/.exec(s);
  if (!m) return null;
  const [head, tail] = m[1]!.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  if (groups.length !== 8) return null;
  const hex = groups.map((g) => g.padStart(4, "0").toLowerCase()).join("");
  const len = Number(m[2]);
  const bits = [...hex].map((c) => parseInt(c, 16).toString(2).padStart(4, "0")).join("");
  const netBits = bits.slice(0, len).padEnd(128, "0");
  const net = netBits.match(/.{4}/g)!.map((b) => parseInt(b, 2).toString(16)).join("");
  return { hex, net, len };
}
