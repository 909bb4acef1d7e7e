# Sourced by scripts/test.sh and scripts/demo.sh: installs what building and running Serin's
# tests and test bed need on a fresh Debian machine (as root, or with sudo), only when missing.

# System packages the tests use; installed only when missing.
packages=()
command -v git >/dev/null 2>&1 || packages+=(git)
# Real Prometheus (and promtool) for the metric-provider tests; openssl makes their TLS cert
# and the webhook disableTLS test's self-signed one.
command -v prometheus >/dev/null 2>&1 || packages+=(prometheus)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
# Lua runs the Argo CD health check of deploy/examples/argocd in a test.
command -v lua5.4 >/dev/null 2>&1 || packages+=(lua5.4)
# jemalloc, the serin binary's allocator, is built from source with the C compiler and make.
command -v make >/dev/null 2>&1 || packages+=(make)
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
