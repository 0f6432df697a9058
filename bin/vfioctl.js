#!/usr/bin/env node
import { cli } from "../dist/src/cli/main.js";
// Exit explicitly: after a write that Linux keeps blocked (sriov_numvfs, unbind) was reported
// with --timeout, a libuv thread is still inside write(2) and would keep the process alive.
// cli() has flushed standard output (and reported a write error on it) before it resolves.
cli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`vfioctl: internal error: ${e && e.stack ? e.stack : e}\n`, () => process.exit(70));
  },
);
