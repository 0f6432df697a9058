/**
 * Standard output of the `vfioctl` process (src/cli/main.ts writes a pipe, a socket or a file
 * with write(2) on fd 1, anything else through process.stdout): the whole output arrives, the
 * same bytes, on a file, a socket (child_process's pipe), a shell pipe, and a non-blocking pipe
 * that fills up while its reader waits (write(2) fails with EAGAIN; the rest goes through
 * process.stdout, which waits for the reader); a pipe closed early ends the output quietly with the command's own exit code.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const repo = new URL("../../", import.meta.url).pathname;
const bin = path.join(repo, "bin/vfioctl.js");

/** A host whose `list --all --json` is ~115 KB: more than a pipe holds (64 KiB). */
function bigHost(dir: string): string {
  const devices = [0, 1].map((i) => ({
    bdf: `0000:${(0x10 + 2 * i).toString(16)}:00.0`,
    vendor: 0x8086,
    device: 0x159b,
    class: 0x020000,
    driver: "vfio-pci",
    sriov: { total_vfs: 64, offset: 1, stride: 1, vf_device: 0x1889, num_vfs: 64 },
  }));
  const f = path.join(dir, "big.json");
  fs.writeFileSync(f, JSON.stringify({ name: "big", modules: { vfio_pci: { enable_sriov: true } }, devices }));
  return f;
}

const env = { ...process.env, NO_COLOR: "1" };

test("list --json of a big host: the same bytes on a file, a socket, a shell pipe and a non-blocking pipe that fills up", { timeout: 120_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-stdout-"));
  try {
    const argv = [bin, "--sim", bigHost(dir), "list", "--all", "--json"];
    // a regular file
    const file = path.join(dir, "out.json");
    const fd = fs.openSync(file, "w");
    const r = spawnSync(process.execPath, argv, { stdio: ["ignore", fd, "pipe"], env });
    fs.closeSync(fd);
    assert.equal(r.status, 0, String(r.stderr));
    const expected = fs.readFileSync(file, "utf8");
    assert.ok(expected.length > 100_000 && JSON.parse(expected).schema === "vfioctl.list/1");
    // a socket: child_process's stdio pipe
    const sock = spawnSync(process.execPath, argv, { encoding: "utf8", env, maxBuffer: 16 << 20 });
    assert.equal(sock.status, 0);
    assert.equal(sock.stdout, expected);
    // a shell pipe (a FIFO)
    const shell = execFileSync("sh", ["-c", `"$0" "$@" | cat`, process.execPath, ...argv], { encoding: "utf8", env, maxBuffer: 16 << 20 });
    assert.equal(shell, expected);

    // a FIFO whose write end is non-blocking (libuv makes a child's stdio blocking, so perl sets
    // O_NONBLOCK and execs the command), read only after the command has filled it
    const fifo = path.join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const wfd = fs.openSync(fifo, fs.constants.O_WRONLY);
    const nonblocking = "use Fcntl; fcntl(STDOUT, F_SETFL, fcntl(STDOUT, F_GETFL, 0) | O_NONBLOCK) or die $!; exec @ARGV or die $!";
    const child = spawn("perl", ["-e", nonblocking, process.execPath, ...argv], { stdio: ["ignore", wfd, "pipe"], env });
    fs.closeSync(wfd);
    let err = "";
    child.stderr!.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
    await new Promise((res) => setTimeout(res, 1500));
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(1 << 16);
    for (let done = false; !done; ) {
      try {
        const n = fs.readSync(rfd, buf, 0, buf.length, null);
        if (n === 0) done = true;
        else chunks.push(Buffer.from(buf.subarray(0, n)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
        await new Promise((res) => setTimeout(res, 20));
      }
    }
    fs.closeSync(rfd);
    assert.equal(await exited, 0, err);
    assert.equal(Buffer.concat(chunks).toString("utf8"), expected, "the whole output, in order, through the non-blocking pipe");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a pipe closed after the first line: the output ends quietly and the exit code is list's own", { timeout: 60_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-stdout-"));
  try {
    const r2 = spawnSync("bash", ["-c", `"$0" "$@" | head -c 10 >/dev/null; echo "exit \${PIPESTATUS[0]}"`, process.execPath, bin, "--sim", bigHost(dir), "list", "--all", "--json"], { encoding: "utf8", env });
    assert.equal(r2.stdout.trim(), "exit 0", r2.stderr);
    assert.equal(r2.stderr, "", "no error message for a closed pipe");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
