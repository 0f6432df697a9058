/**
 * The upstream vfio_pci_sriov_uapi_test matrix (kernel-spec §10.3) on the model, container mode:
 * token variants same / diff / none × init_token_match / pf_early_close / override_token.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readAttr, linkBase, writeText } from "../src/sys/fsutil.js";
import { featureSetVfToken, VFIO } from "../src/uapi/vfio.js";
import { closeVfioDevice, errnoOf, labKernelWithVfioPf, openVfioDevice, PF } from "../testlib/vfio.js";

const UUID_1 = "52ac9bff-3a88-4fbd-901a-0d767c3b6c97";
const UUID_2 = "88f77eeb-b5aa-4b57-94f5-a5d9ef31bd20";
const VARIANTS = { same: UUID_1, diff: UUID_2, none: null } as const;
const VF = "0000:01:10.0";

const vfMatch = (t: string | null) => (t ? `${VF} vf_token=${t}` : VF);

async function fixture(profile: "6.1" | "6.12") {
  const k = await labKernelWithVfioPf(profile, 0);
  const p = k.spawn("vfio_pci_sriov_uapi_test");
  // the fixture writes 1 to sriov_numvfs and checks the VF was captured by vfio-pci
  await writeText(p, `/sys/bus/pci/devices/${PF}/sriov_numvfs`, "1");
  assert.equal(await linkBase(p, `/sys/bus/pci/devices/${VF}/driver`), "vfio-pci");
  assert.equal(await readAttr(p, `/sys/bus/pci/devices/${PF}/sriov_numvfs`), "1");
  return { k, p };
}

for (const profile of ["6.1", "6.12"] as const) {
  for (const [variant, token] of Object.entries(VARIANTS)) {
    test(`init_token_match, ${variant} token, ${profile}: the VF opens only with the PF's token`, async () => {
      const { p } = await fixture(profile);
      const pf = await openVfioDevice(p, PF, `${PF} vf_token=${UUID_1}`);
      const r = await errnoOf(openVfioDevice(p, VF, vfMatch(token)));
      assert.equal(r, token === UUID_1 ? "ok" : "EACCES");
      await closeVfioDevice(p, pf);
    });

    test(`pf_early_close, ${variant} token, ${profile}: the token outlives the PF's fds`, async () => {
      const { p } = await fixture(profile);
      await closeVfioDevice(p, await openVfioDevice(p, PF, `${PF} vf_token=${UUID_1}`));
      const r = await errnoOf(openVfioDevice(p, VF, vfMatch(token)));
      assert.equal(r, token === UUID_1 ? "ok" : "EACCES");
    });

    test(`override_token, ${variant} token, ${profile}: FEATURE SET replaces the token for later VF opens`, async () => {
      const { p } = await fixture(profile);
      const pf = await openVfioDevice(p, PF, `${PF} vf_token=${UUID_1}`);
      assert.equal(await p.ioctl(pf.device, VFIO.DEVICE_FEATURE, featureSetVfToken(UUID_2)), 0);
      const r = await errnoOf(openVfioDevice(p, VF, vfMatch(token)));
      assert.equal(r, token === UUID_2 ? "ok" : "EACCES");
    });
  }
}
