"""`npu compile` (int8 and float with --calib) and `npu inspect`, run in-process."""
import json

import numpy as np
import pytest

from npu_sdk import blob, cli
from tests.conftest import DIGITS_INT8, ZOO

FLOAT = ZOO / "digits_mlp" / "float.tflite"


@pytest.fixture
def calib(tmp_path):
    x = np.load(ZOO / "digits_mlp" / "test.npz")["x"][:100].reshape(100, 1, 8, 8)
    path = tmp_path / "calib.npy"
    np.save(path, x)
    return path


def test_float_model_needs_calibration(tmp_path, capsys):
    out = tmp_path / "f.npb"
    assert cli.main(["compile", str(FLOAT), "-o", str(out)]) == 1
    assert "pass --calib" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("flags, in_dtype", [([], "float32"), (["--int8-io"], "int8")])
def test_float_model_with_calibration(tmp_path, capsys, calib, flags, in_dtype):
    out = tmp_path / "f.npb"
    assert cli.main(["compile", str(FLOAT), "-o", str(out), "--calib", str(calib), "--json"] + flags) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [row["op"] for row in summary["quantization"]].count("FULLY_CONNECTED") == 3
    assert all(row["sqnr_db"] > 30 for row in summary["quantization"])
    body = blob.unpack(out.read_bytes())
    assert str(body.tensors[body.inputs[0]].dtype) == in_dtype


def test_a_small_calibration_set_is_warned_about_once(tmp_path, capsys):
    x = np.load(ZOO / "digits_mlp" / "test.npz")["x"][:10].reshape(10, 1, 8, 8)
    np.save(tmp_path / "few.npy", x)
    assert cli.main(["compile", str(FLOAT), "-o", str(tmp_path / "f.npb"), "--calib",
                     str(tmp_path / "few.npy")]) == 0
    err = capsys.readouterr().err
    assert err.count("10 samples") == 1, err


def test_unquantizable_op_is_one_error_naming_it(tmp_path, capsys, calib):
    from npu_sdk import tflite, tflite_writer
    g = tflite.load(FLOAT)
    g.ops[3].kind, g.ops[3].options = "EXP", {}
    model, out = tmp_path / "exp_float.tflite", tmp_path / "exp.npb"
    model.write_bytes(tflite_writer.write(g))
    assert cli.main(["compile", str(model), "-o", str(out), "--calib", str(calib)]) == 1
    err = capsys.readouterr().err
    assert err.count("npu:") == 1 and "1 unsupported op(s)" in err  # one error, listing every such op
    assert "op #3 EXP: cannot quantize" in err and "TensorFlow's converter" in err
    assert not out.exists()


def test_int8_model_refuses_calibration(tmp_path, capsys, calib):
    assert cli.main(["compile", str(DIGITS_INT8), "-o", str(tmp_path / "x.npb"), "--calib", str(calib)]) == 1
    assert "already an int8 model" in capsys.readouterr().err


def test_inspect_reports_layers_and_fit(tmp_path, capsys):
    assert cli.main(["inspect", str(DIGITS_INT8), "--board", "cortex-m4-256k", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [r["macs"] for r in rep["layers"]] == [2048, 512, 160, 0]  # the model card's 2720 in total
    assert rep["totals"]["macs"] == 2720 and rep["board"]["fits"]
    npb = tmp_path / "d.npb"
    assert cli.main(["compile", str(DIGITS_INT8), "-o", str(npb)]) == 0
    capsys.readouterr()
    assert cli.main(["inspect", str(npb)]) == 0
    assert "2720 MACs" in capsys.readouterr().out


def test_inspect_plots_the_arena(tmp_path, capsys):
    png = tmp_path / "mem.png"
    assert cli.main(["inspect", str(ZOO / "kws_dscnn" / "int8.tflite"), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "816192 MACs" in capsys.readouterr().out  # the model card's figure


def test_report_lifetimes_cover_every_arena_tensor():
    from npu_sdk import compiler, report
    data = compiler.compile_file(ZOO / "kws_dscnn" / "int8.tflite").blob
    spans = report.lifetimes(data)
    body = blob.unpack(data)
    assert len(spans) == sum(1 for t in body.tensors if t.location == "arena")
    for _, offset, size, first, last in spans:
        assert 0 <= first <= last < len(body.ops) and offset + size <= body.header.value.arena_size


def test_float_model_to_16x8(tmp_path, capsys):
    """--activations int16: TFLite's 16x8, int16 activations between float edges."""
    from tools import bench_kernels
    from npu_sdk import tflite_writer
    n = bench_kernels._Net("mlp", (1, 8), 3)
    model = tmp_path / "mlp.tflite"
    model.write_bytes(tflite_writer.write(n.graph(n.fc(n.fc(0, 16), 4, act="NONE"))))
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(-1, 1, (64, 1, 8)).astype(np.float32))
    out = tmp_path / "mlp.npb"
    sqnr = {}
    for activations in ("int8", "int16"):
        assert cli.main(["compile", str(model), "-o", str(out), "--calib", str(calib),
                         "--activations", activations, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["quantization"]
        sqnr[activations] = min(row["sqnr_db"] for row in rows)
        assert all(row["clipped_pct"] < 1 for row in rows)
    assert sqnr["int16"] > sqnr["int8"] + 3  # the int8 weights bound it from above
    body = blob.unpack(out.read_bytes())
    assert str(body.tensors[body.inputs[0]].dtype) == "float32"
    assert {str(t.dtype) for t in body.tensors} >= {"int16", "int64"}


def _swish_model(tmp_path):
    """FC, HARD_SWISH (no int16 kernel in TFLite Micro), FC: a float model and calibration."""
    from tools import bench_kernels
    from npu_sdk import tflite_writer
    n = bench_kernels._Net("swish", (1, 8), 4)
    x = n.fc(0, 16, act="NONE")
    model = tmp_path / "swish.tflite"
    model.write_bytes(tflite_writer.write(n.graph(n.fc(n._op("HARD_SWISH", [x], (1, 16), {}), 4,
                                                       act="NONE"))))
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(-1, 1, (64, 1, 8)).astype(np.float32))
    return model, calib


def test_16x8_refuses_ops_without_it_in_one_line(tmp_path, capsys):
    model, calib = _swish_model(tmp_path)
    out = tmp_path / "f.npb"
    assert cli.main(["compile", str(model), "-o", str(out), "--calib", str(calib),
                     "--activations", "int16"]) == 1
    err = capsys.readouterr().err
    assert "HARD_SWISH cannot be quantized to 16x8" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_overrides_keep_a_layer_int8_in_a_16x8_model(tmp_path, capsys):
    """--overrides {"#1": {"activations": "int8"}}: HARD_SWISH stays int8 between 16x8 layers,
    requantized where they meet; a type the quantizer lacks is one line, exit 1."""
    model, calib = _swish_model(tmp_path)
    out = tmp_path / "f.npb"
    over = tmp_path / "o.json"
    over.write_text(json.dumps({"#1": {"activations": "int8"}}))
    assert cli.main(["compile", str(model), "-o", str(out), "--calib", str(calib),
                     "--activations", "int16", "--overrides", str(over)]) == 0
    body = blob.unpack(out.read_bytes())
    kinds = [blob.OPNAMES[op.opcode] for op in body.ops]
    assert {"LUT", "REQUANTIZE_S16_S8", "LUT_S8_S16", "FULLY_CONNECTED_S16"} <= set(kinds)
    capsys.readouterr()
    over.write_text(json.dumps({"#1": {"activations": "int4"}}))
    assert cli.main(["compile", str(model), "-o", str(out), "--calib", str(calib),
                     "--overrides", str(over)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("npu: ") and "activations 'int4'" in err and len(err.strip().splitlines()) == 1
