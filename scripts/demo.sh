#!/usr/bin/env bash
# The end-to-end demo on the local test bed: builds Serin (release), starts the Kubernetes API
# stand-in, real Prometheus, a git daemon with a Flux-like sync loop and `serin controller`,
# then releases a healthy version (promoted step by step) and an erroring one (rolled back and
# reverted in Git), showing phase, weight and metric values live. Ends with the Git log.
# Installs what it needs on a fresh Debian machine (run as root, or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/install-deps.sh

echo "==> cargo build --release (serin, the test bed and the demo app)"
cargo build --locked --release --workspace --bins
exec target/release/serin-e2e-demo --serin target/release/serin "$@"
