"""The board's request server: frames in, one response frame out per request (docs/protocol.md)."""
import struct

from . import blobfmt, frame
from .interp import Model
from .store import valid_name

PROTOCOL_VERSION = 0
FIRMWARE_VERSION = "0.1.0"
MAX_PAYLOAD = 4096

HELLO = 0x01
FLASH_BEGIN = 0x02
FLASH_DATA = 0x03
FLASH_END = 0x04
LIST = 0x05
RUN = 0x06
RESPONSE = 0x80
ERROR = 0xFF

# error codes (npu_sdk.link.protocol.ERRORS mirrors these)
E_UNKNOWN = 1
E_BAD_REQUEST = 2
E_VERSION = 3
E_NO_SPACE = 4
E_BAD_BLOB = 5
E_NOT_FOUND = 6
E_BAD_INPUT = 7
E_NO_MEMORY = 8
E_BAD_NAME = 9
E_INTERNAL = 10


# what a short or malformed payload raises: struct.error on CPython, ValueError on MicroPython
_MALFORMED = (IndexError, ValueError, getattr(struct, "error", ValueError))


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _str(s):
    b = s.encode()
    return bytes((len(b),)) + b


def _read_str(p, pos):
    n = p[pos]
    return bytes(p[pos + 1:pos + 1 + n]).decode(), pos + 1 + n


class Server:
    """Serves one board: `board` has uart, store, clock, npu, limits (see main.py)."""

    def __init__(self, board):
        self.board = board
        self.deframer = frame.Deframer(2 * (MAX_PAYLOAD + 6))
        self.flashing = None  # [name, size, blob_id, file, written]
        self.models = {}  # name -> Model, loaded on first RUN
        self.handlers = {HELLO: self.hello, FLASH_BEGIN: self.flash_begin,
                         FLASH_DATA: self.flash_data, FLASH_END: self.flash_end,
                         LIST: self.list, RUN: self.run}

    def serve_forever(self):
        uart = self.board.uart
        while True:
            data = uart.read()
            if data is None:  # the host side went away
                return
            for raw in self.deframer.feed(data):
                reply = self.handle(raw)
                if reply is not None:
                    uart.write(reply)

    def handle(self, raw):
        """One raw frame in, the encoded response out (None for a damaged frame: the host retries)."""
        msg = frame.decode(raw)
        if msg is None:
            return None
        ftype, seq, payload = msg
        try:
            handler = self.handlers.get(ftype)
            if handler is None:
                raise Refused(E_UNKNOWN, "unknown request type 0x%02x" % ftype)
            return frame.encode(ftype | RESPONSE, seq, handler(payload))
        except Refused as e:
            return frame.encode(ERROR, seq, struct.pack("<H", e.code) + e.message.encode())
        except _MALFORMED as e:
            return frame.encode(ERROR, seq, struct.pack("<H", E_BAD_REQUEST)
                                + ("malformed request: %s" % e).encode())
        except MemoryError as e:
            return frame.encode(ERROR, seq, struct.pack("<H", E_NO_MEMORY)
                                + ("out of memory: %s" % e).encode())
        except Exception as e:  # keep serving whatever happens
            return frame.encode(ERROR, seq, struct.pack("<H", E_INTERNAL)
                                + ("%s: %s" % (type(e).__name__, e)).encode())

    def hello(self, p):
        host_version = struct.unpack_from("<H", p, 0)[0]
        if host_version != PROTOCOL_VERSION:
            raise Refused(E_VERSION, "host speaks protocol %d, firmware %s speaks %d: update the %s"
                          % (host_version, FIRMWARE_VERSION, PROTOCOL_VERSION,
                             "firmware" if host_version > PROTOCOL_VERSION else "host SDK"))
        lim = self.board.limits
        return (struct.pack("<HIIII", PROTOCOL_VERSION, lim["ram"], lim["flash"],
                            self.board.store.free(), MAX_PAYLOAD)
                + _str(FIRMWARE_VERSION) + _str(self.board.npu_name) + _str(lim.get("board", "")))

    def flash_begin(self, p):
        size = struct.unpack_from("<I", p, 0)[0]
        blob_id = bytes(p[4:36])
        name = _read_str(p, 36)[0]
        if not valid_name(name):
            raise Refused(E_BAD_NAME, "model name %r: use 1-32 letters, digits, '_', '-', '.'" % name)
        free = self.board.store.free()
        if size > free:
            raise Refused(E_NO_SPACE, "model needs %d bytes of flash, %d free: remove a model (npu ls)"
                          % (size, free))
        self._abort()
        self.flashing = [name, size, blob_id, self.board.store.begin(name), 0]
        return b""

    def flash_data(self, p):
        if self.flashing is None:
            raise Refused(E_BAD_REQUEST, "FLASH_DATA without FLASH_BEGIN")
        offset = struct.unpack_from("<I", p, 0)[0]
        state = self.flashing
        chunk = memoryview(p)[4:]
        if offset + len(chunk) <= state[4]:  # a retransmission of data already written
            return struct.pack("<I", state[4])
        if offset != state[4]:
            raise Refused(E_BAD_REQUEST, "expected offset %d, got %d" % (state[4], offset))
        if offset + len(chunk) > state[1]:
            raise Refused(E_BAD_REQUEST, "data past the announced size %d" % state[1])
        state[3].write(chunk)
        state[4] += len(chunk)
        return struct.pack("<I", state[4])

    def flash_end(self, p):
        if self.flashing is None:
            raise Refused(E_BAD_REQUEST, "FLASH_END without FLASH_BEGIN")
        name, size, blob_id, f, written = self.flashing
        f.close()
        self.flashing = None
        store = self.board.store
        try:
            if written != size:
                raise Refused(E_BAD_BLOB, "received %d of %d bytes" % (written, size))
            with open(store.path(name, ".part"), "rb") as f:
                data = f.read()
            if data[-32:] != blob_id:
                raise Refused(E_BAD_BLOB, "blob id mismatch: the transfer was damaged")
            blobfmt.parse(data)
        except blobfmt.BlobError as e:
            store.discard(name)
            raise Refused(E_BAD_BLOB, "model rejected, old model kept: %s" % e)
        except Exception:
            store.discard(name)
            raise
        store.commit(name)
        self.models.pop(name, None)
        return b""

    def _abort(self):
        if self.flashing is not None:
            self.flashing[3].close()
            self.board.store.discard(self.flashing[0])
            self.flashing = None

    def list(self, p):
        store = self.board.store
        names = store.names()
        out = struct.pack("<H", len(names))
        for name in names:
            out += _str(name) + struct.pack("<I", store.size(name)) + store.tail(name, 32)
        return out

    def _model(self, name):
        model = self.models.get(name)
        if model is None:
            if name not in self.board.store.names():
                raise Refused(E_NOT_FOUND, "no model named %r on the board (npu ls lists them)" % name)
            self.models.clear()  # one model resident at a time: RAM is small
            try:
                model = Model(self.board.store.read(name), self.board.npu, self.board.limits["ram"])
            except blobfmt.BlobError as e:
                raise Refused(E_BAD_BLOB, "stored model %r is damaged: %s" % (name, e))
            self.models[name] = model
        return model

    def run(self, p):
        repeat = struct.unpack_from("<H", p, 0)[0]
        name, pos = _read_str(p, 2)
        model = self._model(name)
        n = p[pos]
        pos += 1
        if n != len(model.blob.inputs):
            raise Refused(E_BAD_INPUT, "model %r takes %d input(s), got %d"
                          % (name, len(model.blob.inputs), n))
        inputs = []
        for i in range(n):
            size = struct.unpack_from("<I", p, pos)[0]
            data = memoryview(p)[pos + 4:pos + 4 + size]
            if size != len(model.views[model.blob.inputs[i]]) or len(data) != size:
                raise Refused(E_BAD_INPUT, "input %d needs %d bytes, got %d"
                              % (i, len(model.views[model.blob.inputs[i]]), size))
            inputs.append(data)
            pos += 4 + size
        clock = self.board.clock
        times = []
        for _ in range(max(1, repeat)):
            # the planner reuses input bytes once read, so every run starts from a fresh copy
            for i, data in enumerate(inputs):
                model.set_input(i, data)
            t0 = clock.ticks_us()
            model.invoke()
            times.append(clock.ticks_diff(clock.ticks_us(), t0))
        times.sort()
        out = struct.pack("<IB", times[len(times) // 2], len(model.blob.outputs))
        for i, t in enumerate(model.blob.outputs):
            tensor = model.blob.tensors[t]
            out += struct.pack("<BB", tensor.dtype, len(tensor.shape))
            out += struct.pack("<%dI" % len(tensor.shape), *tensor.shape)
            out += struct.pack("<I", tensor.size) + bytes(model.output(i))
        return out
