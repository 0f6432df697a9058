export type { Stat, Syscalls } from "../sys/syscalls.js";
export const O_ACCMODE_MASK = 3;
