"""Every `npu ...` command in a fenced block of README.md and docs/*.md, read from the files
(not retyped): each parses with today's CLI, and each that acts on one board or on files runs
against the emulator, so the docs cannot drift from the CLI."""
import re
import shlex

import numpy as np
import pytest

from npu_sdk.cli import build_parser
from tests.conftest import DIGITS_INT8, ROOT, ZOO, Emulator
from tests.e2e.test_cli_errors import npu

DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
#: commands that serve until stopped, need a farm, a bare MicroPython board or a toolchain
#: build: checked by parsing only (their own e2e tests run them)
PARSE_ONLY = ("emulate", "farm", "firmware", "repl", "keys", "console", "validate")
#: the docs' placeholders for a port
PORTS = re.compile(r"(/dev/pts/N|/dev/ttyACM0|socket://[\d.:]+|labgrid://npu-\d|\bPORT\b)")


def documented():
    """(doc, command) for each `npu` line of a fenced block, continuations joined, comments,
    `$ `, a trailing `&` and [optional] parts dropped."""
    found = []
    for doc in DOCS:
        fenced = False
        pending = ""
        for line in doc.read_text().splitlines():
            if line.lstrip().startswith("```"):
                fenced, pending = not fenced, ""
                continue
            if not fenced:
                continue
            line = pending + line.strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            line = re.sub(r"^\$ ", "", line)
            if not line.startswith("npu "):
                continue
            line = re.sub(r"\s#.*$", "", line)
            line = re.sub(r"\[[^\]]*\]", "", line).rstrip(" &")
            found.append((doc.relative_to(ROOT).as_posix(), " ".join(line.split())))
    return found


COMMANDS = documented()


def test_the_docs_have_commands():
    assert len(COMMANDS) >= 15 and any(c.startswith("npu run ") for _, c in COMMANDS)


@pytest.mark.parametrize("doc,command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_each_documented_command_parses(doc, command):
    args = shlex.split(PORTS.sub("/dev/null", command))[1:]
    try:
        build_parser().parse_args(args)
    except SystemExit as e:
        pytest.fail("%s: `%s` does not parse (exit %s)" % (doc, command, e.code))


def _runnable(command):
    words = shlex.split(command)
    return words[1] not in PARSE_ONLY and "--places" not in words and words.count("--port") <= 1


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_documented_commands_run_on_the_emulator(tmp_path, core):
    (tmp_path / "model_zoo").symlink_to(ZOO)
    (tmp_path / "model.tflite").symlink_to(DIGITS_INT8)
    (tmp_path / "model_float.tflite").symlink_to(ZOO / "digits_mlp" / "float.tflite")
    (tmp_path / "calib.npz").symlink_to(ZOO / "digits_mlp" / "samples.npz")
    np.save(tmp_path / "x.npy", np.load(ZOO / "digits_mlp" / "samples.npz")["x_int8"][0])
    emu = Emulator(core, flash_dir=tmp_path / "flash")
    try:
        npu("flash", DIGITS_INT8, "--name", "digits", "--port", emu.port)  # what `npu run digits` needs
        ran = 0
        for doc, command in COMMANDS:
            if not _runnable(command):
                continue
            args = shlex.split(PORTS.sub(emu.port, command))[1:]
            r = npu(*args, cwd=tmp_path, check=False, env=dict(__import__("os").environ,
                                                              NPU_PORT=emu.port))
            assert r.returncode == 0, "%s: `%s` failed:\n%s" % (doc, command, r.stderr)
            ran += 1
        assert ran >= 10
    finally:
        emu.stop()
