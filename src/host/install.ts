/**
 * Place the boot integration's files ({@link bootFiles}) on a host, and take them away again.
 *
 * Invariants:
 * - every path goes through `files.real()`: under `--sim` the files land in the simulated host's
 *   root, never in the real /etc;
 * - nothing is written through a symbolic link: parent directories are checked with lstat (a
 *   symlink among them is refused), files are written to a temporary file created
 *   O_EXCL|O_NOFOLLOW in the same directory, fsynced and renamed over the target, then the
 *   directory is fsynced;
 * - a manifest (`/var/lib/vfioctl/installed.json`) lists each placed file and symlink with the
 *   sha256 of its content (of its target, for a symlink) and each directory install created;
 *   uninstall removes exactly those, and leaves (and reports) anything changed since;
 * - install is idempotent: the same needs give byte-identical files and manifest, and a second
 *   run writes nothing; a changed config rewrites only the files whose content changed;
 * - a file that is not vfioctl's, or that was edited by hand, is never overwritten without
 *   `force`; every conflict is reported before anything is written.
 *
 * @example
 * ```ts
 * import { install, uninstall, bootNeedsFrom, hostFiles } from "vfioctl";
 * const files = hostFiles("/tmp/sim-root");
 * const r = install(files, bootNeedsFrom({ before: ["libvirtd.service"] }));
 * r.changed;                     // true the first time, false the second
 * uninstall(files).removed;      // every path install placed
 * ```
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { AtomicWriteError, fsyncDir, symlinkAtomic, writeFileAtomic } from "../sys/atomic.js";
import type { HostFiles } from "../sys/hostfs.js";
import { VfioctlError } from "../lib/errors.js";
import { bootFiles, MAIN_UNIT, MODPROBE_CONF, PF_TEMPLATE, STATE_DIR, UNIT_DIR, type BootNeeds } from "./units.js";

export const MANIFEST = `${STATE_DIR}/installed.json`;
/** Largest file read back for comparison (the generated files are a few KiB). */
const MAX_READ = 1 << 20;

export interface ManifestEntry {
  path: string;
  kind: "file" | "symlink" | "dir";
  /** file: sha256 of the content; symlink: sha256 of the target text */
  sha256?: string;
  target?: string;
  mode?: number;
}

export interface Manifest {
  version: 1;
  tool: "vfioctl";
  config: string;
  entries: ManifestEntry[];
}

export type Action = "create" | "update" | "unchanged" | "remove" | "kept" | "gone";

export interface Step {
  path: string;
  kind: "file" | "symlink" | "dir";
  action: Action;
  sha256?: string;
  target?: string;
  mode?: number;
  /** present for files in dry runs and in --json output */
  content?: string;
  why?: string;
  /** why a file was kept, or what --force overrode */
  note?: string;
}

export interface ReloadResult {
  command: string[];
  ok: boolean;
  skipped?: string;
  error?: string;
}

export interface InstallReport {
  root: string;
  simulated: boolean;
  dryRun: boolean;
  /** something was (or, in a dry run, would be) written or removed */
  changed: boolean;
  manifest: string;
  steps: Step[];
  reload: ReloadResult[];
  notes: string[];
}

export interface UninstallReport {
  root: string;
  simulated: boolean;
  dryRun: boolean;
  /** no manifest: nothing was installed */
  nothing: boolean;
  changed: boolean;
  manifest: string;
  steps: Step[];
  /** host paths removed (or that would be) */
  removed: string[];
  /** host paths left in place: changed by hand since install (use force) */
  kept: string[];
  reload: ReloadResult[];
  notes: string[];
}

/** Runs a host command (systemctl daemon-reload, udevadm control --reload); injectable for tests. */
export type Runner = (argv: string[]) => { status: number | null; stdout: string; stderr: string; error?: string };

export interface InstallOptions {
  /** print, change nothing */
  dryRun?: boolean;
  /** overwrite (install) or remove (uninstall) files changed by hand or not vfioctl's */
  force?: boolean;
  /** run systemctl daemon-reload and udevadm control --reload after a change on a real host (default true) */
  reload?: boolean;
  run?: Runner;
  /** where to look for systemctl and udevadm (default $PATH plus /usr/bin, /bin, /usr/sbin, /sbin) */
  path?: string;
}

const sha256 = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");
const errnoOf = (e: unknown) => (e as NodeJS.ErrnoException)?.code ?? "EIO";

function fixFor(errno: string, hostPath: string, files: HostFiles): string {
  switch (errno) {
    case "EACCES":
    case "EPERM":
      return files.simulated ? `check the permissions of ${files.real(nodePath.dirname(hostPath))}` : "run it as root (sudo vfioctl install), or try it first on a simulated host: vfioctl --sim --state DIR install";
    case "EROFS":
      return `the file system holding ${nodePath.dirname(hostPath)} is read-only: remount it read-write (mount -o remount,rw), then run vfioctl install again`;
    case "ENOSPC":
    case "EDQUOT":
      return `free space on the file system holding ${nodePath.dirname(hostPath)}, then run vfioctl install again`;
    case "ENOTDIR":
    case "ELOOP":
      return `a component of ${hostPath} is not a directory: make it one, then run vfioctl install again`;
    default:
      return `check ${hostPath}, then run vfioctl install again`;
  }
}

function fsError(files: HostFiles, op: string, hostPath: string, e: unknown): VfioctlError {
  const errno = errnoOf(e);
  return new VfioctlError("KERNEL", `${op} ${files.show(hostPath)}: ${errno} (${(e as Error).message.replace(/^[A-Z]+: /, "")})`, { subject: hostPath, errno, fix: fixFor(errno, hostPath, files) });
}

function lstat(real: string): fs.Stats | null {
  try {
    return fs.lstatSync(real);
  } catch (e) {
    if (errnoOf(e) === "ENOENT") return null;
    throw e;
  }
}

const kindOf = (st: fs.Stats) => (st.isSymbolicLink() ? "a symbolic link" : st.isDirectory() ? "a directory" : st.isFile() ? "a regular file" : "not a regular file");

/** Read a regular file without following a symlink; bounded. */
function readRegular(files: HostFiles, hostPath: string): Buffer {
  const real = files.real(hostPath);
  let fd: number;
  try {
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (e) {
    throw fsError(files, "read", hostPath, e);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new VfioctlError("UNSAFE_FILE", `${files.show(hostPath)}: expected a regular file, found ${kindOf(st)}`, { subject: hostPath, fix: `move ${hostPath} away` });
    if (st.size > MAX_READ) throw new VfioctlError("UNSAFE_FILE", `${files.show(hostPath)}: expected at most ${MAX_READ} bytes, found ${st.size}`, { subject: hostPath, fix: `move ${hostPath} away` });
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = fs.readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The directories between the root and `hostDir` that do not exist yet, outermost first. A
 * component that exists must be a real directory (not a symlink): vfioctl never writes through
 * one, so nothing lands outside the root.
 */
function missingDirs(files: HostFiles, hostDir: string): string[] {
  const parts = nodePath.normalize(hostDir).split("/").filter(Boolean);
  const missing: string[] = [];
  let cur = "";
  for (const p of parts) {
    cur += "/" + p;
    const st = missing.length ? null : lstat(files.real(cur));
    if (st === null) {
      missing.push(cur);
      continue;
    }
    if (st.isSymbolicLink())
      throw new VfioctlError("UNSAFE_FILE", `${files.show(cur)}: expected a directory, found a symbolic link to ${JSON.stringify(fs.readlinkSync(files.real(cur)))}`, {
        subject: cur,
        fix: `vfioctl writes no file through a symbolic link: make ${cur} a real directory (or install elsewhere with --sim --state DIR)`,
      });
    if (!st.isDirectory()) throw new VfioctlError("UNSAFE_FILE", `${files.show(cur)}: expected a directory, found ${kindOf(st)}`, { subject: cur, fix: `move ${cur} away` });
  }
  return missing;
}

function mkdirOne(files: HostFiles, hostDir: string): void {
  try {
    fs.mkdirSync(files.real(hostDir), { mode: 0o755 });
    fsyncDir(files.real(nodePath.dirname(hostDir)));
  } catch (e) {
    if (errnoOf(e) !== "EEXIST") throw fsError(files, "mkdir", hostDir, e);
  }
}

/** Write `content` to `hostPath` atomically (src/sys/atomic.ts: temp file O_EXCL|O_NOFOLLOW, fsync, rename, fsync dir). */
export function writeAtomic(files: HostFiles, hostPath: string, content: string, mode: number): void {
  try {
    writeFileAtomic(files.real(hostPath), content, { mode }); // the umask does not decide a unit file's mode
  } catch (e) {
    throw fsError(files, "write", hostPath, e instanceof AtomicWriteError ? e.cause : e);
  }
}

/** Point `hostPath` at `target` atomically (a new link renamed over the old entry). */
function linkAtomic(files: HostFiles, hostPath: string, target: string): void {
  try {
    symlinkAtomic(files.real(hostPath), target);
  } catch (e) {
    throw fsError(files, "symlink", hostPath, e instanceof AtomicWriteError ? e.cause : e);
  }
}

function removeOne(files: HostFiles, hostPath: string): void {
  try {
    fs.unlinkSync(files.real(hostPath));
    fsyncDir(files.real(nodePath.dirname(hostPath)));
  } catch (e) {
    if (errnoOf(e) !== "ENOENT") throw fsError(files, "remove", hostPath, e);
  }
}

/**
 * Whether `e` names something install can place: its units, a `.wants/` link to vfioctl.service,
 * a vfioctl rules file, its modprobe file, or a directory on the way to one of those (or to the
 * manifest). A manifest naming anything else is refused, so uninstall never removes another file.
 */
function placeable(e: ManifestEntry): boolean {
  const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const U = esc(UNIT_DIR);
  if (e.kind === "dir") {
    const tops = [UNIT_DIR, "/etc/udev/rules.d", "/etc/modprobe.d", STATE_DIR];
    return new RegExp(`^${U}/[^/]+\\.wants$`).test(e.path) || tops.some((t) => t === e.path || t.startsWith(e.path + "/"));
  }
  return (
    e.path === `${UNIT_DIR}/${MAIN_UNIT}` ||
    e.path === `${UNIT_DIR}/${PF_TEMPLATE}` ||
    e.path === MODPROBE_CONF ||
    new RegExp(`^${U}/[^/]+\\.wants/${esc(MAIN_UNIT)}$`).test(e.path) ||
    /^\/etc\/udev\/rules\.d\/[0-9]*-?vfioctl\.rules$/.test(e.path)
  );
}

/** Read and check the manifest; null when there is none. */
export function readManifest(files: HostFiles): Manifest | null {
  const st = lstat(files.real(MANIFEST));
  if (st === null) return null;
  const text = readRegular(files, MANIFEST).toString("utf8");
  const bad = (why: string) =>
    new VfioctlError("UNSAFE_FILE", `${files.show(MANIFEST)}: expected vfioctl's install manifest, ${why}`, {
      subject: MANIFEST,
      fix: `restore it, or move it away and remove vfioctl's boot files by hand (${MANIFEST} lists them)`,
    });
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    throw bad("found text that is not JSON");
  }
  const o = m as Partial<Manifest>;
  if (!o || o.tool !== "vfioctl" || o.version !== 1 || !Array.isArray(o.entries)) throw bad(`found ${JSON.stringify(text.slice(0, 60))}`);
  for (const e of o.entries) {
    if (!e || typeof e.path !== "string" || !e.path.startsWith("/") || !["file", "symlink", "dir"].includes(e.kind)) throw bad(`found an entry ${JSON.stringify(e)}`);
    if (nodePath.normalize(e.path) !== e.path) throw bad(`found a path that is not normal: ${JSON.stringify(e.path)}`);
    if (!placeable(e)) throw bad(`found ${JSON.stringify(e.path)}, which vfioctl install never places`);
  }
  return { version: 1, tool: "vfioctl", config: typeof o.config === "string" ? o.config : "", entries: o.entries };
}

function manifestText(m: Manifest): string {
  const entries = [...m.entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return JSON.stringify({ ...m, entries }, null, 2) + "\n";
}

function which(name: string, searchPath: string | undefined): string | null {
  const dirs = [...(searchPath ?? process.env.PATH ?? "").split(":").filter(Boolean), "/usr/bin", "/bin", "/usr/sbin", "/sbin"];
  for (const d of dirs) {
    const p = nodePath.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return null;
}

const defaultRunner: Runner = (argv) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", ...(r.error ? { error: r.error.message } : {}) };
};

/**
 * After a change on a real host: `systemctl daemon-reload` (so systemd sees the new units) and
 * `udevadm control --reload` (so udevd reads the rule), each only when the tool exists (and
 * systemd runs). Failures are reported, not thrown: the files are in place either way.
 */
export function reloadHost(files: HostFiles, opts: InstallOptions = {}): ReloadResult[] {
  if (files.simulated) return [{ command: ["systemctl", "daemon-reload"], ok: true, skipped: "simulated host" }];
  const run = opts.run ?? defaultRunner;
  const out: ReloadResult[] = [];
  const one = (argv: string[]) => {
    const r = run(argv);
    if (r.error || r.status !== 0) out.push({ command: argv, ok: false, error: (r.error ?? r.stderr.trim()) || `exit status ${r.status}` });
    else out.push({ command: argv, ok: true });
  };
  const systemctl = which("systemctl", opts.path);
  if (!systemctl) out.push({ command: ["systemctl", "daemon-reload"], ok: true, skipped: "systemctl not found" });
  else if (!fs.existsSync("/run/systemd/system")) out.push({ command: [systemctl, "daemon-reload"], ok: true, skipped: "systemd is not running here (no /run/systemd/system); it reads the units at the next boot" });
  else one([systemctl, "daemon-reload"]);
  const udevadm = which("udevadm", opts.path);
  if (!udevadm) out.push({ command: ["udevadm", "control", "--reload"], ok: true, skipped: "udevadm not found" });
  else one([udevadm, "control", "--reload"]);
  return out;
}

function conflictError(files: HostFiles, conflicts: { path: string; why: string }[], verb: string): VfioctlError {
  const lines = conflicts.map((c) => `  ${files.show(c.path)}: ${c.why}`);
  return new VfioctlError("UNSAFE_FILE", `${verb}: ${conflicts.length === 1 ? "a file is" : `${conflicts.length} files are`} not vfioctl's to change (nothing was changed):\n${lines.join("\n")}`, {
    subject: conflicts[0]!.path,
    fix: `look at each file; keep local changes to a unit in a drop-in (systemctl edit vfioctl.service), then run again with --force to overwrite`,
    data: { conflicts },
  });
}

/**
 * Place the boot files for `needs` under `files` (see the module doc for the invariants).
 * Throws a {@link VfioctlError}: UNSAFE_FILE for conflicts (nothing written), KERNEL with the
 * errno for a failed write.
 */
export function install(files: HostFiles, needs: BootNeeds, opts: InstallOptions = {}): InstallReport {
  const gen = bootFiles(needs);
  const old = readManifest(files);
  const oldBy = new Map((old?.entries ?? []).map((e) => [e.path, e]));
  const steps: Step[] = [];
  const conflicts: { path: string; why: string }[] = [];
  const notes: string[] = [];
  const force = opts.force ?? false;

  for (const f of gen.files) {
    const want = sha256(f.content);
    const base: Step = { path: f.path, kind: "file", action: "create", sha256: want, mode: f.mode, content: f.content, why: f.why };
    const st = lstat(files.real(f.path));
    const prev = oldBy.get(f.path);
    if (st === null) steps.push(base);
    else if (st.isFile()) {
      const have = sha256(readRegular(files, f.path));
      if (have === want && (st.mode & 0o7777) === f.mode) steps.push({ ...base, action: "unchanged" });
      else if (have === want || (prev?.kind === "file" && prev.sha256 === have)) steps.push({ ...base, action: "update" });
      else if (force) steps.push({ ...base, action: "update", note: prev ? "overwrote a change made by hand (--force)" : "overwrote a file vfioctl had not installed (--force)" });
      else conflicts.push({ path: f.path, why: prev ? "changed by hand since vfioctl installed it" : "exists and was not installed by vfioctl" });
    } else if (st.isSymbolicLink()) {
      const t = fs.readlinkSync(files.real(f.path));
      if (force) steps.push({ ...base, action: "update", note: `replaced a symbolic link to ${JSON.stringify(t)} (--force)` });
      else conflicts.push({ path: f.path, why: t === "/dev/null" ? "is masked (a symbolic link to /dev/null): unmask it first (systemctl unmask)" : `is a symbolic link to ${JSON.stringify(t)}` });
    } else conflicts.push({ path: f.path, why: `is ${kindOf(st)}` });
  }
  for (const l of gen.links) {
    const base: Step = { path: l.path, kind: "symlink", action: "create", target: l.target, sha256: sha256(l.target), why: l.why };
    const st = lstat(files.real(l.path));
    const prev = oldBy.get(l.path);
    if (st === null) steps.push(base);
    else if (st.isSymbolicLink()) {
      const t = fs.readlinkSync(files.real(l.path));
      const abs = nodePath.resolve(nodePath.dirname(l.path), l.target);
      if (t === l.target) steps.push({ ...base, action: "unchanged" });
      else if (t === abs || (prev?.kind === "symlink" && prev.target === t)) steps.push({ ...base, action: "update" }); // systemctl enable's absolute link, or our own older one
      else if (force) steps.push({ ...base, action: "update", note: `replaced a symbolic link to ${JSON.stringify(t)} (--force)` });
      else conflicts.push({ path: l.path, why: `is a symbolic link to ${JSON.stringify(t)}` });
    } else if (st.isFile() && force) steps.push({ ...base, action: "update", note: "replaced a regular file (--force)" });
    else conflicts.push({ path: l.path, why: `is ${kindOf(st)}` });
  }
  // what the last install placed and this one does not (the modprobe file once no PF needs it)
  const wanted = new Set([...gen.files.map((f) => f.path), ...gen.links.map((l) => l.path)]);
  const keptOld: ManifestEntry[] = [];
  for (const e of old?.entries ?? []) {
    if (e.kind === "dir" || wanted.has(e.path)) continue;
    const s = staleStep(files, e, force);
    steps.push(s);
    if (s.action === "kept") keptOld.push(e);
  }

  // parent directories: checked (no symlinks) before anything is written, created as needed
  const created = new Set<string>();
  for (const p of [...wanted, MANIFEST]) for (const d of missingDirs(files, nodePath.dirname(p))) created.add(d);
  if (conflicts.length) throw conflictError(files, conflicts, "install");

  const dirEntries: ManifestEntry[] = [];
  for (const e of old?.entries ?? []) if (e.kind === "dir" && !created.has(e.path)) dirEntries.push(e); // still ours to remove if empty
  for (const d of created) dirEntries.push({ path: d, kind: "dir" });
  const manifest: Manifest = {
    version: 1,
    tool: "vfioctl",
    config: needs.configPath,
    entries: [
      ...steps.filter((s) => s.kind !== "dir" && s.action !== "remove" && s.action !== "gone" && wanted.has(s.path)).map((s): ManifestEntry => (s.kind === "file" ? { path: s.path, kind: "file", sha256: s.sha256!, mode: s.mode! } : { path: s.path, kind: "symlink", target: s.target!, sha256: s.sha256! })),
      ...keptOld,
      ...dirEntries,
    ],
  };
  const mtext = manifestText(manifest);
  let manifestChanged = true;
  try {
    manifestChanged = old === null || readRegular(files, MANIFEST).toString("utf8") !== mtext;
  } catch {
    manifestChanged = true;
  }
  steps.unshift(...[...created].map((d): Step => ({ path: d, kind: "dir", action: "create" })));
  const changed = steps.some((s) => s.action !== "unchanged" && s.action !== "kept") || manifestChanged;

  if (!needs.enableSriov && !needs.disableDenylist) notes.push("no vfio_pci module options written: pass --enable-sriov when a PF on vfio-pci gets VFs");
  const report: InstallReport = { root: files.root, simulated: files.simulated, dryRun: opts.dryRun ?? false, changed, manifest: MANIFEST, steps, reload: [], notes };
  if (opts.dryRun) return report;

  for (const d of [...created].sort((a, b) => a.length - b.length)) mkdirOne(files, d);
  for (const s of steps) {
    if (s.action !== "create" && s.action !== "update") continue;
    if (s.kind === "file") writeAtomic(files, s.path, s.content!, s.mode!);
    else if (s.kind === "symlink") linkAtomic(files, s.path, s.target!);
  }
  for (const s of steps) if (s.action === "remove") removeOne(files, s.path);
  if (manifestChanged) writeAtomic(files, MANIFEST, mtext, 0o644);
  if (changed && opts.reload !== false) report.reload = reloadHost(files, opts);
  return report;
}

/** What to do with a placed entry that is no longer wanted (install) or is being removed (uninstall). */
function staleStep(files: HostFiles, e: ManifestEntry, force: boolean): Step {
  const base: Step = { path: e.path, kind: e.kind, action: "remove", ...(e.sha256 ? { sha256: e.sha256 } : {}), ...(e.target ? { target: e.target } : {}) };
  const st = lstat(files.real(e.path));
  if (st === null) return { ...base, action: "gone", note: "already removed" };
  if (e.kind === "file") {
    if (!st.isFile()) return force && st.isSymbolicLink() ? { ...base, note: "was replaced by a symbolic link (--force)" } : { ...base, action: "kept", note: `is now ${kindOf(st)}` };
    const have = sha256(readRegular(files, e.path));
    if (have === e.sha256) return base;
    return force ? { ...base, note: "removed a change made by hand (--force)" } : { ...base, action: "kept", note: "changed by hand since vfioctl installed it (--force removes it)" };
  }
  if (!st.isSymbolicLink()) return { ...base, action: "kept", note: `is now ${kindOf(st)}` };
  const t = fs.readlinkSync(files.real(e.path));
  if (t === e.target) return base;
  return force ? { ...base, note: `pointed to ${JSON.stringify(t)} (--force)` } : { ...base, action: "kept", note: `now points to ${JSON.stringify(t)} (--force removes it)` };
}

/**
 * Remove exactly what the manifest lists: files and symlinks whose content is still what
 * install wrote, then the directories install created when they are empty. Anything changed
 * since is left in place and reported (`force` removes it too). Without a manifest, nothing.
 */
export function uninstall(files: HostFiles, opts: InstallOptions = {}): UninstallReport {
  const old = readManifest(files);
  const report: UninstallReport = { root: files.root, simulated: files.simulated, dryRun: opts.dryRun ?? false, nothing: old === null, changed: false, manifest: MANIFEST, steps: [], removed: [], kept: [], reload: [], notes: [] };
  if (old === null) {
    report.notes.push(`no ${MANIFEST}: vfioctl's boot files are not installed here`);
    return report;
  }
  const force = opts.force ?? false;
  const entries = old.entries.filter((e) => e.kind !== "dir");
  const dirs = old.entries.filter((e) => e.kind === "dir").sort((a, b) => b.path.length - a.path.length);
  for (const e of entries) {
    missingDirs(files, nodePath.dirname(e.path)); // refuses a symlinked parent: nothing is removed through one
    report.steps.push(staleStep(files, e, force));
  }
  const kept = old.entries.filter((e) => e.kind !== "dir" && report.steps.some((s) => s.path === e.path && s.action === "kept"));
  report.removed = report.steps.filter((s) => s.action === "remove").map((s) => s.path);
  report.kept = kept.map((e) => e.path);
  report.changed = true; // the manifest itself is rewritten or removed
  if (opts.dryRun) {
    for (const d of dirs) report.steps.push({ path: d.path, kind: "dir", action: "remove", note: "if empty" });
    return report;
  }
  for (const s of report.steps) if (s.action === "remove") removeOne(files, s.path);
  if (kept.length === 0) removeOne(files, MANIFEST);
  const keptDirs: ManifestEntry[] = [];
  for (const d of dirs) {
    try {
      fs.rmdirSync(files.real(d.path));
      report.steps.push({ path: d.path, kind: "dir", action: "remove" });
      report.removed.push(d.path);
    } catch (e) {
      const c = errnoOf(e);
      if (c === "ENOENT") continue;
      if (c === "ENOTEMPTY" || c === "EEXIST") {
        keptDirs.push(d);
        continue; // holds other files (or a kept one): not ours to remove
      }
      throw fsError(files, "rmdir", d.path, e);
    }
  }
  if (kept.length) writeAtomic(files, MANIFEST, manifestText({ ...old, entries: [...kept, ...keptDirs] }), 0o644);
  if (kept.length) report.notes.push(`${kept.length === 1 ? "1 file was" : `${kept.length} files were`} changed since install and left in place; ${MANIFEST} still lists them (vfioctl uninstall --force removes them)`);
  if (opts.reload !== false && report.removed.length) report.reload = reloadHost(files, opts);
  return report;
}
