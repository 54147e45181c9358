#!/usr/bin/env bash
# A caller who is not root running an image file: extraction into the caller's cache (unsquashfs,
# then an overlay over the folder) vs a FUSE mount (squashfuse in the session's user namespace),
# on the quick start's dist/hello.simg. Interleaved, median/min/max of RUNS (default 5 here):
#   - first run: `exec IMAGE true` with an empty cache (extraction pays the hash and unsquashfs);
#   - warm: `exec IMAGE true` again (extraction finds its folder; FUSE mounts each time);
#   - parallel readers (apptainer/apptainer#665): PAR (default 8) concurrent `exec IMAGE cat` of
#     every file under /usr/lib and /usr/bin, the wall time of the whole batch.
# The caller is a user made here (removed at exit); /dev/fuse is made usable for it as the tests
# do: a device node of our own, mode 0666, bound over /dev/fuse in a private mount namespace.
# IMAGE=path uses that image instead of building the quick start's. Needs root.
. "$(dirname "$0")/lib.sh"
RUNS=${NONROOT_RUNS:-5}
PAR=${NONROOT_PAR:-8}
bench_init nonroot-exec
need squashfuse squashfuse

image=${IMAGE:-}
if [ -z "$image" ]; then
  cp -r "$ROOT/examples/quickstart" "$WORK/quickstart"
  (cd "$WORK/quickstart" && "${ORCH[@]}" up hello --progress plain >"$WORK/up.log" 2>&1) || { tail -20 "$WORK/up.log" >&2; exit 1; }
  image="$WORK/quickstart/dist/hello.simg"
fi
cp "$image" "$WORK/hello.simg"
image="$WORK/hello.simg"
chmod 755 "$WORK"
chmod 644 "$image"

user="orchbench$$"
useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$user"
on_exit "userdel $user"
uid=$(id -u "$user")
gid=$(id -g "$user")
mkdir -p "$WORK/home"
chown "$uid:$gid" "$WORK/home"

# as_user fuse|extract CMD...: CMD as the bench user; with fuse, in a private mount namespace
# where /dev/fuse is a node of our own with mode 0666.
cat >"$WORK/as-user.sh" <<SH
#!/bin/sh
set -e
how=\$1; shift
if [ "\$how" = fuse ]; then
  node=$WORK/fuse-node-\$\$
  mknod "\$node" c 10 229; chmod 666 "\$node"; mount --bind "\$node" /dev/fuse; rm -f "\$node"
fi
exec setpriv --reuid=$uid --regid=$gid --clear-groups env HOME=$WORK/home ORCHESTRATOR_CACHE=$WORK/home/cache-\$how PATH=/usr/bin:/bin "\$@"
SH
chmod 755 "$WORK/as-user.sh"
as_user() { unshare --mount --propagation private "$WORK/as-user.sh" "$@"; }
orch_as() { local how=$1; shift; as_user "$how" node "$ROOT/bin/orchestrator.js" "$@"; }

# Which path each column really takes (fails the bench if FUSE was not used).
orch_as fuse exec "$image" sh -c 'head -n 1 /proc/self/mountinfo' | grep -q 'lowerdir=[^,]*/image,' || { echo "bench: the fuse column did not mount through FUSE" >&2; exit 1; }
orch_as extract exec "$image" sh -c 'head -n 1 /proc/self/mountinfo' | grep -q 'lowerdir=[^,]*/extracted/' || { echo "bench: the extract column did not extract" >&2; exit 1; }
readers='cat /usr/lib/x86_64-linux-gnu/* /usr/bin/* >/dev/null 2>&1; true'
parallel() {
  local how=$1 k
  for ((k = 0; k < PAR; k++)); do orch_as "$how" exec "$image" sh -c "$readers" & done
  wait
}

echo "nonroot-exec: $RUNS runs each"
for ((i = 0; i < RUNS; i++)); do
  rm -rf "$WORK/home/cache-extract"
  time_ms "$WORK/first-extract" orch_as extract exec "$image" true
  rm -rf "$WORK/home/cache-fuse"
  time_ms "$WORK/first-fuse" orch_as fuse exec "$image" true
  time_ms "$WORK/warm-extract" orch_as extract exec "$image" true
  time_ms "$WORK/warm-fuse" orch_as fuse exec "$image" true
  time_ms "$WORK/par-extract" parallel extract
  time_ms "$WORK/par-fuse" parallel fuse
  echo "  run $((i + 1)): first $(tail -1 "$WORK/first-extract")/$(tail -1 "$WORK/first-fuse") ms, warm $(tail -1 "$WORK/warm-extract")/$(tail -1 "$WORK/warm-fuse") ms, $PAR readers $(tail -1 "$WORK/par-extract")/$(tail -1 "$WORK/par-fuse") ms (extract/fuse)"
done
size=$(du -h "$image" | cut -f1)
record --id nonroot-exec-first --figure "non-root exec IMAGE true, first run ($size quick start image): squashfuse (ours) vs extraction" \
  --ours "$WORK/first-fuse" --peer-name extraction --peer "$WORK/first-extract" --goal "(information)" --goal-kind none
record --id nonroot-exec-warm --figure "non-root exec IMAGE true, warm: squashfuse (ours) vs extraction (already extracted)" \
  --ours "$WORK/warm-fuse" --peer-name extraction --peer "$WORK/warm-extract" --goal "(information)" --goal-kind none
record --id nonroot-exec-parallel --figure "$PAR parallel non-root exec IMAGE cat of /usr/lib and /usr/bin (warm): squashfuse (ours) vs extraction" \
  --ours "$WORK/par-fuse" --peer-name extraction --peer "$WORK/par-extract" --goal "(information)" --goal-kind none
