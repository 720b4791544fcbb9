"""A board farm on loopback, through the real parts: `npu farm up 3` (a labgrid coordinator,
three emulators published by Debian's ser2net as RFC 2217, labgrid's exporter), the CLI
reaching each board by place, a parallel flash with one board killed halfway, and a user's
suite under `pytest -n 3 --npu-places`. Needs ser2net; in CI (.ci/run installs it) a missing
one fails the tests instead of skipping them."""
import json
import os
import re
import select
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

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


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """`npu farm up 3` on a free loopback port: its JSON (coordinator, boards: place, url, pid)."""
    try:
        ser2net_binary()
    except NpuError as e:
        if os.environ.get("CI"):
            pytest.fail("the farm tests cannot run in CI: %s" % e, pytrace=False)
        pytest.skip(str(e))
    address = "127.0.0.1:%d" % _free_port()
    log = tmp_path_factory.mktemp("farm") / "farm-up.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(NPU + ["farm", "up", "3", "--coordinator", address, "--baud", "921600",
                                       "--json"], stdout=subprocess.PIPE, stderr=err,
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

import numpy as np
import pytest

from npu_sdk import zoo
from npu_sdk.places import Coordinator

DIGITS = zoo.path("digits_mlp")


@pytest.mark.parametrize("i", range(9))
def test_digit(npu_board, npu_model, npu_place, record_property, i):
    record_property("worker", os.environ["PYTEST_XDIST_WORKER"])
    with Coordinator(npu_place.address) as c:  # the coordinator's word, not the plugin's
        record_property("held_by", c.place(npu_place.name).acquired)
    x = np.load(DIGITS / "samples.npz")["x_int8"][i]
    assert npu_board.run(npu_model(DIGITS / "int8.tflite"), x).shape == (1, 10)
'''


def test_pytest_n3_gives_each_worker_its_own_place(farm, tmp_path):
    (tmp_path / "test_user.py").write_text(USER_SUITE)
    junit = tmp_path / "junit.xml"
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-n", "3", "--npu-places", "npu-*", "--npu-coordinator",
                           farm["coordinator"], "--junitxml", str(junit), "-W",
                           "ignore::DeprecationWarning", "--basetemp", str(tmp_path / "bt"),
                           str(tmp_path / "test_user.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    place_of = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["npu_firmware"] and int(props["npu_latency_us"]) >= 0
        assert re.fullmatch(r"digits_mlp:[0-9a-f]{64}", props["npu_model_hash"])
        assert props["held_by"] not in (None, "None", ""), props
        place_of.setdefault(props["worker"], set()).add(props["npu_place"])
    assert all(len(p) == 1 for p in place_of.values()), place_of  # a worker keeps its place
    places = [p.pop() for p in place_of.values()]
    assert len(set(places)) == len(places) and set(places) <= set(PLACES), place_of
    assert holders(farm) == dict.fromkeys(PLACES)  # every worker released its place


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
