/* _kernels.c - thin CPython binding for npu_kernels.{c,h}: npu_emulator._kernels.
 *
 * Every function checks each buffer (kind, element type, byte length,
 * alignment, writability) and every size against the others before any kernel
 * touches memory, then releases the GIL around the plain-C call. Buffers are
 * anything with the buffer protocol: bytes, bytearray, memoryview, numpy arrays.
 * Typed buffers must hold the expected element type; untyped byte buffers
 * (format 'B', 'b' or 'c') are taken as raw little-endian bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>

#include "npu_kernels.h"

/* The dot product accumulates 128 * 128 per term in int32. */
#define MAX_IN_DEPTH 131071

typedef enum { ELEM_I8, ELEM_I32, ELEM_F32 } elem_kind;

static const char *const elem_names[] = {"int8", "int32", "float32"};
static const Py_ssize_t elem_sizes[] = {1, 4, 4};

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
static int check_format(const Py_buffer *view, const char *name, elem_kind kind) {
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
        if (kind == ELEM_I32 && (c == 'i' || c == 'l') && view->itemsize == 4) {
            return 0;
        }
        if (kind == ELEM_F32 && c == 'f' && view->itemsize == 4) {
            return 0;
        }
    }
    PyErr_Format(PyExc_TypeError,
                 "%s: expected %s elements (or raw bytes), got a buffer of format '%s' "
                 "(itemsize %zd); convert it, e.g. numpy.asarray(%s, dtype=numpy.%s)",
                 name, elem_names[kind], format, view->itemsize, name,
                 kind == ELEM_F32 ? "float32" : (kind == ELEM_I32 ? "int32" : "int8"));
    return -1;
}

/* Acquire `obj` as a C-contiguous buffer holding at least `count` elements of
 * `kind`. On failure an exception naming `name` is set, and nothing is held. */
static const Py_buffer *acquire(buffer_set *set, PyObject *obj, const char *name,
                                elem_kind kind, int writable, long long count) {
    Py_buffer *view = &set->views[set->count];
    const long long need = count * (long long)elem_sizes[kind];
    /* C_CONTIGUOUS implies ND, without which memoryview refuses PyBUF_FORMAT. */
    const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);

    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected a buffer (bytes, bytearray, memoryview or numpy array) "
                     "of %s, got %.200s",
                     name, elem_names[kind], Py_TYPE(obj)->tp_name);
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
    if ((long long)view->len < need) {
        PyErr_Format(PyExc_ValueError,
                     "%s: buffer too small: need %lld bytes (%lld %s elements), got %zd bytes",
                     name, need, count, elem_names[kind], view->len);
        return NULL;
    }
    if (elem_sizes[kind] > 1 && ((uintptr_t)view->buf % (uintptr_t)elem_sizes[kind]) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: %s buffer is not %zd-byte aligned; pass an aligned copy "
                     "(e.g. bytes(%s) or numpy.array(..., dtype=numpy.%s))",
                     name, elem_names[kind], elem_sizes[kind], name, elem_names[kind]);
        return NULL;
    }
    return view;
}

static int check_positive(const char *name, long long value) {
    if (value <= 0) {
        PyErr_Format(PyExc_ValueError, "%s must be positive, got %lld", name, value);
        return -1;
    }
    return 0;
}

static int check_range(const char *name, long long value, long long lo, long long hi) {
    if (value < lo || value > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be in [%lld, %lld], got %lld", name, lo, hi,
                     value);
        return -1;
    }
    return 0;
}

/* ---- functions ------------------------------------------------------------- */

PyDoc_STRVAR(fully_connected_doc,
"fully_connected(inp, weights, bias_or_None, out, mult, shift, batches, in_depth,\n"
"                out_depth, input_offset, output_offset, act_min, act_max)\n"
"--\n\n"
"int8 fully connected layer, bit-exact with TFLite Micro. inp: int8[batches*in_depth],\n"
"weights: int8[out_depth*in_depth], bias: int32[out_depth] or None,\n"
"out: writable int8[batches*out_depth], mult/shift: int32[out_depth]\n"
"(npu_sdk.lower.fully_connected_params).");

static PyObject *py_fully_connected(PyObject *self, PyObject *args) {
    PyObject *inp_obj, *w_obj, *bias_obj, *out_obj, *mult_obj, *shift_obj;
    int batches, in_depth, out_depth, input_offset, output_offset, act_min, act_max;
    buffer_set set = {.count = 0};
    const Py_buffer *inp, *w, *bias = NULL, *out, *mult, *shift;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOOOOOiiiiiii:fully_connected", &inp_obj, &w_obj, &bias_obj,
                          &out_obj, &mult_obj, &shift_obj, &batches, &in_depth, &out_depth,
                          &input_offset, &output_offset, &act_min, &act_max)) {
        return NULL;
    }
    if (check_positive("batches", batches) < 0 || check_positive("in_depth", in_depth) < 0 ||
        check_positive("out_depth", out_depth) < 0 ||
        check_range("in_depth", in_depth, 1, MAX_IN_DEPTH) < 0 ||
        check_range("act_min", act_min, -128, 127) < 0 ||
        check_range("act_max", act_max, act_min, 127) < 0) {
        return NULL;
    }
    if ((inp = acquire(&set, inp_obj, "inp", ELEM_I8, 0, (long long)batches * in_depth)) == NULL ||
        (w = acquire(&set, w_obj, "weights", ELEM_I8, 0, (long long)out_depth * in_depth)) == NULL ||
        (bias_obj != Py_None &&
         (bias = acquire(&set, bias_obj, "bias", ELEM_I32, 0, out_depth)) == NULL) ||
        (out = acquire(&set, out_obj, "out", ELEM_I8, 1, (long long)batches * out_depth)) == NULL ||
        (mult = acquire(&set, mult_obj, "mult", ELEM_I32, 0, out_depth)) == NULL ||
        (shift = acquire(&set, shift_obj, "shift", ELEM_I32, 0, out_depth)) == NULL) {
        release_all(&set);
        return NULL;
    }
    {
        /* Shifts feed C shift operators: out-of-range values would be undefined. */
        const int32_t *s = (const int32_t *)shift->buf;
        for (int o = 0; o < out_depth; ++o) {
            if (s[o] < -31 || s[o] > 31) {
                PyErr_Format(PyExc_ValueError, "shift[%d] must be in [-31, 31], got %d", o,
                             (int)s[o]);
                release_all(&set);
                return NULL;
            }
        }
    }
    Py_BEGIN_ALLOW_THREADS
    npu_fully_connected((const int8_t *)inp->buf, (const int8_t *)w->buf,
                        bias != NULL ? (const int32_t *)bias->buf : NULL, (int8_t *)out->buf,
                        (const int32_t *)mult->buf, (const int32_t *)shift->buf, batches,
                        in_depth, out_depth, input_offset, output_offset, act_min, act_max);
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
    if (check_positive("rows", rows) < 0 || check_positive("depth", depth) < 0 ||
        check_range("input_left_shift", input_left_shift, 0, 31) < 0 ||
        check_range("diff_min", diff_min, INT32_MIN, 0) < 0) {
        return NULL;
    }
    if ((inp = acquire(&set, inp_obj, "inp", ELEM_I8, 0, (long long)rows * depth)) == NULL ||
        (out = acquire(&set, out_obj, "out", ELEM_I8, 1, (long long)rows * depth)) == NULL) {
        release_all(&set);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_softmax_s8((const int8_t *)inp->buf, (int8_t *)out->buf, rows, depth, input_multiplier,
                   input_left_shift, diff_min);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

static int check_quant_params(float scale, int zero_point) {
    if (!isfinite(scale) || !(scale > 0.0f)) {
        PyObject *value = PyFloat_FromDouble((double)scale);
        if (value != NULL) {
            PyErr_Format(PyExc_ValueError, "scale must be a finite float32 > 0, got %R", value);
            Py_DECREF(value);
        }
        return -1;
    }
    return check_range("zero_point", zero_point, -128, 127);
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
    if (check_positive("n", n) < 0 || check_quant_params(scale, zero_point) < 0) {
        return NULL;
    }
    if ((inp = acquire(&set, inp_obj, "inp", ELEM_F32, 0, n)) == NULL ||
        (out = acquire(&set, out_obj, "out", ELEM_I8, 1, n)) == NULL) {
        release_all(&set);
        return NULL;
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
    if (check_positive("n", n) < 0 || check_quant_params(scale, zero_point) < 0) {
        return NULL;
    }
    if ((inp = acquire(&set, inp_obj, "inp", ELEM_I8, 0, n)) == NULL ||
        (out = acquire(&set, out_obj, "out", ELEM_F32, 1, n)) == NULL) {
        release_all(&set);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    npu_dequantize_s8_f32((const int8_t *)inp->buf, (float *)out->buf, n, scale, zero_point);
    Py_END_ALLOW_THREADS
    release_all(&set);
    Py_RETURN_NONE;
}

static PyMethodDef kernels_methods[] = {
    {"fully_connected", py_fully_connected, METH_VARARGS, fully_connected_doc},
    {"softmax", py_softmax, METH_VARARGS, softmax_doc},
    {"quantize", py_quantize, METH_VARARGS, quantize_doc},
    {"dequantize", py_dequantize, METH_VARARGS, dequantize_doc},
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
    return PyModule_Create(&kernels_module);
}
