"""Activation-arena planner.

Usage: plan([(size, first, last), ...]) -> (offsets, arena_size). A buffer is
alive from op index `first` to op index `last` inclusive; two buffers whose
lifetimes overlap never share bytes. Each buffer goes at the lowest aligned
offset that fits between buffers already placed, in one of a few orders
(largest first, as TFLite Micro's GreedyMemoryPlanner; by first use; by
size x lifetime); the smallest arena wins. Deterministic.
"""

ALIGN = 16


def _align(n, a=ALIGN):
    return (n + a - 1) // a * a


_ORDERS = (
    lambda b, i: (-b[0], b[1], i),  # largest first
    lambda b, i: (b[1], -b[0], i),  # first used first
    lambda b, i: (-b[0] * (b[2] - b[1] + 1), i),  # most bytes x ops first
    lambda b, i: (-(b[2] - b[1]), -b[0], i),  # longest lived first
)


def plan(buffers, align=ALIGN):
    best = None
    for key in _ORDERS:
        order = sorted(range(len(buffers)), key=lambda i: key(buffers[i], i))
        result = _place(buffers, order, align)
        if best is None or result[1] < best[1]:
            best = result
    return best


def _place(buffers, order, align):
    offsets = [0] * len(buffers)
    placed = []  # (offset, end, first, last)
    arena = 0
    for i in order:
        size, first, last = buffers[i]
        busy = sorted((o, e) for o, e, f, l in placed if f <= last and first <= l)
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, _align(e, align))
        offsets[i] = offset
        placed.append((offset, offset + size, first, last))
        arena = max(arena, offset + size)
    return offsets, _align(arena, align) if arena else 0


def lower_bound(buffers):
    """The largest total size of buffers alive at one time: no plan can be smaller."""
    if not buffers:
        return 0
    steps = range(min(b[1] for b in buffers), max(b[2] for b in buffers) + 1)
    return max(sum(s for s, f, l in buffers if f <= t <= l) for t in steps)
