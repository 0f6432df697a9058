/** `vfioctl args dpdk|qemu|spdk BDF…`: consumer command-line pieces with the VF token. */
import * as nodePath from "node:path";
import { consumerArgs, type ConsumerArgsOptions } from "../../lib/args.js";
import { readDevicePluginEnv, type DevicePluginEnv } from "../../lib/dpenv.js";
import { VfioctlError } from "../../lib/errors.js";
import { TOKEN_PLACEHOLDER } from "../../lib/token.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { flagStr, guarded, parseArgs } from "./common.js";
import { tokenFrom } from "./token.js";
import { OPT, type OptionSpec } from "../spec.js";

const OPTIONS: OptionSpec[] = [
  OPT.tokenFile,
  OPT.tokenStdin,
  OPT.token,
  OPT.showToken,
  OPT.config,
  { name: "qmp", type: "string", value: "SOCKET", description: "qemu: print the QMP device_add line that hot-adds the VFs through SOCKET (keeps the token off argv)", complete: "file" },
  { name: "from-env", type: "string", value: "RESOURCE", description: "take the devices from the SR-IOV network device plugin's PCIDEVICE_* variables for RESOURCE", complete: "none" },
];

register({
  name: "args",
  summary: "command-line pieces for DPDK, QEMU or SPDK to use VFs, with the token by reference",
  usage: [`args dpdk|qemu|spdk <bdf>... [--token-file F | --token-stdin] [--show-token] [--config F] [--qmp SOCKET]`, `args dpdk|qemu|spdk --from-env RESOURCE [--token-file F] …`],
  description: `Prints the exact pieces each consumer needs for the given VFs:
  dpdk   -a BDF ... --vfio-vf-token=UUID      (one token per process: all VFs must share it)
  qemu   -device vfio-pci,host=BDF,vf-token=UUID   (group path only; iommufd ignores vf-token)
  spdk   -A BDF ... --env-context=--vfio-vf-token=UUID   (passed through to DPDK's EAL)
The token is shown as ${TOKEN_PLACEHOLDER} unless --show-token. Without a token source, the
token is the one vfioctl keeps in its store for the VFs' PF (the PF's name in the host config,
--config F), and the by-reference form reads it from the store at launch; with --token-file it
reads that file. DPDK and QEMU take the token only on argv, where every local user can read it
(/proc/PID/cmdline): for QEMU, --qmp SOCKET prints the QMP device_add line that hot-adds the
VFs after start, keeping the token off argv. A PF on vfio-pci may be given too: the consumer is
then the PF's userspace driver (DPDK as PF driver takes --vfio-vf-token and sets the PF's token
with it). VFs of several PFs (QEMU) get one token, file or placeholder per PF; a VF on a host
driver, or any device without an IOMMU group, is refused with the reason. A relative token file
is made absolute. In a pod, --from-env RESOURCE takes the devices from the SR-IOV network
device plugin's PCIDEVICE_<PREFIX>_<RESOURCE> and PCIDEVICE_<PREFIX>_<RESOURCE>_INFO variables
(RESOURCE as the pod requested it, intel.com/acc100, or its name alone); a token the plugin put
in the environment (additionalInfo, "extra":{"token":…}) is used only without another source,
with a warning. Each consumer's caveats are listed, including what
its cdev (iommufd) mode does with the token on this host's kernel: QEMU's iommufd backend binds
with flags 0 and ignores vf-token; DPDK's cdev mode retries without the token after a failure.`,
  positionals: [{ name: "dpdk|qemu|spdk", complete: { values: ["dpdk", "qemu", "spdk"] } }, { name: "bdf", complete: "vf", variadic: true }],
  options: OPTIONS,
  exits: { 0: "printed", 3: "a device cannot be handed to the consumer (the reason is shown)" },
  examples: [`vfioctl --sim args dpdk 0000:af:10.0 0000:af:10.1 --token-file /run/acc100.token`, `vfioctl --sim args qemu 0000:af:10.0`, `vfioctl --sim --profile 6.17.1 args qemu 0000:af:10.0      # a kernel whose cdev cannot take the token`, `vfioctl --sim --state /tmp/h config install examples/default-host.yaml`, `vfioctl --sim --state /tmp/h apply`, `vfioctl --sim --state /tmp/h args dpdk 0000:01:10.0 0000:01:10.2     # the token read from the store at launch`, `vfioctl --sim --state /tmp/h args qemu 0000:01:10.0 --qmp /run/vm1.qmp`, `vfioctl --sim args dpdk 0000:af:00.0 --token-file /run/acc100.token   # DPDK as the PF's driver`, `PCIDEVICE_INTEL_COM_ACC100=0000:af:10.0 vfioctl --sim args dpdk --from-env intel.com/acc100 --token-file /run/vfioctl/tokens/acc100`, `vfioctl args dpdk 0000:3b:01.0 --json`],
  async run(ctx, args) {
    return guarded(ctx, "args", async () => {
      const p = parseArgs(args, OPTIONS);
      const [consumer, ...named] = p.positional;
      if (!consumer) throw new VfioctlError("BAD_INPUT", "args: expected dpdk, qemu or spdk and at least one BDF, got nothing");
      // a relative token file means nothing to the script that reads it at launch: make it absolute
      const rel = flagStr(p, "token-file");
      if (rel !== undefined && !rel.startsWith("/")) p.flags.set("token-file", nodePath.resolve(rel));
      let env: DevicePluginEnv | null = null;
      const resource = flagStr(p, "from-env");
      let bdfs = named;
      if (resource !== undefined) {
        if (named.length) throw new VfioctlError("BAD_INPUT", `args --from-env ${resource}: expected no BDFs (they come from the device plugin's variable), got ${named.join(" ")}`);
        env = readDevicePluginEnv(ctx.env, resource);
        bdfs = env.devices;
      }
      let t = await tokenFrom(ctx, p);
      let file = flagStr(p, "token-file");
      let fromStore: string | null = null;
      const perPf: NonNullable<ConsumerArgsOptions["perPf"]> = {};
      const envNotes: string[] = [];
      if (env && !t && !file) {
        const withToken = env.devices.filter((d) => env!.info[d]!.extra.token);
        const values = new Set(withToken.map((d) => env!.info[d]!.extra.token!));
        if (values.size === 1) {
          t = { token: [...values][0]!, source: `${env.variable}_INFO extra.token`, warnings: [] };
          envNotes.push(`the token came from the device plugin's ${env.variable}_INFO ("extra":{"token":…}, its additionalInfo): it is in this pod's environment and in its container's OCI config, readable by whoever can inspect the container; mount it as a file instead (vfioctl cdi, or a Secret volume) and pass --token-file`);
        }
      }
      if (env) {
        for (const d of env.devices) {
          const i = env.info[d]!;
          if (i.deviceID && i.deviceID !== d) envNotes.push(`${env.variable}_INFO names ${d} with generic.deviceID ${i.deviceID}`);
          if (i.devMount) {
            const g = await ctx.sys.readlink(`/sys/bus/pci/devices/${d}/iommu_group`).then((l) => `/dev/vfio/${l.slice(l.lastIndexOf("/") + 1)}`).catch(() => null);
            if (g && g !== i.devMount) envNotes.push(`${d}: the device plugin mounted its group node at ${i.devMount} (sysfs says ${g}); DPDK and QEMU find the node by the group number, so the container path must be ${g}`);
          }
        }
        if (!env.hasInfo) envNotes.push(`${env.variable}_INFO is not set: the device nodes could not be checked against the plugin's mounts`);
      }
      if (!t && !file) {
        // no source given: refer to the token store of the devices' PFs, where vfioctl keeps them
        const pfs: string[] = [];
        for (const b of bdfs) {
          const pf = await ctx.sys.readlink(`/sys/bus/pci/devices/${b}/physfn`).then((l) => l.slice(l.lastIndexOf("/") + 1)).catch(async () => ((await ctx.sys.lstat(`/sys/bus/pci/devices/${b}/sriov_totalvfs`).then(() => true, () => false)) ? b : null));
          if (pf && /^[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/.test(pf) && !pfs.includes(pf)) pfs.push(pf);
        }
        if (pfs.length) {
          const { DEFAULT_STORE } = await import("../../host/config.js");
          const { TokenStore } = await import("../../host/store.js");
          const { storeNameOf } = await import("./token.js");
          const cfgPath = flagStr(p, "config");
          let cfg = null;
          try {
            const { loadConfig } = await import("../../host/host.js");
            cfg = loadConfig(ctx.files, cfgPath ?? "/etc/vfioctl/host.yaml");
          } catch (e) {
            if (cfgPath) throw e;
          }
          const store = new TokenStore(ctx.files, cfg?.store ?? DEFAULT_STORE);
          for (const pf of pfs) {
            const { name } = await storeNameOf(ctx, cfg, pf);
            const tok = store.read(name, "current");
            if (tok) perPf[pf] = { token: tok, tokenFile: store.path(name, "current") };
          }
          if (pfs.length === 1 && perPf[pfs[0]!]) {
            fromStore = perPf[pfs[0]!]!.tokenFile!;
            file = fromStore;
            t = { token: perPf[pfs[0]!]!.token!, source: "store", warnings: [] };
          } else if (Object.keys(perPf).length) fromStore = Object.values(perPf).map((x) => x.tokenFile).join(", ");
        }
      }
      const several = Object.keys(perPf).length > 0 && !t;
      const r = await consumerArgs(ctx.sys, consumer, bdfs, { ...(t ? { token: t.token } : {}), ...(file ? { tokenFile: file } : {}), ...(several ? { perPf } : {}), showToken: p.flags.has("show-token"), ...(flagStr(p, "qmp") ? { qmpSocket: flagStr(p, "qmp")! } : {}) });
      if (fromStore) r.caveats.unshift(`the token is the one vfioctl keeps in its store (${fromStore}); the launching script must run as root or as the PF's reader group (token: { readers: { group: … } } in the host config)`);
      if (rel !== undefined && !rel.startsWith("/")) r.caveats.push(`the token file ${JSON.stringify(rel)} is read as ${file} (made absolute: the launching script may run elsewhere)`);
      if (env) r.caveats.unshift(`devices from ${env.variable}: ${env.devices.join(", ")}`, ...envNotes);
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.args/1", ...r, ...(fromStore ? { tokenStore: fromStore } : {}), ...(env ? { fromEnv: { variable: env.variable, devices: env.devices, info: Object.fromEntries(Object.entries(env.info).map(([k, v]) => [k, { ...v, extra: Object.keys(v.extra) }])) } } : {}) }, null, 2));
      else {
        const out = r.argv.length ? [r.argv.join(" ")] : [];
        if (r.byReference) out.push(...(out.length ? [""] : []), flagStr(p, "qmp") ? "after QEMU started (token read from the file at launch, sent over QMP):" : `by reference (token read from the file at launch):`, ...(r.byReferenceEach ? r.byReferenceEach.map((x, i, a) => `  ${x}${i < a.length - 1 ? " \\" : ""}`) : [`  ${r.byReference}`]));
        if (r.caveats.length) out.push("", ...r.caveats.map((c) => `- ${c}`));
        ctx.io.out(out.join("\n"));
      }
      return EXIT.OK;
    });
  },
});
