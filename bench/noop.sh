#!/usr/bin/env bash
# No-op `orchestrator up` on 100 targets vs `make` on the equivalent Makefile. The project: 100
# sandbox targets, each `from:` a local busybox sandbox folder (no registry) with a recipe whose
# %files copies 10 input files (1,000 in all). Everything is built once, then the no-op run
# (nothing changed) is timed, interleaved with `make -s` on a Makefile with the same targets and
# inputs (outputs in mk/ so the two never touch each other's files; a stamp per target).
# Median/min/max of RUNS (default 10 here). Goal (issue 7): < 150 ms. The manifest has no groups:
# `orchestrator up` with no names is expected to build every target.
#
# Three figures. The first is the no-op `up` as it is run again and again: answered from the
# witness the last all-fresh run left (src/freshness/witness.ts). The second is the full check, which
# is what the first `up` after a touch of an input or an output does: the witness is removed
# before each of those runs (the manifest and recipes still come from .orchestrator/parsed.json).
# The third removes that too: the first `up` after a touch of the manifest or a recipe.
. "$(dirname "$0")/lib.sh"
RUNS=${NOOP_RUNS:-10}
bench_init noop

P="$WORK/project"
mkdir -p "$P/recipes" "$P/base/bin" "$P/base/tmp" "$P/base/etc"
cp /bin/busybox "$P/base/bin/busybox"
for a in sh ls cat cp mkdir true; do ln -s busybox "$P/base/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$P/base/etc/passwd"
{
  echo 'version: 1'
  echo 'targets:'
} >"$P/orchestrator.yaml"
{
  echo 'TARGETS :='
  echo "MAKEFLAGS += --no-builtin-rules --no-builtin-variables"
  echo ".SUFFIXES:"
  echo ".PHONY: all targets"
  echo "all: targets"
} >"$P/Makefile"
for t in $(seq -w 0 99); do
  mkdir -p "$P/inputs/t$t"
  files=()
  for f in $(seq 0 9); do
    echo "input $f of target $t" >"$P/inputs/t$t/f$f.txt"
    files+=("inputs/t$t/f$f.txt")
  done
  {
    echo '%files'
    # %files sources are relative to the recipe's folder.
    for f in "${files[@]}"; do echo "    ../$f /opt/$(basename "$f")"; done
    echo
    echo '%runscript'
    echo "    echo target $t"
  } >"$P/recipes/t$t.def"
  cat >>"$P/orchestrator.yaml" <<YAML
  t$t:
    from: base/
    recipe: recipes/t$t.def
    format: sandbox
YAML
  cat >>"$P/Makefile" <<MK
TARGETS += mk/t$t/.stamp
mk/t$t/.stamp: recipes/t$t.def ${files[*]}
	@rm -rf mk/t$t && mkdir -p mk/t$t/opt && cp -a base/. mk/t$t/ && cp ${files[*]} mk/t$t/opt/ && touch \$@
MK
done
echo 'targets: $(TARGETS)' >>"$P/Makefile"
echo "noop: 100 targets, 1,000 input files; $RUNS runs each"
(cd "$P" && "${ORCH[@]}" validate >"$WORK/validate.log" 2>&1) || { echo "bench: the generated manifest does not validate:" >&2; cat "$WORK/validate.log" >&2; exit 1; }
(cd "$P" && make -s -j2)
(cd "$P" && make -q) || { echo "bench: make still has work after the first build: the Makefile is wrong" >&2; exit 1; }

FIG=(--id noop-up --figure "no-op up on 100 targets (1,000 input files)" --peer-name "make -s (same targets and inputs)" --goal "< 150 ms" --goal-kind ms --goal-limit 150)
export ORCHESTRATOR_CACHE="$WORK/cache"
if ! (cd "$P" && "${ORCH[@]}" up --help >/dev/null 2>&1); then
  for ((i = 0; i < RUNS; i++)); do (cd "$P" && time_ms "$WORK/make" make -s); done
  record "${FIG[@]}" --ours-unavailable "orchestrator up not built yet" --peer "$WORK/make"
  exit 0
fi
(cd "$P" && "${ORCH[@]}" up >"$WORK/up.log" 2>&1) || { echo "bench: the first orchestrator up failed:" >&2; tail -20 "$WORK/up.log" >&2; exit 1; }
# The build leaves the witness (it checks again once built); a first untimed no-op run must find
# all 100 fresh.
(cd "$P" && "${ORCH[@]}" up >"$WORK/up.log" 2>&1) || { echo "bench: the first no-op up failed:" >&2; tail -20 "$WORK/up.log" >&2; exit 1; }
grep -q '^built 0, fresh 100, failed 0' "$WORK/up.log" || { echo "bench: the first no-op up did not find all fresh:" >&2; tail -5 "$WORK/up.log" >&2; exit 1; }
for ((i = 0; i < RUNS; i++)); do
  (cd "$P" && time_ms "$WORK/up" "${ORCH[@]}" up)
  (cd "$P" && time_ms "$WORK/make" make -s)
  (cd "$P" && rm -f .orchestrator/witness.json && time_ms "$WORK/up-full" "${ORCH[@]}" up)
  (cd "$P" && rm -f .orchestrator/witness.json .orchestrator/parsed.json && time_ms "$WORK/up-parse" "${ORCH[@]}" up)
done
grep -q '^built 0, fresh 100, failed 0' "$WORK/last.log" || { echo "bench: a timed no-op up did not find all fresh:" >&2; tail -5 "$WORK/last.log" >&2; exit 1; }
record "${FIG[@]}" --ours "$WORK/up" --peer "$WORK/make"
record --id noop-up-full --figure "no-op up on 100 targets, full check (no witness: the first up after a touch)" --peer-name "make -s (same targets and inputs)" --goal "none (informational)" --goal-kind none --ours "$WORK/up-full" --peer "$WORK/make"
record --id noop-up-parse --figure "no-op up on 100 targets, full check and manifest parse (the first up after touching a recipe)" --peer-name "make -s (same targets and inputs)" --goal "none (informational)" --goal-kind none --ours "$WORK/up-parse" --peer "$WORK/make"
