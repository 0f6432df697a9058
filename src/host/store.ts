/**
 * The token store: the one place a VF token is ever written. One directory per PF under the
 * store root (default `/etc/vfioctl/tokens/<name>/`) holding plain files with one UUID each —
 * `current` (what the kernel should have), `pending` (a token about to be set), `previous`
 * (the token before the last rotation, kept until the operator retires it) — and `meta.json`
 * (times and sources, never a token).
 *
 * Invariants:
 * - a token is written here (and fsynced) before it is given to the kernel; callers order
 *   store-then-set, and roll the store back only after the kernel refused the new token;
 * - the store root and each PF directory are owned by the caller (or root), mode 0700 (0710 with
 *   the PF's reader group); token files 0600 (0640 with a reader group);
 * - writes are atomic (a temporary file created O_EXCL|O_NOFOLLOW in the same directory, written,
 *   fsynced, renamed over the target, then the directory fsynced) and never follow a symlink;
 * - an existing file must be a regular file owned by the caller or root that others cannot read;
 * - reads are bounded (a token file is 37 bytes; anything over 4 KiB is refused) and refuse FIFOs,
 *   devices, sockets, directories and symlinks, each with its own message;
 * - no token value ever appears in an error message.
 *
 * Paths are host paths: under `--sim` they live in the simulated host's root (see HostFiles).
 *
 * @example
 * ```ts
 * import { TokenStore, hostFiles, newToken } from "vfioctl";
 * const s = new TokenStore(hostFiles("/tmp/sim-root"));
 * s.write("lab-igb", "current", newToken());
 * s.read("lab-igb", "current"); // the UUID
 * ```
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import type { HostFiles } from "../sys/hostfs.js";
import { AtomicWriteError, defaultAtomicIo, writeFileAtomic, type AtomicIo } from "../sys/atomic.js";
import { VfioctlError } from "../lib/errors.js";
import { checkToken } from "../lib/token.js";
import { DEFAULT_STORE } from "./config.js";

export type Slot = "current" | "pending" | "previous";

export interface TokenMeta {
  /** ISO times */
  created?: string;
  updated?: string;
  /** when `previous` was replaced by a rotation (VF users started before it may hold the old token) */
  rotatedAt?: string;
  /** where `current` came from: generated, file PATH, stdin, … */
  source?: string;
  /** the PF it was last set on and when (boot id, time) */
  setOn?: { bdf: string; at: string; bootId: string | null; method: string };
}

/** The largest token file read (a UUID and a newline is 37 bytes). */
export const MAX_TOKEN_FILE = 4096;

const kindName = (st: fs.Stats): string =>
  st.isFIFO() ? "a FIFO" : st.isCharacterDevice() ? "a character device" : st.isBlockDevice() ? "a block device" : st.isSocket() ? "a socket" : st.isDirectory() ? "a directory" : st.isSymbolicLink() ? "a symbolic link" : "not a regular file";

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? "EIO";
}

const uid = (): number => (typeof process.getuid === "function" ? process.getuid() : 0);

/**
 * Read a token file safely (store files and operator-managed `token: { file }` sources alike):
 * no symlink, a regular file, bounded, owned by the caller or root, and (unless `allowGroup`)
 * not readable by group or others. Returns null when the file does not exist and `missingOk`.
 */
export function readTokenFileSafe(real: string, shown: string, opts: { missingOk?: boolean; allowGroup?: boolean; what?: string } = {}): string | null {
  const what = opts.what ?? "token file";
  let fd: number;
  try {
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (e) {
    const code = errnoOf(e);
    if (code === "ENOENT" && opts.missingOk) return null;
    if (code === "ELOOP") throw new VfioctlError("UNSAFE_FILE", `${what} ${shown}: ELOOP (a symbolic link: token files are never read through links)`, { subject: shown, errno: code, fix: `replace the link with the file itself (mode 0600)` });
    throw new VfioctlError("TOKEN_SOURCE", `${what} ${shown}: ${code} (${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : "cannot open"})`, {
      subject: shown,
      errno: code,
      fix: code === "ENOENT" ? "check the path" : code === "EACCES" ? "run as root or as a member of the PF's reader group" : "check the file",
    });
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new VfioctlError("UNSAFE_FILE", `${what} ${shown}: expected a regular file, got ${kindName(st)}`, { subject: shown, fix: "point it at a regular file holding one UUID" });
    if (st.uid !== uid() && st.uid !== 0) throw new VfioctlError("UNSAFE_FILE", `${what} ${shown}: owned by uid ${st.uid}, expected the caller (uid ${uid()}) or root`, { subject: shown, fix: `chown root ${shown} (a file another user owns can be swapped under you)` });
    const broad = st.mode & (opts.allowGroup ? 0o007 : 0o077);
    if (broad) throw new VfioctlError("UNSAFE_FILE", `${what} ${shown}: mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}, expected 0600${opts.allowGroup ? " or 0640" : ""} (other users can read it)`, { subject: shown, fix: `chmod 600 ${shown}, and rotate the token: it may have leaked` });
    if (st.size > MAX_TOKEN_FILE) throw new VfioctlError("UNSAFE_FILE", `${what} ${shown}: ${st.size} bytes, expected a UUID (37 bytes; at most ${MAX_TOKEN_FILE})`, { subject: shown, fix: "a token file holds one UUID and a newline" });
    const buf = Buffer.alloc(MAX_TOKEN_FILE + 1);
    let n = 0;
    for (;;) {
      const r = fs.readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > MAX_TOKEN_FILE) throw new VfioctlError("UNSAFE_FILE", `${what} ${shown}: more than ${MAX_TOKEN_FILE} bytes, expected a UUID`, { subject: shown });
    }
    return checkToken(buf.subarray(0, n).toString("utf8"), `${what} ${shown}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** The file-system calls a store write makes (injectable, so tests can make a disk fill up or fsync fail). */
export type StoreIo = AtomicIo;

export class TokenStore {
  readonly dir: string;
  private readonly io: StoreIo;
  constructor(
    readonly files: HostFiles,
    dir: string = DEFAULT_STORE,
    io: Partial<StoreIo> = {},
  ) {
    this.dir = dir;
    this.io = { ...defaultAtomicIo, ...io };
  }

  /** Host path of a PF's slot file. */
  path(name: string, slot: Slot | "meta.json"): string {
    if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(name)) throw new VfioctlError("BAD_INPUT", `token store: expected a PF name of lowercase letters, digits, . _ -, got ${JSON.stringify(name)}`);
    return `${this.dir}/${name}/${slot}`;
  }

  private err(code: "UNSAFE_FILE" | "TOKEN_SOURCE", hostPath: string, msg: string, errno?: string, fix?: string): VfioctlError {
    return new VfioctlError(code, `token store ${this.files.show(hostPath)}: ${msg}`, { subject: hostPath, ...(errno ? { errno } : {}), fix: fix ?? `check ${hostPath}: it must be a directory owned by root, mode 0700` });
  }

  /** Check (or create) a store directory: not a link, a directory, owned by the caller or root, no write for others. */
  private ensureDir(hostPath: string, mode: number, gid: number | null): void {
    const real = this.files.real(hostPath);
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(real);
    } catch (e) {
      if (errnoOf(e) !== "ENOENT") throw this.err("UNSAFE_FILE", hostPath, errnoOf(e), errnoOf(e));
    }
    if (!st) {
      const parent = nodePath.dirname(hostPath);
      if (parent !== hostPath && hostPath !== this.dir) this.ensureDir(parent, 0o700, null);
      else fs.mkdirSync(nodePath.dirname(real), { recursive: true, mode: 0o755 });
      try {
        fs.mkdirSync(real, { mode });
      } catch (e) {
        if (errnoOf(e) !== "EEXIST") throw this.err("UNSAFE_FILE", hostPath, `cannot create: ${errnoOf(e)}`, errnoOf(e), `run as root, or check that ${nodePath.dirname(hostPath)} is writable`);
      }
      st = fs.lstatSync(real);
    }
    if (st.isSymbolicLink()) throw this.err("UNSAFE_FILE", hostPath, "a symbolic link (the store is never reached through links)", "ELOOP", `replace it with a directory: rm ${hostPath} && mkdir -m 700 ${hostPath}`);
    if (!st.isDirectory()) throw this.err("UNSAFE_FILE", hostPath, `expected a directory, got ${kindName(st)}`, "ENOTDIR");
    if (st.uid !== uid() && st.uid !== 0) throw this.err("UNSAFE_FILE", hostPath, `owned by uid ${st.uid}, expected the caller or root`, "EPERM", `chown root ${hostPath}`);
    if (st.mode & 0o022) throw this.err("UNSAFE_FILE", hostPath, `mode ${(st.mode & 0o777).toString(8).padStart(4, "0")} lets others write in it`, "EPERM", `chmod 700 ${hostPath}`);
    if ((st.mode & 0o777) !== mode) fs.chmodSync(real, mode);
    if (gid !== null && st.gid !== gid) fs.chownSync(real, st.uid, gid);
  }

  /** Read one slot; null when it is not there. */
  read(name: string, slot: Slot = "current", opts: { allowGroup?: boolean } = {}): string | null {
    const hp = this.path(name, slot);
    return readTokenFileSafe(this.files.real(hp), this.files.show(hp), { missingOk: true, allowGroup: opts.allowGroup ?? true, what: "token store file" });
  }

  /**
   * Write one slot atomically and durably. `gid` gives the PF's reader group read access
   * (dir 0710, file 0640). Throws before anything is replaced when the target is unsafe.
   */
  write(name: string, slot: Slot, token: string, opts: { gid?: number | null } = {}): void {
    const t = checkToken(token, "the token to store");
    this.writeFile(name, slot, t + "\n", opts.gid ?? null);
  }

  private writeFile(name: string, slot: Slot | "meta.json", content: string, gid: number | null): void {
    const hp = this.path(name, slot);
    const rootMode = gid !== null ? 0o711 : 0o700;
    this.ensureDir(this.dir, this.currentRootMode(rootMode), null);
    this.ensureDir(`${this.dir}/${name}`, gid !== null ? 0o710 : 0o700, gid);
    const real = this.files.real(hp);
    // an existing target must be safe to replace
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(real);
    } catch (e) {
      if (errnoOf(e) !== "ENOENT") throw this.err("UNSAFE_FILE", hp, errnoOf(e), errnoOf(e));
    }
    if (st) {
      if (!st.isFile()) throw this.err("UNSAFE_FILE", hp, `expected a regular file, got ${kindName(st)}`, st.isSymbolicLink() ? "ELOOP" : "EINVAL", `remove ${hp}: only vfioctl writes the store`);
      if (st.uid !== uid() && st.uid !== 0) throw this.err("UNSAFE_FILE", hp, `owned by uid ${st.uid}, expected the caller or root`, "EPERM", `remove ${hp}`);
      if (st.mode & 0o007 || (gid === null && st.mode & 0o070 && slot !== "meta.json")) throw this.err("UNSAFE_FILE", hp, `mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}: others may already have read it`, "EPERM", `chmod 600 ${hp} and rotate the token (vfioctl token rotate)`);
    }
    try {
      writeFileAtomic(real, content, { mode: gid !== null ? 0o640 : 0o600, ...(gid !== null ? { owner: { uid: uid(), gid } } : {}), tmpPrefix: `.${slot}`, io: this.io });
    } catch (e) {
      if (!(e instanceof AtomicWriteError)) throw e;
      const c = e.code;
      if (e.stage === "create") throw this.err("UNSAFE_FILE", hp, `cannot create a temporary file: ${c}`, c, "check that the store directory is writable by the caller");
      if (e.stage === "write") throw this.err("UNSAFE_FILE", hp, `cannot write: ${c}${c === "ENOSPC" ? " (disk full)" : ""}`, c, "free space or fix the file system; nothing was changed");
      if (e.stage === "rename") throw this.err("UNSAFE_FILE", hp, `cannot rename into place: ${c}`, c);
      throw this.err("UNSAFE_FILE", hp, `written, but the directory could not be synced: ${c}`, c);
    }
  }

  /** The store root keeps 0711 once any PF has a reader group (members must reach their PF's directory). */
  private currentRootMode(wanted: number): number {
    try {
      const st = fs.lstatSync(this.files.real(this.dir));
      if (st.isDirectory() && (st.mode & 0o777) === 0o711) return 0o711;
    } catch {
      /* absent */
    }
    return wanted;
  }

  /** Remove one slot (the file only). */
  remove(name: string, slot: Slot): void {
    const hp = this.path(name, slot);
    try {
      const st = fs.lstatSync(this.files.real(hp));
      if (!st.isFile()) throw this.err("UNSAFE_FILE", hp, `expected a regular file, got ${kindName(st)}`);
      fs.unlinkSync(this.files.real(hp));
    } catch (e) {
      if (e instanceof VfioctlError) throw e;
      if (errnoOf(e) !== "ENOENT") throw this.err("UNSAFE_FILE", hp, errnoOf(e), errnoOf(e));
    }
  }

  meta(name: string): TokenMeta {
    const real = this.files.real(this.path(name, "meta.json"));
    try {
      const st = fs.lstatSync(real);
      if (!st.isFile() || st.size > 65536) return {};
      return JSON.parse(fs.readFileSync(real, "utf8")) as TokenMeta;
    } catch {
      return {};
    }
  }

  writeMeta(name: string, m: TokenMeta, gid: number | null = null): void {
    this.writeFile(name, "meta.json", JSON.stringify(m, null, 2) + "\n", gid);
  }

  /** Names of the PFs that have a directory in the store. */
  names(): string[] {
    try {
      return fs
        .readdirSync(this.files.real(this.dir), { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort();
    } catch {
      return [];
    }
  }
}

/** The numeric gid of a group name from the host's /etc/group (under the simulated root with --sim). */
export function groupId(files: HostFiles, group: string): number {
  let text = "";
  try {
    text = fs.readFileSync(files.real("/etc/group"), "utf8");
  } catch {
    /* no group file */
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f[0] === group && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
  }
  throw new VfioctlError("BAD_INPUT", `token readers: group ${JSON.stringify(group)} does not exist on this host (${files.show("/etc/group")})`, { subject: group, fix: `groupadd ${group}, or choose an existing group` });
}
