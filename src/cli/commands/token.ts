/** `vfioctl token set PF` and `vfioctl token verify VF`. */
import { VfioctlError } from "../../lib/errors.js";
import { checkKeepFile, keepToken, newToken, resolveToken, TOKEN_ENV, type ResolvedToken } from "../../lib/token.js";
import { setToken, verifyToken } from "../../lib/tokenops.js";
import { EXIT, type Context } from "../context.js";
import { register } from "./index.js";
import { ARGV_TOKEN_WARNING, flagStr, guarded, parseArgs, type ParsedArgs } from "./common.js";

/** The token a command was given (file, stdin, --token with a warning, or the environment). */
export async function tokenFrom(ctx: Context, p: ParsedArgs, prefix = "token"): Promise<ResolvedToken | null> {
  const argv = flagStr(p, prefix);
  if (argv !== undefined) ctx.io.err(ARGV_TOKEN_WARNING);
  const file = flagStr(p, `${prefix}-file`);
  const r = await resolveToken({
    ...(file !== undefined ? { file } : {}),
    useStdin: p.flags.has(`${prefix}-stdin`),
    stdin: ctx.stdin,
    ...(prefix === "token" ? { env: ctx.env } : {}),
    ...(argv !== undefined ? { argv } : {}),
  });
  for (const w of r?.warnings ?? []) ctx.io.err(w);
  return r;
}

const HELP = `usage: vfioctl token set <pf> [--token-file F | --token-stdin] [--keep FILE] [--current-token-file F] [--show-token]
       vfioctl token verify <vf> [--token-file F | --token-stdin]

set     Set the VF token of a PF bound to vfio-pci. Without a source, a new random token is
        generated (crypto.randomUUID). Sources: --token-file F, --token-stdin, the
        ${TOKEN_ENV} environment variable, or --token UUID (warned: visible in /proc/PID/cmdline).
        How: while no VF is open, the PF is opened through its group with
        "<PF> vf_token=<uuid>" (the kernel takes it silently) and closed again. While a VF is
        open that open needs the current token (--current-token-file F); the new token is then
        set with VFIO_DEVICE_FEATURE. Open VFs keep running; later VF opens need the new token.
        If the PF's userspace driver holds the group, only that program can set it.
        The token is never printed unless --show-token; --keep FILE stores it with mode 0600
        (an existing file with broader permissions is refused).
verify  Open the VF with the token and close it at once: match (exit 0), mismatch (EACCES
        "Incorrect VF token", exit 1), not needed (PF not on vfio-pci / not a VF, exit 0).

Examples:
  vfioctl --sim token set 0000:af:00.0 --keep /run/acc100.token
  uuidgen | vfioctl token set 0000:af:00.0 --token-stdin
  vfioctl --sim token verify 0000:af:10.0 --token-file /run/acc100.token`;

register({
  name: "token",
  summary: "set a PF's VF token (generated or given; never echoed) or verify one on a VF",
  help: HELP,
  async run(ctx, args) {
    return guarded(ctx, "token", async () => {
      const [sub, ...rest] = args;
      if (sub === "set") {
        const p = parseArgs(rest, ["token-file", "token", "keep", "current-token-file"], ["token-stdin", "show-token"]);
        if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `token set: expected one PF address, got ${p.positional.length}`);
        const given = await tokenFrom(ctx, p);
        const current = await tokenFrom(ctx, p, "current-token");
        const token = given?.token ?? newToken();
        const keep = flagStr(p, "keep");
        if (keep !== undefined) checkKeepFile(keep); // an unsafe file is refused before anything is set
        const r = await setToken(ctx.sys, p.positional[0]!, token, current ? { current: current.token } : {});
        if (keep !== undefined) keepToken(keep, token);
        const show = p.flags.has("show-token");
        const out = { ...r, source: given?.source ?? "generated", ...(keep ? { kept: keep } : {}), ...(show ? { token } : {}) };
        if (ctx.opts.json) ctx.io.out(JSON.stringify(out, null, 2));
        else {
          ctx.io.out(`${r.pf}: VF token set (${out.source}; ${r.method === "open" ? "PF opened with vf_token= while no VF was open" : "VFIO_DEVICE_FEATURE SET with the current token"})`);
          if (r.vfsHeld.length) ctx.io.out(`  open VFs keep running with the old token: ${r.vfsHeld.join(", ")}; their next open needs the new one`);
          if (keep) ctx.io.out(`  stored in ${keep} (mode 0600)`);
          if (show) ctx.io.out(token);
          else if (!keep && !given) ctx.io.err("note: the generated token was not printed and not stored: nobody can open the VFs with it. Use --keep FILE or --show-token");
        }
        return EXIT.OK;
      }
      if (sub === "verify") {
        const p = parseArgs(rest, ["token-file", "token"], ["token-stdin"]);
        if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `token verify: expected one VF address, got ${p.positional.length}`);
        const t = await tokenFrom(ctx, p);
        if (!t) throw new VfioctlError("TOKEN_SOURCE", `token verify: expected a token (--token-file F, --token-stdin or $${TOKEN_ENV}), got none`);
        const r = await verifyToken(ctx.sys, p.positional[0]!, t.token);
        if (ctx.opts.json) ctx.io.out(JSON.stringify(r, null, 2));
        else ctx.io.out(`${r.vf}: ${r.result} — ${r.detail}`);
        return r.result === "mismatch" ? EXIT.NO : EXIT.OK;
      }
      throw new VfioctlError("BAD_INPUT", `token: expected "set" or "verify", got ${JSON.stringify(sub ?? "")}`);
    });
  },
});
