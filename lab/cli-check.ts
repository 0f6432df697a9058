/**
 * CLI conformance: the same `vfioctl` commands give the same answers on a real kernel and on the
 * model, once both are in the same state.
 *
 * scenarios/cli/cli-state.yaml brings the host to two states (ops "state-vfio" and "state-igb");
 * after each, `list`, `show`, `explain --all` and `audit` run with `--json` — through the CLI's
 * own command table, so exit status, stdout and stderr are what the command prints:
 *   - in the lab guest, in a child process (`node dist/lab/cli-snap.js`) over LinuxSyscalls: a
 *     separate process, as a user would run it (the scenario's processes are fd tables of the
 *     guest's one node process, and vfioctl does not list its own fds as holders);
 *   - on the model, in a process `vfioctl` of the model kernel the scenario ran on.
 * One guest run per kernel. Rows of the lab report: cli:setup (the scenario transcript, compared
 * like any scenario), cli:list, cli:show, cli:explain, cli:audit.
 *
 * Normalised before comparing ({@link normaliseCli}; docs/lab.md "CLI conformance"):
 *   - IOMMU group numbers → `@group_of(<lowest BDF in the group>)`, in numbers and in text
 *     (`/dev/vfio/N`, `/sys/kernel/iommu_groups/N`, "group N");
 *   - holders' pid, comm and fd → `<pid>`, `<comm>`, `<fd>` (in the guest every scenario process
 *     is the one node process; on the model each has its own pid), holder lists sorted after that;
 *   - `backend` ("linux" / "model") is dropped; a holder's `rdev` (dynamic major:minor) → `<rdev>`;
 *     a root cgroup "/" and none (the guest mounts no cgroup file system) compare equal;
 *   - the kernel's identification (`kernel.osrelease`, `procVersion`, `ident`, and release strings
 *     in text) → placeholders: the registry's Debian ABI number moves while the model's alias
 *     does not; the resolved behaviour flags and access paths are compared;
 *   - {@link GUEST_ONLY_DRIVERS}: the guest's own bus and share devices outside any PF → VF tree
 *     are on pcieport / virtio-pci, which the model host leaves unbound; compared as unbound.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import type { Syscalls } from "../src/sys/syscalls.js";
import type { OpDiff } from "./conformance.js";

export const CLI_SCENARIO = "scenarios/cli/cli-state.yaml";
/** ops of the scenario after which the commands run */
export const CLI_STATES = ["state-vfio", "state-igb"] as const;
const PF = "0000:01:00.0";
const VF0 = "0000:01:10.0";
const VF1 = "0000:01:10.2";

/** command name → argv (after the global --json) */
export const CLI_COMMANDS: Record<string, string[]> = {
  list: ["list"],
  "show-pf": ["show", PF],
  "show-vf0": ["show", VF0],
  "show-vf1": ["show", VF1],
  "explain-vf0": ["explain", VF0, "--all"],
  "explain-vf0-token": ["explain", VF0, "--with-token", "--all"],
  "explain-pf": ["explain", PF, "--all"],
  audit: ["audit"],
};

/** report rows → the commands they compare */
export const CLI_ROWS: Record<string, string[]> = {
  "cli:list": ["list"],
  "cli:show": ["show-pf", "show-vf0", "show-vf1"],
  "cli:explain": ["explain-vf0", "explain-vf0-token", "explain-pf"],
  "cli:audit": ["audit"],
};

/** Drivers the lab guest binds to its own infrastructure devices and the model host does not have. */
export const GUEST_ONLY_DRIVERS = new Set(["pcieport", "virtio-pci"]);

export interface CliOutput {
  exit: number;
  /** stdout parsed as JSON (the raw text when it is not JSON) */
  out: unknown;
  err: string;
}
export type CliSnapshot = Record<string, CliOutput>;

/** Run every {@link CLI_COMMANDS} entry as `vfioctl --json …` over `sys`. */
export async function runCliCommands(sys: Syscalls, opts: { log?: (s: string) => void } = {}): Promise<CliSnapshot> {
  await import("../src/cli/commands/all.js");
  const { COMMANDS } = await import("../src/cli/commands/index.js");
  const { hostFiles } = await import("../src/sys/hostfs.js");
  const snap: CliSnapshot = {};
  for (const [name, argv] of Object.entries(CLI_COMMANDS)) {
    const out: string[] = [];
    const err: string[] = [];
    const cmd = COMMANDS.find((c) => c.name === argv[0]);
    if (!cmd) throw new Error(`no command ${argv[0]}`);
    const t0 = performance.now();
    const exit = await cmd.run(
      { opts: { sim: false, json: true, timeoutMs: 5000 }, sys, files: hostFiles("/"), io: { out: (s) => out.push(s), err: (s) => err.push(s) }, env: {}, stdin: async () => "" },
      argv.slice(1),
    );
    const text = out.join("\n");
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* keep the text */
    }
    snap[name] = { exit, out: parsed, err: err.join("\n") };
    opts.log?.(`${name} ${Math.round(performance.now() - t0)} ms`);
  }
  return snap;
}

export interface CliRun {
  ms: number;
  transcript: unknown;
  snapshots: Record<string, CliSnapshot>;
}

/** In the guest (modules already loaded): play the state scenario, snapshot the CLI in a child process at each state. */
export async function runGuestCli(kernel: string, project: string, be: import("../src/scenario/runner.js").ScenarioBackend): Promise<CliRun> {
  const { loadScenario, runScenario } = await import("../src/scenario/index.js");
  const t0 = performance.now();
  const snapshots: Record<string, CliSnapshot> = {};
  const tr = await runScenario(loadScenario(path.join(project, CLI_SCENARIO)), be, {
    profile: kernel,
    afterOp: async (op) => {
      if (!(CLI_STATES as readonly string[]).includes(op)) return;
      const t = performance.now();
      const stdout = await new Promise<string>((res, rej) =>
        execFile(process.execPath, [path.join(project, "dist/lab/cli-snap.js")], { maxBuffer: 64 << 20 }, (e, o, se) => {
          process.stdout.write(se);
          if (e) rej(new Error(`cli-snap: ${e.message}`));
          else res(o);
        }),
      );
      snapshots[op] = JSON.parse(stdout) as CliSnapshot;
      process.stdout.write(`cli ${op}: ${Object.keys(snapshots[op]!).length} commands (${Math.round(performance.now() - t)} ms)\n`);
    },
  });
  return { ms: Math.round(performance.now() - t0), transcript: tr, snapshots };
}

/** On the host: the same on the model with the kernel's profile. */
export async function runModelCli(kernel: string, project: string): Promise<CliRun> {
  const { loadScenario, runScenario, modelBackend } = await import("../src/scenario/index.js");
  const t0 = performance.now();
  const sc = loadScenario(path.join(project, CLI_SCENARIO));
  // the scenario's processes share one fd table, as in the guest (lab/conformance.ts)
  const be = await modelBackend(sc, { profile: kernel, sharedFds: true });
  const snapshots: Record<string, CliSnapshot> = {};
  const tr = await runScenario(sc, be, {
    profile: kernel,
    afterOp: async (op) => {
      if (!(CLI_STATES as readonly string[]).includes(op)) return;
      const sys = await be.spawn("vfioctl");
      try {
        snapshots[op] = await runCliCommands(sys);
      } finally {
        await sys.exit().catch(() => {});
      }
    },
  });
  return { ms: Math.round(performance.now() - t0), transcript: tr, snapshots };
}

// ------------------------------------------------------------------ normalisation and diff

interface DevLike {
  bdf: string;
  iommuGroup: number | null;
  driver?: string | null;
}

/** IOMMU group number → `@group_of(<lowest BDF>)`, from the snapshot's own `list`. */
function groupNames(snap: CliSnapshot): Map<number, string> {
  const inv = snap.list?.out as { pfs?: (DevLike & { vfDevices: DevLike[] })[]; others?: DevLike[]; orphans?: DevLike[] } | undefined;
  const devs: DevLike[] = [...(inv?.pfs ?? []).flatMap((p) => [p, ...p.vfDevices]), ...(inv?.others ?? []), ...(inv?.orphans ?? [])];
  const m = new Map<number, string>();
  for (const d of [...devs].sort((a, b) => (a.bdf < b.bdf ? -1 : 1))) if (d.iommuGroup !== null && !m.has(d.iommuGroup)) m.set(d.iommuGroup, `@group_of(${d.bdf})`);
  return m;
}

/** The normalisation rules of the file comment, applied to one snapshot. */
export function normaliseCli(snap: CliSnapshot): CliSnapshot {
  const groups = groupNames(snap);
  const g = (n: number) => groups.get(n) ?? `@group(${n})`;
  const text = (s: string) =>
    s
      .replace(/\b\d+\.\d+\.\d+-\d+-amd64\b/g, "<osrelease>")
      .replace(/\b\d+\.\d+\.\d+\+deb\d+-amd64\b/g, "<osrelease>")
      .replace(/upstream \d+\.\d+\.\d+/g, "upstream <version>")
      .replace(/pid \d+ \([^)]*\) fd \d+/g, "pid <pid> (<comm>) fd <fd>")
      .replace(/pid \d+ \([^)]*\)/g, "pid <pid> (<comm>)")
      // a vfio group node's major is allocated at boot and its minor in group creation order
      .replace(/\(c (?!10:)\d+:\d+\)/g, "(c <rdev>)")
      .replace(/\/dev\/vfio\/(\d+)\b/g, (_, n: string) => `/dev/vfio/${g(Number(n))}`)
      .replace(/\/iommu_groups\/(\d+)\b/g, (_, n: string) => `/iommu_groups/${g(Number(n))}`)
      .replace(/\b(iommu_group|IOMMU group|group) (\d+)\b/g, (_, w: string, n: string) => `${w} ${g(Number(n))}`);
  const walk = (v: unknown, key: string, parent: Record<string, unknown> | null): unknown => {
    if (typeof v === "string") return text(v);
    if (Array.isArray(v)) {
      const a = v.map((x) => walk(x, key, null));
      // holder lists: order by content once pids and fds are gone
      if (a.length && a.every((x) => x && typeof x === "object" && "target" in (x as object) && "pid" in (x as object))) a.sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));
      return a;
    }
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      const r: Record<string, unknown> = {};
      const infra = !o.physfn && !o.sriov && typeof o.bdf === "string" && "driver" in o && "role" in o && o.role === "device";
      for (const [k, x] of Object.entries(o)) {
        if (k === "backend") continue;
        // the kernel's identification: the registry's Debian ABI number moves (6.1.0-56 → -57) while
        // the model's alias stays; its behaviour flags and access paths are still compared
        if ((k === "osrelease" || k === "procVersion" || k === "ident") && key === "kernel") {
          r[k] = "<kernel identification>";
          continue;
        }
        if ((k === "pid" || k === "fd") && typeof x === "number") r[k] = `<${k}>`;
        // a group node's major:minor is dynamic on Linux (the vfio char region, minors in group
        // creation order); the model numbers them its own way
        else if (k === "rdev" && typeof x === "string") r[k] = "<rdev>";
        // the root cgroup: the guest (no cgroup file system mounted) reads none, the model "/"
        else if (k === "cgroup" && (x === "/" || x === null)) r[k] = null;
        else if (k === "comm" && typeof x === "string") r[k] = "<comm>";
        else if ((k === "iommuGroup" || k === "group") && typeof x === "number") r[k] = g(x);
        else if (k === "driver" && infra && typeof x === "string" && GUEST_ONLY_DRIVERS.has(x)) r[k] = null;
        else r[k] = walk(x, k, o);
      }
      return r;
    }
    void parent;
    return v;
  };
  return walk(snap, "", null) as CliSnapshot;
}

/** Leaf-by-leaf differences (path, real, model). */
function deepDiff(a: unknown, b: unknown, at: string, out: { path: string; real: unknown; model: unknown }[]): void {
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  if (a && b && typeof a === "object" && typeof b === "object" && Array.isArray(a) === Array.isArray(b)) {
    if (Array.isArray(a) && Array.isArray(b)) {
      const bdfKey = (x: unknown) => (x && typeof x === "object" && typeof (x as { bdf?: unknown }).bdf === "string" ? (x as { bdf: string }).bdf : null);
      if (a.every((x) => bdfKey(x)) && b.every((x) => bdfKey(x))) {
        const mb = new Map(b.map((x) => [bdfKey(x)!, x]));
        const ma = new Map(a.map((x) => [bdfKey(x)!, x]));
        for (const [k, x] of ma) deepDiff(x, mb.get(k), `${at}[${k}]`, out);
        for (const [k, x] of mb) if (!ma.has(k)) deepDiff(undefined, x, `${at}[${k}]`, out);
        if (JSON.stringify([...ma.keys()]) !== JSON.stringify([...mb.keys()]) && [...ma.keys()].every((k) => mb.has(k)) && ma.size === mb.size) out.push({ path: `${at} order`, real: [...ma.keys()], model: [...mb.keys()] });
        return;
      }
      for (let i = 0; i < Math.max(a.length, b.length); i++) deepDiff(a[i], b[i], `${at}[${i}]`, out);
      return;
    }
    const ao = a as Record<string, unknown>;
    const bo = b as Record<string, unknown>;
    for (const k of new Set([...Object.keys(ao), ...Object.keys(bo)])) deepDiff(ao[k], bo[k], at ? `${at}.${k}` : k, out);
    return;
  }
  out.push({ path: at, real: a ?? null, model: b ?? null });
}

/** Per report row, the differences between the real and the model runs (after normalisation). */
export function diffCli(real: CliRun, model: CliRun): Record<string, OpDiff[]> {
  const res: Record<string, OpDiff[]> = {};
  for (const [row, cmds] of Object.entries(CLI_ROWS)) {
    const d: OpDiff[] = [];
    for (const st of CLI_STATES) {
      const rs = real.snapshots[st];
      const ms = model.snapshots[st];
      if (!rs || !ms) {
        d.push({ op: st, field: "presence", real: rs ? "ran" : "absent", model: ms ? "ran" : "absent" });
        continue;
      }
      const rn = normaliseCli(rs);
      const mn = normaliseCli(ms);
      for (const c of cmds) {
        const leaves: { path: string; real: unknown; model: unknown }[] = [];
        deepDiff(rn[c], mn[c], "", leaves);
        for (const l of leaves) d.push({ op: `${st} ${CLI_COMMANDS[c]!.join(" ")}`, field: l.path, real: l.real, model: l.model });
      }
    }
    res[row] = d;
  }
  return res;
}
