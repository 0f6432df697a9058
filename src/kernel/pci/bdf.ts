/** PCI addresses: "DDDD:BB:SS.F" as pci_name() prints it ("%04x:%02x:%02x.%d"). */

export interface Bdf {
  domain: number;
  bus: number;
  devfn: number;
}

export const BDF_RE = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/;

export function formatBdf(domain: number, bus: number, devfn: number): string {
  return `${domain.toString(16).padStart(4, "0")}:${bus.toString(16).padStart(2, "0")}:${(devfn >> 3)
    .toString(16)
    .padStart(2, "0")}.${devfn & 7}`;
}

/** Parse a canonical lowercase BDF; null when it is not one (no path characters ever pass). */
export function parseBdf(s: string): Bdf | null {
  const m = BDF_RE.exec(s);
  if (!m) return null;
  return { domain: parseInt(m[1]!, 16), bus: parseInt(m[2]!, 16), devfn: (parseInt(m[3]!, 16) << 3) | parseInt(m[4]!, 10) };
}

/** drivers/pci/iov.c pci_iov_virtfn_bus/devfn: routing ID of VF i. */
export function virtfnRid(pfBus: number, pfDevfn: number, offset: number, stride: number, i: number): { bus: number; devfn: number } {
  const sum = pfDevfn + offset + stride * i;
  return { bus: pfBus + (sum >> 8), devfn: sum & 0xff };
}
