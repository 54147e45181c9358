/*
 * starter: sets up a container session and execs its command.
 *
 * The argument vector is a program: namespace options first, then operations run in order, then
 * `--` and the command. The protocol is documented in native/README.md; src/runtime/starter.ts is
 * the only caller. The command's exit status is the starter's (a signal n gives 128+n); the
 * starter's own failures exit 255 with one line on stderr naming the syscall and the path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/loop.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define STARTER_FAIL 255

struct starter_mount_attr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};
#define STARTER_MOUNT_ATTR_RDONLY 0x00000001ULL
#define STARTER_AT_RECURSIVE 0x8000

static pid_t original_parent;

static void die(const char *fmt, ...) {
  int saved = errno;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  dprintf(2, "starter: %s: %s\n", msg, strerror(saved));
  _exit(STARTER_FAIL);
}

static void usage_die(const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  dprintf(2, "starter: %s\n", msg);
  _exit(STARTER_FAIL);
}

/* ---- small helpers ---------------------------------------------------------------------- */

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open %s", path);
  size_t len = strlen(text);
  if (write(fd, text, len) != (ssize_t)len) die("write %s", path);
  close(fd);
}

static int mkdir_p(const char *path, mode_t mode) {
  char buf[4096];
  if (strlen(path) >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(buf, path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
  return 0;
}

/* The file systems this session mounted itself (session tmpfs, --tmpfs, --overlay, --image):
 * the only places where a missing mount point may be created. A bind of a host folder is not one
 * of them: creating a mount point through it would create the path on the host. */
static dev_t own_devs[256];
static int n_own_devs = 0;

static void remember_own_mount(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0) die("stat %s", path);
  if (n_own_devs < (int)(sizeof own_devs / sizeof own_devs[0])) own_devs[n_own_devs++] = st.st_dev;
}

/* 1 when the deepest existing ancestor of `path` (symlinks followed, as mkdir would) is on a
 * file system this session mounted; 0 when it is on a host file system (a bind); -1 on error. */
static int creatable_in_session(const char *path, char *ancestor, size_t len) {
  snprintf(ancestor, len, "%s", path);
  struct stat st;
  for (;;) {
    if (stat(ancestor, &st) == 0) break;
    if (errno != ENOENT) return -1;
    char *slash = strrchr(ancestor, '/');
    if (!slash) return -1;
    if (slash == ancestor) slash[1] = 0;
    else *slash = 0;
  }
  for (int k = 0; k < n_own_devs; k++)
    if (own_devs[k] == st.st_dev) return 1;
  return 0;
}

/* Creates a mount point like `src` (a folder or an empty file) at dst when dst is missing, only
 * inside the session's own file systems (returns -1 with errno EXDEV otherwise). */
static int make_mount_point(const char *src, const char *dst) {
  struct stat st;
  if (lstat(dst, &st) == 0) return 0;
  char ancestor[4096];
  int inside = creatable_in_session(dst, ancestor, sizeof ancestor);
  if (inside < 0) return -1;
  if (inside == 0) {
    errno = EXDEV;
    return -1;
  }
  struct stat ss;
  int is_dir = 1;
  if (src && stat(src, &ss) == 0 && !S_ISDIR(ss.st_mode)) is_dir = 0;
  if (is_dir) return mkdir_p(dst, 0755);
  char parent[4096];
  snprintf(parent, sizeof parent, "%s", dst);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = 0;
    if (mkdir_p(parent, 0755) < 0) return -1;
  }
  int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

static int has_flag(const char *list, const char *flag) {
  if (!list || strcmp(list, "-") == 0) return 0;
  size_t n = strlen(flag);
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, flag, n) == 0) return 1;
    if (!end) break;
    p = end + 1;
  }
  return 0;
}

static int set_readonly(const char *path, int recursive) {
  struct starter_mount_attr attr = {STARTER_MOUNT_ATTR_RDONLY, 0, 0, 0};
  long r = syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? STARTER_AT_RECURSIVE : 0, &attr, sizeof attr);
  if (r == 0) return 0;
  if (errno != ENOSYS) return -1;
  /* Older kernels: remount the top mount only. */
  return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
}

/* ---- namespaces ------------------------------------------------------------------------- */

static void enter_user_namespace(uid_t uid, gid_t gid) {
  if (unshare(CLONE_NEWUSER) < 0) die("unshare user namespace");
  char map[64];
  write_file("/proc/self/setgroups", "deny");
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
  write_file("/proc/self/uid_map", map);
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
  write_file("/proc/self/gid_map", map);
}

/* 1 when this process runs in a user namespace other than the initial one: its uid_map is not the
 * single identity line "0 0 4294967295". */
static int in_child_user_namespace(void) {
  FILE *f = fopen("/proc/self/uid_map", "re");
  if (!f) return 0;
  unsigned long inside, outside, count;
  int n = fscanf(f, "%lu %lu %lu", &inside, &outside, &count);
  int more = n == 3 && fscanf(f, "%lu", &inside) == 1;
  fclose(f);
  return !(n == 3 && inside == 0 && outside == 0 && count == 4294967295UL && !more);
}

static volatile pid_t forward_to = 0;

static void forward_signal(int sig) {
  if (forward_to > 0) kill(forward_to, sig);
}

static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};

static void install_forwarding(pid_t child) {
  forward_to = child;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof FORWARDED / sizeof FORWARDED[0]; i++) sigaction(FORWARDED[i], &sa, NULL);
}

static int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return STARTER_FAIL;
}

/* Waits for `child`, reaping every other child too (pid 1 adopts orphans); returns its code. */
static int wait_for(pid_t child) {
  for (;;) {
    int status;
    pid_t p = waitpid(-1, &status, 0);
    if (p < 0) {
      if (errno == EINTR) continue;
      die("waitpid");
    }
    if (p == child) return status_code(status);
  }
}

static void die_with_parent(void) {
  pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(STARTER_FAIL);
}

/* ---- loop devices ----------------------------------------------------------------------- */

static int attach_loop(const char *file, unsigned long long offset, int readonly, char *devpath, size_t devlen) {
  int backing = open(file, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (backing < 0) die("open %s", file);
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) die("open /dev/loop-control");
  for (int attempt = 0; attempt < 64; attempt++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) die("ioctl LOOP_CTL_GET_FREE /dev/loop-control");
    snprintf(devpath, devlen, "/dev/loop%d", n);
    int dev = open(devpath, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (dev < 0 && errno == ENOENT) {
      if (mknod(devpath, S_IFBLK | 0660, makedev(7, n)) < 0 && errno != EEXIST) die("mknod %s", devpath);
      dev = open(devpath, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    }
    if (dev < 0) die("open %s", devpath);
    struct loop_config config;
    memset(&config, 0, sizeof config);
    config.fd = (uint32_t)backing;
    config.info.lo_offset = offset;
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR | (readonly ? LO_FLAGS_READ_ONLY : 0);
    snprintf((char *)config.info.lo_file_name, LO_NAME_SIZE, "%s", file);
    if (ioctl(dev, LOOP_CONFIGURE, &config) == 0) {
      close(ctl);
      close(backing);
      return dev;
    }
    if (errno == EINVAL || errno == ENOTTY) {
      /* No LOOP_CONFIGURE (before 5.8): the two-step way. */
      if (ioctl(dev, LOOP_SET_FD, backing) == 0) {
        if (ioctl(dev, LOOP_SET_STATUS64, &config.info) == 0) {
          close(ctl);
          close(backing);
          return dev;
        }
        int saved = errno;
        ioctl(dev, LOOP_CLR_FD, 0);
        errno = saved;
        die("ioctl LOOP_SET_STATUS64 %s", devpath);
      }
    }
    if (errno != EBUSY) die("ioctl LOOP_CONFIGURE %s", devpath);
    close(dev); /* someone else took it between GET_FREE and CONFIGURE: try the next one */
  }
  errno = EBUSY;
  die("attach loop device for %s", file);
  return -1;
}

static void mount_image(const char *type, const char *file, const char *offset_text, const char *dst, const char *flags) {
  char *end;
  errno = 0;
  unsigned long long offset = strtoull(offset_text, &end, 10);
  if (errno || *end) usage_die("--image: bad offset '%s'", offset_text);
  int readonly = !has_flag(flags, "rw");
  char dev[64];
  int fd = attach_loop(file, offset, readonly, dev, sizeof dev);
  unsigned long mflags = (readonly ? MS_RDONLY : 0) | MS_NODEV | (has_flag(flags, "nosuid") ? MS_NOSUID : 0);
  int r;
  if (strcmp(type, "squashfs") == 0) {
    r = mount(dev, dst, "squashfs", mflags | MS_RDONLY, NULL);
    if (r < 0) die("mount squashfs %s on %s", file, dst);
  } else if (strcmp(type, "ext3") == 0) {
    const char *data = readonly ? "noload" : NULL;
    r = mount(dev, dst, "ext3", mflags, data);
    if (r < 0 && errno == ENODEV) r = mount(dev, dst, "ext4", mflags, data);
    if (r < 0) die("mount ext3 %s on %s", file, dst);
  } else {
    usage_die("--image: unknown type '%s' (squashfs or ext3)", type);
  }
  close(fd); /* the mount holds the device now; autoclear frees it with the last unmount */
}

/* Mounts FILE (a squashfs or ext3 image at byte OFFSET) read-only at DST through FUSE
 * (squashfuse or fuse2fs), for a caller that is not root. The helper runs in the foreground as a
 * child of this session, with CAP_SYS_ADMIN of the session's user namespace kept across exec
 * (ambient), so libfuse mounts with mount(2) itself: no setuid fusermount. It dies with its parent
 * (PDEATHSIG; the command after exec, or pid 1 of a pid namespace), and the mount goes with the
 * mount namespace: nothing is left on the host. Waits until DST is a mount (its device changed). */
static int fuse_helpers = 0;

static void op_fuse(const char *type, const char *helper, const char *file, const char *offset_text, const char *dst) {
  char *end;
  errno = 0;
  unsigned long long offset = strtoull(offset_text, &end, 10);
  if (errno || *end) usage_die("--fuse: bad offset '%s'", offset_text);
  const char *prog = helper;
  char opts[128];
  if (strcmp(type, "squashfs") == 0) {
    snprintf(opts, sizeof opts, "ro,default_permissions,offset=%llu", offset);
  } else if (strcmp(type, "ext3") == 0) {
    snprintf(opts, sizeof opts, "ro,norecovery,offset=%llu", offset);
  } else {
    usage_die("--fuse: unknown type '%s' (squashfs or ext3)", type);
  }
  struct stat before;
  if (stat(dst, &before) < 0) die("stat %s", dst);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Its own session: a Ctrl-C at the container's terminal must not stop the file system. */
    setsid();
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0) die("capget");
    data[CAP_TO_INDEX(CAP_SYS_ADMIN)].inheritable |= CAP_TO_MASK(CAP_SYS_ADMIN);
    if (syscall(SYS_capset, &hdr, data) < 0) die("capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0) < 0) die("raise ambient CAP_SYS_ADMIN");
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) dup2(null, 0);
    execl(prog, prog, "-f", "-o", opts, file, dst, (char *)NULL);
    die("exec %s", prog);
  }
  fuse_helpers++;
  for (int k = 0; k < 20000; k++) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      errno = 0;
      usage_die("%s %s on %s: it ended before the mount was there (%s %d)", prog, file, dst, WIFEXITED(status) ? "exit status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    struct stat now;
    if (stat(dst, &now) == 0 && now.st_dev != before.st_dev) return;
    usleep(1000);
  }
  kill(pid, SIGKILL);
  errno = ETIMEDOUT;
  die("%s %s on %s", prog, file, dst);
}

/* ---- operations ------------------------------------------------------------------------- */

static void op_bind(const char *src, const char *dst, const char *flags) {
  int optional = has_flag(flags, "optional");
  struct stat st;
  if (stat(src, &st) < 0) {
    if (optional) return;
    die("bind %s", src);
  }
  if (has_flag(flags, "ifmissing")) {
    struct stat dt;
    if (lstat(dst, &dt) == 0) return;
  }
  if (has_flag(flags, "mkpoint") && make_mount_point(src, dst) < 0) {
    if (optional) return;
    if (errno == EXDEV) usage_die("create mount point %s: it would be created on the host (inside a bind of a host folder, or through a symlink out of the image); refusing", dst);
    die("create mount point %s", dst);
  }
  if (optional) {
    struct stat dt;
    if (stat(dst, &dt) < 0) return;
  }
  unsigned long mflags = MS_BIND | (has_flag(flags, "norec") ? 0 : MS_REC);
  if (mount(src, dst, NULL, mflags, NULL) < 0) die("mount bind %s on %s", src, dst);
  unsigned long extra = (has_flag(flags, "nosuid") ? MS_NOSUID : 0) | (has_flag(flags, "nodev") ? MS_NODEV : 0);
  if (has_flag(flags, "ro")) {
    if (set_readonly(dst, !has_flag(flags, "norec")) < 0) die("remount read-only %s", dst);
  }
  if (extra) {
    struct starter_mount_attr attr = {0, 0, 0, 0};
    if (extra & MS_NOSUID) attr.attr_set |= 0x00000002ULL; /* MOUNT_ATTR_NOSUID */
    if (extra & MS_NODEV) attr.attr_set |= 0x00000004ULL;  /* MOUNT_ATTR_NODEV */
    if (syscall(SYS_mount_setattr, AT_FDCWD, dst, STARTER_AT_RECURSIVE, &attr, sizeof attr) < 0) die("mount_setattr %s", dst);
  }
}

static char *overlay_escape(const char *path) {
  size_t n = strlen(path);
  char *out = malloc(2 * n + 1);
  if (!out) die("malloc");
  char *o = out;
  for (const char *p = path; *p; p++) {
    if (*p == ',' || *p == '\\') *o++ = '\\';
    *o++ = *p;
  }
  *o = 0;
  return out;
}

static int in_userns = 0;
static dev_t session_dev = 0;
static int have_session = 0;

/* After pivot_root: recursive binds of host folders that contain the session folder (/tmp, $HOME,
 * the cwd) carried copies of the session tmpfs into the container; detach them. */
static void detach_session_copies(void) {
  if (!have_session) return;
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return;
  char line[8192];
  char *paths[256];
  int n = 0;
  while (n < 256 && fgets(line, sizeof line, f)) {
    unsigned id, parent, major, minor;
    char root[4096], point[4096];
    if (sscanf(line, "%u %u %u:%u %4095s %4095s", &id, &parent, &major, &minor, root, point) != 6) continue;
    /* A copy of the whole session tmpfs has root "/"; binds of files from it (passwd) do not. */
    if (makedev(major, minor) != session_dev || strcmp(root, "/") != 0) continue;
    paths[n++] = strdup(point);
  }
  fclose(f);
  for (int k = 0; k < n; k++) {
    umount2(paths[k], MNT_DETACH); /* a copy inside an already detached one is gone: ignore errors */
    free(paths[k]);
  }
}

static void op_overlay(const char *dst, const char *lowers, const char *upper, const char *work) {
  char data[16384];
  size_t used = 0;
  /* lowers is colon-separated already; commas in it must be escaped for the option parser. */
  char *lower_esc = overlay_escape(lowers);
  used += (size_t)snprintf(data + used, sizeof data - used, "lowerdir=%s", lower_esc);
  free(lower_esc);
  int writable = strcmp(upper, "-") != 0;
  if (writable) {
    char *u = overlay_escape(upper);
    char *w = overlay_escape(work);
    used += (size_t)snprintf(data + used, sizeof data - used, ",upperdir=%s,workdir=%s", u, w);
    free(u);
    free(w);
  }
  if (in_userns) used += (size_t)snprintf(data + used, sizeof data - used, ",userxattr");
  if (used >= sizeof data) usage_die("--overlay: option string too long");
  if (mount("overlay", dst, "overlay", writable ? 0 : MS_RDONLY, data) < 0) die("mount overlay on %s", dst);
}

static void op_append_line(const char *src, const char *dst, const char *prefix, const char *line) {
  int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) die("open %s", dst);
  int found = 0;
  int last_newline = 1;
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in >= 0) {
    /* Copy the file and look for a line starting with prefix. */
    char buf[65536];
    size_t plen = strlen(prefix);
    char linebuf[4096];
    size_t llen = 0;
    int at_line_start = 1;
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
      if (write(out, buf, (size_t)n) != n) die("write %s", dst);
      for (ssize_t i = 0; i < n; i++) {
        char c = buf[i];
        if (at_line_start) llen = 0;
        at_line_start = 0;
        if (c == '\n') {
          at_line_start = 1;
          continue;
        }
        if (llen < sizeof linebuf) linebuf[llen] = c;
        llen++;
        if (llen == plen && strncmp(linebuf, prefix, plen) == 0) found = 1;
      }
      last_newline = buf[n - 1] == '\n';
    }
    if (n < 0) die("read %s", src);
    close(in);
  } else if (errno != ENOENT) {
    die("open %s", src);
  }
  if (!found) {
    if (!last_newline && write(out, "\n", 1) != 1) die("write %s", dst);
    size_t len = strlen(line);
    if (write(out, line, len) != (ssize_t)len || write(out, "\n", 1) != 1) die("write %s", dst);
  }
  if (close(out) < 0) die("close %s", dst);
}

static void op_pivot(const char *newroot) {
  if (chdir(newroot) < 0) die("chdir %s", newroot);
  if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root %s", newroot);
  if (umount2(".", MNT_DETACH) < 0) die("umount old root under %s", newroot);
  if (chdir("/") < 0) die("chdir /");
  detach_session_copies();
}

/* ---- main ------------------------------------------------------------------------------- */

struct plan {
  int argc;
  char **argv;
  int first_op;       /* index of the first operation */
  char **command;     /* after -- */
  char **fallback;    /* --fallback N ... */
  char **cwds;
  int ncwd;
  char **env;
  int nenv;
  int env_given;
  long uid, gid;
  char *groups;
  int no_new_privs;
};

static void need(int argc, int i, int n, const char *op) {
  if (i + n >= argc) usage_die("%s needs %d argument%s", op, n, n == 1 ? "" : "s");
}

/* Runs every operation in order; collects the final settings. */
static void run_operations(struct plan *p) {
  char **argv = p->argv;
  int argc = p->argc;
  for (int i = p->first_op; i < argc; i++) {
    const char *op = argv[i];
    if (strcmp(op, "--") == 0) {
      p->command = &argv[i + 1];
      if (!argv[i + 1]) usage_die("no command after --");
      return;
    } else if (strcmp(op, "--userns") == 0 || strcmp(op, "--pidns") == 0) {
      usage_die("%s must come before every operation", op);
    } else if (strcmp(op, "--tmpfs") == 0) {
      need(argc, i, 2, op);
      const char *dst = argv[i + 1], *data = argv[i + 2];
      if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, strcmp(data, "-") == 0 ? NULL : data) < 0) die("mount tmpfs on %s", dst);
      remember_own_mount(dst);
      i += 2;
    } else if (strcmp(op, "--session") == 0) {
      need(argc, i, 2, op);
      const char *dst = argv[i + 1], *data = argv[i + 2];
      if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, strcmp(data, "-") == 0 ? NULL : data) < 0) die("mount tmpfs on %s", dst);
      struct stat st;
      if (stat(dst, &st) < 0) die("stat %s", dst);
      session_dev = st.st_dev;
      have_session = 1;
      remember_own_mount(dst);
      i += 2;
    } else if (strcmp(op, "--mkdir") == 0) {
      need(argc, i, 1, op);
      if (mkdir_p(argv[i + 1], 0755) < 0) die("mkdir %s", argv[i + 1]);
      i += 1;
    } else if (strcmp(op, "--chmod") == 0) {
      need(argc, i, 2, op);
      char *end;
      unsigned long mode = strtoul(argv[i + 2], &end, 8);
      if (*end || mode > 07777) usage_die("--chmod: bad mode '%s'", argv[i + 2]);
      if (chmod(argv[i + 1], (mode_t)mode) < 0) die("chmod %s", argv[i + 1]);
      i += 2;
    } else if (strcmp(op, "--bind") == 0) {
      need(argc, i, 3, op);
      op_bind(argv[i + 1], argv[i + 2], argv[i + 3]);
      i += 3;
    } else if (strcmp(op, "--overlay") == 0) {
      need(argc, i, 4, op);
      op_overlay(argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4]);
      remember_own_mount(argv[i + 1]);
      i += 4;
    } else if (strcmp(op, "--image") == 0) {
      need(argc, i, 5, op);
      mount_image(argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4], argv[i + 5]);
      remember_own_mount(argv[i + 4]);
      i += 5;
    } else if (strcmp(op, "--fuse") == 0) {
      need(argc, i, 5, op);
      op_fuse(argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4], argv[i + 5]);
      remember_own_mount(argv[i + 5]);
      i += 5;
    } else if (strcmp(op, "--proc") == 0) {
      need(argc, i, 1, op);
      if (mkdir_p(argv[i + 1], 0755) < 0) die("mkdir %s", argv[i + 1]);
      if (mount("proc", argv[i + 1], "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount proc on %s", argv[i + 1]);
      i += 1;
    } else if (strcmp(op, "--sysfs") == 0) {
      need(argc, i, 1, op);
      if (mkdir_p(argv[i + 1], 0755) < 0) die("mkdir %s", argv[i + 1]);
      if (mount("sysfs", argv[i + 1], "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL) < 0) die("mount sysfs on %s", argv[i + 1]);
      i += 1;
    } else if (strcmp(op, "--devpts") == 0) {
      need(argc, i, 1, op);
      if (mkdir_p(argv[i + 1], 0755) < 0) die("mkdir %s", argv[i + 1]);
      const char *data = in_userns ? "newinstance,ptmxmode=0666,mode=0620" : "newinstance,ptmxmode=0666,mode=0620,gid=5";
      if (mount("devpts", argv[i + 1], "devpts", MS_NOSUID | MS_NOEXEC, data) < 0) die("mount devpts on %s", argv[i + 1]);
      i += 1;
    } else if (strcmp(op, "--append-line") == 0) {
      need(argc, i, 4, op);
      op_append_line(argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4]);
      i += 4;
    } else if (strcmp(op, "--remount-ro") == 0) {
      need(argc, i, 1, op);
      if (set_readonly(argv[i + 1], 0) < 0) die("remount read-only %s", argv[i + 1]);
      i += 1;
    } else if (strcmp(op, "--pivot") == 0) {
      need(argc, i, 1, op);
      op_pivot(argv[i + 1]);
      i += 1;
    } else if (strcmp(op, "--cwd") == 0) {
      need(argc, i, 1, op);
      p->cwds[p->ncwd++] = argv[i + 1];
      i += 1;
    } else if (strcmp(op, "--env") == 0) {
      need(argc, i, 1, op);
      if (!strchr(argv[i + 1], '=')) usage_die("--env: expected NAME=VALUE, got '%s'", argv[i + 1]);
      p->env[p->nenv++] = argv[i + 1];
      p->env_given = 1;
      i += 1;
    } else if (strcmp(op, "--keep-env") == 0) {
      p->env_given = 0;
    } else if (strcmp(op, "--uid") == 0) {
      need(argc, i, 1, op);
      p->uid = strtol(argv[i + 1], NULL, 10);
      i += 1;
    } else if (strcmp(op, "--gid") == 0) {
      need(argc, i, 1, op);
      p->gid = strtol(argv[i + 1], NULL, 10);
      i += 1;
    } else if (strcmp(op, "--groups") == 0) {
      need(argc, i, 1, op);
      p->groups = argv[i + 1];
      i += 1;
    } else if (strcmp(op, "--no-new-privs") == 0) {
      p->no_new_privs = 1;
    } else if (strcmp(op, "--fallback") == 0) {
      need(argc, i, 1, op);
      int n = atoi(argv[i + 1]);
      if (n < 1) usage_die("--fallback: bad count '%s'", argv[i + 1]);
      need(argc, i, 1 + n, op);
      char **fb = calloc((size_t)n + 1, sizeof *fb);
      if (!fb) die("calloc");
      for (int k = 0; k < n; k++) fb[k] = argv[i + 2 + k];
      p->fallback = fb;
      i += 1 + n;
    } else {
      usage_die("unknown operation '%s' (see native/README.md)", op);
    }
  }
  usage_die("no command: the operations must end with -- COMMAND [ARGS...]");
}

static void become_and_exec(struct plan *p) {
  int cwd_ok = p->ncwd == 0;
  for (int k = 0; k < p->ncwd && !cwd_ok; k++)
    if (chdir(p->cwds[k]) == 0) cwd_ok = 1;
  if (!cwd_ok) die("chdir %s", p->cwds[p->ncwd - 1]);

  if (p->groups || p->gid >= 0 || p->uid >= 0) {
    if (p->groups) {
      gid_t list[256];
      int n = 0;
      char *copy = strdup(p->groups);
      for (char *tok = strtok(copy, ","); tok && n < 256; tok = strtok(NULL, ",")) list[n++] = (gid_t)strtoul(tok, NULL, 10);
      if (setgroups((size_t)n, list) < 0) die("setgroups %s", p->groups);
      free(copy);
    }
    if (p->gid >= 0 && setresgid((gid_t)p->gid, (gid_t)p->gid, (gid_t)p->gid) < 0) die("setresgid %ld", p->gid);
    if (p->uid >= 0 && setresuid((uid_t)p->uid, (uid_t)p->uid, (uid_t)p->uid) < 0) die("setresuid %ld", p->uid);
  }
  if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("prctl PR_SET_NO_NEW_PRIVS");
  if (p->env_given) {
    clearenv();
    for (int k = 0; k < p->nenv; k++)
      if (putenv(p->env[k]) != 0) die("putenv %s", p->env[k]);
  }
  /* Credentials are final: from here on, the command dies with its parent. */
  die_with_parent();
  execvp(p->command[0], p->command);
  if (errno == ENOENT && p->fallback) {
    execvp(p->fallback[0], p->fallback);
    die("exec %s", p->fallback[0]);
  }
  die("exec %s", p->command[0]);
}

int main(int argc, char **argv) {
  original_parent = getppid();
  int userns = 0, pidns = 0, i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--userns") == 0) userns = 1;
    else if (strcmp(argv[i], "--pidns") == 0) pidns = 1;
    else break;
  }
  if (i >= argc) usage_die("usage: starter [--userns] [--pidns] OPERATION... -- COMMAND [ARGS...] (see native/README.md)");

  struct plan p;
  memset(&p, 0, sizeof p);
  p.argc = argc;
  p.argv = argv;
  p.first_op = i;
  p.uid = -1;
  p.gid = -1;
  p.cwds = calloc((size_t)argc, sizeof *p.cwds);
  p.env = calloc((size_t)argc, sizeof *p.env);
  if (!p.cwds || !p.env) die("calloc");

  /* Die with the caller: a killed caller must not leave a session (and its mounts) behind. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != original_parent) _exit(STARTER_FAIL);

  uid_t uid = getuid();
  gid_t gid = getgid();
  if (userns) {
    enter_user_namespace(uid, gid);
    in_userns = 1;
  } else if (in_child_user_namespace()) {
    /* Started inside a user namespace already (a build without root, src/runtime/user-namespace.ts):
     * overlayfs can keep its bookkeeping only in user.overlay.* there. */
    in_userns = 1;
  }
  if (unshare(CLONE_NEWNS | (pidns ? CLONE_NEWPID : 0)) < 0) die(pidns ? "unshare mount and pid namespaces" : "unshare mount namespace");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("mount private /");

  if (!pidns) {
    run_operations(&p);
    if (fuse_helpers == 0) become_and_exec(&p);
    /* A FUSE helper is this process's child: the command must not inherit it (a command that
     * waits for every child would wait for it), so the starter stays as the command's parent,
     * forwards signals and passes its status on; the helper dies with the starter. */
    pid_t command = fork();
    if (command < 0) die("fork");
    if (command == 0) become_and_exec(&p);
    install_forwarding(command);
    _exit(wait_for(command));
  }

  /* With a pid namespace: the first child is pid 1 of the namespace; it sets up the session, then
   * stays as a small init that forwards signals and reaps orphans while the command runs. */
  /* The outer starter holds the write end of `alive` until it dies: pid 1 cannot compare getppid()
   * (its parent is outside the namespace, so it reads 0), it polls the pipe instead. */
  int alive[2];
  if (pipe2(alive, O_CLOEXEC) < 0) die("pipe");
  pid_t init = fork();
  if (init < 0) die("fork");
  if (init > 0) {
    close(alive[0]);
    install_forwarding(init);
    _exit(wait_for(init));
  }
  /* pid 1 dies with the outer starter (itself dying with the caller); when pid 1 exits, the kernel
   * kills every other process of the namespace: nothing the command started outlives it, and no
   * stray process keeps the caller's output pipe open. (PDEATHSIG follows the parent *thread*; the
   * starter is single-threaded, and Node spawns it from its main thread.) */
  close(alive[1]);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  struct pollfd pf = {alive[0], POLLIN, 0};
  if (poll(&pf, 1, 0) != 0) _exit(STARTER_FAIL);
  close(alive[0]);
  original_parent = 0;
  run_operations(&p);
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) become_and_exec(&p);
  install_forwarding(child);
  _exit(wait_for(child));
}
