#!/usr/bin/env bash
# Builds the six libFuzzer targets (debug, fuzzer + address sanitizers) and runs each for
# SECONDS (default 60) on a copy of its seed corpus in a temporary folder, so the committed
# corpus under fuzz/corpus/ never grows.
#
#   fuzz/run-all.sh [SECONDS] [PARSER...]      PARSER: safetensors npy jpeg png pth preprocess (default: all)
#
# Exits 0 when no fuzzer found anything; otherwise non-zero, after printing the path of every
# input that crashed (including sanitizer reports), leaked, timed out (> 10 s) or ran out of memory (kept in $FUZZ_ARTIFACTS, default
# <repo>/fuzz-artifacts/<parser>/, which git ignores) and the command that reproduces it.
# Extra libFuzzer flags can be passed in $FUZZ_FLAGS (e.g. FUZZ_FLAGS="-jobs=2 -workers=2").
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: fuzz/run-all.sh [SECONDS] [safetensors|npy|jpeg|png|pth|preprocess ...]" >&2
    exit 2
fi
parsers=("$@")
[ ${#parsers[@]} -gt 0 ] || parsers=(safetensors npy jpeg png pth preprocess)
for parser in "${parsers[@]}"; do
    case "$parser" in
    safetensors | npy | jpeg | png | pth | preprocess) ;;
    *) echo "fuzz/run-all.sh: unknown parser '$parser' (safetensors, npy, jpeg, png, pth, preprocess)" >&2; exit 2 ;;
    esac
done
artifacts="${FUZZ_ARTIFACTS:-$repo/fuzz-artifacts}"

cd "$here" || exit 2
# swiftc honours only the LAST -sanitize= flag it is given, and SwiftPM passes
# `--sanitize fuzzer --sanitize address` to it as two flags in no fixed order: the Swift code
# (the safetensors and NPY parsers) then gets either no coverage instrumentation (fuzzing
# blind) or no ASan. The combined flag, appended after SwiftPM's, gives it both.
build=(swift build -c debug --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address)
echo "== building fuzz targets (${build[*]})"
# One product per invocation: SwiftPM builds only the last --product given.
for parser in "${parsers[@]}"; do
    "${build[@]}" --product "fuzz-$parser" 2>&1 \
        | grep -v "Cannot export local symbol"
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        echo "fuzz/run-all.sh: building fuzz-$parser failed" >&2
        exit 2
    fi
done
bin="$("${build[@]}" --show-bin-path)"

work="$(mktemp -d "${TMPDIR:-/tmp}/elucidate-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
for parser in "${parsers[@]}"; do
    corpus="$work/corpus-$parser"
    mkdir -p "$corpus" "$artifacts/$parser"
    cp "$here/corpus/$parser/"* "$corpus/"
    log="$work/$parser.log"
    echo "== fuzz-$parser for ${seconds}s (seeds: $(ls "$corpus" | wc -l) files from fuzz/corpus/$parser)"
    before="$(ls -1 "$artifacts/$parser" 2>/dev/null | sort)"
    # shellcheck disable=SC2086
    SWIFT_BACKTRACE=enable=no "$bin/fuzz-$parser" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$parser/" ${FUZZ_FLAGS:-} "$corpus" >"$log" 2>&1
    status=$?
    grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|stat::new_units_added" "$log" | sed 's/^/   /'
    after="$(ls -1 "$artifacts/$parser" 2>/dev/null | sort)"
    added="$(comm -13 <(echo "$before") <(echo "$after"))"
    new="$(echo "$added" | grep -E '^(crash|leak|timeout|oom)-' || true)"
    # A slow unit (over 10 s, under -timeout) is no failure: on a busy machine it is often noise.
    for file in $(echo "$added" | grep -E '^slow-unit-' || true); do
        echo "   note: slow input kept as $artifacts/$parser/$file"
    done
    if [ "$status" -ne 0 ] || [ -n "$new" ]; then
        failed+=("$parser")
        echo "!! fuzz-$parser FAILED (exit $status). Last lines of its log:"
        grep -v -E "^#[0-9]|^0x[0-9a-f]+," "$log" | tail -40 | sed "s/^/   /"
        for file in $new; do
            echo "!! crash input: $artifacts/$parser/$file"
            echo "   reproduce: (cd fuzz && SWIFT_BACKTRACE=enable=no $bin/fuzz-$parser $artifacts/$parser/$file)"
        done
        [ -n "$new" ] || echo "!! no artifact was written; see the log above"
    else
        echo "   fuzz-$parser: no crash"
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run-all.sh: findings in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz/run-all.sh: ${#parsers[@]} fuzzers ran ${seconds}s each, no crash"
