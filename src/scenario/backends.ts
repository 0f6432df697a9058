/**
 * Backends for the scenario runner: the kernel model booted from the scenario's host file, or a
 * real Linux host (the lab's guests) through `LinuxSyscalls`.
 *
 * @example
 * ```ts
 * import { loadScenario, modelBackend, linuxBackend, runScenario } from "./index.js";
 * const sc = loadScenario("scenarios/sriov-numvfs.yaml");
 * const onModel = await runScenario(sc, await modelBackend(sc, { profile: "6.1" }));
 * const onGuest = await runScenario(sc, await linuxBackend({ profile: "6.1", blockWindowMs: 1500 }));
 * ```
 */
import * as nodePath from "node:path";
import { bootHostFile, bootKernel } from "../kernel/host/boot.js";
import type { KernelConfig, KernelVersion } from "../kernel/profile.js";
import type { ScenarioBackend } from "./runner.js";
import type { Scenario } from "./scenario.js";

/** The model host a scenario names (`host:`, relative to the file), else scenarios/hosts/lab-igb.yaml next to it. */
export function scenarioHostPath(sc: Scenario, override?: string): string {
  if (override) return override;
  return nodePath.resolve(sc.dir, sc.host ?? "hosts/lab-igb.yaml");
}

/** Boot a fresh model for a scenario. */
export async function modelBackend(sc: Scenario, opts: { profile?: string; config?: Partial<KernelConfig>; host?: string; seed?: number } = {}): Promise<ScenarioBackend> {
  const profile = (opts.profile ?? sc.profiles[0] ?? "6.1") as KernelVersion;
  const host = scenarioHostPath(sc, opts.host);
  const ko = opts.config ? { profile, config: opts.config } : { profile };
  const kernel = host === "default" ? await bootKernel(undefined, ko) : await bootHostFile(host, ko);
  return { kind: "model", kernel, profile, blockWindowMs: 0, spawn: async (comm) => kernel.spawn(comm) };
}

/** A real Linux host: every process is a fresh `LinuxSyscalls` (its own fd table). */
export async function linuxBackend(opts: { profile: string; blockWindowMs?: number; settleMs?: number; root?: string }): Promise<ScenarioBackend> {
  const { LinuxSyscalls } = await import("../sys/linux/host.js");
  return {
    kind: "linux",
    profile: opts.profile,
    blockWindowMs: opts.blockWindowMs ?? 1500,
    settleMs: opts.settleMs ?? 300,
    spawn: async () => new LinuxSyscalls(opts.root ? { root: opts.root } : {}),
  };
}
