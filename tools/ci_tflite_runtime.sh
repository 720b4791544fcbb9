#!/usr/bin/env bash
# npu_sdk.reference on tflite-runtime instead of ai-edge-litert's interpreter.
#
# tflite-runtime (2.14, the last release: wheels for CPython <= 3.11) is built against
# numpy 1.x and needs numpy<2, so it gets its own venv, .venv-tflrt. What works there:
#   numpy<2 + tflite-runtime + ai-edge-litert (2.3 installs and runs on numpy 1.26; npu_sdk
#   reads the .tflite schema from its pure-Python schema_py_generated) + the project's
#   other runtime deps + tflite-micro (the oracle) + pytest.
# The project itself is not installed there (its C extension would be built a second
# time into the same tree): the tests import sdk/ and firmware/ through PYTHONPATH.
# tests/unit/test_reference.py then runs with ai_edge_litert's Interpreter hidden, so
# every LiteRT call goes through tflite_runtime, and checks it against TFLite Micro.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV_TFLRT:-.venv-tflrt}
PY=${PYTHON_TFLRT:-$(command -v python3.11 || command -v python3)}
if ! "$PY" -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 11))'; then
    echo "ci_tflite_runtime.sh: tflite-runtime has wheels for Python 3.9-3.11 only; set PYTHON_TFLRT" >&2
    exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "numpy<2" "tflite-runtime>=2.14" "ai-edge-litert>=1.2" "construct>=2.10,<2.11" \
    "pyserial>=3.5" "tqdm>=4.60" tflite-micro "pytest>=8"
"$VENV/bin/python" - <<'PY'
import numpy, tflite_runtime
assert numpy.__version__.startswith("1."), numpy.__version__
print("tflite-runtime %s with numpy %s" % (tflite_runtime.__version__, numpy.__version__))
PY
PYTHONPATH=sdk:firmware exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -p no:npu \
    tests/unit/test_reference.py -ra
