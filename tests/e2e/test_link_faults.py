"""Losses on a faulty line are found by the order of the answers, not by timers: a seeded,
bounded flash at the bench's fault rates resends what was lost, and every resend but (rarely)
one is triggered by an answer, never by the retransmission timeout (tools/bench_link.py
measures the time: faulty / clean <= 1.3x)."""
import pytest

from npu_sdk.link import Board
from tests.conftest import Emulator, fc_model

SPEC = "flip=1e-4,drop=1e-4,dup=1e-4,seed=%d"


@pytest.fixture(scope="module")
def blob():
    return fc_model(256, 160, seed=11)[1]  # ~42 KB of random weights


@pytest.mark.parametrize("core", ["cpython", "micropython"])
@pytest.mark.parametrize("seed", [3, 8])
def test_lost_chunks_are_resent_on_the_next_answer_not_a_timer(core, seed, blob, tmp_path):
    emu = Emulator(core, flash_dir=tmp_path, faults=SPEC % seed)
    try:
        with Board(emu.port, timeout=2.0, retries=5) as board:
            board.flash(blob, "m", preflight=False)
            stats = board.last_flash
            assert [(e.name, e.blob_id) for e in board.list()] == [("m", blob[-32:])]
    finally:
        emu.stop()
    assert stats.retransmits > 0, "seed %d damaged no frame: pick another" % seed
    assert stats.timeouts <= 1, stats
