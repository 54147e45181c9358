#!/usr/bin/env bash
# The quick start's base (Bootstrap: debootstrap, OSVersion: bookworm, minbase) made by
# `debootstrap --variant=minbase` vs `mmdebstrap --mode=root --variant=minbase`, as root, side by
# side and interleaved (load from other processes hits both alike). Median/min/max of RUNS
# (default 3 here; each run is about 0.5-3 min). The mirror is the host's, read from its apt
# configuration here as the tool does. Nothing is cached between runs: both tools download every
# .deb from the mirror each time (debootstrap into the target, mmdebstrap into its own temp folder),
# so the network counts in both columns. Needs root.
. "$(dirname "$0")/lib.sh"
RUNS=${BOOTSTRAP_RUNS:-3}
SUITE=${BOOTSTRAP_SUITE:-bookworm}
bench_init debian-bootstrap
need debootstrap debootstrap
need mmdebstrap mmdebstrap

# The first 'deb' URI of the host's apt configuration that serves SUITE (else the first at all).
mirror=$(node --input-type=module -e "
  const { hostAptMirror } = await import('$ROOT/dist/builder/host-apt-mirror.js');
  const m = await hostAptMirror('$SUITE');
  if (m) console.log(m.uri);")
[ -n "$mirror" ] || { echo "bench: no 'deb' source in /etc/apt" >&2; exit 1; }

echo "debian-bootstrap: $RUNS runs each of $SUITE minbase"
for ((i = 0; i < RUNS; i++)); do
  rm -rf "$WORK/d" "$WORK/m"
  time_ms "$WORK/debootstrap" debootstrap --variant=minbase "$SUITE" "$WORK/d" "$mirror"
  rm -rf "$WORK/d"
  time_ms "$WORK/mmdebstrap" mmdebstrap --mode=root --variant=minbase "$SUITE" "$WORK/m" "$mirror"
  rm -rf "$WORK/m"
  echo "  run $((i + 1)): debootstrap $(tail -1 "$WORK/debootstrap") ms, mmdebstrap $(tail -1 "$WORK/mmdebstrap") ms"
done
record --id debian-bootstrap --figure "$SUITE minbase root: mmdebstrap --mode=root (ours) vs debootstrap" \
  --ours "$WORK/mmdebstrap" --peer-name debootstrap --peer "$WORK/debootstrap" \
  --goal "mmdebstrap faster than debootstrap (ratio < 1)" --goal-kind ratio --goal-limit 1
