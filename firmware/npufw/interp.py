"""The interpreter loop: a parsed blob, one preallocated arena, kernels from the board's npu."""
from . import blobfmt, checks, opcodes
from .blobfmt import ARENA, BlobError
from .pool import buffer

_INT8 = 0
_INT32 = 1
_FLOAT32 = 2
_INT16 = 3
_INT64 = 5
_LIMIT = 1 << 30  # window coordinates and offsets stay far inside int32
_MAX_MEAN = 1 << 23  # in_h * in_w: 255 * 2**23 fits the int32 sum (as the C binding)


def _check(ok, what, message):
    if not ok:
        raise BlobError("%s: %s" % (what, message))


def _check_window(what, in_size, out_size, k, stride, dilation, pad):
    """Every output position's window must stay in int32 range and touch the input."""
    _check(min(in_size, out_size, k, stride, dilation) >= 1 and 0 <= pad < _LIMIT, what,
           "bad window geometry")
    _check((out_size - 1) * stride + (k - 1) * dilation < _LIMIT, what, "window too large")


def _kernel16(npu, name):
    """A 16x8 kernel: the board's own where it has one (the C binding, a native module),
    else viper's from npufw.kernels16, imported only when a model needs it."""
    fn = getattr(npu, name, None)
    if fn is None:
        from . import kernels16
        fn = getattr(kernels16, name)
    return fn


def _check_act(what, amin, amax):
    _check(-128 <= amin <= amax <= 127, what, "bad activation range")


class Model:
    def __init__(self, data, npu, ram_limit=0, pool=None):
        """`data`: the blob's bytes, or a stream.BlobFile (the weights stay in flash and
        each op's are read into one scratch buffer before it runs: see npufw/stream.py).
        `pool`: the board's model pool (npufw/pool.py) for the arena, else the heap."""
        source = data if hasattr(data, "bind") else None
        b = source.blob if source is not None else blobfmt.parse(data)
        if source is None:  # a BlobFile checked itself before allocating its buffers
            checks.check(b, checks.reader(data, b), ram_limit)
        if ram_limit and b.arena_size > ram_limit:
            raise MemoryError("arena needs %d bytes, board has %d" % (b.arena_size, ram_limit))
        if source is not None and ram_limit and b.arena_size + source.ram > ram_limit:
            raise MemoryError("arena and weight buffers need %d bytes, board has %d"
                              % (b.arena_size + source.ram, ram_limit))
        self.blob = b
        self.source = source
        self.arena = buffer(pool, b.arena_size, "the arena") if source is None else source.arena
        arena = memoryview(self.arena)
        if source is None:
            consts = memoryview(data)[b.const_start:b.const_start + b.const_size]
            self.views = [(arena if t.location == ARENA else consts)[t.offset:t.offset + t.size]
                          for t in b.tensors]
            self.loads = None
            self.calls = [self._prepare(npu, i, op) for i, op in enumerate(b.ops)]
        else:
            self.views = source.views(arena)
            self.loads = []  # per op: [(file offset, scratch view)] read before it runs
            self.calls = []
            for i, op in enumerate(b.ops):
                self.loads.append(source.bind(op, self.views))
                self.calls.append(self._prepare(npu, i, op))
        self._trim()

    def _trim(self):
        """Keep only what RUN needs: the calls hold every view and parameter they use, so
        the parsed tables go but for the inputs' and outputs' tensors and the opcodes
        (a model's RAM on a board is its arena and little more, as with TFLite Micro)."""
        b = self.blob
        keep = b.inputs + b.outputs
        self.opcodes = bytes([op.opcode for op in b.ops])
        b.ops = None
        b.tensors = [t if i in keep else None for i, t in enumerate(b.tensors)]
        self.views = [v if i in keep else None for i, v in enumerate(self.views)]

    def close(self):
        """Release the blob's file (a streamed model)."""
        if self.source is not None:
            self.source.close()

    def _tensor(self, i, dtype, size, what):
        if i < 0:
            return None
        t = self.blob.tensors[i]
        if t.dtype != dtype or t.size != size:
            raise BlobError("%s: tensor %d has dtype %d, %d bytes; expected dtype %d, %d bytes"
                            % (what, i, t.dtype, t.size, dtype, size))
        return self.views[i]

    def _prepare(self, npu, index, op):
        """Check an op's tensors against its parameters once; return the kernel call."""
        p = op.params
        what = "op %d" % index
        code = op.opcode
        if code == opcodes.FULLY_CONNECTED:
            batches, in_d, out_d, in_off, out_off, amin, amax = p
            if not (-128 <= amin <= amax <= 127):
                raise BlobError(what + ": bad activation range")
            # mult/shift: one per output row, or one pair for per-tensor weights
            rows = 1 if op.inputs[3] >= 0 and self.blob.tensors[op.inputs[3]].size == 4 else out_d
            return npu.fully_connected, (
                self._tensor(op.inputs[0], _INT8, batches * in_d, what),
                self._tensor(op.inputs[1], _INT8, out_d * in_d, what),
                self._tensor(op.inputs[2], _INT32, 4 * out_d, what),
                self._tensor(op.outputs[0], _INT8, batches * out_d, what),
                self._tensor(op.inputs[3], _INT32, 4 * rows, what),
                self._tensor(op.inputs[4], _INT32, 4 * rows, what),
                batches, in_d, out_d, in_off, out_off, amin, amax)
        if code == opcodes.SOFTMAX:
            rows, depth, mult, shift, diff_min = p
            n = rows * depth
            return npu.softmax, (self._tensor(op.inputs[0], _INT8, n, what),
                                 self._tensor(op.outputs[0], _INT8, n, what),
                                 rows, depth, mult, shift, diff_min)
        if code == opcodes.CONV_2D or code == opcodes.DEPTHWISE_CONV_2D:
            return self._prepare_conv(npu, op, what)
        if code in (opcodes.AVERAGE_POOL_2D, opcodes.MAX_POOL_2D, opcodes.AVERAGE_POOL_2D_S16,
                    opcodes.MAX_POOL_2D_S16):
            return self._prepare_pool(npu, op, what)
        if "_S16" in opcodes.OPS[code][0]:  # the other 16x8 kernels: their checks load with them
            from . import interp16
            return interp16.prepare(self, npu, op, what)
        if code == opcodes.ADD or code == opcodes.MUL:
            return self._prepare_elementwise(npu, op, what)
        if code == opcodes.LUT:
            n = p[0]
            _check(n >= 1, what, "bad count")
            return npu.lut, (self._tensor(op.inputs[0], _INT8, n, what),
                             self._tensor(op.inputs[1], _INT8, 256, what),
                             self._tensor(op.outputs[0], _INT8, n, what), n)
        if code == opcodes.COPY:
            return self._prepare_copy(npu, op, what)
        if code == opcodes.MEAN:
            return self._prepare_mean(npu, op, what)
        count = p[0]
        if code == opcodes.QUANTIZE:
            q = self.blob.tensors[op.outputs[0]]
            return npu.quantize, (self._tensor(op.inputs[0], _FLOAT32, 4 * count, what),
                                  self._tensor(op.outputs[0], _INT8, count, what),
                                  count, q.scale, q.zero_point)
        q = self.blob.tensors[op.inputs[0]]
        return npu.dequantize, (self._tensor(op.inputs[0], _INT8, count, what),
                                self._tensor(op.outputs[0], _FLOAT32, 4 * count, what),
                                count, q.scale, q.zero_point)

    def _prepare_conv(self, npu, op, what):
        p = op.params
        (batches, in_h, in_w, in_c, out_h, out_w, channels, k_h, k_w, stride_h, stride_w,
         dil_h, dil_w, pad_h, pad_w, _, _, amin, amax) = p
        _check(min(batches, in_c, channels) >= 1, what, "bad shape")
        _check_window(what, in_h, out_h, k_h, stride_h, dil_h, pad_h)
        _check_window(what, in_w, out_w, k_w, stride_w, dil_w, pad_w)
        _check_act(what, amin, amax)
        # the same limit as the C binding's and the compiler's: int32 accumulators cannot overflow
        if op.opcode == opcodes.CONV_2D:
            out_c = channels
            _check(k_h * k_w * in_c <= opcodes.MAX_MACS, what, "filter too large")
            w_size, fn = out_c * k_h * k_w * in_c, npu.conv2d
        else:
            out_c = in_c * channels
            _check(k_h * k_w <= opcodes.MAX_MACS, what, "filter too large")
            w_size, fn = k_h * k_w * out_c, npu.depthwise_conv2d
        return fn, (self._tensor(op.inputs[0], _INT8, batches * in_h * in_w * in_c, what),
                    self._tensor(op.inputs[1], _INT8, w_size, what),
                    self._tensor(op.inputs[2], _INT32, 4 * out_c, what),
                    self._tensor(op.outputs[0], _INT8, batches * out_h * out_w * out_c, what),
                    self._tensor(op.inputs[3], _INT32, 4 * out_c, what),
                    self._tensor(op.inputs[4], _INT32, 4 * out_c, what)) + tuple(p)

    def _prepare_pool(self, npu, op, what):
        p = op.params
        batches, in_h, in_w, channels, out_h, out_w, k_h, k_w, s_h, s_w, pad_h, pad_w, amin, amax = p
        _check(min(batches, channels) >= 1, what, "bad shape")
        _check_window(what, in_h, out_h, k_h, s_h, 1, pad_h)
        _check_window(what, in_w, out_w, k_w, s_w, 1, pad_w)
        # No window may fall wholly into the padding (an average over nothing).
        _check(pad_h < k_h and pad_w < k_w and (out_h - 1) * s_h - pad_h < in_h
               and (out_w - 1) * s_w - pad_w < in_w, what, "a pooling window misses the input")
        code = op.opcode
        if code == opcodes.AVERAGE_POOL_2D_S16 or code == opcodes.MAX_POOL_2D_S16:
            _check(-32768 <= amin <= amax <= 32767 and k_h * k_w <= opcodes.MAX_MACS, what,
                   "bad activation range or window")
            fn = npu.average_pool2d_s16 if code == opcodes.AVERAGE_POOL_2D_S16 else npu.max_pool2d_s16
            return fn, (
                self._tensor(op.inputs[0], _INT16, 2 * batches * in_h * in_w * channels, what),
                self._tensor(op.outputs[0], _INT16, 2 * batches * out_h * out_w * channels, what)
            ) + tuple(p)
        _check_act(what, amin, amax)
        return (npu.average_pool2d if code == opcodes.AVERAGE_POOL_2D else npu.max_pool2d), (
            self._tensor(op.inputs[0], _INT8, batches * in_h * in_w * channels, what),
            self._tensor(op.outputs[0], _INT8, batches * out_h * out_w * channels, what)) + tuple(p)

    def _prepare_elementwise(self, npu, op, what):
        p = op.params
        dims, s1, s2 = p[0:4], p[4:8], p[8:12]
        _check(min(dims) >= 1 and min(s1) >= 0 and min(s2) >= 0, what, "bad broadcast shape")
        add = op.opcode == opcodes.ADD
        if add:  # the parameters after the broadcast geometry, in blob order
            _, _, left_shift, _, shift1, _, shift2, _, out_shift, _, amin, amax = p[12:]
            shifts = (shift1, shift2, out_shift)
        else:
            _, _, _, out_shift, _, amin, amax = p[12:]
            left_shift, shifts = 0, (out_shift,)
        _check_act(what, amin, amax)
        _check(0 <= left_shift <= 22, what, "left_shift out of range")
        for sh in shifts:
            _check(-31 <= sh <= 31, what, "shift out of range")
        n = dims[0] * dims[1] * dims[2] * dims[3]
        views = []
        for i, strides in ((op.inputs[0], s1), (op.inputs[1], s2)):
            _check(i >= 0, what, "missing input")
            t = self.blob.tensors[i]
            extent = 1
            for d, s in zip(dims, strides):
                extent += (d - 1) * s
            _check(t.dtype == _INT8 and t.size >= extent, what,
                   "input %d is not int8 of at least %d elements" % (i, extent))
            views.append(self.views[i])
        return (npu.add if add else npu.mul), (
            views[0], views[1], self._tensor(op.outputs[0], _INT8, n, what)) + tuple(p)

    def _copy_tensor(self, i, what):
        """(dtype, bytes) of a COPY operand: int8, or int16 copied as byte pairs."""
        _check(i >= 0 and self.blob.tensors[i].dtype in (_INT8, _INT16), what,
               "tensor %d is not int8 or int16" % i)
        return self.blob.tensors[i].dtype, self.blob.tensors[i].size

    def _prepare_copy(self, npu, op, what):
        p = op.params
        dims, s_in, s_out, out_offset, fill, fill_value = p[0:4], p[4:8], p[8:12], p[12], p[13], p[14]
        _check(min(dims) >= 1 and min(s_in) >= 0 and min(s_out) >= 0 and out_offset >= 0,
               what, "bad copy geometry")
        _check(fill in (0, 1) and -128 <= fill_value <= 127, what, "bad fill")
        in_extent, out_extent = 1, out_offset + 1
        for d, a, b in zip(dims, s_in, s_out):
            in_extent += (d - 1) * a
            out_extent += (d - 1) * b
        in_type, in_size = self._copy_tensor(op.inputs[0], what)
        out_type, out_size = self._copy_tensor(op.outputs[0], what)
        _check(in_type == out_type, what, "copy between int8 and int16")
        _check(in_extent <= in_size, what, "copy reads past its input")
        _check(out_extent <= out_size, what, "copy writes past its output")
        return npu.copy, (self.views[op.inputs[0]], self.views[op.outputs[0]]) + tuple(p)

    def _prepare_mean(self, npu, op, what):
        p = op.params
        batches, in_h, in_w, channels, in_off, _, shift, out_off = p
        _check(min(batches, in_h, in_w, channels) >= 1 and in_h * in_w <= _MAX_MEAN, what,
               "bad mean shape")
        _check(-128 <= in_off <= 128 and -128 <= out_off <= 127, what, "bad zero point")
        _check(-31 <= shift <= 31, what, "shift out of range")
        return npu.mean, (
            self._tensor(op.inputs[0], _INT8, batches * in_h * in_w * channels, what),
            self._tensor(op.outputs[0], _INT8, batches * channels, what)) + tuple(p)

    def set_input(self, index, data):
        view = self.views[self.blob.inputs[index]]
        if len(data) != len(view):
            raise ValueError("input %d needs %d bytes, got %d" % (index, len(view), len(data)))
        view[:] = data

    def output(self, index):
        return self.views[self.blob.outputs[index]]

    def invoke(self, clock=None, times=None):
        """Run every op; with `times` (a list, one int per op) add each op's duration in
        microseconds measured with `clock` (ticks_us, ticks_diff)."""
        if self.loads is not None:
            self._invoke_streamed(clock, times)
            return
        if times is None:
            for fn, args in self.calls:
                fn(*args)
            return
        i = 0
        for fn, args in self.calls:
            t0 = clock.ticks_us()
            fn(*args)
            times[i] += clock.ticks_diff(clock.ticks_us(), t0)
            i += 1

    def _invoke_streamed(self, clock, times):
        f = self.source.f
        loads = self.loads
        i = 0
        for fn, args in self.calls:
            if times is not None:
                t0 = clock.ticks_us()
            for offset, view in loads[i]:  # this op's weights, from flash
                f.seek(offset)
                if f.readinto(view) != len(view):
                    raise OSError("model file shrank while loaded")
            fn(*args)
            if times is not None:
                times[i] += clock.ticks_diff(clock.ticks_us(), t0)
            i += 1
