/**
 * A curated set of one-line mutations of the model, the library and the real backend, each with
 * the test file that must catch it: mutations that once survived the whole suite (the wrong
 * answer went unnoticed) and the tests written against them.
 *
 *   npm run build && node dist/testlib/mutants.js          # each mutant against its test file (~1 min)
 *   node dist/testlib/mutants.js --full                    # each mutant against the whole suite (~20 s each)
 *
 * Mutations are applied to a copy of dist/ (the working tree's build is never touched, so other
 * test runs are not disturbed), one at a time. Exit 1 when a mutant survives or no longer applies
 * (the code it names changed: update its `from`).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export interface Mutant {
  id: string;
  /** file under dist/ */
  file: string;
  /** the exact text replaced (must occur once, or `occurrence` picks one) */
  from: string;
  to: string;
  occurrence?: number;
  /** what the mutation makes the program answer */
  wrong: string;
  /** test files (under dist/test/) that must fail */
  killedBy: string[];
}

export const MUTANTS: Mutant[] = [
  {
    id: "driver-override-null",
    file: "src/lib/sysfs.js",
    from: 'ovr === null || ovr === "(null)" || ovr === "" ? null : ovr',
    to: 'ovr === null || ovr === "" ? null : ovr',
    wrong: "an unset driver_override shown as set: list prints [override (null)] on every device",
    killedBy: ["answers.test.js"],
  },
  {
    id: "pf-token-held-vf",
    file: "src/lib/inventory.js",
    from: "vfs.some((v) => v.heldBy.length > 0) ? true :",
    to: "vfs.some((v) => v.heldBy.length > 1) ? true :",
    wrong: "a PF whose VF is held open said not to need its token",
    killedBy: ["answers.test.js", "holders.test.js"],
  },
  {
    id: "pf-token-required-state",
    file: "src/lib/inventory.js",
    from: 'return { state: "required", reason: "VF token required: a VF group of this PF is held open (a VF may be open)", ifGiven: "checked" };',
    to: 'return { state: "not-required", reason: "VF token required: a VF group of this PF is held open (a VF may be open)", ifGiven: "checked" };',
    wrong: "the PF's token situation while a VF is held: not required",
    killedBy: ["answers.test.js"],
  },
  {
    id: "explain-pf-token-required",
    file: "src/lib/explain.js",
    from: 'status: pfOnVfio && !given ? (vfsHeld.length || vfsUnknown ? "possible" : "no") : "no",',
    to: 'status: pfOnVfio && !given ? (vfsUnknown ? "possible" : "no") : "no",',
    wrong: "explain's PF-token row says no while a VF is held",
    killedBy: ["answers.test.js"],
  },
  {
    id: "explain-pf-token-incorrect",
    file: "src/lib/explain.js",
    from: 'status: pfOnVfio && given && (vfsHeld.length || vfsUnknown) ? "possible" : "no",',
    to: 'status: pfOnVfio && given && vfsUnknown ? "possible" : "no",',
    wrong: "explain says a wrong PF token cannot fail while a VF is held",
    killedBy: ["answers.test.js"],
  },
  {
    id: "holders-noiommu-dev",
    file: "src/lib/holders.js",
    from: "const groups = devVfio.filter((n) => GROUP.test(n));",
    to: "const groups = devVfio.filter((n) => /^(\\d+)$/.test(n));",
    wrong: "holders of /dev/vfio/noiommu-N not seen",
    killedBy: ["answers.test.js"],
  },
  {
    id: "holders-noiommu-sysfs",
    file: "src/lib/holders.js",
    from: "const classGroups = classVfio.filter((n) => GROUP.test(n));",
    to: "const classGroups = classVfio.filter((n) => /^(\\d+)$/.test(n));",
    wrong: "holders of a noiommu group not seen when only /sys/class/vfio names it",
    killedBy: ["answers.test.js"],
  },
  {
    id: "holders-noiommu-path",
    file: "src/lib/holders.js",
    from: "const PATH_TARGET = /(?:^|\\/)dev\\/vfio\\/(?:(?:noiommu-)?(\\d+)|",
    to: "const PATH_TARGET = /(?:^|\\/)dev\\/vfio\\/(?:(\\d+)|",
    wrong: "holders of /dev/vfio/noiommu-N not seen when stat is refused",
    killedBy: ["answers.test.js"],
  },
  {
    id: "vf-index-fallback",
    file: "src/lib/sysfs.js",
    from: "if (pf.virtfn.get(i) === bdf)",
    to: "if (false)",
    wrong: "a VF's index unknown when offset and stride do not point at it",
    killedBy: ["answers.test.js"],
  },
  {
    id: "device-fd-untracked",
    file: "src/sys/linux/host.js",
    from: "if (request === VFIO.GROUP_GET_DEVICE_FD)",
    to: "if (false)",
    wrong: "the real backend forgets the device fds GET_DEVICE_FD returned (exit leaves them open)",
    killedBy: ["answers.test.js"],
  },
  {
    id: "errno-95-name",
    file: "src/sys/linux/ioctl.js",
    from: 'ERRNO_NAMES.set(95, "EOPNOTSUPP");',
    to: "",
    wrong: "errno 95 named ENOTSUP by the real backend, EOPNOTSUPP by the model",
    killedBy: ["answers.test.js"],
  },
  {
    id: "errno-alias-from-node",
    file: "src/sys/linux/host.js",
    from: "return se.code === ne.code || alias ? se",
    to: "return se.code === ne.code ? se",
    wrong: "Node's ENOTSUP kept as ENOTSUP with errno 0",
    killedBy: ["answers.test.js"],
  },
  {
    id: "reads-on-js-thread",
    file: "src/sys/linux/host.js",
    from: "if (this.jsThreadReads.has(fd))\n",
    to: "if (true)\n",
    wrong: "every read made on the JS thread: a blocked sriov_numvfs read stops the event loop",
    killedBy: ["linux-backend.test.js"],
  },
  {
    id: "read-file-on-js-thread",
    file: "src/sys/linux/host.js",
    from: "if (!readCannotBlock(path))\n            return undefined;",
    to: "",
    wrong: "readAttr of sriov_numvfs or driver_override made whole on the JS thread: a blocked read stops the event loop",
    killedBy: ["linux-backend.test.js"],
  },
  {
    id: "numvfs-not-blocking",
    file: "src/sys/blocking.js",
    from: 'new Set(["sriov_numvfs", "driver_override",',
    to: 'new Set(["driver_override",',
    wrong: "sriov_numvfs read on the JS thread",
    killedBy: ["linux-backend.test.js"],
  },
  {
    id: "write-on-js-thread",
    file: "src/sys/linux/host.js",
    from: "fs.write(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(toSysError(err, \"write\", path)) : resolve(n)));",
    to: "try { resolve(fs.writeSync(fd, buf, 0, buf.length, null)); } catch (err) { reject(toSysError(err, \"write\", path)); }",
    wrong: "a write Linux blocks stops the event loop (no timeout can fire)",
    killedBy: ["linux-backend.test.js"],
  },
  {
    id: "pending-signal-lost",
    file: "src/kernel/kernel.js",
    from: "this.#fired = true;",
    to: "this.#fired = false;",
    wrong: "a signal delivered while a task waits for a device lock is lost before its first interruptible wait (no 'Device is currently in use' line)",
    killedBy: ["spec-removal.test.js"],
  },
  {
    id: "revoked-group-kept",
    file: "src/kernel/vfio/vfio_main.js",
    from: "if (this.groups.get(g.id) === g)",
    to: "if (this.groups.get(g.id) !== g)",
    wrong: "a revoked group left in the id map: its node, made again, keeps the old place in /dev/vfio's listing",
    killedBy: ["spec-removal.test.js"],
  },
  {
    id: "uuid-dash-position",
    file: "src/uapi/vfio.js",
    from: "i === 18 || i === 23",
    to: "i === 18 || i === 22",
    wrong: "a malformed VF token accepted, a well-formed one refused",
    killedBy: ["uuid.test.js"],
  },
  {
    id: "uuid-low-nibble",
    file: "src/uapi/vfio.js",
    from: "ok = hi >= 0 && lo >= 0;",
    to: "ok = hi >= 0;",
    wrong: "a VF token with a non-hex digit accepted",
    killedBy: ["uuid.test.js"],
  },
  {
    id: "lazy-command-table",
    file: "src/cli/commands/modules.js",
    from: '["list", "list"],',
    to: '["list", "show"],',
    wrong: "vfioctl list loads the wrong module (it still runs, after loading every module)",
    killedBy: ["startup.test.js"],
  },
  {
    id: "explain-exit-open-only",
    file: "src/cli/commands/explain.js",
    from: "const code = x.asked.works ? EXIT.OK : EXIT.NO;",
    to: 'const code = x.open.verdict === "ok" ? EXIT.OK : EXIT.NO;',
    wrong: "explain --numvfs 99 (ERANGE) and --driver with a refused bind exit 0: no script can use explain as a preflight",
    killedBy: ["preflight.test.js"],
  },
  {
    id: "explain-errno-any-name",
    file: "src/lib/explain.js",
    from: "if (EXPLAIN_ERRNOS.includes(name))",
    to: "if (/^E/.test(name))",
    wrong: "--errno EFOO is accepted and answered with \"none known\"",
    killedBy: ["preflight.test.js"],
  },
  {
    id: "explain-node-permission-never-applies",
    file: "src/lib/explain.js",
    from: 'status: denied.length ? "applies" : tight.length ? "would" : "no",',
    to: 'status: tight.length ? "would" : "no",',
    wrong: "a caller the group node's mode does not let in is told the open would succeed",
    killedBy: ["access.test.js"],
  },
  {
    id: "token-verify-raw-eperm",
    file: "src/lib/tokenops.js",
    from: 'throw await groupNotViable(sys, d, "token verify");',
    to: "throw e;",
    wrong: "token verify in a group that is not viable says only ioctl /dev/vfio/N: EPERM",
    killedBy: ["names.test.js"],
  },
  {
    id: "host-file-vf-overlap-unchecked",
    file: "src/kernel/host/host-file.js",
    from: "checkVfAddresses(out, err);",
    to: "",
    wrong: "a declared device on a VF's address boots and is silently replaced when the VF is created",
    killedBy: ["host-validation.test.js"],
  },
  {
    id: "host-file-num-vfs-driver-cap",
    file: "src/kernel/host/boot.js",
    from: "if (n > cap) {",
    to: "if (n > d.sriov.total_vfs) {",
    wrong: "num_vfs: 8 on an 82576 that igb caps at 7 boots and shows VFs 8/7",
    killedBy: ["host-validation.test.js"],
  },
  {
    id: "addon-user-pointer-placeholder",
    file: "src/sys/linux/ioctl.js",
    from: "arg.writeBigUInt64LE(a.address(p.target), p.offset);",
    to: "void 0;",
    wrong: "through the addon a struct's user pointer reaches the kernel as the model's placeholder (EFAULT; VFIO_DEVICE_BIND_IOMMUFD's token never read)",
    killedBy: ["ffi-addon.test.js"],
  },
  {
    id: "ffi-koffi-not-forced",
    file: "src/sys/linux/ioctl.js",
    from: 'if (want === "koffi") {',
    to: "if (false) {",
    wrong: "VFIOCTL_FFI=koffi ignored: the addon is used anyway, so the koffi path is never tested or benched",
    killedBy: ["ffi-addon.test.js"],
  },
  {
    id: "boot-vga-class",
    file: "src/kernel/pci/pci-sysfs.js",
    from: "visible: (d) => d.class >> 8 === 0x0300,",
    to: "visible: (d) => d.class >> 8 === 769,",
    wrong: "a VGA controller without boot_vga (survivor of sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "bar-not-power-of-two",
    file: "src/kernel/host/default-host.js",
    from: "bars: [0x2000000, 0, 0, 0x10000, 0, 0],",
    to: "bars: [0x2000000, 0, 0, 65537, 0, 0],",
    wrong: "the built-in E810's BAR 3 is 65537 bytes, no BAR size (survivor of sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "proc-stat-tty-nr",
    file: "src/kernel/fs/sysfs.js",
    from: "1, pid, pid, 0, -1, 0x400000,",
    to: "1, pid, pid, 1, -1, 0x400000,",
    wrong: "/proc/PID/stat gives a process without a terminal tty_nr 1 (survivor of sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "readfile-fd0-kept",
    file: "src/sys/linux/host.js",
    from: "            if (fd >= 0) {\n                try {\n                    this.closeNow(fd);",
    to: "            if (fd >= 1) {\n                try {\n                    this.closeNow(fd);",
    wrong: "the real backend's readFile leaks fd 0 when its read fails (survivor of sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "unbind-vfs-note",
    file: "src/lib/bind.js",
    from: "warnings.push(`note: ${vfs.length} VFs went away with the PF driver`);",
    to: "void 0;",
    wrong: "unbind --remove-vfs says nothing of the VFs it destroyed (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "unbind-override-note",
    file: "src/lib/bind.js",
    from: "warnings.push(`note: driver_override is still ${JSON.stringify(d.driverOverride)}",
    to: "void (`note: driver_override is still ${JSON.stringify(d.driverOverride)}",
    wrong: "an unbind that leaves driver_override set does not say the next probe binds it (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "audit-world-open",
    file: "src/lib/audit.js",
    from: "modes.some((m) => m !== null && (m & 0o007) !== 0)",
    to: "false",
    wrong: "audit calls a cdev node every local user can open root-only (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "audit-list-three",
    file: "src/lib/audit.js",
    from: "cdevVfs.slice(0, 4)",
    to: "cdevVfs.slice(0, 3)",
    wrong: "audit lists 3 VFs but counts the rest from 4 (six VFs: three named, 'and 2 more') (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "token-group-readable",
    file: "src/lib/token.js",
    from: "const warnings = mode & 0o077 ?",
    to: "const warnings = mode & 0o007 ?",
    wrong: "a token file its group can read is taken without a warning (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "token-lines",
    file: "src/lib/token.js",
    from: "${lines > 1 ? ` on ${lines} lines` : \"\"}",
    to: "",
    wrong: "a token file of several lines is refused without saying so (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "keep-root-dir",
    file: "src/lib/token.js",
    from: "path.slice(0, path.lastIndexOf(\"/\")) || \"/\"",
    to: "path.slice(0, path.lastIndexOf(\"/\"))",
    wrong: "--keep /name is refused: directory '' does not exist (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "resource-end",
    file: "src/kernel/pci/pci-sysfs.js",
    from: "${hex(size - 1, 16)}",
    to: "${hex(size, 16)}",
    wrong: "a resource's end is one past its last byte (every BAR one byte too large) (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "resource-iov-numvfs",
    file: "src/kernel/pci/pci-sysfs.js",
    from: "(d.sriov.vfBars[i] ?? 0) * d.sriov.totalVFs",
    to: "(d.sriov.vfBars[i] ?? 0) * Math.max(d.sriov.numVFs, 1)",
    wrong: "a PF's SR-IOV resources sized by NumVFs instead of TotalVFs (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "config-revision",
    file: "src/kernel/pci/pci-sysfs.js",
    from: "b.writeUInt32LE(((d.class << 8) | d.revision) >>> 0, 8);",
    to: "b.writeUInt32LE((d.class << 8) >>> 0, 8);",
    wrong: "config's revision byte reads 0 while revision says otherwise (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "kmsg-lost",
    file: "src/sys/kmsg.js",
    from: "this.lost++;",
    to: "void 0;",
    wrong: "records /dev/kmsg overwrote before they were read (EPIPE) are not counted (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "sriov-fewer",
    file: "src/lib/sriov.js",
    from: "if (after !== n)",
    to: "if (false)",
    wrong: "a driver that enabled fewer VFs than written goes unremarked (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "holders-unreadable-plural",
    file: "src/lib/holders.js",
    from: "scan.unreadable.length === 1 ? \"'s\" : \"es'\"",
    to: "scan.unreadable.length === 1 ? \"es'\" : \"'s\"",
    wrong: "'1 processes' fds' / '2 process's fds' (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "strerror-ebadfd",
    file: "src/sys/errno.js",
    from: "EBADFD: \"File descriptor in bad state\",",
    to: "",
    wrong: "EBADFD errors read 'EBADFD (EBADFD)' (by hand, beside sampled seed 14)",
    killedBy: ["sampled-survivors-14.test.js"],
  },
  {
    id: "cdev-device-link-ignored",
    file: "src/lib/holders.js",
    from: "const unresolved = idxs.filter((i) => !device.get(i));",
    to: "const unresolved = [];",
    wrong: "a cdev whose class entry is a folder (a copied tree) has no device or group (by hand, over the batched vfio node numbers)",
    killedBy: ["holders.test.js"],
  },
  {
    id: "misc-iommu-as-container",
    file: "src/lib/holders.js",
    from: 'put("/sys/class/misc/iommu/dev", { kind: "iommufd"',
    to: 'put("/sys/class/misc/iommu/dev", { kind: "container"',
    wrong: "an fd on /dev/iommu found through /sys/class/misc/iommu/dev called a container (by hand, over the batched vfio node numbers)",
    killedBy: ["holders.test.js"],
  },
  {
    id: "cdev-every-class-device",
    file: "src/lib/kernel.js",
    from: ".some((st) => !(st instanceof Error))",
    to: ".every((st) => !(st instanceof Error))",
    wrong: "the vfio cdev not seen when one vfio-dev class device lacks its dev attribute (by hand, over the batched cdev check)",
    killedBy: ["kernel-rules.test.js"],
  },
  {
    id: "holders-scan-every-node",
    file: "src/lib/holders.js",
    from: "if (majors !== null && !majors.has(major(rdev)))",
    to: "if (false)",
    wrong: "every holders scan reads every vfio node's number (a host apply quadratic in its VFs)",
    killedBy: ["holders.test.js"],
  },
  {
    id: "host-json-duplicate-key",
    file: "src/kernel/host/host-file.js",
    from: "return written === keyCount(raw) ? raw : undefined;",
    to: "return raw;",
    wrong: "a JSON host file naming a key twice was read with JSON.parse's last value instead of being refused as yaml refuses it",
    killedBy: ["host-validation.test.js"],
  },
  {
    id: "model-batch-blocking-read-now",
    file: "src/kernel/fs/sysfs.js",
    from: "return this.node.wouldBlock?.() === false;",
    to: "return false;",
    wrong: "the model's batch read of a driver_override whose lock is free kept its fd until a later read, unlike the real backend's",
    killedBy: ["model-batch.test.js"],
  },
  {
    id: "shared-batch-traced",
    file: "src/sys/linux/host.js",
    from: "if (n < PARALLEL_MIN || LinuxSyscalls.trace) {",
    to: "if (n < PARALLEL_MIN) {",
    wrong: "a traced batch read by two threads traced its system calls out of path order",
    killedBy: ["batch-reads.test.js"],
  },
  {
    id: "shared-batch-offset",
    file: "src/sys/linux/host.js",
    from: "out[from + k] = values[k];",
    to: "out[k] = values[k];",
    wrong: "a shared batch's chunks all answered at the front: every path but the first chunk's got another path's answer",
    killedBy: ["batch-reads.test.js"],
  },
  {
    id: "userptr-any",
    file: "src/sys/userptr.js",
    from: "anyPointers = true;",
    to: "",
    wrong: "a struct given a user pointer was passed to the kernel with the placeholder, not the target's address",
    killedBy: ["userptr.test.js"],
  },
];

function copyDist(from: string): string {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-mutants-"));
  // as readable as a checkout: a test runs part of the suite as an unprivileged user (batch-reads' EACCES case)
  fs.chmodSync(tmp, 0o755);
  fs.cpSync(path.join(from, "dist"), path.join(tmp, "dist"), { recursive: true });
  fs.copyFileSync(path.join(from, "package.json"), path.join(tmp, "package.json"));
  fs.symlinkSync(path.join(from, "node_modules"), path.join(tmp, "node_modules"));
  // test/ffi-addon.test.ts builds the ioctl addon from its source with the build script
  for (const f of ["tools/build-native.mjs", "src/sys/linux/native"]) fs.cpSync(path.join(from, f), path.join(tmp, f), { recursive: true });
  // the built addon, for the tests of the real backend's batch reads (skipped without it)
  if (fs.existsSync(path.join(from, "build/native"))) fs.cpSync(path.join(from, "build/native"), path.join(tmp, "build/native"), { recursive: true });
  return tmp;
}

function apply(text: string, m: Mutant): string | null {
  const n = text.split(m.from).length - 1;
  if (n === 0 || (n > 1 && !m.occurrence) || (m.occurrence ?? 1) > n) return null;
  let at = -1;
  for (let i = 0; i < (n === 1 ? 1 : m.occurrence!); i++) at = text.indexOf(m.from, at + 1);
  return text.slice(0, at) + m.to + text.slice(at + m.from.length);
}

export function runMutants(opts: { repo: string; full?: boolean; only?: string[]; log?: (s: string) => void }): { killed: number; survived: string[]; stale: string[] } {
  const log = opts.log ?? ((s: string) => console.log(s));
  const tmp = copyDist(opts.repo);
  const survived: string[] = [];
  const stale: string[] = [];
  let killed = 0;
  try {
    for (const m of MUTANTS.filter((x) => !opts.only?.length || opts.only.includes(x.id))) {
      const file = path.join(tmp, "dist", m.file);
      const orig = fs.readFileSync(file, "utf8");
      const mutated = apply(orig, m);
      if (mutated === null) {
        stale.push(m.id);
        log(`STALE     ${m.id}: ${m.file} no longer contains the text it replaces`);
        continue;
      }
      fs.writeFileSync(file, mutated);
      try {
        const tests = opts.full ? ["dist/test/"] : m.killedBy.map((t) => `dist/test/${t}`);
        const r = spawnSync(process.execPath, ["--test", "--test-timeout=120000", ...tests], { cwd: tmp, encoding: "utf8", timeout: 600_000 });
        const failed = (r.stdout ?? "").split("\n").filter((l) => l.startsWith("not ok")).length;
        if (r.status !== 0) {
          killed++;
          log(`killed    ${m.id} (${failed} failing) — ${m.wrong}`);
        } else {
          survived.push(m.id);
          log(`SURVIVED  ${m.id} — ${m.wrong}`);
        }
      } finally {
        fs.writeFileSync(file, orig);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return { killed, survived, stale };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  const args = process.argv.slice(2);
  const t0 = Date.now();
  const r = runMutants({ repo, full: args.includes("--full"), only: args.filter((a) => !a.startsWith("--")) });
  const total = r.killed + r.survived.length;
  console.log(`\n${r.killed}/${total} mutants killed${r.stale.length ? `, ${r.stale.length} stale` : ""} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  process.exitCode = r.survived.length || r.stale.length ? 1 : 0;
}
