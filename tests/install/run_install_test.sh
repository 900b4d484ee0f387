#!/usr/bin/env bash
# run_install_test.sh BUILD_DIR SRC_DIR WORK_DIR
# 1) and 2): consumer.c against the installed headers and library; 3) the command-line tools
# built from their sources (tools/CMakeLists.txt) against the installed package alone, and run;
# 4) the installed tools run; 5) the README's C example (examples/loader_epoch.c, which the
# README shows verbatim) built against the install with pkg-config and run on the file of 3).
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

# 3) the tools from source against the install: tools/ sees include/apd of the prefix only
# (libapd/ is not on any include path), so an internal header or symbol fails the build
tools_src="$src/../../tools"
cmake -S "$tools_src" -B "$work/tools" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_RPATH="$libdir" >/dev/null
cmake --build "$work/tools" >/dev/null
for t in apd-convert apd-info apd-export apd-eval; do
  [ -x "$work/tools/$t" ] || { echo "tool $t was not built against the install"; exit 1; }
done
case "$(ldd "$work/tools/apd-info")" in *"$libdir/libapd.so"*) ;; *) echo "apd-info does not use the installed libapd.so"; exit 1;; esac
# a tiny IDX dataset: 20 grey 8x8 images (a fixed pattern), labels 0..3
esc() { local out="" v o; for v in "$@"; do printf -v o '\\%03o' "$v"; out+=$o; done; printf '%s' "$out"; }
px=(); for ((i = 0; i < 20 * 64; i++)); do px+=($(( (i * 37 + i / 64 * 11) % 256 ))); done
lb=(); for ((i = 0; i < 20; i++)); do lb+=($((i % 4))); done
printf "$(esc 0 0 8 3 0 0 0 20 0 0 0 8 0 0 0 8)$(esc "${px[@]}")" >"$work/img.idx"
printf "$(esc 0 0 8 1 0 0 0 20)$(esc "${lb[@]}")" >"$work/lab.idx"
"$work/tools/apd-convert" --input "idx:$work/img.idx,$work/lab.idx" --method quantize --colors 4 \
  -o "$work/tiny.apd" >"$work/convert.txt" || { echo "apd-convert (built against the install) failed"; cat "$work/convert.txt"; exit 1; }
out=$("$work/tools/apd-info" --verify "$work/tiny.apd") || { echo "apd-info --verify failed: $out"; exit 1; }
case "$out" in *"OK, 20 records verified"*) ;; *) echo "apd-info --verify: unexpected output: $out"; exit 1;; esac
out=$("$work/tools/apd-info" "$work/tiny.apd")
case "$out" in *"K = 4 colours"*"provenance:"*"method: quantize"*) ;; *) echo "apd-info: unexpected output: $out"; exit 1;; esac

# 4) the installed tools find the installed library (RPATH $ORIGIN/../lib)
out=$("$prefix/bin/apd-info" --verify "$work/tiny.apd") || { echo "installed apd-info failed: $out"; exit 1; }

# 5) the README's C example is examples/loader_epoch.c, built and run against the install
top="$src/../.."
awk '/^```c$/ { on = 1; next } /^```$/ { if (on) exit } on' "$top/README.md" >"$work/readme_example.c"
cmp -s "$work/readme_example.c" "$top/examples/loader_epoch.c" || {
  echo "README.md's C example is not examples/loader_epoch.c:"; diff "$work/readme_example.c" "$top/examples/loader_epoch.c" | head -n 20; exit 1; }
cc -std=c11 -Wall -Wextra -Werror -o "$work/loader_epoch" "$top/examples/loader_epoch.c" \
   $(pkg-config --cflags --libs apd) -Wl,-rpath,"$libdir" -lm
out=$("$work/loader_epoch" "$work/tiny.apd") || { echo "loader_epoch failed: $out"; exit 1; }
case "$out" in *"tiny.apd: 20 images in 1 batches"*"images per class: 0:5 1:5 2:5 3:5"*) ;;
  *) echo "loader_epoch: unexpected output: $out"; exit 1;; esac
echo "$out"
rc=0; out=$("$work/loader_epoch" "$work/missing.apd" 2>&1) || rc=$?
[ "$rc" = 1 ] || { echo "loader_epoch on a missing file: exit $rc, want 1"; exit 1; }
case "$out" in *missing.apd*) ;; *) echo "loader_epoch: error does not name the file: $out"; exit 1;; esac

echo "install test: pkg-config (shared, static) and find_package (shared, static) consumers ok;"
echo "  tools built from source against the install, apd-convert + apd-info ran; installed apd-info ran;"
echo "  the README's C example (examples/loader_epoch.c) built against the install and ran"
