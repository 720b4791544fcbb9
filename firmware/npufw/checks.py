"""What the kernels trust, checked once before a blob is installed or loaded, on every core.

blobfmt.parse proves a blob well formed (checksums, every tensor inside its region, every
index in range); interp.Model checks each op's tensors against its geometry. This module
checks the rest, from the registry's tables (opcodes.py, generated from npu_sdk/ops.py):
parameter ranges (PARAM_RANGES) and the per-channel shift tables' values, required inputs,
constant inputs, the alignment of wide tensors, an op reading bytes it writes, pooling
windows, the work of one RUN (MAX_RUN_MACS) and the arena against the board's RAM. It
allocates nothing large, so a blob claiming a huge arena is refused before anything is.
"""
import struct

from . import opcodes
from .blobfmt import ARENA, CONST, DTYPE_SIZE, BlobError

_INT32 = 1
# the work of one RUN this board allows: MAX_RUN_MACS until the server, which knows the
# board's profile, sets its budget (npufw/budgets.py); one board per firmware
run_macs = opcodes.MAX_RUN_MACS
_SHIFT_LO, _SHIFT_HI = opcodes.CHANNEL_SHIFT
_PER_CHANNEL = (opcodes.FULLY_CONNECTED, opcodes.CONV_2D, opcodes.DEPTHWISE_CONV_2D,
                opcodes.FULLY_CONNECTED_S16, opcodes.CONV_2D_S16, opcodes.DEPTHWISE_CONV_2D_S16)
_POOLS = (opcodes.AVERAGE_POOL_2D, opcodes.MAX_POOL_2D, opcodes.AVERAGE_POOL_2D_S16,
          opcodes.MAX_POOL_2D_S16)


def _refuse(what, message):
    raise BlobError("%s: %s" % (what, message))


def reader(data, b):
    """read(t) for a blob held whole in `data` (bytes or a memoryview): constant tensor
    t's bytes, where they lie."""
    consts = memoryview(data)[b.const_start:b.const_start + b.const_size]
    return lambda t: consts[t.offset:t.offset + t.size]


def file_reader(f, const_start):
    """read(t) for a blob in open file `f` whose constants start at `const_start`: constant
    tensor t's bytes, read (only the small shift tables are; the closure holds no tables,
    which the caller frees before it allocates the arena)."""
    def read(t):
        f.seek(const_start + t.offset)
        return f.read(t.size)
    return read


def _check_pool(what, p):
    """A pooling window no larger than the padded input (TFLite pads at most k - 1 in all,
    the top or left half of it rounded down)."""
    in_h, in_w, _, _, _, k_h, k_w, _, _, pad_h, pad_w = p[1:12]
    if k_h > in_h + 2 * pad_h + 1 or k_w > in_w + 2 * pad_w + 1:
        _refuse(what, "a %dx%d window is larger than the padded %dx%d input"
                % (k_h, k_w, in_h, in_w))


def _check_softmax(what, p):
    """Every difference the kernel scales, at most min(255, -diff_min), times
    2^input_left_shift stays in int32, as TFLite's diff_min (the input radius) ensures."""
    if min(255, -p[4]) << p[3] > 0x7FFFFFFF:
        _refuse(what, "input_left_shift %d and diff_min %d overflow int32" % (p[3], p[4]))


def _overlaps(a, b):
    return a.location == ARENA and a.offset < b.offset + b.size and b.offset < a.offset + a.size


def check_op(b, index, op, read):
    """Check op `index` of blob `b`; return its work: multiply-accumulates, or elements
    visited (npu_sdk/ops.py: Kernel.work)."""
    what = "op %d" % index
    code = op.opcode
    p = op.params
    ranges, work_params, optional, constant = opcodes.CHECKS[code]
    for j in range(0, len(ranges), 3):  # flat (index, lo, hi) triples
        i, lo, hi = ranges[j], ranges[j + 1], ranges[j + 2]
        if not lo <= p[i] <= hi:
            _refuse(what, "parameter %d (%s) must be in [%d, %d], got %d"
                    % (i, opcodes.OPS[code][0], lo, hi, p[i]))
    out = b.tensors[op.outputs[0]]
    for k, i in enumerate(op.inputs):
        if i < 0:
            if k not in optional:
                _refuse(what, "input %d is required, the blob gives none (-1)" % k)
        elif _overlaps(b.tensors[i], out):
            _refuse(what, "reads tensor %d where it writes tensor %d: they overlap in the arena"
                    % (i, op.outputs[0]))
    for k in constant:
        if b.tensors[op.inputs[k]].location != CONST:
            _refuse(what, "input %d must be a constant" % k)
    if code in _PER_CHANNEL:  # input 4 is the shift table (npu_sdk/ops.py)
        t = b.tensors[op.inputs[4]]
        if t.dtype == _INT32:  # else interp.Model refuses its dtype
            data = read(t)
            for c in range(t.size // 4):
                s = struct.unpack_from("<i", data, 4 * c)[0]
                if not _SHIFT_LO <= s <= _SHIFT_HI:
                    _refuse(what, "shift[%d] must be in [%d, %d], got %d"
                            % (c, _SHIFT_LO, _SHIFT_HI, s))
    if code in _POOLS:
        _check_pool(what, p)
    elif code == opcodes.SOFTMAX:
        _check_softmax(what, p)
    work = 1
    for i in work_params:
        work *= max(p[i], 0)
    return work


def check(b, read, ram=0):
    """Check parsed blob `b` (a blobfmt.Blob) whose constant tensor t's bytes are read(t),
    for a board with `ram` bytes for its arena (0: unchecked) that runs at most `run_macs`
    of work per RUN; raise BlobError (MemoryError for the arena) naming what is wrong."""
    if ram and b.arena_size > ram:
        raise MemoryError("arena needs %d bytes, board has %d" % (b.arena_size, ram))
    for i, t in enumerate(b.tensors):
        if t.offset % DTYPE_SIZE[t.dtype]:
            _refuse("tensor %d" % i, "offset %d is not a multiple of its item size %d"
                    % (t.offset, DTYPE_SIZE[t.dtype]))
    work = 0
    for index, op in enumerate(b.ops):
        work += check_op(b, index, op, read)
    if work > run_macs:
        raise BlobError("one RUN takes %d multiply-accumulates, this board allows %d (its "
                        "profile's budget): a smaller model, or a faster board"
                        % (work, run_macs))
