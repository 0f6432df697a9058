/**
 * pci.ids names: the lookup (a vendor's block found by its line, a device by its line within the
 * block) against a plain parse of the whole file, for every vendor and device of the system's
 * pci.ids (or the fixture when the system has none), and for IDs that are absent.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { PCI_IDS_PATHS, PciIds } from "../src/lib/pciids.js";

const fixture = new URL("../../test/fixtures/pci.ids", import.meta.url).pathname;
const file = PCI_IDS_PATHS.find((p) => fs.existsSync(p)) ?? fixture;

/** Every vendor and its devices, the way the format is specified (pci.ids header comment). */
function parseAll(text: string): Map<number, { name: string; devices: Map<number, string> }> {
  const out = new Map<number, { name: string; devices: Map<number, string> }>();
  let cur: { name: string; devices: Map<number, string> } | null = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    let m = /^([0-9a-f]{4}) {2}(.*)$/.exec(line);
    if (m) {
      cur = { name: m[2]!.trim(), devices: new Map() };
      if (!out.has(parseInt(m[1]!, 16))) out.set(parseInt(m[1]!, 16), cur);
      continue;
    }
    if (!line.startsWith("\t")) {
      cur = null; // the device classes (C xx) and anything else after the vendors
      continue;
    }
    m = /^\t([0-9a-f]{4}) {2}(.*)$/.exec(line);
    if (m && cur && !cur.devices.has(parseInt(m[1]!, 16))) cur.devices.set(parseInt(m[1]!, 16), m[2]!.trim());
  }
  return out;
}

test("every vendor and device of pci.ids is named as a full parse names it; absent IDs are null", { timeout: 60_000 }, () => {
  const all = parseAll(fs.readFileSync(file, "latin1"));
  assert.ok(all.size > 0, file);
  const ids = new PciIds(file);
  let n = 0;
  const listed = [...all.values()].flatMap((o) => [...o.devices.keys()]);
  const others = [...new Set([...listed.slice(0, 20), ...listed.slice(-20), 0xfffe])];
  for (const [v, { name, devices }] of all) {
    for (const [d, dn] of devices) {
      assert.deepEqual(ids.names(v, d), { vendor: name, device: dn }, `${file}: ${v.toString(16)}:${d.toString(16)}`);
      n++;
    }
    // device IDs the vendor does not list, though other vendors (before and after it) do
    for (const d of others) if (!devices.has(d)) assert.deepEqual(ids.names(v, d), { vendor: name, device: null }, `${v.toString(16)}:${d.toString(16)} is not listed`);
    assert.deepEqual(ids.names(v, null), { vendor: name, device: null });
  }
  const noVendor = [...Array(0x10000).keys()].find((v) => !all.has(v))!;
  assert.deepEqual(ids.names(noVendor, 0x0001), { vendor: null, device: null });
  assert.ok(n > 0);
});
