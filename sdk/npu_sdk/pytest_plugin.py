"""pytest plugin (entry point `npu`): run a user's tests on a fresh emulator, or on a board.

    import numpy as np
    from npu_sdk import zoo

    def test_digit(npu_board, npu_model):
        name = npu_model(zoo.path("digits_mlp") / "int8.tflite")  # compiled + flashed once
        x = np.load(zoo.path("digits_mlp") / "samples.npz")["x_int8"][0]
        assert npu_board.run(name, x).argmax() == 0

Fixtures: `npu_board` is a connected `npu_sdk.link.Board`; `npu_model(source, name=None)`
compiles a .tflite (or reads an .npb) once per session, flashes it unless the board already
holds that exact blob, and returns its name on the board; `npu_port` is the port itself.

Which board: by default an emulator started for the session (`--npu-core`, `--npu-board`,
or per test `@pytest.mark.npu(core="micropython", board="cortex-m4-256k")`); with
`--npu-port PORT` every test runs on the board at PORT instead and the marker's core and
board are ignored. Under pytest-xdist each worker starts its own emulators (own pty, own
flash directory) and workers take turns on a `--npu-port` board. Every emulator is stopped
at the end of the session, whatever happened; on Linux it also dies with its pytest process.
"""
import atexit
import os
import select
import subprocess
import sys
import threading
import time

import pytest

CORES = ("cpython", "micropython", "qemu")
_START_TIMEOUT = 180.0  # the qemu core builds its firmware image on first use


def pytest_addoption(parser):
    from .profiles import PROFILES
    group = parser.getgroup("npu", "npu-sdk boards")
    group.addoption("--npu-port", default=None, metavar="PORT",
                    help="run npu_board tests on the board at this serial port or pyserial URL "
                         "instead of an emulator")
    group.addoption("--npu-core", default="cpython", choices=CORES,
                    help="emulator core for npu_board (default: cpython; qemu: a MicroPython "
                         "firmware image under qemu-system-arm, needs $MICROPY_DIR)")
    group.addoption("--npu-board", default=None, choices=sorted(PROFILES),
                    help="emulator board profile for npu_board (default: host; mps3-an547 on "
                         "the qemu core)")
    group.addoption("--npu-timeout", default=30.0, type=float, metavar="SECONDS",
                    help="seconds to wait for each board answer (default: 30)")
    group.addoption("--npu-key", default=os.environ.get("NPU_KEY"), metavar="FILE",
                    help="sign flashes with this device key file, for a board given a key by "
                         "`npu keys provision` (default: $NPU_KEY)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "npu(core=None, board=None): run this test's npu_board on an emulator with "
                   "this core (cpython, micropython) and board profile; ignored with --npu-port")


def pytest_report_header(config):
    port = config.getoption("--npu-port")
    if port:
        return "npu: board at %s" % port
    from .profiles import DEFAULT
    core = config.getoption("--npu-core")
    return "npu: emulator core=%s board=%s (started per session, per worker)" % (
        core, config.getoption("--npu-board") or DEFAULT[core])


class Emulator:
    """`python -m npu_emulator` in a subprocess; .port is its pseudo-terminal, .url its
    `--listen` URL when `options` (extra `npu emulate` arguments) ask for one."""

    def __init__(self, core, board, flash_dir=None, timeout=_START_TIMEOUT, options=()):
        self.core, self.board = core, board
        cmd = [sys.executable, "-m", "npu_emulator", "--core", core, "--board", board]
        cmd += ["--flash-dir", str(flash_dir)] if flash_dir else []
        cmd += [str(o) for o in options]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        try:
            deadline = time.monotonic() + timeout
            line = _readline(self.proc.stdout, deadline)
            self.url = None
            if line.startswith("port: ") and "--listen" in cmd:
                self.url = _readline(self.proc.stdout, deadline).split(" ", 1)[-1].strip()
        except BaseException:
            self.stop()
            raise
        if not line.startswith("port: "):
            self.stop()
            raise RuntimeError("the npu emulator (core %s, board %s) did not start: it printed %r "
                               "and exited with %s; its error output is above"
                               % (core, board, line, self.proc.returncode))
        self.port = line.split(":", 1)[1].strip()
        # keep reading what it prints so a chatty emulator never blocks on a full pipe
        self.drain = threading.Thread(target=_discard, args=(self.proc.stdout,), daemon=True)
        self.drain.start()

    def wait(self, timeout=10):
        """The exit code once the emulator has stopped on its own (a power cut, a crash)."""
        return self.proc.wait(timeout=timeout)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        drain = getattr(self, "drain", None)
        if drain is not None:
            drain.join(timeout=5)  # the pipe ends with the process (or with a grandchild)
        if drain is None or not drain.is_alive():
            self.proc.stdout.close()


def _discard(stream):
    while os.read(stream.fileno(), 4096):
        pass


def _readline(stream, deadline):
    """One line from a pipe, or what arrived before EOF or the deadline."""
    fd, data = stream.fileno(), b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


def _die_with_parent():
    """In the child before exec: SIGTERM when the pytest process dies, even by SIGKILL."""
    import ctypes
    import signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class EmulatorPool:
    """The session's emulators, one per (core, board), started on first use."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.emulators = {}
        atexit.register(self.stop_all)  # a backstop if the session never finishes

    def port(self, core, board):
        emu = self.emulators.get((core, board))
        if emu is None or not emu.alive():  # a test may have crashed the board: start afresh
            if emu is not None:
                emu.stop()
            flash = self.tmp_path_factory.mktemp("npu-flash-%s-%s-" % (core, board))
            emu = self.emulators[core, board] = Emulator(core, board, flash)
        return emu.port

    def stop_all(self):
        while self.emulators:
            self.emulators.popitem()[1].stop()


@pytest.fixture(scope="session")
def npu_emulators(tmp_path_factory):
    """The session's emulator pool (per xdist worker); stopped at the end of the session."""
    pool = EmulatorPool(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.stop_all()


def _target(request):
    """(core, board) for this test: the npu marker, else the command-line options."""
    config = request.config
    core, board = config.getoption("--npu-core"), config.getoption("--npu-board")
    marker = request.node.get_closest_marker("npu")
    if marker is not None:
        unknown = set(marker.kwargs) - {"core", "board"}
        if marker.args or unknown:
            raise pytest.UsageError("@pytest.mark.npu takes only core= and board= (got %s)"
                                    % ", ".join(list(map(repr, marker.args)) + sorted(unknown)))
        core, board = marker.kwargs.get("core", core), marker.kwargs.get("board", board)
    from .profiles import DEFAULT, PROFILES
    board = board or DEFAULT.get(core)
    if core not in CORES:
        raise pytest.UsageError("npu core %r: choose one of %s" % (core, ", ".join(CORES)))
    if board not in PROFILES:
        raise pytest.UsageError("npu board profile %r: choose one of %s"
                                % (board, ", ".join(sorted(PROFILES))))
    return core, board


@pytest.fixture
def npu_port(request):
    """The port of the board under test: --npu-port, or this session's emulator for the
    test's core and board."""
    port = request.config.getoption("--npu-port")
    if port:
        return port
    return request.getfixturevalue("npu_emulators").port(*_target(request))


@pytest.fixture
def npu_board(request, npu_port):
    """A connected npu_sdk.link.Board (a real board is shared by xdist workers in turn)."""
    from . import keys
    from .link import Board
    with _board_lock(npu_port if request.config.getoption("--npu-port") else None):
        key = keys.load(request.config.getoption("--npu-key"))
        with Board(npu_port, timeout=request.config.getoption("--npu-timeout"), key=key) as board:
            yield board


class _board_lock:
    """An exclusive lock on a real board across processes (xdist workers); no-op for None."""

    def __init__(self, port):
        self.port, self.file = port, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # not POSIX: run without the lock
            return self
        if self.port:
            import hashlib
            import tempfile
            key = hashlib.sha1(self.port.encode()).hexdigest()[:16]
            self.file = open(os.path.join(tempfile.gettempdir(), "npu-board-%s.lock" % key), "w")
            fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.file is not None:
            self.file.close()  # releases the lock


@pytest.fixture(scope="session")
def _npu_blobs():
    return {}


@pytest.fixture
def npu_model(npu_board, _npu_blobs):
    """npu_model(source, name=None) -> the model's name on npu_board.

    `source` is a .tflite (compiled once per session), an .npb, or blob bytes with a name;
    the name defaults to the file's stem. The model is flashed unless the board already
    holds this exact blob under that name, so each model is sent once per session."""
    from .models import load_model

    def flash(source, name=None):
        if isinstance(source, (str, os.PathLike)):
            path = os.path.realpath(source)
            try:
                st = os.stat(path)
                key = (path, st.st_mtime_ns, st.st_size)
            except OSError:
                key = None  # load_model reports the missing file
            if key is None or key not in _npu_blobs:
                _npu_blobs[key] = load_model(path)[0]
            data, name = _npu_blobs[key], name or os.path.splitext(os.path.basename(path))[0]
        else:
            data = source
        return npu_board.flash(data, name, skip_if_same=True).name

    return flash
