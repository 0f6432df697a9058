/**
 * Vendor and device names from the system's pci.ids, as lspci shows them. The file is looked for
 * where distributions put it (/usr/share/misc/pci.ids: Debian's pci.ids package; /usr/share/hwdata/
 * pci.ids: Fedora's hwdata; /usr/share/pci.ids), or given by `VFIOCTL_PCI_IDS` (empty: none).
 * It is read once, on the first lookup, and only the lines of the vendors asked for are parsed;
 * answers are cached. Without the file, names are null and the numeric IDs stand alone.
 *
 * @example
 * ```ts
 * import { pciIds } from "vfioctl";
 * const ids = pciIds(); // the system's file, or null names when it has none
 * ids.names(0x8086, 0x10c9); // { vendor: "Intel Corporation", device: "82576 Gigabit Network Connection" }
 * ```
 */
import * as fs from "node:fs";

export const PCI_IDS_PATHS = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids", "/usr/share/pci.ids"];

export interface PciNames {
  vendor: string | null;
  device: string | null;
}

const hex4 = (n: number) => n.toString(16).padStart(4, "0");

export class PciIds {
  private text: string | null | undefined;
  private readonly cache = new Map<number, { name: string; devices: Map<string, string> } | null>();

  /** `path`: the file (null: no names). */
  constructor(readonly path: string | null) {}

  private load(): string | null {
    if (this.text === undefined) {
      try {
        this.text = this.path ? fs.readFileSync(this.path, "latin1") : null;
      } catch {
        this.text = null;
      }
    }
    return this.text;
  }

  /** The vendor's block: its name and its device lines (only this vendor's lines are parsed). */
  private vendor(v: number): { name: string; devices: Map<string, string> } | null {
    if (this.cache.has(v)) return this.cache.get(v)!;
    const t = this.load();
    let out: { name: string; devices: Map<string, string> } | null = null;
    if (t) {
      const key = `\n${hex4(v)}  `;
      const at = t.indexOf(key);
      if (at >= 0) {
        const eol = t.indexOf("\n", at + 1);
        const name = t.slice(at + key.length, eol < 0 ? undefined : eol).trim();
        const devices = new Map<string, string>();
        let i = eol;
        while (i >= 0 && i < t.length) {
          const next = t.indexOf("\n", i + 1);
          const line = t.slice(i + 1, next < 0 ? undefined : next);
          if (line.startsWith("\t\t") || line.startsWith("#") || line === "") {
            i = next;
            continue;
          }
          if (!line.startsWith("\t")) break;
          const m = /^\t([0-9a-f]{4}) {2}(.*)$/.exec(line);
          if (m) devices.set(m[1]!, m[2]!.trim());
          i = next;
        }
        out = { name, devices };
      }
    }
    this.cache.set(v, out);
    return out;
  }

  names(vendor: number | null, device: number | null): PciNames {
    if (vendor === null) return { vendor: null, device: null };
    const v = this.vendor(vendor);
    return { vendor: v?.name ?? null, device: (device !== null ? v?.devices.get(hex4(device)) : undefined) ?? null };
  }
}

/** The pci.ids to use: `VFIOCTL_PCI_IDS` when set (empty: none), else the first of {@link PCI_IDS_PATHS} that exists. */
export function pciIds(env: Record<string, string | undefined> = process.env): PciIds {
  const given = env.VFIOCTL_PCI_IDS;
  if (given !== undefined) return new PciIds(given === "" ? null : given);
  return new PciIds(PCI_IDS_PATHS.find((p) => fs.existsSync(p)) ?? null);
}
