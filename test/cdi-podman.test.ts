/**
 * `vfioctl cdi` through real podman: podman's own CDI parser reads the spec and builds a container
 * from it. Two podmans, both installed by tools/podman/prepare.sh from .ci/run:
 *   - the host's, Debian 12's podman 4.3.1;
 *   - Debian 13's podman 5.4.2, in a Debian 13 root of its own, run chrooted as root by
 *     tools/podman/trixie-podman.sh (crun, vfs storage, cgroupfs).
 * This host has no vfio nodes, so the spec vfioctl wrote for the simulated host is run with each
 * device node's hostPath set to /dev/null (CDI 0.5.0's hostPath: the container still gets
 * /dev/vfio/vfio and /dev/vfio/<group> at the spec's paths) and the token mount pointed at the
 * store file on disk. Each podman is asked which spec versions it accepts; the default version
 * `vfioctl cdi` declares must be the newest one that any of them accepts, and a spec written with
 * that default (no --cdi-version) must give a container the nodes and the token file.
 * Skipped, with the reason, where a podman is missing or cannot run a container at all.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel } from "../src/kernel/host/boot.js";
import { CDI_DEFAULT, CDI_VERSIONS, type CdiSpec } from "../src/host/cdi.js";
import { hostFiles } from "../src/sys/hostfs.js";
import { runCli } from "../testlib/cli.js";

const CONFIG = new URL("../../examples/default-host.yaml", import.meta.url).pathname;
const TRIXIE_PODMAN = new URL("../../tools/podman/trixie-podman.sh", import.meta.url).pathname;
const TRIXIE_ROOT = process.env.VFIOCTL_PODMAN_ROOT ?? path.join(process.env.VFIOCTL_PODMAN_CACHE ?? "/var/cache/vfioctl-podman", "trixie");
const tag = `${process.pid}-${Date.now().toString(36)}`;
const KIND = `vfioctl-test-${tag}/vf`;
const IMAGE = `localhost/vfioctl-cdi-test:${tag}`;
/** This sandbox has no CAP_SYS_RESOURCE: podman's default rlimits (raised) are refused; lower ones are harmless anywhere. */
const LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:4096", "--network", "none"];

interface Podman {
  name: string;
  run(args: string[]): { code: number; out: string; err: string };
  version: [number, number, number];
  how: string;
  /** where this podman reads CDI specs (as the host names it) */
  specDir: string;
}

function sh(cmd: string, args: string[], input?: string) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, ...(input !== undefined ? { input } : {}) });
  return { code: r.status ?? -1, out: r.stdout ?? "", err: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}
const versionOf = (s: string): [number, number, number] => {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(s);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
};
const isStatic = (bin: string) => /statically linked|static-pie linked/.test(sh("file", ["-L", bin]).out) || /not a dynamic/.test(sh("ldd", [bin]).out + sh("ldd", [bin]).err);

/** Import a one-file image (a static busybox) into a podman; null when it worked, else why not. */
function importImage(run: Podman["run"], busybox: string, tmpBase: string): string | null {
  const dir = fs.mkdtempSync(path.join(tmpBase, "vfioctl-podman-"));
  try {
    fs.mkdirSync(path.join(dir, "rootfs/bin"), { recursive: true });
    fs.copyFileSync(busybox, path.join(dir, "rootfs/bin/busybox"));
    fs.chmodSync(path.join(dir, "rootfs/bin/busybox"), 0o755);
    const tar = sh("tar", ["-C", path.join(dir, "rootfs"), "-cf", path.join(dir, "rootfs.tar"), "."]);
    if (tar.code !== 0) return `tar failed: ${tar.err.trim()}`;
    const imp = run(["import", "-q", path.join(dir, "rootfs.tar"), IMAGE]);
    return imp.code === 0 ? null : `podman import failed: ${imp.err.trim()}`;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The host's podman (Debian 12's) and a way to run a container with it, or the reason there is none. */
function hostPodman(): Podman | string {
  if (process.platform !== "linux") return "not Linux";
  const v = sh("podman", ["--version"]);
  if (v.code !== 0) return "podman is not installed (tools/podman/prepare.sh installs Debian's)";
  if (process.getuid?.() !== 0) return "not root: rootless podman needs user namespaces and subuid maps this test does not set up";
  const busybox = ["/usr/bin/busybox", "/bin/busybox"].find((b) => fs.existsSync(b) && isStatic(b));
  if (!busybox) return "no static busybox to build the test image from (apt-get install busybox-static)";
  const direct = (args: string[]) => sh("podman", args);
  // a cgroup v2 hierarchy with controllers next to v1 ones ("hybrid") is refused by crun; in a
  // private mount namespace without /sys/fs/cgroup/unified podman uses v1 only (the host is untouched)
  const privateNs = (args: string[]) => sh("unshare", ["-m", "--propagation", "private", "sh", "-c", 'umount /sys/fs/cgroup/unified 2>/dev/null; exec podman "$@"', "sh", ...args]);
  const why = importImage(direct, busybox, os.tmpdir());
  if (why) return why;
  const probe = ["run", "--rm", ...LIMITS, IMAGE, "/bin/busybox", "true"];
  const base = { name: "host", version: versionOf(v.out), specDir: "/var/run/cdi" };
  const a = direct(probe);
  if (a.code === 0) return { ...base, run: direct, how: "podman run" };
  if (/cgroups in hybrid mode/.test(a.err)) {
    const b = privateNs(probe);
    if (b.code === 0) return { ...base, run: privateNs, how: "podman run in a private mount namespace without /sys/fs/cgroup/unified (crun refuses this host's hybrid cgroup layout)" };
    return `podman cannot run a container here: ${b.err.trim().split("\n").pop()}`;
  }
  return `podman cannot run a container here: ${a.err.trim().split("\n").pop()}`;
}

/** Debian 13's podman in its own root (tools/podman/prepare.sh), or the reason there is none. */
function trixiePodman(): Podman | string {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "not root: the Debian 13 podman runs chrooted as root";
  if (!fs.existsSync(path.join(TRIXIE_ROOT, "usr/bin/podman"))) return `no Debian 13 podman in ${TRIXIE_ROOT} (tools/podman/prepare.sh makes it; its log says why it did not)`;
  const run = (args: string[]) => sh(TRIXIE_PODMAN, args);
  const v = run(["--version"]);
  if (v.code !== 0) return `the Debian 13 podman does not start: ${v.err.trim().split("\n").pop()}`;
  const busybox = path.join(TRIXIE_ROOT, "bin/busybox");
  if (!fs.existsSync(busybox)) return `no busybox in ${TRIXIE_ROOT}`;
  // the chroot sees the host's /tmp at /tmp: the image tar and the token file are shared through it
  const why = importImage(run, busybox, "/tmp");
  if (why) return why;
  const a = run(["run", "--rm", ...LIMITS, IMAGE, "/bin/busybox", "true"]);
  if (a.code !== 0) return `the Debian 13 podman cannot run a container here: ${a.err.trim().split("\n").pop()}`;
  return { name: "trixie", run, version: versionOf(v.out), how: "tools/podman/trixie-podman.sh (chrooted, crun, vfs)", specDir: path.join(TRIXIE_ROOT, "etc/cdi") };
}

const host = hostPodman();
const trixie = trixiePodman();
const podmans = [host, trixie].filter((p): p is Podman => typeof p !== "string");

/** The spec vfioctl writes for the simulated host, made runnable here, and the stored token. */
async function specForPodman(version: string | null): Promise<{ spec: CdiSpec; token: string; group: (n: string) => string; cleanup: () => void }> {
  const k = await bootKernel();
  // under /tmp: the chrooted podman sees the host's /tmp, so the token file is reachable from both
  const dir = fs.mkdtempSync("/tmp/vfioctl-cdi-sim-");
  const files = hostFiles(dir);
  fs.mkdirSync(files.real("/etc/vfioctl"), { recursive: true });
  fs.copyFileSync(CONFIG, files.real("/etc/vfioctl/host.yaml"));
  assert.equal((await runCli(k, ["apply"], { files })).code, 0);
  const r = await runCli(k, ["cdi", "--kind", KIND, ...(version ? ["--cdi-version", version] : [])], { files });
  assert.equal(r.code, 0, r.err);
  const spec = JSON.parse(fs.readFileSync(files.real(`/var/run/cdi/${KIND.replace("/", "-")}.json`), "utf8")) as CdiSpec;
  for (const d of spec.devices) {
    for (const n of d.containerEdits.deviceNodes ?? []) n.hostPath = "/dev/null";
    for (const m of d.containerEdits.mounts ?? []) m.hostPath = files.real(m.hostPath);
  }
  const token = fs.readFileSync(files.real("/etc/vfioctl/tokens/nic0/current"), "utf8").trim();
  const group = (name: string) => spec.devices.find((d) => d.name === name)!.containerEdits.deviceNodes![1]!.path;
  return { spec, token, group, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

const INSIDE = [
  'echo "bdf0=$VFIOCTL_VF_NIC0_VF0"',
  'echo "bdf1=$VFIOCTL_VF_NIC0_VF1"',
  'echo "file=$VFIOCTL_VF_TOKEN_FILE_NIC0_VF0"',
  'echo "token=$(/bin/busybox cat /run/vfioctl/tokens/nic0)"',
  'echo "nodes=$(/bin/busybox ls /dev/vfio | /bin/busybox tr "\\n" " ")"',
  'echo "mount=$(/bin/busybox grep " /run/vfioctl/tokens/nic0 " /proc/mounts)"',
  '(echo x > /run/vfioctl/tokens/nic0) 2>/dev/null && echo write=ok || echo write=refused',
  'echo "envtoken=$(/bin/busybox env | /bin/busybox grep -c "$(/bin/busybox cat /run/vfioctl/tokens/nic0)")"',
].join("; ");

function runWithSpec(p: Podman, spec: CdiSpec, devices: string[]) {
  const file = path.join(p.specDir, `vfioctl-test-${tag}.json`);
  fs.mkdirSync(p.specDir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(spec));
  try {
    return p.run(["run", "--rm", ...LIMITS, ...devices.flatMap((d) => ["--device", `${KIND}=${d}`]), IMAGE, "/bin/busybox", "sh", "-c", INSIDE]);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

const vi = (v: string) => (CDI_VERSIONS as readonly string[]).indexOf(v);
const field = (out: string, k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(out)?.[1];

/** What a container given two VFs of the spec must see. */
async function checkContainer(t: { diagnostic(s: string): void }, p: Podman, version: string | null) {
  const { spec, token, group, cleanup } = await specForPodman(version);
  try {
    assert.equal(spec.cdiVersion, version ?? CDI_DEFAULT);
    const r = runWithSpec(p, spec, ["nic0-vf0", "nic0-vf1"]);
    t.diagnostic(`podman ${p.version.join(".")} (${p.how}), cdiVersion ${spec.cdiVersion}: ${r.out.trim().replace(token, "<token>").split("\n").join(" | ")}`);
    assert.equal(r.code, 0, r.err);
    assert.equal(field(r.out, "bdf0"), "0000:01:10.0");
    assert.equal(field(r.out, "bdf1"), "0000:01:10.2");
    assert.equal(field(r.out, "file"), "/run/vfioctl/tokens/nic0");
    assert.equal(field(r.out, "token"), token);
    const nodes = field(r.out, "nodes")!.trim().split(" ");
    for (const n of ["vfio", group("nic0-vf0").split("/").pop()!, group("nic0-vf1").split("/").pop()!]) assert.ok(nodes.includes(n), `${n} in /dev/vfio: ${nodes}`);
    assert.match(field(r.out, "mount")!, /^\S+ \/run\/vfioctl\/tokens\/nic0 \S+ ro,/);
    assert.equal(field(r.out, "write"), "refused");
    assert.equal(field(r.out, "envtoken"), "0");
  } finally {
    cleanup();
  }
}

/** The spec versions a podman accepts (runs a container from) and the ones it skips as unresolvable. */
async function acceptance(p: Podman): Promise<{ accepted: string[]; refused: string[] }> {
  const accepted: string[] = [];
  const refused: string[] = [];
  for (const v of CDI_VERSIONS.filter((x) => vi(x) >= vi("0.5.0"))) {
    const { spec, token, cleanup } = await specForPodman(v);
    try {
      const r = runWithSpec(p, spec, ["nic0-vf0"]);
      if (r.code === 0 && field(r.out, "token") === token) accepted.push(v);
      else if (r.code !== 0 && new RegExp(`unresolvable CDI devices ${KIND.replace(/[.]/g, "\\.")}=nic0-vf0`).test(r.err)) refused.push(v);
      else assert.fail(`podman ${p.version.join(".")} on cdiVersion ${v}: exit ${r.code}, neither a container with the token nor "unresolvable CDI devices": ${r.err.trim()}`);
    } finally {
      cleanup();
    }
  }
  return { accepted, refused };
}

test("Debian 12's podman (the host's) accepts vfioctl's CDI spec declared 0.5.0: two VFs give the container their group nodes, BDFs, the token file read-only, and no token in the environment", { skip: typeof host === "string" ? host : false }, async (t) => {
  await checkContainer(t, host as Podman, "0.5.0");
});

test("Debian 13's podman runs a container from the spec `vfioctl cdi` writes by default (no --cdi-version): group nodes, BDFs, the token file read-only, no token in the environment", { skip: typeof trixie === "string" ? trixie : false }, async (t) => {
  await checkContainer(t, trixie as Podman, null);
});

test("each podman accepts the CDI versions up to one and skips the newer as unresolvable; vfioctl's default is the newest any of them accepts", { skip: podmans.length === 0 ? `no podman: ${host}; ${trixie}` : false }, async (t) => {
  let newest: string | null = null;
  for (const p of podmans) {
    const { accepted, refused } = await acceptance(p);
    t.diagnostic(`podman ${p.version.join(".")} (${p.name}): accepts ${accepted.join(", ") || "none"}; unresolvable: ${refused.join(", ") || "none"}`);
    assert.ok(accepted.length > 0, `podman ${p.version.join(".")} accepts no version`);
    // one library cut-off: every accepted version is older than every refused one
    assert.ok(refused.every((r) => accepted.every((a) => vi(a) < vi(r))), `accepted ${accepted} vs refused ${refused}`);
    const top = accepted.at(-1)!;
    if (newest === null || vi(top) > vi(newest)) newest = top;
    if (p.version[0] === 4 && p.version[1] === 3) assert.equal(top, "0.5.0", "Debian 12's podman 4.3 takes up to 0.5.0 (src/cli/commands/cdi.ts says so)");
  }
  if (typeof trixie === "string") {
    t.diagnostic(`the default (${CDI_DEFAULT}) is not checked against Debian 13's podman: ${trixie}`);
    return;
  }
  assert.equal(CDI_DEFAULT, newest, `the default CDI version must be the newest a podman on Debian accepts (${newest})`);
});

test.after(() => {
  for (const p of podmans) p.run(["rmi", "-f", IMAGE]);
});
