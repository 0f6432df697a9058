/**
 * Kubernetes through what exists: the SR-IOV network device plugin
 * (k8snetworkplumbingwg/sriov-network-device-plugin) config for the configured PFs. Its
 * `resourceList` entries (pkg/types ResourceConfig) pool VFs by selectors; per PF and VF driver
 * one resource:
 *
 * - `deviceType`: "netDevice" for network-class PFs (PCI class 0x02), "accelerator" for
 *   processing accelerators (0x12) — the only classes the plugin discovers (types.SupportedDevices);
 *   vfio-pci is not a device type but a `drivers` selector;
 * - selectors: `vendors`/`devices` (the VF's IDs: the PF's vendor, its `sriov_vf_device`),
 *   `drivers`, and the VFs themselves: `rootDevices: ["<PF>#<VF indexes>"]` for net devices
 *   (functions of that PF, by VF index), `pciAddresses` for accelerators (which have no
 *   rootDevices selector);
 * - never `additionalInfo` with the token: the plugin copies it into the pod's environment
 *   (`PCIDEVICE_<PREFIX>_<RESOURCE>_INFO` … `"extra":{"token":…}`), which every container
 *   runtime records in plain text. The token reaches the pod as a file (`vfioctl cdi`, or a
 *   Secret volume), and `vfioctl args --from-env` reads the plugin's variables in the pod.
 *
 * The selectors name this host's PCI addresses (resolved from the config's match: a path or
 * serial match gives today's address), so the output is per node.
 *
 * @example
 * ```ts
 * import { bootKernel, parseConfig, devicePluginConfig } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * const cfg = parseConfig("version: 1\npfs:\n  - name: acc100\n    match: { bdf: '0000:af:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: generate\n");
 * (await devicePluginConfig(sys, cfg)).config.resourceList[0]!.deviceType; // "accelerator"
 * ```
 */
import { readAttr } from "../sys/fsutil.js";
import type { Syscalls } from "../sys/syscalls.js";
import { readDevice } from "../lib/sysfs.js";
import { vfDriverOf, type HostConfig } from "./config.js";
import { matchSelector } from "./observe.js";
import { predictVfs } from "./plan.js";

export interface DpResource {
  resourceName: string;
  resourcePrefix?: string;
  deviceType: "netDevice" | "accelerator";
  selectors: Record<string, string[]>[];
}

export interface DpResult {
  config: { resourceList: DpResource[] };
  /** per resource: the PF, the driver, the VFs it pools */
  resources: { resourceName: string; pf: string; pfName: string; driver: string; vfs: string[]; tokenRequired: boolean }[];
  notes: string[];
}

const hex4 = (n: number) => n.toString(16).padStart(4, "0");
/** resourceName: "should not contain special characters including hyphens" (the plugin's README). */
export const dpResourceName = (s: string) => s.replace(/[^A-Za-z0-9_]/g, "_");

/** Index list "0-2,5" for the plugin's "<PF>#<indexes>" selector syntax (isSelected). */
function ranges(ix: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ix.length; ) {
    let j = i;
    while (j + 1 < ix.length && ix[j + 1] === ix[j]! + 1) j++;
    out.push(i === j ? String(ix[i]) : `${ix[i]}-${ix[j]}`);
    i = j + 1;
  }
  return out.join(",");
}

async function attr(sys: Syscalls, p: string): Promise<string | null> {
  try {
    return await readAttr(sys, p);
  } catch {
    return null;
  }
}

/** The device plugin's resourceList for the configured PFs (read-only). */
export async function devicePluginConfig(sys: Syscalls, cfg: HostConfig, opts: { prefix?: string } = {}): Promise<DpResult> {
  const resourceList: DpResource[] = [];
  const resources: DpResult["resources"] = [];
  const notes: string[] = [];
  for (const pc of cfg.pfs) {
    const m = await matchSelector(sys, pc.match);
    if (!m.bdf) {
      notes.push(`${pc.field} (${pc.name}): ${m.problem ?? "not matched"}; no resource`);
      continue;
    }
    const pf = await readDevice(sys, m.bdf);
    const cls = pf.class === null ? null : pf.class >> 16;
    const deviceType = cls === 0x02 ? "netDevice" : cls === 0x12 ? "accelerator" : null;
    if (!deviceType) {
      notes.push(`${pc.name} (${m.bdf}): PCI class ${pf.class === null ? "?" : pf.class.toString(16).padStart(6, "0")} is neither network (02) nor accelerator (12): the device plugin does not discover it`);
      continue;
    }
    if (pc.vfs === 0) {
      notes.push(`${pc.name} (${m.bdf}): vfs: 0 in the config: no resource`);
      continue;
    }
    const vfDevice = await attr(sys, `/sys/bus/pci/devices/${m.bdf}/sriov_vf_device`);
    const offset = await attr(sys, `/sys/bus/pci/devices/${m.bdf}/sriov_offset`);
    const stride = await attr(sys, `/sys/bus/pci/devices/${m.bdf}/sriov_stride`);
    const vfBdfs = pf.sriov && pf.sriov.vfs.length >= pc.vfs ? pf.sriov.vfs.slice(0, pc.vfs) : offset !== null && stride !== null ? predictVfs(m.bdf, Number(offset), Number(stride), pc.vfs) : [];
    // the driver each VF ends up on: the config's rule, else (a host-driver PF without rules) the one it has now
    const now = await Promise.all(vfBdfs.map((b) => readDevice(sys, b).then((d) => d.driver, () => null)));
    const byDriver = new Map<string, number[]>();
    const unknown: number[] = [];
    for (let i = 0; i < pc.vfs; i++) {
      const d = vfDriverOf(pc, i)?.driver ?? now[i] ?? null;
      if (d) byDriver.set(d, [...(byDriver.get(d) ?? []), i]);
      else unknown.push(i);
    }
    if (unknown.length) notes.push(`${pc.name} (${m.bdf}): VF${unknown.length === 1 ? "" : "s"} ${ranges(unknown)} ha${unknown.length === 1 ? "s" : "ve"} no driver now and no vf_drivers rule: left out (add a vf_drivers rule, or create the VFs first)`);
    for (const [driver, ix] of byDriver) {
      const resourceName = dpResourceName(byDriver.size === 1 || driver === "vfio-pci" ? pc.name : `${pc.name}_${driver}`);
      const sel: Record<string, string[]> = {
        vendors: [hex4(pf.vendor ?? 0)],
        ...(vfDevice ? { devices: [vfDevice.replace(/^0x/, "").padStart(4, "0")] } : {}),
        drivers: [driver],
      };
      const vfs = ix.map((i) => vfBdfs[i]).filter((b): b is string => !!b);
      if (deviceType === "netDevice") sel.rootDevices = [`${m.bdf}#${ranges(ix)}`];
      else sel.pciAddresses = vfs;
      resourceList.push({ resourceName, ...(opts.prefix ? { resourcePrefix: opts.prefix } : {}), deviceType, selectors: [sel] });
      const tokenRequired = pc.driver === "vfio-pci" && driver === "vfio-pci";
      resources.push({ resourceName, pf: m.bdf, pfName: pc.name, driver, vfs, tokenRequired });
      if (tokenRequired) {
        notes.push(`${resourceName}: VFs of a vfio-pci PF need its VF token; do not put it in additionalInfo (the plugin copies it into every pod's environment): mount it as a file (vfioctl cdi, or a Secret volume) and read it with \`vfioctl args dpdk --from-env ${resourceName} --token-file /run/vfioctl/tokens/${pc.name}\``);
      }
      if (driver !== "vfio-pci" && pc.driver === "vfio-pci") notes.push(`${resourceName}: VFs of vfio-pci PF ${m.bdf} on the host driver ${driver} (trust_host_driver): the PF's userspace driver no longer controls them`);
    }
  }
  if (!resourceList.length) notes.push("no resource: the config has no PF the device plugin can pool");
  return { config: { resourceList }, resources, notes };
}
