/**
 * The executable model of the Linux kernel side of vfio-pci SR-IOV: PCI with SR-IOV, the driver
 * core and sysfs, VFIO container/group/device, vfio-pci with the VF token, pci-pf-stub and the
 * kernel log, behind the same syscalls seam as a real host.
 *
 * Model-only controls (spawn a process, advance the clock, send a signal, list blocked tasks,
 * inject faults) are methods here, never part of the shared `Syscalls` interface.
 *
 * @example
 * ```ts
 * import { Kernel, readAttr } from "vfioctl";
 * const k = Kernel.withDefaultHost({ profile: "6.12" });
 * const sh = k.spawn("sh");
 * await readAttr(sh, "/sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs"); // "8"
 * ```
 */
import { createRequire } from "node:module";
import { Clock, SeededRng, type Rng } from "./clock.js";
import { DriverCore } from "./base/driver-core.js";
import { Faults } from "./faults.js";
import { HostDriver, BUILTIN_HOST_DRIVERS, type HostDriverSpec } from "./drivers/host-driver.js";
import { SysfsTrees } from "./fs/sysfs.js";
import { Vfs } from "./fs/vfs.js";
import { IommuCore } from "./iommu.js";
import { KernelLog } from "./printk.js";
import { profileOf, type KernelConfig, type KernelProfile, type KernelVersion } from "./profile.js";
import { PciCore } from "./pci/core.js";
import { PciPfStubDriver } from "./pci/pci-pf-stub.js";
import type { PciDev } from "./pci/pci.js";
import { ModelProcess, type SpawnOptions } from "./process.js";
import { NetCore } from "./net.js";
import { BlockCore } from "./block.js";
import { VfioCore } from "./vfio/vfio_main.js";
import { VfioPciDriver } from "./vfio/pci/vfio_pci_core.js";

/** One syscall in flight in the model ("current" for the code it runs). */
export interface Task {
  readonly pid: number;
  readonly comm: string;
  readonly syscall: string;
  readonly path?: string;
  /** what the task sleeps on, or null while running */
  waiting: string | null;
  /** model time (ms) when it started waiting */
  since: number;
  /** resolves when a signal is sent to the task's process */
  signalled(): Promise<void>;
}

/** A task that is sleeping in the kernel: what a caller sees as a blocked syscall. */
export interface BlockedTask {
  pid: number;
  comm: string;
  syscall: string;
  path?: string;
  waitingOn: string;
  sinceMs: number;
}

export interface KernelOptions {
  /** any version string (src/kernel/versions.ts); "6.1" (default) and "6.12" are the lab's Debian kernels */
  profile?: KernelVersion;
  /** build options; absent fields take the version's default (profile.ts defaultConfig) */
  config?: Partial<KernelConfig>;
  clock?: Clock;
  rng?: Rng;
}

/**
 * A kobject uevent of a PCI device (lib/kobject_uevent.c), as udevd would receive it: `add` and
 * `remove` from device_add/device_del, `bind` and `unbind` from the driver core (dd.c). `driver`
 * is the driver bound (bind) or just unbound (unbind); like Linux, an unbind event carries no
 * DRIVER= property, so udev's DRIVER== does not see it there. A `synth` event was written to the
 * device's `uevent` file (kobject_synth_uevent, as `udevadm trigger --action=…` does): its
 * properties are the device's as they are at the write (dev_uevent adds DRIVER= whenever the
 * device is bound, whatever the action, also unbind) and SYNTH_UUID=0.
 */
export interface Uevent {
  seq: number;
  action: "add" | "remove" | "bind" | "unbind";
  /** DEVPATH: the device's sysfs path without "/sys" */
  devpath: string;
  subsystem: "pci";
  /** the device name (udev's KERNEL / %k) */
  kernel: string;
  driver?: string;
  synth?: true;
}

/** How many uevents the model keeps until `takeUevents()`; older ones are dropped (and counted). */
export const UEVENT_QUEUE_MAX = 16384;

/**
 * One system call in progress. A class, and the signal's promise made only when the task waits
 * for one: most calls never sleep, and an object literal with a spread plus a promise per call
 * were most of a GET_DEVICE_FD + close cycle.
 */
class TaskImpl implements Task {
  /** set only for calls on a path (a field declared, not defined: absent otherwise) */
  declare readonly path?: string;
  waiting: string | null = null;
  since = 0;
  /** the Kernel's list of tasks in progress */
  prev: TaskImpl | null = null;
  next: TaskImpl | null = null;
  linked = true;
  #sig: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #fired = false;
  constructor(
    readonly pid: number,
    readonly comm: string,
    readonly syscall: string,
    path: string | undefined,
  ) {
    if (path !== undefined) this.path = path;
  }
  /** deliver a signal: signalled() resolves (now, or when it is first asked for) */
  fire(): void {
    this.#fired = true;
    this.#wake?.();
  }
  signalled(): Promise<void> {
    return (this.#sig ??= this.#fired ? Promise.resolve() : new Promise<void>((r) => (this.#wake = r)));
  }
}

export class Kernel {
  readonly profile: KernelProfile;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly log: KernelLog;
  readonly iommu = new IommuCore();
  /** ACPI PCI interrupt links set up in this boot (drivers/acpi/pci_link.c irq.initialized) */
  readonly acpiIrqLinks = new Set<string>();
  readonly pci: PciCore;
  readonly drivers: DriverCore;
  readonly vfio: VfioCore;
  readonly vfioPci = new VfioPciDriver();
  readonly pfStub = new PciPfStubDriver();
  readonly sysfs: SysfsTrees;
  readonly vfs: Vfs;
  readonly processes = new Map<number, ModelProcess>();
  /** model-only fault injection: `faults.add({ syscall: "write", path, errno: "EIO" })` */
  readonly faults = new Faults();
  /** network interfaces of the NIC drivers and what the host does with them (model property) */
  readonly net: NetCore;
  /** block devices of the storage driver and what the host does with them (model property) */
  readonly disks: BlockCore;
  private nextPid = 1000;
  /** the system calls in progress, oldest first: a doubly-linked list (one add and one remove per call, no hashing) */
  private taskHead: TaskImpl | null = null;
  private taskTail: TaskImpl | null = null;
  private ueventQueue: Uevent[] = [];
  private ueventSeqnum = 0;
  /** uevents dropped because the queue was full (model-only) */
  ueventsDropped = 0;
  /** /proc/stat btime: the wall-clock time of boot in seconds since the epoch (model-only, settable) */
  btime = Math.floor(Date.now() / 1000);
  private bootIdValue: string | undefined;
  /**
   * /proc/sys/kernel/random/boot_id: one random UUID per boot (model-only, settable; not drawn
   * from `rng`, so token sequences stay as they are). Drawn when first read: node:crypto is not
   * loaded for a boot that never reads it (`vfioctl --sim list`).
   */
  get bootId(): string {
    return (this.bootIdValue ??= (createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto")).randomUUID());
  }
  set bootId(id: string) {
    this.bootIdValue = id;
  }

  constructor(opts: KernelOptions = {}) {
    this.profile = profileOf(opts.profile ?? "6.1", opts.config);
    this.clock = opts.clock ?? new Clock();
    this.rng = opts.rng ?? new SeededRng();
    this.log = new KernelLog(this.clock);
    this.pci = new PciCore(this);
    this.drivers = new DriverCore(this);
    this.vfio = new VfioCore(this);
    this.sysfs = new SysfsTrees(this);
    this.net = new NetCore(this);
    this.disks = new BlockCore(this);
    this.vfs = new Vfs(this, (task) => this.sysfs.root(task));
    // the IOMMU core's bus notifier is registered at boot, before any driver's
    this.drivers.registerNotifier(this.pci.iommuNotifier);
    this.drivers.registerNotifier((_k, _t, ev, dev) => {
      if (ev === "add_device") this.sysfs.addDevicePath(dev);
      else if (ev === "del_device") this.sysfs.removeDevicePath(dev);
    });
  }

  /** Register the modelled host drivers (or the given specs), then pci-pf-stub and vfio-pci. */
  registerDrivers(specs: (HostDriverSpec | string)[] | undefined): void {
    const list = specs ?? BUILTIN_HOST_DRIVERS.map((s) => s.name).concat(["pci-pf-stub", "vfio-pci"]);
    for (const s of list) {
      if (s === "vfio-pci") this.drivers.registerDriver(this.vfioPci);
      else if (s === "pci-pf-stub") this.drivers.registerDriver(this.pfStub);
      else if (typeof s === "string") {
        const spec = BUILTIN_HOST_DRIVERS.find((b) => b.name === s);
        if (!spec) throw new Error(`drivers: unknown driver ${JSON.stringify(s)} (modelled: ${BUILTIN_HOST_DRIVERS.map((b) => b.name).join(", ")}, pci-pf-stub, vfio-pci)`);
        this.drivers.registerDriver(new HostDriver(spec));
      } else this.drivers.registerDriver(new HostDriver(s));
    }
    if (!this.drivers.driver("vfio-pci")) this.drivers.registerDriver(this.vfioPci);
  }

  /** Start a model process; its syscalls answer the seam (`opts`: a chroot, a container's mounts, its cgroup). */
  spawn(comm = "proc", opts: SpawnOptions = {}): ModelProcess {
    const p = new ModelProcess(this, this.nextPid++, comm, opts);
    this.processes.set(p.pid, p);
    return p;
  }

  /** Called by a process at exit. */
  reap(p: ModelProcess): void {
    this.processes.delete(p.pid);
  }

  /** Send a signal to a process: tasks in an interruptible kernel wait notice it. */
  signal(pid: number): void {
    for (let t = this.taskHead; t; t = t.next) if (t.pid === pid) t.fire();
  }

  /** Move model time forward (fires vfio's 10 s request timers, ends rate-limit windows). */
  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** Every syscall that is sleeping in the kernel right now. */
  blocked(): BlockedTask[] {
    const out: BlockedTask[] = [];
    for (let t = this.taskHead; t; t = t.next) {
      if (t.waiting) out.push({ pid: t.pid, comm: t.comm, syscall: t.syscall, ...(t.path ? { path: t.path } : {}), waitingOn: t.waiting, sinceMs: t.since });
    }
    return out;
  }

  beginTask(p: ModelProcess, syscall: string, path: string | undefined): Task {
    const t = new TaskImpl(p.pid, p.comm, syscall, path);
    t.prev = this.taskTail;
    if (this.taskTail) this.taskTail.next = t;
    else this.taskHead = t;
    this.taskTail = t;
    return t;
  }

  endTask(t: Task): void {
    const x = t as TaskImpl;
    if (!x.linked) return;
    x.linked = false;
    if (x.prev) x.prev.next = x.next;
    else this.taskHead = x.next;
    if (x.next) x.next.prev = x.prev;
    else this.taskTail = x.prev;
    x.prev = x.next = null;
  }

  /** Sleep `task` on `p`, visible in blocked() meanwhile. */
  async block<T>(task: Task, what: string, p: Promise<T>): Promise<T> {
    const prev = task.waiting;
    task.waiting = what;
    task.since = this.clock.nowMs();
    try {
      return await p;
    } finally {
      task.waiting = prev;
    }
  }

  /** device_lock(dev) around fn; a task that has to wait shows up in blocked(). */
  async withDeviceLock<T>(task: Task, dev: PciDev, fn: () => Promise<T> | T): Promise<T> {
    if (dev.lock.wouldBlock()) await this.block(task, `device_lock ${dev.name} (held by ${dev.lock.owner})`, dev.lock.lock(`${task.comm}[${task.pid}] ${task.syscall}`));
    else await dev.lock.lock(`${task.comm}[${task.pid}] ${task.syscall}`);
    try {
      return await fn();
    } finally {
      dev.lock.unlock();
    }
  }

  /**
   * {@link withDeviceLock} for a synchronous `fn`: with the lock free, taken, fn run and the lock
   * given back in this call, its value returned without a Promise (nothing else runs while it is
   * held); else the waiting withDeviceLock.
   */
  withDeviceLockNow<T>(task: Task, dev: PciDev, fn: () => T): T | Promise<T> {
    if (!dev.lock.tryLock(`${task.comm}[${task.pid}] ${task.syscall}`)) return this.withDeviceLock(task, dev, fn);
    try {
      return fn();
    } finally {
      dev.lock.unlock();
    }
  }

  /** A task for work the kernel does on its own (boot). */
  kernelTask(): Task {
    return { pid: 0, comm: "swapper/0", syscall: "boot", waiting: null, since: 0, signalled: () => new Promise(() => {}) };
  }

  /** Queue a uevent for `dev` (called by the driver core). Bounded: the oldest is dropped when full. */
  uevent(action: Uevent["action"], dev: PciDev, driver?: string, synth = false): void {
    this.ueventQueue.push({ seq: ++this.ueventSeqnum, action, devpath: dev.sysfsDir.replace(/^\/sys/, ""), subsystem: "pci", kernel: dev.name, ...(driver !== undefined ? { driver } : {}), ...(synth ? { synth: true as const } : {}) });
    if (this.ueventQueue.length > UEVENT_QUEUE_MAX) {
      // drop the oldest quarter at once, so a full queue costs O(1) per event on average
      const n = this.ueventQueue.length - (UEVENT_QUEUE_MAX * 3) / 4;
      this.ueventQueue.splice(0, n);
      this.ueventsDropped += n;
    }
  }

  /** Model-only: every uevent queued since the last call, oldest first (what a udevd would read). */
  takeUevents(): Uevent[] {
    return this.ueventQueue.splice(0);
  }

  /** The PCI device with this name, if present. */
  device(bdf: string): PciDev | undefined {
    return this.pci.devices.get(bdf);
  }
}
