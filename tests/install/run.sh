#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds and runs an
# outside program against it three ways: find_package with the shared and
# the static library, and pkg-config.
# usage: run.sh BUILD_DIR PREFIX CONSUMER_SOURCE WORK_DIR
set -euo pipefail
build=$1 prefix=$2 src=$3 work=$4
rm -rf "$prefix" "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$prefix" >/dev/null

echo "== find_package(cotangent)"
cmake -S "$src" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/consumer_shared"
"$work/cmake/consumer_static" | head -n 1

echo "== pkg-config cotangent"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
libdir=$(pkg-config --variable=libdir cotangent)
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$src/main.c" -o "$work/consumer_pc" \
  $(pkg-config --cflags --libs cotangent) -Wl,-rpath,"$libdir"
"$work/consumer_pc" | head -n 1
