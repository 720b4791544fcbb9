"""The host's codec for the link protocol, version 3 (docs/protocol.md is the spec).

firmware/npufw/frame.py and npufw/server.py are the board's twins; the golden vectors in
tests/vectors/protocol/ (tools/make_protocol_vectors.py) and the fuzz tests in
tests/unit/test_codec.py prove them equal.

Frame: 0x7E, escaped(type u8, seq u8, payload, CRC-32 LE over type..payload), 0x7E,
with 0x7D -> 7D 5D and 0x7E -> 7D 5E inside.
"""
import binascii
import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass

PROTOCOL_VERSION = 3  # 2: the FLASH_BEGIN signature covers the name; 3: versions, proofs

FLAG = 0x7E
ESC = 0x7D

HELLO = 0x01
FLASH_BEGIN = 0x02
FLASH_DATA = 0x03
FLASH_END = 0x04
LIST = 0x05
RUN = 0x06
RM = 0x07
CONSOLE = 0x08
REPL = 0x09
INPUT = 0x0A  # a piece of a RUN input, staged on the board
OUTPUT = 0x0B  # a piece of an output a RUN held on the board
KEY = 0x0C  # set, replace or clear the board's device key
FLASH_ZDATA = 0x0D  # FLASH_DATA whose data is a raw deflate stream (F_DEFLATE boards)
MEM = 0x0E  # the board's heap in use: idle, now, and for the loaded model
NONCE = 0x0F  # a fresh nonce, for the next proof of the device key
CANCEL = 0x10  # stop the RUN the board is working on (it looks between inferences)
LOG = 0x40  # unsolicited, board -> host, seq 0
RESPONSE = 0x80
NAK = 0xFE  # FLASH_DATA out of order: payload verified u32, the first byte the board lacks
ERROR = 0xFF

#: HELLO feature bits
F_DEFLATE = 1  # the board takes FLASH_ZDATA
F_REPL = 2  # REPL hands the MicroPython REPL back
F_PROFILE = 4  # RUN can time each op
F_STAGING = 8  # INPUT and OUTPUT requests, RUN_STAGED and RUN_HOLD
F_SIGNING = 16  # KEY requests and signed FLASH_BEGIN
F_KEYED = 32  # the board has a device key: it installs only blobs signed with it
F_ICOUNT = 64  # the board's clock counts instructions, 1,000 per us (QEMU's -icount shift=0)
F_LOCKED = 128  # the board never hands its REPL over (locked with KEY_LOCK), for good
F_CANCEL = 256  # CANCEL, and RUN_CANCELLABLE: a RUN that reads the line between inferences

#: FLASH_ZDATA: log2 of the deflate window; a chunk is compressed on its own, so no
#: back-reference reaches past its start and a 4 KB window covers any chunk a board takes
ZDATA_WBITS = 12

#: FLASH_BEGIN answer states
BEGIN_SEND = 0  # send data from `verified` on (0: a fresh transfer; more: a resumed one)
BEGIN_INSTALLED = 1  # the board already holds this blob under this name: nothing to send

#: RUN flags
RUN_PROFILE = 1
RUN_STAGED = 2  # the inputs were uploaded with INPUT; the RUN carries none
RUN_HOLD = 4  # outputs too long for one answer stay on the board, read with OUTPUT
RUN_CANCELLABLE = 8  # between inferences: stop at CANCEL, answer others busy/working
OUT_HELD = 0x80  # RUN answer: dtype | OUT_HELD marks an output whose bytes are held

#: Board error codes and what they mean.
ERRORS = {
    1: "unknown request", 2: "bad request", 3: "protocol version mismatch", 4: "no space",
    5: "bad blob", 6: "not found", 7: "bad input", 8: "out of memory", 9: "bad name",
    10: "internal error", 11: "not available", 12: "frame too long", 13: "signature",
    14: "cancelled", 15: "busy", 16: "working",
}
E_CANCELLED = 14  # a RUN stopped by CANCEL
E_BUSY = 15  # the board works on another request: this one was not run
E_WORKING = 16  # the board still works on this very request (a retransmission of it)

NAMES = {HELLO: "HELLO", FLASH_BEGIN: "FLASH_BEGIN", FLASH_DATA: "FLASH_DATA", FLASH_END: "FLASH_END",
         LIST: "LIST", RUN: "RUN", RM: "RM", CONSOLE: "CONSOLE", REPL: "REPL", INPUT: "INPUT",
         OUTPUT: "OUTPUT", KEY: "KEY", FLASH_ZDATA: "FLASH_ZDATA", MEM: "MEM", NONCE: "NONCE",
         CANCEL: "CANCEL", LOG: "LOG", NAK: "NAK", ERROR: "ERROR"}


def frame_name(ftype):
    if ftype not in (NAK, ERROR) and ftype & RESPONSE:
        return NAMES.get(ftype & 0x7F, "0x%02x" % (ftype & 0x7F)) + "+ACK"
    return NAMES.get(ftype, "0x%02x" % ftype)


def encode(ftype, seq, payload=b""):
    body = bytes([ftype, seq & 0xFF]) + bytes(payload)
    body += struct.pack("<I", binascii.crc32(body))
    return b"\x7e" + body.replace(b"\x7d", b"\x7d\x5d").replace(b"\x7e", b"\x7d\x5e") + b"\x7e"


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
        elif b == FLAG:
            return None
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
    if pos + 1 + n > len(p):
        raise ValueError("string runs past the end of the payload")
    return bytes(p[pos + 1:pos + 1 + n]).decode(), pos + 1 + n


# --- messages -----------------------------------------------------------------------

@dataclass
class Hello:
    protocol: int
    ram: int
    flash: int
    free_flash: int
    max_payload: int
    window: int
    features: int
    firmware: str
    kernels: str
    board: str
    ops: tuple


def hello_request(version=PROTOCOL_VERSION):
    return struct.pack("<H", version)


def parse_hello(p):
    """HELLO answer payload -> Hello; ValueError when it is not an answer in PROTOCOL_VERSION."""
    if len(p) < 2:
        raise ValueError("HELLO answer too short")
    proto = struct.unpack_from("<H", p)[0]
    if proto != PROTOCOL_VERSION:
        raise ValueError("board speaks protocol %d" % proto)
    fields = struct.unpack_from("<HIIIIII", p)
    fw, pos = unpack_str(p, 26)
    kernels, pos = unpack_str(p, pos)
    board, pos = unpack_str(p, pos)
    n = p[pos]
    ops = tuple(p[pos + 1:pos + 1 + n])
    if len(ops) != n or pos + 1 + n != len(p):
        raise ValueError("HELLO answer has a bad op list")
    return Hello(*fields, fw, kernels, board, ops)


def flash_begin_request(size, blob_id, name, mac=None, version=0, flags=0):
    """For a keyed board, `version u32, flags u8, mac[32]` (blob_mac of this blob_id, name,
    version and flags) travel last; a host without a key sends none."""
    signed = struct.pack("<IB", version, flags) + bytes(mac) if mac else b""
    return struct.pack("<I", size) + bytes(blob_id) + pack_str(name) + signed


#: what a blob signature and a proof of the key cover first (npufw/sign.py mirrors them)
SIGN_TAG = b"npu-blob"
AUTH_TAG = b"npu-auth"
KEY_SIZE = 32
DOWNGRADE = 1  # FLASH_BEGIN flags: install over a newer version (signed over a fresh nonce)
KEY_LOCK = 1  # KEY flags: lock the board (no REPL hand-over, ever)


def blob_mac(key, blob_id, name, version=0, flags=0, nonce=b""):
    """The signature a keyed board wants in FLASH_BEGIN to install blob `blob_id` as `name`,
    version `version`: HMAC-SHA256(key, SIGN_TAG + blob_id + version u32 + flags u8 [+ the
    board's nonce, for a DOWNGRADE] + name as UTF-8). blob_id is the blob's SHA-256, which
    FLASH_END checks, so this binds the whole blob, its version and the name."""
    # fixed-size fields first and the name last: the concatenation is unambiguous
    msg = (SIGN_TAG + bytes(blob_id) + struct.pack("<IB", version, flags) + bytes(nonce)
           + name.encode("utf-8"))
    return hmac.new(bytes(key), msg, hashlib.sha256).digest()


def proof(key, nonce, ftype, body):
    """Proof of the device key for request `ftype` with payload `body` (RM, REPL, KEY on a
    keyed board): HMAC-SHA256(key, AUTH_TAG + nonce + type u8 + body), nonce from NONCE."""
    msg = AUTH_TAG + bytes(nonce) + bytes((ftype,)) + bytes(body)
    return hmac.new(bytes(key), msg, hashlib.sha256).digest()


NONCE_SIZE = 16


def parse_nonce(p):
    """NONCE answer -> the nonce (16 bytes)."""
    if len(p) != NONCE_SIZE:
        raise ValueError("NONCE answer must be %d bytes, got %d" % (NONCE_SIZE, len(p)))
    return bytes(p)


def key_request(new_key, old_key=None, nonce=None, lock=False):
    """KEY: new_key[32] (zeros: remove the key), with `lock` a flags byte KEY_LOCK, then
    proof(old_key, nonce, KEY, what comes before it), or zeros for a board without a key."""
    body = bytes(new_key) + (bytes((KEY_LOCK,)) if lock else b"")
    return body + (proof(old_key, nonce, KEY, body) if old_key else bytes(KEY_SIZE))


def parse_flash_begin(p):
    """-> (state, verified)"""
    return struct.unpack("<BI", p)


def flash_data_request(offset, data):
    return struct.pack("<I", offset) + bytes(data)


def flash_zdata_request(offset, data):
    """FLASH_ZDATA for the chunk `data` at `offset`, or None when deflate does not shrink it
    (then send it as FLASH_DATA)."""
    z = zlib.compressobj(9, zlib.DEFLATED, -ZDATA_WBITS)
    packed = z.compress(bytes(data)) + z.flush()
    return struct.pack("<I", offset) + packed if len(packed) < len(data) else None


def parse_verified(p):
    """FLASH_DATA ACK or NAK payload -> verified offset."""
    return struct.unpack("<I", p)[0]


def run_request(name, inputs, repeat=1, flags=0):
    """`inputs`: raw bytes per model input."""
    out = struct.pack("<HB", repeat, flags) + pack_str(name) + bytes([len(inputs)])
    for raw in inputs:
        out += struct.pack("<I", len(raw)) + bytes(raw)
    return out


def input_request(name, index, offset, data):
    """INPUT: a piece of RUN input `index` of model `name`, written at `offset`."""
    return pack_str(name) + struct.pack("<BI", index, offset) + bytes(data)


def output_request(name, index, offset, count):
    """OUTPUT: up to `count` bytes of held output `index` from `offset`."""
    return pack_str(name) + struct.pack("<BII", index, offset, count)


def parse_run(p):
    """-> (median_us, [(dtype, shape, bytes)], [(opcode, us)] or None)

    A held output (RUN_HOLD) comes back as (dtype | OUT_HELD, shape, its length as an int):
    read its bytes with OUTPUT."""
    median_us, n = struct.unpack_from("<IB", p)
    pos, outputs = 5, []
    for _ in range(n):
        dtype, ndim = struct.unpack_from("<BB", p, pos)
        shape = struct.unpack_from("<%dI" % ndim, p, pos + 2)
        pos += 2 + 4 * ndim
        size = struct.unpack_from("<I", p, pos)[0]
        if dtype & OUT_HELD:
            outputs.append((dtype, shape, size))
            pos += 4
            continue
        data = p[pos + 4:pos + 4 + size]
        if len(data) != size:
            raise ValueError("RUN answer truncated")
        outputs.append((dtype, shape, data))
        pos += 4 + size
    profile = None
    if pos < len(p):
        count = struct.unpack_from("<H", p, pos)[0]
        pos += 2
        profile = [struct.unpack_from("<BI", p, pos + 5 * i) for i in range(count)]
        pos += 5 * count
    if pos != len(p):
        raise ValueError("RUN answer has %d trailing bytes" % (len(p) - pos))
    return median_us, outputs, profile


def parse_list(p):
    """-> [(name, size, blob_id)]"""
    (count,), pos = struct.unpack_from("<H", p), 2
    entries = []
    for _ in range(count):
        name, pos = unpack_str(p, pos)
        size = struct.unpack_from("<I", p, pos)[0]
        entries.append((name, size, bytes(p[pos + 4:pos + 36])))
        pos += 36
    return entries


def parse_memory(p):
    """MEM answer -> dict(heap, idle, now, model, before_load, after_load, after_invoke,
    model_ram): bytes of the board's heap (idle: at boot), None for what the board cannot
    measure (-1 on the wire). model_ram: the loaded model's peak over its before_load."""
    heap, idle, now = struct.unpack_from("<iii", p)
    model, pos = unpack_str(p, 12)
    out = {k: (None if v < 0 else v) for k, v in zip(
        ("heap", "idle", "now", "before_load", "after_load", "after_invoke"),
        (heap, idle, now) + struct.unpack_from("<iii", p, pos))}
    out["model"] = model or None
    peaks = [v for v in (out["after_load"], out["after_invoke"]) if v is not None]
    out["model_ram"] = max(peaks) - out["before_load"] if peaks and out["before_load"] is not None \
        else None
    return out


def parse_console(p):
    """CONSOLE answer: the board's recent log lines -> [(ticks_ms, text)]."""
    count, pos, lines = p[0], 1, []
    for _ in range(count):
        ms = struct.unpack_from("<I", p, pos)[0]
        text, pos = unpack_str(p, pos + 4)
        lines.append((ms, text))
    return lines


def parse_log(p):
    """LOG frame payload -> (ticks_ms, text)."""
    return struct.unpack_from("<I", p)[0], bytes(p[4:]).decode("utf-8", "replace")


def parse_error(p):
    """ERROR payload -> (code, message)."""
    return struct.unpack_from("<H", p)[0], bytes(p[2:]).decode("utf-8", "replace")


def parse_cancel(p):
    """CANCEL answer -> whether a RUN was working and stopped."""
    if len(p) != 1:
        raise ValueError("CANCEL answer must be 1 byte, got %d" % len(p))
    return bool(p[0])
