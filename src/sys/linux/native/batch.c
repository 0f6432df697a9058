/*
 * Batch reads for the Linux backend's inventory (included by ioctl.c, so one addon): the
 * open(O_RDONLY|O_CLOEXEC), read(s) and close of many small files, or the readlink of many
 * links, in one Node-API call instead of three JS-level calls each.
 *
 * Paths come as one string, NUL-separated ("a\0b\0c"); with a last argument `root` (a
 * string), each absolute path is taken under it (root + path: the backend's `--root DIR`).
 * A file is read as src/sys/fsutil.ts readAttr (wholeIfShort 1) or readText (0) read it: reads
 * of CHUNK bytes; with wholeIfShort a first read shorter than PAGE is the whole file, else reads
 * go on until one returns 0.
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
 *   stats(paths)                            stat(2) of many paths, as lstats answers
 *   workShared(kind, paths, whole, chunk)   readFiles, readlinks, lstats, readdirs or stats read
 *                                           by this thread and a threadpool thread at once, in
 *                                           chunks of `chunk` paths, for paths whose reads cannot
 *                                           block (no timeout); returns a handle
 *   workStep(h)                             [from, answer] of the next chunk, or undefined when
 *                                           every chunk has been handed out (see "shared batch")
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
  size_t cap = b->cap ? b->cap : 4096;
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

/*
 * The paths of `arg`, each absolute one under `root` when root is a string (a JS-side
 * `--root DIR`: "DIR" + "/sys/..."), so that JS need not build every host path itself.
 */
static int paths_arg(napi_env env, napi_value arg, napi_value root, paths_t *ps) {
  size_t len, rlen = 0;
  char *r = NULL;
  napi_valuetype t = napi_undefined;
  memset(ps, 0, sizeof *ps);
  if (napi_get_value_string_utf8(env, arg, NULL, 0, &len) != napi_ok) return throw_type(env, "paths must be a string (NUL-separated)"), 0;
  if (root && napi_typeof(env, root, &t) == napi_ok && t == napi_string) {
    napi_get_value_string_utf8(env, root, NULL, 0, &rlen);
    r = malloc(rlen + 1);
    if (!r) return napi_throw_error(env, "ENOMEM", "out of memory"), 0;
    napi_get_value_string_utf8(env, root, r, rlen + 1, &rlen);
  } else if (root && t != napi_undefined) return throw_type(env, "root must be a string"), 0;
  char *in = malloc(len + 1);
  if (!in) return free(r), napi_throw_error(env, "ENOMEM", "out of memory"), 0;
  napi_get_value_string_utf8(env, arg, in, len + 1, &len);
  size_t n = len ? 1 : 0;
  for (size_t i = 0; i < len; i++) n += in[i] == 0;
  if (rlen) {
    ps->buf = malloc(len + 1 + n * rlen);
    if (!ps->buf) return free(r), free(in), napi_throw_error(env, "ENOMEM", "out of memory"), 0;
    char *o = ps->buf;
    for (const char *s = in; s < in + len + 1;) {
      size_t l = strlen(s) + 1;
      if (*s == '/') {
        memcpy(o, r, rlen);
        o += rlen;
      }
      memcpy(o, s, l);
      o += l;
      s += l;
    }
    free(in);
  } else ps->buf = in;
  free(r);
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

/* read(2) into this thread's scratch of CHUNK bytes, the bytes appended to out (only as many
 * as were read: a chunk of a shared batch keeps a small buffer): the count or −errno */
static int read_whole(int fd, int whole_if_short, bytes_t *out, int *nreads) {
  static __thread char scratch[BATCH_CHUNK];
  size_t total = 0;
  for (;;) {
    ssize_t n = read(fd, scratch, BATCH_CHUNK);
    (*nreads)++;
    if (n < 0) return -(errno ? errno : EIO);
    if (n > 0) {
      if (!bytes_reserve(out, (size_t)n)) return -ENOMEM;
      memcpy(out->p + out->n, scratch, (size_t)n);
      out->n += (size_t)n;
    }
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

/*
 * The synchronous batches, each in two halves: exec_* makes the system calls into a job_t (no
 * Node-API: it may run on a threadpool thread), js_* turns the job into the JavaScript answer.
 * Each works on a range of the paths, so that a shared batch (workShared) can read chunks of
 * them on two threads. ReadFiles, Readlinks, Lstats, Stats and Readdirs run both halves on the
 * calling thread, over every path.
 */
enum { JOB_FILES, JOB_LINKS, JOB_LSTATS, JOB_DIRS, JOB_STATS, JOB_KINDS };

typedef struct {
  int kind;
  int whole;
  paths_t ps;
  int32_t *meta; /* files: 3 per path (see above); links, dirs: 1 per path, length or count, or −errno */
  double *st;    /* lstats, stats: 6 per path */
  bytes_t out;   /* files: the bytes; links: the targets; dirs: the names, each NUL-terminated */
} job_t;

static void job_free(job_t *j) {
  paths_free(&j->ps);
  free(j->meta);
  free(j->st);
  free(j->out.p);
  free(j);
}

static void exec_files(job_t *j, size_t from, size_t to, bytes_t *out) {
  for (size_t i = from; i < to; i++) {
    int32_t *m = j->meta + 3 * i;
    read_one(j->ps.v[i], j->whole, out, m, NULL);
    if (m[0] >= 0) close(m[0]);
  }
}

static napi_value js_files(napi_env env, job_t *j, size_t from, size_t to, const bytes_t *out) { return meta_data(env, j->meta + 3 * from, to - from, out->p, out->n); }

static void exec_links(job_t *j, size_t from, size_t to, bytes_t *out) {
  char buf[4096];
  for (size_t i = from; i < to; i++) {
    ssize_t n = readlink(j->ps.v[i], buf, sizeof buf);
    if (n < 0) j->meta[i] = -(errno ? errno : EIO);
    else if ((size_t)n == sizeof buf) j->meta[i] = -ENAMETOOLONG;
    else if (!bytes_reserve(out, (size_t)n)) j->meta[i] = -ENOMEM;
    else {
      memcpy(out->p + out->n, buf, (size_t)n);
      out->n += (size_t)n;
      j->meta[i] = (int32_t)n;
    }
  }
}

/* an array, per path the target (a string) or −errno (a number) */
static napi_value js_links(napi_env env, job_t *j, size_t from, size_t to, const bytes_t *out) {
  napi_value arr;
  napi_create_array_with_length(env, to - from, &arr);
  size_t at = 0;
  for (size_t i = from; i < to; i++) {
    napi_value v;
    if (j->meta[i] < 0) v = int_value(env, j->meta[i]);
    else {
      napi_create_string_utf8(env, out->p + at, (size_t)j->meta[i], &v);
      at += (size_t)j->meta[i];
    }
    napi_set_element(env, arr, (uint32_t)(i - from), v);
  }
  return arr;
}

/* per path 6 doubles: 0 or −errno, st_mode, st_size, st_rdev, st_uid, st_gid (0 after an error) */
static void exec_stat_with(job_t *j, size_t from, size_t to, int (*statf)(const char *, struct stat *)) {
  for (size_t i = from; i < to; i++) {
    struct stat st;
    double *o = j->st + 6 * i;
    if (statf(j->ps.v[i], &st) != 0) {
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
}

static void exec_lstats(job_t *j, size_t from, size_t to, bytes_t *out) { (void)out, exec_stat_with(j, from, to, lstat); }
static void exec_stats(job_t *j, size_t from, size_t to, bytes_t *out) { (void)out, exec_stat_with(j, from, to, stat); }

static napi_value js_lstats(napi_env env, job_t *j, size_t from, size_t to, const bytes_t *out) {
  (void)out;
  napi_value ab, ta;
  void *p;
  size_t n = to - from;
  napi_create_arraybuffer(env, n * 6 * sizeof(double), &p, &ab);
  if (n) memcpy(p, j->st + 6 * from, n * 6 * sizeof(double));
  napi_create_typedarray(env, napi_float64_array, n * 6, ab, 0, &ta);
  return ta;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* per path its entries without "." and "..", sorted by strcmp (the order libuv's scandir gives
 * node:fs readdirSync), appended to out; meta: their count, or −errno (nothing appended) */
static void exec_dirs(job_t *j, size_t from, size_t to, bytes_t *out) {
  size_t cap = 0;
  char **names = NULL;
  bytes_t pool = {0};
  for (size_t i = from; i < to; i++) {
    DIR *dir = opendir(j->ps.v[i]);
    if (!dir) {
      j->meta[i] = -(errno ? errno : EIO);
      continue;
    }
    size_t n = 0;
    pool.n = 0;
    int err = 0;
    for (;;) {
      errno = 0;
      struct dirent *de = readdir(dir);
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
    if (!err && !bytes_reserve(out, pool.n)) err = ENOMEM;
    if (err) {
      j->meta[i] = -err;
      continue;
    }
    for (size_t k = 0; k < n; k++) names[k] = pool.p + (uintptr_t)names[k];
    qsort(names, n, sizeof *names, name_cmp);
    for (size_t k = 0; k < n; k++) {
      size_t len = strlen(names[k]) + 1;
      memcpy(out->p + out->n, names[k], len);
      out->n += len;
    }
    j->meta[i] = (int32_t)n;
  }
  free(names);
  free(pool.p);
}

/* an array, per path an array of its entries or −errno (a number) */
static napi_value js_dirs(napi_env env, job_t *j, size_t from, size_t to, const bytes_t *out) {
  napi_value arr;
  napi_create_array_with_length(env, to - from, &arr);
  const char *at = out->p;
  for (size_t i = from; i < to; i++) {
    napi_value v;
    if (j->meta[i] < 0) v = int_value(env, j->meta[i]);
    else {
      napi_create_array_with_length(env, (size_t)j->meta[i], &v);
      for (int32_t k = 0; k < j->meta[i]; k++) {
        size_t len = strlen(at);
        napi_value s;
        napi_create_string_utf8(env, at, len, &s);
        napi_set_element(env, v, (uint32_t)k, s);
        at += len + 1;
      }
    }
    napi_set_element(env, arr, (uint32_t)(i - from), v);
  }
  return arr;
}

/* the system calls of paths [from, to), their bytes appended to out; the answer of [from, to) made of them */
static void (*const EXEC[JOB_KINDS])(job_t *, size_t, size_t, bytes_t *) = {exec_files, exec_links, exec_lstats, exec_dirs, exec_stats};
static napi_value (*const JS[JOB_KINDS])(napi_env, job_t *, size_t, size_t, const bytes_t *) = {js_files, js_links, js_lstats, js_dirs, js_lstats};

/* a job of `kind` over the NUL-separated paths in arg, its arrays made; NULL (an error thrown) otherwise */
static job_t *job_new(napi_env env, int kind, int whole, napi_value arg, napi_value root) {
  job_t *j = calloc(1, sizeof *j);
  if (!j) return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
  j->kind = kind;
  j->whole = whole;
  if (!paths_arg(env, arg, root, &j->ps)) return free(j), NULL;
  size_t n = j->ps.n ? j->ps.n : 1;
  if (kind == JOB_LSTATS || kind == JOB_STATS) j->st = malloc(n * 6 * sizeof *j->st);
  else j->meta = malloc(n * (kind == JOB_FILES ? 3 : 1) * sizeof *j->meta);
  if (!j->st && !j->meta) return job_free(j), napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
  return j;
}

static napi_value job_sync(napi_env env, int kind, int whole, napi_value arg, napi_value root) {
  job_t *j = job_new(env, kind, whole, arg, root);
  if (!j) return NULL;
  EXEC[kind](j, 0, j->ps.n, &j->out);
  napi_value res = JS[kind](env, j, 0, j->ps.n, &j->out);
  job_free(j);
  return res;
}

static napi_value ReadFiles(napi_env env, napi_callback_info info) {
  ARGS(3, 2, "readFiles(paths, wholeIfShort[, root]): 2 or 3 arguments");
  bool whole;
  if (napi_get_value_bool(env, argv[1], &whole) != napi_ok) return throw_type(env, "readFiles: wholeIfShort must be a boolean");
  return job_sync(env, JOB_FILES, whole, argv[0], argc > 2 ? argv[2] : NULL);
}

/* an entry point taking the paths only: the batch KIND run on the calling thread */
#define PATHS_ENTRY(NAME, KIND, USAGE)                            \
  static napi_value NAME(napi_env env, napi_callback_info info) { \
    ARGS(2, 1, USAGE);                                            \
    return job_sync(env, KIND, 0, argv[0], argc > 1 ? argv[1] : NULL); \
  }

/* readlinks(paths): per path the target or −errno (exec_links); lstats(paths): a Float64Array,
 * 6 per path (exec_lstats); stats(paths): the same with stat(2), the last link followed;
 * readdirs(paths): per path its sorted entries or −errno (exec_dirs) */
PATHS_ENTRY(Readlinks, JOB_LINKS, "readlinks(paths[, root]): 1 or 2 arguments")
PATHS_ENTRY(Lstats, JOB_LSTATS, "lstats(paths[, root]): 1 or 2 arguments")
PATHS_ENTRY(Stats, JOB_STATS, "stats(paths[, root]): 1 or 2 arguments")
PATHS_ENTRY(Readdirs, JOB_DIRS, "readdirs(paths[, root]): 1 or 2 arguments")

/*
 * The shared batch: one synchronous batch read by two threads at once, the calling (JS) thread
 * and a threadpool thread, for paths whose reads cannot block. The paths are cut into chunks of
 * `chunk` paths; the threadpool thread takes chunks from the front, the JS thread from the back,
 * each chunk's bytes in its own buffer, until they meet. workStep(h) on the JS thread hands out
 * one chunk's answer at a time: a chunk the threadpool thread has finished, in order, when there
 * is one, else one it reads itself from the back, else (every chunk taken) it waits for the
 * threadpool thread's chunk in progress. So the JS thread turns answers into values while the
 * threadpool thread reads, and reads itself whenever it has nothing to turn; a threadpool that
 * never starts the work (every thread stuck in a read that blocks) only means the JS thread
 * reads every chunk. Each path is read once.
 */
typedef struct {
  job_t j;
  size_t chunk, chunks;
  bytes_t *outs;        /* per chunk */
  uint64_t claims;      /* atomic: low 32 bits the next front chunk, high 32 the first chunk taken from the back */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t front_done;    /* front chunks the threadpool thread has finished (under mu) */
  size_t next_front;    /* the next front chunk to hand out (JS thread only) */
  size_t handed;        /* chunks handed out (JS thread only) */
  int refs;             /* the handle and the work (JS thread only) */
  napi_async_work work; /* until complete */
} share_t;

static void share_unref(share_t *s) {
  if (--s->refs) return;
  for (size_t c = 0; c < s->chunks; c++) free(s->outs[c].p);
  free(s->outs);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  paths_free(&s->j.ps);
  free(s->j.meta);
  free(s->j.st);
  free(s);
}

/* a chunk claimed from the front (back: from the back), or −1 when the two have met */
static long share_claim(share_t *s, int back) {
  uint64_t cur = __atomic_load_n(&s->claims, __ATOMIC_ACQUIRE);
  for (;;) {
    uint64_t f = cur & 0xffffffffu, b = cur >> 32;
    if (f >= b) return -1;
    uint64_t next = back ? (f | ((b - 1) << 32)) : ((f + 1) | (b << 32));
    if (__atomic_compare_exchange_n(&s->claims, &cur, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return (long)(back ? b - 1 : f);
  }
}

static void share_exec(share_t *s, size_t c) {
  size_t from = c * s->chunk, to = from + s->chunk < s->j.ps.n ? from + s->chunk : s->j.ps.n;
  EXEC[s->j.kind](&s->j, from, to, &s->outs[c]);
}

static void share_execute(napi_env env, void *data) {
  (void)env;
  share_t *s = data;
  for (long c; (c = share_claim(s, 0)) >= 0;) {
    share_exec(s, (size_t)c);
    pthread_mutex_lock(&s->mu);
    s->front_done = (size_t)c + 1; /* front chunks are claimed and finished in order, by this thread only */
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
}

static void share_complete(napi_env env, napi_status status, void *data) {
  (void)status;
  share_t *s = data;
  napi_delete_async_work(env, s->work);
  s->work = NULL;
  share_unref(s);
}

static void share_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  share_unref(data);
}

/*
 * workShared(kind, paths, wholeIfShort, chunk[, root]): a shared batch of one of the synchronous
 * batches (kind 0 readFiles, 1 readlinks, 2 lstats, 3 readdirs, 4 stats), its threadpool part
 * queued; returns its handle.
 *
 * workStep(h): [from, answer] of the next chunk, the answer of paths [from, from + its length)
 * as the synchronous batch answers them; undefined once every chunk has been handed out (the
 * threadpool part, if it never started, is then cancelled).
 */
static napi_value WorkShared(napi_env env, napi_callback_info info) {
  ARGS(5, 4, "workShared(kind, paths, wholeIfShort, chunk[, root]): 4 or 5 arguments");
  int32_t kind, chunk;
  bool whole;
  if (napi_get_value_int32(env, argv[0], &kind) != napi_ok || kind < 0 || kind >= JOB_KINDS) return throw_type(env, "workShared: kind must be 0 to 4");
  if (napi_get_value_bool(env, argv[2], &whole) != napi_ok) return throw_type(env, "workShared: wholeIfShort must be a boolean");
  if (napi_get_value_int32(env, argv[3], &chunk) != napi_ok || chunk < 1) return throw_type(env, "workShared: chunk must be a positive integer");
  job_t *j = job_new(env, kind, whole, argv[1], argc > 4 ? argv[4] : NULL);
  if (!j) return NULL;
  share_t *s = calloc(1, sizeof *s);
  size_t chunks = (j->ps.n + (size_t)chunk - 1) / (size_t)chunk;
  if (s) s->outs = calloc(chunks ? chunks : 1, sizeof *s->outs);
  if (!s || !s->outs || chunks > 0xffffffffu) {
    if (s) free(s->outs);
    free(s);
    job_free(j);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  s->j = *j;
  free(j); /* its arrays are s->j's now */
  s->chunk = (size_t)chunk;
  s->chunks = chunks;
  s->claims = (uint64_t)chunks << 32;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->refs = 1;
  napi_value name, handle;
  napi_create_string_utf8(env, "vfioctl.batch", NAPI_AUTO_LENGTH, &name);
  if (napi_create_external(env, s, share_finalize, NULL, &handle) != napi_ok) {
    share_unref(s);
    napi_throw_error(env, "ENOMEM", "workShared: cannot make the handle");
    return NULL;
  }
  /* without the threadpool part the JS thread reads every chunk: the same answers */
  if (chunks > 1 && napi_create_async_work(env, NULL, name, share_execute, share_complete, s, &s->work) == napi_ok) {
    if (napi_queue_async_work(env, s->work) == napi_ok) s->refs++;
    else {
      napi_delete_async_work(env, s->work);
      s->work = NULL;
    }
  }
  return handle;
}

static napi_value WorkStep(napi_env env, napi_callback_info info) {
  ARGS(1, 1, "workStep(h)");
  void *p = NULL;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok || !p) return throw_type(env, "not a workShared handle");
  share_t *s = p;
  napi_value out;
  if (s->handed == s->chunks) {
    /* nothing left: a threadpool part that has not started never needs to (cancelling one
     * that has started fails, and it finds nothing to claim); share_complete runs either way */
    if (s->work) napi_cancel_async_work(env, s->work);
    napi_get_undefined(env, &out);
    return out;
  }
  pthread_mutex_lock(&s->mu);
  int ready = s->next_front < s->front_done;
  pthread_mutex_unlock(&s->mu);
  long c;
  if (ready) c = (long)s->next_front++;
  else if ((c = share_claim(s, 1)) >= 0) share_exec(s, (size_t)c);
  else {
    /* every chunk is taken: the next front one is the threadpool thread's, in progress */
    pthread_mutex_lock(&s->mu);
    while (s->front_done <= s->next_front) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    c = (long)s->next_front++;
  }
  s->handed++;
  size_t from = (size_t)c * s->chunk, to = from + s->chunk < s->j.ps.n ? from + s->chunk : s->j.ps.n;
  napi_value at, answer;
  napi_create_array_with_length(env, 2, &out);
  napi_create_uint32(env, (uint32_t)from, &at);
  answer = JS[s->j.kind](env, &s->j, from, to, &s->outs[c]);
  napi_set_element(env, out, 0, at);
  napi_set_element(env, out, 1, answer);
  /* the chunk's bytes are in the answer now */
  free(s->outs[c].p);
  s->outs[c] = (bytes_t){0};
  return out;
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
  ARGS(4, 3, "readFilesAsync(paths, wholeIfShort, cb[, root]): 3 or 4 arguments");
  bool whole;
  napi_valuetype t;
  if (napi_get_value_bool(env, argv[1], &whole) != napi_ok) return throw_type(env, "readFilesAsync: wholeIfShort must be a boolean");
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) return throw_type(env, "readFilesAsync: cb must be a function");
  batch_t *b = calloc(1, sizeof *b);
  if (!b) return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
  if (!paths_arg(env, argv[0], argc > 3 ? argv[3] : NULL, &b->ps)) return free(b), NULL;
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
