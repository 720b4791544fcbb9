"""The serial link: codec (frames, messages), transport (pyserial URLs), Board client."""
from .board import Board, BoardInfo, FlashResult, ModelEntry, PreflightError

__all__ = ["Board", "BoardInfo", "FlashResult", "ModelEntry", "PreflightError"]
