/**
 * Device numbers as stat(2) reports them in `st_rdev` (glibc's dev_t encoding, which is what
 * `node:fs` gives as `Stats.rdev`), and as sysfs writes them in `dev` attributes ("242:7").
 *
 * glibc gnu_dev_makedev: bits 8-19 and 32-43 hold the major, bits 0-7 and 20-31 the minor, so
 * small numbers look like the old 16-bit `major << 8 | minor`.
 *
 * @example
 * ```ts
 * import { makedev, devName } from "vfioctl";
 * devName(makedev(10, 196)); // "10:196" (/dev/vfio/vfio)
 * ```
 */

/** st_rdev for major:minor (glibc encoding). */
export function makedev(major: number, minor: number): number {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return Number(((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn));
}

export function major(rdev: number): number {
  const d = BigInt(rdev);
  return Number(((d >> 32n) & 0xfffff000n) | ((d >> 8n) & 0xfffn));
}

export function minor(rdev: number): number {
  const d = BigInt(rdev);
  return Number(((d >> 12n) & 0xffffff00n) | (d & 0xffn));
}

/** "major:minor", as sysfs `dev` attributes and `ls -l` show it. */
export const devName = (rdev: number): string => `${major(rdev)}:${minor(rdev)}`;

/** Parse a sysfs `dev` attribute ("242:7\n") into st_rdev; null when it is not one. */
export function parseDevAttr(s: string): number | null {
  const m = /^(\d{1,7}):(\d{1,8})\s*$/.exec(s);
  return m ? makedev(Number(m[1]), Number(m[2])) : null;
}
