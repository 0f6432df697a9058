/**
 * lib/uuid.c uuid_is_valid / uuid_parse as the model and the library use them (src/uapi/vfio.ts):
 * a character loop, checked against the specification's regular expression on generated strings
 * (near-UUIDs included: a wrong dash, a non-hex digit, a character over 0x7f, one too many or few).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { uuidFormat, uuidIsValid, uuidParse, uuidTryParse } from "../src/uapi/vfio.js";

const SPEC = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const specBytes = (s: string): string | null => (s.length === 36 && SPEC.test(s) ? s.replace(/-/g, "").toLowerCase() : null);

const nearUuid = fc
  .tuple(fc.uuid(), fc.nat(40), fc.constantFrom("", "-", "g", "G", " ", "\n", "ÿ", "ā", "0", "A", "--"), fc.constantFrom("replace", "insert", "delete", "upper", "none"))
  .map(([u, at, ch, how]) => {
    const i = Math.min(at, u.length);
    if (how === "replace") return u.slice(0, i) + ch + u.slice(i + 1);
    if (how === "insert") return u.slice(0, i) + ch + u.slice(i);
    if (how === "delete") return u.slice(0, i) + u.slice(i + 1);
    if (how === "upper") return u.toUpperCase();
    return u;
  });

test("uuidIsValid, uuidTryParse and uuidParse agree with the specification on UUIDs and near-UUIDs", () => {
  fc.assert(
    fc.property(fc.oneof(nearUuid, fc.string({ maxLength: 40 }), fc.stringMatching(/^[0-9a-fA-F-]{30,40}$/)), (s) => {
      const want = specBytes(s);
      assert.equal(uuidIsValid(s), want !== null, JSON.stringify(s));
      const got = uuidTryParse(s);
      assert.equal(got?.toString("hex") ?? null, want, JSON.stringify(s));
      if (want === null) assert.throws(() => uuidParse(s), /not a UUID/);
      else {
        assert.equal(uuidParse(s).toString("hex"), want);
        assert.equal(uuidFormat(uuidParse(s)), s.toLowerCase());
      }
    }),
    { numRuns: 3000 },
  );
});

test("every dash position and every hex digit position is checked", () => {
  const u = "2ab74924-c335-45f4-9b16-8569e5b08258";
  for (let i = 0; i < 36; i++) {
    for (const ch of ["-", "x", "F", "9"]) {
      const s = u.slice(0, i) + ch + u.slice(i + 1);
      assert.equal(uuidIsValid(s), specBytes(s) !== null, `${i} ${ch}`);
      assert.equal(uuidTryParse(s)?.toString("hex") ?? null, specBytes(s), `${i} ${ch}`);
    }
  }
});
