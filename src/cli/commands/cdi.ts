/** `vfioctl cdi`: a Container Device Interface spec for the VFs of the configured (or given) PFs. */
import * as fs from "node:fs";
import { CDI_CURRENT, CDI_DEFAULT, CDI_DIRS, CDI_VERSIONS, DEFAULT_CDI_DIR, DEFAULT_CDI_KIND, buildCdiSpec, cdiFileName, type CdiAccess, type CdiPfInput } from "../../host/cdi.js";
import { DEFAULT_CONFIG, DEFAULT_STORE, type HostConfig, type PfConfig } from "../../host/config.js";
import { loadConfig } from "../../host/host.js";
import { writeAtomic } from "../../host/install.js";
import { matchSelector } from "../../host/observe.js";
import { TokenStore } from "../../host/store.js";
import { readerGid } from "../../host/tokens.js";
import { checkBdf } from "../../lib/bdf.js";
import { VfioctlError } from "../../lib/errors.js";
import { OPT, type CommandBody, type OptionSpec } from "../spec.js";
import type { HostFiles } from "../../sys/hostfs.js";
import { EXIT, type Context } from "../context.js";
import { register } from "./index.js";
import { flagStr, guarded, parseArgs } from "./common.js";

const OPTIONS: OptionSpec[] = [
  OPT.config,
  { name: "out", type: "string", value: "DIR", description: `the directory the spec is written to (default ${DEFAULT_CDI_DIR})`, complete: "dir" },
  { name: "kind", type: "string", value: "VENDOR/CLASS", description: `the CDI kind (default ${DEFAULT_CDI_KIND})`, complete: "none" },
  { name: "access", type: "string", value: "group|cdev|auto", description: "the device nodes given: the group's (default), the vfio cdev's, or the cdev where there is one", complete: { values: ["group", "cdev", "auto"] } },
  { name: "cdi-version", type: "string", value: "V", description: `the declared CDI version (default ${CDI_DEFAULT}, the newest Debian 13's podman accepts; up to ${CDI_CURRENT})`, complete: { values: ["0.5.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0"] } },
  { name: "dry-run", type: "boolean", description: "print the spec and change nothing" },
];

const SPEC: CommandBody = {
  description: `Write a Container Device Interface (CDI ${CDI_DEFAULT} by default) spec that gives containers the VFs of the
PFs in the host config (default ${DEFAULT_CONFIG}), or of the PFs named, one CDI device per VF on
vfio-pci ("<pf name>-vf<index>"):
  device nodes  /dev/vfio/vfio and the VF's group node /dev/vfio/<N>   (--access group, default)
                or /dev/iommu and its cdev /dev/vfio/devices/vfio<N>   (--access cdev: kernels with
                the vfio cdev; auto: the cdev where there is one) — never both
  environment   VFIOCTL_VF_<DEVICE>=<BDF> and VFIOCTL_VF_TOKEN_FILE_<DEVICE>=<path in the container>
  token         the PF's token file (the store's "current", or the config's token file) bind-mounted
                read-only at /run/vfioctl/tokens/<pf name>; the token itself is never in the spec or
                the environment (both are copied into the container's OCI config)
The file is <DIR>/${cdiFileName(DEFAULT_CDI_KIND)} (written atomically, mode 0644; with --sim under the
simulated root). DIR defaults to ${DEFAULT_CDI_DIR}: group numbers and BDFs hold for one boot, so
write it again after a reboot or a VF count change. Runtimes read ${CDI_DIRS.join(" and ")}.
VFs on a host driver or without an IOMMU group are left out, with the reason.

--cdi-version sets the declared version (default ${CDI_DEFAULT}; the fields used need 0.3.0, or 0.7.0
with a token reader group; the newest is ${CDI_CURRENT}): runtimes built with an older CDI library
skip a spec whose version they do not know ("unresolvable CDI devices") — Debian 13's podman
5.4.2 takes at most 0.8.0 (hence the default), Debian 12's podman 4.3.1 at most 0.5.0.`,
  positionals: [{ name: "pf", complete: "pf", optional: true, variadic: true }],
  options: OPTIONS,
  exits: { 0: "written (or printed with --dry-run)", 3: "the spec could not be written" },
  examples: [`vfioctl --sim --state /tmp/h config install examples/default-host.yaml`, `vfioctl --sim --state /tmp/h apply`, `vfioctl --sim --state /tmp/h cdi --dry-run`, `vfioctl --sim cdi 0000:af:00.0 --dry-run --json`, `sudo vfioctl cdi && podman run --device vfioctl/vf=acc100-vf0 IMAGE`, `sudo vfioctl cdi --cdi-version 0.5.0        # for podman 4.3 (Debian 12)`],
};

interface Resolved {
  inputs: CdiPfInput[];
  notes: string[];
}

function tokenFileOf(files: HostFiles, store: TokenStore, name: string, pc: PfConfig | null): { tokenFile: string | null; noTokenWhy?: string } {
  const exists = (p: string) => {
    try {
      return fs.lstatSync(files.real(p)).isFile();
    } catch {
      return false;
    }
  };
  if (pc?.token.policy === "external") return { tokenFile: null, noTokenWhy: `the host config says token: external (${pc.token.owner ?? "its userspace PF driver"} sets it): vfioctl keeps no copy` };
  if (pc?.token.policy === "none") return { tokenFile: null, noTokenWhy: `its PF is on ${pc.driver}, which has no VF token` };
  const path = pc?.token.policy === "file" ? pc.token.file : store.path(name, "current");
  if (exists(path)) return { tokenFile: path };
  return { tokenFile: null, noTokenWhy: pc?.token.policy === "file" ? `the token file ${files.show(path)} does not exist` : `no token is stored for ${name} (${files.show(path)}): vfioctl apply, or vfioctl token set PF, stores and sets one` };
}

async function resolvePfs(ctx: Context, cfg: HostConfig | null, named: string[]): Promise<Resolved> {
  const store = new TokenStore(ctx.files, cfg?.store ?? DEFAULT_STORE);
  const notes: string[] = [];
  const inputs: CdiPfInput[] = [];
  const matched = new Map<string, PfConfig>();
  for (const pc of cfg?.pfs ?? []) {
    const m = await matchSelector(ctx.sys, pc.match);
    if (m.bdf) matched.set(m.bdf, pc);
    else if (!named.length) notes.push(`${pc.field} (${pc.name}): ${m.problem ?? "not matched"}; left out`);
  }
  const bdfs = named.length ? named.map((b) => checkBdf(b, "pf")) : [...matched.keys()];
  for (const bdf of bdfs) {
    const pc = matched.get(bdf) ?? null;
    const name = pc?.name ?? `pci-${bdf.replace(/:/g, "-")}`;
    inputs.push({ name, bdf, ...tokenFileOf(ctx.files, store, name, pc), readersGid: readerGid(ctx.files, pc) });
  }
  return { inputs, notes };
}

register({
  name: "cdi",
  summary: "write a CDI spec giving containers the VFs, their device nodes and a read-only token file",
  ...SPEC,
  async run(ctx, args) {
    return guarded(ctx, "cdi", async () => {
      const p = parseArgs(args, OPTIONS);
      const cfgPath = flagStr(p, "config");
      let cfg: HostConfig | null = null;
      try {
        cfg = loadConfig(ctx.files, cfgPath ?? DEFAULT_CONFIG);
      } catch (e) {
        if (cfgPath || !p.positional.length) throw e;
      }
      const out = flagStr(p, "out") ?? DEFAULT_CDI_DIR;
      if (!out.startsWith("/") || /(^|\/)\.\.(\/|$)/.test(out)) throw new VfioctlError("BAD_INPUT", `--out: expected an absolute directory without .., got ${JSON.stringify(out)}`);
      const access = (flagStr(p, "access") ?? "group") as CdiAccess;
      const version = flagStr(p, "cdi-version") ?? CDI_DEFAULT;
      if (!(CDI_VERSIONS as readonly string[]).includes(version)) throw new VfioctlError("BAD_INPUT", `--cdi-version: expected one of ${CDI_VERSIONS.join(", ")}, got ${JSON.stringify(version)}`);
      const { inputs, notes } = await resolvePfs(ctx, cfg, p.positional);
      const r = await buildCdiSpec(ctx.sys, inputs, { kind: flagStr(p, "kind") ?? DEFAULT_CDI_KIND, access, cdiVersion: version });
      r.notes.unshift(...notes);
      const dir = out.replace(/\/+$/, "") || "/";
      const file = `${dir === "/" ? "" : dir}/${cdiFileName(r.spec.kind)}`;
      if (!(CDI_DIRS as readonly string[]).includes(dir)) r.notes.push(`${dir} is not a directory CDI runtimes read by default (${CDI_DIRS.join(", ")}): point the runtime at it (containers.conf cdi_spec_dirs, containerd cdi_spec_dirs)`);
      const text = JSON.stringify(r.spec, null, 2) + "\n";
      const dry = p.flags.has("dry-run");
      if (!dry) {
        try {
          fs.mkdirSync(ctx.files.real(dir), { recursive: true, mode: 0o755 });
        } catch (e) {
          throw new VfioctlError("KERNEL", `cdi: cannot create ${ctx.files.show(dir)}: ${(e as NodeJS.ErrnoException).code ?? "EIO"}`, { subject: dir, errno: (e as NodeJS.ErrnoException).code ?? "EIO", fix: "run as root, or choose --out DIR" });
        }
        writeAtomic(ctx.files, file, text, 0o644);
      }
      if (ctx.opts.json) {
        ctx.io.out(JSON.stringify({ schema: "vfioctl.cdi/1", file: ctx.files.show(file), written: !dry, minVersion: r.minVersion, devices: r.devices, skipped: r.skipped, notes: r.notes, spec: r.spec }, null, 2));
        return EXIT.OK;
      }
      const lines: string[] = [];
      if (dry) lines.push(`${ctx.files.show(file)} would hold (--dry-run: nothing written):`, text.trimEnd(), "");
      else lines.push(`wrote ${ctx.files.show(file)} (CDI ${r.spec.cdiVersion}, kind ${r.spec.kind}, ${r.devices.length} device${r.devices.length === 1 ? "" : "s"})`);
      for (const d of r.devices) {
        lines.push(`  ${r.spec.kind}=${d.name}  ${d.bdf}  ${d.nodes.join(" ")}${d.tokenFile ? `  token ${ctx.files.show(d.tokenFile)} → ${d.tokenPath} (read-only)` : "  no token file"}`);
      }
      for (const s of r.skipped) lines.push(`  left out: ${s.reason}`);
      if (r.notes.length) lines.push("", ...r.notes.map((n) => `- ${n}`));
      if (r.devices[0]) lines.push("", `use: podman run --device ${r.spec.kind}=${r.devices[0].name} IMAGE   (the VF's address is in $VFIOCTL_VF_${r.devices[0].name.toUpperCase().replace(/[^A-Z0-9]/g, "_")})`);
      ctx.io.out(lines.join("\n"));
      return EXIT.OK;
    });
  },
});
