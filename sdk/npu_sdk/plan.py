"""Activation-arena planner.

Usage: plan([(size, first, last), ...]) -> (offsets, arena_size). A buffer is
alive from op index `first` to op index `last` inclusive; two buffers whose
lifetimes overlap never share bytes. Greedy by size, largest first, each at the
lowest aligned offset that fits between buffers already placed (the same
strategy as TFLite Micro's GreedyMemoryPlanner).
"""

ALIGN = 16


def _align(n, a=ALIGN):
    return (n + a - 1) // a * a


def plan(buffers, align=ALIGN):
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i][0], buffers[i][1], i))
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
