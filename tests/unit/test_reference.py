"""npu_sdk.reference on whichever LiteRT runtime is installed: ai-edge-litert, or tflite-runtime
(which needs numpy<2; tools/ci_tflite_runtime.sh runs this file in such a venv)."""
import sys
import types

import numpy as np
import pytest

from npu_sdk import reference
from npu_sdk.errors import NpuError
from tests.conftest import ZOO

ZOO_INT8 = sorted(ZOO.glob("*/int8*.tflite"))


def _samples(model):
    data = np.load(model.parent / "samples.npz")
    return data["x_float"] if "float" in model.stem else data["x_int8"]


def _agree(model):
    """LiteRT's builtin kernels and TFLite Micro on every sample: identical integer outputs;
    float outputs (after DEQUANTIZE) equal up to float32 rounding, as LiteRT's DEQUANTIZE
    multiplies in another order. (LiteRT's default XNNPACK delegate is not compared: it
    rounds differently, by several LSBs on the zoo's convolutions.)"""
    data = model.read_bytes()
    oracle = reference.tflm_interpreter(data)
    lite = reference.litert_interpreter(data, builtin=True)
    for x in _samples(model):
        want = reference.run_tflm(data, [x], oracle)
        got = reference.run_litert(data, [x], interpreter=lite)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            what = "%s: LiteRT (%s) vs TFLite Micro" % (model, reference._interpreter_class().__module__)
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, err_msg=what)
            else:
                np.testing.assert_array_equal(g, w, err_msg=what)


@pytest.mark.parametrize("model", ZOO_INT8, ids=lambda p: "%s/%s" % (p.parent.name, p.stem))
def test_litert_and_tflm_agree_on_the_zoo_samples(model):
    _agree(model)


def test_all_tensors_come_back_for_every_sample():
    data = (ZOO / "digits_mlp" / "int8.tflite").read_bytes()
    xs = _samples(ZOO / "digits_mlp" / "int8.tflite")[:3]
    from npu_sdk import tflite
    graph = tflite.parse(data)
    wanted = [op.outputs[0] for op in graph.ops]
    runs = list(reference.litert_all_tensors(data, [[x] for x in xs], wanted))
    assert len(runs) == 3 and all(sorted(r) == sorted(wanted) for r in runs)
    for run, x in zip(runs, xs):
        np.testing.assert_array_equal(run[graph.outputs[0]], reference.run_litert(data, [x])[0])


@pytest.fixture
def no_litert(monkeypatch):
    """ai_edge_litert's Interpreter unavailable (as where its binary does not load)."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import raises ImportError


def test_tflite_runtime_is_picked_when_litert_is_unavailable(no_litert, monkeypatch):
    """The code path, with a stand-in module where tflite-runtime is not installed."""
    try:
        import tflite_runtime.interpreter as real  # noqa: F401
    except ImportError:
        fake = types.ModuleType("tflite_runtime.interpreter")

        class Interpreter:
            pass

        class OpResolverType:
            BUILTIN_WITHOUT_DEFAULT_DELEGATES = "builtin-only"

        Interpreter.__module__ = fake.__name__
        fake.Interpreter, fake.OpResolverType = Interpreter, OpResolverType
        monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
        monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    cls = reference._interpreter_class()
    assert cls.__module__ == "tflite_runtime.interpreter"
    resolver = reference._builtin_kwargs(cls)["experimental_op_resolver_type"]
    assert resolver is sys.modules["tflite_runtime.interpreter"].OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def test_tflite_runtime_agrees_with_tflm(no_litert):
    """The real thing: run where tflite-runtime is installed (tools/ci_tflite_runtime.sh)."""
    pytest.importorskip("tflite_runtime.interpreter")
    assert reference._interpreter_class().__module__ == "tflite_runtime.interpreter"
    for model in ZOO_INT8:
        _agree(model)
    test_all_tensors_come_back_for_every_sample()


def test_no_runtime_says_what_to_install(no_litert, monkeypatch):
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(NpuError, match="pip install ai-edge-litert"):
        reference.run_litert(b"", [])
