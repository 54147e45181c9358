#!/usr/bin/env bash
# Pull: `orchestrator pull` vs `skopeo copy docker://... oci:DIR` on the same 6-layer image
# (~TOTAL_MB compressed, default 60: 4 layers of random data, 2 of compressible text, made by
# push-bench-image.mjs) served by a local docker-registry. Cold cache / fresh folder every run,
# runs interleaved; median, min and max of RUNS (default 5). Goal (issue 10): <= 1.0x skopeo.
# Usage: bench/pull.sh [TOTAL_MB]
. "$(dirname "$0")/lib.sh"
bench_init pull
TOTAL_MB=${1:-60}

start_registry
read -r DIGEST SIZE LAYERS < <(node "$BENCH_DIR/push-bench-image.mjs" "$REG_HOST" bench/big:latest "$TOTAL_MB")
REF="$REG_HOST/bench/big:latest"
echo "pull: $REF $DIGEST, $LAYERS layers, $((SIZE / 1048576)) MiB compressed, $RUNS cold runs each"
FIG=(--id pull --figure "pull of a $LAYERS-layer image, $((SIZE / 1048576)) MiB compressed (cold)"
  --goal "<= 1.0x skopeo" --goal-kind ratio --goal-limit 1.0)

orch_pull() {
  local out
  out=$(ORCHESTRATOR_CACHE="$WORK/cache" "${ORCH[@]}" pull -q "docker://$REF")
  [ "$out" = "$DIGEST" ] || { echo "orchestrator pull printed '$out', expected $DIGEST" >&2; return 1; }
}
if ! need skopeo skopeo; then
  for i in $(seq 1 "$RUNS"); do rm -rf "$WORK/cache"; sync; time_ms "$WORK/orch" orch_pull; done
  record "${FIG[@]}" --ours "$WORK/orch" --peer-name "skopeo copy" --peer-unavailable "skopeo not installed and apt-get failed"
  exit 0
fi
for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/cache" "$WORK/oci"; sync
  time_ms "$WORK/orch" orch_pull
  rm -rf "$WORK/cache" "$WORK/oci"; sync
  time_ms "$WORK/skopeo" skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$WORK/oci:latest"
done
rm -rf "$WORK/cache" "$WORK/oci"
record "${FIG[@]}" --ours "$WORK/orch" --peer-name "skopeo copy docker:// oci:" --peer "$WORK/skopeo"
