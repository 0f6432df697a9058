/*
 * The C side of the FFI benchmark (bench/ffi.ts): ns per ioctl(2) in a tight loop, for the
 * three kinds of call the seam makes, on a pipe:
 *   int   ioctl(fd, FIOCLEX, 0)          an argument passed by value
 *   buf   ioctl(fd, FIONREAD, &n)        a struct (here an int) passed by pointer, written back
 *   fail  ioctl(fd, VFIO_GET_API_VERSION) on a pipe: -1, errno ENOTTY
 * usage: ioctl N   → one JSON line {"int":ns,"buf":ns,"fail":ns,"cpu":{"int":ns,...}}: wall-clock
 * ns per call, and this process's CPU time per call (CLOCK_PROCESS_CPUTIME_ID: on a loaded
 * machine, what the call costs without the time spent waiting for a core)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double clock_ns(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}
static double now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static double cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  int p[2];
  if (pipe(p) != 0) return 1;
  if (write(p[1], "hello", 5) != 5) return 1;
  volatile long sink = 0;
  double t0 = now_ns(), c0 = cpu_ns();
  for (long i = 0; i < n; i++) sink += ioctl(p[0], FIOCLEX, 0);
  double t1 = now_ns(), c1 = cpu_ns();
  int avail = 0;
  for (long i = 0; i < n; i++) { sink += ioctl(p[0], FIONREAD, &avail); sink += avail; }
  double t2 = now_ns(), c2 = cpu_ns();
  for (long i = 0; i < n; i++) { errno = 0; sink += ioctl(p[0], 0x3b64 /* VFIO_GET_API_VERSION */, 0); sink += errno; }
  double t3 = now_ns(), c3 = cpu_ns();
  printf("{\"int\":%.1f,\"buf\":%.1f,\"fail\":%.1f,\"cpu\":{\"int\":%.1f,\"buf\":%.1f,\"fail\":%.1f},\"sink\":%ld}\n", (t1 - t0) / n,
         (t2 - t1) / n, (t3 - t2) / n, (c1 - c0) / n, (c2 - c1) / n, (c3 - c2) / n, (long)sink);
  return 0;
}
