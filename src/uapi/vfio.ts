/**
 * include/uapi/linux/vfio.h: ioctl numbers, constants and struct layouts (little-endian).
 *
 * Every VFIO ioctl is `_IO(';', 100 + n)` = 0x3B64 + n: no size or direction is encoded, the kernel
 * reads the struct size from its leading `argsz`. Several numbers mean different things on
 * different fds (container vs device), so dispatch is always on the fd type.
 *
 * @example
 * ```ts
 * import { VFIO, featureSetVfToken } from "vfioctl";
 * const buf = featureSetVfToken("2ab74924-c335-45f4-9b16-8569e5b08258"); // 24 bytes
 * // await sys.ioctl(pfFd, VFIO.DEVICE_FEATURE, buf)
 * ```
 */
import { setUserPointer } from "../sys/userptr.js";

export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;
const io = (n: number) => (VFIO_TYPE << 8) | (VFIO_BASE + n);

export const VFIO = {
  GET_API_VERSION: io(0),
  CHECK_EXTENSION: io(1),
  SET_IOMMU: io(2),
  GROUP_GET_STATUS: io(3),
  GROUP_SET_CONTAINER: io(4),
  GROUP_UNSET_CONTAINER: io(5),
  GROUP_GET_DEVICE_FD: io(6),
  DEVICE_GET_INFO: io(7),
  DEVICE_GET_REGION_INFO: io(8),
  DEVICE_GET_IRQ_INFO: io(9),
  DEVICE_SET_IRQS: io(10),
  DEVICE_RESET: io(11),
  DEVICE_GET_PCI_HOT_RESET_INFO: io(12),
  IOMMU_GET_INFO: io(12),
  DEVICE_PCI_HOT_RESET: io(13),
  IOMMU_MAP_DMA: io(13),
  IOMMU_UNMAP_DMA: io(14),
  DEVICE_FEATURE: io(17),
  /** cdev device fd only (6.6+) */
  DEVICE_BIND_IOMMUFD: io(18),
  DEVICE_ATTACH_IOMMUFD_PT: io(19),
  DEVICE_DETACH_IOMMUFD_PT: io(20),
} as const;

/** Reverse lookup for printing: the device-fd meaning wins where numbers are shared. */
export const VFIO_IOCTL_NAMES: Record<number, string> = {
  [io(0)]: "VFIO_GET_API_VERSION",
  [io(1)]: "VFIO_CHECK_EXTENSION",
  [io(2)]: "VFIO_SET_IOMMU",
  [io(3)]: "VFIO_GROUP_GET_STATUS",
  [io(4)]: "VFIO_GROUP_SET_CONTAINER",
  [io(5)]: "VFIO_GROUP_UNSET_CONTAINER",
  [io(6)]: "VFIO_GROUP_GET_DEVICE_FD",
  [io(7)]: "VFIO_DEVICE_GET_INFO",
  [io(8)]: "VFIO_DEVICE_GET_REGION_INFO",
  [io(9)]: "VFIO_DEVICE_GET_IRQ_INFO",
  [io(10)]: "VFIO_DEVICE_SET_IRQS",
  [io(11)]: "VFIO_DEVICE_RESET",
  [io(17)]: "VFIO_DEVICE_FEATURE",
  [io(18)]: "VFIO_DEVICE_BIND_IOMMUFD",
  [io(19)]: "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
  [io(20)]: "VFIO_DEVICE_DETACH_IOMMUFD_PT",
};

export const VFIO_API_VERSION = 0;

export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
export const VFIO_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;

export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;

export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;

export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;

export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
export const VFIO_IRQ_SET_DATA_TYPE_MASK = 0x7;
export const VFIO_IRQ_SET_ACTION_TYPE_MASK = 0x38;

export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;
export const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;

/** vfio_device_bind_iommufd.flags: token_uuid_ptr is valid (6.17+, 86624ba3b522) */
export const VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0;
/** vfio_device_attach_iommufd_pt.flags / detach: pasid is valid (newer kernels) */
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;
export const VFIO_DEVICE_DETACH_PASID = 1 << 0;

/** vfio-pci region and irq indices. */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_VGA_REGION_INDEX = 8;
export const VFIO_PCI_NUM_REGIONS = 9;
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
export const VFIO_PCI_ERR_IRQ_INDEX = 3;
export const VFIO_PCI_REQ_IRQ_INDEX = 4;
export const VFIO_PCI_NUM_IRQS = 5;
export const VFIO_PCI_OFFSET_SHIFT = 40;

/** Struct sizes (6.1 header) and the minimum argsz each ioctl accepts. */
export const SIZEOF = {
  vfio_group_status: 8,
  vfio_device_info: 20,
  vfio_region_info: 32,
  vfio_irq_info: 16,
  vfio_irq_set: 20,
  vfio_device_feature: 8,
  /** 16 bytes in 6.6–6.16 (minsz: offsetofend out_devid); 24 from 6.17 with token_uuid_ptr */
  vfio_device_bind_iommufd: 24,
  vfio_device_bind_iommufd_v66: 16,
  /** minsz offsetofend pt_id = 12; 16 with pasid */
  vfio_device_attach_iommufd_pt: 16,
  /** minsz offsetofend flags = 8; 12 with pasid */
  vfio_device_detach_iommufd_pt: 12,
} as const;

/** Byte offsets of struct fields, pinned by tests. */
export const OFFSETS = {
  vfio_group_status: { argsz: 0, flags: 4 },
  vfio_device_info: { argsz: 0, flags: 4, num_regions: 8, num_irqs: 12, cap_offset: 16 },
  vfio_region_info: { argsz: 0, flags: 4, index: 8, cap_offset: 12, size: 16, offset: 24 },
  vfio_irq_info: { argsz: 0, flags: 4, index: 8, count: 12 },
  vfio_irq_set: { argsz: 0, flags: 4, index: 8, start: 12, count: 16, data: 20 },
  vfio_device_feature: { argsz: 0, flags: 4, data: 8 },
  vfio_device_bind_iommufd: { argsz: 0, flags: 4, iommufd: 8, out_devid: 12, token_uuid_ptr: 16 },
  vfio_device_attach_iommufd_pt: { argsz: 0, flags: 4, pt_id: 8, pasid: 12 },
  vfio_device_detach_iommufd_pt: { argsz: 0, flags: 4, pasid: 8 },
} as const;

// ---- UUIDs (uuid_t: bytes in string order, RFC 4122; lib/uuid.c) ----

/** hex digit values by character code (−1: not a hex digit) */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE["0123456789abcdef".charCodeAt(i)] = i;
  HEX_VALUE["0123456789ABCDEF".charCodeAt(i)] = i;
}
const hexValue = (s: string, i: number): number => {
  const c = s.charCodeAt(i);
  return c < 128 ? HEX_VALUE[c]! : -1;
};
const DASH = 0x2d;
const isDashAt = (i: number) => i === 8 || i === 13 || i === 18 || i === 23;

/**
 * lib/uuid.c uuid_is_valid: 36 chars, '-' at 8/13/18/23, hex (either case) elsewhere. A loop
 * over the characters, like the kernel's (every GET_DEVICE_FD with vf_token= runs it).
 */
export function uuidIsValid(s: string): boolean {
  if (s.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    if (isDashAt(i) ? s.charCodeAt(i) !== DASH : hexValue(s, i) < 0) return false;
  }
  return true;
}

/** lib/uuid.c uuid_parse: 16 bytes in the order the hex pairs appear. Throws on bad syntax. */
export function uuidParse(s: string): Buffer {
  const b = uuidTryParse(s);
  if (!b) throw new Error(`not a UUID: expected 8-4-4-4-12 hex digits, got ${s.length} characters`);
  return b;
}

/** uuid_parse returning null on bad syntax (one pass: the check and the bytes together). */
export function uuidTryParse(s: string): Buffer | null {
  const b = Buffer.alloc(16);
  let ok = s.length === 36;
  for (let i = 0, j = 0; ok && i < 36; i++) {
    if (isDashAt(i)) {
      ok = s.charCodeAt(i) === DASH;
      continue;
    }
    const hi = hexValue(s, i);
    const lo = hexValue(s, i + 1);
    ok = hi >= 0 && lo >= 0;
    b[j++] = (hi << 4) | lo;
    i++;
  }
  return ok ? b : null;
}

/** Format 16 bytes as the lowercase canonical UUID string. */
export function uuidFormat(b: Uint8Array): string {
  const h = Buffer.from(b).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

// ---- struct builders used by the library, the scenario runner and the tests ----

/** struct vfio_device_feature for SET|PCI_VF_TOKEN with the 16-byte UUID (24 bytes). */
export function featureSetVfToken(uuid: string | Uint8Array): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(24, 0);
  b.writeUInt32LE(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, 4);
  Buffer.from(typeof uuid === "string" ? uuidParse(uuid) : uuid).copy(b, 8);
  return b;
}

/** A struct vfio_device_feature header with arbitrary flags, argsz and payload (for matrices). */
export function featureBuf(flags: number, argsz = 8, payload?: Uint8Array): Buffer {
  const b = Buffer.alloc(Math.max(argsz, 8 + (payload?.length ?? 0), 8));
  b.writeUInt32LE(argsz >>> 0, 0);
  b.writeUInt32LE(flags >>> 0, 4);
  if (payload) Buffer.from(payload).copy(b, 8);
  return b;
}

export function groupStatusBuf(): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(8, 0);
  return b;
}

/** NUL-terminated match string for VFIO_GROUP_GET_DEVICE_FD. */
export function deviceNameBuf(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, "latin1"), Buffer.from([0])]);
}

/** An int passed by pointer (VFIO_GROUP_SET_CONTAINER). */
export function intBuf(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
}

export function deviceInfoBuf(argsz: number = SIZEOF.vfio_device_info): Buffer {
  const b = Buffer.alloc(Math.max(argsz, SIZEOF.vfio_device_info));
  b.writeUInt32LE(argsz, 0);
  return b;
}

export function regionInfoBuf(index: number, argsz: number = SIZEOF.vfio_region_info): Buffer {
  const b = Buffer.alloc(Math.max(argsz, SIZEOF.vfio_region_info));
  b.writeUInt32LE(argsz, 0);
  b.writeUInt32LE(index, 8);
  return b;
}

export function irqInfoBuf(index: number, argsz: number = SIZEOF.vfio_irq_info): Buffer {
  const b = Buffer.alloc(Math.max(argsz, SIZEOF.vfio_irq_info));
  b.writeUInt32LE(argsz, 0);
  b.writeUInt32LE(index, 8);
  return b;
}

/** VFIO_DEVICE_SET_IRQS registering (fd ≥ 0) or clearing (fd = -1) the REQ eventfd. */
export function reqEventfdBuf(eventfd: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(24, 0);
  b.writeUInt32LE(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 4);
  b.writeUInt32LE(VFIO_PCI_REQ_IRQ_INDEX, 8);
  b.writeUInt32LE(0, 12);
  b.writeUInt32LE(1, 16);
  b.writeInt32LE(eventfd, 20);
  return b;
}

// ---- the cdev path (6.6+): /dev/vfio/devices/vfio<N> ----

export interface BindIommufdOptions {
  /** the VF token: sets VFIO_DEVICE_BIND_FLAG_TOKEN and points token_uuid_ptr at its 16 bytes */
  token?: string | Uint8Array;
  /** argsz (default 24, the 6.17+ struct; 16 is the 6.6–6.16 struct) */
  argsz?: number;
  /** flags as given (default: FLAG_TOKEN when a token is given, else 0) */
  flags?: number;
  /** token_uuid_ptr as a raw value instead of a pointer to the token (e.g. 0n) */
  rawTokenPtr?: bigint;
}

/**
 * struct vfio_device_bind_iommufd for VFIO_DEVICE_BIND_IOMMUFD on a cdev device fd, the way the
 * kernel selftests' __vfio_device_bind_iommufd fills it: argsz = sizeof (24), iommufd, and with
 * a token flags = VFIO_DEVICE_BIND_FLAG_TOKEN and token_uuid_ptr → the 16 UUID bytes. out_devid
 * comes back at offset 12. The buffer is max(argsz, 24) bytes so trailing-byte checks can be tried.
 */
export function bindIommufdBuf(iommufd: number, opts: BindIommufdOptions = {}): Buffer {
  const argsz = opts.argsz ?? SIZEOF.vfio_device_bind_iommufd;
  const b = Buffer.alloc(Math.max(argsz, SIZEOF.vfio_device_bind_iommufd));
  b.writeUInt32LE(argsz >>> 0, 0);
  b.writeUInt32LE((opts.flags ?? (opts.token !== undefined ? VFIO_DEVICE_BIND_FLAG_TOKEN : 0)) >>> 0, 4);
  b.writeInt32LE(iommufd, 8);
  if (opts.token !== undefined) setUserPointer(b, 16, Buffer.from(typeof opts.token === "string" ? uuidParse(opts.token) : opts.token));
  if (opts.rawTokenPtr !== undefined) b.writeBigUInt64LE(opts.rawTokenPtr, 16);
  return b;
}

/** struct vfio_device_attach_iommufd_pt (argsz 12: no pasid); the kernel writes the attached pt_id back at offset 8. */
export function attachIommufdPtBuf(ptId: number, opts: { argsz?: number; flags?: number } = {}): Buffer {
  const argsz = opts.argsz ?? 12;
  const b = Buffer.alloc(Math.max(argsz, SIZEOF.vfio_device_attach_iommufd_pt));
  b.writeUInt32LE(argsz >>> 0, 0);
  b.writeUInt32LE((opts.flags ?? 0) >>> 0, 4);
  b.writeUInt32LE(ptId >>> 0, 8);
  return b;
}

/** struct vfio_device_detach_iommufd_pt (argsz 8: no pasid). */
export function detachIommufdPtBuf(opts: { argsz?: number; flags?: number } = {}): Buffer {
  const argsz = opts.argsz ?? 8;
  const b = Buffer.alloc(Math.max(argsz, SIZEOF.vfio_device_detach_iommufd_pt));
  b.writeUInt32LE(argsz >>> 0, 0);
  b.writeUInt32LE((opts.flags ?? 0) >>> 0, 4);
  return b;
}
