/**
 * The list benchmark's floor for a Node program (bench/list.ts): the operations of
 * bench/c/replay.c's OPSFILE made with synchronous `node:fs` calls in a plain loop, nothing
 * else (no seam, no Promise, no threadpool). What it costs over the C replay is Node's own cost
 * per file system call plus its start-up; vfioctl cannot be cheaper than this.
 *
 * usage: node dist/bench/replay-node.js OPSFILE   (the bytes read go to stdout, like the C side)
 */
import * as fs from "node:fs";

const lines = fs.readFileSync(process.argv[2]!, "utf8").split("\n");
const fds = new Map<number, number>();
const buf = Buffer.allocUnsafe(65536);
const out: Buffer[] = [];
for (const line of lines) {
  if (!line) continue;
  const op = line[0];
  const a = line.slice(2);
  try {
    if (op === "o") {
      const s1 = a.indexOf(" ");
      const s2 = a.indexOf(" ", s1 + 1);
      const fd = Number(a.slice(0, s1));
      const r = fs.openSync(a.slice(s2 + 1), Number(a.slice(s1 + 1, s2)));
      if (fd >= 0) fds.set(fd, r);
    } else if (op === "r") {
      const [fd, len] = a.split(" ");
      const n = fs.readSync(fds.get(Number(fd))!, buf, 0, Math.min(Number(len), buf.length), null);
      if (n > 0) out.push(Buffer.from(buf.subarray(0, n)));
    } else if (op === "c") fs.closeSync(fds.get(Number(a))!);
    else if (op === "l") out.push(Buffer.from(fs.readlinkSync(a) + "\n"));
    else if (op === "s") fs.statSync(a);
    else if (op === "S") fs.lstatSync(a);
    else if (op === "d") out.push(Buffer.from(fs.readdirSync(a).join("\n") + "\n"));
  } catch {
    /* failures are part of the replay (ENOENT), as in C */
  }
}
fs.writeSync(1, Buffer.concat(out));
