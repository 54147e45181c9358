#!/usr/bin/env bash
# Pull benchmark: `orchestrator pull` against `skopeo copy ... oci:DIR` on the same multi-layer
# image (>= 50 MB compressed) served by a local docker-registry. Cold cache for every run; median
# of RUNS runs (default 5) with min and max; prints the ratio.
#
# Bench-only requirement: skopeo (Debian package `skopeo`), not part of install-system-deps.sh.
# Usage: bench/pull.sh [TOTAL_MB]   (env RUNS=N)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOTAL_MB=${1:-60}
RUNS=${RUNS:-5}

command -v skopeo >/dev/null || { echo "bench/pull.sh: skopeo is not installed (apt-get install skopeo)" >&2; exit 2; }
[ -f dist/cli/main.js ] || npm run build >/dev/null

WORK=$(mktemp -d /tmp/orch-bench-pull.XXXXXX)
REG_PID=
cleanup() {
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat >"$WORK/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/storage
http:
  addr: 127.0.0.1:$PORT
YAML
/usr/bin/docker-registry serve "$WORK/config.yml" 2>"$WORK/registry.log" &
REG_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
  node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$PORT/v2/" 2>/dev/null && break
  sleep 0.1
done

read -r DIGEST SIZE LAYERS < <(node bench/push-bench-image.mjs "127.0.0.1:$PORT" bench/big:latest "$TOTAL_MB")
REF="127.0.0.1:$PORT/bench/big:latest"
echo "image: $REF $DIGEST"
echo "       $LAYERS layers, $((SIZE / 1024 / 1024)) MiB compressed; $RUNS cold runs each"

now_ms() { date +%s%3N; }
ORCH=()
SKOP=()
for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/cache" "$WORK/oci"
  sync
  t0=$(now_ms)
  out=$(ORCHESTRATOR_CACHE="$WORK/cache" node "$ROOT/bin/orchestrator.js" pull -q "docker://$REF")
  t1=$(now_ms)
  [ "$out" = "$DIGEST" ] || { echo "orchestrator pull printed '$out', expected $DIGEST" >&2; exit 1; }
  ORCH+=($((t1 - t0)))

  rm -rf "$WORK/cache" "$WORK/oci"
  sync
  t0=$(now_ms)
  skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$WORK/oci:latest" >/dev/null
  t1=$(now_ms)
  SKOP+=($((t1 - t0)))
done

node - "${ORCH[*]}" "${SKOP[*]}" "$SIZE" <<'JS'
const [o, s, size] = process.argv.slice(2);
const stats = (t) => {
  const v = t.split(' ').map(Number).sort((a, b) => a - b);
  return { median: v[Math.floor(v.length / 2)], min: v[0], max: v[v.length - 1], all: v };
};
const a = stats(o), b = stats(s);
const mibs = (ms) => ((Number(size) / 1048576) / (ms / 1000)).toFixed(0);
const row = (name, x) => `${name.padEnd(22)} median ${String(x.median).padStart(6)} ms  min ${String(x.min).padStart(6)}  max ${String(x.max).padStart(6)}  (${mibs(x.median)} MiB/s)`;
console.log(row('orchestrator pull', a));
console.log(row('skopeo copy oci:', b));
console.log(`ratio orchestrator/skopeo (median): ${(a.median / b.median).toFixed(2)}`);
JS
