"""npu_sdk.zoo and `npu zoo`: found in a source checkout and in an installed wheel."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from npu_sdk import cli, zoo
from npu_sdk.errors import NpuError
from tests.conftest import ROOT, ZOO

DIGITS_FILES = ["README.md", "float.tflite", "int16x8.tflite", "int8.tflite", "int8_float_io.tflite",
                "samples.npz", "test.npz"]


ZOO_NAMES = ["anomaly_ae", "digits_mlp", "kws_dscnn", "vww_mobilenet"]


def _digits(models):
    return next(m for m in models if (m.name if hasattr(m, "name") else m["name"]) == "digits_mlp")


def test_models_of_the_checkout():
    assert [m.name for m in zoo.models()] == ZOO_NAMES
    m = _digits(zoo.models())
    assert m.path == ZOO / "digits_mlp"
    assert m.task == "handwritten digit classification (8x8 grayscale, 10 classes)"
    assert list(m.files) == DIGITS_FILES
    assert zoo.path("digits_mlp") == ZOO / "digits_mlp"


def test_unknown_name_suggests():
    with pytest.raises(NpuError, match=r"^no zoo model named digits; npu zoo list shows them "
                                       r"\(did you mean digits_mlp\?\)$"):
        zoo.get("digits")
    with pytest.raises(NpuError, match=r"^no zoo model named zzz; npu zoo list shows them$"):
        zoo.path("zzz")


def test_task_falls_back_to_the_card(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "README.md").write_text("# tiny\n\n## Task\n\nKeyword spotting on\n"
                                                 "one word. It is small.\n\n## Data\n")
    (tmp_path / "tiny" / "int8.tflite").write_bytes(b"")
    (tmp_path / "notes").mkdir()  # no card: not a model
    (m,) = zoo.models(tmp_path)
    assert (m.name, m.task, m.files) == ("tiny", "Keyword spotting on one word.",
                                         ("README.md", "int8.tflite"))


def test_cli_list_and_path(capsys):
    assert cli.main(["zoo", "list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "TASK", "FILES"]
    assert [r.split()[0] for r in rows] == ZOO_NAMES
    row = rows[ZOO_NAMES.index("digits_mlp")]
    assert row.startswith("digits_mlp") and "handwritten digit classification" in row
    assert "int8.tflite" in row
    assert cli.main(["zoo", "list", "--json"]) == 0
    assert _digits(json.loads(capsys.readouterr().out)) == dict(
        name="digits_mlp", task="handwritten digit classification (8x8 grayscale, 10 classes)",
        path=str(ZOO / "digits_mlp"), files=DIGITS_FILES)
    assert cli.main(["zoo", "path", "digits_mlp"]) == 0
    assert capsys.readouterr().out == "%s\n" % (ZOO / "digits_mlp")
    assert cli.main(["zoo", "path", "digits_mlp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(ZOO / "digits_mlp")


def test_cli_unknown_name(capsys):
    assert cli.main(["zoo", "path", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "npu: no zoo model named nope; npu zoo list shows them\n"


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="building the wheel compiles the C kernels")
def test_zoo_and_firmware_ship_in_the_wheel(tmp_path):
    """Build the wheel from a copy of the sources, unpack it away from the checkout and run
    `npu zoo` and `npu firmware build` from there: the zoo must come from the installed
    `npu_zoo` package, the firmware from `npu_firmware` and `npufw` (tools/ci_wheel.sh does
    the same in a fresh venv with the emulator's cores)."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "*.npb.tmp*")
    for name in ("sdk", "board_emulator", "firmware", "model_zoo"):
        shutil.copytree(ROOT / name, src / name, ignore=junk)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(src)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("npu_sdk-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    assert sorted(p.name for p in (site / "npu_zoo" / "digits_mlp").iterdir()) == DIGITS_FILES
    shutil.rmtree(src)  # nothing left to find but the installed copy
    env = dict(os.environ, PYTHONPATH=str(site))
    run = subprocess.run([sys.executable, "-m", "npu_sdk", "zoo", "list", "--json"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    m = _digits(json.loads(run.stdout))
    assert m["path"] == str(site / "npu_zoo" / "digits_mlp")
    assert m["files"] == DIGITS_FILES
    run = subprocess.run([sys.executable, "-m", "npu_sdk", "zoo", "path", "digits_mlp"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == str(site / "npu_zoo" / "digits_mlp")
    run = subprocess.run([sys.executable, "-c", "import npu_firmware, npufw; "
                          "print(npu_firmware.__file__, npufw.__file__)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == [str(site / "npu_firmware" / "__init__.py"),
                                  str(site / "npufw" / "__init__.py")]
    run = subprocess.run([sys.executable, "-m", "npu_sdk", "firmware", "build", "-o", "fw",
                          "--arch", "armv6m", "--json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    files = json.loads(run.stdout)["files"]
    assert files["main.py"] == hashlib.sha256(
        (site / "npu_firmware" / "main.py").read_bytes()).hexdigest()
    assert sorted(files) == ["main.py"] + sorted(
        "npufw/%s.mpy" % p.stem for p in (site / "npufw").glob("*.py"))
