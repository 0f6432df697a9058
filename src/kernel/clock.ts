/**
 * Injected time and randomness for the kernel model. Tests fix both; the default host uses a
 * deterministic RNG seed so runs are reproducible unless a caller asks for crypto randomness.
 */
import { createRequire } from "node:module";

interface Timer {
  due: number;
  resolve: () => void;
}

/** Monotonic model time in nanoseconds. Time only moves when `advance` is called (or `auto`). */
export class Clock {
  private ns = 0n;
  private timers: Timer[] = [];

  /** Nanoseconds since boot. */
  now(): bigint {
    return this.ns;
  }
  nowMs(): number {
    return Number(this.ns / 1_000_000n);
  }
  /** Move time forward, firing every kernel timer that falls due (in order). */
  advance(ms: number): void {
    const target = this.ns + BigInt(Math.round(ms * 1e6));
    for (;;) {
      this.timers.sort((a, b) => a.due - b.due);
      const t = this.timers[0];
      if (!t || BigInt(Math.round(t.due * 1e6)) > target) break;
      this.timers.shift();
      this.ns = BigInt(Math.round(t.due * 1e6));
      t.resolve();
    }
    this.ns = target;
  }
  /** A kernel-side sleep: resolves when model time has advanced by `ms`. */
  sleep(ms: number): Promise<void> {
    return this.sleepUntil(this.nowMs() + ms);
  }
  /**
   * Sleep until an absolute model time (ms). A deadline already reached resolves at once, so a
   * loop that re-arms itself from its own schedule (start + 10 s·k) catches up after one big
   * `advance` instead of seeing only the first of its timeouts.
   */
  sleepUntil(dueMs: number): Promise<void> {
    if (dueMs <= this.nowMs()) return Promise.resolve();
    return new Promise((resolve) => this.timers.push({ due: dueMs, resolve }));
  }
}

/** Source of random bytes (the kernel's get_random_bytes / uuid_gen). */
export interface Rng {
  bytes(n: number): Buffer;
}

/** xorshift128+ seeded RNG: reproducible model runs. */
export class SeededRng implements Rng {
  private s0: bigint;
  private s1: bigint;
  constructor(seed = 0x5eed) {
    this.s0 = BigInt(seed) ^ 0x9e3779b97f4a7c15n;
    this.s1 = (BigInt(seed) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
    if (this.s0 === 0n && this.s1 === 0n) this.s1 = 1n;
    for (let i = 0; i < 8; i++) this.next();
  }
  private next(): bigint {
    const M = 0xffffffffffffffffn;
    let x = this.s0;
    const y = this.s1;
    this.s0 = y;
    x ^= (x << 23n) & M;
    this.s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (this.s1 + y) & M;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i += 8) {
      const v = this.next();
      for (let j = 0; j < 8 && i + j < n; j++) b[i + j] = Number((v >> BigInt(8 * j)) & 0xffn);
    }
    return b;
  }
}

/** The kernel's CSPRNG: node:crypto, loaded with the first CryptoRng (the default host's seeded RNG needs none of it). */
export class CryptoRng implements Rng {
  private readonly randomBytes = (createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto")).randomBytes;
  bytes(n: number): Buffer {
    return this.randomBytes(n);
  }
}

/** lib/uuid.c uuid_gen: random bytes with version 4 and the RFC 4122 variant. */
export function uuidGen(rng: Rng): Buffer {
  const b = rng.bytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}
