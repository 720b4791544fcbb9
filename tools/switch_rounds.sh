#!/usr/bin/env bash
# The model-switching test at full length on both cores: 20 rounds of every zoo model and
# every MLPerf-Tiny-class graph on one 256 KB board (issue 13). CI runs 5 rounds on qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
NPU_SWITCH_ROUNDS=${NPU_SWITCH_ROUNDS:-20} NPU_SWITCH_ROUNDS_QEMU=${NPU_SWITCH_ROUNDS_QEMU:-20} \
    exec .venv/bin/python -m pytest -q tests/e2e/test_model_switching.py "$@"
