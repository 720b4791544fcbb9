"""Board: the host client every tool uses (CLI, pytest plugin, demo)."""
import struct
import time
from dataclasses import dataclass

import numpy as np

from ..errors import BoardError, LinkError, LinkTimeout
from . import codec
from .transport import DEFAULT_BAUD, open_port

_DTYPES = {0: np.int8, 1: np.int32, 2: np.float32, 3: np.int16, 4: np.uint8}


@dataclass
class BoardInfo:
    protocol: int
    ram: int
    flash: int
    free_flash: int
    max_payload: int
    firmware: str
    kernels: str
    board: str


@dataclass
class ModelEntry:
    name: str
    size: int
    blob_id: bytes


class Board:
    """A connected board. Use as a context manager; every call is one request/response."""

    def __init__(self, port, baudrate=DEFAULT_BAUD, timeout=10.0, retries=2):
        self.port = port
        self.serial = open_port(port, baudrate)
        self.timeout = timeout
        self.retries = retries
        self.deframer = codec.Deframer()
        self.seq = 0
        self.info = None
        try:
            self.info = self.hello()
        except Exception:
            self.close()
            raise

    def close(self):
        self.serial.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, ftype, payload=b"", timeout=None):
        """Send a request, return the response payload; retries on silence or damaged replies."""
        self.seq = (self.seq + 1) & 0xFF
        frame = codec.encode(ftype, self.seq, payload)
        timeout = self.timeout if timeout is None else timeout
        for _ in range(self.retries + 1):
            try:
                self.serial.write(frame)
            except Exception as e:  # pyserial raises several types for a vanished port
                raise LinkError("writing to %s failed: %s" % (self.port, e)) from e
            reply = self._wait(self.seq, time.monotonic() + timeout)
            if reply is None:
                continue
            rtype, payload = reply
            if rtype == codec.ERROR:
                code = struct.unpack_from("<H", payload)[0]
                raise BoardError(code, payload[2:].decode("utf-8", "replace"))
            if rtype != ftype | codec.RESPONSE:
                raise LinkError("board answered request 0x%02x with 0x%02x" % (ftype, rtype))
            return payload
        raise LinkTimeout("no answer from the board on %s within %.1f s (%d tries); is it running "
                          "the npu firmware and is the port right?" % (self.port, timeout, self.retries + 1))

    def _wait(self, seq, deadline):
        while time.monotonic() < deadline:
            try:
                data = self.serial.read(max(1, self.serial.in_waiting))
            except Exception as e:
                raise LinkError("reading from %s failed: %s" % (self.port, e)) from e
            for raw in self.deframer.feed(data):
                msg = codec.decode(raw)
                if msg is not None and msg[1] == seq:
                    return msg[0], msg[2]
        return None

    def hello(self):
        p = self.request(codec.HELLO, struct.pack("<H", codec.PROTOCOL_VERSION), timeout=3.0)
        proto, ram, flash, free, max_payload = struct.unpack_from("<HIIII", p)
        fw, pos = codec.unpack_str(p, 18)
        kernels, pos = codec.unpack_str(p, pos)
        board, pos = codec.unpack_str(p, pos)
        return BoardInfo(proto, ram, flash, free, max_payload, fw, kernels, board)

    def flash(self, blob, name, progress=None):
        """Install blob bytes as `name`; the board keeps its old model until this one verifies."""
        blob = bytes(blob)
        self.request(codec.FLASH_BEGIN, struct.pack("<I", len(blob)) + blob[-32:] + codec.pack_str(name))
        step = self.info.max_payload - 4
        for offset in range(0, len(blob), step):
            chunk = blob[offset:offset + step]
            self.request(codec.FLASH_DATA, struct.pack("<I", offset) + chunk)
            if progress:
                progress(len(chunk))
        self.request(codec.FLASH_END)

    def list(self):
        p = self.request(codec.LIST)
        (count,), pos = struct.unpack_from("<H", p), 2
        entries = []
        for _ in range(count):
            name, pos = codec.unpack_str(p, pos)
            size = struct.unpack_from("<I", p, pos)[0]
            entries.append(ModelEntry(name, size, p[pos + 4:pos + 36]))
            pos += 36
        return entries

    def run(self, name, inputs, repeat=1):
        """Run the model on `inputs` (one array per model input); returns (outputs, median µs)."""
        payload = struct.pack("<H", repeat) + codec.pack_str(name) + bytes([len(inputs)])
        for x in inputs:
            raw = np.ascontiguousarray(x).tobytes()
            payload += struct.pack("<I", len(raw)) + raw
        p = self.request(codec.RUN, payload)
        median_us, n = struct.unpack_from("<IB", p)
        pos, outputs = 5, []
        for _ in range(n):
            dtype, ndim = struct.unpack_from("<BB", p, pos)
            shape = struct.unpack_from("<%dI" % ndim, p, pos + 2)
            pos += 2 + 4 * ndim
            size = struct.unpack_from("<I", p, pos)[0]
            outputs.append(np.frombuffer(p[pos + 4:pos + 4 + size], dtype=_DTYPES[dtype]).reshape(shape))
            pos += 4 + size
        return outputs, median_us
