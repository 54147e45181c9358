#!/usr/bin/env bash
# SIF build vs .simg build of the same target: `orchestrator build --force OUT.sif SANDBOX` vs
# `orchestrator build --force OUT.simg SANDBOX` on the same sandbox folder as export.sh (busybox +
# /usr/share/perl, ~20 MiB, ~1,400 files), cache warm, so each is the tree digest, a cached
# metadata step and the export. The SIF export is the same squashfs export into a temporary file,
# read back for the definition file and labels, then copied into the SIF at its aligned offset:
# its overhead is that copy. Runs interleaved; median/min/max of RUNS (default 5).
. "$(dirname "$0")/lib.sh"
bench_init sif

SB="$WORK/sandbox"
mkdir -p "$SB/bin" "$SB/usr/share" "$SB/tmp" "$SB/etc"
cp /bin/busybox "$SB/bin/busybox"
for a in sh ls cat true echo; do ln -s busybox "$SB/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$SB/etc/passwd"
cp -a /usr/share/perl "$SB/usr/share/perl"
files=$(find "$SB" | wc -l)
mib=$(du -sm "$SB" | cut -f1)
echo "sif: sandbox of $files entries, $mib MiB; $RUNS runs each"
export ORCHESTRATOR_CACHE="$WORK/cache"
(cd "$WORK" && "${ORCH[@]}" build -q --force out.simg sandbox >/dev/null 2>&1) # fills the cache (metadata step)

for i in $(seq 1 "$RUNS"); do
  (cd "$WORK" && time_ms "$WORK/t-sif" "${ORCH[@]}" build -q --force out.sif sandbox)
  (cd "$WORK" && time_ms "$WORK/t-simg" "${ORCH[@]}" build -q --force out.simg sandbox)
done
simg_bytes=$(stat -c %s "$WORK/out.simg")
sif_bytes=$(stat -c %s "$WORK/out.sif")
echo "sif: out.simg $simg_bytes bytes, out.sif $sif_bytes bytes"
record --id sif-build --figure "orchestrator build --force OUT.sif SANDBOX ($mib MiB, $files entries; SIF $sif_bytes B, .simg $simg_bytes B)" --ours "$WORK/t-sif" \
  --peer-name "orchestrator build --force OUT.simg SANDBOX" --peer "$WORK/t-simg" --goal "<= 1.10x the .simg build (the SIF overhead is noise)" --goal-kind ratio --goal-limit 1.10
