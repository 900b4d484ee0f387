#!/usr/bin/env bash
# run_install_test.sh BUILD_DIR SRC_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work"; mkdir -p "$work"
prefix="$work/prefix"
# Run a consumer and require its "ok" line (no `| grep -q`: SIGPIPE under pipefail).
check_ok() { local out; out=$("$1") || { echo "$1 failed"; exit 1; }; case "$out" in *ok*) ;; *) echo "$1: unexpected output: $out"; exit 1;; esac; }
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in include/apd/apd.h include/apd/status.h; do
  [ -f "$prefix/$f" ] || { echo "missing $f in the install"; exit 1; }
done
libdir=$(dirname "$(find "$prefix" -name 'libapd.so' | head -n1)")
[ -f "$libdir/libapd.a" ] || { echo "libapd.a not installed"; exit 1; }
[ -f "$libdir/pkgconfig/apd.pc" ] || { echo "apd.pc not installed"; exit 1; }

# 1) pkg-config, shared and static
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -o "$work/pc_shared" "$src/consumer.c" $(pkg-config --cflags --libs apd) -Wl,-rpath,"$libdir"
check_ok "$work/pc_shared"
cc -std=c11 -o "$work/pc_static" "$src/consumer.c" $(pkg-config --static --cflags apd) \
   "$libdir/libapd.a" $(pkg-config --static --libs apd | sed 's/-lapd//')
check_ok "$work/pc_static"
# the shared consumer really uses the installed libapd.so
ldd_out=$(ldd "$work/pc_shared")
case "$ldd_out" in *"$libdir/libapd.so"*) ;; *) echo "pc_shared does not use the installed libapd.so"; exit 1;; esac

# 2) CMake find_package(apd)
mkdir -p "$work/cm"
cp "$src/consumer.c" "$work/cm/"
cp "$src/CMakeLists.consumer.txt" "$work/cm/CMakeLists.txt"
cmake -S "$work/cm" -B "$work/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm/build" >/dev/null
check_ok "$work/cm/build/consumer_shared"
check_ok "$work/cm/build/consumer_static"
echo "install test: pkg-config (shared, static) and find_package (shared, static) consumers ok"
