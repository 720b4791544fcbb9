"""The serial link: codec (frames, messages), transport (pyserial URLs), arq (FLASH_DATA
streaming), Board client."""
from ..errors import PreflightError
from .board import Board, BoardInfo, FlashResult, ModelEntry

__all__ = ["Board", "BoardInfo", "FlashResult", "ModelEntry", "PreflightError"]
