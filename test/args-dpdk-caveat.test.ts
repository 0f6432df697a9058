/**
 * The DPDK caveat of `vfioctl args dpdk VF` against what the lab's dpdk-testpmd printed
 * (lab/transcripts/consumers/testpmd-vf.txt, recorded by the consumer row dpdk:mntns): every line
 * it quotes was printed in the case it names, and every EAL / PCI_BUS / testpmd line a wrong or a
 * missing token printed that the right token did not is quoted. The lab row checks the same
 * against each live run (lab/consumers.ts checkConsumers).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { bootKernel } from "../src/kernel/host/boot.js";
import { consumerArgs, dpdkTokenCaveat, DPDK_EAL_LINES } from "../src/lib/args.js";

const RECORDING = new URL("../../lab/transcripts/consumers/testpmd-vf.txt", import.meta.url).pathname;
const BDF = "0000:01:10.0";

/** The recording's sections: "right token", "wrong token", "no token", each with its output and kernel lines. */
function sections(): Record<string, { out: string[]; kernel: string[]; exit: number }> {
  const r: Record<string, { out: string[]; kernel: string[]; exit: number }> = {};
  let cur: { out: string[]; kernel: string[]; exit: number } | null = null;
  let inKernel = false;
  for (const l of fs.readFileSync(RECORDING, "utf8").split("\n")) {
    const h = /^## (right token|wrong token|no token): /.exec(l);
    if (h) {
      cur = r[h[1]!] = { out: [], kernel: [], exit: -1 };
      inKernel = false;
    } else if (cur && /^## exit (\d+)/.test(l)) cur.exit = Number(/^## exit (\d+)/.exec(l)![1]);
    else if (cur && l.startsWith("## kernel log")) inKernel = true;
    else if (cur && l && !l.startsWith("#")) (inKernel ? cur.kernel : cur.out).push(inKernel ? l.replace(/^<\w+> /, "") : l.trim());
  }
  return r;
}
const eal = (lines: string[]) => [...new Set(lines.filter((l) => /^(EAL|PCI_BUS|testpmd): /.test(l) && !/Multi-process socket/.test(l)))];
const quoted = (s: string) => [...s.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);

test("the recording has the three cases, each testpmd exited 0", () => {
  const s = sections();
  assert.deepEqual(Object.keys(s).sort(), ["no token", "right token", "wrong token"]);
  for (const [k, v] of Object.entries(s)) assert.equal(v.exit, 0, k);
});

test("the DPDK caveat quotes every line a wrong and a missing token printed that the right one did not, and only lines testpmd or the kernel printed", () => {
  const s = sections();
  const cav = dpdkTokenCaveat(BDF);
  const q = quoted(cav);
  const right = new Set(eal(s["right token"]!.out));
  for (const k of ["wrong token", "no token"]) {
    for (const l of eal(s[k]!.out)) if (!right.has(l)) assert.ok(q.includes(l), `${k}: "${l}" is not quoted in: ${cav}`);
  }
  const printed = new Set([...Object.values(s).flatMap((v) => [...eal(v.out), ...v.kernel])]);
  for (const l of q.filter((x) => /^(EAL|PCI_BUS|testpmd|vfio-pci) ?/.test(x))) assert.ok(printed.has(l), `"${l}" is quoted but was never printed`);
  // what tells the cases apart is only in the kernel log, as recorded
  assert.deepEqual(s["wrong token"]!.kernel, DPDK_EAL_LINES.kernelWrong.map((l) => l.replace("BDF", BDF)));
  assert.deepEqual(s["no token"]!.kernel, DPDK_EAL_LINES.kernelNone.map((l) => l.replace("BDF", BDF)));
  // the lines of the failure are the same with a wrong and with no token
  assert.deepEqual(eal(s["wrong token"]!.out), eal(s["no token"]!.out));
  for (const l of DPDK_EAL_LINES.vfio) assert.ok(right.has(l), l);
});

test("args dpdk VF gives that caveat for the VF it is asked about (a VF of the default model host's vfio-pci PF)", async () => {
  const k = await bootKernel();
  const vf = "0000:af:10.0";
  const a = await consumerArgs(k.spawn("sh"), "dpdk", [vf], { token: "7c1e5a34-2b9d-4c61-9f0e-3a8d5b6c7e21" });
  assert.ok(a.tokenNeeded);
  assert.ok(a.caveats.includes(dpdkTokenCaveat(vf)), a.caveats.join("\n"));
  assert.ok(!a.caveats.some((c) => c.includes("logs only")), "the old paraphrase is gone");
});
