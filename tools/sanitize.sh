#!/usr/bin/env bash
# Build the C kernels (npu_emulator._kernels) with AddressSanitizer and UBSan into
# build/sanitize/ and run against that build: the C-kernel conformance tests, the
# portable-vs-SIMD dispatch tests, and the C-core cases of the whole-stack pipeline
# (compiler -> blob -> firmware interpreter -> kernels), then a seeded slice of
# tools/fuzz_blobs.py (crafted blobs through load and RUN, scalar, AVX2 and viper). Under a minute.
# Needs only gcc and the project's venv (make test creates it). Usage: tools/sanitize.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CC=${CC:-gcc}
OUT=build/sanitize
PKG=$OUT/npu_emulator

die() { echo "sanitize: $*" >&2; exit 1; }
[ -x "$PY" ] || die "$PY not found; run 'make test' first (it creates .venv), or set PYTHON"
command -v "$CC" >/dev/null || die "$CC not found; install gcc"

INCLUDE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
SUFFIX=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
[ -f "$INCLUDE/Python.h" ] || die "no Python.h in $INCLUDE; install the Python headers (python3-dev)"
LIBASAN=$("$CC" -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || die "$CC has no libasan.so; install the sanitizer runtime (libasan, comes with gcc)"

# a shadow npu_emulator package: the sources linked in, the sanitized extension beside them
rm -rf "$OUT"
mkdir -p "$PKG"
for f in board_emulator/npu_emulator/*.py; do ln -s "$PWD/$f" "$PKG/"; done
"$CC" -shared -fPIC -std=c99 -O1 -g -fno-omit-frame-pointer -Wall -Wextra \
    -fsanitize=address,undefined -fno-sanitize-recover=all \
    -I"$INCLUDE" -Iboard_emulator/csrc \
    board_emulator/csrc/_kernels.c board_emulator/csrc/npu_checks.c board_emulator/csrc/npu_kernels.c \
    board_emulator/csrc/npu_kernels_avx2.c \
    -o "$PKG/_kernels$SUFFIX"

export PYTHONPATH="$PWD/$OUT${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$LIBASAN"  # ASan must come first; CPython itself is not instrumented
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
loaded=$("$PY" -c 'import npu_emulator._kernels as k; print(k.__file__)')
case "$loaded" in
    "$PWD/$PKG"/*) ;;
    *) die "the tests would load $loaded, not the sanitized build" ;;
esac
TESTS=(tests/conformance/test_c_kernels.py tests/conformance/test_c_dispatch.py
       "tests/conformance/test_ops_pipeline.py::test_c_kernels_match_tflm")
echo "sanitize: running ${TESTS[*]} against $loaded"
"$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" "$@"
echo "sanitize: fuzz_blobs: 300 crafted blobs, seed 0"
"$PY" tools/fuzz_blobs.py --count 300 --seed 0 --check
