/** Placeholder replaced by the persisted simulated host (record/replay under --state DIR). */
import type { GlobalOptions } from "../cli/context.js";
import type { Backend } from "../cli/main.js";
export async function openSimState(_dir: string, _opts: GlobalOptions): Promise<Backend> {
  throw new Error("--state: not available yet");
}
