"""The op registry (npu_sdk/ops.py) against every table derived from it or kept beside it:
a test here fails when one of them, the generated firmware file or a documented limit
disagrees with the registry."""
import importlib.util
import re
import types

import numpy as np
import pytest

from npu_sdk import blob, compiler, ops, quantize, rewrite, tflite, tflite_writer
from npu_sdk.errors import UnsupportedOpError
from npu_sdk.graph import Graph, Op, Tensor
from npufw import blobfmt, opcodes, server, store
from npufw.blobfmt import BlobError
from npufw.interp import Model
from tests.conftest import ROOT


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_firmware_opcodes_are_current():
    tool = _tool("make_firmware_opcodes")
    assert (ROOT / "firmware" / "npufw" / "opcodes.py").read_text() == tool.render(), \
        "stale: run tools/make_firmware_opcodes.py"
    assert (ROOT / "firmware" / "npufw" / "budgets.py").read_text() == tool.render_budgets(), \
        "stale: run tools/make_firmware_opcodes.py"


def test_the_op_support_doc_is_current():
    """docs/ops.md: the registry's ops against the builtins the installed TFLite Micro has."""
    tool = _tool("make_op_support")
    tflm = tool.tflm_builtins()
    assert {"CONV_2D", "TRANSPOSE", "SVDF", "BATCH_MATMUL"} <= set(tflm)  # the reader works
    assert (ROOT / "docs" / "ops.md").read_text() == tool.render(tflm), \
        "stale: run tools/make_op_support.py"


def test_the_16x8_sigmoid_table_is_current():
    """npu_sdk/tables16.py against the table the installed TFLite Micro interpolates in."""
    assert (ROOT / "sdk" / "npu_sdk" / "tables16.py").read_text() == \
        _tool("make_tables16").render(), "stale: run tools/make_tables16.py"


def test_the_firmware_reads_the_generated_tables():
    assert blobfmt.OPS is opcodes.OPS
    assert {code: name for code, (name, _, _) in opcodes.OPS.items()} == blob.OPNAMES
    assert {name: (k, n) for name, k, n in opcodes.OPS.values()} == \
        {k.name: (k.inputs, len(k.params)) for k in ops.KERNELS}
    assert server.MAX_PAYLOAD == ops.MAX_PAYLOAD


def test_the_interpreter_names_its_opcodes():
    source = (ROOT / "firmware" / "npufw" / "interp.py").read_text()
    assert not re.findall(r"(?:opcode|code) (?:==|in) \(?\d", source)
    assert not re.findall(r"\bp\[\d+\]", source.split("def _prepare_elementwise")[1].split("def ")[0])


def test_kernels_have_distinct_opcodes_and_every_one_is_emitted():
    assert len({k.opcode for k in ops.KERNELS}) == len({k.name for k in ops.KERNELS}) == len(ops.KERNELS)
    emitted = {k for op in ops.OPS.values() for k in op.kernels}
    assert emitted == {k.name for k in ops.KERNELS}


def test_compiler_tables_come_from_the_registry():
    assert set(compiler.CONSTRAINTS) == set(compiler.LOWERINGS) == set(ops.SUPPORTED)
    assert {op.lowering for op in ops.OPS.values() if op.lowering} == set(compiler.FAMILIES)
    assert compiler._ARITY == {name: op.arity for name, op in ops.OPS.items()}
    lut_ops = {name for name, op in ops.OPS.items() if "LUT" in op.kernels}
    assert set(compiler._LUTS) == lut_ops
    assert set(compiler._ELEMENTWISE_PARAMS) == {
        name for name, op in ops.OPS.items() if op.lowering == "elementwise"}
    for name, op in ops.OPS.items():  # one kernel per activation type (int8, 16x8 *_S16)
        if op.lowering and op.lowering not in ("quantize", "reshape"):
            assert len([k for k in op.kernels if not k.endswith("_S16")]) == 1, name


def test_16x8_ops_are_the_ones_with_16x8_kernels_or_byte_moves():
    with_s16 = {name for name, op in ops.OPS.items() if any(k.endswith("_S16") for k in op.kernels)}
    byte_moves = {"RESHAPE", "TRANSPOSE", "PAD", "CONCATENATION"}  # COPY or an alias: byte pairs
    assert with_s16 <= set(ops.INT16) <= with_s16 | byte_moves


def test_rewrite_folds_only_ops_the_registry_knows():
    assert set(rewrite._FOLDERS) <= set(ops.OPS)


def test_quantizer_tables_come_from_the_registry():
    for name, op in ops.OPS.items():
        assert (op.quant == ops.WEIGHTED) == (op.weights is not None), name
        assert (op.quant == ops.FIXED) == (op.fixed_output is not None), name
        assert op.quant in (None, ops.WEIGHTED, ops.CALIBRATED, ops.SAME_AS_INPUT, ops.FIXED), name
    assert set(quantize.QUANTIZABLE) <= set(ops.SUPPORTED)
    assert quantize._FIXED_OUTPUT["LOGISTIC"] == (1 / 256, -128)


def test_zoo_checks_ops_against_the_registry():
    assert _tool("build_zoo").SDK_OPS == frozenset(ops.SUPPORTED)


def test_compile_help_lists_the_supported_ops(capsys):
    from npu_sdk import cli
    with pytest.raises(SystemExit):
        cli.main(["compile", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "supported ops: %s." % ", ".join(ops.SUPPORTED) in text


def _tensor(name, shape, dtype=np.int8):
    return Tensor(name, shape, np.dtype(dtype), np.array([0.1], np.float32), np.array([0]))


@pytest.mark.parametrize("name", sorted(n for n, op in ops.OPS.items() if op.options))
def test_writer_writes_back_every_option_the_reader_reads(name):
    """The writer's options come from the registry and the reader's table: a round trip through
    .tflite keeps every option of every op the SDK reads."""
    attrs = vars(getattr(tflite.schema, ops.OPS[name].options + "T")())
    options = {}
    for attr, key in tflite.OPTION_KEYS.items():
        if attr in attrs:
            default = attrs[attr]
            options[key] = ("RELU" if key == "activation" else "VALID" if key == "padding"
                            else [1, 2] if key == "new_shape" else not default
                            if isinstance(default, bool) else 2)
    n = ops.OPS[name].arity
    graph = Graph([_tensor("t%d" % i, (1, 2)) for i in range(n + 1)],
                  [Op(name, list(range(n)), [n], options, 0)], list(range(n)), [n])
    (back,) = tflite.parse(tflite_writer.write(graph)).ops
    assert back.options == options


def test_unsupported_ops_are_listed_once_with_the_supported_ones():
    graph = Graph([_tensor("a", (1, 2)), _tensor("b", (1, 2)), _tensor("c", (1, 2))],
                  [Op("SIN", [0], [1], {}, 0), Op("COS", [1], [2], {}, 1)], [0], [2])
    with pytest.raises(UnsupportedOpError) as e:
        compiler.check(graph)
    lines = str(e.value).splitlines()
    assert lines[1:3] == ["  op #0 SIN: op not supported", "  op #1 COS: op not supported"]
    assert lines[-1] == "Supported ops: %s." % ", ".join(ops.SUPPORTED)


# --- limits: defined once, checked the same way by the compiler and on every core ----------

def _conv_blob(in_c, monkeypatch=None):
    from tools import tflite_build as tb
    if monkeypatch is not None:  # let the compiler pass a filter the firmware must refuse
        monkeypatch.setattr(ops, "MAX_MACS", 1 << 30)
    model = tb.conv2d_model((1, 1, 1, in_c), (0.05, 1), np.ones((1, 1, 1, in_c), np.int8), [0.01],
                            None, (0.3, 2), padding="VALID")
    return compiler.compile_graph(tflite.parse(model)).blob


def test_the_mac_limit_is_the_same_in_the_compiler_and_the_firmware(monkeypatch):
    npu = types.SimpleNamespace(conv2d=None)
    Model(_conv_blob(ops.MAX_MACS), npu)  # the largest filter compiles and installs
    with pytest.raises(UnsupportedOpError, match="above %d" % ops.MAX_MACS):
        _conv_blob(ops.MAX_MACS + 1)
    with pytest.raises(BlobError, match="filter too large"):
        Model(_conv_blob(ops.MAX_MACS + 1, monkeypatch), npu)


def test_the_c_kernels_and_the_docs_state_the_registry_limits():
    checks = (ROOT / "board_emulator" / "csrc" / "npu_checks.h").read_text()
    assert "#define MAX_WINDOW_MACS %d\n" % ops.MAX_MACS in checks
    assert "#define NPU_MAX_IN_DEPTH %d\n" % ops.PARAM_RANGES["in_depth"][1] in checks
    lo, hi = ops.PARAM_RANGES["input_offset"]
    assert "#define NPU_INPUT_OFFSET_MIN (%d)\n#define NPU_INPUT_OFFSET_MAX %d\n" % (lo, hi) in checks
    header = (ROOT / "board_emulator" / "csrc" / "npu_kernels.h").read_text()
    assert set(re.findall(r"k_h \* k_w(?: \* in_c)? <= (\d+)", header)) == {str(ops.MAX_MACS)}
    fmt = " ".join((ROOT / "docs" / "blob-format.md").read_text().split())
    assert "k_h * k_w * in_c <= %d" % ops.MAX_MACS in fmt
    assert "at most %d tensors" % ops.MAX_TENSORS in fmt
    arch = (ROOT / "docs" / "architecture.md").read_text()
    for name in ("MAX_MACS", "MAX_TENSORS", "MAX_NAME", "MAX_PAYLOAD"):
        assert re.search(r"\| `%s` \| %s \|" % (name, format(getattr(ops, name), ",")), arch), name


def test_the_documented_opcodes_are_the_registry_kernels():
    fmt = (ROOT / "docs" / "blob-format.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| ([A-Z_0-9]+)", fmt, re.M))
    assert rows == {str(k.opcode): k.name for k in ops.KERNELS}


def test_name_and_tensor_limits():
    assert store.valid_name("a" * ops.MAX_NAME) and not store.valid_name("a" * (ops.MAX_NAME + 1))
    assert ops.MAX_TENSORS == 2 ** 15 - 1  # op records hold tensor indices as int16


def test_the_documented_quantizable_ops_are_the_registry_ones():
    text = " ".join((ROOT / "docs" / "quantization.md").read_text().split())
    listed = text.split("Quantizable today (the registry's `ops.QUANTIZABLE`): ")[1].split(";")[0]
    assert listed.split(", ") == list(ops.QUANTIZABLE)
