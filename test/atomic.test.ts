import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { AtomicWriteError, symlinkAtomic, writeFileAtomic } from "../src/sys/atomic.js";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "vfioctl-atomic-"));

test("writeFileAtomic: content and mode, whatever the umask", () => {
  const d = tmp();
  const old = process.umask(0o077);
  try {
    writeFileAtomic(path.join(d, "unit"), "x\n", { mode: 0o644 });
  } finally {
    process.umask(old);
  }
  assert.equal(fs.readFileSync(path.join(d, "unit"), "utf8"), "x\n");
  assert.equal(fs.statSync(path.join(d, "unit")).mode & 0o777, 0o644);
  assert.deepEqual(fs.readdirSync(d), ["unit"]);
});

test("writeFileAtomic: a symlink at the target is replaced, its target is never written", () => {
  const d = tmp();
  fs.writeFileSync(path.join(d, "victim"), "keep");
  fs.symlinkSync(path.join(d, "victim"), path.join(d, "t"));
  writeFileAtomic(path.join(d, "t"), "new");
  assert.equal(fs.readFileSync(path.join(d, "victim"), "utf8"), "keep");
  assert.ok(fs.lstatSync(path.join(d, "t")).isFile());
  assert.equal(fs.readFileSync(path.join(d, "t"), "utf8"), "new");
});

test("writeFileAtomic: a failed write or fsync or rename leaves the old file and no temporary file", () => {
  for (const [stage, io] of [
    ["write", { writeSync: () => { throw Object.assign(new Error("ENOSPC"), { code: "ENOSPC" }); } }],
    ["write", { fsyncSync: () => { throw Object.assign(new Error("EIO"), { code: "EIO" }); } }],
    ["rename", { renameSync: () => { throw Object.assign(new Error("EXDEV"), { code: "EXDEV" }); } }],
  ] as const) {
    const d = tmp();
    fs.writeFileSync(path.join(d, "f"), "old");
    assert.throws(() => writeFileAtomic(path.join(d, "f"), "new", { io: io as never }), (e: unknown) => e instanceof AtomicWriteError && e.stage === stage);
    assert.equal(fs.readFileSync(path.join(d, "f"), "utf8"), "old");
    assert.deepEqual(fs.readdirSync(d), ["f"]);
  }
});

test("writeFileAtomic: a partial write is continued until every byte is written", () => {
  const d = tmp();
  const data = "0123456789".repeat(100);
  writeFileAtomic(path.join(d, "f"), data, { io: { writeSync: ((fd: number, b: Uint8Array, off: number, len: number) => fs.writeSync(fd, b, off, Math.min(len, 7))) as never } });
  assert.equal(fs.readFileSync(path.join(d, "f"), "utf8"), data);
});

test("writeFileAtomic: a missing directory is a create-stage error naming the target", () => {
  const d = tmp();
  assert.throws(() => writeFileAtomic(path.join(d, "no", "f"), "x"), (e: unknown) => e instanceof AtomicWriteError && e.stage === "create" && e.code === "ENOENT" && e.message.includes(path.join(d, "no", "f")));
});

test("symlinkAtomic: replaces an existing link in one step", () => {
  const d = tmp();
  symlinkAtomic(path.join(d, "l"), "/a");
  symlinkAtomic(path.join(d, "l"), "/b");
  assert.equal(fs.readlinkSync(path.join(d, "l")), "/b");
  assert.deepEqual(fs.readdirSync(d), ["l"]);
});
