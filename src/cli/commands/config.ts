/** `vfioctl config check|install|show`: the host config file itself. */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { AtomicWriteError, writeFileAtomic } from "../../sys/atomic.js";
import { DEFAULT_CONFIG, parseConfig } from "../../host/config.js";
import { loadConfig } from "../../host/host.js";
import { VfioctlError } from "../../lib/errors.js";
import { EXIT } from "../context.js";
import { register } from "./index.js";
import { flagStr, guarded, parseArgs } from "./common.js";
import { OPT, type OptionSpec } from "../spec.js";

const TO_OPTIONS: OptionSpec[] = [{ name: "to", type: "string", value: "PATH", description: `where the host config is (default ${DEFAULT_CONFIG}; with --sim under the simulated host's root)`, complete: "file" }];

register({
  name: "config",
  summary: "check a host config, or install it as this host's config (config check|install|show)",
  description: `check    validate a host config (default ${DEFAULT_CONFIG}); errors name the field, what was
         expected and what was found (exit 2)
install  validate FILE (a file of yours; relative paths are not mapped) and write it atomically
         as the host's config (default ${DEFAULT_CONFIG}; with --sim under the simulated host's root)
show     print the host's config file`,
  subcommands: [
    { name: "check", summary: "validate a host config", positionals: [{ name: "file", complete: "file", optional: true }] },
    { name: "install", summary: "install FILE as the host's config", positionals: [{ name: "file", complete: "file" }], options: [...TO_OPTIONS, { ...OPT.dryRun, description: "validate FILE and say where it would be written; change nothing" }] },
    { name: "show", summary: "print the host's config file", options: TO_OPTIONS },
  ],
  exits: { 0: "valid, installed or shown" },
  examples: [`vfioctl config check examples/lab-igb.yaml`, `vfioctl --sim --state /tmp/h config install examples/default-host.yaml`, `vfioctl --sim --state /tmp/h config show`],
  async run(ctx, args) {
    return guarded(ctx, "config", async () => {
      const [sub, ...rest] = args;
      const p = parseArgs(rest, sub === "install" ? [...TO_OPTIONS, OPT.dryRun] : TO_OPTIONS);
      if (sub === "check") {
        const file = p.positional[0] ?? DEFAULT_CONFIG;
        const cfg = loadConfig(ctx.files, file);
        if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.config/1", ok: true, config: cfg }, null, 2));
        else ctx.io.out(`${file}: valid (${cfg.pfs.length} PF${cfg.pfs.length === 1 ? "" : "s"}: ${cfg.pfs.map((x) => `${x.name} → ${x.driver}, ${x.vfs} VFs${x.token.policy !== "none" ? `, token ${x.token.policy}` : ""}`).join("; ")})`);
        return EXIT.OK;
      }
      if (sub === "install") {
        const src = p.positional[0];
        if (!src || p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `config install: expected one FILE, got ${p.positional.length}`);
        const to = flagStr(p, "to") ?? DEFAULT_CONFIG;
        if (!to.startsWith("/")) throw new VfioctlError("BAD_INPUT", `--to: expected an absolute host path, got ${JSON.stringify(to)}`);
        let text: string;
        try {
          text = fs.readFileSync(src, "utf8");
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? "EIO";
          throw new VfioctlError("BAD_INPUT", `config ${src}: ${code}`, { subject: src, errno: code });
        }
        parseConfig(text, src);
        if (p.flags.has("dry-run")) {
          if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.config/1", ok: true, dryRun: true, wouldInstall: ctx.files.show(to), from: src, bytes: Buffer.byteLength(text) }, null, 2));
          else ctx.io.out(`${src}: valid; dry run, nothing changed; would write ${ctx.files.show(to)} (${Buffer.byteLength(text)} bytes, mode 0644, atomically)`);
          return EXIT.OK;
        }
        const real = ctx.files.real(to);
        fs.mkdirSync(nodePath.dirname(real), { recursive: true, mode: 0o755 });
        try {
          writeFileAtomic(real, text, { mode: 0o644 });
        } catch (e) {
          const code = e instanceof AtomicWriteError ? e.code : ((e as NodeJS.ErrnoException).code ?? "EIO");
          throw new VfioctlError("KERNEL", `config install: ${ctx.files.show(to)}: ${code}`, { subject: to, errno: code, fix: "run as root, or give --to a writable path; nothing was changed" });
        }
        if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.config/1", ok: true, installed: ctx.files.show(to), from: src }, null, 2));
        else ctx.io.out(`${src} installed as ${ctx.files.show(to)}`);
        return EXIT.OK;
      }
      if (sub === "show") {
        const to = flagStr(p, "to") ?? DEFAULT_CONFIG;
        loadConfig(ctx.files, to);
        ctx.io.out(fs.readFileSync(ctx.files.real(to), "utf8"));
        return EXIT.OK;
      }
      throw new VfioctlError("BAD_INPUT", `config: expected check, install or show, got ${JSON.stringify(sub ?? "")}`);
    });
  },
});
