"""What the host flashes: load_model turns a source (an .npb, a .tflite compiled here, blob
bytes) into verified blob bytes and a ModelSpec, the model's name, size, id and I/O tensors.
Nothing here touches a board; the link (npu_sdk.link) takes what this returns.
"""
import os
from dataclasses import dataclass

from . import blob
from .errors import ModelError
from .ops import MAX_NAME


def load_model(source, name=None):
    """Return (blob bytes, ModelSpec) for a flash source; nothing touches a board.

    A path ending in .npb is read and verified, any other path is compiled as a .tflite
    (an .npb under another suffix is recognised by its magic); bytes and
    `compiler.Compiled` results are verified and need `name`.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        name = name or default_name(path)
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as e:
            raise ModelError("cannot read model %s: %s" % (path, e.strerror or e)) from e
        if path.endswith(".npb") or head == blob.MAGIC:
            with open(path, "rb") as f:
                data = f.read()
        else:
            from . import compiler
            data = compiler.compile_file(path).blob
    elif isinstance(source, (bytes, bytearray, memoryview)) or hasattr(source, "blob"):
        data = bytes(getattr(source, "blob", source))
        if not name:
            raise ValueError("flashing blob bytes needs a name: board.flash(blob, name=...)")
    else:
        raise TypeError("flash source must be a path to a .npb or .tflite, blob bytes or a "
                        "compiler.Compiled, not %s" % type(source).__name__)
    return data, ModelSpec.from_blob(name, data)  # refuses a damaged blob


#: File stems that say what a model is, not which: the zoo's int8.tflite, float.tflite...
_GENERIC_STEMS = ("int8", "float", "model")


def default_name(path):
    """The name a model file installs under: its stem, or for a generic stem (every zoo model
    is an int8.tflite) its folder's name, so that two zoo models do not replace each other:
    kws_dscnn/int8.tflite -> kws_dscnn, kws_dscnn/int8_float_io.tflite -> kws_dscnn_float_io."""
    folder, base = os.path.split(os.path.abspath(os.fspath(path)))
    stem = os.path.splitext(base)[0]
    parent = os.path.basename(folder)
    for generic in _GENERIC_STEMS:
        if parent and (stem == generic or stem.startswith(generic + "_")):
            return (parent + stem[len(generic):])[:MAX_NAME]
    return stem


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple
    dtype_name: str  # "int8", "float32"...: read from a blob without numpy
    scale: float = 0.0  # quantization of an int8 tensor (0: none)
    zero_point: int = 0

    @property
    def dtype(self):
        import numpy as np
        return np.dtype(self.dtype_name)

    def __str__(self):
        return "%s %s" % (self.dtype_name, self.shape)


@dataclass(frozen=True)
class ModelSpec:
    """What the host knows about a flashed blob: its name, size, id, I/O tensors and MACs per
    inference (a board profile's latency estimate; None when not known)."""
    name: str
    size: int
    blob_id: bytes
    inputs: tuple
    outputs: tuple
    macs: int = None

    @classmethod
    def from_blob(cls, name, data):
        """Parse (and verify) blob bytes; raises BlobFormatError on a damaged blob."""
        body = blob.unpack(data)

        def tensor(i):
            t = body.tensors[i]
            return TensorSpec(tuple(t.shape[:t.ndim]), str(t.dtype), float(t.scale),
                              int(t.zero_point))

        from .report import layers
        spec = cls(name, len(data), bytes(data[-32:]), tuple(tensor(i) for i in body.inputs),
                   tuple(tensor(i) for i in body.outputs),
                   sum(row["macs"] for row in layers(data)[0]))
        _SEEN[spec.blob_id] = spec
        return spec

    def renamed(self, name):
        return ModelSpec(name, self.size, self.blob_id, self.inputs, self.outputs, self.macs)

    def check_inputs(self, inputs):
        """Return `inputs` as arrays of the model's dtypes and shapes, or raise ValueError."""
        if len(inputs) != len(self.inputs):
            raise ValueError("model %r takes %d input(s), got %d"
                             % (self.name, len(self.inputs), len(inputs)))
        return [self._check(i, x, t) for i, (x, t) in enumerate(zip(inputs, self.inputs))]

    def _check(self, i, x, want):
        import numpy as np
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


#: Every blob this process has read, flashed or compiled, by blob id: lets Board.run check a
#: model's inputs on a connection that did not flash it.
_SEEN = {}


def seen(blob_id):
    """The ModelSpec of a blob this process has read or this host has flashed (remember),
    by its id (SHA-256), or None."""
    if blob_id not in _SEEN:
        spec = _recall(blob_id)
        if spec is not None:
            _SEEN[blob_id] = spec
    return _SEEN.get(blob_id)


def _memory_dir():
    """Where the host keeps the I/O specs of blobs it flashed: $NPU_CACHE, else
    $XDG_CACHE_HOME/npu (~/.cache/npu)."""
    base = os.environ.get("NPU_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "npu")
    return os.path.join(base, "blobs")


def remember(spec):
    """Keep a flashed blob's I/O specs on the host, by blob id: a later `npu run NAME` on
    another connection checks its inputs before they travel. Best effort: a read-only cache
    only costs that check."""
    import json
    record = {k: [dict(shape=list(t.shape), dtype=t.dtype_name, scale=t.scale,
                       zero_point=t.zero_point) for t in getattr(spec, k)]
              for k in ("inputs", "outputs")}
    record["size"] = spec.size
    record["macs"] = spec.macs
    path = os.path.join(_memory_dir(), spec.blob_id.hex() + ".json")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = "%s.tmp%d" % (path, os.getpid())
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except OSError:
        pass


def _recall(blob_id):
    import json
    try:
        with open(os.path.join(_memory_dir(), blob_id.hex() + ".json")) as f:
            record = json.load(f)
        return ModelSpec("", record["size"], blob_id, *(
            tuple(TensorSpec(tuple(t["shape"]), t["dtype"], t["scale"], t["zero_point"])
                  for t in record[k]) for k in ("inputs", "outputs")), record.get("macs"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
