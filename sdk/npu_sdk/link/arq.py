"""FLASH_DATA streaming: a window of chunks in flight, selective repeat (docs/protocol.md).

The board acknowledges every frame with the offset it has written so far (ACK), or NAKs a
frame that arrived after a gap with the same offset. The line is FIFO, so an answer (ACK or
NAK, matched by seq) to a frame sent after the latest copy of the chunk at `verified` proves
that copy lost: it is resent at once, with an empty FLASH_DATA probe behind it (and behind
the last chunk) so that an answer always follows. Only when answers stop (the probe lost
too) does the retransmission timeout (2 x smoothed round trip, doubled on each expiry)
resend it. `timeout` x (retries + 1) seconds without progress ends in LinkTimeout.

Chunks are `chunk` bytes at most, halved on every loss (down to CHUNK_MIN) and doubled after
`window` bytes acknowledged without one; a resend covers the range of the copy it replaces
(in pieces of the current size), so every acknowledged offset starts a chunk that was sent.
A chunk goes deflated (FLASH_ZDATA) where the board takes it and deflate makes it shorter.
"""
import time

from ..errors import BoardError, LinkTimeout
from . import codec

#: FLASH_DATA payload bytes per frame: the sender starts at CHUNK (framing then costs 0.6 %)
#: and halves its chunks on every loss down to CHUNK_MIN (a frame of L bytes is lost with
#: probability ~ 1 - (1 - p)^L on a line that damages a byte with probability p), doubling
#: them again after a window's worth of bytes acknowledged without a loss
CHUNK = 2048
CHUNK_MIN = 256
_INITIAL_RTO = 1.0
_MIN_RTO = 0.2


class FlashStream:
    """Sends data[start:] to a board as FLASH_DATA; `link` is the Board whose frames it uses
    (_next_seq, _send, _frames, info, timeout, retries, port). `result` (a FlashResult)
    counts what went on the line."""

    def __init__(self, link, data, start, chunk, progress, result):
        self.link = link
        self.data = data
        self.size = len(data)
        self.progress = progress
        self.result = result
        info = link.info
        self.top = max(1, min(chunk, info.max_payload - 4))
        self.floor = min(CHUNK_MIN, self.top)
        self.step = self.top
        self.window = max(info.window, self.top)
        self.deflate = info.features & codec.F_DEFLATE
        self.clean = 0  # bytes acknowledged since the last loss
        self.acked = self.nxt = start
        self.frames = {}  # offset -> ((type, payload), data bytes) of the chunk sent there, until acked
        self.first_sent = {}  # offset -> time of first send (round-trip samples: never resent)
        self.last_sent = {}
        self.sent_order = {}  # offset -> number of its latest send
        self.seq_order = {}  # seq -> number of the send that used it
        self.count = 0
        self.srtt = None
        self.rto = _INITIAL_RTO
        self.progress_at = time.monotonic()
        self.give_up = link.timeout * (link.retries + 1)

    def _probe(self):
        """An empty FLASH_DATA at `acked`: the board answers with what it has verified. The
        line is FIFO, so its answer says whether every frame sent before it arrived."""
        seq = self.link._next_seq()
        self.link._send(codec.FLASH_DATA, seq, codec.flash_data_request(self.acked, b""))
        self.count += 1
        self.seq_order[seq] = self.count

    def _pack(self, off, n):
        """The frame for the n bytes at `off`: deflated where the board takes it and that
        makes it shorter."""
        piece = self.data[off:off + n]
        payload = self.deflate and codec.flash_zdata_request(off, piece)
        self.frames[off] = ((codec.FLASH_ZDATA, payload) if payload else
                            (codec.FLASH_DATA, codec.flash_data_request(off, piece)), len(piece))

    def _transmit(self, off):
        (ftype, payload), n = self.frames[off]
        seq = self.link._next_seq()
        self.link._send(ftype, seq, payload)
        self.count += 1
        self.sent_order[off] = self.seq_order[seq] = self.count
        self.result.sent += len(payload) - 4
        now = time.monotonic()
        if off in self.last_sent:
            self.result.retransmits += 1
            self.first_sent.pop(off, None)  # its round trip would be ambiguous (Karn)
        else:
            self.first_sent[off] = now
        self.last_sent[off] = now
        return n

    def _send_new(self, off):
        """New data at `off`, `step` bytes; returns its length."""
        self._pack(off, min(self.step, self.size - off))
        n = self._transmit(off)
        if off + n >= self.size:
            self._probe()  # nothing may follow it: make sure an answer tells if it got through
        return n

    def _resend(self, off):
        """The chunk at `off` again, lost: its range, in `step`-byte pieces when the chunks
        shrank since it was sent (the board holds what follows by offset), then a probe."""
        self.step, self.clean = max(self.floor, self.step // 2), 0
        if off not in self.frames:
            self._pack(off, min(self.step, self.size - off))
        end = off + self.frames[off][1]
        pieces = range(off, end, self.step)
        if len(pieces) > 1:
            for q in pieces:
                self._pack(q, min(self.step, end - q))
        for q in pieces:
            self._transmit(q)
        self._probe()

    def _room(self):
        nxt, size = self.nxt, self.size
        return nxt < size and (nxt == self.acked or nxt + min(self.step, size - nxt) <= self.acked + self.window)

    def _acknowledged(self, verified, now):
        """The board verified up to `verified` > acked: take a round-trip sample, grow the
        chunks after a clean window, forget what is acknowledged."""
        acked = self.acked
        # a round-trip sample only from a chunk acknowledged on its own arrival:
        # one released from the board's hold waited for a resend (Karn)
        sample = (self.first_sent.get(acked) if verified - acked <= self.frames.get(acked, (0, self.size))[1]
                  else None)
        if sample is not None:
            r = now - sample
            self.srtt = r if self.srtt is None else 0.875 * self.srtt + 0.125 * r
        self.rto = max(_MIN_RTO, 2 * self.srtt) if self.srtt is not None else self.rto
        if self.progress:
            self.progress(verified - acked)
        self.clean += verified - acked
        if self.clean >= self.window and self.step < self.top:
            self.step, self.clean = min(self.top, 2 * self.step), 0
        for off in [o for o in self.last_sent if o < verified]:
            del self.last_sent[off]
            self.first_sent.pop(off, None)
            self.sent_order.pop(off, None)
            self.frames.pop(off, None)
        self.acked = verified
        self.progress_at = now
        if self.nxt < verified:
            self.nxt = verified

    def run(self):
        size = self.size
        while self.acked < size:
            while self._room():
                self.nxt += self._send_new(self.nxt)
            now = time.monotonic()
            oldest = self.last_sent.get(self.acked, now)
            deadline = min(oldest + self.rto, now + 0.05)
            for rtype, rseq, p in self.link._frames(deadline):
                if rtype == codec.ERROR:
                    code, message = codec.parse_error(p)
                    raise BoardError(code, message)
                if rtype not in (codec.FLASH_DATA | codec.RESPONSE, codec.FLASH_ZDATA | codec.RESPONSE,
                                 codec.NAK) or len(p) != 4:
                    continue
                verified = codec.parse_verified(p)
                if verified > self.acked:
                    self._acknowledged(verified, time.monotonic())
                    if self.acked >= size:
                        break
                # the line is FIFO: an answer to a frame sent after the latest copy of the
                # chunk at `verified` that still lacks it means that copy was lost: resend it
                # now (with a probe behind it), no timer
                if verified == self.acked < self.nxt and self.acked in self.sent_order \
                        and self.seq_order.get(rseq, 0) > self.sent_order[self.acked]:
                    self._resend(self.acked)
                if self._room():
                    break  # room in the window: send more first
            now = time.monotonic()
            if self.acked < size and now - max(self.last_sent.get(self.acked, now), self.progress_at) >= self.rto:
                self._resend(self.acked)  # no progress: resend the oldest, back off
                self.result.timeouts += 1
                self.rto = min(self.rto * 2, max(self.link.timeout, _MIN_RTO))
            if now - self.progress_at > self.give_up:
                raise LinkTimeout("flashing stalled at byte %d of %d: no progress on %s for %.1f s; "
                                  "run the same command again to resume"
                                  % (self.acked, size, self.link.port, self.give_up))
