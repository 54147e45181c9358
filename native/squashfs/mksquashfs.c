/*
 * orchestrator-mksquashfs: a reproducible squashfs 4.0 writer with a content-addressed block cache.
 *
 *   orchestrator-mksquashfs SOURCE OUTPUT [--offset N] [--comp gzip|xz|zstd|lz4] [--level N]
 *       [--block-size N] [--jobs N] [--clamp EPOCH] [--mkfs-time T] [--block-cache DIR]
 *       [--progress-fd N]
 *
 * Written from the format description in squashfs-tools-ng's doc/format.adoc. native/squashfs/README.md
 * documents the layout choices; the short version:
 *
 *  - The image is a pure function of the tree and the options: entries are sorted by name, inode
 *    numbers follow a fixed post-order walk, ids are sorted, xattrs are sorted by name, nothing
 *    depends on source inode numbers, readdir order or thread timing.
 *  - Data region: the blocks of every distinct file content (sha256-deduplicated) in walk order,
 *    then the fragment blocks. Tails are packed into fragment blocks in walk order, cut at
 *    content-defined boundaries (a hash of the path against the tail size), so one changed file
 *    moves at most its own group (and the next one when its boundary flips).
 *  - Then, contiguous as the kernel checks: inode table, directory table, fragment table, export
 *    table, id table, xattr table; the image is padded to 4 KiB.
 *  - Memory holds the tree's metadata and the metadata tables, never file data beyond one batch
 *    of blocks being compressed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lz4.h>
#include <lz4hc.h>
#include <lzma.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <libdeflate.h>
#include <zstd.h>

#define PROG "orchestrator-mksquashfs"
#define META_SIZE 8192u
#define UNCOMPRESSED_BLOCK (1u << 24)
#define INVALID_FRAG 0xFFFFFFFFu
#define NO_XATTR 0xFFFFFFFFu

/* ---------------------------------------------------------------- small utilities */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, PROG ": error: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, PROG ": warning: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("out of memory");
  return p;
}
static void *xcalloc(size_t n, size_t m) {
  void *p = calloc(n ? n : 1, m ? m : 1);
  if (!p) die("out of memory");
  return p;
}
static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) die("out of memory");
  return p;
}
static char *xstrdup(const char *s) {
  char *p = strdup(s);
  if (!p) die("out of memory");
  return p;
}

typedef struct {
  uint8_t *p;
  size_t len, cap;
} buf_t;

static void buf_put(buf_t *b, const void *d, size_t n) {
  if (b->len + n > b->cap) {
    size_t c = b->cap ? b->cap : 256;
    while (c < b->len + n) c *= 2;
    b->p = xrealloc(b->p, c);
    b->cap = c;
  }
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
}
static void buf_u16(buf_t *b, uint16_t v) {
  uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  buf_put(b, x, 2);
}
static void buf_u32(buf_t *b, uint32_t v) {
  uint8_t x[4];
  for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
  buf_put(b, x, 4);
}
static void buf_u64(buf_t *b, uint64_t v) {
  uint8_t x[8];
  for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
  buf_put(b, x, 8);
}
static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get_le64(const uint8_t *p) { return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32; }
static void put_le64(uint8_t *p, uint64_t v) {
  put_le32(p, (uint32_t)v);
  put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Reads exactly n bytes at off; returns the count read (short only at end of file), -1 on error. */
static ssize_t pread_full(int fd, void *p, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, (uint8_t *)p + got, n - got, (off_t)(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}
static int pwrite_full(int fd, const void *p, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pwrite(fd, (const uint8_t *)p + done, n - done, (off_t)(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    done += (size_t)r;
  }
  return 0;
}

static int all_zero(const uint8_t *p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    if (v) return 0;
  }
  for (; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

/* ---------------------------------------------------------------- sha256 (libcrypto EVP) */

typedef struct {
  EVP_MD_CTX *c;
} sha_t;
static void sha_init(sha_t *s) {
  s->c = EVP_MD_CTX_new();
  if (!s->c || EVP_DigestInit_ex(s->c, EVP_sha256(), NULL) != 1) die("sha256 init failed");
}
static void sha_update(sha_t *s, const void *p, size_t n) {
  if (n && EVP_DigestUpdate(s->c, p, n) != 1) die("sha256 update failed");
}
static void sha_final(sha_t *s, uint8_t out[32]) {
  unsigned int len = 32;
  if (EVP_DigestFinal_ex(s->c, out, &len) != 1) die("sha256 final failed");
  EVP_MD_CTX_free(s->c);
  s->c = NULL;
}
static void sha_once(const void *p, size_t n, uint8_t out[32]) {
  sha_t s;
  sha_init(&s);
  sha_update(&s, p, n);
  sha_final(&s, out);
}
static void hex32(const uint8_t d[32], char out[65]) {
  static const char *x = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out[2 * i] = x[d[i] >> 4];
    out[2 * i + 1] = x[d[i] & 15];
  }
  out[64] = 0;
}

/* ---------------------------------------------------------------- map: 32-byte key -> pointer */

typedef struct {
  uint8_t (*keys)[32];
  void **vals;
  size_t cap, n;
} map_t;

static size_t map_slot(const map_t *m, const uint8_t k[32]) {
  uint64_t h;
  memcpy(&h, k, 8);
  size_t i = (size_t)h & (m->cap - 1);
  while (m->vals[i] && memcmp(m->keys[i], k, 32) != 0) i = (i + 1) & (m->cap - 1);
  return i;
}
static void *map_get(const map_t *m, const uint8_t k[32]) {
  if (!m->cap) return NULL;
  return m->vals[map_slot(m, k)];
}
static void map_put(map_t *m, const uint8_t k[32], void *v) {
  if ((m->n + 1) * 2 > m->cap) {
    map_t o = *m;
    m->cap = o.cap ? o.cap * 2 : 64;
    m->keys = xcalloc(m->cap, 32);
    m->vals = xcalloc(m->cap, sizeof(void *));
    m->n = 0;
    for (size_t i = 0; i < o.cap; i++)
      if (o.vals[i]) map_put(m, o.keys[i], o.vals[i]);
    free(o.keys);
    free(o.vals);
  }
  size_t i = map_slot(m, k);
  if (!m->vals[i]) m->n++;
  memcpy(m->keys[i], k, 32);
  m->vals[i] = v;
}

/* ---------------------------------------------------------------- options */

enum { COMP_GZIP = 1, COMP_XZ = 4, COMP_LZ4 = 5, COMP_ZSTD = 6 };

static struct {
  const char *source, *output, *cache, *prefix;
  uint64_t offset;
  int comp, level, jobs, progress_fd;
  uint32_t block_size, block_log;
  int has_clamp, has_mkfs_time;
  uint32_t clamp, mkfs_time;
  /* --layer/--stable-layer (top first): the tree is the overlay of these folders, merged here as
   * the kernel's overlayfs merges lower layers; ovl_prefix names its marks (--overlay-xattrs). */
  const char **layers;
  int *stable;
  size_t nlayers;
  const char *ovl_prefix;
} opt = {.ovl_prefix = "trusted.overlay.", .comp = COMP_GZIP, .level = -1, .block_size = 131072, .block_log = 17, .progress_fd = -1};

static const char *comp_name(int c) {
  switch (c) {
    case COMP_GZIP: return "gzip";
    case COMP_XZ: return "xz";
    case COMP_LZ4: return "lz4";
    case COMP_ZSTD: return "zstd";
    default: return "?";
  }
}

/* ---------------------------------------------------------------- compression */

static ZSTD_CCtx **zctx; /* one per worker */
static struct libdeflate_compressor **deflaters; /* one per worker, made when first used */

/* Compresses in[0..n) into out (capacity n). Returns the compressed size when it is smaller than
 * n, 0 when the block should be stored uncompressed. Deterministic for a given library version. */
static size_t compress_block(int tid, const uint8_t *in, size_t n, uint8_t *out) {
  switch (opt.comp) {
    case COMP_GZIP: {
      /* A zlib stream, as squashfs's gzip compressor stores (and the kernel reads): made by
       * libdeflate (linked statically: its version is the cache key's), which at level 9 takes
       * about a third of zlib's time on a Debian tree for 1-2% smaller blocks. */
      if (!deflaters[tid] && !(deflaters[tid] = libdeflate_alloc_compressor(opt.level))) die("libdeflate: out of memory");
      size_t r = libdeflate_zlib_compress(deflaters[tid], in, n, out, n);
      return r && r < n ? r : 0;
    }
    case COMP_XZ: {
      lzma_options_lzma lo;
      if (lzma_lzma_preset(&lo, (uint32_t)opt.level)) die("xz: bad level %d", opt.level);
      lo.dict_size = opt.block_size < META_SIZE ? META_SIZE : opt.block_size;
      lzma_filter f[2] = {{.id = LZMA_FILTER_LZMA2, .options = &lo}, {.id = LZMA_VLI_UNKNOWN, .options = NULL}};
      size_t pos = 0;
      if (lzma_stream_buffer_encode(f, LZMA_CHECK_CRC32, NULL, in, n, out, &pos, n) != LZMA_OK) return 0;
      return pos < n ? pos : 0;
    }
    case COMP_ZSTD: {
      size_t r = ZSTD_compressCCtx(zctx[tid], out, n, in, n, opt.level);
      if (ZSTD_isError(r)) return 0;
      return r < n ? r : 0;
    }
    case COMP_LZ4: {
      int r = opt.level > 0 ? LZ4_compress_HC((const char *)in, (char *)out, (int)n, (int)n, opt.level)
                            : LZ4_compress_default((const char *)in, (char *)out, (int)n, (int)n);
      return r > 0 && (size_t)r < n ? (size_t)r : 0;
    }
    default: die("unknown compressor");
  }
}

/* The compressor library's version, as the cache keys hold it. Made once (on the main thread,
 * before the workers start: they read it while making keys). */
static const char *comp_version(void) {
  static char v[160];
  if (v[0]) return v;
  switch (opt.comp) {
    case COMP_GZIP: snprintf(v, sizeof v, "libdeflate-%s", LIBDEFLATE_VERSION_STRING); break;
    case COMP_XZ: snprintf(v, sizeof v, "xz-%s", lzma_version_string()); break;
    case COMP_ZSTD: snprintf(v, sizeof v, "zstd-%u", ZSTD_versionNumber()); break;
    case COMP_LZ4: snprintf(v, sizeof v, "lz4-%d", LZ4_versionNumber()); break;
    default: v[0] = 0;
  }
  return v;
}

/* ---------------------------------------------------------------- worker pool */

typedef void (*task_fn)(int tid, size_t i, void *arg);
static struct {
  pthread_t *t;
  int n; /* threads including the caller */
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  uint64_t gen;
  int finished;
  task_fn fn;
  void *arg;
  size_t count;
  atomic_size_t next;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void pool_work(int tid) {
  size_t i;
  while ((i = atomic_fetch_add(&pool.next, 1)) < pool.count) pool.fn(tid, i, pool.arg);
}
static void *pool_main(void *p) {
  int tid = (int)(intptr_t)p;
  uint64_t seen = 0;
  for (;;) {
    pthread_mutex_lock(&pool.mu);
    while (pool.gen == seen) pthread_cond_wait(&pool.go, &pool.mu);
    seen = pool.gen;
    pthread_mutex_unlock(&pool.mu);
    pool_work(tid);
    pthread_mutex_lock(&pool.mu);
    pool.finished++;
    pthread_cond_signal(&pool.done);
    pthread_mutex_unlock(&pool.mu);
  }
  return NULL;
}
static void pool_start(int n) {
  pool.n = n;
  pool.t = xcalloc((size_t)n, sizeof(pthread_t));
  for (int i = 0; i < n; i++)
    if (pthread_create(&pool.t[i], NULL, pool_main, (void *)(intptr_t)i) != 0) die("pthread_create failed");
}
/* Starts fn(tid, i, arg) for i in [0, count) on the worker threads and returns at once. */
static void pool_submit(task_fn fn, void *arg, size_t count) {
  pthread_mutex_lock(&pool.mu);
  pool.fn = fn;
  pool.arg = arg;
  pool.count = count;
  atomic_store(&pool.next, 0);
  pool.finished = 0;
  pool.gen++;
  pthread_cond_broadcast(&pool.go);
  pthread_mutex_unlock(&pool.mu);
}
/* Waits until the submitted work is done. */
static void pool_wait(void) {
  pthread_mutex_lock(&pool.mu);
  while (pool.finished < pool.n) pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
}
/* Runs fn on the workers and the calling thread (tid n); returns when all are done. */
static void pool_run(task_fn fn, void *arg, size_t count) {
  pool_submit(fn, arg, count);
  pool_work(pool.n);
  pool_wait();
}

/* ---------------------------------------------------------------- the tree */

static int64_t start_ns; /* CLOCK_REALTIME when the write began, before any stat */

/* A later change of a file sets its ctime to the clock then, >= start_ns; file systems keep ctime
 * at least to the second. So a ctime a second before start_ns can never be that of a later
 * content: such a stat identifies what was read. A newer one may not (the same tick may hold
 * another write): it is not remembered. */
static int memo_settled(int64_t ctime_ns) { return ctime_ns <= start_ns - 1000000000; }

typedef struct content content_t;
typedef struct node node_t;
struct node {
  char *name, *path;
  node_t **kids;
  uint32_t nkids, ndirs;
  uint32_t mode, uid, gid, mtime, nlink, rdev;
  uint64_t size;
  int maybe_sparse;
  char *target;
  uint32_t xid; /* xattr set index or NO_XATTR */
  node_t *primary; /* hardlink group representative (self when none) */
  uint32_t ino;
  uint64_t iref;
  uint16_t uidx, gidx;
  content_t *content;
  uint8_t digest[32];
  char *error;
  /* The digest memo: the key of this file's stat (memo_key), whether the memo gave the digest,
   * and whether the hashing may record it (the stat was unchanged across the read). */
  uint64_t src_ino;
  int64_t ctime_ns;
  uint8_t mkey[32];
  int memo_hit, memo_ok;
  /* Gathered by the parallel listing, used by its ordered pass (scan_finish): the first error met
   * on this entry, its serialized xattr set (xraw.len 0: none), the first xattr name outside the
   * stored namespaces, its device, inode and link count (hardlinks). */
  char *scan_error;
  buf_t xraw;
  char *xskip;
  uint64_t dev, sino, st_nlink;
  /* The path below the tree's (or layer's) root; the layer (--layer mode); an overlay opaque
   * folder; the mtime before the clamp; from a listing memo; whether digest holds the content's. */
  const char *rel;
  uint32_t layer;
  int opaque, listed, digest_known, ovl_refused;
  int64_t mtime_raw;
};

struct content {
  uint8_t digest[32];
  uint64_t size, nblocks;
  uint32_t tail;
  node_t *src;
  uint64_t start, sparse;
  uint32_t *bsizes;
  uint32_t frag, fragoff;
  int started;
  /* cold path: the cache entry being written */
  int cfd;
  char *ctmp, *cpath;
  sha_t csha;
};

static map_t links_map, xset_map;
static buf_t *xsets; /* serialized xattr sets, by id */
static size_t nxsets, xsets_cap;
static uint32_t *ids;
static size_t nids, ids_cap;
static int warned_xattr_ns;

static void add_id(uint32_t id) {
  for (size_t i = 0; i < nids; i++)
    if (ids[i] == id) return;
  if (nids == ids_cap) {
    ids_cap = ids_cap ? ids_cap * 2 : 16;
    ids = xrealloc(ids, ids_cap * sizeof *ids);
  }
  ids[nids++] = id;
}

typedef struct {
  int type;
  char *name; /* without the prefix */
  char *full;
  uint8_t *val;
  size_t vlen;
} xattr_t;

static int cmp_xattr(const void *a, const void *b) { return strcmp(((const xattr_t *)a)->full, ((const xattr_t *)b)->full); }

/* Reads the xattrs of path into a canonical serialized set (sorted by name) in *out (left empty
 * when there are none). Returns an error message, or NULL. Thread-safe: no shared state. */
static char *read_xattrs(node_t *node) {
  const char *path = node->path;
  buf_t *out = &node->xraw;
  char **skipped = &node->xskip;
  size_t ovl_len = opt.nlayers ? strlen(opt.ovl_prefix) : 0;
  char *err = NULL;
  ssize_t n = llistxattr(path, NULL, 0);
  if (n < 0) {
    if (errno == ENOTSUP || errno == ENOSYS) return NULL;
    if (asprintf(&err, "llistxattr %s: %s", path, strerror(errno)) < 0) err = xstrdup("llistxattr failed");
    return err;
  }
  if (n == 0) return NULL;
  char *list = xmalloc((size_t)n + 1);
  n = llistxattr(path, list, (size_t)n);
  if (n < 0) {
    free(list);
    if (asprintf(&err, "llistxattr %s: %s", path, strerror(errno)) < 0) err = xstrdup("llistxattr failed");
    return err;
  }
  xattr_t *xs = NULL;
  size_t nx = 0;
  for (char *k = list; k < list + n && !err; k += strlen(k) + 1) {
    int type;
    const char *rest;
    if (ovl_len && !strncmp(k, opt.ovl_prefix, ovl_len)) {
      /* overlayfs's own marks: not in the merged view. opaque=y ends the merge below this folder;
       * redirects, metacopy and xattr whiteouts would change the view: not supported here. */
      const char *mark = k + ovl_len;
      if (!strcmp(mark, "opaque")) {
        char v[2] = {0};
        node->opaque = lgetxattr(path, k, v, sizeof v) == 1 && v[0] == 'y';
      } else if (!strcmp(mark, "redirect") || !strcmp(mark, "metacopy") || !strcmp(mark, "whiteout")) {
        if (asprintf(&err, "%s: overlay '%s' mark: not supported when merging layers (export the mounted view instead)", path, mark) < 0) err = xstrdup("overlay mark not supported");
        node->ovl_refused = 1;
      }
      continue;
    }
    if (!strncmp(k, "user.", 5)) type = 0, rest = k + 5;
    else if (!strncmp(k, "trusted.", 8)) type = 1, rest = k + 8;
    else if (!strncmp(k, "security.", 9)) type = 2, rest = k + 9;
    else {
      if (!*skipped) *skipped = xstrdup(k);
      continue;
    }
    ssize_t vl = lgetxattr(path, k, NULL, 0);
    uint8_t *v = vl < 0 ? NULL : xmalloc((size_t)vl + 1);
    if (v) vl = lgetxattr(path, k, v, (size_t)vl);
    if (vl < 0) {
      free(v);
      if (asprintf(&err, "lgetxattr %s %s: %s", path, k, strerror(errno)) < 0) err = xstrdup("lgetxattr failed");
      break;
    }
    xs = xrealloc(xs, (nx + 1) * sizeof *xs);
    xs[nx++] = (xattr_t){.type = type, .name = xstrdup(rest), .full = xstrdup(k), .val = v, .vlen = (size_t)vl};
  }
  free(list);
  if (nx && !err) {
    qsort(xs, nx, sizeof *xs, cmp_xattr);
    buf_u32(out, (uint32_t)nx);
  }
  for (size_t i = 0; i < nx; i++) {
    if (!err) {
      buf_u16(out, (uint16_t)xs[i].type);
      buf_u16(out, (uint16_t)strlen(xs[i].name));
      buf_put(out, xs[i].name, strlen(xs[i].name));
      buf_u32(out, (uint32_t)xs[i].vlen);
      buf_put(out, xs[i].val, xs[i].vlen);
    }
    free(xs[i].name);
    free(xs[i].full);
    free(xs[i].val);
  }
  free(xs);
  return err;
}

/* The index of a serialized xattr set (a copy is kept), NO_XATTR for an empty one. Indexes follow the
 * order of first use, so this runs in walk order. */
static uint32_t intern_xattrs(buf_t *b) {
  if (!b->len) return NO_XATTR;
  uint8_t d[32];
  sha_once(b->p, b->len, d);
  void *found = map_get(&xset_map, d);
  if (found) return (uint32_t)((uintptr_t)found - 1);
  if (nxsets == xsets_cap) {
    xsets_cap = xsets_cap ? xsets_cap * 2 : 16;
    xsets = xrealloc(xsets, xsets_cap * sizeof *xsets);
  }
  xsets[nxsets] = (buf_t){0};
  buf_put(&xsets[nxsets], b->p, b->len);
  map_put(&xset_map, d, (void *)(uintptr_t)(nxsets + 1));
  return (uint32_t)nxsets++;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static uint32_t clamp_time(int64_t t) {
  if (t < 0) t = 0;
  if (t > UINT32_MAX) t = UINT32_MAX;
  if (opt.has_clamp && t > (int64_t)opt.clamp) t = opt.clamp;
  return (uint32_t)t;
}

static int64_t ts_ns(struct statx_timestamp t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

/* lstat through statx, which also gives the birth time (when the file system has one) and the
 * nanoseconds the digest memo keys on. */
static int xstat(int dirfd, const char *path, int flags, struct stat *st, struct statx *sx) {
  if (statx(dirfd, path, flags | AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, sx) != 0) return -1;
  memset(st, 0, sizeof *st);
  st->st_mode = sx->stx_mode;
  st->st_uid = sx->stx_uid;
  st->st_gid = sx->stx_gid;
  st->st_size = (off_t)sx->stx_size;
  st->st_blocks = (blkcnt_t)sx->stx_blocks;
  st->st_nlink = sx->stx_nlink;
  st->st_ino = sx->stx_ino;
  st->st_dev = makedev(sx->stx_dev_major, sx->stx_dev_minor);
  st->st_rdev = makedev(sx->stx_rdev_major, sx->stx_rdev_minor);
  st->st_mtim.tv_sec = sx->stx_mtime.tv_sec;
  st->st_mtim.tv_nsec = sx->stx_mtime.tv_nsec;
  return 0;
}

static void memo_key_for(node_t *n, const struct statx *sx);

static void set_scan_error(node_t *n, const char *what, const char *path, int err) {
  if (n->scan_error) return;
  if (asprintf(&n->scan_error, "%s %s: %s", what, path, strerror(err)) < 0) n->scan_error = xstrdup(what);
}

static atomic_ullong listed_entries; /* entries stat'ed (the others: from listing memos) */

static void stat_node(node_t *n) {
  struct stat st;
  struct statx sx;
  atomic_fetch_add(&listed_entries, 1);
  if (xstat(AT_FDCWD, n->path, 0, &st, &sx) != 0) {
    set_scan_error(n, "lstat", n->path, errno);
    return;
  }
  n->mode = st.st_mode;
  n->uid = st.st_uid;
  n->gid = st.st_gid;
  n->mtime_raw = st.st_mtim.tv_sec;
  n->mtime = clamp_time(st.st_mtim.tv_sec);
  n->dev = opt.nlayers ? n->layer : st.st_dev; /* layers: hardlinks are within one layer */
  n->sino = st.st_ino;
  n->st_nlink = st.st_nlink;
  char *xerr = read_xattrs(n);
  if (xerr) {
    n->scan_error = xerr;
    return;
  }
  if (S_ISREG(st.st_mode)) {
    n->size = (uint64_t)st.st_size;
    n->maybe_sparse = (uint64_t)st.st_blocks * 512 < n->size;
    memo_key_for(n, &sx);
  } else if (S_ISLNK(st.st_mode)) {
    size_t cap = (size_t)st.st_size + 1;
    for (;;) {
      n->target = xrealloc(n->target, cap + 1);
      ssize_t r = readlink(n->path, n->target, cap);
      if (r < 0) {
        set_scan_error(n, "readlink", n->path, errno);
        return;
      }
      if ((size_t)r < cap) {
        n->target[r] = 0;
        n->size = (uint64_t)r;
        break;
      }
      cap *= 2;
    }
  } else if (S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode)) {
    uint32_t ma = major(st.st_rdev), mi = minor(st.st_rdev);
    n->rdev = (mi & 0xffu) | (ma << 8) | ((mi & ~0xffu) << 12);
  } else if (!S_ISDIR(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode)) {
    if (asprintf(&n->scan_error, "%s: unsupported file type", n->path) < 0) n->scan_error = xstrdup("unsupported file type");
  }
}

/* Reads folder d's names (sorted) into its kids, each with its name and path. */
static void read_dir(node_t *d) {
  DIR *dir = opendir(d->path);
  if (!dir) {
    set_scan_error(d, "opendir", d->path, errno);
    return;
  }
  char **names = NULL;
  size_t nn = 0, cap = 0;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(dir))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (nn == cap) {
      cap = cap ? cap * 2 : 16;
      names = xrealloc(names, cap * sizeof *names);
    }
    names[nn++] = xstrdup(e->d_name);
  }
  int rerr = errno;
  closedir(dir);
  if (rerr) set_scan_error(d, "readdir", d->path, rerr);
  qsort(names, nn, sizeof *names, cmp_name);
  d->kids = xcalloc(nn ? nn : 1, sizeof *d->kids);
  d->nkids = (uint32_t)nn;
  size_t pl = strlen(d->path), root_len = (size_t)(d->rel - d->path);
  int slash = pl && d->path[pl - 1] == '/';
  for (size_t i = 0; i < nn; i++) {
    node_t *k = xcalloc(1, sizeof *k);
    k->name = names[i];
    k->path = xmalloc(pl + strlen(names[i]) + 2);
    sprintf(k->path, "%s%s%s", d->path, slash ? "" : "/", names[i]);
    k->rel = k->path + root_len;
    k->layer = d->layer;
    d->kids[i] = k;
  }
  free(names);
}

#define STAT_CHUNK 64
static void read_dir_task(int tid, size_t i, void *arg) {
  (void)tid;
  read_dir(((node_t **)arg)[i]);
}
typedef struct {
  node_t **v;
  size_t n;
} nodes_t;
static void stat_task(int tid, size_t i, void *arg) {
  (void)tid;
  const nodes_t *ns = arg;
  for (size_t j = i * STAT_CHUNK; j < ns->n && j < (i + 1) * STAT_CHUNK; j++) stat_node(ns->v[j]);
}

static void nodes_push(nodes_t *ns, size_t *cap, node_t *n) {
  if (ns->n == *cap) {
    *cap = *cap ? *cap * 2 : 256;
    ns->v = xrealloc(ns->v, *cap * sizeof *ns->v);
  }
  ns->v[ns->n++] = n;
}

/* In walk order (a folder, then its entries by name, recursively): the errors, the ids, the xattr
 * sets, the hardlink groups, the name checks. */
static void scan_finish(node_t *n) {
  if (n->scan_error && n->ovl_refused) { /* exit status 3: the caller can write from the mounted view */
    fprintf(stderr, PROG ": error: %s\n", n->scan_error);
    exit(3);
  }
  if (n->scan_error) die("%s", n->scan_error);
  if (n->xskip && !warned_xattr_ns++) warn("xattr %s of %s skipped: squashfs stores only user., trusted. and security.", n->xskip, n->path);
  free(n->xskip);
  n->xskip = NULL;
  n->xid = intern_xattrs(&n->xraw);
  n->primary = n;
  n->nlink = 1;
  add_id(n->uid);
  add_id(n->gid);
  if (strlen(n->name) > 256) die("name too long for squashfs: %s", n->path);
  if (!S_ISDIR(n->mode) && n->st_nlink > 1) {
    uint8_t key[32] = {0};
    uint8_t raw[16];
    memcpy(raw, &n->dev, 8);
    memcpy(raw + 8, &n->sino, 8);
    sha_once(raw, 16, key);
    node_t *p = map_get(&links_map, key);
    if (p) {
      n->primary = p;
      p->nlink++;
    } else {
      map_put(&links_map, key, n);
    }
  }
  for (uint32_t i = 0; i < n->nkids; i++) {
    scan_finish(n->kids[i]);
    if (S_ISDIR(n->kids[i]->mode)) n->ndirs++;
  }
}

/* The tree at path, listed (scan_finish not run: a layer is merged first). On every core: level by
 * level, the folders of a level are read in parallel, then all their entries are stat'ed (and
 * their xattrs and link targets read) in parallel. Each task writes only its own nodes. What
 * depends on order (xattr set and id numbering, hardlink groups, which error is reported) is done
 * afterwards by scan_finish, in walk order: the result does not depend on thread timing. A system
 * call costs microseconds, and the listing makes one per entry or more: spread over the cores it
 * takes a fraction of the time. */
static node_t *scan_tree(const char *path, uint32_t layer) {
  node_t *root = xcalloc(1, sizeof *root);
  root->name = xstrdup("");
  root->path = xstrdup(path);
  root->rel = root->path + strlen(root->path);
  root->layer = layer;
  stat_node(root);
  nodes_t level = {0}, ents = {0};
  size_t level_cap = 0, ents_cap = 0;
  if (!root->scan_error && S_ISDIR(root->mode)) nodes_push(&level, &level_cap, root);
  while (level.n) {
    pool_run(read_dir_task, level.v, level.n);
    ents.n = 0;
    for (size_t i = 0; i < level.n; i++)
      for (uint32_t k = 0; k < level.v[i]->nkids; k++) nodes_push(&ents, &ents_cap, level.v[i]->kids[k]);
    pool_run(stat_task, &ents, (ents.n + STAT_CHUNK - 1) / STAT_CHUNK);
    level.n = 0;
    for (size_t i = 0; i < ents.n; i++)
      if (!ents.v[i]->scan_error && S_ISDIR(ents.v[i]->mode)) nodes_push(&level, &level_cap, ents.v[i]);
  }
  free(level.v);
  free(ents.v);
  return root;
}

/* Inode write order: for each directory, its subdirectories (recursively, in name order), then its
 * other entries in name order (a hardlink group at its first place), then the directory itself. */
static node_t **order;
static size_t norder, order_cap;
static uint32_t ninodes;

static void push_order(node_t *n) {
  if (norder == order_cap) {
    order_cap = order_cap ? order_cap * 2 : 1024;
    order = xrealloc(order, order_cap * sizeof *order);
  }
  order[norder++] = n;
}
static void make_order(node_t *d) {
  for (uint32_t i = 0; i < d->nkids; i++)
    if (S_ISDIR(d->kids[i]->mode)) make_order(d->kids[i]);
  for (uint32_t i = 0; i < d->nkids; i++) {
    node_t *p = d->kids[i]->primary;
    if (S_ISDIR(p->mode) || p->ino) continue;
    p->ino = ++ninodes;
    push_order(p);
  }
  d->ino = ++ninodes;
  push_order(d);
}

/* ---------------------------------------------------------------- reading file blocks */

/* Is [off, off+len) entirely a hole? Only asked for files that have fewer blocks than bytes. */
static int is_hole(int fd, uint64_t off, uint64_t len) {
  off_t d = lseek(fd, (off_t)off, SEEK_DATA);
  if (d < 0) return errno == ENXIO;
  return (uint64_t)d >= off + len;
}

/* Reads block b of a file (len bytes at off) into buf; returns 1 if it is all zeros, 0 if not,
 * -1 on a short read or error (the file changed under us). */
static int read_block(int fd, const node_t *n, uint64_t off, size_t len, uint8_t *buf) {
  if (n->maybe_sparse && is_hole(fd, off, len)) {
    memset(buf, 0, len);
    return 1;
  }
  ssize_t r = pread_full(fd, buf, len, off);
  if (r < 0 || (size_t)r != len) return -1;
  return all_zero(buf, len);
}

/* ---------------------------------------------------------------- hashing pass */

static node_t **regs;
static size_t nregs;
static atomic_ullong hashed_files; /* files read to get their content digest (the others: the memo) */
static uint8_t **tbuf; /* one block buffer per worker */

/* The content digest: sha256 over "osqfs-content-1", size, block size, then per block a zero
 * marker or the block's sha256. Holes are never read. Equal bytes give equal digests. */
static void hash_task(int tid, size_t i, void *arg) {
  (void)arg;
  node_t *n = regs[i];
  if (n->memo_hit) return;
  atomic_fetch_add(&hashed_files, 1);
  int fd = open(n->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    n->error = xstrdup(strerror(errno));
    return;
  }
  sha_t s;
  sha_init(&s);
  buf_t h = {0};
  buf_put(&h, "osqfs-content-1", 15);
  buf_u64(&h, n->size);
  buf_u32(&h, opt.block_size);
  sha_update(&s, h.p, h.len);
  free(h.p);
  uint8_t *buf = tbuf[tid];
  for (uint64_t off = 0; off < n->size; off += opt.block_size) {
    size_t len = (size_t)(n->size - off < opt.block_size ? n->size - off : opt.block_size);
    int z = read_block(fd, n, off, len, buf);
    if (z < 0) {
      n->error = xstrdup("changed while being read");
      break;
    }
    uint8_t mark = z ? 0 : 1, d[32];
    sha_update(&s, &mark, 1);
    if (!z) {
      sha_once(buf, len, d);
      sha_update(&s, d, 32);
    }
  }
  sha_final(&s, n->digest);
  /* Remembered only if the file did not change between the listing's stat and the end of the read. */
  struct stat after;
  n->memo_ok = opt.cache && !n->error && fstat(fd, &after) == 0 && after.st_ino == n->src_ino && (uint64_t)after.st_size == n->size &&
               (int64_t)after.st_ctim.tv_sec * 1000000000 + after.st_ctim.tv_nsec == n->ctime_ns && memo_settled(n->ctime_ns);
  close(fd);
}

/* ---------------------------------------------------------------- output */

static int outfd;
static uint64_t wpos; /* position relative to the file system start */
static buf_t obuf;
static uint64_t obuf_pos;

static uint64_t wb_from; /* where the next writeback starts (file system position) */

/* Starts the disk writes of what is written so far, in 8 MiB steps, without waiting: the final
 * fsync then waits only for the tail instead of the whole image (on a warm rebuild most of the
 * time the copy of reused blocks takes, the disk writes them meanwhile). */
static void writeback_kick(uint64_t upto) {
  if (upto < wb_from) wb_from = upto; /* rewound: written again from there */
  if (upto - wb_from < (8u << 20)) return;
  (void)sync_file_range(outfd, (off64_t)(opt.offset + wb_from), (off64_t)(upto - wb_from), SYNC_FILE_RANGE_WRITE);
  wb_from = upto;
}

static void out_flush(void) {
  if (obuf.len && pwrite_full(outfd, obuf.p, obuf.len, opt.offset + obuf_pos) != 0) die("write %s: %s", opt.output, strerror(errno));
  obuf_pos += obuf.len;
  obuf.len = 0;
  writeback_kick(obuf_pos);
}
static void out_write(const void *p, size_t n) {
  if (obuf.len + n > (1u << 20)) out_flush();
  if (n > (1u << 20)) {
    if (pwrite_full(outfd, p, n, opt.offset + wpos) != 0) die("write %s: %s", opt.output, strerror(errno));
    obuf_pos += n;
  } else {
    buf_put(&obuf, p, n);
  }
  wpos += n;
}
static void out_rewind(uint64_t pos) {
  out_flush();
  wpos = obuf_pos = pos;
}

/* ---------------------------------------------------------------- progress */

static struct {
  uint64_t files, files_total, bytes, bytes_total, compressed, reused;
  struct timespec last;
} prog;

static void progress(const char *phase, int force) {
  if (opt.progress_fd < 0) return;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double dt = (double)(now.tv_sec - prog.last.tv_sec) + (double)(now.tv_nsec - prog.last.tv_nsec) / 1e9;
  if (!force && dt < 0.2) return;
  prog.last = now;
  char line[320];
  int len = snprintf(line, sizeof line,
                     "{\"phase\":\"%s\",\"files\":%llu,\"filesTotal\":%llu,\"bytes\":%llu,\"bytesTotal\":%llu,\"compressed\":%llu,\"reused\":%llu,\"hashed\":%llu,\"listed\":%llu}\n",
                     phase, (unsigned long long)prog.files, (unsigned long long)prog.files_total, (unsigned long long)prog.bytes,
                     (unsigned long long)prog.bytes_total, (unsigned long long)prog.compressed, (unsigned long long)prog.reused,
                     (unsigned long long)atomic_load(&hashed_files), (unsigned long long)atomic_load(&listed_entries));
  if (write(opt.progress_fd, line, (size_t)len) < 0) opt.progress_fd = -1;
}

/* ---------------------------------------------------------------- block cache */

#define FILE_MAGIC "OSQFF1\0\0"
#define FRAG_MAGIC "OSQFG1\0\0"
#define FILE_HDR 64
#define FRAG_HDR 48

static int cache_warned;
static uint64_t cache_damaged;

static void cache_key(const char *kind, const uint8_t *extra, size_t extra_len, char hex[65]) {
  buf_t k = {0};
  char head[300];
  int hl = snprintf(head, sizeof head, "orchestrator-mksquashfs cache 1|%s|%s|%d|%u|%s|", kind, comp_name(opt.comp), opt.level, opt.block_size, comp_version());
  buf_put(&k, head, (size_t)hl);
  buf_put(&k, extra, extra_len);
  uint8_t d[32];
  sha_once(k.p, k.len, d);
  free(k.p);
  hex32(d, hex);
}

/* Makes the two folders above an entry's path (DIR/kind/xx). */
static void cache_mkdirs(const char *path) {
  char *p = xstrdup(path);
  char *slash = strrchr(p, '/');
  *slash = 0;
  if (mkdir(p, 0755) != 0 && errno == ENOENT) {
    char *up = strrchr(p, '/');
    *up = 0;
    mkdir(p, 0755);
    *up = '/';
    mkdir(p, 0755);
  }
  free(p);
}

static char *cache_path(const char *kind, const char hex[65], int mkdirs) {
  size_t l = strlen(opt.cache) + strlen(kind) + 80;
  char *p = xmalloc(l);
  if (mkdirs) {
    snprintf(p, l, "%s/%s", opt.cache, kind);
    mkdir(p, 0755);
    snprintf(p, l, "%s/%s/%.2s", opt.cache, kind, hex);
    mkdir(p, 0755);
  }
  snprintf(p, l, "%s/%s/%.2s/%s", opt.cache, kind, hex, hex);
  return p;
}

/* The cache temps being written now (one file entry streamed by the main thread, one fragment
 * entry, the digest memo, a listing memo): a SIGTERM/SIGINT/SIGHUP removes them before the process dies, so an interrupted export
 * leaves no partial entry behind (SIGKILL can: such a temp is never read, and `cache prune`
 * removes it). */
static const char *volatile open_temps[4];

static void on_fatal_signal(int sig) {
  for (int i = 0; i < 4; i++) {
    const char *t = open_temps[i];
    if (t) unlink(t);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Creates a temp sibling of final, `FINAL.tmp-XXXXXX` (mkostemp: unique across processes, also
 * across pid namespaces where every session's writer is pid 2), mode 0644; *fd is -1 on failure.
 * The caller puts the name in open_temps at once. */
static char *temp_for(const char *final, int *fd) {
  size_t l = strlen(final) + 16;
  char *t = xmalloc(l);
  snprintf(t, l, "%s.tmp-XXXXXX", final);
  *fd = mkostemp(t, O_CLOEXEC);
  if (*fd >= 0 && fchmod(*fd, 0644) != 0) {
    close(*fd);
    unlink(t);
    *fd = -1;
  }
  return t;
}

static void cache_warn(const char *what, const char *path) {
  if (!cache_warned++) warn("block cache: %s %s: %s (continuing without storing)", what, path, strerror(errno));
}

static void drop_damaged(const char *path, const char *why) {
  warn("block cache: damaged entry %s (%s): dropped, recomputed", path, why);
  cache_damaged++;
  unlink(path);
}

/* Marks an entry as used (its mtime), so that `cache prune` removes the least recently used first:
 * set to now unless it is already in the current hour. `cache prune` compares with the hour its
 * mark falls in, so an entry used since then is kept either way; not touching an entry again
 * within the hour keeps its ctime still, which the verified-entry memo keys on. The bytes are not
 * touched; a cache that cannot be written is no failure. */
static void touch_used(int fd, const struct statx *sx) {
  int64_t hour = start_ns / 1000000000 / 3600 * 3600;
  if (sx && sx->stx_mtime.tv_sec >= hour) return;
  (void)futimens(fd, NULL);
}

/* ---------------------------------------------------------------- the digest memo */

/* DIR/digests remembers, from one write to the next, what reading a file would give, so a warm
 * write does not read unchanged files:
 *  - a source file's content digest, keyed by sha256 of (block size, its path relative to SOURCE,
 *    inode number, size, mtime ns, ctime ns, birth time ns);
 *  - that a cache entry's bytes were checked against the sha256 in its header, keyed by sha256 of
 *    (its path in DIR, inode number, size, mtime ns, ctime ns, birth time ns), with that sha256.
 * No device number: the export reads a fresh overlay mount each time, whose st_dev differs per
 * mount; the inode numbers it shows are the layer files' own (layers and snapshots are on the
 * store's file system, and a store snapshot never changes under its key). Any write to a file
 * sets its ctime to the clock, which no program can set back; so a stat is remembered only when
 * its ctime is a full second before this write began (see memo_settled) and was the same before
 * and after the read. A file with a new ctime is simply read again.
 * The file: magic, count, count records (key 32, value 32, last use in seconds 4), sha256 of all
 * before it. Bounded (MEMO_CAP records, the most recently used kept), written by temp + rename; a
 * damaged memo is ignored (warning) and rebuilt, never trusted. */
#define MEMO_MAGIC "OSQFM1\0\0"
#define MEMO_CAP 200000u
#define MEMO_REC 68u

typedef struct {
  uint8_t key[32], val[32];
  uint32_t used;
} memo_rec_t;
static map_t memo_map; /* key -> index + 1 into memo_recs */
static memo_rec_t *memo_recs;
static size_t nmemo, memo_cap;
static int memo_dirty;
static char *memo_path;


static uint32_t now_s(void) { return (uint32_t)(start_ns / 1000000000); }

static void memo_add(const uint8_t key[32], const uint8_t val[32], uint32_t used) {
  if (nmemo == memo_cap) {
    memo_cap = memo_cap ? memo_cap * 2 : 1024;
    memo_recs = xrealloc(memo_recs, memo_cap * sizeof *memo_recs);
  }
  memcpy(memo_recs[nmemo].key, key, 32);
  memcpy(memo_recs[nmemo].val, val, 32);
  memo_recs[nmemo].used = used;
  nmemo++;
  map_put(&memo_map, key, (void *)(uintptr_t)nmemo);
}

/* The remembered value for key (marked used), or 0. */
static int memo_get(const uint8_t key[32], uint8_t val[32]) {
  uintptr_t i = (uintptr_t)map_get(&memo_map, key);
  if (!i) return 0;
  memo_rec_t *r = &memo_recs[i - 1];
  memcpy(val, r->val, 32);
  if (r->used + 86400 < now_s()) memo_dirty = 1; /* rewrite at most daily for use times alone */
  r->used = now_s();
  return 1;
}

static void memo_put(const uint8_t key[32], const uint8_t val[32]) {
  uintptr_t i = (uintptr_t)map_get(&memo_map, key);
  if (i) {
    memo_rec_t *r = &memo_recs[i - 1];
    if (memcmp(r->val, val, 32) != 0) memcpy(r->val, val, 32), memo_dirty = 1;
    r->used = now_s();
    return;
  }
  memo_add(key, val, now_s());
  memo_dirty = 1;
}

static void memo_load(void) {
  size_t l = strlen(opt.cache) + 16;
  memo_path = xmalloc(l);
  snprintf(memo_path, l, "%s/digests", opt.cache);
  int fd = open(memo_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  const char *why = NULL;
  uint8_t *p = NULL;
  uint64_t size = 0, count = 0;
  if (fstat(fd, &st) != 0) why = "unreadable";
  if (!why) {
    size = (uint64_t)st.st_size;
    count = size >= 48 ? (size - 48) / MEMO_REC : 0;
    if (size < 48 || (size - 48) % MEMO_REC || count > MEMO_CAP) why = "bad size";
  }
  if (!why) {
    p = xmalloc(size);
    if (pread_full(fd, p, size, 0) != (ssize_t)size) why = "truncated";
  }
  if (!why && (memcmp(p, MEMO_MAGIC, 8) != 0 || get_le64(p + 8) != count)) why = "bad header";
  if (!why) {
    uint8_t d[32];
    sha_once(p, size - 32, d);
    if (memcmp(d, p + size - 32, 32) != 0) why = "digest mismatch";
  }
  close(fd);
  if (why) {
    warn("block cache: damaged digest memo %s (%s): ignored, rebuilt", memo_path, why);
    memo_dirty = 1;
    free(p);
    return;
  }
  for (uint64_t i = 0; i < count; i++) {
    const uint8_t *r = p + 16 + i * MEMO_REC;
    if (!map_get(&memo_map, r)) memo_add(r, r + 32, get_le32(r + 64));
  }
  free(p);
}

/* Writes b and its sha256 (the seal a reader checks) to final by temp + rename (its temp in
 * open_temps[slot] meanwhile); frees b. A file that cannot be stored is a warning. */
static void store_sealed(const char *final, buf_t *b, int slot) {
  uint8_t d[32];
  sha_once(b->p, b->len, d);
  buf_put(b, d, 32);
  int fd;
  char *tmp = temp_for(final, &fd);
  open_temps[slot] = tmp;
  int bad = fd < 0;
  if (!bad) {
    bad |= pwrite_full(fd, b->p, b->len, 0) != 0;
    bad |= close(fd) != 0;
  }
  if (bad || rename(tmp, final) != 0) {
    cache_warn("cannot store", final);
    unlink(tmp);
  }
  open_temps[slot] = NULL;
  free(tmp);
  free(b->p);
  *b = (buf_t){0};
}

static int cmp_memo_used(const void *a, const void *b) {
  uint32_t x = ((const memo_rec_t *)a)->used, y = ((const memo_rec_t *)b)->used;
  return x > y ? -1 : x < y;
}

/* Writes the memo when it changed (else marks it used, for `cache prune`). */
static void memo_save(void) {
  if (!memo_path) return;
  if (!memo_dirty) {
    (void)utimensat(AT_FDCWD, memo_path, NULL, 0);
    return;
  }
  qsort(memo_recs, nmemo, sizeof *memo_recs, cmp_memo_used);
  size_t count = nmemo < MEMO_CAP ? nmemo : MEMO_CAP;
  buf_t b = {0};
  buf_put(&b, MEMO_MAGIC, 8);
  buf_u64(&b, count);
  for (size_t i = 0; i < count; i++) {
    buf_put(&b, memo_recs[i].key, 32);
    buf_put(&b, memo_recs[i].val, 32);
    buf_u32(&b, memo_recs[i].used);
  }
  store_sealed(memo_path, &b, 2);
}

/* A digest memo key: what k holds (its kind), then rel and the stat that identifies what was read
 * there (inode, size, mtime, ctime, birth time); k is freed. */
static void stat_key(buf_t *k, const char *rel, const struct statx *sx, uint8_t key[32]) {
  buf_u32(k, (uint32_t)strlen(rel));
  buf_put(k, rel, strlen(rel));
  buf_u64(k, sx->stx_ino);
  buf_u64(k, sx->stx_size);
  buf_u64(k, (uint64_t)ts_ns(sx->stx_mtime));
  buf_u64(k, (uint64_t)ts_ns(sx->stx_ctime));
  buf_u64(k, sx->stx_mask & STATX_BTIME ? (uint64_t)ts_ns(sx->stx_btime) : 0);
  sha_once(k->p, k->len, key);
  free(k->p);
}

static void memo_key_for(node_t *n, const struct statx *sx) {
  n->src_ino = sx->stx_ino;
  n->ctime_ns = ts_ns(sx->stx_ctime);
  if (!opt.cache) return;
  buf_t k = {0};
  buf_put(&k, "osqfs-memo-file-1", 17);
  buf_u32(&k, opt.block_size);
  stat_key(&k, n->rel, sx, n->mkey);
}

/* The memo key of a cache entry as it is now (open as fd, at path). */
static void entry_key(const char *path, const struct statx *sx, uint8_t key[32]) {
  buf_t k = {0};
  buf_put(&k, "osqfs-memo-entry-1", 18);
  stat_key(&k, path + strlen(opt.cache), sx, key);
}

static int fd_statx(int fd, struct statx *sx) {
  return statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, sx);
}

/* Copies len bytes at off of fd to the output at wpos: copy_file_range (the file system may share
 * or copy in the kernel), read/write where it cannot (another file system). -1 on a read error. */
/* Copies len bytes at off of fd to the output's position pos (file system relative): copy_file_range
 * (the file system may share or copy in the kernel), read/write where it cannot (another file
 * system). 0 done; -1 a read failed; -2 a write failed (*err: its errno). Thread-safe. */
static int copy_at(int fd, uint64_t off, uint64_t pos, uint64_t len, int *err) {
  loff_t in = (loff_t)off, out = (loff_t)(opt.offset + pos);
  uint64_t left = len;
  while (left) {
    ssize_t r = copy_file_range(fd, &in, outfd, &out, left, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    left -= (uint64_t)r;
  }
  int result = 0;
  uint8_t *chunk = left ? xmalloc(1u << 20) : NULL;
  while (left && !result) {
    size_t n = (size_t)(left < (1u << 20) ? left : (1u << 20));
    if (pread_full(fd, chunk, n, (uint64_t)in) != (ssize_t)n) result = -1;
    else if (pwrite_full(outfd, chunk, n, (uint64_t)out) != 0) *err = errno, result = -2;
    in += (loff_t)n;
    out += (loff_t)n;
    left -= n;
  }
  free(chunk);
  return result;
}

/* Copies len bytes at off of fd to the output at wpos. -1 on a read error. */
static int copy_range(int fd, uint64_t off, uint64_t len) {
  out_flush();
  int err = 0, r = copy_at(fd, off, wpos, len, &err);
  if (r == -2) die("write %s: %s", opt.output, strerror(err));
  if (r) return -1;
  wpos += len;
  obuf_pos = wpos;
  writeback_kick(wpos);
  return 0;
}

/* An entry's stat, once it is marked used this hour (which may change its ctime, which the memo
 * key holds). 0 on success. */
static int entry_stat_used(int fd, struct statx *sx) {
  if (fd_statx(fd, sx) != 0) return -1;
  if (sx->stx_mtime.tv_sec >= start_ns / 1000000000 / 3600 * 3600) return 0;
  touch_used(fd, sx);
  return fd_statx(fd, sx);
}

/* Remembers that the entry at key holds digest, if its stat did not change while it was read. */
static void entry_checked(int fd, const struct statx *sx, const uint8_t key[32], const uint8_t digest[32]) {
  struct statx after;
  if (fd_statx(fd, &after) == 0 && after.stx_ino == sx->stx_ino && after.stx_size == sx->stx_size && ts_ns(after.stx_ctime) == ts_ns(sx->stx_ctime) &&
      memo_settled(ts_ns(sx->stx_ctime)))
    memo_put(key, digest);
}

/* A file's cache entry, opened and checked before its turn (on every core, for all files at
 * once): its stat (marked used), header, block sizes and memo key. fd -1: no entry, or a damaged
 * one (why says how; it is dropped in order, on the main thread). */
typedef struct {
  int fd;
  char *path;
  const char *why;
  struct statx sx;
  uint8_t hdr[FILE_HDR];
  uint32_t *sizes;
  uint64_t datalen, start;
  uint8_t key[32];
  int copied; /* 1 copied, -1 a read failed or the entry changed meanwhile, -2 a write failed (err) */
  int err;
} prep_t;
static prep_t *preps; /* by content index */
static content_t **contents; /* distinct contents, in data region order */
static size_t ncontents;

static void prep_entry(content_t *c, prep_t *p) {
  p->fd = -1;
  if (!c->nblocks) return;
  char hex[65];
  cache_key("file", c->digest, 32, hex);
  p->path = cache_path("files", hex, 0);
  int fd = open(p->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  const char *why = NULL;
  if (entry_stat_used(fd, &p->sx) != 0 || pread_full(fd, p->hdr, FILE_HDR, 0) != FILE_HDR || memcmp(p->hdr, FILE_MAGIC, 8) != 0) why = "bad header";
  else if (get_le64(p->hdr + 8) != c->size || get_le64(p->hdr + 16) != c->nblocks) why = "wrong size";
  else if (p->sx.stx_size < FILE_HDR + 4 * c->nblocks) why = "truncated";
  if (!why) {
    p->datalen = p->sx.stx_size - FILE_HDR - 4 * c->nblocks;
    p->sizes = xmalloc(4 * c->nblocks + 4);
    if (pread_full(fd, p->sizes, 4 * c->nblocks, FILE_HDR + p->datalen) != (ssize_t)(4 * c->nblocks)) why = "truncated";
    uint64_t sum = 0;
    for (uint64_t b = 0; !why && b < c->nblocks; b++) {
      uint32_t w = get_le32((uint8_t *)&p->sizes[b]);
      uint32_t len = w & ~UNCOMPRESSED_BLOCK;
      if (len > opt.block_size || (w & UNCOMPRESSED_BLOCK && len != opt.block_size)) why = "bad block size";
      sum += len;
    }
    if (!why && sum != p->datalen) why = "size mismatch";
  }
  if (why) {
    close(fd);
    p->why = why;
    return;
  }
  entry_key(p->path, &p->sx, p->key);
  p->fd = fd;
}
static void prep_task(int tid, size_t i, void *arg) {
  (void)tid;
  (void)arg;
  prep_entry(contents[i], &preps[i]);
}

/* The content's place and block sizes from its entry, copied or to be copied at p->start. */
static void take_entry(content_t *c, prep_t *p) {
  c->start = p->start;
  c->bsizes = xmalloc(4 * c->nblocks + 4);
  c->sparse = 0;
  for (uint64_t b = 0; b < c->nblocks; b++) {
    c->bsizes[b] = get_le32((uint8_t *)&p->sizes[b]);
    if (c->bsizes[b] == 0) c->sparse += opt.block_size;
  }
}

static void prep_done(prep_t *p) {
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  free(p->path);
  free(p->sizes);
  p->path = NULL;
  p->sizes = NULL;
}

/* Checked entries (the memo holds the digest they were found to match), not changed since, are
 * copied without being read here, several at once: each has its place reserved in the output
 * (pending), and the copies run on every core when something else is to be written. */
static size_t *pending, npending;

static void copy_task(int tid, size_t k, void *arg) {
  (void)tid;
  (void)arg;
  prep_t *p = &preps[pending[k]];
  int r = copy_at(p->fd, FILE_HDR, p->start, p->datalen, &p->err);
  struct statx after;
  if (r == 0 && (fd_statx(p->fd, &after) != 0 || ts_ns(after.stx_ctime) != ts_ns(p->sx.stx_ctime))) p->why = "changed while copied";
  p->copied = r == 0 && !p->why ? 1 : r == -2 ? -2 : -1;
}

static int copy_entry_read(content_t *c, prep_t *p);

/* Runs the pending copies. One that failed (a read error, or an entry written to while copied)
 * rewinds the output to its place; it and the ones after it are written again one by one (an entry
 * changed meanwhile is dropped and recomputed). */
static void write_content(size_t i);
static void flush_pending(void) {
  if (!npending) return;
  pool_run(copy_task, NULL, npending);
  size_t n = npending, bad = n;
  npending = 0;
  for (size_t k = 0; k < n && bad == n; k++) {
    if (preps[pending[k]].copied == -2) die("write %s: %s", opt.output, strerror(preps[pending[k]].err));
    if (preps[pending[k]].copied < 0) bad = k;
  }
  for (size_t k = 0; k < bad; k++) prep_done(&preps[pending[k]]);
  if (bad == n) {
    writeback_kick(wpos);
    return;
  }
  out_rewind(preps[pending[bad]].start);
  for (size_t k = bad; k < n; k++) {
    content_t *c = contents[pending[k]];
    free(c->bsizes);
    c->bsizes = NULL;
    prog.reused -= c->nblocks * opt.block_size - c->sparse;
    prog.bytes -= c->nblocks * opt.block_size;
  }
  size_t *redo = xmalloc((n - bad) * sizeof *redo);
  memcpy(redo, pending + bad, (n - bad) * sizeof *redo);
  for (size_t k = 0; k < n - bad; k++) {
    prep_t *p = &preps[redo[k]];
    if (p->why) { /* written to while copied: dropped, recomputed (write_content) */
      close(p->fd);
      p->fd = -1;
    } else if (p->copied < 0) {
      memset(p->key, 0, sizeof p->key); /* a read failed: copied again by reading it here, checked */
    }
    write_content(redo[k]);
  }
  free(redo);
}

/* The entry read and hashed on the way to the output (an entry not checked since its last
 * change); 1 when it matched its digest, 0 when it did not (dropped; the output rewound). */
static int copy_entry_read(content_t *c, prep_t *p) {
  uint64_t start = wpos;
  sha_t s;
  sha_init(&s);
  const char *why = NULL;
  uint8_t *chunk = xmalloc(1u << 20);
  for (uint64_t off = 0; off < p->datalen;) {
    size_t n = (size_t)(p->datalen - off < (1u << 20) ? p->datalen - off : (1u << 20));
    if (pread_full(p->fd, chunk, n, FILE_HDR + off) != (ssize_t)n) {
      why = "read error";
      break;
    }
    sha_update(&s, chunk, n);
    out_write(chunk, n);
    off += n;
  }
  free(chunk);
  sha_update(&s, p->sizes, 4 * c->nblocks);
  uint8_t d[32];
  sha_final(&s, d);
  if (!why && memcmp(d, p->hdr + 32, 32) != 0) why = "digest mismatch";
  if (!why) entry_checked(p->fd, &p->sx, p->key, p->hdr + 32);
  if (why) {
    out_rewind(start);
    close(p->fd);
    p->fd = -1;
    drop_damaged(p->path, why);
    return 0;
  }
  p->start = start;
  take_entry(c, p);
  return 1;
}

static void cache_file_begin(content_t *c) {
  c->cfd = -1;
  if (!opt.cache || !c->nblocks) return;
  char hex[65];
  cache_key("file", c->digest, 32, hex);
  c->cpath = cache_path("files", hex, 1);
  c->ctmp = temp_for(c->cpath, &c->cfd);
  open_temps[0] = c->ctmp;
  if (c->cfd < 0) {
    cache_warn("cannot create", c->ctmp);
    return;
  }
  uint8_t zero[FILE_HDR] = {0};
  if (write(c->cfd, zero, FILE_HDR) != FILE_HDR) {
    cache_warn("cannot write", c->ctmp);
    close(c->cfd);
    unlink(c->ctmp);
    c->cfd = -1;
    return;
  }
  sha_init(&c->csha);
}
static void cache_file_data(content_t *c, const void *p, size_t n) {
  if (c->cfd < 0 || !n) return;
  sha_update(&c->csha, p, n);
  size_t done = 0;
  while (done < n) {
    ssize_t r = write(c->cfd, (const uint8_t *)p + done, n - done);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      cache_warn("cannot write", c->ctmp);
      close(c->cfd);
      unlink(c->ctmp);
      uint8_t d[32];
      sha_final(&c->csha, d);
      c->cfd = -1;
      return;
    }
    done += (size_t)r;
  }
}
static void cache_file_end(content_t *c) {
  if (c->cfd < 0) return;
  uint8_t *sz = xmalloc(4 * c->nblocks + 4);
  for (uint64_t b = 0; b < c->nblocks; b++) put_le32(sz + 4 * b, c->bsizes[b]);
  cache_file_data(c, sz, 4 * c->nblocks);
  free(sz);
  if (c->cfd < 0) return;
  uint8_t hdr[FILE_HDR] = {0};
  memcpy(hdr, FILE_MAGIC, 8);
  put_le64(hdr + 8, c->size);
  put_le64(hdr + 16, c->nblocks);
  sha_final(&c->csha, hdr + 32);
  int bad = pwrite_full(c->cfd, hdr, FILE_HDR, 0) != 0;
  bad |= close(c->cfd) != 0;
  c->cfd = -1;
  if (bad || rename(c->ctmp, c->cpath) != 0) {
    cache_warn("cannot store", c->cpath);
    unlink(c->ctmp);
  }
  open_temps[0] = NULL;
  free(c->ctmp);
  free(c->cpath);
  c->ctmp = c->cpath = NULL;
}

/* ---------------------------------------------------------------- data blocks */

typedef struct {
  content_t *c; /* NULL for a fragment block */
  uint64_t b;   /* block index, or fragment index */
  uint32_t len;
  int zero, ready; /* ready: a fragment block from the cache, in out (1) or to copy from cfd (2) */
  int cfd;
  char *cpath;
  int64_t cctime; /* the checked entry's ctime, the same after the copy */
  uint8_t *in, *out;
  size_t outlen; /* 0: store raw */
} job_t;

/* Two batches: the workers compress one while the main thread reads the next and writes the one
 * before. Output order is queue order. */
typedef struct {
  job_t *jobs;
  size_t n;
} batch_t;
static batch_t batches[2], *cur = &batches[0], *inflight;
static size_t batch_max;

static void compress_task(int tid, size_t i, void *arg) {
  job_t *j = &((batch_t *)arg)->jobs[i];
  if (j->zero || j->ready) return;
  j->outlen = compress_block(tid, j->in, j->len, j->out);
}

typedef struct {
  uint64_t start;
  uint32_t size;
} frag_entry_t;
static frag_entry_t *frags;
static uint32_t nfrags;
static char **frag_paths; /* cache path to store a freshly compressed fragment block under */

static void store_fragment(const char *path, const uint8_t *p, uint32_t word, uint32_t rawlen) {
  uint32_t len = word & ~UNCOMPRESSED_BLOCK;
  uint8_t hdr[FRAG_HDR] = {0};
  memcpy(hdr, FRAG_MAGIC, 8);
  put_le32(hdr + 8, word);
  put_le32(hdr + 12, rawlen);
  sha_once(p, len, hdr + 16);
  int fd;
  cache_mkdirs(path);
  char *tmp = temp_for(path, &fd);
  open_temps[1] = tmp;
  int bad = fd < 0;
  if (!bad) {
    bad |= pwrite_full(fd, hdr, FRAG_HDR, 0) != 0;
    bad |= pwrite_full(fd, p, len, FRAG_HDR) != 0;
    bad |= close(fd) != 0;
  }
  if (bad || rename(tmp, path) != 0) {
    cache_warn("cannot store", path);
    unlink(tmp);
  }
  open_temps[1] = NULL;
  free(tmp);
}

/* Writes a compressed batch in queue order. */
static void commit(batch_t *b) {
  for (size_t i = 0; i < b->n; i++) {
    job_t *j = &b->jobs[i];
    const uint8_t *data = j->zero ? NULL : j->outlen ? j->out : j->in;
    uint32_t len = j->zero ? 0 : j->outlen ? (uint32_t)j->outlen : j->len;
    uint32_t word = j->zero ? 0 : j->outlen ? len : (len | UNCOMPRESSED_BLOCK);
    if (j->ready) { /* fragment block from the cache: out holds the stored bytes, outlen the word */
      word = (uint32_t)j->outlen;
      len = word & ~UNCOMPRESSED_BLOCK;
      data = j->out;
    }
    if (j->ready == 2) { /* a checked entry, unchanged since: copied without reading it here */
      frags[j->b] = (frag_entry_t){.start = wpos, .size = word};
      struct statx after;
      int bad = copy_range(j->cfd, FRAG_HDR, len) != 0 || fd_statx(j->cfd, &after) != 0 || ts_ns(after.stx_ctime) != j->cctime;
      close(j->cfd);
      if (bad) { /* written to while we copied: the output holds bytes nobody checked */
        unlink(j->cpath);
        die("block cache: entry %s changed while being copied: dropped; run the export again", j->cpath);
      }
      free(j->cpath);
      j->cpath = NULL;
      continue;
    }
    if (j->c) {
      content_t *c = j->c;
      if (!c->started) {
        c->started = 1;
        c->start = wpos;
      }
      c->bsizes[j->b] = word;
      if (!word) c->sparse += opt.block_size;
      out_write(data, len);
      cache_file_data(c, data, len);
      if (j->b + 1 == c->nblocks) cache_file_end(c);
    } else {
      frags[j->b] = (frag_entry_t){.start = wpos, .size = word};
      out_write(data, len);
      if (!j->ready && frag_paths && frag_paths[j->b]) store_fragment(frag_paths[j->b], data, word, j->len);
    }
    if (!j->c && frag_paths && frag_paths[j->b]) {
      free(frag_paths[j->b]);
      frag_paths[j->b] = NULL;
    }
  }
  b->n = 0;
}

/* Hands the current batch to the workers (after writing the one they had). */
static void submit(void) {
  if (inflight) {
    pool_wait();
    commit(inflight);
    inflight = NULL;
  }
  if (cur->n) {
    pool_submit(compress_task, cur, cur->n);
    inflight = cur;
    cur = cur == &batches[0] ? &batches[1] : &batches[0];
  }
}
/* Everything queued is compressed and written. */
static void drain(void) {
  submit();
  submit();
}

static job_t *next_job(void) {
  if (cur->n == batch_max) submit();
  job_t *j = &cur->jobs[cur->n++];
  j->zero = j->ready = 0;
  j->outlen = 0;
  j->c = NULL;
  return j;
}


/* Content i of the data region: from its cache entry (reserved for a parallel copy when it is a
 * checked one), else read and compressed. */
static void write_content(size_t i) {
  content_t *c = contents[i];
  uint64_t bytes = c->nblocks * opt.block_size;
  if (opt.cache) {
    prep_t *p = &preps[i];
    uint8_t known[32];
    drain(); /* keep the output in order */
    if (p->fd >= 0 && memo_get(p->key, known) && memcmp(known, p->hdr + 32, 32) == 0) {
      out_flush(); /* what is buffered goes before the reserved place */
      p->start = wpos;
      take_entry(c, p);
      wpos += p->datalen;
      obuf_pos = wpos;
      pending[npending++] = i;
      prog.reused += bytes - c->sparse; /* zero blocks are neither compressed nor reused */
      prog.bytes += bytes;
      progress("data", 0);
      return;
    }
    flush_pending();
    int done = p->fd >= 0 && copy_entry_read(c, p);
    if (p->why) drop_damaged(p->path, p->why);
    prep_done(p);
    if (done) {
      prog.reused += bytes - c->sparse;
      prog.bytes += bytes;
      progress("data", 0);
      return;
    }
  }
  c->bsizes = xcalloc(c->nblocks, 4);
  cache_file_begin(c);
  int fd = open(c->src->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) die("open %s: %s", c->src->path, strerror(errno));
  for (uint64_t b = 0; b < c->nblocks; b++) {
    job_t *j = next_job();
    j->c = c;
    j->b = b;
    j->len = opt.block_size;
    int z = read_block(fd, c->src, b * opt.block_size, opt.block_size, j->in);
    if (z < 0) die("%s changed while being read", c->src->path);
    j->zero = z;
    if (!z) prog.compressed += opt.block_size;
    /* Per block, so that one big file shows progress too (at most every 200 ms). */
    prog.bytes += opt.block_size;
    progress("data", 0);
  }
  close(fd);
}

static void write_file_blocks(void) {
  progress("data", 1);
  if (opt.cache) {
    preps = xcalloc(ncontents ? ncontents : 1, sizeof *preps);
    pending = xcalloc(ncontents ? ncontents : 1, sizeof *pending);
    pool_run(prep_task, NULL, ncontents);
  }
  for (size_t i = 0; i < ncontents; i++) {
    prog.files++;
    if (contents[i]->nblocks) write_content(i);
    else progress("data", 0);
    /* Copies are batched up to 64 MiB, so the disk gets them while the rest is prepared. */
    if (npending && wpos - preps[pending[0]].start >= (64u << 20)) flush_pending();
  }
  flush_pending();
  drain();
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Groups the tails (walk order), cutting after a tail whose path hash falls under its size out
 * of half a block (so groups average about half a block and the cuts depend only on nearby
 * entries), or when the next tail does not fit. */
typedef struct {
  size_t first, count;
  uint32_t len;
} group_t;

/* Long on purpose: grouping the tails, then per group the cache lookup (checked entry, or read and
 * hashed) and the fallback that reads the tails; one pass over the groups, in output order. */
static void write_fragments(void) {
  content_t **tails = xcalloc(ncontents, sizeof *tails);
  size_t ntails = 0;
  for (size_t i = 0; i < ncontents; i++)
    if (contents[i]->tail) tails[ntails++] = contents[i];
  group_t *groups = xcalloc(ntails + 1, sizeof *groups);
  size_t ngroups = 0;
  uint32_t fill = 0;
  uint64_t half = opt.block_size / 2;
  for (size_t i = 0; i < ntails; i++) {
    content_t *t = tails[i];
    if (fill + t->tail > opt.block_size) {
      ngroups++;
      fill = 0;
    }
    group_t *g = &groups[ngroups];
    if (!fill) g->first = i, g->count = 0;
    t->frag = (uint32_t)ngroups;
    t->fragoff = fill;
    fill += t->tail;
    g->count++;
    g->len = fill;
    uint8_t d[32];
    const char *rel = t->src->rel; /* relative: the same tree anywhere */
    while (*rel == '/') rel++;
    sha_once(rel, strlen(rel), d);
    uint64_t h;
    memcpy(&h, d, 8);
    if (h % half < t->tail) {
      ngroups++;
      fill = 0;
    }
  }
  if (fill) ngroups++;
  nfrags = (uint32_t)ngroups;
  frags = xcalloc(ngroups, sizeof *frags);
  frag_paths = opt.cache ? xcalloc(ngroups, sizeof *frag_paths) : NULL;
  for (size_t gi = 0; gi < ngroups; gi++) {
    group_t *g = &groups[gi];
    job_t *j = next_job();
    j->b = gi;
    j->len = g->len;
    if (opt.cache) {
      buf_t k = {0};
      for (size_t m = 0; m < g->count; m++) {
        buf_put(&k, tails[g->first + m]->digest, 32);
        buf_u32(&k, tails[g->first + m]->tail);
      }
      char hex[65];
      cache_key("fragment", k.p, k.len, hex);
      free(k.p);
      char *path = cache_path("fragments", hex, 0);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        /* A checked entry whose stat is unchanged is copied at commit, unread; another is read
         * into the job's output buffer and hashed. */
        uint8_t hdr[FRAG_HDR];
        struct statx sx;
        const char *why = NULL;
        int have_sx = entry_stat_used(fd, &sx) == 0;
        if (!have_sx || pread_full(fd, hdr, FRAG_HDR, 0) != FRAG_HDR || memcmp(hdr, FRAG_MAGIC, 8) != 0) why = "bad header";
        uint32_t word = why ? 0 : get_le32(hdr + 8), len = word & ~UNCOMPRESSED_BLOCK;
        if (!why && (get_le32(hdr + 12) != g->len || len > g->len || sx.stx_size != FRAG_HDR + (uint64_t)len)) why = "wrong size";
        uint8_t d[32], key[32];
        if (!why) {
          entry_key(path, &sx, key);
          if (memo_get(key, d) && memcmp(d, hdr + 16, 32) == 0) {
            j->ready = 2;
            j->cfd = fd;
            j->cpath = path;
            j->cctime = ts_ns(sx.stx_ctime);
            j->outlen = word;
            prog.reused += g->len;
            prog.bytes += g->len;
            continue;
          }
          if (pread_full(fd, j->out, len, FRAG_HDR) != (ssize_t)len) why = "truncated";
          if (!why) {
            sha_once(j->out, len, d);
            if (memcmp(d, hdr + 16, 32) != 0) why = "digest mismatch";
          }
          if (!why) entry_checked(fd, &sx, key, hdr + 16);
        }
        close(fd);
        if (!why) {
          j->ready = 1;
          j->outlen = word;
          prog.reused += g->len;
          prog.bytes += g->len;
          free(path);
          continue;
        }
        drop_damaged(path, why);
      }
      frag_paths[gi] = path;
    }
    for (size_t m = 0; m < g->count; m++) {
      content_t *t = tails[g->first + m];
      int fd = open(t->src->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) die("open %s: %s", t->src->path, strerror(errno));
      if (pread_full(fd, j->in + t->fragoff, t->tail, t->nblocks * opt.block_size) != (ssize_t)t->tail)
        die("%s changed while being read", t->src->path);
      close(fd);
    }
    prog.compressed += g->len;
    prog.bytes += g->len;
    progress("fragments", 0);
  }
  drain();
  free(tails);
  free(groups);
}

/* ---------------------------------------------------------------- metadata streams */

typedef struct {
  buf_t out;
  uint8_t blk[META_SIZE];
  size_t fill;
  uint64_t nblocks;
  uint64_t *starts;
  size_t starts_cap;
} ms_t;

static uint8_t meta_out[META_SIZE];

static void ms_flush(ms_t *m) {
  if (!m->fill) return;
  if (m->nblocks == m->starts_cap) {
    m->starts_cap = m->starts_cap ? m->starts_cap * 2 : 64;
    m->starts = xrealloc(m->starts, m->starts_cap * sizeof *m->starts);
  }
  m->starts[m->nblocks++] = m->out.len;
  size_t c = compress_block(pool.n, m->blk, m->fill, meta_out); /* the main thread's context */
  if (c) {
    buf_u16(&m->out, (uint16_t)c);
    buf_put(&m->out, meta_out, c);
  } else {
    buf_u16(&m->out, (uint16_t)(m->fill | 0x8000));
    buf_put(&m->out, m->blk, m->fill);
  }
  m->fill = 0;
}
static void ms_write(ms_t *m, const void *p, size_t n) {
  const uint8_t *s = p;
  while (n) {
    size_t k = META_SIZE - m->fill < n ? META_SIZE - m->fill : n;
    memcpy(m->blk + m->fill, s, k);
    m->fill += k;
    s += k;
    n -= k;
    if (m->fill == META_SIZE) ms_flush(m);
  }
}
static uint64_t ms_ref(const ms_t *m) { return (uint64_t)m->out.len << 16 | m->fill; }
static uint64_t ms_upos(const ms_t *m) { return m->nblocks * META_SIZE + m->fill; }
static uint64_t ms_block_start(const ms_t *m, uint64_t b) { return b < m->nblocks ? m->starts[b] : m->out.len; }

/* Writes a lookup table (metadata blocks, then the list of their positions); returns the position
 * of the list. */
static uint64_t write_table(const void *data, size_t len) {
  ms_t m = {0};
  ms_write(&m, data, len);
  ms_flush(&m);
  uint64_t base = wpos;
  out_write(m.out.p, m.out.len);
  uint64_t list = wpos;
  for (uint64_t i = 0; i < m.nblocks; i++) {
    uint8_t v[8];
    put_le64(v, base + m.starts[i]);
    out_write(v, 8);
  }
  free(m.out.p);
  free(m.starts);
  return list;
}

/* ---------------------------------------------------------------- inodes and directories */

static ms_t itab, dtab;

static uint16_t id_index(uint32_t id) {
  uint32_t *p = bsearch(&id, ids, nids, sizeof *ids, cmp_u32);
  return (uint16_t)(p - ids);
}

static int basic_type(uint32_t mode) {
  if (S_ISDIR(mode)) return 1;
  if (S_ISREG(mode)) return 2;
  if (S_ISLNK(mode)) return 3;
  if (S_ISBLK(mode)) return 4;
  if (S_ISCHR(mode)) return 5;
  if (S_ISFIFO(mode)) return 6;
  return 7;
}

static void inode_header(buf_t *b, const node_t *n, int type) {
  buf_u16(b, (uint16_t)type);
  buf_u16(b, (uint16_t)(n->mode & 07777));
  buf_u16(b, id_index(n->uid));
  buf_u16(b, id_index(n->gid));
  buf_u32(b, n->mtime);
  buf_u32(b, n->ino);
}

static void write_inode(node_t *n) {
  buf_t b = {0};
  int t = basic_type(n->mode);
  int ext = n->xid != NO_XATTR;
  if (S_ISREG(n->mode)) {
    content_t *c = n->content;
    /* Zero blocks count as sparse whatever the source's allocation (mksquashfs looks at
     * st_blocks; that would make the image depend on the disk, not the tree). */
    uint64_t sparse = c->sparse && c->sparse >= c->size ? c->size - 1 : c->sparse;
    ext |= n->nlink > 1 || c->size > UINT32_MAX || c->start > UINT32_MAX || sparse > 0;
    inode_header(&b, n, ext ? 9 : 2);
    if (ext) {
      buf_u64(&b, c->start);
      buf_u64(&b, c->size);
      buf_u64(&b, sparse);
      buf_u32(&b, n->nlink);
      buf_u32(&b, c->tail ? c->frag : INVALID_FRAG);
      buf_u32(&b, c->tail ? c->fragoff : 0);
      buf_u32(&b, n->xid);
    } else {
      buf_u32(&b, (uint32_t)c->start);
      buf_u32(&b, c->tail ? c->frag : INVALID_FRAG);
      buf_u32(&b, c->tail ? c->fragoff : 0);
      buf_u32(&b, (uint32_t)c->size);
    }
    for (uint64_t i = 0; i < c->nblocks; i++) buf_u32(&b, c->bsizes[i]);
  } else {
    inode_header(&b, n, ext ? t + 7 : t);
    buf_u32(&b, n->nlink);
    if (S_ISLNK(n->mode)) {
      buf_u32(&b, (uint32_t)n->size);
      buf_put(&b, n->target, n->size);
    } else if (S_ISBLK(n->mode) || S_ISCHR(n->mode)) {
      buf_u32(&b, n->rdev);
    }
    if (ext) buf_u32(&b, n->xid);
  }
  n->iref = ms_ref(&itab);
  ms_write(&itab, b.p, b.len);
  free(b.p);
}

static void write_dir(node_t *d, uint32_t parent) {
  /* The listing, built in memory first so header counts can be filled in; a new header starts
   * when 256 entries are reached, the inode block changes, the inode number is too far from the
   * header's, or the listing moves into the next directory-table block (those headers are indexed). */
  uint64_t start_ref = ms_ref(&dtab), start_upos = ms_upos(&dtab);
  buf_t l = {0}, idx = {0};
  size_t hdr_at = 0, count = 0;
  uint32_t hdr_block = 0, hdr_ino = 0;
  uint64_t hdr_meta = 0, last_indexed = start_upos / META_SIZE;
  uint16_t nidx = 0;
  int have = 0;
  for (uint32_t i = 0; i < d->nkids; i++) {
    node_t *k = d->kids[i], *p = k->primary;
    uint32_t block = (uint32_t)(p->iref >> 16);
    uint16_t off = (uint16_t)(p->iref & 0xffff);
    int64_t diff = (int64_t)p->ino - (int64_t)hdr_ino;
    uint64_t here = start_upos + l.len;
    if (!have || count == 256 || block != hdr_block || diff < -32768 || diff > 32767 || here / META_SIZE != hdr_meta) {
      if (have) put_le32(l.p + hdr_at, (uint32_t)(count - 1));
      hdr_at = l.len;
      hdr_block = block;
      hdr_ino = p->ino;
      hdr_meta = here / META_SIZE;
      count = 0;
      have = 1;
      buf_u32(&l, 0);
      buf_u32(&l, block);
      buf_u32(&l, hdr_ino);
      if (hdr_meta != last_indexed) {
        last_indexed = hdr_meta;
        buf_u32(&idx, (uint32_t)hdr_at);
        buf_u32(&idx, (uint32_t)hdr_meta); /* block number; resolved to a position below */
        size_t nl = strlen(k->name);
        buf_u32(&idx, (uint32_t)(nl - 1));
        buf_put(&idx, k->name, nl);
        nidx++;
      }
      diff = 0;
    }
    size_t nl = strlen(k->name);
    buf_u16(&l, off);
    buf_u16(&l, (uint16_t)(int16_t)diff);
    buf_u16(&l, (uint16_t)basic_type(p->mode));
    buf_u16(&l, (uint16_t)(nl - 1));
    buf_put(&l, k->name, nl);
    count++;
  }
  if (have) put_le32(l.p + hdr_at, (uint32_t)(count - 1));
  ms_write(&dtab, l.p, l.len);
  /* Index entries name their header's metadata block by position, now that it is known. */
  for (size_t at = 0, i = 0; i < nidx; i++) {
    uint32_t blockno = get_le32(idx.p + at + 4);
    put_le32(idx.p + at + 4, (uint32_t)ms_block_start(&dtab, blockno));
    at += 12 + get_le32(idx.p + at + 8) + 1;
  }
  uint64_t size = l.len + 3;
  int ext = d->xid != NO_XATTR || nidx > 0 || size > 0xffff;
  buf_t b = {0};
  inode_header(&b, d, ext ? 8 : 1);
  uint32_t nlink = 2 + d->ndirs;
  if (ext) {
    buf_u32(&b, nlink);
    buf_u32(&b, (uint32_t)size);
    buf_u32(&b, (uint32_t)(start_ref >> 16));
    buf_u32(&b, parent);
    buf_u16(&b, nidx);
    buf_u16(&b, (uint16_t)(start_ref & 0xffff));
    buf_u32(&b, d->xid);
    buf_put(&b, idx.p, idx.len);
  } else {
    buf_u32(&b, (uint32_t)(start_ref >> 16));
    buf_u32(&b, nlink);
    buf_u16(&b, (uint16_t)size);
    buf_u16(&b, (uint16_t)(start_ref & 0xffff));
    buf_u32(&b, parent);
  }
  d->iref = ms_ref(&itab);
  ms_write(&itab, b.p, b.len);
  free(b.p);
  free(l.p);
  free(idx.p);
}

static void set_parents(node_t *d, uint32_t *parent_of) {
  for (uint32_t i = 0; i < d->nkids; i++)
    if (S_ISDIR(d->kids[i]->mode)) {
      parent_of[d->kids[i]->ino] = d->ino;
      set_parents(d->kids[i], parent_of);
    }
}

/* ---------------------------------------------------------------- xattr table */

static uint64_t write_xattrs(void) {
  ms_t kv = {0};
  map_t values = {0};
  buf_t table = {0};
  for (size_t s = 0; s < nxsets; s++) {
    const uint8_t *p = xsets[s].p;
    uint32_t count = get_le32(p), size = 0;
    p += 4;
    uint64_t ref = ms_ref(&kv);
    for (uint32_t i = 0; i < count; i++) {
      uint16_t type = (uint16_t)(p[0] | p[1] << 8), nl = (uint16_t)(p[2] | p[3] << 8);
      const uint8_t *name = p + 4;
      uint32_t vl = get_le32(p + 4 + nl);
      const uint8_t *val = p + 8 + nl;
      p = val + vl;
      uint8_t d[32];
      sha_once(val, vl, d);
      void *seen = vl > 8 ? map_get(&values, d) : NULL;
      buf_t e = {0};
      buf_u16(&e, (uint16_t)(type | (seen ? 0x100 : 0)));
      buf_u16(&e, nl);
      buf_put(&e, name, nl);
      ms_write(&kv, e.p, e.len);
      size += (uint32_t)e.len;
      e.len = 0;
      if (seen) {
        buf_u32(&e, 8);
        buf_u64(&e, (uint64_t)(uintptr_t)seen - 1);
      } else {
        if (vl > 8) map_put(&values, d, (void *)(uintptr_t)(ms_ref(&kv) + 1));
        buf_u32(&e, vl);
        buf_put(&e, val, vl);
      }
      ms_write(&kv, e.p, e.len);
      size += (uint32_t)e.len;
      free(e.p);
    }
    buf_u64(&table, ref);
    buf_u32(&table, count);
    buf_u32(&table, size);
  }
  ms_flush(&kv);
  uint64_t kv_start = wpos;
  out_write(kv.out.p, kv.out.len);
  /* The id table's blocks, then the header and their positions. */
  ms_t m = {0};
  ms_write(&m, table.p, table.len);
  ms_flush(&m);
  uint64_t base = wpos;
  out_write(m.out.p, m.out.len);
  uint64_t hdr = wpos;
  buf_t h = {0};
  buf_u64(&h, kv_start);
  buf_u32(&h, (uint32_t)nxsets);
  buf_u32(&h, 0);
  for (uint64_t i = 0; i < m.nblocks; i++) buf_u64(&h, base + m.starts[i]);
  out_write(h.p, h.len);
  free(h.p);
  free(m.out.p);
  free(m.starts);
  free(kv.out.p);
  free(kv.starts);
  free(table.p);
  return hdr;
}

/* ---------------------------------------------------------------- layers (--layer) */

/* The tree as overlayfs shows the layers (top first) mounted read-only, without mounting them:
 * no mount session, no lookups through the overlay, and a layer that never changes
 * (--stable-layer: the store's snapshots) is listed once and then read from its listing memo.
 * The rules are the kernel's for lower layers: a name is the topmost layer's entry; a whiteout
 * (a 0/0 character device) hides it; a non-folder ends the stack below it; folders merge down
 * the stack until an opaque one (OVL.opaque = "y", included) or a non-folder; a merged folder has
 * its topmost folder's attributes and xattrs; the overlay marks themselves are not in the view.
 * The roots of all layers merge. Redirects, metacopy and xattr whiteouts are refused (scan_error). */
static int is_whiteout(const node_t *n) { return S_ISCHR(n->mode) && n->rdev == 0; }

static node_t *merge_dirs(node_t **stack, size_t ns) {
  node_t *m = xmalloc(sizeof *m);
  *m = *stack[0];
  m->kids = NULL;
  m->nkids = m->ndirs = 0;
  for (size_t i = 1; i < ns && !m->scan_error; i++) m->scan_error = stack[i]->scan_error;
  size_t *at = xcalloc(ns, sizeof *at), cap = 0;
  node_t **cands = xmalloc(ns * sizeof *cands);
  for (;;) {
    const char *least = NULL;
    for (size_t i = 0; i < ns; i++)
      if (at[i] < stack[i]->nkids && (!least || strcmp(stack[i]->kids[at[i]]->name, least) < 0)) least = stack[i]->kids[at[i]]->name;
    if (!least) break;
    size_t nc = 0;
    for (size_t i = 0; i < ns; i++)
      if (at[i] < stack[i]->nkids && !strcmp(stack[i]->kids[at[i]]->name, least)) cands[nc++] = stack[i]->kids[at[i]++];
    node_t *top = cands[0], *entry = top;
    if (is_whiteout(top)) continue;
    if (S_ISDIR(top->mode) && !top->scan_error) {
      size_t k = 1;
      if (!top->opaque)
        while (k < nc && S_ISDIR(cands[k]->mode) && !cands[k]->scan_error) {
          if (cands[k++]->opaque) break;
        }
      entry = merge_dirs(cands, k);
    }
    if (m->nkids == cap) {
      cap = cap ? cap * 2 : 16;
      m->kids = xrealloc(m->kids, cap * sizeof *m->kids);
    }
    m->kids[m->nkids++] = entry;
  }
  free(at);
  free(cands);
  return m;
}

/* The listing memo of a stable layer: DIR/listings/xx/KEY, KEY over the layer's path and its root
 * folder's identity (inode, change and birth times: a snapshot made again under the same name is
 * another folder) and the options the digests depend on. It holds every entry as listed (stat,
 * link target, xattrs, opaque mark) and the content digest of each file whose digest this run
 * computed; sealed by a sha256 like the digest memo. A damaged one is ignored, warned and written
 * again. */
#define LIST_MAGIC "OSQFL1\0\0"
static char **layer_memo_path; /* by layer; NULL: not remembered (not stable, no cache) */
static int *layer_memo_loaded;

static char *listing_path(size_t i) {
  struct statx sx;
  if (statx(AT_FDCWD, opt.layers[i], AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, &sx) != 0) return NULL;
  buf_t k = {0};
  buf_put(&k, opt.layers[i], strlen(opt.layers[i]) + 1);
  buf_put(&k, opt.ovl_prefix, strlen(opt.ovl_prefix) + 1);
  buf_u64(&k, sx.stx_ino);
  buf_u64(&k, (uint64_t)ts_ns(sx.stx_ctime));
  buf_u64(&k, sx.stx_mask & STATX_BTIME ? (uint64_t)ts_ns(sx.stx_btime) : 0);
  char hex[65];
  cache_key("listing", k.p, k.len, hex);
  free(k.p);
  return cache_path("listings", hex, 0);
}

static void list_put(buf_t *b, const node_t *n) {
  buf_u32(b, n->mode);
  buf_u32(b, n->uid);
  buf_u32(b, n->gid);
  buf_u64(b, (uint64_t)n->mtime_raw);
  buf_u64(b, n->size);
  buf_u32(b, n->rdev);
  buf_u64(b, n->st_nlink);
  buf_u64(b, n->sino);
  int known = S_ISREG(n->mode) && n->digest_known;
  uint8_t flags = (uint8_t)((n->maybe_sparse ? 1 : 0) | (n->opaque ? 2 : 0) | (known ? 4 : 0));
  buf_put(b, &flags, 1);
  if (known) buf_put(b, n->digest, 32);
  buf_u16(b, (uint16_t)strlen(n->name));
  buf_put(b, n->name, strlen(n->name));
  size_t tl = n->target ? strlen(n->target) : 0;
  buf_u32(b, (uint32_t)tl);
  buf_put(b, n->target, tl);
  buf_u32(b, (uint32_t)n->xraw.len);
  buf_put(b, n->xraw.p, n->xraw.len);
  size_t sl = n->xskip ? strlen(n->xskip) : 0;
  buf_u16(b, (uint16_t)sl);
  buf_put(b, n->xskip, sl);
  buf_u32(b, n->nkids);
  for (uint32_t i = 0; i < n->nkids; i++) list_put(b, n->kids[i]);
}

typedef struct {
  const uint8_t *p, *end;
  int bad;
} reader_t;
static const uint8_t *rd(reader_t *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *at = r->p;
  r->p += n;
  return at;
}
static uint64_t rd64(reader_t *r) {
  const uint8_t *p = rd(r, 8);
  return p ? get_le64(p) : 0;
}
static uint32_t rd32(reader_t *r) {
  const uint8_t *p = rd(r, 4);
  return p ? get_le32(p) : 0;
}
static uint16_t rd16(reader_t *r) {
  const uint8_t *p = rd(r, 2);
  return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}
static char *rd_str(reader_t *r, size_t n) {
  const uint8_t *p = rd(r, n);
  char *s = xmalloc(n + 1);
  if (p) memcpy(s, p, n);
  s[n] = 0;
  return s;
}

/* One entry (and its folder's entries) of a listing memo, below parent (NULL: the root). */
static node_t *list_get(reader_t *r, const node_t *parent, const char *root, uint32_t layer, int depth) {
  node_t *n = xcalloc(1, sizeof *n);
  n->mode = rd32(r);
  n->uid = rd32(r);
  n->gid = rd32(r);
  n->mtime_raw = (int64_t)rd64(r);
  n->mtime = clamp_time(n->mtime_raw);
  n->size = rd64(r);
  n->rdev = rd32(r);
  n->st_nlink = rd64(r);
  n->sino = rd64(r);
  const uint8_t *flags = rd(r, 1);
  uint8_t f = flags ? *flags : 0;
  n->maybe_sparse = f & 1;
  n->opaque = (f & 2) != 0;
  if (f & 4) {
    const uint8_t *d = rd(r, 32);
    if (d) memcpy(n->digest, d, 32), n->digest_known = 1;
  }
  n->name = rd_str(r, rd16(r));
  size_t tl = rd32(r);
  if (S_ISLNK(n->mode)) n->target = rd_str(r, tl);
  else rd(r, tl);
  size_t xl = rd32(r);
  const uint8_t *x = rd(r, xl);
  if (x && xl) buf_put(&n->xraw, x, xl);
  size_t sl = rd16(r);
  if (sl) n->xskip = rd_str(r, sl);
  n->nkids = rd32(r);
  n->dev = layer;
  n->layer = layer;
  n->listed = 1;
  if (parent) {
    size_t pl = strlen(parent->path);
    n->path = xmalloc(pl + strlen(n->name) + 2);
    sprintf(n->path, "%s/%s", parent->path, n->name);
    n->rel = n->path + strlen(root);
  } else {
    n->path = xstrdup(root);
    n->rel = n->path + strlen(n->path);
  }
  if (r->bad || depth > 4096 || (n->nkids && !S_ISDIR(n->mode)) || n->nkids > (size_t)(r->end - r->p)) {
    r->bad = 1;
    n->nkids = 0;
    return n;
  }
  n->kids = xcalloc(n->nkids ? n->nkids : 1, sizeof *n->kids);
  for (uint32_t i = 0; i < n->nkids && !r->bad; i++) n->kids[i] = list_get(r, n, root, layer, depth + 1);
  return n;
}

/* Layer i from its listing memo, or NULL (none, damaged: warned). */
static node_t *listing_load(size_t i) {
  const char *path = layer_memo_path[i];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct statx sx;
  uint8_t *p = NULL;
  const char *why = NULL;
  uint64_t size = 0;
  if (fd_statx(fd, &sx) != 0) why = "unreadable";
  else if ((size = sx.stx_size) < 48 || size > (1ull << 34)) why = "bad size";
  if (!why) {
    p = xmalloc(size);
    if (pread_full(fd, p, size, 0) != (ssize_t)size) why = "truncated";
  }
  if (!why && (memcmp(p, LIST_MAGIC, 8) != 0 || get_le64(p + 8) != size - 48)) why = "bad header";
  if (!why) {
    uint8_t d[32];
    sha_once(p, size - 32, d);
    if (memcmp(d, p + size - 32, 32) != 0) why = "digest mismatch";
  }
  node_t *root = NULL;
  if (!why) {
    reader_t r = {p + 16, p + size - 32, 0};
    root = list_get(&r, NULL, opt.layers[i], (uint32_t)i, 0);
    if (r.bad || r.p != r.end || !S_ISDIR(root->mode)) why = "bad entries", root = NULL;
  }
  if (!why) touch_used(fd, &sx);
  close(fd);
  free(p);
  if (why) {
    warn("block cache: damaged listing memo %s (%s): ignored, the layer is listed again", path, why);
    unlink(path);
  }
  return root;
}

static void listing_save(size_t i, const node_t *root) {
  buf_t b = {0};
  buf_put(&b, LIST_MAGIC, 8);
  buf_u64(&b, 0);
  list_put(&b, root);
  put_le64(b.p + 8, b.len - 16);
  cache_mkdirs(layer_memo_path[i]);
  store_sealed(layer_memo_path[i], &b, 3);
}

static node_t **layer_roots;

/* The merged tree of the layers: each listed (in parallel) or read from its memo. */
static node_t *scan_layers(void) {
  layer_roots = xcalloc(opt.nlayers, sizeof *layer_roots);
  layer_memo_path = xcalloc(opt.nlayers, sizeof *layer_memo_path);
  layer_memo_loaded = xcalloc(opt.nlayers, sizeof *layer_memo_loaded);
  for (size_t i = 0; i < opt.nlayers; i++) {
    if (opt.cache && opt.stable[i]) layer_memo_path[i] = listing_path(i);
    if (layer_memo_path[i]) layer_roots[i] = listing_load(i);
    layer_memo_loaded[i] = layer_roots[i] != NULL;
    if (!layer_roots[i]) layer_roots[i] = scan_tree(opt.layers[i], (uint32_t)i);
    if (layer_roots[i]->scan_error) die("%s", layer_roots[i]->scan_error); /* main checked it is a folder */
  }
  node_t *root = merge_dirs(layer_roots, opt.nlayers);
  scan_finish(root);
  return root;
}

/* A file of a listing memo whose digest it does not hold (it was hidden, or not read): its stat,
 * for the digest memo. */
static void stat_listed(node_t *n) {
  struct statx sx;
  if (statx(AT_FDCWD, n->path, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, &sx) != 0 || !S_ISREG(sx.stx_mode) ||
      sx.stx_size != n->size)
    die("%s: changed in a stable layer (its listing memo no longer matches)", n->path);
  memo_key_for(n, &sx);
}

/* After the digests: the files of the merged tree carry theirs (hardlinks: their group's), and the
 * stable layers listed this time get their memo. */
static void mark_digests(node_t *n) {
  if (S_ISREG(n->mode) && n->primary->digest_known && !n->digest_known) {
    memcpy(n->digest, n->primary->digest, 32);
    n->digest_known = 1;
  }
  for (uint32_t i = 0; i < n->nkids; i++) mark_digests(n->kids[i]);
}
static void save_listings(node_t *root) {
  mark_digests(root);
  for (size_t i = 0; i < opt.nlayers; i++)
    if (layer_memo_path[i] && !layer_memo_loaded[i]) listing_save(i, layer_roots[i]);
}

/* ---------------------------------------------------------------- main */

static void usage(int code) {
  fprintf(code ? stderr : stdout,
          "usage: " PROG " SOURCE OUTPUT | [--layer|--stable-layer DIR]... OUTPUT [--overlay-xattrs trusted|user] [--offset N] [--comp gzip|xz|zstd|lz4] [--level N]\n"
          "         [--block-size N] [--jobs N] [--clamp EPOCH] [--mkfs-time T] [--block-cache DIR]\n"
          "         [--progress-fd N] [--prefix TEXT] [--die-with-parent yes]\n");
  exit(code);
}

static uint64_t num(const char *flag, const char *v, uint64_t max) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || !*v || *end || x > max || *v == '-') {
    fprintf(stderr, PROG ": error: %s: bad value '%s'\n", flag, v);
    exit(2);
  }
  return x;
}

int main(int argc, char **argv) {
  signal(SIGTERM, on_fatal_signal);
  signal(SIGINT, on_fatal_signal);
  signal(SIGHUP, on_fatal_signal);
  const char *pos[2];
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage(0);
    if (a[0] == '-' && a[1] == '-') {
      if (i + 1 >= argc) {
        fprintf(stderr, PROG ": error: %s needs a value\n", a);
        exit(2);
      }
      const char *v = argv[++i];
      if (!strcmp(a, "--offset")) opt.offset = num(a, v, UINT64_MAX / 2);
      else if (!strcmp(a, "--comp")) {
        if (!strcmp(v, "gzip")) opt.comp = COMP_GZIP;
        else if (!strcmp(v, "xz")) opt.comp = COMP_XZ;
        else if (!strcmp(v, "zstd")) opt.comp = COMP_ZSTD;
        else if (!strcmp(v, "lz4")) opt.comp = COMP_LZ4;
        else {
          fprintf(stderr, PROG ": error: --comp: unknown compressor '%s' (gzip, xz, zstd, lz4)\n", v);
          exit(2);
        }
      } else if (!strcmp(a, "--level")) opt.level = (int)num(a, v, 22);
      else if (!strcmp(a, "--block-size")) {
        uint64_t bs = num(a, v, 1 << 20);
        int log = 0;
        while ((1ull << log) < bs) log++;
        if (bs < 4096 || (1ull << log) != bs) {
          fprintf(stderr, PROG ": error: --block-size: must be a power of two from 4096 to 1048576\n");
          exit(2);
        }
        opt.block_size = (uint32_t)bs;
        opt.block_log = (uint32_t)log;
      } else if (!strcmp(a, "--jobs")) opt.jobs = (int)num(a, v, 256);
      else if (!strcmp(a, "--clamp")) opt.clamp = (uint32_t)num(a, v, UINT32_MAX), opt.has_clamp = 1;
      else if (!strcmp(a, "--mkfs-time")) opt.mkfs_time = (uint32_t)num(a, v, UINT32_MAX), opt.has_mkfs_time = 1;
      else if (!strcmp(a, "--block-cache")) opt.cache = v;
      else if (!strcmp(a, "--progress-fd")) opt.progress_fd = (int)num(a, v, INT_MAX);
      else if (!strcmp(a, "--prefix")) opt.prefix = v;
      else if (!strcmp(a, "--die-with-parent")) {
        /* The caller's death (even SIGKILL) ends this write as a SIGTERM would (its cache temps
         * removed): no writer outlives a killed build. */
        if (strcmp(v, "yes") != 0) {
          fprintf(stderr, PROG ": error: --die-with-parent: only 'yes'\n");
          exit(2);
        }
        pid_t parent = getppid();
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) raise(SIGTERM);
      }
      else if (!strcmp(a, "--layer") || !strcmp(a, "--stable-layer")) {
        opt.layers = xrealloc(opt.layers, (opt.nlayers + 1) * sizeof *opt.layers);
        opt.stable = xrealloc(opt.stable, (opt.nlayers + 1) * sizeof *opt.stable);
        char *l = xstrdup(v);
        for (size_t n = strlen(l); n > 1 && l[n - 1] == '/'; n--) l[n - 1] = 0;
        opt.layers[opt.nlayers] = l;
        opt.stable[opt.nlayers++] = a[2] == 's';
      } else if (!strcmp(a, "--overlay-xattrs")) {
        if (!strcmp(v, "trusted")) opt.ovl_prefix = "trusted.overlay.";
        else if (!strcmp(v, "user")) opt.ovl_prefix = "user.overlay.";
        else {
          fprintf(stderr, PROG ": error: --overlay-xattrs: 'trusted' or 'user', not '%s'\n", v);
          exit(2);
        }
      } else {
        fprintf(stderr, PROG ": error: unknown option %s\n", a);
        exit(2);
      }
    } else if (npos < 2) {
      pos[npos++] = a;
    } else {
      usage(2);
    }
  }
  if (npos != (opt.nlayers ? 1 : 2)) usage(2);
  if (!opt.nlayers) {
    /* SOURCE without trailing slashes: "dir" and "dir/" are the same tree. */
    char *source = xstrdup(pos[0]);
    for (size_t l = strlen(source); l > 1 && source[l - 1] == '/'; l--) source[l - 1] = 0;
    opt.source = source;
  }
  opt.output = pos[npos - 1];
  int default_level = opt.comp == COMP_GZIP ? 9 : opt.comp == COMP_XZ ? 6 : opt.comp == COMP_ZSTD ? 15 : 0;
  if (opt.level < 0) opt.level = default_level;
  if (opt.prefix && (strlen(opt.prefix) > opt.offset || opt.offset > 65536)) {
    fprintf(stderr, PROG ": error: --prefix: longer than --offset (or --offset over 65536)\n");
    exit(2);
  }
  if ((opt.comp == COMP_GZIP && (opt.level < 1 || opt.level > 9)) || (opt.comp == COMP_XZ && opt.level > 9) ||
      (opt.comp == COMP_ZSTD && (opt.level < 1 || opt.level > ZSTD_maxCLevel())) || (opt.comp == COMP_LZ4 && opt.level > LZ4HC_CLEVEL_MAX)) {
    fprintf(stderr, PROG ": error: --level %d is out of range for %s\n", opt.level, comp_name(opt.comp));
    exit(2);
  }
  if (!opt.jobs) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    opt.jobs = n > 0 ? (int)n : 1;
  }
  if (!opt.has_mkfs_time) opt.mkfs_time = opt.has_clamp ? opt.clamp : 0;
  if (opt.cache && mkdir(opt.cache, 0755) != 0 && errno != EEXIST) die("--block-cache %s: %s", opt.cache, strerror(errno));
  {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    start_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  }
  if (opt.cache) memo_load();

  for (size_t i = 0; i < (opt.nlayers ? opt.nlayers : 1); i++) {
    const char *dir = opt.nlayers ? opt.layers[i] : opt.source;
    struct stat rst;
    if (stat(dir, &rst) != 0) die("%s: %s", dir, strerror(errno));
    if (!S_ISDIR(rst.st_mode)) die("%s: not a directory", dir);
  }

  (void)comp_version();
  pool_start(opt.jobs);
  zctx = xcalloc((size_t)opt.jobs + 1, sizeof *zctx); /* workers, then the main thread */
  deflaters = xcalloc((size_t)opt.jobs + 1, sizeof *deflaters);
  if (opt.comp == COMP_ZSTD)
    for (int i = 0; i <= opt.jobs; i++) zctx[i] = ZSTD_createCCtx();

  /* 1. The tree, and the inode order. */
  progress("scan", 1);
  node_t *root = opt.nlayers ? scan_layers() : scan_tree(opt.source, 0);
  if (!opt.nlayers) scan_finish(root);
  qsort(ids, nids, sizeof *ids, cmp_u32);
  if (nids > 65535) die("too many distinct owners (%zu; squashfs stores at most 65535)", nids);
  make_order(root);

  /* 2. Content digests (parallel over files), then distinct contents in walk order. */
  for (size_t i = 0; i < norder; i++)
    if (S_ISREG(order[i]->mode)) nregs++;
  regs = xcalloc(nregs, sizeof *regs);
  nregs = 0;
  for (size_t i = 0; i < norder; i++)
    if (S_ISREG(order[i]->mode)) regs[nregs++] = order[i];
  tbuf = xcalloc((size_t)opt.jobs + 1, sizeof *tbuf);
  for (int i = 0; i <= opt.jobs; i++) tbuf[i] = xmalloc(opt.block_size);
  progress("hash", 1);
  for (size_t i = 0; i < nregs; i++) {
    node_t *n = regs[i];
    if (n->listed && n->digest_known) n->memo_hit = 1; /* a stable layer's listing memo */
    else if (n->listed) stat_listed(n);
    if (opt.cache && !n->memo_hit) n->memo_hit = memo_get(n->mkey, n->digest);
  }
  pool_run(hash_task, NULL, nregs);
  for (size_t i = 0; i < nregs; i++) regs[i]->digest_known = !regs[i]->error;
  for (size_t i = 0; i < nregs; i++)
    if (regs[i]->memo_ok) memo_put(regs[i]->mkey, regs[i]->digest);
  map_t cmap = {0};
  contents = xcalloc(nregs, sizeof *contents);
  for (size_t i = 0; i < nregs; i++) {
    node_t *n = regs[i];
    if (n->error) die("%s: %s", n->path, n->error);
    content_t *c = map_get(&cmap, n->digest);
    if (!c) {
      c = xcalloc(1, sizeof *c);
      memcpy(c->digest, n->digest, 32);
      c->size = n->size;
      c->nblocks = n->size / opt.block_size;
      c->tail = (uint32_t)(n->size % opt.block_size);
      c->src = n;
      c->cfd = -1;
      map_put(&cmap, c->digest, c);
      contents[ncontents++] = c;
      prog.bytes_total += n->size;
    }
    n->content = c;
  }
  prog.files_total = ncontents;
  for (int i = 0; i <= opt.jobs; i++) free(tbuf[i]);

  /* 3. The data region. */
  outfd = open(opt.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (outfd < 0) die("%s: %s", opt.output, strerror(errno));
  if (ftruncate(outfd, 0) != 0) die("%s: %s", opt.output, strerror(errno));
  {
    uint8_t *z = xcalloc(1, 65536);
    if (opt.prefix) memcpy(z, opt.prefix, strlen(opt.prefix)); /* --prefix: at most --offset bytes, checked */
    for (uint64_t o = 0; o < opt.offset; o += 65536, memset(z, 0, 65536))
      if (pwrite_full(outfd, z, opt.offset - o < 65536 ? opt.offset - o : 65536, o) != 0) die("write %s: %s", opt.output, strerror(errno));
    free(z);
  }
  wpos = obuf_pos = 96;
  int comp_opts = 0;
  {
    buf_t co = {0};
    if (opt.comp == COMP_LZ4) {
      buf_u32(&co, 1);
      buf_u32(&co, opt.level > 0 ? 1 : 0);
    } else if (opt.comp == COMP_GZIP && opt.level != 9) {
      buf_u32(&co, (uint32_t)opt.level);
      buf_u16(&co, 15);
      buf_u16(&co, 0);
    } else if (opt.comp == COMP_ZSTD && opt.level != 15) {
      buf_u32(&co, (uint32_t)opt.level);
    }
    if (co.len) {
      uint8_t h[2] = {(uint8_t)co.len, 0x80};
      out_write(h, 2);
      out_write(co.p, co.len);
      comp_opts = 1;
    }
    free(co.p);
  }
  /* Each batch: 8 blocks per worker, at most 16 MiB of input, at least 2 per worker. */
  batch_max = (size_t)opt.jobs * 8;
  if (batch_max * opt.block_size > (16u << 20)) batch_max = (16u << 20) / opt.block_size;
  if (batch_max < (size_t)opt.jobs * 2) batch_max = (size_t)opt.jobs * 2;
  for (int k = 0; k < 2; k++) {
    batches[k].jobs = xcalloc(batch_max, sizeof(job_t));
    for (size_t i = 0; i < batch_max; i++) {
      batches[k].jobs[i].in = xmalloc(opt.block_size);
      batches[k].jobs[i].out = xmalloc(opt.block_size);
    }
  }
  write_file_blocks();
  write_fragments();
  progress("tables", 1);
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < batch_max; i++) {
      free(batches[k].jobs[i].in);
      free(batches[k].jobs[i].out);
    }
    free(batches[k].jobs);
  }

  /* 4. Inodes and directories, in the order fixed above. */
  uint32_t *parent_of = xcalloc((size_t)ninodes + 2, sizeof *parent_of);
  parent_of[root->ino] = ninodes + 1;
  set_parents(root, parent_of);
  uint64_t *irefs = xcalloc((size_t)ninodes + 1, sizeof *irefs);
  for (size_t i = 0; i < norder; i++) {
    node_t *n = order[i];
    if (S_ISDIR(n->mode)) write_dir(n, parent_of[n->ino]);
    else write_inode(n);
    irefs[n->ino] = n->iref;
  }
  ms_flush(&itab);
  ms_flush(&dtab);

  /* 5. The tables, contiguous, in the order the kernel checks. */
  uint64_t inode_table = wpos;
  out_write(itab.out.p, itab.out.len);
  uint64_t dir_table = wpos;
  out_write(dtab.out.p, dtab.out.len);
  uint64_t frag_table = wpos;
  if (nfrags) {
    buf_t ft = {0};
    for (uint32_t i = 0; i < nfrags; i++) {
      buf_u64(&ft, frags[i].start);
      buf_u32(&ft, frags[i].size);
      buf_u32(&ft, 0);
    }
    frag_table = write_table(ft.p, ft.len);
    free(ft.p);
  }
  buf_t et = {0};
  for (uint32_t i = 1; i <= ninodes; i++) buf_u64(&et, irefs[i]);
  uint64_t export_table = write_table(et.p, et.len);
  free(et.p);
  buf_t it = {0};
  for (size_t i = 0; i < nids; i++) buf_u32(&it, ids[i]);
  uint64_t id_table = write_table(it.p, it.len);
  free(it.p);
  uint64_t xattr_table = nxsets ? write_xattrs() : UINT64_MAX;
  uint64_t bytes_used = wpos;
  out_flush();

  /* 6. The super block, the padding. */
  buf_t sb = {0};
  buf_u32(&sb, 0x73717368);
  buf_u32(&sb, ninodes);
  buf_u32(&sb, opt.mkfs_time);
  buf_u32(&sb, opt.block_size);
  buf_u32(&sb, nfrags);
  buf_u16(&sb, (uint16_t)opt.comp);
  buf_u16(&sb, (uint16_t)opt.block_log);
  buf_u16(&sb, (uint16_t)(0x0040 | 0x0080 | (nxsets ? 0 : 0x0200) | (comp_opts ? 0x0400 : 0)));
  buf_u16(&sb, (uint16_t)nids);
  buf_u16(&sb, 4);
  buf_u16(&sb, 0);
  buf_u64(&sb, root->iref);
  buf_u64(&sb, bytes_used);
  buf_u64(&sb, id_table);
  buf_u64(&sb, xattr_table);
  buf_u64(&sb, inode_table);
  buf_u64(&sb, dir_table);
  buf_u64(&sb, frag_table);
  buf_u64(&sb, export_table);
  if (pwrite_full(outfd, sb.p, sb.len, opt.offset) != 0) die("write %s: %s", opt.output, strerror(errno));
  free(sb.p);
  uint64_t total = (bytes_used + 4095) & ~(uint64_t)4095;
  if (ftruncate(outfd, (off_t)(opt.offset + total)) != 0) die("%s: %s", opt.output, strerror(errno));
  if (fsync(outfd) != 0 || close(outfd) != 0) die("%s: %s", opt.output, strerror(errno));
  if (opt.nlayers) save_listings(root);
  memo_save();
  progress("done", 1);
  if (cache_damaged) warn("block cache: %llu damaged entries recomputed", (unsigned long long)cache_damaged);
  return 0;
}
