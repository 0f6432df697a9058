/** Conformance: scenarios/*.yaml on real kernels vs the model (filled in once src/scenario's runner lands). */
export async function runGuestScenarios(_kernel: string, _files: string[], _out: string): Promise<unknown> {
  throw new Error("conformance runner not available yet");
}
export async function report(_o: { kernels: string[]; jobs: number; files: string[]; t0: number }): Promise<number> {
  console.error("lab: --report is not available yet");
  return 2;
}
