"""Firmware side of the link framing (docs/protocol.md); tests prove it equal to npu_sdk.link.codec.

A frame on the wire: 0x7E, escaped(type u8, seq u8, payload, CRC-32 LE of those), 0x7E.
Escaping: 0x7D -> 0x7D 0x5D, 0x7E -> 0x7D 0x5E; bytes.replace keeps it in C on both VMs.
"""
import binascii
import struct

FLAG = b"\x7e"
_ESC = b"\x7d"


def encode(ftype, seq, payload):
    body = bytes((ftype, seq & 0xFF)) + payload
    body += struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF)
    return FLAG + body.replace(_ESC, b"\x7d\x5d").replace(FLAG, b"\x7d\x5e") + FLAG


def decode(raw):
    """Unescaped and CRC-checked (type, seq, payload), or None for a damaged frame.

    Every 0x7D must open an escape (7D 5D or 7D 5E) and no 0x7E may appear inside, as in
    the SDK's decoder; the counts keep the check in C."""
    raw = bytes(raw)
    if FLAG in raw or raw.count(_ESC) != raw.count(b"\x7d\x5d") + raw.count(b"\x7d\x5e"):
        return None
    body = raw.replace(b"\x7d\x5e", FLAG).replace(b"\x7d\x5d", _ESC)
    if len(body) < 6:
        return None
    if struct.unpack("<I", body[-4:])[0] != binascii.crc32(memoryview(body)[:-4]) & 0xFFFFFFFF:
        return None
    return body[0], body[1], body[2:-4]


def _head(raw):
    """(type, seq) from the first bytes of an unfinished frame (unescaped), or None."""
    body = bytes(raw[:8]).replace(b"\x7d\x5e", FLAG).replace(b"\x7d\x5d", _ESC)
    if len(body) < 2:
        return None
    return body[0], body[1]


class Deframer:
    """Feeds received bytes, yields raw frame contents between flags.

    A frame whose escaped contents grow past `max_len` is not buffered: its (type, seq),
    read from its first bytes (no CRC yet), goes to `too_long` so the server can answer it
    with an error, and the rest of it is skipped up to the next flag."""

    def __init__(self, max_len):
        self.max_len = max_len
        self.buf = bytearray()
        self.skipping = False
        self.too_long = []  # (type, seq) heads of over-long frames, drained by the server

    def feed(self, data):
        if self.skipping:
            i = bytes(data).find(FLAG)
            if i < 0:
                return []
            self.skipping = False
            data = data[i:]
        self.buf.extend(data)
        frames = []
        while True:
            start = self.buf.find(FLAG)
            if start < 0:
                self.buf = bytearray()
                break
            end = self.buf.find(FLAG, start + 1)
            if end < 0:
                if start:
                    self.buf = self.buf[start:]
                if len(self.buf) > self.max_len + 1:  # too long: answer it, skip the rest
                    head = _head(self.buf[1:])
                    if head is not None:
                        self.too_long.append(head)
                    self.buf = bytearray()
                    self.skipping = True
                break
            if end - start - 1 > self.max_len:  # a whole frame that is too long
                head = _head(self.buf[start + 1:end])
                if head is not None:
                    self.too_long.append(head)
            elif end > start + 1:
                frames.append(bytes(memoryview(self.buf)[start + 1:end]))  # one copy, not two
            self.buf = self.buf[end:]  # a closing flag may open the next frame
        return frames
