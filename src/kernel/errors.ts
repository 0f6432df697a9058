/**
 * An errno raised inside the model; the process layer turns it into a SysError with syscall and
 * path. It is an answer, not a bug: built without a stack trace (that cost more than the call).
 */
export class SysErrorCode extends Error {
  constructor(readonly errno: number) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`errno ${errno}`);
    Error.stackTraceLimit = limit;
  }
}
