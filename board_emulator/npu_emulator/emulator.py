"""Start a virtual board: print `port: PATH` (then `listen: URL` with --listen), serve until stopped."""
import argparse
import ipaddress
import os
import signal
import sys
import tempfile
import threading

from npu_sdk import profiles
from npu_sdk.errors import NpuError
from npu_sdk.link import discovery

from . import faults, power


def add_arguments(p):
    p.add_argument("--core", choices=("cpython", "micropython", "qemu"), default="cpython",
                   help="cpython: firmware package + C kernels (fast); micropython: the real "
                        "MicroPython VM running firmware/ with viper kernels; qemu: a MicroPython "
                        "firmware image for an Arm Cortex-M board under qemu-system-arm "
                        "(built on first use from $MICROPY_DIR, then cached)")
    p.add_argument("--board", help="board profile: %s (default: host; mps3-an547 with --core "
                                   "qemu)" % ", ".join(profiles.PROFILES))
    p.add_argument("--icount", action="store_true",
                   help="with --core qemu: one instruction per nanosecond of board time "
                        "(QEMU's -icount shift=0), so board timings count instructions")
    p.add_argument("--micropython", metavar="DIR",
                   help="with --core qemu: the MicroPython source to build the image from "
                        "(default: $MICROPY_DIR)")
    p.add_argument("--kernels", choices=("native", "viper"), default="native",
                   help="with --core qemu: native (default) runs the image's npu module, viper "
                        "the viper kernels alone, to compare the two")
    p.add_argument("--cmsis-nn", metavar="DIR",
                   help="with --core qemu: CMSIS-NN's source for the image's native npu module "
                        "(default: $CMSIS_NN_DIR; neither: its portable C kernels)")
    p.add_argument("--flash-dir", help="directory that holds the board's flash (persists across "
                                       "restarts); default: a fresh temporary one")
    p.add_argument("--listen", metavar="socket://127.0.0.1:PORT",
                   help="also accept the host on this loopback TCP port (0: pick a free one); "
                        "connect with the pyserial URL it prints")
    p.add_argument("--baud", metavar="N|board",
                   help="pace the virtual UART at N baud (N/10 bytes/s each way), or at the board "
                        "profile's rate with 'board'; default: unpaced")
    p.add_argument("--faults", metavar="SPEC",
                   help="inject line faults both ways, e.g. %s (rates per byte)" % faults.EXAMPLE)
    p.add_argument("--power-cut-after-writes", type=int, default=0, metavar="N",
                   help="cut the power (exit %d) right after the board's Nth flash write"
                        % power.EXIT_CODE)
    p.add_argument("--repl", action="store_true",
                   help="with --core micropython: the VM's own REPL on the port instead of the "
                        "firmware (raw REPL for mpremote and `npu firmware install`), the flash "
                        "directory as its filesystem")


def _fail(what):
    raise NpuError(what)


def _listen_address(url):
    scheme, sep, rest = url.partition("://")
    host, colon, port = rest.rpartition(":")
    host = host.strip("[]")
    if scheme != "socket" or not sep or not colon or not port.isdigit() or int(port) > 65535:
        _fail("--listen %s is not socket://127.0.0.1:PORT; give a loopback address and a port "
              "(0 picks a free one)" % url)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        _fail("--listen %s is not a loopback address; the emulator only listens on 127.0.0.1 "
              "or ::1 (use an SSH tunnel to reach it from elsewhere)" % url)
    return ("127.0.0.1" if host == "localhost" else host), int(port)


def _baud(text, profile):
    if text is None:
        return None
    if text == "board":
        return profile["baud"]
    if not text.isdigit() or not 300 <= int(text) <= 100_000_000:
        _fail("--baud %s is not a rate; give a baud rate such as 115200, or 'board' for the "
              "profile's (%d)" % (text, profile["baud"]))
    return int(text)


def serve(args):
    # the board's parts load here, not with add_arguments: `npu`'s parser is built for every command
    from npufw.board import REPL_EXIT

    from . import cores
    from .repl import ReplBoard
    from .uart import VirtualUart
    profile = profiles.get(args.board or profiles.DEFAULT[args.core])
    baud = _baud(args.baud, profile)
    spec = None
    if args.faults:
        try:
            spec = faults.parse(args.faults)
        except faults.FaultSpecError as e:
            _fail("bad --faults spec: %s; write it like %s" % (e, faults.EXAMPLE))
    if args.power_cut_after_writes < 0:
        _fail("--power-cut-after-writes must be 1 or more (0: never)")
    if args.repl and (args.core != "micropython" or args.power_cut_after_writes):
        _fail("--repl runs the MicroPython VM's REPL: use it with --core micropython and "
              "without --power-cut-after-writes")
    if args.core == "qemu":
        if args.repl:
            _fail("--repl: the qemu board reaches its MicroPython REPL as a real board does "
                  "(`npu repl`); leave --repl out")
        if profile["ram"] > 1 << 20:
            _fail("board profile %s has %d bytes of RAM, more than a qemu board's SRAM holds; "
                  "use --board mps3-an547, mps2-an386, cortex-m4-256k or esp32-s3-512k"
                  % (profile["name"], profile["ram"]))
    elif args.icount or args.micropython or args.cmsis_nn or args.kernels != "native":
        _fail("--icount, --kernels, --micropython and --cmsis-nn are for --core qemu")
    address = _listen_address(args.listen) if args.listen else None
    tmp = None
    flash_dir = args.flash_dir
    if flash_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="npu-flash-")
        flash_dir = tmp.name
    try:  # every core keeps the flash there, made on first use as a board's is formatted
        os.makedirs(flash_dir, exist_ok=True)
    except OSError as e:
        _fail("cannot make the flash directory %s: %s; pass another --flash-dir"
              % (flash_dir, e.strerror or e))
    uart = VirtualUart(baud, spec)
    listen_url = None
    if address:
        try:
            port = uart.listen(*address)
        except OSError as e:
            _fail("cannot listen on %s: %s; pick another port (0: any free one)"
                  % (args.listen, e.strerror or e))
        listen_url = "socket://%s:%d" % (("[%s]" % address[0]) if ":" in address[0] else address[0], port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    proc = None
    if args.repl:
        proc = ReplBoard(uart, profile, flash_dir)
    elif args.core == "micropython":
        proc = cores.start_micropython(uart, profile, flash_dir, args.power_cut_after_writes)
    elif args.core == "qemu":
        proc = cores.start_qemu(uart, profile, flash_dir, args.power_cut_after_writes,
                                args.icount, args.micropython, args.cmsis_nn,
                                args.kernels == "viper")
    else:
        cores.start_cpython(uart, profile, flash_dir, args.power_cut_after_writes)
    print("port: %s" % uart.port, flush=True)
    if listen_url:
        print("listen: %s" % listen_url, flush=True)
    print("core: %s, board: %s, flash: %s, uart: %s%s" % (
        args.core, profile["name"], flash_dir, ("%d baud" % baud) if baud else "unpaced",
        (", faults: %r" % spec) if spec else ""), flush=True)
    note = discovery.register(uart.port, args.core, profile["name"])  # `npu` finds it without --port
    try:
        repl = False
        while not stop.wait(0.05):
            if proc is not None and proc.poll() is not None and proc.returncode == REPL_EXIT \
                    and not repl:  # the host asked for the REPL: the firmware left its loop
                proc, repl = cores.start_repl(uart, profile), True
                continue
            if proc is not None and repl and proc.poll() is not None:  # Ctrl-D: soft reset
                proc, repl = cores.start_micropython(uart, profile, flash_dir,
                                                     args.power_cut_after_writes, first=False), False
                continue
            if proc is not None and proc.poll() is not None:
                if proc.returncode == power.EXIT_CODE and args.power_cut_after_writes:
                    print(power.message("flash write %d" % args.power_cut_after_writes),
                          file=sys.stderr)
                    return power.EXIT_CODE
                print("npu emulate: the %s core exited with code %d" % (args.core, proc.returncode),
                      file=sys.stderr)
                return 1
    finally:
        discovery.unregister(note)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if spec:
            print("npu emulate: faults injected (seed %d): %s" % (spec.seed, uart.fault_counts()),
                  file=sys.stderr)
        if tmp is not None:
            tmp.cleanup()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m npu_emulator", description=__doc__)
    add_arguments(p)
    try:
        return serve(p.parse_args(argv))
    except NpuError as e:  # `npu emulate` prints it as `npu: ...`
        print("npu emulate: %s" % e, file=sys.stderr)
        return 1
