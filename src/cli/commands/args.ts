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
  help: `usage: vfioctl args dpdk|qemu|spdk <bdf>... [--token-file F | --token-stdin] [--show-token]

Prints the exact pieces each consumer needs for the given VFs:
  dpdk   -a BDF ... --vfio-vf-token=UUID      (one token per process: all VFs must share it)
  qemu   -device vfio-pci,host=BDF,vf-token=UUID   (group path only; iommufd ignores vf-token)
  spdk   -A BDF ... --env-context=--vfio-vf-token=UUID   (passed through to DPDK's EAL)
The token is shown as ${TOKEN_PLACEHOLDER} unless --show-token; with --token-file the
by-reference form reads it from the file at launch. Each consumer's caveats are listed.

Examples:
  vfioctl --sim args dpdk 0000:af:10.0 0000:af:10.1 --token-file /run/acc100.token
  vfioctl --sim args qemu 0000:af:10.0
  vfioctl args dpdk 0000:3b:01.0 --json`,
  async run(ctx, args) {
    return guarded(ctx, "args", async () => {
      const p = parseArgs(args, ["token-file", "token"], ["token-stdin", "show-token"]);
      const [consumer, ...bdfs] = p.positional;
      if (!consumer) throw new VfioctlError("BAD_INPUT", "args: expected dpdk, qemu or spdk and at least one BDF, got nothing");
      const t = await tokenFrom(ctx, p);
      const file = flagStr(p, "token-file");
      const r = await consumerArgs(ctx.sys, consumer, bdfs, { ...(t ? { token: t.token } : {}), ...(file ? { tokenFile: file } : {}), showToken: p.flags.has("show-token") });
      if (ctx.opts.json) ctx.io.out(JSON.stringify(r, null, 2));
      else {
        const out = [r.argv.join(" ")];
        if (r.byReference) out.push("", `by reference (token read from the file at launch):`, `  ${r.byReference}`);
        if (r.caveats.length) out.push("", ...r.caveats.map((c) => `- ${c}`));
        ctx.io.out(out.join("\n"));
      }
      return EXIT.OK;
    });
  },
});
