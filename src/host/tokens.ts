/**
 * The VF token's lifecycle on a host: what the kernel holds compared with the store, setting a
 * token with store-before-set ordering, rotation while VFs stay open, and who opened a VF before
 * the last rotation.
 *
 * Ordering (the invariant every path here keeps): a new token is written to the store's
 * `pending` slot and fsynced; only then is it given to the kernel; only after the kernel took
 * it does it become `current` (the old one moving to `previous`). A failure at any point leaves
 * the kernel's token stored: either still `current`, or in `pending` when the kernel may have
 * taken it; the next `status` or `apply` resolves a leftover `pending` by opening a free VF.
 */
import { newToken } from "../lib/token.js";
import { setToken, verifyToken } from "../lib/tokenops.js";
import { VfioctlError } from "../lib/errors.js";
import { readText } from "../sys/fsutil.js";
import type { Syscalls } from "../sys/syscalls.js";
import type { HostFiles } from "../sys/hostfs.js";
import type { PfConfig } from "./config.js";
import type { HostState, PfState } from "./observe.js";
import { groupId, readTokenFileSafe, TokenStore } from "./store.js";
import type { TokenFacts } from "./plan.js";

/** The token a configured PF should have (store or file), or null when none is there yet. */
export function wantedToken(files: HostFiles, store: TokenStore, pc: PfConfig): string | null {
  if (pc.token.policy === "generate") return store.read(pc.name, "current");
  if (pc.token.policy === "file") return readTokenFileSafe(files.input(pc.token.file), files.show(pc.token.file), { what: `${pc.field}.token.file` });
  return null;
}

/** A VF of this PF that is on vfio-pci and not held: the one place a token can be checked without changing it. */
function freeVf(st: PfState): string | null {
  for (const v of st.vfs) if (v.driver === "vfio-pci" && !st.holders.has(v.bdf) && v.vfioNodeExists) return v.bdf;
  return null;
}

/** Check a token against the kernel without changing it: "match", "mismatch", or null (no free VF). */
export async function checkKernelToken(sys: Syscalls, st: PfState, token: string): Promise<"match" | "mismatch" | null> {
  if (!st.pf || st.pf.driver !== "vfio-pci") return null;
  const vf = freeVf(st);
  if (!vf) return null;
  try {
    const r = await verifyToken(sys, vf, token);
    return r.result === "match" ? "match" : r.result === "mismatch" ? "mismatch" : null;
  } catch {
    return null;
  }
}

export interface TokenSurvey extends TokenFacts {
  /** per PF name: how the kernel token was judged, in words */
  how: Map<string, string>;
  /** token sources that could not be read (a file policy's file) */
  problems: { pf: string; message: string; fix?: string }[];
  /** pending tokens resolved while surveying */
  resolved: string[];
}

/**
 * Survey the tokens of the configured PFs: which are stored, whether the kernel holds them, and
 * resolve a `pending` slot left by an interrupted set or rotation. Opens free VFs (read-only for
 * the token).
 */
export async function surveyTokens(sys: Syscalls, files: HostFiles, store: TokenStore, host: HostState, opts: { resolvePending?: boolean } = {}): Promise<TokenSurvey> {
  const out: TokenSurvey = { storedTokens: new Set(), kernelToken: new Map(), how: new Map(), problems: [], resolved: [] };
  for (const st of host.pfs) {
    const pc = st.cfg;
    if (pc.token.policy !== "generate" && pc.token.policy !== "file") continue;
    let token: string | null;
    try {
      if (opts.resolvePending !== false && pc.token.policy === "generate") {
        const r = await resolvePending(sys, store, st, host.bootId);
        if (r) out.resolved.push(`${pc.name}: ${r}`);
      }
      token = wantedToken(files, store, pc);
    } catch (e) {
      out.problems.push({ pf: pc.name, message: (e as Error).message, ...(e instanceof VfioctlError && e.fix ? { fix: e.fix } : {}) });
      continue;
    }
    if (token === null) {
      out.how.set(pc.name, "no token stored yet");
      continue;
    }
    out.storedTokens.add(pc.name);
    const k = await checkKernelToken(sys, st, token);
    if (k) {
      out.kernelToken!.set(pc.name, k);
      out.how.set(pc.name, k === "match" ? "a free VF opens with it" : "a free VF refuses it (Incorrect VF token)");
      continue;
    }
    const meta = store.meta(pc.name);
    const numVfs = st.pf?.sriov?.numVfs ?? 0;
    if (!st.pf || st.pf.driver !== "vfio-pci") {
      out.how.set(pc.name, `no VF token now: the PF is ${st.pf?.driver ? `on ${st.pf.driver}` : "unbound"}, not vfio-pci`);
    } else if (numVfs === 0) {
      // a PF without VFs may have been re-probed (which needs its VFs gone) since vfioctl set the
      // token: the kernel then holds a new random one; apply sets it before creating VFs
      out.how.set(pc.name, "unknown: the PF has no VFs to check it against (a re-probe since it was set would have replaced it); apply sets it before it creates VFs");
    } else if (meta.setOn && meta.setOn.bdf === st.pf.bdf && host.bootId && meta.setOn.bootId === host.bootId) {
      out.kernelToken!.set(pc.name, "match");
      out.how.set(pc.name, `set by vfioctl at ${meta.setOn.at} during this boot, and every VF is held (none free to check it against)`);
    } else out.how.set(pc.name, "unknown: no free VF to check it against, and vfioctl has not set it during this boot");
  }
  return out;
}

/** A `pending` token left by an interrupted set: promote it if the kernel holds it, drop it if the kernel holds `current`. */
async function resolvePending(sys: Syscalls, store: TokenStore, st: PfState, bootId: string | null): Promise<string | null> {
  const pending = store.read(st.cfg.name, "pending");
  if (!pending) return null;
  const k = await checkKernelToken(sys, st, pending);
  if (k === "match") {
    promote(store, st.cfg.name, pending, st.pf?.bdf ?? null, bootId, "resolved");
    return "an interrupted token change had reached the kernel: the pending token is now current";
  }
  const cur = store.read(st.cfg.name, "current");
  if (k === "mismatch" && cur && (await checkKernelToken(sys, st, cur)) === "match") {
    store.remove(st.cfg.name, "pending");
    return "an interrupted token change had not reached the kernel: the pending token was dropped";
  }
  return null;
}

function promote(store: TokenStore, name: string, token: string, bdf: string | null, bootId: string | null, method: string, gid: number | null = null): void {
  const cur = store.read(name, "current");
  const now = new Date().toISOString();
  if (cur && cur !== token) store.write(name, "previous", cur, { gid });
  store.write(name, "current", token, { gid });
  store.remove(name, "pending");
  const m = store.meta(name);
  store.writeMeta(name, { ...m, updated: now, ...(cur && cur !== token ? { rotatedAt: now } : {}), ...(bdf ? { setOn: { bdf, at: now, bootId, method } } : {}) }, gid);
}

export interface StoreAndSetResult {
  name: string;
  pf: string;
  method: "open" | "feature";
  vfsHeld: string[];
  rotated: boolean;
}

/**
 * Give the kernel a new token for a PF with store-before-set ordering (see the file comment).
 * `current` is the token the kernel holds now, needed while a VF is open (rotation).
 */
export async function storeAndSet(
  sys: Syscalls,
  store: TokenStore,
  o: { name: string; pf: string; token?: string; current?: string; gid?: number | null; bootId: string | null; source?: string },
): Promise<StoreAndSetResult & { token: string }> {
  const token = o.token ?? newToken();
  const cur = store.read(o.name, "current");
  store.write(o.name, "pending", token, { gid: o.gid ?? null });
  const r = await setToken(sys, o.pf, token, o.current !== undefined ? { current: o.current } : cur && cur !== token ? { current: cur } : {});
  promote(store, o.name, token, o.pf, o.bootId, r.method, o.gid ?? null);
  if (o.source) store.writeMeta(o.name, { ...store.meta(o.name), source: o.source, ...(store.meta(o.name).created ? {} : { created: new Date().toISOString() }) }, o.gid ?? null);
  return { name: o.name, pf: o.pf, method: r.method, vfsHeld: r.vfsHeld, rotated: !!cur && cur !== token, token };
}

/** The reader group's gid for a PF's store files (null: root only). */
export function readerGid(files: HostFiles, pc: PfConfig | null): number | null {
  if (!pc) return null;
  const t = pc.token;
  if ((t.policy === "generate" || t.policy === "file") && t.readers.group) return groupId(files, t.readers.group);
  return null;
}

/** When a process started (wall-clock ms), from /proc/<pid>/stat's starttime and /proc/stat's btime; null when unknown. */
export async function processStartMs(sys: Syscalls, pid: number): Promise<number | null> {
  try {
    const stat = await readText(sys, `/proc/${pid}/stat`);
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(rest[19]);
    const btime = /^btime (\d+)$/m.exec(await readText(sys, "/proc/stat"));
    if (!btime || !Number.isFinite(ticks)) return null;
    return Number(btime[1]) * 1000 + ticks * 10;
  } catch {
    return null;
  }
}
