/**
 * Kernel-style waiting in the model: a sleeping mutex (device_lock) and wait queues.
 * A task that waits is recorded in the kernel's blocked list so callers can observe it.
 */

export class WaitQueue {
  private waiters: (() => void)[] = [];
  /** Resolve when woken. */
  wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
  wakeAll(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
  get length(): number {
    return this.waiters.length;
  }
}

/** A sleeping lock (struct mutex / device_lock). Not recursive. */
export class Mutex {
  private held = false;
  private q: (() => void)[] = [];
  owner: string | null = null;

  get locked(): boolean {
    return this.held;
  }
  /** True when taking the lock now would sleep. */
  wouldBlock(): boolean {
    return this.held;
  }
  /** Take the lock if it is free (true), else leave it (false): mutex_trylock. */
  tryLock(owner = "?"): boolean {
    if (this.held) return false;
    this.held = true;
    this.owner = owner;
    return true;
  }
  async lock(owner = "?"): Promise<void> {
    if (!this.held) {
      this.held = true;
      this.owner = owner;
      return;
    }
    await new Promise<void>((r) => this.q.push(r));
    this.owner = owner;
  }
  unlock(): void {
    const next = this.q.shift();
    if (next) next();
    else {
      this.held = false;
      this.owner = null;
    }
  }
}
