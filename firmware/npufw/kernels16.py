"""The 16x8 kernels (int16 activations, int8 weights) in MicroPython viper, bit-exact with
TFLite Micro; arguments as the C binding's *_s16 functions. A module of their own so that a
board pays RAM for them only when a model has a 16x8 op (npufw/interp.py imports it then):
on ports that run viper code from the heap, the int8 models keep the heap they had.
MicroPython only; the pools' 16x8 twins stay in kernels.py, which shares their loop.
"""
import array
import struct

import micropython
from micropython import const

from . import kernels
from .kernels import _f32, _quantized

# ---- 16x8 fully connected ----------------------------------------------------------
# int16 x int8 products reach 2^22, so an int32 sum overflows after 512 of them. Viper sums
# each input's low byte (unsigned) and high byte (signed) apart, each product at most
# 255 * 128, so 65,535 of them fit int32 on every port; Python's integers join the halves,
# add the int64 bias and requantize exactly (TFLM's 64-bit MultiplyByQuantizedMultiplier).

_CHUNK16 = const(65535)
_acc16 = bytearray(8)


@micropython.viper
def _mac16(inp: ptr8, xb: int, weights: ptr8, wb: int, n: int, acc: ptr32):
    """acc[0] = sum_i low_byte(x_i) * w_i, acc[1] = sum_i high_byte(x_i) * w_i."""
    lo = 0
    hi = 0
    for i in range(n):
        w = (weights[wb + i] ^ 0x80) - 0x80
        j = xb + (i << 1)
        lo += inp[j] * w
        hi += ((inp[j + 1] ^ 0x80) - 0x80) * w
    acc[0] = lo
    acc[1] = hi


def _requantize64(acc, mult, shift):
    """TFLM's MultiplyByQuantizedMultiplier(int64 x, ...), in arbitrary-precision ints."""
    reduced = (mult + 32768) >> 16 if mult < 0x7FFF0000 else 0x7FFF
    total = 15 - shift
    return (acc * reduced + (1 << (total - 1))) >> total


def fully_connected_s16(inp, weights, bias, out, mult, shift, batches, in_depth, out_depth,
                        act_min, act_max):
    """16x8 FULLY_CONNECTED; arguments as the C binding's fully_connected_s16."""
    acc = _acc16
    for o in range(out_depth):
        base = struct.unpack_from("<q", bias, 8 * o)[0] if bias is not None else 0
        m, s = struct.unpack_from("<i", mult, 4 * o)[0], struct.unpack_from("<i", shift, 4 * o)[0]
        for b in range(batches):
            total = base
            i = 0
            while i < in_depth:
                n = min(in_depth - i, _CHUNK16)
                _mac16(inp, 2 * (b * in_depth + i), weights, o * in_depth + i, n, acc)
                lo, hi = struct.unpack_from("<ii", acc, 0)
                total += (hi << 8) + lo
                i += n
            y = min(max(_requantize64(total, m, s), act_min), act_max)
            struct.pack_into("<h", out, 2 * (b * out_depth + o), y)


# ---- 16x8 convolutions: the byte-split sums of fully_connected_s16 per output pixel ----
# k_h * k_w * in_c <= MAX_MACS = 65,535 products per output: one split sum each fits int32.

@micropython.viper
def _conv16_pixel(inp: ptr8, weights: ptr8, lo: ptr32, hi: ptr32, geom: ptr32, y0: int,
                  x0: int, base: int):
    """lo[o], hi[o]: the split sums of output channel o at one pixel; the window's top-left
    at (y0, x0) (may be negative: padding), the image at element `base`. geom: in_h, in_w,
    in_c, out_c, k_h, k_w, dilation_h, dilation_w, depth multiplier (0: CONV_2D)."""
    in_h = geom[0]  # one by one: a tuple assignment would make them objects
    in_w = geom[1]
    in_c = geom[2]
    out_c = geom[3]
    k_h = geom[4]
    k_w = geom[5]
    d_h = geom[6]
    d_w = geom[7]
    dm = geom[8]
    for o in range(out_c):
        sl = 0
        sh = 0
        for ky in range(k_h):
            y = y0 + ky * d_h
            if y < 0 or y >= in_h:
                continue
            for kx in range(k_w):
                x = x0 + kx * d_w
                if x < 0 or x >= in_w:
                    continue
                p = (base + (y * in_w + x) * in_c) << 1
                if dm:
                    j = p + ((o // dm) << 1)
                    w = (weights[(ky * k_w + kx) * out_c + o] ^ 0x80) - 0x80
                    sl += inp[j] * w
                    sh += ((inp[j + 1] ^ 0x80) - 0x80) * w
                else:
                    wb = ((o * k_h + ky) * k_w + kx) * in_c
                    for ic in range(in_c):
                        w = (weights[wb + ic] ^ 0x80) - 0x80
                        j = p + (ic << 1)
                        sl += inp[j] * w
                        sh += ((inp[j + 1] ^ 0x80) - 0x80) * w
        lo[o] = sl
        hi[o] = sh


_geom16 = array.array("i", [0] * 9)


def _conv_s16(inp, weights, bias, out, mult, shift, dm, batches, in_h, in_w, in_c, out_h,
              out_w, out_c, k_h, k_w, s_h, s_w, d_h, d_w, pad_h, pad_w, act_min, act_max):
    kernels._grow(out_c)  # the int8 convolutions' scratch, shared
    lo, hi, g = kernels._acc, kernels._acc2, _geom16
    for k, v in enumerate((in_h, in_w, in_c, out_c, k_h, k_w, d_h, d_w, dm)):
        g[k] = v
    ms = [(struct.unpack_from("<i", mult, 4 * o)[0], struct.unpack_from("<i", shift, 4 * o)[0],
           struct.unpack_from("<q", bias, 8 * o)[0] if bias is not None else 0)
          for o in range(out_c)]
    pos = 0
    for b in range(batches):
        for oy in range(out_h):
            for ox in range(out_w):
                _conv16_pixel(inp, weights, lo, hi, g, oy * s_h - pad_h, ox * s_w - pad_w,
                              b * in_h * in_w * in_c)
                for o in range(out_c):
                    m, s, base = ms[o]
                    total = (struct.unpack_from("<i", hi, 4 * o)[0] << 8) + struct.unpack_from(
                        "<i", lo, 4 * o)[0] + base
                    y = min(max(_requantize64(total, m, s), act_min), act_max)
                    struct.pack_into("<h", out, pos, y)
                    pos += 2


def conv2d_s16(inp, weights, bias, out, mult, shift, batches, in_h, in_w, in_c, out_h, out_w,
               out_c, k_h, k_w, s_h, s_w, d_h, d_w, pad_h, pad_w, act_min, act_max):
    """16x8 CONV_2D; arguments as the C binding's conv2d_s16."""
    _conv_s16(inp, weights, bias, out, mult, shift, 0, batches, in_h, in_w, in_c, out_h, out_w,
              out_c, k_h, k_w, s_h, s_w, d_h, d_w, pad_h, pad_w, act_min, act_max)


def depthwise_conv2d_s16(inp, weights, bias, out, mult, shift, batches, in_h, in_w, in_c,
                         out_h, out_w, dm, k_h, k_w, s_h, s_w, d_h, d_w, pad_h, pad_w, act_min,
                         act_max):
    """16x8 DEPTHWISE_CONV_2D; arguments as the C binding's depthwise_conv2d_s16."""
    _conv_s16(inp, weights, bias, out, mult, shift, dm, batches, in_h, in_w, in_c, out_h,
              out_w, in_c * dm, k_h, k_w, s_h, s_w, d_h, d_w, pad_h, pad_w, act_min, act_max)


def quantize_s16(inp, out, n, scale, zero_point):
    """float32 -> int16, as quantize."""
    f = _f32
    f[0] = scale
    scale = f[0]
    for i in range(n):
        struct.pack_into("<h", out, 2 * i, _quantized(f, struct.unpack_from("<f", inp, 4 * i)[0],
                                                      scale, zero_point, -32768, 32767))


def dequantize_s16(inp, out, n, scale, zero_point):
    """int16 -> float32, as dequantize: a float32 times a 17-bit integer is exact in double
    and in float32 arithmetic's single rounding alike."""
    f = _f32
    f[0] = scale
    scale = f[0]
    for i in range(n):
        struct.pack_into("<f", out, 4 * i, scale * (struct.unpack_from("<h", inp, 2 * i)[0]
                                                    - zero_point))


# ---- 16x8 ADD and MUL: the int8 kernels' requantization on int16 loads and stores --------
# Zero points are 0 (no offsets); |x| << 15 and |x1 * x2| reach 2^30 at most: int32 on
# every port.

@micropython.viper
def _ew_load16(inp: ptr8, base: int, stride: int, n: int, left_shift: int, acc: ptr32):
    """acc[i] = int16 element (base + i * stride) << left_shift."""
    for i in range(n):
        j = (base + i * stride) << 1
        acc[i] = (inp[j] | (((inp[j + 1] ^ 0x80) - 0x80) << 8)) << left_shift


@micropython.viper
def _ew_mul16(a: ptr8, abase: int, sa: int, b: ptr8, bbase: int, sb: int, n: int, acc: ptr32):
    for i in range(n):
        j = (abase + i * sa) << 1
        k = (bbase + i * sb) << 1
        acc[i] = ((a[j] | (((a[j + 1] ^ 0x80) - 0x80) << 8))
                  * (b[k] | (((b[k + 1] ^ 0x80) - 0x80) << 8)))


@micropython.viper
def _store16(acc: ptr32, out: ptr8, out_base: int, n: int, act_min: int, act_max: int):
    """int16 element out_base + o = clamp(acc[o], act_min, act_max)."""
    for o in range(n):
        x = int(acc[o])
        x = (((((x >> 16) & 0xFFFF) ^ 0x8000) - 0x8000) << 16) | (x & 0xFFFF)  # sign, any word
        if x < act_min:
            x = act_min
        elif x > act_max:
            x = act_max
        j = (out_base + o) << 1
        out[j] = x
        out[j + 1] = x >> 8


def add_s16(in1, in2, out, d0, d1, d2, d3, a0, a1, a2, a3, b0, b1, b2, b3, left_shift,
            input1_multiplier, input1_shift, input2_multiplier, input2_shift,
            output_multiplier, output_shift, act_min, act_max):
    """16x8 ADD; arguments as the C binding's add_s16."""
    kernels._grow(d3)
    acc, acc2, w = kernels._acc, kernels._acc2, kernels._word
    m1, s1 = w(0, input1_multiplier), w(1, input1_shift)
    m2, s2 = w(2, input2_multiplier), w(3, input2_shift)
    mo, so = w(4, output_multiplier), w(5, output_shift)
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                _ew_load16(in1, i0 * a0 + i1 * a1 + i2 * a2, a3, d3, left_shift, acc)
                _ew_load16(in2, i0 * b0 + i1 * b1 + i2 * b2, b3, d3, left_shift, acc2)
                kernels._requantize(acc, d3, m1, s1, 0)
                kernels._requantize(acc2, d3, m2, s2, 0)
                kernels._ew_sum(acc, acc2, d3)
                kernels._requantize(acc, d3, mo, so, 0)
                _store16(acc, out, o, d3, act_min, act_max)
                o += d3


def mul_s16(in1, in2, out, d0, d1, d2, d3, a0, a1, a2, a3, b0, b1, b2, b3, output_multiplier,
            output_shift, act_min, act_max):
    """16x8 MUL; arguments as the C binding's mul_s16."""
    kernels._grow(d3)
    acc = kernels._acc
    mo, so = kernels._word(4, output_multiplier), kernels._word(5, output_shift)
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                _ew_mul16(in1, i0 * a0 + i1 * a1 + i2 * a2, a3, in2, i0 * b0 + i1 * b1 + i2 * b2,
                          b3, d3, acc)
                kernels._requantize(acc, d3, mo, so, 0)
                _store16(acc, out, o, d3, act_min, act_max)
                o += d3


# ---- 16x8 LOGISTIC and TANH: TFLM's interpolation in its sigmoid table ------------------
# |x * mult| + rounding <= 2^30 + 2^29 (mult <= 32767, left_shift <= 30: interp checks) and
# every later value stays within 2^26 for TFLM's increasing table: int32 on every port.

@micropython.viper
def _sigmoid16(inp: ptr8, table: ptr8, out: ptr8, n: int, mult: int, left_shift: int,
               tanh: int):
    rnd = (1 << (left_shift - 1)) if left_shift > 0 else 0
    step = 8 if tanh else 9
    mask = (1 << step) - 1
    for i in range(n):
        j = i << 1
        x = ((inp[j] | (((inp[j + 1] ^ 0x80) - 0x80) << 8)) * mult + rnd) >> left_shift
        ax = x if x >= 0 else 0 - x
        k = ax >> step
        if k >= 255:
            r = (0xFFFF << 8) if tanh else (0x7FFF << 10)
        else:
            a = table[k << 1] | (table[(k << 1) + 1] << 8)
            b = table[(k << 1) + 2] | (table[(k << 1) + 3] << 8)
            r = (a << step) + (ax & mask) * (b - a)
        if tanh:
            r = (r - (1 << 23) + 128) if x >= 0 else ((1 << 23) + 127 - r)
            r = r >> 8
        else:
            r = (r + 512) if x >= 0 else ((1 << 25) + 511 - r)
            r = r >> 10
        out[j] = r
        out[j + 1] = r >> 8


def logistic_s16(inp, table, out, n, input_multiplier, input_left_shift):
    """16x8 LOGISTIC; arguments as the C binding's logistic_s16."""
    _sigmoid16(inp, table, out, n, input_multiplier, input_left_shift, 0)


def tanh_s16(inp, table, out, n, input_multiplier, input_left_shift):
    """16x8 TANH; arguments as the C binding's tanh_s16."""
    _sigmoid16(inp, table, out, n, input_multiplier, input_left_shift, 1)


# ---- 16x8 MEAN: int16 sums in int32 (in_h * in_w <= 65535: interp checks) --------------

@micropython.viper
def _mean_sums16(inp: ptr8, base: int, count: int, ch: int, acc: ptr32):
    """acc[c] = sum_k int16 element (base + k * ch + c)."""
    for c in range(ch):
        s = 0
        p = (base + c) << 1
        step = ch << 1
        for k in range(count):
            s += inp[p] | (((inp[p + 1] ^ 0x80) - 0x80) << 8)
            p += step
        acc[c] = s


def mean_s16(inp, out, batches, in_h, in_w, channels, multiplier, shift):
    """16x8 MEAN over height and width; arguments as the C binding's mean_s16."""
    kernels._grow(channels)
    acc = kernels._acc
    mo, so = kernels._word(4, multiplier), kernels._word(5, shift)
    count = in_h * in_w
    for b in range(batches):
        _mean_sums16(inp, b * count * channels, count, channels, acc)
        kernels._requantize(acc, channels, mo, so, 0)
        _store16(acc, out, b * channels, channels, -32768, 32767)


# ---- 16x8 SOFTMAX: TFLM's two interpolated tables ------------------------------------
# Every value stays in int32: differences of int16s rescaled by _requantize, a sum of at most
# 65,535 exps of 32767 (interp checks depth), and exp * reciprocal <= 2^30.

@micropython.viper
def _lookup16(value: int, lut: ptr8) -> int:
    """TFLM's int16 table lookup, value in [-32768, 32767]."""
    i = (256 + (value >> 7)) << 1
    base = lut[i] | (((lut[i + 1] ^ 0x80) - 0x80) << 8)
    nxt = lut[i + 2] | (((lut[i + 3] ^ 0x80) - 0x80) << 8)
    slope = (((nxt - base) & 0xFFFF) ^ 0x8000) - 0x8000
    r = base + ((slope * (value & 0x7F) + 64) >> 7)
    return (((r & 0xFFFF) ^ 0x8000) - 0x8000)


@micropython.viper
def _softmax16_diffs(inp: ptr8, base: int, depth: int, acc: ptr32):
    """acc[c] = x[c] - max of the row."""
    mx = -32768
    for c in range(depth):
        j = (base + c) << 1
        v = inp[j] | (((inp[j + 1] ^ 0x80) - 0x80) << 8)
        if v > mx:
            mx = v
    for c in range(depth):
        j = (base + c) << 1
        acc[c] = (inp[j] | (((inp[j + 1] ^ 0x80) - 0x80) << 8)) - mx


@micropython.viper
def _softmax16_exps(acc: ptr32, depth: int, exp_lut: ptr8) -> int:
    """acc[c] = exp table at the rescaled difference; returns their sum."""
    total = 0
    for c in range(depth):
        x = int(acc[c])
        x = (((((x >> 16) & 0xFFFF) ^ 0x8000) - 0x8000) << 16) | (x & 0xFFFF)  # sign, any word
        x += 32767
        if x < -32768:
            x = -32768
        elif x > 32767:
            x = 32767
        i = (256 + (x >> 7)) << 1  # _lookup16, inline: a viper call per value would cost more
        base = exp_lut[i] | (((exp_lut[i + 1] ^ 0x80) - 0x80) << 8)
        nxt = exp_lut[i + 2] | (((exp_lut[i + 3] ^ 0x80) - 0x80) << 8)
        slope = (((nxt - base) & 0xFFFF) ^ 0x8000) - 0x8000
        e = base + ((slope * (x & 0x7F) + 64) >> 7)
        e = (((e & 0xFFFF) ^ 0x8000) - 0x8000)
        acc[c] = e
        total += e
    return total


@micropython.viper
def _softmax16_out(acc: ptr32, depth: int, recip: int, right_shift: int, out: ptr8, base: int):
    rnd = (1 << (right_shift - 1)) if right_shift > 0 else 0
    for c in range(depth):
        x = int(acc[c])
        x = (((((x >> 16) & 0xFFFF) ^ 0x8000) - 0x8000) << 16) | (x & 0xFFFF)
        v = (x * recip + rnd) >> right_shift
        if v < 0:
            v = 0
        elif v > 32767:
            v = 32767
        j = (base + c) << 1
        out[j] = v
        out[j + 1] = v >> 8


def softmax_s16(inp, out, exp_lut, recip_lut, rows, depth, input_multiplier, input_shift):
    """16x8 SOFTMAX; arguments as the C binding's softmax_s16."""
    kernels._grow(depth)
    acc = kernels._acc
    mo, so = kernels._word(4, input_multiplier), kernels._word(5, input_shift)
    for r in range(rows):
        _softmax16_diffs(inp, r * depth, depth, acc)
        kernels._requantize(acc, depth, mo, so, 0)
        total = _softmax16_exps(acc, depth, exp_lut)
        clz = 1  # leading zeros of the uint32 sum, within [1, 31] as the C kernel's
        while clz < 31 and 0 <= total < (1 << (31 - clz)):
            clz += 1
        shifted = (total * (1 << (clz - 1)) + (1 << 13)) >> 14
        recip = _lookup16(min(max(shifted - (1 << 15) - (1 << 16), -32768), 32767), recip_lut)
        _softmax16_out(acc, depth, recip, 31 - clz, out, r * depth)


# ---- 16x8 RELU, RELU6, LEAKY_RELU: two rescales by sign, then a clamp ------------------
# Requantizing 0 gives 0 for any multiplier: x = max(x, 0) + min(x, 0), each rescaled by its
# own pair in chunks of the shared scratch, summed.

_CHUNK = const(256)


@micropython.viper
def _split16(inp: ptr8, base: int, n: int, pos: ptr32, neg: ptr32):
    for i in range(n):
        j = (base + i) << 1
        x = inp[j] | (((inp[j + 1] ^ 0x80) - 0x80) << 8)
        if x >= 0:
            pos[i] = x
            neg[i] = 0
        else:
            pos[i] = 0
            neg[i] = x


def rescale_s16(inp, out, n, pos_multiplier, pos_shift, neg_multiplier, neg_shift, act_min,
                act_max):
    """16x8 RELU, RELU6, LEAKY_RELU; arguments as the C binding's rescale_s16."""
    kernels._grow(_CHUNK)
    pos, neg, w = kernels._acc, kernels._acc2, kernels._word
    mp, sp, mn, sn = w(0, pos_multiplier), w(1, pos_shift), w(2, neg_multiplier), w(3, neg_shift)
    for i in range(0, n, _CHUNK):
        k = min(_CHUNK, n - i)
        _split16(inp, i, k, pos, neg)
        kernels._requantize(pos, k, mp, sp, 0)
        kernels._requantize(neg, k, mn, sn, 0)
        kernels._ew_sum(pos, neg, k)
        _store16(pos, out, i, k, act_min, act_max)


# ---- QUANTIZE between int8 and int16 (models mixing int8 and 16x8 layers) --------------

@micropython.viper
def lut_s8_s16(inp: ptr8, table: ptr8, out: ptr8, n: int):
    """out[i] = table[inp[i] + 128], int16 table and output; arguments as the C binding's."""
    for i in range(n):
        j = (inp[i] ^ 0x80) << 1
        out[i << 1] = table[j]
        out[(i << 1) + 1] = table[j + 1]


def requantize_s16_s8(inp, out, n, multiplier, shift, output_offset):
    """int16 (zero point 0) -> int8 as TFLM's Requantize; arguments as the C binding's."""
    kernels._grow(_CHUNK)
    acc = kernels._acc
    m, s = kernels._word(4, multiplier), kernels._word(5, shift)
    for i in range(0, n, _CHUNK):
        k = min(_CHUNK, n - i)
        _ew_load16(inp, i, 1, k, 0, acc)
        kernels._requantize(acc, k, m, s, 0)
        kernels._store(acc, out, i, k, output_offset, -128, 127)
