#!/usr/bin/env bash
# `orchestrator exec IMAGE true` on a squashfs image vs `true` on the host, interleaved, so that load
# from other processes hits all columns alike; also Node's start-up alone and the starter alone
# (loop + overlay + pivot + sh, no JS), to show where the time goes. Median/min/max of RUNS
# (default 20 here). Goal (issue 10): overhead (exec minus host) < 100 ms. Needs root (loop devices).
. "$(dirname "$0")/lib.sh"
RUNS=${EXEC_RUNS:-20}
bench_init exec

T="$WORK/tree"
mkdir -p "$T/bin" "$T/.singularity.d/env" "$T/proc" "$T/sys" "$T/dev" "$T/tmp"
cp /bin/busybox "$T/bin/busybox"
for a in sh true cat; do ln -s busybox "$T/bin/$a"; done
echo '#!/bin/sh' >"$T/.singularity.d/env/90-environment.sh"
mksquashfs "$T" "$WORK/fs.sqfs" -noappend -quiet -no-progress >/dev/null
{ printf '#!/usr/bin/env run-singularity\n'; cat "$WORK/fs.sqfs"; } >"$WORK/bench.simg"
image="$WORK/bench.simg"
S="$WORK/s"
mkdir -p "$S"
STARTER="$ROOT/native/starter/starter"
run_starter() {
  "$STARTER" --session "$S" size=16m --mkdir "$S/i" --mkdir "$S/u" --mkdir "$S/w" --mkdir "$S/r" \
    --image squashfs "$image" 31 "$S/i" ro --overlay "$S/r" "$S/i" "$S/u" "$S/w" --pivot "$S/r" --env PATH=/bin \
    -- /bin/sh -c 'for s in /.singularity.d/env/*.sh; do . $s; done; exec "$@"' exec true
}
export ORCHESTRATOR_CACHE="$WORK/cache"
"${ORCH[@]}" exec "$image" true # warm-up (page cache)
echo "exec: $RUNS runs each"
for ((i = 0; i < RUNS; i++)); do
  time_ms "$WORK/host" /bin/true
  time_ms "$WORK/node" node -e ''
  [ -x "$STARTER" ] && time_ms "$WORK/starter" run_starter
  time_ms "$WORK/orch" "${ORCH[@]}" exec "$image" true
done
record --id exec --figure "exec IMAGE true (squashfs image), overhead over host true" --ours "$WORK/orch" \
  --peer-name "/bin/true on the host" --peer "$WORK/host" --goal "overhead < 100 ms" --goal-kind overhead-ms --goal-limit 100
record --id exec-node --figure "of which: node -e '' (Node start-up alone)" --ours "$WORK/node" --goal "(information)" --goal-kind none
[ -x "$STARTER" ] && record --id exec-starter --figure "of which: the starter alone (loop, overlay, pivot, sh)" --ours "$WORK/starter" --goal "(information)" --goal-kind none
exit 0
