#!/usr/bin/env bash
# Builds Elucidate in release and installs it under a prefix:
#
#   PREFIX/bin/elucidate                    the command line
#   PREFIX/lib/libelucidate.so              the C API (soname libelucidate.so)
#   PREFIX/lib/elucidate/swift/*.so         the Swift runtime both need (libswiftCore, Foundation, dispatch, …)
#   PREFIX/include/elucidate.h
#   PREFIX/lib/pkgconfig/elucidate.pc       Libs carry -Wl,-rpath,${libdir}: no LD_LIBRARY_PATH needed
#   PREFIX/share/elucidate/models/          the built-in models
#
#   tools/install.sh --prefix DIR [--skip-build]
#
# The binaries' RUNPATH points at PREFIX/lib/elucidate/swift through $ORIGIN, so the install
# runs where no Swift toolchain is (it still needs Debian's libpng16, libturbojpeg and, at run
# time, OpenBLAS; see tools/setup-debian.sh). Needs patchelf (tools/setup-debian.sh installs it).
# SwiftPM names the C API's product libElucidateC.so (product names are unique, and
# "elucidate" is the executable's); the soname and name are set here rather than with
# linker flags in Package.swift, which would keep other packages from depending on Elucidate.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=""
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a folder}; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --skip-build) build=0; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (usage: tools/install.sh --prefix DIR [--skip-build])" >&2; exit 2 ;;
    esac
done
[ -n "$prefix" ] || { echo "install.sh: give --prefix DIR" >&2; exit 2; }
command -v patchelf >/dev/null || { echo "install.sh: needs patchelf (apt-get install patchelf, or tools/setup-debian.sh)" >&2; exit 1; }
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

if [ "$build" -eq 1 ]; then
    swift build -c release --product elucidate
    swift build -c release --product ElucidateC
fi
bin=$(swift build -c release --show-bin-path)
library="$bin/libElucidateC.so"
for file in "$bin/elucidate" "$library"; do
    [ -f "$file" ] || { echo "install.sh: $file is missing (build first, or drop --skip-build)" >&2; exit 1; }
done

version=$(sed -nE 's/^#define ELU_VERSION "([^"]+)".*/\1/p' Sources/CAPI/include/elucidate.h)
swiftlib="$prefix/lib/elucidate/swift"
mkdir -p "$prefix/bin" "$prefix/lib/pkgconfig" "$prefix/include" "$prefix/share/elucidate/models" "$swiftlib"

install -m 755 "$bin/elucidate" "$prefix/bin/elucidate"
install -m 755 "$library" "$prefix/lib/libelucidate.so"
install -m 644 Sources/CAPI/include/elucidate.h "$prefix/include/elucidate.h"

# The built-in models: the weights SwiftPM copied into the resource bundle (whatever the
# bundle is called) — the library finds them in ../share/elucidate/models.
models=$(find "$bin" -maxdepth 2 -type d -path '*.resources/models' | head -n 1)
[ -n "$models" ] || { echo "install.sh: no *.resources/models folder in $bin" >&2; exit 1; }
cp -R "$models"/. "$prefix/share/elucidate/models/"

# The Swift runtime: every library the two binaries load from the toolchain (ldd lists them
# all, the ones Foundation needs included), copied beside each other; they find one another
# through their own RUNPATH $ORIGIN.
toolchain_libs=$(ldd "$bin/elucidate" "$library" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u \
                 | grep -E '/lib/swift/' || true)
[ -n "$toolchain_libs" ] || echo "install.sh: note: no Swift runtime library found by ldd (static stdlib?)" >&2
for file in $toolchain_libs; do
    install -m 644 "$file" "$swiftlib/$(basename "$file")"
done
patchelf --set-soname libelucidate.so "$prefix/lib/libelucidate.so"
patchelf --set-rpath '$ORIGIN/elucidate/swift' "$prefix/lib/libelucidate.so"
patchelf --set-rpath '$ORIGIN/../lib/elucidate/swift' "$prefix/bin/elucidate"

cat > "$prefix/lib/pkgconfig/elucidate.pc" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: elucidate
Description: Explain image classifiers natively: attribution methods over ResNets (C API)
Version: $version
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lelucidate
Cflags: -I\${includedir}
EOF

echo "installed Elucidate $version in $prefix"
