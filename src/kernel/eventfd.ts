/** fs/eventfd.c: a counter; read returns and clears it (EAGAIN when 0 and non-blocking). */
import { ERRNO } from "../sys/errno.js";
import { O_NONBLOCK } from "../sys/syscalls.js";
import type { OpenFile } from "./fs/file.js";
import type { Task } from "./kernel.js";
import { WaitQueue } from "./sync.js";
import { SysErrorCode } from "./errors.js";

export class EventFdFile implements OpenFile {
  readonly procLink = "anon_inode:[eventfd]";
  refs = 0;
  count = 0n;
  /** how many times the kernel signalled it (for observers) */
  signals = 0;
  private wq = new WaitQueue();
  constructor(
    initval: number,
    public flags: number,
  ) {
    this.count = BigInt(initval >>> 0);
  }
  signal(n: number): void {
    this.count += BigInt(n);
    this.signals++;
    this.wq.wakeAll();
  }
  async read(_task: Task, len: number): Promise<Buffer> {
    if (len < 8) throw new SysErrorCode(ERRNO.EINVAL);
    while (this.count === 0n) {
      if (this.flags & O_NONBLOCK) throw new SysErrorCode(ERRNO.EAGAIN);
      await this.wq.wait();
    }
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(this.count);
    this.count = 0n;
    return b;
  }
  async write(_task: Task, data: Buffer): Promise<number> {
    if (data.length < 8) throw new SysErrorCode(ERRNO.EINVAL);
    const v = data.readBigUInt64LE(0);
    if (v === 0xffffffffffffffffn) throw new SysErrorCode(ERRNO.EINVAL);
    this.signal(0);
    this.count += v;
    this.signals--;
    return 8;
  }
}
