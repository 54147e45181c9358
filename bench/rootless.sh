#!/usr/bin/env bash
# Builds without root against root (issue 16), side by side on the same busybox-based target (a
# local busybox tree, %post making 500 files and 8 MiB, %environment, %runscript; format squashfs):
#   cold    - `orchestrator up` with an empty cache and no output;
#   rebuild - `orchestrator up` after editing only %runscript (no %post runs: metadata + export);
#   noop    - `orchestrator up` again (nothing to do: what the re-execution costs).
# As root (the peer), as a user with a /etc/subuid range (subuid mode) and as a user without one
# (single-id mode). The two users are made here (useradd) and removed at exit, with their
# /etc/subuid and /etc/subgid lines. The figure of each mode is its ratio to root's.
. "$(dirname "$0")/lib.sh"
bench_init rootless

SUBSTART=1500000000
U_SUB=orchbsu$$
U_ONE=orchbsi$$
useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$U_SUB"
useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$U_ONE"
echo "$U_SUB:$SUBSTART:65536" >>/etc/subuid
echo "$U_SUB:$SUBSTART:65536" >>/etc/subgid
on_exit "userdel $U_SUB; userdel $U_ONE; sed -i '/^$U_SUB:/d' /etc/subuid /etc/subgid"
chmod 755 "$WORK"

# project DIR OWNER: a busybox tree, the recipe and the manifest, owned by OWNER.
project() {
  local d=$1 a
  mkdir -p "$d/rootfs"/{bin,etc,root,home,proc,sys,dev,tmp,var/tmp} "$d/home"
  cp /bin/busybox "$d/rootfs/bin/busybox"
  for a in sh cat echo mkdir head ls; do ln -s busybox "$d/rootfs/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$d/rootfs/etc/passwd"
  printf 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n' >"$d/orchestrator.yaml"
  recipe "$d" 0
  chown -R "$2:$2" "$d"
}
recipe() { # recipe DIR TAG
  cat >"$1/app.def" <<DEF
%post
    mkdir -p /opt/app/data
    i=0
    while [ \$i -lt 500 ]; do echo "generated file \$i" > /opt/app/data/f\$i.txt; i=\$((i + 1)); done
    head -c 8388608 /dev/zero > /opt/app/blob
%environment
    export APP_MODE=bench
%runscript
    echo "run $2"
DEF
}
# as MODE CMD...: runs CMD as root or as the mode's user, in the project of that mode.
as() {
  local mode=$1
  shift
  case $mode in
    root) (cd "$WORK/root" && env HOME="$WORK/root/home" "$@") ;;
    subuid) (cd "$WORK/subuid" && setpriv --reuid="$U_SUB" --regid="$U_SUB" --clear-groups env -i PATH="$PATH" HOME="$WORK/subuid/home" "$@") ;;
    single-id) (cd "$WORK/single-id" && setpriv --reuid="$U_ONE" --regid="$U_ONE" --clear-groups env -i PATH="$PATH" HOME="$WORK/single-id/home" "$@") ;;
  esac
}

project "$WORK/root" root
project "$WORK/subuid" "$U_SUB"
project "$WORK/single-id" "$U_ONE"

for mode in root subuid single-id; do
  d="$WORK/$mode"
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$d/build" "$d/.orchestrator" "$d/home/.cache"
    recipe "$d" 0 && chown -R --reference="$d/orchestrator.yaml" "$d/app.def"
    time_ms "$WORK/$mode.cold" as "$mode" "${ORCH[@]}" up --progress plain
    grep -q 'built 1' "$WORK/last.log"
    recipe "$d" "$i" && chown -R --reference="$d/orchestrator.yaml" "$d/app.def"
    time_ms "$WORK/$mode.rebuild" as "$mode" "${ORCH[@]}" up --progress plain
    ! grep -q '%post running' "$WORK/last.log"
    time_ms "$WORK/$mode.noop" as "$mode" "${ORCH[@]}" up --progress plain
    grep -q 'built 0, fresh 1' "$WORK/last.log"
  done
done

for mode in subuid single-id; do
  record --id "rootless-cold-$mode" --figure "cold up of a busybox target (%post: 500 files, 8 MiB; squashfs), $mode mode vs root" \
    --ours "$WORK/$mode.cold" --peer-name root --peer "$WORK/root.cold" --goal-kind none
  record --id "rootless-rebuild-$mode" --figure "up after a %runscript edit (no %post), $mode mode vs root" \
    --ours "$WORK/$mode.rebuild" --peer-name root --peer "$WORK/root.rebuild" --goal-kind none
  record --id "rootless-noop-$mode" --figure "no-op up (the re-execution through unshare: a second Node start-up and the namespace), $mode mode vs root" \
    --ours "$WORK/$mode.noop" --peer-name root --peer "$WORK/root.noop" --goal-kind none
done
