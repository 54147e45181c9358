#!/usr/bin/env bash
# Our squashfs writer (native/squashfs/orchestrator-mksquashfs) vs mksquashfs, gzip, on a copy of
# parts of /usr (~1.9 GB; BENCH_SQUASHFS_SOURCES overrides the list):
#   - cold: ours without a cache, ours filling an empty block cache, mksquashfs;
#   - after one file changed: ours with the warm cache vs mksquashfs (which has no cache);
#   - wall time, CPU time (user+sys: what the work costs, whatever else the machine is doing) and
#     peak RSS (/usr/bin/time), image sizes; ratios ours/mksquashfs.
# Both use every core. RUNS (default 1) runs per figure, the median is reported. Standalone: not in
# run-all.sh. Run as root after `npm run build`. The copied tree lives in a temp folder outside the
# repository (ESLint would lint its .js files); removed at the end.
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

for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/cache" "$WORK"/*.sqfs
  measure mk-cold mksquashfs "$WORK/tree" "$WORK/mk.sqfs" -noappend -no-progress -quiet -comp gzip
  measure ours-cold "$W" "$WORK/tree" "$WORK/ours.sqfs"
  measure ours-fill "$W" "$WORK/tree" "$WORK/ours-cache.sqfs" --block-cache "$WORK/cache"
  cmp -s "$WORK/ours.sqfs" "$WORK/ours-cache.sqfs" || { echo "bench/squashfs: cache write differs from cold write" >&2; exit 1; }
  # One file changed: a mid-size file gets a line appended.
  f=$(find "$WORK/tree" -type f -size +200k -size -2M | sort | sed -n '1p')
  echo "run $i" >>"$f"
  rm -f "$WORK"/*.sqfs
  measure mk-change mksquashfs "$WORK/tree" "$WORK/mk.sqfs" -noappend -no-progress -quiet -comp gzip
  measure ours-warm "$W" "$WORK/tree" "$WORK/ours-warm.sqfs" --block-cache "$WORK/cache"
  "$W" "$WORK/tree" "$WORK/ours-check.sqfs"
  cmp -s "$WORK/ours-warm.sqfs" "$WORK/ours-check.sqfs" || { echo "bench/squashfs: warm write differs from cold write" >&2; exit 1; }
done

size() { stat -c %s "$1"; }
printf '%-12s %10s %10s %12s\n' figure wall_s cpu_s peak_RSS_MiB
for n in mk-cold ours-cold ours-fill mk-change ours-warm; do
  printf '%-12s %10s %10s %12s\n' "$n" "$(median "$n" 1)" "$(median "$n" 3)" "$(($(median "$n" 2) / 1024))"
done
ratio() { awk -v a="$(median "$1" "$3")" -v b="$(median "$2" "$3")" 'BEGIN {printf "%.2f", a / b}'; }
echo "cold: ours/mksquashfs = $(ratio ours-cold mk-cold 1)x wall, $(ratio ours-cold mk-cold 3)x cpu; filling the cache: $(ratio ours-fill mk-cold 1)x wall, $(ratio ours-fill mk-cold 3)x cpu"
echo "after one file changed: ours warm/mksquashfs = $(ratio ours-warm mk-change 1)x wall, $(ratio ours-warm mk-change 3)x cpu"
echo "image bytes: mksquashfs $(size "$WORK/mk.sqfs"), ours $(size "$WORK/ours-warm.sqfs") ($(awk -v a="$(size "$WORK/ours-warm.sqfs")" -v b="$(size "$WORK/mk.sqfs")" 'BEGIN {printf "%.3f", a / b}')x)"
echo "cache: $(du -sm "$WORK/cache" | cut -f1) MiB"
