/** `vfioctl args dpdk|qemu|spdk BDF…`: consumer command-line pieces with the VF token. */
import { consumerArgs } from "../../lib/args.js";
import { VfioctlError } from "../../lib/errors.js";
import { TOKEN_PLACEHOLDER } from "../../lib/token.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { flagStr, guarded, parseArgs } from "./common.js";
import { tokenFrom } from "./token.js";

register({
  name: "args",
  summary: "command-line pieces for DPDK, QEMU or SPDK to use VFs, with the token by reference",
  help: `usage: vfioctl args dpdk|qemu|spdk <bdf>... [--token-file F | --token-stdin] [--show-token] [--config F] [--qmp SOCKET]

Prints the exact pieces each consumer needs for the given VFs:
  dpdk   -a BDF ... --vfio-vf-token=UUID      (one token per process: all VFs must share it)
  qemu   -device vfio-pci,host=BDF,vf-token=UUID   (group path only; iommufd ignores vf-token)
  spdk   -A BDF ... --env-context=--vfio-vf-token=UUID   (passed through to DPDK's EAL)
The token is shown as ${TOKEN_PLACEHOLDER} unless --show-token. Without a token source, the
token is the one vfioctl keeps in its store for the VFs' PF (the PF's name in the host config,
--config F), and the by-reference form reads it from the store at launch; with --token-file it
reads that file. DPDK and QEMU take the token only on argv, where every local user can read it
(/proc/PID/cmdline): for QEMU, --qmp SOCKET prints the QMP device_add line that hot-adds the
VFs after start, keeping the token off argv. Each consumer's caveats are listed, including what
its cdev (iommufd) mode does with the token on this host's kernel: QEMU's iommufd backend binds
with flags 0 and ignores vf-token; DPDK's cdev mode retries without the token after a failure.

Examples:
  vfioctl --sim args dpdk 0000:af:10.0 0000:af:10.1 --token-file /run/acc100.token
  vfioctl --sim args qemu 0000:af:10.0
  vfioctl --sim --profile 6.17.1 args qemu 0000:af:10.0      # a kernel whose cdev cannot take the token
  vfioctl --sim --state /tmp/h config install examples/default-host.yaml
  vfioctl --sim --state /tmp/h apply
  vfioctl --sim --state /tmp/h args dpdk 0000:01:10.0 0000:01:10.2     # the token read from the store at launch
  vfioctl --sim --state /tmp/h args qemu 0000:01:10.0 --qmp /run/vm1.qmp
  vfioctl args dpdk 0000:3b:01.0 --json`,
  async run(ctx, args) {
    return guarded(ctx, "args", async () => {
      const p = parseArgs(args, ["token-file", "token", "config", "qmp"], ["token-stdin", "show-token"]);
      const [consumer, ...bdfs] = p.positional;
      if (!consumer) throw new VfioctlError("BAD_INPUT", "args: expected dpdk, qemu or spdk and at least one BDF, got nothing");
      let t = await tokenFrom(ctx, p);
      let file = flagStr(p, "token-file");
      let fromStore: string | null = null;
      if (!t && !file) {
        // no source given: refer to the token store of the VFs' PF, where vfioctl keeps it
        for (const b of bdfs) {
          const pf = await ctx.sys.readlink(`/sys/bus/pci/devices/${b}/physfn`).then((l) => l.slice(l.lastIndexOf("/") + 1)).catch(() => null);
          if (!pf || !/^[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/.test(pf)) continue;
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
          const { name } = await storeNameOf(ctx, cfg, pf);
          const tok = store.read(name, "current");
          if (tok) {
            fromStore = store.path(name, "current");
            file = fromStore;
            t = { token: tok, source: "store", warnings: [] };
          }
          break;
        }
      }
      const r = await consumerArgs(ctx.sys, consumer, bdfs, { ...(t ? { token: t.token } : {}), ...(file ? { tokenFile: file } : {}), showToken: p.flags.has("show-token"), ...(flagStr(p, "qmp") ? { qmpSocket: flagStr(p, "qmp")! } : {}) });
      if (fromStore) r.caveats.unshift(`the token is the one vfioctl keeps in its store (${fromStore}); the launching script must run as root or as the PF's reader group (token: { readers: { group: … } } in the host config)`);
      if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.args/1", ...r, ...(fromStore ? { tokenStore: fromStore } : {}) }, null, 2));
      else {
        const out = r.argv.length ? [r.argv.join(" ")] : [];
        if (r.byReference) out.push(...(out.length ? [""] : []), flagStr(p, "qmp") ? "after QEMU started (token read from the file at launch, sent over QMP):" : `by reference (token read from the file at launch):`, `  ${r.byReference}`);
        if (r.caveats.length) out.push("", ...r.caveats.map((c) => `- ${c}`));
        ctx.io.out(out.join("\n"));
      }
      return EXIT.OK;
    });
  },
});
