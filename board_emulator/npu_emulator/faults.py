"""Fault injection on the virtual UART: bit flips, dropped and duplicated bytes, stalls.

A spec is `flip=P,drop=P,dup=P,stall=P:DURATION,seed=N` (any subset, any order).
Every rate is a probability per byte on the wire: `flip` flips one random bit of
the byte, `drop` loses it, `dup` delivers it twice, `stall` holds the line for
DURATION (`50ms`, `0.2s`, `300us`) before it. Each direction of the link gets its
own generator seeded from `seed`, and events are placed by byte count, not by how
the OS happens to chunk reads: the same seed and the same bytes give the same faults.
"""
import math
import random

_KINDS = ("stall", "flip", "drop", "dup")  # the order they act on one byte
_UNITS = (("ms", 1e-3), ("us", 1e-6), ("s", 1.0))
EXAMPLE = "flip=1e-4,drop=1e-4,dup=1e-4,stall=0.001:50ms,seed=7"


class FaultSpecError(ValueError):
    pass


class FaultSpec:
    def __init__(self, flip=0.0, drop=0.0, dup=0.0, stall=0.0, stall_s=0.0, seed=0):
        self.rates = {"flip": flip, "drop": drop, "dup": dup, "stall": stall}
        self.stall_s = stall_s
        self.seed = seed

    def __repr__(self):
        rates = ",".join("%s=%g" % (k, v) for k, v in self.rates.items() if v and k != "stall")
        stall = ",stall=%g:%gms" % (self.rates["stall"], self.stall_s * 1e3) if self.rates["stall"] else ""
        return "%s%s,seed=%d" % (rates, stall, self.seed)


def _rate(key, text):
    try:
        p = float(text)
    except ValueError:
        raise FaultSpecError("%s=%s is not a number" % (key, text)) from None
    if not 0.0 <= p <= 1.0:
        raise FaultSpecError("%s=%s is not a probability per byte (0 to 1)" % (key, text))
    return p


def _duration(text):
    for unit, scale in _UNITS:
        if text.endswith(unit):
            try:
                value = float(text[:-len(unit)])
            except ValueError:
                break
            if value < 0 or value > 60:
                raise FaultSpecError("stall duration %s is outside 0..60 s" % text)
            return value * scale
    raise FaultSpecError("stall duration %r needs a unit: 50ms, 0.2s or 300us" % text)


def parse(text):
    """'flip=1e-4,stall=0.001:50ms,seed=7' -> FaultSpec; FaultSpecError says what is wrong."""
    spec = FaultSpec()
    seen = set()
    for item in text.split(","):
        key, eq, value = item.strip().partition("=")
        if not eq or not value:
            raise FaultSpecError("%r is not KEY=VALUE" % item.strip())
        if key in seen:
            raise FaultSpecError("%s is given twice" % key)
        seen.add(key)
        if key == "seed":
            try:
                spec.seed = int(value)
            except ValueError:
                raise FaultSpecError("seed=%s is not an integer" % value) from None
        elif key == "stall":
            rate, colon, duration = value.partition(":")
            if not colon:
                raise FaultSpecError("stall=%s needs RATE:DURATION, e.g. stall=0.001:50ms" % value)
            spec.rates["stall"] = _rate(key, rate)
            spec.stall_s = _duration(duration)
        elif key in _KINDS:
            spec.rates[key] = _rate(key, value)
        else:
            raise FaultSpecError("unknown fault %r; known: %s, seed" % (key, ", ".join(_KINDS)))
    return spec


class FaultyLine:
    """One direction of the line. apply(data) -> pieces: bytes to deliver, or a float (seconds
    to hold the line). counts says how many of each fault happened so far."""

    def __init__(self, spec, direction):
        self.spec = spec
        # one generator per kind, str seeds (stable across runs): the faults depend only on
        # the seed, the direction and the byte count, never on how reads were chunked
        self.rng = {k: random.Random("%d/%s/%s" % (spec.seed, direction, k)) for k in _KINDS}
        self.pos = 0  # bytes seen so far in this direction
        self.counts = dict.fromkeys(_KINDS, 0)
        self.next = {k: self._gap(k, 0) for k in _KINDS}
        self.bit = self.rng["flip"].randrange(8)

    def _gap(self, kind, start):
        """Index of the next byte at or after `start` that suffers `kind` (geometric gaps)."""
        p = self.spec.rates[kind]
        if p <= 0.0:
            return math.inf
        if p >= 1.0:
            return start
        u = self.rng[kind].random()
        return start + int(math.log1p(-u) / math.log1p(-p))

    def apply(self, data):
        end = self.pos + len(data)
        events = []
        for order, kind in enumerate(_KINDS):
            while self.next[kind] < end:
                at = self.next[kind]
                events.append((at - self.pos, order, kind, self.bit))
                self.next[kind] = self._gap(kind, at + 1)
                if kind == "flip":
                    self.bit = self.rng["flip"].randrange(8)
        self.pos = end
        if not events:
            return [data]
        events.sort()
        out = []
        buf = bytearray()
        start = 0
        for at, _, kind, bit in events:
            if at > start:
                buf += data[start:at]
                start = at
            self.counts[kind] += 1
            if kind == "stall":
                if buf:
                    out.append(bytes(buf))
                    buf = bytearray()
                out.append(self.spec.stall_s)
            elif kind == "flip":
                if not isinstance(data, bytearray):
                    data = bytearray(data)
                data[at] ^= 1 << bit
            elif kind == "drop":
                start = at + 1
            elif start == at:  # dup, unless the byte was just dropped
                buf.append(data[at])
        buf += data[start:]
        if buf:
            out.append(bytes(buf))
        return out
