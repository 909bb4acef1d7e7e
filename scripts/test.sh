#!/usr/bin/env bash
# Runs every test of Serin: formatting, lints, unit and integration tests.
# Installs what the tests need on a fresh Debian machine (run as root, or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use; installed only when missing.
packages=()
command -v git >/dev/null 2>&1 || packages+=(git)
# Real Prometheus (and promtool) for the metric-provider tests; openssl makes their TLS cert
# and the webhook disableTLS test's self-signed one.
command -v prometheus >/dev/null 2>&1 || packages+=(prometheus)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
# git2: libgit2 and libssh2 are built from their bundled sources; they link OpenSSL and zlib.
for pkg in pkg-config libssl-dev zlib1g-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || packages+=("$pkg")
done
if ((${#packages[@]})); then
  echo "==> installing ${packages[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

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
