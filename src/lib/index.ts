/**
 * The vfioctl library: the same operations as the `vfioctl` command, typed, over any
 * {@link Syscalls} (a real host or the kernel model).
 *
 * @example
 * ```ts
 * import { bootKernel, inventory, explainOpen } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * const inv = await inventory(sys);
 * const x = await explainOpen(sys, inv.pfs[0]!.bdf);
 * ```
 */
export * from "./errors.js";
export * from "./bdf.js";
export * from "./sysfs.js";
export * from "./holders.js";
export * from "./tokenlog.js";
export * from "./dpenv.js";
export * from "./inventory.js";
export * from "./kernel.js";
export * from "./token.js";
export * from "./vfio.js";
export * from "./tokenops.js";
export * from "./kmsg.js";
export * from "./bind.js";
export * from "./sriov.js";
export * from "./explain.js";
export * from "./names.js";
export * from "./audit.js";
export * from "./args.js";
export * from "./hostuse.js";
export * from "./resolve.js";
export * from "./steps.js";
export * from "./pciids.js";
