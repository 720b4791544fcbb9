"""The serial link: codec (frames, messages), transport (pyserial URLs), Board client."""
from .board import Board, BoardInfo, ModelEntry

__all__ = ["Board", "BoardInfo", "ModelEntry"]
