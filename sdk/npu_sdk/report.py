"""What a compiled model costs: per layer and in total, and whether it fits a board.

Everything is read back from the blob, so the report describes exactly what ships.
"""
import math

from . import blob as blobfmt
from . import ops
from .profiles import run_macs
from .errors import NpuError


def _elements(t):
    return math.prod(t.shape[:t.ndim])  # no numpy: flashing counts a model's MACs too


def layers(data):
    """Per-op rows: op, input/output shapes, MACs, weight bytes, arena offset and size of the output."""
    b = blobfmt.unpack(data)
    rows = []
    for i, op in enumerate(b.ops):
        ins = [b.tensors[t] for t in op.inputs if t >= 0]
        out = b.tensors[op.outputs[0]]
        consts = [t for t in ins if t.location == "const"]
        weights = next((t for t in ins[1:2] if t.location == "const" and t.dtype == "int8"), None)
        # one MAC per weight per output position: FC and convolutions alike
        channels = out.shape[out.ndim - 1]
        macs = _elements(out) * _elements(weights) // channels if weights is not None else 0
        rows.append(dict(index=i, op=blobfmt.OPNAMES.get(op.opcode, str(op.opcode)),
                         inputs=[list(t.shape[:t.ndim]) for t in ins if t.location == "arena"],
                         output=list(out.shape[:out.ndim]), macs=macs,
                         weight_bytes=sum(t.size for t in consts),
                         arena_offset=out.offset, arena_bytes=out.size))
    return rows, b


def report(data, profile=None):
    """The whole report as a dict (what `npu inspect --json` prints)."""
    rows, b = layers(data)
    totals = dict(flash_bytes=len(data), ram_bytes=b.header.value.arena_size,
                  weight_bytes=b.header.value.const_size, macs=sum(r["macs"] for r in rows),
                  ops=len(rows))
    out = dict(layers=rows, totals=totals)
    if profile is not None:
        pool, need = board_ram(data, profile)
        out["board"] = dict(name=profile["name"], ram=profile["ram"], flash=profile["flash"],
                            model_pool=pool, model_ram=need, ram_margin=pool - need,
                            flash_margin=profile["flash"] - totals["flash_bytes"],
                            run_work=ops.run_work(b.ops), run_budget=run_macs(profile["name"]))
        bd = out["board"]
        bd["fits"] = bd["ram_margin"] >= 0 and bd["flash_margin"] >= 0 \
            and bd["run_work"] <= bd["run_budget"]
    return out


def board_ram(data, profile):
    """(the board's model pool, what the blob takes of it), as the firmware counts them
    (npufw/pool.py, npufw/stream.py): the arena, plus the blob or its weight buffers where
    the board's flash is not memory-mapped (the qemu boards' is)."""
    from npufw import blobfmt as fw_blobfmt
    from npufw import pool, stream
    size = pool.size(profile["ram"], profile["ram"])
    b = fw_blobfmt.parse(bytes(data), check_sha=False)
    return size, stream.pool_need(b, len(data), size, mapped="qemu" in profile)


def format_text(rep):
    lines = ["%-3s %-16s %-22s %-16s %10s %9s %8s %7s" % ("#", "op", "inputs", "output", "MACs",
                                                         "weights", "offset", "bytes")]
    for r in rep["layers"]:
        lines.append("%-3d %-16s %-22s %-16s %10d %9d %8d %7d" % (
            r["index"], r["op"], " ".join("x".join(map(str, s)) for s in r["inputs"]),
            "x".join(map(str, r["output"])), r["macs"], r["weight_bytes"], r["arena_offset"],
            r["arena_bytes"]))
    t = rep["totals"]
    lines.append("total: %d ops, %d MACs, flash %d bytes (weights %d), RAM (arena) %d bytes"
                 % (t["ops"], t["macs"], t["flash_bytes"], t["weight_bytes"], t["ram_bytes"]))
    if "board" in rep:
        bd = rep["board"]
        lines.append("%s %s: RAM %d bytes of its %d-byte model pool (%+d spare; the pool is 5/8 "
                     "of its %d-byte heap), flash %+d bytes spare of %d"
                     % ("fits" if bd["fits"] else "DOES NOT FIT", bd["name"], bd["model_ram"],
                        bd["model_pool"], bd["ram_margin"], bd["ram"], bd["flash_margin"],
                        bd["flash"]))
        lines.append("work of one RUN: %d of the %d the board allows (multiply-accumulates and "
                     "pooling window elements)" % (bd["run_work"], bd["run_budget"]))
    return "\n".join(lines)


def lifetimes(data):
    """Arena tensors as (name, offset, size, first op, last op), read back from the blob."""
    b = blobfmt.unpack(data)
    last_op = max(len(b.ops) - 1, 0)
    span = {t: [0, 0] for t in b.inputs}
    for i, op in enumerate(b.ops):
        for t in list(op.inputs) + list(op.outputs):
            if t >= 0 and b.tensors[t].location == "arena":
                s = span.setdefault(t, [i, i])
                s[0], s[1] = min(s[0], i), max(s[1], i)
    for t in b.outputs:
        span.setdefault(t, [last_op, last_op])[1] = last_op
    return [("t%d" % t, b.tensors[t].offset, b.tensors[t].size, f, l) for t, (f, l) in sorted(span.items())]


def plot(data, path, title="arena"):
    """The arena over time as a PNG: one box per tensor, op index across, offset up."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise NpuError("--plot needs matplotlib: pip install 'npu-sdk[plot]'") from e
    rows, b = layers(data)
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.5), 4))
    for name, offset, size, first, last in lifetimes(data):
        ax.add_patch(plt.Rectangle((first - 0.4, offset), last - first + 0.8, size, alpha=0.6,
                                   edgecolor="black"))
        ax.text(first - 0.35, offset + size / 2, name, fontsize=7, va="center")
    ax.set_xlim(-1, len(rows))
    ax.set_ylim(0, max(b.header.value.arena_size, 1))
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(["%d %s" % (r["index"], r["op"]) for r in rows], rotation=60, ha="right",
                       fontsize=7)
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title("%s: arena %d bytes" % (title, b.header.value.arena_size))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
