#!/usr/bin/env bash
# Runs every test of Serin: formatting, lints, unit and integration tests.
# Installs what the tests need on a fresh Debian machine (run as root, or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use; installed only when missing.
packages=()
command -v git >/dev/null 2>&1 || packages+=(git)
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

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "==> cargo test --workspace"
cargo test --locked --workspace
