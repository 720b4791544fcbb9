"""What the tests and the developer tools share: paths to the zoo, the real emulator started as
users start it, a deterministic board clock, a one-op model, the qemu board's flash.

tests/conftest.py re-exports all of it; tools import it from here (tools never import tests/)."""
import os
from pathlib import Path

from npu_sdk.profiles import DEFAULT as DEFAULT_BOARD
from npu_sdk.pytest_plugin import Emulator as PluginEmulator

ROOT = Path(__file__).resolve().parent.parent  # tools/ -> the repository
ZOO = ROOT / "model_zoo"
DIGITS_INT8 = ZOO / "digits_mlp" / "int8.tflite"
DIGITS_FLOAT_IO = ZOO / "digits_mlp" / "int8_float_io.tflite"


class Emulator(PluginEmulator):
    """`npu emulate` in a subprocess, started as the pytest plugin starts it; keyword options
    map to the command's: listen="socket://127.0.0.1:0", baud, faults, power_cut_after_writes,
    icount (qemu: the board's clock counts instructions), kernels="viper" (qemu)."""

    def __init__(self, core="cpython", board=None, flash_dir=None, listen=None, baud=None,
                 faults=None, power_cut_after_writes=0, icount=False, kernels=None):
        options = ["--icount"] if icount else []
        options += ["--kernels", kernels] if kernels else []
        for option, value in (("--listen", listen), ("--baud", baud), ("--faults", faults),
                              ("--power-cut-after-writes", power_cut_after_writes)):
            if value:
                options += [option, value]
        if core == "qemu":
            require_qemu()
        super().__init__(core, board or DEFAULT_BOARD[core], flash_dir, options=options)


def require_qemu():
    """Skip a qemu-core test where the toolchain or MicroPython's source is missing, saying
    what to install; in CI (CI=true) fail instead: .ci/run installs them."""
    import pytest

    from npu_sdk import firmware_image
    from npu_sdk.errors import NpuError
    missing = firmware_image.missing_tools()
    why = "apt-get install %s" % missing if missing else None
    if why is None:
        try:
            firmware_image.micropython_dir()
        except NpuError as e:
            why = str(e)
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail("the qemu core cannot run in CI: %s" % why, pytrace=False)
    pytest.skip("qemu core: %s" % why)


CORES = ["cpython", "micropython", "qemu"]


def run_on_board(board, blob, inputs):
    """Flash `blob` as 'case' and run it once: its first output's bytes."""
    board.flash(bytes(blob), "case")
    outputs, _ = board.invoke("case", inputs)
    return outputs[0].tobytes()


def _flash_image(flash_dir):
    """The qemu board's FlashStore read from its flash file in flash_dir, or None."""
    import mmap

    from npufw.flash import FlashStore
    images = sorted(Path(flash_dir).glob("qemu-*.flash"))
    if not images:
        return None
    with open(images[0], "rb") as f:
        region = mmap.mmap(f.fileno(), 16 << 20, access=mmap.ACCESS_READ)
    return FlashStore(region)


def flash_files(flash_dir):
    """What a board's flash holds, as the file store names it, for every core: the qemu
    board's directory entries appear as NAME.npb, NAME.old, NAME.part + NAME.sid, NAME.ver,
    device.key, device.lock."""
    from npufw import flash
    store = _flash_image(flash_dir)
    if store is None:
        return sorted(os.listdir(flash_dir))
    names = {flash.NPB: [".npb"], flash.OLD: [".old"], flash.PART: [".part", ".sid"],
             flash.VER: [".ver"]}
    out = []
    for name, kind in store.entries:
        out += [name] if kind in (flash.KEY, flash.LOCK) else [name + ext for ext in names[kind]]
    return sorted(out)


def flash_fingerprint(flash_dir, name):
    """Changes whenever stored model `name` is written again: its file's inode and mtime, or
    on the qemu board the directory's sequence number and the model's extent."""
    store = _flash_image(flash_dir)
    if store is None:
        st = (Path(flash_dir) / (name + ".npb")).stat()
        return st.st_ino, st.st_mtime_ns
    from npufw import flash
    return store.seq, store.entries[(name, flash.NPB)][1]


class StepClock:
    """A board clock that advances 7 µs per reading: deterministic times for vectors and tests."""

    def __init__(self):
        self.t = 0

    def ticks_us(self):
        self.t += 7
        return self.t

    @staticmethod
    def ticks_diff(a, b):
        return a - b


def fc_model(in_depth, out_depth, batches=1, seed=0):
    """A one-op int8 FULLY_CONNECTED model with seeded weights: (tflite bytes, blob bytes).
    The blob's size follows the weights (in_depth * out_depth), its arena the batch."""
    import numpy as np

    from npu_sdk import compiler, tflite
    from tools import tflite_build

    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (out_depth, in_depth)).astype(np.int8)
    bias = rng.integers(-1000, 1000, out_depth).astype(np.int32)
    model = tflite_build.fully_connected_model(in_depth, out_depth, batches, (0.05, -3), w, 0.01,
                                               bias, (0.2, 5))
    return model, compiler.compile_graph(tflite.parse(model)).blob
