/**
 * `vfioctl token set|rotate|retire|show|path PF` and `vfioctl token verify VF`. Every token a
 * command sets goes through the token store first (src/host/store.ts): stored, then set.
 */
import * as fs from "node:fs";
import { VfioctlError } from "../../lib/errors.js";
import { resolveToken, TOKEN_ENV, type ResolvedToken } from "../../lib/token.js";
import { verifyToken } from "../../lib/tokenops.js";
import { DEFAULT_CONFIG, DEFAULT_STORE, parseConfig, type HostConfig, type PfConfig } from "../../host/config.js";
import { bootId, matchSelector } from "../../host/observe.js";
import { readTokenFileSafe, TokenStore } from "../../host/store.js";
import { readerGid, storeAndSet } from "../../host/tokens.js";
import { EXIT, type Context } from "../context.js";
import { register } from "./index.js";
import { resolveDevice } from "../../lib/resolve.js";
import { copiedTree, refuseOnCopiedTree, stepText } from "../../lib/steps.js";
import { planSetToken } from "../../lib/tokenops.js";
import { ARGV_TOKEN_WARNING, flagStr, guarded, parseArgs, type ParsedArgs } from "./common.js";
import { OPT, type CommandBody, type SubcommandSpec } from "../spec.js";

/** The token a command was given (file, stdin, --token with a warning, or the environment). */
export async function tokenFrom(ctx: Context, p: ParsedArgs, prefix = "token"): Promise<ResolvedToken | null> {
  const argv = flagStr(p, prefix);
  if (argv !== undefined) ctx.io.err(ARGV_TOKEN_WARNING);
  const file = flagStr(p, `${prefix}-file`);
  if (file !== undefined) {
    // a token file is read with the store's rules: no links, regular, bounded, not readable by others
    const t = readTokenFileSafe(ctx.files.input(file), file, { allowGroup: true });
    return { token: t!, source: `file ${file}`, warnings: [] };
  }
  // on a terminal, --token-stdin asks for the token (not echoed) instead of waiting silently
  const subject = p.positional.find((a) => /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i.test(a)) ?? "the device";
  const secret = ctx.io.secret;
  const stdin = ctx.io.stdinTTY && secret ? () => secret(`${prefix === "token" ? "VF token" : "current VF token"} for ${subject}: `) : ctx.stdin;
  const r = await resolveToken({
    useStdin: p.flags.has(`${prefix}-stdin`),
    stdin,
    ...(prefix === "token" ? { env: ctx.env } : {}),
    ...(argv !== undefined ? { argv } : {}),
  });
  for (const w of r?.warnings ?? []) ctx.io.err(w);
  return r;
}

/** The host config, when there is one (token commands work without it). */
function optionalConfig(ctx: Context, file: string | undefined): HostConfig | null {
  const path = file ?? DEFAULT_CONFIG;
  let text: string;
  try {
    text = fs.readFileSync(ctx.files.real(path), "utf8");
  } catch (e) {
    if (file !== undefined) throw new VfioctlError("BAD_INPUT", `config ${ctx.files.show(path)}: ${(e as NodeJS.ErrnoException).code ?? "EIO"}`, { subject: path });
    return null;
  }
  return parseConfig(text, path);
}

/** The store name of a PF: its config entry's name, else pci-DDDD-BB-SS.F. */
export async function storeNameOf(ctx: Context, cfg: HostConfig | null, bdf: string): Promise<{ name: string; pc: PfConfig | null }> {
  for (const pc of cfg?.pfs ?? []) {
    const m = await matchSelector(ctx.sys, pc.match);
    if (m.bdf === bdf) return { name: pc.name, pc };
  }
  return { name: `pci-${bdf.replace(/:/g, "-")}`, pc: null };
}

const PF = [{ name: "pf", complete: "pf" as const }];
const TOKEN_SUBCOMMANDS: SubcommandSpec[] = [
  {
    name: "set",
    summary: "set a PF's VF token (stored first)",
    positionals: PF,
    options: [
      OPT.tokenFile,
      OPT.tokenStdin,
      OPT.token,
      { name: "current-token-file", type: "string", value: "F", description: "the PF's current token, when it is not in the store (needed while a VF is open)", complete: "file" },
      OPT.showToken,
      OPT.config,
      { ...OPT.dryRun, description: "print the store write and the ioctls, in order (the token as <token>), and change nothing" },
      { name: "keep", type: "string", value: "FILE", description: "refused: tokens are written only to the token store", hidden: true },
    ],
  },
  { name: "rotate", summary: "a new random token while VFs stay open", positionals: PF, options: [OPT.showToken, OPT.config, { ...OPT.dryRun, description: "print the store write and the ioctls, in order (the token as <token>), and change nothing" }] },
  { name: "retire", summary: "remove the previous token", positionals: PF, options: [OPT.config, { ...OPT.dryRun, description: "say which store file would be removed; change nothing" }] },
  { name: "show", summary: "print the stored token", positionals: PF, options: [{ name: "previous", type: "boolean", description: "the previous token kept after a rotation" }, OPT.config] },
  { name: "path", summary: "where the token is stored", positionals: PF, options: [OPT.config] },
  { name: "verify", summary: "open a VF with a token and close it", positionals: [{ name: "vf", complete: "vf" }], options: [OPT.tokenFile, OPT.tokenStdin, OPT.token, { name: "from-store", type: "boolean", description: "use the token stored for the VF's PF" }, OPT.config] },
];
const subOptions = (sub: string) => TOKEN_SUBCOMMANDS.find((s) => s.name === sub)?.options ?? [];

const SPEC: CommandBody = {
  description: `set     Set the VF token of a PF bound to vfio-pci: the token given (--token-file F,
        --token-stdin, $${TOKEN_ENV}, or --token UUID, warned: visible in /proc/PID/cmdline) or a
        new random one. The token is written to the store first (fsynced; default
        ${DEFAULT_STORE}/<name>/, 0700 directories, 0600 files; <name> is the PF's name in the
        host config, else pci-DDDD-BB-SS.F), then given to the kernel: while no VF is open the
        PF is opened through its group with "<PF> vf_token=<uuid>"; while a VF is open the
        current token is needed (the stored one, or --current-token-file F) and the new one is
        set with VFIO_DEVICE_FEATURE. If the kernel refuses, the store keeps the old token as
        current. The token is never printed unless --show-token.
rotate  A new random token for a PF whose token is in the store, set with VFIO_DEVICE_FEATURE
        while VFs stay open: open VFs keep working, later VF opens need the new token. The
        previous token is kept (slot "previous") until \`token retire\`; \`status\` and \`audit\`
        name the VF users that started before the rotation.
        --dry-run (set, rotate): print the opens and ioctls it would make, in order, with the
        token shown as <token>, and the store files it would write; change nothing.
retire  Remove the previous token after every VF user moved to the new one.
show    Print the stored token (you asked for it: it is printed). path: where it is stored.
verify  Open the VF with the token and close it at once: match (exit 0), mismatch (EACCES
        "Incorrect VF token", exit 1), not needed (PF not on vfio-pci / not a VF, exit 0).
        --from-store uses the VF's PF's stored token.`,
  subcommands: TOKEN_SUBCOMMANDS,
  exits: { 0: "done; verify: the token matches, or none is needed", 1: "verify: the token is wrong (EACCES \"Incorrect VF token\")", 3: "Linux refused (errno shown)" },
  examples: [`# one story on one state directory`, `vfioctl --sim --state /tmp/h token set 0000:af:00.0`, `vfioctl --sim --state /tmp/h token verify 0000:af:10.0 --from-store`, `vfioctl --sim --state /tmp/h sim hold 0000:af:10.0 --token-file /etc/vfioctl/tokens/pci-0000-af-00.0/current --as dpdk`, `vfioctl --sim --state /tmp/h token rotate 0000:af:00.0   # dpdk keeps running with the old token`, `vfioctl --sim --state /tmp/h token verify 0000:af:10.1 --from-store`, `vfioctl --sim --state /tmp/h sim release dpdk`, `vfioctl --sim --state /tmp/h token retire 0000:af:00.0`, `vfioctl --sim --state /tmp/h token path 0000:af:00.0`],
};

register({
  name: "token",
  summary: "set, rotate, retire or verify a PF's VF token (stored before it is set; never echoed)",
  ...SPEC,
  async run(ctx, args) {
    return guarded(ctx, "token", async () => {
      const [sub, ...rest] = args;
      if (sub === "set" || sub === "rotate") {
        const p = parseArgs(rest, subOptions(sub), `token ${sub}`);
        if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `token ${sub}: expected one PF address, got ${p.positional.length}`);
        if (p.flags.has("keep")) {
          throw new VfioctlError("BAD_INPUT", "--keep: tokens are written only to the token store (and never elsewhere); consumers read it from there", { fix: `drop --keep; \`vfioctl token path ${p.positional[0]}\` prints where the token is stored` });
        }
        const pf = await resolveDevice(ctx.sys, p.positional[0], "pf");
        const cfg = optionalConfig(ctx, flagStr(p, "config"));
        const store = new TokenStore(ctx.files, cfg?.store ?? DEFAULT_STORE);
        const { name, pc } = await storeNameOf(ctx, cfg, pf);
        if (pc && pc.token.policy === "external") throw new VfioctlError("REFUSED", `${pf} (${name}): the host config says token: external (${pc.token.owner ?? "its userspace PF driver"} sets it); vfioctl sets none`, { subject: pf, fix: `change ${pc.field}.token to generate if vfioctl should own it` });
        const given = sub === "set" ? await tokenFrom(ctx, p) : null;
        const current = sub === "set" ? await tokenFrom(ctx, p, "current-token") : null;
        const stored = store.read(name, "current");
        if (sub === "rotate" && !stored) throw new VfioctlError("TOKEN_SOURCE", `token rotate ${pf}: no token for ${name} in the store (${ctx.files.show(store.path(name, "current"))}), so the kernel's current token is unknown`, { subject: pf, fix: `vfioctl token set ${pf} (while no VF is open) puts one there` });
        if (p.flags.has("dry-run")) {
          const plan = await planSetToken(ctx.sys, pf);
          const files = [`write <token> to ${ctx.files.show(store.path(name, "pending"))} (mode 0600), before the kernel gets it`, `after: it becomes ${ctx.files.show(store.path(name, "current"))}${stored ? `; the current one is kept as ${ctx.files.show(store.path(name, "previous"))}` : ""}`];
          const lines = [files[0]!, ...plan.steps.map(stepText), files[1]!];
          if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.token/1", pf, name, dryRun: true, method: plan.method, vfsHeld: plan.vfsHeld, plan: lines }, null, 2));
          else {
            ctx.io.out(`${pf}: dry run, nothing changed; token ${sub} would make:`);
            for (const l of lines) ctx.io.out(`  ${l}`);
          }
          return EXIT.OK;
        }
        // a copied tree: refused before the store is written
        if (copiedTree(ctx.sys)) refuseOnCopiedTree(ctx.sys, `token ${sub}`, (await planSetToken(ctx.sys, pf)).steps);
        const r = await storeAndSet(ctx.sys, store, {
          name,
          pf,
          ...(given ? { token: given.token } : {}),
          ...(current ? { current: current.token } : {}),
          gid: readerGid(ctx.files, pc),
          bootId: await bootId(ctx.sys),
          source: sub === "rotate" ? "rotated" : (given?.source ?? "generated"),
        });
        const show = p.flags.has("show-token");
        const out = { schema: "vfioctl.token/1", pf, name, method: r.method, vfsHeld: r.vfsHeld, rotated: r.rotated, source: sub === "rotate" ? "rotated" : (given?.source ?? "generated"), stored: store.path(name, "current"), ...(r.rotated ? { previous: store.path(name, "previous") } : {}), ...(show ? { token: r.token } : {}) };
        if (ctx.opts.json) ctx.io.out(JSON.stringify(out, null, 2));
        else {
          ctx.io.out(`${pf}: VF token ${sub === "rotate" ? "rotated" : "set"} (${out.source}; ${r.method === "open" ? "PF opened with vf_token= while no VF was open" : "VFIO_DEVICE_FEATURE SET with the current token"})`);
          ctx.io.out(`  stored in ${ctx.files.show(out.stored)}${r.rotated ? `; the previous token is kept in ${ctx.files.show(store.path(name, "previous"))} until \`vfioctl token retire ${pf}\`` : ""}`);
          if (r.vfsHeld.length) ctx.io.out(`  open VFs keep running with the old token: ${r.vfsHeld.join(", ")}; their next open needs the new one`);
          if (show) ctx.io.out(r.token);
        }
        return EXIT.OK;
      }
      if (sub === "retire" || sub === "show" || sub === "path") {
        const p = parseArgs(rest, subOptions(sub), `token ${sub}`);
        if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `token ${sub}: expected one PF address, got ${p.positional.length}`);
        const pf = await resolveDevice(ctx.sys, p.positional[0], "pf");
        const cfg = optionalConfig(ctx, flagStr(p, "config"));
        const store = new TokenStore(ctx.files, cfg?.store ?? DEFAULT_STORE);
        const { name } = await storeNameOf(ctx, cfg, pf);
        if (sub === "path") {
          ctx.io.out(ctx.opts.json ? JSON.stringify({ schema: "vfioctl.token/1", pf, name, current: store.path(name, "current"), real: ctx.files.real(store.path(name, "current")) }, null, 2) : store.path(name, "current"));
          return EXIT.OK;
        }
        if (sub === "show") {
          const slot = p.flags.has("previous") ? "previous" : "current";
          const t = store.read(name, slot);
          if (!t) throw new VfioctlError("TOKEN_SOURCE", `token show ${pf}: no ${slot} token for ${name} in the store`, { subject: pf, fix: `vfioctl token set ${pf}` });
          ctx.io.out(ctx.opts.json ? JSON.stringify({ schema: "vfioctl.token/1", pf, name, slot, token: t }, null, 2) : t);
          return EXIT.OK;
        }
        const prev = store.read(name, "previous");
        if (!prev) {
          if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.token/1", pf, name, retired: false }, null, 2));
          else ctx.io.out(`${pf} (${name}): no previous token kept: nothing to retire`);
          return EXIT.OK;
        }
        if (p.flags.has("dry-run")) {
          const f = store.path(name, "previous");
          if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.token/1", pf, name, retired: false, dryRun: true, wouldRemove: f }, null, 2));
          else ctx.io.out(`${pf} (${name}): dry run, nothing changed; would remove ${f} and update ${store.path(name, "meta.json")}`);
          return EXIT.OK;
        }
        store.remove(name, "previous");
        const m = store.meta(name);
        store.writeMeta(name, { ...m, updated: new Date().toISOString() });
        if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.token/1", pf, name, retired: true }, null, 2));
        else ctx.io.out(`${pf} (${name}): previous token retired (VF users that still hold it keep running; they cannot reopen with it)`);
        return EXIT.OK;
      }
      if (sub === "verify") {
        const p = parseArgs(rest, subOptions(sub), `token ${sub}`);
        if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `token verify: expected one VF address, got ${p.positional.length}`);
        let t = p.flags.has("from-store") ? null : await tokenFrom(ctx, p);
        if (p.flags.has("from-store")) {
          const vf = await resolveDevice(ctx.sys, p.positional[0], "vf");
          const physfn = await ctx.sys.readlink(`/sys/bus/pci/devices/${vf}/physfn`).then((l) => l.slice(l.lastIndexOf("/") + 1)).catch(() => null);
          if (!physfn) throw new VfioctlError("BAD_INPUT", `token verify --from-store: ${vf} is not a VF (no physfn link)`, { subject: vf });
          const cfg = optionalConfig(ctx, flagStr(p, "config"));
          const store = new TokenStore(ctx.files, cfg?.store ?? DEFAULT_STORE);
          const { name } = await storeNameOf(ctx, cfg, physfn);
          const s = store.read(name, "current");
          if (!s) throw new VfioctlError("TOKEN_SOURCE", `token verify --from-store: no token for ${physfn} (${name}) in the store`, { subject: physfn });
          t = { token: s, source: "store", warnings: [] };
        }
        if (!t) throw new VfioctlError("TOKEN_SOURCE", `token verify: expected a token (--token-file F, --token-stdin, --from-store or $${TOKEN_ENV}), got none`);
        const r = await verifyToken(ctx.sys, await resolveDevice(ctx.sys, p.positional[0], "vf"), t.token);
        if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.token-verify/1", ...r }, null, 2));
        else ctx.io.out(`${r.vf}: ${r.result} — ${r.detail}`);
        return r.result === "mismatch" ? EXIT.NO : EXIT.OK;
      }
      throw new VfioctlError("BAD_INPUT", `token: expected set, rotate, retire, show, path or verify, got ${JSON.stringify(sub ?? "")}`);
    });
  },
});
