"""tools/quant_compare.py without TensorFlow (TF is optional; CI has none): SDK figures,
bit-exactness, and TF's columns reported as not measured."""
import sys

import numpy as np
import pytest

from tests.conftest import ZOO

sys.path.insert(0, str(ZOO.parent / "tools"))
import quant_compare  # noqa: E402


def test_roc_auc_counts_ties_as_half():
    assert quant_compare.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert quant_compare.roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    # pairs (anomaly, normal): (0.3, 0.1) win, (0.3, 0.3) tie, (0.2, 0.1) win, (0.2, 0.3) loss
    assert quant_compare.roc_auc([0, 1, 1, 0], [0.1, 0.3, 0.2, 0.3]) == pytest.approx(2.5 / 4)


def test_tf_python_choice(monkeypatch):
    monkeypatch.setenv("NPU_TF_PYTHON", "/opt/tf/bin/python")
    assert quant_compare.tf_python() == "/opt/tf/bin/python"
    assert quant_compare.tf_python("/other/python") == "/other/python"


def test_an_interpreter_without_tensorflow_is_not_measured(tmp_path):
    if quant_compare.importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("this interpreter has TensorFlow")
    calib = np.zeros((2, 8, 8), np.float32)
    out, why = quant_compare.tf_ptq(sys.executable, ZOO / "digits_mlp" / "float.tflite", calib, calib)
    assert out is None and why.startswith("not measured:") and "TensorFlow is not installed" in why


def test_sdk_figures_without_tensorflow():
    r = quant_compare.compare(ZOO / "digits_mlp", methods=(quant_compare.quantize.DEFAULT_METHOD,), python=None)
    assert (r["metric"], r["calibration"], r["held_out"]) == ("accuracy", 180, 180)
    assert r["tf"] is None and r["tf_note"] == quant_compare.NO_TF
    (row,) = r["sdk"]
    assert row["bit_exact"] and row["metric"] >= r["float"] - 1.0 and row["sqnr_db"] > 30
    assert (row["pass_vs_tf"], row["pass_vs_float"], row["pass_sqnr"]) == (None, True, None)
    text = quant_compare.format_text([r])
    assert "not measured: TensorFlow not installed" in text and "| - |" in quant_compare.format_markdown([r])
    assert quant_compare.summary([r])["quant_targets_met"] is None  # not measured is not a pass


def test_the_autoencoder_is_scored_by_roc_auc():
    r = quant_compare.compare(ZOO / "anomaly_ae", methods=(), python=None)
    assert r["metric"] == "roc_auc" and 80 < r["float"] < 95
