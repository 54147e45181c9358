#!/usr/bin/env bash
# Builds, side by side from the same local registry (base: bench/push-base-image.mjs, busybox +
# 2,000 small files):
#   cold  - `orchestrator build --sandbox` of a recipe (Bootstrap docker, %post making ~500 files and
#           8 MiB, %environment, %runscript), empty cache, vs the same as a Containerfile (FROM, RUN,
#           ENV, CMD) with `podman build` and `buildah bud`, empty storage (both pull the base);
#   rebuild after editing only %runscript: a sandbox target of a manifest (`orchestrator up dev`,
#           which updates the sandbox in place) and a squashfs image (`orchestrator build`), vs podman
#           after editing only an ENV line (every run a new value, so nothing is a cache hit by accident).
# podman and buildah run with --isolation chroot: their OCI runtime (crun) refuses this host's
# hybrid cgroup v1/v2 layout ("cgroups in hybrid mode not supported"); chroot isolation is the
# lighter of the two, so it favours the peer. Storage: overlay, in a folder of this run.
# Goals (issue 10): sandbox rebuild <= podman's ENV-only rebuild; squashfs rebuild bounded by the
# export alone (at most 500 ms over bare mksquashfs of the result: Node start-up, recipe, cache
# look-ups, the metadata step, the mount session).
. "$(dirname "$0")/lib.sh"
bench_init build

start_registry
node "$BENCH_DIR/push-base-image.mjs" "$REG_HOST" bench/base:latest >/dev/null
BASE="$REG_HOST/bench/base:latest"
P="$WORK/p"
mkdir -p "$P"
POST='mkdir -p /opt/app/data
    i=0
    while [ $i -lt 500 ]; do echo "generated file $i" > /opt/app/data/f$i.txt; i=$((i + 1)); done
    head -c 8388608 /dev/zero > /opt/app/blob
    echo built > /opt/app/stamp'
recipe() { # recipe RUNSCRIPT_TAG
  cat >"$P/bench.def" <<DEF
Bootstrap: docker
From: $BASE

%post
    $POST

%environment
    export APP_MODE=bench
    export APP_HOME=/opt/app

%runscript
    echo "run $1"
    exec /bin/sh "\$@"
DEF
}
containerfile() { # containerfile ENV_TAG
  cat >"$P/Containerfile" <<CF
FROM $BASE
RUN $(printf '%s' "$POST" | sed 's/^    /    /; s/$/ \\/' | sed '$ s/ \\$//' | sed 's/^\(    i=0\) \\$/\1; \\/; s/^\(    mkdir.*\) \\$/\1 \&\& \\/; s/^\(    while.*done\) \\$/\1; \\/; s/^\(    head.*\) \\$/\1 \&\& \\/')
ENV APP_MODE=bench APP_HOME=/opt/app TAG=$1
CMD ["/bin/sh", "-c", "echo run; exec /bin/sh"]
CF
}
recipe v0
containerfile v0
export ORCHESTRATOR_CACHE="$WORK/cache"
orch_build() { (cd "$P" && "${ORCH[@]}" build -q "$@"); }
# The dev sandbox as a project target: `up` keeps its state, so a rebuild updates it in place.
orch_up() { (cd "$P" && "${ORCH[@]}" up --progress plain "$@"); }
# A rebuild must have run no %post: the build's summary line counts the steps it ran.
check_rebuild() {
  grep -q '1 step run' "$WORK/last.log" || { echo "bench: the rebuild ran more than the metadata step:" >&2; cat "$WORK/last.log" >&2; return 1; }
}

# ---- podman / buildah set-up ----
have_podman=yes
have_buildah=yes
need podman podman || have_podman=
need buildah buildah || have_buildah=
pod() { podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver overlay "$@"; }
bah() { buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" --storage-driver overlay "$@"; }
reset_podman() { pod system reset -f >/dev/null 2>&1 || true; umount -R "$WORK/podman/root/overlay" 2>/dev/null || true; rm -rf "$WORK/podman"; }
reset_buildah() { bah rmi -a -f >/dev/null 2>&1 || true; umount -R "$WORK/buildah/root/overlay" 2>/dev/null || true; rm -rf "$WORK/buildah"; }
on_exit reset_podman
on_exit reset_buildah
pod_build() { pod build --isolation chroot --tls-verify=false -t bench:latest -f "$P/Containerfile" "$P"; }
bah_build() { bah bud --isolation chroot --tls-verify=false -t bench:latest -f "$P/Containerfile" "$P"; }
if [ -n "$have_podman" ]; then
  reset_podman
  pod_build >"$WORK/podman-try.log" 2>&1 || { have_podman=; why_podman="podman build failed here: $(tail -1 "$WORK/podman-try.log")"; }
  reset_podman
else
  why_podman="podman is not installed and apt-get failed"
fi
if [ -n "$have_buildah" ]; then
  reset_buildah
  bah_build >"$WORK/buildah-try.log" 2>&1 || { have_buildah=; why_buildah="buildah bud failed here: $(tail -1 "$WORK/buildah-try.log")"; }
  reset_buildah
else
  why_buildah="buildah is not installed and apt-get failed"
fi

# ---- cold builds ----
echo "build: cold builds, $RUNS runs each"
for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/cache" "$P/out"; sync
  time_ms "$WORK/t-cold" orch_build --sandbox out/ bench.def
  if [ -n "$have_podman" ]; then reset_podman; sync; time_ms "$WORK/t-cold-podman" pod_build; reset_podman; fi
  if [ -n "$have_buildah" ]; then reset_buildah; sync; time_ms "$WORK/t-cold-buildah" bah_build; reset_buildah; fi
done
[ -x "$P/out/bin/busybox" ] && [ -f "$P/out/opt/app/stamp" ] || { echo "bench: the cold build's sandbox lacks its files" >&2; exit 1; }
FIGC=(--id build-cold --figure "cold build of a recipe (FROM base, %post 500 files + 8 MiB, ENV, runscript) to a sandbox" --ours "$WORK/t-cold"
  --goal "(information)" --goal-kind none)
if [ -n "$have_podman" ]; then record "${FIGC[@]}" --peer-name "podman build (chroot isolation)" --peer "$WORK/t-cold-podman"
else record "${FIGC[@]}" --peer-name "podman build" --peer-unavailable "$why_podman"; fi
FIGB=(--id build-cold-buildah --figure "cold build, vs buildah" --ours "$WORK/t-cold" --goal "(information)" --goal-kind none)
if [ -n "$have_buildah" ]; then record "${FIGB[@]}" --peer-name "buildah bud (chroot isolation)" --peer "$WORK/t-cold-buildah"
else record "${FIGB[@]}" --peer-name "buildah bud" --peer-unavailable "$why_buildah"; fi

# ---- rebuilds after a runscript-only / ENV-only edit ----
echo "build: rebuilds after one edit, $RUNS runs each"
printf 'version: 1\ntargets:\n  dev:\n    recipe: bench.def\n    format: sandbox\n    output: dev/\n' >"$P/orchestrator.yaml"
orch_up dev >/dev/null 2>&1
orch_build --sandbox --force out/ bench.def >/dev/null 2>&1
orch_build --force out.simg bench.def >/dev/null 2>&1
[ -n "$have_podman" ] && pod_build >/dev/null 2>&1
for i in $(seq 1 "$RUNS"); do
  recipe "s$i-$RANDOM"
  time_ms "$WORK/t-re-sandbox" orch_up dev
  check_rebuild
  grep -q 'sandbox updated in place' "$WORK/last.log" || { echo "bench: the sandbox was not updated in place:" >&2; cat "$WORK/last.log" >&2; exit 1; }
  recipe "q$i-$RANDOM"
  time_ms "$WORK/t-re-squashfs" orch_build --force out.simg bench.def
  check_rebuild
  rm -f "$WORK/bare.sqfs"
  time_ms "$WORK/t-mksquashfs" mksquashfs "$P/out" "$WORK/bare.sqfs" -noappend -no-progress -quiet
  if [ -n "$have_podman" ]; then
    containerfile "e$i-$RANDOM"
    time_ms "$WORK/t-re-podman" pod_build
    grep -q 'Using cache' "$WORK/last.log" || { echo "bench: podman did not reuse its RUN layer:" >&2; cat "$WORK/last.log" >&2; exit 1; }
  fi
done
med() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
FIGS=(--id rebuild-sandbox --figure "rebuild after editing only %runscript, sandbox target (up)" --ours "$WORK/t-re-sandbox"
  --goal "<= podman's ENV-only rebuild" --goal-kind ratio --goal-limit 1.0)
if [ -n "$have_podman" ]; then record "${FIGS[@]}" --peer-name "podman build after editing only ENV" --peer "$WORK/t-re-podman"
else record "${FIGS[@]}" --peer-name "podman build after editing only ENV" --peer-unavailable "$why_podman"; fi
record --id rebuild-squashfs --figure "rebuild after editing only %runscript, squashfs target" --ours "$WORK/t-re-squashfs" \
  --peer-name "bare mksquashfs of the built sandbox" --peer "$WORK/t-mksquashfs" \
  --goal "bounded by the export: at most 500 ms over bare mksquashfs" --goal-kind overhead-ms --goal-limit 500
