#!/usr/bin/env bash
# Squashfs export, on the same sandbox folder (busybox + /usr/share/perl, ~20 MiB, ~1,400 files):
#   - `orchestrator build --force OUT.simg SANDBOX` (cache warm, so the build is the source's tree
#     digest, a cached metadata step and the export by our writer, whose block cache is warm after
#     the first run too) vs bare `mksquashfs SANDBOX OUT -noappend`;
#   - the export phase alone: bench/export-driver.mjs calls exportSquashfs (our writer,
#     native/squashfs, at an offset with no block cache: a cold write; launch line, fsync, rename),
#     timed inside Node, vs the same bare mksquashfs.
# Runs interleaved; median/min/max of RUNS (default 5). Goal (issue 10): export <= 1.05x mksquashfs.
. "$(dirname "$0")/lib.sh"
bench_init export

SB="$WORK/sandbox"
mkdir -p "$SB/bin" "$SB/usr/share" "$SB/tmp" "$SB/etc"
cp /bin/busybox "$SB/bin/busybox"
for a in sh ls cat true echo; do ln -s busybox "$SB/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$SB/etc/passwd"
cp -a /usr/share/perl "$SB/usr/share/perl"
files=$(find "$SB" | wc -l)
mib=$(du -sm "$SB" | cut -f1)
echo "export: sandbox of $files entries, $mib MiB; $RUNS runs each"
export ORCHESTRATOR_CACHE="$WORK/cache"
(cd "$WORK" && "${ORCH[@]}" build -q --force out.simg sandbox >/dev/null 2>&1) # fills the cache (metadata step)

for i in $(seq 1 "$RUNS"); do
  (cd "$WORK" && time_ms "$WORK/t-build" "${ORCH[@]}" build -q --force out.simg sandbox)
  rm -f "$WORK/bare.sqfs"
  time_ms "$WORK/t-bare" mksquashfs "$SB" "$WORK/bare.sqfs" -noappend -no-progress -quiet
  node "$BENCH_DIR/export-driver.mjs" "$SB" "$WORK/export.simg" >>"$WORK/t-export"
  rm -f "$WORK/bare.sqfs"
  time_ms "$WORK/t-bare2" mksquashfs "$SB" "$WORK/bare.sqfs" -noappend -no-progress -quiet
done
record --id export-build --figure "orchestrator build --force OUT.simg SANDBOX ($mib MiB, $files entries)" --ours "$WORK/t-build" \
  --peer-name "mksquashfs SANDBOX OUT -noappend" --peer "$WORK/t-bare" --goal "(information; build = tree digest + export)" --goal-kind none
record --id export-squashfs --figure "squashfs export phase alone (exportSquashfs) on the same tree" --ours "$WORK/t-export" \
  --peer-name "mksquashfs SANDBOX OUT -noappend" --peer "$WORK/t-bare2" --goal "<= 1.05x mksquashfs" --goal-kind ratio --goal-limit 1.05
