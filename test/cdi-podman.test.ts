/**
 * `vfioctl cdi` through real podman (Debian's, installed by tools/podman/prepare.sh from
 * .ci/run): podman's own CDI parser reads the spec and builds a container from it. This host has
 * no vfio nodes, so the spec vfioctl wrote for the simulated host is run with each device node's
 * hostPath set to /dev/null (CDI 0.5.0's hostPath: the container still gets /dev/vfio/vfio and
 * /dev/vfio/<group> at the spec's paths) and the token mount pointed at the store file on disk.
 * Skipped, with the reason, where podman is missing or cannot run a container at all.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootKernel } from "../src/kernel/host/boot.js";
import type { CdiSpec } from "../src/host/cdi.js";
import { runCli, simRoot } from "../testlib/cli.js";

const CONFIG = new URL("../../examples/default-host.yaml", import.meta.url).pathname;
const tag = `${process.pid}-${Date.now().toString(36)}`;
const KIND = `vfioctl-test-${tag}/vf`;
const IMAGE = `localhost/vfioctl-cdi-test:${tag}`;
/** This sandbox has no CAP_SYS_RESOURCE: podman's default rlimits (raised) are refused; lower ones are harmless anywhere. */
const LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:4096", "--network", "none"];

interface Podman {
  run(args: string[]): { code: number; out: string; err: string };
  version: [number, number];
  how: string;
}

function sh(cmd: string, args: string[], input?: string) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, ...(input !== undefined ? { input } : {}) });
  return { code: r.status ?? -1, out: r.stdout ?? "", err: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

/** Find podman and a way to run a container here, or the reason there is none. */
function findPodman(): Podman | string {
  if (process.platform !== "linux") return "not Linux";
  const v = sh("podman", ["--version"]);
  if (v.code !== 0) return "podman is not installed (tools/podman/prepare.sh installs Debian's)";
  if (process.getuid?.() !== 0) return "not root: rootless podman needs user namespaces and subuid maps this test does not set up";
  const m = /(\d+)\.(\d+)/.exec(v.out);
  const version: [number, number] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  const busybox = ["/usr/bin/busybox", "/bin/busybox"].find((b) => fs.existsSync(b));
  if (!busybox || !/statically linked/.test(sh("file", [busybox]).out + (sh("ldd", [busybox]).out.includes("not a dynamic") ? "statically linked" : ""))) return "no static busybox to build the test image from (apt-get install busybox-static)";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-podman-"));
  fs.mkdirSync(path.join(dir, "rootfs/bin"), { recursive: true });
  fs.copyFileSync(busybox, path.join(dir, "rootfs/bin/busybox"));
  fs.chmodSync(path.join(dir, "rootfs/bin/busybox"), 0o755);
  const tar = sh("tar", ["-C", path.join(dir, "rootfs"), "-cf", path.join(dir, "rootfs.tar"), "."]);
  if (tar.code !== 0) return `tar failed: ${tar.err.trim()}`;
  const imp = sh("podman", ["import", "-q", path.join(dir, "rootfs.tar"), IMAGE]);
  fs.rmSync(dir, { recursive: true, force: true });
  if (imp.code !== 0) return `podman import failed: ${imp.err.trim()}`;
  const direct = (args: string[]) => sh("podman", args);
  // a cgroup v2 hierarchy with controllers next to v1 ones ("hybrid") is refused by crun; in a
  // private mount namespace without /sys/fs/cgroup/unified podman uses v1 only (the host is untouched)
  const privateNs = (args: string[]) => sh("unshare", ["-m", "--propagation", "private", "sh", "-c", 'umount /sys/fs/cgroup/unified 2>/dev/null; exec podman "$@"', "sh", ...args]);
  const probe = ["run", "--rm", ...LIMITS, IMAGE, "/bin/busybox", "true"];
  const a = direct(probe);
  if (a.code === 0) return { run: direct, version, how: "podman run" };
  if (/cgroups in hybrid mode/.test(a.err)) {
    const b = privateNs(probe);
    if (b.code === 0) return { run: privateNs, version, how: "podman run in a private mount namespace without /sys/fs/cgroup/unified (crun refuses this host's hybrid cgroup layout)" };
    return `podman cannot run a container here: ${b.err.trim().split("\n").pop()}`;
  }
  return `podman cannot run a container here: ${a.err.trim().split("\n").pop()}`;
}

const podman = findPodman();
const skip = typeof podman === "string" ? podman : false;

/** The spec vfioctl writes for the simulated host, made runnable here, and the stored token. */
async function specForPodman(version: string): Promise<{ spec: CdiSpec; token: string; group: (n: string) => string }> {
  const k = await bootKernel();
  const files = simRoot();
  fs.mkdirSync(files.real("/etc/vfioctl"), { recursive: true });
  fs.copyFileSync(CONFIG, files.real("/etc/vfioctl/host.yaml"));
  assert.equal((await runCli(k, ["apply"], { files })).code, 0);
  const r = await runCli(k, ["cdi", "--kind", KIND, "--cdi-version", version], { files });
  assert.equal(r.code, 0, r.err);
  const spec = JSON.parse(fs.readFileSync(files.real(`/var/run/cdi/${KIND.replace("/", "-")}.json`), "utf8")) as CdiSpec;
  for (const d of spec.devices) {
    for (const n of d.containerEdits.deviceNodes ?? []) n.hostPath = "/dev/null";
    for (const m of d.containerEdits.mounts ?? []) m.hostPath = files.real(m.hostPath);
  }
  const token = fs.readFileSync(files.real("/etc/vfioctl/tokens/nic0/current"), "utf8").trim();
  const group = (name: string) => spec.devices.find((d) => d.name === name)!.containerEdits.deviceNodes![1]!.path;
  return { spec, token, group };
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
  const file = `/var/run/cdi/vfioctl-test-${tag}.json`;
  fs.mkdirSync("/var/run/cdi", { recursive: true });
  fs.writeFileSync(file, JSON.stringify(spec));
  try {
    return p.run(["run", "--rm", ...LIMITS, ...devices.flatMap((d) => ["--device", `${KIND}=${d}`]), IMAGE, "/bin/busybox", "sh", "-c", INSIDE]);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

const field = (out: string, k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(out)?.[1];

test("podman accepts vfioctl's CDI spec (0.5.0): two VFs give the container their group nodes, BDFs, the token file read-only, and no token in the environment", { skip }, async (t) => {
  const p = podman as Podman;
  t.diagnostic(`podman ${p.version.join(".")}: ${p.how}`);
  const { spec, token, group } = await specForPodman("0.5.0");
  const r = runWithSpec(p, spec, ["nic0-vf0", "nic0-vf1"]);
  t.diagnostic(r.out.trim().replace(token, "<token>"));
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
});

test("podman before 5 skips a CDI 1.1.0 spec as unresolvable (its CDI library predates 1.x); a newer podman runs it", { skip }, async (t) => {
  const p = podman as Podman;
  const { spec, token } = await specForPodman("1.1.0");
  const r = runWithSpec(p, spec, ["nic0-vf0"]);
  t.diagnostic(`podman ${p.version.join(".")} on cdiVersion 1.1.0: exit ${r.code}: ${(r.err.trim().split("\n").pop() ?? "") || r.out.trim().replace(token, "<token>")}`);
  if (p.version[0] < 5) {
    assert.notEqual(r.code, 0);
    assert.match(r.err, new RegExp(`unresolvable CDI devices ${KIND.replace(/[.]/g, "\\.")}=nic0-vf0`));
  } else {
    assert.equal(r.code, 0, r.err);
    assert.equal(field(r.out, "token"), token);
  }
});

test.after(() => {
  if (!skip) sh("podman", ["rmi", "-f", IMAGE]);
});
