"""The pytest plugin as a user meets it: a test file of their own in an empty directory, run by
`python -m pytest` (plainly, under pytest-xdist, on the MicroPython core), and the Board API
it hands out, used here through the same fixtures."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from npu_sdk import reference
from npu_sdk.errors import BlobFormatError, BoardError, ModelError
from npu_sdk.link import Board
from tests.conftest import DEFAULT_BOARD, require_qemu
from tests.conftest import DIGITS_FLOAT_IO, DIGITS_INT8, ZOO

DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "testing.md"
#: The user's test file is the one docs/testing.md shows, so the page stays true.
USER_TEST = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S).group(1)

FAILING_TEST = '''
def test_fails_after_the_board_started(npu_board):
    assert npu_board.info.kernels == "no such kernels"
'''


def run_pytest(directory, *args, timeout=300):
    """`python -m pytest` in `directory`, as a user runs it; returns (outcome counts, output)."""
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s",
                           "--basetemp", str(directory / "basetemp"), *args],
                          cwd=directory, capture_output=True, text=True, timeout=timeout, env=env)
    out = proc.stdout + proc.stderr
    summary = out.strip().splitlines()[-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected)",
                                               summary)}
    return proc.returncode, counts, out


def emulators_under(path):
    """PIDs of live processes whose command line mentions `path` (our emulators' flash dirs)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open("/proc/%s/stat" % pid) as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if str(path) in cmdline and "npu_emulator" in cmdline and not zombie:
            found.append(int(pid))
    return found


@pytest.fixture
def user_dir(tmp_path):
    """A directory holding only the user's test file."""
    d = tmp_path / "user"
    d.mkdir()
    (d / "test_my_model.py").write_text(USER_TEST)
    return d


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts processes in /proc")


@needs_proc
@pytest.mark.parametrize("args", [(), ("-n", "2"), ("--npu-core", "micropython"),
                                  ("--npu-core", "qemu")],
                         ids=["plain", "xdist", "micropython-option", "qemu-option"])
def test_user_tests_pass(user_dir, args):
    if "qemu" in args:
        require_qemu()
    rc, counts, out = run_pytest(user_dir, *args)
    assert rc == 0 and counts == {"passed": 5}, out
    assert emulators_under(user_dir) == []
    # which emulators ran: the flash directories they left, per xdist worker
    basetemp = user_dir / "basetemp"
    flashed = {(p.parent.parent.name, p.parent.name.rsplit("-", 1)[0])
               for p in basetemp.glob("**/npu-flash-*/*") if p.suffix in (".npb", ".flash")}
    if "-n" in args:  # one emulator per worker, each with its own flash directory
        assert {worker for worker, _ in flashed} == {"popen-gw0", "popen-gw1"}, out
    else:
        core = args[1] if args else "cpython"
        default = "npu-flash-%s-%s" % (core, DEFAULT_BOARD[core])
        assert {emu for _, emu in flashed} == {default, "npu-flash-micropython-cortex-m4-256k"}


@needs_proc
def test_user_tests_on_a_given_port(user_dir, tmp_path):
    """--npu-port: no emulator of the plugin's own; xdist workers take turns on the one board."""
    from tests.conftest import Emulator
    board = Emulator("cpython", flash_dir=tmp_path / "board-flash")
    try:
        rc, counts, out = run_pytest(user_dir, "--npu-port", board.port, "-n", "2")
    finally:
        board.stop()
    assert rc == 0 and counts == {"passed": 5}, out
    assert "npu: board at %s" % board.port in out
    assert not list((user_dir / "basetemp").glob("**/npu-flash-*"))
    assert sorted(p.name for p in (tmp_path / "board-flash").iterdir()) == ["digits_mlp.npb"]


@needs_proc
def test_user_tests_on_a_keyed_board_sign_with_npu_key(user_dir, tmp_path):
    """A desk board given a key by `npu keys provision`: --npu-key signs the fixtures' flashes;
    without it the board refuses them and the tests say what to do."""
    from npu_sdk import keys
    from npu_sdk.link import Board
    from tests.conftest import Emulator
    key = keys.generate()
    key_file = tmp_path / "board.key"
    key_file.write_text(key.hex())
    board = Emulator("cpython", flash_dir=tmp_path / "board-flash")
    try:
        with Board(board.port) as b:
            b.provision_key(key)
        rc, counts, out = run_pytest(user_dir, "--npu-port", board.port)
        assert rc != 0 and "--key" in out, out
        rc, counts, out = run_pytest(user_dir, "--npu-port", board.port, "--npu-key", key_file)
    finally:
        board.stop()
    assert rc == 0 and counts == {"passed": 5}, out


@needs_proc
def test_emulators_stop_when_tests_fail(tmp_path):
    d = tmp_path / "user"
    d.mkdir()
    (d / "test_fails.py").write_text(FAILING_TEST)
    rc, counts, out = run_pytest(d, "-n", "2")
    assert rc == 1 and counts == {"failed": 1}, out
    assert emulators_under(d) == []


@needs_proc
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux only")
def test_emulator_dies_with_a_killed_pytest(tmp_path):
    d = tmp_path / "user"
    d.mkdir()
    (d / "test_hangs.py").write_text("import time\n\ndef test_hangs(npu_board):\n"
                                     "    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "--basetemp", str(d / "basetemp")], cwd=d,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not emulators_under(d) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert emulators_under(d), "the emulator never started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 20
    while emulators_under(d) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert emulators_under(d) == []


# --- the Board API, through the plugin's own fixtures -------------------------------------

SAMPLES = np.load(ZOO / "digits_mlp" / "samples.npz")


@pytest.fixture(scope="module")
def expected():
    model = DIGITS_INT8.read_bytes()
    interpreter = reference.tflm_interpreter(model)
    return [reference.run_tflm(model, [x], interpreter)[0] for x in SAMPLES["x_int8"][:3]]


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_board_flash_sources_and_run(npu_emulators, tmp_path, core, expected):
    from npu_sdk import compiler
    port = npu_emulators.port(core, "host")
    compiled = compiler.compile_file(DIGITS_INT8)
    npb = tmp_path / "digits.npb"
    npb.write_bytes(compiled.blob)
    with Board(port, timeout=30) as board:
        spec = board.flash(DIGITS_INT8)  # a .tflite, compiled on the fly; name = file stem
        assert spec.name == "digits_mlp" and spec.inputs[0].shape == (1, 8, 8)
        assert board.flash(npb).name == "digits"
        assert board.flash(compiled.blob, "from_bytes").name == "from_bytes"
        assert board.flash(compiled, "compiled").name == "compiled"
        sent = []
        board.flash(str(npb), name="progress", progress=sent.append)
        assert sum(sent) == len(compiled.blob)
        assert {e.name for e in board.list()} >= {"digits_mlp", "digits", "from_bytes", "compiled"}
        for i, want in enumerate(expected):
            x = SAMPLES["x_int8"][i]
            np.testing.assert_array_equal(board.run("digits", x), want)
            np.testing.assert_array_equal(board.run("digits", x[0]), want)  # leading 1 left out
        outputs, median_us = board.invoke("digits_mlp", [SAMPLES["x_int8"][0]], repeat=3)
        np.testing.assert_array_equal(outputs[0], expected[0])
        assert median_us > 0
    with Board(port, timeout=30) as board:  # another connection still knows the input spec
        with pytest.raises(ValueError, match=r"input 0 is int8 \(1, 8, 8\); got float32"):
            board.run("digits", SAMPLES["x_float"][0])


def test_board_run_checks_inputs(npu_board):
    npu_board.flash(DIGITS_FLOAT_IO, "fio")
    x = SAMPLES["x_float"][0]
    assert npu_board.run("fio", x).dtype == np.float32
    with pytest.raises(ValueError, match=r"model 'fio' input 0 is float32 \(1, 8, 8\); got float32 \(64,\)"):
        npu_board.run("fio", x.reshape(64))
    with pytest.raises(ValueError, match="takes 1 input"):
        npu_board.invoke("fio", [x, x])
    with pytest.raises(BoardError, match="no model named 'nothing'"):
        npu_board.run("nothing", x)


def test_board_flash_refuses_bad_sources(npu_board, tmp_path):
    with pytest.raises(ValueError, match="needs a name"):
        npu_board.flash(DIGITS_INT8.read_bytes())
    with pytest.raises(TypeError, match="flash source"):
        npu_board.flash(12345, "n")
    with pytest.raises(ModelError, match="cannot read model"):
        npu_board.flash(tmp_path / "missing.tflite")
    damaged = tmp_path / "damaged.npb"
    blob = (Path(__file__).parent.parent / "vectors" / "digits_int8.npb").read_bytes()
    damaged.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(BlobFormatError, match="SHA-256"):
        npu_board.flash(damaged)
    assert "damaged" not in {e.name for e in npu_board.list()}


def test_npu_model_flashes_once(npu_board, npu_model, monkeypatch):
    name = npu_model(DIGITS_INT8, name="once")
    sent = []
    request = npu_board.request
    monkeypatch.setattr(npu_board, "request", lambda t, *a, **k: sent.append(t) or request(t, *a, **k))
    assert npu_model(DIGITS_INT8, name="once") == name == "once"
    from npu_sdk.link import codec
    assert codec.FLASH_BEGIN not in sent and codec.LIST not in sent  # this connection put it there


@pytest.mark.npu(core="micropython", board="cortex-m4-256k")
def test_marker_selects_core_and_board(npu_board):
    assert (npu_board.info.kernels, npu_board.info.board) == ("viper", "cortex-m4-256k")
    assert npu_board.info.ram == 256 << 10


def test_invoke_checks_repeat(npu_board, npu_model):
    name = npu_model(DIGITS_INT8)
    for bad in (0, 1 << 16):
        with pytest.raises(ValueError, match="repeat must be 1..65535"):
            npu_board.invoke(name, [SAMPLES["x_int8"][0]], repeat=bad)
