#!/usr/bin/env bash
# The no-op `orchestrator up` of bench/noop.sh, with its 100 targets written as one 10x10 matrix
# (issue 19): one recipe, `matrix: {a: [0..9], b: [0..9]}`, `name: t{{ a }}{{ b }}`, each variant's
# %files copying its own 10 inputs (1,000 in all) through {{ a }}{{ b }} in the paths. Everything
# is built once, then the no-op run is timed as in noop.sh: answered from the witness (the goal),
# then the full check with the witness removed, and with the parsed manifest removed too (the
# matrix expanded again). Median/min/max of RUNS (default 10 here). Goal: < 150 ms.
. "$(dirname "$0")/lib.sh"
RUNS=${NOOP_RUNS:-10}
bench_init noop-matrix

P="$WORK/project"
mkdir -p "$P/recipes" "$P/base/bin" "$P/base/tmp" "$P/base/etc"
cp /bin/busybox "$P/base/bin/busybox"
for a in sh ls cat cp mkdir true; do ln -s busybox "$P/base/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$P/base/etc/passwd"
for t in $(seq -w 0 99); do
  mkdir -p "$P/inputs/t$t"
  for f in $(seq 0 9); do echo "input $f of target $t" >"$P/inputs/t$t/f$f.txt"; done
done
{
  echo '%files'
  # %files sources are relative to the recipe's folder.
  for f in $(seq 0 9); do echo "    ../inputs/t{{ a }}{{ b }}/f$f.txt /opt/f$f.txt"; done
  echo
  echo '%runscript'
  echo '    echo target {{ a }}{{ b }}'
} >"$P/recipes/t.def"
cat >"$P/orchestrator.yaml" <<'YAML'
version: 1
targets:
  t:
    from: base/
    recipe: recipes/t.def
    format: sandbox
    matrix:
      a: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
      b: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    name: t{{ a }}{{ b }}
YAML
echo "noop-matrix: 100 targets as a 10x10 matrix, 1,000 input files; $RUNS runs each"
(cd "$P" && "${ORCH[@]}" validate >"$WORK/validate.log" 2>&1) || { echo "bench: the generated manifest does not validate:" >&2; cat "$WORK/validate.log" >&2; exit 1; }
grep -q '^ok: 100 targets' "$WORK/validate.log" || { echo "bench: the matrix does not make 100 targets:" >&2; cat "$WORK/validate.log" >&2; exit 1; }

FIG=(--id noop-up-matrix --figure "no-op up on 100 targets written as a 10x10 matrix (1,000 input files)" --goal "< 150 ms" --goal-kind ms --goal-limit 150)
export ORCHESTRATOR_CACHE="$WORK/cache"
(cd "$P" && "${ORCH[@]}" up >"$WORK/up.log" 2>&1) || { echo "bench: the first orchestrator up failed:" >&2; tail -20 "$WORK/up.log" >&2; exit 1; }
(cd "$P" && "${ORCH[@]}" up >"$WORK/up.log" 2>&1) || { echo "bench: the first no-op up failed:" >&2; tail -20 "$WORK/up.log" >&2; exit 1; }
grep -q '^built 0, fresh 100, failed 0' "$WORK/up.log" || { echo "bench: the first no-op up did not find all fresh:" >&2; tail -5 "$WORK/up.log" >&2; exit 1; }
for ((i = 0; i < RUNS; i++)); do
  (cd "$P" && time_ms "$WORK/up" "${ORCH[@]}" up)
  (cd "$P" && rm -f .orchestrator/witness.json && time_ms "$WORK/up-full" "${ORCH[@]}" up)
  (cd "$P" && rm -f .orchestrator/witness.json .orchestrator/parsed.json && time_ms "$WORK/up-parse" "${ORCH[@]}" up)
done
grep -q '^built 0, fresh 100, failed 0' "$WORK/last.log" || { echo "bench: a timed no-op up did not find all fresh:" >&2; tail -5 "$WORK/last.log" >&2; exit 1; }
record "${FIG[@]}" --ours "$WORK/up"
record --id noop-up-matrix-full --figure "no-op up on the 10x10 matrix, full check (no witness)" --goal "none (informational)" --goal-kind none --ours "$WORK/up-full"
record --id noop-up-matrix-parse --figure "no-op up on the 10x10 matrix, full check and manifest parse with the expansion" --goal "none (informational)" --goal-kind none --ours "$WORK/up-parse"
