/*
 * orchestrator's N-API addon: the few system calls Node lacks for unpacking layers into overlay
 * format, and a stat signature of a whole folder tree (tree_stat.c) for the no-op check of `up`.
 * Plain C against node_api.h only (no node-addon-api). Every function is synchronous: each is one
 * quick system call on a local file system (treeStat: one fstatat per entry), and the unpacker
 * calls them between asynchronous writes. Failures throw Node-style errors: message "ECODE: text, syscall 'path'",
 * with .code (errno name), .errno (negative, as libuv), .syscall and .path (and .dest).
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tree_stat.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

#define PATH_ARG_MAX 4096
#define NAME_ARG_MAX 256
#define XATTR_LIST_MAX_BYTES 65536

/* Every napi_status is checked. A failed call throws a JS Error that names it (unless one is
 * already pending, as after a failed napi_call_function), and the caller returns at once: NULL
 * from a JS-facing function (N-API then raises the pending exception), 0 from a helper. */
static bool napi_failed(napi_env env, napi_status status, const char *call) {
  if (status == napi_ok) return false;
  const napi_extended_error_info *info = NULL;
  const char *why = napi_get_last_error_info(env, &info) == napi_ok && info != NULL && info->error_message != NULL ? info->error_message : "unknown error";
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) {
    char msg[512];
    snprintf(msg, sizeof msg, "orchestrator addon: %s failed: %s", call, why);
    if (napi_throw_error(env, "ERR_ORCHESTRATOR_NAPI", msg) != napi_ok) return true; /* nothing more can be said */
  }
  return true;
}
#define CHECK_RET(env, call, ret) \
  do {                            \
    if (napi_failed((env), (call), #call)) return ret; \
  } while (0)
#define CHECK(env, call) CHECK_RET(env, call, NULL)
#define CHECK_INT(env, call) CHECK_RET(env, call, 0)
#define CHECK_VOID(env, call) CHECK_RET(env, call, )

/* Throw an Error shaped like Node's fs errors. */
static void throw_errno(napi_env env, int err, const char *syscall_name, const char *path, const char *dest) {
  const char *code = strerrorname_np(err);
  if (code == NULL) code = "UNKNOWN";
  char msg[2 * PATH_ARG_MAX + 256];
  if (path != NULL && dest != NULL)
    snprintf(msg, sizeof msg, "%s: %s, %s '%s' -> '%s'", code, strerror(err), syscall_name, path, dest);
  else if (path != NULL)
    snprintf(msg, sizeof msg, "%s: %s, %s '%s'", code, strerror(err), syscall_name, path);
  else
    snprintf(msg, sizeof msg, "%s: %s, %s", code, strerror(err), syscall_name);
  napi_value js_msg, js_code, error, v;
  CHECK_VOID(env, napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg));
  CHECK_VOID(env, napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code));
  CHECK_VOID(env, napi_create_error(env, js_code, js_msg, &error));
  CHECK_VOID(env, napi_create_int32(env, -err, &v));
  CHECK_VOID(env, napi_set_named_property(env, error, "errno", v));
  CHECK_VOID(env, napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &v));
  CHECK_VOID(env, napi_set_named_property(env, error, "syscall", v));
  if (path != NULL) {
    CHECK_VOID(env, napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v));
    CHECK_VOID(env, napi_set_named_property(env, error, "path", v));
  }
  if (dest != NULL) {
    CHECK_VOID(env, napi_create_string_utf8(env, dest, NAPI_AUTO_LENGTH, &v));
    CHECK_VOID(env, napi_set_named_property(env, error, "dest", v));
  }
  CHECK_VOID(env, napi_throw(env, error));
}

static void throw_type(napi_env env, const char *fn, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", fn, what);
  CHECK_VOID(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg));
}

/* Read argument `i` as a UTF-8 string into buf; false (with a TypeError thrown) when it is not one. */
static int get_string(napi_env env, napi_value value, char *buf, size_t size, const char *fn, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, value, &t) != napi_ok || t != napi_string) {
    throw_type(env, fn, what);
    return 0;
  }
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok || len + 1 > size) {
    throw_type(env, fn, "string argument too long");
    return 0;
  }
  CHECK_INT(env, napi_get_value_string_utf8(env, value, buf, size, &len));
  if (strlen(buf) != len) {
    throw_type(env, fn, "string argument contains a NUL byte");
    return 0;
  }
  return 1;
}

static int get_uint32(napi_env env, napi_value value, uint32_t *out, const char *fn, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, value, &t) != napi_ok || t != napi_number) {
    throw_type(env, fn, what);
    return 0;
  }
  CHECK_INT(env, napi_get_value_uint32(env, value, out));
  return 1;
}

#define ARGS(n)                                                            \
  size_t argc = (n);                                                       \
  napi_value argv[(n) > 0 ? (n) : 1];                                      \
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));      \
  for (size_t i_ = argc; i_ < (n); i_++) CHECK(env, napi_get_undefined(env, &argv[i_]));

static napi_value undefined(napi_env env) {
  napi_value u;
  CHECK(env, napi_get_undefined(env, &u));
  return u;
}

/* mknod(path, mode, major, minor): mode carries the file type (S_IFCHR, S_IFBLK, S_IFIFO, S_IFREG). */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  ARGS(4);
  char path[PATH_ARG_MAX];
  uint32_t mode, major_no, minor_no;
  if (!get_string(env, argv[0], path, sizeof path, "mknod", "path must be a string")) return NULL;
  if (!get_uint32(env, argv[1], &mode, "mknod", "mode must be a number")) return NULL;
  if (!get_uint32(env, argv[2], &major_no, "mknod", "major must be a number")) return NULL;
  if (!get_uint32(env, argv[3], &minor_no, "mknod", "minor must be a number")) return NULL;
  if (mknod(path, (mode_t)mode, makedev(major_no, minor_no)) != 0) {
    throw_errno(env, errno, "mknod", path, NULL);
    return NULL;
  }
  return undefined(env);
}

/* lsetxattr(path, name, value: Buffer, flags = 0): flags are XATTR_CREATE / XATTR_REPLACE. */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  ARGS(4);
  char path[PATH_ARG_MAX], name[NAME_ARG_MAX];
  if (!get_string(env, argv[0], path, sizeof path, "lsetxattr", "path must be a string")) return NULL;
  if (!get_string(env, argv[1], name, sizeof name, "lsetxattr", "name must be a string")) return NULL;
  bool is_buffer = false;
  CHECK(env, napi_is_buffer(env, argv[2], &is_buffer));
  if (!is_buffer) {
    throw_type(env, "lsetxattr", "value must be a Buffer");
    return NULL;
  }
  void *data = NULL;
  size_t len = 0;
  CHECK(env, napi_get_buffer_info(env, argv[2], &data, &len));
  uint32_t flags = 0;
  napi_valuetype t;
  CHECK(env, napi_typeof(env, argv[3], &t));
  if (t != napi_undefined && !get_uint32(env, argv[3], &flags, "lsetxattr", "flags must be a number")) return NULL;
  if (lsetxattr(path, name, len > 0 ? data : "", len, (int)flags) != 0) {
    throw_errno(env, errno, "lsetxattr", path, NULL);
    return NULL;
  }
  return undefined(env);
}

/* lgetxattr(path, name) → Buffer; throws ENODATA when the attribute is absent. */
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  ARGS(2);
  char path[PATH_ARG_MAX], name[NAME_ARG_MAX];
  if (!get_string(env, argv[0], path, sizeof path, "lgetxattr", "path must be a string")) return NULL;
  if (!get_string(env, argv[1], name, sizeof name, "lgetxattr", "name must be a string")) return NULL;
  for (;;) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size < 0) {
      throw_errno(env, errno, "lgetxattr", path, NULL);
      return NULL;
    }
    void *buf = NULL;
    napi_value result;
    CHECK(env, napi_create_buffer(env, (size_t)size, &buf, &result));
    ssize_t got = size == 0 ? 0 : lgetxattr(path, name, buf, (size_t)size);
    if (got < 0 && errno == ERANGE) continue; /* grew between the two calls */
    if (got < 0) {
      throw_errno(env, errno, "lgetxattr", path, NULL);
      return NULL;
    }
    if (got == size) return result;
    napi_value sliced;
    CHECK(env, napi_create_buffer_copy(env, (size_t)got, buf, NULL, &sliced));
    return sliced;
  }
}

/* llistxattr(path) → string[] (the names the caller may see; trusted.* only as root). */
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  ARGS(1);
  char path[PATH_ARG_MAX];
  if (!get_string(env, argv[0], path, sizeof path, "llistxattr", "path must be a string")) return NULL;
  char *buf = NULL;
  ssize_t got;
  for (;;) {
    ssize_t size = llistxattr(path, NULL, 0);
    if (size < 0) {
      throw_errno(env, errno, "llistxattr", path, NULL);
      return NULL;
    }
    free(buf);
    buf = malloc((size_t)size + 1);
    if (buf == NULL) {
      throw_errno(env, ENOMEM, "llistxattr", path, NULL);
      return NULL;
    }
    got = size == 0 ? 0 : llistxattr(path, buf, (size_t)size);
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) {
      int err = errno;
      free(buf);
      throw_errno(env, err, "llistxattr", path, NULL);
      return NULL;
    }
    break;
  }
  napi_value array;
  CHECK(env, napi_create_array(env, &array));
  uint32_t index = 0;
  for (ssize_t off = 0; off < got;) {
    size_t len = strnlen(buf + off, (size_t)(got - off));
    napi_value name;
    CHECK(env, napi_create_string_utf8(env, buf + off, len, &name));
    CHECK(env, napi_set_element(env, array, index++, name));
    off += (ssize_t)len + 1;
  }
  free(buf);
  return array;
}

/* lremovexattr(path, name). */
static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  ARGS(2);
  char path[PATH_ARG_MAX], name[NAME_ARG_MAX];
  if (!get_string(env, argv[0], path, sizeof path, "lremovexattr", "path must be a string")) return NULL;
  if (!get_string(env, argv[1], name, sizeof name, "lremovexattr", "name must be a string")) return NULL;
  if (lremovexattr(path, name) != 0) {
    throw_errno(env, errno, "lremovexattr", path, NULL);
    return NULL;
  }
  return undefined(env);
}

/* renameat2(oldPath, newPath, flags): RENAME_NOREPLACE fails with EEXIST instead of replacing. */
static napi_value js_renameat2(napi_env env, napi_callback_info info) {
  ARGS(3);
  char from[PATH_ARG_MAX], to[PATH_ARG_MAX];
  uint32_t flags = 0;
  if (!get_string(env, argv[0], from, sizeof from, "renameat2", "oldPath must be a string")) return NULL;
  if (!get_string(env, argv[1], to, sizeof to, "renameat2", "newPath must be a string")) return NULL;
  napi_valuetype t;
  CHECK(env, napi_typeof(env, argv[2], &t));
  if (t != napi_undefined && !get_uint32(env, argv[2], &flags, "renameat2", "flags must be a number")) return NULL;
  if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, (unsigned int)flags) != 0) {
    throw_errno(env, errno, "renameat2", from, to);
    return NULL;
  }
  return undefined(env);
}

/* syncfs(path): flush the whole file system holding `path` (one call instead of an fsync per file). */
static napi_value js_syncfs(napi_env env, napi_callback_info info) {
  ARGS(1);
  char path[PATH_ARG_MAX];
  if (!get_string(env, argv[0], path, sizeof path, "syncfs", "path must be a string")) return NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    throw_errno(env, errno, "open", path, NULL);
    return NULL;
  }
  if (syncfs(fd) != 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "syncfs", path, NULL);
    return NULL;
  }
  close(fd);
  return undefined(env);
}

/* flock(fd, operation): true when the lock was taken, false when LOCK_NB was given and another
 * open file description holds a conflicting lock (EWOULDBLOCK); other failures throw. */
static napi_value js_flock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    throw_type(env, "flock", "expected (fd, operation)");
    return NULL;
  }
  uint32_t fd, operation;
  if (!get_uint32(env, argv[0], &fd, "flock", "fd must be a number")) return NULL;
  if (!get_uint32(env, argv[1], &operation, "flock", "operation must be a number")) return NULL;
  int r;
  do r = flock((int)fd, (int)operation);
  while (r != 0 && errno == EINTR);
  napi_value result;
  if (r != 0) {
    if (errno != EWOULDBLOCK) {
      throw_errno(env, errno, "flock", NULL, NULL);
      return NULL;
    }
    CHECK(env, napi_get_boolean(env, false, &result));
    return result;
  }
  CHECK(env, napi_get_boolean(env, true, &result));
  return result;
}

/* Settle a job's promise: resolve it with `value`, or, when `value` is NULL (an N-API call failed,
 * or throw_errno said why the job failed), reject it with the pending exception. A failure here has
 * no one left to tell: the promise stays pending, which is still better than a crash. */
static void settle(napi_env env, napi_deferred deferred, napi_value value) {
  if (value != NULL && napi_resolve_deferred(env, deferred, value) == napi_ok) return;
  napi_value error;
  if (napi_get_and_clear_last_exception(env, &error) != napi_ok) return;
  if (napi_reject_deferred(env, deferred, error) != napi_ok) return;
}

/* Free an async job's N-API work (its promise is settled; nothing is left to report to). */
static void delete_work(napi_env env, napi_async_work work) {
  if (napi_delete_async_work(env, work) != napi_ok) return;
}

/* Queues `job` on a libuv worker thread and returns the promise its `complete` settles; NULL (with
 * an exception pending) when it could not be queued, and the caller still owns `job`. */
static napi_value queue_job(napi_env env, const char *resource, napi_async_execute_callback execute, napi_async_complete_callback complete, void *job,
                            napi_deferred *deferred, napi_async_work *work) {
  napi_value promise, name;
  CHECK(env, napi_create_promise(env, deferred, &promise));
  CHECK(env, napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, execute, complete, job, work));
  if (napi_failed(env, napi_queue_async_work(env, *work), "napi_queue_async_work(env, *work)")) {
    delete_work(env, *work);
    return NULL;
  }
  return promise;
}

/* A job on one path (treeStat, treeList): each job's struct begins with this. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char path[PATH_ARG_MAX];
  int err;
  const char *err_syscall;
} path_job;

/* fn(path): a job of `size` bytes on the path argument, queued; its promise, or NULL. */
static napi_value start_path_job(napi_env env, napi_callback_info info, size_t size, const char *fn, const char *resource,
                                 napi_async_execute_callback execute, napi_async_complete_callback complete) {
  ARGS(1);
  path_job *job = calloc(1, size);
  if (job == NULL) {
    throw_errno(env, ENOMEM, "calloc", NULL, NULL);
    return NULL;
  }
  napi_value promise = NULL;
  if (get_string(env, argv[0], job->path, sizeof job->path, fn, "path must be a string"))
    promise = queue_job(env, resource, execute, complete, job, &job->deferred, &job->work);
  if (promise == NULL) free(job);
  return promise;
}

/* In a complete callback: whether the job ran and succeeded; if not, the error is pending (a job
 * that never ran fails with ECANCELED). */
static bool path_job_done(napi_env env, napi_status status, path_job *job, const char *fn) {
  if (status != napi_ok && job->err == 0) {
    job->err = ECANCELED;
    job->err_syscall = fn;
  }
  if (job->err != 0) throw_errno(env, job->err, job->err_syscall, job->path, NULL);
  return job->err == 0;
}

/* treeStat(path): a Promise of the tree's stat signature, walked on a libuv worker thread so that
 * many trees are walked at once while JavaScript goes on. */
typedef struct {
  path_job base;
  tree_stat_result result;
} tree_stat_job;

static void tree_stat_execute(napi_env env, void *data) {
  (void)env;
  tree_stat_job *job = data;
  job->base.err = tree_stat(job->base.path, &job->result, &job->base.err_syscall);
}

/* { signature, entries, newestCtimeMs, coarse }, or NULL with an exception pending. */
static napi_value tree_stat_value(napi_env env, const tree_stat_job *job) {
  char hex[33];
  snprintf(hex, sizeof hex, "%016llx%016llx", (unsigned long long)job->result.hi, (unsigned long long)job->result.lo);
  napi_value result, v;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_string_utf8(env, hex, 32, &v));
  CHECK(env, napi_set_named_property(env, result, "signature", v));
  CHECK(env, napi_create_double(env, (double)job->result.entries, &v));
  CHECK(env, napi_set_named_property(env, result, "entries", v));
  CHECK(env, napi_create_double(env, (double)(job->result.newest_ctime_ns / 1000000), &v));
  CHECK(env, napi_set_named_property(env, result, "newestCtimeMs", v));
  CHECK(env, napi_get_boolean(env, job->result.coarse != 0, &v));
  CHECK(env, napi_set_named_property(env, result, "coarse", v));
  return result;
}

static void tree_stat_complete(napi_env env, napi_status status, void *data) {
  tree_stat_job *job = data;
  settle(env, job->base.deferred, path_job_done(env, status, &job->base, "treeStat") ? tree_stat_value(env, job) : NULL);
  delete_work(env, job->base.work);
  free(job);
}

static napi_value js_tree_stat(napi_env env, napi_callback_info info) {
  return start_path_job(env, info, sizeof(tree_stat_job), "treeStat", "orchestrator:treeStat", tree_stat_execute, tree_stat_complete);
}

/* witness(paths, flags): the stat signature of each path (tree_stat_ex with flags[i]) in one job on
 * a worker thread: a 32-hex-digit signature, "absent" when the path does not exist, or
 * "error:CODE". Also the newest ctime of all, in ms, and whether any ctime is on a whole second. For `up`'s no-op check (src/freshness/witness.ts). */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  size_t count;
  char **paths;
  uint8_t *flags;
  char (*out)[40];
  int64_t newest_ctime_ns;
  int coarse;
} witness_job;

static void witness_free(witness_job *job) {
  if (job->paths != NULL)
    for (size_t i = 0; i < job->count; i++) free(job->paths[i]);
  free(job->paths);
  free(job->flags);
  free(job->out);
  free(job);
}

static void witness_execute(napi_env env, void *data) {
  (void)env;
  witness_job *job = data;
  job->newest_ctime_ns = INT64_MIN;
  for (size_t i = 0; i < job->count; i++) {
    tree_stat_result r;
    const char *syscall_name = NULL;
    int err = tree_stat_ex(job->paths[i], job->flags[i], &r, &syscall_name);
    if (err == 0) {
      snprintf(job->out[i], sizeof job->out[i], "%016llx%016llx", (unsigned long long)r.hi, (unsigned long long)r.lo);
      if (r.newest_ctime_ns > job->newest_ctime_ns) job->newest_ctime_ns = r.newest_ctime_ns;
      if (r.coarse) job->coarse = 1;
    } else if ((err == ENOENT || err == ENOTDIR) && strcmp(syscall_name, "lstat") == 0) {
      snprintf(job->out[i], sizeof job->out[i], "absent");
    } else {
      const char *code = strerrorname_np(err);
      snprintf(job->out[i], sizeof job->out[i], "error:%s", code != NULL ? code : "UNKNOWN");
    }
  }
}

/* { signatures, newestCtimeMs, coarse }, or NULL with an exception pending. */
static napi_value witness_value(napi_env env, const witness_job *job) {
  napi_value result, list, v;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_array_with_length(env, job->count, &list));
  for (size_t i = 0; i < job->count; i++) {
    CHECK(env, napi_create_string_utf8(env, job->out[i], NAPI_AUTO_LENGTH, &v));
    CHECK(env, napi_set_element(env, list, (uint32_t)i, v));
  }
  CHECK(env, napi_set_named_property(env, result, "signatures", list));
  CHECK(env, napi_create_double(env, job->newest_ctime_ns == INT64_MIN ? 0 : (double)(job->newest_ctime_ns / 1000000), &v));
  CHECK(env, napi_set_named_property(env, result, "newestCtimeMs", v));
  CHECK(env, napi_get_boolean(env, job->coarse != 0, &v));
  CHECK(env, napi_set_named_property(env, result, "coarse", v));
  return result;
}

static void witness_complete(napi_env env, napi_status status, void *data) {
  witness_job *job = data;
  if (status != napi_ok) throw_errno(env, ECANCELED, "witness", NULL, NULL);
  settle(env, job->deferred, status != napi_ok ? NULL : witness_value(env, job));
  delete_work(env, job->work);
  witness_free(job);
}

static napi_value js_witness(napi_env env, napi_callback_info info) {
  ARGS(2);
  bool is_array = false;
  CHECK(env, napi_is_array(env, argv[0], &is_array));
  bool is_typed = false;
  CHECK(env, napi_is_typedarray(env, argv[1], &is_typed));
  if (!is_array || !is_typed) {
    throw_type(env, "witness", "expects an array of paths and a Uint8Array of flags");
    return NULL;
  }
  uint32_t count = 0;
  CHECK(env, napi_get_array_length(env, argv[0], &count));
  napi_typedarray_type type;
  size_t flag_count = 0;
  void *flag_data = NULL;
  CHECK(env, napi_get_typedarray_info(env, argv[1], &type, &flag_count, &flag_data, NULL, NULL));
  if (type != napi_uint8_array || flag_count != count) {
    throw_type(env, "witness", "flags must be a Uint8Array as long as the paths");
    return NULL;
  }
  witness_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    throw_errno(env, ENOMEM, "calloc", NULL, NULL);
    return NULL;
  }
  job->count = count;
  job->paths = calloc(count ? count : 1, sizeof *job->paths);
  job->flags = malloc(count ? count : 1);
  job->out = calloc(count ? count : 1, sizeof *job->out);
  if (job->paths == NULL || job->flags == NULL || job->out == NULL) {
    witness_free(job);
    throw_errno(env, ENOMEM, "calloc", NULL, NULL);
    return NULL;
  }
  if (count > 0) memcpy(job->flags, flag_data, count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    char path[PATH_ARG_MAX];
    if (napi_failed(env, napi_get_element(env, argv[0], i, &item), "napi_get_element(env, argv[0], i, &item)") ||
        !get_string(env, item, path, sizeof path, "witness", "every path must be a string")) {
      witness_free(job);
      return NULL;
    }
    job->paths[i] = strdup(path);
    if (job->paths[i] == NULL) {
      witness_free(job);
      throw_errno(env, ENOMEM, "strdup", NULL, NULL);
      return NULL;
    }
  }
  napi_value promise = queue_job(env, "orchestrator:witness", witness_execute, witness_complete, job, &job->deferred, &job->work);
  if (promise == NULL) witness_free(job);
  return promise;
}

/* treeList(path): every entry of a tree with its stat fields, walked on a worker thread. */
typedef struct {
  path_job base;
  tree_list list;
} tree_list_job;

static void tree_list_execute(napi_env env, void *data) {
  (void)env;
  tree_list_job *job = data;
  job->base.err = tree_list_walk(job->base.path, &job->list, &job->base.err_syscall);
}

/* { paths, links, stats: Float64Array of TREE_LIST_FIELDS a path }, or NULL with an exception pending. */
static napi_value tree_list_value(napi_env env, const tree_list_job *job) {
  size_t n = job->list.count;
  napi_value result, paths, links, buffer, stats, v, null_value;
  CHECK(env, napi_get_null(env, &null_value));
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_array_with_length(env, n, &paths));
  CHECK(env, napi_create_array_with_length(env, n, &links));
  for (size_t i = 0; i < n; i++) {
    CHECK(env, napi_create_string_utf8(env, job->list.paths[i], NAPI_AUTO_LENGTH, &v));
    CHECK(env, napi_set_element(env, paths, (uint32_t)i, v));
    if (job->list.links[i] != NULL) CHECK(env, napi_create_string_utf8(env, job->list.links[i], NAPI_AUTO_LENGTH, &v));
    CHECK(env, napi_set_element(env, links, (uint32_t)i, job->list.links[i] != NULL ? v : null_value));
  }
  void *bytes = NULL;
  size_t size = n * TREE_LIST_FIELDS * sizeof(double);
  /* `bytes` is written only after the buffer was surely made. */
  CHECK(env, napi_create_arraybuffer(env, size, &bytes, &buffer));
  if (size > 0) memcpy(bytes, job->list.nums, size);
  CHECK(env, napi_create_typedarray(env, napi_float64_array, n * TREE_LIST_FIELDS, buffer, 0, &stats));
  CHECK(env, napi_set_named_property(env, result, "paths", paths));
  CHECK(env, napi_set_named_property(env, result, "links", links));
  CHECK(env, napi_set_named_property(env, result, "stats", stats));
  return result;
}

static void tree_list_complete(napi_env env, napi_status status, void *data) {
  tree_list_job *job = data;
  settle(env, job->base.deferred, path_job_done(env, status, &job->base, "treeList") ? tree_list_value(env, job) : NULL);
  delete_work(env, job->base.work);
  tree_list_free(&job->list);
  free(job);
}

static napi_value js_tree_list(napi_env env, napi_callback_info info) {
  return start_path_job(env, info, sizeof(tree_list_job), "treeList", "orchestrator:treeList", tree_list_execute, tree_list_complete);
}

static bool set_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  CHECK_INT(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn));
  CHECK_INT(env, napi_set_named_property(env, exports, name, fn));
  return true;
}

static bool set_uint(napi_env env, napi_value object, const char *name, uint32_t value) {
  napi_value v;
  CHECK_INT(env, napi_create_uint32(env, value, &v));
  CHECK_INT(env, napi_set_named_property(env, object, name, v));
  return true;
}

static napi_value init(napi_env env, napi_value exports) {
  if (!set_function(env, exports, "mknod", js_mknod)) return NULL;
  if (!set_function(env, exports, "lsetxattr", js_lsetxattr)) return NULL;
  if (!set_function(env, exports, "lgetxattr", js_lgetxattr)) return NULL;
  if (!set_function(env, exports, "llistxattr", js_llistxattr)) return NULL;
  if (!set_function(env, exports, "lremovexattr", js_lremovexattr)) return NULL;
  if (!set_function(env, exports, "renameat2", js_renameat2)) return NULL;
  if (!set_function(env, exports, "syncfs", js_syncfs)) return NULL;
  if (!set_function(env, exports, "treeStat", js_tree_stat)) return NULL;
  if (!set_function(env, exports, "witness", js_witness)) return NULL;
  if (!set_function(env, exports, "treeList", js_tree_list)) return NULL;
  if (!set_function(env, exports, "flock", js_flock)) return NULL;
  napi_value constants;
  CHECK(env, napi_create_object(env, &constants));
  if (!set_uint(env, constants, "RENAME_NOREPLACE", RENAME_NOREPLACE)) return NULL;
  if (!set_uint(env, constants, "RENAME_EXCHANGE", RENAME_EXCHANGE)) return NULL;
  if (!set_uint(env, constants, "RENAME_WHITEOUT", RENAME_WHITEOUT)) return NULL;
  if (!set_uint(env, constants, "XATTR_CREATE", XATTR_CREATE)) return NULL;
  if (!set_uint(env, constants, "XATTR_REPLACE", XATTR_REPLACE)) return NULL;
  if (!set_uint(env, constants, "S_IFCHR", S_IFCHR)) return NULL;
  if (!set_uint(env, constants, "S_IFBLK", S_IFBLK)) return NULL;
  if (!set_uint(env, constants, "S_IFIFO", S_IFIFO)) return NULL;
  if (!set_uint(env, constants, "S_IFREG", S_IFREG)) return NULL;
  if (!set_uint(env, constants, "TREE_STAT_FOLLOW_ROOT", TREE_STAT_FOLLOW_ROOT)) return NULL;
  if (!set_uint(env, constants, "TREE_STAT_SHALLOW", TREE_STAT_SHALLOW)) return NULL;
  if (!set_uint(env, constants, "TREE_LIST_FIELDS", TREE_LIST_FIELDS)) return NULL;
  if (!set_uint(env, constants, "LOCK_SH", LOCK_SH)) return NULL;
  if (!set_uint(env, constants, "LOCK_EX", LOCK_EX)) return NULL;
  if (!set_uint(env, constants, "LOCK_NB", LOCK_NB)) return NULL;
  if (!set_uint(env, constants, "LOCK_UN", LOCK_UN)) return NULL;
  CHECK(env, napi_set_named_property(env, exports, "constants", constants));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
