/**
 * lib/idr.c's IDA as the model needs it: ida_alloc gives the lowest free id (≥ a minimum),
 * ida_free gives one back. A hint of the lowest id that may be free keeps n allocations in a
 * row O(n) in all, not O(n²) (a 16 × 256 host allocates thousands of group and device ids).
 *
 * @example
 * ```ts
 * import { Ida } from "./ida.js";
 * const ida = new Ida();
 * ida.alloc(); // 0
 * ida.alloc(); // 1
 * ida.free(0);
 * ida.alloc(); // 0 again: the lowest free one
 * ```
 */
export class Ida {
  private readonly used = new Set<number>();
  /** every id below this one is in use */
  private lowest: number;

  constructor(private readonly min = 0) {
    this.lowest = min;
  }

  /** ida_alloc_min: the lowest free id. */
  alloc(): number {
    while (this.used.has(this.lowest)) this.lowest++;
    const id = this.lowest;
    this.used.add(id);
    this.lowest++;
    return id;
  }

  /** Take a given id (a host file that names it); it must be free to matter. */
  reserve(id: number): void {
    this.used.add(id);
  }

  /** ida_free. */
  free(id: number): void {
    if (!this.used.delete(id)) return;
    if (id < this.lowest && id >= this.min) this.lowest = id;
  }

  has(id: number): boolean {
    return this.used.has(id);
  }
}
