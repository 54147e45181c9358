#!/usr/bin/env bash
# `orchestrator exec IMAGE true` on a squashfs image vs `true` on the host: median of N runs each,
# measured side by side in one run. Goal (issue 5): under 100 ms of overhead. Needs root (loop
# devices), mksquashfs and busybox-static, and `npm run build` first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
runs=${RUNS:-20}
work="$here/work/exec"
rm -rf "$work"
mkdir -p "$work/tree/bin" "$work/tree/.singularity.d/env" "$work/tree/proc" "$work/tree/sys" "$work/tree/dev" "$work/tree/tmp"
cp /bin/busybox "$work/tree/bin/busybox"
for a in sh true cat; do ln -s busybox "$work/tree/bin/$a"; done
echo '#!/bin/sh' > "$work/tree/.singularity.d/env/90-environment.sh"
mksquashfs "$work/tree" "$work/fs.sqfs" -noappend -quiet -no-progress >/dev/null
{ printf '#!/usr/bin/env run-singularity\n'; cat "$work/fs.sqfs"; } > "$work/bench.simg"
image="$work/bench.simg"

# One run of each command per round, interleaved, so that load from other processes on the
# machine hits all of them alike; the median of each column is reported.
time_us() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000)); }
median() { sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000}'; }
mkdir -p "$work/s"
S="$work/s"
run_starter() {
  "$root/native/starter/starter" --session "$S" size=16m --mkdir "$S/i" --mkdir "$S/u" --mkdir "$S/w" --mkdir "$S/r" \
    --image squashfs "$image" 31 "$S/i" ro --overlay "$S/r" "$S/i" "$S/u" "$S/w" --pivot "$S/r" --env PATH=/bin \
    -- /bin/sh -c 'for s in /.singularity.d/env/*.sh; do . $s; done; exec "$@"' exec true
}
node "$root/bin/orchestrator.js" exec "$image" true # warm up (page cache)
: >"$work/host" >"$work/node" >"$work/starter" >"$work/orch"
for ((i = 0; i < runs; i++)); do
  time_us true >>"$work/host"
  time_us node -e '' >>"$work/node"
  time_us run_starter >>"$work/starter"
  time_us node "$root/bin/orchestrator.js" exec "$image" true >>"$work/orch"
done
host=$(median <"$work/host")
bare_node=$(median <"$work/node")
starter=$(median <"$work/starter")
orch=$(median <"$work/orch")
overhead=$(awk -v a="$orch" -v b="$host" 'BEGIN { printf "%.1f", a - b }')
ours=$(awk -v a="$orch" -v b="$bare_node" -v c="$starter" 'BEGIN { printf "%.1f", a - b - c }')
cat <<REPORT
exec benchmark (median of $runs runs, $(nproc) cores)
  host: true                                   $host ms
  node -e '' (Node start-up alone)             $bare_node ms
  starter alone (loop+overlay+pivot+sh)        $starter ms
  orchestrator exec IMAGE true (squashfs)      $orch ms
  overhead over the command                    $overhead ms (goal < 100 ms)
  of which JS beyond Node start-up and starter $ours ms
REPORT
rm -rf "$work"
