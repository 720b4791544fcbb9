"""Power cuts during a model install: whatever write the power fails at, the restarted board
holds the old model or the new one, whole and verified, and no leftovers.

Installing B over A is a fixed sequence of flash writes (npufw/store.py): create the
sidecar m.sid, create m.part, one write per data chunk, rename .part -> .new, rename .npb
-> .old (the previous version, kept until the new one has loaded once), rename .new to .npb
(on FAT: remove, then rename), remove the sidecar. A cut during the data
leaves m.part with its sidecar: the next flash resumes it (tests/e2e/test_link_resume.py).
The e2e test cuts the emulator's power after each write in turn, on both
cores; the in-process test replays the same on a filesystem that cannot rename over a file.
"""
import os
import shutil

import numpy as np
import pytest

from npu_sdk.errors import LinkError
from npu_sdk.link import Board
from npufw import store as fw_store
from npufw.board import POWER_CUT_EXIT
from tools import tflite_build
from tests.conftest import Emulator, fc_model

IN_DEPTH = 64
X = np.arange(-32, 32, dtype=np.int8).reshape(1, IN_DEPTH)


@pytest.fixture(scope="module")
def models():
    """A and B: same shape, different weights, so a RUN tells them apart. B spans two chunks."""
    out = {}
    for label, seed, out_depth in (("A", 11, 10), ("B", 12, 100)):
        model, blob = fc_model(IN_DEPTH, out_depth, seed=seed)
        out[label] = (blob, tflite_build.run_tflm(model, X))
    assert len(out["B"][0]) > 4096  # more than one FLASH_DATA chunk
    return out


def _flash_a(core, flash_dir, models):
    emu = Emulator(core, flash_dir=flash_dir)
    try:
        with Board(emu.port) as board:
            board.flash(models["A"][0], "m")
    finally:
        emu.stop()


def _check_holds_a_or_b(core, flash_dir, models, leftovers=()):
    """Restart on flash_dir; return which model the board holds, after checking it whole."""
    emu = Emulator(core, flash_dir=flash_dir)
    try:
        with Board(emu.port) as board:
            (entry,) = board.list()
            held = [k for k, (blob, _) in models.items() if blob[-32:] == entry.blob_id]
            assert entry.name == "m" and len(held) == 1, "unknown blob %s" % entry.blob_id.hex()
            y = board.run("m", X)
        np.testing.assert_array_equal(y, models[held[0]][1])
        # no .new, no strays; no .old either: the RUN loaded the model, which confirms it
        assert sorted(os.listdir(flash_dir)) == sorted(["m.npb", *leftovers])
        return held[0]
    finally:
        emu.stop()


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_power_cut_at_every_write_of_an_install(core, tmp_path, models):
    pristine = tmp_path / "with-a"
    _flash_a(core, pristine, models)
    chunks = -(-len(models["B"][0]) // 4092)
    # create .sid, .part, data, .part -> .new, .npb -> .old, .new -> .npb, remove .sid
    writes = 2 + chunks + 4
    held = []
    for k in range(1, writes + 2):  # the last one: the install finishes before the cut
        flash_dir = tmp_path / ("cut-%d" % k)
        shutil.copytree(pristine, flash_dir)
        emu = Emulator(core, flash_dir=flash_dir, power_cut_after_writes=k)
        try:
            with Board(emu.port, timeout=5) as board:
                if k <= writes:
                    with pytest.raises(LinkError):
                        board.flash(models["B"][0], "m", chunk=4092)
                    assert emu.wait() == POWER_CUT_EXIT
                else:
                    board.flash(models["B"][0], "m", chunk=4092)
        finally:
            emu.stop()
        partial = 2 <= k <= 2 + chunks
        if partial:
            assert "m.part" in os.listdir(flash_dir)  # the cut left a partial transfer
        held.append(_check_holds_a_or_b(core, flash_dir, models,
                                        ("m.part", "m.sid") if partial else ()))
    # the old model until the verified copy is named .new, the new one from then on
    assert held == ["A"] * (2 + chunks) + ["B"] * 5


class _Cut(Exception):
    pass


def _no_rename_over(rename):
    def fat_rename(src, dst):
        if os.path.exists(dst):
            raise OSError(17, "EEXIST")
        rename(src, dst)
    return fat_rename


@pytest.mark.parametrize("k", range(1, 8))
def test_power_cut_on_a_filesystem_that_cannot_rename_over(k, tmp_path, monkeypatch, models):
    """FAT: .npb -> .old, then .new -> .npb; a cut between them leaves .new and .old."""
    monkeypatch.setattr(fw_store.os, "rename", _no_rename_over(os.rename))
    root = str(tmp_path / "flash")
    a, b = models["A"][0], models["B"][0]
    s = fw_store.Store(root, 1 << 20)
    f = s.begin("m")
    f.write(a)
    f.close()
    s.commit("m")

    count = [0]

    def cut(what):
        count[0] += 1
        if count[0] == k:
            raise _Cut(what)

    s = fw_store.Store(root, 1 << 20, on_write=cut)
    # create, 2 data writes, .part -> .new, .npb -> .old, .new -> .npb: 6 writes; k = 7 finishes
    try:
        f = s.begin("m")
        f.write(b[:4092])
        f.write(b[4092:])
        f.close()
        s.commit("m")
    except _Cut:
        pass
    s = fw_store.Store(root, 1 << 20)  # the restart: recover()
    if k <= 3:  # the transfer was cut: A stays, alone
        assert s.names() == ["m"] and sorted(os.listdir(root)) == ["m.npb"] and s.read("m") == a
        return
    # B was verified: it is installed, A kept as m.old until B has loaded once
    assert s.names() == ["m"] and sorted(os.listdir(root)) == ["m.npb", "m.old"]
    assert s.read("m") == b and open(s.path("m", ".old"), "rb").read() == a
    s.confirm("m")
    assert sorted(os.listdir(root)) == ["m.npb"] and s.read("m") == b


@pytest.mark.parametrize("fat", [False, True])
@pytest.mark.parametrize("k", range(1, 6))  # the last one: the write finishes before the cut
def test_power_cut_while_replacing_the_device_key(k, fat, tmp_path, monkeypatch):
    """KEY writes device.key.tmp, renames it to .ok, then over device.key (on FAT: remove,
    rename): whatever write the power fails at, the restarted board has the old key or the
    new one, and no leftovers."""
    if fat:
        monkeypatch.setattr(fw_store.os, "rename", _no_rename_over(os.rename))
    root = str(tmp_path / "flash")
    old, new = bytes(range(32)), bytes(range(1, 33))
    fw_store.Store(root, 1 << 20).set_key(old)
    count = [0]

    def cut(what):
        count[0] += 1
        if count[0] == k:
            raise _Cut(what)

    try:
        fw_store.Store(root, 1 << 20, on_write=cut).set_key(new)
    except _Cut:
        pass
    s = fw_store.Store(root, 1 << 20)  # the restart: recover()
    # writes: create .tmp, .tmp -> .ok, (FAT: remove the key,) .ok -> key. The cut comes
    # after the write: from .ok on, the complete new key wins
    assert s.key() == (old if k == 1 else new)
    assert os.listdir(root) == ["device.key"]
