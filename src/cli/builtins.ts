/**
 * The commands made from the definitions rather than declared by one: `vfioctl completion
 * bash|zsh|fish` (the scripts), the hidden `vfioctl __complete WORD…` they call (candidates for
 * the command line typed so far, devices and drivers read from the host or the model the line
 * names with --sim/--state/--root), and `vfioctl man` (the manual page in roff).
 */
import { EXIT, type GlobalOptions, type Output } from "./context.js";
import { allCommands } from "./commands/modules.js";
import { GLOBAL_OPTIONS, allOptions, exitRows, usageLines, EXIT_RULE, type CommandSpec, type CompletionKind, type OptionSpec } from "./spec.js";
import type { Syscalls } from "../sys/syscalls.js";
import { toAscii } from "./output.js";

export interface BuiltinCtx {
  io: Output;
  opts: GlobalOptions;
  env: Record<string, string | undefined>;
  argv: string[];
}

const SHELLS = ["bash", "zsh", "fish"] as const;

/** The help of the built-in commands. */
export const BUILTIN_HELP: Record<string, string> = {
  completion: `usage: vfioctl completion bash|zsh|fish

Print a completion script for the shell. It completes commands, subcommands (token set …),
options and their values, devices (all devices, PFs or VFs, as the argument needs) and drivers,
asking \`vfioctl __complete\` for the command line typed so far: the devices are those of the host
that line names (--sim [HOSTFILE], --state DIR, --root DIR), else of this host.

Exit codes:
   0  printed
   2  bad usage or bad input (nothing changed)

Examples:
  source <(vfioctl completion bash)
  vfioctl completion bash > ~/.local/share/bash-completion/completions/vfioctl
  vfioctl completion zsh > "\${fpath[1]}/_vfioctl"
  vfioctl completion fish > ~/.config/fish/completions/vfioctl.fish`,
  man: `usage: vfioctl man

Print the manual page vfioctl(1) in roff, generated from the same definitions as --help.

Exit codes:
   0  printed

Examples:
  vfioctl man | man -l -`,
};

export async function builtin(name: string, args: string[], b: BuiltinCtx): Promise<number> {
  if (name === "completion") {
    const sh = args[0];
    if (args.length !== 1 || !SHELLS.includes(sh as (typeof SHELLS)[number])) {
      b.io.err(`vfioctl completion: expected one of ${SHELLS.join(", ")}, got ${JSON.stringify(args.join(" "))}\n  install: vfioctl completion bash > ~/.local/share/bash-completion/completions/vfioctl`);
      return EXIT.USAGE;
    }
    b.io.out(completionScript(sh as (typeof SHELLS)[number]));
    return EXIT.OK;
  }
  if (name === "man") {
    b.io.out(manPage(await allCommands()));
    return EXIT.OK;
  }
  // __complete: everything after "__complete" (and an optional "--") is the line, the last word being completed
  const i = b.argv.indexOf("__complete");
  let words = b.argv.slice(i + 1);
  if (words[0] === "--") words = words.slice(1);
  if (words[0] === "vfioctl" || words[0]?.endsWith("/vfioctl") || words[0]?.endsWith("vfioctl.js")) words = words.slice(1);
  for (const c of await complete(words.length ? words : [""])) b.io.out(c);
  return EXIT.OK;
}

/** Markers a completion script turns into the shell's own file and directory completion. */
export const FILE_MARK = "__vfioctl_file__";
export const DIR_MARK = "__vfioctl_dir__";

const BUILTIN_COMMANDS: { name: string; summary: string }[] = [
  { name: "help", summary: "a command's help" },
  { name: "completion", summary: "print a bash, zsh or fish completion script" },
  { name: "man", summary: "print the manual page (roff)" },
  { name: "version", summary: "print vfioctl's version" },
];

const longNames = (options: readonly OptionSpec[]) => options.filter((o) => !o.hidden).map((o) => `--${o.name}`);

/** Candidates for the last word of `words` (the words after "vfioctl"). */
export async function complete(words: string[]): Promise<string[]> {
  const cur = words[words.length - 1] ?? "";
  const before = words.slice(0, -1);
  const commands = (await allCommands()).filter((c) => !c.hidden);
  const globalValued = new Map(GLOBAL_OPTIONS.filter((o) => o.type === "string").map((o) => [`--${o.name}`, o]));
  // walk the words typed so far: global options, the command, its subcommand, its positionals
  let cmd: CommandSpec | undefined;
  let builtinName: string | undefined;
  let sub: { options?: OptionSpec[]; positionals?: CommandSpec["positionals"] } | undefined;
  let npos = 0;
  let pending: OptionSpec | undefined;
  const globals: string[] = [];
  for (let i = 0; i < before.length; i++) {
    const w = before[i]!;
    if (pending) {
      pending = undefined;
      continue;
    }
    if (w.startsWith("-")) {
      const name = w.split("=")[0]!;
      const g = globalValued.get(name);
      if (g) {
        globals.push(w);
        if (!w.includes("=")) {
          if (i + 1 < before.length) globals.push(before[i + 1]!);
          else globals.push("");
          pending = g;
        }
        continue;
      }
      if (name === "--sim") {
        globals.push(w);
        const n = before[i + 1];
        if (n && /\.(ya?ml|json)$/i.test(n)) {
          globals.push(n);
          i++;
        }
        continue;
      }
      const own = [...(cmd?.options ?? []), ...(sub?.options ?? [])].find((o) => `--${o.name}` === name || (o.short && `-${o.short}` === name));
      if (own?.type === "string" && !w.includes("=")) pending = own;
      if (GLOBAL_OPTIONS.some((o) => `--${o.name}` === name)) globals.push(w);
      continue;
    }
    if (!cmd && !builtinName) {
      cmd = commands.find((c) => c.name === w);
      if (!cmd) builtinName = w;
      continue;
    }
    if (cmd?.subcommands?.length && !sub) {
      sub = cmd.subcommands.find((s) => s.name === w) ?? {};
      continue;
    }
    npos++;
  }
  const match = (xs: readonly string[]) => [...new Set(xs)].filter((x) => x.startsWith(cur));
  // the value of an option typed just before
  const prev = before[before.length - 1];
  if (pending) return valuesOf(pending.complete ?? "none", cur, GLOBAL_OPTIONS.includes(pending) ? globals.slice(0, -1) : globals);
  if (cur.startsWith("-")) {
    const eq = cur.indexOf("=");
    if (eq > 0) {
      const name = cur.slice(0, eq);
      const o = [...GLOBAL_OPTIONS, ...(cmd?.options ?? []), ...(sub?.options ?? [])].find((x) => `--${x.name}` === name && x.type === "string");
      if (!o) return [];
      const vals = await valuesOf(o.complete ?? "none", cur.slice(eq + 1), globals);
      return vals.map((v) => (v === FILE_MARK || v === DIR_MARK ? v : `${name}=${v}`));
    }
    const own = cmd ? (sub ? [...(cmd.options ?? []), ...(sub.options ?? [])] : cmd.subcommands?.length ? (cmd.options ?? []) : allOptions(cmd).map((x) => x.option)) : [];
    return match([...longNames(own), ...longNames(GLOBAL_OPTIONS)]);
  }
  if (!cmd && !builtinName) {
    if (prev === "--sim" && /[/.]/.test(cur)) return [FILE_MARK];
    return match([...commands.map((c) => c.name), ...BUILTIN_COMMANDS.map((c) => c.name)]);
  }
  if (builtinName) {
    if (builtinName === "help" && npos === 0) return match(commands.map((c) => c.name));
    if (builtinName === "completion" && npos === 0) return match(SHELLS);
    return [];
  }
  if (cmd!.subcommands?.length && !sub) return match(cmd!.subcommands.map((s) => s.name));
  const positionals = sub ? (sub.positionals ?? []) : (cmd!.positionals ?? []);
  const p = positionals[npos] ?? (positionals.length && positionals[positionals.length - 1]!.variadic ? positionals[positionals.length - 1] : undefined);
  if (!p) return [];
  return valuesOf(p.complete ?? "none", cur, globals);
}

async function valuesOf(kind: CompletionKind, cur: string, globals: string[]): Promise<string[]> {
  const match = (xs: readonly string[]) => [...new Set(xs)].filter((x) => x.startsWith(cur));
  if (typeof kind === "object") return match(kind.values);
  switch (kind) {
    case "file":
      return [FILE_MARK];
    case "dir":
      return [DIR_MARK];
    case "none":
      return [];
    case "command":
      return match((await allCommands()).filter((c) => !c.hidden).map((c) => c.name));
    default:
      return match(await hostNames(kind, globals));
  }
}

/** Devices (all, PFs or VFs) or drivers of the host the typed global options name. */
async function hostNames(kind: "bdf" | "pf" | "vf" | "driver", globals: string[]): Promise<string[]> {
  const { parseGlobal, checkGlobal, openBackend } = await import("./main.js");
  const g = parseGlobal(globals);
  if (g.error || checkGlobal(g.opts, [])) return [];
  const quiet: Output = { out() {}, err() {} };
  let backend;
  try {
    backend = await openBackend({ ...g.opts, timeoutMs: 200 }, quiet);
  } catch {
    return [];
  }
  try {
    return await names(backend.sys, kind);
  } catch {
    return [];
  } finally {
    await backend.close();
  }
}

async function names(sys: Syscalls, kind: "bdf" | "pf" | "vf" | "driver"): Promise<string[]> {
  if (kind === "driver") return (await sys.readdir("/sys/bus/pci/drivers")).sort();
  const all = (await sys.readdir("/sys/bus/pci/devices")).sort();
  if (kind === "bdf") return all;
  const has = async (p: string) =>
    sys.lstat(p).then(
      () => true,
      () => false,
    );
  const out: string[] = [];
  for (const d of all) if (await has(`/sys/bus/pci/devices/${d}/${kind === "pf" ? "sriov_totalvfs" : "physfn"}`)) out.push(d);
  return out;
}

/** The completion script for a shell: it asks `vfioctl __complete` for the candidates. */
export function completionScript(shell: "bash" | "zsh" | "fish"): string {
  if (shell === "bash")
    return `# bash completion for vfioctl (generated by: vfioctl completion bash)
# install: vfioctl completion bash > ~/.local/share/bash-completion/completions/vfioctl
#      or: source <(vfioctl completion bash)
_vfioctl() {
    local IFS=$' \t\n' cur out line
    local -a words
    if [[ -n \${COMP_LINE-} ]]; then
        # split the line ourselves: bash splits words at ':' (COMP_WORDBREAKS), and BDFs have colons
        line=\${COMP_LINE:0:COMP_POINT}
        read -ra words <<< "$line"
        [[ -z $line || $line == *[[:space:]] ]] && words+=("")
    else
        words=("\${COMP_WORDS[@]:0:COMP_CWORD+1}")
    fi
    cur=\${words[\${#words[@]}-1]}
    out=$("\${words[0]}" __complete -- "\${words[@]:1}" 2>/dev/null)
    IFS=$'\n'
    COMPREPLY=()
    case "$out" in
        ${FILE_MARK}) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
        ${DIR_MARK}) COMPREPLY=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null ;;
        *) [[ -n $out ]] && COMPREPLY=($out) ;;
    esac
    # bash replaces only the part of the word after its last ':'
    if [[ -n \${COMP_LINE-} && $cur == *:* && \${COMP_WORDBREAKS-:} == *:* ]]; then
        local p=\${cur%"\${cur##*:}"}
        COMPREPLY=("\${COMPREPLY[@]#"$p"}")
    fi
    return 0
}
complete -F _vfioctl vfioctl
`;
  if (shell === "zsh")
    return `#compdef vfioctl
# zsh completion for vfioctl (generated by: vfioctl completion zsh)
# install: vfioctl completion zsh > "\${fpath[1]}/_vfioctl"   (or: source <(vfioctl completion zsh))
_vfioctl() {
    local -a candidates
    local out
    out=$("\${words[1]}" __complete -- "\${(@)words[2,CURRENT]}" 2>/dev/null)
    case "$out" in
        ${FILE_MARK}) _files ;;
        ${DIR_MARK}) _files -/ ;;
        *) candidates=("\${(@f)out}"); (( \${#candidates} )) && [[ -n "$out" ]] && compadd -a candidates ;;
    esac
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then
    _vfioctl "$@"
else
    compdef _vfioctl vfioctl
fi
`;
  return `# fish completion for vfioctl (generated by: vfioctl completion fish)
# install: vfioctl completion fish > ~/.config/fish/completions/vfioctl.fish
function __vfioctl_complete
    set -l words (commandline -opc) (commandline -ct)
    set -l out (command $words[1] __complete -- $words[2..-1] 2>/dev/null)
    switch "$out"
        case ${FILE_MARK}
            __fish_complete_path (commandline -ct)
        case ${DIR_MARK}
            __fish_complete_directories (commandline -ct)
        case '*'
            printf '%s\\n' $out
    end
end
complete -c vfioctl -f -a '(__vfioctl_complete)'
`;
}

/** Escape text for roff: backslashes, leading dots and apostrophes, and hyphens in options. */
const roff = (s: string) =>
  toAscii(s)
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .split("\n")
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join("\n");

/** The manual page, vfioctl(1), in roff (man -l renders it). */
export function manPage(commands: readonly CommandSpec[]): string {
  const out: string[] = [];
  out.push('.TH VFIOCTL 1 "" "vfioctl" "User Commands"');
  out.push(".SH NAME", "vfioctl \\- vfio\\-pci SR\\-IOV physical functions, virtual functions and VF tokens");
  out.push(".SH SYNOPSIS", ".B vfioctl", roff("[--sim [HOSTFILE] [--state DIR]] [--profile VERSION] [--root DIR] [--json] [-q] [--timeout MS] COMMAND [ARGS]"));
  out.push(".SH DESCRIPTION", roff("Inspect and manage vfio-pci SR-IOV physical functions, their virtual functions and VF tokens, on this Linux host or on the built-in kernel model (--sim)."));
  out.push(".SH GLOBAL OPTIONS");
  for (const o of GLOBAL_OPTIONS) out.push(".TP", `.B ${roff(`${o.short ? `-${o.short}, ` : ""}--${o.name}${o.type === "string" ? ` ${o.value ?? "V"}` : o.value ? ` [${o.value}]` : ""}`)}`, roff(o.description));
  out.push(".SH COMMANDS");
  for (const c of commands.filter((x) => !x.hidden)) {
    out.push(`.SS ${roff(c.name)}`, roff(c.summary), ".PP", ".nf", ...usageLines(c).map(roff), ".fi", ".PP", ".nf", roff(c.description), ".fi");
    const opts = allOptions(c).filter((x) => !x.option.hidden);
    if (opts.length) {
      out.push(".PP", "Options:");
      for (const { option: o, subs } of opts) out.push(".TP", `.B ${roff(`--${o.name}${o.type === "string" ? ` ${o.value ?? "V"}` : o.value ? ` [${o.value}]` : ""}`)}`, roff(`${o.description}${subs.length && c.subcommands && subs.length < c.subcommands.length ? ` (${subs.join(", ")})` : ""}`));
    }
    out.push(".PP", "Exit codes:");
    for (const [code, text] of exitRows(c)) out.push(".TP", `.B ${code}`, roff(text));
    if (c.examples.length) out.push(".PP", "Examples:", ".PP", ".nf", ...c.examples.map((e) => roff(`  ${e}`)), ".fi");
  }
  out.push(".SH COMPLETION", ".nf", roff("vfioctl completion bash > ~/.local/share/bash-completion/completions/vfioctl"), roff('vfioctl completion zsh > "${fpath[1]}/_vfioctl"'), roff("vfioctl completion fish > ~/.config/fish/completions/vfioctl.fish"), ".fi");
  out.push(".SH EXIT STATUS");
  for (const [code, text] of EXIT_RULE) out.push(".TP", `.B ${code}`, roff(text));
  out.push(".SH ENVIRONMENT", ".TP", ".B VFIOCTL_VF_TOKEN", roff("a VF token (token set, token verify, explain, args)"), ".TP", ".B NO_COLOR", "no colour, even on a terminal", ".TP", ".B LC_ALL, LC_CTYPE, LANG", roff("UTF-8 symbols only with a UTF-8 locale (and a terminal); ASCII otherwise"));
  out.push(".SH SEE ALSO", roff("The documents under docs/ in the vfioctl package: cli.md, json.md, host-config.md, host-file.md, scenarios.md, lab.md."));
  return out.join("\n");
}
