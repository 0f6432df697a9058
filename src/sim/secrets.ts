/**
 * Keeping VF tokens out of the record log of a persisted simulated host.
 *
 * The rule: a secret the kernel receives — the value after `vf_token=` in a
 * VFIO_GROUP_GET_DEVICE_FD match string (or in any recorded write), and the 16-byte UUID of a
 * VFIO_DEVICE_FEATURE SET PCI_VF_TOKEN — is recorded only as zero bytes plus a reference,
 * `{off, len, ref}`, where `ref` is HMAC-SHA256 of the value under a random per-boot key. The
 * value itself, which replay must hand to the kernel again, lives only in the simulated host's
 * protected state: `DIR/root/var/lib/vfioctl/sim-tokens` (mode 0600 in a 0700 folder; JSON
 * `{"v":1,"key":"<hex>","values":{"<ref>":"<hex of the bytes>"}}`), the stand-in for the
 * kernel's memory. The key lives in the same file, so the log alone does not even let one test
 * a guessed token. A reboot deletes the file (the kernel forgets every token at reboot).
 * The store is written (temp file + rename) before the record that refers to it.
 */
import { createHmac, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { VFIO, VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, VFIO_DEVICE_FEATURE_SET } from "../uapi/vfio.js";
import { SimStateError, type SecretRef } from "./log.js";

/** The host path of the token store (under the simulated host's root). */
export const TOKEN_STORE = "/var/lib/vfioctl/sim-tokens";

interface StoreFile {
  v: 1;
  key: string;
  values: Record<string, string>;
}

export class TokenStore {
  private data: StoreFile | null = null;

  constructor(
    readonly file: string,
    private readonly dir: string,
  ) {}

  private load(): StoreFile {
    if (this.data) return this.data;
    if (existsSync(this.file)) {
      try {
        const d = JSON.parse(readFileSync(this.file, "utf8")) as StoreFile;
        if (d.v !== 1 || typeof d.key !== "string" || typeof d.values !== "object") throw new Error("bad format");
        this.data = d;
      } catch (e) {
        throw new SimStateError(this.dir, `${this.file}: unreadable token store (${(e as Error).message})`);
      }
    } else this.data = { v: 1, key: randomBytes(32).toString("hex"), values: {} };
    return this.data;
  }

  private save(): void {
    const d = this.load();
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    chmodSync(dirname(this.file), 0o700);
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(d) + "\n", { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.file);
  }

  /** The reference for these bytes; the value is stored (and persisted) first. */
  ref(value: Buffer): string {
    const d = this.load();
    const ref = createHmac("sha256", Buffer.from(d.key, "hex")).update(value).digest("hex");
    if (d.values[ref] === undefined) {
      d.values[ref] = value.toString("hex");
      this.save();
    }
    return ref;
  }

  value(ref: string): Buffer {
    const v = this.load().values[ref];
    if (v === undefined) throw new SimStateError(this.dir, `the token store ${this.file} has no value for a recorded token reference`);
    return Buffer.from(v, "hex");
  }

  /** Forget every token (reboot). */
  reset(): void {
    this.data = null;
    rmSync(this.file, { force: true });
  }
}

/**
 * Replace the secrets of a buffer the kernel will receive by zero bytes; returns the scrubbed
 * copy and the references (empty when there is nothing secret).
 */
export function scrubSecrets(store: TokenStore, buf: Buffer, ioctlReq?: number): { buf: Buffer; secrets: SecretRef[] } {
  const secrets: SecretRef[] = [];
  const out = Buffer.from(buf);
  const take = (off: number, len: number) => {
    if (len <= 0) return;
    secrets.push({ off, len, ref: store.ref(Buffer.from(buf.subarray(off, off + len))) });
    out.fill(0, off, off + len);
  };
  if (ioctlReq === VFIO.DEVICE_FEATURE && buf.length >= 24) {
    const flags = buf.readUInt32LE(4);
    if (flags & VFIO_DEVICE_FEATURE_SET && (flags & VFIO_DEVICE_FEATURE_MASK) === VFIO_DEVICE_FEATURE_PCI_VF_TOKEN) take(8, 16);
  } else if (ioctlReq === undefined || ioctlReq === VFIO.GROUP_GET_DEVICE_FD) {
    const s = buf.toString("latin1");
    const re = /vf_token=([^\s\0]*)/g;
    for (let m = re.exec(s); m; m = re.exec(s)) take(m.index + 9, m[1]!.length);
  }
  return { buf: out, secrets };
}

/** Put the stored secrets back into a recorded buffer. */
export function restoreSecrets(store: TokenStore, buf: Buffer, secrets: SecretRef[] | undefined): Buffer {
  for (const s of secrets ?? []) store.value(s.ref).copy(buf, s.off, 0, s.len);
  return buf;
}
