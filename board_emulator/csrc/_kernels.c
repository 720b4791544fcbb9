/* _kernels.c - thin CPython binding for npu_kernels.{c,h}: npu_emulator._kernels.
 *
 * Every function checks each buffer (kind, element type, byte length,
 * alignment, writability) and every size against the others before any kernel
 * touches memory, then releases the GIL around the plain-C call. Buffers are
 * anything with the buffer protocol: bytes, bytearray, memoryview, numpy arrays.
 * Typed buffers must hold the expected element type; untyped byte buffers
 * (format 'B', 'b' or 'c') are taken as raw little-endian bytes. What each call needs (its
 * scalars' ranges, its buffers' sizes) is npu_checks.c's word, shared with the MicroPython
 * binding (firmware/native/npu_module.c); this file adds what only CPython has: formats.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "npu_checks.h"
#include "npu_kernels.h"

/* The 16x8 kernels' calls are checked here, with npu_checks.c's scalar checks (they are not
 * in the native module yet; when they join it, their checks move into npu_checks.c). */
#define ELEM_I8 NPU_I8
#define ELEM_I32 NPU_I32
#define ELEM_F32 NPU_F32
#define ELEM_I16 NPU_I16
#define ELEM_I64 NPU_I64
typedef npu_elem elem_kind;

/* The buffers one call holds; released together on every path. */
typedef struct {
    Py_buffer views[6];
    int count;
} buffer_set;

static void release_all(buffer_set *set) {
    while (set->count > 0) {
        PyBuffer_Release(&set->views[--set->count]);
    }
}

/* ---- exception chaining (keeps the exporter's own message as the cause) --- */

static PyObject *take_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

static void restore_exception(PyObject *exc) {
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* Raise `type(message)` with `cause` (stolen, may be NULL) as __cause__. */
static void raise_from(PyObject *type, PyObject *cause, const char *format, ...) {
    va_list args;
    PyObject *exc;
    va_start(args, format);
    PyErr_FormatV(type, format, args);
    va_end(args);
    if (cause == NULL) {
        return;
    }
    exc = take_exception();
    if (exc == NULL) {
        Py_DECREF(cause);
        return;
    }
    Py_INCREF(cause);
    PyException_SetContext(exc, cause);
    PyException_SetCause(exc, cause);
    restore_exception(exc);
}

/* ---- buffer acquisition --------------------------------------------------- */

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Element type check: raw byte formats always pass; typed buffers must match. */
static int check_format(const Py_buffer *view, const char *name, npu_elem kind) {
    const char *format = view->format != NULL ? view->format : "B";
    const char *code = format;
    if (*code == '@' || *code == '=' || (*code == '<' && host_is_little_endian()) ||
        ((*code == '>' || *code == '!') && !host_is_little_endian())) {
        ++code;
    }
    if (code[0] != '\0' && code[1] == '\0') {
        const char c = code[0];
        if ((c == 'B' || c == 'b' || c == 'c') && view->itemsize == 1) {
            return 0;
        }
        if (kind == NPU_I32 && (c == 'i' || c == 'l') && view->itemsize == 4) {
            return 0;
        }
        if (kind == NPU_F32 && c == 'f' && view->itemsize == 4) {
            return 0;
        }
        if (kind == ELEM_I16 && c == 'h' && view->itemsize == 2) {
            return 0;
        }
        if (kind == ELEM_I64 && (c == 'q' || c == 'l') && view->itemsize == 8) {
            return 0;
        }
    }
    PyErr_Format(PyExc_TypeError,
                 "%s: expected %s elements (or raw bytes), got a buffer of format '%s' "
                 "(itemsize %zd); convert it, e.g. numpy.asarray(%s, dtype=numpy.%s)",
                 name, npu_elem_names[kind], format, view->itemsize, name, npu_elem_names[kind]);
    return -1;
}

/* Acquire `obj` as a C-contiguous buffer holding at least `count` elements of
 * `kind`. On failure an exception naming `name` is set, and nothing is held. */
static const Py_buffer *acquire(buffer_set *set, PyObject *obj, const char *name,
                                npu_elem kind, int writable, long long count) {
    Py_buffer *view = &set->views[set->count];
    /* C_CONTIGUOUS implies ND, without which memoryview refuses PyBUF_FORMAT. */
    const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);

    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected a buffer (bytes, bytearray, memoryview or numpy array) "
                     "of %s, got %.200s",
                     name, npu_elem_names[kind], Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyObject *cause = take_exception();
        if (writable) {
            /* Tell "read-only" apart from other refusals with a read-only probe. */
            Py_buffer probe;
            if (PyObject_GetBuffer(obj, &probe, PyBUF_SIMPLE) == 0) {
                const int readonly = probe.readonly;
                PyBuffer_Release(&probe);
                if (readonly) {
                    raise_from(PyExc_TypeError, cause,
                               "%s: the output buffer is read-only (%.200s); pass a writable "
                               "buffer such as a bytearray or a writable numpy array",
                               name, Py_TYPE(obj)->tp_name);
                    return NULL;
                }
            } else {
                PyErr_Clear();
            }
        }
        raise_from(PyExc_ValueError, cause,
                   "%s: cannot use this %.200s as a flat C-contiguous buffer; pass "
                   "a contiguous copy (e.g. numpy.ascontiguousarray)",
                   name, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    set->count++; /* held from here on: every error below is released by the caller */
    if (writable && view->readonly) {
        PyErr_Format(PyExc_TypeError, "%s: the output buffer is read-only (%.200s)", name,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if (check_format(view, name, kind) < 0) {
        return NULL;
    }
    {
        const npu_need n = {name, kind, writable, 0, count};
        npu_err e;
        if (npu_check_buffer(&e, &n, (long long)view->len, (uintptr_t)view->buf) < 0) {
            PyErr_SetString(PyExc_ValueError, e.msg);
            return NULL;
        }
    }
    return view;
}

/* Raise npu_checks' refusal as ValueError: -1 for int callers, NULL via raise_null. */
static int raise_err(const npu_err *e) {
    PyErr_SetString(PyExc_ValueError, e->msg);
    return -1;
}

static PyObject *raise_null(const npu_err *e) {
    raise_err(e);
    return NULL;
}

static int check_range(const char *name, long long value, long long lo, long long hi) {
    npu_err e;
    return npu_check_range(&e, name, value, lo, hi) < 0 ? raise_err(&e) : 0;
}


/* The call's buffers objs[0..n-1], each checked against its need (npu_args_*): NULL for an
 * optional one given as None. On failure an exception is set and nothing is held. */
static int acquire_needs(buffer_set *set, PyObject *const *objs, const npu_need *needs, int n,
                         const Py_buffer **views) {
    for (int i = 0; i < n; ++i) {
        if (needs[i].optional && objs[i] == Py_None) {
            views[i] = NULL;
        } else if ((views[i] = acquire(set, objs[i], needs[i].name, needs[i].kind,
                                       needs[i].writable, needs[i].count)) == NULL) {
            release_all(set);
            return -1;
        }
    }
    return 0;
}

/* Per-channel shifts (views[5] of a MAC kernel) in range, else released and raised. */
static int check_shifts(buffer_set *set, const Py_buffer *shift, int32_t n) {
    npu_err e;
    if (npu_check_shifts(&e, (const int32_t *)shift->buf, n) < 0) {
        release_all(set);
        return raise_err(&e);
    }
    return 0;
}

/* ---- scratch memory for the SIMD kernels ------------------------------------ */

/* Scratch for one kernel call, or NULL: without it the kernel runs its portable
 * code, so an allocation failure costs speed, never the answer. */
static void *scratch_alloc(size_t size) {
    return size > 0 ? PyMem_RawMalloc(size) : NULL;
}

static void scratch_free(void *scratch) {
    PyMem_RawFree(scratch);
}

/* ---- functions ------------------------------------------------------------- */

PyDoc_STRVAR(fully_connected_doc,
"fully_connected(inp, weights, bias_or_None, out, mult, shift, batches, in_depth,\n"
"                out_depth, input_offset, output_offset, act_min, act_max)\n"
"--\n\n"
"int8 fully connected layer, bit-exact with TFLite Micro. inp: int8[batches*in_depth],\n"
"weights: int8[out_depth*in_depth], bias: int32[out_depth] or None,\n"
"out: writable int8[batches*out_depth], mult/shift: int32[out_depth], or int32[1]\n"
"each for per-tensor weights (npu_sdk.lower.fully_connected_params).");

static PyObject *py_fully_connected(PyObject *self, PyObject *args) {
    PyObject *inp_obj, *w_obj, *bias_obj, *out_obj, *mult_obj, *shift_obj;
    int batches, in_depth, out_depth, input_offset, output_offset, act_min, act_max;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *w, *bias, *out, *mult, *shift, *v[6];
    npu_need needs[6];
    npu_err e;
    int n, pairs;
    int32_t *rows = NULL;
    void *scratch;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOOOOOiiiiiii:fully_connected", &inp_obj, &w_obj, &bias_obj,
                          &out_obj, &mult_obj, &shift_obj, &batches, &in_depth, &out_depth,
                          &input_offset, &output_offset, &act_min, &act_max)) {
        return NULL;
    }
    PyObject *const objs[6] = {inp_obj, w_obj, bias_obj, out_obj, mult_obj, shift_obj};
    if ((n = npu_args_fully_connected(&e, needs, batches, in_depth, out_depth, input_offset,
                                      act_min, act_max)) < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, n, v) < 0) {
        return NULL;
    }
    inp = v[0], w = v[1], bias = v[2], out = v[3], mult = v[4], shift = v[5];
    if ((pairs = npu_fc_pairs(&e, needs, mult->len, shift->len, out_depth)) < 0) {
        release_all(&set);
        return raise_null(&e);
    }
    if (check_shifts(&set, shift, pairs) < 0) {
        return NULL;
    }
    /* The kernels take a pair per row: a shared pair is repeated here, per call, so the
     * blob stores it once. */
    if (pairs == 1 && out_depth > 1) {
        rows = PyMem_RawMalloc(2 * sizeof(int32_t) * (size_t)out_depth);
        if (rows == NULL) {
            release_all(&set);
            return PyErr_NoMemory();
        }
        for (int o = 0; o < out_depth; ++o) {
            rows[o] = *(const int32_t *)mult->buf;
            rows[out_depth + o] = *(const int32_t *)shift->buf;
        }
    }
    scratch = scratch_alloc(npu_fully_connected_scratch_size(batches, in_depth, out_depth));
    Py_BEGIN_ALLOW_THREADS
    npu_fully_connected((const int8_t *)inp->buf, (const int8_t *)w->buf,
                        bias != NULL ? (const int32_t *)bias->buf : NULL, (int8_t *)out->buf,
                        rows != NULL ? rows : (const int32_t *)mult->buf,
                        rows != NULL ? rows + out_depth : (const int32_t *)shift->buf, batches,
                        in_depth, out_depth, input_offset, output_offset, act_min, act_max,
                        scratch);
    Py_END_ALLOW_THREADS
    scratch_free(scratch);
    PyMem_RawFree(rows);
    release_all(&set);
    Py_RETURN_NONE;
}

/* The 16x8 requantization's values (npu_check_requant_s16), once the buffers are held. */
static int check_requant_s16(const Py_buffer *mult, const Py_buffer *shift,
                             const Py_buffer *bias, int n) {
    npu_err e;
    return npu_check_requant_s16(&e, (const int32_t *)mult->buf, (const int32_t *)shift->buf,
                                 bias != NULL ? (const int64_t *)bias->buf : NULL, n) < 0
               ? raise_err(&e)
               : 0;
}

PyDoc_STRVAR(fully_connected_s16_doc,
"fully_connected_s16(inp, weights, bias_or_None, out, mult, shift, batches, in_depth,\n"
"                    out_depth, act_min, act_max)\n"
"--\n\n"
"16x8 fully connected layer, bit-exact with TFLite Micro. inp: int16[batches*in_depth]\n"
"(zero point 0), weights: int8[out_depth*in_depth], bias: int64[out_depth] or None,\n"
"out: writable int16[batches*out_depth], mult/shift: int32[out_depth].");

static PyObject *py_fully_connected_s16(PyObject *self, PyObject *args) {
    PyObject *objs[6];
    int batches, in_depth, out_depth, act_min, act_max;
    buffer_set set = {.count = 0};
    const Py_buffer *v[6];
    npu_need needs[6];
    npu_err e;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOOOOOiiiii:fully_connected_s16", &objs[0], &objs[1], &objs[2],
                          &objs[3], &objs[4], &objs[5], &batches, &in_depth, &out_depth,
                          &act_min, &act_max)) {
        return NULL;
    }
    const int n = npu_args_fully_connected_s16(&e, needs, batches, in_depth, out_depth, act_min,
                                               act_max);
    if (n < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, n, v) < 0) {
        return NULL;
    }
    if (check_requant_s16(v[4], v[5], v[2], out_depth) < 0) {
        release_all(&set);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_fully_connected_s16((const int16_t *)v[0]->buf, (const int8_t *)v[1]->buf,
                            v[2] != NULL ? (const int64_t *)v[2]->buf : NULL,
                            (int16_t *)v[3]->buf, (const int32_t *)v[4]->buf,
                            (const int32_t *)v[5]->buf, batches, in_depth, out_depth, act_min,
                            act_max);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(softmax_doc,
"softmax(inp, out, rows, depth, input_multiplier, input_left_shift, diff_min)\n"
"--\n\n"
"int8 softmax over the last axis, output scale 1/256 and zero point -128,\n"
"bit-exact with TFLite Micro. Parameters from npu_sdk.lower.softmax_params.");

static PyObject *py_softmax(PyObject *self, PyObject *args) {
    PyObject *inp_obj, *out_obj;
    int rows, depth, input_multiplier, input_left_shift, diff_min;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *out;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOiiiii:softmax", &inp_obj, &out_obj, &rows, &depth,
                          &input_multiplier, &input_left_shift, &diff_min)) {
        return NULL;
    }
    PyObject *const objs[2] = {inp_obj, out_obj};
    const Py_buffer *v[2];
    npu_need needs[2];
    npu_err e;
    int n = npu_args_softmax(&e, needs, rows, depth, input_left_shift, diff_min);
    if (n < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, n, v) < 0) {
        return NULL;
    }
    inp = v[0], out = v[1];
    Py_BEGIN_ALLOW_THREADS
    npu_softmax_s8((const int8_t *)inp->buf, (int8_t *)out->buf, rows, depth, input_multiplier,
                   input_left_shift, diff_min);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

static int check_quant_params_range(float scale, int zero_point, int lo, int hi) {
    if (!isfinite(scale) || !(scale > 0.0f)) {
        PyObject *value = PyFloat_FromDouble((double)scale);
        if (value != NULL) {
            PyErr_Format(PyExc_ValueError, "scale must be a finite float32 > 0, got %R", value);
            Py_DECREF(value);
        }
        return -1;
    }
    return check_range("zero_point", zero_point, lo, hi);
}

static int check_quant_params(float scale, int zero_point) {
    return check_quant_params_range(scale, zero_point, -128, 127);
}

PyDoc_STRVAR(quantize_s16_doc,
"quantize_s16(inp, out, n, scale, zero_point)\n"
"--\n\n"
"float32 -> int16 as TFLite Micro QUANTIZE: round(inp / scale) + zero_point, clamped.");

PyDoc_STRVAR(dequantize_s16_doc,
"dequantize_s16(inp, out, n, scale, zero_point)\n"
"--\n\n"
"int16 -> float32 as TFLite Micro DEQUANTIZE: scale * (inp - zero_point).");

/* quantize_s16 (to_float 0) or dequantize_s16 (1) */
static PyObject *convert_s16(PyObject *args, int to_float) {
    PyObject *objs[2];
    int n, zero_point;
    float scale;
    buffer_set set = {.count = 0};
    const Py_buffer *v[2];
    npu_need needs[2];
    npu_err e;

    if (!PyArg_ParseTuple(args, to_float ? "OOifi:dequantize_s16" : "OOifi:quantize_s16",
                          &objs[0], &objs[1], &n, &scale, &zero_point)) {
        return NULL;
    }
    const int count = npu_args_quantize_s16(&e, needs, !to_float, n, scale, zero_point);
    if (count < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, count, v) < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (to_float) {
        npu_dequantize_s16_f32((const int16_t *)v[0]->buf, (float *)v[1]->buf, n, scale,
                               zero_point);
    } else {
        npu_quantize_f32_s16((const float *)v[0]->buf, (int16_t *)v[1]->buf, n, scale, zero_point);
    }
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

static PyObject *py_quantize_s16(PyObject *self, PyObject *args) {
    (void)self;
    return convert_s16(args, 0);
}

static PyObject *py_dequantize_s16(PyObject *self, PyObject *args) {
    (void)self;
    return convert_s16(args, 1);
}

PyDoc_STRVAR(quantize_doc,
"quantize(inp, out, n, scale, zero_point)\n"
"--\n\n"
"float32 -> int8 as TFLite Micro QUANTIZE: round(inp / scale) + zero_point, clamped.");

static PyObject *py_quantize(PyObject *self, PyObject *args) {
    PyObject *inp_obj, *out_obj;
    int n, zero_point;
    float scale;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *out;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOifi:quantize", &inp_obj, &out_obj, &n, &scale, &zero_point)) {
        return NULL;
    }
    if (check_quant_params(scale, zero_point) < 0) {
        return NULL;
    }
    {
        PyObject *const objs[2] = {inp_obj, out_obj};
        const Py_buffer *v[2];
        npu_need needs[2];
        npu_err e;
        const int count = npu_args_quantize(&e, needs, 1, n, scale, zero_point);
        if (count < 0) {
            return raise_null(&e);
        }
        if (acquire_needs(&set, objs, needs, count, v) < 0) {
            return NULL;
        }
        inp = v[0], out = v[1];
    }
    Py_BEGIN_ALLOW_THREADS
    npu_quantize_f32_s8((const float *)inp->buf, (int8_t *)out->buf, n, scale, zero_point);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(dequantize_doc,
"dequantize(inp, out, n, scale, zero_point)\n"
"--\n\n"
"int8 -> float32 as TFLite Micro DEQUANTIZE: scale * (inp - zero_point).");

static PyObject *py_dequantize(PyObject *self, PyObject *args) {
    PyObject *inp_obj, *out_obj;
    int n, zero_point;
    float scale;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *out;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOifi:dequantize", &inp_obj, &out_obj, &n, &scale,
                          &zero_point)) {
        return NULL;
    }
    if (check_quant_params(scale, zero_point) < 0) {
        return NULL;
    }
    {
        PyObject *const objs[2] = {inp_obj, out_obj};
        const Py_buffer *v[2];
        npu_need needs[2];
        npu_err e;
        const int count = npu_args_quantize(&e, needs, 0, n, scale, zero_point);
        if (count < 0) {
            return raise_null(&e);
        }
        if (acquire_needs(&set, objs, needs, count, v) < 0) {
            return NULL;
        }
        inp = v[0], out = v[1];
    }
    Py_BEGIN_ALLOW_THREADS
    npu_dequantize_s8_f32((const int8_t *)inp->buf, (float *)out->buf, n, scale, zero_point);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

/* ---- window ops: convolution and pooling ----------------------------------- */

PyDoc_STRVAR(conv2d_doc,
"conv2d(inp, weights, bias_or_None, out, mult, shift, batches, in_h, in_w, in_c, out_h,\n"
"       out_w, out_c, k_h, k_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w,\n"
"       input_offset, output_offset, act_min, act_max)\n"
"--\n\n"
"int8 CONV_2D (NHWC, weights OHWI), bit-exact with TFLite Micro; pad_h/pad_w are the\n"
"top/left padding. Parameters as the blob's CONV_2D op.");

PyDoc_STRVAR(depthwise_conv2d_doc,
"depthwise_conv2d(inp, weights, bias_or_None, out, mult, shift, batches, in_h, in_w, in_c,\n"
"                 out_h, out_w, depth_multiplier, k_h, k_w, stride_h, stride_w, dilation_h,\n"
"                 dilation_w, pad_h, pad_w, input_offset, output_offset, act_min, act_max)\n"
"--\n\n"
"int8 DEPTHWISE_CONV_2D (NHWC, weights [1, k_h, k_w, in_c * depth_multiplier]),\n"
"bit-exact with TFLite Micro.");

static PyObject *conv_common(PyObject *args, int depthwise) {
    PyObject *inp_obj, *w_obj, *bias_obj, *out_obj, *mult_obj, *shift_obj;
    npu_window g = {0};
    int channels, input_offset, output_offset, act_min, act_max;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *w, *bias, *out, *mult, *shift, *v[6];
    npu_need needs[6];
    npu_err e;
    int n;
    void *scratch;

    if (!PyArg_ParseTuple(args, depthwise ? "OOOOOOiiiiiiiiiiiiiiiiiii:depthwise_conv2d"
                                          : "OOOOOOiiiiiiiiiiiiiiiiiii:conv2d",
                          &inp_obj, &w_obj, &bias_obj, &out_obj, &mult_obj, &shift_obj,
                          &g.batches, &g.in_h, &g.in_w, &g.in_c, &g.out_h, &g.out_w, &channels,
                          &g.k_h, &g.k_w, &g.stride_h, &g.stride_w, &g.dilation_h,
                          &g.dilation_w, &g.pad_h, &g.pad_w, &input_offset, &output_offset,
                          &act_min, &act_max)) {
        return NULL;
    }
    PyObject *const objs[6] = {inp_obj, w_obj, bias_obj, out_obj, mult_obj, shift_obj};
    if ((n = npu_args_conv(&e, needs, &g, depthwise, channels, input_offset, act_min,
                           act_max)) < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, n, v) < 0 || check_shifts(&set, v[5], g.out_c) < 0) {
        return NULL;
    }
    inp = v[0], w = v[1], bias = v[2], out = v[3], mult = v[4], shift = v[5];
    scratch = scratch_alloc(depthwise ? npu_depthwise_conv2d_s8_scratch_size(&g)
                                      : npu_conv2d_s8_scratch_size(&g));
    Py_BEGIN_ALLOW_THREADS
    if (depthwise) {
        npu_depthwise_conv2d_s8((const int8_t *)inp->buf, (const int8_t *)w->buf,
                                bias != NULL ? (const int32_t *)bias->buf : NULL,
                                (int8_t *)out->buf, (const int32_t *)mult->buf,
                                (const int32_t *)shift->buf, &g, input_offset, output_offset,
                                act_min, act_max, scratch);
    } else {
        npu_conv2d_s8((const int8_t *)inp->buf, (const int8_t *)w->buf,
                      bias != NULL ? (const int32_t *)bias->buf : NULL, (int8_t *)out->buf,
                      (const int32_t *)mult->buf, (const int32_t *)shift->buf, &g, input_offset,
                      output_offset, act_min, act_max, scratch);
    }
    Py_END_ALLOW_THREADS
    scratch_free(scratch);
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(conv2d_s16_doc,
"conv2d_s16(inp, weights, bias_or_None, out, mult, shift, batches, in_h, in_w, in_c, out_h,\n"
"           out_w, out_c, k_h, k_w, stride_h, stride_w, dilation_h, dilation_w, pad_h,\n"
"           pad_w, act_min, act_max)\n"
"--\n\n"
"16x8 CONV_2D: int16 activations (zero points 0), int8 OHWI weights, int64 bias;\n"
"bit-exact with TFLite Micro. Parameters as the blob's CONV_2D_S16 op.");

PyDoc_STRVAR(depthwise_conv2d_s16_doc,
"depthwise_conv2d_s16(inp, weights, bias_or_None, out, mult, shift, batches, in_h, in_w,\n"
"                     in_c, out_h, out_w, depth_multiplier, k_h, k_w, stride_h, stride_w,\n"
"                     dilation_h, dilation_w, pad_h, pad_w, act_min, act_max)\n"
"--\n\n"
"16x8 DEPTHWISE_CONV_2D, bit-exact with TFLite Micro.");

static PyObject *conv_s16_common(PyObject *args, int depthwise) {
    PyObject *objs[6];
    npu_window g = {0};
    int channels, act_min, act_max;
    buffer_set set = {.count = 0};
    const Py_buffer *v[6];
    npu_need needs[6];
    npu_err e;

    if (!PyArg_ParseTuple(args, depthwise ? "OOOOOOiiiiiiiiiiiiiiiii:depthwise_conv2d_s16"
                                          : "OOOOOOiiiiiiiiiiiiiiiii:conv2d_s16",
                          &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5],
                          &g.batches, &g.in_h, &g.in_w, &g.in_c, &g.out_h, &g.out_w, &channels,
                          &g.k_h, &g.k_w, &g.stride_h, &g.stride_w, &g.dilation_h,
                          &g.dilation_w, &g.pad_h, &g.pad_w, &act_min, &act_max)) {
        return NULL;
    }
    const int n = npu_args_conv_s16(&e, needs, &g, depthwise, channels, act_min, act_max);
    if (n < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, n, v) < 0) {
        return NULL;
    }
    if (check_requant_s16(v[4], v[5], v[2], g.out_c) < 0) {
        release_all(&set);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_conv2d_s16((const int16_t *)v[0]->buf, (const int8_t *)v[1]->buf,
                   v[2] != NULL ? (const int64_t *)v[2]->buf : NULL, (int16_t *)v[3]->buf,
                   (const int32_t *)v[4]->buf, (const int32_t *)v[5]->buf, &g, depthwise,
                   act_min, act_max);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

static PyObject *py_conv2d_s16(PyObject *self, PyObject *args) {
    (void)self;
    return conv_s16_common(args, 0);
}

static PyObject *py_depthwise_conv2d_s16(PyObject *self, PyObject *args) {
    (void)self;
    return conv_s16_common(args, 1);
}

static PyObject *py_conv2d(PyObject *self, PyObject *args) {
    (void)self;
    return conv_common(args, 0);
}

static PyObject *py_depthwise_conv2d(PyObject *self, PyObject *args) {
    (void)self;
    return conv_common(args, 1);
}

PyDoc_STRVAR(average_pool2d_doc,
"average_pool2d(inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,\n"
"               stride_h, stride_w, pad_h, pad_w, act_min, act_max)\n"
"--\n\n"
"int8 AVERAGE_POOL_2D (NHWC), bit-exact with TFLite Micro. Every window must overlap\n"
"the input.");

PyDoc_STRVAR(max_pool2d_doc,
"max_pool2d(inp, out, batches, in_h, in_w, channels, out_h, out_w, k_h, k_w,\n"
"           stride_h, stride_w, pad_h, pad_w, act_min, act_max)\n"
"--\n\n"
"int8 MAX_POOL_2D (NHWC), bit-exact with TFLite Micro.");

/* int8 pools, or their int16 twins (wide = 1) */
static PyObject *pool_common(PyObject *args, int average, int wide) {
    PyObject *inp_obj, *out_obj;
    npu_window g = {0};
    int act_min, act_max;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *out;
    static const char *const formats[2][2] = {
        {"OOiiiiiiiiiiiiii:max_pool2d", "OOiiiiiiiiiiiiii:average_pool2d"},
        {"OOiiiiiiiiiiiiii:max_pool2d_s16", "OOiiiiiiiiiiiiii:average_pool2d_s16"}};

    if (!PyArg_ParseTuple(args, formats[wide][average],
                          &inp_obj, &out_obj, &g.batches, &g.in_h, &g.in_w, &g.in_c, &g.out_h,
                          &g.out_w, &g.k_h, &g.k_w, &g.stride_h, &g.stride_w, &g.pad_h, &g.pad_w,
                          &act_min, &act_max)) {
        return NULL;
    }
    {
        PyObject *const objs[2] = {inp_obj, out_obj};
        const Py_buffer *v[2];
        npu_need needs[2];
        npu_err e;
        const int n = npu_args_pool(&e, needs, &g, act_min, act_max, wide);
        if (n < 0) {
            return raise_null(&e);
        }
        if (acquire_needs(&set, objs, needs, n, v) < 0) {
            return NULL;
        }
        inp = v[0], out = v[1];
    }
    Py_BEGIN_ALLOW_THREADS
    if (wide && average) {
        npu_average_pool2d_s16((const int16_t *)inp->buf, (int16_t *)out->buf, &g, act_min,
                               act_max);
    } else if (wide) {
        npu_max_pool2d_s16((const int16_t *)inp->buf, (int16_t *)out->buf, &g, act_min, act_max);
    } else if (average) {
        npu_average_pool2d_s8((const int8_t *)inp->buf, (int8_t *)out->buf, &g, act_min, act_max);
    } else {
        npu_max_pool2d_s8((const int8_t *)inp->buf, (int8_t *)out->buf, &g, act_min, act_max);
    }
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

static PyObject *py_average_pool2d(PyObject *self, PyObject *args) {
    (void)self;
    return pool_common(args, 1, 0);
}

static PyObject *py_max_pool2d(PyObject *self, PyObject *args) {
    (void)self;
    return pool_common(args, 0, 0);
}

static PyObject *py_average_pool2d_s16(PyObject *self, PyObject *args) {
    (void)self;
    return pool_common(args, 1, 1);
}

static PyObject *py_max_pool2d_s16(PyObject *self, PyObject *args) {
    (void)self;
    return pool_common(args, 0, 1);
}

/* ---- elementwise ADD / MUL ---------------------------------------------------- */

PyDoc_STRVAR(add_doc,
"add(in1, in2, out, d0, d1, d2, d3, in1_s0, in1_s1, in1_s2, in1_s3, in2_s0, in2_s1,\n"
"    in2_s2, in2_s3, input1_offset, input2_offset, left_shift, input1_multiplier,\n"
"    input1_shift, input2_multiplier, input2_shift, output_multiplier, output_shift,\n"
"    output_offset, act_min, act_max)\n"
"--\n\n"
"int8 ADD over a 4-D output [d0..d3] with broadcasting strides (0 repeats an input),\n"
"bit-exact with TFLite Micro. Parameters from npu_sdk.lower.add_params.");

PyDoc_STRVAR(mul_doc,
"mul(in1, in2, out, d0, d1, d2, d3, in1_s0, in1_s1, in1_s2, in1_s3, in2_s0, in2_s1,\n"
"    in2_s2, in2_s3, input1_offset, input2_offset, output_multiplier, output_shift,\n"
"    output_offset, act_min, act_max)\n"
"--\n\n"
"int8 MUL over a 4-D output with broadcasting strides, bit-exact with TFLite Micro.");

PyDoc_STRVAR(add_s16_doc,
"add_s16(in1, in2, out, d0, d1, d2, d3, in1_s0, in1_s1, in1_s2, in1_s3, in2_s0, in2_s1,\n"
"        in2_s2, in2_s3, left_shift, input1_multiplier, input1_shift, input2_multiplier,\n"
"        input2_shift, output_multiplier, output_shift, act_min, act_max)\n"
"--\n\n"
"16x8 ADD: int16 in and out, zero points 0, bit-exact with TFLite Micro.");

PyDoc_STRVAR(mul_s16_doc,
"mul_s16(in1, in2, out, d0, d1, d2, d3, in1_s0, in1_s1, in1_s2, in1_s3, in2_s0, in2_s1,\n"
"        in2_s2, in2_s3, output_multiplier, output_shift, act_min, act_max)\n"
"--\n\n"
"16x8 MUL: int16 in and out, zero points 0, bit-exact with TFLite Micro.");

/* add_s16 / mul_s16: the int8 calls without the offsets (zero points 0). */
static int parse_elementwise_s16(PyObject *args, int is_add, PyObject **a, PyObject **b,
                                 PyObject **out, npu_arith *p) {
    int32_t *d = p->dims, *s1 = p->strides1, *s2 = p->strides2;
    if (is_add) {
        return PyArg_ParseTuple(args, "OOO" "iiii" "iiii" "iiii" "iiiiiiiii:add_s16", a, b, out,
                                &d[0], &d[1], &d[2], &d[3], &s1[0], &s1[1], &s1[2], &s1[3],
                                &s2[0], &s2[1], &s2[2], &s2[3], &p->left_shift,
                                &p->input1_multiplier, &p->input1_shift, &p->input2_multiplier,
                                &p->input2_shift, &p->output_multiplier, &p->output_shift,
                                &p->act_min, &p->act_max);
    }
    return PyArg_ParseTuple(args, "OOO" "iiii" "iiii" "iiii" "iiii:mul_s16", a, b, out,
                            &d[0], &d[1], &d[2], &d[3], &s1[0], &s1[1], &s1[2], &s1[3],
                            &s2[0], &s2[1], &s2[2], &s2[3], &p->output_multiplier,
                            &p->output_shift, &p->act_min, &p->act_max);
}

static PyObject *elementwise_common(PyObject *args, int is_add, int wide) {
    PyObject *a_obj, *b_obj, *out_obj;
    npu_arith p;
    int32_t *d = p.dims, *s1 = p.strides1, *s2 = p.strides2;
    memset(&p, 0, sizeof p);
    buffer_set set = {.count = 0};
    const Py_buffer *a, *b, *out;
    int ok;

    if (wide) {
        ok = parse_elementwise_s16(args, is_add, &a_obj, &b_obj, &out_obj, &p);
    } else if (is_add) {
        ok = PyArg_ParseTuple(args, "OOO" "iiii" "iiii" "iiii" "iiiiiiiiiiii:add", &a_obj, &b_obj, &out_obj,
                              &d[0], &d[1], &d[2], &d[3], &s1[0], &s1[1], &s1[2], &s1[3],
                              &s2[0], &s2[1], &s2[2], &s2[3], &p.input1_offset,
                              &p.input2_offset, &p.left_shift, &p.input1_multiplier,
                              &p.input1_shift, &p.input2_multiplier, &p.input2_shift,
                              &p.output_multiplier, &p.output_shift, &p.output_offset,
                              &p.act_min, &p.act_max);
    } else {
        ok = PyArg_ParseTuple(args, "OOO" "iiii" "iiii" "iiii" "iiiiiii:mul", &a_obj, &b_obj, &out_obj,
                              &d[0], &d[1], &d[2], &d[3], &s1[0], &s1[1], &s1[2], &s1[3],
                              &s2[0], &s2[1], &s2[2], &s2[3], &p.input1_offset,
                              &p.input2_offset, &p.output_multiplier, &p.output_shift,
                              &p.output_offset, &p.act_min, &p.act_max);
    }
    if (!ok) {
        return NULL;
    }
    {
        PyObject *const objs[3] = {a_obj, b_obj, out_obj};
        const Py_buffer *v[3];
        npu_need needs[3];
        npu_err e;
        const int n = wide ? npu_args_arith_s16(&e, needs, &p, is_add)
                           : npu_args_arith(&e, needs, &p, is_add);
        if (n < 0) {
            return raise_null(&e);
        }
        if (acquire_needs(&set, objs, needs, n, v) < 0) {
            return NULL;
        }
        a = v[0], b = v[1], out = v[2];
    }
    Py_BEGIN_ALLOW_THREADS
    if (wide && is_add) {
        npu_add_s16((const int16_t *)a->buf, (const int16_t *)b->buf, (int16_t *)out->buf, &p);
    } else if (wide) {
        npu_mul_s16((const int16_t *)a->buf, (const int16_t *)b->buf, (int16_t *)out->buf, &p);
    } else if (is_add) {
        npu_add_s8((const int8_t *)a->buf, (const int8_t *)b->buf, (int8_t *)out->buf, &p);
    } else {
        npu_mul_s8((const int8_t *)a->buf, (const int8_t *)b->buf, (int8_t *)out->buf, &p);
    }
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

static PyObject *py_add(PyObject *self, PyObject *args) {
    (void)self;
    return elementwise_common(args, 1, 0);
}

static PyObject *py_mul(PyObject *self, PyObject *args) {
    (void)self;
    return elementwise_common(args, 0, 0);
}

static PyObject *py_add_s16(PyObject *self, PyObject *args) {
    (void)self;
    return elementwise_common(args, 1, 1);
}

static PyObject *py_mul_s16(PyObject *self, PyObject *args) {
    (void)self;
    return elementwise_common(args, 0, 1);
}

/* ---- lookup table, strided copy, mean ------------------------------------------- */

PyDoc_STRVAR(lut_doc,
"lut(inp, table, out, n)\n"
"--\n\n"
"out[i] = table[inp[i] + 128] for n int8 values; table: int8[256] from\n"
"npu_sdk.lower (RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH, int8 QUANTIZE).");

static PyObject *py_lut(PyObject *self, PyObject *args) {
    PyObject *inp_obj, *table_obj, *out_obj;
    int n;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *table, *out;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOOi:lut", &inp_obj, &table_obj, &out_obj, &n)) {
        return NULL;
    }
    {
        PyObject *const objs[3] = {inp_obj, table_obj, out_obj};
        const Py_buffer *v[3];
        npu_need needs[3];
        npu_err e;
        const int count = npu_args_lut(&e, needs, n);
        if (count < 0) {
            return raise_null(&e);
        }
        if (acquire_needs(&set, objs, needs, count, v) < 0) {
            return NULL;
        }
        inp = v[0], table = v[1], out = v[2];
    }
    Py_BEGIN_ALLOW_THREADS
    npu_lut_s8((const int8_t *)inp->buf, (const int8_t *)table->buf, (int8_t *)out->buf, n);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(lut_s8_s16_doc,
"lut_s8_s16(inp, table, out, n)\n"
"--\n\n"
"QUANTIZE int8 -> int16: out[i] = table[inp[i] + 128], table int16[256] from\n"
"npu_sdk.lower.requantize_s8_s16_lut.");

static PyObject *py_lut_s8_s16(PyObject *self, PyObject *args) {
    PyObject *objs[3];
    int n;
    buffer_set set = {.count = 0};
    const Py_buffer *v[3];
    npu_need needs[3];
    npu_err e;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOOi:lut_s8_s16", &objs[0], &objs[1], &objs[2], &n)) {
        return NULL;
    }
    const int count = npu_args_lut_s8_s16(&e, needs, n);
    if (count < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, count, v) < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_lut_s8_s16((const int8_t *)v[0]->buf, (const int16_t *)v[1]->buf, (int16_t *)v[2]->buf, n);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(requantize_s16_s8_doc,
"requantize_s16_s8(inp, out, n, multiplier, shift, output_offset)\n"
"--\n\n"
"QUANTIZE int16 (zero point 0) -> int8 as TFLite Micro's Requantize, bit-exact.");

static PyObject *py_requantize_s16_s8(PyObject *self, PyObject *args) {
    PyObject *objs[2];
    int n, mult, shift, output_offset;
    buffer_set set = {.count = 0};
    const Py_buffer *v[2];
    npu_need needs[2];
    npu_err e;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOiiii:requantize_s16_s8", &objs[0], &objs[1], &n, &mult,
                          &shift, &output_offset)) {
        return NULL;
    }
    const int count = npu_args_requantize_s16_s8(&e, needs, n, shift, output_offset);
    if (count < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, count, v) < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_requantize_s16_s8((const int16_t *)v[0]->buf, (int8_t *)v[1]->buf, n, mult, shift,
                          output_offset);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(rescale_s16_doc,
"rescale_s16(inp, out, n, pos_multiplier, pos_shift, neg_multiplier, neg_shift, act_min,\n"
"            act_max)\n"
"--\n\n"
"16x8 RELU, RELU6 and LEAKY_RELU: each int16 x rescaled by the pos (x >= 0) or neg\n"
"multiplier and shift, clamped; bit-exact with TFLite Micro (npu_sdk.lower.rescale_s16_params).");

static PyObject *py_rescale_s16(PyObject *self, PyObject *args) {
    PyObject *objs[2];
    int n, pm, ps, nm, ns, act_min, act_max;
    buffer_set set = {.count = 0};
    const Py_buffer *v[2];
    npu_need needs[2];
    npu_err e;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOiiiiiii:rescale_s16", &objs[0], &objs[1], &n, &pm, &ps, &nm,
                          &ns, &act_min, &act_max)) {
        return NULL;
    }
    const int count = npu_args_rescale_s16(&e, needs, n, ps, ns, act_min, act_max);
    if (count < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, count, v) < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_rescale_s16((const int16_t *)v[0]->buf, (int16_t *)v[1]->buf, n, pm, ps, nm, ns, act_min,
                    act_max);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(softmax_s16_doc,
"softmax_s16(inp, out, exp_lut, recip_lut, rows, depth, input_multiplier, input_shift)\n"
"--\n\n"
"16x8 softmax over the last axis, output Q0.15, bit-exact with TFLite Micro. Tables and\n"
"parameters from npu_sdk.lower.softmax_s16_luts and softmax_s16_params.");

static PyObject *py_softmax_s16(PyObject *self, PyObject *args) {
    PyObject *objs[4];
    int rows, depth, mult, shift;
    buffer_set set = {.count = 0};
    const Py_buffer *v[4];
    npu_need needs[4];
    npu_err e;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOOOiiii:softmax_s16", &objs[0], &objs[1], &objs[2], &objs[3],
                          &rows, &depth, &mult, &shift)) {
        return NULL;
    }
    const int n = npu_args_softmax_s16(&e, needs, rows, depth, shift);
    if (n < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, n, v) < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_softmax_s16((const int16_t *)v[0]->buf, (int16_t *)v[1]->buf, (const int16_t *)v[2]->buf,
                    (const int16_t *)v[3]->buf, rows, depth, mult, shift);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(logistic_s16_doc,
"logistic_s16(inp, table, out, n, input_multiplier, input_left_shift)\n"
"--\n\n"
"16x8 LOGISTIC of n int16 values, output Q0.15, bit-exact with TFLite Micro. table:\n"
"int16[256] holding npu_sdk.tables16.SIGMOID_U16's bits; parameters from\n"
"npu_sdk.lower.sigmoid_s16_params.");

PyDoc_STRVAR(tanh_s16_doc,
"tanh_s16(inp, table, out, n, input_multiplier, input_left_shift)\n"
"--\n\n"
"16x8 TANH, as logistic_s16.");

static PyObject *sigmoid_s16_common(PyObject *args, int tanh) {
    PyObject *objs[3];
    int n, mult, left_shift;
    buffer_set set = {.count = 0};
    const Py_buffer *v[3];
    npu_need needs[3];
    npu_err e;

    if (!PyArg_ParseTuple(args, tanh ? "OOOiii:tanh_s16" : "OOOiii:logistic_s16", &objs[0],
                          &objs[1], &objs[2], &n, &mult, &left_shift)) {
        return NULL;
    }
    const int count = npu_args_sigmoid_s16(&e, needs, n, mult, left_shift);
    if (count < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, count, v) < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_sigmoid_s16((const int16_t *)v[0]->buf, (const uint16_t *)v[1]->buf,
                    (int16_t *)v[2]->buf, n, mult, left_shift, tanh);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

static PyObject *py_logistic_s16(PyObject *self, PyObject *args) {
    (void)self;
    return sigmoid_s16_common(args, 0);
}

static PyObject *py_tanh_s16(PyObject *self, PyObject *args) {
    (void)self;
    return sigmoid_s16_common(args, 1);
}

PyDoc_STRVAR(copy_doc,
"copy(inp, out, d0, d1, d2, d3, in_s0, in_s1, in_s2, in_s3, out_s0, out_s1, out_s2,\n"
"     out_s3, out_offset, fill, fill_value)\n"
"--\n\n"
"Strided 4-D int8 copy into part of out (PAD, CONCATENATION): out[out_offset +\n"
"sum i_k * out_s_k] = inp[sum i_k * in_s_k]. With fill=1 all of out is first set to\n"
"fill_value.");

static PyObject *py_copy(PyObject *self, PyObject *args) {
    PyObject *inp_obj, *out_obj;
    npu_copy p;
    int32_t *d = p.dims, *a = p.in_strides, *b = p.out_strides;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *out;
    (void)self;
    memset(&p, 0, sizeof p);

    if (!PyArg_ParseTuple(args, "OO" "iiii" "iiii" "iiii" "iii:copy", &inp_obj, &out_obj,
                          &d[0], &d[1], &d[2], &d[3], &a[0], &a[1], &a[2], &a[3], &b[0], &b[1],
                          &b[2], &b[3], &p.out_offset, &p.fill, &p.fill_value)) {
        return NULL;
    }
    {
        PyObject *const objs[2] = {inp_obj, out_obj};
        const Py_buffer *v[2];
        npu_need needs[2];
        npu_err e;
        const int n = npu_args_copy(&e, needs, &p);
        if (n < 0) {
            return raise_null(&e);
        }
        if (acquire_needs(&set, objs, needs, n, v) < 0) {
            return NULL;
        }
        inp = v[0], out = v[1];
    }
    if (out->len > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "out: buffer larger than 2^31 - 1 bytes");
        release_all(&set);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_copy_s8((const int8_t *)inp->buf, (int8_t *)out->buf, (int32_t)out->len, &p);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mean_doc,
"mean(inp, out, batches, in_h, in_w, channels, input_offset, multiplier, shift,\n"
"     output_offset)\n"
"--\n\n"
"int8 MEAN over height and width of NHWC input into [batches, channels], bit-exact\n"
"with TFLite Micro. multiplier/shift from npu_sdk.lower.mean_params.");

static PyObject *py_mean(PyObject *self, PyObject *args) {
    PyObject *inp_obj, *out_obj;
    int batches, in_h, in_w, channels, input_offset, multiplier, shift, output_offset;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *out;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOiiiiiiii:mean", &inp_obj, &out_obj, &batches, &in_h, &in_w,
                          &channels, &input_offset, &multiplier, &shift, &output_offset)) {
        return NULL;
    }
    {
        PyObject *const objs[2] = {inp_obj, out_obj};
        const Py_buffer *v[2];
        npu_need needs[2];
        npu_err e;
        const int n = npu_args_mean(&e, needs, batches, in_h, in_w, channels, input_offset,
                                    shift, output_offset);
        if (n < 0) {
            return raise_null(&e);
        }
        if (acquire_needs(&set, objs, needs, n, v) < 0) {
            return NULL;
        }
        inp = v[0], out = v[1];
    }
    Py_BEGIN_ALLOW_THREADS
    npu_mean_s8((const int8_t *)inp->buf, (int8_t *)out->buf, batches, in_h, in_w, channels,
                input_offset, multiplier, shift, output_offset);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mean_s16_doc,
"mean_s16(inp, out, batches, in_h, in_w, channels, multiplier, shift)\n"
"--\n\n"
"16x8 MEAN over height and width of NHWC int16 into [batches, channels], zero points 0,\n"
"bit-exact with TFLite Micro; in_h * in_w <= 65535.");

static PyObject *py_mean_s16(PyObject *self, PyObject *args) {
    PyObject *objs[2];
    int batches, in_h, in_w, channels, multiplier, shift;
    buffer_set set = {.count = 0};
    const Py_buffer *v[2];
    npu_need needs[2];
    npu_err e;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOiiiiii:mean_s16", &objs[0], &objs[1], &batches, &in_h,
                          &in_w, &channels, &multiplier, &shift)) {
        return NULL;
    }
    const int n = npu_args_mean_s16(&e, needs, batches, in_h, in_w, channels, shift);
    if (n < 0) {
        return raise_null(&e);
    }
    if (acquire_needs(&set, objs, needs, n, v) < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_mean_s16((const int16_t *)v[0]->buf, (int16_t *)v[1]->buf, batches, in_h, in_w,
                 channels, multiplier, shift);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

/* ---- instruction set choice -------------------------------------------------- */

static const char *const isa_names[] = {"scalar", "avx2"};
#define ISA_COUNT ((int)(sizeof isa_names / sizeof isa_names[0]))

/* "auto" -> the best supported level; a name -> its level; -2 if unknown. */
static int isa_from_name(const char *name) {
    if (strcmp(name, "auto") == 0) {
        return npu_isa_supported();
    }
    for (int i = 0; i < ISA_COUNT; ++i) {
        if (strcmp(name, isa_names[i]) == 0) {
            return i;
        }
    }
    return -2;
}

PyDoc_STRVAR(isa_doc,
"isa()\n"
"--\n\n"
"The instruction set the MAC kernels use: 'scalar' (portable C) or 'avx2'.");

static PyObject *py_isa(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyUnicode_FromString(isa_names[npu_isa_get()]);
}

PyDoc_STRVAR(supported_isa_doc,
"supported_isa()\n"
"--\n\n"
"The best instruction set this CPU runs: 'scalar' or 'avx2'.");

static PyObject *py_supported_isa(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyUnicode_FromString(isa_names[npu_isa_supported()]);
}

PyDoc_STRVAR(set_isa_doc,
"set_isa(name)\n"
"--\n\n"
"Choose the MAC kernels' instruction set: 'auto' (the best supported), 'scalar' or\n"
"'avx2'; every choice gives the same bits. Returns the previous choice. The\n"
"environment variable NPU_KERNELS_ISA sets the first choice at import.");

static PyObject *py_set_isa(PyObject *self, PyObject *arg) {
    const char *name;
    int level;
    PyObject *previous;
    (void)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "set_isa: expected a str, got %.200s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    if ((name = PyUnicode_AsUTF8(arg)) == NULL) {
        return NULL;
    }
    level = isa_from_name(name);
    if (level == -2) {
        PyErr_Format(PyExc_ValueError, "set_isa: unknown instruction set %R; use 'auto', "
                     "'scalar' or 'avx2'", arg);
        return NULL;
    }
    if (level > npu_isa_supported()) {
        PyErr_Format(PyExc_ValueError, "set_isa: this CPU does not run %R (supported: '%s')",
                     arg, isa_names[npu_isa_supported()]);
        return NULL;
    }
    previous = PyUnicode_FromString(isa_names[npu_isa_get()]);
    if (previous != NULL) {
        npu_isa_set(level);
    }
    return previous;
}

static PyMethodDef kernels_methods[] = {
    {"isa", py_isa, METH_NOARGS, isa_doc},
    {"supported_isa", py_supported_isa, METH_NOARGS, supported_isa_doc},
    {"set_isa", py_set_isa, METH_O, set_isa_doc},
    {"lut", py_lut, METH_VARARGS, lut_doc},
    {"copy", py_copy, METH_VARARGS, copy_doc},
    {"mean", py_mean, METH_VARARGS, mean_doc},
    {"mean_s16", py_mean_s16, METH_VARARGS, mean_s16_doc},
    {"fully_connected", py_fully_connected, METH_VARARGS, fully_connected_doc},
    {"fully_connected_s16", py_fully_connected_s16, METH_VARARGS, fully_connected_s16_doc},
    {"softmax", py_softmax, METH_VARARGS, softmax_doc},
    {"quantize", py_quantize, METH_VARARGS, quantize_doc},
    {"dequantize", py_dequantize, METH_VARARGS, dequantize_doc},
    {"quantize_s16", py_quantize_s16, METH_VARARGS, quantize_s16_doc},
    {"dequantize_s16", py_dequantize_s16, METH_VARARGS, dequantize_s16_doc},
    {"conv2d", py_conv2d, METH_VARARGS, conv2d_doc},
    {"depthwise_conv2d", py_depthwise_conv2d, METH_VARARGS, depthwise_conv2d_doc},
    {"conv2d_s16", py_conv2d_s16, METH_VARARGS, conv2d_s16_doc},
    {"depthwise_conv2d_s16", py_depthwise_conv2d_s16, METH_VARARGS, depthwise_conv2d_s16_doc},
    {"average_pool2d", py_average_pool2d, METH_VARARGS, average_pool2d_doc},
    {"average_pool2d_s16", py_average_pool2d_s16, METH_VARARGS,
     "average_pool2d_s16(...): the int16 (16x8) twin of average_pool2d."},
    {"max_pool2d_s16", py_max_pool2d_s16, METH_VARARGS,
     "max_pool2d_s16(...): the int16 (16x8) twin of max_pool2d."},
    {"add_s16", py_add_s16, METH_VARARGS, add_s16_doc},
    {"mul_s16", py_mul_s16, METH_VARARGS, mul_s16_doc},
    {"logistic_s16", py_logistic_s16, METH_VARARGS, logistic_s16_doc},
    {"softmax_s16", py_softmax_s16, METH_VARARGS, softmax_s16_doc},
    {"rescale_s16", py_rescale_s16, METH_VARARGS, rescale_s16_doc},
    {"lut_s8_s16", py_lut_s8_s16, METH_VARARGS, lut_s8_s16_doc},
    {"requantize_s16_s8", py_requantize_s16_s8, METH_VARARGS, requantize_s16_s8_doc},
    {"tanh_s16", py_tanh_s16, METH_VARARGS, tanh_s16_doc},
    {"max_pool2d", py_max_pool2d, METH_VARARGS, max_pool2d_doc},
    {"add", py_add, METH_VARARGS, add_doc},
    {"mul", py_mul, METH_VARARGS, mul_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernels_module = {
    PyModuleDef_HEAD_INIT,
    "npu_emulator._kernels",
    "The emulator's int8 MAC kernels (plain C core in npu_kernels.c), bit-exact with "
    "TFLite Micro.",
    0,
    kernels_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    /* NPU_KERNELS_ISA (auto | scalar | avx2) is read once, here. A level the CPU lacks
     * falls back to the best it has: the variable is a ceiling, not a demand. */
    const char *env = getenv("NPU_KERNELS_ISA");
    if (env != NULL && *env != '\0') {
        const int level = isa_from_name(env);
        if (level == -2) {
            PyErr_Format(PyExc_ImportError, "NPU_KERNELS_ISA=%.50s: unknown instruction set; "
                         "use auto, scalar or avx2 (or unset it)", env);
            return NULL;
        }
        npu_isa_set(level);
    } else {
        npu_isa_set(npu_isa_supported());
    }
    return PyModule_Create(&kernels_module);
}
