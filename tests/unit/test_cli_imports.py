"""The board commands (flash, ls, info, ...) start without numpy, the compiler or the quantizer.

A fresh interpreter runs each command as far as the serial port (a path that does not exist,
so every one fails there): a top-level import of a heavy module anywhere on the way fails
this test. Start-up time itself is measured in the report of the change, not here.
"""
import json
import os
import subprocess
import sys

from npu_sdk import compiler
from tests.conftest import DIGITS_INT8

# what `npu flash` and the other board commands must not load
HEAVY = ("numpy", "npu_sdk.compiler", "npu_sdk.quantize", "npu_sdk.tflite", "ai_edge_litert", "tqdm",
         "npu_emulator.cores")

CHILD = """
import json, sys
from npu_sdk import cli
cli.build_parser().parse_args(["ports"])  # parsed, not run: it would probe the host's ports
codes = [cli.main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps(dict(codes=codes, loaded=[m for m in json.loads(sys.argv[2]) if m in sys.modules])))
"""


def test_board_commands_do_not_import_numpy(tmp_path):
    npb = tmp_path / "digits.npb"
    npb.write_bytes(compiler.compile_file(DIGITS_INT8).blob)
    port = ["--port", str(tmp_path / "no-such-port"), "--timeout", "0.1"]
    commands = [["flash", str(npb)] + port, ["ls"] + port, ["info"] + port, ["rm", "digits"] + port,
                ["console", "--count", "1"] + port, ["repl"] + port,
                ["keys", "provision", "--out", str(tmp_path / "k.key")] + port]
    env = {k: v for k, v in os.environ.items() if k not in ("NPU_PORT", "NPU_KEY")}
    run = subprocess.run([sys.executable, "-c", CHILD, json.dumps(commands), json.dumps(HEAVY)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    # each command got as far as the port: flash has read and verified the blob by then
    assert result["codes"] == [1] * len(commands)
    assert run.stderr.count("npu: cannot open serial port") == len(commands), run.stderr
    assert result["loaded"] == []
