#ifndef ORCHESTRATOR_TREE_STAT_H
#define ORCHESTRATOR_TREE_STAT_H

#include <stdint.h>

#define TREE_STAT_PATH_MAX 8192

typedef struct {
  uint64_t hi, lo;
  uint64_t entries;
  /* The newest ctime of any entry, nanoseconds since the epoch. */
  int64_t newest_ctime_ns;
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

#endif
