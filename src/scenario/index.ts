/**
 * Scenarios: one file format that drives the kernel model and real Linux kernels through the
 * syscalls seam, and the transcripts they produce. See docs/scenarios.md.
 */
export * from "./scenario.js";
export * from "./runner.js";
export * from "./transcript.js";
export * from "./backends.js";
export { KmsgReader, parseKmsgRecord, type LogLine } from "./kmsg.js";
