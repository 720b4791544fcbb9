"""The farm's small parts alone: labgrid:// URLs, the RFC 2217 URL the transport opens, the
ser2net and exporter configurations, the per-board progress lines."""
import io

import pytest

from npu_sdk import farm, places
from npu_sdk.errors import LinkError
from npu_sdk.flash_many import Progress
from npu_sdk.link.transport import rfc2217_url


@pytest.mark.parametrize("url, want", [
    ("labgrid://npu-1", (None, "npu-1")),
    ("labgrid://10.0.0.2:20408/npu-7", ("10.0.0.2:20408", "npu-7")),
])
def test_labgrid_urls(url, want):
    assert places.parse_url(url) == want


def test_a_labgrid_url_without_a_place_says_how_to_write_one():
    with pytest.raises(LinkError, match=r"labgrid://host:20408/ names no place: write labgrid://PLACE"):
        places.parse_url("labgrid://host:20408/")


def test_coordinator_address_defaults_to_lg_coordinator(monkeypatch):
    monkeypatch.setenv("LG_COORDINATOR", "lab:1234")
    assert places.coordinator_address() == "lab:1234"
    assert places.coordinator_address("other:1") == "other:1"
    monkeypatch.delenv("LG_COORDINATOR")
    assert places.coordinator_address() == places.DEFAULT_COORDINATOR


@pytest.mark.parametrize("url, want", [
    ("rfc2217://h:7", "rfc2217://h:7?ign_set_control"),
    ("rfc2217://h:7?timeout=2", "rfc2217://h:7?timeout=2&ign_set_control"),
    ("rfc2217://h:7?ign_set_control", "rfc2217://h:7?ign_set_control"),
])
def testrfc2217_url_urls_do_not_wait_for_set_control_answers(url, want):
    assert rfc2217_url(url) == want


def test_ser2net_serves_each_pty_on_loopback_only():
    text = farm.ser2net_config([("/dev/pts/3", 4001, 921600), ("/dev/pts/4", 4002, 115200)])
    assert "accepter: telnet(rfc2217,mode=server),tcp,127.0.0.1,4001" in text
    assert "connector: serialdev(nouucplock=true),/dev/pts/4,115200n81,local" in text
    assert text.count("connection: &") == 2


def test_exporter_publishes_network_serial_ports():
    assert farm.exporter_config([("npu-1", 4001, 921600)]) == (
        "npu-1:\n  NetworkSerialPort:\n    host: 127.0.0.1\n    port: 4001\n    speed: 921600\n")


def test_progress_without_a_terminal_prints_a_line_per_tenth_per_board():
    out = io.StringIO()
    p = Progress(["npu-1", "npu-22"], 1000, out)
    p.update("npu-1", state="flashing")
    for _ in range(20):
        p.update("npu-1", 50)
    p.update("npu-22", state="FAILED: gone")
    lines = out.getvalue().splitlines()
    assert lines[0] == "npu-1     0% 0/1000 bytes"
    assert lines[-2] == "npu-1   100% 1000/1000 bytes"
    assert lines[-1] == "npu-22  FAILED: gone"
    assert len(lines) == 1 + 10 + 1


def test_the_farm_bench_pairs_each_round_and_takes_the_median_ratio():
    import sys
    from tests.conftest import ROOT
    sys.path.insert(0, str(ROOT / "tools"))
    from bench_farm import suite_targets
    rows = [dict(run=1, boards=1, seconds=40.0), dict(run=1, boards=3, seconds=20.0),
            dict(run=2, boards=1, seconds=60.0), dict(run=2, boards=3, seconds=40.0),  # a busy spell
            dict(run=3, boards=1, seconds=42.0), dict(run=3, boards=3, seconds=14.0)]
    assert suite_targets(rows) == dict(three_boards_speedup=2.0, three_boards_speedup_spread=[1.5, 3.0])
