"""Link v1 commands end to end: info, ports, rm, run --profile, console, repl, --trace, and
flashing that skips what the board holds and resumes what a power cut interrupted."""
import json
import subprocess
import sys

import numpy as np
import pytest

from npu_sdk.link import Board, codec
from tests.conftest import DIGITS_INT8, ZOO, Emulator, fc_model, flash_files, flash_fingerprint

NPU = [sys.executable, "-m", "npu_sdk"]


def npu(*args, check=True, stdin=None, env=None):
    proc = subprocess.run(NPU + [str(a) for a in args], capture_output=True, text=True, timeout=60,
                          input=stdin, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_info_rm_profile_console_trace(emulator, tmp_path):
    port = emulator.port
    info = json.loads(npu("info", "--port", port, "--json").stdout)
    assert info["protocol"] == codec.PROTOCOL_VERSION and "FULLY_CONNECTED" in info["ops"] \
        and "profile" in info["features"]
    first = json.loads(npu("flash", DIGITS_INT8, "--name", "d", "--port", port, "--json").stdout)
    again = json.loads(npu("flash", DIGITS_INT8, "--name", "d", "--port", port, "--json").stdout)
    assert (first["skipped"], again["skipped"], again["sent"]) == (False, True, 0)
    x = tmp_path / "x.npy"
    np.save(x, np.load(ZOO / "digits_mlp" / "samples.npz")["x_int8"][0])
    report = json.loads(npu("run", "d", "--input", x, "--profile", "--repeat", 2, "--port", port,
                            "--json").stdout)
    assert [p["op"] for p in report["profile"]] == ["FULLY_CONNECTED"] * 3 + ["SOFTMAX"]
    assert all(p["us"] >= 0 for p in report["profile"])
    lines = [json.loads(line)["text"] for line in
             npu("console", "--port", port, "--count", 2, "--seconds", 5, "--json").stdout.splitlines()]
    assert lines == ["flash d: %d bytes" % first["bytes"], "flash d: installed"]
    r = npu("ls", "--port", port, "--trace")
    assert "> HELLO" in r.stderr and "< LIST+ACK" in r.stderr
    ports = json.loads(npu("ports", "--port", port, "--json").stdout)
    assert [p["npu"] for p in ports if p["port"] == port] == [True]
    npu("rm", "d", "--port", port)
    r = npu("rm", "d", "--port", port, check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no model named 'd'" in r.stderr
    assert json.loads(npu("ls", "--port", port, "--json").stdout)["models"] == []


def test_repl_and_back(emulator):
    r = npu("repl", "--port", emulator.port, "--exit", "--wait", 1.5, stdin="print(6 * 7)\n",
            check=False)
    if emulator.proc.args[emulator.proc.args.index("--core") + 1] == "cpython":
        assert r.returncode == 1 and "cannot hand over a REPL" in r.stderr
        return
    assert r.returncode == 0 and "42" in r.stdout, r.stdout + r.stderr
    with Board(emulator.port, timeout=5) as board:  # Ctrl-D: back in the npu firmware
        assert board.list() == []


def test_preflight_refuses_an_op_the_firmware_lacks(emulator):
    from npu_sdk.link import PreflightError
    _, blob = fc_model(8, 4, seed=2)
    with Board(emulator.port) as board:
        board.info.ops = tuple(o for o in board.info.ops if o != 1)  # as an older firmware
        with pytest.raises(PreflightError) as e:
            board.flash(blob, "m")
        assert e.value.kind == "op" and "FULLY_CONNECTED" in str(e.value)
        assert board.list() == []


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_a_cut_transfer_resumes_where_the_board_stopped(core, tmp_path):
    _, blob = fc_model(64, 160, seed=5)  # 12 KB: 24 chunks of 512
    flash_dir = tmp_path / "flash"
    flash_dir.mkdir()
    emu = Emulator(core, flash_dir=flash_dir, power_cut_after_writes=12)  # .sid, .part, 10 chunks
    try:
        with Board(emu.port, timeout=5) as board:
            with pytest.raises(Exception):
                board.flash(blob, "m", chunk=512)
        emu.wait()
    finally:
        emu.stop()
    assert flash_files(flash_dir) == ["m.part", "m.sid"]
    emu = Emulator(core, flash_dir=flash_dir)
    try:
        with Board(emu.port) as board:
            board.flash(blob, "m")  # the rest in chunks of another size
            r = board.last_flash
            # nothing twice: deflate may shrink what is sent, never add to it
            assert r.resumed == 10 * 512 and r.retransmits == 0 and r.sent <= len(blob) - r.resumed
            assert [(e.name, e.blob_id) for e in board.list()] == [("m", blob[-32:])]
    finally:
        emu.stop()
    assert flash_files(flash_dir) == ["m.npb"]


def test_the_board_skips_a_blob_it_holds_without_rewriting_it(emulator, tmp_path):
    """Skip on the board's side too: a host that does not LIST first (skip_if_same=False) gets
    FLASH_BEGIN's `installed` answer, sends no data and the installed file is left as it was."""
    _, blob = fc_model(32, 64, seed=9)
    with Board(emulator.port) as board:
        board.flash(blob, "m")
        before = flash_fingerprint(tmp_path / "flash", "m")
        board.flash(blob, "m", skip_if_same=False)
        r = board.last_flash
        assert (r.skipped, r.sent, r.resumed) == (True, 0, 0)
        assert [(e.name, e.blob_id) for e in board.list()] == [("m", blob[-32:])]
    assert flash_fingerprint(tmp_path / "flash", "m") == before


@pytest.mark.parametrize("core", ["cpython", "micropython"])
def test_a_killed_host_resumes_from_what_the_board_verified(core, tmp_path):
    """`npu flash` killed mid-transfer (SIGKILL: no goodbye); the next `npu flash` continues from
    the board's own position and sends every byte once."""
    import time
    _, blob = fc_model(64, 640, seed=6)  # 45 KB: about 4 s at 115200 baud
    src = tmp_path / "m.npb"
    src.write_bytes(blob)
    part = tmp_path / "flash" / "m.part"
    emu = Emulator(core, flash_dir=tmp_path / "flash", baud=115200)
    try:
        host = subprocess.Popen(NPU + ["flash", str(src), "--port", emu.port])
        deadline = time.monotonic() + 30
        while (not part.exists() or part.stat().st_size < 8192) and time.monotonic() < deadline:
            time.sleep(0.02)
        host.kill()
        host.wait()
        cut = part.stat().st_size
        assert 8192 <= cut < len(blob)
        r = json.loads(npu("flash", src, "--port", emu.port, "--json").stdout)
        assert r["resumed_from"] >= cut and r["retransmits"] == 0
        assert r["sent"] <= len(blob) - r["resumed_from"]  # deflate may shrink what is sent
        with Board(emu.port) as board:
            assert [(e.name, e.blob_id) for e in board.list()] == [("m", blob[-32:])]
    finally:
        emu.stop()


def test_long_inputs_are_staged_and_an_over_long_frame_is_answered(emulator):
    """A RUN input longer than the board's frames goes up with INPUT; a frame too long for the
    board (an old host) gets error 12 at once instead of a timeout."""
    import time

    from npu_sdk.errors import LinkError
    blob = fc_model(6000, 16, seed=4)[1]
    x = (np.arange(6000) % 251 - 125).astype(np.int8)
    with Board(emulator.port, timeout=5) as board:
        assert board.info.features & codec.F_STAGING and board.info.max_payload < x.size
        board.flash(blob, name="wide")
        (y,), _ = board.invoke("wide", [x])
        (again,), _ = board.invoke("wide", [x], repeat=3)
        assert y.shape == (1, 16) and np.array_equal(y, again)
        with pytest.raises(LinkError, match="longer than the board's"):
            board.request(codec.RUN, codec.run_request("wide", [x.tobytes()]))
        seq = board._next_seq()
        t0 = time.monotonic()
        board._send(codec.RUN, seq, codec.run_request("wide", [x.tobytes()] * 2))
        answer = next((m for m in board._frames(time.monotonic() + 3) if m[1] == seq), None)
        assert answer is not None and answer[0] == codec.ERROR, answer
        code, message = codec.parse_error(answer[2])
        assert code == 12 and "INPUT" in message and time.monotonic() - t0 < 3
        assert board.list()[0].name == "wide"  # still serving, in step
