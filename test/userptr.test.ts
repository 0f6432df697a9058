/**
 * User pointers inside ioctl structs (src/sys/userptr.ts): what the model dereferences, and what
 * the Linux backend puts in the struct around a real ioctl(2).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readUserPointer, setUserPointer, userPointers } from "../src/sys/userptr.js";
import { bindIommufdBuf, uuidParse, VFIO, VFIO_DEVICE_BIND_FLAG_TOKEN } from "../src/uapi/vfio.js";
import { ffiAvailable, ioctl } from "../src/sys/linux/ioctl.js";
import { isErrno } from "../src/sys/errno.js";
import * as fs from "node:fs";

const U1 = "2ab74924-c335-45f4-9b16-8569e5b08258";

test("bindIommufdBuf fills the struct like the selftests' __vfio_device_bind_iommufd: argsz 24, FLAG_TOKEN, iommufd, a pointer to the 16 UUID bytes", () => {
  const b = bindIommufdBuf(7, { token: U1 });
  assert.equal(b.length, 24);
  assert.equal(b.readUInt32LE(0), 24);
  assert.equal(b.readUInt32LE(4), VFIO_DEVICE_BIND_FLAG_TOKEN);
  assert.equal(b.readInt32LE(8), 7);
  assert.equal(b.readUInt32LE(12), 0);
  assert.notEqual(b.readBigUInt64LE(16), 0n);
  assert.deepEqual(readUserPointer(b, 16, 16), uuidParse(U1));
  const plain = bindIommufdBuf(7);
  assert.equal(plain.readUInt32LE(4), 0, "no token: flags 0");
  assert.equal(plain.readBigUInt64LE(16), 0n, "no token: token_uuid_ptr 0");
});

test("the model's copy_from_user faults on a null, unknown or too short pointer", () => {
  const b = Buffer.alloc(24);
  assert.equal(readUserPointer(b, 16, 16), null);
  b.writeBigUInt64LE(0xdeadbeefn, 16);
  assert.equal(readUserPointer(b, 16, 16), null);
  setUserPointer(b, 16, Buffer.alloc(8));
  assert.equal(readUserPointer(b, 16, 16), null);
  setUserPointer(b, 16, Buffer.alloc(16, 0xab));
  assert.equal(userPointers(b).length, 1);
  assert.deepEqual(readUserPointer(b, 16, 16), Buffer.alloc(16, 0xab));
  assert.equal(readUserPointer(Buffer.alloc(20), 16, 16), null, "the struct ends before the pointer");
});

test("the Linux backend passes the target's real address and puts the placeholder back after the call", { skip: !ffiAvailable() || !fs.existsSync("/dev/null") }, () => {
  const b = bindIommufdBuf(3, { token: U1 });
  const before = b.readBigUInt64LE(16);
  const fd = fs.openSync("/dev/null", "r");
  try {
    assert.throws(() => ioctl(fd, VFIO.DEVICE_BIND_IOMMUFD, b), (e: unknown) => isErrno(e, "ENOTTY"));
  } finally {
    fs.closeSync(fd);
  }
  assert.equal(b.readBigUInt64LE(16), before);
  assert.deepEqual(readUserPointer(b, 16, 16), uuidParse(U1));
});
