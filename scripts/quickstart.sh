#!/usr/bin/env bash
# The quick start, on a fresh Debian/Ubuntu machine as root (Node.js >= 20 and npm installed):
# the system packages orchestrator uses, its npm dependencies and native build, then the
# example pipeline in examples/quickstart (a Debian bookworm image made by debootstrap, with GNU
# hello installed by apt-get), and a run of the production image it built.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh
npm ci --no-audit --no-fund
npx orchestrator up -C examples/quickstart
npx orchestrator run examples/quickstart/dist/hello.simg
