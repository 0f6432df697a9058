/** Text rendering of the inventory (the `list` tree and `show`), shared by those commands. */
import { describeHolder, placeText } from "../../lib/holders.js";
import type { Inventory, InventoryDevice, InventoryPf } from "../../lib/inventory.js";

const CLASSES: Record<number, string> = {
  0x01: "storage", 0x02: "network", 0x03: "display", 0x04: "multimedia", 0x05: "memory", 0x06: "bridge",
  0x07: "communication", 0x08: "system", 0x0b: "processor", 0x0c: "serial bus", 0x10: "crypto", 0x11: "signal processing", 0x12: "accelerator",
};
const SUB: Record<number, string> = { 0x0108: "NVMe", 0x0200: "Ethernet", 0x0b40: "coprocessor", 0x1200: "accelerator" };

export function className(c: number | null): string {
  if (c === null) return "?";
  return SUB[c >> 8] ?? CLASSES[c >> 16] ?? `class ${c.toString(16).padStart(6, "0")}`;
}

const id = (d: InventoryDevice) => `${(d.vendor ?? 0).toString(16).padStart(4, "0")}:${(d.device ?? 0).toString(16).padStart(4, "0")}`;

function driverText(d: InventoryDevice): string {
  const drv = d.driver ?? "(no driver)";
  const ovr = d.blockedReads?.includes("driver_override") ? " [override: busy]" : d.driverOverride === null ? "" : d.driverOverride === d.driver ? " [override]" : ` [override ${d.driverOverride}]`;
  return drv + ovr;
}

function groupText(d: InventoryDevice): string {
  if (d.iommuGroup === null) return "no IOMMU group";
  const node = d.vfioNodeExists ? `/dev/vfio/${d.iommuGroup}` : "no /dev/vfio node";
  const held = d.heldBy.length ? `, held by ${[...new Map(d.heldBy.map((h) => [h.pid, `${h.comm}[${h.pid}]${placeText(h.where)}`])).values()].join(", ")}` : "";
  return `group ${d.iommuGroup} (${node}${held})`;
}

function tokenText(d: InventoryDevice): string {
  const mark = d.token.state === "required" ? "●" : d.token.state === "cannot-tell" ? "?" : "○";
  return `${mark} ${d.token.state === "required" ? "" : "token "}${d.token.reason}`;
}

/** Column widths shared by every line of the tree. */
interface Widths {
  drv: number;
}

/** The device's interfaces and NUMA node, as the list shows them after the driver ("eth0  numa 0  "), or "". */
function whereText(d: InventoryDevice): string {
  const parts = [...(d.interfaces?.length ? [d.interfaces.join(",")] : []), ...(d.numaNode !== null && d.numaNode !== undefined ? [`numa ${d.numaNode}`] : [])];
  return parts.length ? parts.join("  ") + "  " : "";
}

/** "Intel Corporation 82576 Gigabit Network Connection" from pci.ids, or null without names. */
export function nameText(d: InventoryDevice): string | null {
  if (!d.vendorName) return null;
  return d.deviceName ? `${d.vendorName} ${d.deviceName}` : `${d.vendorName} device ${(d.device ?? 0).toString(16).padStart(4, "0")}`;
}

function line(prefix: string, label: string, d: InventoryDevice, w: Widths): string {
  return `${prefix}${label} ${d.bdf}  ${id(d)} ${className(d.class).padEnd(11)}  ${driverText(d).padEnd(w.drv)}  ${whereText(d)}${groupText(d)}`;
}

/** The `vfioctl list` tree: PFs with their VFs, then other devices. */
export function renderTree(inv: Inventory, opts: { all?: boolean; maxVfs?: number } = {}): string {
  const out: string[] = [];
  const m = inv.vfioPci;
  out.push(`vfio-pci: ${m.loaded ? "loaded" : "not loaded"}, enable_sriov=${m.enableSriov === null ? "?" : m.enableSriov ? "Y" : "N"}${m.disableDenylist ? ", denylist disabled" : ""}   (${inv.backend === "model" ? "simulated host" : inv.root ? `tree ${inv.root}` : "this host"})`);
  const every = [...inv.pfs.flatMap((p) => [p, ...p.vfDevices]), ...inv.others];
  const w: Widths = { drv: Math.max(12, ...every.map((d) => driverText(d).length)) };
  const maxVfs = opts.maxVfs ?? 16;
  for (const pf of inv.pfs) {
    out.push("");
    const s = pf.sriov!;
    out.push(line("", "PF", pf, w) + `  VFs ${s.numVfs ?? "busy"}/${s.totalVfs}`);
    const cont = pf.vfDevices.length ? "│ " : "  ";
    const pfName = nameText(pf);
    if (pfName) out.push(`${cont}   ${pfName}`);
    out.push(`${cont}   ${tokenText(pf)}`);
    const shown = pf.vfDevices.length > maxVfs && !opts.all ? pf.vfDevices.slice(0, maxVfs) : pf.vfDevices;
    shown.forEach((vf, i) => {
      const last = i === shown.length - 1 && shown.length === pf.vfDevices.length;
      out.push(line(last ? "└─" : "├─", `VF${String(vf.vfIndex ?? i).padEnd(2)}`, vf, w).replace(/^(.{2})VF(\S+)\s/, "$1 VF$2 "));
      out.push(`${last ? "  " : "│ "}      ${tokenText(vf)}`);
    });
    if (shown.length < pf.vfDevices.length) out.push(`└─ … ${pf.vfDevices.length - shown.length} more VFs (--all shows them)`);
  }
  if (inv.others.length) {
    out.push("");
    out.push("Other devices:");
    for (const d of inv.others) {
      out.push(line("  ", "", d, w).replace(/^ {2} /, "  "));
      const n = nameText(d);
      if (n) out.push(`      ${n}`);
    }
  }
  if (inv.holders.length) {
    out.push("");
    out.push("Processes holding /dev/vfio:");
    for (const h of inv.holders) out.push(`  ${describeHolder(h)}`);
  }
  return out.join("\n");
}

/** `vfioctl show BDF`: every fact about one device. */
export function renderDevice(d: InventoryDevice, pf: InventoryPf | null, inv: Inventory): string {
  const rows: [string, string][] = [
    ["device", `${d.bdf}  ${id(d)}  ${className(d.class)}`],
    ...(nameText(d) ? [["name", nameText(d)!] as [string, string]] : []),
    ["interfaces", d.interfaces?.length ? d.interfaces.join(" ") : "(none)"],
    ["numa node", d.numaNode === null || d.numaNode === undefined ? "(none)" : String(d.numaNode)],
    ["role", d.role === "pf" ? "SR-IOV physical function" : d.role === "vf" ? `virtual function ${d.vfIndex ?? "?"} of PF ${d.physfn}` : "not an SR-IOV PF or VF"],
    ["driver", d.driver ?? "(none)"],
    ["driver_override", d.blockedReads?.includes("driver_override") ? "busy (its read waits for the device lock a pending write holds)" : (d.driverOverride ?? "(none)")],
    ["iommu group", d.iommuGroup === null ? "(none)" : String(d.iommuGroup)],
    ["vfio node", d.vfioNode ? `${d.vfioNode} (${d.vfioNodeExists ? "exists" : "absent"})` : "(none)"],
    ["held by", d.heldBy.length ? d.heldBy.map((h) => `pid ${h.pid} (${h.comm}) fd ${h.fd}${placeText(h.where)}`).join(", ") : "nobody"],
  ];
  if (d.sriov) {
    rows.push(["sriov_numvfs", `${d.sriov.numVfs ?? "busy (a write is pending)"} of ${d.sriov.totalVfs}`]);
    rows.push(["drivers_autoprobe", d.sriov.driversAutoprobe === null ? "?" : d.sriov.driversAutoprobe ? "1" : "0"]);
    rows.push(["VFs", d.sriov.vfs.length ? d.sriov.vfs.join(" ") : "(none)"]);
    if (d.driver === "vfio-pci") rows.push(["vfio-pci enable_sriov", inv.vfioPci.enableSriov === null ? "?" : inv.vfioPci.enableSriov ? "Y" : "N"]);
  }
  if (pf) rows.push(["PF", `${pf.bdf} on ${pf.driver ?? "no driver"}`]);
  rows.push(["VF token", d.token.reason]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n");
}
