import itertools
import random

import pytest

from npu_sdk import plan


def _overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize("seed", range(20))
def test_no_two_live_buffers_share_bytes(seed):
    rng = random.Random(seed)
    buffers = []
    for _ in range(rng.randrange(1, 12)):
        first = rng.randrange(10)
        buffers.append((rng.randrange(1, 500), first, first + rng.randrange(4)))
    offsets, arena = plan.plan(buffers)
    for i, j in itertools.combinations(range(len(buffers)), 2):
        (si, fi, li), (sj, fj, lj) = buffers[i], buffers[j]
        if fi <= lj and fj <= li:
            assert not _overlaps((offsets[i], offsets[i] + si), (offsets[j], offsets[j] + sj))
    assert all(o % plan.ALIGN == 0 for o in offsets)
    assert arena >= plan.lower_bound(buffers)
    assert all(o + s <= arena for o, (s, _, _) in zip(offsets, buffers))


def test_chain_reuses_memory():
    # a -> b -> c: a and c never live together, so they share offset 0
    offsets, arena = plan.plan([(64, 0, 1), (32, 1, 2), (64, 2, 3)])
    assert offsets[0] == offsets[2] == 0 and arena == 96
    assert plan.lower_bound([(64, 0, 1), (32, 1, 2), (64, 2, 3)]) == 96


@pytest.mark.parametrize("seed", range(10))
def test_never_worse_than_tflm_greedy(seed):
    """The plan tries several orders; TFLite Micro's largest-first greedy is one of them."""
    rng = random.Random(100 + seed)
    buffers = []
    for _ in range(rng.randrange(2, 30)):
        first = rng.randrange(20)
        buffers.append((rng.randrange(1, 5000), first, first + rng.randrange(6)))
    largest_first = sorted(range(len(buffers)), key=lambda i: (-buffers[i][0], buffers[i][1], i))
    assert plan.plan(buffers)[1] <= plan._place(buffers, largest_first, plan.ALIGN)[1]
    assert plan.plan(buffers) == plan.plan(list(buffers))  # deterministic

