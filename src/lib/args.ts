/**
 * The exact command-line pieces each VF consumer needs, with its token (or a placeholder) and
 * each consumer's known caveats:
 *
 * - DPDK: `-a BDF` per device and one `--vfio-vf-token=UUID` per process, so every VF must
 *   belong to PFs sharing one token. When the open with the token fails, DPDK retries without
 *   it and logs only "Getting a vfio_dev_fd for BDF failed".
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
import { readDevice, requireDevice } from "./sysfs.js";
import { TOKEN_PLACEHOLDER } from "./token.js";
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

export async function consumerArgs(sys: Syscalls, consumer: string, bdfs: string[], opts: { token?: string; tokenFile?: string; showToken?: boolean; qmpSocket?: string }): Promise<ArgsResult> {
  if (!(CONSUMERS as string[]).includes(consumer)) throw new VfioctlError("BAD_INPUT", `consumer: expected one of ${CONSUMERS.join(", ")}, got ${JSON.stringify(consumer)}`);
  const c = consumer as Consumer;
  if (bdfs.length === 0) throw new VfioctlError("BAD_INPUT", "devices: expected at least one BDF, got none");
  for (const b of bdfs) checkBdf(b);
  const devices: ArgsResult["devices"] = [];
  const needing = new Map<string, string[]>();
  const notNeeding: string[] = [];
  for (const b of bdfs) {
    await requireDevice(sys, b);
    const d = await readDevice(sys, b);
    const pf = d.physfn ? await readDevice(sys, d.physfn) : null;
    const t = tokenSituation(d, pf, null);
    devices.push({ bdf: b, pf: pf?.bdf ?? null, token: t.reason });
    if (t.state !== "not-required" && d.physfn) needing.set(d.physfn, [...(needing.get(d.physfn) ?? []), b]);
    else notNeeding.push(b);
    if (d.sriov) throw new VfioctlError("BAD_INPUT", `${b} is a PF: \`vfioctl args\` prints pieces for VF consumers; the PF's own userspace driver sets the token (vfioctl token set ${b})`, { subject: b });
  }
  const tokenNeeded = needing.size > 0;
  const hk = await readHostKernel(sys);
  if (needing.size > 1) {
    const pfs = [...needing.keys()];
    if (c !== "qemu" || opts.token !== undefined) {
      throw new VfioctlError("BAD_INPUT", `devices: expected VFs whose PFs share one token, got VFs of ${pfs.length} vfio-pci PFs (${pfs.map((p) => `${p}: ${needing.get(p)!.join(", ")}`).join("; ")})`, {
        fix: c === "qemu" ? "run `vfioctl args qemu` once per PF, each with that PF's token" : `${c === "dpdk" ? "DPDK" : "SPDK (through DPDK)"} takes one token per process: run one process per PF, or have the PF drivers set the same token`,
      });
    }
  }
  const caveats: string[] = [];
  const haveValue = opts.token !== undefined;
  const tok = tokenNeeded ? (haveValue && opts.showToken ? opts.token! : TOKEN_PLACEHOLDER) : null;
  const file = opts.tokenFile;
  let argv: string[] = [];
  let byReference: string | undefined;
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
      caveats.push('if the token is wrong or missing, DPDK retries the open without it and logs only "Getting a vfio_dev_fd for BDF failed"; the reason ("VF token required" / "Incorrect VF token") is a rate-limited line in dmesg. Check first: vfioctl token verify BDF --token-file F');
    }
  } else {
    argv = bdfs.flatMap((b) => {
      const need = [...needing.values()].some((l) => l.includes(b));
      return ["-device", `vfio-pci,host=${b}${need && tok ? `,vf-token=${tok}` : ""}`];
    });
    if (tok && file) byReference = `-device vfio-pci,host=${bdfs[0]},vf-token="$(cat ${shq(file)})"`;
    if (tok && opts.qmpSocket) {
      // bash's printf is a builtin: the token never becomes another process's argv
      const cmds = bdfs.map((b, i) => {
        const need = [...needing.values()].some((l) => l.includes(b));
        return `{"execute":"device_add","arguments":{"driver":"vfio-pci","id":"vf${i}","host":"${b}"${need ? `,"vf-token":"%s"` : ""}}}`;
      });
      const n = bdfs.filter((b) => [...needing.values()].some((l) => l.includes(b))).length;
      const src = file ? `"$(cat ${shq(file)})"` : tok === TOKEN_PLACEHOLDER ? TOKEN_PLACEHOLDER : shq(tok);
      byReference = `printf '{"execute":"qmp_capabilities"}${cmds.join("")}' ${Array(n).fill(src).join(" ")} | socat - UNIX-CONNECT:${shq(opts.qmpSocket)}`;
      argv = [];
      caveats.unshift(`start QEMU with -qmp unix:${opts.qmpSocket},server=on,wait=off and without these -device options; the line below hot-adds the VFs over QMP, so the token never appears in QEMU's /proc/PID/cmdline (run it from bash: its printf is a builtin)`);
    }
    if (tok) {
      caveats.push("QEMU uses vf-token only on the VFIO group path; a device attached through iommufd (-object iommufd,id=… and iommufd=…) ignores it");
      caveats.push("when the token is wrong, QEMU's error hint suggests checking the device's group binding; the real cause is EACCES from the VF token check (vfioctl explain BDF)");
      caveats.push("to keep the token off QEMU's command line, hot-add the device over QMP: device_add driver=vfio-pci host=BDF vf-token=UUID");
    }
  }
  const cc = tokenNeeded ? cdevCaveat(c, hk) : null;
  if (cc) caveats.push(cc);
  if (tokenNeeded && tok === TOKEN_PLACEHOLDER) caveats.unshift(`substitute ${TOKEN_PLACEHOLDER} with the PF's token${file ? ` (from ${file}; or use the by-reference form)` : ""}; add --show-token to print it in place`);
  return { consumer: c, devices, tokenNeeded, argv, ...(byReference ? { byReference } : {}), caveats, kernel: hk };
}
