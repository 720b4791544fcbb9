"""The board's request server, link protocol v3 (docs/protocol.md).

Frames in, one answer frame out per request. A repeated request (same type, seq and CRC:
the host did not hear the answer) gets the same answer again without running twice.
FLASH_DATA streams: the host keeps a window of chunks in flight, the board writes them in
order, holds up to WINDOW bytes that arrived early, and acknowledges each frame with the
offset it has verified so far (NAK with the same offset when a gap precedes the frame).
A cancellable RUN reads the line between its inferences: CANCEL stops it, other requests hear
that the board is busy.
"""
import gc
import hashlib
import struct

from . import blobfmt, checks, frame, opcodes, sign, stream
from .store import valid_name

try:  # MicroPython
    import deflate
    import io

    def _raw_inflate(data, limit):
        return deflate.DeflateIO(io.BytesIO(data), deflate.RAW, ZDATA_WBITS).read(limit + 1)
except ImportError:
    try:  # CPython
        import zlib

        def _raw_inflate(data, limit):
            z = zlib.decompressobj(-ZDATA_WBITS)
            out = z.decompress(data, limit + 1)
            return out if z.eof or len(out) > limit else None  # None: the stream is cut short
    except ImportError:  # neither: HELLO does not announce F_DEFLATE
        _raw_inflate = None

PROTOCOL_VERSION = 3  # 2: the FLASH_BEGIN signature covers the name; 3: versions, proofs
FIRMWARE_VERSION = "0.3.0"  # 0.3: link protocol 2 (signatures bind the name)
MAX_PAYLOAD = opcodes.MAX_PAYLOAD  # a module attribute: tests shrink it
WINDOW = 16384  # bytes of early FLASH_DATA the board holds while a gap is resent
_LOG_LINES = 32

HELLO = 0x01
FLASH_BEGIN = 0x02
FLASH_DATA = 0x03
FLASH_END = 0x04
LIST = 0x05
RUN = 0x06
RM = 0x07
CONSOLE = 0x08
REPL = 0x09
INPUT = 0x0A
OUTPUT = 0x0B
KEY = 0x0C
FLASH_ZDATA = 0x0D
MEM = 0x0E
NONCE = 0x0F
CANCEL = 0x10
LOG = 0x40
RESPONSE = 0x80
NAK = 0xFE
ERROR = 0xFF

F_DEFLATE = 1
F_REPL = 2
F_PROFILE = 4
F_STAGING = 8  # INPUT and OUTPUT requests, RUN_STAGED and RUN_HOLD
F_SIGNING = 16  # KEY requests and signed FLASH_BEGIN
F_KEYED = 32  # this board has a device key: it installs only blobs signed with it
F_ICOUNT = 64  # the board's clock counts instructions: 1 us is 1,000 (QEMU's -icount shift=0)
F_LOCKED = 128  # the board never hands its REPL over (KEY with KEY_LOCK), for good
KEY_LOCK = 1  # KEY flags: lock the board
F_CANCEL = 256  # CANCEL requests and RUN_CANCELLABLE
ZDATA_WBITS = 12  # FLASH_ZDATA's deflate window: 4 KB, more than any chunk

BEGIN_SEND = 0
BEGIN_INSTALLED = 1
RUN_PROFILE = 1
RUN_STAGED = 2  # the inputs were uploaded with INPUT
RUN_HOLD = 4  # outputs too long for one answer stay on the board for OUTPUT
RUN_CANCELLABLE = 8  # read the line between inferences: CANCEL, busy and working answers
OUT_HELD = 0x80  # RUN answer: an output's dtype | OUT_HELD: its bytes are read with OUTPUT

# error codes (npu_sdk.link.codec.ERRORS mirrors these)
E_UNKNOWN = 1
E_BAD_REQUEST = 2
E_VERSION = 3
E_NO_SPACE = 4
E_BAD_BLOB = 5
E_NOT_FOUND = 6
E_BAD_INPUT = 7
E_NO_MEMORY = 8
E_BAD_NAME = 9
E_INTERNAL = 10
E_UNAVAILABLE = 11
E_TOO_LONG = 12
E_SIGNATURE = 13
E_CANCELLED = 14
E_BUSY = 15  # another request is running: this one was not run
E_WORKING = 16  # a repeat of the request that is running: not done yet


# what a short or malformed payload raises: struct.error on CPython, ValueError on MicroPython
_MALFORMED = (IndexError, ValueError, getattr(struct, "error", ValueError))


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _str(s):
    b = s.encode()
    if len(b) > 255:
        b = b[:255]
    return bytes((len(b),)) + b


def _read_str(p, pos):
    n = p[pos]
    if pos + 1 + n > len(p):
        raise ValueError("string runs past the end of the payload")
    return bytes(p[pos + 1:pos + 1 + n]).decode(), pos + 1 + n


def _inflate(data, offset):
    """FLASH_ZDATA's raw deflate stream -> the chunk; Refused when it is damaged or would
    inflate past the longest FLASH_DATA chunk (a bomb must not exhaust RAM)."""
    limit = MAX_PAYLOAD - 4
    try:
        out = _raw_inflate(data, limit)
    except MemoryError:
        raise  # the board's, not the stream's: the client hears "out of memory"
    except Exception:  # zlib.error, OSError, EOFError: the message must not depend on the VM
        out = None
    if out is None or len(out) > limit:
        raise Refused(E_BAD_REQUEST, "FLASH_ZDATA at %d is not a raw deflate stream of at most %d "
                      "bytes" % (offset, limit))
    return out


def _name(p, pos):
    name, pos = _read_str(p, pos)
    if not valid_name(name):
        raise Refused(E_BAD_NAME, "model name '%s': use 1-%d ASCII letters, digits, '_', '-', '.'"
                      % (name, opcodes.MAX_NAME))
    return name, pos


def _seed(clock):
    """16 bytes the board's nonces are drawn from: the OS's random bytes; where the port has
    none, its clock at boot (nonces then only differ, and a board restarted at the same
    tick repeats them: docs/protocol.md)."""
    try:
        import os
        return os.urandom(16)
    except (ImportError, AttributeError, OSError):
        return struct.pack("<I", clock.ticks_us() if clock is not None else 0) * 4


class _Flashing:
    __slots__ = ("name", "size", "blob_id", "part", "written", "early", "early_bytes", "version")

    def __init__(self, name, size, blob_id, part, written):
        self.name = name
        self.size = size
        self.blob_id = blob_id
        self.part = part
        self.written = written
        self.early = {}  # offset -> bytes that arrived before the gap in front of them
        self.early_bytes = 0
        self.version = -1  # signed on a keyed board: recorded at install


class Server:
    """Serves one board: `board` has uart, store, clock, npu, limits (see main.py).
    limits may say "repl": True where the board can hand the MicroPython REPL back."""

    def __init__(self, board):
        self.board = board
        self.deframer = frame.Deframer(2 * (MAX_PAYLOAD + 6))
        self.flashing = None  # _Flashing
        self.models = {}  # name -> Model, loaded on first RUN
        self.last = None  # (type, seq, crc bytes, answer) of the last answered request
        self.log_lines = []  # [(ticks_ms, text)], the newest last
        self.console = False  # send LOG frames as lines are logged
        self.leave = False  # set by REPL: serve_forever returns after answering
        self.current = None  # (type, seq, crc bytes) of the request being answered
        self.last_run = None  # (seq, crc bytes, answer) of the last RUN: outlives HELLO
        self.pending = []  # raw frames read behind a CANCEL while a RUN worked
        self.handlers = {HELLO: self.hello, FLASH_BEGIN: self.flash_begin,
                         FLASH_DATA: self.flash_data, FLASH_ZDATA: self.flash_zdata,
                         FLASH_END: self.flash_end,
                         LIST: self.list, RUN: self.run, RM: self.rm, CONSOLE: self.console_on,
                         REPL: self.repl, INPUT: self.input, OUTPUT: self.output,
                         KEY: self.key, MEM: self.memory, NONCE: self.nonce_request,
                         CANCEL: self.cancel}
        self.staging = None  # [Model, [bytes staged per input]]: INPUT writes into the arena
        self.nonce = None  # the last NONCE answered, until a proof of the key uses it
        self.nonces = 0
        self.seed = _seed(getattr(board, "clock", None))
        self.held = None  # the Model whose outputs a RUN left for OUTPUT
        # the work of one RUN this board allows: its profile's budget (npu_sdk/profiles.py),
        # checked at install and load (npufw/checks.py)
        from .budgets import RUN_MACS
        checks.run_macs = opcodes.MAX_RUN_MACS
        for profile, budget in RUN_MACS:
            if profile == board.limits.get("board"):
                checks.run_macs = budget
        self.trial = None  # the name of a loaded model installed over one its first RUN may restore
        # the heap in use (bytes; -1 where the board cannot tell): at boot, and for the loaded
        # model: before its load (no model loaded), after its load, after its first invoke
        self.idle = self._heap()
        self.mem = ["", -1, -1, -1]

    def serve_forever(self):
        """Serve until the host side goes away (returns None) or a REPL request ("repl")."""
        uart = self.board.uart
        while True:
            data = uart.read()
            if data is None:  # the host side went away
                return None
            for raw in self.deframer.feed(data):
                reply = self.handle(raw)
                if reply is not None:
                    uart.write(reply)
                while self.pending:
                    reply = self.handle(self.pending.pop(0))
                    if reply is not None:
                        uart.write(reply)
            while self.deframer.too_long:
                uart.write(self.too_long(*self.deframer.too_long.pop(0)))
            if self.leave:
                self.leave = False
                return "repl"

    # --- the log channel ---------------------------------------------------------

    def _ms(self):
        try:
            return (self.board.clock.ticks_us() // 1000) & 0xFFFFFFFF
        except AttributeError:  # a clock without ticks_us: logs carry 0
            return 0

    def log(self, text):
        """Keep `text` in the board's recent log and send it to a listening console."""
        line = (self._ms(), text)
        self.log_lines.append(line)
        if len(self.log_lines) > _LOG_LINES:
            self.log_lines.pop(0)
        if self.console:
            self.board.uart.write(frame.encode(LOG, 0, struct.pack("<I", line[0]) + text.encode()))

    # --- dispatch ----------------------------------------------------------------

    def handle(self, raw):
        """One raw frame in, the encoded answer out (None for a damaged frame: the host retries)."""
        msg = frame.decode(raw)
        if msg is None:
            return None
        ftype, seq, payload = msg
        if ftype == FLASH_DATA or ftype == FLASH_ZDATA:  # idempotent by offset, and too frequent to cache
            return self._answer(ftype, seq, payload)
        if ftype == HELLO:  # a new session: nothing before it is a repeat
            self.last = None
            return self._answer(ftype, seq, payload)
        key = bytes(raw[-4:])
        last = self.last
        if last is not None and last[0] == ftype and last[1] == seq and last[2] == key:
            return last[3]  # a repeat: the host did not hear the answer
        run = self.last_run
        if ftype == RUN and run is not None and run[0] == seq and run[1] == key:
            # a retransmission queued behind another host's HELLO: its work is done
            return run[2]
        self.current = (ftype, seq, key)
        try:
            reply = self._answer(ftype, seq, payload)
        finally:
            self.current = None
        self.last = (ftype, seq, key, reply)
        if ftype == RUN:
            self.last_run = (seq, key, reply)
        return reply

    def too_long(self, ftype, seq):
        """The error answer to a frame longer than the board takes (its type and seq as read
        from its first bytes: the CRC is never seen)."""
        return self._error(seq, E_TOO_LONG, "request 0x%02x is longer than this board's %d-byte "
                           "frames: send long RUN inputs with INPUT (update the host SDK)"
                           % (ftype, MAX_PAYLOAD))

    def _answer(self, ftype, seq, payload):
        try:
            handler = self.handlers.get(ftype)
            if handler is None:
                raise Refused(E_UNKNOWN, "unknown request type 0x%02x" % ftype)
            answer = handler(payload)
            if isinstance(answer, tuple):  # (type, payload): a NAK
                return frame.encode(answer[0], seq, answer[1])
            return frame.encode(ftype | RESPONSE, seq, answer)
        except Refused as e:
            return self._error(seq, e.code, e.message)
        except _MALFORMED as e:
            return self._error(seq, E_BAD_REQUEST, "malformed request: %s" % e)
        except MemoryError as e:
            return self._error(seq, E_NO_MEMORY, "out of memory: %s%s; `npu inspect MODEL --board "
                               "PROFILE` shows what a model needs: try a smaller model or a board "
                               "with more RAM" % (e, self._free()))
        except Exception as e:  # keep serving whatever happens
            return self._error(seq, E_INTERNAL, "%s: %s" % (type(e).__name__, e))

    def _error(self, seq, code, message):
        return frame.encode(ERROR, seq, struct.pack("<H", code) + message.encode())

    # --- requests ----------------------------------------------------------------

    def hello(self, p):
        host_version = struct.unpack_from("<H", p, 0)[0]
        if host_version != PROTOCOL_VERSION:
            raise Refused(E_VERSION, "host speaks protocol %d, firmware %s speaks %d: update the %s"
                          % (host_version, FIRMWARE_VERSION, PROTOCOL_VERSION,
                             "firmware" if host_version > PROTOCOL_VERSION else "host SDK (pip install -U npu-sdk)"))
        self.console = False  # a new session: logs only on request
        lim = self.board.limits
        store = self.board.store
        locked = store.locked()
        features = F_PROFILE | F_STAGING | F_SIGNING | F_CANCEL \
            | (F_REPL if lim.get("repl") and not locked else 0) | (F_LOCKED if locked else 0) \
            | (F_ICOUNT if lim.get("icount") else 0) \
            | (F_DEFLATE if _raw_inflate else 0)
        if store.key() is not None:
            features |= F_KEYED
        ops = sorted(blobfmt.OPS)
        return (struct.pack("<HIIIIII", PROTOCOL_VERSION, lim["ram"], lim["flash"],
                            self.board.store.free(True), MAX_PAYLOAD, WINDOW, features)
                + _str(FIRMWARE_VERSION) + _str(self.board.npu_name) + _str(lim.get("board", ""))
                + bytes((len(ops),)) + bytes(ops))

    def flash_begin(self, p):
        size = struct.unpack_from("<I", p, 0)[0]
        blob_id = bytes(p[4:36])
        if len(blob_id) != 32:
            raise ValueError("short blob id")
        name, pos = _name(p, 36)
        version = self._check_signature(blob_id, name, bytes(p[pos:]))
        store = self.board.store
        meta = struct.pack("<I", size) + blob_id
        state = self.flashing
        if state is not None and state.name == name and state.blob_id == blob_id \
                and state.size == size:  # the same transfer, a new host: carry on
            state.early = {}
            state.early_bytes = 0
            self.log("flash %s: host back at %d of %d bytes" % (name, state.written, size))
            return struct.pack("<BI", BEGIN_SEND, state.written)
        self._abort()
        if name in store.names() and store.size(name) == size and store.tail(name, 32) == blob_id:
            store.discard(name)
            self.log("flash %s: already installed" % name)
            return struct.pack("<BI", BEGIN_INSTALLED, size)
        resumed = store.resume(name, meta)
        if resumed is not None and resumed[1] <= size:
            part, written = resumed
            self.log("flash %s: resuming at %d of %d bytes" % (name, written, size))
        else:
            if resumed is not None:
                resumed[0].close()
            store.discard(name)
            free = store.free()
            if size > free:
                for other in store.partials():  # unfinished transfers make room first
                    store.discard(other)
                free = store.free()
            if size > free:
                raise Refused(E_NO_SPACE, "model needs %d bytes of flash, %d free: remove a model "
                              "(npu rm NAME)" % (size, free))
            part, written = store.begin(name, meta, size), 0
            self.log("flash %s: %d bytes" % (name, size))
        self.flashing = _Flashing(name, size, blob_id, part, written)
        self.flashing.version = version
        return struct.pack("<BI", BEGIN_SEND, written)

    def _check_signature(self, blob_id, name, signed):
        """A keyed board takes only blobs whose FLASH_BEGIN ends with version u32, flags u8,
        mac[32] = sign.blob_mac(key, blob_id, name, version, flags [, nonce]): a blob signed
        for one name installs under no other, and not over a newer version of it unless the
        flags say DOWNGRADE, signed over a fresh nonce (a captured downgrade cannot be
        replayed). FLASH_END checks the whole blob against blob_id. -> the version, or -1."""
        if signed and len(signed) != 37:
            raise ValueError("FLASH_BEGIN signature must be 37 bytes (version, flags, mac), "
                             "got %d" % len(signed))
        key = self.board.store.key()
        if key is None:
            return -1  # not provisioned: any blob, signed or not
        if not signed:
            raise Refused(E_SIGNATURE, "board accepts only blobs signed with its device key: flash "
                          "with --key FILE (the file `npu keys provision` wrote)")
        version, flags = struct.unpack_from("<IB", signed, 0)
        nonce = b""
        if flags & sign.DOWNGRADE:
            nonce, self.nonce = self.nonce, None
            if nonce is None:
                raise Refused(E_SIGNATURE, "a downgrade is signed over a nonce the board "
                              "issued (NONCE): ask for one first")
        if not sign.equal(sign.blob_mac(key, blob_id, name, version, flags, nonce), signed[5:]):
            raise Refused(E_SIGNATURE, "signature does not match this board's key (or was made "
                          "for another model name, or replays a downgrade): flash with the key "
                          "file `npu keys provision` wrote for this board")
        held = self.board.store.version(name)
        if version < held and not flags & sign.DOWNGRADE:
            raise Refused(E_SIGNATURE, "model %r version %d is older than version %d on the "
                          "board: flash a newer one, or sign a downgrade (npu flash --downgrade)"
                          % (name, version, held))
        return version

    def nonce_request(self, p):
        """NONCE -> nonce[16]: what the next proof of the key covers; one use each."""
        self.nonces += 1
        self.nonce = hashlib.sha256(self.seed + struct.pack("<I", self.nonces)).digest()[:16]
        return self.nonce

    def _authorize(self, ftype, p, what, hint="--key FILE, the file `npu keys provision` wrote"):
        """On a keyed board, `p` must end with sign.proof over the last nonce issued (used
        up here, right or wrong); return the payload before it. Elsewhere `p` as it is."""
        key = self.board.store.key()
        if key is None:
            return p
        nonce, self.nonce = self.nonce, None
        if nonce is None or len(p) < 32 or not sign.equal(
                sign.proof(key, nonce, ftype, p[:-32]), bytes(p[-32:])):
            raise Refused(E_SIGNATURE, "%s refused: this board has a device key and wants proof "
                          "of it (%s)" % (what, hint))
        return p[:-32]

    def flash_data(self, p):
        return self._write_chunk(p, "FLASH_DATA", False)

    def flash_zdata(self, p):
        """FLASH_ZDATA: FLASH_DATA whose chunk comes deflated; offsets count inflated bytes."""
        return self._write_chunk(p, "FLASH_ZDATA", True)

    def _write_chunk(self, p, request, deflated):
        state = self.flashing
        if state is None:
            raise Refused(E_BAD_REQUEST, "%s without FLASH_BEGIN" % request)
        offset = struct.unpack_from("<I", p, 0)[0]
        chunk = memoryview(p)[4:]
        if deflated:
            chunk = _inflate(chunk, offset)
        end = offset + len(chunk)
        if end > state.size:
            raise Refused(E_BAD_REQUEST, "data past the announced size %d" % state.size)
        if offset > state.written:  # early: hold it while the gap is resent, if there is room
            if offset not in state.early and state.early_bytes + len(chunk) <= WINDOW:
                state.early[offset] = bytes(chunk)
                state.early_bytes += len(chunk)
            return NAK, struct.pack("<I", state.written)
        if end > state.written:
            out, written = chunk[state.written - offset:], end
            more = True
            while more:  # what arrived early may follow now, whole or (chunked otherwise) its tail
                more = False
                for off in list(state.early):
                    if off <= written:
                        held = state.early.pop(off)
                        state.early_bytes -= len(held)
                        if off + len(held) > written:
                            if not isinstance(out, bytearray):
                                out = bytearray(out)
                            out += memoryview(held)[written - off:]
                            written = off + len(held)
                            more = True
            # one flash write for the chunk and all it released: each write is synced
            state.part.write(out)
            state.written = written
        return struct.pack("<I", state.written)

    def flash_end(self, p):
        state = self.flashing
        if state is None:
            raise Refused(E_BAD_REQUEST, "FLASH_END without FLASH_BEGIN")
        if state.written != state.size:
            raise Refused(E_BAD_REQUEST, "FLASH_END after %d of %d bytes: send the rest"
                          % (state.written, state.size))
        name, blob_id = state.name, state.blob_id
        state.part.close()
        self.flashing = None
        store = self.board.store
        try:
            if store.tail(name, 32, ".part") != blob_id:
                raise Refused(E_BAD_BLOB, "model rejected, old model kept: blob id mismatch, "
                              "the transfer was damaged")
            b = stream.verify(store, name)  # as blobfmt.parse, never whole in RAM
            ram = self._ram()
            need = stream.pool_need(b, state.size, ram, hasattr(store, "mapped"))
            if need > ram:  # as the host's pre-flight: it would never load
                raise MemoryError("model rejected, old model kept: its arena and buffers "
                                  "need %d bytes, the board has %d" % (need, ram))
        except blobfmt.BlobError as e:
            store.discard(name)
            self.log("flash %s: rejected: %s" % (name, e))
            raise Refused(E_BAD_BLOB, "model rejected, old model kept: %s" % e)
        except Exception:
            store.discard(name)
            raise
        self._drop(name)  # before the commit renames its file
        self.last_run = None  # a remembered RUN answer may be of the model replaced here
        store.commit(name)
        if state.version >= 0:  # signed on a keyed board: no older version installs after it
            store.set_version(name, state.version)
        self.log("flash %s: installed" % name)
        return b""

    def key(self, p):
        """KEY: new_key[32], [flags u8,] proof[32] -> empty. proof = sign.proof(old key, nonce,
        KEY, the payload before it) when the board has a key (zeros when not); an all-zero
        new_key removes the key; flags KEY_LOCK locks the board for good (no REPL, ever)."""
        if len(p) not in (64, 65):
            raise ValueError("KEY takes 64 or 65 bytes (new key, flags, proof), got %d" % len(p))
        store = self.board.store
        hint = ("give the old key with --old-key" if bytes(p[-32:]) == bytes(32) else
                "give the key file this board was provisioned with as --old-key")
        self._authorize(KEY, p, "KEY", hint)
        body = p[:-32]  # the proof checked (a board without a key takes any)
        new = bytes(body[:32])
        lock = len(body) == 33 and body[32] & KEY_LOCK
        if lock and new == bytes(32):
            raise Refused(E_BAD_REQUEST, "a board is locked as it is given a key, not as its key "
                          "is cleared: npu keys provision --lock")
        self._abort()  # an open transfer was accepted under the old key: BEGIN it again
        if lock:  # first: a power cut between the two leaves a locked board, never an open one
            store.lock()
            self.log("locked: the REPL is never handed over")
        if new == bytes(32):
            store.set_key(None)
            self.log("key cleared: any blob is accepted")
        else:
            store.set_key(new)
            self.log("key set: only blobs signed with it are accepted")
        return b""

    def _abort(self):
        if self.flashing is not None:
            self.flashing.part.close()  # NAME.part and its sidecar stay: a host may resume
            self.flashing = None

    def list(self, p):
        store = self.board.store
        names = store.names()
        out = struct.pack("<H", len(names))
        for name in names:
            out += _str(name) + struct.pack("<I", store.size(name)) + store.tail(name, 32)
        return out

    def rm(self, p):
        name = _name(self._authorize(RM, p, "RM"), 0)[0]
        if self.flashing is not None and self.flashing.name == name:
            self._abort()
        self._drop(name)
        self.last_run = None
        if not self.board.store.remove(name):
            raise Refused(E_NOT_FOUND, "no model named %r on the board (npu ls lists them)" % name)
        self.log("rm %s" % name)
        return b""

    def console_on(self, p):
        """Start (p[0] = 1) or stop the LOG stream; the answer carries the recent lines."""
        self.console = bool(p[0])
        out = bytes((len(self.log_lines),))
        for ms, text in self.log_lines:
            out += struct.pack("<I", ms) + _str(text)
        return out

    def repl(self, p):
        if self.board.store.locked():  # even for the key's holder: the lock is for good
            raise Refused(E_UNAVAILABLE, "this board is locked (npu keys provision --lock): it "
                          "never hands its REPL over; update its firmware with its bootloader "
                          "(docs/protocol.md, Locking)")
        self._authorize(REPL, p, "REPL")  # the REPL can read the key and write any file
        if not self.board.limits.get("repl"):
            raise Refused(E_UNAVAILABLE, "this board cannot hand over a REPL (the emulator's "
                          "CPython core has none: use --core micropython)")
        self._abort()
        self.leave = True
        return b""

    def _free(self):
        """', N bytes of heap free outside the model pool' where the VM can say."""
        try:
            gc.collect()
            return ", %d bytes of heap free outside the model pool" % gc.mem_free()
        except AttributeError:  # CPython's gc has no mem_free
            return ""

    def _heap(self):
        heap = getattr(self.board, "heap", None)  # an optional part of the board
        return -1 if heap is None else heap()

    def memory(self, p):
        """MEM -> heap i32, idle i32, now i32, model str, before load i32, after load i32,
        after invoke i32."""
        total = self.board.limits["ram"] if getattr(self.board, "heap", None) else -1
        m = self.mem
        return (struct.pack("<iii", total, self.idle, self._heap()) + _str(m[0])
                + struct.pack("<iii", m[1], m[2], m[3]))

    def _unload(self):
        """Close every loaded model (a streamed one holds its file open); no local keeps
        one alive, so the next load has their memory back."""
        for model in self.models.values():
            model.close()

    def _drop(self, name):
        """Unload model `name`, closing its file if it streams from it."""
        model = self.models.pop(name, None)
        if model is not None:
            model.close()

    def _ram(self):
        """Bytes a model may take: the model pool's, else the board's RAM."""
        pool = getattr(self.board, "pool", None)
        return self.board.limits["ram"] if pool is None else len(pool)

    def _model(self, name):
        model = self.models.get(name)
        if model is None:
            if name not in self.board.store.names():
                raise Refused(E_NOT_FOUND, "no model named %r on the board (npu ls lists them)" % name)
            self._unload()
            self.models.clear()  # one model resident at a time: RAM is small
            self.staging = self.held = None
            release = getattr(self.board.npu, "release", None)
            if release is not None:
                release()  # the kernels' scratch grew for the last model: give it back
            pool = getattr(self.board, "pool", None)
            if pool is not None:
                pool.reset()  # nothing uses it now: the models that did are unloaded
            ram = self._ram()
            before = self._heap()  # a collection first: the arena wants one piece of the heap
            self.mem = ["", -1, -1, -1]
            store = self.board.store
            try:
                model = stream.load(store, name, self.board.npu, ram, pool)
            except (blobfmt.BlobError, MemoryError) as e:
                if store.unconfirmed(name):  # its first load: the previous version comes back
                    self._roll_back(name, "its first load", e)
                if isinstance(e, MemoryError):
                    raise
                raise Refused(E_BAD_BLOB, "stored model %r cannot load: %s" % (name, e))
            # on trial until its first RUN succeeds: the previous version stays till then
            self.trial = name if store.unconfirmed(name) else None
            self.models[name] = model
            self.mem = [name, before, self._heap(), -1]
        return model

    def _roll_back(self, name, what, e):
        """Model `name` failed `what` since it was installed: put its previous version back."""
        self._drop(name)
        self.staging = self.held = None
        self.trial = None
        self.last_run = None
        self.board.store.rollback(name)
        self.log("%s: %s failed, rolled back: %s" % (name, what, e))
        raise Refused(E_NO_MEMORY if isinstance(e, MemoryError) else E_BAD_BLOB,
                      "model %r failed %s (%s): rolled back to the previous version, which "
                      "RUN uses from now on" % (name, what, e))

    def input(self, p):
        """INPUT: name str, index u8, offset u32, data -> staged u32. Writes a piece of a RUN
        input straight into the model's input tensor; offset 0 starts the input over."""
        name, pos = _name(p, 0)
        model = self._model(name)
        self.last_run = None  # a staged RUN's payload does not show what was staged
        index = p[pos]
        offset = struct.unpack_from("<I", p, pos + 1)[0]
        data = memoryview(p)[pos + 5:]
        n = len(model.blob.inputs)
        if index >= n:
            raise Refused(E_BAD_INPUT, "model %r takes %d input(s), got input %d" % (name, n, index))
        view = model.views[model.blob.inputs[index]]
        staging = self.staging
        if staging is None or staging[0] is not model:
            staging = self.staging = [model, [0] * n]
        self.held = None  # the input may share arena bytes with the last outputs
        filled = staging[1]
        if offset == 0:
            filled[index] = 0
        end = offset + len(data)
        if offset > filled[index] or end > len(view):
            raise Refused(E_BAD_INPUT, "input %d: %d bytes at %d do not fit after the %d staged "
                          "of %d" % (index, len(data), offset, filled[index], len(view)))
        view[offset:end] = data
        if end > filled[index]:
            filled[index] = end
        return struct.pack("<I", filled[index])

    def output(self, p):
        """OUTPUT: name str, index u8, offset u32, count u32 -> up to count bytes of an output
        the last RUN held (at most MAX_PAYLOAD)."""
        name, pos = _name(p, 0)
        index = p[pos]
        offset, count = struct.unpack_from("<II", p, pos + 1)
        model = self.models.get(name)
        if model is None or model is not self.held:
            raise Refused(E_BAD_REQUEST, "no outputs of %r are held: RUN it again" % name)
        if index >= len(model.blob.outputs):
            raise Refused(E_BAD_REQUEST, "model %r has %d output(s)" % (name, len(model.blob.outputs)))
        view = model.output(index)
        return bytes(view[offset:offset + min(count, MAX_PAYLOAD)])

    def cancel(self, p):
        """CANCEL -> stopped u8: 0 here, with no RUN working (a RUN answers it from
        _interrupted with 1)."""
        return b"\x00"

    def _interrupted(self, name, done, total):
        """Frames that arrived while a RUN works, read between its inferences. CANCEL stops the
        work (True); a repeat of the RUN hears how far it got; any other request hears that
        the board is busy and is not run. Frames behind a CANCEL wait for the RUN's answer."""
        uart = self.board.uart
        cancel = False
        for raw in self.deframer.feed(uart.read() or b""):
            if cancel:
                self.pending.append(raw)
                continue
            msg = frame.decode(raw)
            if msg is None:
                continue
            ftype, seq = msg[0], msg[1]
            if ftype == CANCEL:
                cancel = True
                uart.write(frame.encode(CANCEL | RESPONSE, seq, b"\x01"))
            elif self.current == (ftype, seq, bytes(raw[-4:])):
                uart.write(self._error(seq, E_WORKING, "working: %d of %d runs of %r done"
                                       % (done, total, name)))
            else:
                uart.write(self._error(seq, E_BUSY, "busy running %r (%d of %d runs done): wait "
                                       "for it, or stop it with `npu cancel`" % (name, done, total)))
        return cancel

    def run(self, p):
        repeat, flags = struct.unpack_from("<HB", p, 0)
        name, pos = _name(p, 3)
        model = self._model(name)
        n = p[pos]
        pos += 1
        staging, self.staging, self.held = self.staging, None, None
        staged = flags & RUN_STAGED
        if staged:
            n = len(model.blob.inputs)
            if p[pos - 1] != 0:
                raise Refused(E_BAD_REQUEST, "RUN with staged inputs carries none")
            for i in range(n):
                size = len(model.views[model.blob.inputs[i]])
                got = staging[1][i] if staging is not None and staging[0] is model else 0
                if got != size:
                    raise Refused(E_BAD_INPUT, "input %d of %r: %d of %d bytes staged: send it "
                                  "with INPUT first" % (i, name, got, size))
        if n != len(model.blob.inputs):
            raise Refused(E_BAD_INPUT, "model %r takes %d input(s), got %d"
                          % (name, len(model.blob.inputs), n))
        inputs = []
        for i in range(0 if staged else n):
            size = struct.unpack_from("<I", p, pos)[0]
            data = memoryview(p)[pos + 4:pos + 4 + size]
            if size != len(model.views[model.blob.inputs[i]]) or len(data) != size:
                raise Refused(E_BAD_INPUT, "input %d needs %d bytes, got %d"
                              % (i, len(model.views[model.blob.inputs[i]]), size))
            inputs.append(data)
            pos += 4 + size
        clock = self.board.clock
        times = []
        op_times = [0] * len(model.calls) if flags & RUN_PROFILE else None
        if staged and repeat > 1:  # the planner reuses input bytes: keep a copy for later runs
            inputs = [bytes(model.views[t]) for t in model.blob.inputs]
        # an instruction-counting board counts the same from run to run: an inference with
        # the native kernels allocates nothing (the image's pystack holds the interpreter's
        # star-call arguments), and each run starts from a collected heap
        exact = self.board.limits.get("icount")
        # a host that asked for it hears busy and working answers (older ones would misread them)
        waiting = getattr(self.board.uart, "any", None) if flags & RUN_CANCELLABLE else None
        first = True
        try:
            for done in range(max(1, repeat)):
                if waiting is not None and waiting() and self._interrupted(name, done, repeat):
                    self.log("RUN of %s cancelled after %d of %d runs" % (name, done, repeat))
                    raise Refused(E_CANCELLED, "RUN of %r cancelled after %d of %d runs"
                                  % (name, done, repeat))
                # the planner reuses input bytes once read: every run starts from a fresh copy
                if not (staged and first):
                    for i, data in enumerate(inputs):
                        model.set_input(i, data)
                first = False
                if exact:
                    gc.collect()
                t0 = clock.ticks_us()
                model.invoke(clock, op_times)
                times.append(clock.ticks_diff(clock.ticks_us(), t0))
        except Refused:
            raise  # cancelled: the model is not at fault
        except Exception as e:
            if self.trial == name:
                self._roll_back(name, "its first RUN", e)
            raise
        if self.trial == name:  # its first RUN worked: the previous version can go
            self.trial = None
            self.board.store.confirm(name)
        if self.mem[0] == name and self.mem[3] < 0:
            self.mem[3] = self._heap()  # the kernels' scratch is allocated by now
        times.sort()
        out = struct.pack("<IB", times[len(times) // 2], len(model.blob.outputs))
        hold = 0
        if flags & RUN_HOLD:  # outputs that would not fit one answer stay for OUTPUT
            size = len(out) + (2 + 5 * len(model.calls) if op_times is not None else 0)
            for t in model.blob.outputs:
                size += 6 + 4 * len(model.blob.tensors[t].shape) + model.blob.tensors[t].size
            if size > MAX_PAYLOAD:
                hold = OUT_HELD
                self.held = model
        for i, t in enumerate(model.blob.outputs):
            tensor = model.blob.tensors[t]
            out += struct.pack("<BB", tensor.dtype | hold, len(tensor.shape))
            out += struct.pack("<%dI" % len(tensor.shape), *tensor.shape)
            out += struct.pack("<I", tensor.size) + (b"" if hold else bytes(model.output(i)))
        if op_times is not None:
            runs = max(1, repeat)
            out += struct.pack("<H", len(op_times))
            for opcode, total in zip(model.opcodes, op_times):
                out += struct.pack("<BI", opcode, (total + runs // 2) // runs)
        return out
