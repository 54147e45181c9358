# Shared set-up for the bench scripts (sourced, not run). Each script:
#   . "$(dirname "$0")/lib.sh"; bench_init NAME
# then measures and calls `record ...` once per figure; its JSON goes to bench/work/results/NAME.json,
# which bench/run-all.sh collects. Needs root for the build, exec and export figures.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
ORCH=(node "$ROOT/bin/orchestrator.js")
RUNS=${RUNS:-5}
RESULTS_DIR="$BENCH_DIR/work/results"
BENCH_NAME=
WORK=
REG_PID=
REG_HOST=
CLEANUPS=()

bench_init() {
  BENCH_NAME=$1
  mkdir -p "$RESULTS_DIR" "$BENCH_DIR/work"
  WORK=$(mktemp -d "$BENCH_DIR/work/$BENCH_NAME.XXXXXX")
  rm -f "$RESULTS_DIR/$BENCH_NAME.json"
  trap bench_cleanup EXIT
  [ -f "$ROOT/dist/cli/main.js" ] || (cd "$ROOT" && npm run build >/dev/null)
}

# Runs at exit: the cleanups registered with `on_exit`, newest first, then the registry and WORK.
bench_cleanup() {
  local i
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[$i]}" || true; done
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
  [ -n "$WORK" ] && rm -rf "$WORK"
}
on_exit() { CLEANUPS+=("$1"); }

# need CMD DEBIAN_PACKAGE: installs the package with apt-get when CMD is missing. Returns 1 when
# it still is missing (no network, no root): the caller records "not available".
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "bench: installing $2 (apt-get -y install $2)" >&2
  { apt-get -y install "$2" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get -y install "$2" >/dev/null 2>&1; }; } || true
  command -v "$1" >/dev/null 2>&1
}

# Starts Debian's docker-registry on 127.0.0.1 and a free port; sets REG_HOST (127.0.0.1:PORT).
start_registry() {
  local port
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  mkdir -p "$WORK/registry"
  cat >"$WORK/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: 127.0.0.1:$port
YAML
  /usr/bin/docker-registry serve "$WORK/registry/config.yml" 2>"$WORK/registry/log" &
  REG_PID=$!
  REG_HOST=127.0.0.1:$port
  local _
  for _ in $(seq 1 200); do
    node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://$REG_HOST/v2/" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: docker-registry did not start:" >&2
  cat "$WORK/registry/log" >&2
  return 1
}

now_ns() { date +%s%N; }
# time_ms FILE CMD...: runs CMD (output to WORK/last.log) and appends its wall time in ms to FILE.
# A failing CMD stops the script with its log.
time_ms() {
  local file=$1 s e
  shift
  s=$(now_ns)
  if ! "$@" >"$WORK/last.log" 2>&1; then
    echo "bench: command failed: $*" >&2
    tail -20 "$WORK/last.log" >&2
    return 1
  fi
  e=$(now_ns)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.1f\n", (e - s) / 1e6 }' >>"$file"
}

# record --id ID --figure TEXT --ours FILE [--peer-name NAME (--peer FILE | --peer-unavailable WHY)]
#        [--goal TEXT --goal-kind ratio|ms|overhead-ms|none --goal-limit N] [--ours-unavailable WHY] [--note TEXT]
record() { node "$BENCH_DIR/record.mjs" --out "$RESULTS_DIR/$BENCH_NAME.json" --bench "$BENCH_NAME" "$@"; }
