"""The board's int8 kernel set in MicroPython viper, bit-exact with TFLite Micro.

Same entry points and arguments as the C binding npu_emulator._kernels (twin:
board_emulator/csrc/npu_kernels.c); the interpreter calls either set.
Buffers are anything with the buffer protocol (bytearray, bytes, memoryview
slices); int32 parameters are little-endian and read bytewise, so they may
sit at any alignment (Cortex-M0 faults on unaligned word loads).

Portability rule: viper `int` is the machine word, 32 bits on boards and 64
on the unix port. Every viper value that feeds `>>`, `&` or a comparison is
kept inside int32; values that may exceed it only flow through + - * into a
result that fits int32, so both word sizes give the same bits.
MicroPython only: never imported on CPython.
"""
import array
import struct

import micropython
from micropython import const

_MASK16 = const(0xFFFF)
_MASK15 = const(0x7FFF)
_HALF15 = const(0x4000)  # 2**30 seen from the 2**16 scale, see _requantize
_SOFTMAX_ACC_BITS = const(12)  # TFLM kAccumulationIntegerBits
_INT8_MIN = const(-128)
_INT8_MAX = const(127)

# Per-row scratch for the fully connected kernel, grown on demand and reused:
# xs holds the offset inputs, acc the int32 accumulators.
_xs = bytearray(4)
_acc = bytearray(4)
_nobias = bytearray(4)
_f32 = array.array("f", [0.0])


def release():
    """Give back the scratch the last model grew (the server calls it between models)."""
    global _xs, _acc, _acc2
    _xs, _acc, _acc2 = bytearray(4), bytearray(4), bytearray(4)


def _scratch(in_depth, out_depth):
    global _xs, _acc
    if len(_xs) < 4 * in_depth:
        _xs = bytearray(4 * in_depth)
    if len(_acc) < 4 * out_depth:
        _acc = bytearray(4 * out_depth)


# ---- fully connected --------------------------------------------------------

@micropython.viper
def _mac(inp: ptr8, in_base: int, weights: ptr8, bias: ptr8, has_bias: int,
         xs: ptr32, acc: ptr32, in_depth: int, out_depth: int, input_offset: int):
    """acc[o] = bias[o] + sum_i (inp[in_base + i] + input_offset) * weights[o, i]."""
    # ptr8 loads are unsigned: (v ^ 0x80) - 0x80 sign-extends an int8.
    for i in range(in_depth):
        xs[i] = ((inp[in_base + i] ^ 0x80) - 0x80) + input_offset
    wb = 0
    for o in range(out_depth):
        s = 0
        if has_bias:
            j = o << 2
            s = (bias[j] | (bias[j + 1] << 8) | (bias[j + 2] << 16)
                 | (((bias[j + 3] ^ 0x80) - 0x80) << 24))
        # xs[i] may load zero-extended on 64-bit ports; the low 32 bits of
        # the sum are right either way and only those are stored.
        i = 0
        n4 = in_depth - 3
        while i < n4:
            k = wb + i
            s += (xs[i] * ((weights[k] ^ 0x80) - 0x80)
                  + xs[i + 1] * ((weights[k + 1] ^ 0x80) - 0x80)
                  + xs[i + 2] * ((weights[k + 2] ^ 0x80) - 0x80)
                  + xs[i + 3] * ((weights[k + 3] ^ 0x80) - 0x80))
            i += 4
        while i < in_depth:
            s += xs[i] * ((weights[wb + i] ^ 0x80) - 0x80)
            i += 1
        acc[o] = s
        wb += in_depth


# Requantization is done here in viper, with 32-bit-safe limb arithmetic:
# plain Python would be exact too, but on a 32-bit port every int32 beyond
# +-2**30 and every 62-bit product is a heap-allocated long int, i.e. several
# allocations per output element. The limbs below never need more than int32,
# so the code is allocation-free and gives the same bits on 32- and 64-bit
# words. tests/conformance/test_viper_kernels.py checks it against a 64-bit
# reference over edge cases.
@micropython.viper
def _requantize(acc: ptr32, n: int, mult: ptr8, shift: ptr8, step: int):
    """In place: acc[o] = MultiplyByQuantizedMultiplier(acc[o], mult[o], shift[o]).

    step is 4 for per-channel int32 mult/shift arrays, 0 for one shared pair.

    TFLite's double-rounding form: wrap(acc << max(shift, 0)), then
    SaturatingRoundingDoublingHighMul by mult, then RoundingDivideByPOT by
    max(-shift, 0). Shift must lie in -31..31.
    """
    p30 = 1
    p30 <<= 30  # 2**30 built at run time: as a literal it is a long int on 32-bit ports
    int_min = 0 - p30 - p30
    for o in range(n):
        j = o * step
        # Load acc[o] sign-extended on any word size, mult/shift bytewise (LE).
        x = int(acc[o])
        x = (((((x >> 16) & _MASK16) ^ 0x8000) - 0x8000) << 16) | (x & _MASK16)
        b = (mult[j] | (mult[j + 1] << 8) | (mult[j + 2] << 16)
             | (((mult[j + 3] ^ 0x80) - 0x80) << 24))
        sh = (shift[j] | (shift[j + 1] << 8) | (shift[j + 2] << 16)
              | (((shift[j + 3] ^ 0x80) - 0x80) << 24))
        # x << left_shift, wrapping to int32 like the C reference.
        if sh > 0:
            keep = 31 - sh
            sign = (x >> keep) & 1
            x = (x & ((1 << keep) - 1)) << sh
            if sign:
                x = x - p30 - p30
            rs = 0
        else:
            rs = 0 - sh
        # SaturatingRoundingDoublingHighMul(x, b) = floor((x*b + 2**30) / 2**31),
        # saturating INT32_MIN * INT32_MIN. 16-bit limbs: x = xh*2**16 + xl.
        if x == b and x == int_min:
            r = p30 + (p30 - 1)
        else:
            xh = x >> 16
            xl = x & _MASK16
            bh = b >> 16
            bl = b & _MASK16
            # floor(xl*bl / 2**16) without the 32-bit product: split xl in bytes.
            p1 = (xl >> 8) * bl
            low = (xl & 0xFF) * bl + ((p1 & 0xFF) << 8)
            c0 = (p1 >> 8) + (low >> 16)
            m1 = xh * bl
            m2 = xl * bh
            w = (m1 & _MASK15) + (m2 & _MASK15) + c0 + _HALF15
            # 2*xh*bh reaches 2**31 only for x, b near INT32_MIN; it then wraps,
            # but only through + into a result that fits int32.
            r = ((xh * bh) << 1) + (m1 >> 15) + (m2 >> 15) + (w >> 15)
        # RoundingDivideByPOT(r, rs): round half away from zero.
        if rs > 0:
            mask = (1 << rs) - 1  # rs == 31: wraps to 2**31 - 1 on 32-bit, same value
            threshold = mask >> 1
            if r < 0:
                threshold += 1
            rem = r & mask
            r = r >> rs
            if rem > threshold:
                r += 1
        acc[o] = r


@micropython.viper
def _store(acc: ptr32, out: ptr8, out_base: int, n: int, output_offset: int,
           act_min: int, act_max: int):
    """out[out_base + o] = clamp(acc[o] + output_offset, act_min, act_max)."""
    for o in range(n):
        x = int(acc[o])
        x = (((((x >> 16) & _MASK16) ^ 0x8000) - 0x8000) << 16) | (x & _MASK16)
        x += output_offset
        if x < act_min:
            x = act_min
        elif x > act_max:
            x = act_max
        out[out_base + o] = x


def fully_connected(inp, weights, bias, out, mult, shift, batches, in_depth, out_depth,
                    input_offset, output_offset, act_min, act_max):
    """int8 FULLY_CONNECTED; mult/shift per output row, or one pair (per-tensor weights)."""
    _scratch(in_depth, out_depth)
    has_bias = bias is not None
    if not has_bias:
        bias = _nobias
    xs = _xs
    acc = _acc
    for b in range(batches):
        _mac(inp, b * in_depth, weights, bias, has_bias, xs, acc, in_depth, out_depth,
             input_offset)
        _requantize(acc, out_depth, mult, shift, 4 if len(mult) > 4 else 0)
        _store(acc, out, b * out_depth, out_depth, output_offset, act_min, act_max)


# ---- convolution ----------------------------------------------------------------
# Per output pixel: viper accumulates every output channel into the int32
# scratch, then the shared _requantize and _store finish it. Geometry travels
# in a preallocated array('i') so the viper functions keep few arguments.

_geom = array.array("i", [0] * 12)
_acc2 = bytearray(4)


def _grow(n):
    global _acc, _acc2
    if len(_acc) < 4 * n:
        _acc = bytearray(4 * n)
    if len(_acc2) < 4 * n:
        _acc2 = bytearray(4 * n)


@micropython.viper
def _bias_init(acc: ptr32, bias: ptr8, has_bias: int, n: int):
    for o in range(n):
        if has_bias:
            j = o << 2
            acc[o] = (bias[j] | (bias[j + 1] << 8) | (bias[j + 2] << 16)
                      | (((bias[j + 3] ^ 0x80) - 0x80) << 24))
        else:
            acc[o] = 0


@micropython.viper
def _conv_pixel(inp: ptr8, weights: ptr8, acc: ptr32, g: ptr32, y0: int, x0: int, img: int,
                input_offset: int):
    """acc[oc] += sum over the taps inside the image of (x + input_offset) * w.

    g: in_h, in_w, in_c, out_c, k_h, k_w, dilation_h, dilation_w, depth_multiplier
    (0 for CONV_2D, OHWI weights; else depthwise, [1, k_h, k_w, out_c] weights).
    """
    in_h = g[0]
    in_w = g[1]
    in_c = g[2]
    out_c = g[3]
    k_h = g[4]
    k_w = g[5]
    dil_h = g[6]
    dil_w = g[7]
    dm = g[8]
    fsize = k_h * k_w * in_c
    for ky in range(k_h):
        iy = y0 + ky * dil_h
        if iy < 0 or iy >= in_h:
            continue
        for kx in range(k_w):
            ix = x0 + kx * dil_w
            if ix < 0 or ix >= in_w:
                continue
            px = img + (iy * in_w + ix) * in_c
            if dm == 0:
                wk = (ky * k_w + kx) * in_c
                for oc in range(out_c):
                    wb = oc * fsize + wk
                    s = 0
                    for ic in range(in_c):
                        s += ((((inp[px + ic] ^ 0x80) - 0x80) + input_offset)
                              * ((weights[wb + ic] ^ 0x80) - 0x80))
                    acc[oc] += s
            else:
                wk = (ky * k_w + kx) * out_c
                oc = 0
                for ic in range(in_c):
                    x = ((inp[px + ic] ^ 0x80) - 0x80) + input_offset
                    for m in range(dm):
                        acc[oc] += x * ((weights[wk + oc] ^ 0x80) - 0x80)
                        oc += 1


def _conv(depthwise, inp, weights, bias, out, mult, shift, batches, in_h, in_w, in_c, out_h,
          out_w, channels, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w,
          input_offset, output_offset, act_min, act_max):
    out_c = in_c * channels if depthwise else channels
    _grow(out_c)
    g = _geom
    # one store per line: a multiple assignment of more than three values builds a tuple
    g[0] = in_h
    g[1] = in_w
    g[2] = in_c
    g[3] = out_c
    g[4] = k_h
    g[5] = k_w
    g[6] = dil_h
    g[7] = dil_w
    g[8] = channels if depthwise else 0
    has_bias = bias is not None
    if not has_bias:
        bias = _nobias
    acc = _acc
    o = 0
    for b in range(batches):
        img = b * in_h * in_w * in_c
        for oy in range(out_h):
            y0 = oy * stride_h - pad_h
            for ox in range(out_w):
                _bias_init(acc, bias, has_bias, out_c)
                _conv_pixel(inp, weights, acc, g, y0, ox * stride_w - pad_w, img, input_offset)
                _requantize(acc, out_c, mult, shift, 4)
                _store(acc, out, o, out_c, output_offset, act_min, act_max)
                o += out_c


# The entry points spell out their parameters: `def f(*args)` builds a tuple per call,
# garbage on every inference (tests/conformance/test_mp_memory.py).
def conv2d(inp, weights, bias, out, mult, shift, batches, in_h, in_w, in_c, out_h, out_w,
           channels, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w,
           input_offset, output_offset, act_min, act_max):
    """int8 CONV_2D, NHWC, OHWI weights; arguments as the C binding's conv2d."""
    _conv(False, inp, weights, bias, out, mult, shift, batches, in_h, in_w, in_c, out_h, out_w,
          channels, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w,
          input_offset, output_offset, act_min, act_max)


def depthwise_conv2d(inp, weights, bias, out, mult, shift, batches, in_h, in_w, in_c, out_h,
                     out_w, channels, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w,
                     input_offset, output_offset, act_min, act_max):
    """int8 DEPTHWISE_CONV_2D; arguments as the C binding's depthwise_conv2d."""
    _conv(True, inp, weights, bias, out, mult, shift, batches, in_h, in_w, in_c, out_h, out_w,
          channels, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w,
          input_offset, output_offset, act_min, act_max)


# ---- pooling ------------------------------------------------------------------------

@micropython.viper
def _pool(inp: ptr8, out: ptr8, g: ptr32, average: int, act_min: int, act_max: int,
          wide: int):
    """g: batches, in_h, in_w, channels, out_h, out_w, k_h, k_w, stride_h, stride_w,
    pad_h, pad_w. Every window overlaps the image (checked by the interpreter). wide: int16
    elements (16x8), little-endian byte pairs; k_h * k_w <= 65535 keeps their sums in int32."""
    batches = g[0]
    in_h = g[1]
    in_w = g[2]
    ch = g[3]
    out_h = g[4]
    out_w = g[5]
    k_h = g[6]
    k_w = g[7]
    o = 0
    for b in range(batches):
        img = b * in_h * in_w * ch
        for oy in range(out_h):
            y0 = oy * g[8] - g[10]
            ky0 = 0
            while y0 + ky0 < 0:
                ky0 += 1
            ky1 = k_h
            while ky1 > ky0 and y0 + ky1 > in_h:
                ky1 -= 1
            for ox in range(out_w):
                x0 = ox * g[9] - g[11]
                kx0 = 0
                while x0 + kx0 < 0:
                    kx0 += 1
                kx1 = k_w
                while kx1 > kx0 and x0 + kx1 > in_w:
                    kx1 -= 1
                count = (ky1 - ky0) * (kx1 - kx0)
                for c in range(ch):
                    acc = 0 if average else (-32768 if wide else -128)
                    for ky in range(ky0, ky1):
                        row = img + (y0 + ky) * in_w * ch + c
                        for kx in range(kx0, kx1):
                            p = row + (x0 + kx) * ch
                            if wide:
                                v = inp[p << 1] | (((inp[(p << 1) + 1] ^ 0x80) - 0x80) << 8)
                            else:
                                v = (inp[p] ^ 0x80) - 0x80
                            if average:
                                acc += v
                            elif v > acc:
                                acc = v
                    if average:
                        # Round half away from zero; divide non-negative numbers only.
                        if count <= 0:
                            acc = 0
                        elif acc > 0:
                            acc = (acc + (count >> 1)) // count
                        else:
                            acc = 0 - ((0 - acc + (count >> 1)) // count)
                    if acc < act_min:
                        acc = act_min
                    elif acc > act_max:
                        acc = act_max
                    if wide:
                        out[o << 1] = acc & 0xFF
                        out[(o << 1) + 1] = (acc >> 8) & 0xFF
                    else:
                        out[o] = acc
                    o += 1


def _pool_call(average, inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,
               stride_h, stride_w, pad_h, pad_w, act_min, act_max, wide=0):
    g = _geom
    g[0] = batches  # one store per line (see _conv)
    g[1] = in_h
    g[2] = in_w
    g[3] = channels
    g[4] = out_h
    g[5] = out_w
    g[6] = k_h
    g[7] = k_w
    g[8] = stride_h
    g[9] = stride_w
    g[10] = pad_h
    g[11] = pad_w
    _pool(inp, out, g, average, act_min, act_max, wide)


def average_pool2d(inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,
                   stride_h, stride_w, pad_h, pad_w, act_min, act_max):
    """int8 AVERAGE_POOL_2D; arguments as the C binding's average_pool2d."""
    _pool_call(1, inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,
               stride_h, stride_w, pad_h, pad_w, act_min, act_max)


def max_pool2d(inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,
               stride_h, stride_w, pad_h, pad_w, act_min, act_max):
    """int8 MAX_POOL_2D; arguments as the C binding's max_pool2d."""
    _pool_call(0, inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,
               stride_h, stride_w, pad_h, pad_w, act_min, act_max)


def average_pool2d_s16(inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,
                       stride_h, stride_w, pad_h, pad_w, act_min, act_max):
    """16x8 AVERAGE_POOL_2D; arguments as the C binding's average_pool2d_s16."""
    _pool_call(1, inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,
               stride_h, stride_w, pad_h, pad_w, act_min, act_max, 1)


def max_pool2d_s16(inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,
                   stride_h, stride_w, pad_h, pad_w, act_min, act_max):
    """16x8 MAX_POOL_2D; arguments as the C binding's max_pool2d_s16."""
    _pool_call(0, inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,
               stride_h, stride_w, pad_h, pad_w, act_min, act_max, 1)


# ---- elementwise ADD / MUL --------------------------------------------------------------
# One viper pass per innermost row (d3 elements); the rows loop stays in Python.

@micropython.viper
def _ew_load(inp: ptr8, base: int, stride: int, n: int, offset: int, left_shift: int,
             acc: ptr32):
    """acc[i] = (inp[base + i * stride] + offset) << left_shift; |value| < 2**31."""
    for i in range(n):
        acc[i] = (((inp[base + i * stride] ^ 0x80) - 0x80) + offset) << left_shift


@micropython.viper
def _ew_sum(acc: ptr32, acc2: ptr32, n: int):
    # Loads may zero-extend on 64-bit ports; the low 32 bits of the sum are right.
    for i in range(n):
        acc[i] = acc[i] + acc2[i]


@micropython.viper
def _ew_mul(a: ptr8, abase: int, sa: int, b: ptr8, bbase: int, sb: int, n: int, off1: int,
            off2: int, acc: ptr32):
    for i in range(n):
        acc[i] = ((((a[abase + i * sa] ^ 0x80) - 0x80) + off1)
                  * (((b[bbase + i * sb] ^ 0x80) - 0x80) + off2))


# Per-tensor int32 parameters handed to _requantize as little-endian words: packed into
# these six preallocated buffers (struct.pack would make new bytes on every call).
_words = [bytearray(4) for _ in range(6)]


def _word(slot, v):
    w = _words[slot]
    struct.pack_into("<i", w, 0, v)
    return w


def add(in1, in2, out, d0, d1, d2, d3, a0, a1, a2, a3, b0, b1, b2, b3, input1_offset,
        input2_offset, left_shift, input1_multiplier, input1_shift, input2_multiplier,
        input2_shift, output_multiplier, output_shift, output_offset, act_min, act_max):
    """int8 ADD with broadcasting strides; arguments as the C binding's add."""
    _grow(d3)
    acc, acc2 = _acc, _acc2
    m1, s1 = _word(0, input1_multiplier), _word(1, input1_shift)
    m2, s2 = _word(2, input2_multiplier), _word(3, input2_shift)
    mo, so = _word(4, output_multiplier), _word(5, output_shift)
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                _ew_load(in1, i0 * a0 + i1 * a1 + i2 * a2, a3, d3, input1_offset, left_shift, acc)
                _ew_load(in2, i0 * b0 + i1 * b1 + i2 * b2, b3, d3, input2_offset, left_shift, acc2)
                _requantize(acc, d3, m1, s1, 0)
                _requantize(acc2, d3, m2, s2, 0)
                _ew_sum(acc, acc2, d3)
                _requantize(acc, d3, mo, so, 0)
                _store(acc, out, o, d3, output_offset, act_min, act_max)
                o += d3


def mul(in1, in2, out, d0, d1, d2, d3, a0, a1, a2, a3, b0, b1, b2, b3, input1_offset,
        input2_offset, output_multiplier, output_shift, output_offset, act_min, act_max):
    """int8 MUL with broadcasting strides; arguments as the C binding's mul."""
    _grow(d3)
    acc = _acc
    mo, so = _word(4, output_multiplier), _word(5, output_shift)
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                _ew_mul(in1, i0 * a0 + i1 * a1 + i2 * a2, a3, in2, i0 * b0 + i1 * b1 + i2 * b2,
                        b3, d3, input1_offset, input2_offset, acc)
                _requantize(acc, d3, mo, so, 0)
                _store(acc, out, o, d3, output_offset, act_min, act_max)
                o += d3


# ---- lookup table, strided copy, mean ---------------------------------------------

@micropython.viper
def lut(inp: ptr8, table: ptr8, out: ptr8, n: int):
    """out[i] = table[inp[i] + 128]; arguments as the C binding's lut."""
    for i in range(n):
        out[i] = table[inp[i] ^ 0x80]


@micropython.viper
def _fill(out: ptr8, n: int, value: int):
    for i in range(n):
        out[i] = value


@micropython.viper
def _copy_row(inp: ptr8, ibase: int, istride: int, out: ptr8, obase: int, ostride: int,
              n: int):
    for i in range(n):
        out[obase + i * ostride] = inp[ibase + i * istride]


def copy(inp, out, d0, d1, d2, d3, a0, a1, a2, a3, b0, b1, b2, b3, out_offset, fill,
         fill_value):
    """Strided 4-D int8 copy into part of out; arguments as the C binding's copy."""
    if fill:
        _fill(out, len(out), fill_value)
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                _copy_row(inp, i0 * a0 + i1 * a1 + i2 * a2, a3, out,
                          out_offset + i0 * b0 + i1 * b1 + i2 * b2, b3, d3)


@micropython.viper
def _mean_sums(inp: ptr8, base: int, count: int, ch: int, offset: int, acc: ptr32):
    """acc[c] = sum_k (inp[base + k * ch + c] + offset); fits int32 (count <= 2**23)."""
    for c in range(ch):
        s = 0
        p = base + c
        for k in range(count):
            s += ((inp[p] ^ 0x80) - 0x80) + offset
            p += ch
        acc[c] = s


def mean(inp, out, batches, in_h, in_w, channels, input_offset, multiplier, shift,
         output_offset):
    """int8 MEAN over height and width; arguments as the C binding's mean."""
    _grow(channels)
    acc = _acc
    mo, so = _word(4, multiplier), _word(5, shift)
    count = in_h * in_w
    for b in range(batches):
        _mean_sums(inp, b * count * channels, count, channels, input_offset, acc)
        _requantize(acc, channels, mo, so, 0)
        _store(acc, out, b * channels, channels, output_offset, _INT8_MIN, _INT8_MAX)


# ---- softmax: gemmlowp fixed point in plain Python ---------------------------
# Softmax runs once per row (usually one row of a few classes), so it stays in
# plain Python: arbitrary-precision ints make each helper exact on every port,
# and the code reads like the reference it mirrors. On 32-bit ports the
# products are short-lived long ints.

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


def _srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul for int32 a, b."""
    if a == b and a == _INT32_MIN:
        return _INT32_MAX
    # The reference's nudge-and-truncate equals floor((a*b + 2**30) / 2**31).
    return (a * b + (1 << 30)) >> 31


def _rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2**exponent, ties away from zero."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _sat_shl(x, exponent):
    """gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return _INT32_MAX
    if x < -threshold:
        return _INT32_MIN
    return x << exponent


def _wrap32(x):
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _exp_on_interval(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series around -1/8)."""
    x = a + (1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbpot(x4, 2)
    poly = _rdbpot(_srdhm(x4_over_4 + x3, 715827883) + x2, 1)  # 1/3 in Q0.31
    return 1895147668 + _srdhm(1895147668, x + poly)  # exp(-1/8) in Q0.31


# exp(-2**k) in Q0.31 for the barrel shifter, k = -2..4, keyed by Q5.26 bit.
_EXP_BARREL = ((24, 1672461947), (25, 1302514674), (26, 790015084), (27, 290630308),
               (28, 39332535), (29, 720401), (30, 242))


def _exp_on_negative_values(a):
    """exp(a) for a <= 0 in Q5.26, result in Q0.31 (gemmlowp)."""
    one_quarter = 1 << 24
    a_mod = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval(a_mod << 5)  # Rescale<0> from Q5.26: exact here
    remainder = a_mod - a
    for bit, multiplier in _EXP_BARREL:
        if remainder & (1 << bit):
            result = _srdhm(result, multiplier)
    if a == 0:
        result = _INT32_MAX
    return result


def _one_over_one_plus_x(a):
    """1 / (1 + a) for a in [0, 1) in Q0.31, result in Q0.31 (Newton-Raphson)."""
    s = a + _INT32_MAX  # RoundingHalfSum(a, One): C division truncates toward zero
    half_denominator = (s + 1) // 2 if s >= 0 else -((-s + 1) // 2)
    x = 1515870810 + _srdhm(half_denominator, -1010580540)  # 48/17 - 32/17 * d, Q2.29
    for _ in range(3):
        one_minus = (1 << 29) - _srdhm(half_denominator, x)
        x = x + _sat_shl(_srdhm(x, one_minus), 2)
    return _sat_shl(x, 1)


def _clz32(u):
    n = 32
    while u:
        u >>= 1
        n -= 1
    return n


def _softmax_exp(v, max_in_row, input_multiplier, input_left_shift):
    diff = v - max_in_row
    return _exp_on_negative_values(_srdhm(diff << input_left_shift, input_multiplier))


def softmax(inp, out, rows, depth, input_multiplier, input_left_shift, diff_min):
    """int8 -> int8 SOFTMAX over rows of `depth`; output scale 1/256, zero point -128."""
    for r in range(rows):
        base = r * depth
        max_in_row = _INT8_MIN
        for c in range(depth):
            v = inp[base + c]
            if v > _INT8_MAX:
                v -= 256
            if v > max_in_row:
                max_in_row = v
        sum_of_exps = 0  # Q12.19
        for c in range(depth):
            v = inp[base + c]
            if v > _INT8_MAX:
                v -= 256
            if v - max_in_row >= diff_min:
                e = _softmax_exp(v, max_in_row, input_multiplier, input_left_shift)
                sum_of_exps = _wrap32(sum_of_exps + _rdbpot(e, _SOFTMAX_ACC_BITS))
        # GetReciprocal: normalise the sum into [1, 2) and invert.
        u = sum_of_exps & 0xFFFFFFFF
        headroom_plus_one = _clz32(u)
        num_bits_over_unit = _SOFTMAX_ACC_BITS - headroom_plus_one
        shifted = _wrap32((u << headroom_plus_one) - (1 << 31))
        shifted_scale = _one_over_one_plus_x(shifted)
        exponent = num_bits_over_unit + 31 - 8
        for c in range(depth):
            v = inp[base + c]
            if v > _INT8_MAX:
                v -= 256
            if v - max_in_row >= diff_min:
                e = _softmax_exp(v, max_in_row, input_multiplier, input_left_shift)
                q = _rdbpot(_srdhm(shifted_scale, e), exponent) + _INT8_MIN
                if q > _INT8_MAX:
                    q = _INT8_MAX
                elif q < _INT8_MIN:
                    q = _INT8_MIN
            else:
                q = _INT8_MIN
            out[base + c] = q & 0xFF


# ---- quantize / dequantize ----------------------------------------------------

def quantize(inp, out, n, scale, zero_point):
    """float32 -> int8: clamp(round_half_away(x / scale) + zero_point), in float32.

    On double-float ports x / scale is computed in double and then rounded to
    float32 (through an array('f')), which equals float32 division exactly;
    on single-float ports it already is one. NaN and quotients beyond int32 are
    undefined in TFLM's cast (x86 wraps to INT32_MIN); like the C kernels, we
    saturate as Arm's VCVT does on boards and map NaN to the zero point.
    """
    f = _f32
    f[0] = scale
    scale = f[0]
    for i in range(n):
        out[i] = _quantized(f, struct.unpack_from("<f", inp, 4 * i)[0], scale, zero_point,
                            _INT8_MIN, _INT8_MAX) & 0xFF


def _quantized(f, x, scale, zero_point, lo, hi):
    f[0] = x / scale
    q = f[0]
    a = -q if q < 0 else q
    if q != q:  # NaN
        v = zero_point
    elif not a < 2147483648.0:
        v = lo if q < 0 else hi
    else:
        # a - int(a) is exact in float32 too, so the tie test is exact.
        r = int(a)
        if a - r >= 0.5:
            r += 1
        v = (-r if q < 0 else r) + zero_point
    return hi if v > hi else (lo if v < lo else v)


def dequantize(inp, out, n, scale, zero_point):
    """int8 -> float32: (float)(scale * (q - zero_point)).

    TFLM multiplies in double; the product of a float32 and a 9-bit integer is
    exact in double, so a single rounding to float32 (pack '<f') matches it,
    and a float32 multiply on single-float ports rounds the same exact product.
    """
    f = _f32
    f[0] = scale
    scale = f[0]
    for i in range(n):
        v = inp[i]
        if v > _INT8_MAX:
            v -= 256
        struct.pack_into("<f", out, 4 * i, scale * (v - zero_point))
