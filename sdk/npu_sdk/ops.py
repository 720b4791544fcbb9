"""The op registry: one place that says what an op is, and the limits every core shares.

Every other table is derived from this one or checked against it by
tests/unit/test_registry.py: the compiler's constraints and lowerings
(compiler.py), the quantizer's treatment (quantize.py), the blob's opcodes and
parameter layout (blob.py), the TFLite writer's options (tflite_writer.py), the
zoo's op check (tools/build_zoo.py) and the firmware's constants
(firmware/npufw/opcodes.py, written by tools/make_firmware_opcodes.py: the
firmware cannot import the SDK). docs/architecture.md has the "adding an op"
checklist.

Pure data, no imports: the CLI lists the supported ops without loading numpy.
"""
from collections import namedtuple

# --- limits shared by the SDK and every core ------------------------------------------

#: k_h * k_w * in_c of a convolution (k_h * k_w of a depthwise one): |x + offset| * |w| <=
#: 256 * 128, so 65,535 such products and no more fit an int32 accumulator with room to spare.
MAX_MACS = 65535
#: Tensors in a blob: op records hold tensor indices as int16 (-1: an absent input).
MAX_TENSORS = 32767
#: Characters in a model's name on a board's flash.
MAX_NAME = 32
#: Bytes of one frame's payload; the board announces it in HELLO.
MAX_PAYLOAD = 4096
#: Work of one RUN (multiply-accumulates, window elements of a pooling, elements moved): a
#: board refuses a model above it at load, so no crafted blob holds it for minutes.
MAX_RUN_MACS = 1 << 28

#: Ranges [lo, hi] of the kernels' int32 parameters, by name, checked once at load by every
#: core (firmware/npufw/checks.py): the kernels trust them. Offsets are minus an int8 zero
#: point, as in TFLite Micro, so (x + offset) * w fits the AVX2 kernels' int16 products;
#: shifts feed C shift operators. "channel_shift" is every element of a per-channel shift table.
PARAM_RANGES = {
    "input_offset": (-127, 128), "input1_offset": (-127, 128), "input2_offset": (-127, 128),
    "output_offset": (-128, 127), "act_min": (-128, 127), "act_max": (-128, 127),
    "input_left_shift": (0, 31), "diff_min": (-(1 << 31), 0), "left_shift": (0, 22),
    "input1_shift": (-31, 31), "input2_shift": (-31, 31), "output_shift": (-31, 31),
    "shift": (-31, 31), "channel_shift": (-31, 31), "fill": (0, 1), "fill_value": (-128, 127),
    "in_depth": (1, 131071),  # the C kernels' fully connected scratch
}

# --- the blob's kernels: what the firmware runs ---------------------------------------

#: A kernel of the blob. `inputs`: tensor inputs in its op record; `params`: its int32
#: parameters, in blob order; `optional`: the inputs that may be absent (-1); `constant`: the
#: inputs that must be constants, read at load (their values are checked: channel_shift);
#: `work`: the params whose product is the work of one run (MAX_RUN_MACS).
#: Opcodes never change meaning (a change is a new blob format version: tests/unit/test_blob.py).
#: `ranges`: params whose range differs from PARAM_RANGES for this kernel (the 16x8 ones).
Kernel = namedtuple("Kernel", ("name", "opcode", "inputs", "params", "work", "optional",
                               "constant", "ranges"), defaults=((), (), None))
#: 16x8 kernels clamp to int16.
_INT16_ACT = {"act_min": (-32768, 32767), "act_max": (-32768, 32767)}
#: |x * input_multiplier| + rounding of an int16 x stays in int32.
_SIGMOID_S16 = {"input_multiplier": (1, 32767), "input_left_shift": (0, 30)}
#: The per-channel kernels' inputs: input, weights, bias (optional), multipliers, shifts.
_PER_CHANNEL = {"optional": (2,), "constant": (3, 4)}

_CONV_GEOMETRY = ("batches", "in_h", "in_w", "in_c", "out_h", "out_w")
_CONV_WINDOW = ("k_h", "k_w", "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_h", "pad_w")
_CONV_QUANT = ("input_offset", "output_offset", "act_min", "act_max")
_POOL = ("batches", "in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w",
         "stride_h", "stride_w", "pad_h", "pad_w", "act_min", "act_max")
_POOL_WORK = ("batches", "out_h", "out_w", "channels", "k_h", "k_w")
_DIMS = ("d0", "d1", "d2", "d3")
_BROADCAST = ("d0", "d1", "d2", "d3", "in1_s0", "in1_s1", "in1_s2", "in1_s3",
              "in2_s0", "in2_s1", "in2_s2", "in2_s3")

KERNELS = (
    # inputs: input, weights [out, in], bias int32 (or -1), per-row mult and shift int32 (one
    # pair each for per-tensor weights)
    Kernel("FULLY_CONNECTED", 1, 5, ("batches", "in_depth", "out_depth", "input_offset",
                                     "output_offset", "act_min", "act_max"),
           ("batches", "in_depth", "out_depth"), **_PER_CHANNEL),
    Kernel("SOFTMAX", 2, 1, ("rows", "depth", "input_multiplier", "input_left_shift", "diff_min"),
           ("rows", "depth")),
    Kernel("QUANTIZE", 3, 1, ("count",), ("count",)),  # float32 -> int8 with the output's quantization
    Kernel("DEQUANTIZE", 4, 1, ("count",), ("count",)),  # int8 -> float32 with the input's quantization
    # NHWC activations; weights OHWI (conv) or 1HWO (depthwise); pad_h/pad_w are the
    # top/left padding; per-channel mult/shift in constant tensors as for FULLY_CONNECTED.
    Kernel("CONV_2D", 5, 5, _CONV_GEOMETRY + ("out_c",) + _CONV_WINDOW + _CONV_QUANT,
           ("batches", "out_h", "out_w", "out_c", "k_h", "k_w", "in_c"), **_PER_CHANNEL),
    Kernel("DEPTHWISE_CONV_2D", 6, 5,
           _CONV_GEOMETRY + ("depth_multiplier",) + _CONV_WINDOW + _CONV_QUANT,
           ("batches", "out_h", "out_w", "in_c", "depth_multiplier", "k_h", "k_w"),
           **_PER_CHANNEL),
    Kernel("AVERAGE_POOL_2D", 7, 1, _POOL, _POOL_WORK),
    Kernel("MAX_POOL_2D", 8, 1, _POOL, _POOL_WORK),
    # Elementwise over a 4-D output [d0, d1, d2, d3]; each input is read at
    # sum_k index_k * stride_k (stride 0 where it broadcasts).
    Kernel("ADD", 9, 2, _BROADCAST + ("input1_offset", "input2_offset", "left_shift",
                                      "input1_multiplier", "input1_shift", "input2_multiplier",
                                      "input2_shift", "output_multiplier", "output_shift",
                                      "output_offset", "act_min", "act_max"), _DIMS),
    Kernel("MUL", 10, 2, _BROADCAST + ("input1_offset", "input2_offset", "output_multiplier",
                                       "output_shift", "output_offset", "act_min", "act_max"),
           _DIMS),
    # out[i] = table[in[i] + 128]: every int8 -> int8 pointwise op; inputs: input, table int8[256]
    Kernel("LUT", 11, 2, ("count",), ("count",), constant=(1,)),
    # Strided 4-D byte copy into a part of the output (PAD, one per CONCATENATION input,
    # TRANSPOSE with the input's strides permuted; int16 as byte pairs):
    # out[out_offset + sum i_k * out_s_k] = in[sum i_k * in_s_k] for i_k < d_k; with
    # fill = 1 the whole output is first set to fill_value.
    Kernel("COPY", 12, 1, ("d0", "d1", "d2", "d3", "in_s0", "in_s1", "in_s2", "in_s3",
                           "out_s0", "out_s1", "out_s2", "out_s3", "out_offset", "fill",
                           "fill_value"), _DIMS),
    # Mean over height and width of NHWC int8, output [batches, channels]: TFLM's
    # QuantizedMeanOrSum with 1/(in_h * in_w) folded into multiplier and shift.
    Kernel("MEAN", 13, 1, ("batches", "in_h", "in_w", "channels", "input_offset", "multiplier",
                           "shift", "output_offset"), ("batches", "in_h", "in_w", "channels")),
    # 16x8: int16 input and output (zero points 0), int8 weights, int64 bias (or -1), per-row
    # mult and shift int32; int64 accumulators, TFLM's 64-bit MultiplyByQuantizedMultiplier.
    Kernel("FULLY_CONNECTED_S16", 14, 5, ("batches", "in_depth", "out_depth", "act_min",
                                          "act_max"),
           ("batches", "in_depth", "out_depth"), ranges=_INT16_ACT, **_PER_CHANNEL),
    # 16x8 convolutions: tensors as CONV_2D / DEPTHWISE_CONV_2D with int16 activations and
    # an int64 bias, int64 accumulators (zero points 0: no offsets)
    Kernel("CONV_2D_S16", 15, 5, _CONV_GEOMETRY + ("out_c",) + _CONV_WINDOW + ("act_min", "act_max"),
           ("batches", "out_h", "out_w", "out_c", "k_h", "k_w", "in_c"), ranges=_INT16_ACT,
           **_PER_CHANNEL),
    Kernel("DEPTHWISE_CONV_2D_S16", 16, 5,
           _CONV_GEOMETRY + ("depth_multiplier",) + _CONV_WINDOW + ("act_min", "act_max"),
           ("batches", "out_h", "out_w", "in_c", "depth_multiplier", "k_h", "k_w"),
           ranges=_INT16_ACT, **_PER_CHANNEL),
    # float32 -> int16 with the output's quantization, and back
    Kernel("QUANTIZE_S16", 17, 1, ("count",), ("count",)),
    Kernel("DEQUANTIZE_S16", 18, 1, ("count",), ("count",)),
    # 16x8 pools: int16 in and out, as the int8 ones
    Kernel("AVERAGE_POOL_2D_S16", 19, 1, _POOL, _POOL_WORK, ranges=_INT16_ACT),
    Kernel("MAX_POOL_2D_S16", 20, 1, _POOL, _POOL_WORK, ranges=_INT16_ACT),
    # 16x8 elementwise: int16 inputs and output with zero points 0 (no offsets), the int8
    # kernels' arithmetic otherwise (ADD's left shift 15; |x1 * x2| <= 2^30 fits int32)
    Kernel("ADD_S16", 21, 2, _BROADCAST + ("left_shift", "input1_multiplier", "input1_shift",
                                          "input2_multiplier", "input2_shift",
                                          "output_multiplier", "output_shift", "act_min",
                                          "act_max"), _DIMS,
           ranges=dict(_INT16_ACT, left_shift=(0, 15))),
    Kernel("MUL_S16", 22, 2, _BROADCAST + ("output_multiplier", "output_shift", "act_min",
                                          "act_max"), _DIMS, ranges=_INT16_ACT),
    # 16x8 LOGISTIC and TANH, TFLM's interpolation in sigmoid(i / 24): inputs: input, table
    # (uint16[256] bits in an int16 tensor, npu_sdk.tables16); output Q0.15
    Kernel("LOGISTIC_S16", 23, 2, ("count", "input_multiplier", "input_left_shift"), ("count",),
           constant=(1,), ranges=_SIGMOID_S16),
    Kernel("TANH_S16", 24, 2, ("count", "input_multiplier", "input_left_shift"), ("count",),
           constant=(1,), ranges=_SIGMOID_S16),
    # 16x8 MEAN over height and width: MEAN's arithmetic without offsets (zero points 0),
    # in_h * in_w <= 65535 int16 values summed in int32, clamped to int16
    Kernel("MEAN_S16", 25, 1, ("batches", "in_h", "in_w", "channels", "multiplier", "shift"),
           ("batches", "in_h", "in_w", "channels")),
    # 16x8 SOFTMAX over the last axis, TFLM's: exp and 1 / (1 + x) interpolated in two
    # tables (int16[513] each, npu_sdk.lower.softmax_s16_luts); output Q0.15. depth <= 65535
    # keeps the int32 sum of exps (each <= 32767) below 2^31.
    Kernel("SOFTMAX_S16", 26, 3, ("rows", "depth", "input_multiplier", "input_shift"),
           ("rows", "depth"), constant=(1, 2),
           ranges={"input_shift": (-31, 31), "depth": (1, 65535)}),
    # 16x8 RELU, RELU6, LEAKY_RELU: y = clamp(x rescaled by the pos pair (x >= 0) or the neg
    # pair, act_min, act_max), zero points 0
    Kernel("RESCALE_S16", 27, 1, ("count", "pos_multiplier", "pos_shift", "neg_multiplier",
                                  "neg_shift", "act_min", "act_max"), ("count",),
           ranges=dict(_INT16_ACT, pos_shift=(-31, 31), neg_shift=(-31, 31))),
    # QUANTIZE between int8 and int16 (a model mixing int8 and 16x8 layers): int8 -> int16 by
    # a table (inputs: input, table int16[256]: out = table[in + 128]), int16 (zero point 0) ->
    # int8 as TFLM's Requantize: clamp(x rescaled by multiplier and shift + output_offset)
    Kernel("LUT_S8_S16", 28, 2, ("count",), ("count",), constant=(1,)),
    Kernel("REQUANTIZE_S16_S8", 29, 1, ("count", "multiplier", "shift", "output_offset"),
           ("count",)),
)


def run_work(records):
    """The work of one RUN of a blob's op records (each with .opcode and .params): for each op
    the product of its kernel's `work` params, summed, as a board counts it against its budget
    (firmware/npufw/checks.py; npu_sdk/profiles.run_macs)."""
    by_code = {k.opcode: k for k in KERNELS}
    total = 0
    for r in records:
        k = by_code[r.opcode]
        work = 1
        for name in k.work:
            work *= max(r.params[k.params.index(name)], 0)
        total += work
    return total


# --- TFLite ops: what the SDK reads ---------------------------------------------------

# How the quantizer sets an op's output quantization (None: it refuses the op).
WEIGHTED = "weighted"  # from calibration; constant weights and bias quantized per channel
CALIBRATED = "calibrated"  # from calibration; constant float operands get their own
SAME_AS_INPUT = "same as input"  # TFLM's int8 kernel only moves or clamps bytes
FIXED = "fixed by spec"  # TFLM's int8 kernel fixes it: `fixed_output`
#: ... and its 16x8 kernel (an op with int16 and FIXED): Q0.15, zero point 0
FIXED_OUTPUT_S16 = (1 / 32768, 0)

#: A TFLite builtin operator the SDK reads.
#: name: the TFLite BuiltinOperator name.
#: arity: inputs every op of this kind must have (present, not -1), read without looking by
#:   the compiler and by rewrite.py; every one has exactly one output.
#: options: the TFLite BuiltinOptions table (None: the op has none); the writer writes it.
#: lowering: how compiler.py checks and lowers it (a key of compiler.FAMILIES); None: the
#:   compiler does not take it (rewrite.py folds or removes it first, or it is refused).
#: kernels: the blob kernels its lowering emits.
#: quant, weights, fixed_output: the quantizer's treatment; weights is (weight input, bias
#:   input, quantized dimension), fixed_output (scale, zero point).
#: int16: the compiler also takes it in 16x8 models (int16 activations, int8 weights, int64
#:   bias), through its *_S16 kernel or as bytes (docs/ops.md's 16x8 column).
Op = namedtuple("Op", ("name", "arity", "options", "lowering", "kernels", "quant", "weights",
                       "fixed_output", "int16"),
                defaults=(None, None, (), None, None, None, False))

OPS = {op.name: op for op in (
    Op("FULLY_CONNECTED", 2, "FullyConnectedOptions", "fully_connected",
       ("FULLY_CONNECTED", "FULLY_CONNECTED_S16"), WEIGHTED, weights=(1, 2, 0), int16=True),
    Op("CONV_2D", 2, "Conv2DOptions", "conv_2d", ("CONV_2D", "CONV_2D_S16"), WEIGHTED,
       weights=(1, 2, 0), int16=True),
    Op("DEPTHWISE_CONV_2D", 2, "DepthwiseConv2DOptions", "depthwise_conv_2d",
       ("DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D_S16"), WEIGHTED, weights=(1, 2, 3), int16=True),
    Op("AVERAGE_POOL_2D", 1, "Pool2DOptions", "pool", ("AVERAGE_POOL_2D", "AVERAGE_POOL_2D_S16"),
       SAME_AS_INPUT, int16=True),
    Op("MAX_POOL_2D", 1, "Pool2DOptions", "pool", ("MAX_POOL_2D", "MAX_POOL_2D_S16"),
       SAME_AS_INPUT, int16=True),
    Op("ADD", 2, "AddOptions", "elementwise", ("ADD", "ADD_S16"), CALIBRATED, int16=True),
    Op("MUL", 2, "MulOptions", "elementwise", ("MUL", "MUL_S16"), CALIBRATED, int16=True),
    Op("SOFTMAX", 1, "SoftmaxOptions", "softmax", ("SOFTMAX", "SOFTMAX_S16"), FIXED,
       fixed_output=(1 / 256, -128), int16=True),
    Op("RELU", 1, None, "pointwise", ("LUT", "RESCALE_S16"), CALIBRATED, int16=True),
    Op("RELU6", 1, None, "pointwise", ("LUT", "RESCALE_S16"), SAME_AS_INPUT, int16=True),
    Op("LEAKY_RELU", 1, "LeakyReluOptions", "pointwise", ("LUT", "RESCALE_S16"), CALIBRATED,
       int16=True),
    Op("HARD_SWISH", 1, "HardSwishOptions", "pointwise", ("LUT",), CALIBRATED),
    Op("LOGISTIC", 1, None, "pointwise", ("LUT", "LOGISTIC_S16"), FIXED,
       fixed_output=(1 / 256, -128), int16=True),
    Op("TANH", 1, None, "pointwise", ("LUT", "TANH_S16"), FIXED, fixed_output=(1 / 128, 0),
       int16=True),
    Op("PAD", 2, "PadOptions", "pad", ("COPY",), SAME_AS_INPUT, int16=True),
    Op("PADV2", 2, "PadV2Options", "pad", ("COPY",)),
    Op("CONCATENATION", 1, "ConcatenationOptions", "concatenation", ("COPY",), int16=True),
    Op("MEAN", 2, "ReducerOptions", "mean", ("MEAN", "MEAN_S16"), CALIBRATED, int16=True),
    Op("RESHAPE", 1, "ReshapeOptions", "reshape", (), SAME_AS_INPUT, int16=True),  # an alias
    # A strided COPY with the input's strides permuted; an alias where it moves only size-1 dims
    Op("TRANSPOSE", 2, "TransposeOptions", "transpose", ("COPY",), SAME_AS_INPUT, int16=True),
    Op("QUANTIZE", 1, "QuantizeOptions", "quantize", ("QUANTIZE", "LUT", "QUANTIZE_S16",
                                                      "LUT_S8_S16", "REQUANTIZE_S16_S8",
                                                      "RESCALE_S16"), int16=True),
    Op("DEQUANTIZE", 1, "DequantizeOptions", "dequantize", ("DEQUANTIZE", "DEQUANTIZE_S16"),
       int16=True),
    # What converters leave behind, folded or rewritten away by rewrite.py before the
    # compiler judges the ops (a dilated convolution's SPACE_TO_BATCH_ND, shape arithmetic).
    Op("SUB", 2, "SubOptions"),
    Op("FLOOR_DIV", 2, "FloorDivOptions"),
    Op("GATHER", 2, "GatherOptions"),
    Op("STRIDED_SLICE", 4, "StridedSliceOptions"),
    Op("SPACE_TO_BATCH_ND", 3, "SpaceToBatchNDOptions"),
    Op("BATCH_TO_SPACE_ND", 3, "BatchToSpaceNDOptions"),
    Op("EXPAND_DIMS", 1, "ExpandDimsOptions"),
    Op("PACK", 1, "PackOptions"),
    Op("SHAPE", 1, "ShapeOptions"),
    Op("SQUEEZE", 1, "SqueezeOptions"),
)}

#: Ops the compiler takes, in the order `npu compile --help` lists them.
SUPPORTED = tuple(sorted(name for name, op in OPS.items() if op.lowering))
#: Ops the compiler takes in 16x8 models.
INT16 = tuple(sorted(name for name, op in OPS.items() if op.int16))
#: Ops the quantizer takes.
QUANTIZABLE = tuple(sorted(name for name, op in OPS.items() if op.quant))
