/**
 * Vendor and device names from the system's pci.ids, as lspci shows them. The file is looked for
 * where distributions put it (/usr/share/misc/pci.ids: Debian's pci.ids package; /usr/share/hwdata/
 * pci.ids: Fedora's hwdata; /usr/share/pci.ids), or given by `VFIOCTL_PCI_IDS` (empty: none).
 * It is read once, on the first lookup; a vendor's block is found by its line, a device by its
 * line within that block (nothing else is parsed); answers are cached. Without the file, names are null and the numeric IDs stand alone.
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
  /** per vendor: its name and where its block of lines is in the text */
  private readonly vendors = new Map<number, { name: string; block: string } | null>();
  private readonly devices = new Map<number, string | null>();

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

  /**
   * The vendor's line and the extent of its block (up to the next line that starts with a hex
   * digit: the next vendor). Nothing of the block is parsed: a device is looked up in it when
   * asked for (Intel's block alone has thousands of lines).
   */
  private vendor(v: number): { name: string; block: string } | null {
    const known = this.vendors.get(v);
    if (known !== undefined) return known;
    const t = this.load();
    let out: { name: string; block: string } | null = null;
    if (t) {
      const key = `\n${hex4(v)}  `;
      const at = findVendor(t, v, key);
      if (at >= 0) {
        let eol = t.indexOf("\n", at + 1);
        if (eol < 0) eol = t.length;
        const next = /\n[0-9a-fA-F]/g;
        next.lastIndex = eol;
        const m = next.exec(t);
        // the block from the vendor line's newline to the next vendor's: a device is searched in it alone
        out = { name: t.slice(at + key.length, eol).trim(), block: t.slice(eol, m ? m.index + 1 : t.length) };
      }
    }
    this.vendors.set(v, out);
    return out;
  }

  /** A device line of the vendor's block: `\tDDDD  name` (subsystem lines have two tabs). */
  private device(v: { block: string }, vendor: number, device: number): string | null {
    const k = vendor * 0x10000 + device;
    const known = this.devices.get(k);
    if (known !== undefined) return known;
    const t = v.block;
    const key = `\n\t${hex4(device)}  `;
    const at = t.indexOf(key);
    let out: string | null = null;
    if (at >= 0) {
      let eol = t.indexOf("\n", at + 1);
      if (eol < 0) eol = t.length;
      out = t.slice(at + key.length, eol).trim();
    }
    this.devices.set(k, out);
    return out;
  }

  names(vendor: number | null, device: number | null): PciNames {
    if (vendor === null) return { vendor: null, device: null };
    const v = this.vendor(vendor);
    return { vendor: v?.name ?? null, device: v && device !== null ? this.device(v, vendor, device) : null };
  }
}

/**
 * Where the vendor's line (`\nVVVV  `) is in the text, or −1. The file keeps its vendors sorted
 * by ID ("Please keep sorted"), so the line is first looked for by bisection (each step finds
 * the first vendor line after the middle and compares its ID), which reads a few short
 * stretches instead of everything before the vendor; when that does not find it (an absent
 * vendor, or a file out of order) the whole text is searched, so the answer never depends on
 * the order.
 */
function findVendor(t: string, v: number, key: string): number {
  const line = /\n([0-9a-f]{4}) {2}/g;
  let lo = 0;
  let hi = t.length;
  while (hi - lo > 8192) {
    const mid = (lo + hi) >>> 1;
    line.lastIndex = mid;
    const m = line.exec(t);
    if (!m || m.index >= hi) {
      hi = mid;
      continue;
    }
    const id = parseInt(m[1]!, 16);
    if (id === v) return m.index;
    if (id < v) lo = m.index + 1;
    else hi = mid + key.length;
  }
  const near = t.indexOf(key, Math.max(0, lo - 1));
  if (near >= 0 && near < hi) return near;
  return t.indexOf(key);
}

/** The pci.ids to use: `VFIOCTL_PCI_IDS` when set (empty: none), else the first of {@link PCI_IDS_PATHS} that exists. */
export function pciIds(env: Record<string, string | undefined> = process.env): PciIds {
  const given = env.VFIOCTL_PCI_IDS;
  if (given !== undefined) return new PciIds(given === "" ? null : given);
  return new PciIds(PCI_IDS_PATHS.find((p) => fs.existsSync(p)) ?? null);
}
