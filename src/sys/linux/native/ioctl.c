/*
 * The Linux backend's system calls without an FFI library: ioctl(2), eventfd(2) and lseek(2) as
 * a Node-API addon (built by scripts/build-native.mjs into build/native/ioctl.node; loaded by
 * src/sys/linux/ioctl.ts, which falls back to koffi when it is absent).
 *
 * Every function returns the call's result, or −errno when the call returned −1: errno is read
 * here, straight after the call, before any Node-API function runs, so it is this call's errno
 * (a −1 with errno 0 is reported as −EIO). Bad arguments (a wrong type) throw a TypeError.
 *
 *   ioctlInt(fd, request, arg)   arg a number or BigInt, passed by value (as a long)
 *   ioctlBuf(fd, request, buf)   buf a Buffer (any TypedArray), passed as a pointer to its bytes;
 *                                what the kernel writes lands in the Buffer itself
 *   ioctl(fd, request, arg)      either of the two, by the type of arg
 *   address(buf)                 the address of buf's bytes as a BigInt (for user pointers inside
 *                                a struct, src/sys/userptr.ts); taking it moves a small Buffer's
 *                                bytes off V8's heap for good, so it stays valid while buf lives
 *   eventfd(initval, flags)      a new fd
 *   lseek(fd, offset, whence)    the new offset (a number)
 *   readFiles, readlinks, readFilesAsync, batchPoll, batchTake, batchCancel, lstats, readdirs,
 *   workShared, workStep, stats
 *                                batch reads of small files and links (batch.c, see there)
 *
 * request is converted as JavaScript's `>>> 0` does (the ioctl numbers with the direction bit
 * set are above 2^31) and passed as an unsigned long, as <sys/ioctl.h> declares it.
 *
 * Only libc and the Node-API symbols of the node binary that loads it are needed; Node-API is
 * ABI-stable, so one build serves every Node >= 12.22 on the same machine type.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* the result, or −errno of the call that just returned −1 (EIO when it left errno 0) */
#define RESULT(ret) ((ret) == -1 ? -(errno ? errno : EIO) : (ret))

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* a Node-API entry point's arguments: up to N in argv, fewer than MIN is a TypeError naming USAGE */
#define ARGS(N, MIN, USAGE)                                  \
  size_t argc = (N);                                         \
  napi_value argv[N];                                        \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);      \
  if (argc < (MIN)) return throw_type(env, USAGE)

static napi_value int_value(napi_env env, int64_t v) {
  napi_value out;
  if (v >= INT32_MIN && v <= INT32_MAX) napi_create_int32(env, (int32_t)v, &out);
  else napi_create_int64(env, v, &out);
  return out;
}

/* a number (truncated) or a BigInt (its low 64 bits) as a signed 64-bit value */
static int long_arg(napi_env env, napi_value v, int64_t *out) {
  if (napi_get_value_int64(env, v, out) == napi_ok) return 1;
  bool lossless;
  return napi_get_value_bigint_int64(env, v, out, &lossless) == napi_ok;
}

/* fd and request from argv[0..1]: 0 and a pending TypeError when they are not numbers */
static int fd_request(napi_env env, napi_value *argv, int32_t *fd, uint32_t *request) {
  if (napi_get_value_int32(env, argv[0], fd) != napi_ok) return throw_type(env, "ioctl: fd must be a number"), 0;
  if (napi_get_value_uint32(env, argv[1], request) != napi_ok) return throw_type(env, "ioctl: request must be a number"), 0;
  return 1;
}

static napi_value ioctl_int(napi_env env, int32_t fd, uint32_t request, napi_value arg) {
  int64_t v;
  if (!long_arg(env, arg, &v)) return throw_type(env, "ioctl: the argument must be a number, a BigInt or a Buffer");
  int ret = ioctl(fd, (unsigned long)request, (long)v);
  return int_value(env, RESULT(ret));
}

static napi_value ioctl_buf(napi_env env, int32_t fd, uint32_t request, napi_value arg) {
  void *data;
  size_t len;
  if (napi_get_typedarray_info(env, arg, NULL, &len, &data, NULL, NULL) != napi_ok)
    return throw_type(env, "ioctl: the struct must be a Buffer");
  int ret = ioctl(fd, (unsigned long)request, data);
  return int_value(env, RESULT(ret));
}

static napi_value IoctlInt(napi_env env, napi_callback_info info) {
  ARGS(3, 3, "ioctlInt(fd, request, arg): 3 arguments");
  int32_t fd;
  uint32_t request;
  if (!fd_request(env, argv, &fd, &request)) return NULL;
  return ioctl_int(env, fd, request, argv[2]);
}

static napi_value IoctlBuf(napi_env env, napi_callback_info info) {
  ARGS(3, 3, "ioctlBuf(fd, request, buf): 3 arguments");
  int32_t fd;
  uint32_t request;
  if (!fd_request(env, argv, &fd, &request)) return NULL;
  return ioctl_buf(env, fd, request, argv[2]);
}

static napi_value Ioctl(napi_env env, napi_callback_info info) {
  ARGS(3, 2, "ioctl(fd, request[, arg]): at least 2 arguments");
  int32_t fd;
  uint32_t request;
  if (!fd_request(env, argv, &fd, &request)) return NULL;
  if (argc < 3) {
    int ret = ioctl(fd, (unsigned long)request, 0L);
    int r = RESULT(ret);
    return int_value(env, r);
  }
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t == napi_object) return ioctl_buf(env, fd, request, argv[2]);
  return ioctl_int(env, fd, request, argv[2]);
}

static napi_value Address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data;
  size_t len;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], NULL, &len, &data, NULL, NULL) != napi_ok)
    return throw_type(env, "address(buf): buf must be a Buffer");
  napi_value out;
  napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)data, &out);
  return out;
}

static napi_value Eventfd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t initval;
  int32_t flags;
  if (argc < 2 || napi_get_value_uint32(env, argv[0], &initval) != napi_ok || napi_get_value_int32(env, argv[1], &flags) != napi_ok)
    return throw_type(env, "eventfd(initval, flags): two numbers");
  int ret = eventfd(initval, flags);
  int r = RESULT(ret);
  return int_value(env, r);
}

static napi_value Lseek(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd, whence;
  int64_t offset;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || !long_arg(env, argv[1], &offset) ||
      napi_get_value_int32(env, argv[2], &whence) != napi_ok)
    return throw_type(env, "lseek(fd, offset, whence): three numbers");
  off_t ret = lseek(fd, (off_t)offset, whence);
  int64_t r = ret == (off_t)-1 ? -(int64_t)(errno ? errno : EIO) : (int64_t)ret;
  return int_value(env, r);
}

#include "batch.c"

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {
      {"ioctl", Ioctl}, {"ioctlInt", IoctlInt}, {"ioctlBuf", IoctlBuf}, {"address", Address}, {"eventfd", Eventfd}, {"lseek", Lseek},
      {"readFiles", ReadFiles}, {"readlinks", Readlinks}, {"readFilesAsync", ReadFilesAsync},
      {"batchPoll", BatchPoll}, {"batchTake", BatchTake}, {"batchCancel", BatchCancel},
      {"lstats", Lstats}, {"readdirs", Readdirs}, {"workShared", WorkShared}, {"workStep", WorkStep}, {"stats", Stats},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return NULL;
  }
  return exports;
}
