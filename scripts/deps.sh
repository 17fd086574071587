#!/usr/bin/env bash
# Installs the Debian packages orderflow needs to build, run and test.
# Idempotent and non-interactive: does nothing when everything is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libtbb-dev librdkafka-dev libcpprest-dev libssl-dev libboost-system-dev libboost-dev libcli11-dev
  libprotobuf-dev protobuf-compiler librocksdb-dev libyaml-cpp-dev
  libjemalloc-dev  # the `orderflow` binary's malloc (server/CMakeLists.txt)
  libabsl-dev      # Abseil's hash maps: the hot path's per-stream and per-command tables
  libgtest-dev libgmock-dev libbenchmark-dev
  libimgui-dev libglfw3-dev libgl-dev zlib1g-dev xvfb xauth
  curl openssl gnuplot-nox
  wrk         # orderflow bench --http: the HTTP load generator
  clang-14 libclang-rt-14-dev  # make sanitize / make fuzz (ASan, UBSan, libFuzzer), run by CI
  graphviz    # `orderflow dot FILE | dot -Tpng` (README)
  prometheus  # ships /usr/bin/promtool on Debian 12 (no separate package); tests check
              # /metrics, deploy/ rules with it. On a systemd host it also enables a
              # Prometheus service on :9090 (systemctl disable --now prometheus if unwanted).
)

# The Cosmos DB test stand-in (npm @vercel/cosmosdb-server, pinned by tests/cosmos/package-lock.json).
install_cosmos_standin() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/cosmos"
  if ! command -v npm >/dev/null 2>&1; then
    echo "deps: installing nodejs and npm"
    ${SUDO:-} apt-get update -qq
    DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if [ ! -f "$dir/node_modules/@vercel/cosmosdb-server/package.json" ] ||
     ! grep -q '"version": "1.0.1"' "$dir/node_modules/@vercel/cosmosdb-server/package.json"; then
    echo "deps: npm ci in tests/cosmos"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  install_cosmos_standin
  exit 0
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_cosmos_standin
echo "deps: done"
