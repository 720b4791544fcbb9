"""The emulator's virtual UART like hardware: a loopback TCP port beside the pty, the line rate,
line faults (seeded), and its command-line errors."""
import subprocess
import sys
import time

import numpy as np
import pytest

from npu_emulator import faults
from npu_emulator.pacing import CATCH_UP_S, Pacer
from npu_sdk.errors import LinkTimeout
from npu_sdk.link import Board, codec
from npufw.server import Server
from tools import tflite_build
from tests.conftest import Emulator, fc_model

CORES = ["cpython", "micropython"]
X = np.arange(-32, 32, dtype=np.int8).reshape(1, 64)


@pytest.fixture(scope="module")
def model():
    tfl, blob = fc_model(64, 100, seed=12)  # 6.6 KB: two FLASH_DATA chunks
    return blob, tflite_build.run_tflm(tfl, X)


def emulate(*args):
    return subprocess.run([sys.executable, "-m", "npu_emulator", *args], capture_output=True,
                          text=True, timeout=30)


# --- listen -------------------------------------------------------------------------

@pytest.mark.parametrize("core", CORES)
def test_socket_and_pty_reach_the_same_board(core, tmp_path, model):
    emu = Emulator(core, flash_dir=tmp_path, listen="socket://127.0.0.1:0")
    try:
        assert emu.url.startswith("socket://127.0.0.1:") and not emu.url.endswith(":0")
        with Board(emu.url) as board:
            board.flash(model[0], "m")
            np.testing.assert_array_equal(board.run("m", X), model[1])
        with Board(emu.port) as board:  # the same UART through the other cable
            assert [e.name for e in board.list()] == ["m"]
        with Board(emu.url) as board:  # a second TCP connection after the first hung up
            np.testing.assert_array_equal(board.run("m", X), model[1])
    finally:
        emu.stop()


@pytest.mark.parametrize("args, message", [
    (["--listen", "socket://10.0.0.1:5000"], "not a loopback address"),
    (["--listen", "tcp://127.0.0.1:5000"], "is not socket://127.0.0.1:PORT"),
    (["--listen", "socket://127.0.0.1:http"], "is not socket://127.0.0.1:PORT"),
    (["--baud", "fast"], "--baud fast is not a rate"),
    (["--faults", "flip=2"], "bad --faults spec: flip=2 is not a probability"),
    (["--faults", "stall=0.1"], "stall=0.1 needs RATE:DURATION"),
    (["--faults", "bitrot=0.1"], "unknown fault 'bitrot'"),
    (["--power-cut-after-writes", "-1"], "must be 1 or more"),
])
def test_bad_options_are_one_clear_line(args, message):
    r = emulate(*args)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.startswith("npu emulate: ") and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# --- line rate ----------------------------------------------------------------------

class _FakeTime:
    """A clock whose sleeps overshoot, as an OS's do."""

    def __init__(self, overshoot):
        self.t = 1000.0
        self.overshoot = overshoot

    def clock(self):
        return self.t

    def sleep(self, s):
        self.t += s + self.overshoot


@pytest.mark.parametrize("baud", [9600, 115200, 921600, 3000000])
def test_pacer_keeps_the_line_rate_over_long_transfers(baud):
    fake = _FakeTime(overshoot=0.0004)
    pacer = Pacer(baud, fake.clock, fake.sleep)
    n = baud // 10 * 3  # three seconds of line time, in host-sized writes
    start = fake.t
    sent = 0
    for i in range(0, n, 4096):
        sent += sum(len(p) for p in pacer.slices(bytes(min(4096, n - i))))
    assert sent == n
    assert 3.0 <= fake.t - start <= 3.0 + CATCH_UP_S + 0.001


def test_pacer_starts_fresh_after_idle():
    fake = _FakeTime(overshoot=0.0)
    pacer = Pacer(115200, fake.clock, fake.sleep)
    list(pacer.slices(bytes(100)))
    fake.t += 5.0  # the line was idle: no credit carried over
    before = fake.t
    list(pacer.slices(bytes(10)))
    assert fake.t - before == pytest.approx(10 / 11520.0)


def test_paced_flash_takes_at_least_the_line_time(tmp_path, model):
    emu = Emulator("cpython", flash_dir=tmp_path, baud=115200)
    try:
        with Board(emu.port) as board:
            t0 = time.monotonic()
            board.flash(model[0], "m")
            elapsed = time.monotonic() - t0
            sent = board.last_flash.sent
    finally:
        emu.stop()
    # a lower bound, not a timing test: the data sent (deflated) alone is 10 bits a byte
    assert elapsed >= sent * 10 / 115200.0


# --- faults -------------------------------------------------------------------------

def test_faults_depend_on_the_seed_and_bytes_not_on_chunking():
    spec = faults.parse("flip=0.01,drop=0.01,dup=0.01,stall=0.002:1ms,seed=7")
    data = bytes(range(256)) * 40
    whole = faults.FaultyLine(spec, "host->board").apply(data)
    for step in (1, 13, 4096):
        line = faults.FaultyLine(spec, "host->board")
        pieces = [p for i in range(0, len(data), step) for p in line.apply(data[i:i + step])]
        assert b"".join(p for p in pieces if isinstance(p, bytes)) == \
            b"".join(p for p in whole if isinstance(p, bytes))
        assert [p for p in pieces if isinstance(p, float)] == [p for p in whole if isinstance(p, float)]
    counts = line.counts
    assert all(counts[k] > 0 for k in ("flip", "drop", "dup", "stall")), counts
    other = faults.FaultyLine(faults.parse("flip=0.01,seed=8"), "host->board").apply(data)
    assert other != faults.FaultyLine(faults.parse("flip=0.01,seed=7"), "host->board").apply(data)


def test_each_fault_does_what_it_says():
    def run(spec, data):
        return faults.FaultyLine(faults.parse(spec), "x").apply(data)
    assert run("dup=1", b"ab") == [b"aabb"]
    assert run("drop=1", b"ab") == []
    (flipped,) = run("flip=1", bytes(4))
    assert [bin(b).count("1") for b in flipped] == [1, 1, 1, 1]
    assert run("stall=1:5ms", b"a") == [0.005, b"a"]
    assert run("flip=0,seed=3", b"abc") == [b"abc"]


# Modest rates: about one fault per 5 KB each way. Seeds fixed; each one prints on failure.
FAULT_SEEDS = [1, 2, 3]
FAULT_SPEC = "flip=5e-5,drop=5e-5,dup=5e-5,stall=5e-5:20ms,seed=%d"


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("seed", FAULT_SEEDS)
def test_a_faulty_line_never_installs_a_damaged_model(core, seed, tmp_path, model):
    blob, expected = model
    spec = FAULT_SPEC % seed
    emu = Emulator(core, flash_dir=tmp_path, faults=spec)
    outcome = "ok"
    try:
        with Board(emu.port, timeout=0.3, retries=3) as board:
            board.flash(blob, "m")
            np.testing.assert_array_equal(board.run("m", X), expected)
    except LinkTimeout as e:  # allowed: a clear timeout, never a hang or a damaged model
        outcome = "timeout: %s" % e
    finally:
        emu.stop()
    emu = Emulator(core, flash_dir=tmp_path)  # the same flash, a clean line
    try:
        with Board(emu.port) as board:
            entries = board.list()
            assert entries == [] or [(e.name, e.blob_id) for e in entries] == [("m", blob[-32:])], \
                "--faults %s (%s): board holds %r" % (spec, outcome, entries)
            if entries:
                np.testing.assert_array_equal(board.run("m", X), expected)
    finally:
        emu.stop()


class _NoUart:
    pass


def test_a_retransmitted_flash_end_gets_the_same_answer(tmp_path, model):
    from npu_emulator import _kernels
    from npufw.board import Board as FwBoard
    from npufw.store import Store
    blob = model[0]
    server = Server(FwBoard(_NoUart(), Store(str(tmp_path), 1 << 20), time, _kernels,
                            {"ram": 1 << 20, "flash": 1 << 20, "board": "t"}, "c"))

    def ask(ftype, seq, payload=b""):
        return codec.decode(server.handle(codec.encode(ftype, seq, payload)[1:-1])[1:-1])

    assert ask(codec.FLASH_BEGIN, 1, codec.flash_begin_request(len(blob), blob[-32:], "m"))[0] \
        == codec.FLASH_BEGIN | codec.RESPONSE
    for seq, offset in enumerate(range(0, len(blob), 4092), 2):
        ask(codec.FLASH_DATA, seq, codec.flash_data_request(offset, blob[offset:offset + 4092]))
    first = ask(codec.FLASH_END, 9)
    assert first[0] == codec.FLASH_END | codec.RESPONSE
    assert ask(codec.FLASH_END, 9) == first  # the host did not hear the first answer
