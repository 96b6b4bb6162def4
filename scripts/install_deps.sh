#!/usr/bin/env bash
# Installs, or checks and explains, the system packages HoloStore's build needs:
#   librocksdb-dev  RocksDB 7.8 (Debian 12), linked by the rocksdb crate (.cargo/config.toml)
#   libclang-dev    libclang, which bindgen loads to read RocksDB's C header
# Needs root (or password-less sudo) only when something is missing.
set -euo pipefail

packages=(librocksdb-dev libclang-dev)
rocksdb_lib=/usr/lib/x86_64-linux-gnu/librocksdb.so

command -v cargo >/dev/null || {
    echo "install_deps: cargo not found; install a Rust toolchain (1.90 or newer) first" >&2
    exit 1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
if command -v dpkg-query >/dev/null; then
    for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
elif [ ! -e "$rocksdb_lib" ]; then
    echo "install_deps: not a Debian system and $rocksdb_lib is missing;" >&2
    echo "  install RocksDB 7.x and libclang, then set ROCKSDB_LIB_DIR in .cargo/config.toml" >&2
    exit 1
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else
        echo "install_deps: missing packages: ${missing[*]}" >&2
        echo "  run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "install_deps: installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -e "$rocksdb_lib" ] || {
    echo "install_deps: $rocksdb_lib not found after installing librocksdb-dev;" >&2
    echo "  point ROCKSDB_LIB_DIR in .cargo/config.toml at the directory that has librocksdb.so" >&2
    exit 1
}
