#!/usr/bin/env bash
# The remote step cache and push (issue 17), from a local docker-registry (base:
# bench/push-base-image.mjs, busybox + 2,000 small files), with the recipe of build.sh as a
# project target (Bootstrap docker, %post making ~500 files and 8 MiB, %environment, %runscript):
#   machine B - `up --cache-from` with an empty cache, the steps pushed by machine A, vs machine A's
#               cold `up --cache-to` (empty cache; it pulls the base, runs %post and pushes);
#   push      - `orchestrator push dev docker://...` (one layer per step) to a new repository, after a
#               first push elsewhere on the registry (so every layer is a mount, nothing packed), vs
#               `skopeo copy oci:LAYOUT docker://...` of the same image (a layout skopeo made of our
#               push) to a new repository.
# Goals: (information) for both; the note of issue 17 quotes them.
. "$(dirname "$0")/lib.sh"
bench_init remote-cache

start_registry
node "$BENCH_DIR/push-base-image.mjs" "$REG_HOST" bench/base:latest >/dev/null
BASE="$REG_HOST/bench/base:latest"
POST='mkdir -p /opt/app/data
    i=0
    while [ $i -lt 500 ]; do echo "generated file $i" > /opt/app/data/f$i.txt; i=$((i + 1)); done
    head -c 8388608 /dev/urandom > /opt/app/blob
    echo built > /opt/app/stamp'
project() { # project DIR
  mkdir -p "$1"
  cat >"$1/bench.def" <<DEF
Bootstrap: docker
From: $BASE

%post
    $POST

%environment
    export APP_MODE=bench

%runscript
    echo run
DEF
  printf 'version: 1\ntargets:\n  dev:\n    recipe: bench.def\n    format: sandbox\n' >"$1/orchestrator.yaml"
}
up_in() { # up_in DIR CACHE ARGS...
  local dir=$1 cache=$2
  shift 2
  (cd "$dir" && ORCHESTRATOR_CACHE=$cache "${ORCH[@]}" up --progress plain "$@")
}
need skopeo skopeo || { echo "bench: skopeo is needed for the push figure" >&2; exit 1; }

for i in $(seq 1 "$RUNS"); do
  repo="$REG_HOST/bench/steps$i"
  rm -rf "$WORK/a" "$WORK/b" "$WORK/cache-a" "$WORK/cache-b"; sync
  project "$WORK/a"
  project "$WORK/b"
  time_ms "$WORK/t-a" up_in "$WORK/a" "$WORK/cache-a" --cache-to "$repo"
  grep -q 'pushed 2 to remote cache' "$WORK/last.log" || { echo "bench: machine A pushed no steps:" >&2; cat "$WORK/last.log" >&2; exit 1; }
  time_ms "$WORK/t-b" up_in "$WORK/b" "$WORK/cache-b" --cache-from "$repo"
  grep -q '2 from remote cache' "$WORK/last.log" || { echo "bench: machine B ran steps:" >&2; cat "$WORK/last.log" >&2; exit 1; }
  [ -f "$WORK/b/build/dev/opt/app/stamp" ] || { echo "bench: machine B's sandbox lacks its files" >&2; exit 1; }
done
record --id remote-cache-b --figure "machine B: up from the remote cache (empty local cache; %post of 500 files + 8 MiB pulled, not run)" --ours "$WORK/t-b" \
  --peer-name "machine A: cold up --cache-to (pull the base, run %post, push)" --peer "$WORK/t-a" --goal "(information)" --goal-kind none

# push vs skopeo copy of the same image, each to a repository of its own.
(cd "$WORK/a" && ORCHESTRATOR_CACHE="$WORK/cache-a" "${ORCH[@]}" push dev "docker://$REG_HOST/bench/first:v1" >/dev/null)
skopeo copy --src-tls-verify=false "docker://$REG_HOST/bench/first:v1" "oci:$WORK/layout:v1" >/dev/null
orch_push() { (cd "$WORK/a" && ORCHESTRATOR_CACHE="$WORK/cache-a" "${ORCH[@]}" push dev "docker://$REG_HOST/bench/push$1:v1"); }
skopeo_push() { skopeo copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG_HOST/bench/copy$1:v1"; }
for i in $(seq 1 "$RUNS"); do
  time_ms "$WORK/t-push" orch_push "$i"
  # Nothing packed or sent: the base layers mount from bench/base, the steps from bench/first.
  grep -q ' 0 uploaded' "$WORK/last.log" || { echo "bench: push uploaded layers:" >&2; cat "$WORK/last.log" >&2; exit 1; }
  time_ms "$WORK/t-skopeo" skopeo_push "$i"
done
record --id push --figure "push of a 3-step sandbox target (~12 MiB) to a new repository" --ours "$WORK/t-push" \
  --peer-name "skopeo copy oci: docker:// of the same image" --peer "$WORK/t-skopeo" --goal "(information)" --goal-kind none
