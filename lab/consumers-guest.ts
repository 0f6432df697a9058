/**
 * The consumer rows inside a lab guest (lab/consumers.ts): real dpdk-testpmd and QEMU processes
 * beside vfioctl. guest.ts runs it for a job `{ kind: "consumers", consumers: { row, trixie } }`;
 * the result is /tmp/consumers.json.
 *
 * The programs are the Debian 13 folder's (lab/prepare.sh, step dpdk): the guest's root is the
 * host's Debian 12 root, so they run either
 *   - in the guest's own root and mount namespace, through the folder's dynamic loader with its
 *     library path: /mnt/bin/dpdk-testpmd, /mnt/bin/qemu-system-x86_64 and /mnt/bin/socat are
 *     small sh wrappers that exec a symlink named like the program pointing at the folder's
 *     ld-linux-x86-64.so.2 (so /proc/PID/comm is the program's name, not "ld-linux-x86-64"),
 *     with --argv0 and the folder's libraries; QEMU gets -L for its firmware;
 *   - chrooted into the folder (row dpdk:chroot), with the guest's /dev (and its hugetlbfs),
 *     /proc and /sys bound into it and a tmpfs on its /run;
 *   - in a mount namespace of their own (row dpdk:mntns): `unshare -m`, a tmpfs on /dev with only
 *     the nodes a container runtime would give (mknod /dev/vfio/vfio, /dev/vfio/<group>, null,
 *     zero, urandom) and a hugetlbfs, then the wrapper.
 * DPDK needs hugepages (the row's guest boots with hugepages=256, 4 GiB) on /dev/hugepages and a
 * writable /var/run for its runtime directory (a tmpfs on the guest's /run).
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import {
  PF,
  VF0,
  ROLE_COMM,
  cgroupOf,
  maskTokens,
  normaliseLogLine,
  parseQemu,
  parseTestpmd,
  pciIdsOf,
  scenarioOf,
  snapshotOver,
  stepsOf,
  vfioctlOver,
  type CliOutput,
  type ConsumerRecord,
  type ConsumerRow,
  type ConsumerRun,
  type StepRun,
  type TruthFd,
  type TruthProc,
} from "./consumers.js";

const BIN = "/mnt/bin";
const TOKEN_FILE = { U: "/mnt/token-U", W: "/mnt/token-W" } as const;
const QMP_SOCK = "/mnt/qmp.sock";
const PMDS = "/usr/lib/x86_64-linux-gnu/dpdk/pmds-25.0";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (s: string) => process.stdout.write(`consumers: ${s}\n`);

interface Job {
  consumers: { row: ConsumerRow; trixie: string };
}

/** A consumer process: its output as it comes, its exit. */
class Proc {
  readonly child: ChildProcess;
  all = "";
  stderr = "";
  exit: number | null = null;
  signal: string | null = null;
  readonly exited: Promise<void>;
  readonly t0 = performance.now();
  constructor(
    readonly role: string,
    readonly cmd: string,
    readonly argv: string[],
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(cmd, argv, { stdio: ["pipe", "pipe", "pipe"], env });
    this.child.stdout!.on("data", (b: Buffer) => (this.all += b.toString()));
    this.child.stderr!.on("data", (b: Buffer) => {
      this.all += b.toString();
      this.stderr += b.toString();
    });
    this.child.stdin!.on("error", () => {});
    this.exited = new Promise((res) =>
      this.child.on("exit", (code, sig) => {
        this.exit = code;
        this.signal = sig;
        res();
      }),
    );
    this.child.on("error", (e) => {
      this.all += `\n(spawn error: ${e.message})\n`;
    });
  }
  get pid(): number | null {
    return this.child.pid ?? null;
  }
  get alive(): boolean {
    return this.exit === null && this.signal === null;
  }
  /** wait until `re` matches the output, the process exits, or `ms` pass */
  async waitFor(re: RegExp, ms: number): Promise<boolean> {
    const t = performance.now();
    while (performance.now() - t < ms) {
      if (re.test(this.all)) return true;
      if (!this.alive) return re.test(this.all);
      await sleep(100);
    }
    return re.test(this.all);
  }
  send(s: string): void {
    try {
      this.child.stdin!.write(s);
    } catch {
      /* gone */
    }
  }
  async waitExit(ms: number): Promise<void> {
    const t = setTimeout(() => this.child.kill("SIGKILL"), ms);
    await this.exited;
    clearTimeout(t);
  }
}

/** In the guest: one consumer row → out/consumers.json. */
export async function runGuestConsumerJob(kernel: string, project: string, out: string): Promise<unknown> {
  const job = JSON.parse(readFileSync(process.argv[2] ?? "/tmp/job.json", "utf8")) as Job;
  const { row, trixie: T } = job.consumers;
  const t0 = performance.now();
  const { loadScenario } = await import("../src/scenario/index.js");
  const sc = loadScenario(path.join(project, scenarioOf(row)));
  const tokens = sc.tokens as Record<"U" | "W", string>;
  const mask = (s: string) => maskTokens(s, tokens);
  const run: ConsumerRun = { row, kernel, ms: 0, env: {}, steps: [], consumers: {}, args: {}, roles: {} };
  const procs: Proc[] = [];
  try {
    await prepareGuest(run, T, tokens);
    const { LinuxSyscalls } = await import("../src/sys/linux/host.js");
    const { linuxBackend, runScenario } = await import("../src/scenario/index.js");
    // the setup of the row's scenario (the PF on vfio-pci, no VFs), as on the model
    const setup = await runScenario({ ...sc, ops: [] }, await linuxBackend({ profile: kernel, blockWindowMs: 3000, settleMs: 2000 }), { profile: kernel });
    run.setup = setup;
    if (!(setup as { ok: boolean }).ok) throw new Error(`setup failed: ${JSON.stringify((setup as { failures: unknown }).failures)}`);
    const sys = new LinuxSyscalls();
    const { KmsgReader } = await import("../src/sys/kmsg.js");
    const { KMSG_LEVELS } = await import("../src/sys/kmsg.js");
    const kmsg = await KmsgReader.open(sys);
    const groups = new Map<number, string>();
    const defs = new Map(stepsOf(row).map((s) => [s.name, s]));
    const env = { ...process.env, PATH: `${BIN}:${process.env.PATH ?? "/usr/bin:/bin"}` };
    const live = new Map<string, Proc>();
    let tStep = performance.now();

    /** the step: settle, the kernel's lines, vfioctl, the consumers' fds, second opens of held groups */
    const step = async (name: string) => {
      const def = defs.get(name);
      if (!def) throw new Error(`no step ${name} for ${row}`);
      await sleep(800);
      const log = (await kmsg.drain()).map((r) => `<${KMSG_LEVELS[r.level] ?? r.level}> ${normaliseLogLine(r.text, groups)}`);
      const snapshot = await snapshotOver(sys, def.commands);
      const truth = [...live.values()].filter((p) => p.alive && p.pid).map((p) => truthOf(p));
      const held = new Set(truth.flatMap((p) => p.fds.filter((f) => f.kind === "group" && f.group !== null).map((f) => f.group!)));
      const probes = [...held].map((g) => probeGroup(g));
      const s: StepRun = { name, ms: Math.round(performance.now() - tStep), log, snapshot: maskSnap(snapshot, mask), truth, probes };
      run.steps.push(s);
      say(`step ${name}: ${log.length} kernel lines, ${truth.map((p) => `${p.role}=${p.fds.length} fds`).join(" ")} (${s.ms} ms)`);
      tStep = performance.now();
    };
    const record = (p: Proc, facts0: ConsumerRecord["facts"]) => {
      const facts = JSON.parse(mask(JSON.stringify(facts0))) as ConsumerRecord["facts"];
      run.consumers[p.role] = {
        role: p.role,
        comm: ROLE_COMM[p.role] ?? p.role,
        argv: [p.cmd, ...p.argv].map(mask),
        pid: p.pid,
        exit: p.exit,
        signal: p.signal,
        output: mask(p.all),
        stderr: mask(p.stderr),
        facts,
        ms: Math.round(performance.now() - p.t0),
      };
    };
    const start = (role: string, cmd: string, argv: string[], e: NodeJS.ProcessEnv = env) => {
      const p = new Proc(role, cmd, argv, e);
      procs.push(p);
      live.set(role, p);
      if (p.pid) run.roles[String(p.pid)] = role;
      say(`start ${role}: ${mask([cmd, ...argv].join(" "))}`);
      return p;
    };
    const rawArgs: Record<string, CliOutput> = {};
    const args = async (name: string, argv: string[]): Promise<string[]> => {
      const o = await vfioctlOver(sys, argv);
      rawArgs[name] = o;
      const a = ((o.out as { argv?: string[] } | null)?.argv ?? []) as string[];
      run.args[name] = { ...o, out: JSON.parse(mask(JSON.stringify(o.out))), err: mask(o.err), argv: a.map(mask) };
      return a;
    };

    // ---------------------------------------------------------------- testpmd
    const eal = (prefix: string, devArgs: string[], pmds: string) => ["-l", "0-1", "-n", "1", "--file-prefix", prefix, ...devArgs, "-d", pmds, "--", "-i", "--total-num-mbufs=2048"];
    const startTestpmd = async (role: string, devArgs: string[], place: "plain" | "chroot" | "mntns") => {
      let p: Proc;
      if (place === "plain") p = start(role, "dpdk-testpmd", eal(role, devArgs, `${T}${PMDS}`));
      else if (place === "chroot") p = start(role, "chroot", [T, "/usr/bin/dpdk-testpmd", ...eal(role, devArgs, PMDS)]);
      else {
        const g = groupOf(VF0);
        const st = statSync(`/dev/vfio/${g}`);
        const [maj, min] = devNum(st.rdev);
        // the cgroup a container runtime would have made (docker-<id>.scope, libpod-<id>.scope, a pod's)
        const cg = cgroupOf(row, role);
        if (cg) mkdirSync(`/sys/fs/cgroup${cg}`, { recursive: true });
        const script = [
          "set -e",
          ...(cg ? [`echo $$ > /sys/fs/cgroup${cg}/cgroup.procs`] : []),
          "mount -t tmpfs -o mode=755,size=1m container-dev /dev",
          "mkdir /dev/vfio /dev/hugepages",
          "mknod -m 666 /dev/vfio/vfio c 10 196",
          `mknod -m 600 /dev/vfio/${g} c ${maj} ${min}`,
          "mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/urandom c 1 9",
          "mount -t hugetlbfs nodev /dev/hugepages",
          `exec ${BIN}/dpdk-testpmd "$@"`,
        ].join("\n");
        p = start(role, "unshare", ["-m", "--propagation", "private", "sh", "-c", script, "sh", ...eal(role, devArgs, `${T}${PMDS}`)]);
      }
      const ok = await p.waitFor(/testpmd> /, 90_000);
      if (!ok) say(`${role}: no prompt (${p.alive ? "still running" : `exit ${p.exit}`}): ${mask(p.all.slice(-600))}`);
      return p;
    };
    // testpmd's printf output is block-buffered on a pipe: the port table arrives when it exits
    const quitTestpmd = async (p: Proc) => {
      p.send("show port summary all\nquit\n");
      p.child.stdin!.end();
      await p.waitExit(60_000);
      live.delete(p.role);
      record(p, parseTestpmd(p.all));
      say(`${p.role}: exit ${p.exit}${p.signal ? ` ${p.signal}` : ""}, ports ${JSON.stringify(run.consumers[p.role]!.facts.ports)}`);
    };

    // the PF: DPDK as the PF's userspace driver sets the token with --vfio-vf-token
    let pfArgs = await args("dpdk-pf", ["args", "dpdk", PF, "--token-file", TOKEN_FILE.U, "--show-token"]);
    if (!pfArgs.length) pfArgs = ["-a", PF, `--vfio-vf-token=${tokens.U}`];
    const pf = await startTestpmd("pf", pfArgs, "plain");
    await step("pf-held");
    // the VFs are created by `vfioctl sriov PF 2` (the step's command) while testpmd holds the PF;
    // if vfioctl refuses, the sysfs write shows whether Linux would have taken it
    await step("pf-sriov");
    const sr = run.steps.at(-1)!.snapshot["sriov-2"];
    if (!sr || sr.exit !== 0) {
      try {
        writeFileSync(`/sys/bus/pci/devices/${PF}/sriov_numvfs`, "2");
        run.env.sriovFallback = { errno: null };
      } catch (e) {
        run.env.sriovFallback = { errno: (e as NodeJS.ErrnoException).code ?? String(e) };
      }
    }
    for (let i = 0; i < 100 && !driverIs(VF0, "vfio-pci"); i++) await sleep(100);
    await step("vfs");

    if (!row.startsWith("qemu")) {
      const place = row === "dpdk:chroot" ? "chroot" : row === "dpdk:mntns" ? "mntns" : "plain";
      if (place === "chroot") {
        for (const [how, src, dst] of [["--rbind", "/dev", "dev"], ["--rbind", "/sys", "sys"]] as const) execFileSync("mount", [how, src, `${T}/${dst}`]);
        execFileSync("mount", ["-t", "proc", "proc", `${T}/proc`]);
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "chroot-run", `${T}/run`]);
      }
      const right = await args("dpdk-vf0-U", ["args", "dpdk", VF0, "--token-file", TOKEN_FILE.U, "--show-token"]);
      const wrongA = await args("dpdk-vf0-W", ["args", "dpdk", VF0, "--token-file", TOKEN_FILE.W, "--show-token"]);
      const vfR = await startTestpmd("vfR", right.length ? right : ["-a", VF0, `--vfio-vf-token=${tokens.U}`], place);
      await step("vf-right");
      await quitTestpmd(vfR);
      await step("vf-right-exit");
      const vfW = await startTestpmd("vfW", wrongA.length ? wrongA : ["-a", VF0, `--vfio-vf-token=${tokens.W}`], place);
      await step("vf-wrong");
      await quitTestpmd(vfW);
      await step("vf-wrong-exit");
      const vfN = await startTestpmd("vfN", ["-a", VF0], place);
      await step("vf-none");
      await quitTestpmd(vfN);
      await step("vf-none-exit");
    } else {
      // ---------------------------------------------------------------- QEMU
      const base = ["-S", "-accel", "tcg", "-nodefaults", "-display", "none", "-m", "64"];
      const right = await args("qemu-vf0-U", ["args", "qemu", VF0, "--token-file", TOKEN_FILE.U, "--show-token"]);
      const wrongA = await args("qemu-vf0-W", ["args", "qemu", VF0, "--token-file", TOKEN_FILE.W, "--show-token"]);
      const qr = start("qR", "qemu-system-x86_64", [...base, ...(right.length ? right : ["-device", `vfio-pci,host=${VF0},vf-token=${tokens.U}`]), "-qmp", "unix:/mnt/qR.sock,server=on,wait=off"]);
      const qrQmp = await qmpWhenUp("/mnt/qR.sock", qr, [{ execute: "query-pci" }]);
      await step("qemu-right");
      const bye = await qmp("/mnt/qR.sock", [{ execute: "quit" }]).catch((e: Error) => [String(e.message)]);
      await qr.waitExit(60_000);
      live.delete("qR");
      record(qr, { ...parseQemu(qr.stderr), qmp: [...qrQmp, ...bye], pciDevices: pciIdsOf(qrQmp[0]) });
      await step("qemu-right-exit");
      for (const [role, dev, name] of [["qW", wrongA.length ? wrongA : ["-device", `vfio-pci,host=${VF0},vf-token=${tokens.W}`], "qemu-wrong"], ["qN", ["-device", `vfio-pci,host=${VF0}`], "qemu-none"]] as const) {
        const q = start(role, "qemu-system-x86_64", [...base, ...dev]);
        await q.waitExit(90_000);
        live.delete(role);
        record(q, parseQemu(q.stderr));
        await step(name);
      }
      // the QMP hand-off exactly as `vfioctl args qemu VF0 --qmp SOCKET` prints it
      await args("qemu-qmp-W", ["args", "qemu", VF0, "--qmp", QMP_SOCK, "--token-file", TOKEN_FILE.W]);
      await args("qemu-qmp-U", ["args", "qemu", VF0, "--qmp", QMP_SOCK, "--token-file", TOKEN_FILE.U]);
      const caveats = ((run.args["qemu-qmp-U"]!.out as { caveats?: string[] } | null)?.caveats ?? []).join("\n");
      const qmpArg = /-qmp (\S+)/.exec(caveats)?.[1] ?? `unix:${QMP_SOCK},server=on,wait=off`;
      run.env.qmpArgFromCaveat = /-qmp (\S+)/.test(caveats);
      const qa = start("qA", "qemu-system-x86_64", [...base, "-qmp", qmpArg]);
      await qmpWhenUp(QMP_SOCK, qa, []);
      await step("qmp-start");
      run.handoff = {};
      for (const [which, name] of [["wrong", "qemu-qmp-W"], ["right", "qemu-qmp-U"]] as const) {
        const line = (rawArgs[name]!.out as { byReference?: string } | null)?.byReference;
        if (!line) throw new Error(`${name}: args qemu printed no by-reference line (exit ${rawArgs[name]!.exit}: ${rawArgs[name]!.err})`);
        const r = await sh(line, env, 60_000);
        run.handoff[which] = { line: mask(line), exit: r.exit, stdout: mask(r.stdout), stderr: mask(r.stderr) };
        say(`qmp ${which}: exit ${r.exit} ${mask(r.stdout.trim().split("\n").slice(-1)[0] ?? "")}`);
        await step(which === "wrong" ? "qmp-wrong" : "qmp-right");
      }
      const after = await qmp(QMP_SOCK, [{ execute: "query-pci" }, { execute: "quit" }]).catch((e: Error) => [String(e.message)]);
      await qa.waitExit(60_000);
      live.delete("qA");
      record(qa, { ...parseQemu(qa.stderr), qmp: after, pciDevices: pciIdsOf(after[0]) });
      await step("qmp-exit");
    }
    await quitTestpmd(pf);
    await step("pf-exit");
    await kmsg.close().catch(() => {});
    await sys.exit().catch(() => {});
  } catch (e) {
    run.error = (e as Error).stack ?? String(e);
    say(`error: ${run.error}`);
  } finally {
    for (const p of procs) if (p.alive) p.child.kill("SIGKILL");
  }
  run.ms = Math.round(performance.now() - t0);
  writeFileSync(path.join(out, "consumers.json"), JSON.stringify(run, null, 1));
  return { row, ms: run.ms, steps: run.steps.map((s) => s.name), error: run.error ?? null };
}

/** Modules, hugetlbfs, a writable /run, the token files and the program wrappers. */
async function prepareGuest(run: ConsumerRun, T: string, tokens: Record<"U" | "W", string>): Promise<void> {
  if (!existsSync(`${T}/usr/bin/dpdk-testpmd`)) throw new Error(`${T}/usr/bin/dpdk-testpmd is not in the guest (lab/prepare.sh step dpdk; the cache must be on the host's root file system)`);
  const { GUEST_MODULES } = await import("./conformance.js");
  const loaded: string[] = [];
  for (const [m, ...params] of GUEST_MODULES) {
    execFileSync("modprobe", ["-d", "/mnt", m, ...params], { stdio: "inherit" });
    loaded.push([m, ...params].join(" "));
  }
  // cgroup2, as a host with a container runtime has it: /proc/PID/cgroup then names each
  // process's cgroup ("0::/…"; empty before the first cgroup2 mount), so holders in a
  // container's cgroup are named by it (row dpdk:mntns)
  mkdirSync("/sys/fs/cgroup", { recursive: true });
  if (!readFileSync("/proc/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === "/sys/fs/cgroup")) execFileSync("mount", ["-t", "cgroup2", "cgroup2", "/sys/fs/cgroup"]);
  mkdirSync("/dev/hugepages", { recursive: true });
  execFileSync("mount", ["-t", "hugetlbfs", "nodev", "/dev/hugepages"]);
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "lab-run", "/run"]);
  for (const [n, v] of Object.entries(tokens)) {
    writeFileSync(TOKEN_FILE[n as "U" | "W"], v);
    chmodSync(TOKEN_FILE[n as "U" | "W"], 0o600);
  }
  const lp = `${T}/usr/lib/x86_64-linux-gnu:${T}/lib/x86_64-linux-gnu`;
  mkdirSync(`${BIN}/.ld`, { recursive: true });
  const wrap = (name: string, prog: string, extra = "") => {
    symlinkSync(`${T}/lib64/ld-linux-x86-64.so.2`, `${BIN}/.ld/${name}`);
    writeFileSync(`${BIN}/${name}`, `#!/bin/sh\nexec ${BIN}/.ld/${name} --library-path ${lp} --argv0 ${name} ${T}${prog} ${extra}"$@"\n`);
    chmodSync(`${BIN}/${name}`, 0o755);
  };
  wrap("dpdk-testpmd", "/usr/bin/dpdk-testpmd");
  wrap("qemu-system-x86_64", "/usr/bin/qemu-system-x86_64", `-L ${T}/usr/share/qemu -L ${T}/usr/share/seabios `);
  wrap("socat", "/usr/bin/socat1");
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  run.env = {
    release: execFileSync("uname", ["-r"]).toString().trim(),
    modules: loaded,
    enable_sriov: readFileSync("/sys/module/vfio_pci/parameters/enable_sriov", "utf8").trim(),
    hugepages: Number(/HugePages_Total:\s+(\d+)/.exec(meminfo)?.[1] ?? 0),
    memTotalKiB: Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0),
    cmdline: readFileSync("/proc/cmdline", "utf8").trim(),
    procSelfCgroup: readFileSync("/proc/self/cgroup", "utf8"),
    trixie: T,
    dpdk: readFileSync(`${T}/usr/lib/x86_64-linux-gnu/librte_eal.so.25`).length ? "librte_eal.so.25" : null,
  };
}

function groupOf(bdf: string): number {
  return Number(path.basename(readlinkSync(`/sys/bus/pci/devices/${bdf}/iommu_group`)));
}
function driverIs(bdf: string, d: string): boolean {
  try {
    return path.basename(readlinkSync(`/sys/bus/pci/devices/${bdf}/driver`)) === d;
  } catch {
    return false;
  }
}
/** Linux's dev_t encoding (major and minor of st_rdev) */
export function devNum(rdev: number): [number, number] {
  const r = BigInt(rdev);
  const major = Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
  const minor = Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
  return [major, minor];
}

/** A consumer's vfio fds: link text from the guest's root, rdev by stat through /proc. */
function truthOf(p: Proc): TruthProc {
  const pid = p.pid!;
  const nodes = new Map<string, number>();
  for (const n of readdirSync("/dev/vfio")) {
    if (!/^\d+$/.test(n)) continue;
    const [a, b] = devNum(statSync(`/dev/vfio/${n}`).rdev);
    nodes.set(`${a}:${b}`, Number(n));
  }
  const fds: TruthFd[] = [];
  let fdNames: string[] = [];
  try {
    fdNames = readdirSync(`/proc/${pid}/fd`);
  } catch {
    /* gone */
  }
  for (const f of fdNames) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${f}`);
    } catch {
      continue;
    }
    let rdev: string | null = null;
    try {
      const st = statSync(`/proc/${pid}/fd/${f}`);
      if (st.isCharacterDevice()) rdev = devNum(st.rdev).join(":");
    } catch {
      /* gone */
    }
    const isVfio = target === "anon_inode:[vfio-device]" || /\/dev\/vfio\//.test(target) || rdev === "10:196" || (rdev !== null && nodes.has(rdev));
    if (!isVfio) continue;
    const group = rdev !== null ? (nodes.get(rdev) ?? null) : null;
    const kind: TruthFd["kind"] = rdev === "10:196" ? "container" : group !== null ? "group" : target === "anon_inode:[vfio-device]" ? "device" : "other";
    fds.push({ fd: Number(f), target, rdev, group, kind });
  }
  let root = "?";
  let otherMntNs = false;
  try {
    root = readlinkSync(`/proc/${pid}/root`);
    otherMntNs = readlinkSync(`/proc/${pid}/ns/mnt`) !== readlinkSync("/proc/self/ns/mnt");
  } catch {
    /* gone */
  }
  let comm = "?";
  let cgroup: string | null = null;
  try {
    comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    cgroup = /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, "utf8"))?.[1] ?? null;
  } catch {
    /* gone */
  }
  return { role: p.role, pid, comm, root, otherMntNs, cgroup, fds: fds.sort((a, b) => a.fd - b.fd) };
}

/** A second open of a held group node: Linux answers EBUSY (one open file per group). */
function probeGroup(g: number): { group: number; path: string; errno: string | null } {
  const p = `/dev/vfio/${g}`;
  try {
    const fd = openSync(p, "r+");
    closeSync(fd);
    return { group: g, path: p, errno: null };
  } catch (e) {
    return { group: g, path: p, errno: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
}

function maskSnap(s: Record<string, CliOutput>, mask: (s: string) => string): Record<string, CliOutput> {
  return JSON.parse(mask(JSON.stringify(s))) as Record<string, CliOutput>;
}

/** bash -c LINE (the printed hand-off line: bash's printf builtin keeps the token off argv). */
function sh(line: string, env: NodeJS.ProcessEnv, ms: number): Promise<{ exit: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn("bash", ["-c", line], { env, stdio: ["ignore", "pipe", "pipe"] });
    let so = "";
    let se = "";
    c.stdout.on("data", (b: Buffer) => (so += b.toString()));
    c.stderr.on("data", (b: Buffer) => (se += b.toString()));
    const t = setTimeout(() => c.kill("SIGKILL"), ms);
    c.on("exit", (code) => {
      clearTimeout(t);
      res({ exit: code, stdout: so, stderr: se });
    });
  });
}

/** A QMP session: the greeting, qmp_capabilities, then each command's reply in turn (events skipped). */
export function qmp(sock: string, cmds: Record<string, unknown>[], ms = 30_000): Promise<unknown[]> {
  return new Promise((res, rej) => {
    const s = net.createConnection(sock);
    let buf = "";
    const replies: unknown[] = [];
    let phase: "greeting" | "caps" | number = "greeting";
    const t = setTimeout(() => {
      s.destroy();
      rej(new Error(`qmp ${sock}: timeout after ${replies.length} replies`));
    }, ms);
    const send = (c: unknown) => s.write(JSON.stringify(c) + "\n");
    const finish = () => {
      clearTimeout(t);
      s.end();
      res(replies);
    };
    s.on("data", (b: Buffer) => {
      buf += b.toString();
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (phase === "greeting" && "QMP" in m) {
          phase = "caps";
          send({ execute: "qmp_capabilities" });
          continue;
        }
        if ("event" in m) continue;
        if (phase === "caps") phase = 0;
        else if (typeof phase === "number") {
          replies.push(m);
          phase++;
        }
        if (typeof phase === "number" && phase >= cmds.length) return finish();
        if (typeof phase === "number") send(cmds[phase]);
      }
    });
    s.on("error", (e) => {
      clearTimeout(t);
      rej(e);
    });
    s.on("close", () => {
      clearTimeout(t);
      if (typeof phase === "number" && phase >= cmds.length) res(replies);
      else if (typeof phase === "number" && cmds[phase]?.execute === "quit") res(replies);
    });
  });
}

/** Wait for QEMU's QMP socket, then run `cmds` on it. */
async function qmpWhenUp(sock: string, p: Proc, cmds: Record<string, unknown>[]): Promise<unknown[]> {
  for (let i = 0; i < 600 && p.alive; i++) {
    if (existsSync(sock)) {
      try {
        return await qmp(sock, cmds);
      } catch {
        /* not listening yet */
      }
    }
    await sleep(100);
  }
  throw new Error(`${p.role}: QMP ${sock} never came up (${p.alive ? "running" : `exit ${p.exit}`}): ${p.all.slice(-500)}`);
}

