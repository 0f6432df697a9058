/**
 * `vfioctl sim …`: the kernel model's own controls.
 *   sim run FILE            play a scenario file and print its transcript (exit 1 when an
 *                           expectation did not hold, 2 on a bad file or bad usage)
 * and, on a simulated host that keeps its state (`--sim --state DIR`, src/sim/state.ts):
 *   sim hold / release / holders   long-lived model processes that hold a device open
 *   sim reboot                     a new boot (new tokens, no holders), then the boot units
 *   sim fault / sim status         fault injection, and what the state dir holds
 */
import { register } from "./index.js";
import { EXIT, type Command, type Context } from "../context.js";
import { formatTranscript, loadScenario, modelBackend, runScenario, ScenarioError, type Transcript } from "../../scenario/index.js";
import { HostFileError } from "../../kernel/host/host-file.js";
import { simSessionOf, type SimSession } from "../../sim/state.js";
import { VfioctlError } from "../../lib/errors.js";
import { checkBdf } from "../../lib/bdf.js";
import { openGroupSession } from "../../lib/vfio.js";
import { explainOpen } from "../../lib/explain.js";
import { watchKmsg } from "../../lib/kmsg.js";
import { errnoNumber, isErrno } from "../../sys/errno.js";
import { readAttr } from "../../sys/fsutil.js";
import { flagStr, guarded, parseArgs, type ParsedArgs } from "./common.js";
import { OPT, type CommandBody, type SubcommandSpec } from "../spec.js";
import { tokenFrom } from "./token.js";
import type { FaultSyscall } from "../../kernel/faults.js";
import { compareRelease, identifyKernel, parseKernelSpec, parseRelease } from "../../kernel/versions.js";

const SIM_SUBCOMMANDS: SubcommandSpec[] = [
  {
    name: "run",
    summary: "play a scenario file on the kernel model",
    positionals: [{ name: "file", complete: "file" }],
    options: [
      { name: "profile", type: "string", value: "V", description: "run on this kernel version only (6.1, 6.12, 6.17.1, 7.3.4+deb13-amd64 …; the file's per-kernel expectations of 6.12 apply from 6.12 on, those of 6.1 before; default: every profile the file declares)", complete: { values: ["6.1", "6.12"] } },
      { name: "host", type: "string", value: "FILE", description: "model host description (default: the file's host:, else hosts/lab-igb.yaml next to the scenario)", complete: "file" },
      { name: "json", type: "boolean", description: "print the transcript(s) as JSON" },
    ],
  },
  { name: "hold", summary: "a model process that holds a device open", positionals: [{ name: "bdf", complete: "bdf" }], options: [OPT.tokenFile, OPT.tokenStdin, OPT.token, { name: "as", type: "string", value: "NAME", description: "the holder's process name (default holder)", complete: "none" }] },
  { name: "release", summary: "end holders by device, name or pid", positionals: [{ name: "bdf|NAME|pid", complete: "bdf" }] },
  { name: "holders", summary: "list the holder processes" },
  { name: "reboot", summary: "a new boot of the simulated host" },
  { name: "fault", summary: "make matching syscalls fail", positionals: [{ name: "write|open|ioctl|clear|list", complete: { values: ["write", "open", "ioctl", "clear", "list"] } }, { name: "path", complete: "file", optional: true }, { name: "errno", optional: true, complete: "none" }], options: [{ name: "count", type: "string", value: "N", description: "how many matching calls fail (default 1)", complete: "none" }] },
  { name: "status", summary: "what the state directory holds" },
];
const subOptions = (sub: string) => SIM_SUBCOMMANDS.find((s) => s.name === sub)?.options ?? [];

const SPEC: CommandBody = {
  usage: [`sim run FILE [--profile 6.1|6.12] [--host HOSTFILE] [--json]`, `--sim [HOSTFILE] --state DIR sim hold <bdf> [--token-file F | --token-stdin] [--as NAME]`, `--sim --state DIR sim release <bdf|NAME|pid>`, `--sim --state DIR sim holders`, `--sim --state DIR sim reboot`, `--sim --state DIR sim fault write|open|ioctl PATH ERRNO [--count N]`, `--sim --state DIR sim fault clear|list`, `--sim --state DIR sim status`],
  description: `run      Play a scenario file (YAML or JSON, see docs/scenarios.md) on the kernel model and
         print, per operation, the return value, the errno and the kernel log lines it
         produced. The file's expectations are checked: the exit code is 1 when one did not
         hold.
           --profile V   run only this kernel profile (default: every profile the file declares)
           --host FILE   model host description (default: the file's host:, else
                         hosts/lab-igb.yaml next to the scenario)
           --json        print the transcript(s) as JSON

The other subcommands work on a simulated host that keeps its state in DIR (docs/sim-state.md):
hold     Start a model process (comm NAME, default "holder") that opens /dev/vfio/vfio and the
         device's group, sets the container and a type1 IOMMU, and gets the device fd with
         "<bdf>" or "<bdf> vf_token=<uuid>". It stays alive across invocations, holding the
         device, until 'sim release'. A failed open prints the errno and the likely reason;
         nothing is left held then (exit 3).
release  End the holder(s) with that pid, comm or held device: their files close, and a write
         that Linux blocked while they held a VF (sriov_numvfs, unbind) completes now.
holders  List the holder processes: pid, comm, device, start time, open files.
reboot   A new boot: new RNG seed (vfio-pci makes new VF tokens at probe), boot count + 1,
         empty log, no holders; vfio_pci options from DIR/root/etc/modprobe.d/*.conf; then
         every enabled unit of DIR/root/etc/systemd/system whose ExecStart runs vfioctl.
fault    Make the next N (default 1) matching syscalls fail with ERRNO before they run
         (PATH: exact, or a prefix ending in *). Kept in the log until 'sim fault clear'.
status   The state dir: host, profile, boot, records, holders, faults, blocked calls.`,
  subcommands: SIM_SUBCOMMANDS,
  exits: { 0: "done; run: every expectation held", 1: "run: an expectation did not hold", 3: "hold: the open failed (errno and likely reason shown)" },
  examples: [`vfioctl sim run scenarios/token-decision-table.yaml`, `vfioctl sim run scenarios/blocking-removal.yaml --profile 6.12 --json`, `vfioctl --sim --state /tmp/h sriov 0000:01:00.0 2`, `vfioctl --sim --state /tmp/h bind 0000:01:10.0 vfio-pci`, `vfioctl --sim --state /tmp/h sim hold 0000:01:10.0 --as qemu`, `vfioctl --sim --state /tmp/h --timeout 500 sriov 0000:01:00.0 0     # blocked (exit 4)`, `vfioctl --sim --state /tmp/h sim release qemu                       # the write completes`, `vfioctl --sim --state /tmp/h sim fault write /sys/bus/pci/devices/0000:01:00.0/sriov_numvfs EIO`, `vfioctl --sim --state /tmp/h sim reboot`],
};

function needState(ctx: Context, sub: string): SimSession {
  const s = simSessionOf(ctx.kernel);
  if (!s) throw new VfioctlError("BAD_INPUT", `sim ${sub}: needs a simulated host that keeps its state: vfioctl --sim [HOSTFILE] --state DIR sim ${sub} …`);
  return s;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

async function hold(ctx: Context, s: SimSession, rest: string[]): Promise<number> {
  const p = parseArgs(rest, subOptions("hold"), "sim hold");
  if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `sim hold: expected one device address, got ${p.positional.length}`);
  const bdf = checkBdf(p.positional[0]);
  const comm = flagStr(p, "as") ?? "holder";
  if (!/^[A-Za-z0-9_.:+-]{1,15}$/.test(comm)) throw new VfioctlError("BAD_INPUT", `--as: expected a process name of 1-15 characters [A-Za-z0-9_.:+-], got ${JSON.stringify(comm)}`);
  const t = await tokenFrom(ctx, p);
  let group: number;
  try {
    const link = await ctx.sys.readlink(`/sys/bus/pci/devices/${bdf}/iommu_group`);
    group = Number(link.slice(link.lastIndexOf("/") + 1));
  } catch (e) {
    if (!isErrno(e)) throw e;
    try {
      await ctx.sys.lstat(`/sys/bus/pci/devices/${bdf}`);
    } catch {
      throw new VfioctlError("NO_DEVICE", `sim hold: no device ${bdf} on this host`, { subject: bdf, fix: "vfioctl --sim --state DIR list --all" });
    }
    throw new VfioctlError("REFUSED", `sim hold: ${bdf} has no IOMMU group: there is no /dev/vfio node to open`, { subject: bdf, errno: "ENOENT" });
  }
  const kmsg = await watchKmsg(ctx.sys);
  const h = s.spawn(comm, "holder", bdf);
  try {
    const vs = await openGroupSession(h, group);
    const dfd = await vs.deviceFd(t ? `${bdf} vf_token=${t.token}` : bdf);
    await kmsg.drain();
    const files = [`/dev/vfio/vfio`, `/dev/vfio/${group}`, `${bdf} (device fd ${dfd})`];
    if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sim-hold/1", pid: h.pid, comm, holds: bdf, group, deviceFd: dfd, token: t ? "given" : "none" }, null, 2));
    else ctx.io.out(`pid ${h.pid} (${comm}) holds ${bdf}: ${files.join(", ")}${t ? " — opened with a VF token" : ""}\n  it stays open across invocations; end it with: vfioctl --sim --state ${s.dir} sim release ${h.pid}`);
    return EXIT.OK;
  } catch (e) {
    await s.exitProcess(h.pid);
    if (!isErrno(e)) throw e;
    const lines = await kmsg.drain();
    let reason = "";
    let fix = "";
    try {
      const x = await explainOpen(ctx.sys, bdf, { token: t ? true : false, errno: e.code });
      const c = x.ranked?.find((r) => r.operation === "open" && r.status !== "no");
      if (c) {
        reason = c.cause;
        fix = c.fix;
      }
    } catch {
      /* no explanation */
    }
    if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.error/1", error: "KERNEL", errno: e.code, syscall: e.syscall, path: e.path, message: e.message, kernel: lines, reason, fix, held: false, exit: EXIT.KERNEL }, null, 2));
    ctx.io.err(`vfioctl sim hold: ${bdf}: ${e.message}`);
    for (const l of lines) ctx.io.err(`  kernel: ${l}`);
    if (reason) ctx.io.err(`  reason: ${reason}`);
    if (fix) ctx.io.err(`  fix: ${fix}`);
    ctx.io.err(`  nothing is held (pid ${h.pid} exited)`);
    return EXIT.KERNEL;
  }
}

async function holderRows(ctx: Context, s: SimSession) {
  let btime = s.kernel.btime;
  try {
    const m = /^btime (\d+)$/m.exec(await readAttr(ctx.sys, "/proc/stat"));
    if (m) btime = Number(m[1]);
  } catch {
    /* keep the kernel's */
  }
  const rows = [];
  for (const h of s.holders()) {
    let startMs = btime * 1000;
    try {
      const f = (await readAttr(ctx.sys, `/proc/${h.pid}/stat`)).replace(/^.*\) /, "").split(" ");
      startMs += Number(f[19]) * 10; // field 22 (starttime) in clock ticks, USER_HZ 100
    } catch {
      /* gone */
    }
    const files: string[] = [];
    try {
      for (const fd of (await ctx.sys.readdir(`/proc/${h.pid}/fd`)).sort((a, b) => Number(a) - Number(b))) files.push(`${fd} → ${await ctx.sys.readlink(`/proc/${h.pid}/fd/${fd}`)}`);
    } catch {
      /* gone */
    }
    rows.push({ pid: h.pid, comm: h.comm, holds: h.holds ?? null, started: iso(startMs), files });
  }
  return rows;
}

async function release(ctx: Context, s: SimSession, rest: string[]): Promise<number> {
  const p = parseArgs(rest, subOptions("release"), "sim release");
  if (p.positional.length !== 1) throw new VfioctlError("BAD_INPUT", `sim release: expected a holder's device, name or pid, got ${p.positional.length} arguments`);
  const what = p.positional[0]!;
  const hs = s.holders().filter((h) => String(h.pid) === what || h.comm === what || h.holds === what);
  if (!hs.length) {
    const all = s.holders().map((h) => `${h.pid} (${h.comm}) ${h.holds ?? ""}`.trim());
    throw new VfioctlError("BAD_INPUT", `sim release: no holder matches ${JSON.stringify(what)} (${all.length ? `holders: ${all.join("; ")}` : "there are no holders"})`);
  }
  const before = s.late.length;
  for (const h of hs) await s.exitProcess(h.pid);
  const done = s.late.slice(before);
  if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sim-release/1", released: hs.map((h) => ({ pid: h.pid, comm: h.comm, holds: h.holds ?? null })), completed: done }, null, 2));
  else {
    for (const h of hs) ctx.io.out(`released pid ${h.pid} (${h.comm})${h.holds ? ` holding ${h.holds}` : ""}: its files are closed`);
    for (const d of done) ctx.io.out(`  pending call of pid ${d.pid} completed: ${d.what} → ${d.result}`);
  }
  return EXIT.OK;
}

async function reboot(ctx: Context, s: SimSession): Promise<number> {
  const r = await s.reboot();
  if (ctx.opts.json) {
    ctx.io.out(JSON.stringify({ schema: "vfioctl.sim-reboot/1", ...r }, null, 2));
  } else {
    const mods = Object.entries(r.modules).map(([k, v]) => `${k}=${v ? "Y" : "N"}`);
    ctx.io.out(`rebooted ${s.dir}: boot ${r.boot} (new RNG seed: vfio-pci made new VF tokens at probe; no holders; the log starts empty)`);
    ctx.io.out(`  vfio_pci options from /etc/modprobe.d: ${mods.length ? mods.join(" ") : "none"}`);
    for (const w of r.warnings) ctx.io.err(`  warning: ${w}`);
    if (!r.units.length) ctx.io.out("  boot units: none enabled (links in /etc/systemd/system/*.wants/)");
    for (const u of r.units) {
      if (!u.lines.length) ctx.io.out(`  unit ${u.unit}: nothing to run`);
      for (const l of u.lines) ctx.io.out(`  unit ${u.unit}: ${l.line ? `${l.line} → ` : ""}${l.code === null ? `skipped: ${l.skipped}` : `exit ${l.code}`}`);
      for (const o of u.output) ctx.io.out(`    | ${o}`);
    }
  }
  return r.units.every((u) => u.ok) ? EXIT.OK : EXIT.NO;
}

const FAULT_SYSCALLS = ["write", "open", "ioctl"];

async function fault(ctx: Context, s: SimSession, rest: string[]): Promise<number> {
  const p = parseArgs(rest, subOptions("fault"), "sim fault");
  const [op, path, errno] = p.positional;
  if (op === "clear" && p.positional.length === 1) {
    s.clearFaults();
    if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sim-faults/1", faults: s.kernel.faults.list() }, null, 2));
    else ctx.io.out("every injected fault cleared");
    return EXIT.OK;
  }
  if (op === "list" && p.positional.length === 1) {
    const l = s.kernel.faults.list();
    if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sim-faults/1", faults: l }, null, 2));
    else if (!l.length) ctx.io.out("no injected faults");
    else for (const f of l) ctx.io.out(`${f.syscall} ${f.path ?? "(any path)"} → ${f.errno} (${f.remaining} of ${f.count} left)`);
    return EXIT.OK;
  }
  if (!op || !FAULT_SYSCALLS.includes(op) || p.positional.length !== 3 || !path || !errno) {
    throw new VfioctlError("BAD_INPUT", `sim fault: expected "write|open|ioctl PATH ERRNO [--count N]", "clear" or "list", got ${JSON.stringify(p.positional.join(" "))}`);
  }
  if (!path.startsWith("/")) throw new VfioctlError("BAD_INPUT", `sim fault: PATH: expected an absolute path (or a prefix ending in *), got ${JSON.stringify(path)}`);
  if (errnoNumber(errno) === undefined) throw new VfioctlError("BAD_INPUT", `sim fault: ERRNO: expected an errno name like EIO, EBUSY or ENOSPC, got ${JSON.stringify(errno)}`);
  const cs = flagStr(p, "count");
  const count = cs === undefined ? 1 : Number(cs);
  if (!Number.isInteger(count) || count < 1) throw new VfioctlError("BAD_INPUT", `--count: expected a positive integer, got ${JSON.stringify(cs)}`);
  s.addFault({ syscall: op as FaultSyscall, path, errno: errno.toUpperCase(), count });
  if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sim-faults/1", faults: s.kernel.faults.list() }, null, 2));
  else ctx.io.out(`the next ${count === 1 ? "" : `${count} `}${op}${count === 1 ? "" : "s"} on ${path} fail${count === 1 ? "s" : ""} with ${errno.toUpperCase()} (kept until used or 'sim fault clear')`);
  return EXIT.OK;
}

async function status(ctx: Context, s: SimSession): Promise<number> {
  const holders = await holderRows(ctx, s);
  const blocked = s.kernel.blocked();
  const out = {
    dir: s.dir,
    source: s.host.source,
    profile: s.host.profile,
    boot: s.bootRec.boot,
    bootedAt: iso(s.bootRec.wallMs),
    records: s.records,
    holders,
    faults: s.kernel.faults.list(),
    blocked,
  };
  if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sim-status/1", ...out }, null, 2));
  else {
    ctx.io.out(`${s.dir}: ${s.host.source}, profile ${s.host.profile}, boot ${out.boot} since ${out.bootedAt}, ${out.records} log records`);
    ctx.io.out(`  holders: ${holders.length ? holders.map((h) => `${h.pid} (${h.comm}) ${h.holds ?? ""}`).join("; ") : "none"}`);
    ctx.io.out(`  faults: ${out.faults.length ? out.faults.map((f) => `${f.syscall} ${f.path ?? "*"} ${f.errno} ×${f.remaining}`).join("; ") : "none"}`);
    for (const b of blocked) ctx.io.out(`  blocked: pid ${b.pid} (${b.comm}) ${b.syscall}${b.path ? ` ${b.path}` : ""}: ${b.waitingOn}`);
  }
  return EXIT.OK;
}

async function runFile(ctx: Context, rest: string[]): Promise<number> {
  let p: ParsedArgs;
  try {
    p = parseArgs(rest, subOptions("run"), "sim run");
  } catch (e) {
    ctx.io.err(`vfioctl ${(e as Error).message}\n${sim.help}`);
    return EXIT.USAGE;
  }
  if (p.positional.length > 1) {
    ctx.io.err(`vfioctl sim run: unexpected argument ${JSON.stringify(p.positional[1])}\n${sim.help}`);
    return EXIT.USAGE;
  }
  const file = p.positional[0];
  const profile = flagStr(p, "profile") ?? (ctx.opts.profile as string | undefined);
  const host = flagStr(p, "host");
  const json = ctx.opts.json || p.flags.has("json");
  if (!file) {
    ctx.io.err(`vfioctl sim run: expected a scenario FILE\n${sim.help}`);
    return EXIT.USAGE;
  }
  let family: "6.1" | "6.12" | undefined;
  if (profile !== undefined) {
    let id;
    try {
      // a kernel spec, as the global --profile takes it: a version and -flag / +flag words
      id = identifyKernel(parseKernelSpec(profile).version);
    } catch (e) {
      ctx.io.err(`vfioctl sim run: --profile: ${(e as Error).message}`);
      return EXIT.USAGE;
    }
    // a scenario's expectations are written per "6.1" / "6.12" (as the lab applies them)
    family = compareRelease(id.release, parseRelease("6.12")) >= 0 ? "6.12" : "6.1";
  }
  const runs: Transcript[] = [];
  try {
    const sc = loadScenario(file);
    if (family && !sc.profiles.includes(family)) {
      ctx.io.err(`vfioctl sim run: ${file} declares profiles ${sc.profiles.join(", ")}; kernel ${profile} takes the expectations of ${family}, which it does not declare`);
      return EXIT.USAGE;
    }
    const plan = profile ? [{ kernel: profile, family: family! }] : sc.profiles.filter((p) => p === "6.1" || p === "6.12").map((p) => ({ kernel: p, family: p }));
    for (const p of plan) runs.push(await runScenario(sc, await modelBackend(sc, { profile: p.kernel, ...(host ? { host } : {}) }), { profile: p.family }));
  } catch (e) {
    if (e instanceof ScenarioError || e instanceof HostFileError) {
      ctx.io.err(`vfioctl sim run: ${e.message}`);
      return EXIT.USAGE;
    }
    throw e;
  }
  if (json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sim-run/1", ok: runs.every((t) => t.ok), runs, ...(runs.length === 1 ? runs[0] : {}) }, null, 2));
  else ctx.io.out(runs.map(formatTranscript).join("\n\n"));
  return runs.every((t) => t.ok) ? EXIT.OK : EXIT.NO;
}

const SUBS = ["run", "hold", "release", "holders", "reboot", "fault", "status"];

export const sim: Command = register({
  name: "sim",
  summary: "the kernel model: run a scenario file; with --state DIR: hold/release, reboot, faults",
  ...SPEC,
  async run(ctx: Context, args: string[]): Promise<number> {
    const [sub, ...rest] = args;
    if (!sub || !SUBS.includes(sub)) {
      ctx.io.err(sub ? `vfioctl sim: unknown subcommand ${JSON.stringify(sub)} (expected ${SUBS.join(", ")})\n${sim.help}` : sim.help);
      return EXIT.USAGE;
    }
    if (sub === "run") return runFile(ctx, rest);
    return guarded(ctx, `sim ${sub}`, async () => {
      const s = needState(ctx, sub);
      // what the session prints after the command (udev runs) goes where the command's output goes
      if (!s.nested()) s.io = ctx.io;
      switch (sub) {
        case "hold":
          return hold(ctx, s, rest);
        case "release":
          return release(ctx, s, rest);
        case "holders": {
          parseArgs(rest, subOptions(sub), `sim ${sub}`);
          const rows = await holderRows(ctx, s);
          if (ctx.opts.json) ctx.io.out(JSON.stringify({ schema: "vfioctl.sim-holders/1", holders: rows }, null, 2));
          else if (!rows.length) ctx.io.out("no holders");
          else
            for (const r of rows) {
              ctx.io.out(`pid ${r.pid} (${r.comm}) holds ${r.holds ?? "?"} since ${r.started}`);
              for (const f of r.files) ctx.io.out(`  fd ${f}`);
            }
          return EXIT.OK;
        }
        case "reboot":
          parseArgs(rest, subOptions(sub), `sim ${sub}`);
          return reboot(ctx, s);
        case "fault":
          return fault(ctx, s, rest);
        default:
          parseArgs(rest, subOptions(sub), `sim ${sub}`);
          return status(ctx, s);
      }
    });
  },
});
