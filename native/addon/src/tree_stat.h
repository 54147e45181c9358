#ifndef ORCHESTRATOR_TREE_STAT_H
#define ORCHESTRATOR_TREE_STAT_H

#include <stddef.h>
#include <stdint.h>

#define TREE_STAT_PATH_MAX 8192

typedef struct {
  uint64_t hi, lo;
  uint64_t entries;
  /* The newest ctime of any entry, nanoseconds since the epoch. */
  int64_t newest_ctime_ns;
  /* Some entry's ctime is on a whole second (a file system with whole-second times). */
  int coarse;
} tree_stat_result;

/*
 * Walks `root` (a folder tree or a single entry; a final symlink is not followed). Returns 0, or
 * an errno value with *err_syscall naming the failed call.
 */
int tree_stat(const char *root, tree_stat_result *out, const char **err_syscall);

/* A symlink given as the root is followed (the link's own fields are hashed too). */
#define TREE_STAT_FOLLOW_ROOT 1
/* The root's own fields only, not the entries of a folder (enough to see names added or removed). */
#define TREE_STAT_SHALLOW 2

int tree_stat_ex(const char *root, int flags, tree_stat_result *out, const char **err_syscall);

/* Every entry of a tree with its stat fields, for the tree digest (src/graph/tree-digest.ts). */
#define TREE_LIST_FIELDS 11 /* mode, uid, gid, size, ino, dev, rdev, mtime s, mtime ns, ctime s, ctime ns */
typedef struct {
  size_t count, cap;
  char **paths; /* relative to the root: "." for the root itself, "a/b" below it */
  char **links; /* a symlink's target, NULL for other entries */
  double *nums; /* TREE_LIST_FIELDS per entry */
} tree_list;

/* Lists `root` (a final symlink is not followed) into *out. Returns 0 or an errno value. */
int tree_list_walk(const char *root, tree_list *out, const char **err_syscall);
void tree_list_free(tree_list *list);

#endif
