/**
 * Structured ioctl arguments of a scenario → the bytes the kernel reads, and the kernel's output
 * struct → named fields. Token UUIDs never appear in the call text: they are shown by name.
 */
import {
  OFFSETS,
  SIZEOF,
  VFIO,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  deviceInfoBuf,
  deviceNameBuf,
  featureBuf,
  groupStatusBuf,
  intBuf,
  irqInfoBuf,
  regionInfoBuf,
  reqEventfdBuf,
  uuidParse,
  attachIommufdPtBuf,
  bindIommufdBuf,
  detachIommufdPtBuf,
} from "../uapi/vfio.js";
import { IOMMUFD, ioasAllocBuf } from "../uapi/iommufd.js";
import { parseFlags, type REQUESTS } from "./scenario.js";

export const IOMMU_TYPES: Record<string, number> = { TYPE1: 1, SPAPR_TCE: 2, TYPE1v2: 3, DMA_CC: 4, EEH: 5, TYPE1_NESTING: 6, SPAPR_TCE_v2: 7, NOIOMMU: 8, UNMAP_ALL: 9, UPDATE_VADDR: 10 };
export const FEATURE_FLAGS: Record<string, number> = {
  GET: VFIO_DEVICE_FEATURE_GET,
  SET: VFIO_DEVICE_FEATURE_SET,
  PROBE: VFIO_DEVICE_FEATURE_PROBE,
  PCI_VF_TOKEN: 0,
  MIGRATION: 1,
  MIG_DEVICE_STATE: 2,
  LOW_POWER_ENTRY: 3,
  LOW_POWER_ENTRY_WITH_WAKEUP: 4,
  LOW_POWER_EXIT: 5,
  DMA_LOGGING_START: 6,
  DMA_LOGGING_STOP: 7,
  DMA_LOGGING_REPORT: 8,
  MIG_DATA_SIZE: 9,
};
export const IRQ_SET_FLAGS: Record<string, number> = {
  DATA_NONE: VFIO_IRQ_SET_DATA_NONE,
  DATA_BOOL: VFIO_IRQ_SET_DATA_BOOL,
  DATA_EVENTFD: VFIO_IRQ_SET_DATA_EVENTFD,
  ACTION_MASK: VFIO_IRQ_SET_ACTION_MASK,
  ACTION_UNMASK: VFIO_IRQ_SET_ACTION_UNMASK,
  ACTION_TRIGGER: VFIO_IRQ_SET_ACTION_TRIGGER,
};
export const REGION_INDEX: Record<string, number> = { BAR0: 0, BAR1: 1, BAR2: 2, BAR3: 3, BAR4: 4, BAR5: 5, ROM: 6, CONFIG: 7, VGA: 8 };
export const IRQ_INDEX: Record<string, number> = { INTX: 0, MSI: 1, MSIX: 2, ERR: 3, REQ: 4 };

export interface IoctlCtx {
  /** an fd name of the calling process → its number */
  fd(name: string): number;
  /** a token name (or literal UUID) → the UUID string */
  uuid(nameOrUuid: string): string;
  err(msg: string): Error;
}

export interface BuiltIoctl {
  request: number;
  arg: Buffer | number | undefined;
  /** the call as shown in a transcript (tokens by name) */
  text: string;
  /** the kernel's output fields, read after the call */
  decode?: (arg: Buffer) => Record<string, number>;
}

const num = (v: unknown, table: Record<string, number>, ctx: IoctlCtx, what: string): number => {
  if (typeof v === "number") return v;
  const s = String(v);
  if (s in table) return table[s]!;
  if (/^(0x[0-9a-f]+|-?\d+)$/i.test(s)) return Number(s);
  throw ctx.err(`${what}: expected a number or one of ${Object.keys(table).join(", ")}, got ${JSON.stringify(v)}`);
};
const optNum = (v: unknown, dflt: number): number => (v === undefined ? dflt : Number(v));
const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;

/** The match string of GROUP_GET_DEVICE_FD: `match` verbatim, or "<bdf>[ vf_token=<uuid>]". */
export function matchString(args: Record<string, unknown>, ctx: IoctlCtx): { s: string; shown: string } {
  if (args.match !== undefined) {
    const s = String(args.match);
    return { s, shown: s };
  }
  const bdf = String(args.bdf);
  if (args.token === undefined) return { s: bdf, shown: bdf };
  const t = String(args.token);
  return { s: `${bdf} vf_token=${ctx.uuid(t)}`, shown: `${bdf} vf_token=${t}` };
}

/**
 * `raw`: the request number of `ioctl: 0x3b6e` (req "RAW"); its args are `{ int: N }` (the
 * argument itself) or `{ size: BYTES, argsz?: N }` (a zeroed buffer, argsz — default BYTES —
 * as its first u32); none: a zeroed 64-byte buffer with argsz 64, so a kernel that did take the
 * number reads and writes the project's memory, never an address it did not give.
 */
export function buildIoctl(req: keyof typeof REQUESTS, fdName: string, a: Record<string, unknown>, ctx: IoctlCtx, raw?: number): BuiltIoctl {
  const name = `VFIO_${req}`;
  const call = (inner: string) => `${name}(${fdName}${inner ? ", " + inner : ""})`;
  switch (req) {
    case "RAW": {
      if (raw === undefined) throw ctx.err("RAW: no request number");
      const shownReq = hex(raw);
      if (a.int !== undefined) return { request: raw >>> 0, arg: Number(a.int), text: `${shownReq}(${fdName}, ${a.int})` };
      const size = optNum(a.size, 64);
      const b = Buffer.alloc(size);
      const argsz = optNum(a.argsz, size);
      if (size >= 4) b.writeUInt32LE(argsz >>> 0, 0);
      return { request: raw >>> 0, arg: b, text: `${shownReq}(${fdName}, ${size} bytes argsz=${argsz})` };
    }
    case "GET_API_VERSION":
    case "GROUP_UNSET_CONTAINER":
    case "DEVICE_RESET":
      return { request: VFIO[req], arg: undefined, text: call("") };
    case "CHECK_EXTENSION": {
      const v = num(a.ext ?? a.arg, IOMMU_TYPES, ctx, "ext");
      return { request: VFIO.CHECK_EXTENSION, arg: v, text: call(String(a.ext ?? a.arg)) };
    }
    case "SET_IOMMU": {
      const v = num(a.type ?? a.arg, IOMMU_TYPES, ctx, "type");
      return { request: VFIO.SET_IOMMU, arg: v, text: call(String(a.type ?? a.arg)) };
    }
    case "GROUP_GET_STATUS": {
      const b = groupStatusBuf();
      if (a.argsz !== undefined) b.writeUInt32LE(Number(a.argsz) >>> 0, 0);
      return { request: VFIO.GROUP_GET_STATUS, arg: b, text: call(a.argsz !== undefined ? `argsz=${a.argsz}` : ""), decode: (x) => ({ flags: x.readUInt32LE(4) }) };
    }
    case "GROUP_SET_CONTAINER": {
      if (a.container !== undefined) {
        const c = String(a.container);
        return { request: VFIO.GROUP_SET_CONTAINER, arg: intBuf(ctx.fd(c)), text: call(c) };
      }
      if (a.fd !== undefined) return { request: VFIO.GROUP_SET_CONTAINER, arg: intBuf(Number(a.fd)), text: call(`fd=${a.fd}`) };
      throw ctx.err("GROUP_SET_CONTAINER: expected args { container: FDNAME } or { fd: NUMBER }");
    }
    case "GROUP_GET_DEVICE_FD": {
      if (a.match === undefined && a.bdf === undefined) throw ctx.err("GROUP_GET_DEVICE_FD: expected args { bdf, token? } or { match }");
      const m = matchString(a, ctx);
      return { request: VFIO.GROUP_GET_DEVICE_FD, arg: deviceNameBuf(m.s), text: call(JSON.stringify(m.shown)) };
    }
    case "DEVICE_GET_INFO": {
      const argsz = optNum(a.argsz, SIZEOF.vfio_device_info);
      const o = OFFSETS.vfio_device_info;
      return {
        request: VFIO.DEVICE_GET_INFO,
        arg: deviceInfoBuf(argsz),
        text: call(a.argsz !== undefined ? `argsz=${argsz}` : ""),
        decode: (x) => ({ flags: x.readUInt32LE(o.flags), num_regions: x.readUInt32LE(o.num_regions), num_irqs: x.readUInt32LE(o.num_irqs) }),
      };
    }
    case "GET_REGION_INFO": {
      const index = num(a.index, REGION_INDEX, ctx, "index");
      const argsz = optNum(a.argsz, SIZEOF.vfio_region_info);
      const o = OFFSETS.vfio_region_info;
      return {
        request: VFIO.DEVICE_GET_REGION_INFO,
        arg: regionInfoBuf(index, argsz),
        text: call(`index=${a.index}${a.argsz !== undefined ? ` argsz=${argsz}` : ""}`),
        decode: (x) => ({ flags: x.readUInt32LE(o.flags), size: Number(x.readBigUInt64LE(o.size)), offset: Number(x.readBigUInt64LE(o.offset)) }),
      };
    }
    case "GET_IRQ_INFO": {
      const index = num(a.index, IRQ_INDEX, ctx, "index");
      const argsz = optNum(a.argsz, SIZEOF.vfio_irq_info);
      return {
        request: VFIO.DEVICE_GET_IRQ_INFO,
        arg: irqInfoBuf(index, argsz),
        text: call(`index=${a.index}${a.argsz !== undefined ? ` argsz=${argsz}` : ""}`),
        decode: (x) => ({ flags: x.readUInt32LE(4), count: x.readUInt32LE(12) }),
      };
    }
    case "DEVICE_SET_IRQS": {
      if (a.eventfd !== undefined && a.flags === undefined) {
        // the REQ channel: DATA_EVENTFD|ACTION_TRIGGER, start 0, count 1, one s32 (−1 unregisters)
        const ev = a.eventfd === -1 || a.eventfd === "-1" ? -1 : ctx.fd(String(a.eventfd));
        const b = reqEventfdBuf(ev);
        const index = num(a.index ?? "REQ", IRQ_INDEX, ctx, "index");
        b.writeUInt32LE(index, 8);
        return { request: VFIO.DEVICE_SET_IRQS, arg: b, text: call(`index=${a.index ?? "REQ"} DATA_EVENTFD|ACTION_TRIGGER eventfd=${a.eventfd}`) };
      }
      const flags = parseFlags(a.flags ?? 0, IRQ_SET_FLAGS, ctx.err);
      const index = num(a.index ?? "REQ", IRQ_INDEX, ctx, "index");
      const start = optNum(a.start, 0);
      const count = optNum(a.count, 0);
      const data = Array.isArray(a.data) ? a.data : [];
      const payload = Buffer.alloc(flags & VFIO_IRQ_SET_DATA_EVENTFD ? data.length * 4 : data.length);
      data.forEach((d, i) => {
        if (flags & VFIO_IRQ_SET_DATA_EVENTFD) payload.writeInt32LE(typeof d === "string" ? ctx.fd(d) : Number(d), i * 4);
        else payload[i] = Number(d) & 0xff;
      });
      const argsz = optNum(a.argsz, SIZEOF.vfio_irq_set + payload.length);
      const b = Buffer.alloc(Math.max(argsz, SIZEOF.vfio_irq_set + payload.length));
      b.writeUInt32LE(argsz >>> 0, 0);
      b.writeUInt32LE(flags, 4);
      b.writeUInt32LE(index, 8);
      b.writeUInt32LE(start >>> 0, 12);
      b.writeUInt32LE(count >>> 0, 16);
      payload.copy(b, 20);
      return { request: VFIO.DEVICE_SET_IRQS, arg: b, text: call(`flags=${String(a.flags ?? 0)} index=${a.index ?? "REQ"} start=${start} count=${count} argsz=${argsz}${data.length ? ` data=[${data.join(",")}]` : ""}`) };
    }
    case "DEVICE_BIND_IOMMUFD": {
      // struct vfio_device_bind_iommufd: argsz (default 24), flags (default TOKEN with a token),
      // iommufd (an fd name or a number), token_uuid_ptr → the token's 16 bytes
      const ifd = a.iommufd === undefined ? -1 : typeof a.iommufd === "number" ? a.iommufd : ctx.fd(String(a.iommufd));
      const opts: Parameters<typeof bindIommufdBuf>[1] = {};
      if (a.argsz !== undefined) opts.argsz = Number(a.argsz);
      if (a.flags !== undefined) opts.flags = Number(a.flags);
      if (a.token !== undefined) opts.token = ctx.uuid(String(a.token));
      const shown = [`iommufd=${a.iommufd ?? -1}`, a.flags !== undefined ? `flags=${a.flags}` : "", a.argsz !== undefined ? `argsz=${a.argsz}` : "", a.token !== undefined ? `token=${a.token}` : ""].filter(Boolean).join(" ");
      return { request: VFIO.DEVICE_BIND_IOMMUFD, arg: bindIommufdBuf(ifd, opts), text: call(shown), decode: (x) => ({ out_devid: x.readUInt32LE(12) }) };
    }
    case "DEVICE_ATTACH_IOMMUFD_PT": {
      const pt = Number(a.pt_id ?? 0);
      const opts = { ...(a.argsz !== undefined ? { argsz: Number(a.argsz) } : {}), ...(a.flags !== undefined ? { flags: Number(a.flags) } : {}) };
      return { request: VFIO.DEVICE_ATTACH_IOMMUFD_PT, arg: attachIommufdPtBuf(pt, opts), text: call(`pt_id=${pt}${a.flags !== undefined ? ` flags=${a.flags}` : ""}`), decode: (x) => ({ pt_id: x.readUInt32LE(8) }) };
    }
    case "DEVICE_DETACH_IOMMUFD_PT":
      return { request: VFIO.DEVICE_DETACH_IOMMUFD_PT, arg: detachIommufdPtBuf(a.flags !== undefined ? { flags: Number(a.flags) } : {}), text: call("") };
    case "IOMMU_IOAS_ALLOC":
      return { request: IOMMUFD.IOAS_ALLOC, arg: ioasAllocBuf(a.flags !== undefined ? { flags: Number(a.flags) } : {}), text: `IOMMU_IOAS_ALLOC(${fdName})`, decode: (x) => ({ out_ioas_id: x.readUInt32LE(8) }) };
    case "DEVICE_FEATURE": {
      const flags = parseFlags(a.flags ?? 0, FEATURE_FLAGS, ctx.err);
      let payload: Buffer | undefined;
      let shownPayload = "";
      if (a.token !== undefined) {
        payload = uuidParse(ctx.uuid(String(a.token)));
        shownPayload = ` token=${a.token}`;
      } else if (a.payload_len !== undefined) {
        payload = Buffer.alloc(Number(a.payload_len));
        shownPayload = ` payload=${a.payload_len} zero bytes`;
      }
      const argsz = optNum(a.argsz, 8 + (payload?.length ?? 0));
      const flagText = typeof a.flags === "number" ? hex(flags) : String(a.flags ?? 0);
      return { request: VFIO.DEVICE_FEATURE, arg: featureBuf(flags, argsz, payload), text: call(`flags=${flagText} argsz=${argsz}${shownPayload}`) };
    }
  }
}
