/**
 * struct file in the model: what an fd points at. Each kind (sysfs attribute, /dev/vfio node,
 * anon-inode device file, eventfd, /dev/kmsg) implements the file operations it supports; the
 * rest answer as Linux does for a missing f_op (EINVAL for read/write, ENOTTY for ioctl).
 */
import type { Task } from "../kernel.js";
import type { ModelProcess } from "../process.js";

export interface OpenFile {
  /** what /proc/<pid>/fd/<n> links to ("/dev/vfio/21", "anon_inode:[vfio-device]") */
  readonly procLink: string;
  flags: number;
  /** references: fds in any table plus kernel-held references (a device file pins its group file) */
  refs: number;
  read?(task: Task, len: number): Promise<Buffer>;
  write?(task: Task, data: Buffer): Promise<number>;
  ioctl?(task: Task, proc: ModelProcess, req: number, arg: Buffer | number | undefined): Promise<number>;
  lseek?(offset: number, whence: number): number;
  /** f_op->release: runs when the last reference goes away */
  release?(task: Task): void;
}

export function getFile(f: OpenFile): OpenFile {
  f.refs++;
  return f;
}

export function putFile(task: Task, f: OpenFile): void {
  if (--f.refs === 0) f.release?.(task);
}
