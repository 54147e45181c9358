#!/usr/bin/env bash
# Unpack: orchestrator's layer unpacker (bench/unpack-driver.mjs over dist/layers/unpack-layer.js,
# all layers at once, as a pull does) vs `umoci unpack` vs `gzip -dc | tar -x` for each layer (the
# floor), on the same OCI layouts:
#   big  - the pull benchmark's image (6 layers, ~60 MiB compressed, few large files);
#   tree - one layer per host folder (python, perl, zoneinfo): thousands of small
#          real files, as a distribution image has.
# Each run into a fresh folder, runs interleaved; median/min/max of RUNS (default 5).
# Goals (issue 10): <= 1.3x the floor and faster than umoci.
. "$(dirname "$0")/lib.sh"
bench_init unpack

node "$BENCH_DIR/push-bench-image.mjs" "oci:$WORK/big" - 60 >"$WORK/big.info"
tree_dirs=()
for d in /usr/lib/python3.11 /usr/share/perl /usr/share/zoneinfo; do [ -d "$d" ] && tree_dirs+=("$d"); done
node "$BENCH_DIR/make-tree-layout.mjs" "$WORK/tree" "${tree_dirs[@]}" >"$WORK/tree.info"
have_umoci=yes
need umoci umoci || have_umoci=

layers_of() { node -e '
  const fs = require("fs"), d = process.argv[1];
  const idx = JSON.parse(fs.readFileSync(d + "/index.json"));
  const m = JSON.parse(fs.readFileSync(d + "/blobs/sha256/" + idx.manifests[0].digest.slice(7)));
  for (const l of m.layers) console.log(d + "/blobs/sha256/" + l.digest.slice(7));' "$1"; }

floor_parallel() { # all layers at once, each into its own folder (as ours)
  local out=$1 i=0 b pids=()
  shift
  for b in "$@"; do mkdir -p "$out/$i"; (gzip -dc "$b" | tar -x -C "$out/$i") & pids+=($!); i=$((i + 1)); done
  for p in "${pids[@]}"; do wait "$p"; done
}
floor_serial() {
  local out=$1 i=0 b
  shift
  for b in "$@"; do mkdir -p "$out/$i"; gzip -dc "$b" | tar -x -C "$out/$i"; i=$((i + 1)); done
}

for img in big tree; do
  read -r _ size nlayers nfiles <"$WORK/$img.info"
  mapfile -t blobs < <(layers_of "$WORK/$img")
  what="$nlayers layers, $((size / 1048576)) MiB compressed"
  [ -n "${nfiles:-}" ] && what="$what, $nfiles files"
  echo "unpack $img: $what; $RUNS runs each"
  R="$WORK/t-$img"
  mkdir -p "$R"
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$WORK/out"; sync
    time_ms "$R/ours" node "$BENCH_DIR/unpack-driver.mjs" "$WORK/$img" "$WORK/out"
    rm -rf "$WORK/out"; sync
    time_ms "$R/ours-nd" node "$BENCH_DIR/unpack-driver.mjs" "$WORK/$img" "$WORK/out" --no-durable
    rm -rf "$WORK/out"; sync
    time_ms "$R/floor" floor_parallel "$WORK/out" "${blobs[@]}"
    rm -rf "$WORK/out"; sync
    time_ms "$R/floor-serial" floor_serial "$WORK/out" "${blobs[@]}"
    if [ -n "$have_umoci" ]; then
      rm -rf "$WORK/out"; sync
      time_ms "$R/umoci" umoci unpack --image "$WORK/$img:latest" "$WORK/out"
    fi
  done
  rm -rf "$WORK/out"
  record --id "unpack-$img-floor" --figure "unpack $img image ($what) vs the floor" --ours "$R/ours" \
    --peer-name "gzip -dc | tar -x, all layers at once" --peer "$R/floor" --goal "<= 1.3x the floor" --goal-kind ratio --goal-limit 1.3 \
    --note "ours syncs the file system before publishing each layer (the product default); without it: median $(node -e 'const v=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(Number).sort((a,b)=>a-b);console.log(v[v.length>>1])' "$R/ours-nd") ms"
  record --id "unpack-$img-floor-serial" --figure "unpack $img image vs the floor, layers one after another" --ours "$R/ours" \
    --peer-name "gzip -dc | tar -x, one layer after another" --peer "$R/floor-serial" --goal "(information)" --goal-kind none
  if [ -n "$have_umoci" ]; then
    record --id "unpack-$img-umoci" --figure "unpack $img image vs umoci" --ours "$R/ours" \
      --peer-name "umoci unpack" --peer "$R/umoci" --goal "faster than umoci (< 1.0x)" --goal-kind ratio --goal-limit 0.999
  else
    record --id "unpack-$img-umoci" --figure "unpack $img image vs umoci" --ours "$R/ours" \
      --peer-name "umoci unpack" --peer-unavailable "umoci not installed and apt-get failed" --goal "faster than umoci" --goal-kind ratio --goal-limit 0.999
  fi
done
