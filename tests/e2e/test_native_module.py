"""The board's `npu` module (firmware/native) at the qemu board's REPL: it refuses bad calls
with the CPython binding's words (one piece of code, npu_checks.c, checks both) and never
touches memory it was not given."""
import pytest

from tests.conftest import Emulator

from .test_link_commands import npu

_kernels = pytest.importorskip("npu_emulator._kernels")

# (call text, the same call on CPython): a buffer too small, a bad scalar, a bad shift
_CALLS = [
    "fully_connected(bytes(17), bytes(36), None, bytearray(8), bytes(16), bytes(16), "
    "2, 9, 4, 0, 0, -128, 127)",
    "fully_connected(bytes(18), bytes(36), None, bytearray(8), bytes(16), bytes(16), "
    "0, 9, 4, 0, 0, -128, 127)",
    "fully_connected(bytes(18), bytes(36), None, bytearray(8), bytes(16), "
    "bytes([0] * 8 + [32, 0, 0, 0] + [0] * 4), 2, 9, 4, 0, 0, -128, 127)",
    "conv2d(bytes(32), bytes(53), None, bytearray(48), bytes(12), bytes(12), 1, 4, 4, 2, 4, 4, "
    "3, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, -128, 127)",
    "lut(bytes(8), bytes(255), bytearray(8), 8)",
    "average_pool2d(bytes(32), bytearray(8), 1, 4, 4, 2, 2, 2, 2, 2, 3, 3, 2, 0, -128, 127)",
    # 16x8: a buffer too small, a shift out of the 64-bit requantization's range
    "fully_connected_s16(bytes(34), bytes(36), None, bytearray(16), bytes(16), bytes(16), "
    "2, 9, 4, -32768, 32767)",
    "conv2d_s16(bytes(64), bytes(54), None, bytearray(96), bytes(12), "
    "bytes([8, 0, 0, 0] + [0] * 8), 1, 4, 4, 2, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, "
    "-32768, 32767)",
]


def _cpython_message(call):
    try:
        eval("_kernels." + call, {"_kernels": _kernels})
    except ValueError as e:
        return str(e)
    raise AssertionError("CPython took " + call)


def test_the_module_refuses_what_the_cpython_binding_refuses(tmp_path):
    # one line per call: the friendly REPL indents what follows a block's first line
    script = "import npu\n" + "".join(
        "exec(%r)\n" % ("try:\n npu.%s\nexcept ValueError as e:\n print('refused:', e)" % c)
        for c in _CALLS)
    emu = Emulator("qemu", flash_dir=tmp_path / "flash")
    try:
        r = npu("repl", "--port", emu.port, "--exit", "--wait", 3, stdin=script, check=False)
    finally:
        emu.stop()
    got = [line.split("refused: ", 1)[1].strip() for line in r.stdout.splitlines()
           if line.startswith("refused: ")]
    assert got == [_cpython_message(c) for c in _CALLS], r.stdout + r.stderr


def test_the_kernel_set_runs_every_16x8_kernel_natively(tmp_path):
    """The firmware's kernel set (npufw.driver) holds the module's 16x8 kernels, so 16x8
    models run them, not viper's (npufw.kernels16, which stays unimported)."""
    script = ("import sys, npu\nfrom npufw import driver\nks = driver.kernel_set()[0]\n"
              "print('s16:', ' '.join(sorted(n for n in dir(ks) if '_s16' in n and "
              "getattr(ks, n) is getattr(npu, n, None))), 'npufw.kernels16' in sys.modules)\n")
    emu = Emulator("qemu", flash_dir=tmp_path / "flash")
    try:
        r = npu("repl", "--port", emu.port, "--exit", "--wait", 3, stdin=script, check=False)
    finally:
        emu.stop()
    got = [line for line in r.stdout.splitlines() if line.startswith("s16:")]
    want = sorted(n for n in dir(_kernels) if "_s16" in n)
    assert got == ["s16: %s False" % " ".join(want)], r.stdout + r.stderr
