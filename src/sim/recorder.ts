/**
 * The recording side of a persisted simulated host: a {@link Syscalls} wrapper around one model
 * process that appends a `call` record before each state-changing syscall runs and a `done`
 * record when it completes (see src/sim/log.ts for the records).
 *
 * Recorded: opens of files under /dev and opens for writing, and on the fds they return (plus
 * device fds from VFIO_GROUP_GET_DEVICE_FD and eventfds) writes, ioctls, lseeks and closes;
 * eventfd; exit. Not recorded: reads, readdir, readlink, stat, lstat and read-only opens
 * outside /dev (they do not change kernel state) — except a call that an injected fault made
 * fail, which is recorded so that replay uses the fault up the same way.
 */
import { posix } from "node:path";
import { isErrno } from "../sys/errno.js";
import { O_ACCMODE, O_RDONLY, type FileRead, type ReadFilesOptions, type Stat, type Syscalls } from "../sys/syscalls.js";
import { readFilesEach } from "../sys/batch.js";
import type { Kernel } from "../kernel/kernel.js";
import type { ModelProcess } from "../kernel/process.js";
import { VFIO, VFIO_IRQ_SET_DATA_EVENTFD } from "../uapi/vfio.js";
import { encodeData, type CallBody, type CallRec, type DoneRec, type Rec } from "./log.js";
import { scrubSecrets, type TokenStore } from "./secrets.js";

/** What a recording process needs from its session. */
export interface RecorderHost {
  readonly kernel: Kernel;
  readonly tokens: TokenStore;
  /** true while the session is open and still on boot `gen` (a reboot or the end of the invocation stops recording) */
  recording(gen: number): boolean;
  nextCallId(): number;
  append(r: Rec): void;
  /** the process has exited (a holder is gone) */
  exited(pid: number): void;
}

/** Whether an open(2) changes kernel state enough to be recorded. */
export function recordsOpen(path: string, flags: number): boolean {
  return posix.normalize(path).startsWith("/dev/") || (flags & O_ACCMODE) !== O_RDONLY;
}

/** Offsets of fd numbers inside an ioctl's argument struct (they are renumbered on replay). */
export function fdOffsets(req: number, buf: Buffer): number[] {
  if (req === VFIO.GROUP_SET_CONTAINER) return buf.length >= 4 ? [0] : [];
  // vfio_device_bind_iommufd.iommufd (the token_uuid_ptr target is not recorded: a bind with a
  // token does not replay)
  if (req === VFIO.DEVICE_BIND_IOMMUFD) return buf.length >= 12 && buf.readInt32LE(8) >= 0 ? [8] : [];
  if (req === VFIO.DEVICE_SET_IRQS && buf.length >= 20 && buf.readUInt32LE(4) & VFIO_IRQ_SET_DATA_EVENTFD) {
    const out: number[] = [];
    const count = buf.readUInt32LE(16);
    for (let i = 0; i < count && 20 + 4 * i + 4 <= buf.length; i++) out.push(20 + 4 * i);
    return out;
  }
  return [];
}

export function failureOf(e: unknown): Pick<DoneRec, "errno" | "error"> {
  return isErrno(e) ? { errno: e.code } : { error: e instanceof Error ? e.message : String(e) };
}

export class RecordingProcess implements Syscalls {
  readonly backend = "model" as const;
  /** fds whose use is recorded */
  private recorded = new Set<number>();

  constructor(
    readonly inner: ModelProcess,
    private readonly h: RecorderHost,
    /** the boot this process belongs to */
    readonly gen: number,
  ) {}

  get pid(): number {
    return this.inner.pid;
  }
  get comm(): string {
    return this.inner.comm;
  }

  private record<T>(body: CallBody, run: () => Promise<T>, onOk?: (v: T) => Partial<DoneRec>): Promise<T> {
    if (!this.h.recording(this.gen)) return run();
    const id = this.h.nextCallId();
    this.h.append({ t: "call", id, pid: this.pid, ...body } as CallRec);
    return run().then(
      (v) => {
        if (this.h.recording(this.gen)) this.h.append({ t: "done", id, ...(typeof v === "number" ? { ret: v } : {}), ...onOk?.(v) });
        return v;
      },
      (e: unknown) => {
        if (this.h.recording(this.gen)) this.h.append({ t: "done", id, ...failureOf(e) });
        throw e;
      },
    );
  }

  /** An unrecorded call, unless an injected fault failed it (then it is recorded after the fact). */
  private passthrough<T>(body: () => CallBody, run: () => Promise<T>): Promise<T> {
    const before = this.h.kernel.faults.taken;
    const p = run();
    if (this.h.kernel.faults.taken === before || !this.h.recording(this.gen)) return p;
    const id = this.h.nextCallId();
    this.h.append({ t: "call", id, pid: this.pid, ...body() } as CallRec);
    return p.then(
      (v) => {
        if (this.h.recording(this.gen)) this.h.append({ t: "done", id, ...(typeof v === "number" ? { ret: v } : {}) });
        return v;
      },
      (e: unknown) => {
        if (this.h.recording(this.gen)) this.h.append({ t: "done", id, ...failureOf(e) });
        throw e;
      },
    );
  }

  private newFd = (v: number): Partial<DoneRec> => {
    this.recorded.add(v);
    return { fd: true };
  };

  open(path: string, flags: number): Promise<number> {
    if (!recordsOpen(path, flags)) return this.passthrough(() => ({ sc: "open", path, flags }), () => this.inner.open(path, flags));
    return this.record({ sc: "open", path, flags }, () => this.inner.open(path, flags), this.newFd);
  }

  close(fd: number): Promise<void> {
    if (!this.recorded.has(fd)) return this.inner.close(fd);
    this.recorded.delete(fd);
    return this.record({ sc: "close", fd }, () => this.inner.close(fd));
  }

  read(fd: number, length: number): Promise<Buffer> {
    return this.inner.read(fd, length);
  }

  private writeBody(fd: number, data: Buffer | string): CallBody {
    const b = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    const { buf, secrets } = scrubSecrets(this.h.tokens, b);
    return { sc: "write", fd, ...encodeData(buf), ...(secrets.length ? { secrets } : {}) };
  }

  write(fd: number, data: Buffer | string): Promise<number> {
    if (!this.recorded.has(fd)) return this.passthrough(() => this.writeBody(fd, data), () => this.inner.write(fd, data));
    return this.record(this.writeBody(fd, data), () => this.inner.write(fd, data));
  }

  lseek(fd: number, offset: number, whence: number): Promise<number> {
    if (!this.recorded.has(fd)) return this.inner.lseek(fd, offset, whence);
    return this.record({ sc: "lseek", fd, offset, whence }, () => this.inner.lseek(fd, offset, whence));
  }

  private ioctlBody(fd: number, request: number, arg: Buffer | number | undefined): CallBody {
    const req = request >>> 0;
    if (typeof arg === "number") return { sc: "ioctl", fd, req, int: arg };
    if (!arg) return { sc: "ioctl", fd, req };
    const { buf, secrets } = scrubSecrets(this.h.tokens, arg, req);
    const fds = fdOffsets(req, arg);
    return { sc: "ioctl", fd, req, hex: buf.toString("hex"), ...(fds.length ? { fds } : {}), ...(secrets.length ? { secrets } : {}) };
  }

  ioctl(fd: number, request: number, arg?: Buffer | number): Promise<number> {
    if (!this.recorded.has(fd)) return this.passthrough(() => this.ioctlBody(fd, request, arg), () => this.inner.ioctl(fd, request, arg));
    const before = new Set(this.inner.fdNumbers());
    // the body is taken before the call: the kernel writes its output into the same buffer
    return this.record(this.ioctlBody(fd, request, arg), () => this.inner.ioctl(fd, request, arg), (v) => (v >= 0 && !before.has(v) && this.inner.fileOf(v) ? this.newFd(v) : {}));
  }

  eventfd(initval: number, flags: number): Promise<number> {
    return this.record({ sc: "eventfd", initval, flags }, () => this.inner.eventfd(initval, flags), this.newFd);
  }

  /**
   * The model's batch reads, unrecorded as the single reads are: a read-only open outside /dev
   * is not recorded, unless an injected fault fails it. So with a fault rule set, or a path
   * under /dev, the files are read one by one through {@link open} (recorded as they must be).
   */
  readonly readFiles = (paths: readonly string[], opts: ReadFilesOptions): Promise<FileRead[]> =>
    this.h.kernel.faults.list().length === 0 && !paths.some((p) => recordsOpen(p, O_RDONLY)) ? this.inner.readFiles(paths, opts) : readFilesEach(this, paths, opts);
  readonly readlinks = (paths: readonly string[]) => this.inner.readlinks(paths);
  readonly lstats = (paths: readonly string[]) => this.inner.lstats(paths);
  readonly stats = (paths: readonly string[]) => this.inner.stats(paths);
  readonly readdirs = (paths: readonly string[]) => this.inner.readdirs(paths);

  readlink(path: string): Promise<string> {
    return this.inner.readlink(path);
  }
  readdir(path: string): Promise<string[]> {
    return this.inner.readdir(path);
  }
  stat(path: string): Promise<Stat> {
    return this.inner.stat(path);
  }
  lstat(path: string): Promise<Stat> {
    return this.inner.lstat(path);
  }

  async exit(): Promise<void> {
    if (this.inner.exited) return;
    this.recorded.clear();
    await this.record({ sc: "exit" }, () => this.inner.exit());
    this.h.exited(this.pid);
  }
}
