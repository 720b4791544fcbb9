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

A board farm: `pytest -n 4 --npu-places 'npu-*'` gives each worker its own labgrid place
matching the pattern, acquired from the coordinator (`--npu-coordinator`, default
$LG_COORDINATOR) by xdist's controller before the workers start and released at the end of
the run (docs/farm.md). Each test's JUnit record carries npu_place, npu_firmware,
npu_model_hash and npu_latency_us properties.
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
    group.addoption("--npu-places", default=None, metavar="PATTERN",
                    help="run npu_board tests on boards of a labgrid farm: each xdist worker "
                         "(or the session without xdist) gets its own place matching PATTERN "
                         "(npu-*), acquired for the run and released at its end")
    group.addoption("--npu-coordinator", default=None, metavar="HOST:PORT",
                    help="labgrid coordinator for --npu-places (default: $LG_COORDINATOR or "
                         "127.0.0.1:20408)")
    group.addoption("--npu-timeout", default=30.0, type=float, metavar="SECONDS",
                    help="seconds to wait for each board answer (default: 30)")
    group.addoption("--npu-key", default=os.environ.get("NPU_KEY"), metavar="FILE",
                    help="sign flashes with this device key file, for a board given a key by "
                         "`npu keys provision` (default: $NPU_KEY)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "npu(core=None, board=None): run this test's npu_board on an emulator with "
                   "this core (cpython, micropython) and board profile; ignored with --npu-port")
    pattern = config.getoption("--npu-places")
    xdist_controller = not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no"
    if pattern and xdist_controller:  # a place per worker, taken before the workers start
        config._npu_places = Places(pattern, config.getoption("--npu-coordinator"),
                                    len(config.getoption("tx")))


def pytest_report_header(config):
    if config.getoption("--npu-places"):
        return "npu: a labgrid place matching %r per worker" % config.getoption("--npu-places")
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


class Place:
    """A labgrid place this session runs on: its name, serial URL and coordinator, and the
    board kept connected to it (closed by close()); `dead` once the board stopped answering."""

    def __init__(self, name, url, address):
        self.name, self.url, self.address = name, url, address
        self.board = self.dead = None

    def close(self):
        if self.board is not None:
            self.board.close()
            self.board = None


class Places:
    """`count` free places matching `pattern`, acquired through one coordinator session and
    released together. Under xdist the controller holds them and hands each worker its own
    (pytest_configure_node), so no worker talks to the coordinator: a worker starts without
    labgrid's client (grpc), and a worker that crashes leaves no place held."""

    def __init__(self, pattern, address, count):
        from .places import Coordinator
        self.held = []
        with Coordinator(address) as c:  # a session per step: an idle grpc stream is not kept alive
            self.address = c.address
            names = c.names(pattern)
            if not names:
                raise pytest.UsageError("--npu-places %r matches no place on labgrid's "
                                        "coordinator at %s" % (pattern, c.address))
            try:
                for name in names:
                    if len(self.held) < count and c.acquire(name):
                        self.held.append(Place(name, None, c.address))
                if len(self.held) < count:
                    raise pytest.UsageError(
                        "%d of the %d places matching %r are free, for %d workers; run fewer "
                        "workers or free a place" % (len(self.held), len(names), pattern, count))
                for place in self.held:
                    place.url = c.serial_url(place.name)
            except BaseException:
                for place in self.held:
                    c.release(place.name)
                self.held = []
                raise
        self.free = list(self.held)  # not handed to a worker yet
        atexit.register(self.release)  # a backstop if the session never finishes

    def release(self):
        from .errors import NpuError
        from .places import Coordinator
        held, self.held = self.held, []
        for place in held:
            place.close()
        if held:
            try:
                with Coordinator(self.address) as c:
                    for place in held:
                        c.release(place.name)
            except NpuError:
                pass  # the coordinator is gone: so are the locks


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    places = getattr(node.config, "_npu_places", None)
    if places is not None and places.free:
        place = places.free.pop(0)
        node.workerinput["npu_place"] = [place.name, place.url, place.address]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """A crashed worker's place goes to the worker that replaces it."""
    places = getattr(node.config, "_npu_places", None)
    given = node.workerinput.get("npu_place") if places is not None else None
    place = next((p for p in places.held if p.name == given[0]), None) if given else None
    if place is not None:
        places.free.append(place)


def pytest_unconfigure(config):
    places = getattr(config, "_npu_places", None)
    if places is not None:
        places.release()


@pytest.fixture(scope="session")
def npu_place(request):
    """This session's labgrid place (with --npu-places), else None: handed over by xdist's
    controller, or acquired here for a run without xdist (and released at its end)."""
    config = request.config
    pattern = config.getoption("--npu-places")
    if not pattern:
        yield None
        return
    given = getattr(config, "workerinput", {}).get("npu_place")
    if given:
        place = Place(*given)
        try:
            yield place
        finally:
            place.close()
        return
    if hasattr(config, "workerinput"):
        raise pytest.UsageError("this xdist worker was handed no place for --npu-places")
    places = Places(pattern, config.getoption("--npu-coordinator"), 1)
    try:
        yield places.held[0]
    finally:
        places.release()


@pytest.fixture
def npu_port(request, npu_place):
    """The port of the board under test: this worker's place, --npu-port, or this session's
    emulator for the test's core and board."""
    if npu_place is not None:
        return npu_place.url
    port = request.config.getoption("--npu-port")
    if port:
        return port
    return request.getfixturevalue("npu_emulators").port(*_target(request))


@pytest.fixture
def npu_board(request, npu_port, npu_place):
    """A connected npu_sdk.link.Board (a real board is shared by xdist workers in turn; a
    farm's board stays connected for the worker's session: RFC 2217 takes ~1 s to connect)."""
    from . import keys
    from .errors import NpuError
    from .link import Board
    props = request.node.user_properties
    if npu_place is not None:
        props.append(("npu_place", npu_place.name))
        request.node._npu_where = "place %s (%s)" % (npu_place.name, npu_port)
    shared = request.config.getoption("--npu-port") if npu_place is None else None
    with _board_lock(shared):
        key = keys.load(request.config.getoption("--npu-key"))
        board = npu_place.board if npu_place is not None else None
        if npu_place is not None and npu_place.dead:  # fail fast, do not wait on it per test
            pytest.fail(npu_place.dead, pytrace=False)
        try:
            if board is not None:
                try:
                    board.info = board.hello()  # still there? (and a fresh view of it)
                except NpuError:
                    board.close()
                    board = npu_place.board = None
            if board is None:
                board = Board(npu_port, timeout=request.config.getoption("--npu-timeout"), key=key)
        except NpuError as e:
            where = getattr(request.node, "_npu_where", npu_port)
            message = "npu: the board at %s does not answer: %s" % (where, e)
            if npu_place is not None:
                npu_place.dead = message
            pytest.fail(message, pytrace=False)
        board.last_invoke_us = None
        props.append(("npu_firmware", board.info.firmware))
        try:
            yield board
        finally:
            if board.last_invoke_us is not None:
                props.append(("npu_latency_us", board.last_invoke_us))
            if npu_place is not None:
                npu_place.board = board  # kept for the next test; closed with the place
            else:
                board.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test on a farm's board names the place, so the failure leads to the board."""
    outcome = yield
    report = outcome.get_result()
    where = getattr(item, "_npu_where", None)
    if report.failed and where:
        report.sections.append(("npu board", "this test ran on the board at %s" % where))


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
def npu_model(request, npu_board, _npu_blobs):
    """npu_model(source, name=None) -> the model's name on npu_board.

    `source` is a .tflite (compiled once per session), an .npb, or blob bytes with a name;
    the name defaults to the file's stem, or a zoo file's folder (models.default_name). The
    model is flashed unless the board already holds this exact blob under that name, so each
    model is sent once per session (the board is not even asked when this connection flashed
    it: a farm's board stays connected for the session)."""
    from .models import default_name, load_model

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
            data, name = _npu_blobs[key], name or default_name(path)
        else:
            data = source
        held = npu_board.models.get(name) if name else None
        if held is None or held.blob_id != bytes(data[-32:]):
            name = npu_board.flash(data, name, skip_if_same=True).name
        request.node.user_properties.append(("npu_model_hash", "%s:%s" % (name, bytes(data[-32:]).hex())))
        return name

    return flash
