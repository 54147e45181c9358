#!/usr/bin/env bash
# Our squashfs writer (native/squashfs/orchestrator-mksquashfs) vs mksquashfs, gzip, 128 KiB blocks,
# every core, on a tree of at least 2 GB: a copy of parts of /usr (~1.8 GB; BENCH_SQUASHFS_SOURCES
# overrides the list) plus synthetic data (EXTRA_MB, default 450: half random, half text-like) with
# one 50 MB random file:
#   - cold: ours filling an empty block cache (OURS_COLD=1 adds ours without a cache), mksquashfs;
#   - after the 50 MB file changed: ours with the warm cache vs mksquashfs (which has no cache);
#   - after a one-line edit of a small file (what a %runscript edit changes): ours warm, from the
#     folder (as a one-shot `build` of a sandbox reads it), and as `up` writes it: the tree as a
#     stable layer (a store snapshot, its listing remembered from the first layered write) under a
#     small top layer holding the edited file (--layer/--stable-layer);
#   - wall time, CPU time (user+sys: what the work costs, whatever else the machine is doing) and
#     peak RSS (/usr/bin/time), image sizes; ratios ours/mksquashfs.
# CHECK=1 also writes the changed tree cold and compares it with the warm write byte for byte (the
# tests check that on small trees). RUNS (default 1) runs per figure, the median is reported.
# Standalone: not in run-all.sh. Run as root after `npm run build`. The copied tree lives in a temp
# folder outside the repository (ESLint would lint its .js files); removed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root="$here/.."
W="$root/native/squashfs/orchestrator-mksquashfs"
[ -x "$W" ] || { echo "bench/squashfs: $W is not built (npm run build)" >&2; exit 1; }
RUNS=${RUNS:-1}
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/orchestrator-bench-squashfs.XXXXXX")
mkdir -p "$WORK/tree"
trap 'rm -rf "$WORK"' EXIT
sources=${BENCH_SQUASHFS_SOURCES:-"/usr/share /usr/bin /usr/lib/x86_64-linux-gnu /usr/lib/gcc /usr/lib/python3"}
for s in $sources; do
  mkdir -p "$WORK/tree$(dirname "$s")"
  cp -a "$s" "$WORK/tree$s"
done
EXTRA_MB=${EXTRA_MB:-450}
mkdir -p "$WORK/tree/synthetic"
head -c $((50 * 1048576)) /dev/urandom >"$WORK/tree/synthetic/big-50MB.bin"
n=$(((EXTRA_MB - 50) / 20))
for i in $(seq 1 "$n"); do
  if [ $((i % 2)) -eq 0 ]; then head -c $((10 * 1048576)) /dev/urandom >"$WORK/tree/synthetic/random-$i.bin"
  else head -c $((15 * 1048576 / 2)) /dev/urandom | base64 >"$WORK/tree/synthetic/text-$i.txt"; fi
done
printf '#!/bin/sh\nexec hello\n' >"$WORK/tree/synthetic/runscript"
files=$(find "$WORK/tree" -type f | wc -l)
mib=$(du -sm --apparent-size "$WORK/tree" | cut -f1)
echo "squashfs: tree of $files files, $mib MiB; $RUNS run(s) per figure; $(nproc) cores"

# measure NAME CMD...: appends "wall_seconds maxrss_kib cpu_seconds" to $WORK/NAME
measure() {
  local name=$1
  shift
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.tmp" "$@" >/dev/null
  awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$WORK/time.tmp" >>"$WORK/$name"
}
median() { sort -n -k"$2" "$WORK/$1" | awk -v k="$2" '{a[NR]=$k} END {print a[int((NR+1)/2)]}'; }

figures="mk-cold ours-fill mk-change ours-warm ours-edit ours-edit-up"
[ "${OURS_COLD:-0}" = 1 ] && figures="mk-cold ours-cold ours-fill mk-change ours-warm ours-edit ours-edit-up"
for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/cache" "$WORK"/*.sqfs
  measure mk-cold mksquashfs "$WORK/tree" "$WORK/mk.sqfs" -noappend -no-progress -quiet -comp gzip
  [ "${OURS_COLD:-0}" = 1 ] && measure ours-cold "$W" "$WORK/tree" "$WORK/ours.sqfs"
  measure ours-fill "$W" "$WORK/tree" "$WORK/ours-cache.sqfs" --block-cache "$WORK/cache"
  cold_bytes=$(stat -c %s "$WORK/ours-cache.sqfs")
  mk_cold_bytes=$(stat -c %s "$WORK/mk.sqfs")
  # The 50 MB file gets new content.
  head -c $((50 * 1048576)) /dev/urandom >"$WORK/tree/synthetic/big-50MB.bin"
  rm -f "$WORK"/*.sqfs
  measure mk-change mksquashfs "$WORK/tree" "$WORK/mk.sqfs" -noappend -no-progress -quiet -comp gzip
  measure ours-warm "$W" "$WORK/tree" "$WORK/ours-warm.sqfs" --block-cache "$WORK/cache"
  if [ "${CHECK:-0}" = 1 ]; then
    "$W" "$WORK/tree" "$WORK/ours-check.sqfs"
    cmp -s "$WORK/ours-warm.sqfs" "$WORK/ours-check.sqfs" || { echo "bench/squashfs: warm write differs from cold write" >&2; exit 1; }
    rm -f "$WORK/ours-check.sqfs"
  fi
  # A one-line edit of a small file, as a %runscript edit makes.
  echo "# run $i" >>"$WORK/tree/synthetic/runscript"
  measure ours-edit "$W" "$WORK/tree" "$WORK/ours-edit.sqfs" --block-cache "$WORK/cache"
  # As `up` writes it: the tree is a stable layer under a top layer with the edited file. The first
  # layered write lists the tree and remembers it (as the first export after a %post does); the
  # next edit is measured.
  rm -rf "$WORK/top" && mkdir -p "$WORK/top/synthetic"
  cp -a "$WORK/tree/synthetic/runscript" "$WORK/top/synthetic/runscript"
  echo "# layered run $i" >>"$WORK/top/synthetic/runscript"
  "$W" --layer "$WORK/top" --stable-layer "$WORK/tree" "$WORK/ours-edit-up.sqfs" --block-cache "$WORK/cache"
  echo "# layered run $i, edited again" >>"$WORK/top/synthetic/runscript"
  measure ours-edit-up "$W" --layer "$WORK/top" --stable-layer "$WORK/tree" "$WORK/ours-edit-up.sqfs" --block-cache "$WORK/cache"
done

size() { stat -c %s "$1"; }
printf '%-12s %10s %10s %12s\n' figure wall_s cpu_s peak_RSS_MiB
for n in $figures; do
  printf '%-12s %10s %10s %12s\n' "$n" "$(median "$n" 1)" "$(median "$n" 3)" "$(($(median "$n" 2) / 1024))"
done
ratio() { awk -v a="$(median "$1" "$3")" -v b="$(median "$2" "$3")" 'BEGIN {printf "%.3f", a / b}'; }
echo "cold (filling the cache): ours/mksquashfs = $(ratio ours-fill mk-cold 1)x wall, $(ratio ours-fill mk-cold 3)x cpu; goal <= 1.0x"
[ "${OURS_COLD:-0}" = 1 ] && echo "cold without a cache: ours/mksquashfs = $(ratio ours-cold mk-cold 1)x wall, $(ratio ours-cold mk-cold 3)x cpu"
echo "after the 50 MB file changed: ours warm/mksquashfs = $(ratio ours-warm mk-change 1)x wall, $(ratio ours-warm mk-change 3)x cpu; goal <= 0.10x"
echo "after a one-line edit of a small file: ours warm/mksquashfs = $(ratio ours-edit mk-change 1)x wall, $(ratio ours-edit mk-change 3)x cpu; goal <= 0.03x"
echo "  the same edit as up writes it (layers, listing memo): ours/mksquashfs = $(ratio ours-edit-up mk-change 1)x wall, $(ratio ours-edit-up mk-change 3)x cpu"
echo "image bytes (cold): mksquashfs $mk_cold_bytes, ours $cold_bytes ($(awk -v a="$cold_bytes" -v b="$mk_cold_bytes" 'BEGIN {printf "%.4f", a / b}')x; goal within 2%)"
echo "cache: $(du -sm "$WORK/cache" | cut -f1) MiB"
