"""Regenerate the golden vectors in tests/vectors/ (after a deliberate format change)."""
from pathlib import Path

from npu_sdk import compiler

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "vectors"

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    blob = compiler.compile_file(ROOT / "model_zoo" / "digits_mlp" / "int8.tflite").blob
    (OUT / "digits_int8.npb").write_bytes(blob)
    print("wrote", OUT / "digits_int8.npb", len(blob), "bytes")
