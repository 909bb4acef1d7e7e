#!/usr/bin/env bash
# Runs every test of Serin: formatting, lints, unit and integration tests.
# Installs what the tests need on a fresh Debian machine (run as root, or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages (git, prometheus, openssl, C libraries), when missing.
source scripts/install-deps.sh

# Rust components the checks use.
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

# No incremental caches: a one-off test build does not reuse them and they double the target size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "==> cargo test --workspace"
# Tests that need a real Prometheus fail instead of skipping when it is missing.
SERIN_REQUIRE_PROMETHEUS=1 cargo test --locked --workspace
echo "==> benchmark smoke: serin-bench controller, 100 canaries (debug build; completes, numbers not judged)"
# The release numbers are in BENCHMARKS.md; this checks the bench still runs end to end.
cargo build --locked -p serin-e2e --bin serin-bench
target/debug/serin-bench controller --canaries 100 --interval 5 --window 10 --setup-timeout 300 \
  --serin target/debug/serin
