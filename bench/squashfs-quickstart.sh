#!/usr/bin/env bash
# The export after a `%runscript` edit, through `orchestrator up`, on the quick start's production
# target (examples/quickstart, `hello`: Debian bookworm by debootstrap + GNU hello): our writer with
# its block cache vs `squashfs: {writer: mksquashfs}`, the same tree, the same way (the export
# phase's time from the `export-done` event, `--progress json`). Goal (issue 15): <= 0.3 s.
# A copy of the project in a temp folder with its own cache; the snapshots of ~/.cache/orchestrator
# are copied in when there are some, so debootstrap does not run again (else it runs, from the
# host's apt mirror). RUNS (default 3) edits per writer, the median is reported. Standalone: not in
# run-all.sh. Run as root after `npm run build`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root="$here/.."
RUNS=${RUNS:-3}
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/orchestrator-bench-quickstart.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cp -a "$root/examples/quickstart" "$WORK/qs"
mkdir -p "$WORK/cache"
[ -d "$HOME/.cache/orchestrator/snapshots" ] && cp -a "$HOME/.cache/orchestrator/snapshots" "$WORK/cache/"
export ORCHESTRATOR_CACHE="$WORK/cache"
cd "$WORK/qs"
orch() { node "$root/bin/orchestrator.js" "$@"; }
# The export's ms from the export-done event of `up hello --progress json`.
export_ms() {
  orch up hello --progress json | node -e '
    let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
      const e = s.trim().split("\n").map((l) => JSON.parse(l)).find((x) => x.type === "export-done");
      if (!e) { console.error("no export-done event"); process.exit(1); }
      console.log(e.ms, e.squashfs ? e.squashfs.reusedBytes : "", e.squashfs ? e.squashfs.compressedBytes : "");
    });'
}
edit=0
runscript_edit() {
  edit=$((edit + 1))
  sed -i "s/^    exec hello --greeting=.*/    exec hello --greeting=\"\${1:-\$GREETING}\" # edit $edit/" recipes/hello.def
}
sizes=()
t0=$(date +%s)
first=$(export_ms)
echo "quickstart: first build of hello ($(($(date +%s) - t0)) s; export $(echo "$first" | cut -d' ' -f1) ms, cold block cache); image $(stat -c %s dist/hello.simg) bytes"
for writer in orchestrator mksquashfs; do
  if [ "$writer" = mksquashfs ]; then
    sed -i 's|^    output: dist/hello.simg$|    output: dist/hello.simg\n    squashfs: {writer: mksquashfs}|' orchestrator.yaml
    runscript_edit
    export_ms >/dev/null # the writer changed: this build is the first with mksquashfs
  fi
  : >"$WORK/$writer"
  for i in $(seq 1 "$RUNS"); do
    runscript_edit
    export_ms >>"$WORK/$writer"
  done
  sizes[${#sizes[@]}]=$(stat -c %s dist/hello.simg)
done
median() { sort -n -k1 "$WORK/$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ours=$(median orchestrator)
mk=$(median mksquashfs)
echo "export after a %runscript edit (median of $RUNS): ours $ours ms (reused/compressed bytes of the last: $(tail -1 "$WORK/orchestrator" | cut -d' ' -f2-)), mksquashfs $mk ms; ours/mksquashfs $(awk -v a="$ours" -v b="$mk" 'BEGIN {printf "%.3f", a / b}')x; goal <= 300 ms"
echo "image bytes: ours ${sizes[0]}, mksquashfs ${sizes[1]} ($(awk -v a="${sizes[0]}" -v b="${sizes[1]}" 'BEGIN {printf "%.3f", a / b}')x)"
