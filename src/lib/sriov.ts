/**
 * Changing a PF's VF count through `sriov_numvfs` with a preflight of every refusal in
 * kernel-spec §4 (ERANGE, EBUSY, the three ENOENTs including vfio-pci's silent
 * `enable_sriov=N`), and a clear report when Linux blocks because a VF is held open.
 *
 * @example
 * ```ts
 * import { bootKernel, setNumVfs } from "vfioctl";
 * const sys = (await bootKernel()).spawn("sh");
 * await setNumVfs(sys, "0000:01:00.0", 4);                    // 0 → 4
 * await setNumVfs(sys, "0000:01:00.0", 2, { viaZero: true }); // 4 → 0 → 2
 * ```
 */
import { isErrno } from "../sys/errno.js";
import { readAttr, withTimeout, writeText, TimeoutError, type WaitProgress } from "../sys/fsutil.js";
import type { Syscalls } from "../sys/syscalls.js";
import { checkBdf } from "./bdf.js";
import { VfioctlError } from "./errors.js";
import { holdersOf, placeText, scanVfioHolders, unknownReason } from "./holders.js";
import { refuseIfHostUses } from "./hostuse.js";
import { watchKmsg } from "./kmsg.js";
import { refuseOnCopiedTree, stepText, type OpStep } from "./steps.js";
import { devPath, hasSriovConfigure, readDevice, readVfioPciModule, requireDevice } from "./sysfs.js";

export interface SriovOptions {
  /** allow a non-zero → different non-zero change by writing 0 first (destroys every VF) */
  viaZero?: boolean;
  timeoutMs?: number;
  /** called about every second while a write Linux blocks is waited for, with who holds the VFs */
  onWait?: (w: WaitProgress & { holders: string }) => void;
  /** remove VFs even when the host uses them (interfaces up, addresses, mounts …) */
  force?: boolean;
  /** work out the writes and return them without making any */
  dryRun?: boolean;
}

export interface SriovResult {
  pf: string;
  from: number;
  to: number;
  changed: boolean;
  vfs: string[];
  notes: string[];
  log: string[];
  /** the writes made (or, with dryRun, that would be made), in order, as text */
  plan: string[];
  dryRun?: boolean;
}

/** Parse "off" or a count; expected-versus-found against the PF's sriov_totalvfs. */
export function parseCount(s: string, total: number, pf?: string): number {
  if (s === "off") return 0;
  if (!/^\d{1,5}$/.test(s)) throw new VfioctlError("BAD_INPUT", `sriov_numvfs: expected 0..${total} or off, got ${JSON.stringify(s)}`);
  const n = Number(s);
  if (n > total) throw rangeError(pf, n, total);
  return n;
}

/** What Linux answers a write above sriov_totalvfs (iov.c sriov_numvfs_store: -ERANGE), said the way strerror says it. */
export function rangeError(pf: string | undefined, n: number, total: number): VfioctlError {
  return new VfioctlError("KERNEL", `${pf ? `${pf}: ` : ""}sriov_numvfs ${n}: ERANGE (Numerical result out of range): the device supports at most ${total} VFs (sriov_totalvfs)`, {
    ...(pf ? { subject: pf } : {}),
    errno: "ERANGE",
    fix: `ask for 0..${total}; nothing was changed`,
  });
}

/** Set the PF's VF count (`n`, or "off" for 0). Refusals change nothing. */
export async function setNumVfs(sys: Syscalls, pf: string, count: number | string, opts: SriovOptions = {}): Promise<SriovResult> {
  checkBdf(pf, "pf");
  const timeoutMs = opts.timeoutMs ?? 5000;
  await requireDevice(sys, pf);
  const d = await readDevice(sys, pf, { numvfsTimeoutMs: timeoutMs });
  if (!d.sriov) {
    throw new VfioctlError("REFUSED", `${pf}: no sriov_numvfs (ENOENT): ${d.physfn ? `it is a VF of ${d.physfn}` : "not an SR-IOV PF"}`, { subject: pf, errno: "ENOENT", fix: d.physfn ? `vfioctl sriov ${d.physfn} N` : "see `vfioctl list` for the PFs of this host" });
  }
  const total = d.sriov.totalVfs;
  const n = parseCount(String(count), total, pf);
  const cur = d.sriov.numVfs;
  if (cur === null) {
    throw new VfioctlError("BLOCKED", `${pf}: reading sriov_numvfs stayed blocked for ${timeoutMs} ms: another write to it (or a PF unbind) is waiting for a VF to be released`, { subject: pf, fix: "see `vfioctl audit` for who holds the VFs" });
  }
  const notes: string[] = [];
  if (cur === n) return { pf, from: cur, to: n, changed: false, vfs: d.sriov.vfs, notes: [], log: [], plan: [] };
  if (d.driver === null) {
    throw new VfioctlError("REFUSED", `${pf}: writing sriov_numvfs would fail ENOENT (no driver bound; cannot configure SR-IOV)`, { subject: pf, errno: "ENOENT", fix: `bind a PF driver: vfioctl bind ${pf} <native driver | pci-pf-stub | vfio-pci>` });
  }
  const cfg = hasSriovConfigure(d.driver);
  if (cfg === false) {
    throw new VfioctlError("REFUSED", `${pf}: writing sriov_numvfs would fail ENOENT (${d.driver} has no sriov_configure: "driver does not support SR-IOV configuration via sysfs")`, { subject: pf, errno: "ENOENT", fix: `bind pci-pf-stub (VFs without tokens) or vfio-pci with enable_sriov=Y (a userspace PF driver owns the token)` });
  }
  if (cfg === undefined) notes.push(`note: whether ${d.driver} can configure SR-IOV is not known here; the kernel will say (ENOENT if it cannot)`);
  if (d.driver === "vfio-pci") {
    const mod = await readVfioPciModule(sys);
    if (mod.enableSriov !== true) {
      throw new VfioctlError("REFUSED", `${pf}: writing sriov_numvfs would fail ENOENT, with no kernel log line: vfio-pci's enable_sriov is ${mod.enableSriov === null ? "absent" : "N"}`, {
        subject: pf,
        errno: "ENOENT",
        fix: "echo Y > /sys/module/vfio_pci/parameters/enable_sriov (only with a userspace PF driver that supports SR-IOV); VFs that exist can still be removed by unbinding the PF",
      });
    }
    // the PF's userspace driver may be running (DPDK as PF driver creating VFs under it): then the
    // token is the one it set, and vfioctl cannot open the PF to set another (its group is open)
    const pfHeld = n > 0 ? holdersOf((await scanVfioHolders(sys)).holders, d.iommuGroup) : [];
    if (pfHeld.length) {
      const who = [...new Map(pfHeld.map((h) => [h.pid, `pid ${h.pid} (${h.comm})${placeText(h.where)}`])).values()].join(", ");
      notes.push(`note: VFs of a vfio-pci PF are token-protected: ${pf} is open in ${who}, its userspace driver, so they open only with the token it set (DPDK --vfio-vf-token, QEMU vf-token, when it was given one); vfioctl token set ${pf} cannot open the PF while it runs${pfHeld.some((h) => h.kind === "group") ? " (EBUSY: the group is open)" : ""}`);
    } else notes.push(`note: VFs of a vfio-pci PF are token-protected: they open only with the token the PF's userspace driver sets (vfioctl token set ${pf})`);
  }
  if (cur !== 0 && n !== 0 && !opts.viaZero) {
    throw new VfioctlError("REFUSED", `${pf}: changing ${cur} VFs to ${n} would fail EBUSY ("${cur} VFs already enabled. Disable before enabling ${n} VFs")`, {
      subject: pf,
      errno: "EBUSY",
      fix: `add --via-zero to write 0 first: that destroys all ${cur} VFs (${d.sriov.vfs.join(", ")}) and their users lose them`,
    });
  }
  const path = devPath(pf, "sriov_numvfs");
  if (cur !== 0) await refuseIfHostUses(sys, pf, d.sriov.vfs, `removing its ${cur} VFs`, "remove them", opts.force);
  const steps: OpStep[] = [];
  if (cur !== 0 && n !== 0) steps.push({ op: "write", path, data: "0", note: `destroys the ${cur} VFs` });
  steps.push({ op: "write", path, data: String(n), note: n === 0 ? `destroys the ${cur} VFs` : `creates ${n} VFs` });
  const plan = steps.map(stepText);
  if (opts.dryRun) return { pf, from: cur, to: n, changed: false, vfs: d.sriov.vfs, notes, log: [], plan, dryRun: true };
  refuseOnCopiedTree(sys, "sriov", steps);
  const kmsg = await watchKmsg(sys);
  // who holds the VFs, looked up once the write has waited a second (only with a progress callback)
  let holdersText: Promise<string> | undefined;
  const heldText = async (): Promise<string> => {
    const scan = await scanVfioHolders(sys);
    const vfs = await Promise.all(d.sriov!.vfs.map((b) => readDevice(sys, b, { numvfsTimeoutMs: 200 }).catch(() => null)));
    const held = vfs.flatMap((v) => (v ? holdersOf(scan.holders, v.iommuGroup).map((h) => `${v.bdf} held by pid ${h.pid} (${h.comm})`) : []));
    return held.join("; ") || unknownReason(scan) || "no holder visible in /proc";
  };
  const onWait = opts.onWait
    ? (w: WaitProgress) => {
        holdersText ??= heldText();
        void holdersText.then((h) => opts.onWait!({ ...w, holders: h }));
      }
    : undefined;
  const step = async (v: number) => {
    try {
      await withTimeout(writeText(sys, path, String(v)), timeoutMs, `write ${path}`, onWait);
    } catch (e) {
      const log = await kmsg.drain();
      if (e instanceof TimeoutError) {
        const scan = await scanVfioHolders(sys);
        const vfs = await Promise.all(d.sriov!.vfs.map((b) => readDevice(sys, b).catch(() => null)));
        const held = vfs.flatMap((v) => (v ? holdersOf(scan.holders, v.iommuGroup).map((h) => ({ vf: v.bdf, group: v.iommuGroup, pid: h.pid, comm: h.comm, fd: h.fd, target: h.target, where: placeText(h.where).trim() })) : []));
        const who = held.length
          ? held.map((h) => `${h.vf} (/dev/vfio/${h.group}) held by pid ${h.pid} (${h.comm})${h.where ? ` ${h.where}` : ""}`).join("; ")
          : unknownReason(scan) || "no holder visible in /proc";
        throw new VfioctlError("BLOCKED", `write ${v} to ${path}: still blocked after ${timeoutMs} ms: Linux waits for open VFs to be released: ${who}. The write stays pending in the kernel and completes when they close`, {
          subject: pf,
          fix: "stop those processes (or have them honour the vfio device request); then the VFs go away",
          data: { held, log },
        });
      }
      if (isErrno(e)) throw new VfioctlError("KERNEL", `${e.message}${log.length ? `; kernel: ${log.join("; ")}` : ""}`, { subject: pf, errno: e.code, data: { log } });
      throw e;
    }
  };
  if (cur !== 0 && n !== 0) await step(0);
  await step(n);
  const after = Number(await readAttr(sys, path));
  const log = await kmsg.drain();
  const vfs = (await readDevice(sys, pf)).sriov?.vfs ?? [];
  if (after !== n) notes.push(`warning: sriov_numvfs reads ${after} after writing ${n} (the driver enabled fewer VFs)`);
  return { pf, from: cur, to: after, changed: true, vfs, notes, log, plan };
}

