/**
 * The SR-IOV network device plugin's variables in a pod (k8snetworkplumbingwg/
 * sriov-network-device-plugin, pkg/resources/pool_stub.go GetEnvs):
 *
 * - `PCIDEVICE_<PREFIX>_<RESOURCE>`: the allocated devices, comma-separated
 *   (`PCIDEVICE_INTEL_COM_ACC100=0000:af:10.0,0000:af:10.1`); the name is
 *   "PCIDEVICE_" + prefix + "_" + resource name, upper-cased, with "." → "_";
 * - `PCIDEVICE_<PREFIX>_<RESOURCE>_INFO`: JSON keyed by device, one object per info provider
 *   (GetName): `{"0000:af:10.0":{"generic":{"deviceID":"0000:af:10.0"},
 *   "vfio":{"mount":"/dev/vfio/vfio","dev-mount":"/dev/vfio/169"},"extra":{"token":"…"}}}`
 *   (`extra` is the resource's additionalInfo for "*" and for that address).
 *
 * @example
 * ```ts
 * import { readDevicePluginEnv } from "vfioctl";
 * const r = readDevicePluginEnv({ PCIDEVICE_INTEL_COM_ACC100: "0000:af:10.0" }, "intel.com/acc100");
 * r.devices; // ["0000:af:10.0"]
 * ```
 */
import { isBdf } from "./bdf.js";
import { VfioctlError } from "./errors.js";

export interface DevicePluginDevice {
  bdf: string;
  /** generic.deviceID */
  deviceID: string | null;
  /** vfio["dev-mount"]: the group node's path in the container */
  devMount: string | null;
  /** vfio.mount: the container node's path in the container */
  mount: string | null;
  /** extra: the resource's additionalInfo for this device */
  extra: Record<string, string>;
}

export interface DevicePluginEnv {
  /** the variable read, e.g. PCIDEVICE_INTEL_COM_ACC100 */
  variable: string;
  devices: string[];
  info: Record<string, DevicePluginDevice>;
  /** whether the _INFO variable was there */
  hasInfo: boolean;
}

/** The variable name for a resource: "intel.com/acc100" → "PCIDEVICE_INTEL_COM_ACC100". */
export const devicePluginVar = (resource: string): string => `PCIDEVICE_${resource.replace("/", "_")}`.toUpperCase().replace(/\./g, "_");

/**
 * Read the plugin's variables for `resource` ("prefix/name" as the pod requested it, or the bare
 * name when only one prefix has it).
 */
export function readDevicePluginEnv(env: Record<string, string | undefined>, resource: string): DevicePluginEnv {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9_]+)?$/.test(resource)) throw new VfioctlError("BAD_INPUT", `--from-env: expected a resource like intel.com/acc100 (or acc100), got ${JSON.stringify(resource)}`);
  let variable: string;
  if (resource.includes("/")) variable = devicePluginVar(resource);
  else {
    const suffix = `_${resource.toUpperCase().replace(/\./g, "_")}`;
    const hits = Object.keys(env).filter((k) => k.startsWith("PCIDEVICE_") && k.endsWith(suffix) && env[k] !== undefined);
    if (hits.length > 1) throw new VfioctlError("BAD_INPUT", `--from-env ${resource}: expected one device plugin variable ending in ${suffix}, got ${hits.length} (${hits.sort().join(", ")})`, { fix: "name the resource with its prefix: --from-env PREFIX/NAME" });
    variable = hits[0] ?? `PCIDEVICE_…${suffix}`;
  }
  const value = env[variable];
  if (value === undefined) {
    const have = Object.keys(env).filter((k) => /^PCIDEVICE_/.test(k) && !k.endsWith("_INFO")).sort();
    throw new VfioctlError("BAD_INPUT", `--from-env ${resource}: ${variable} is not set${have.length ? ` (set: ${have.join(", ")})` : " (no PCIDEVICE_ variable at all: is this running in a pod that requested the resource?)"}`, { fix: "request the resource in the pod spec (resources.limits), or name the one that is set" });
  }
  const devices = value.split(",").map((x) => x.trim()).filter(Boolean);
  if (!devices.length) throw new VfioctlError("BAD_INPUT", `--from-env ${resource}: ${variable} is empty, expected PCI addresses separated by commas`);
  for (const d of devices) if (!isBdf(d)) throw new VfioctlError("BAD_INPUT", `--from-env ${resource}: ${variable}: expected PCI addresses like 0000:af:10.0, got ${JSON.stringify(d)}`);
  const info: Record<string, DevicePluginDevice> = {};
  const rawInfo = env[`${variable}_INFO`];
  let parsed: Record<string, Record<string, Record<string, unknown>>> = {};
  if (rawInfo !== undefined) {
    try {
      const j = JSON.parse(rawInfo) as unknown;
      if (typeof j !== "object" || j === null || Array.isArray(j)) throw new Error("not an object");
      parsed = j as typeof parsed;
    } catch (e) {
      throw new VfioctlError("BAD_INPUT", `--from-env ${resource}: ${variable}_INFO: expected the device plugin's JSON ({"BDF":{"vfio":{…},…}}), got ${(e as Error).message}`);
    }
  }
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  for (const d of devices) {
    const o = parsed[d] ?? {};
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.extra ?? {})) if (typeof v === "string") extra[k] = v;
    info[d] = { bdf: d, deviceID: str(o.generic?.deviceID), devMount: str(o.vfio?.["dev-mount"]), mount: str(o.vfio?.mount), extra };
  }
  return { variable, devices, info, hasInfo: rawInfo !== undefined };
}
