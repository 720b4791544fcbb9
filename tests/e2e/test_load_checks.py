"""A blob that installs runs: the firmware checks at FLASH_END everything the kernels trust.

Each blob here is the keyword-spotting zoo model with one field edited and its checksums
recomputed (tools/fuzz_blobs.edit), so only the firmware's own checks (npufw/checks.py,
from the registry's tables) stand between it and the kernels. Flashed without the host's
pre-flight over a good model, each is refused with a reason and the good model keeps
running, on every emulator core. Its ops: 0 CONV_2D, 1 DEPTHWISE_CONV_2D, ... 9
AVERAGE_POOL_2D, 10 FULLY_CONNECTED, 11 SOFTMAX.
"""
import numpy as np
import pytest

from npu_sdk import blob, compiler, ops, profiles, report, tflite
from npu_sdk.errors import BoardError, PreflightError
from npu_sdk.link import Board
from tests.conftest import CORES, ZOO, Emulator
from tools import tflite_build
from tools.fuzz_blobs import edit

FC, POOL, SOFTMAX, DEPTHWISE = 10, 9, 11, 1


def _param(op, index, value):
    def change(body):
        body.ops[op].params[index] = value
    return change


def _shift(op, channel, value):
    def change(body):
        t = body.tensors[body.ops[op].inputs[4]]
        c = bytearray(body.constants)
        at = t.offset + 4 * channel
        c[at:at + 4] = value.to_bytes(4, "little", signed=True)
        body.constants = bytes(c)
    return change


def _input(op, k, value):
    def change(body):
        body.ops[op].inputs[k] = value
    return change


def _misalign_bias(body):
    body.tensors[body.ops[FC].inputs[2]].offset += 1


def _overlap(body):  # the pooling reads where it writes
    op = body.ops[POOL]
    body.tensors[op.inputs[0]].offset = body.tensors[op.outputs[0]].offset


def _window(body):  # a 2^30-wide window, almost all padding: the 208-byte denial of service
    p = body.ops[POOL].params
    p[7], p[11] = 1 << 30, (1 << 30) - 2


def _arena(body):
    body.header.value.arena_size = 1 << 30


DEFECTS = [
    ("per-channel shift 40", _shift(FC, 0, 40), "shift[0] must be in [-31, 31], got 40"),
    ("FC input_offset near 2^31", _param(FC, 3, (1 << 31) - 1), "must be in [-127, 128]"),
    ("depthwise input_offset -128", _param(DEPTHWISE, 15, -128), "must be in [-127, 128]"),
    ("softmax input_left_shift 40", _param(SOFTMAX, 3, 40), "must be in [0, 31]"),
    ("softmax diff_min > 0", _param(SOFTMAX, 4, 5), "must be in [-2147483648, 0]"),
    ("softmax shift overflowing", _param(SOFTMAX, 3, 31), "overflow int32"),
    ("int32 bias misaligned", _misalign_bias, "not a multiple of its item size 4"),
    ("weights absent", _input(FC, 1, -1), "input 1 is required"),
    ("input overlapping the output", _overlap, "overlap"),
    ("pooling window past the padding", _param(POOL, 6, 100), "larger than the padded"),
    ("pooling window of 2^30", _window, "multiply-accumulates"),
    ("1 GiB arena", _arena, "arena"),
]


@pytest.fixture(scope="module")
def kws():
    model = (ZOO / "kws_dscnn" / "int8.tflite").read_bytes()
    return compiler.compile_graph(tflite.parse(model)).blob


@pytest.mark.parametrize("core", CORES)
def test_a_blob_the_kernels_cannot_trust_is_refused_at_install(kws, core):
    emu = Emulator(core, board=None if core == "qemu" else "esp32-s3-512k")
    try:
        with Board(emu.port, timeout=60) as board:
            board.flash(kws, "m")
            spec = blob.unpack(kws).tensors[blob.unpack(kws).inputs[0]]
            x = np.ones(tuple(spec.shape[:spec.ndim]), np.int8)
            y = board.run("m", x)
            refused = []
            for what, change, words in DEFECTS:
                with pytest.raises(BoardError) as e:
                    board.flash(edit(kws, change), "m", preflight=False)
                assert "model rejected, old model kept" in str(e.value), what
                assert words in str(e.value), (what, str(e.value))
                refused.append(what)
                assert [m.blob_id for m in board.list()] == [kws[-32:]], what
            assert len(refused) == len(DEFECTS)
            np.testing.assert_array_equal(board.run("m", x), y)  # the good model still runs
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def heavy():
    """One 27x27 CONV_2D on 64x64x8: 191,102,976 multiply-accumulates per RUN, more than one
    second of a 168 MMAC/s Cortex-M4 (the cortex-m4-256k and mps3-an547 budgets), within the
    host's; its arena (64 KB) and weights (47 KB) fit those boards' RAM: only its work is
    too much."""
    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, (8, 27, 27, 8)).astype(np.int8)
    model = tflite_build.conv2d_model((1, 64, 64, 8), (0.05, 0), w, 0.01, None, (0.5, 0))
    return compiler.compile_graph(tflite.parse(model)).blob


@pytest.mark.parametrize("core", CORES)
def test_a_model_over_the_boards_work_budget_is_refused_at_install_and_load(kws, heavy, core,
                                                                            tmp_path):
    board_name = "mps3-an547" if core == "qemu" else "cortex-m4-256k"
    budget = profiles.run_macs(board_name)
    assert ops.run_work(blob.unpack(heavy).ops) == 191102976 > budget
    fit = report.report(heavy, profiles.get(board_name))["board"]  # npu inspect --board says so
    assert fit["ram_margin"] >= 0 and fit["run_work"] > fit["run_budget"] and not fit["fits"]
    flash_dir = tmp_path / "flash"
    emu = Emulator(core, board=board_name, flash_dir=flash_dir)
    try:
        with Board(emu.port, timeout=60) as board:
            board.flash(kws, "m")
            with pytest.raises(PreflightError) as e:  # the host knows the board's budget
                board.flash(heavy, "m")
            assert e.value.kind == "work" and "allows %d" % budget in str(e.value)
            with pytest.raises(BoardError) as e:  # a host that skips the pre-flight
                board.flash(heavy, "m", preflight=False)
            assert e.value.code == 5 and "model rejected, old model kept" in str(e.value)
            assert "one RUN takes 191102976 multiply-accumulates, this board allows %d" \
                % budget in str(e.value)
            assert [m.blob_id for m in board.list()] == [kws[-32:]]
    finally:
        emu.stop()
    if core == "qemu":
        return  # the qemu board's profile is its image's: it never changes under its flash
    # installed where the budget allows it (the host), the same flash under a smaller board
    emu = Emulator(core, board="host", flash_dir=flash_dir)
    try:
        with Board(emu.port, timeout=60) as board:
            board.flash(heavy, "big")
    finally:
        emu.stop()
    emu = Emulator(core, board=board_name, flash_dir=flash_dir)
    try:
        with Board(emu.port, timeout=60) as board:
            x = np.zeros((1, 64, 64, 8), np.int8)
            with pytest.raises(BoardError) as e:
                board.run("big", x)
            assert e.value.code == 5 and "this board allows %d" % budget in str(e.value)
    finally:
        emu.stop()
