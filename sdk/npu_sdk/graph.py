"""The compiler's IR: tensors and ops of one subgraph, constants as numpy arrays."""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tensor:
    name: str
    shape: tuple
    dtype: np.dtype
    scales: np.ndarray = None  # float32, one per tensor or per channel; None when not quantized
    zero_points: np.ndarray = None
    quantized_dim: int = 0
    data: np.ndarray = None  # constant value, or None for activations

    @property
    def is_const(self):
        return self.data is not None

    @property
    def nbytes(self):
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def scale(self):
        """The per-tensor scale (first one)."""
        return float(self.scales[0])

    @property
    def zero_point(self):
        return int(self.zero_points[0])


@dataclass
class Op:
    kind: str  # TFLite builtin name, e.g. "FULLY_CONNECTED"
    inputs: list  # tensor indices; -1 for an omitted optional input
    outputs: list
    options: dict = field(default_factory=dict)
    index: int = 0  # position in the source model, for error messages


@dataclass
class Graph:
    tensors: list
    ops: list
    inputs: list
    outputs: list
    name: str = "model"
