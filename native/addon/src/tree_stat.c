/*
 * tree_stat: a signature of every entry's stat fields in a folder tree, for "is this tree exactly
 * as it was?" without reading any content. Each entry contributes its path relative to the root,
 * type and mode, owner, size, inode, device, rdev, link count, mtime and ctime (to the
 * nanosecond), in sorted name order; the walk never follows a symlink. A change to any entry
 * (content, mode, owner, times, a rename, an added or removed name) changes its ctime or its
 * parent folder's, so it changes the signature; ctime cannot be set from user space.
 *
 * The signature only lets a content digest be reused (src/freshness/stat-index.ts): it is never a
 * key. It is a 128-bit non-cryptographic hash, which is enough against accidental collisions;
 * nobody can choose the stat fields that go into it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tree_stat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define P1 0x9E3779B97F4A7C15ULL
#define P2 0xC2B2AE3D27D4EB4FULL

typedef struct {
  uint64_t h1, h2;
  uint64_t entries;
  int64_t newest_ctime_ns;
  int coarse;
  char path[TREE_STAT_PATH_MAX];
  size_t path_len;
  int err;
  const char *err_syscall;
  /* When listing: where each entry goes (tree_list_walk). */
  tree_list *list;
} walk_t;

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline void mix(walk_t *w, uint64_t v) {
  w->h1 = (w->h1 ^ v) * P1;
  w->h1 ^= w->h1 >> 29;
  w->h2 = rotl(w->h2 + v * P2, 31) * P1;
}

static void mix_bytes(walk_t *w, const char *s, size_t n) {
  mix(w, (uint64_t)n);
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, s, 8);
    mix(w, v);
    s += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t v = 0;
    memcpy(&v, s, n);
    mix(w, v);
  }
}

static void mix_stat(walk_t *w, const struct stat *st) {
  mix(w, (uint64_t)st->st_mode);
  mix(w, ((uint64_t)st->st_uid << 32) | (uint64_t)st->st_gid);
  mix(w, (uint64_t)st->st_size);
  mix(w, (uint64_t)st->st_ino);
  mix(w, (uint64_t)st->st_dev);
  mix(w, (uint64_t)st->st_rdev);
  mix(w, (uint64_t)st->st_nlink);
  mix(w, (uint64_t)st->st_mtim.tv_sec);
  mix(w, (uint64_t)st->st_mtim.tv_nsec);
  mix(w, (uint64_t)st->st_ctim.tv_sec);
  mix(w, (uint64_t)st->st_ctim.tv_nsec);
  int64_t c = (int64_t)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
  if (c > w->newest_ctime_ns) w->newest_ctime_ns = c;
  if (st->st_ctim.tv_nsec == 0) w->coarse = 1;
  w->entries++;
}

static int fail(walk_t *w, int err, const char *syscall_name);

/* Appends the entry at w->path (its stat, and its link target read from dirfd/name). */
static int list_entry(walk_t *w, const struct stat *st, int dirfd, const char *name) {
  tree_list *l = w->list;
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 256;
    char **paths = realloc(l->paths, cap * sizeof *paths);
    if (paths != NULL) l->paths = paths;
    char **links = realloc(l->links, cap * sizeof *links);
    if (links != NULL) l->links = links;
    double *nums = realloc(l->nums, cap * TREE_LIST_FIELDS * sizeof *nums);
    if (nums != NULL) l->nums = nums;
    if (paths == NULL || links == NULL || nums == NULL) return fail(w, ENOMEM, "realloc");
    l->cap = cap;
  }
  /* "./a/b" is listed as "a/b"; the root stays ".". */
  const char *rel = w->path_len > 2 ? w->path + 2 : w->path;
  char *path = strdup(rel);
  if (path == NULL) return fail(w, ENOMEM, "strdup");
  char *link = NULL;
  if (S_ISLNK(st->st_mode)) {
    size_t size = (size_t)st->st_size + 1 > 256 ? (size_t)st->st_size + 1 : 256;
    link = malloc(size);
    ssize_t n = link == NULL ? -1 : readlinkat(dirfd, name, link, size - 1);
    if (n < 0) {
      int err = link == NULL ? ENOMEM : errno;
      free(link);
      free(path);
      return fail(w, err, "readlinkat");
    }
    link[n] = 0;
  }
  double *v = l->nums + l->count * TREE_LIST_FIELDS;
  v[0] = (double)st->st_mode;
  v[1] = (double)st->st_uid;
  v[2] = (double)st->st_gid;
  v[3] = (double)st->st_size;
  v[4] = (double)st->st_ino;
  v[5] = (double)st->st_dev;
  v[6] = (double)st->st_rdev;
  v[7] = (double)st->st_mtim.tv_sec;
  v[8] = (double)st->st_mtim.tv_nsec;
  v[9] = (double)st->st_ctim.tv_sec;
  v[10] = (double)st->st_ctim.tv_nsec;
  l->paths[l->count] = path;
  l->links[l->count] = link;
  l->count++;
  return 0;
}

static int fail(walk_t *w, int err, const char *syscall_name) {
  if (w->err == 0) {
    w->err = err;
    w->err_syscall = syscall_name;
  }
  return -1;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Walks the folder open at `fd` (which it closes); w->path holds its relative path. */
static int walk_dir(walk_t *w, int fd) {
  DIR *dir = fdopendir(fd);
  if (dir == NULL) {
    close(fd);
    return fail(w, errno, "fdopendir");
  }
  char **names = NULL;
  size_t count = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  errno = 0;
  while ((de = readdir(dir)) != NULL) {
    if (de->d_name[0] == '.' && (de->d_name[1] == 0 || (de->d_name[1] == '.' && de->d_name[2] == 0))) continue;
    if (count == cap) {
      cap = cap ? cap * 2 : 16;
      char **grown = realloc(names, cap * sizeof *names);
      if (grown == NULL) {
        rc = fail(w, ENOMEM, "realloc");
        break;
      }
      names = grown;
    }
    names[count] = strdup(de->d_name);
    if (names[count] == NULL) {
      rc = fail(w, ENOMEM, "strdup");
      break;
    }
    count++;
    errno = 0;
  }
  if (rc == 0 && errno != 0) rc = fail(w, errno, "readdir");
  if (rc == 0) qsort(names, count, sizeof *names, by_name);
  size_t base_len = w->path_len;
  for (size_t i = 0; rc == 0 && i < count; i++) {
    size_t n = strlen(names[i]);
    if (base_len + 1 + n + 1 > sizeof w->path) {
      rc = fail(w, ENAMETOOLONG, "fstatat");
      break;
    }
    w->path[base_len] = '/';
    memcpy(w->path + base_len + 1, names[i], n + 1);
    w->path_len = base_len + 1 + n;
    struct stat st;
    if (fstatat(dirfd(dir), names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
      rc = fail(w, errno, "fstatat");
      break;
    }
    mix_bytes(w, w->path, w->path_len);
    mix_stat(w, &st);
    if (w->list != NULL && (rc = list_entry(w, &st, dirfd(dir), names[i])) != 0) break;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd(dir), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        rc = fail(w, errno, "openat");
        break;
      }
      rc = walk_dir(w, sub);
    }
  }
  w->path_len = base_len;
  w->path[base_len] = 0;
  for (size_t i = 0; i < count; i++) free(names[i]);
  free(names);
  closedir(dir);
  return rc;
}

/* A walk from the root ("."), listing into `list` when given. */
static walk_t *walk_new(tree_list *list) {
  walk_t *w = calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  w->h1 = 0x243F6A8885A308D3ULL;
  w->h2 = 0x13198A2E03707344ULL;
  w->newest_ctime_ns = INT64_MIN;
  w->path[0] = '.';
  w->path_len = 1;
  w->list = list;
  return w;
}

/* Walks from `root`: the signature into `out` when given, every entry into `list` when given. */
static int walk_root(const char *root, int flags, tree_list *list, tree_stat_result *out, const char **err_syscall) {
  walk_t *w = walk_new(list);
  if (w == NULL) {
    *err_syscall = "calloc";
    return ENOMEM;
  }
  int err = 0;
  struct stat st;
  if (lstat(root, &st) != 0) {
    err = errno;
    *err_syscall = "lstat";
  } else {
    mix_bytes(w, w->path, w->path_len);
    mix_stat(w, &st);
    /* The root's link target, if it is one, is read by its full path. */
    if (list != NULL && list_entry(w, &st, AT_FDCWD, root) != 0) {
      err = w->err;
      *err_syscall = w->err_syscall;
    } else if (S_ISLNK(st.st_mode) && (flags & TREE_STAT_FOLLOW_ROOT)) {
      /* The link and what it points at now: a dangling link is a state too, not an error. */
      if (stat(root, &st) == 0) {
        mix(w, 1);
        mix_stat(w, &st);
      } else if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
        mix(w, 2);
        st.st_mode = 0;
      } else {
        err = errno;
        *err_syscall = "stat";
      }
    }
    if (err == 0 && S_ISDIR(st.st_mode) && !(flags & TREE_STAT_SHALLOW)) {
      int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | ((flags & TREE_STAT_FOLLOW_ROOT) ? 0 : O_NOFOLLOW));
      if (fd < 0) {
        err = errno;
        *err_syscall = "open";
      } else if (walk_dir(w, fd) != 0) {
        err = w->err;
        *err_syscall = w->err_syscall;
      }
    }
  }
  if (err == 0 && out != NULL) {
    /* A final avalanche, so that nearby inputs give unrelated-looking signatures. */
    uint64_t a = w->h1 ^ (w->h2 >> 31), b = w->h2 ^ (w->h1 >> 33);
    a *= P2;
    a ^= a >> 32;
    b *= P1;
    b ^= b >> 29;
    out->hi = a;
    out->lo = b;
    out->entries = w->entries;
    out->newest_ctime_ns = w->newest_ctime_ns;
    out->coarse = w->coarse;
  }
  free(w);
  if (err != 0 && list != NULL) tree_list_free(list);
  return err;
}

int tree_stat_ex(const char *root, int flags, tree_stat_result *out, const char **err_syscall) { return walk_root(root, flags, NULL, out, err_syscall); }

int tree_stat(const char *root, tree_stat_result *out, const char **err_syscall) { return tree_stat_ex(root, 0, out, err_syscall); }

void tree_list_free(tree_list *list) {
  for (size_t i = 0; i < list->count; i++) {
    free(list->paths[i]);
    free(list->links[i]);
  }
  free(list->paths);
  free(list->links);
  free(list->nums);
  memset(list, 0, sizeof *list);
}

int tree_list_walk(const char *root, tree_list *out, const char **err_syscall) { return walk_root(root, 0, out, NULL, err_syscall); }
