#!/usr/bin/env bash
# Checks an install as a user of it would (CI runs it): installs to a temporary prefix with
# tools/install.sh, builds examples/c with pkg-config, and checks that
#   - nothing installed or built resolves a library from the Swift toolchain (ldd);
#   - examples/c/explain writes the same .npy and PNG bytes as the installed
#     `elucidate explain --attributions --visualize`, and examples/c/check passes, both run
#     with an empty environment (env -i: no LD_LIBRARY_PATH, no PATH) and, where a private
#     mount namespace can be had (root), with the toolchain's folder hidden;
#   - Tests/CAPITests/Programs/layers.c, built the same way, gets a layer method's map with its
#     shape (elu_attribution_shape, elu_explain_alloc, elu_visualize_map) and every misuse of
#     those functions is a status code;
#   - examples/swift (a package depending on Elucidate by path) builds and explains.
# Prints "install: N passed, N failed" last; exits non-zero on any failure.
#
#   tools/check_install.sh [--prefix DIR] [--skip-build]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

prefix=""
install_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --skip-build) install_args+=(--skip-build); shift ;;
        *) echo "check_install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=${prefix:-$work/prefix}

passed=0
failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAILED: $1"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

tools/install.sh --prefix "$prefix" "${install_args[@]}"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc -std=c11 -Wall -Wextra -Werror -O2 examples/c/explain.c -o "$work/explain" $(pkg-config --cflags --libs elucidate)
cc -std=c11 -Wall -Wextra -Werror -O2 examples/c/check.c -o "$work/check" $(pkg-config --cflags --libs elucidate) -pthread -lm
cc -std=c11 -Wall -Wextra -Werror -O2 Tests/CAPITests/Programs/layers.c -o "$work/layers" $(pkg-config --cflags --libs elucidate)

toolchain=$(dirname "$(dirname "$(command -v swift)")")  # /opt/swift/usr
no_toolchain_libraries() {
    local found
    found=$(ldd "$prefix/bin/elucidate" "$prefix/lib/libelucidate.so" "$work/explain" "$work/check" "$work/layers" | grep -F "$toolchain" || true)
    [ -z "$found" ] || { echo "$found"; return 1; }
}
check "no library from $toolchain in ldd" no_toolchain_libraries
check "soname libelucidate.so" sh -c "readelf -d '$prefix/lib/libelucidate.so' | grep -q 'SONAME.*\[libelucidate.so\]'"

image="$root/Tests/Fixtures/images/photo.jpg"
cd "$work"
# One run: the C example and the installed command line, empty environments, then the checks.
run_examples() {
    env -i ./explain fashion-mnist-resnet "$image" saliency c.npy c.png >c.json \
        && env -i "$prefix/bin/elucidate" explain saliency --model fashion-mnist-resnet "$image" \
               --attributions cli.npy --visualize cli.png --quiet >/dev/null \
        && env -i ./explain fashion-mnist-resnet "$image" grad-cam cam-c.npy cam-c.png '{"layer": "layer4"}' >/dev/null \
        && env -i "$prefix/bin/elucidate" explain grad-cam --layer layer4 --model fashion-mnist-resnet "$image" \
               --attributions cam-cli.npy --visualize cam-cli.png --quiet >/dev/null \
        && env -i ./check fashion-mnist-resnet 28 >check.log \
        && head -c $((3 * 28 * 28 * 4)) /dev/zero >zeros.f32 \
        && env -i ./layers run fashion-mnist-resnet zeros.f32 1 3 28 28 grad-cam '{"layer": "layer4"}' alloc cam.f32 cam.png \
               >layers.log \
        && env -i ./layers misuse fashion-mnist-resnet zeros.f32 1 3 28 28 . >>layers.log
}
hidden=no
# Hide the toolchain (a tmpfs over its folder, in a mount namespace of this command only).
if unshare -m true 2>/dev/null; then
    export -f run_examples
    export prefix image
    if unshare -m bash -c "mount -t tmpfs none '$(dirname "$toolchain")' && run_examples"; then hidden=yes; fi
fi
if [ "$hidden" = no ]; then
    echo "note: the toolchain could not be hidden (no mount namespace): run with it present"
    run_examples || true
fi
echo "(toolchain hidden: $hidden)"
check "C explain's .npy equals elucidate explain --attributions" cmp c.npy cli.npy
check "C explain's PNG equals elucidate explain --visualize" cmp c.png cli.png
check "C explain's grad-cam map (the layer's shape) equals the command line's" cmp cam-c.npy cam-cli.npy
check "C explain's grad-cam picture equals the command line's" cmp cam-c.png cam-cli.png
check "C check program on the built-in model" grep -q ", 0 failed" check.log
check "the library finds the built-in model in PREFIX/share/elucidate/models" grep -qF "$prefix/share/elucidate/models/" check.log
check "C layers program: grad-cam's map with its shape, drawn" sh -c "grep -q '^shape 1,1,' layers.log && test -s cam.png"
check "C layers program: every misuse is a status code" grep -q ", 0 failed" layers.log
grep -E "^FAILED" check.log layers.log || true
cd "$root"

swift build --package-path examples/swift
check "Swift example explains with the built-in model" \
    examples/swift/.build/debug/explain-builtin "$image" "$work/swift.png"
check "Swift example's picture equals the command line's" cmp "$work/swift.png" "$work/cli.png"

echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
