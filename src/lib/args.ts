/**
 * The exact command-line pieces each VF consumer needs, with its token (or a placeholder) and
 * each consumer's known caveats:
 *
 * - DPDK: `-a BDF` per device and one `--vfio-vf-token=UUID` per process, so every VF must
 *   belong to PFs sharing one token. When the open with the token fails, DPDK retries without
 *   it; a wrong and a missing token print the same EAL lines ({@link DPDK_EAL_LINES}, as the
 *   lab's testpmd printed them) and only the kernel log tells them apart.
 * - QEMU: `-device vfio-pci,host=BDF,vf-token=UUID`; only the group path uses it (a device
 *   given through iommufd ignores vf-token), and QEMU's error hint blames group binding when
 *   the token is wrong. QMP `device_add` keeps the token off the command line.
 * - SPDK: its env_dpdk layer hands extra EAL options through to DPDK (`opts.env_context`;
 *   applications: `--env-context`), so the token goes in as a DPDK EAL option with DPDK's rules.
 * - On a kernel with the vfio cdev (readHostKernel), what the consumers' cdev/iommufd modes do
 *   with the token on that kernel's row: QEMU's iommufd backend binds with flags 0 (no token);
 *   DPDK's cdev mode retries a failed bind without the token.
 *
 * @example
 * ```ts
 * import { bootKernel, consumerArgs } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * const a = await consumerArgs(sys, "dpdk", ["0000:af:10.0", "0000:af:10.1"], {});
 * a.argv; // ["-a", "0000:af:10.0", "-a", "0000:af:10.1", "--vfio-vf-token=<VF-TOKEN>"]
 * ```
 */
import type { Syscalls } from "../sys/syscalls.js";
import { checkBdf } from "./bdf.js";
import { VfioctlError } from "./errors.js";
import { tokenSituation } from "./inventory.js";
import { isVfioDriver, readDevice, requireDevice } from "./sysfs.js";
import { TOKEN_PLACEHOLDER } from "./token.js";

/**
 * What DPDK 24.11's dpdk-testpmd (Debian 13) printed on the group path for a VF of a vfio-pci PF,
 * as recorded in the lab (lab/transcripts/consumers/testpmd-vf.txt, docs/lab.md "Real
 * consumers"; `BDF` stands for the VF's address). Every line that differs between the cases:
 *   - right token: nothing about the token; the VFIO lines every start prints, then its port;
 *   - wrong token and no token: the same lines (DPDK retries a failed token open without the
 *     token, and EAL never says why the open failed), then testpmd runs on without the port and
 *     exits 0; the reason is only in the kernel log.
 */
export const DPDK_EAL_LINES = {
  /** printed by every start that finds VFIO, with or without a usable device */
  vfio: ["EAL: VFIO support initialized", "EAL: Using IOMMU type 1 (Type 1)"],
  /** wrong or no token: once, in this order */
  failed: ["EAL: Getting a vfio_dev_fd for BDF failed", "PCI_BUS: Requested device BDF cannot be used", "EAL: Bus (pci) probe failed."],
  /** wrong or no token: once per DMA mapping EAL makes afterwards (9 in the lab), and "clear" at exit */
  repeated: ["EAL: Cannot set up DMA remapping, error 22 (Invalid argument)", "EAL: Cannot clear DMA remapping, error 22 (Invalid argument)"],
  /** testpmd's own line when no port was probed */
  testpmd: ["testpmd: No probed ethernet devices"],
  /** the kernel log (dmesg, rate-limited) for a wrong token: DPDK's retry without it logs the second line */
  kernelWrong: ["vfio-pci BDF: Incorrect VF token provided for device", "vfio-pci BDF: VF token required to access device"],
  /** the kernel log for no token */
  kernelNone: ["vfio-pci BDF: VF token required to access device"],
} as const;

/** The DPDK caveat: every EAL line users see for the right, a wrong and no token (group path), quoted. */
export function dpdkTokenCaveat(bdf: string): string {
  const q = (l: string) => `"${l.replace(/BDF/g, bdf)}"`;
  const L = DPDK_EAL_LINES;
  return (
    `what DPDK (24.11, group path) prints for ${bdf}: with the right token nothing about it (${L.vfio.map(q).join(", ")}, then the port); ` +
    `with a wrong token and with none the same lines — ${L.failed.map(q).join(", ")}, then ${q(L.repeated[0])} for each DMA mapping (and ${q(L.repeated[1])} at exit), ${q(L.testpmd[0])} from testpmd, which runs on without the port and exits 0. ` +
    `DPDK retries a failed token open without the token, so only the kernel log (dmesg, rate-limited) tells them apart: a wrong token logs ${L.kernelWrong.map(q).join(" then ")}, no token only ${q(L.kernelNone[0])} (vfioctl explain ${bdf} --errno EACCES reads it). Check a token first: vfioctl token verify ${bdf} --token-file F`
  );
}
import { readHostKernel, type HostKernel } from "./kernel.js";

export type Consumer = "dpdk" | "qemu" | "spdk";
export const CONSUMERS: Consumer[] = ["dpdk", "qemu", "spdk"];

export interface ArgsResult {
  consumer: Consumer;
  devices: { bdf: string; pf: string | null; token: string }[];
  /** whether the pieces carry a token */
  tokenNeeded: boolean;
  /** the pieces, with the token or the placeholder */
  argv: string[];
  /** a wrapper line that reads the token from a file instead of embedding it */
  byReference?: string;
  /** QEMU: the by-reference -device piece of each device, in order (byReference joins them) */
  byReferenceEach?: string[];
  /** PFs given (DPDK, SPDK or QEMU as the PF's userspace driver: the token given sets the PF's token) */
  pfDriver?: string[];
  caveats: string[];
  /** the running kernel whose rules the caveats follow */
  kernel: HostKernel;
}

/** What a consumer's cdev (iommufd) mode does with the token on this kernel, or null without a cdev. */
function cdevCaveat(c: Consumer, hk: HostKernel): string | null {
  const rule = hk.cdevToken === "unknown" && hk.behaviour?.vfioDeviceCdev && hk.iommufd ? (!hk.behaviour.bindIommufdToken ? "bypass" : !hk.behaviour.bindIommufdFullStruct ? "e2big" : "checked") : hk.cdevToken;
  if (rule === "none" || rule === "unknown") return null;
  const maybe = hk.cdevToken === "unknown" ? " (if this kernel has the vfio cdev)" : "";
  if (c === "qemu") {
    if (rule === "bypass") return `on this kernel${maybe} QEMU's iommufd backend (-object iommufd,id=… with iommufd=… on the device, or a cdev fd from libvirt/KubeVirt) binds with flags 0 and the kernel checks no token: the VF opens without one and vf-token= is ignored — the token protects nothing on that path (vfioctl audit)`;
    if (rule === "e2big") return `on this kernel${maybe} QEMU's iommufd backend binds with flags 0 and the kernel refuses a VF of a vfio-pci PF without its token (EACCES "VF token required to access device"); no userspace can pass a token through the cdev here (E2BIG until 2f03f21fe751, 6.18.3 / 6.19): use the group path (no iommufd=) for these VFs`;
    return `on this kernel${maybe} QEMU's iommufd backend binds with flags 0, ignoring vf-token=, and the kernel refuses the VF (EACCES "VF token required to access device"): use the group path (no iommufd=) for these VFs`;
  }
  const who = c === "spdk" ? "DPDK's cdev mode (SPDK runs through DPDK's EAL)" : "DPDK's cdev (iommufd) mode";
  const unchecked = " (DPDK's side of this is not checked in the lab)";
  if (rule === "bypass") return `on this kernel${maybe} ${who} cannot pass the token (the bind has no token field: flags other than 0 are EINVAL) and retries without it, which the kernel lets through unchecked: the VF opens with or without the right --vfio-vf-token${unchecked}`;
  if (rule === "e2big") return `on this kernel${maybe} ${who}'s bind with the token fails E2BIG (the kernel copies only 16 bytes of the struct), and its retry without the token fails EACCES ("VF token required"); DPDK then names the kernel version as the likely cause. Use DPDK's group (container) mode for these VFs${unchecked}`;
  return `on this kernel${maybe} ${who} passes the token with VFIO_DEVICE_BIND_FLAG_TOKEN and the kernel checks it; on any failure it retries without the token (which then fails EACCES) and names the kernel version as the likely cause — the first failure is the one to read in dmesg${unchecked}`;
}

const shq = (s: string) => (/^[A-Za-z0-9_=,.:/@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The placeholder for one PF's token when devices of several PFs need different ones. */
export const pfPlaceholder = (pf: string) => `<VF-TOKEN:${pf}>`;

export interface ConsumerArgsOptions {
  /** the token (one PF) */
  token?: string;
  /** the file holding it (one PF): the by-reference form reads it at launch; must be absolute */
  tokenFile?: string;
  showToken?: boolean;
  qmpSocket?: string;
  /** per PF (QEMU with VFs of several PFs): that PF's token and token file */
  perPf?: Record<string, { token?: string; tokenFile?: string }>;
}

export async function consumerArgs(sys: Syscalls, consumer: string, bdfs: string[], opts: ConsumerArgsOptions): Promise<ArgsResult> {
  if (!(CONSUMERS as string[]).includes(consumer)) throw new VfioctlError("BAD_INPUT", `consumer: expected one of ${CONSUMERS.join(", ")}, got ${JSON.stringify(consumer)}`);
  const c = consumer as Consumer;
  if (bdfs.length === 0) throw new VfioctlError("BAD_INPUT", "devices: expected at least one BDF, got none");
  for (const b of bdfs) checkBdf(b);
  for (const f of [opts.tokenFile, ...Object.values(opts.perPf ?? {}).map((x) => x.tokenFile)]) {
    if (f !== undefined && !f.startsWith("/")) throw new VfioctlError("BAD_INPUT", `token file: expected an absolute path (the launching script reads it from wherever it runs), got ${JSON.stringify(f)}`, { fix: `use ${JSON.stringify(`$PWD/${f}`)}` });
  }
  const devices: ArgsResult["devices"] = [];
  const needing = new Map<string, string[]>();
  const notNeeding: string[] = [];
  const pfDriver: string[] = [];
  const refused: string[] = [];
  const plainNotVfio: string[] = [];
  for (const b of bdfs) {
    await requireDevice(sys, b);
    const d = await readDevice(sys, b);
    const pf = d.physfn ? await readDevice(sys, d.physfn) : null;
    const t = tokenSituation(d, pf, null);
    devices.push({ bdf: b, pf: pf?.bdf ?? (d.sriov ? b : null), token: d.sriov ? (d.driver === "vfio-pci" ? "the PF's userspace driver: opening it with vf_token= sets the PF's token while no VF is open" : t.reason) : t.reason });
    if (d.iommuGroup === null) {
      refused.push(`${b} has no IOMMU group: there is no /dev/vfio node to open (ENOENT); enable the IOMMU`);
      continue;
    }
    if ((d.sriov || d.physfn) && !isVfioDriver(d.driver)) {
      refused.push(`${b}${d.sriov ? " (a PF)" : ""} is ${d.driver ? `on the host driver ${d.driver}` : "not bound to any driver"}, not vfio-pci: ${c === "qemu" ? "QEMU" : "DPDK"} could not open it through VFIO (ENODEV); vfioctl bind ${b} vfio-pci`);
      continue;
    }
    if (!d.sriov && !d.physfn && !isVfioDriver(d.driver)) plainNotVfio.push(b);
    if (d.sriov) {
      // the consumer is the PF's userspace driver: its token option sets the PF's token
      if (d.driver === "vfio-pci") {
        pfDriver.push(b);
        needing.set(b, [...(needing.get(b) ?? []), b]);
      } else notNeeding.push(b);
      continue;
    }
    if (t.state !== "not-required" && d.physfn) needing.set(d.physfn, [...(needing.get(d.physfn) ?? []), b]);
    else notNeeding.push(b);
  }
  if (refused.length) {
    throw new VfioctlError("REFUSED", `${c}: ${refused.join("; ")}`, { subject: bdfs.join(" "), errno: refused.some((r) => r.includes("ENODEV")) ? "ENODEV" : "ENOENT", fix: "give only VFs (or PFs) bound to vfio-pci with an IOMMU group: vfioctl list" });
  }
  const tokenNeeded = needing.size > 0;
  const hk = await readHostKernel(sys);
  if (needing.size > 1) {
    const pfs = [...needing.keys()];
    if (c !== "qemu" || (opts.token !== undefined && !opts.perPf)) {
      throw new VfioctlError("BAD_INPUT", `devices: expected VFs whose PFs share one token, got VFs of ${pfs.length} vfio-pci PFs (${pfs.map((p) => `${p}: ${needing.get(p)!.join(", ")}`).join("; ")})`, {
        fix: c === "qemu" ? "run `vfioctl args qemu` once per PF, each with that PF's token" : `${c === "dpdk" ? "DPDK" : "SPDK (through DPDK)"} takes one token per process: run one process per PF, or have the PF drivers set the same token`,
      });
    }
  }
  const caveats: string[] = [];
  const haveValue = opts.token !== undefined;
  const tok = tokenNeeded ? (haveValue && opts.showToken ? opts.token! : TOKEN_PLACEHOLDER) : null;
  const file = opts.tokenFile;
  const several = needing.size > 1;
  const pfOf = (b: string) => [...needing.entries()].find(([, l]) => l.includes(b))?.[0] ?? null;
  /** the token (or placeholder) and file for the devices of PF `pf`: one per PF when there are several */
  const tokOf = (pf: string): string => {
    if (!several) return tok!;
    const v = opts.perPf?.[pf]?.token;
    return v !== undefined && opts.showToken ? v : pfPlaceholder(pf);
  };
  const fileOf = (pf: string): string | undefined => (several ? opts.perPf?.[pf]?.tokenFile : file);
  let argv: string[] = [];
  let byReference: string | undefined;
  let byReferenceEach: string[] | undefined;
  if (tokenNeeded && notNeeding.length) {
    caveats.push(`${notNeeding.join(", ")} need${notNeeding.length === 1 ? "s" : ""} no token (${c === "qemu" ? "give vf-token only on the devices that need it: passing one elsewhere fails EINVAL" : "DPDK passes its one token to every device and, where the kernel refuses it (EINVAL), retries without it"})`);
  }
  if (c === "dpdk" || c === "spdk") {
    const eal = [...bdfs.flatMap((b) => ["-a", b]), ...(tok ? [`--vfio-vf-token=${tok}`] : [])];
    if (c === "dpdk") {
      argv = eal;
      if (tok && file) byReference = `--vfio-vf-token="$(cat ${shq(file)})"`;
    } else {
      argv = [...bdfs.flatMap((b) => ["-A", b]), ...(tok ? [`--env-context=--vfio-vf-token=${tok}`] : [])];
      if (tok && file) byReference = `--env-context="--vfio-vf-token=$(cat ${shq(file)})"`;
      caveats.push("SPDK: -A (--pci-allowed) is the SPDK application option that limits which PCI devices it uses; the token reaches DPDK's EAL through spdk_env_opts.env_context (--env-context), so DPDK's rules apply: one token per process");
    }
    if (tok) {
      caveats.push("DPDK takes the token only on its command line, where other users can read it in /proc/PID/cmdline while the process runs; reading it from a 0600 file in the launching script keeps it out of scripts and shell history");
      const vf = bdfs.find((b) => !pfDriver.includes(b) && !notNeeding.includes(b));
      if (vf) caveats.push(dpdkTokenCaveat(vf));
    }
  } else {
    argv = bdfs.flatMap((b) => {
      const pf = pfOf(b);
      return ["-device", `vfio-pci,host=${b}${pf && tok ? `,vf-token=${tokOf(pf)}` : ""}`];
    });
    let each: string[] | undefined;
    if (tok && [...needing.keys()].some((pf) => fileOf(pf))) {
      // one piece per device, each reading its own PF's file (a placeholder where none is known)
      each = bdfs.map((b) => {
        const pf = pfOf(b);
        const f = pf ? fileOf(pf) : undefined;
        return `-device vfio-pci,host=${b}${pf ? `,vf-token=${f ? `"$(cat ${shq(f)})"` : tokOf(pf)}` : ""}`;
      });
      byReference = each.join(" ");
    }
    if (tok && opts.qmpSocket) {
      // bash's printf is a builtin: the token never becomes another process's argv
      const cmds = bdfs.map((b, i) => {
        const need = [...needing.values()].some((l) => l.includes(b));
        return `{"execute":"device_add","arguments":{"driver":"vfio-pci","id":"vfioctl-${b.replace(/[:.]/g, "-")}","host":"${b}"${need ? `,"vf-token":"%s"` : ""}}}`;
      });
      const srcOf = (pf: string) => {
        const f = fileOf(pf);
        const t = tokOf(pf);
        return f ? `"$(cat ${shq(f)})"` : t.startsWith("<VF-TOKEN") ? t : shq(t);
      };
      const srcs = bdfs.flatMap((b) => (pfOf(b) ? [srcOf(pfOf(b)!)] : []));
      byReference = `printf '{"execute":"qmp_capabilities"}${cmds.join("")}' ${srcs.join(" ")} | socat - UNIX-CONNECT:${shq(opts.qmpSocket)} | { e=0; while IFS= read -r l; do printf '%s\n' "$l"; [[ $l == *'"error"'* ]] && e=1; done; exit $e; }`;
      each = undefined;
      argv = [];
      caveats.unshift(`start QEMU with -qmp unix:${opts.qmpSocket},server=on,wait=off and without these -device options; the line below hot-adds the VFs over QMP, so the token never appears in QEMU's /proc/PID/cmdline (run it from bash: its printf is a builtin)`);
    }
    if (each) byReferenceEach = each;
    if (tok) {
      caveats.push("QEMU uses vf-token only on the VFIO group path; a device attached through iommufd (-object iommufd,id=… and iommufd=…) ignores it");
      caveats.push("when the token is wrong, QEMU's error hint suggests checking the device's group binding; the real cause is EACCES from the VF token check (vfioctl explain BDF)");
      caveats.push("to keep the token off QEMU's command line, hot-add the device over QMP: device_add driver=vfio-pci host=BDF vf-token=UUID");
    }
  }
  const cc = tokenNeeded ? cdevCaveat(c, hk) : null;
  if (cc) caveats.push(cc);
  if (pfDriver.length) {
    caveats.unshift(
      `${pfDriver.join(", ")} ${pfDriver.length === 1 ? "is a PF" : "are PFs"} on vfio-pci: ${c === "qemu" ? "QEMU" : "DPDK"} is then the PF's userspace driver, and opening the PF with this token sets it as the PF's VF token while no VF is open (the kernel takes it silently; every VF user must then be given the same token); while a VF is open the PF opens only with the current token (EACCES "Incorrect VF token" otherwise). Give the token vfioctl stores (vfioctl token set ${pfDriver[0]}) so \`vfioctl args\` for its VFs refers to the same one${c === "qemu" ? "" : "; DPDK creates VFs through sriov_numvfs, which needs vfio-pci's enable_sriov=Y"}`,
    );
  }
  if (plainNotVfio.length) caveats.push(`${plainNotVfio.join(", ")} ${plainNotVfio.length === 1 ? "is" : "are"} not on vfio-pci: bind first (vfioctl bind BDF vfio-pci), or the open fails`);
  if (several && tok) {
    const pfs = [...needing.keys()];
    if (tok === TOKEN_PLACEHOLDER || pfs.some((pf) => tokOf(pf).startsWith("<VF-TOKEN"))) caveats.unshift(`the VFs belong to ${pfs.length} PFs, each with its own token: substitute ${pfs.filter((pf) => tokOf(pf).startsWith("<VF-TOKEN")).map((pf) => `${pfPlaceholder(pf)} with ${pf}'s token`).join(" and ")}${opts.perPf ? "" : "; add --show-token with each PF's token in the store to print them in place"}`);
  } else if (tokenNeeded && tok === TOKEN_PLACEHOLDER) caveats.unshift(`substitute ${TOKEN_PLACEHOLDER} with the PF's token${file ? ` (from ${file}; or use the by-reference form)` : ""}; add --show-token to print it in place`);
  return { consumer: c, devices, tokenNeeded, argv, ...(byReference ? { byReference } : {}), ...(byReferenceEach ? { byReferenceEach } : {}), ...(pfDriver.length ? { pfDriver } : {}), caveats, kernel: hk };
}
