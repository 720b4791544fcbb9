"""Signed flashing end to end over a real pty, on every emulator core (qemu included) (docs/protocol.md,
"Signing"): a board given a device key installs only blobs signed with it for the name they
are sent with, refuses unsigned, tampered and wrongly signed ones (another key, another name)
before any data (or at FLASH_END) and keeps its model; the key survives a restart and is
replaced only by whoever holds it."""
import hashlib
import json
import os
import random

import numpy as np
import pytest

from npu_sdk.errors import BoardError, NpuError
from npu_sdk.link import Board, FlashResult, PreflightError, codec
from npu_sdk.link.arq import CHUNK, FlashStream
from tools import tflite_build
from tests.conftest import CORES, DIGITS_INT8, Emulator, fc_model, flash_files
from tests.e2e.test_link_commands import npu

X = np.arange(-4, 4, dtype=np.int8).reshape(1, 8)


def _key(seed):
    return random.Random(seed).randbytes(32)


@pytest.fixture(scope="module")
def models():
    """A and B: same shape, different weights, so a RUN tells them apart; (blob, TFLM output)."""
    out = {}
    for label, seed in (("A", 21), ("B", 22)):
        model, blob = fc_model(8, 4, seed=seed)
        out[label] = (blob, tflite_build.run_tflm(model, X))
    return out


def _holds(board, flash_dir, models, label):
    """The board holds model `label` as "m", runs it as TFLite Micro does, and has no leftovers."""
    assert [(e.name, e.blob_id) for e in board.list()] == [("m", models[label][0][-32:])]
    np.testing.assert_array_equal(board.run("m", X), models[label][1])
    # and the version of the last signed install (m.ver: anti-rollback), once there was one
    assert [f for f in flash_files(flash_dir) if f != "m.ver"] == ["device.key", "m.npb"]


def _send_raw(board, blob, blob_id, mac, name="m"):
    """What a host that skips every check sends: FLASH_BEGIN with `blob_id`, `name` and `mac`,
    the bytes of `blob`, FLASH_END."""
    board.request(codec.FLASH_BEGIN, codec.flash_begin_request(len(blob), blob_id, name, mac))
    FlashStream(board, blob, 0, CHUNK, None, FlashResult(name, len(blob))).run()
    board.request(codec.FLASH_END)


def test_a_keyed_board_installs_only_blobs_signed_for_it(emulator, tmp_path, models):
    flash_dir = tmp_path / "flash"  # the emulator fixture's
    a, b = models["A"][0], models["B"][0]
    key, other = _key(1), _key(2)
    with Board(emulator.port, timeout=5) as board:
        assert board.info.features & codec.F_SIGNING and not board.info.keyed
        board.flash(a, "m")  # no key yet: any blob
        board.provision_key(key)
        assert board.info.keyed and board.info.as_dict()["keyed"]

        with pytest.raises(PreflightError) as e:  # the host knows from HELLO: nothing sent
            board.flash(b, "m")
        assert e.value.kind == "signature" and "--key FILE" in str(e.value)
        with pytest.raises(BoardError) as e:  # an old host: the board refuses at FLASH_BEGIN
            board.flash(b, "m", preflight=False)
        assert e.value.code == 13 and "signed with its device key" in e.value.board_message
        with pytest.raises(BoardError) as e:
            board.flash(b, "m", key=other)
        assert e.value.code == 13 and "does not match this board's key" in e.value.board_message
        with pytest.raises(BoardError) as e:  # the check holds for a blob it already has too
            board.flash(a, "m", key=other)
        assert e.value.code == 13
        _holds(board, flash_dir, models, "A")

        # tampered: B's last constant byte altered, its trailer (the blob id) kept, A's
        # signature replayed -> the whole-blob SHA-256 fails at FLASH_END
        tampered = bytearray(b)
        tampered[-33] ^= 0x40
        with pytest.raises(BoardError) as e:
            _send_raw(board, bytes(tampered), b[-32:], codec.blob_mac(key, b[-32:], "m"))
        assert e.value.code == 5 and "old model kept" in e.value.board_message
        _holds(board, flash_dir, models, "A")
        # ... with a recomputed trailer it is a valid blob with another id: B's signature fails
        resealed = bytes(tampered[:-32]) + hashlib.sha256(tampered[:-32]).digest()
        with pytest.raises(BoardError) as e:
            _send_raw(board, resealed, resealed[-32:], codec.blob_mac(key, b[-32:], "m"))
        assert e.value.code == 13
        _holds(board, flash_dir, models, "A")

        board.flash(b, "m", key=key)
        assert 0 < board.last_flash.sent <= len(b) and not board.last_flash.skipped
        board.flash(b, "m", key=key)  # already there: the board checks the key, sends nothing
        assert board.last_flash.skipped
        _holds(board, flash_dir, models, "B")


def test_a_signature_is_for_one_name_only(emulator, tmp_path, models):
    """A FLASH_BEGIN signed for "kws" and captured on the wire cannot install that blob under
    another name: the board refuses it before any data, and "fire" keeps its model."""
    flash_dir = tmp_path / "flash"  # the emulator fixture's
    fire, kws = models["A"][0], models["B"][0]
    key = _key(6)
    with Board(emulator.port, timeout=5) as board:
        board.provision_key(key)
        board.flash(fire, "fire", key=key)
        captured = codec.blob_mac(key, kws[-32:], "kws")
        for name in ("fire", "other"):  # over an installed model, or as a new one
            with pytest.raises(BoardError) as e:
                _send_raw(board, kws, kws[-32:], captured, name)
            assert e.value.code == 13 and "another model name" in e.value.board_message
            assert [(m.name, m.blob_id) for m in board.list()] == [("fire", fire[-32:])]
            # no .part, no .sid
            assert flash_files(flash_dir) == ["device.key", "fire.npb", "fire.ver"]
            np.testing.assert_array_equal(board.run("fire", X), models["A"][1])
        _send_raw(board, kws, kws[-32:], captured, "kws")  # under its own name it installs
        assert [(m.name, m.blob_id) for m in board.list()] == [("fire", fire[-32:]),
                                                               ("kws", kws[-32:])]
        # a host of protocol 1 (its signature left the name out) is told at HELLO to update,
        # not refused later with a puzzling signature error
        with pytest.raises(BoardError) as e:
            board.request(codec.HELLO, codec.hello_request(codec.PROTOCOL_VERSION - 1))
        assert e.value.code == 3 and "update the host SDK" in e.value.board_message


def test_only_the_key_holder_replaces_or_clears_the_key(emulator, tmp_path, models):
    a = models["A"][0]
    key, new = _key(3), _key(4)
    with Board(emulator.port, timeout=5) as board:
        board.provision_key(key)
        for old in (None, new):  # no proof, a proof from another key
            with pytest.raises(BoardError) as e:
                board.provision_key(new, old)
            assert e.value.code == 13 and "KEY refused" in e.value.board_message
        with pytest.raises(BoardError):
            board.clear_key(new)
        board.provision_key(new, key)
        with pytest.raises(BoardError) as e:
            board.flash(a, "m", key=key)  # the replaced key signs nothing any more
        assert e.value.code == 13
        board.flash(a, "m", key=new)
        board.clear_key(new)
        assert not board.info.keyed
        board.flash(models["B"][0], "m")  # no key: any blob again
        assert [e.blob_id for e in board.list()] == [models["B"][0][-32:]]
    assert "device.key" not in flash_files(tmp_path / "flash")


@pytest.mark.parametrize("core", CORES)
def test_the_key_survives_a_restart(core, tmp_path, models):
    flash_dir = tmp_path / "flash"
    key = _key(5)
    emu = Emulator(core, flash_dir=flash_dir)
    try:
        with Board(emu.port, timeout=5) as board:
            board.provision_key(key)
            board.flash(models["A"][0], "m", key=key)
    finally:
        emu.stop()
    emu = Emulator(core, flash_dir=flash_dir)
    try:
        with Board(emu.port, timeout=5) as board:
            assert board.info.keyed
            with pytest.raises(BoardError) as e:
                board.flash(models["B"][0], "m", preflight=False)
            assert e.value.code == 13
            board.flash(models["B"][0], "m", key=key)
            _holds(board, flash_dir, models, "B")
    finally:
        emu.stop()


def test_cli_keys_provision_flash_and_clear(emulator, tmp_path):
    port, key_file, new_file = emulator.port, tmp_path / "board.key", tmp_path / "new.key"
    done = json.loads(npu("keys", "provision", "--port", port, "--out", key_file, "--json").stdout)
    assert done["keyed"] and done["key_file"] == str(key_file)
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(key_file.read_text())) == 32
    info = npu("info", "--port", port)
    assert "device key: set" in info.stdout
    assert json.loads(npu("info", "--port", port, "--json").stdout)["keyed"] is True

    r = npu("flash", DIGITS_INT8, "--name", "d", "--port", port, check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("npu: board accepts only blobs signed with its device key: "
                               "flash with --key FILE")
    assert json.loads(npu("ls", "--port", port, "--json").stdout)["models"] == []
    npu("flash", DIGITS_INT8, "--name", "d", "--port", port, "--key", key_file)
    assert [e["name"] for e in json.loads(npu("ls", "--port", port, "--json").stdout)["models"]] == ["d"]
    r = npu("validate", DIGITS_INT8, "--name", "d", "--port", port, check=False)
    assert r.returncode == 1 and "signed with its device key" in r.stderr
    assert json.loads(npu("validate", DIGITS_INT8, "--name", "d", "--port", port, "--key", key_file,
                          "--json").stdout)["bit_exact"]

    # an existing key file is never overwritten; a keyed board wants its old key
    r = npu("keys", "provision", "--port", port, "--out", key_file, check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "already exists" in r.stderr
    r = npu("keys", "provision", "--port", port, "--out", new_file, check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "--old-key" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["board.key", "flash"]  # no key file for a refused key
    npu("keys", "provision", "--port", port, "--out", new_file, "--old-key", key_file)
    r = npu("flash", DIGITS_INT8, "--name", "e", "--port", port, "--key", key_file, check=False)
    assert r.returncode == 1 and "does not match this board's key" in r.stderr
    env_flash = npu("flash", DIGITS_INT8, "--name", "e", "--port", port, "--json",
                    env=dict(os.environ, NPU_KEY=str(new_file)))
    assert json.loads(env_flash.stdout)["skipped"] is False

    r = npu("keys", "clear", "--port", port, "--key", key_file, check=False)
    assert r.returncode == 1 and "KEY refused" in r.stderr
    npu("keys", "clear", "--port", port, "--key", new_file)
    assert json.loads(npu("info", "--port", port, "--json").stdout)["keyed"] is False
    npu("flash", DIGITS_INT8, "--name", "f", "--port", port)


def test_cli_refuses_a_file_that_is_not_a_key(emulator, tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    r = npu("flash", DIGITS_INT8, "--port", emulator.port, "--key", bad, check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "not a device key file" in r.stderr


def test_cli_keeps_the_key_when_the_board_went_silent_after_taking_it(tmp_path, models):
    """The power fails right after the board stored the new key (device.key.ok: complete), before
    it answered: the CLI cannot tell whether the board took the key, so it keeps the key file
    and says so; after the restart the board has that key."""
    flash_dir, key_file = tmp_path / "flash", tmp_path / "board.key"
    flash_dir.mkdir()
    emu = Emulator("cpython", flash_dir=flash_dir, power_cut_after_writes=2)  # .tmp, .tmp -> .ok
    try:
        r = npu("keys", "provision", "--port", emu.port, "--out", key_file, "--timeout", 1,
                check=False)
        assert emu.wait() == 3  # the emulator's power-cut exit
    finally:
        emu.stop()
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "the key sent is in %s" % key_file in r.stderr and "npu info" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["board.key", "flash"]
    emu = Emulator("cpython", flash_dir=flash_dir)
    try:
        with Board(emu.port, timeout=5) as board:
            assert board.info.keyed
            board.flash(models["A"][0], "m", key=bytes.fromhex(key_file.read_text()))
    finally:
        emu.stop()


@pytest.mark.parametrize("core", CORES)
def test_a_keyed_board_cannot_be_talked_around(core, tmp_path, models):
    """docs/protocol.md's guarantees of a keyed board, one by one, on every core: nothing that
    changes its state or leaves the protocol without proof of the key; a captured proof or
    downgrade does not work twice; no older signed blob over a newer one; the key never
    comes back over the link (no frame the board sends carries it)."""
    a, b = models["A"][0], models["B"][0]
    key = _key(7)
    emu = Emulator(core, flash_dir=tmp_path / "flash")
    received = []  # every frame the board sent after it took the key: (type, payload)
    try:
        with Board(emu.port, timeout=30) as board:
            board.provision_key(key)
            board.trace = lambda way, t, ftype, seq, p: way == "<" and received.append((ftype, p))
            board.flash(a, "m", key=key, version=2)
            answers = []

            def refused(ftype, payload, words):
                with pytest.raises(BoardError) as e:
                    board.request(ftype, payload)
                assert e.value.code == 13 and words in e.value.board_message, e.value
                answers.append(e.value.board_message.encode())

            # REPL, RM, KEY without proof (what `npu repl` and `npu rm` sent before)
            refused(codec.REPL, b"", "REPL refused")
            refused(codec.RM, codec.pack_str("m"), "RM refused")
            refused(codec.KEY, codec.key_request(bytes(32)), "KEY refused")
            # a proof is good for the one nonce it covers: a wrong try uses the nonce up
            nonce = codec.parse_nonce(board.request(codec.NONCE))
            captured = codec.key_request(bytes(32), key, nonce)
            refused(codec.KEY, codec.key_request(bytes(32), key, bytes(16)), "KEY refused")
            refused(codec.KEY, captured, "KEY refused")  # the nonce went with the wrong try
            rm = codec.pack_str("m")
            rm += codec.proof(key, codec.parse_nonce(board.request(codec.NONCE)), codec.RM, rm)
            board.request(codec.RM, rm)  # the owner removes "m"
            board.flash(a, "m", key=key, version=2)
            refused(codec.RM, rm, "RM refused")  # ... and the same RM frame again: refused
            assert [e.name for e in board.list()] == ["m"] and board.info.keyed
            # anti-rollback: an older signed version is refused, even after an rm
            board.flash(b, "m", key=key, version=3)
            with pytest.raises(BoardError) as e:
                board.flash(a, "m", key=key, version=2)
            assert e.value.code == 13 and "older than version 3" in e.value.board_message
            board.remove("m", key=key)
            with pytest.raises(BoardError) as e:
                board.flash(a, "m", key=key, version=2)
            assert e.value.code == 13 and "older than version 3" in e.value.board_message
            # the owner signs a downgrade over a fresh nonce; that FLASH_BEGIN cannot be replayed
            board.flash(a, "m", key=key, version=2, downgrade=True)
            np.testing.assert_array_equal(board.run("m", X), models["A"][1])
            board.flash(b, "m", key=key, version=4)
            nonce = codec.parse_nonce(board.request(codec.NONCE))
            begin = codec.flash_begin_request(len(a), a[-32:], "m", codec.blob_mac(
                key, a[-32:], "m", 2, codec.DOWNGRADE, nonce), 2, codec.DOWNGRADE)
            board.request(codec.FLASH_BEGIN, begin)  # accepted once ...
            board.request(codec.NONCE)
            refused(codec.FLASH_BEGIN, begin, "signature does not match")  # ... not twice
            # REPL with a wrong proof, and with a good proof over a spent nonce
            nonce = codec.parse_nonce(board.request(codec.NONCE))
            refused(codec.REPL, codec.proof(_key(8), nonce, codec.REPL, b""), "REPL refused")
            refused(codec.REPL, codec.proof(key, nonce, codec.REPL, b""), "REPL refused")
            # the key never comes back: not in any answer of a request that reads the board
            for ftype, payload in ((codec.HELLO, codec.hello_request()), (codec.LIST, b""),
                                   (codec.CONSOLE, b"\x00"), (codec.MEM, b""),
                                   (codec.NONCE, b"")):
                answers.append(bytes(board.request(ftype, payload)))
            assert not any(key in answer or key.hex().encode() in answer for answer in answers)
            runs = board.invoke("m", [X], profile=True)  # RUN's answer too
            assert len(runs[0]) == 1
            assert {t for t, _ in received} >= {codec.ERROR, codec.RUN | codec.RESPONSE,
                                                codec.FLASH_END | codec.RESPONSE}
            assert not any(key in bytes(p) or key.hex().encode() in bytes(p) for _, p in received)
            # with proof of the key, the owner keeps every power: here, clearing the key
            board.clear_key(key)
            assert not board.info.keyed
    finally:
        emu.stop()


def _repl_with_proof(board, key):
    """A REPL request with a good proof of the key, as `npu repl --key` sends it."""
    board.request(codec.REPL, codec.proof(key, codec.parse_nonce(board.request(codec.NONCE)),
                                          codec.REPL, b""))


def test_a_locked_board_never_hands_its_repl_over(emulator, tmp_path, models):
    """docs/protocol.md, Locking: `npu keys provision --lock` takes the REPL away for good,
    from the key's holder too, and through key changes and restarts; the owner keeps
    everything else (flash, run, rm, replacing and clearing the key)."""
    flash_dir = tmp_path / "flash"  # the emulator fixture's
    key, new = _key(8), _key(9)
    with Board(emulator.port, timeout=30) as board:
        with pytest.raises(BoardError) as e:  # a lock needs a key
            board.request(codec.KEY, codec.key_request(bytes(32), lock=True))
        assert e.value.code == 2 and not board.hello().features & codec.F_LOCKED
        board.provision_key(key, lock=True)
        assert board.info.keyed and board.info.locked and board.info.as_dict()["locked"]
        assert not board.info.features & codec.F_REPL
        with pytest.raises(BoardError) as e:
            _repl_with_proof(board, key)
        assert e.value.code == 11 and "locked" in e.value.board_message
        with pytest.raises(NpuError) as e:  # the host knows from HELLO
            board.repl(key)
        assert "locked" in str(e.value)
        # the owner: flash, run, rm, a new key, no key at all
        board.flash(models["A"][0], "m", key=key)
        np.testing.assert_array_equal(board.run("m", X), models["A"][1])
        board.remove("m", key=key)
        board.provision_key(new, key)
        board.flash(models["B"][0], "m", key=new)
        board.clear_key(new)
        assert not board.info.keyed and board.info.locked
        board.provision_key(key)  # a new key without --lock: the lock stays
        assert board.info.locked
        with pytest.raises(BoardError) as e:
            _repl_with_proof(board, key)
        assert e.value.code == 11
    assert "device.lock" in flash_files(flash_dir)
    emulator.stop()
    emu = Emulator(emulator.core, flash_dir=flash_dir)
    try:
        with Board(emu.port, timeout=30) as board:
            assert board.info.locked and not board.info.features & codec.F_REPL
            with pytest.raises(BoardError) as e:
                _repl_with_proof(board, key)
            assert e.value.code == 11
            np.testing.assert_array_equal(board.run("m", X), models["B"][1])
    finally:
        emu.stop()


def test_cli_locks_a_board(tmp_path):
    pytest.importorskip("mpremote")
    key_file = tmp_path / "board.key"
    emu = Emulator("cpython", flash_dir=tmp_path / "flash")
    try:
        port = emu.port
        done = json.loads(npu("keys", "provision", "--lock", "--port", port, "--out", key_file,
                              "--json").stdout)
        assert done["keyed"] and done["locked"]
        assert "locked: never hands its REPL over" in npu("info", "--port", port).stdout
        for args in (("repl", "--key", key_file), ("firmware", "install")):
            r = npu(*args, "--port", port, check=False)
            assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
            assert r.stderr.startswith("npu: the board on %s is locked" % port), r.stderr
        npu("flash", DIGITS_INT8, "--name", "d", "--port", port, "--key", key_file)
        npu("rm", "d", "--port", port, "--key", key_file)
    finally:
        emu.stop()
