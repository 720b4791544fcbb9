"""Board farm: RFC 2217 through ser2net, and one suite across many boards (tools/bench.py runs it).

    python tools/bench_farm.py [--quick] [--json]

flash   the 200 KB incompressible blob of tools/bench_link.py at 921600 baud on one board of
        a local farm (`npu farm up`: emulator, ser2net, labgrid's exporter), straight to its
        pty and through labgrid://PLACE (ser2net's RFC 2217 on loopback), the fastest of 3
        each: payload / line time as a ratio of the line rate (target >= 0.90)
suite   the zoo's plugin test suite (tools/zoo_suite) with `pytest -n N --npu-places 'npu-*'`
        on a fresh farm of N boards at 115200 baud, N = 1 then 3, --suite-runs rounds: the
        speed-up of 3 boards over 1 as the median of the rounds' ratios, whole pytest
        commands (target >= 2x), and the lowest and highest round. Not in --quick (CI):
        minutes of line time.
"""
import argparse
import json
import statistics
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from bench_link import blob_200k  # noqa: E402
from npu_sdk.farm import Farm, _free_port  # noqa: E402
from npu_sdk.link import Board  # noqa: E402

TARGETS = dict(rfc2217_ratio_of_line_rate=0.90, three_boards_speedup=2.0)
FLASH_BAUD, SUITE_BAUD = 921600, 115200


def _farm(n, baud):
    return Farm(n, coordinator="127.0.0.1:%d" % _free_port(), baud=baud)


def bench_flash(runs=3):
    """The fastest of `runs` flashes each way, taken in turns: on a shared machine the noise
    only ever adds time."""
    blob = blob_200k()
    line_s = len(blob) * 10.0 / FLASH_BAUD
    with _farm(1, FLASH_BAUD) as farm:
        place, _, pty, _ = farm.boards[0]
        paths = (("pty", pty), ("labgrid rfc2217", "labgrid://%s/%s" % (farm.address, place)))
        best = {}
        for run in range(runs):
            for path, port in paths:
                with Board(port, timeout=5.0) as board:
                    t0 = time.monotonic()
                    board.flash(blob, "%s_%d" % (path.replace(" ", "_"), run))
                    took = time.monotonic() - t0
                best[path] = min(best.get(path, took), took)
    return [dict(path=path, baud=FLASH_BAUD, bytes=len(blob), runs=runs,
                 seconds=round(best[path], 3), ratio_of_line_rate=round(line_s / best[path], 3))
            for path, _ in paths]


#: third-party plugins the suite does not use, each loaded by every xdist worker: labgrid's own
#: (--lg-env) imports all its drivers; hypothesis's imports hypothesis for its summary
UNUSED_PLUGINS = ["-p", "no:labgrid", "-p", "no:hypothesispytest"]


def bench_suite(n, run=0):
    with _farm(n, SUITE_BAUD) as farm:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tools/zoo_suite",
               "-n", str(n), "--dist", "loadscope", "--no-loadscope-reorder",
               "--npu-places", "npu-*", "--npu-coordinator", farm.address,
               "-W", "ignore::DeprecationWarning"] + UNUSED_PLUGINS
        env = dict(os.environ)
        env.pop("PYTEST_ADDOPTS", None)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        took = time.monotonic() - t0
    last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
    return dict(run=run + 1, boards=n, baud=SUITE_BAUD, seconds=round(took, 1), result=last,
                ok=proc.returncode == 0)


def suite_targets(rows):
    """3 boards over 1: each round's ratio (its two runs taken back to back, under much the
    same load from the rest of the machine), their median and their lowest and highest."""
    ones = {r["run"]: r["seconds"] for r in rows if r["boards"] == 1}
    threes = {r["run"]: r["seconds"] for r in rows if r["boards"] == 3}
    rounds = sorted(ones[k] / threes[k] for k in ones if k in threes)
    return dict(three_boards_speedup=round(statistics.median(rounds), 2),
                three_boards_speedup_spread=[round(rounds[0], 2), round(rounds[-1], 2)])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the flash only (CI's smoke test)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--suite-runs", type=int, default=3, metavar="K",
                   help="rounds of the suite on 1 and on 3 boards (default: 3)")
    args = p.parse_args(argv)
    out = dict(flash=bench_flash(), suite=[])
    if not args.quick:
        out["suite"] = [bench_suite(n, run) for run in range(args.suite_runs) for n in (1, 3)]
    rfc = next(r for r in out["flash"] if r["path"] != "pty")
    t = dict(rfc2217_ratio_of_line_rate=rfc["ratio_of_line_rate"])
    if out["suite"] and all(r["ok"] for r in out["suite"]):
        t.update(suite_targets(out["suite"]))
    t["wanted"] = "rfc2217_ratio_of_line_rate >= %.2f, three_boards_speedup >= %gx" % (
        TARGETS["rfc2217_ratio_of_line_rate"], TARGETS["three_boards_speedup"])
    out["targets"] = t
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
