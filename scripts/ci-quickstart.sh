#!/usr/bin/env bash
# CI, after the tests: the README's quick start end to end on this machine, then the README's
# Singularity flow, each command as the README shows it. Fails on the first surprise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
orchestrator() { node "$root/bin/orchestrator.js" "$@"; }
say() { printf '\n== %s\n' "$*"; }
expect_in() { grep -qF -- "$1" <<<"$2" || { echo "expected '$1' in:"; echo "$2"; exit 1; }; }

start=$(date +%s)
say "quick start: bash scripts/quickstart.sh"
qlog=$(mktemp)
bash scripts/quickstart.sh 2>&1 | tee "$qlog"
expect_in "Hello, world!" "$(cat "$qlog")"
rm -f "$qlog"
echo "quick start took $(( $(date +%s) - start )) s"

say "a second up has nothing to do"
t0=$(date +%s%N)
out=$(orchestrator up -C examples/quickstart --progress plain)
t1=$(date +%s%N)
echo "$out"
expect_in "built 0, fresh 3, failed 0, skipped 0" "$out"
echo "second up: $(( (t1 - t0) / 1000000 )) ms"

cd examples/quickstart
say "the Singularity flow (README)"
orchestrator up dev
echo 'echo made-in-the-shell > /from-shell.txt' | orchestrator shell --writable build/dev/
test "$(cat build/dev/from-shell.txt)" = made-in-the-shell
set +e
out=$(orchestrator up dev --progress plain 2>&1)
code=$?
set -e
echo "$out"
test "$code" = 1
expect_in "sandbox build/dev/ was modified by hand since it was built (1 change):" "$out"
expect_in "A from-shell.txt" "$out"
orchestrator up --force dev
orchestrator up hello
test "$(orchestrator run dist/hello.simg "Hi there")" = "Hi there"
rm -rf copy
orchestrator build --sandbox copy/ dist/hello.simg
test "$(orchestrator exec copy/ hello)" = "Hello, world!"
orchestrator plan
orchestrator up --progress plain
orchestrator plan --json > /dev/null
orchestrator up --progress json | tail -n 1 | grep -q '"type":"run-done"'
orchestrator inspect --labels dist/hello.simg
rm -rf copy

say "watch mode (README): a copy of the quick start, edit %runscript, see the rebuild, Ctrl-C"
work=$(mktemp -d)
cp -a orchestrator.yaml recipes "$work/"
cd "$work"
log="$work/watch.log"
: >"$log"
orchestrator up --watch > "$log" 2>&1 &
watcher=$!
# wait_for TEXT [N]: until TEXT is in the log N times (default 1); 5 minutes at most.
wait_for() { for _ in $(seq 1 600); do [ "$(grep -cF -- "$1" "$log")" -ge "${2:-1}" ] && return 0; sleep 0.5; done; cat "$log"; exit 1; }
wait_for "watch: waiting for changes"
sed -i 's/exec hello --greeting="${1:-$GREETING}"/exec hello --greeting="${1:-$GREETING} (watch)"/' recipes/hello.def
wait_for "watch: 1 file changed (recipes/hello.def)"
wait_for "built 3, fresh 0" 2
# $! is the subshell that runs the orchestrator function; Ctrl-C goes to its node process.
pkill -INT -P "$watcher"
set +e
wait "$watcher"
code=$?
set -e
test "$code" = 130
test "$(orchestrator run dist/hello.simg)" = "Hello, world! (watch)"
cd "$root"
rm -rf "$work"
echo "quick start and flow: $(( $(date +%s) - start )) s"
