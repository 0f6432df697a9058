/**
 * explain beside real consumers' behaviour: holders found by device number (a chrooted PF
 * driver, a VF user left with only device fds), and the kernel log read as attempts, so DPDK's
 * retry without the token after a wrong one is not taken for "no token given".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bootKernel } from "../src/kernel/host/boot.js";
import { explainOpen } from "../src/lib/explain.js";
import { setToken } from "../src/lib/tokenops.js";
import { lastAttempt, tokenEvents } from "../src/lib/tokenlog.js";
import { parseKmsg } from "../src/sys/kmsg.js";
import { groupOf, startConsumer } from "../testlib/consumers.js";
import { openGroupSession } from "../src/lib/vfio.js";
import { runCli } from "../testlib/cli.js";

const PF = "0000:af:00.0";
const VF0 = "0000:af:10.0";
const T = "2ab74924-c335-45f4-9b16-8569e5b08258";
const WRONG = "00000000-0000-0000-0000-000000000002";

async function host() {
  const k = await bootKernel();
  const sh = k.spawn("sh");
  await setToken(sh, PF, T);
  return { k, sh };
}

/** What DPDK's EAL does for `-a VF --vfio-vf-token=TOKEN`: GET_DEVICE_FD with the token, and on any failure once more with the bare address, on the same group fd. */
async function dpdkLikeOpen(k: Awaited<ReturnType<typeof host>>["k"], vf: string, token: string): Promise<string> {
  const p = k.spawn("dpdk-testpmd");
  const s = await openGroupSession(p, await groupOf(p, vf));
  try {
    await s.deviceFd(`${vf} vf_token=${token}`);
    return "ok";
  } catch {
    try {
      await s.deviceFd(vf);
      return "ok-without-token";
    } catch (e) {
      return (e as { code?: string }).code ?? "?";
    }
  } finally {
    await p.exit(); // testpmd then exits (0, with no ports)
  }
}

test("explain of a PF whose group a chrooted PF driver holds predicts EBUSY naming it, not 'should succeed'", async () => {
  const { k, sh } = await host();
  await startConsumer(k, "dpdk-pf", PF, { root: "/srv/dpdk" }, T);
  const x = await explainOpen(sh, PF, { token: true });
  assert.equal(x.open.verdict, "fails");
  assert.equal(x.open.errno, "EBUSY");
  assert.match(x.open.summary, /\/dev\/vfio\/5 is already open .*pid \d+ \(dpdk-pf\) fd \d+ → \/srv\/dpdk\/dev\/vfio\/5 \[chroot \/srv\/dpdk\]/);
});

test("after a wrong token and DPDK's retry without it, explain --errno EACCES ranks the wrong token first and calls the last line the retry", async () => {
  const { k, sh } = await host();
  assert.equal(await dpdkLikeOpen(k, VF0, WRONG), "EACCES");
  const lines = k.log.records.map((r) => r.text).filter((t) => t.includes(VF0));
  assert.deepEqual(lines.slice(-2), [`vfio-pci ${VF0}: Incorrect VF token provided for device`, `vfio-pci ${VF0}: VF token required to access device`]);
  const x = await explainOpen(sh, VF0, { errno: "EACCES" });
  assert.equal(x.tokenLog?.last?.verdict, "wrong-token");
  assert.equal(x.tokenLog?.last?.retriedWithout, true);
  assert.equal(x.ranked?.[0]?.id, "token-incorrect");
  assert.equal(x.ranked?.[0]?.status, "applies");
  assert.match(x.ranked![0]!.cause, /"vfio-pci 0000:af:10\.0: Incorrect VF token provided for device" then .*"vfio-pci 0000:af:10\.0: VF token required to access device": a wrong token, then the same open retried without any/);
  const req = x.causes.find((c) => c.id === "token-required")!;
  assert.equal(req.status, "possible");
  assert.match(req.cause, /is the consumer's retry without the token/);
  assert.match(x.open.summary, /EACCES \(Incorrect VF token/);
  // the command says the same
  const r = await runCli(k, ["explain", VF0, "--errno", "EACCES"]);
  assert.equal(r.code, 0, r.err); // with only --errno: 0, the EACCES is explained
  assert.match(r.out, /Incorrect VF token/);
});

test("after an open that carried no token, explain --errno EACCES ranks 'token required' first, quoting the line", async () => {
  const { k, sh } = await host();
  await assert.rejects(startConsumer(k, "qemu", VF0), /EACCES/);
  const x = await explainOpen(sh, VF0, { errno: "EACCES" });
  assert.equal(x.tokenLog?.last?.verdict, "no-token");
  assert.equal(x.ranked?.[0]?.id, "token-required");
  assert.match(x.ranked![0]!.cause, /with no "Incorrect VF token" line before it: the open carried no token/);
  assert.equal(x.causes.find((c) => c.id === "token-incorrect")!.status, "would");
});

test("lines of one device more than a second apart are separate attempts: an old wrong token does not explain a new missing one", () => {
  const rec = (us: number, seq: number, msg: string) => parseKmsg(`6,${seq},${us},-;vfio-pci ${VF0}: ${msg}\n`)!;
  const ev = tokenEvents(
    [rec(1_000_000, 1, "Incorrect VF token provided for device"), rec(1_000_300, 2, "VF token required to access device"), rec(9_000_000, 3, "VF token required to access device"), parseKmsg(`6,4,9000100,-;vfio-pci 0000:af:10.1: Incorrect VF token provided for device\n`)!],
    VF0,
  );
  assert.equal(ev.length, 3);
  assert.equal(lastAttempt(ev)?.verdict, "no-token");
  assert.equal(lastAttempt(ev.slice(0, 2))?.verdict, "wrong-token");
  assert.equal(lastAttempt([])?.verdict, undefined);
});

test("with only anonymous device fds visible, explain of the PF says cannot tell and names the process instead of 'no VF is open'", async () => {
  const { k, sh } = await host();
  const c = await startConsumer(k, "dpdk-testpmd", VF0, { root: "/srv/dpdk" }, T);
  await c.dropGroupFds();
  const x = await explainOpen(sh, PF, { token: true });
  assert.equal(x.token.state, "cannot-tell");
  assert.equal(x.open.verdict, "cannot-tell");
  assert.doesNotMatch(x.open.summary, /no VF is open/);
  const inc = x.causes.find((c) => c.id === "pf-token-incorrect")!;
  assert.equal(inc.status, "possible");
  assert.match(x.causes.find((c) => c.id === "pf-token-required")!.cause, /may be in use \(pid \d+ \(dpdk-testpmd\) \[chroot \/srv\/dpdk\] holds VFIO device fds without a group or cdev fd/);
});
