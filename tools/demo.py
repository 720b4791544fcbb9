"""The five-minute demo: compile a zoo model, flash it to the emulator on both cores over a
pseudo-terminal, run the sample inputs, and compare every output with TFLite Micro's."""
import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from npu_sdk import compiler, reference
from npu_sdk.link import Board

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "model_zoo" / "digits_mlp" / "int8.tflite"


def start_emulator(core):
    """Start `npu emulate` and return (process, port) once it prints its port."""
    proc = subprocess.Popen([sys.executable, "-m", "npu_emulator", "--core", core],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("port: "):
        proc.kill()
        raise SystemExit("demo: the emulator did not start (printed %r)" % line)
    return proc, line.split(":", 1)[1].strip()


def run_core(core, compiled, samples, labels, expected):
    proc, port = start_emulator(core)
    try:
        with Board(port, timeout=30) as board:
            print("\n== %s core: %s, firmware %s, kernels %s, on %s"
                  % (core, board.info.board, board.info.firmware, board.info.kernels, port))
            board.flash(compiled, "digits")
            print("%-6s %-5s %-22s %-22s %s" % ("sample", "label", "board (argmax, max)",
                                                 "TFLM (argmax, max)", "bit-exact"))
            exact = 0
            times = []
            for i, x in enumerate(samples):
                (y,), us = board.invoke("digits", [x])
                times.append(us)
                same = np.array_equal(y, expected[i])
                exact += same
                print("%-6d %-5d %-22s %-22s %s" % (i, labels[i], (int(y.argmax()), int(y.max())),
                                                    (int(expected[i].argmax()), int(expected[i].max())),
                                                    "yes" if same else "NO"))
            print("%s core: %d/%d outputs bit-exact with TFLite Micro; board-measured invoke "
                  "median %.3f ms" % (core, exact, len(samples), np.median(times) / 1000))
            return exact == len(samples)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cores", default="cpython,micropython")
    args = p.parse_args()
    model = MODEL.read_bytes()
    compiled = compiler.compile_file(MODEL)
    print("compiled %s: blob %d bytes (.tflite %d bytes), arena %d bytes, %d ops"
          % (MODEL.relative_to(ROOT), len(compiled.blob), len(model), compiled.arena_size, compiled.n_ops))
    data = np.load(ROOT / "model_zoo" / "digits_mlp" / "samples.npz")
    samples, labels = data["x_int8"], data["y"]
    interpreter = reference.tflm_interpreter(model)
    expected = [reference.run_tflm(model, [x], interpreter)[0] for x in samples]
    ok = all([run_core(core, compiled, samples, labels, expected) for core in args.cores.split(",")])
    print("\nRESULT: %s" % ("bit-exact with TFLite Micro on every core" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
