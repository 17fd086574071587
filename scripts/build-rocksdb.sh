#!/usr/bin/env bash
# Builds RocksDB without debug assertions, as a static library installed into PREFIX, for
# release binaries (`make release`). Debian 12's librocksdb is built with
# CMAKE_BUILD_TYPE=None, so its assert()s are live in everything that links it: a failed one
# aborts the process (seen on a full disk: `sync_without_flush_called_`). This builds the
# same source package Debian ships (7.8.3 with Debian's patches, fetched through a private
# apt source list; the system's apt configuration is left alone) with CMAKE_BUILD_TYPE=Release,
# which defines NDEBUG. About 15 minutes on 2 cores; a PREFIX that already holds it is kept.
#
# Usage: scripts/build-rocksdb.sh PREFIX    (JOBS=N sets the build's parallelism, default 2)
set -euo pipefail

prefix=$(realpath -m "${1:?usage: scripts/build-rocksdb.sh PREFIX}")
# What the build below is made with; a PREFIX built otherwise (an older version of this
# script) is built again. USE_RTTI: RocksDB's Release builds default to -fno-rtti, and the
# event store subclasses rocksdb::SliceTransform (its hashed memtables), whose typeinfo needs
# rocksdb::Customizable's: without RTTI the server does not link.
stamp="rocksdb $(dpkg-query -W -f='${source:Version}' librocksdb-dev 2>/dev/null || true) Release USE_RTTI=1 PORTABLE=1"
if [[ -f "$prefix/lib/cmake/rocksdb/RocksDBConfig.cmake" && "$(cat "$prefix/orderflow-build" 2>/dev/null)" == "$stamp" ]]; then
  echo "build-rocksdb: $prefix already holds a release RocksDB ($stamp)"
  exit 0
fi
rm -rf "$prefix"
for tool in apt-get dpkg-source cmake; do
  command -v "$tool" >/dev/null || { echo "build-rocksdb: $tool is missing (run scripts/deps.sh)" >&2; exit 1; }
done
# The version Debian's headers have, so the release build and the tests agree.
version=$(dpkg-query -W -f='${source:Version}' librocksdb-dev 2>/dev/null || true)
[[ -n "$version" ]] || { echo "build-rocksdb: librocksdb-dev is not installed (run scripts/deps.sh)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/orderflow-rocksdb.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial"
cat > "$work/apt/source.sources" <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/apt" -o "Dir::State::Lists=$work/apt/lists")
echo "build-rocksdb: fetching Debian's source package rocksdb $version"
apt-get "${apt[@]}" -qq update
(cd "$work" && apt-get "${apt[@]}" -qq source --download-only "rocksdb=$version")
dpkg-source -x "$work"/rocksdb_*.dsc "$work/src" >/dev/null

echo "build-rocksdb: building (Release: NDEBUG, no tools, no tests) into $prefix"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DWITH_BZ2=ON -DWITH_LZ4=ON -DWITH_ZLIB=ON -DWITH_ZSTD=ON -DWITH_SNAPPY=ON \
  -DROCKSDB_BUILD_SHARED=OFF -DWITH_BENCHMARK_TOOLS=OFF -DWITH_CORE_TOOLS=OFF -DWITH_TOOLS=OFF \
  -DWITH_TESTS=OFF -DWITH_GFLAGS=OFF -DPORTABLE=ON -DUSE_RTTI=1 -DFAIL_ON_WARNINGS=OFF "${launcher[@]}" >/dev/null
cmake --build "$work/build" -j"${JOBS:-2}" --target rocksdb
cmake --install "$work/build" >/dev/null
echo "$stamp" > "$prefix/orderflow-build"
echo "build-rocksdb: done: $prefix"
