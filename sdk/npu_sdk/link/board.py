"""Board: the host client every tool uses (CLI, pytest plugin, demo).

Requests and their retransmission live here, FLASH_DATA streaming in arq.py, frames in
codec.py; what a flash source is (an .npb, a .tflite compiled on the fly) in
npu_sdk/models.py. numpy is imported by the methods that handle tensors (run, invoke),
so that flashing, listing and the other board commands start without it.
"""
import random
import struct
import time
from dataclasses import dataclass

from .. import blob, ops, profiles
from ..errors import BoardBusy, BoardError, LinkError, LinkTimeout, NpuError, PreflightError
from ..models import load_model, remember, seen
from . import board_state, codec
from .arq import CHUNK, CHUNK_MIN, FlashStream
from .transport import DEFAULT_BAUD, open_port

#: seconds an INPUT piece's answer may take before the piece counts as lost (and the pieces
#: halve), until round trips are measured
_PIECE_WAIT = 1.0
_NO_DATA_MISSES = 20  # reads in a row that may find no data before the port counts as gone
_DTYPES = {code: str(name) for code, name in blob.DType.decmapping.items()}  # the blob's codes


class BoardInfo(codec.Hello):
    """What the board said in HELLO (fields: codec.Hello), with a JSON-ready view."""

    def as_dict(self):
        d = dict(vars(self))
        d["ops"] = [blob.OPNAMES.get(o, o) for o in self.ops]
        d["features"] = [n for bit, n in ((codec.F_DEFLATE, "deflate"), (codec.F_REPL, "repl"),
                                          (codec.F_PROFILE, "profile"),
                                          (codec.F_STAGING, "staging"),
                                          (codec.F_SIGNING, "signing"),
                                          (codec.F_KEYED, "keyed"),
                                          (codec.F_ICOUNT, "icount"),
                                          (codec.F_LOCKED, "locked"),
                                          (codec.F_CANCEL, "cancel")) if self.features & bit]
        d["keyed"] = self.keyed
        d["locked"] = self.locked
        return d

    @property
    def locked(self):
        """The board never hands its REPL over (`npu keys provision --lock`)."""
        return bool(self.features & codec.F_LOCKED)

    @property
    def keyed(self):
        """The board has a device key: it installs only blobs signed with it."""
        return bool(self.features & codec.F_KEYED)


@dataclass
class ModelEntry:
    name: str
    size: int
    blob_id: bytes


@dataclass
class FlashResult:
    """What one Board.flash did: `sent` data bytes on the line (retransmissions included,
    deflated chunks as sent), the offset it `resumed` from, whether the board already held
    the blob (`skipped`), the id of a different blob it `replaced` under the name, `seconds`."""
    name: str
    size: int
    sent: int = 0
    resumed: int = 0
    skipped: bool = False
    replaced: bytes = None
    retransmits: int = 0
    timeouts: int = 0  # resends after a retransmission timeout (the rest were found by order)
    seconds: float = 0.0


class Board:
    """A connected board. Use as a context manager.

    A board working on another host's RUN raises BoardBusy unless `busy_ok`: then the Board
    can only cancel() it. Requests are retransmitted with exponential backoff while the board is silent; the
    board answers a repeated request with its first answer. FLASH_DATA streams a window of
    chunks (docs/protocol.md). `trace(direction, time, type, seq, payload)`, when given, sees
    every frame ("<" received, ">" sent); `on_log(ms, text)` gets the board's LOG lines.
    """

    def __init__(self, port, baudrate=DEFAULT_BAUD, timeout=10.0, retries=2, trace=None,
                 on_log=None, key=None, busy_ok=False):
        self.port = port
        self.key = key  # the device key flash() signs with when it is given none
        self.serial = open_port(port, baudrate)
        self.timeout = timeout
        self.retries = retries
        self.trace = trace
        self.on_log = on_log
        self.deframer = codec.Deframer()
        self.seq = random.randrange(256)  # a new session does not reuse the last one's seqs
        self.info = None
        self.last_flash = None
        self.last_invoke_us = None  # the board's median of the last invoke/run, in µs
        self.models = {}  # name -> ModelSpec (None: unknown) of what this connection flashed or looked up
        try:
            self.info = self.hello()
        except BoardBusy:
            if not busy_ok:  # a board that is working answers only CANCEL (`info` stays None)
                self.close()
                raise
        except LinkTimeout as e:
            try:  # name the state of a board at its REPL rather than "no answer"
                state = board_state.probe(self.serial, port, min(0.25, timeout / 4))
            except Exception:  # the probe is a courtesy: the timeout is the error
                state = None
            self.close()
            if state is not None:
                raise state from e
            raise
        except Exception:
            self.close()
            raise

    def close(self):
        self.serial.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- frames --------------------------------------------------------------------

    def _next_seq(self):
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    def _send(self, ftype, seq, payload=b""):
        if self.trace:
            self.trace(">", time.monotonic(), ftype, seq, payload)
        try:
            self.serial.write(codec.encode(ftype, seq, payload))
        except Exception as e:  # pyserial raises several types for a vanished port
            raise LinkError("writing to %s failed: %s" % (self.port, e)) from e

    def _frames(self, deadline):
        """Decoded frames that arrive before `deadline` (LOG frames are handed to on_log)."""
        misses = 0
        while True:
            try:
                waiting = self.serial.in_waiting
                if not waiting and time.monotonic() >= deadline:
                    return
                data = self.serial.read(max(1, waiting))
            except Exception as e:
                # pyserial's "readiness to read but returned no data": once, another program on
                # the port (a second `npu` asking a busy board) took the bytes first; a port
                # that went away says it again and again
                if "returned no data" in str(e) and misses < _NO_DATA_MISSES:
                    misses += 1
                    time.sleep(0.01)
                    continue
                raise LinkError("reading from %s failed: %s" % (self.port, e)) from e
            misses = 0
            for raw in self.deframer.feed(data):
                msg = codec.decode(raw)
                if msg is None:
                    continue
                if self.trace:
                    self.trace("<", time.monotonic(), *msg)
                if msg[0] == codec.LOG:
                    if self.on_log:
                        self.on_log(*codec.parse_log(msg[2]))
                    continue
                yield msg

    def request(self, ftype, payload=b"", timeout=None, retransmit=True):
        """Send a request, return the answer's payload. Retransmits on silence with backoff
        (0.25 s, 0.5 s, ... up to `timeout` per wait) within timeout x (retries + 1) in all;
        without `retransmit`, sends once and waits `timeout`. A board that answers a
        retransmission with "working" (a cancellable RUN between inferences) is not silent:
        the wait goes on while it says so."""
        if self.info is not None and len(payload) > self.info.max_payload:
            raise LinkError("request %s of %d bytes is longer than the board's %d-byte frames"
                            % (codec.frame_name(ftype), len(payload), self.info.max_payload))
        seq = self._next_seq()
        timeout = self.timeout if timeout is None else timeout
        start = time.monotonic()
        give_up = start + timeout * (self.retries + 1 if retransmit else 1)
        wait = min(0.25, timeout) if retransmit else timeout
        tries = 0
        working = None  # what the board said the last time it was still at this request
        while True:
            self._send(ftype, seq, payload)
            tries += 1
            deadline = min(time.monotonic() + wait, give_up)
            for rtype, rseq, p in self._frames(deadline):
                if rtype == codec.ERROR and rseq == seq:
                    code, message = codec.parse_error(p)
                    if code == codec.E_WORKING:  # a retransmission found it still at work
                        working = message
                        # time for the next retransmission (at most `timeout` away) and its answer
                        give_up = max(give_up, time.monotonic() + 2 * timeout)
                        continue
                    if code == codec.E_BUSY:
                        raise BoardBusy("the board on %s is %s" % (self.port, message))
                    raise BoardError(code, message)
                if rtype != ftype | codec.RESPONSE or rseq != seq:
                    # a late answer to an earlier request, or to a killed host's frames still
                    # queued on the line: seq alone is 8 bits, so it may match by chance
                    continue
                return p
            if time.monotonic() >= give_up:
                break
            wait = min(wait * 2, timeout)
        if working is not None:
            raise BoardBusy("the board on %s went quiet at %s after %.1f s (it last said %s): one "
                            "inference takes longer than --timeout; give it a longer one"
                            % (self.port, codec.frame_name(ftype), time.monotonic() - start,
                               working), ours=True)
        raise LinkTimeout("no answer from the board on %s within %.1f s (%d tries); is it running "
                          "the npu firmware and is the port right?"
                          % (self.port, give_up - start, tries))

    # --- requests ------------------------------------------------------------------

    def hello(self):
        payload = codec.hello_request()
        # a board at its MicroPython REPL reads this frame as keys: a Ctrl-D in it (in the CRC)
        # soft-resets the board, whose firmware then answers a retransmission as if nothing
        # happened; a seq whose frame holds none leaves the REPL for board_state to name
        while board_state.CTRL_D in codec.encode(codec.HELLO, self.seq + 1, payload):
            self._next_seq()
        p = self.request(codec.HELLO, payload, timeout=min(3.0, self.timeout))
        proto = struct.unpack_from("<H", p)[0] if len(p) >= 2 else None
        if proto != codec.PROTOCOL_VERSION:
            raise LinkError("the board on %s speaks link protocol %s, this host SDK %d: update the %s"
                            % (self.port, proto, codec.PROTOCOL_VERSION,
                               "firmware" if (proto or 0) < codec.PROTOCOL_VERSION else
                               "host SDK (pip install -U npu-sdk)"))
        try:
            h = codec.parse_hello(p)
        except (ValueError, struct.error, IndexError) as e:
            raise LinkError("the board's HELLO answer is malformed: %s" % e) from e
        return BoardInfo(**vars(h))

    def preflight(self, data, name=None):
        """Refuse, before any write, a blob this board cannot run or hold (PreflightError)."""
        body = blob.unpack(data)
        info = self.info
        missing = sorted({o.opcode for o in body.ops} - set(info.ops))
        if missing:
            raise PreflightError("op", "firmware %s cannot run op(s) %s: update the firmware"
                                 % (info.firmware, ", ".join(blob.OPNAMES.get(o, str(o))
                                                             for o in missing)))
        work, budget = ops.run_work(body.ops), profiles.run_macs(info.board)
        if work > budget:
            raise PreflightError("work", "one RUN of this model takes %d multiply-accumulates, "
                                 "the board (%s) allows %d: a smaller model, or a faster board "
                                 "(npu inspect MODEL --board PROFILE)"
                                 % (work, info.board or "no profile", budget))
        arena = body.header.value.arena_size
        if arena > info.ram:
            raise PreflightError("ram", "model needs a %d-byte arena, the board has %d bytes of RAM: "
                                 "use a smaller model or input" % (arena, info.ram))
        info = self.info = self.hello()  # free flash as it is now
        if len(data) > info.free_flash:
            entries = self.list()
            if any(e.name == name and e.blob_id == bytes(data[-32:]) for e in entries):
                return  # already there: nothing will be written
            raise PreflightError("flash", "model needs %d bytes of flash, the board has %d free "
                                 "(%d in all): remove a model with `npu rm NAME`%s"
                                 % (len(data), info.free_flash, info.flash,
                                    (" (on the board: %s)" % ", ".join(e.name for e in entries))
                                    if entries else ""))

    def flash(self, source, name=None, progress=None, *, key=None, skip_if_same=True, chunk=CHUNK,
              preflight=True, version=None, downgrade=False):
        """Install a model as `name`; the board keeps its old model until this one verifies.

        `source` is a path to an .npb blob or a .tflite model (compiled here), blob bytes
        (then `name` is required) or a `compiler.Compiled`. `name` defaults to the file's
        stem (a zoo file's folder: models.default_name). `progress(n)` is called as the
        board confirms n more bytes. A transfer that was
        cut (host, cable, board reset) resumes from what the board verified; a blob the board
        already holds under `name` is not sent again (with `skip_if_same`, the default, not
        even FLASH_BEGIN: LIST tells). `preflight=False` skips the host's checks (the board checks anyway).
        `key` (32 bytes, the board's device key; default: the Board's `key`) signs the blob: a
        keyed board (`info.keyed`) installs nothing unsigned, and checks the signature before
        any data is sent. A signed blob carries `version` (default: the time now, in seconds):
        a keyed board refuses one older than the version it holds under `name` unless
        `downgrade` (signed over a fresh nonce from the board, so it cannot be replayed).
        Returns a ModelSpec; `self.last_flash` is a FlashResult.
        """
        data, spec = load_model(source, name)
        name = spec.name
        t0 = time.monotonic()
        result = FlashResult(name, len(data))
        key = self.key if key is None else key
        version = int(time.time()) if version is None else version
        self._signature(data, name, key, preflight, version)  # a missing key fails here
        held = next((e.blob_id for e in self.list() if e.name == name), None)
        if held != spec.blob_id:
            result.replaced = held
        # a keyed board checks the key even for a blob it holds: ask it with FLASH_BEGIN
        if skip_if_same and not self.info.keyed and held == spec.blob_id:
            result.skipped = True  # the board holds this exact blob: nothing to do
            result.seconds = time.monotonic() - t0
            self.last_flash = result
            self.models[name] = spec
            remember(spec)
            return spec
        if preflight:
            self.preflight(data, name)
        flags = codec.DOWNGRADE if downgrade else 0
        for attempt in (1, 2):
            mac = self._signature(data, name, key, preflight, version, flags)
            state, verified = codec.parse_flash_begin(self.request(
                codec.FLASH_BEGIN, codec.flash_begin_request(len(data), data[-32:], name, mac,
                                                             version, flags)))
            if state == codec.BEGIN_INSTALLED:
                result.skipped = True
                break
            result.resumed = verified
            if progress and verified:
                progress(verified)
            FlashStream(self, data, verified, chunk, progress, result).run()
            try:
                self.request(codec.FLASH_END)
                break
            except BoardError as e:  # a resumed .part that was damaged on the board's flash
                if e.code != 5 or verified == 0 or attempt == 2:
                    raise
                if progress:
                    progress(-len(data))
        result.seconds = time.monotonic() - t0
        self.last_flash = result
        self.models[name] = spec
        remember(spec)
        return spec

    def _signature(self, data, name, key, preflight, version, flags=0):
        """The FLASH_BEGIN signature of blob `data` installed as `name`, `version`, with `key`,
        or None where it has no use; a DOWNGRADE is signed over a nonce from the board."""
        if key is not None and len(key) != codec.KEY_SIZE:
            raise ValueError("a device key is %d bytes, got %d" % (codec.KEY_SIZE, len(key)))
        if key is None:
            if preflight and self.info.keyed:
                raise PreflightError("signature", "board accepts only blobs signed with its device "
                                     "key: flash with --key FILE (the file `npu keys provision` "
                                     "wrote)")
            return None
        if not self.info.features & codec.F_SIGNING:
            return None  # a board without F_SIGNING has no key and takes any blob
        nonce = codec.parse_nonce(self.request(codec.NONCE)) if flags & codec.DOWNGRADE and self.info.keyed else b""
        return codec.blob_mac(key, data[-32:], name, version, flags, nonce)

    def _proven(self, ftype, body, key=None):
        """`body`, followed on a keyed board by the proof of the key it wants for request
        `ftype` (RM, REPL, KEY), over a nonce asked for now: a captured one cannot be replayed."""
        key = self.key if key is None else key
        if not self.info.keyed:
            return body
        if key is None:
            raise NpuError("the board has a device key and does this only with proof of it: "
                           "give --key FILE (the file `npu keys provision` wrote)")
        return body + codec.proof(key, codec.parse_nonce(self.request(codec.NONCE)), ftype, body)

    def provision_key(self, new_key, old_key=None, lock=False):
        """Give the board device key `new_key` (32 bytes; from then on it installs only blobs
        signed with it). A board that has a key wants it as `old_key` (BoardError code 13).
        `lock`: the board never hands its REPL over again (docs/protocol.md, Locking)."""
        if len(new_key) != codec.KEY_SIZE or (old_key is not None and len(old_key) != codec.KEY_SIZE):
            raise ValueError("a device key is %d bytes" % codec.KEY_SIZE)
        if not self.info.features & codec.F_SIGNING:
            raise NpuError("firmware %s cannot keep a device key: update the firmware"
                             % self.info.firmware)
        keyed = self.info.keyed and old_key is not None
        nonce = codec.parse_nonce(self.request(codec.NONCE)) if keyed else None
        self.request(codec.KEY, codec.key_request(new_key, old_key if keyed else None, nonce, lock))
        self.info = self.hello()  # F_KEYED as it is now

    def clear_key(self, old_key):
        """Remove the board's device key (`old_key`, the one it has): it takes any blob again."""
        self.provision_key(bytes(codec.KEY_SIZE), old_key)

    def remove(self, name, key=None):
        """Delete model `name` from the board (BoardError code 6 if it has none); a keyed
        board wants proof of its key (`key`, default the Board's)."""
        self.request(codec.RM, self._proven(codec.RM, codec.pack_str(name), key))
        self.models.pop(name, None)

    def cancel(self):
        """Stop the RUN the board is working on (from this host or another); True if one was
        stopped. The board looks between inferences, so it answers within one inference."""
        if self.info is not None and not self.info.features & codec.F_CANCEL:
            raise NpuError("firmware %s cannot stop a RUN: update the firmware"
                           % self.info.firmware)
        return codec.parse_cancel(self.request(codec.CANCEL))

    def console(self, enable=True):
        """Start (or stop) the board's LOG stream; returns its recent [(ms, text)] lines."""
        return codec.parse_console(self.request(codec.CONSOLE, bytes([1 if enable else 0])))

    def poll(self, seconds):
        """Read for `seconds`, handing LOG frames to on_log (and every frame to trace)."""
        for _ in self._frames(time.monotonic() + seconds):
            pass

    def repl(self, key=None):
        """Ask the firmware to leave binary mode and hand the MicroPython REPL back (a keyed
        board wants proof of its key: `key`, default the Board's). A locked board never does."""
        if self.info.locked:
            raise NpuError("the board on %s is locked (npu keys provision --lock): it never hands "
                           "its REPL over; update its firmware with its bootloader "
                           "(docs/protocol.md, Locking)" % self.port)
        self.request(codec.REPL, self._proven(codec.REPL, b"", key))

    def list(self):
        return [ModelEntry(*e) for e in codec.parse_list(self.request(codec.LIST))]

    def memory(self):
        """The board's heap (codec.parse_memory), or None from firmware older than MEM."""
        try:
            return codec.parse_memory(self.request(codec.MEM))
        except BoardError as e:
            if e.code == 1:  # unknown request
                return None
            raise

    def spec(self, name):
        """The ModelSpec of model `name` if this process has seen its blob, else None."""
        if name not in self.models:
            entry = next((e for e in self.list() if e.name == name), None)
            known = seen(entry.blob_id) if entry else None
            self.models[name] = known and known.renamed(name)
        return self.models[name]

    def run(self, name, x):
        """Run a single-input, single-output model on `x`; returns the output array.

        `x` has the model's input shape and dtype (leading 1s may be left out, so an (8, 8)
        image fits a (1, 8, 8) input). Models with several inputs or outputs: `invoke`.
        """
        spec = self.spec(name)
        if spec is not None and len(spec.inputs) != 1:
            raise ValueError("model %r has %d inputs; Board.run takes one, use "
                             "Board.invoke(%r, [x0, x1, ...])" % (name, len(spec.inputs), name))
        outputs, _ = self.invoke(name, [x])
        if len(outputs) != 1:
            raise ValueError("model %r has %d outputs; Board.run returns one, use "
                             "Board.invoke(%r, [x]) to get them all" % (name, len(outputs), name))
        return outputs[0]

    def invoke(self, name, inputs, repeat=1, profile=False):
        """Run the model on `inputs` (one array per model input) `repeat` times.

        Returns (outputs, median µs measured by the board's clock); with `profile`,
        (outputs, median µs, [(op name, mean µs per run)]) timed op by op on the board.
        Inputs are checked against the model's spec when this process knows it; the board
        checks them anyway.
        """
        import numpy as np
        if not 1 <= repeat <= 0xFFFF:
            raise ValueError("repeat must be 1..65535, got %r" % (repeat,))
        spec = self.models.get(name)
        if spec:
            inputs = spec.check_inputs(inputs)
        raw = [np.ascontiguousarray(x).tobytes() for x in inputs]
        flags = codec.RUN_PROFILE if profile else 0
        staging = self.info.features & codec.F_STAGING
        if staging:
            flags |= codec.RUN_HOLD
        if self.info.features & codec.F_CANCEL:
            flags |= codec.RUN_CANCELLABLE
        timeout = None
        try:
            if repeat > 1:  # wait as long as the work asked takes: one run's time, `repeat` times
                one_us = self._run(name, raw, 1, flags & ~codec.RUN_PROFILE)[0]
                timeout = self.timeout + 2.0 * repeat * one_us / 1e6
            median_us, outs, ops = self._run(name, raw, repeat, flags, timeout)
        except (KeyboardInterrupt, BoardBusy) as e:
            # leave the board free for the next command: stop the work this host asked for
            if (isinstance(e, BoardBusy) and not e.ours) or not self.info.features & codec.F_CANCEL:
                raise  # another host's work, or a board that cannot stop it
            stopped = self.cancel()
            if isinstance(e, KeyboardInterrupt):
                raise KeyboardInterrupt("interrupted; %s" % (
                    "the board stopped running %r" % name if stopped else "the board is idle")) \
                    from None
            raise
        self.last_invoke_us = median_us
        outputs = []
        for i, (dtype, shape, data) in enumerate(outs):
            if dtype & codec.OUT_HELD:
                dtype &= ~codec.OUT_HELD
                data = self._read_output(name, i, data)
            outputs.append(np.frombuffer(data, dtype=_DTYPES[dtype]).reshape(shape))
        if profile:
            return outputs, median_us, [(blob.OPNAMES.get(op, str(op)), us) for op, us in ops or []]
        return outputs, median_us

    def _run(self, name, raw, repeat, flags, timeout=None):
        """One RUN request (its inputs staged first when they do not fit a frame): parsed."""
        request = codec.run_request(name, raw, repeat, flags)
        if len(request) > self.info.max_payload:
            if not self.info.features & codec.F_STAGING:
                raise LinkError("model %r's inputs (%d bytes) do not fit the board's %d-byte frames "
                                "and firmware %s cannot stage them: update the firmware"
                                % (name, sum(map(len, raw)), self.info.max_payload,
                                   self.info.firmware))
            self._stage_inputs(name, raw)
            request = codec.run_request(name, [], repeat, flags | codec.RUN_STAGED)
        return codec.parse_run(self.request(codec.RUN, request, timeout=timeout))

    def _stage_inputs(self, name, raw):
        """Upload RUN inputs too long for one frame with INPUT requests, piece by piece. As
        flashing's chunks do, a piece lost on the line halves the pieces (down to CHUNK_MIN)
        and a run of clean ones doubles them again: a lossy line still carries the input."""
        top = self.info.max_payload - len(codec.input_request(name, 0, 0, b""))
        step, clean, per_byte, backoff = top, 0, None, 1
        for index, data in enumerate(raw):
            off, progress_at = 0, time.monotonic()
            while off < len(data) or (off == 0 and not data):
                piece = data[off:off + step]
                sent_at = time.monotonic()
                # a lost piece is known by its silence: wait a few of its round trips, longer
                # after each loss (a busy board answers late: a shorter wait would swamp it)
                wait = _PIECE_WAIT if per_byte is None else \
                    min(_PIECE_WAIT, max(0.1, 4 * per_byte * max(len(piece), 256)))
                wait = min(wait * backoff, self.timeout)
                try:
                    staged = struct.unpack("<I", self.request(
                        codec.INPUT, codec.input_request(name, index, off, piece),
                        timeout=wait, retransmit=False))[0]
                except LinkTimeout:
                    if time.monotonic() - progress_at > self.timeout * (self.retries + 1):
                        raise
                    step, clean, backoff = max(CHUNK_MIN, step // 2), 0, backoff * 2
                    continue
                # more than this piece: an earlier, longer copy arrived whose answer was lost
                if not off + len(piece) <= staged <= len(data):
                    raise LinkError("board staged %d bytes of input %d, expected %d"
                                    % (staged, index, off + len(piece)))
                off, progress_at = staged, time.monotonic()
                per_byte, backoff = (progress_at - sent_at) / max(len(piece), 256), 1
                clean += 1
                if clean == 4:
                    step, clean = min(top, step * 2), 0
                if not data:
                    break

    def _read_output(self, name, index, size):
        """Read an output the board held after RUN (RUN_HOLD) with OUTPUT requests."""
        out = bytearray()
        while len(out) < size:
            piece = self.request(codec.OUTPUT, codec.output_request(
                name, index, len(out), min(size - len(out), self.info.max_payload)))
            if not piece:
                raise LinkError("board returned no bytes of output %d at %d of %d"
                                % (index, len(out), size))
            out += piece
        return bytes(out)
