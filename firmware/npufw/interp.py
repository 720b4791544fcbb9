"""The interpreter loop: a parsed blob, one preallocated arena, kernels from the board's npu."""
from . import blobfmt
from .blobfmt import ARENA, BlobError

_INT8 = 0
_INT32 = 1
_FLOAT32 = 2


class Model:
    def __init__(self, data, npu, ram_limit=0):
        b = blobfmt.parse(data)
        if ram_limit and b.arena_size > ram_limit:
            raise MemoryError("arena needs %d bytes, board has %d" % (b.arena_size, ram_limit))
        self.blob = b
        self.arena = bytearray(b.arena_size)
        arena = memoryview(self.arena)
        consts = memoryview(data)[b.const_start:b.const_start + b.const_size]
        self.views = [(arena if t.location == ARENA else consts)[t.offset:t.offset + t.size]
                      for t in b.tensors]
        self.calls = [self._prepare(npu, i, op) for i, op in enumerate(b.ops)]

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
        if op.opcode == 1:
            batches, in_d, out_d, in_off, out_off, amin, amax = p
            if not (-128 <= amin <= amax <= 127):
                raise BlobError(what + ": bad activation range")
            return npu.fully_connected, (
                self._tensor(op.inputs[0], _INT8, batches * in_d, what),
                self._tensor(op.inputs[1], _INT8, out_d * in_d, what),
                self._tensor(op.inputs[2], _INT32, 4 * out_d, what),
                self._tensor(op.outputs[0], _INT8, batches * out_d, what),
                self._tensor(op.inputs[3], _INT32, 4 * out_d, what),
                self._tensor(op.inputs[4], _INT32, 4 * out_d, what),
                batches, in_d, out_d, in_off, out_off, amin, amax)
        if op.opcode == 2:
            rows, depth, mult, shift, diff_min = p
            n = rows * depth
            return npu.softmax, (self._tensor(op.inputs[0], _INT8, n, what),
                                 self._tensor(op.outputs[0], _INT8, n, what),
                                 rows, depth, mult, shift, diff_min)
        count = p[0]
        if op.opcode == 3:
            q = self.blob.tensors[op.outputs[0]]
            return npu.quantize, (self._tensor(op.inputs[0], _FLOAT32, 4 * count, what),
                                  self._tensor(op.outputs[0], _INT8, count, what),
                                  count, q.scale, q.zero_point)
        q = self.blob.tensors[op.inputs[0]]
        return npu.dequantize, (self._tensor(op.inputs[0], _INT8, count, what),
                                self._tensor(op.outputs[0], _FLOAT32, 4 * count, what),
                                count, q.scale, q.zero_point)

    def set_input(self, index, data):
        view = self.views[self.blob.inputs[index]]
        if len(data) != len(view):
            raise ValueError("input %d needs %d bytes, got %d" % (index, len(view), len(data)))
        view[:] = data

    def output(self, index):
        return self.views[self.blob.outputs[index]]

    def invoke(self):
        for fn, args in self.calls:
            fn(*args)
