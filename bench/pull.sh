#!/usr/bin/env bash
# Pull: `orchestrator pull` vs `skopeo copy docker://... oci:DIR` on the same 6-layer image
# (~TOTAL_MB compressed, default 60: 4 layers of random data, 2 of compressible text, made by
# push-bench-image.mjs) served by a local docker-registry. Cold cache / fresh folder every run,
# runs interleaved; median, min and max of RUNS (default 5). Goal (issue 10): <= 1.0x skopeo.
# Then the same with a larger image (LARGE_MB, default 240), where start-up weighs less.
# Usage: bench/pull.sh [TOTAL_MB]
. "$(dirname "$0")/lib.sh"
bench_init pull
TOTAL_MB=${1:-60}

start_registry
have_skopeo=yes
need skopeo skopeo || have_skopeo=

# bench_pull ID TOTAL_MB GOAL...: one image, RUNS cold pulls each way.
bench_pull() {
  local id=$1 mb=$2 digest size layers ref i
  shift 2
  read -r digest size layers < <(node "$BENCH_DIR/push-bench-image.mjs" "$REG_HOST" "bench/$id:latest" "$mb")
  ref="$REG_HOST/bench/$id:latest"
  echo "pull: $ref $digest, $layers layers, $((size / 1048576)) MiB compressed, $RUNS cold runs each"
  local fig=(--id "$id" --figure "pull of a $layers-layer image, $((size / 1048576)) MiB compressed (cold)" "$@")
  orch_pull() {
    local out
    out=$(ORCHESTRATOR_CACHE="$WORK/cache" "${ORCH[@]}" pull -q "docker://$ref")
    [ "$out" = "$digest" ] || { echo "orchestrator pull printed '$out', expected $digest" >&2; return 1; }
  }
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$WORK/cache" "$WORK/oci"; sync
    time_ms "$WORK/$id-orch" orch_pull
    if [ -n "$have_skopeo" ]; then
      rm -rf "$WORK/cache" "$WORK/oci"; sync
      time_ms "$WORK/$id-skopeo" skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$WORK/oci:latest"
    fi
  done
  rm -rf "$WORK/cache" "$WORK/oci"
  if [ -n "$have_skopeo" ]; then record "${fig[@]}" --ours "$WORK/$id-orch" --peer-name "skopeo copy docker:// oci:" --peer "$WORK/$id-skopeo"
  else record "${fig[@]}" --ours "$WORK/$id-orch" --peer-name "skopeo copy" --peer-unavailable "skopeo not installed and apt-get failed"; fi
}
bench_pull pull "$TOTAL_MB" --goal "<= 1.0x skopeo" --goal-kind ratio --goal-limit 1.0
bench_pull pull-large "${LARGE_MB:-240}" --goal "(information: the fixed start-up cost weighs less)" --goal-kind none
