/**
 * User pointers inside an ioctl struct. Most VFIO structs are flat (the kernel reads `argsz`
 * bytes at the address it is given), but a few carry the address of another user buffer — e.g.
 * `vfio_device_bind_iommufd.token_uuid_ptr` points to the 16 VF-token bytes. The seam passes a
 * struct as one Buffer, so such a field is recorded next to the Buffer: which 8 bytes hold a
 * pointer, and which Buffer it points to.
 *
 * - the Linux backend writes each target's real address into those bytes just before ioctl(2)
 *   (src/sys/linux/ioctl.ts), so the kernel reads the target's memory;
 * - the kernel model reads a placeholder address there and resolves it with {@link readUserPointer}
 *   (copy_from_user: a null or unknown address faults, EFAULT).
 *
 * @example
 * ```ts
 * import { setUserPointer } from "vfioctl";
 * const token = Buffer.alloc(16);
 * const bind = Buffer.alloc(24);
 * setUserPointer(bind, 16, token); // bind[16..24) now holds a pointer to `token`
 * ```
 */

export interface UserPointer {
  /** byte offset of the u64 address inside the struct */
  offset: number;
  /** the user buffer it points to */
  target: Buffer;
}

const POINTERS = new WeakMap<Buffer, UserPointer[]>();
/**
 * Whether any struct has been given a user pointer in this process: until then every struct is
 * flat, and userPointers answers without a WeakMap lookup (most processes never make one; a
 * lookup is a measurable part of an ioctl's cost through the seam).
 */
let anyPointers = false;
/** what a flat struct has (one array for all: userPointers is on every ioctl's path) */
const NONE: readonly UserPointer[] = Object.freeze([]);
const PLACEHOLDERS = new WeakMap<Buffer, bigint>();
let nextPlaceholder = 0x7fff_0000_0000n;

/** A stable non-zero fake address for a user buffer (what the model sees in the struct). */
function placeholderOf(target: Buffer): bigint {
  let a = PLACEHOLDERS.get(target);
  if (a === undefined) {
    a = nextPlaceholder;
    nextPlaceholder += 0x1000n;
    PLACEHOLDERS.set(target, a);
  }
  return a;
}

/** Make `buf[offset..offset+8)` a pointer to `target` (little-endian u64). */
export function setUserPointer(buf: Buffer, offset: number, target: Buffer): void {
  const list = (POINTERS.get(buf) ?? []).filter((p) => p.offset !== offset);
  list.push({ offset, target });
  POINTERS.set(buf, list);
  anyPointers = true;
  buf.writeBigUInt64LE(placeholderOf(target), offset);
}

/** The user pointers recorded for a struct buffer (none for a flat struct). */
export function userPointers(buf: Buffer): readonly UserPointer[] {
  return anyPointers ? (POINTERS.get(buf) ?? NONE) : NONE;
}

/**
 * copy_from_user of `len` bytes from the address stored at `buf[offset..offset+8)`: the target's
 * bytes, or null (EFAULT) when the address is 0, unknown, or the target is shorter than `len`.
 */
export function readUserPointer(buf: Buffer, offset: number, len: number): Buffer | null {
  if (buf.length < offset + 8) return null;
  const addr = buf.readBigUInt64LE(offset);
  if (addr === 0n) return null;
  const p = userPointers(buf).find((x) => x.offset === offset && placeholderOf(x.target) === addr);
  if (!p || p.target.length < len) return null;
  return Buffer.from(p.target.subarray(0, len));
}
