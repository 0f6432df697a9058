/** `vfioctl k8s device-plugin`: the SR-IOV network device plugin's resourceList for the configured PFs. */
import { stringify as toYaml } from "yaml";
import { DEFAULT_CONFIG } from "../../host/config.js";
import { loadConfig } from "../../host/host.js";
import { devicePluginConfig } from "../../host/k8s.js";
import { VfioctlError } from "../../lib/errors.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { flagStr, guarded, parseArgs } from "./common.js";
import { OPT, type OptionSpec } from "../spec.js";

const OPTIONS: OptionSpec[] = [
  OPT.config,
  { name: "prefix", type: "string", value: "P", description: "resourcePrefix of every resource (default: the plugin's own, intel.com)", complete: "none" },
  // an optional value: taken out of the arguments before they are parsed
  { name: "configmap", type: "boolean", value: "NAME", description: "wrap it in the plugin's ConfigMap (kube-system/NAME, default sriovdp-config)" },
];

register({
  name: "k8s",
  summary: "Kubernetes hand-off: the SR-IOV network device plugin's resourceList for the configured PFs",
  description: `Print the SR-IOV network device plugin's config (k8snetworkplumbingwg/sriov-network-device-plugin,
"resourceList") for the PFs of the host config (default ${DEFAULT_CONFIG}): one resource per PF and
VF driver, named after the PF ("nic0"; "nic0_igbvf" for VFs a vf_drivers rule puts elsewhere):
  deviceType   netDevice (network PFs) or accelerator (processing accelerators): vfio-pci is a
               drivers selector, not a device type
  selectors    vendors, devices (the VF's IDs), drivers, and the VFs: rootDevices "<PF>#<indexes>"
               (net devices) or pciAddresses (accelerators)
The addresses are this host's (a path or serial match resolves to today's address). The VF
token is never put in additionalInfo: the plugin copies it into every pod's environment
(PCIDEVICE_<PREFIX>_<RESOURCE>_INFO); give pods the token as a file (vfioctl cdi, or a Secret
volume) and read the plugin's variables with \`vfioctl args dpdk|qemu --from-env RESOURCE\`.`,
  subcommands: [{ name: "device-plugin", summary: "the SR-IOV network device plugin's resourceList", options: OPTIONS }],
  exits: { 0: "printed" },
  examples: [`vfioctl --sim --state /tmp/h config install examples/default-host.yaml`, `vfioctl --sim --state /tmp/h k8s device-plugin`, `vfioctl --sim --state /tmp/h k8s device-plugin --prefix vfioctl.io --configmap`],
  async run(ctx, args) {
    return guarded(ctx, "k8s", async () => {
      const [sub, ...rest] = args;
      if (sub !== "device-plugin") throw new VfioctlError("BAD_INPUT", `k8s: expected device-plugin, got ${JSON.stringify(sub ?? "nothing")}`, { fix: "vfioctl k8s device-plugin [--config F]" });
      const withCm = rest.findIndex((a) => a === "--configmap");
      let cmName: string | null = null;
      if (withCm >= 0) {
        const next = rest[withCm + 1];
        cmName = next && !next.startsWith("--") ? next : "sriovdp-config";
        rest.splice(withCm, next && !next.startsWith("--") ? 2 : 1);
        if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(cmName)) throw new VfioctlError("BAD_INPUT", `--configmap: expected a Kubernetes object name (lowercase letters, digits, - .), got ${JSON.stringify(cmName)}`);
      }
      const p = parseArgs(rest, OPTIONS.filter((o) => o.name !== "configmap"));
      if (p.positional.length) throw new VfioctlError("BAD_INPUT", `k8s device-plugin: expected no arguments, got ${JSON.stringify(p.positional.join(" "))}`);
      const prefix = flagStr(p, "prefix");
      if (prefix !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(prefix)) throw new VfioctlError("BAD_INPUT", `--prefix: expected a DNS name like example.com, got ${JSON.stringify(prefix)}`);
      const cfg = loadConfig(ctx.files, flagStr(p, "config") ?? DEFAULT_CONFIG);
      const r = await devicePluginConfig(ctx.sys, cfg, prefix ? { prefix } : {});
      const json = JSON.stringify(r.config, null, 2);
      if (ctx.opts.json) {
        ctx.io.out(JSON.stringify({ schema: "vfioctl.k8s-device-plugin/1", config: r.config, resources: r.resources, notes: r.notes }, null, 2));
        return EXIT.OK;
      }
      if (cmName) ctx.io.out(toYaml({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: cmName, namespace: "kube-system" }, data: { "config.json": json + "\n" } }).trimEnd());
      else ctx.io.out(json);
      for (const n of r.notes) ctx.io.err(`note: ${n}`);
      return EXIT.OK;
    });
  },
});
