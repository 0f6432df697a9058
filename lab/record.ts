/**
 * The raw-transcript recorder that runs inside a lab guest: every operation goes through
 * LinuxSyscalls; after each one the /dev/kmsg records it produced are drained, unfiltered.
 * A transcript is written both as text (for people) and as JSON (for tools).
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { O_RDONLY, O_RDWR, O_WRONLY, type Syscalls } from "../src/sys/syscalls.js";
import { withTimeout, TimeoutError } from "../src/sys/fsutil.js";
import { VFIO_IOCTL_NAMES } from "../src/uapi/vfio.js";
import { KmsgReader as Kmsg, type KmsgRecord } from "../src/sys/kmsg.js";

export type Outcome = { ok: true; ret?: number; value?: unknown } | { ok: false; errno: string; message: string } | { ok: false; blocked: true; afterMs: number };

export interface OpRecord {
  i: number;
  op: string;
  /** shell-like description, e.g. `echo 2 > /sys/…/sriov_numvfs` */
  desc: string;
  outcome: Outcome;
  ms: number;
  kmsg: KmsgRecord[];
  /** extra output (ioctl out-structs, …) */
  out?: Record<string, unknown>;
}

export interface Transcript {
  kernel: string;
  release: string;
  name: string;
  started: string;
  ops: OpRecord[];
  notes: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Recorder {
  readonly t: Transcript;
  private kmsg!: Kmsg;
  /** wait this long before draining kmsg, for lines logged just after a syscall returns */
  settleMs = 50;

  constructor(
    readonly sys: Syscalls,
    kernel: string,
    name: string,
  ) {
    let release = "";
    try {
      release = execFileSync("uname", ["-r"]).toString().trim();
    } catch {
      /* not fatal */
    }
    this.t = { kernel, release, name, started: new Date().toISOString(), ops: [], notes: [] };
  }

  async start(fromStart = false): Promise<KmsgRecord[]> {
    this.kmsg = await Kmsg.open(this.sys, fromStart);
    return fromStart ? this.kmsg.drain() : [];
  }

  note(s: string): void {
    this.t.notes.push(s);
    this.push({ op: "note", desc: s, outcome: { ok: true }, ms: 0, kmsg: [] });
  }

  /** where the transcript is saved after every op (so a guest that hangs still leaves it) */
  saveDir: string | undefined;

  private push(r: Omit<OpRecord, "i">): OpRecord {
    const rec = { i: this.t.ops.length, ...r };
    this.t.ops.push(rec);
    if (this.saveDir) this.save(this.saveDir);
    return rec;
  }

  /** Print an op on the console before it runs (the serial console shows where a guest hangs). */
  private trace(desc: string): void {
    if (process.env.VFIOCTL_LAB_TRACE !== "0") process.stdout.write(`op[${this.t.ops.length}] ${desc}\n`);
  }

  /** Run one operation, record its outcome and the kernel log records it produced. */
  async op<T>(op: string, desc: string, f: () => Promise<T>, show?: (v: T) => { ret?: number; value?: unknown; out?: Record<string, unknown> }): Promise<T | undefined> {
    this.trace(desc);
    const t0 = performance.now();
    let outcome: Outcome;
    let v: T | undefined;
    let out: Record<string, unknown> | undefined;
    try {
      v = await f();
      const s = show ? show(v) : typeof v === "number" ? { ret: v } : { value: v };
      outcome = { ok: true, ...(s.ret !== undefined ? { ret: s.ret } : {}), ...(s.value !== undefined ? { value: s.value } : {}) };
      out = s.out;
    } catch (e) {
      const err = e as { code?: string; message?: string };
      if (e instanceof TimeoutError) outcome = { ok: false, blocked: true, afterMs: e.ms };
      else outcome = { ok: false, errno: err.code ?? "?", message: err.message ?? String(e) };
    }
    const ms = Math.round(performance.now() - t0);
    if (this.settleMs) await sleep(this.settleMs);
    const kmsg = await this.kmsg.drain();
    this.push({ op, desc, outcome, ms, kmsg, ...(out ? { out } : {}) });
    return v;
  }

  /** Drain the log into a record of its own (lines that came while nothing was running). */
  async logSince(desc: string): Promise<void> {
    const kmsg = await this.kmsg.drain();
    this.push({ op: "log", desc, outcome: { ok: true }, ms: 0, kmsg });
  }

  // ---- the operations ----

  read(path: string, blockMs = 20000): Promise<string | undefined> {
    return this.op("read", `cat ${path}`, async () => {
      const fd = await this.sys.open(path, O_RDONLY);
      const p = this.sys.read(fd, 65536);
      p.catch(() => undefined);
      try {
        return (await withTimeout(p, blockMs, `read ${path}`)).toString("utf8");
      } finally {
        // a read still blocked keeps its fd until it returns
        void p.finally(() => this.sys.close(fd).catch(() => undefined));
      }
    });
  }

  /** `echo -n DATA > PATH` as one write(2); `blockMs` races it with a timer (the write keeps going). */
  async write(path: string, data: string, blockMs = 20000): Promise<number | undefined> {
    return this.op("write", `write ${JSON.stringify(data)} > ${path}`, async () => {
      const fd = await this.sys.open(path, O_WRONLY);
      try {
        return await withTimeout(this.sys.write(fd, data), blockMs, `write ${path}`);
      } finally {
        await this.sys.close(fd).catch(() => undefined);
      }
    });
  }

  /** Start a write that may block; returns its promise (settled result recorded by {@link settle}). */
  async startWrite(path: string, data: string): Promise<{ p: Promise<number>; fd: number; desc: string; t0: number }> {
    const fd = await this.sys.open(path, O_WRONLY);
    const desc = `write ${JSON.stringify(data)} > ${path}`;
    const t0 = performance.now();
    const p = this.sys.write(fd, data);
    p.catch(() => undefined);
    await this.op("write-start", `${desc} (started in the threadpool)`, async () => withTimeout(p, 300, desc));
    return { p, fd, desc, t0 };
  }

  async settle(w: { p: Promise<number>; fd: number; desc: string; t0: number }, ms: number): Promise<boolean> {
    let done = false;
    await this.op("write-wait", `${w.desc}: wait up to ${ms} ms`, async () => {
      const n = await withTimeout(w.p, ms, w.desc);
      done = true;
      return n;
    }, (n) => ({ ret: n, out: { msSinceStart: Math.round(performance.now() - w.t0) } }));
    if (done) await this.sys.close(w.fd).catch(() => undefined);
    return done;
  }

  readlink(path: string): Promise<string | undefined> {
    return this.op("readlink", `readlink ${path}`, () => this.sys.readlink(path));
  }

  ls(path: string): Promise<string[] | undefined> {
    return this.op("readdir", `ls ${path}`, () => this.sys.readdir(path));
  }

  exists(path: string): Promise<boolean | undefined> {
    return this.op("exists", `test -e ${path}`, async () => {
      try {
        await this.sys.lstat(path);
        return true;
      } catch {
        return false;
      }
    });
  }

  open(path: string, flags = O_RDWR): Promise<number | undefined> {
    return this.op("open", `open ${path}`, () => this.sys.open(path, flags), (fd) => ({ ret: fd }));
  }

  close(fd: number, what: string): Promise<void> {
    return this.op("close", `close ${fd} (${what})`, () => this.sys.close(fd));
  }

  ioctl(fd: number, what: string, req: number, arg: Buffer | number | undefined, argDesc: string, decode?: (b: Buffer) => Record<string, unknown>): Promise<number | undefined> {
    const name = VFIO_IOCTL_NAMES[req] ?? `0x${req.toString(16)}`;
    return this.op("ioctl", `ioctl(${fd} ${what}, ${name}, ${argDesc})`, () => this.sys.ioctl(fd, req, arg), (ret) => ({
      ret,
      ...(decode && Buffer.isBuffer(arg) ? { out: decode(arg) } : {}),
    }));
  }

  /** Run a command (modprobe -d /mnt …) and record its exit and output with the log. */
  sh(cmd: string, args: string[]): Promise<string | undefined> {
    return this.op("exec", [cmd, ...args].join(" "), async () => {
      try {
        return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }).toString();
      } catch (e) {
        const x = e as { status?: number; stderr?: Buffer };
        throw Object.assign(new Error(`exit ${x.status}: ${x.stderr?.toString().trim()}`), { code: `exit ${x.status}` });
      }
    });
  }

  modprobe(mod: string, ...params: string[]): Promise<string | undefined> {
    return this.sh("modprobe", ["-d", "/mnt", mod, ...params]);
  }

  // ---- output ----

  text(): string {
    const L: string[] = [];
    L.push(`# ${this.t.name} on Linux ${this.t.release} (${this.t.kernel}), ${this.t.started}`);
    L.push(`# kmsg lines are /dev/kmsg records as read: "PRI,SEQ,TS_US,FLAGS;TEXT" (PRI = facility*8 + level), continuation lines start with a space`);
    for (const r of this.t.ops) {
      if (r.op === "note") {
        L.push("", `## ${r.desc}`);
        continue;
      }
      const o = r.outcome;
      const res = o.ok
        ? `ok${o.ret !== undefined ? ` ret=${o.ret}` : ""}${o.value !== undefined ? ` value=${JSON.stringify(o.value)}` : ""}`
        : "blocked" in o
          ? `BLOCKED (still pending after ${o.afterMs} ms)`
          : `ERROR ${o.errno} (${o.message})`;
      L.push(`[${r.i}] ${r.desc}`);
      L.push(`    => ${res}${r.out ? ` out=${JSON.stringify(r.out)}` : ""} (${r.ms} ms)`);
      for (const k of r.kmsg) for (const line of k.raw.split("\n")) L.push(`    kmsg: ${line}`);
    }
    return L.join("\n") + "\n";
  }

  save(dir: string): void {
    const base = `${dir}/${this.t.kernel}-${this.t.name}`;
    writeFileSync(`${base}.txt`, this.text());
    writeFileSync(`${base}.json`, JSON.stringify(this.t, null, 1) + "\n");
  }
}

export { O_RDONLY, O_RDWR, O_WRONLY };
