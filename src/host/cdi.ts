/**
 * A Container Device Interface spec (CDI, cncf-tags/container-device-interface SPEC.md; declared
 * as 0.8.0 by default, see {@link CDI_DEFAULT}) for the VFs of SR-IOV PFs, so `podman run --device vfioctl/vf=nic0-vf1` (or a CDI-enabled
 * containerd / CRI-O) gives a container one VF:
 *
 * - its device nodes: `/dev/vfio/vfio` and its group node `/dev/vfio/<N>` (the group path), or
 *   `/dev/iommu` and its cdev `/dev/vfio/devices/vfio<N>` (the cdev path) — never both;
 * - its address in the environment (`VFIOCTL_VF_<DEVICE>=<BDF>`), and where its token is;
 * - its PF's VF token as a read-only bind mount of the token store's file at
 *   `/run/vfioctl/tokens/<pf>` — never the token itself in the spec or the environment (both end
 *   up in the container's OCI config, readable by whoever may inspect containers).
 *
 * Device numbers are left to the runtime (it stats the host node when the container is created):
 * group numbers and BDFs are facts of one boot, so the spec belongs in the dynamic directory
 * (/var/run/cdi) and is written again after a reboot or a VF count change.
 *
 * @example
 * ```ts
 * import { bootKernel, buildCdiSpec } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * const r = await buildCdiSpec(sys, [{ name: "acc100", bdf: "0000:af:00.0", tokenFile: "/etc/vfioctl/tokens/acc100/current" }]);
 * r.spec.devices.map((d) => d.name); // ["acc100-vf0", "acc100-vf1"]
 * ```
 */
import type { Syscalls } from "../sys/syscalls.js";
import { checkBdf } from "../lib/bdf.js";
import { VfioctlError } from "../lib/errors.js";
import { tokenSituation } from "../lib/inventory.js";
import { isVfioDriver, readDevice, requireDevice, type DeviceFacts } from "../lib/sysfs.js";

/** The CDI versions a spec may declare (specs-go/version.go), oldest first. */
export const CDI_VERSIONS = ["0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0"] as const;
export type CdiVersion = (typeof CDI_VERSIONS)[number];
/** The newest version of the CDI specification. */
export const CDI_CURRENT: CdiVersion = "1.1.0";
/**
 * The version `vfioctl cdi` declares unless told: the newest a real podman on Debian accepts.
 * Debian 13's podman 5.4.2 takes specs up to 0.8.0 and skips 1.0.0 and 1.1.0 as "unresolvable
 * CDI devices" (its CDI library predates 1.x); Debian 12's podman 4.3.1 takes up to 0.5.0
 * (test/cdi-podman.test.ts runs both). The fields vfioctl writes need 0.3.0, or 0.7.0 with
 * additionalGids, so nothing is lost by declaring 0.8.0.
 */
export const CDI_DEFAULT: CdiVersion = "0.8.0";
export const DEFAULT_CDI_KIND = "vfioctl/vf";
/** Where CDI runtimes look: /etc/cdi (static) and /var/run/cdi (dynamic, rewritten each boot). */
export const CDI_DIRS = ["/etc/cdi", "/var/run/cdi"] as const;
export const DEFAULT_CDI_DIR = "/var/run/cdi";
/** Where a VF's PF token file appears in the container. */
export const CONTAINER_TOKEN_DIR = "/run/vfioctl/tokens";

export type CdiAccess = "group" | "cdev" | "auto";

export interface CdiDeviceNode {
  path: string;
  hostPath?: string;
  type?: string;
  permissions?: string;
}
export interface CdiMount {
  hostPath: string;
  containerPath: string;
  type?: string;
  options?: string[];
}
export interface CdiContainerEdits {
  env?: string[];
  deviceNodes?: CdiDeviceNode[];
  mounts?: CdiMount[];
  additionalGids?: number[];
}
export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  devices: { name: string; containerEdits: CdiContainerEdits }[];
}

export interface CdiPfInput {
  /** the PF's name (the host config's, or pci-DDDD-BB-SS.F): device names and the token's container path */
  name: string;
  bdf: string;
  /** the host path of the file holding the PF's current token (the store's `current`, or the config's file); null: none to mount */
  tokenFile: string | null;
  /** why there is no token file (shown when a VF needs a token) */
  noTokenWhy?: string;
  /** the group allowed to read the token file (token readers): added to the container's groups (CDI 0.7.0) */
  readersGid?: number | null;
}

export interface CdiDeviceInfo {
  name: string;
  bdf: string;
  pf: string;
  access: "group" | "cdev";
  nodes: string[];
  /** the token file mounted (host path), or null */
  tokenFile: string | null;
  tokenPath: string | null;
}

export interface CdiResult {
  spec: CdiSpec;
  devices: CdiDeviceInfo[];
  /** VFs left out, with the reason */
  skipped: { bdf: string; pf: string; reason: string }[];
  /** the lowest cdiVersion whose fields this spec uses (SPEC.md "minimum required version") */
  minVersion: CdiVersion;
  notes: string[];
}

export interface CdiOptions {
  kind?: string;
  access?: CdiAccess;
  cdiVersion?: string;
}

const KIND_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*[A-Za-z0-9]\/[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const envName = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, "_");
const vIndex = (v: string) => CDI_VERSIONS.indexOf(v as CdiVersion);

/** Check a CDI kind ("vendor/class": vendor a DNS subdomain, class a name). */
export function checkCdiKind(kind: string): string {
  if (!KIND_RE.test(kind) || kind.length > 253 + 64 || kind.split("/")[1]!.length > 63) {
    throw new VfioctlError("BAD_INPUT", `--kind: expected vendor/class like "vfioctl/vf" or "example.com/vf" (letters, digits, - _ .), got ${JSON.stringify(kind)}`);
  }
  return kind;
}

async function cdevOf(sys: Syscalls, bdf: string): Promise<string | null> {
  let names: string[];
  try {
    names = (await sys.readdir(`/sys/bus/pci/devices/${bdf}/vfio-dev`)).filter((n) => /^vfio\d+$/.test(n));
  } catch {
    return null;
  }
  for (const n of names) {
    try {
      await sys.lstat(`/dev/vfio/devices/${n}`);
      await sys.lstat("/dev/iommu");
      return `/dev/vfio/devices/${n}`;
    } catch {
      /* no node: the kernel has no vfio cdev */
    }
  }
  return null;
}

/** Build the CDI spec for the VFs of `pfs`. Read-only: it reads sysfs and /dev, never opens a device. */
export async function buildCdiSpec(sys: Syscalls, pfs: CdiPfInput[], opts: CdiOptions = {}): Promise<CdiResult> {
  const kind = checkCdiKind(opts.kind ?? DEFAULT_CDI_KIND);
  const access = opts.access ?? "group";
  if (!["group", "cdev", "auto"].includes(access)) throw new VfioctlError("BAD_INPUT", `--access: expected group, cdev or auto, got ${JSON.stringify(access)}`);
  const version = opts.cdiVersion ?? CDI_DEFAULT;
  if (vIndex(version) < 0) throw new VfioctlError("BAD_INPUT", `--cdi-version: expected one of ${CDI_VERSIONS.join(", ")}, got ${JSON.stringify(version)}`);
  if (pfs.length === 0) throw new VfioctlError("BAD_INPUT", "cdi: expected at least one PF (a host config with pfs, or PF addresses), got none");
  const devices: CdiResult["devices"] = [];
  const skipped: CdiResult["skipped"] = [];
  const notes: string[] = [];
  const specDevices: CdiSpec["devices"] = [];
  let min: CdiVersion = "0.3.0";
  const seen = new Set<string>();
  for (const p of pfs) {
    checkBdf(p.bdf, "pf");
    if (seen.has(p.bdf)) continue;
    seen.add(p.bdf);
    await requireDevice(sys, p.bdf);
    const pf = await readDevice(sys, p.bdf);
    if (!pf.sriov) throw new VfioctlError("BAD_INPUT", `${p.bdf}: not an SR-IOV PF (no sriov_totalvfs)${pf.physfn ? `: it is a VF of ${pf.physfn}` : ""}`, { subject: p.bdf, fix: pf.physfn ? `vfioctl cdi ${pf.physfn}` : "name an SR-IOV PF" });
    if (pf.sriov.vfs.length === 0) notes.push(`${p.bdf} (${p.name}) has no VFs now: nothing to give out (vfioctl apply, or vfioctl sriov ${p.bdf} N)`);
    const vfs: DeviceFacts[] = await Promise.all(pf.sriov.vfs.map((v) => readDevice(sys, v)));
    for (const vf of vfs) {
      const name = `${p.name}-vf${vf.vfIndex ?? vfs.indexOf(vf)}`;
      if (!isVfioDriver(vf.driver)) {
        skipped.push({ bdf: vf.bdf, pf: p.bdf, reason: `${vf.bdf} is ${vf.driver ? `on the host driver ${vf.driver}` : "not bound to any driver"}, not vfio-pci: a container could not open it through vfio (vfioctl bind ${vf.bdf} vfio-pci)` });
        continue;
      }
      if (vf.iommuGroup === null) {
        skipped.push({ bdf: vf.bdf, pf: p.bdf, reason: `${vf.bdf} has no IOMMU group: there is no /dev/vfio node to give a container (enable the IOMMU)` });
        continue;
      }
      const cdev = access === "group" ? null : await cdevOf(sys, vf.bdf);
      if (access === "cdev" && !cdev) {
        skipped.push({ bdf: vf.bdf, pf: p.bdf, reason: `${vf.bdf} has no vfio cdev (/dev/vfio/devices/vfio<N> and /dev/iommu): this kernel has only the group path (use --access group)` });
        continue;
      }
      const nodes = cdev ? ["/dev/iommu", cdev] : ["/dev/vfio/vfio", `/dev/vfio/${vf.iommuGroup}`];
      const edits: CdiContainerEdits = { env: [`VFIOCTL_VF_${envName(name)}=${vf.bdf}`], deviceNodes: nodes.map((path) => ({ path, type: "c", permissions: "rw" })) };
      const t = tokenSituation(vf, pf, null);
      let tokenPath: string | null = null;
      let tokenFile: string | null = null;
      if (t.state !== "not-required") {
        if (p.tokenFile) {
          tokenFile = p.tokenFile;
          tokenPath = `${CONTAINER_TOKEN_DIR}/${p.name}`;
          edits.mounts = [{ hostPath: p.tokenFile, containerPath: tokenPath, options: ["ro", "nosuid", "nodev", "noexec", "bind"] }];
          edits.env!.push(`VFIOCTL_VF_TOKEN_FILE_${envName(name)}=${tokenPath}`);
          if (p.readersGid !== null && p.readersGid !== undefined && p.readersGid !== 0) {
            if (vIndex(version) >= vIndex("0.7.0")) {
              edits.additionalGids = [p.readersGid];
              if (vIndex(min) < vIndex("0.7.0")) min = "0.7.0";
            } else notes.push(`${name}: the token file is readable by gid ${p.readersGid}; CDI ${version} has no additionalGids (0.7.0): a container user other than root must be given that group another way`);
          }
        } else if (t.state === "required") {
          notes.push(`${name} (${vf.bdf}) needs PF ${p.bdf}'s VF token and there is no token file to mount: ${p.noTokenWhy ?? "none is stored"}; the container must get the token some other way`);
        }
      }
      specDevices.push({ name, containerEdits: edits });
      devices.push({ name, bdf: vf.bdf, pf: p.bdf, access: cdev ? "cdev" : "group", nodes, tokenFile, tokenPath });
    }
  }
  if (specDevices.length === 0) {
    throw new VfioctlError("REFUSED", `cdi: no VF can be given to a container${skipped.length ? `: ${skipped.map((s) => s.reason).join("; ")}` : ": the PFs have no VFs"}`, { fix: "create VFs on vfio-pci (vfioctl apply), then run vfioctl cdi again", data: { skipped } });
  }
  if (vIndex(version) < vIndex(min)) throw new VfioctlError("BAD_INPUT", `--cdi-version: this spec uses fields of CDI ${min} (additionalGids for the token's reader group), got ${version}`);
  if (devices.some((d) => d.access === "cdev")) notes.push("cdev path: QEMU ignores vf-token on the iommufd path, and whether the kernel checks the VF token on VFIO_DEVICE_BIND_IOMMUFD depends on its version (vfioctl explain BDF)");
  if (devices.some((d) => d.tokenFile)) notes.push(`token files are bind-mounted read-only at ${CONTAINER_TOKEN_DIR}/<pf>; a bind mount keeps the file it was made from, so a container started before \`vfioctl token rotate\` keeps reading the old token (the one its VFs were opened with), and later containers get the new one`);
  return { spec: { cdiVersion: version, kind, devices: specDevices }, devices, skipped, minVersion: min, notes };
}

/** The spec file name for a kind: "vfioctl/vf" → "vfioctl-vf.json". */
export const cdiFileName = (kind: string): string => `${kind.replace(/[^A-Za-z0-9_.-]/g, "-")}.json`;
