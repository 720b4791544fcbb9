"""The host's codec for the link protocol (docs/protocol.md). firmware/npufw/frame.py and
npufw/server.py are the board's twins; tests/unit/test_codec.py proves them equal.

Frame: 0x7E, escaped(type u8, seq u8, payload, CRC-32 LE over type..payload), 0x7E,
with 0x7D -> 7D 5D and 0x7E -> 7D 5E inside.
"""
import binascii
import struct

PROTOCOL_VERSION = 0

FLAG = 0x7E
ESC = 0x7D

HELLO = 0x01
FLASH_BEGIN = 0x02
FLASH_DATA = 0x03
FLASH_END = 0x04
LIST = 0x05
RUN = 0x06
RESPONSE = 0x80
ERROR = 0xFF

#: Board error codes and what they mean.
ERRORS = {
    1: "unknown request", 2: "bad request", 3: "protocol version mismatch", 4: "no space",
    5: "bad blob", 6: "not found", 7: "bad input", 8: "out of memory", 9: "bad name",
    10: "internal error",
}


def encode(ftype, seq, payload=b""):
    body = bytes([ftype, seq & 0xFF]) + bytes(payload)
    body += struct.pack("<I", binascii.crc32(body))
    out = bytearray([FLAG])
    for b in body:
        if b in (FLAG, ESC):
            out += bytes([ESC, b ^ 0x20])
        else:
            out.append(b)
    out.append(FLAG)
    return bytes(out)


def decode(raw):
    """Frame contents between flags -> (type, seq, payload); None when damaged."""
    body = bytearray()
    it = iter(raw)
    for b in it:
        if b == ESC:
            nxt = next(it, None)
            if nxt not in (FLAG ^ 0x20, ESC ^ 0x20):
                return None
            body.append(nxt ^ 0x20)
        else:
            body.append(b)
    if len(body) < 6 or struct.unpack("<I", body[-4:])[0] != binascii.crc32(body[:-4]):
        return None
    return body[0], body[1], bytes(body[2:-4])


class Deframer:
    """Accumulates received bytes and returns complete frame contents."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        frames = []
        while True:
            start = self.buf.find(FLAG)
            if start < 0:
                self.buf.clear()
                return frames
            end = self.buf.find(FLAG, start + 1)
            if end < 0:
                del self.buf[:start]
                return frames
            if end > start + 1:
                frames.append(bytes(self.buf[start + 1:end]))
            del self.buf[:end]


def pack_str(s):
    b = s.encode()
    if len(b) > 255:
        raise ValueError("string too long for the protocol: %r" % s)
    return bytes([len(b)]) + b


def unpack_str(p, pos):
    n = p[pos]
    return p[pos + 1:pos + 1 + n].decode(), pos + 1 + n
