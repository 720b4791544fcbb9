#!/usr/bin/env bash
# npu-sdk as a user gets it: `python -m build` makes the sdist and, from it, the wheel; a wheel
# built straight from the tree must hold the same files. The wheel goes into a fresh venv
# outside the checkout and, from a folder outside the checkout:
#   without extras: npu zoo list, npu compile of a zoo model, npu firmware build --arch, and
#     the micropython core refusing with the extra to install;
#   with npu-sdk[emulator]: npu firmware build for the VM, npu firmware install onto the VM's
#     raw REPL (npu emulate --repl), then flash + run of the model on npu emulate --core
#     cpython, micropython and qemu (MICROPY_DIR: MicroPython's source), the same outputs; the
#     qemu image, built from the wheel's files, runs the native npu module (`npu info`).
# Fails on any error, and on any warning from the build, pip or npu. Firmware builds are
# cached in npu_sdk.firmware_build.cache_root() (~/.cache/npu-sdk) by their content, not by
# where npu-sdk is installed: the tests and this check share the qemu image (about 40 s with
# it cached; its first build adds a minute or so).
# Run by .ci/run through `make check-wheel` (which sets MICROPY_DIR as for the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
WORK=$(mktemp -d /tmp/npu-wheel.XXXXXX)
export WORK
EMU_PID=
cleanup() {
    if [ -n "$EMU_PID" ]; then kill "$EMU_PID" 2>/dev/null; wait "$EMU_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
EMU_LOG=
fail() {
    [ -n "$EMU_LOG" ] && { echo "--- npu emulate:" >&2; cat "$EMU_LOG".out "$EMU_LOG".err >&2; }
    echo "ci_wheel.sh: $*" >&2
    exit 1
}
step() { printf '[%3ds] %s\n' "$SECONDS" "$*"; }
# the machine's pip configuration lists local package folders that may not exist: pip's notes
# about those are not about npu-sdk
no_warnings() {  # LOG WHAT
    if grep -iE 'warning|\berror\b|traceback' "$1" | grep -vE "^WARNING: Location '[^']*' is ignored" \
            | grep -q .; then
        cat "$1" >&2
        fail "$2 printed a warning or an error (above)"
    fi
}

# byte-compiling off (PYTHONDONTWRITEBYTECODE) would be a warning of its own in the build
unset PYTHONDONTWRITEBYTECODE
step "python -m build: sdist, then the wheel from the sdist"
"$PY" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "python -m build failed"; }
no_warnings "$WORK/build.log" "python -m build"
step "the wheel straight from the tree (pip wheel .)"
# from a copy of what git tracks (and new files it does not ignore): no stale build/ folder
mkdir "$WORK/tree"
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C "$WORK/tree"
"$PY" -m pip wheel --no-deps --no-build-isolation -w "$WORK/direct" "$WORK/tree" >"$WORK/direct.log" 2>&1 \
    || { cat "$WORK/direct.log" >&2; fail "pip wheel failed"; }
no_warnings "$WORK/direct.log" "pip wheel"
WHEEL=$(ls "$WORK"/dist/npu_sdk-*.whl)
"$PY" - "$WHEEL" "$WORK"/direct/npu_sdk-*.whl <<'PY'
import sys, zipfile
# the same files with the same content; the compiled extension is compared by name only
# (the compiler records the build folder in it)
def files(path):
    with zipfile.ZipFile(path) as z:
        return {n: (None if n.endswith(".so") else z.read(n)) for n in z.namelist()
                if not n.endswith(".dist-info/RECORD")}
from_sdist, direct = files(sys.argv[1]), files(sys.argv[2])
if from_sdist != direct:
    names = sorted(set(from_sdist) ^ set(direct)) or \
        sorted(n for n in from_sdist if from_sdist[n] != direct[n])
    sys.exit("ci_wheel.sh: the wheel built from the sdist differs from the tree's: %s" % names)
need = ["npu_firmware/main.py", "npu_firmware/qemu/main.c", "npu_firmware/qemu/manifest.py",
        "npu_firmware/native/npu_module.c", "npu_firmware/native/micropython.mk",
        "npu_firmware/csrc/npu_kernels.c", "npu_firmware/csrc/npu_checks.h",
        "npufw/server.py", "npu_zoo/digits_mlp/int8.tflite"]
missing = [n for n in need if n not in from_sdist]
if missing:
    sys.exit("ci_wheel.sh: the wheel lacks %s" % missing)
print("wheel: %d files, the same from the sdist and from the tree" % len(from_sdist))
PY

step "a fresh venv outside the checkout, the wheel without extras"
"$PY" -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
"$VPY" -m pip install -q "$WHEEL" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log" >&2; fail "pip install of the wheel failed"; }
no_warnings "$WORK/pip.log" "pip install"
NPU=$WORK/venv/bin/npu
mkdir "$WORK/user"
cd "$WORK/user"
run() {  # npu ARGS...: must succeed and print nothing on stderr
    if ! "$NPU" "$@" >"$WORK/out" 2>"$WORK/err" || [ -s "$WORK/err" ]; then
        cat "$WORK/out" "$WORK/err" >&2
        fail "npu $* failed or printed on stderr (above)"
    fi
}
refused() {  # WANT npu ARGS...: must fail with WANT in its one line on stderr
    local want=$1
    shift
    if "$NPU" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null; then fail "npu $* should have failed"; fi
    if ! grep -qF "$want" "$WORK/err" || [ "$(wc -l <"$WORK/err")" -ne 1 ]; then
        cat "$WORK/err" >&2
        fail "npu $* should say in one line: $want"
    fi
}
"$VPY" -c "import npu_sdk, sys; sys.exit('npu_sdk from %s' % npu_sdk.__file__
           if not npu_sdk.__file__.startswith('$WORK/venv/') else 0)"
run zoo list
grep -q '^digits_mlp' "$WORK/out" || fail "npu zoo list has no digits_mlp"
ZOO=$("$NPU" zoo path digits_mlp)
case $ZOO in "$WORK/venv/"*) ;; *) fail "the zoo is at $ZOO, not in the venv" ;; esac
run compile "$ZOO/int8.tflite" -o digits.npb
"$VPY" -c "import numpy as np; np.save('x.npy', np.load('$ZOO/samples.npz')['x_int8'][0])"
run firmware build -o fw-rp2040 --arch armv6m
refused "pip install 'npu-sdk[emulator]'" firmware build -o fw-vm
refused "pip install 'npu-sdk[emulator]'" emulate --core micropython

step "npu-sdk[emulator]"
"$VPY" -m pip install -q "$WHEEL[emulator]" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log" >&2; fail "pip install of the emulator extra failed"; }
no_warnings "$WORK/pip.log" "pip install"
run firmware build -o fw
"$VPY" - <<'PY'
import json
m = json.load(open("fw/manifest.json"))
assert "main.py" in m["files"] and "npufw/server.mpy" in m["files"], sorted(m["files"])
PY

emulate() {  # CORE [OPTIONS]: npu emulate in the background; sets PORT
    EMU_LOG=$WORK/emu-$1
    "$NPU" emulate --core "$@" --flash-dir "flash-$1" >"$EMU_LOG.out" 2>"$EMU_LOG.err" &
    EMU_PID=$!
    PORT=
    for _ in $(seq 3000); do  # the qemu core may build its image first
        PORT=$(sed -n 's/^port: //p' "$WORK/emu-$1.out")
        [ -n "$PORT" ] && return
        kill -0 "$EMU_PID" 2>/dev/null || fail "npu emulate --core $1 exited"
        sleep 0.1
    done
    fail "npu emulate --core $1 printed no port in 300 s"
}
stop_emulator() {  # CORE
    kill "$EMU_PID"
    wait "$EMU_PID" 2>/dev/null || true
    EMU_PID=
    EMU_LOG=
    no_warnings "$WORK/emu-$1.err" "npu emulate --core $1"
}

step "npu firmware install on npu emulate --core micropython --repl (the VM's raw REPL)"
emulate micropython --repl
run firmware install --port "$PORT" --json
stop_emulator micropython
"$VPY" - <<'PY'
import json, os
copied = json.load(open(os.environ["WORK"] + "/out"))["copied"]
assert "main.py" in copied and "npufw/server.mpy" in copied, copied
assert all(os.path.isfile(os.path.join("flash-micropython", f)) for f in copied), copied
PY
rm -r flash-micropython
for core in cpython micropython qemu; do
    if [ "$core" = qemu ] && [ -z "${MICROPY_DIR:-}" ]; then
        [ -n "${CI:-}" ] && fail "MICROPY_DIR is not set: the qemu core needs MicroPython's source (make check-wheel sets it)"
        step "skipped the qemu core: MICROPY_DIR is not set"
        continue
    fi
    step "flash + run on npu emulate --core $core"
    emulate "$core"
    run flash digits.npb --name digits --port "$PORT" --timeout 60
    run run digits --input x.npy --output "y-$core.npy" --port "$PORT" --timeout 60
    run info --port "$PORT"
    # the image built from the wheel's sources has the native module (npu_firmware/native, csrc)
    if [ "$core" = qemu ] && ! grep -q "kernels: native" "$WORK/out"; then
        cat "$WORK/out" >&2
        fail "the qemu board built from the wheel runs no native kernels (above)"
    fi
    stop_emulator "$core"
done
# every core runs the same firmware on the same blob: the same outputs
"$VPY" - <<'PY'
import glob
import numpy as np
ys = {p: np.load(p) for p in sorted(glob.glob("y-*.npy"))}
first = next(iter(ys.values()))
assert all(np.array_equal(first, y) for y in ys.values()), ys
print("outputs equal on %s" % ", ".join(ys))
PY
step "done"
