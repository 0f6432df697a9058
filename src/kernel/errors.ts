/** An errno raised inside the model; the process layer turns it into a SysError with syscall and path. */
export class SysErrorCode extends Error {
  constructor(readonly errno: number) {
    super(`errno ${errno}`);
  }
}
