/**
 * From the host as it is to the host the config describes: an ordered list of typed steps,
 * each saying exactly what it writes and what Linux will do, plus what would block.
 *
 * The plan is data: `vfioctl plan` prints it, `vfioctl apply` runs exactly it (journaling each
 * step with the inverse it recorded), and a failed step undoes the completed ones in reverse.
 * Implied steps are explicit: VFs go away before their PF changes driver; a change of VF count
 * goes through 0 (Linux refuses N → M with EBUSY); vfio-pci's `enable_sriov` is set before a
 * vfio-pci PF gets VFs; a PF's token is stored before it is set, and set before its VFs exist.
 *
 * @example
 * ```ts
 * import { bootKernel, parseConfig, observe, makePlan } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * const cfg = parseConfig("version: 1\npfs:\n  - match: { bdf: '0000:01:00.0' }\n    driver: vfio-pci\n    vfs: 2\n    token: generate\n");
 * const plan = makePlan(cfg, await observe(sys, cfg), { storedTokens: new Set() });
 * plan.steps.map((s) => s.kind); // ["unbind-vfs"?, "param", "bind", "token-generate", "token-set", "sriov"]
 * ```
 */
import { parseBdf, formatBdf } from "../kernel/pci/bdf.js";
import { describeHolder } from "../lib/holders.js";
import { denylisted, devPath, hasSriovConfigure, VFIO_PCI_PARAMS, type DeviceFacts } from "../lib/sysfs.js";
import { vfDriverOf, type HostConfig, type PfConfig } from "./config.js";
import type { HostState, PfState } from "./observe.js";

export type StepKind = "modprobe" | "param" | "sriov" | "bind" | "token-generate" | "token-set";

interface StepBase {
  kind: StepKind;
  /** the configured PF this step is for (config name), or null for host-wide steps */
  pf: string | null;
  /** the device written */
  device: string | null;
  /** what vfioctl does, in one line */
  text: string;
  /** what Linux will do */
  linux: string;
  /** the exact writes and ioctls, in order */
  writes: string[];
}

export interface ModprobeStep extends StepBase {
  kind: "modprobe";
  module: "vfio-pci";
}
export interface ParamStep extends StepBase {
  kind: "param";
  param: "enable_sriov";
  value: "Y" | "N";
}
export interface SriovStep extends StepBase {
  kind: "sriov";
  device: string;
  from: number;
  to: number;
}
export interface BindStep extends StepBase {
  kind: "bind";
  device: string;
  /** null: unbind and leave the device without a driver */
  driver: string | null;
  role: "pf" | "vf";
}
export interface TokenGenerateStep extends StepBase {
  kind: "token-generate";
  pf: string;
}
export interface TokenSetStep extends StepBase {
  kind: "token-set";
  pf: string;
  device: string;
  source: { from: "store" } | { from: "file"; file: string };
  /** force even when the kernel's token is believed to match (a re-probe regenerated it) */
  why: string;
}

export type Step = ModprobeStep | ParamStep | SriovStep | BindStep | TokenGenerateStep | TokenSetStep;

export interface Blocker {
  pf: string | null;
  device: string | null;
  reason: string;
  fix: string;
  holders?: string[];
}

export interface PlanNote {
  pf: string | null;
  text: string;
}

export interface Plan {
  config: string;
  steps: Step[];
  blockers: Blocker[];
  notes: PlanNote[];
  /** per configured PF: the device it matched and how */
  matched: { pf: string; bdf: string | null; how: string; problem: string | null }[];
}

/** What the planner knows about tokens beyond sysfs. */
export interface TokenFacts {
  /** PF names with a `current` token in the store */
  storedTokens: Set<string>;
  /**
   * Per PF name, whether the kernel is known to hold the stored (or file) token: "match" (a VF
   * opened with it, or vfioctl set it during this boot and the PF was not re-probed since),
   * "mismatch", or absent (unknown: set it).
   */
  kernelToken?: Map<string, "match" | "mismatch">;
  /** PF names whose token must be set again whatever is believed (a re-probe was reported) */
  force?: Set<string>;
}

/** VF BDFs a PF will have with `n` VFs: iov.c pci_iov_virtfn_bus/devfn (rid = PF rid + offset + stride·i). */
export function predictVfs(pf: string, offset: number, stride: number, n: number): string[] {
  const a = parseBdf(pf)!;
  const base = (a.bus << 8) | a.devfn;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const rid = base + offset + stride * i;
    out.push(formatBdf(a.domain, (rid >> 8) & 0xff, rid & 0xff));
  }
  return out;
}

const heldText = (st: PfState, bdfs: string[]): string[] => bdfs.flatMap((b) => (st.holders.get(b) ?? []).map((h) => `${b}: ${describeHolder(h)}`));

function bindStep(pfName: string, d: DeviceFacts | { bdf: string; driver: string | null; driverOverride: string | null }, driver: string | null, role: "pf" | "vf", linux: string): BindStep {
  const p = devPath(d.bdf);
  const writes: string[] = [];
  if (driver !== null && d.driverOverride !== driver) writes.push(`write "${driver}" to ${p}/driver_override`);
  if (d.driver) writes.push(`write "${d.bdf}" to ${p}/driver/unbind`);
  if (driver !== null) writes.push(`write "${d.bdf}" to /sys/bus/pci/drivers_probe`);
  return {
    kind: "bind",
    pf: pfName,
    device: d.bdf,
    driver,
    role,
    text: driver === null ? `unbind ${d.bdf} from ${d.driver}` : `bind ${d.bdf} (${role.toUpperCase()}) to ${driver}${d.driver ? ` (now ${d.driver})` : " (now unbound)"}`,
    linux,
    writes,
  };
}

function sriovStep(pfName: string, pf: string, driver: string, from: number, to: number, vfs: string[]): SriovStep {
  const linux =
    to === 0
      ? `${driver}'s sriov_configure disables SR-IOV: ${from} VFs (${vfs.join(", ") || "none"}) are removed, their drivers unbound; Linux waits while any of them is open`
      : driver === "vfio-pci"
        ? `vfio-pci's sriov_configure enables ${to} VFs (${vfs.join(", ")}): each gets driver_override=vfio-pci and binds vfio-pci; opening one needs the PF's VF token`
        : `${driver}'s sriov_configure enables ${to} VFs (${vfs.join(", ")}); they are probed by their own drivers`;
  return { kind: "sriov", pf: pfName, device: pf, from, to, text: `${pf}: sriov_numvfs ${from} → ${to}`, linux, writes: [`write "${to}" to ${devPath(pf, "sriov_numvfs")}`] };
}

/** Make the plan for one config against one observed host state. */
export function makePlan(cfg: HostConfig, host: HostState, tokens: TokenFacts): Plan {
  const steps: Step[] = [];
  const blockers: Blocker[] = [];
  const notes: PlanNote[] = [];
  const matched = host.pfs.map((p) => ({ pf: p.cfg.name, bdf: p.match.bdf, how: p.match.how, problem: p.match.problem }));
  const paramNeeded = cfg.pfs.some((p) => p.driver === "vfio-pci" && p.vfs > 0);
  let paramPlanned = false;
  // vfio-pci is not loaded (a real host at boot): load it first; its enable_sriov is then unknown
  const loadVfio = !host.module.loaded && cfg.pfs.some((p) => p.driver === "vfio-pci" && host.pfs.some((st) => st.cfg === p && st.pf && st.pf.driver !== "vfio-pci"));
  if (loadVfio) {
    steps.push({
      kind: "modprobe",
      pf: null,
      device: null,
      module: "vfio-pci",
      text: "load vfio-pci (modprobe vfio-pci, with the options of /etc/modprobe.d)",
      linux: "vfio-pci registers its PCI driver; it binds only devices whose driver_override names it",
      writes: ["run modprobe vfio-pci"],
    });
  }
  const needParam = (_pfName: string) => {
    if (paramPlanned || (host.module.enableSriov === true && !loadVfio)) return;
    paramPlanned = true;
    steps.push({
      kind: "param",
      pf: null,
      device: null,
      param: "enable_sriov",
      value: "Y",
      text: "set vfio-pci's enable_sriov to Y",
      linux: "vfio-pci then lets a vfio-pci PF create VFs through sriov_numvfs (with N it fails ENOENT and logs nothing)",
      writes: [`write "Y" to ${VFIO_PCI_PARAMS}/enable_sriov`],
    });
  };

  for (const st of host.pfs) {
    const pc: PfConfig = st.cfg;
    if (!st.pf) {
      blockers.push({ pf: pc.name, device: null, reason: `${pc.field} (${pc.name}): ${st.match.problem ?? "no device"}`, fix: "check the PF's match: against `vfioctl list`" });
      continue;
    }
    const pf = st.pf;
    const sr = pf.sriov!;
    const curN = sr.numVfs;
    if (curN === null) {
      blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pf.bdf}: reading sriov_numvfs stays blocked (another write to it, or a PF unbind, waits for a VF to be released)`, fix: "see `vfioctl audit` for who holds the VFs" });
      continue;
    }
    if (pc.vfs > sr.totalVfs) {
      blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pc.field}.vfs: ${pc.vfs} VFs asked, ${pf.bdf} has sriov_totalvfs ${sr.totalVfs} (Linux: ERANGE)`, fix: `set vfs: 0..${sr.totalVfs}` });
      continue;
    }
    const rebind = pf.driver !== pc.driver;
    // a device the host is using: its network interface is up (dpdk-devbind refuses these too)
    const inUse = (bdfs: string[], what: string) => {
      const up = st.netUp.filter((n) => bdfs.includes(n.bdf));
      if (up.length) blockers.push({ pf: pc.name, device: up[0]!.bdf, reason: `${what} takes ${up.map((n) => `${n.ifname} (${n.bdf}, operstate ${n.operstate})`).join(", ")} away from the host while ${up.length === 1 ? "it is" : "they are"} up`, fix: `bring ${up.map((n) => n.ifname).join(", ")} down first (ip link set IF down) if nothing depends on ${up.length === 1 ? "it" : "them"} — check you are not logged in through it` });
    };
    if (rebind && pf.driver) inUse([pf.bdf], `moving ${pf.bdf} from ${pf.driver} to ${pc.driver}`);
    if ((rebind || pc.vfs !== curN) && curN > 0) inUse(sr.vfs, `removing ${pf.bdf}'s VFs`);
    let nowN = curN;
    let nowDriver = pf.driver;
    // 1. VFs go away before the PF changes driver
    if (rebind && curN > 0) {
      const held = heldText(st, sr.vfs);
      if (held.length) blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pf.bdf} must drop its ${curN} VFs before it changes driver, and Linux blocks until these users release them`, fix: "stop those processes first", holders: held });
      if (pf.driver && hasSriovConfigure(pf.driver) === false) {
        blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pf.bdf}: ${pf.driver} cannot remove its VFs through sriov_numvfs (no sriov_configure)`, fix: "unload or unbind that driver by hand, then apply again" });
      }
      steps.push(sriovStep(pc.name, pf.bdf, pf.driver ?? "the driver", curN, 0, sr.vfs));
      nowN = 0;
    }
    // 2. the PF's driver
    if (rebind) {
      const heldPf = heldText(st, [pf.bdf]);
      if (heldPf.length) blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pf.bdf} is open through vfio: unbinding it blocks until its user closes it`, fix: "stop that process first", holders: heldPf });
      if (pc.driver === "vfio-pci") {
        if (pf.iommuGroup === null) blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pf.bdf} has no IOMMU group: vfio-pci refuses it (EINVAL)`, fix: "enable the IOMMU (intel_iommu=on / amd_iommu=on)" });
        if (denylisted(pf)) blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pf.bdf} is in vfio-pci's device denylist (EINVAL)`, fix: "load vfio-pci with disable_denylist=1 if you accept the risk" });
      }
      const linux =
        pc.driver === "vfio-pci"
          ? `${pf.driver ? `${pf.driver} releases ${pf.bdf}; ` : ""}vfio-pci probes it and generates a new random VF token (nobody knows it until it is set)`
          : `${pf.driver ? `${pf.driver} releases ${pf.bdf}; ` : ""}${pc.driver} probes it`;
      steps.push(bindStep(pc.name, pf, pc.driver, "pf", linux));
      nowDriver = pc.driver;
    }
    // IOMMU group viability (a vfio-pci PF's userspace driver needs every peer on vfio-pci or unbound)
    if (pc.driver === "vfio-pci") {
      const bad = st.groupPeers.filter((g) => g.driver !== null && g.driver !== "vfio-pci" && g.driver !== "pci-stub" && g.driver !== "pcieport");
      if (bad.length) {
        const t = `IOMMU group ${pf.iommuGroup} is not viable: ${bad.map((g) => `${g.bdf} on ${g.driver}`).join(", ")}`;
        if (pc.token.policy === "generate" || pc.token.policy === "file") blockers.push({ pf: pc.name, device: pf.bdf, reason: `${t}: the PF cannot be opened to set its token (EPERM)`, fix: `bind those devices to vfio-pci or unbind them` });
        else notes.push({ pf: pc.name, text: `${t}: the PF's userspace driver will get EPERM opening /dev/vfio/${pf.iommuGroup}` });
      }
    }
    // 3. the token: stored, then set, before VFs exist
    if (pc.driver === "vfio-pci") {
      const pol = pc.token;
      if (pol.policy === "external") {
        notes.push({ pf: pc.name, text: `token: external — ${pol.owner ?? "the PF's userspace driver"} is expected to set ${pf.bdf}'s VF token; vfioctl sets none` });
      } else if (pol.policy === "generate" || pol.policy === "file") {
        const stored = pol.policy === "generate" && tokens.storedTokens.has(pc.name);
        if (pol.policy === "generate" && !stored) {
          steps.push({
            kind: "token-generate",
            pf: pc.name,
            device: pf.bdf,
            text: `generate a VF token for ${pc.name} and store it (${cfg.store}/${pc.name}/current, mode ${pol.readers.group ? `0640 group ${pol.readers.group}` : "0600"})`,
            linux: "nothing yet: the token is written and fsynced before the kernel sees it",
            writes: [`create ${cfg.store}/${pc.name}/current (temporary file, fsync, rename)`],
          });
        }
        const known = tokens.kernelToken?.get(pc.name);
        const force = tokens.force?.has(pc.name) ?? false;
        // with no VFs now and none wanted, the token guards nothing yet: set it when VFs are made
        const idle = !rebind && curN === 0 && pc.vfs === 0;
        if (!idle && (rebind || force || known !== "match")) {
          const heldPf = heldText(st, [pf.bdf]);
          const heldVfs = heldText(st, rebind ? [] : sr.vfs);
          if (!rebind && heldPf.length) {
            blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pf.bdf}'s group is held by another program: vfioctl cannot open the PF to set the token (EBUSY)`, fix: `that program owns the PF: use token: external (owner: …), or stop it`, holders: heldPf });
          } else if (heldVfs.length && known !== "match") {
            blockers.push({ pf: pc.name, device: pf.bdf, reason: `VFs of ${pf.bdf} are open and the kernel's token is not the ${pol.policy === "file" ? "file's" : "stored"} one: the PF opens only with the token they were given`, fix: "stop the VF users, or set the token with `vfioctl token rotate` and the current token", holders: heldVfs });
          }
          const src = pol.policy === "file" ? ({ from: "file", file: pol.file } as const) : ({ from: "store" } as const);
          const why = rebind ? "the PF is (re)probed by vfio-pci, which generates a new token" : force ? "the PF was re-probed (the kernel regenerated its token)" : known === "mismatch" ? "a VF does not open with the stored token" : "the kernel's token cannot be read back and vfioctl has not set it since this boot";
          steps.push({
            kind: "token-set",
            pf: pc.name,
            device: pf.bdf,
            source: src,
            why,
            text: `set ${pf.bdf}'s VF token from ${pol.policy === "file" ? `file ${pol.file}` : `the store (${pc.name})`} — ${why}`,
            linux: (rebind ? nowN : curN) > 0 && heldVfs.length === 0 ? "with no VF open, vfio-pci takes the token given at open silently" : "vfio-pci takes the token given with the PF's open while no VF is open",
            writes: [`open /dev/vfio/vfio, /dev/vfio/${pf.iommuGroup}; VFIO_GROUP_SET_CONTAINER; VFIO_SET_IOMMU; VFIO_GROUP_GET_DEVICE_FD "${pf.bdf} vf_token=<token>"; close`],
          });
        }
      }
    }
    // 4. the VF count (through 0 when it changes between two non-zero counts)
    if (pc.vfs !== nowN) {
      if (nowDriver && hasSriovConfigure(nowDriver) === false) {
        blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pf.bdf}: ${nowDriver} cannot create VFs through sriov_numvfs (ENOENT: no sriov_configure)`, fix: "choose vfio-pci, pci-pf-stub or the native PF driver" });
      }
      if (nowDriver === "vfio-pci" && pc.vfs > 0) needParam(pc.name);
      if (nowN > 0) {
        const held = heldText(st, sr.vfs);
        if (held.length) blockers.push({ pf: pc.name, device: pf.bdf, reason: `${pf.bdf}: changing ${nowN} VFs to ${pc.vfs} goes through 0, which removes every VF; Linux blocks until these users release them`, fix: "stop those processes first", holders: held });
        steps.push(sriovStep(pc.name, pf.bdf, nowDriver ?? "the driver", nowN, 0, sr.vfs));
        if (pc.vfs > 0) notes.push({ pf: pc.name, text: `${pf.bdf}: ${nowN} → ${pc.vfs} VFs goes through 0 (Linux refuses a direct change with EBUSY)` });
      }
      if (pc.vfs > 0) {
        const offset = host.pfOffsets.get(pf.bdf);
        const vfs = offset ? predictVfs(pf.bdf, offset.offset, offset.stride, pc.vfs) : [];
        steps.push(sriovStep(pc.name, pf.bdf, nowDriver ?? "the driver", 0, pc.vfs, vfs));
        // 5. VFs whose driver differs from what Linux gives them
        vfs.forEach((vf, i) => {
          const rule = vfDriverOf(pc, i);
          const linuxDefault = nowDriver === "vfio-pci" ? "vfio-pci" : null;
          if (!rule || rule.driver === linuxDefault) return;
          const linux = nowDriver === "vfio-pci" ? `vfio-pci's captured driver_override is replaced; the kernel logs "VF ${vf} bound to driver ${rule.driver} while PF bound to driver vfio-pci"` : `${rule.driver} probes ${vf}`;
          steps.push(bindStep(pc.name, { bdf: vf, driver: linuxDefault, driverOverride: nowDriver === "vfio-pci" ? "vfio-pci" : null }, rule.driver, "vf", linux));
        });
      }
    } else {
      // same count: existing VFs to their drivers
      if (nowDriver === "vfio-pci" && pc.vfs > 0 && host.module.enableSriov !== true) notes.push({ pf: pc.name, text: "vfio-pci's enable_sriov is N: the VFs exist, but after a re-probe they could not be created again" });
      st.vfs.forEach((vf, i) => {
        const idx = vf.vfIndex ?? i;
        const rule = vfDriverOf(pc, idx);
        if (!rule || vf.driver === rule.driver) return;
        if (vf.driver) inUse([vf.bdf], `moving ${vf.bdf} from ${vf.driver} to ${rule.driver}`);
        const held = heldText(st, [vf.bdf]);
        if (held.length && vf.driver) blockers.push({ pf: pc.name, device: vf.bdf, reason: `${vf.bdf} is open through vfio: unbinding it blocks until its user closes it`, fix: "stop that process first", holders: held });
        const linux = pf.driver === "vfio-pci" && rule.driver !== "vfio-pci" ? `the VF leaves vfio; the kernel logs "VF ${vf.bdf} bound to driver ${rule.driver} while PF bound to driver vfio-pci"` : `${rule.driver} probes ${vf.bdf}`;
        steps.push(bindStep(pc.name, vf, rule.driver, "vf", linux));
      });
    }
  }
  if (paramNeeded && !paramPlanned && host.module.enableSriov !== true && host.module.loaded) {
    notes.push({ pf: null, text: "vfio-pci's enable_sriov is N; the config's VFs exist already, so nothing is written now — `vfioctl install` makes it Y at boot" });
  }
  // module steps run first: modprobe, then the parameter
  const rank = (x: Step) => (x.kind === "modprobe" ? 0 : x.kind === "param" ? 1 : 2);
  steps.sort((a, b) => rank(a) - rank(b));
  return { config: cfg.file, steps, blockers, notes, matched };
}
