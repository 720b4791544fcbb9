"""Board: the host client every tool uses (CLI, pytest plugin, demo)."""
import os
import struct
import time
from dataclasses import dataclass

import numpy as np

from .. import blob
from ..errors import BoardError, LinkError, LinkTimeout, ModelError
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
        self.models = {}  # name -> ModelSpec (None: unknown) of what this connection flashed or looked up
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
        p = self.request(codec.HELLO, struct.pack("<H", codec.PROTOCOL_VERSION),
                         timeout=min(3.0, self.timeout))
        proto, ram, flash, free, max_payload = struct.unpack_from("<HIIII", p)
        fw, pos = codec.unpack_str(p, 18)
        kernels, pos = codec.unpack_str(p, pos)
        board, pos = codec.unpack_str(p, pos)
        return BoardInfo(proto, ram, flash, free, max_payload, fw, kernels, board)

    def flash(self, source, name=None, progress=None, *, skip_if_same=False):
        """Install a model as `name`; the board keeps its old model until this one verifies.

        `source` is a path to an .npb blob or a .tflite model (compiled here), blob bytes
        (then `name` is required) or a `compiler.Compiled`. `name` defaults to the file's
        stem. `progress(n)` is called with each chunk's size. With `skip_if_same`, nothing is
        sent when the board already holds this exact blob under `name`. Returns a ModelSpec.
        """
        data, spec = load_model(source, name)
        name = spec.name
        if not (skip_if_same and any(e.name == name and e.blob_id == spec.blob_id
                                     for e in self.list())):
            self.request(codec.FLASH_BEGIN, struct.pack("<I", len(data)) + data[-32:]
                         + codec.pack_str(name))
            step = self.info.max_payload - 4
            for offset in range(0, len(data), step):
                chunk = data[offset:offset + step]
                self.request(codec.FLASH_DATA, struct.pack("<I", offset) + chunk)
                if progress:
                    progress(len(chunk))
            self.request(codec.FLASH_END)
        self.models[name] = spec
        return spec

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

    def spec(self, name):
        """The ModelSpec of model `name` if this process has seen its blob, else None."""
        if name not in self.models:
            entry = next((e for e in self.list() if e.name == name), None)
            known = _SEEN.get(entry.blob_id) if entry else None
            self.models[name] = known and known.renamed(name)
        return self.models[name]

    def run(self, name, x):
        """Run a single-input, single-output model on `x`; returns the output array.

        `x` has the model's input shape and dtype (leading 1s may be left out, so an (8, 8)
        image fits a (1, 8, 8) input). Models with several inputs or outputs: `invoke`.
        """
        spec = self.spec(name)
        if spec is not None and len(spec.inputs) != 1:
            raise ValueError("model %r has %d inputs; Board.run takes one, use "
                             "Board.invoke(%r, [x0, x1, ...])" % (name, len(spec.inputs), name))
        outputs, _ = self.invoke(name, [x])
        if len(outputs) != 1:
            raise ValueError("model %r has %d outputs; Board.run returns one, use "
                             "Board.invoke(%r, [x]) to get them all" % (name, len(outputs), name))
        return outputs[0]

    def invoke(self, name, inputs, repeat=1):
        """Run the model on `inputs` (one array per model input) `repeat` times.

        Returns (outputs, median µs measured by the board's clock). Inputs are checked
        against the model's spec when this process knows it; the board checks them anyway.
        """
        if not 1 <= repeat <= 0xFFFF:
            raise ValueError("repeat must be 1..65535, got %r" % (repeat,))
        spec = self.models.get(name)
        if spec:
            inputs = spec.check_inputs(inputs)
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


def load_model(source, name=None):
    """Return (blob bytes, ModelSpec) for a flash source; nothing touches a board.

    A path ending in .npb is read and verified, any other path is compiled as a .tflite
    (an .npb under another suffix is recognised by its magic); bytes and
    `compiler.Compiled` results are verified and need `name`.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        name = name or os.path.splitext(os.path.basename(path))[0]
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as e:
            raise ModelError("cannot read model %s: %s" % (path, e.strerror or e)) from e
        if path.endswith(".npb") or head == blob.MAGIC:
            with open(path, "rb") as f:
                data = f.read()
        else:
            from .. import compiler
            data = compiler.compile_file(path).blob
    elif isinstance(source, (bytes, bytearray, memoryview)) or hasattr(source, "blob"):
        data = bytes(getattr(source, "blob", source))
        if not name:
            raise ValueError("flashing blob bytes needs a name: board.flash(blob, name=...)")
    else:
        raise TypeError("flash source must be a path to a .npb or .tflite, blob bytes or a "
                        "compiler.Compiled, not %s" % type(source).__name__)
    return data, ModelSpec.from_blob(name, data)  # refuses a damaged blob


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple
    dtype: np.dtype

    def __str__(self):
        return "%s %s" % (self.dtype, self.shape)


@dataclass(frozen=True)
class ModelSpec:
    """What the host knows about a flashed blob: its name, size, id and I/O tensors."""
    name: str
    size: int
    blob_id: bytes
    inputs: tuple
    outputs: tuple

    @classmethod
    def from_blob(cls, name, data):
        """Parse (and verify) blob bytes; raises BlobFormatError on a damaged blob."""
        body = blob.unpack(data)

        def tensor(i):
            t = body.tensors[i]
            return TensorSpec(tuple(t.shape[:t.ndim]), np.dtype(str(t.dtype)))

        spec = cls(name, len(data), bytes(data[-32:]), tuple(tensor(i) for i in body.inputs),
                   tuple(tensor(i) for i in body.outputs))
        _SEEN[spec.blob_id] = spec
        return spec

    def renamed(self, name):
        return ModelSpec(name, self.size, self.blob_id, self.inputs, self.outputs)

    def check_inputs(self, inputs):
        """Return `inputs` as arrays of the model's dtypes and shapes, or raise ValueError."""
        if len(inputs) != len(self.inputs):
            raise ValueError("model %r takes %d input(s), got %d"
                             % (self.name, len(self.inputs), len(inputs)))
        return [self._check(i, x, t) for i, (x, t) in enumerate(zip(inputs, self.inputs))]

    def _check(self, i, x, want):
        a = np.asarray(x)
        if not isinstance(x, np.ndarray) and a.dtype != want.dtype:  # a list or scalar
            cast = a.astype(want.dtype)
            a = cast if np.array_equal(cast, a) else a
        what = "model %r input %d is %s; got %s %s" % (self.name, i, want, a.dtype, a.shape)
        if a.dtype != want.dtype:
            hint = ""
            if want.dtype == np.int8 and a.dtype.kind == "f":
                hint = " (quantize it with the input's scale and zero point first)"
            raise ValueError(what + hint)
        if a.shape != want.shape:
            if a.size != int(np.prod(want.shape)) or _squeeze(a.shape) != _squeeze(want.shape):
                raise ValueError(what)
            a = a.reshape(want.shape)
        return a


def _squeeze(shape):
    """The shape without leading 1s."""
    shape = tuple(shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


#: Every blob this process has read, flashed or compiled, by blob id: lets `run` check a
#: model's inputs on a connection that did not flash it.
_SEEN = {}
