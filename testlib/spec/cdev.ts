/**
 * Helpers for the cdev table tests: find a device's /dev/vfio/devices node through sysfs (as the
 * kernel selftests do), open /dev/iommu with an IOAS, and bind with or without a token.
 */
import type { ModelProcess } from "../../src/kernel/process.js";
import { O_RDWR } from "../../src/sys/syscalls.js";
import { IOMMUFD, ioasAllocBuf } from "../../src/uapi/iommufd.js";
import { VFIO, bindIommufdBuf, type BindIommufdOptions } from "../../src/uapi/vfio.js";
import { attempt, dev } from "./index.js";

/** vfio-dev/vfio<N> of a device → "/dev/vfio/devices/vfio<N>" */
export async function cdevPath(sys: ModelProcess, bdf: string): Promise<string> {
  const names = await sys.readdir(`${dev(bdf)}/vfio-dev`);
  return `/dev/vfio/devices/${names[0]}`;
}

export interface Iommufd {
  fd: number;
  ioas: number;
}

/** open /dev/iommu and allocate an IOAS */
export async function openIommufd(sys: ModelProcess): Promise<Iommufd> {
  const fd = await sys.open("/dev/iommu", O_RDWR);
  const b = ioasAllocBuf();
  await sys.ioctl(fd, IOMMUFD.IOAS_ALLOC, b);
  return { fd, ioas: b.readUInt32LE(8) };
}

/** open the device's cdev node: the fd */
export async function openCdev(sys: ModelProcess, bdf: string): Promise<number> {
  return sys.open(await cdevPath(sys, bdf), O_RDWR);
}

/** BIND_IOMMUFD: out_devid, or the errno code */
export async function bind(sys: ModelProcess, cdevFd: number, iommufd: number, opts: BindIommufdOptions = {}): Promise<number | string> {
  const b = bindIommufdBuf(iommufd, opts);
  const r = await attempt(sys.ioctl(cdevFd, VFIO.DEVICE_BIND_IOMMUFD, b));
  return typeof r === "string" ? r : b.readUInt32LE(12);
}

/** The bind a user of each kernel would make: the 16-byte struct where the kernel has no token field. */
export function plainBind(legacy: boolean): BindIommufdOptions {
  return legacy ? { argsz: 16 } : {};
}
