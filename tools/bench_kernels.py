"""C-kernel latency on MLPerf-Tiny-class int8 models, side by side in one process.

    python tools/bench_kernels.py [--quick] [--repeat N] [--models kws,vww,...] [--json out.json]

Builds four float models deterministically (seeded weights, random calibration),
quantizes them with npu_sdk.quantize (int8 in and out), compiles them with
npu_sdk.compiler, and times on the same input, interleaved round by round:

  emu      npufw.interp.Model(blob, npu_emulator._kernels).invoke(): the loop the
           CPython-core board runs (what `npu run --repeat N --json` measures)
  tflm     TFLite Micro's Python interpreter (npu_sdk.reference.tflm_interpreter)
  builtin  LiteRT, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, num_threads=1
  xnnpack  LiteRT default resolver (XNNPACK), num_threads=1

Models: kws (DS-CNN-like, 49x10x1), vww (MobileNetV1-0.25-like, 96x96x3),
resnet8 (32x32x3, ADD shortcuts), ae (FC autoencoder 640 -> 8 -> 640), micro_speech
(depthwise 10x8 stride 2, depth multiplier 8), mbv2_torch (MobileNetV2-class exported the
PyTorch way: NCHW 1x3x96x96, leading TRANSPOSE).
Also reports the fixed cost: the invoke time of chains of N tiny FULLY_CONNECTED
ops, per op as the slope over N. Outputs are checked byte-equal to TFLM first.
Medians in µs; ratios as emu/builtin, tflm/emu, emu/xnnpack (lower, higher, lower
is better). The machine is shared: trust ratios of interleaved runs, not absolutes.
"""
import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npu_sdk import compiler, quantize, reference, tflite, tflite_writer  # noqa: E402
from npu_sdk.graph import Graph, Op, Tensor  # noqa: E402

F32 = np.float32


class _Net:
    """A tiny float-graph builder: NHWC, SAME padding unless told, He-normal weights."""

    def __init__(self, name, shape, seed):
        self.rng = np.random.default_rng(seed)
        self.name = name
        self.tensors = [Tensor("input", tuple(shape), F32)]
        self.ops = []

    def _t(self, name, shape, data=None, dtype=F32):
        self.tensors.append(Tensor("%s_%d" % (name, len(self.tensors)), tuple(shape), dtype,
                                   data=data))
        return len(self.tensors) - 1

    def shape(self, t):
        return self.tensors[t].shape

    def _op(self, kind, inputs, out_shape, options):
        y = self._t(kind.lower(), out_shape)
        self.ops.append(Op(kind, inputs, [y], options, len(self.ops)))
        return y

    @staticmethod
    def _out(size, k, stride, padding):
        return -(-size // stride) if padding == "SAME" else (size - k) // stride + 1

    def conv(self, x, out_c, k, stride=1, act="RELU", padding="SAME"):
        n, h, w, c = self.shape(x)
        kh, kw = (k, k) if isinstance(k, int) else k
        wt = self._t("w", (out_c, kh, kw, c),
                     self.rng.normal(0, np.sqrt(2.0 / (kh * kw * c)), (out_c, kh, kw, c)).astype(F32))
        b = self._t("b", (out_c,), self.rng.normal(0, 0.05, out_c).astype(F32))
        oh, ow = self._out(h, kh, stride, padding), self._out(w, kw, stride, padding)
        return self._op("CONV_2D", [x, wt, b], (n, oh, ow, out_c),
                        dict(padding=padding, stride_h=stride, stride_w=stride, dilation_h=1,
                             dilation_w=1, activation=act))

    def dw(self, x, k=3, stride=1, act="RELU", multiplier=1, padding="SAME"):
        n, h, w, c = self.shape(x)
        kh, kw = (k, k) if isinstance(k, int) else k
        out_c = c * multiplier
        wt = self._t("dw", (1, kh, kw, out_c),
                     self.rng.normal(0, np.sqrt(2.0 / (kh * kw)), (1, kh, kw, out_c)).astype(F32))
        b = self._t("b", (out_c,), self.rng.normal(0, 0.05, out_c).astype(F32))
        oh, ow = self._out(h, kh, stride, padding), self._out(w, kw, stride, padding)
        return self._op("DEPTHWISE_CONV_2D", [x, wt, b], (n, oh, ow, out_c),
                        dict(padding=padding, stride_h=stride, stride_w=stride, dilation_h=1,
                             dilation_w=1, depth_multiplier=multiplier, activation=act))

    def reshape(self, x, shape):
        s = self._t("shape", (len(shape),), np.array(shape, np.int32), np.int32)
        return self._op("RESHAPE", [x, s], tuple(shape), {})

    def add(self, a, b, act="RELU"):
        return self._op("ADD", [a, b], self.shape(a), dict(activation=act))

    def global_avgpool(self, x):
        n, h, w, c = self.shape(x)
        y = self._op("AVERAGE_POOL_2D", [x], (n, 1, 1, c),
                     dict(padding="VALID", stride_h=1, stride_w=1, filter_h=h, filter_w=w,
                          activation="NONE"))
        s = self._t("shape", (2,), np.array([n, c], np.int32), np.int32)
        return self._op("RESHAPE", [y, s], (n, c), {})

    def transpose(self, x, perm):
        p = self._t("perm", (len(perm),), np.array(perm, np.int32), np.int32)
        return self._op("TRANSPOSE", [x, p], tuple(self.shape(x)[k] for k in perm), {})

    def pad(self, x, pads):
        """PAD by [[before, after], ...] per dimension."""
        p = self._t("pads", (len(pads), 2), np.array(pads, np.int32), np.int32)
        return self._op("PAD", [x, p], tuple(d + sum(ab) for d, ab in zip(self.shape(x), pads)), {})

    def flatten(self, x):
        """RESHAPE to [batch, everything else]."""
        n = self.shape(x)[0]
        s = self._t("shape", (2,), np.array([n, -1], np.int32), np.int32)
        return self._op("RESHAPE", [x, s], (n, int(np.prod(self.shape(x)[1:]))), {})

    def mean_flatten(self, x):
        """PyTorch's adaptive_avg_pool2d(1) + flatten: MEAN over H, W keeping dims, RESHAPE."""
        n, _, _, c = self.shape(x)
        axes = self._t("axes", (2,), np.array([1, 2], np.int32), np.int32)
        y = self._op("MEAN", [x, axes], (n, 1, 1, c), dict(keep_dims=True))
        s = self._t("shape", (2,), np.array([n, c], np.int32), np.int32)
        return self._op("RESHAPE", [y, s], (n, c), {})

    def fc(self, x, out, act="RELU"):
        n, d = self.shape(x)
        wt = self._t("fc", (out, d), self.rng.normal(0, np.sqrt(2.0 / d), (out, d)).astype(F32))
        b = self._t("b", (out,), self.rng.normal(0, 0.05, out).astype(F32))
        return self._op("FULLY_CONNECTED", [x, wt, b], (n, out), dict(activation=act))

    def softmax(self, x):
        return self._op("SOFTMAX", [x], self.shape(x), dict(beta=1.0))

    def graph(self, out):
        return Graph(self.tensors, self.ops, [0], [out], self.name)


def kws():
    """DS-CNN-like keyword spotting: conv 10x4 s2 64ch, 4 x (dw 3x3 + pw 64), pool, fc 12."""
    n = _Net("kws", (1, 49, 10, 1), 1)
    x = n.conv(0, 64, (10, 4), 2)
    for _ in range(4):
        x = n.conv(n.dw(x), 64, 1)
    return n.graph(n.softmax(n.fc(n.global_avgpool(x), 12, act="NONE")))


def vww():
    """MobileNetV1-0.25-like visual wake words at 96x96x3."""
    n = _Net("vww", (1, 96, 96, 3), 2)
    x = n.conv(0, 8, 3, 2)
    for c, s in [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1),
                 (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)]:
        x = n.conv(n.dw(x, 3, s), c, 1)
    return n.graph(n.softmax(n.fc(n.global_avgpool(x), 2, act="NONE")))


def resnet8():
    """ResNet-8-like image classifier at 32x32x3: three residual stacks, 16/32/64 channels."""
    n = _Net("resnet8", (1, 32, 32, 3), 3)
    x = n.conv(0, 16, 3)
    for c, s in [(16, 1), (32, 2), (64, 2)]:
        y = n.conv(n.conv(x, c, 3, s), c, 3, act="NONE")
        short = x if s == 1 else n.conv(x, c, 1, s, act="NONE")
        x = n.add(y, short)
    return n.graph(n.softmax(n.fc(n.global_avgpool(x), 10, act="NONE")))


def ae():
    """FC autoencoder (anomaly detection): 640 -> 128 x4 -> 8 -> 128 x4 -> 640."""
    n = _Net("ae", (1, 640), 4)
    x = 0
    for width in [128, 128, 128, 128, 8, 128, 128, 128, 128]:
        x = n.fc(x, width)
    return n.graph(n.fc(x, 640, act="NONE"))


def micro_speech():
    """tflite-micro's micro_speech: 1x1960 features as 49x40, depthwise 10x8 stride 2 with
    depth multiplier 8, FULLY_CONNECTED 4000 -> 4, SOFTMAX."""
    n = _Net("micro_speech", (1, 1960), 6)
    x = n.dw(n.reshape(0, (1, 49, 40, 1)), (10, 8), 2, multiplier=8)
    return n.graph(n.softmax(n.fc(n.reshape(x, (1, 4000)), 4, act="NONE")))


def mbv2_torch(size=96):
    """A MobileNetV2-0.35-class classifier exported the PyTorch way (as tflite-micro's
    pytorch_to_tflite example, ai-edge-torch and onnx2tf write it): NCHW input 1x3xHxW, a
    leading TRANSPOSE to NHWC, explicit symmetric PADs before VALID 3x3 convolutions
    (PyTorch's padding=1, which TFLite's SAME does not give at stride 2), inverted
    residual blocks with ADD shortcuts, MEAN + RESHAPE, FULLY_CONNECTED."""
    n = _Net("mbv2_torch", (1, 3, size, size), 6)
    pad1 = [[0, 0], [1, 1], [1, 1], [0, 0]]
    x = n.transpose(0, (0, 2, 3, 1))
    x = n.conv(n.pad(x, pad1), 16, 3, 2, act="RELU6", padding="VALID")
    for expand, out_c, stride in [(1, 8, 1), (6, 8, 2), (6, 8, 1), (6, 16, 2), (6, 16, 1),
                                  (6, 24, 2), (6, 24, 1), (6, 32, 1)]:
        in_c = n.shape(x)[3]
        y = n.conv(x, in_c * expand, 1, act="RELU6") if expand > 1 else x
        y = n.dw(n.pad(y, pad1), 3, stride, act="RELU6", padding="VALID")
        y = n.conv(y, out_c, 1, act="NONE")
        x = n.add(y, x, act="NONE") if stride == 1 and in_c == out_c else y
    x = n.conv(x, 128, 1, act="RELU6")
    return n.graph(n.fc(n.mean_flatten(x), 10, act="NONE"))


def fc_chain(ops):
    """`ops` tiny FULLY_CONNECTED layers (16 -> 16): the interpreter's fixed cost per op."""
    n = _Net("chain%d" % ops, (1, 16), 5)
    x = 0
    for _ in range(ops):
        x = n.fc(x, 16)
    return n.graph(x)


MODELS = {"kws": kws, "vww": vww, "resnet8": resnet8, "ae": ae, "micro_speech": micro_speech,
          "mbv2_torch": mbv2_torch}


def int8_model(graph, calib_count=16, seed=0, per_channel=True):
    """Quantize a float graph (int8 input and output, uniform random calibration) and write
    it as .tflite bytes; per_channel=False: per-tensor weights, as the converter quantizes a
    Keras Dense (MLPerf Tiny's AD model)."""
    rng = np.random.default_rng(seed)
    shape = graph.tensors[graph.inputs[0]].shape
    calib = rng.uniform(-1, 1, (calib_count,) + tuple(shape)).astype(F32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", quantize.CalibrationWarning)
        return tflite_writer.write(quantize.quantize(graph, calib, int8_io=True,
                                                     per_channel=per_channel))


def _runners(model_bytes, x):
    """name -> (invoke, output) for every runtime, set up on input x (int8)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from npufw import interp
    from npu_emulator import _kernels

    blob = compiler.compile_graph(tflite.parse(model_bytes)).blob
    emu = interp.Model(blob, _kernels)
    emu.set_input(0, x.tobytes())
    runners = {"emu": (emu.invoke, lambda: np.frombuffer(bytes(emu.output(0)), np.int8))}
    tflm = reference.tflm_interpreter(model_bytes)
    tflm.set_input(x.reshape(tflm.get_input_details(0)["shape"]), 0)
    runners["tflm"] = (tflm.invoke, lambda: np.asarray(tflm.get_output(0)).reshape(-1))
    for key, resolver in (("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
                          ("xnnpack", OpResolverType.AUTO)):
        it = Interpreter(model_content=model_bytes, num_threads=1,
                         experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x.reshape(it.get_input_details()[0]["shape"]))
        out = it.get_output_details()[0]["index"]
        runners[key] = (it.invoke, (lambda it=it, out=out: it.get_tensor(out).reshape(-1)))
    return runners, emu


def _time_interleaved(fns, repeat, budget_s):
    """Median µs of each fn, one call of each per round, rounds until repeat or budget."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm up
    start = time.perf_counter()
    for r in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter_ns()
            fn()
            times[k].append(time.perf_counter_ns() - t0)
        if r >= 4 and time.perf_counter() - start > budget_s:
            break
    return {k: statistics.median(v) / 1000.0 for k, v in times.items()}, len(times["emu"])


def _inner_median(fn, inner, rounds):
    """Median over `rounds` of the mean µs of `inner` back-to-back calls (for tiny fns)."""
    fn()
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter_ns() - t0) / inner / 1000.0)
    return statistics.median(out)


def bench_model(name, repeat, budget_s):
    model_bytes = int8_model(MODELS[name]())
    graph = tflite.parse(model_bytes)
    shape = graph.tensors[graph.inputs[0]].shape
    x = np.random.default_rng(7).integers(-128, 128, shape, dtype=np.int8)
    runners, emu = _runners(model_bytes, x)
    for fn, _ in runners.values():
        fn()
    want = runners["tflm"][1]()
    got = runners["emu"][1]()
    if not np.array_equal(got, want):
        raise SystemExit("bench_kernels: %s: emulator output differs from TFLite Micro in %d of %d"
                         % (name, int(np.sum(got != want)), want.size))
    med, rounds = _time_interleaved({k: v[0] for k, v in runners.items()}, repeat, budget_s)
    macs = _macs(graph)
    row = dict(model=name, ops=len(emu.calls), macs=macs, rounds=rounds,
               **{k + "_us": v for k, v in med.items()})
    row["emu_over_builtin"] = med["emu"] / med["builtin"]
    row["tflm_over_emu"] = med["tflm"] / med["emu"]
    row["emu_over_xnnpack"] = med["emu"] / med["xnnpack"]
    row["emu_gmacs"] = macs / med["emu"] / 1000.0
    return row


def _macs(graph):
    total = 0
    for op in graph.ops:
        out = graph.tensors[op.outputs[0]].shape
        if op.kind in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
            w = graph.tensors[op.inputs[1]].shape
            per = int(np.prod(w[1:])) if op.kind != "DEPTHWISE_CONV_2D" else int(np.prod(w[1:3]))
            total += int(np.prod(out)) * per
    return total


def bench_overhead(counts=(1, 17, 65), inner=200, rounds=31):
    """Invoke µs of chains of tiny ops; per-op cost is the least-squares slope over N."""
    from npufw import interp
    from npu_emulator import _kernels

    ns, ts, tflm_ts = [], [], []
    for count in counts:
        model_bytes = int8_model(fc_chain(count))
        blob = compiler.compile_graph(tflite.parse(model_bytes)).blob
        m = interp.Model(blob, _kernels)
        tflm = reference.tflm_interpreter(model_bytes)
        tflm.set_input(np.zeros((1, 16), np.int8), 0)
        ns.append(len(m.calls))
        ts.append(_inner_median(m.invoke, inner, rounds))
        tflm_ts.append(_inner_median(tflm.invoke, inner // 4, rounds))
    slope, intercept = np.polyfit(ns, ts, 1)
    tslope, tintercept = np.polyfit(ns, tflm_ts, 1)
    return dict(ops=ns, invoke_us=ts, us_per_op=float(slope), us_per_inference=float(intercept),
                tflm_invoke_us=tflm_ts, tflm_us_per_op=float(tslope),
                tflm_us_per_inference=float(tintercept))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few rounds: a smoke test")
    p.add_argument("--repeat", type=int, default=None, help="max rounds per model (default 200)")
    p.add_argument("--budget", type=float, default=None, help="seconds per model (default 20)")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    repeat = args.repeat or (10 if args.quick else 200)
    budget = args.budget or (3.0 if args.quick else 20.0)
    rows = [bench_model(name, repeat, budget) for name in args.models.split(",") if name]
    cols = ["model", "ops", "macs", "rounds", "emu_us", "tflm_us", "builtin_us", "xnnpack_us",
            "emu_over_builtin", "tflm_over_emu", "emu_over_xnnpack", "emu_gmacs"]
    print(" ".join("%16s" % c for c in cols))
    for r in rows:
        print(" ".join("%16s" % (("%.4g" % r[c]) if isinstance(r[c], float) else r[c]) for c in cols))
    compute = [r for r in rows if r["tflm_us"] >= 500]
    if compute:
        print("compute-bound (TFLM >= 0.5 ms): median tflm/emu %.3g, max emu/builtin %.3g"
              % (statistics.median(r["tflm_over_emu"] for r in compute),
                 max(r["emu_over_builtin"] for r in compute)))
    ovh = bench_overhead(inner=50 if args.quick else 200, rounds=7 if args.quick else 31)
    print("fixed cost: %.3f µs per op, %.3f µs per inference (emu); TFLM %.3f µs per op, %.3f per "
          "inference; invoke µs %s for %s ops" % (ovh["us_per_op"], ovh["us_per_inference"],
                                                   ovh["tflm_us_per_op"], ovh["tflm_us_per_inference"],
                                                   ["%.2f" % t for t in ovh["invoke_us"]], ovh["ops"]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(dict(models=rows, overhead=ovh), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
