/**
 * Consumer rows of the lab report: real VFIO consumers beside vfioctl in a 6.12 (and 6.1) guest,
 * docs/lab.md "Real consumers". Debian 13's dpdk-testpmd drives the 82576 PF through vfio-pci
 * with `--vfio-vf-token=U` (which sets the PF's VF token), `vfioctl sriov PF 2` creates two VFs
 * while it runs, then VF users open VF0 with the right token, a wrong one and none:
 *   - dpdk:pf-vf   the VF user is testpmd in the guest's own root and mount namespace;
 *   - dpdk:chroot  the VF user is testpmd chrooted into the Debian 13 folder;
 *   - dpdk:mntns   the VF user is testpmd in its own mount namespace with a private /dev (a
 *                  tmpfs with mknod'ed /dev/vfio/vfio and /dev/vfio/<group>) and in a cgroup
 *                  named as docker, podman or a Kubernetes pod name theirs
 *                  ({@link CONTAINER_CGROUPS}), as a container runtime sets it up;
 *   - qemu:vf      the VF user is QEMU (-S, TCG): `-device vfio-pci,host=VF0,vf-token=…` with
 *                  the right, a wrong and no token, then the QMP device_add hand-off exactly as
 *                  `vfioctl args qemu VF0 --qmp SOCKET` prints it (run with bash and socat).
 * At each step ({@link DPDK_STEPS}, {@link QEMU_STEPS}) `vfioctl --json list/show/explain/audit`
 * and `status --config lab/consumers/host.yaml` ({@link HOST_CONFIG})
 * runs beside them (in the guest's job process, which holds nothing of VFIO itself); the
 * consumers' own output (EAL lines, testpmd's port table, QEMU's errors, QMP replies, exit
 * status) and the kernel log lines of the step are recorded.
 *
 * Three comparisons per row:
 *   - real against model ({@link diffConsumers}): the same steps on the kernel model
 *     (lab/consumers/dpdk.yaml, qemu.yaml: model processes named like the consumers making the
 *     system calls DPDK and QEMU make through VFIO; chroot and mount-namespace places where the
 *     model has them), vfioctl's answers after {@link normaliseConsumerSnap} and the step's
 *     kernel log lines (LAB_LOG_FILTER applied) compared;
 *   - vfioctl against the consumers ({@link checkConsumers}, "wrong"): the holders it names
 *     against the fds the consumers hold (by st_rdev, from /proc/PID/fd), its EBUSY prediction
 *     against a real second open of the held group, its token predictions against what the VF
 *     users then did, its `--errno EACCES` ranking against the kernel's first line;
 *   - the consumers against what they are known to do ("consumer" expectations): the lab itself
 *     works (ports probed, EACCES on the token, exit codes).
 * Rows are `DIFF(n)` on model differences, `WRONG(n)` on vfioctl disagreeing with a consumer.
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Syscalls } from "../src/sys/syscalls.js";
import type { OpDiff } from "./conformance.js";

export const CONSUMER_ROWS = ["dpdk:pf-vf", "dpdk:chroot", "dpdk:mntns", "qemu:vf"] as const;
export type ConsumerRow = (typeof CONSUMER_ROWS)[number];
/** report selectors: `consumers`, `dpdk`, `qemu` or a row name */
export const isConsumerSelector = (f: string): boolean => f === "consumers" || f === "dpdk" || f === "qemu" || (CONSUMER_ROWS as readonly string[]).includes(f);
export function consumerRowsFor(selectors: string[]): ConsumerRow[] {
  if (!selectors.length || selectors.includes("consumers")) return [...CONSUMER_ROWS];
  return CONSUMER_ROWS.filter((r) => selectors.includes(r) || selectors.includes(r.split(":")[0]!));
}

/** The guest machine of a consumer row: DPDK needs hugepages, and room for two testpmd processes. */
export const CONSUMER_MACHINE = { memMiB: 4096, append: "hugepages=256" };
/** a consumer guest job takes ~40-90 s; cut off well before that goes wrong */
export const CONSUMER_TIMEOUT_S = Number(process.env.VFIOCTL_LAB_CONSUMER_TIMEOUT_S ?? 300);

export const PF = "0000:01:00.0";
export const VF0 = "0000:01:10.0";
export const SCENARIO: Record<"dpdk" | "qemu", string> = { dpdk: "lab/consumers/dpdk.yaml", qemu: "lab/consumers/qemu.yaml" };
export const scenarioOf = (row: ConsumerRow): string => SCENARIO[row.startsWith("qemu") ? "qemu" : "dpdk"];

/** The comm each model process gets (what Linux shows for the real consumer: 15 characters). */
export const ROLE_COMM: Record<string, string> = {
  pf: "dpdk-testpmd",
  vfR: "dpdk-testpmd",
  vfW: "dpdk-testpmd",
  vfN: "dpdk-testpmd",
  qR: "qemu-system-x86",
  qW: "qemu-system-x86",
  qN: "qemu-system-x86",
  qA: "qemu-system-x86",
};
/** the VF users of a row (the roles placed in a chroot or a mount namespace) */
const VF_ROLES = new Set(["vfR", "vfW", "vfN"]);

/**
 * The host config `vfioctl status` reads beside the consumers (lab/consumers/host.yaml: the PF on
 * vfio-pci with 2 VFs, its token set by dpdk-testpmd). The guest sees the project at its own
 * path, so both sides read the same file by the same name.
 */
export const HOST_CONFIG = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../lab/consumers/host.yaml");

/**
 * The cgroups the mount-namespace VF users run in (row dpdk:mntns), named as container runtimes
 * name them, and the container vfioctl is expected to name from /proc/PID/cgroup (short ids: the
 * first 12 hex digits, as `docker ps` shows them).
 */
export const CONTAINER_CGROUPS: Record<string, { cgroup: string; container: { runtime: string; id: string; pod?: string } }> = {
  vfR: { cgroup: "/system.slice/docker-3f2a9c1b0d4e5f60718293a4b5c6d7e8f9012345678901234567890abcdef012.scope", container: { runtime: "docker", id: "3f2a9c1b0d4e" } },
  vfW: { cgroup: "/machine.slice/libpod-8e7d6c5b4a39281706f5e4d3c2b1a0998877665544332211ffeeddccbbaa0099.scope", container: { runtime: "podman", id: "8e7d6c5b4a39" } },
  vfN: {
    cgroup: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6b1f0c2e_3d4a_4b5c_9e8f_7a6b5c4d3e2f.slice/cri-containerd-0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9.scope",
    container: { runtime: "containerd", id: "0a1b2c3d4e5f", pod: "6b1f0c2e-3d4a-4b5c-9e8f-7a6b5c4d3e2f" },
  },
};
/** The cgroup a row's role runs in on both sides (null: the root cgroup, "/"). */
export const cgroupOf = (row: ConsumerRow, role: string): string | null => (row === "dpdk:mntns" ? (CONTAINER_CGROUPS[role]?.cgroup ?? null) : null);

/** vfioctl commands (after the global --json) by name */
export const COMMANDS: Record<string, string[]> = {
  list: ["list"],
  "show-pf": ["show", PF],
  "show-vf0": ["show", VF0],
  "explain-pf": ["explain", PF],
  "explain-vf0": ["explain", VF0],
  "explain-vf0-token": ["explain", VF0, "--with-token"],
  "explain-vf0-eacces": ["explain", VF0, "--errno", "EACCES"],
  "explain-vf0-token-eacces": ["explain", VF0, "--with-token", "--errno", "EACCES"],
  audit: ["audit"],
  status: ["status", "--config", HOST_CONFIG],
  /** run once, at step pf-sriov: the VFs are created by vfioctl while testpmd holds the PF */
  "sriov-2": ["sriov", PF, "2"],
};
const PF_SET = ["list", "show-pf", "explain-pf", "audit", "status"];
const FULL = ["list", "show-pf", "show-vf0", "explain-pf", "explain-vf0", "explain-vf0-token", "audit", "status"];

export interface StepDef {
  name: string;
  /** {@link COMMANDS} run at this step */
  commands: string[];
  /** the roles alive during the step (their fds are the truth the holders are checked against) */
  what: string;
}

export const DPDK_STEPS: StepDef[] = [
  { name: "pf-held", commands: PF_SET, what: "testpmd drives the PF (-a PF --vfio-vf-token=U), no VFs" },
  { name: "pf-sriov", commands: ["sriov-2"], what: "`vfioctl sriov PF 2` while the PF testpmd runs" },
  { name: "vfs", commands: FULL, what: "2 VFs created (by vfioctl sriov) while the PF testpmd runs; no VF user yet" },
  { name: "vf-right", commands: FULL, what: "testpmd on VF0 with the right token is running" },
  { name: "vf-right-exit", commands: ["list"], what: "it quit" },
  { name: "vf-wrong", commands: FULL, what: "testpmd on VF0 with a wrong token is running (no port)" },
  { name: "vf-wrong-exit", commands: ["list", "explain-vf0-token-eacces", "explain-vf0-eacces"], what: "it quit; what explain says about the EACCES it got (told a token was given, and not told)" },
  { name: "vf-none", commands: FULL, what: "testpmd on VF0 without a token is running (no port)" },
  { name: "vf-none-exit", commands: ["list", "explain-vf0-eacces"], what: "it quit; what explain says about the EACCES it got" },
  { name: "pf-exit", commands: ["list", "show-pf", "status"], what: "the PF testpmd quit" },
];

export const QEMU_STEPS: StepDef[] = [
  { name: "pf-held", commands: PF_SET, what: "testpmd drives the PF (-a PF --vfio-vf-token=U), no VFs" },
  { name: "pf-sriov", commands: ["sriov-2"], what: "`vfioctl sriov PF 2` while the PF testpmd runs" },
  { name: "vfs", commands: FULL, what: "2 VFs created (by vfioctl sriov) while the PF testpmd runs" },
  { name: "qemu-right", commands: FULL, what: "QEMU -S with -device vfio-pci,host=VF0,vf-token=U is running" },
  { name: "qemu-right-exit", commands: ["list"], what: "it quit (QMP quit)" },
  { name: "qemu-wrong", commands: ["list", "show-vf0", "explain-vf0-token-eacces", "explain-vf0-eacces"], what: "QEMU with vf-token=W exited" },
  { name: "qemu-none", commands: ["list", "show-vf0", "explain-vf0-eacces"], what: "QEMU without vf-token exited" },
  { name: "qmp-start", commands: ["list", "show-vf0"], what: "QEMU -S -qmp … without devices is running" },
  { name: "qmp-wrong", commands: ["list", "show-vf0", "explain-vf0-token-eacces"], what: "the args qemu --qmp line run with a wrong token file" },
  { name: "qmp-right", commands: FULL, what: "the args qemu --qmp line run with the right token file: VF0 hot-added" },
  { name: "qmp-exit", commands: ["list"], what: "QEMU quit" },
  { name: "pf-exit", commands: ["list", "show-pf", "status"], what: "the PF testpmd quit" },
];
export const stepsOf = (row: ConsumerRow): StepDef[] => (row.startsWith("qemu") ? QEMU_STEPS : DPDK_STEPS);

export interface CliOutput {
  exit: number;
  /** stdout parsed as JSON (the raw text when it is not JSON) */
  out: unknown;
  err: string;
}

/** One `vfioctl --json <argv>` through the CLI's own command table, in this process, over `sys`. */
export async function vfioctlOver(sys: Syscalls, argv: string[]): Promise<CliOutput> {
  await import("../src/cli/commands/all.js");
  const { COMMANDS: TABLE } = await import("../src/cli/commands/index.js");
  const { hostFiles } = await import("../src/sys/hostfs.js");
  const cmd = TABLE.find((c) => c.name === argv[0]);
  if (!cmd) throw new Error(`no command ${argv[0]}`);
  const out: string[] = [];
  const err: string[] = [];
  const exit = await cmd.run({ opts: { sim: false, json: true, timeoutMs: 5000 }, sys, files: hostFiles("/"), io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) }, env: {}, stdin: async () => "" }, argv.slice(1));
  const text = out.join("\n");
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  return { exit, out: parsed, err: err.join("\n") };
}

export async function snapshotOver(sys: Syscalls, names: string[]): Promise<Record<string, CliOutput>> {
  const snap: Record<string, CliOutput> = {};
  for (const n of names) snap[n] = await vfioctlOver(sys, COMMANDS[n]!);
  return snap;
}

// ------------------------------------------------------------------ what a run records

/** One vfio fd of a consumer, as /proc/PID/fd shows it from the guest's root. */
export interface TruthFd {
  fd: number;
  target: string;
  /** "major:minor" of the open file (stat through /proc/PID/fd/N), null for anonymous inodes */
  rdev: string | null;
  /** the IOMMU group whose /dev/vfio node has that rdev */
  group: number | null;
  kind: "container" | "group" | "device" | "other";
}
export interface TruthProc {
  role: string;
  pid: number;
  comm: string;
  /** /proc/PID/root */
  root: string;
  /** /proc/PID/ns/mnt differs from the job's */
  otherMntNs: boolean;
  /** the "0::" line's path of /proc/PID/cgroup (null: no such line; runs before the guest mounted cgroup2) */
  cgroup?: string | null;
  fds: TruthFd[];
}

export interface StepRun {
  name: string;
  ms: number;
  /** kernel log lines of the step, "<level> text", group numbers normalised */
  log: string[];
  snapshot: Record<string, CliOutput>;
  /** the consumers alive at the step and their vfio fds (guest only) */
  truth?: TruthProc[];
  /** a second open of each held group node (guest only): what Linux said */
  probes?: { group: number; path: string; errno: string | null }[];
}

export interface ConsumerRecord {
  role: string;
  comm: string;
  /** the command line, tokens as <U> / <W> */
  argv: string[];
  pid: number | null;
  exit: number | null;
  signal: string | null;
  /** stdout and stderr as they came (tokens masked) */
  output: string;
  stderr: string;
  facts: ConsumerFacts;
  ms: number;
}

export interface ConsumerFacts {
  /** testpmd's "show port summary all" table: one entry per port */
  ports?: { port: number; name: string; driver: string; status: string; link: string }[];
  /** "EAL: …", "PCI_BUS: …", "testpmd: …" lines */
  eal?: string[];
  /** the BDFs EAL said "Getting a vfio_dev_fd for <BDF> failed" about */
  devFdFailed?: string[];
  /** QEMU's error lines ("qemu-system-x86_64: …") */
  qemuErrors?: string[];
  /** QMP: replies to the commands sent (greeting dropped) */
  qmp?: unknown[];
  /** query-pci found a device with this vendor:device */
  pciDevices?: string[];
  prompt?: boolean;
}

export interface ConsumerRun {
  row: ConsumerRow;
  kernel: string;
  ms: number;
  env: Record<string, unknown>;
  setup?: unknown;
  steps: StepRun[];
  consumers: Record<string, ConsumerRecord>;
  /** `vfioctl args …` as the guest ran them to build the consumers' command lines (tokens masked) */
  args: Record<string, CliOutput & { argv: string[] }>;
  /** the by-reference QMP lines run (tokens masked) and what they printed */
  handoff?: Record<string, { line: string; exit: number | null; stdout: string; stderr: string }>;
  /** pid → role */
  roles: Record<string, string>;
  error?: string;
}

// ------------------------------------------------------------------ parsing the consumers' output

/** testpmd's port table, EAL lines and vfio_dev_fd failures from its output. */
export function parseTestpmd(text: string): ConsumerFacts {
  const lines = text.split(/\r?\n/);
  const eal = lines.filter((l) => /^(EAL|PCI_BUS|testpmd|ETHDEV|EAL_VFIO|VFIO):/.test(l.trim())).map((l) => l.trim());
  const devFdFailed = [...text.matchAll(/Getting a vfio_dev_fd for (\S+) failed/g)].map((m) => m[1]!);
  const ports: NonNullable<ConsumerFacts["ports"]> = [];
  const hi = lines.findIndex((l) => /^Port\s+MAC Address\s+Name\s+Driver\s+Status\s+Link/.test(l.trim()));
  if (hi >= 0) {
    for (const l of lines.slice(hi + 1)) {
      const m = /^(\d+)\s+([0-9A-Fa-f:]{17})\s+(\S+)\s+(\S+)\s+(\S+)\s+(.+?)\s*$/.exec(l.trim());
      if (!m) break;
      ports.push({ port: Number(m[1]), name: m[3]!, driver: m[4]!, status: m[5]!, link: m[6]! });
    }
  }
  return { ports, eal, devFdFailed, prompt: /testpmd> /.test(text) };
}

/** QEMU's error lines (its program name first, as it prints them). */
export function parseQemu(stderr: string): ConsumerFacts {
  const qemuErrors = stderr
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l && !/^\s*$/.test(l) && !/warning: nic .* has no peer/.test(l));
  return { qemuErrors };
}

/** A stream of QMP JSON objects (socat's output): the greeting, replies and events, in order. */
export function parseQmpStream(text: string): unknown[] {
  const out: unknown[] = [];
  for (const l of text.split(/\r?\n/)) {
    const s = l.trim();
    if (!s.startsWith("{")) continue;
    try {
      out.push(JSON.parse(s));
    } catch {
      out.push(s);
    }
  }
  return out;
}

/** vendor:device of the devices query-pci lists on every bus */
export function pciIdsOf(reply: unknown): string[] {
  const ids: string[] = [];
  const walk = (devs: unknown) => {
    for (const d of (devs as { id?: { vendor: number; device: number }; pci_bridge?: { devices?: unknown } }[]) ?? []) {
      if (d.id) ids.push(`${d.id.vendor.toString(16).padStart(4, "0")}:${d.id.device.toString(16).padStart(4, "0")}`);
      if (d.pci_bridge?.devices) walk(d.pci_bridge.devices);
    }
  };
  for (const bus of ((reply as { return?: { devices?: unknown }[] })?.return ?? [])) walk(bus.devices);
  return ids;
}

/** Mask the run's token values: `<U>`, `<W>` (the tokens are the lab's own, but never printed raw). */
export function maskTokens(s: string, tokens: Record<string, string>): string {
  let r = s;
  for (const [name, v] of Object.entries(tokens)) r = r.split(v).join(`<${name}>`).split(v.toUpperCase()).join(`<${name}>`);
  return r;
}

// ------------------------------------------------------------------ kernel log lines

/**
 * A step's kernel log line normalised as the scenario runner does it: `iommu group N` →
 * `@group_of(<BDF>)` (learned from "Adding to iommu group N" lines and from `groups`),
 * `task "comm" (pid)` → `task "<comm>" (<pid>)`.
 */
export function normaliseLogLine(text: string, groups: Map<number, string>): string {
  let t = text.replace(/task "[^"]*" \(\d+\)/g, 'task "<comm>" (<pid>)');
  const add = /^\S+ ([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]): (Adding to|Removing from) iommu group (\d+)/.exec(t);
  if (add) groups.set(Number(add[3]), add[1]!);
  t = t.replace(/iommu group (\d+)/g, (_x, n: string) => `iommu group ${groups.has(Number(n)) ? `@group_of(${groups.get(Number(n))})` : "@group"}`);
  return t;
}

// ------------------------------------------------------------------ normalisation and diff

/** Drivers the lab guest binds to its own infrastructure devices and the model host does not have. */
const GUEST_ONLY_DRIVERS = new Set(["pcieport", "virtio-pci"]);

interface DevLike {
  bdf: string;
  iommuGroup: number | null;
}

/** IOMMU group number → `@group_of(<lowest BDF>)`, from a snapshot's `list`. */
export function groupNamesOf(list: unknown): Map<number, string> {
  const inv = list as { pfs?: (DevLike & { vfDevices?: DevLike[] })[]; others?: DevLike[]; orphans?: DevLike[] } | undefined;
  const devs: DevLike[] = [...(inv?.pfs ?? []).flatMap((p) => [p, ...(p.vfDevices ?? [])]), ...(inv?.others ?? []), ...(inv?.orphans ?? [])];
  const m = new Map<number, string>();
  for (const d of [...devs].sort((a, b) => (a.bdf < b.bdf ? -1 : 1))) if (typeof d.iommuGroup === "number" && !m.has(d.iommuGroup)) m.set(d.iommuGroup, `@group_of(${d.bdf})`);
  return m;
}

/**
 * The normalisation rules of a consumer snapshot (docs/lab.md "Real consumers"), and nothing else:
 *   - IOMMU group numbers → `@group_of(<lowest BDF in the group>)`, as numbers and in text;
 *   - a holder's pid → the consumer's role (`pf`, `vfR` …, from the run's pid map; `<pid>` for
 *     any other process), in `pid` fields and in "pid N" text; fd numbers → `<fd>`; `rdev`
 *     ("major:minor": the vfio group major is dynamic) → `<rdev>`;
 *   - `/host/…` holder paths of processes in another mount namespace → `/…`, and such a
 *     holder's root `/host` → none (text: "[own mount namespace, chroot /host]" → "[own mount
 *     namespace]", "[container docker 3f2a…, chroot /host]" → "[container docker 3f2a…]"): the guest's job runs chrooted at /host of the guest's initramfs, so Linux
 *     renders what it cannot reach from there from the initramfs root; on a host the same
 *     holder reads `/dev/vfio/N` with root `/`;
 *   - a holder's cgroup `null` → "/" when the guest's /proc/PID/cgroup is empty (the lab guest
 *     mounts no cgroup hierarchy; the model shows "0::/" as a host without containers does);
 *   - `backend` dropped; the guest's own bus and share devices on pcieport / virtio-pci are
 *     compared as unbound (the model host leaves them unbound);
 *   - kernel log records quoted by explain: `seq` and `tsUs` → `<seq>`, `<tsUs>`, "[12.345678]"
 *     → "[<time>]" (the model's clock is its own; lab/consumers/*.yaml sleep between consumers
 *     so that their attempts are seconds apart there too);
 *   - in the `kernel` block of a command's output, the release texts (`osrelease`,
 *     `procVersion`, `ident`, `summary`): the model's profile is an alias of the lab's kernels
 *     and its release text differs (the registry's Debian ABI number moves); the behaviour
 *     flags and access paths resolved from them are compared.
 * Comm stays: the model's processes are named as Linux names the consumers.
 */
export function normaliseConsumerSnap(snap: Record<string, CliOutput>, roles: Record<string, string>, side: "real" | "model", guest: { noCgroups?: boolean } = {}): Record<string, CliOutput> {
  const groups = groupNamesOf(snap.list?.out);
  const g = (n: number) => groups.get(n) ?? `@group(${n})`;
  const role = (pid: number) => roles[String(pid)] ?? "<pid>";
  const text = (s0: string) => {
    let s = s0.replace(/\bpid (\d+)\b/g, (_x, n: string) => `pid ${role(Number(n))}`).replace(/\) fd \d+/g, ") fd <fd>");
    if (side === "real") s = s.replace(/(^|[\s("])\/host(\/dev\/)/g, "$1$2").replace(/(\[(?:own mount namespace|container [^\]]*?)), chroot \/host\]/g, "$1]");
    return s
      // a vfio group node's major is allocated at boot and its minor in group creation order
      .replace(/\(c (?!10:)\d+:\d+\)/g, "(c <rdev>)")
      .replace(/\/dev\/vfio\/(\d+)\b/g, (_, n: string) => `/dev/vfio/${g(Number(n))}`)
      .replace(/\/iommu_groups\/(\d+)\b/g, (_, n: string) => `/iommu_groups/${g(Number(n))}`)
      .replace(/\b(iommu_group|IOMMU group|group) (\d+)\b/g, (_, w: string, n: string) => `${w} ${g(Number(n))}`)
      .replace(/\b\d+:\d+ \(rdev\)/g, "<rdev> (rdev)")
      .replace(/\[\s*\d+\.\d{6}\]/g, "[<time>]");
  };
  const walk = (v: unknown, key: string): unknown => {
    if (typeof v === "string") return text(v);
    if (Array.isArray(v)) {
      const a = v.map((x) => walk(x, key));
      if (a.length && a.every((x) => x && typeof x === "object" && "pid" in (x as object) && ("target" in (x as object) || "fd" in (x as object)))) a.sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));
      return a;
    }
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      const r: Record<string, unknown> = {};
      const infra = !o.physfn && !o.sriov && typeof o.bdf === "string" && "driver" in o && o.role === "device";
      for (const [k, x] of Object.entries(o)) {
        if (k === "backend") continue;
        if (key === "kernel" && (k === "osrelease" || k === "procVersion" || k === "ident" || k === "summary")) continue;
        if (k === "pid" && typeof x === "number") r[k] = role(x);
        else if ((k === "fd" || k === "fds") && typeof x === "number") r[k] = "<fd>";
        else if (k === "rdev" && typeof x === "string") r[k] = "<rdev>";
        else if ((k === "seq" || k === "tsUs") && typeof x === "number") r[k] = `<${k}>`;
        else if ((k === "iommuGroup" || k === "group") && typeof x === "number") r[k] = g(x);
        else if (k === "driver" && infra && typeof x === "string" && GUEST_ONLY_DRIVERS.has(x)) r[k] = null;
        else if (side === "real" && key === "where" && k === "root" && x === "/host" && o.mntns === "other") r[k] = null;
        else if (side === "real" && key === "where" && k === "cgroup" && x === null && guest.noCgroups) r[k] = "/";
        else r[k] = walk(x, k);
      }
      return r;
    }
    return v;
  };
  const out: Record<string, CliOutput> = {};
  for (const [name, o] of Object.entries(snap)) out[name] = { exit: o.exit, out: walk(o.out, ""), err: text(o.err) };
  return out;
}

/** Leaf-by-leaf differences; arrays of objects with a `bdf` are matched by it. */
export function deepDiff(a: unknown, b: unknown, at: string, out: { path: string; real: unknown; model: unknown }[]): void {
  if (JSON.stringify(a ?? null) === JSON.stringify(b ?? null)) return;
  if (a && b && typeof a === "object" && typeof b === "object" && Array.isArray(a) === Array.isArray(b)) {
    if (Array.isArray(a) && Array.isArray(b)) {
      const key = (x: unknown) => (x && typeof x === "object" && typeof (x as { bdf?: unknown }).bdf === "string" ? (x as { bdf: string }).bdf : null);
      if (a.length && b.length && a.every(key) && b.every(key)) {
        const ma = new Map(a.map((x) => [key(x)!, x]));
        const mb = new Map(b.map((x) => [key(x)!, x]));
        for (const [k, x] of ma) deepDiff(x, mb.get(k), `${at}[${k}]`, out);
        for (const [k, x] of mb) if (!ma.has(k)) deepDiff(undefined, x, `${at}[${k}]`, out);
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

/** What the model ran (lab/consumers/*.yaml through the scenario runner). */
export interface ModelConsumerRun {
  row: ConsumerRow;
  kernel: string;
  ms: number;
  steps: StepRun[];
  roles: Record<string, string>;
  transcriptOk: boolean;
  failures: unknown[];
}

/** Real against model: per step, vfioctl's answers (normalised) and the kernel log lines (filtered). */
export function diffConsumers(real: { steps: StepRun[]; roles: Record<string, string>; env?: Record<string, unknown> }, model: ModelConsumerRun, filtered: (t: string) => boolean = () => false): OpDiff[] {
  const d: OpDiff[] = [];
  const ms = new Map(model.steps.map((s) => [s.name, s]));
  for (const r of real.steps) {
    const m = ms.get(r.name);
    if (!m) {
      d.push({ op: r.name, field: "presence", real: "ran", model: "absent" });
      continue;
    }
    const rn = normaliseConsumerSnap(r.snapshot, real.roles, "real", { noCgroups: real.env?.procSelfCgroup === "" });
    const mn = normaliseConsumerSnap(m.snapshot, model.roles, "model");
    for (const c of new Set([...Object.keys(rn), ...Object.keys(mn)])) {
      const leaves: { path: string; real: unknown; model: unknown }[] = [];
      deepDiff(rn[c], mn[c], "", leaves);
      for (const l of leaves) d.push({ op: `${r.name} ${(COMMANDS[c] ?? [c]).join(" ")}`, field: l.path, real: l.real, model: l.model });
    }
    const show = (l: string) => !filtered(l.replace(/^<\w+> /, ""));
    const rl = r.log.filter(show);
    const ml = m.log.filter(show);
    if (JSON.stringify(rl) !== JSON.stringify(ml)) d.push({ op: r.name, field: "log", real: rl, model: ml });
  }
  for (const m of model.steps) if (!real.steps.some((r) => r.name === m.name)) d.push({ op: m.name, field: "presence", real: "absent", model: "ran" });
  return d;
}

// ------------------------------------------------------------------ vfioctl against the consumers

interface HolderLike {
  pid: number;
  comm: string;
  group?: number | null;
  target?: string;
}
const heldBy = (o: CliOutput | undefined): HolderLike[] | null => {
  const h = (o?.out as { heldBy?: HolderLike[] } | undefined)?.heldBy;
  return Array.isArray(h) ? h : null;
};
const groupOfShow = (o: CliOutput | undefined): number | null => {
  const g = (o?.out as { iommuGroup?: number | null } | undefined)?.iommuGroup;
  return typeof g === "number" ? g : null;
};
interface ExplainLike {
  open?: { verdict: string; errno: string | null; summary: string };
  ranked?: { id: string; status: string; errno: string | null }[];
  causes?: { id: string; status: string }[];
}
const explainOf = (o: CliOutput | undefined): ExplainLike | null => (o && o.out && typeof o.out === "object" ? (o.out as ExplainLike) : null);
const fmtHolders = (h: HolderLike[]) => (h.length ? h.map((x) => `pid ${x.pid} (${x.comm})`).join(", ") : "nobody");

/**
 * Where vfioctl's answers disagree with what the consumers did (each as one sentence), and the
 * consumers' own expectations that did not hold (the lab did not work as intended).
 */
export function checkConsumers(run: ConsumerRun): { wrong: string[]; consumer: string[]; agreed: string[] } {
  const wrong: string[] = [];
  const consumer: string[] = [];
  const agreed: string[] = [];
  const step = (n: string) => run.steps.find((s) => s.name === n);
  const c = (role: string) => run.consumers[role];
  const logOf = (n: string) => step(n)?.log.join("\n") ?? "";
  const TOKEN_REQUIRED = `vfio-pci ${VF0}: VF token required to access device`;
  const TOKEN_INCORRECT = `vfio-pci ${VF0}: Incorrect VF token provided for device`;

  // holders: every group a consumer holds (by rdev) must be named, and no one else
  for (const s of run.steps) {
    for (const cmd of ["show-pf", "show-vf0"]) {
      const o = s.snapshot[cmd];
      const hb = heldBy(o);
      const g = groupOfShow(o);
      if (!o || hb === null || g === null || !s.truth) continue;
      const holders = s.truth.filter((p) => p.fds.some((f) => f.kind === "group" && f.group === g));
      const dev = COMMANDS[cmd]![1];
      for (const p of holders) {
        const named = hb.some((h) => h.pid === p.pid);
        const fd = p.fds.find((f) => f.kind === "group" && f.group === g)!;
        const place = p.otherMntNs ? " in its own mount namespace" : p.root !== "/" ? ` in a chroot (${p.root})` : "";
        if (!named) wrong.push(`${s.name}: show ${dev}: heldBy ${fmtHolders(hb)}; ${p.role} (pid ${p.pid}, ${p.comm})${place} holds ${fd.target} (rdev ${fd.rdev})`);
        else {
          const h = hb.find((x) => x.pid === p.pid)!;
          if (h.comm !== p.comm) wrong.push(`${s.name}: show ${dev}: names pid ${p.pid} as "${h.comm}", /proc says "${p.comm}"`);
          else agreed.push(`${s.name}: show ${dev} names ${p.role} (pid ${p.pid}, ${p.comm})${place}`);
        }
      }
      for (const h of hb) if (!holders.some((p) => p.pid === h.pid) && s.truth.some((p) => p.pid === h.pid)) wrong.push(`${s.name}: show ${dev}: heldBy names pid ${h.pid} (${h.comm}), which holds no fd of group ${g}`);
    }
    // EBUSY: explain of a device whose group a consumer holds, against a real second open
    for (const [cmd, dev] of [["explain-pf", PF], ["explain-vf0", VF0]] as const) {
      const x = explainOf(s.snapshot[cmd]);
      const g = groupOfShow({ exit: 0, out: (s.snapshot[cmd]?.out as { device?: unknown } | undefined)?.device, err: "" });
      if (!x?.open || g === null) continue;
      const probe = s.probes?.find((p) => p.group === g);
      if (!probe) continue;
      if (probe.errno === "EBUSY" && x.open.errno !== "EBUSY") wrong.push(`${s.name}: explain ${dev}: open ${x.open.verdict}${x.open.errno ? ` ${x.open.errno}` : ""} ("${x.open.summary}"); a second open of ${probe.path} failed EBUSY (the group is held)`);
      else if (probe.errno === "EBUSY") agreed.push(`${s.name}: explain ${dev} predicts EBUSY, a second open of ${probe.path} got EBUSY`);
    }
  }

  // status: the holders it lists are the consumers holding a group (pid, comm, and the device
  // of that group where show names it), and nobody else
  for (const s of run.steps) {
    const st = (s.snapshot.status?.out as { pfs?: { holders?: { bdf: string; pid: number; comm: string }[] }[] } | undefined)?.pfs?.[0];
    if (!st || !s.truth) continue;
    const hs = st.holders ?? [];
    const bdfOfGroup = new Map<number, string>();
    for (const [cmd, dev] of [["show-pf", PF], ["show-vf0", VF0]] as const) {
      const g = groupOfShow(s.snapshot[cmd]);
      if (g !== null) bdfOfGroup.set(g, dev);
    }
    for (const p of s.truth) {
      for (const f of p.fds.filter((x) => x.kind === "group" && x.group !== null)) {
        const dev = bdfOfGroup.get(f.group!);
        const h = hs.find((x) => x.pid === p.pid && (dev === undefined || x.bdf === dev));
        if (!h) wrong.push(`${s.name}: status: holders ${hs.map((x) => `${x.bdf} pid ${x.pid} (${x.comm})`).join(", ") || "none"}; ${p.role} (pid ${p.pid}, ${p.comm}) holds ${f.target}${dev ? ` (${dev}'s group)` : ""}`);
        else if (h.comm !== p.comm) wrong.push(`${s.name}: status names pid ${p.pid} "${h.comm}", /proc says "${p.comm}"`);
        else agreed.push(`${s.name}: status names ${p.role} (pid ${p.pid}) as a holder of ${h.bdf}`);
      }
    }
    for (const h of hs) if (!s.truth.some((p) => p.pid === h.pid && p.fds.some((f) => f.kind === "group"))) wrong.push(`${s.name}: status names ${h.bdf} pid ${h.pid} (${h.comm}) as a holder; no consumer of the step holds a group fd under that pid`);
  }
  // containers named from /proc/PID/cgroup (row dpdk:mntns): list's holders (every vfio fd: the
  // failed VF users keep /dev/vfio/vfio), show's heldBy and explain PF's text (a held group)
  for (const s of run.steps) {
    for (const p of s.truth ?? []) {
      const want = CONTAINER_CGROUPS[p.role];
      if (!want || run.row !== "dpdk:mntns" || !p.fds.length) continue;
      if (p.cgroup !== want.cgroup) {
        consumer.push(`${s.name}: ${p.role} runs in cgroup ${JSON.stringify(p.cgroup ?? null)}, not ${want.cgroup}`);
        continue;
      }
      const listed = ((s.snapshot.list?.out as { holders?: (HolderLike & { where?: { container?: unknown } })[] } | undefined)?.holders ?? []).filter((h) => h.pid === p.pid);
      if (s.snapshot.list && !listed.length) wrong.push(`${s.name}: list: no holder entry for ${p.role} (pid ${p.pid}), which holds ${p.fds.map((f) => f.target).join(", ")}`);
      for (const h of listed) {
        if (JSON.stringify(h.where?.container ?? null) !== JSON.stringify(want.container)) wrong.push(`${s.name}: list: pid ${p.pid} (${p.role}) fd ${h.target} in cgroup ${want.cgroup}: container ${JSON.stringify(h.where?.container ?? null)}, expected ${JSON.stringify(want.container)}`);
      }
      if (listed.length && listed.every((h) => JSON.stringify(h.where?.container ?? null) === JSON.stringify(want.container))) agreed.push(`${s.name}: list names ${p.role}'s container ${want.container.runtime} ${want.container.id}${want.container.pod ? ` pod ${want.container.pod}` : ""}`);
      if (!p.fds.some((f) => f.kind === "group")) continue;
      const named = (heldBy(s.snapshot["show-vf0"]) as (HolderLike & { where?: { container?: unknown } })[] | null)?.find((h) => h.pid === p.pid);
      if (named && JSON.stringify(named.where?.container ?? null) !== JSON.stringify(want.container)) wrong.push(`${s.name}: show ${VF0}: pid ${p.pid} (${p.role}) in cgroup ${want.cgroup}: container ${JSON.stringify(named.where?.container ?? null)}, expected ${JSON.stringify(want.container)}`);
      else if (named) agreed.push(`${s.name}: show ${VF0} names ${p.role}'s container ${want.container.runtime} ${want.container.id}`);
      const text = `[container ${want.container.runtime} ${want.container.id}${want.container.pod ? ` pod ${want.container.pod}` : ""}`;
      const xp = s.snapshot["explain-pf"];
      if (xp && !JSON.stringify(xp.out).includes(text)) wrong.push(`${s.name}: explain ${PF}: no "${text}" for ${p.role} (pid ${p.pid}), which holds VF0 from cgroup ${want.cgroup}`);
      else if (xp) agreed.push(`${s.name}: explain ${PF} says ${text}]`);
    }
  }
  // its note about the token while testpmd holds the PF: not "vfioctl token set" (its PF open
  // would fail EBUSY, as the step's second open of the PF's group did), but who holds the PF
  const srs = step("pf-sriov");
  const pfProbe = srs?.probes?.find((p) => p.group === groupOfShow(step("pf-held")?.snapshot["show-pf"]));
  const srNotes = ((srs?.snapshot["sriov-2"]?.out as { notes?: string[] } | undefined)?.notes ?? []).join("\n");
  const pfUser = srs?.truth?.find((p) => p.role === "pf");
  if (srs && pfProbe?.errno === "EBUSY" && pfUser) {
    if (/vfioctl token set \S+\)/.test(srNotes) || !srNotes.includes(`pid ${pfUser.pid} (${pfUser.comm})`)) wrong.push(`pf-sriov: vfioctl sriov's note ${JSON.stringify(srNotes)} while pid ${pfUser.pid} (${pfUser.comm}) holds the PF (a second open of ${pfProbe.path} got EBUSY)`);
    else agreed.push(`pf-sriov: vfioctl sriov names ${pfUser.role} (pid ${pfUser.pid}) as the PF's userspace driver whose token the VFs need`);
  }
  // `vfioctl sriov PF 2` while testpmd drives the PF: done, and the VFs are there
  const sr = step("pf-sriov")?.snapshot["sriov-2"];
  const numVfs = (step("vfs")?.snapshot["show-pf"]?.out as { sriov?: { numVfs?: number } } | undefined)?.sriov?.numVfs;
  const fallback = run.env.sriovFallback as { errno: string | null } | undefined;
  if (sr && sr.exit !== 0 && fallback && fallback.errno === null) wrong.push(`pf-sriov: vfioctl sriov ${PF} 2 exit ${sr.exit} (${sr.err.split("\n")[0]}); writing 2 to sriov_numvfs then worked`);
  else if (sr && sr.exit === 0 && numVfs === 2) agreed.push(`pf-sriov: vfioctl sriov ${PF} 2 created the VFs while testpmd held the PF (show: numVfs 2)`);
  else if (sr) consumer.push(`pf-sriov: vfioctl sriov exit ${sr.exit}, show ${PF} numVfs ${numVfs ?? "?"}${fallback ? `, the sysfs write: ${fallback.errno ?? "ok"}` : ""}`);

  // token predictions made before the VF users ran, against what they then did
  const vfs = step("vfs");
  const isQemu = run.row.startsWith("qemu");
  const right = c(isQemu ? "qR" : "vfR");
  const wrongTok = c(isQemu ? "qW" : "vfW");
  const none = c(isQemu ? "qN" : "vfN");
  const rightOk = isQemu ? !!right?.facts.pciDevices?.includes("8086:10ca") : (right?.facts.ports ?? []).some((p) => p.name === VF0);
  const noneFailed = isQemu ? none?.exit === 1 : !!none?.facts.devFdFailed?.includes(VF0);
  const wrongFailed = isQemu ? wrongTok?.exit === 1 : !!wrongTok?.facts.devFdFailed?.includes(VF0);
  if (vfs) {
    const x0 = explainOf(vfs.snapshot["explain-vf0"]);
    if (x0?.open && none) {
      if (noneFailed && !(x0.open.verdict === "fails" && x0.open.errno === "EACCES")) wrong.push(`vfs: explain ${VF0} (no token): open ${x0.open.verdict} ${x0.open.errno ?? ""}; the VF user without a token then failed (kernel: "${TOKEN_REQUIRED}")`);
      else if (noneFailed) agreed.push(`vfs: explain ${VF0} predicts EACCES without a token; ${none.role} failed so`);
    }
    const xt = explainOf(vfs.snapshot["explain-vf0-token"]);
    if (xt?.open && right) {
      if (rightOk && xt.open.verdict === "fails") wrong.push(`vfs: explain ${VF0} --with-token: open fails ${xt.open.errno ?? ""} ("${xt.open.summary}"); the VF user with the right token then opened it`);
      else if (rightOk) agreed.push(`vfs: explain ${VF0} --with-token: ${xt.open.verdict}; ${right.role} with the right token opened VF0`);
    }
  }
  // the EACCES ranking after a failure, against the kernel's own first line
  const afterWrong = step(isQemu ? "qemu-wrong" : "vf-wrong-exit");
  for (const [cmd, flag] of [["explain-vf0-token-eacces", " --with-token"], ["explain-vf0-eacces", ""]] as const) {
    const rw = explainOf(afterWrong?.snapshot[cmd])?.ranked;
    if (!rw || !wrongFailed) continue;
    const first = rw.find((r) => r.status === "applies" || r.status === "possible") ?? rw[0];
    if (first?.id !== "token-incorrect") wrong.push(`${afterWrong!.name}: explain ${VF0}${flag} --errno EACCES ranks ${first?.id ?? "nothing"} first; the kernel said "${TOKEN_INCORRECT}" to the token the user gave${isQemu ? "" : " (DPDK then retried without it: \"VF token required\" came second)"}`);
    else agreed.push(`${afterWrong!.name}: explain${flag} --errno EACCES ranks token-incorrect first, as the kernel's first line says`);
  }
  const afterNone = step(isQemu ? "qemu-none" : "vf-none-exit");
  const rn = explainOf(afterNone?.snapshot["explain-vf0-eacces"])?.ranked;
  if (rn && noneFailed) {
    const first = rn.find((r) => r.status === "applies" || r.status === "possible") ?? rn[0];
    if (first?.id !== "token-required") wrong.push(`${afterNone!.name}: explain ${VF0} --errno EACCES ranks ${first?.id ?? "nothing"} first; the kernel said "${TOKEN_REQUIRED}"`);
    else agreed.push(`${afterNone!.name}: explain --errno EACCES ranks token-required first`);
  }
  // the DPDK caveat of `args dpdk VF0` quotes every line testpmd printed for a wrong and no token
  // that it does not print with the right one, and quotes nothing testpmd did not print
  const cav = ((run.args["dpdk-vf0-U"]?.out as { caveats?: string[] } | null)?.caveats ?? []).join("\n");
  if (!isQemu && cav && right && wrongTok && none) {
    const linesOf = (r: ConsumerRecord) => [...new Set(r.output.split(/\r?\n/).map((l) => l.trim()).filter((l) => /^(EAL|PCI_BUS|testpmd): /.test(l) && !/Multi-process socket/.test(l)))];
    const ok = new Set(linesOf(right));
    const all = new Set([...ok, ...linesOf(wrongTok), ...linesOf(none)]);
    let missing = 0;
    for (const [role, r] of [["vfW", wrongTok], ["vfN", none]] as const) {
      for (const l of linesOf(r)) {
        if (ok.has(l) || cav.includes(`"${l}"`)) continue;
        missing++;
        wrong.push(`args dpdk ${VF0}: its caveat does not quote "${l}", which testpmd printed with ${role === "vfW" ? "a wrong" : "no"} token`);
      }
    }
    for (const m of cav.matchAll(/"((?:EAL|PCI_BUS|testpmd): [^"]*)"/g)) if (!all.has(m[1]!)) wrong.push(`args dpdk ${VF0}: its caveat quotes "${m[1]}", which no testpmd of the row printed`);
    for (const l of [TOKEN_INCORRECT, TOKEN_REQUIRED]) if (!cav.includes(`"${l}"`)) wrong.push(`args dpdk ${VF0}: its caveat does not quote the kernel's "${l}"`);
    if (!missing) agreed.push(`args dpdk ${VF0}: the caveat quotes every line testpmd printed for a wrong and no token`);
  }
  // `args dpdk <PF>`: testpmd is the PF's userspace driver and takes the token to set it
  const ap = run.args["dpdk-pf"];
  if (ap && ap.exit !== 0) wrong.push(`args dpdk ${PF} --token-file F: exit ${ap.exit} (${ap.err.split("\n")[0]}); testpmd as the PF's driver took -a ${PF} --vfio-vf-token=U and set the token (${c("pf")?.facts.ports?.length ?? 0} port)`);
  else if (ap) agreed.push(`args dpdk ${PF} printed ${ap.argv.join(" ")}, which testpmd ran as the PF driver`);
  if (isQemu) {
    const h = run.handoff?.right;
    const qa = c("qA");
    if (h && !(h.exit === 0 && qa?.facts.pciDevices?.includes("8086:10ca"))) wrong.push(`qmp-right: the line \`args qemu ${VF0} --qmp\` printed (${h.line}) exited ${h.exit} and QEMU ${qa?.facts.pciDevices?.includes("8086:10ca") ? "has" : "does not have"} the VF: ${h.stdout.trim().split("\n").slice(-2).join(" ")}${h.stderr ? ` ${h.stderr.trim()}` : ""}`);
    else if (h) agreed.push(`qmp-right: the printed QMP line hot-added ${VF0} (query-pci shows 8086:10ca)`);
  }

  // the consumers did what they are known to do
  const pf = c("pf");
  if (!pf || !(pf.facts.ports ?? []).some((p) => p.name === PF && p.driver === "net_e1000_igb")) consumer.push(`pf: testpmd did not list port ${PF} on net_e1000_igb (${JSON.stringify(pf?.facts.ports ?? null)})`);
  if (pf && pf.exit !== 0) consumer.push(`pf: testpmd exit ${pf.exit}${pf.signal ? ` (${pf.signal})` : ""} after quit`);
  if (!isQemu) {
    if (!rightOk) consumer.push(`vfR: testpmd with the right token did not list port ${VF0} (${JSON.stringify(right?.facts.ports ?? null)}; ${right?.facts.eal?.slice(-3).join(" | ")})`);
    else if (!(right!.facts.ports ?? []).some((p) => p.driver === "net_e1000_igb_vf")) consumer.push(`vfR: port ${VF0} not on net_e1000_igb_vf`);
    for (const [role, r] of [["vfW", wrongTok], ["vfN", none]] as const) {
      if (!r?.facts.devFdFailed?.includes(VF0)) consumer.push(`${role}: no "Getting a vfio_dev_fd for ${VF0} failed" in EAL's output`);
      if ((r?.facts.ports ?? []).length) consumer.push(`${role}: testpmd listed ports ${JSON.stringify(r!.facts.ports)}`);
    }
    for (const [role, r] of [["vfR", right], ["vfW", wrongTok], ["vfN", none]] as const) if (r && r.exit !== 0) consumer.push(`${role}: testpmd exit ${r.exit}${r.signal ? ` (${r.signal})` : ""} after quit`);
    if (!logOf("vf-wrong").includes(`${TOKEN_INCORRECT}\n<info> ${TOKEN_REQUIRED}`) && !/Incorrect VF token[\s\S]*VF token required/.test(logOf("vf-wrong"))) consumer.push(`vf-wrong: the kernel did not log "Incorrect VF token" then "VF token required" (${JSON.stringify(step("vf-wrong")?.log ?? null)})`);
    if (!logOf("vf-none").includes(TOKEN_REQUIRED) || logOf("vf-none").includes("Incorrect VF token")) consumer.push(`vf-none: the kernel did not log only "VF token required" (${JSON.stringify(step("vf-none")?.log ?? null)})`);
  } else {
    if (!rightOk) consumer.push(`qR: query-pci of QEMU with vf-token=U has no 8086:10ca (${JSON.stringify(right?.facts.pciDevices ?? null)}; ${right?.facts.qemuErrors?.join(" | ")})`);
    for (const [role, r] of [["qW", wrongTok], ["qN", none]] as const) {
      if (r?.exit !== 1) consumer.push(`${role}: QEMU exit ${r?.exit ?? "none"}, expected 1`);
      if (!(r?.facts.qemuErrors ?? []).some((l) => /Permission denied/.test(l))) consumer.push(`${role}: no "Permission denied" in QEMU's errors (${JSON.stringify(r?.facts.qemuErrors ?? null)})`);
    }
    if (!logOf("qemu-wrong").includes(TOKEN_INCORRECT) || logOf("qemu-wrong").includes("VF token required")) consumer.push(`qemu-wrong: the kernel did not log only "Incorrect VF token" (${JSON.stringify(step("qemu-wrong")?.log ?? null)})`);
    if (!logOf("qemu-none").includes(TOKEN_REQUIRED)) consumer.push(`qemu-none: the kernel did not log "VF token required" (${JSON.stringify(step("qemu-none")?.log ?? null)})`);
    const hw = run.handoff?.wrong;
    if (hw && /"error"/.test(hw.stdout) && hw.exit === 0) wrong.push(`qmp-wrong: the line \`args qemu ${VF0} --qmp\` printed exits 0 when QEMU refuses the device (socat only relays the replies): ${hw.stdout.trim().split("\n").slice(-1)[0]!.trim()}`);
    if (hw && !/"error"/.test(hw.stdout)) consumer.push(`qmp-wrong: device_add with a wrong token did not fail over QMP (${hw.stdout.trim().split("\n").slice(-1)[0]})`);
  }
  return { wrong, consumer, agreed };
}

// ------------------------------------------------------------------ the model side

/** Where the model places the VF users of a row (the real ones run in a chroot or a mount namespace). */
export function modelPlace(row: ConsumerRow, role: string, trixie: string): Record<string, unknown> | undefined {
  if (!VF_ROLES.has(role)) return undefined;
  if (row === "dpdk:chroot") return { root: trixie };
  if (row === "dpdk:mntns") return { mounts: { "/dev": "/dev" }, ...(cgroupOf(row, role) ? { cgroup: cgroupOf(row, role) } : {}) };
  return undefined;
}

/** The model's run of a row: the scenario's ops, vfioctl in a process of the model at each step. */
export async function runModelConsumers(kernel: string, project: string, row: ConsumerRow, trixie: string): Promise<ModelConsumerRun> {
  const { loadScenario, runScenario, modelBackend } = await import("../src/scenario/index.js");
  const t0 = performance.now();
  const sc = loadScenario(path.join(project, scenarioOf(row)));
  const be = await modelBackend(sc, { profile: kernel });
  const k = be.kernel!;
  const roles: Record<string, string> = {};
  const spawnAt = k.spawn.bind(k) as (comm: string, place?: unknown) => Syscalls & { pid: number };
  be.spawn = async (name: string) => {
    const p = spawnAt(ROLE_COMM[name] ?? name, modelPlace(row, name, trixie));
    if (ROLE_COMM[name]) roles[String(p.pid)] = name;
    return p;
  };
  const defs = new Map(stepsOf(row).map((s) => [s.name, s]));
  const snaps = new Map<string, Record<string, CliOutput>>();
  const tr = (await runScenario(sc, be, {
    profile: kernel,
    afterOp: async (op) => {
      if (!op.startsWith("step:")) return;
      const def = defs.get(op.slice(5));
      if (!def) throw new Error(`${scenarioOf(row)}: ${op} is not a step of ${row}`);
      const sys = spawnAt("vfioctl");
      try {
        snaps.set(def.name, await snapshotOver(sys, def.commands));
      } finally {
        await sys.exit().catch(() => {});
      }
    },
  })) as unknown as { ops: { name: string; log: { level: string; text: string }[] }[]; ok: boolean; failures: unknown[] };
  // the log lines of the ops since the previous step belong to a step
  const steps: StepRun[] = [];
  let acc: string[] = [];
  for (const op of tr.ops) {
    acc.push(...op.log.map((l) => `<${l.level}> ${l.text}`));
    if (op.name.startsWith("step:")) {
      const name = op.name.slice(5);
      steps.push({ name, ms: 0, log: acc, snapshot: snaps.get(name) ?? {} });
      acc = [];
    }
  }
  return { row, kernel, ms: Math.round(performance.now() - t0), steps, roles, transcriptOk: tr.ok, failures: tr.failures };
}

// ------------------------------------------------------------------ host side: the report rows

export interface ConsumerCell {
  scenario: string;
  kernel: string;
  status: "match" | "diff" | "error";
  diffs: OpDiff[];
  realOk?: boolean;
  modelOk?: boolean;
  error?: string;
  bootS?: number | null;
  guestMs?: number;
  wallMs?: number;
  expectations?: string[];
  /** where vfioctl disagreed with what a consumer did */
  wrong?: string[];
  /** where it agreed (saved with the run, not printed) */
  agreed?: string[];
}

export const savedName = (k: string, row: ConsumerRow): string => `${k}-consumer-${row.replace(":", "-")}.json`;

/** Fill a row's cell from a real run and the model's run (also what --rediff does). */
export function consumerCellFrom(cell: ConsumerCell, real: ConsumerRun, model: ModelConsumerRun, filtered: (t: string) => boolean): void {
  const chk = checkConsumers(real);
  cell.diffs = diffConsumers(real, model, filtered);
  cell.wrong = chk.wrong;
  cell.agreed = chk.agreed;
  cell.expectations = [...chk.consumer.map((x) => `consumer: ${x}`), ...(model.transcriptOk ? [] : [`model: the scenario's expectations failed: ${JSON.stringify(model.failures).slice(0, 400)}`])];
  cell.realOk = chk.consumer.length === 0;
  cell.modelOk = model.transcriptOk;
  cell.guestMs = real.ms;
  cell.status = cell.diffs.length || cell.wrong.length ? "diff" : "match";
  delete cell.error;
}

/** One consumer row on one kernel: a guest run (4 GiB, hugepages), then the model. */
/**
 * The nearest folder at or above `dir` that anyone may write to (mode o+w, sticky or not), or
 * null. DPDK's EAL checks every folder on the path of its plugin directory the same way
 * (eal_common_options.c verify_perms) and loads no driver from under such a one.
 */
export function worldWritableParent(dir: string): string | null {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      if (statSync(d).mode & 0o002) return d;
    } catch {
      /* not there yet: its parents decide */
    }
    if (d === path.dirname(d)) return null;
  }
}

export async function consumerCell(k: string, row: ConsumerRow, outDir: string): Promise<ConsumerCell> {
  const { PROJECT, CACHE, runInGuest, dropRun } = await import("./vm.js");
  const { labFiltered } = await import("./conformance.js");
  const cell: ConsumerCell = { scenario: row, kernel: k, status: "error", diffs: [] };
  const trixie = path.join(CACHE, "trixie");
  const unsafe = worldWritableParent(trixie);
  if (unsafe) {
    cell.error = `cannot run DPDK here: ${trixie} is below ${unsafe}, which is world-writable, and DPDK's EAL refuses to load its drivers from under such a folder ("EAL: Error, directory path ${unsafe} is world-writable and insecure", then "EAL: Cannot init plugins"); set VFIOCTL_LAB_CACHE to a folder none of whose parents is world-writable (the default is /var/cache/vfioctl-lab)`;
    return cell;
  }
  try {
    const g = await runInGuest(k, { kind: "consumers", consumers: { row, trixie } }, CONSUMER_TIMEOUT_S, CONSUMER_MACHINE);
    cell.bootS = g.bootS;
    cell.wallMs = g.wallMs;
    let real: ConsumerRun;
    try {
      real = JSON.parse(readFileSync(path.join(g.runDir, "consumers.json"), "utf8")) as ConsumerRun;
    } catch {
      cell.error = `guest produced no consumers.json (rc=${g.rc}, run folder ${g.runDir}): ${String((g.result as { error?: string } | null)?.error ?? g.console.slice(-1500))}`;
      return cell;
    }
    if (real.error) {
      cell.error = `guest job failed (run folder ${g.runDir}): ${real.error}`;
      writeFileSync(path.join(outDir, savedName(k, row)), JSON.stringify({ real, guest: { bootS: g.bootS, wallMs: g.wallMs, rc: g.rc } }, null, 1) + "\n");
      return cell;
    }
    dropRun(g);
    const model = await runModelConsumers(k, PROJECT, row, trixie);
    consumerCellFrom(cell, real, model, labFiltered);
    writeFileSync(path.join(outDir, savedName(k, row)), JSON.stringify({ real, model, guest: { bootS: g.bootS, wallMs: g.wallMs, rc: g.rc }, diffs: cell.diffs, wrong: cell.wrong, agreed: cell.agreed, expectations: cell.expectations }, null, 1) + "\n");
  } catch (e) {
    cell.error = (e as Error).stack ?? String(e);
  }
  return cell;
}

/** --rediff: a saved run compared again. */
export function rediffConsumer(old: ConsumerCell, saved: { real: ConsumerRun; model?: ModelConsumerRun }, filtered: (t: string) => boolean): ConsumerCell {
  const c = { ...old };
  if (saved.model) consumerCellFrom(c, saved.real, saved.model, filtered);
  return c;
}
