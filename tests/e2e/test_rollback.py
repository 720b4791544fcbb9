"""Two slots per model name: a newly flashed model that fails its first load is rolled back.

The store keeps the previous version (NAME.old) until the new one has run once
(npufw/store.py); the server confirms on a successful first RUN and rolls back on a failed
first load or RUN. End to end on both cores: flash A and run it, flash B over it whose
weights have a dtype the kernel does not take (it passes every check FLASH_END makes;
only the load finds out), then RUN answers with an error saying it rolled back, and the
name serves A again.
"""
import os

import numpy as np
import pytest

from npu_sdk.errors import BoardError
from npu_sdk.link import Board, codec
from npufw import store as fw_store
from tools import tflite_build
from tests.conftest import Emulator, fc_model
from tools.fuzz_blobs import edit

X = np.arange(16, dtype=np.int8).reshape(1, 16)


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_a_model_that_fails_its_first_load_is_rolled_back(core, tmp_path):
    flash_dir = tmp_path / "flash"
    model_a, a = fc_model(16, 8, seed=1)
    _, b = fc_model(16, 8, seed=2)
    b = edit(b, lambda body: setattr(body.tensors[body.ops[0].inputs[1]], "dtype", "uint8"))
    expected = tflite_build.run_tflm(model_a, X)
    emu = Emulator(core, board="cortex-m4-256k", flash_dir=flash_dir)
    try:
        with Board(emu.port, timeout=30) as board:
            board.flash(a, "m")
            np.testing.assert_array_equal(board.run("m", X), expected)
            assert sorted(os.listdir(flash_dir)) == ["m.npb"]  # A has loaded: one slot
            board.flash(b, "m", preflight=False)
            assert sorted(os.listdir(flash_dir)) == ["m.npb", "m.old"]  # A kept until B loads
            assert board.list()[0].blob_id == b[-32:]
            with pytest.raises(BoardError) as e:  # sent raw: the host would check X against B
                board.request(codec.RUN, codec.run_request("m", [X.tobytes()]))
            assert e.value.code == 5 and "rolled back" in str(e.value) and "dtype" in str(e.value)
            assert sorted(os.listdir(flash_dir)) == ["m.npb"]
        # a new session: this Board still holds B's input spec for "m" (npu_sdk.link caches
        # what it flashed), a new one learns from the board's list that "m" is A again
        with Board(emu.port, timeout=30) as board:
            (entry,) = board.list()
            assert (entry.name, entry.blob_id) == ("m", a[-32:])
            np.testing.assert_array_equal(board.run("m", X), expected)
        with open(flash_dir / "m.npb", "rb") as f:
            assert f.read() == a
    finally:
        emu.stop()


def _store(root, on_write=None):
    return fw_store.Store(str(root), 1 << 20, on_write)


def _install(s, name, data):
    f = s.begin(name)
    f.write(data)
    f.close()
    s.commit(name)


def test_store_two_slots(tmp_path):
    s = _store(tmp_path)
    _install(s, "m", b"A")
    assert not s.unconfirmed("m") and not s.rollback("m")  # a first version: nothing to keep
    _install(s, "m", b"B")
    assert s.unconfirmed("m") and s.read("m") == b"B"
    _install(s, "m", b"C")  # B never loaded: A stays the version to go back to
    assert s.read("m") == b"C" and sorted(os.listdir(tmp_path)) == ["m.npb", "m.old"]
    assert s.rollback("m") and s.read("m") == b"A" and os.listdir(tmp_path) == ["m.npb"]
    _install(s, "m", b"D")
    s.confirm("m")
    assert not s.rollback("m") and s.read("m") == b"D" and os.listdir(tmp_path) == ["m.npb"]
    _install(s, "m", b"E")
    assert s.remove("m") and os.listdir(tmp_path) == []  # rm drops both slots


class _Cut(Exception):
    pass


@pytest.mark.parametrize("fat", [False, True], ids=["posix", "fat"])
def test_a_cut_rollback_ends_with_one_version_whole(fat, tmp_path, monkeypatch):
    """Rolling back is one rename (FAT: remove NAME.npb, then rename): a cut between the two
    leaves NAME.old alone, and recover() finishes the rollback."""
    if fat:
        rename = os.rename

        def fat_rename(src, dst):
            if os.path.exists(dst):
                raise OSError(17, "EEXIST")
            rename(src, dst)
        monkeypatch.setattr(fw_store.os, "rename", fat_rename)
    for k in (1, 2):
        root = tmp_path / ("cut%d" % k)
        s = _store(root)
        _install(s, "m", b"A")
        _install(s, "m", b"B")
        count = [0]

        def cut(what):
            count[0] += 1
            if count[0] == k:
                raise _Cut(what)
        s.on_write = cut
        try:
            s.rollback("m")
        except _Cut:
            pass
        s = _store(root)
        assert s.names() == ["m"] and os.listdir(root) == ["m.npb"] and s.read("m") == b"A"


def test_a_model_that_fails_its_first_run_is_rolled_back(tmp_path, monkeypatch):
    """The last line of defence: should a check the kernels rely on be missed at load (here
    the per-channel shift range, widened on purpose), the new model's first RUN fails in
    the C kernels and the previous version comes back, as after a failed first load."""
    import struct

    from npu_emulator import _kernels
    from npufw import checks
    from npufw import server as fw_server
    from npufw.board import Board as FwBoard
    from tests.conftest import StepClock
    from tools.fuzz_blobs import edit

    monkeypatch.setattr(checks, "_SHIFT_HI", 1000)
    model_a, a = fc_model(16, 8, seed=1)
    _, b = fc_model(16, 8, seed=2)

    def shift_40(body):
        t = body.tensors[body.ops[0].inputs[4]]
        c = bytearray(body.constants)
        c[t.offset:t.offset + 4] = struct.pack("<i", 40)
        body.constants = bytes(c)

    b = edit(b, shift_40)
    store = _store(tmp_path)
    srv = fw_server.Server(FwBoard(None, store, StepClock(), _kernels,
                                   {"ram": 1 << 20, "flash": 1 << 20, "board": "t"}, "c"))

    def run(seq):
        reply = srv.handle(codec.encode(codec.RUN, seq, codec.run_request("m", [X.tobytes()]))[1:-1])
        return codec.decode(reply[1:-1])

    _install(store, "m", a)
    expected = run(1)
    assert expected[0] == codec.RUN | codec.RESPONSE
    _install(store, "m", b)
    srv._drop("m")  # as FLASH_END does before its commit
    got = run(2)
    assert got[0] == codec.ERROR
    message = bytes(got[2][2:]).decode()
    assert "failed its first RUN" in message and "rolled back" in message, message
    assert "shift[0]" in message
    assert store.read("m") == a and sorted(os.listdir(tmp_path)) == ["m.npb"]
    assert run(3)[2] == expected[2]  # A serves the name again, bit for bit
