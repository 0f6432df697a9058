/**
 * The lab's kernels: what each one is, which model profile it is compared with, and which
 * scenario expectations (the per-profile values of scenarios/*.yaml, keyed "6.1" / "6.12") apply.
 *
 * `$CACHE/kernels.json` (written by lab/prepare.sh) lists the kernels that are ready, as
 * `[{name, version, dir}]` (version = the guest's uname -r); everything else about a kernel is
 * here, by name, so the file's format stays what it was.
 *
 * The model is told each kernel's version AND configuration: Debian's kernels have neither
 * CONFIG_IOMMUFD nor CONFIG_VFIO_DEVICE_CDEV, and have NUMA, PM_SLEEP, PM_ADVANCED_DEBUG, PCIEAER
 * and X86_PAT (files of a device directory: lab/sysfs-attrs.ts); the lab's own builds
 * (lab/build-kernel.sh, lab/kernel.config: tinyconfig plus a fragment) have the first two and
 * none of the others.
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import type { KernelConfig } from "../src/kernel/profile.js";

export interface LabKernel {
  /** the lab's name (lab/boot.sh KERNEL, $CACHE/trixie/lab/<name>/) */
  name: string;
  /** what it is, honestly */
  label: string;
  /** the model's version string for this kernel (`--profile`), given the version the guest reports */
  model(version: string | undefined): string;
  /** the build configuration the model is told */
  config: KernelConfig;
  /** scenario expectations to apply (scenarios are written per "6.1" / "6.12") */
  family: "6.1" | "6.12";
  /** built from source by the lab (lab/build-kernel.sh) */
  built: boolean;
}

const NO_CDEV: KernelConfig = { IOMMUFD: false, VFIO_DEVICE_CDEV: false, NUMA: true, PM_SLEEP: true, PM_ADVANCED_DEBUG: true, PCIEAER: true, X86_PAT: true };
const CDEV: KernelConfig = { IOMMUFD: true, VFIO_DEVICE_CDEV: true, NUMA: false, PM_SLEEP: false, PM_ADVANCED_DEBUG: false, PCIEAER: false, X86_PAT: false };

export const LAB_KERNELS: readonly LabKernel[] = [
  { name: "6.1", label: "Debian 12 linux-image-amd64 (6.1.y)", model: () => "6.1", config: NO_CDEV, family: "6.1", built: false },
  { name: "6.12", label: "Debian 13 linux-image-amd64 (6.12.y)", model: () => "6.12", config: NO_CDEV, family: "6.12", built: false },
  { name: "7.3", label: "Debian 13 backports linux-image-amd64 (7.3.y), group path only", model: (v) => v ?? "7.3.4+deb13-amd64", config: NO_CDEV, family: "6.12", built: false },
  {
    name: "6.12-cdev",
    label: "Debian 13 linux-source-6.12, lab config with IOMMUFD and VFIO_DEVICE_CDEV: the bypass row (no token check at BIND_IOMMUFD)",
    model: (v) => v ?? "6.12.117-lab",
    config: CDEV,
    family: "6.12",
    built: true,
  },
  {
    name: "7.3-cdev",
    label: "Debian 13 backports linux-source-7.3, lab config with IOMMUFD and VFIO_DEVICE_CDEV: the fixed row (token checked, passable at bind)",
    model: (v) => v ?? "7.3.4-lab",
    config: CDEV,
    family: "6.12",
    built: true,
  },
  {
    name: "7.3-e2big",
    label: "linux-source-7.3 with 2f03f21fe751 reverted, lab config with cdev: stands in for the E2BIG row (6.17.x, 6.18.0-6.18.2)",
    // 7.3.4 with the table entry of 2f03f21fe751 reverted (versions.ts parseKernelSpec): every
    // other flag is 7.3.4's, the generic driver_override (7.0) included
    model: (v) => `${v ?? "7.3.4-lab-e2big"} -bindIommufdFullStruct`,
    config: CDEV,
    family: "6.12",
    built: true,
  },
];

export const labKernel = (name: string): LabKernel => {
  const k = LAB_KERNELS.find((x) => x.name === name);
  if (!k) throw new Error(`unknown lab kernel ${JSON.stringify(name)} (known: ${LAB_KERNELS.map((x) => x.name).join(", ")})`);
  return k;
};

export interface ReadyKernel {
  name: string;
  version: string;
  dir: string;
}

/** The kernels prepare.sh made ready ($CACHE/kernels.json); the two Debian kernels when it is absent. */
export function readyKernels(cache: string): ReadyKernel[] {
  const f = path.join(cache, "kernels.json");
  if (!existsSync(f)) return [];
  try {
    return (JSON.parse(readFileSync(f, "utf8")) as ReadyKernel[]).filter((k) => LAB_KERNELS.some((x) => x.name === k.name));
  } catch {
    return [];
  }
}

/** The model's profile options for a lab kernel: version string and configuration. */
export function modelProfileOf(name: string, cache: string): { profile: string; config: KernelConfig } {
  const k = labKernel(name);
  const v = readyKernels(cache).find((x) => x.name === name)?.version;
  return { profile: k.model(v), config: k.config };
}

/** Whether a kernel has the vfio cdev path (the cdev scenarios and iommufd selftest variants apply). */
export const hasCdev = (name: string): boolean => labKernel(name).config.VFIO_DEVICE_CDEV;
