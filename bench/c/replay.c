/*
 * The C side of the `list` benchmark (bench/list.ts): replays, with plain system calls, the
 * file operations that `vfioctl --root T list --json` made through the syscalls seam, recorded
 * in the same run. It is what a C program doing the same reads costs: the same opens, reads,
 * closes, readlinks, stats and directory reads, in the same order, with nothing else around them.
 *
 * usage: replay OPSFILE   (lines, one operation each; PATH is the rest of the line)
 *   o FD FLAGS PATH   open(PATH, FLAGS); FD is the recorded fd, mapped to the real one
 *   r FD LEN          read(fd, buf, LEN)
 *   c FD              close(fd)
 *   l PATH            readlink(PATH)
 *   s PATH / S PATH   stat(PATH) / lstat(PATH)
 *   d PATH            opendir/readdir/closedir(PATH)
 * Everything read (bytes, link targets, names) goes to stdout through one buffer, so the output
 * side costs something too. Exit 0; failures of the operations themselves are expected (ENOENT).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXFD 65536
static int map[MAXFD];
static char out[1 << 20];
static size_t outn;

static void emit(const char *p, size_t n) {
  if (outn + n > sizeof out) {
    fwrite(out, 1, outn, stdout);
    outn = 0;
  }
  if (n > sizeof out) {
    fwrite(p, 1, n, stdout);
    return;
  }
  memcpy(out + outn, p, n);
  outn += n;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: replay OPSFILE\n");
    return 2;
  }
  int f = open(argv[1], O_RDONLY);
  if (f < 0) { perror(argv[1]); return 2; }
  struct stat st;
  fstat(f, &st);
  char *ops = malloc(st.st_size + 1);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(f, ops + got, st.st_size - got);
    if (n <= 0) break;
    got += n;
  }
  ops[got] = 0;
  close(f);
  static char buf[65536];
  for (char *line = ops; *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    char op = line[0];
    char *a = line + 2;
    if (op == 'o') {
      char *e;
      long fd = strtol(a, &e, 10);
      long flags = strtol(e + 1, &e, 10);
      int r = open(e + 1, (int)flags | O_CLOEXEC);
      if (fd >= 0 && fd < MAXFD) map[fd] = r;
    } else if (op == 'r') {
      char *e;
      long fd = strtol(a, &e, 10);
      long len = strtol(e + 1, &e, 10);
      if (len > (long)sizeof buf) len = sizeof buf;
      ssize_t n = read(map[fd], buf, len);
      if (n > 0) emit(buf, n);
    } else if (op == 'c') {
      long fd = strtol(a, NULL, 10);
      close(map[fd]);
    } else if (op == 'l') {
      ssize_t n = readlink(a, buf, sizeof buf);
      if (n > 0) { emit(buf, n); emit("\n", 1); }
    } else if (op == 's' || op == 'S') {
      struct stat s;
      (op == 's' ? stat : lstat)(a, &s);
    } else if (op == 'd') {
      DIR *d = opendir(a);
      if (d) {
        struct dirent *de;
        while ((de = readdir(d))) { emit(de->d_name, strlen(de->d_name)); emit("\n", 1); }
        closedir(d);
      }
    }
    if (!nl) break;
    line = nl + 1;
  }
  fwrite(out, 1, outn, stdout);
  return 0;
}
