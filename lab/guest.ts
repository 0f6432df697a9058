/**
 * Entry point inside a lab guest (run by the run folder's run.sh, chrooted into the host's root):
 *   node dist/lab/guest.js /tmp/job.json
 * Jobs: { kind: "raw", kernel, sequence }     one raw sequence (or "boot") → /tmp/<kernel>-<seq>.{txt,json}
 *       { kind: "probe", kernel }             prove node, LinuxSyscalls and the ioctl work on /dev/vfio
 *       { kind: "scenarios", kernel, files }  conformance: each scenario file → /tmp/scn/<name>.json
 *       { kind: "cli", kernel }               CLI conformance (lab/cli-check.ts) → /tmp/cli.json
 *       { kind: "consumers", kernel, consumers: { row, trixie } }   a consumer row (lab/consumers.ts) → /tmp/consumers.json
 *       { kind: "selftest", kernel, cache }   the kernel's sriov uapi selftest, its port, the cdev checks (lab/selftest.ts) → /tmp/selftest.json
 *       { kind: "attrs", kernel }             the PF's and VFs' sysfs entries in four states (lab/sysfs-attrs.ts) → /tmp/attrs.json
 * Writes /tmp/result.json { ok, ms, error? } last.
 */
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { LinuxSyscalls } from "../src/sys/linux/host.js";
import { ffiInfo } from "../src/sys/linux/ioctl.js";
import { O_RDWR } from "../src/sys/syscalls.js";
import { VFIO } from "../src/uapi/vfio.js";
import { Recorder } from "./record.js";
import { SEQUENCES, seqBoot } from "./sequences.js";
import { KmsgReader as Kmsg } from "../src/sys/kmsg.js";

interface Job {
  kind: "raw" | "probe" | "scenarios" | "cli" | "consumers" | "selftest" | "attrs";
  cache?: string;
  kernel: string;
  sequence?: string;
  files?: string[];
  outDir?: string;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const job = JSON.parse(readFileSync(process.argv[2] ?? "/tmp/job.json", "utf8")) as Job;
  const out = job.outDir ?? "/tmp";
  mkdirSync(out, { recursive: true });
  const result: Record<string, unknown> = { ok: true };
  try {
    if (job.kind === "probe") {
      const sys = new LinuxSyscalls();
      const c = await sys.open("/dev/vfio/vfio", O_RDWR);
      result.apiVersion = await sys.ioctl(c, VFIO.GET_API_VERSION);
      result.type1v2 = await sys.ioctl(c, VFIO.CHECK_EXTENSION, 3);
      try {
        await sys.ioctl(c, VFIO.GROUP_GET_STATUS, Buffer.alloc(8));
      } catch (e) {
        result.groupStatusOnContainer = (e as { code?: string }).code;
      }
      // which implementation made those ioctls: the addon (build/native/ioctl.node of the
      // project, shared with the guest) or koffi, and why not the addon
      result.ffi = ffiInfo();
      const k = await Kmsg.open(sys, true);
      result.bootRecords = (await k.drain()).length;
      await sys.exit();
    } else if (job.kind === "raw") {
      const sys = new LinuxSyscalls();
      const r = new Recorder(sys, job.kernel, job.sequence!);
      r.saveDir = out;
      const boot = await r.start(job.sequence === "boot");
      if (job.sequence === "boot") await seqBoot(r, boot);
      else {
        const f = SEQUENCES[job.sequence!];
        if (!f) throw new Error(`no sequence ${job.sequence}`);
        await f(r);
      }
      await sys.exit();
      r.save(out);
    } else if (job.kind === "scenarios") {
      const { runGuestScenarios } = await import("./conformance.js");
      result.scenarios = await runGuestScenarios(job.kernel, job.files ?? [], out);
    } else if (job.kind === "cli") {
      const { runGuestCliJob } = await import("./conformance.js");
      result.cli = await runGuestCliJob(job.kernel, process.cwd(), out);
    } else if (job.kind === "selftest") {
      const { runGuestSelftestJob } = await import("./selftest.js");
      result.selftest = await runGuestSelftestJob(job.kernel, job.cache ?? "/var/cache/vfioctl-lab", out);
    } else if (job.kind === "attrs") {
      const { runGuestAttrsJob } = await import("./sysfs-attrs.js");
      result.attrs = await runGuestAttrsJob(job.kernel, out);
    } else if (job.kind === "consumers") {
      const { runGuestConsumerJob } = await import("./consumers-guest.js");
      result.consumers = await runGuestConsumerJob(job.kernel, process.cwd(), out);
    }
  } catch (e) {
    result.ok = false;
    result.error = (e as Error).stack ?? String(e);
  }
  result.ms = Math.round(performance.now() - t0);
  writeFileSync(`${out}/result.json`, JSON.stringify(result, null, 1));
  // a write still blocked in the threadpool must not keep the guest up
  process.exit(0);
}

void main();
