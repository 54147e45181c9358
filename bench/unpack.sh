#!/usr/bin/env bash
# Unpacking the same gzipped layer blobs (three layers of real trees from this machine's /usr)
# with orchestrator, `umoci unpack` and the floor `gzip -dc | tar -x`, side by side; median of
# RUNS runs (min..max), and ratios to the floor. Needs root (owners, devices), umoci, and
# `npm run build` done. Writes bench/RESULTS-unpack.md.
#   bash bench/unpack.sh [RUNS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
runs=${1:-5}
work="$here/work/unpack"
mkdir -p "$work"
[ -f "$repo/dist/layers/unpack-layer.js" ] || { echo "run npm run build first" >&2; exit 1; }
command -v umoci >/dev/null || { echo "umoci is not installed (apt-get install umoci)" >&2; exit 1; }

# 1. The blobs: made once, kept in bench/work between runs.
sources=(/usr/lib/python3.11 /usr/share/doc /usr/share/man)
blobs=()
for i in 0 1 2; do
  blob="$work/layer$i.tar.gz"
  if [ ! -s "$blob" ]; then
    src=${sources[$i]}
    tar -C / --numeric-owner -cf - "${src#/}" | gzip -6 > "$blob.tmp" && mv "$blob.tmp" "$blob"
  fi
  blobs+=("$blob")
done
if [ ! -f "$work/layout/index.json" ]; then
  rm -rf "$work/layout"
  node "$here/make-oci-layout.mjs" "$work/layout" bench "${blobs[@]}"
fi
total_gz=$(cat "${blobs[@]}" | wc -c)
total_tar=$(for b in "${blobs[@]}"; do gzip -dc "$b"; done | wc -c)
files=$(for b in "${blobs[@]}"; do gzip -dc "$b" | tar -t; done | wc -l)

now() { date +%s%N; }
out="$work/out"
# Output on a tmpfs by default (BENCH_DISK=1 for the work folder's disk): on a shared machine the
# disk's writeback noise otherwise swamps the unpackers' own cost.
mkdir -p "$out"
if [ "${BENCH_DISK:-0}" != 1 ]; then
  mount -t tmpfs -o size=2g orch-bench "$out"
  trap 'umount "$out"' EXIT
fi

floor() {
  local i=0
  for b in "${blobs[@]}"; do
    mkdir -p "$out/$i"
    gzip -dc "$b" | tar -x -p --numeric-owner -C "$out/$i"
    i=$((i + 1))
  done
}
orch() { node "$here/unpack-orchestrator.mjs" "$out" 0 "${blobs[@]}"; }
orch_durable() { node "$here/unpack-orchestrator.mjs" "$out" 1 "${blobs[@]}"; }
umoci_unpack() { umoci unpack --image "$work/layout:bench" "$out/bundle" >/dev/null 2>&1; }

declare -A results
measure() {
  local name=$1 fn=$2 times=()
  for ((r = 0; r < runs; r++)); do
    find "$out" -mindepth 1 -delete; sync
    local t0; t0=$(now)
    "$fn"
    local t1; t1=$(now)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  find "$out" -mindepth 1 -delete
  local sorted; sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  local min; min=$(echo "$sorted" | head -1)
  local max; max=$(echo "$sorted" | tail -1)
  local med; med=$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")
  results[$name]="$med $min $max"
}

# Interleave nothing fancy: each tool's runs back to back, the floor first and last to see drift.
measure floor floor
measure orchestrator orch
measure "orchestrator (durable: syncfs)" orch_durable
measure "umoci unpack" umoci_unpack
measure "floor (again)" floor

floor_med=$(echo "${results[floor]}" | cut -d' ' -f1)
report="$here/RESULTS-unpack.md"
{
  echo "# Layer unpack benchmark"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, node $(node --version), $(umoci --version 2>&1 | head -1)."
  echo "Three gzipped layers (${sources[*]}): $((total_gz / 1048576)) MiB gzipped, $((total_tar / 1048576)) MiB of tar, $files entries."
  echo "Output on $( [ "${BENCH_DISK:-0}" = 1 ] && echo "the disk (ext4)" || echo "a tmpfs" ). Median of $runs runs (min..max), in ms; ratio = median / floor median."
  echo
  echo "| tool | median ms | min..max | ratio to floor |"
  echo "| --- | ---: | --- | ---: |"
  for name in floor orchestrator "orchestrator (durable: syncfs)" "umoci unpack" "floor (again)"; do
    read -r med min max <<<"${results[$name]}"
    ratio=$(awk -v a="$med" -v b="$floor_med" 'BEGIN { printf "%.2f", a / b }')
    echo "| $name | $med | $min..$max | ${ratio}x |"
  done
  echo
  echo "floor = \`gzip -dc blob | tar -x -p --numeric-owner\` per layer into its own folder (no diffid, no fsync);"
  echo "orchestrator = unpackLayer per layer (gunzip + sha256 diffid + overlay-format writer + rename), one node process;"
  echo "durable adds syncfs before each rename; umoci = \`umoci unpack\` of an OCI layout of the same blobs (applies all layers into one rootfs)."
} > "$report"
cat "$report"
