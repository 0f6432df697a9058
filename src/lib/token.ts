/**
 * VF tokens as values: where they come from (file, stdin, environment, generated), how they are
 * checked (the kernel's uuid_is_valid), and how they are kept on disk (mode 0600, never over a
 * file with broader permissions). Token values are never put into error messages.
 *
 * Token files are the invoking user's own files, so they are read with node:fs, not through the
 * host seam (with `--sim` the model has no user files).
 *
 * @example
 * ```ts
 * import { newToken, checkToken, keepToken } from "vfioctl";
 * const t = newToken();                 // crypto.randomUUID()
 * checkToken(t, "generated");           // returns t
 * keepToken("/run/vfioctl/pf.token", t); // mode 0600
 * ```
 */
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import { uuidIsValid } from "../uapi/vfio.js";
import { VfioctlError } from "./errors.js";

/** The environment variable a token may come from. */
export const TOKEN_ENV = "VFIOCTL_VF_TOKEN";

/** A fresh random (version 4) token. */
export function newToken(): string {
  return randomUUID();
}

/**
 * Check a token's syntax as the kernel does (36 characters, dashes at 8/13/18/23, hex elsewhere,
 * either case). Surrounding whitespace (a file's trailing newline) is removed first. The error
 * says what was expected and the length found, never the value.
 */
export function checkToken(raw: string, source: string): string {
  const t = raw.trim();
  if (uuidIsValid(t)) return t.toLowerCase();
  const lines = raw.split("\n").filter((l) => l.trim()).length;
  throw new VfioctlError("BAD_TOKEN", `token from ${source}: expected a UUID (8-4-4-4-12 hex digits, 36 characters), got ${t.length === 0 ? "nothing" : `${t.length} characters${lines > 1 ? ` on ${lines} lines` : ""}`}`, {
    fix: "generate one with `vfioctl token set PF` or `uuidgen`; the kernel accepts no braces and no urn:uuid: prefix",
  });
}

export interface TokenSourceOptions {
  file?: string;
  stdin?: () => Promise<string>;
  useStdin?: boolean;
  env?: Record<string, string | undefined>;
  /** a token given on the command line (the caller warns about /proc/PID/cmdline) */
  argv?: string;
}

export interface ResolvedToken {
  token: string;
  source: string;
  /** non-fatal remarks, e.g. a token file readable by other users */
  warnings: string[];
}

/** Read a token file; refuses a missing or unreadable file with the errno, warns on group/other-readable files. */
export function readTokenFile(path: string): ResolvedToken {
  let text: string;
  let mode = 0;
  try {
    mode = fs.statSync(path).mode & 0o777;
    text = fs.readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new VfioctlError("TOKEN_SOURCE", `token file ${path}: ${code} (${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : "cannot read"})`, {
      subject: path,
      errno: code,
      fix: code === "ENOENT" ? "check the path, or create one with `vfioctl token set PF --keep FILE`" : "run as a user who can read it",
    });
  }
  const warnings = mode & 0o077 ? [`warning: token file ${path} has mode ${mode.toString(8).padStart(4, "0")}: other users can read it; chmod 600 ${path}`] : [];
  return { token: checkToken(text, `file ${path}`), source: `file ${path}`, warnings };
}

/**
 * Resolve the one token source a command was given: `file`, `useStdin`, `argv`, or the
 * environment variable. Returns null when none was given. More than one is an error.
 */
export async function resolveToken(o: TokenSourceOptions): Promise<ResolvedToken | null> {
  const given = [o.file !== undefined && "--token-file", o.useStdin && "--token-stdin", o.argv !== undefined && "--token"].filter(Boolean) as string[];
  if (given.length > 1) throw new VfioctlError("BAD_INPUT", `token: expected one source, got ${given.join(" and ")}`);
  if (o.file !== undefined) return readTokenFile(o.file);
  if (o.useStdin) {
    const text = o.stdin ? await o.stdin() : "";
    if (!text.trim()) throw new VfioctlError("TOKEN_SOURCE", "token from stdin: expected a UUID, got nothing (stdin was empty)", { fix: "pipe the token in: vfioctl ... --token-stdin < FILE" });
    return { token: checkToken(text, "stdin"), source: "stdin", warnings: [] };
  }
  if (o.argv !== undefined) return { token: checkToken(o.argv, "the command line"), source: "command line", warnings: [] };
  const env = o.env?.[TOKEN_ENV];
  if (env !== undefined && env !== "") return { token: checkToken(env, `$${TOKEN_ENV}`), source: `$${TOKEN_ENV}`, warnings: [] };
  return null;
}

/**
 * Store a token with mode 0600. An existing file is overwritten only if its permissions are
 * already 0600 or narrower (a broader file may already have leaked, and replacing its content
 * would hide that); the directory must exist.
 */
export function keepToken(path: string, token: string): void {
  checkToken(token, "keep");
  const st = checkKeepFile(path);
  let fd: number;
  try {
    fd = fs.openSync(path, st ? fs.constants.O_WRONLY | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW : fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new VfioctlError("UNSAFE_FILE", `--keep ${path}: ${code}`, { subject: path, errno: code, fix: code === "ENOENT" ? "create the directory first" : "choose a writable path" });
  }
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeSync(fd, token + "\n");
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Check that `path` may receive a token (see keepToken) without writing anything: returns its
 * stat when it exists, null when it will be created. Throws UNSAFE_FILE otherwise.
 */
export function checkKeepFile(path: string): fs.Stats | null {
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
      const code = (e as NodeJS.ErrnoException).code ?? "EIO";
      throw new VfioctlError("UNSAFE_FILE", `--keep ${path}: ${code}`, { subject: path, errno: code });
    }
  }
  if (st) {
    if (!st.isFile()) throw new VfioctlError("UNSAFE_FILE", `--keep ${path}: expected a regular file, got a ${st.isSymbolicLink() ? "symbolic link" : "non-regular file"}`, { subject: path, fix: "name a new file or an existing regular file with mode 0600" });
    if (st.mode & 0o077) {
      throw new VfioctlError("UNSAFE_FILE", `--keep ${path}: expected mode 0600 or narrower, got ${(st.mode & 0o777).toString(8).padStart(4, "0")} (other users may already have read it)`, {
        subject: path,
        fix: `remove it or chmod 600 ${path} first, and consider rotating any token it held`,
      });
    }
  } else {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
    if (!fs.existsSync(dir)) throw new VfioctlError("UNSAFE_FILE", `--keep ${path}: ENOENT (directory ${dir} does not exist)`, { subject: path, errno: "ENOENT", fix: `mkdir -m 700 ${dir}` });
  }
  return st;
}

/** How a token is shown when --show-token is not given. */
export const TOKEN_PLACEHOLDER = "<VF-TOKEN>";
