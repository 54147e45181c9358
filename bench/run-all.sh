#!/usr/bin/env bash
# `npm run bench`: runs every benchmark (each also runnable alone), then collects their JSON records
# (bench/work/results/*.json) into bench/results.json and bench/RESULTS.md, and prints the table.
# Run as root on a machine with the Debian packages of scripts/install-system-deps.sh; the peers
# (skopeo, umoci, podman, buildah) are installed with apt-get when missing. Never part of `npm test`.
# Usage: bench/run-all.sh [NAME...]   (default: all; RUNS=N sets the runs of each figure)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
[ "$(id -u)" = 0 ] || echo "bench: not root; the build, export and exec figures need root" >&2
npm run build >/dev/null || { echo "bench: npm run build failed" >&2; exit 1; }
mkdir -p bench/work/logs bench/work/results
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(pull unpack export build exec noop noop-matrix sif remote-cache rootless)
status=0
for n in "${names[@]}"; do
  echo "== bench/$n.sh"
  start=$(date +%s)
  if bash "bench/$n.sh" 2>&1 | tee "bench/work/logs/$n.log"; then
    echo "   ($(($(date +%s) - start)) s)"
  else
    echo "bench: bench/$n.sh failed; its log: bench/work/logs/$n.log" >&2
    node bench/record.mjs --out "bench/work/results/$n.json" --bench "$n" --id "$n-failed" --figure "bench/$n.sh" \
      --ours-unavailable "the script failed: $(grep -v '^\s*$' "bench/work/logs/$n.log" | tail -1 | cut -c1-200)" --goal-kind none >/dev/null
    status=1
  fi
done
node bench/report.mjs
exit $status
