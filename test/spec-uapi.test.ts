/**
 * kernel-spec §1 (ioctl numbers, constants, struct byte offsets, UUID byte layout) and the §10.1
 * byte vectors, pinned byte for byte.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as U from "../src/uapi/vfio.js";
import { PF, U1, VF0, bootWithVfs, openDevice, attempt } from "../testlib/spec/index.js";

const hex = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

describe("§1.1 ioctl numbers are _IO(';', 100 + n) = 0x3B64 + n", () => {
  const rows: [keyof typeof U.VFIO, number, number][] = [
    ["GET_API_VERSION", 0x3b64, 15204],
    ["CHECK_EXTENSION", 0x3b65, 15205],
    ["SET_IOMMU", 0x3b66, 15206],
    ["GROUP_GET_STATUS", 0x3b67, 15207],
    ["GROUP_SET_CONTAINER", 0x3b68, 15208],
    ["GROUP_UNSET_CONTAINER", 0x3b69, 15209],
    ["GROUP_GET_DEVICE_FD", 0x3b6a, 15210],
    ["DEVICE_GET_INFO", 0x3b6b, 15211],
    ["DEVICE_GET_REGION_INFO", 0x3b6c, 15212],
    ["DEVICE_GET_IRQ_INFO", 0x3b6d, 15213],
    ["DEVICE_SET_IRQS", 0x3b6e, 15214],
    ["DEVICE_RESET", 0x3b6f, 15215],
    ["DEVICE_GET_PCI_HOT_RESET_INFO", 0x3b70, 15216],
    ["IOMMU_GET_INFO", 0x3b70, 15216],
    ["DEVICE_PCI_HOT_RESET", 0x3b71, 15217],
    ["IOMMU_MAP_DMA", 0x3b71, 15217],
    ["IOMMU_UNMAP_DMA", 0x3b72, 15218],
    ["DEVICE_FEATURE", 0x3b75, 15221],
    ["DEVICE_BIND_IOMMUFD", 0x3b76, 15222],
    ["DEVICE_ATTACH_IOMMUFD_PT", 0x3b77, 15223],
    ["DEVICE_DETACH_IOMMUFD_PT", 0x3b78, 15224],
  ];
  for (const [name, h, d] of rows) {
    test(`VFIO_${name} = 0x${h.toString(16).toUpperCase()} (${d})`, () => {
      assert.equal(U.VFIO[name], h);
      assert.equal(U.VFIO[name], d);
    });
  }
  test("VFIO_TYPE is ';' (0x3B) and VFIO_BASE is 100", () => {
    assert.equal(U.VFIO_TYPE, ";".charCodeAt(0));
    assert.equal(U.VFIO_BASE, 100);
  });
});

describe("§1.2–§1.5 constants", () => {
  test("API version and IOMMU / extension types", () => {
    assert.deepEqual(
      [U.VFIO_API_VERSION, U.VFIO_TYPE1_IOMMU, U.VFIO_SPAPR_TCE_IOMMU, U.VFIO_TYPE1v2_IOMMU, U.VFIO_DMA_CC_IOMMU, U.VFIO_EEH, U.VFIO_TYPE1_NESTING_IOMMU, U.VFIO_SPAPR_TCE_v2_IOMMU, U.VFIO_NOIOMMU_IOMMU, U.VFIO_UNMAP_ALL, U.VFIO_UPDATE_VADDR],
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
  });
  test("group, device, region and irq flag bits", () => {
    assert.deepEqual([U.VFIO_GROUP_FLAGS_VIABLE, U.VFIO_GROUP_FLAGS_CONTAINER_SET], [1, 2]);
    assert.deepEqual([U.VFIO_DEVICE_FLAGS_RESET, U.VFIO_DEVICE_FLAGS_PCI, U.VFIO_DEVICE_FLAGS_CAPS], [1, 2, 0x80]);
    assert.deepEqual([U.VFIO_REGION_INFO_FLAG_READ, U.VFIO_REGION_INFO_FLAG_WRITE, U.VFIO_REGION_INFO_FLAG_MMAP], [1, 2, 4]);
    assert.deepEqual([U.VFIO_IRQ_INFO_EVENTFD, U.VFIO_IRQ_INFO_MASKABLE, U.VFIO_IRQ_INFO_AUTOMASKED, U.VFIO_IRQ_INFO_NORESIZE], [1, 2, 4, 8]);
    assert.deepEqual(
      [U.VFIO_IRQ_SET_DATA_NONE, U.VFIO_IRQ_SET_DATA_BOOL, U.VFIO_IRQ_SET_DATA_EVENTFD, U.VFIO_IRQ_SET_ACTION_MASK, U.VFIO_IRQ_SET_ACTION_UNMASK, U.VFIO_IRQ_SET_ACTION_TRIGGER, U.VFIO_IRQ_SET_DATA_TYPE_MASK, U.VFIO_IRQ_SET_ACTION_TYPE_MASK],
      [1, 2, 4, 8, 0x10, 0x20, 7, 0x38],
    );
  });
  test("FEATURE bits and the composed values of §1.4", () => {
    assert.deepEqual([U.VFIO_DEVICE_FEATURE_MASK, U.VFIO_DEVICE_FEATURE_GET, U.VFIO_DEVICE_FEATURE_SET, U.VFIO_DEVICE_FEATURE_PROBE, U.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN], [0xffff, 0x10000, 0x20000, 0x40000, 0]);
    assert.equal(U.VFIO_DEVICE_FEATURE_SET | U.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, 0x00020000);
    assert.equal(U.VFIO_DEVICE_FEATURE_PROBE | U.VFIO_DEVICE_FEATURE_SET, 0x00060000);
    assert.equal(U.VFIO_DEVICE_FEATURE_GET, 0x00010000);
    assert.equal(U.VFIO_DEVICE_FEATURE_PROBE, 0x00040000);
  });
  test("PCI region and IRQ indices, and the region offset shift", () => {
    assert.deepEqual([U.VFIO_PCI_BAR0_REGION_INDEX, U.VFIO_PCI_ROM_REGION_INDEX, U.VFIO_PCI_CONFIG_REGION_INDEX, U.VFIO_PCI_VGA_REGION_INDEX, U.VFIO_PCI_NUM_REGIONS], [0, 6, 7, 8, 9]);
    assert.deepEqual([U.VFIO_PCI_INTX_IRQ_INDEX, U.VFIO_PCI_MSI_IRQ_INDEX, U.VFIO_PCI_MSIX_IRQ_INDEX, U.VFIO_PCI_ERR_IRQ_INDEX, U.VFIO_PCI_REQ_IRQ_INDEX, U.VFIO_PCI_NUM_IRQS], [0, 1, 2, 3, 4, 5]);
    assert.equal(BigInt(U.VFIO_PCI_CONFIG_REGION_INDEX) << BigInt(U.VFIO_PCI_OFFSET_SHIFT), 0x70000000000n);
  });
});

describe("§1.3 struct sizes and byte offsets (6.1 header)", () => {
  test("struct sizes", () => {
    assert.deepEqual(U.SIZEOF, {
      vfio_group_status: 8,
      vfio_device_info: 20,
      vfio_region_info: 32,
      vfio_irq_info: 16,
      vfio_irq_set: 20,
      vfio_device_feature: 8,
      vfio_device_bind_iommufd: 24,
      vfio_device_bind_iommufd_v66: 16,
      vfio_device_attach_iommufd_pt: 16,
      vfio_device_detach_iommufd_pt: 12,
    });
  });
  test("field offsets", () => {
    assert.deepEqual(U.OFFSETS.vfio_group_status, { argsz: 0, flags: 4 });
    assert.deepEqual(U.OFFSETS.vfio_device_info, { argsz: 0, flags: 4, num_regions: 8, num_irqs: 12, cap_offset: 16 });
    assert.deepEqual(U.OFFSETS.vfio_region_info, { argsz: 0, flags: 4, index: 8, cap_offset: 12, size: 16, offset: 24 });
    assert.deepEqual(U.OFFSETS.vfio_irq_info, { argsz: 0, flags: 4, index: 8, count: 12 });
    assert.deepEqual(U.OFFSETS.vfio_irq_set, { argsz: 0, flags: 4, index: 8, start: 12, count: 16, data: 20 });
    assert.deepEqual(U.OFFSETS.vfio_device_feature, { argsz: 0, flags: 4, data: 8 });
  });
  test("builders put argsz and index where the offsets say", () => {
    assert.equal(hex(U.regionInfoBuf(7)), "20 00 00 00 00 00 00 00 07 00 00 00 " + "00 ".repeat(20).trim());
    assert.equal(hex(U.irqInfoBuf(4)), "10 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00");
    assert.equal(hex(U.deviceInfoBuf()), "14 00 00 00 " + "00 ".repeat(16).trim());
    assert.equal(hex(U.intBuf(-1)), "ff ff ff ff");
  });
});

describe("§1.6 UUID byte layout (uuid_t, string order)", () => {
  test("01234567-89ab-cdef-0123-456789abcdef parses to bytes in string order", () => {
    assert.equal(hex(U.uuidParse("01234567-89ab-cdef-0123-456789abcdef")), "01 23 45 67 89 ab cd ef 01 23 45 67 89 ab cd ef");
  });
  test("uuid_is_valid: 36 chars, dashes at 8/13/18/23, hex of either case; braces, urn: and short forms are invalid", () => {
    assert.ok(U.uuidIsValid(U1));
    assert.ok(U.uuidIsValid(U1.toUpperCase()));
    assert.ok(U.uuidIsValid("00000000-0000-0000-0000-000000000000"));
    for (const bad of [`{${U1}}`, `urn:uuid:${U1}`, U1.slice(0, 35), U1.replace(/-/g, ""), U1.replace("-", "_"), U1.slice(0, 35) + "g"]) assert.ok(!U.uuidIsValid(bad), bad);
  });
  test("uuidFormat inverts uuidParse (lowercase)", () => {
    assert.equal(U.uuidFormat(U.uuidParse(U1.toUpperCase())), U1);
  });
});

describe("§10.1 byte vectors", () => {
  test("FEATURE SET VF token U1 is 24 bytes: argsz 24, flags 0x00020000, UUID bytes in string order", () => {
    assert.equal(hex(U.featureSetVfToken(U1)), "18 00 00 00 00 00 02 00 2a b7 49 24 c3 35 45 f4 9b 16 85 69 e5 b0 82 58");
  });
  test("PROBE|SET header only: 08 00 00 00 00 00 06 00", () => {
    assert.equal(hex(U.featureBuf(0x60000, 8)), "08 00 00 00 00 00 06 00");
  });
  test("GROUP_GET_STATUS in: 08 00 00 00 00 00 00 00", () => {
    assert.equal(hex(U.groupStatusBuf()), "08 00 00 00 00 00 00 00");
  });
  test("GET_DEVICE_FD arg is the 58-character ASCII string plus NUL", () => {
    const b = U.deviceNameBuf(`0000:04:10.0 vf_token=${U1}`);
    assert.equal(b.length, 59);
    assert.equal(b[58], 0);
    assert.equal(b.subarray(0, 58).toString("ascii"), "0000:04:10.0 vf_token=2ab74924-c335-45f4-9b16-8569e5b08258");
  });
  test("SET_IRQS for the request eventfd: 18 00 00 00 24 00 00 00 04 00 00 00 00 00 00 00 01 00 00 00 <fd>", () => {
    assert.equal(hex(U.reqEventfdBuf(7)), "18 00 00 00 24 00 00 00 04 00 00 00 00 00 00 00 01 00 00 00 07 00 00 00");
  });
  test("the FEATURE and PROBE vectors give 0 on a PF and ENOTTY on a VF; GET_STATUS answers flags 03 after SET_CONTAINER", async () => {
    const { sh } = await bootWithVfs("6.1", 1);
    const pf = await openDevice(sh, PF, `${PF} vf_token=${U1}`);
    const vf = await openDevice(sh, VF0, `${VF0} vf_token=${U1}`);
    assert.equal(await sh.ioctl(pf.device as number, 0x3b75, U.featureSetVfToken(U1)), 0);
    assert.equal(await sh.ioctl(pf.device as number, 0x3b75, U.featureBuf(0x60000, 8)), 0);
    assert.equal(await attempt(sh.ioctl(vf.device as number, 0x3b75, U.featureBuf(0x60000, 8))), "ENOTTY");
    const st = U.groupStatusBuf();
    await sh.ioctl(vf.group, 0x3b67, st);
    assert.equal(hex(st), "08 00 00 00 03 00 00 00");
  });
  test("BIND_IOMMUFD (0x3B76) on a group-path device fd of a kernel without the cdev (both Debian kernels) is ENOTTY", async () => {
    // kernel-spec §2.9 / §10.1's 24-byte BIND vector needs CONFIG_VFIO_DEVICE_CDEV + IOMMUFD (6.6+),
    // which Debian's 6.1 and 6.12 do not have (the cdev rows are in test/spec-cdev.test.ts). The
    // model answers like vfio_pci_core_ioctl's default.
    const { sh } = await bootWithVfs("6.12", 1);
    const pf = await openDevice(sh, PF, `${PF} vf_token=${U1}`);
    const b = Buffer.alloc(24);
    b.writeUInt32LE(24, 0);
    b.writeUInt32LE(1, 4);
    assert.equal(await attempt(sh.ioctl(pf.device as number, U.VFIO.DEVICE_BIND_IOMMUFD, b)), "ENOTTY");
  });
});
