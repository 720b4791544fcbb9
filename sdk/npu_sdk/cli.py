"""`npu`: the command line, thin over the API. Errors print once as `npu: ...` and exit 1.

Each command imports what it needs when it runs: the board commands (flash, ls, info, ...)
start without numpy, the compiler or the quantizer, as fast as mpremote.
"""
import argparse
import json
import os
import sys
import warnings

from . import ops, quant_methods
from .cli_files import check_writable, write_atomic
from .errors import LinkError, NpuError


def _port(args):
    port = args.port[0] if isinstance(args.port, list) else args.port  # flash takes several
    return port or os.environ.get("NPU_PORT")


def _board(args, **kw):
    from .link import Board
    if getattr(args, "trace", False):
        kw.setdefault("trace", _trace_frame)
    # --timeout is the whole wait for an answer, retransmissions included
    return Board(_port(args), timeout=args.timeout, retries=0, **kw)


def _trace_frame(direction, t, ftype, seq, payload):
    """--trace: one line per frame on stderr, both ways, with a timestamp."""
    from .link import codec
    head = payload[:16].hex(" ") + (" ..." if len(payload) > 16 else "")
    print("%.6f %s %-16s seq=%-3d len=%-5d %s" % (t, direction, codec.frame_name(ftype), seq,
                                                 len(payload), head), file=sys.stderr, flush=True)


def _progress_bar(args, total, name):
    """A tqdm bar (bytes, rate, ETA) on a terminal; None when quiet (--json, not a tty)."""
    if args.json or not sys.stderr.isatty():
        return None
    import shutil

    from tqdm import tqdm
    # a terminal that reports a 0 x 0 size (a fresh pty, `script`) gets no bar from tqdm:
    # give it the size shutil falls back to
    size = shutil.get_terminal_size()
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                file=sys.stderr, leave=False, ncols=size.columns, nrows=size.lines)


def _compile(args):
    """Compile args.model; a float model is quantized first with --calib. Returns (Compiled, report)."""
    from . import compiler, quantize, tflite
    graph = tflite.load(args.model)
    if not quantize.is_float_model(graph):
        if args.calib:
            raise NpuError("%s is already an int8 model; drop --calib" % args.model)
        return compiler.compile_graph(graph), None
    if not args.calib:
        raise NpuError("%s is a float model: pass --calib DATA.npy|.npz with representative inputs "
                       "to quantize it to int8 (see docs/quantization.md)" % args.model)
    result = quantize.quantize_with_report(
        graph, quantize.load_calibration(args.calib), method=args.method, int8_io=args.int8_io,
        per_channel=not args.per_tensor, activations=args.activations,
        overrides=quantize.load_overrides(args.overrides) if args.overrides else None)
    return compiler.compile_graph(result.graph), result


def cmd_compile(args):
    from .models import default_name
    # by default into the current directory, named as `npu flash` would name the model
    out = args.output or default_name(args.model) + ".npb"
    check_writable(out, "the blob")
    result, quant = _compile(args)
    write_atomic(out, result.blob)
    summary = dict(output=out, blob_bytes=len(result.blob), arena_bytes=result.arena_size,
                   arena_lower_bound=result.arena_lower_bound, const_bytes=result.const_size,
                   ops=result.n_ops)
    if quant is not None:
        summary.update(quantization=quant.report, warnings=list(quant.warnings))
    if args.json:
        print(json.dumps(summary))
        return
    if quant is not None:
        for w in quant.warnings:
            print("warning: %s" % w, file=sys.stderr)
        if args.report:  # the warnings went to stderr above: once
            from .quantize import format_report
            print(format_report(quant.report))
    print("%s: %d bytes, %d ops, arena %d bytes (lower bound %d), constants %d bytes"
          % (out, len(result.blob), result.n_ops, result.arena_size, result.arena_lower_bound,
             result.const_size))


def cmd_inspect(args):
    from . import report
    if args.model.endswith(".npb"):
        from .models import load_model
        data = load_model(args.model, None)[0]
    else:
        data = _compile(args)[0].blob
    profile = None
    if args.board:
        from . import profiles
        profile = profiles.get(args.board)
    if args.plot:
        check_writable(args.plot, "--plot")
    rep = report.report(data, profile)
    if args.plot:
        report.plot(data, args.plot, title=os.path.basename(args.model))
    print(json.dumps(rep) if args.json else report.format_text(rep))
    if profile is not None and not rep["board"]["fits"]:
        return 1


def cmd_validate(args):
    from . import keys, validate
    name = args.name or "validate"
    with _board(args, key=keys.load(args.key)) as board:
        try:
            rep = validate.validate(args.model, board, args.inputs, name=name)
        finally:
            if not args.name:  # a scratch model: leave the board's models as they were
                try:
                    board.remove(name)
                except NpuError:
                    pass
    print(json.dumps(rep) if args.json else validate.format_text(rep))
    return 0 if rep["bit_exact"] else 1


def cmd_emulate(args):
    from npu_emulator.emulator import serve
    return serve(args)


def cmd_flash(args):
    from . import keys
    from .models import load_model
    data, spec = load_model(args.model, args.name)  # compile or verify before touching the board
    name = spec.name
    key = keys.load(args.key)  # a bad key file fails before the port is opened
    targets = _flash_targets(args)
    if len(targets) > 1 or args.places:
        return _flash_many(args, targets, data, name, key)
    bar = _progress_bar(args, len(data), name)
    done = [0]  # bytes the board confirmed

    def progress(n):
        done[0] += n
        if bar is not None:
            bar.update(n)

    try:
        with _board(args, key=key) as board:
            board.flash(data, name, progress=progress,
                        version=args.model_version, downgrade=args.downgrade)
            r = board.last_flash
    except KeyboardInterrupt:
        raise KeyboardInterrupt("interrupted at %d of %d bytes; run the same command to resume"
                                % (done[0], len(data))) from None
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(dict(name=name, bytes=len(data), sent=r.sent, resumed_from=r.resumed,
                              skipped=r.skipped, retransmits=r.retransmits,
                              replaced=r.replaced.hex() if r.replaced else None,
                              seconds=round(r.seconds, 3))))
    elif r.skipped:
        print("%r is already on the board (same blob id): nothing sent" % name)
    else:
        print("flashed %s as %r (%d bytes%s, %.1f s)" % (
            args.model, name, len(data),
            ", resumed at byte %d" % r.resumed if r.resumed else "", r.seconds))
        if r.replaced:
            print("replaced the different model that was on the board as %r (blob %s); pass "
                  "--name to keep both" % (name, r.replaced.hex()[:16]))


def _flash_targets(args):
    """[(label, port)]: every --port (a labgrid://PLACE is labelled by its place), then the
    places matching --places on the coordinator."""
    ports = args.port or ([_port(args)] if _port(args) else [])
    targets = [(p.rsplit("/", 1)[-1] if p.startswith("labgrid://") else p, p) for p in ports]
    if args.places:
        from .places import Coordinator
        with Coordinator(args.coordinator) as c:
            names = c.names(args.places)
            address = c.address
        if not names:
            raise NpuError("no place matches %r on labgrid's coordinator at %s; "
                           "`labgrid-client places` lists them" % (args.places, address))
        targets += [(n, "labgrid://%s/%s" % (address, n)) for n in names]
    if not targets:
        raise NpuError("no board given: pass --port PORT (again for more boards), --places "
                       "PATTERN, or set NPU_PORT")
    return targets


def _flash_many(args, targets, data, name, key):
    """Flash every target in parallel, one progress line each; exit 1 if any board failed."""
    from .flash_many import Progress, flash_all
    progress = None if args.json else Progress([t[0] for t in targets], len(data))
    outcomes = flash_all(targets, data, name, progress, timeout=args.timeout, key=key)
    failed = [o for o in outcomes if o.error]
    if args.json:
        print(json.dumps([dict(board=o.board, port=o.port, ok=o.error is None, error=o.error,
                               bytes=len(data), skipped=o.result.skipped if o.result else None,
                               seconds=round(o.result.seconds, 3) if o.result else None)
                          for o in outcomes]))
    else:
        print("flashed %s as %r on %d of %d boards%s" % (
            args.model, name, len(outcomes) - len(failed), len(outcomes),
            "".join("\n  %s failed: %s" % (o.board, o.error) for o in failed)))
    return 1 if failed else 0


def cmd_ls(args):
    with _board(args) as board:
        entries = board.list()
        info = board.info
    if args.json:
        print(json.dumps(dict(models=[dict(name=e.name, size=e.size, id=e.blob_id.hex())
                                      for e in entries],
                              free_flash=info.free_flash, flash=info.flash)))
        return
    for e in entries:
        print("%-32s %8d  %s" % (e.name, e.size, e.blob_id.hex()[:16]))
    print("%d model(s), %d bytes of flash free" % (len(entries), info.free_flash))


def cmd_run(args):
    from .cli_run import cmd_run
    return cmd_run(args, _board)


def cmd_ports(args):
    """Serial ports with VID:PID and running emulators, and whether an npu board answers HELLO
    on each."""
    from serial.tools import list_ports

    from .link import Board
    found = [dict(port=p.device, vid_pid=("%04x:%04x" % (p.vid, p.pid)) if p.vid is not None else None,
                  description=p.description) for p in sorted(list_ports.comports(), key=lambda p: p.device)]
    from .link import discovery
    found += [dict(port=e["port"], vid_pid=None, description="npu emulate (%s core, %s)"
                   % (e["core"], e["board"])) for e in discovery.emulators()]
    extra = _port(args)
    if extra and extra not in [f["port"] for f in found]:
        found.append(dict(port=extra, vid_pid=None, description="--port / $NPU_PORT"))
    for f in found:
        f.update(npu=False, firmware=None, board=None)
        try:
            with Board(f["port"], timeout=args.probe_timeout, retries=0) as board:
                f.update(npu=True, firmware=board.info.firmware, board=board.info.board)
        except NpuError:
            pass
    if args.json:
        print(json.dumps(found))
        return
    for f in found:
        print("%-24s %-10s %-5s %s" % (f["port"], f["vid_pid"] or "-",
                                       "npu" if f["npu"] else "-",
                                       ("firmware %s on %s" % (f["firmware"], f["board"])) if f["npu"]
                                       else f["description"]))
    if not found:
        print("no serial ports found and no `npu emulate` running")


def _heap_line(m):
    """One line on the board's heap (codec.parse_memory's dict)."""
    line = "heap: %d bytes, %d in use idle (the firmware), %d now" % (m["heap"], m["idle"], m["now"])
    if m["model"]:
        line += "; model %r takes %d (%d before its load, %d after, %s after its first run)" % (
            m["model"], m["model_ram"], m["before_load"], m["after_load"],
            m["after_invoke"] if m["after_invoke"] is not None else "not run yet")
    return line


def cmd_info(args):
    with _board(args) as board:
        info = board.info.as_dict()
        heap = board.memory()
    info["port"] = _port(args)
    if heap is not None and heap["heap"] is not None:
        info["heap"] = heap
    if args.json:
        print(json.dumps(info))
        return
    print("firmware %s (link protocol %d) on %s, kernels: %s" % (
        info["firmware"], info["protocol"], info["board"], info["kernels"]))
    print("RAM %d bytes, flash %d bytes (%d free), frames up to %d bytes, window %d bytes"
          % (info["ram"], info["flash"], info["free_flash"], info["max_payload"], info["window"]))
    print("ops: %s" % ", ".join(info["ops"]))
    print("features: %s" % (", ".join(info["features"]) or "-"))
    if "signing" in info["features"]:
        print("device key: %s" % ("set: installs only blobs signed with it (npu flash --key FILE)"
                                  if info["keyed"] else "none: installs any blob"))
    if info["locked"]:
        print("locked: never hands its REPL over (npu keys provision --lock)")
    if "heap" in info:
        print(_heap_line(heap))


def cmd_keys_provision(args):
    """Give the board a new random device key; write it to --out only once the board has it."""
    from . import keys
    old = keys.load(args.old_key)
    new = keys.generate()
    with _board(args) as board:
        tmp = keys.stage(args.out, new)
        try:
            board.provision_key(new, old, lock=args.lock)
        except LinkError as e:  # the board may have taken the key: keep it
            keys.publish(tmp, args.out)
            raise NpuError("no answer to the new key (%s): the board may have it, so the key "
                           "sent is in %s; `npu info` shows whether the board has a key"
                           % (e, args.out)) from e
        except BaseException:  # refused (BoardError 13): no key file
            os.remove(tmp)
            raise
    keys.publish(tmp, args.out)
    if args.json:
        print(json.dumps(dict(port=_port(args), key_file=args.out, keyed=True,
                              locked=board.info.locked)))
    else:
        print("board on %s has a new device key, kept in %s: flash with --key %s%s"
              % (_port(args), args.out, args.out, "; it is locked: it never hands its REPL over"
                 if board.info.locked else ""))


def cmd_keys_clear(args):
    from . import keys
    key = keys.load(args.key)
    with _board(args) as board:
        board.clear_key(key)
    if args.json:
        print(json.dumps(dict(port=_port(args), keyed=False)))
    else:
        print("board on %s has no device key: it installs any blob" % _port(args))


def cmd_rm(args):
    from . import keys
    with _board(args, key=keys.load(args.key)) as board:
        board.remove(args.name)
    if args.json:
        print(json.dumps(dict(removed=args.name)))
    else:
        print("removed %r" % args.name)


def cmd_cancel(args):
    """Stop the RUN a board is working on, whichever host asked for it."""
    with _board(args, busy_ok=True) as board:
        stopped = board.cancel()
    _say(args, dict(port=board.port, stopped=stopped),
         "the board on %s stopped its RUN" % board.port if stopped else
         "the board on %s was running nothing" % board.port)


def cmd_console(args):
    """Print the board's log: its recent lines, then live ones until Ctrl-C (or --count/--seconds)."""
    import time
    seen = [0]

    def show(ms, text):
        if args.count is not None and seen[0] >= args.count:
            return  # the recent lines may be more than --count
        seen[0] += 1
        if args.json:
            print(json.dumps(dict(ms=ms, text=text)), flush=True)
        else:
            print("[%10.3f] %s" % (ms / 1000.0, text), flush=True)

    with _board(args, on_log=show) as board:
        for ms, text in board.console(True):
            show(ms, text)
        end = time.monotonic() + args.seconds if args.seconds else None
        try:
            while (args.count is None or seen[0] < args.count) and (end is None or time.monotonic() < end):
                board.poll(0.1)
        finally:
            try:
                board.console(False)
            except NpuError:
                pass


def cmd_repl(args):
    """Hand the board's MicroPython REPL over: the terminal is bridged to it until Ctrl-].
    Without a terminal, stdin is sent as typed lines and the board's output printed."""
    import time

    from . import keys
    with _board(args, key=keys.load(args.key)) as board:
        board.repl()
        ser = board.serial
        if sys.stdin.isatty():
            return _repl_terminal(ser)
        sys.stdout.write(_await_prompt(ser, time.monotonic() + max(args.timeout, 10.0)))
        for line in sys.stdin.read().splitlines():
            ser.write(line.encode() + b"\r\n")
            time.sleep(0.05)
        if args.exit:
            ser.write(b"\x04")  # Ctrl-D: soft reset back into the npu firmware
        end = time.monotonic() + args.wait
        while time.monotonic() < end:
            data = ser.read(4096)
            if data:
                sys.stdout.write(data.decode("utf-8", "replace"))
                sys.stdout.flush()


def cmd_reset(args):
    """Soft-reset a board at its MicroPython REPL back into the npu firmware."""
    import time

    from .link import Board, board_state
    from .link.transport import open_port
    port = _port(args)
    try:
        with Board(port, timeout=min(args.timeout, 2.0), retries=0) as board:
            return _say(args, dict(port=port, firmware=board.info.firmware, reset=False),
                        "the board on %s runs the npu firmware %s: nothing to reset"
                        % (port, board.info.firmware))
    except board_state.AtRepl as e:
        if not e.has_firmware:
            raise
    ser = open_port(port)
    try:
        board_state.soft_reset(ser)
    finally:
        ser.close()
    deadline = time.monotonic() + args.timeout
    while True:  # the firmware takes a moment to boot
        try:
            with Board(port, timeout=1.0, retries=0) as board:
                return _say(args, dict(port=port, firmware=board.info.firmware, reset=True),
                            "the board on %s runs the npu firmware %s again"
                            % (port, board.info.firmware))
        except board_state.AtRepl:
            raise
        except NpuError:
            if time.monotonic() > deadline:
                raise


def _say(args, record, text):
    print(json.dumps(record) if args.json else text)


def _await_prompt(ser, deadline):
    """What the board prints until its REPL prompt: typing earlier would be lost while the
    board is still restarting into the REPL. A request the host repeated while the board was
    leaving lands on the REPL's input line; after a second of quiet without a prompt, Ctrl-C
    clears that line and the REPL prompts afresh."""
    import time
    seen = b""
    quiet_since = time.monotonic()
    while not seen.endswith(b">>> "):
        now = time.monotonic()
        if now > deadline:
            raise NpuError("the board did not show a MicroPython prompt (>>>) after leaving the npu "
                           "protocol; reset it and try `npu repl` again")
        if now - quiet_since > 1.0:
            ser.write(b"\x03")
            quiet_since = now
        data = ser.read(ser.in_waiting or 1)
        if data:
            seen += data
            quiet_since = time.monotonic()
    return seen.decode("utf-8", "replace")


def _repl_terminal(ser):
    import select
    import termios
    import tty
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    print("npu repl: connected; Ctrl-] leaves, Ctrl-D soft-resets the board into its firmware",
          file=sys.stderr)
    tty.setraw(fd)
    try:
        while True:
            ready = select.select([fd, ser.fileno()], [], [])[0]
            if fd in ready:
                data = os.read(fd, 1024)
                if b"\x1d" in data or not data:
                    return 0
                ser.write(data)
            if ser.fileno() in ready:
                out = ser.read(ser.in_waiting or 1)
                os.write(sys.stdout.fileno(), out)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def cmd_zoo_list(args):
    from . import zoo
    found = zoo.models()
    if args.json:
        print(json.dumps([dict(name=m.name, task=m.task, path=str(m.path), files=list(m.files))
                          for m in found]))
        return
    width = max([len(m.name) for m in found] + [4])
    task_width = max([len(m.task) for m in found] + [4])
    print("%-*s  %-*s  %s" % (width, "NAME", task_width, "TASK", "FILES"))
    for m in found:
        print("%-*s  %-*s  %s" % (width, m.name, task_width, m.task, " ".join(m.files)))


def cmd_zoo_path(args):
    from . import zoo
    m = zoo.get(args.name)
    if args.json:
        print(json.dumps(dict(name=m.name, path=str(m.path), files=list(m.files))))
    else:
        print(m.path)


def _repeat(text):
    n = int(text)
    if not 1 <= n <= 0xFFFF:
        raise argparse.ArgumentTypeError("must be 1..65535")
    return n


def cmd_firmware_build(args):
    from . import firmware_build, profiles
    if args.board and not args.target:
        if profiles.PROFILES.get(args.board, {}).get("qemu"):  # a qemu board: its image
            args.target = profiles.PROFILES[args.board]["qemu"]
        elif args.arch:
            raise NpuError("give --board or --arch, not both: board %s is %s"
                           % (args.board, firmware_build.board_arch(args.board)))
        else:
            args.arch = firmware_build.board_arch(args.board)
    if args.target:
        return _firmware_image(args)
    args.output = args.output or ("npu-firmware-%s" % args.board if args.board else "npu-firmware")
    manifest = firmware_build.build(args.output, args.arch)
    if args.json:
        print(json.dumps(dict(output=args.output, **manifest)))
    else:
        print("%s: %d files for %s (.mpy %d.%d), manifest %s" % (
            args.output, len(manifest["files"]), manifest["arch"], manifest["mpy"][0],
            manifest["mpy"][1], os.path.join(args.output, firmware_build.MANIFEST)))


def _firmware_image(args):
    """`npu firmware build --target T`: a MicroPython image with the firmware frozen in."""
    from . import firmware_image, profiles
    if args.arch:
        raise NpuError("--arch is for .mpy builds; a --target image's architecture is the target's")
    board = args.board or next(n for n, p in sorted(profiles.PROFILES.items())
                               if p.get("qemu") == args.target)
    heap = profiles.get(board)["ram"]
    args.output = args.output or "npu-firmware-%s" % args.target
    out = firmware_image.build(args.target, heap, args.output, args.micropython,
                               cmsis_nn=args.cmsis_nn)
    files = [str(out / n) for n in ("firmware.elf", "firmware.bin")]
    if args.json:
        print(json.dumps(dict(target=args.target, board=board, heap=heap, files=files)))
    else:
        print("%s: firmware.elf, firmware.bin for %s, heap %d bytes (profile %s)"
              % (args.output, args.target, heap, board))


def cmd_firmware_install(args):
    from . import firmware_install
    port = _port(args)
    if not port:
        raise NpuError("no board given: pass --port PORT or set NPU_PORT")
    progress = None if args.json else (lambda rel, action: print("%-6s %s" % (action, rel)))
    try:
        result = firmware_install.install(port, args.src, baudrate=args.baud,
                                          timeout=args.timeout, reset=not args.no_reset,
                                          progress=progress)
    except LinkError as e:  # no raw REPL: a locked board never gives one, say so
        if _locked(port, args.baud):
            raise NpuError("the board on %s is locked (npu keys provision --lock): it never hands "
                           "its REPL over, so its firmware is updated only with its bootloader "
                           "(docs/protocol.md, Locking)" % port) from e
        raise
    if args.json:
        print(json.dumps(dict(arch=result.arch, cwd=result.cwd, copied=result.copied,
                              skipped=result.skipped, removed=result.removed)))
    else:
        print("%d copied, %d unchanged, %d removed (%s, into %s)%s" % (
            len(result.copied), len(result.skipped), len(result.removed), result.arch,
            result.cwd, "" if args.no_reset else "; soft reset: the board runs main.py"))


def _locked(port, baudrate):
    """Whether the board on `port` answers the npu link as a locked board."""
    from .link import Board
    try:
        with Board(port, baudrate, timeout=1.0, retries=0) as board:
            return board.info.locked
    except NpuError:
        return False


def cmd_farm_up(args):
    """Start N emulated boards exported through labgrid; print them; serve until stopped."""
    import signal
    import threading
    from .farm import Farm
    if args.n < 1:
        raise NpuError("npu farm up %d: give the number of boards, 1 or more" % args.n)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Farm(args.n, args.coordinator, prefix=args.prefix, baud=args.baud, core=args.core,
              board=args.board, repl=args.repl) as farm:
        if args.json:
            print(json.dumps(dict(coordinator=farm.address, boards=[
                dict(place=p, url=u, pty=pty, pid=emu.proc.pid) for p, u, pty, emu in farm.boards])),
                flush=True)
        else:
            print("coordinator %s%s" % (farm.address, " (started here)" if farm.started_coordinator
                                        else ""))
            for place, url, pty, emu in farm.boards:
                print("%-10s %-28s %-12s pid %d" % (place, url, pty, emu.proc.pid))
            print("farm up: %d board(s); try `npu ls --port labgrid://%s`; Ctrl-C stops them"
                  % (len(farm.boards), farm.boards[0][0]), flush=True)
        stop.wait()


class _Parser(argparse.ArgumentParser):
    """argparse's parser (usage errors exit 2); under --json the error is JSON on stdout."""
    json_errors = False

    def error(self, message):
        if _Parser.json_errors:
            print(json.dumps(dict(error="%s: %s" % (self.prog, message), code=2)))
            sys.exit(2)
        super().error(message)


def build_parser():
    from . import __version__
    p = _Parser(prog="npu", description="Compile TFLite models for NPU boards, flash them over a "
                "serial link and run them. Exit status: 0 done, 1 failed (one `npu: ...` line "
                "says why), 2 usage error, 130 interrupted, 141 stdout closed early (`| head`).")
    p.add_argument("--version", action="version", version="npu-sdk %s" % __version__)
    p.add_argument("-p", "--port", dest="port_before", metavar="PORT",
                   help="the board's port, for any subcommand (as its own --port)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def board_args(sp, port=True):
        if port:
            sp.add_argument("-p", "--port", help="serial port, pyserial URL or labgrid://PLACE "
                                                 "(default: $NPU_PORT)")
        sp.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the board")
        sp.add_argument("--json", action="store_true", help="print JSON")
        sp.add_argument("--trace", action="store_true",
                        help="print every frame both ways, with timestamps, on stderr")

    def proof_arg(sp):
        sp.add_argument("--key", default=os.environ.get("NPU_KEY"), metavar="FILE",
                        help="a board with a device key does this only with proof of it: its "
                             "key file (default: $NPU_KEY)")

    def key_arg(sp):
        sp.add_argument("--key", default=os.environ.get("NPU_KEY"), metavar="FILE",
                        help="sign blobs with this device key file, for a board given one with "
                             "`npu keys provision` (default: $NPU_KEY)")

    def coordinator_arg(sp):
        sp.add_argument("--coordinator", metavar="HOST:PORT",
                        help="labgrid coordinator (default: $LG_COORDINATOR or 127.0.0.1:20408)")

    def quant_args(sp):
        sp.add_argument("--calib", help="representative inputs (.npy, or .npz with key x or one key per "
                                        "input) to quantize a float model to int8")
        sp.add_argument("--method", default=quant_methods.DEFAULT_METHOD,
                        choices=quant_methods.METHODS,
                        help="activation range method (default: %s, the %g-th percentiles, measured "
                             "best on the zoo; minmax reproduces TFLite's converter; "
                             "docs/quantization.md)"
                             % (quant_methods.DEFAULT_METHOD, quant_methods.DEFAULT_PERCENTILE))
        sp.add_argument("--int8-io", action="store_true",
                        help="int8 model inputs/outputs (default: keep the float model's float32 I/O)")
        sp.add_argument("--activations", default="int8", choices=("int8", "int16"),
                        help="int16: TFLite's 16x8 (int16 activations, int8 weights, int64 bias) "
                             "for models int8 is not accurate enough for; docs/ops.md lists the "
                             "16x8 ops (default: int8)")
        sp.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default: per-channel)")
        sp.add_argument("--overrides", help="JSON/TOML file of per-layer settings (docs/quantization.md)")

    sp = sub.add_parser("compile", help="compile a .tflite model (int8, or float with --calib) into an "
                                        ".npb blob",
                        epilog="supported ops: %s. Float models (--calib) may use: %s."
                        % (", ".join(ops.SUPPORTED), ", ".join(ops.QUANTIZABLE)))
    sp.add_argument("model")
    sp.add_argument("-o", "--output", help="output .npb (default: NAME.npb in the current "
                                           "directory, NAME as `npu flash` names the model)")
    quant_args(sp)
    sp.add_argument("--report", action="store_true", help="print the per-layer quantization report")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_compile)

    sp = sub.add_parser("inspect", help="per-layer cost of a model (.tflite or .npb): MACs, weights, "
                                        "arena; whether it fits a board")
    sp.add_argument("model")
    sp.add_argument("--board", help="board profile to check the fit against (exit 1 if it does not fit)")
    sp.add_argument("--plot", metavar="PNG", help="draw the arena over time (needs matplotlib)")
    quant_args(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser("validate", help="run a model on the board and compare it with TFLite Micro "
                                         "(bit-exact) and LiteRT; on a difference, find the first layer")
    sp.add_argument("model", help="an int8 .tflite model")
    sp.add_argument("--inputs", help=".npz (key x, or one key per input) or .npy with a batch of samples "
                                     "(default: a seeded generated set)")
    sp.add_argument("--name", help="model name used on the board, kept there (default: a "
                                   "scratch model 'validate', removed afterwards)")
    key_arg(sp)
    board_args(sp)
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("emulate", help="run a virtual board on a pseudo-terminal")
    from npu_emulator.emulator import add_arguments
    add_arguments(sp)
    sp.set_defaults(func=cmd_emulate)

    sp = sub.add_parser("flash", help="install a model (.npb, or .tflite compiled on the fly) "
                                      "on the board")
    sp.add_argument("model", help="an .npb blob or an int8 .tflite model")
    sp.add_argument("--name", help="model name on the board (default: the file's stem; for a "
                                   "zoo file like kws_dscnn/int8.tflite, its folder: kws_dscnn)")
    key_arg(sp)
    sp.add_argument("--model-version", type=int, metavar="N",
                    help="with --key: the version signed with the blob (default: the time now, "
                         "in seconds); a keyed board refuses one older than it holds")
    sp.add_argument("--downgrade", action="store_true",
                    help="with --key: install over a newer version (signed over a fresh "
                         "nonce from the board: cannot be replayed)")
    board_args(sp, port=False)
    sp.add_argument("-p", "--port", action="append",
                    help="serial port, pyserial URL or labgrid://PLACE (default: $NPU_PORT); "
                         "repeat it to flash several boards in parallel")
    sp.add_argument("--places", metavar="PATTERN",
                    help="also flash every labgrid place matching PATTERN (npu-*) in parallel, "
                         "each acquired for the flash (docs/farm.md)")
    coordinator_arg(sp)
    sp.set_defaults(func=cmd_flash)

    sp = sub.add_parser("ls", help="list the models on the board and its free flash (--json: "
                                   "{models, free_flash, flash}, in bytes)")
    board_args(sp)
    sp.set_defaults(func=cmd_ls)

    sp = sub.add_parser("run", help="run a model on the board")
    sp.add_argument("name")
    sp.add_argument("--input", required=True, action="append", metavar="FILE",
                    help=".npy with a model input (its dtype and shape), or .npz with the inputs in "
                         "order; repeat it for several inputs")
    sp.add_argument("--quantize", action="store_true",
                    help="quantize float input data with the model's input scale and zero point")
    sp.add_argument("--output", metavar="FILE", help="save the output as .npy, or every output as "
                                                     ".npz (keys y0, y1, ...)")
    sp.add_argument("--repeat", type=_repeat, default=1, metavar="N",
                    help="run N times (1..65535), report the board's median")
    sp.add_argument("--profile", action="store_true",
                    help="time each op on the board's clock (mean per run)")
    board_args(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("ports", help="list serial ports (VID:PID) and which have an npu board")
    sp.add_argument("-p", "--port", help="also probe this port or pyserial URL (default: $NPU_PORT)")
    sp.add_argument("--probe-timeout", type=float, default=0.5, metavar="S",
                    help="seconds to wait for a board's HELLO on each port")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_ports)

    sp = sub.add_parser("info", help="the board's firmware, protocol, limits, ops and features")
    board_args(sp)
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("rm", help="remove a model (and any unfinished transfer of it) from the board")
    sp.add_argument("name")
    proof_arg(sp)
    board_args(sp)
    sp.set_defaults(func=cmd_rm)

    sp = sub.add_parser("cancel", help="stop the RUN the board is working on (a long --repeat), "
                                       "whichever host asked for it")
    board_args(sp)
    sp.set_defaults(func=cmd_cancel)

    sp = sub.add_parser("console", help="show the board's log lines: recent ones, then live")
    sp.add_argument("--count", type=int, metavar="N", help="stop after N lines")
    sp.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    board_args(sp)
    sp.set_defaults(func=cmd_console)

    sp = sub.add_parser("repl", help="leave the npu protocol and get the board's MicroPython REPL")
    sp.add_argument("--exit", action="store_true",
                    help="without a terminal: send Ctrl-D after stdin, back into the npu firmware")
    sp.add_argument("--wait", type=float, default=1.0, metavar="S",
                    help="without a terminal: seconds to print the board's output")
    proof_arg(sp)
    board_args(sp)
    sp.set_defaults(func=cmd_repl)

    sp = sub.add_parser("reset", help="soft-reset a board at its MicroPython REPL back into the "
                                      "npu firmware")
    board_args(sp)
    sp.set_defaults(func=cmd_reset)

    sp = sub.add_parser("keys", help="the board's device key: once it has one, it installs only "
                                     "blobs signed with it")
    keys_sub = sp.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    kp = keys_sub.add_parser("provision", help="give the board a new random device key and write "
                                               "it to a file (mode 0600)")
    kp.add_argument("--out", default="npu-device.key", metavar="FILE",
                    help="key file to create (default: npu-device.key; never overwritten)")
    kp.add_argument("--old-key", metavar="FILE", help="the key file the board has now, to replace it")
    kp.add_argument("--lock", action="store_true",
                    help="lock the board for good: it never hands its REPL over again (no `npu "
                         "repl`, no `npu firmware install` over the link); flash, rm, run and "
                         "key changes stay possible with the key (docs/protocol.md, Locking)")
    board_args(kp)
    kp.set_defaults(func=cmd_keys_provision)
    kp = keys_sub.add_parser("clear", help="remove the board's device key: it installs any blob again")
    kp.add_argument("--key", required=True, metavar="FILE", help="the key file the board has now")
    board_args(kp)
    kp.set_defaults(func=cmd_keys_clear)

    sp = sub.add_parser("zoo", help="the model zoo that ships with npu-sdk")
    zoo_sub = sp.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    zp = zoo_sub.add_parser("list", help="list the zoo's models: name, task, files")
    zp.add_argument("--json", action="store_true", help="print JSON")
    zp.set_defaults(func=cmd_zoo_list)
    zp = zoo_sub.add_parser("path", help="print the directory of a zoo model")
    zp.add_argument("name")
    zp.add_argument("--json", action="store_true", help="print JSON")
    zp.set_defaults(func=cmd_zoo_path)
    sp = sub.add_parser("farm", help="a local board farm: emulated boards exported through "
                                     "labgrid (docs/farm.md)")
    farm_sub = sp.add_subparsers(dest="farm_command", required=True, metavar="FARM_COMMAND")
    fp = farm_sub.add_parser("up", help="start N emulated boards, publish them with ser2net "
                                        "(RFC 2217) and labgrid's exporter as places "
                                        "PREFIX-1..N; serve until Ctrl-C")
    fp.add_argument("n", type=int, metavar="N", help="number of boards")
    coordinator_arg(fp)
    fp.add_argument("--prefix", default="npu", help="place names: PREFIX-1..N (default: npu)")
    fp.add_argument("--baud", metavar="N|board",
                    help="pace each board's UART at N baud, or the profile's with 'board' "
                         "(default: unpaced)")
    fp.add_argument("--core", choices=("cpython", "micropython", "qemu"),
                    help="emulator core (default: cpython; micropython with --repl)")
    fp.add_argument("--board", help="board profile (default: the core's)")
    fp.add_argument("--repl", action="store_true",
                    help="boards at their MicroPython REPL, as before `npu firmware install` "
                         "(the micropython core's REPL, the board's flash as its filesystem)")
    fp.add_argument("--json", action="store_true", help="print the farm as one JSON line")
    fp.set_defaults(func=cmd_farm_up)

    sp = sub.add_parser("firmware", help="build the board firmware (.mpy) and install it on a "
                                         "MicroPython board over its REPL")
    fw_sub = sp.add_subparsers(dest="firmware_command", required=True, metavar="FIRMWARE_COMMAND")
    from .firmware_build import ARCHS
    fp = fw_sub.add_parser("build", help="compile the firmware with mpy-cross: main.py + "
                                         "npufw/*.mpy + manifest.json")
    fp.add_argument("-o", "--output", metavar="DIR", help="output directory (default: npu-firmware, "
                                                          "npu-firmware-BOARD with --board, "
                                                          "npu-firmware-TARGET with --target)")
    fp.add_argument("--arch", choices=ARCHS, metavar="ARCH",
                    help="native code target, one of: %s (ESP32-S3: xtensawin, RP2040: armv6m; "
                         "default: the host MicroPython VM's)" % ", ".join(ARCHS))
    from .firmware_image import TARGETS
    fp.add_argument("--target", choices=sorted(TARGETS), metavar="TARGET",
                    help="build a whole MicroPython image instead (firmware.elf, firmware.bin) "
                         "with the firmware frozen in, for one of: %s; needs MicroPython's "
                         "source and arm-none-eabi-gcc (docs/boards.md)" % ", ".join(sorted(TARGETS)))
    from .firmware_build import BOARD_ARCHS
    fp.add_argument("--board", metavar="NAME",
                    help="the board to build for: %s (its .mpy architecture), or a qemu board "
                         "(mps3-an547, mps2-an386: its image); with --target: the board "
                         "profile whose RAM sizes the heap (default: the target's own)"
                         % ", ".join(sorted(BOARD_ARCHS)))
    fp.add_argument("--micropython", metavar="DIR",
                    help="with --target: MicroPython's source tree (default: $MICROPY_DIR)")
    fp.add_argument("--cmsis-nn", metavar="DIR",
                    help="with --target: CMSIS-NN's source (Source/, Include/) for the native npu "
                         "module's Arm kernels (default: $CMSIS_NN_DIR; neither: portable C). "
                         "The module (firmware/native) builds into your own MicroPython too: "
                         "make USER_C_MODULES=.../firmware/native (docs/boards.md)")
    fp.add_argument("--json", action="store_true", help="print JSON")
    fp.set_defaults(func=cmd_firmware_build)
    fp = fw_sub.add_parser("install", help="copy the firmware to a board through its raw REPL "
                                           "(only files that differ), then soft-reset it")
    fp.add_argument("--from", dest="src", metavar="DIR",
                    help="a `npu firmware build` directory (default: build now for the board)")
    fp.add_argument("-p", "--port", help="serial port or pyserial URL (default: $NPU_PORT)")
    fp.add_argument("--baud", type=int, default=115200, help="baud rate (default: 115200)")
    fp.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the board")
    fp.add_argument("--no-reset", action="store_true", help="stay at the REPL after installing")
    fp.add_argument("--json", action="store_true", help="print JSON")
    fp.set_defaults(func=cmd_firmware_install)
    return p


def _pick_port(args):
    """No --port and no $NPU_PORT: the one board this host finds (as mpremote's `auto`), named
    on stderr; none or several is an error saying so."""
    if not hasattr(args, "port") or args.port or os.environ.get("NPU_PORT") \
            or args.command == "ports" or getattr(args, "places", None):
        return
    from .link import discovery
    port = discovery.only_board()
    args.port = [port] if args.command == "flash" else port
    print("using the board on %s (the only one found)" % port, file=sys.stderr)


def _print_warning(message, category, filename, lineno, file=None, line=None):
    """A warning (errors.ModelWarning: what the SDK tolerated) as one line, no source location."""
    print("warning: %s" % message, file=sys.stderr)


def main(argv=None):
    import logging
    # labgrid's client logs to the root logger: the error we raise says it once, in one line
    logging.getLogger().addHandler(logging.NullHandler())
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    _Parser.json_errors = "--json" in argv
    args = build_parser().parse_args(argv)
    if args.port_before and getattr(args, "port", None) is None and hasattr(args, "port"):
        args.port = [args.port_before] if args.command == "flash" else args.port_before
    try:
        _pick_port(args)
        with warnings.catch_warnings():
            warnings.showwarning = _print_warning
            code = args.func(args) or 0
            sys.stdout.flush()  # a reader gone away shows here, not as a traceback at exit
            return code
    except BrokenPipeError:
        # stdout's reader went away (`npu ls | head -1`): stop quietly, as Unix tools do on
        # SIGPIPE (128 + 13), with nothing left to flush into the broken pipe at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except NpuError as e:
        if getattr(args, "json", False):
            print(json.dumps(dict(error=str(e), code=1)))
        print("npu: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print("npu: %s" % (e.args[0] if e.args else "interrupted"), file=sys.stderr)
        return 130
