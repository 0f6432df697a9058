/*
 * Batch reads for the Linux backend's inventory (included by ioctl.c, so one addon): the
 * open(O_RDONLY|O_CLOEXEC), read(s) and close of many small files, or the readlink of many
 * links, in one Node-API call instead of three JS-level calls each.
 *
 * Paths come as one string, NUL-separated ("a\0b\0c"). A file is read as src/sys/fsutil.ts
 * readAttr (wholeIfShort 1) or readText (0) read it: reads of CHUNK bytes; with wholeIfShort a
 * first read shorter than PAGE is the whole file, else reads go on until one returns 0.
 *
 * Per path, three int32 in `meta`: the fd open returned (or −errno: nothing else was done), the
 * number of read(2) calls made, and the byte count (or −errno of the read that failed; the fd
 * was closed all the same). The bytes of every file that was read whole are in `data`, one
 * after the other in path order. LinuxSyscalls turns the meta into its trace lines and results.
 *
 *   readFiles(paths, wholeIfShort)          synchronous, on the calling thread: {meta, data}
 *   readlinks(paths)                        synchronous: an array, per path the target (a
 *                                           string) or −errno (a number)
 *   readFilesAsync(paths, wholeIfShort, cb) the same reads on a libuv threadpool thread, one
 *                                           path after the other; returns a handle at once,
 *                                           calls cb() (no arguments) when the last is done
 *   batchPoll(h)                            [paths done, index in progress or −1, ms since it
 *                                           started (its open) or since the batch was queued]
 *   batchTake(h, from)                      {meta, data} of the paths done from `from` on
 *   batchCancel(h)                          stop after the path in progress; returns the fd of
 *                                           that path when it was opened (the caller owns it
 *                                           from then: the thread leaves it open), else −1
 *   lstats(paths), readdirs(paths)          lstat(2) / opendir+readdir of many paths (below)
 *
 * A read that blocks (a sysfs attribute whose show() takes the device lock a blocked write
 * holds) stops only its batch's thread: the caller polls, cancels the stuck batch after its
 * timeout, and queues the paths after the stuck one as a new batch. A handle's memory lives
 * until both the handle is collected and the thread is done.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH_CHUNK 65536
#define BATCH_PAGE 4096

/* a growing byte buffer */
typedef struct {
  char *p;
  size_t n, cap;
} bytes_t;

static int bytes_reserve(bytes_t *b, size_t more) {
  if (b->n + more <= b->cap) return 1;
  size_t cap = b->cap ? b->cap : 65536;
  while (cap < b->n + more) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return 0;
  b->p = p;
  b->cap = cap;
  return 1;
}

/* the paths of a NUL-separated string argument: a malloc'd copy and pointers into it */
typedef struct {
  char *buf;
  char **v;
  size_t n;
} paths_t;

static void paths_free(paths_t *ps) {
  free(ps->buf);
  free(ps->v);
}

static int paths_arg(napi_env env, napi_value arg, paths_t *ps) {
  size_t len;
  memset(ps, 0, sizeof *ps);
  if (napi_get_value_string_utf8(env, arg, NULL, 0, &len) != napi_ok) return throw_type(env, "paths must be a string (NUL-separated)"), 0;
  ps->buf = malloc(len + 1);
  if (!ps->buf) return napi_throw_error(env, "ENOMEM", "out of memory"), 0;
  napi_get_value_string_utf8(env, arg, ps->buf, len + 1, &len);
  size_t n = len ? 1 : 0;
  for (size_t i = 0; i < len; i++) n += ps->buf[i] == 0;
  ps->v = malloc((n ? n : 1) * sizeof *ps->v);
  if (!ps->v) return paths_free(ps), napi_throw_error(env, "ENOMEM", "out of memory"), 0;
  char *s = ps->buf;
  for (size_t i = 0; i < n; i++) {
    ps->v[i] = s;
    s += strlen(s) + 1;
  }
  ps->n = n;
  return 1;
}

/* read(2) with a scratch of CHUNK bytes, the bytes appended to out: the count or −errno */
static int read_whole(int fd, int whole_if_short, bytes_t *out, int *nreads) {
  size_t total = 0;
  for (;;) {
    if (!bytes_reserve(out, BATCH_CHUNK)) return -ENOMEM;
    ssize_t n = read(fd, out->p + out->n, BATCH_CHUNK);
    (*nreads)++;
    if (n < 0) return -(errno ? errno : EIO);
    out->n += (size_t)n;
    total += (size_t)n;
    if (n == 0 || (whole_if_short && *nreads == 1 && n < BATCH_PAGE)) return (int)total;
  }
}

/* one path: meta[0..2] as the header says; the bytes appended to out (removed on a read error) */
static void read_one(const char *path, int whole_if_short, bytes_t *out, int32_t *meta, volatile int *fd_seen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    meta[0] = -(errno ? errno : EIO);
    meta[1] = 0;
    meta[2] = 0;
    return;
  }
  if (fd_seen) *fd_seen = fd;
  size_t at = out->n;
  int nreads = 0;
  int r = read_whole(fd, whole_if_short, out, &nreads);
  if (r < 0) out->n = at;
  meta[0] = fd;
  meta[1] = nreads;
  meta[2] = r;
}

static napi_value meta_data(napi_env env, const int32_t *meta, size_t n, const char *data, size_t len) {
  napi_value out, ab, ta, buf;
  void *p;
  napi_create_object(env, &out);
  napi_create_arraybuffer(env, n * 3 * sizeof(int32_t), &p, &ab);
  if (n) memcpy(p, meta, n * 3 * sizeof(int32_t));
  napi_create_typedarray(env, napi_int32_array, n * 3, ab, 0, &ta);
  napi_create_buffer_copy(env, len, len ? data : "", NULL, &buf);
  napi_set_named_property(env, out, "meta", ta);
  napi_set_named_property(env, out, "data", buf);
  return out;
}

static napi_value ReadFiles(napi_env env, napi_callback_info info) {
  ARGS(2, 2, "readFiles(paths, wholeIfShort): 2 arguments");
  bool whole;
  if (napi_get_value_bool(env, argv[1], &whole) != napi_ok) return throw_type(env, "readFiles: wholeIfShort must be a boolean");
  paths_t ps;
  if (!paths_arg(env, argv[0], &ps)) return NULL;
  int32_t *meta = malloc((ps.n ? ps.n : 1) * 3 * sizeof *meta);
  bytes_t out = {0};
  if (!meta) return paths_free(&ps), napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
  for (size_t i = 0; i < ps.n; i++) {
    int32_t *m = meta + 3 * i;
    read_one(ps.v[i], whole, &out, m, NULL);
    if (m[0] >= 0) close(m[0]);
  }
  napi_value res = meta_data(env, meta, ps.n, out.p, out.n);
  free(meta);
  free(out.p);
  paths_free(&ps);
  return res;
}

static napi_value Readlinks(napi_env env, napi_callback_info info) {
  ARGS(1, 1, "readlinks(paths): 1 argument");
  paths_t ps;
  if (!paths_arg(env, argv[0], &ps)) return NULL;
  napi_value arr;
  napi_create_array_with_length(env, ps.n, &arr);
  static char buf[4096];
  for (size_t i = 0; i < ps.n; i++) {
    ssize_t n = readlink(ps.v[i], buf, sizeof buf);
    napi_value v;
    if (n < 0) v = int_value(env, -(errno ? errno : EIO));
    else if ((size_t)n == sizeof buf) v = int_value(env, -ENAMETOOLONG);
    else napi_create_string_utf8(env, buf, (size_t)n, &v);
    napi_set_element(env, arr, (uint32_t)i, v);
  }
  paths_free(&ps);
  return arr;
}

/* ---- the asynchronous batch ---- */

typedef struct {
  paths_t ps;
  int whole;
  int32_t *meta;   /* 3 per path */
  size_t *ends;    /* per path done: the end of its bytes in out */
  bytes_t out;
  pthread_mutex_t mu;
  size_t done;     /* paths finished (under mu) */
  long cur;        /* index in progress, −1 before the first and after the last (under mu) */
  volatile int cur_fd; /* its fd once opened, else −1 (under mu) */
  struct timespec since; /* when cur started, or when the batch was queued (under mu) */
  int cancel;      /* stop after cur (under mu) */
  int adopted;     /* the caller owns cur_fd (under mu) */
  int refs;        /* the handle and the work (main thread only) */
  napi_async_work work;
  napi_ref cb;
} batch_t;

static void batch_unref(napi_env env, batch_t *b) {
  if (--b->refs) return;
  if (b->cb) napi_delete_reference(env, b->cb);
  pthread_mutex_destroy(&b->mu);
  paths_free(&b->ps);
  free(b->meta);
  free(b->ends);
  free(b->out.p);
  free(b);
}

static void batch_execute(napi_env env, void *data) {
  (void)env;
  batch_t *b = data;
  bytes_t local = {0};
  for (size_t i = 0; i < b->ps.n; i++) {
    pthread_mutex_lock(&b->mu);
    if (b->cancel) {
      pthread_mutex_unlock(&b->mu);
      break;
    }
    b->cur = (long)i;
    b->cur_fd = -1;
    clock_gettime(CLOCK_MONOTONIC, &b->since);
    pthread_mutex_unlock(&b->mu);
    /* the read itself runs without the lock (it may block); its bytes go to a local buffer */
    int32_t m[3];
    local.n = 0;
    int fd = -1;
    int opened = -1;
    {
      fd = open(b->ps.v[i], O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        m[0] = -(errno ? errno : EIO);
        m[1] = m[2] = 0;
      } else {
        pthread_mutex_lock(&b->mu);
        b->cur_fd = fd;
        pthread_mutex_unlock(&b->mu);
        opened = fd;
        int nreads = 0;
        int r = read_whole(fd, b->whole, &local, &nreads);
        if (r < 0) local.n = 0;
        m[0] = fd;
        m[1] = nreads;
        m[2] = r;
      }
    }
    pthread_mutex_lock(&b->mu);
    int keep = b->cancel && b->adopted;
    if (opened >= 0 && !keep) close(opened);
    if (!b->cancel) {
      if (bytes_reserve(&b->out, local.n)) {
        memcpy(b->out.p + b->out.n, local.p, local.n);
        b->out.n += local.n;
      } else {
        m[2] = -ENOMEM;
      }
      memcpy(b->meta + 3 * i, m, sizeof m);
      b->ends[i] = b->out.n;
      b->done = i + 1;
    }
    b->cur = -1;
    b->cur_fd = -1;
    int stop = b->cancel;
    pthread_mutex_unlock(&b->mu);
    if (stop) break;
  }
  free(local.p);
}

static void batch_complete(napi_env env, napi_status status, void *data) {
  (void)status;
  batch_t *b = data;
  napi_value cb, global, ignored;
  napi_async_work w = b->work;
  if (b->cb && napi_get_reference_value(env, b->cb, &cb) == napi_ok && cb) {
    napi_get_global(env, &global);
    napi_call_function(env, global, cb, 0, NULL, &ignored);
  }
  napi_delete_async_work(env, w);
  batch_unref(env, b);
}

static void batch_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  batch_unref(env, data);
}

static batch_t *batch_arg(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) return throw_type(env, "not a batch handle"), NULL;
  return p;
}

static napi_value ReadFilesAsync(napi_env env, napi_callback_info info) {
  ARGS(3, 3, "readFilesAsync(paths, wholeIfShort, cb): 3 arguments");
  bool whole;
  napi_valuetype t;
  if (napi_get_value_bool(env, argv[1], &whole) != napi_ok) return throw_type(env, "readFilesAsync: wholeIfShort must be a boolean");
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) return throw_type(env, "readFilesAsync: cb must be a function");
  batch_t *b = calloc(1, sizeof *b);
  if (!b) return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
  if (!paths_arg(env, argv[0], &b->ps)) return free(b), NULL;
  b->whole = whole;
  b->meta = calloc(b->ps.n ? b->ps.n : 1, 3 * sizeof *b->meta);
  b->ends = calloc(b->ps.n ? b->ps.n : 1, sizeof *b->ends);
  pthread_mutex_init(&b->mu, NULL);
  b->cur = -1;
  b->cur_fd = -1;
  clock_gettime(CLOCK_MONOTONIC, &b->since);
  b->refs = 1;
  if (!b->meta || !b->ends) return batch_unref(env, b), napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
  napi_value handle, name;
  if (napi_create_external(env, b, batch_finalize, NULL, &handle) != napi_ok) return batch_unref(env, b), NULL;
  napi_create_reference(env, argv[2], 1, &b->cb);
  napi_create_string_utf8(env, "vfioctl.readFiles", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, batch_execute, batch_complete, b, &b->work) != napi_ok) return NULL;
  b->refs++;
  if (napi_queue_async_work(env, b->work) != napi_ok) {
    napi_delete_async_work(env, b->work);
    b->refs--;
    napi_throw_error(env, "EIO", "readFilesAsync: cannot queue the work");
    return NULL;
  }
  return handle;
}

static napi_value BatchPoll(napi_env env, napi_callback_info info) {
  ARGS(1, 1, "batchPoll(h)");
  batch_t *b = batch_arg(env, argv[0]);
  if (!b) return NULL;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  pthread_mutex_lock(&b->mu);
  double ms = (double)(now.tv_sec - b->since.tv_sec) * 1e3 + (double)(now.tv_nsec - b->since.tv_nsec) / 1e6;
  size_t done = b->done;
  long cur = b->cur;
  pthread_mutex_unlock(&b->mu);
  napi_value arr, v;
  napi_create_array_with_length(env, 3, &arr);
  napi_create_uint32(env, (uint32_t)done, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_int32(env, (int32_t)cur, &v);
  napi_set_element(env, arr, 1, v);
  napi_create_double(env, ms, &v);
  napi_set_element(env, arr, 2, v);
  return arr;
}

static napi_value BatchTake(napi_env env, napi_callback_info info) {
  ARGS(2, 2, "batchTake(h, from): 2 arguments");
  batch_t *b = batch_arg(env, argv[0]);
  if (!b) return NULL;
  uint32_t from;
  if (napi_get_value_uint32(env, argv[1], &from) != napi_ok) return throw_type(env, "batchTake: from must be a number");
  pthread_mutex_lock(&b->mu);
  size_t done = b->done;
  if (from > done) from = (uint32_t)done;
  size_t start = from ? b->ends[from - 1] : 0;
  size_t end = done ? b->ends[done - 1] : 0;
  napi_value res = meta_data(env, b->meta + 3 * from, done - from, b->out.p ? b->out.p + start : NULL, end - start);
  pthread_mutex_unlock(&b->mu);
  return res;
}

static napi_value BatchCancel(napi_env env, napi_callback_info info) {
  ARGS(1, 1, "batchCancel(h)");
  batch_t *b = batch_arg(env, argv[0]);
  if (!b) return NULL;
  pthread_mutex_lock(&b->mu);
  b->cancel = 1;
  int fd = b->cur >= 0 ? b->cur_fd : -1;
  if (fd >= 0) b->adopted = 1;
  pthread_mutex_unlock(&b->mu);
  return int_value(env, fd);
}

/* ---- lstat and readdir of many paths (synchronous) ---- */

/*
 * lstats(paths): a Float64Array, 6 per path: 0 or −errno, st_mode, st_size, st_rdev, st_uid,
 * st_gid (the five 0 after an error).
 */
static napi_value Lstats(napi_env env, napi_callback_info info) {
  ARGS(1, 1, "lstats(paths): 1 argument");
  paths_t ps;
  if (!paths_arg(env, argv[0], &ps)) return NULL;
  napi_value ab, ta;
  void *p;
  napi_create_arraybuffer(env, ps.n * 6 * sizeof(double), &p, &ab);
  double *d = p;
  for (size_t i = 0; i < ps.n; i++) {
    struct stat st;
    double *o = d + 6 * i;
    if (lstat(ps.v[i], &st) != 0) {
      o[0] = -(errno ? errno : EIO);
      o[1] = o[2] = o[3] = o[4] = o[5] = 0;
      continue;
    }
    o[0] = 0;
    o[1] = (double)st.st_mode;
    o[2] = (double)st.st_size;
    o[3] = (double)st.st_rdev;
    o[4] = (double)st.st_uid;
    o[5] = (double)st.st_gid;
  }
  napi_create_typedarray(env, napi_float64_array, ps.n * 6, ab, 0, &ta);
  paths_free(&ps);
  return ta;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/*
 * readdirs(paths): an array, per path its entries without "." and ".." sorted by strcmp (the
 * order libuv's scandir gives node:fs readdirSync), or −errno.
 */
static napi_value Readdirs(napi_env env, napi_callback_info info) {
  ARGS(1, 1, "readdirs(paths): 1 argument");
  paths_t ps;
  if (!paths_arg(env, argv[0], &ps)) return NULL;
  napi_value arr;
  napi_create_array_with_length(env, ps.n, &arr);
  size_t cap = 0;
  char **names = NULL;
  bytes_t pool = {0};
  for (size_t i = 0; i < ps.n; i++) {
    napi_value v;
    DIR *dir = opendir(ps.v[i]);
    if (!dir) {
      v = int_value(env, -(errno ? errno : EIO));
      napi_set_element(env, arr, (uint32_t)i, v);
      continue;
    }
    size_t n = 0;
    pool.n = 0;
    struct dirent *de;
    int err = 0;
    for (;;) {
      errno = 0;
      de = readdir(dir);
      if (!de) {
        err = errno;
        break;
      }
      if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
      size_t len = strlen(de->d_name) + 1;
      if (!bytes_reserve(&pool, len)) { err = ENOMEM; break; }
      if (n == cap) {
        size_t ncap = cap ? cap * 2 : 64;
        char **nn = realloc(names, ncap * sizeof *names);
        if (!nn) { err = ENOMEM; break; }
        names = nn;
        cap = ncap;
      }
      memcpy(pool.p + pool.n, de->d_name, len);
      names[n++] = (char *)(uintptr_t)pool.n; /* an offset until the pool stops moving */
      pool.n += len;
    }
    closedir(dir);
    if (err) {
      v = int_value(env, -err);
      napi_set_element(env, arr, (uint32_t)i, v);
      continue;
    }
    for (size_t k = 0; k < n; k++) names[k] = pool.p + (uintptr_t)names[k];
    qsort(names, n, sizeof *names, name_cmp);
    napi_create_array_with_length(env, n, &v);
    for (size_t k = 0; k < n; k++) {
      napi_value s;
      napi_create_string_utf8(env, names[k], NAPI_AUTO_LENGTH, &s);
      napi_set_element(env, v, (uint32_t)k, s);
    }
    napi_set_element(env, arr, (uint32_t)i, v);
  }
  free(names);
  free(pool.p);
  paths_free(&ps);
  return arr;
}
