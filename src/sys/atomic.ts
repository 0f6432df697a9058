/**
 * The one way this project replaces a regular file on the host: a temporary file created
 * O_CREAT|O_EXCL|O_NOFOLLOW in the target's directory (so a planted symlink or an existing file is
 * never followed or reused), owner and mode set on the descriptor (the umask decides nothing),
 * written in full, fsynced, renamed over the target (which replaces a symlink itself, never its
 * target), then the directory fsynced so the rename survives a power cut. On any failure the
 * temporary file is removed and the target is untouched.
 *
 * Used by the token store, the apply journal and the installed boot files.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { randomBytes } from "node:crypto";

/** The calls a write makes that tests may replace (a disk that fills up, an fsync that fails). */
export interface AtomicIo {
  writeSync: typeof fs.writeSync;
  fsyncSync: typeof fs.fsyncSync;
  renameSync: typeof fs.renameSync;
}

export const defaultAtomicIo: AtomicIo = { writeSync: fs.writeSync, fsyncSync: fs.fsyncSync, renameSync: fs.renameSync };

/** Which stage of an atomic write failed, with the errno error it failed with. */
export class AtomicWriteError extends Error {
  constructor(
    readonly stage: "create" | "write" | "rename" | "sync-dir",
    readonly target: string,
    override readonly cause: unknown,
  ) {
    super(`${stage} ${target}: ${(cause as NodeJS.ErrnoException)?.code ?? String(cause)}`);
  }
  get code(): string {
    return (this.cause as NodeJS.ErrnoException)?.code ?? "EIO";
  }
}

export interface AtomicOptions {
  /** file mode of the result (default 0600) */
  mode?: number;
  /** owner to give the file (fchown); only the group is usually changed */
  owner?: { uid: number; gid: number };
  /** the temporary file's name prefix (default "." + the target's name) */
  tmpPrefix?: string;
  io?: Partial<AtomicIo>;
}

/** fsync a directory, so that a rename or an unlink in it is durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replace `target` (a real path) with `data` atomically and durably; throws {@link AtomicWriteError}. */
export function writeFileAtomic(target: string, data: string | Uint8Array, opts: AtomicOptions = {}): void {
  const io = { ...defaultAtomicIo, ...opts.io };
  const mode = opts.mode ?? 0o600;
  const dir = nodePath.dirname(target);
  const tmp = nodePath.join(dir, `${opts.tmpPrefix ?? "." + nodePath.basename(target)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  let fd: number;
  try {
    fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new AtomicWriteError("create", target, e);
  }
  try {
    if (opts.owner) fs.fchownSync(fd, opts.owner.uid, opts.owner.gid);
    fs.fchmodSync(fd, mode);
    const b = typeof data === "string" ? Buffer.from(data) : data;
    let off = 0;
    while (off < b.length) off += io.writeSync(fd, b, off, b.length - off);
    io.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw new AtomicWriteError("write", target, e);
  }
  fs.closeSync(fd);
  try {
    io.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new AtomicWriteError("rename", target, e);
  }
  try {
    fsyncDir(dir);
  } catch (e) {
    throw new AtomicWriteError("sync-dir", target, e);
  }
}

/** Point `target` at `linkTo` atomically: a new symlink renamed over the old entry, directory fsynced. */
export function symlinkAtomic(target: string, linkTo: string): void {
  const tmp = nodePath.join(nodePath.dirname(target), `.${nodePath.basename(target)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    fs.symlinkSync(linkTo, tmp);
  } catch (e) {
    throw new AtomicWriteError("create", target, e);
  }
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new AtomicWriteError("rename", target, e);
  }
  fsyncDir(nodePath.dirname(target));
}
