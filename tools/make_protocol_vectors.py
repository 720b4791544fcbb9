"""Write the link protocol's golden vectors to tests/vectors/protocol/ (docs/protocol.md).

frames.json: (type, seq, payload) -> wire bytes, plus damaged wires that must not decode.
session.json: a scripted session of request frames and the answers a fresh board gives
(the firmware server on CPython with a fixed board: limits, a clock ticking 7 µs per
reading, kernel set "k"), ending with a device key (KEY, signed FLASH_BEGIN, error 13 for
an unsigned blob, another key or another name) and a lock. tests/unit/test_codec.py replays it through
the SDK codec and the firmware on CPython; tests/conformance/test_firmware_codecs_on_vm.py
on the MicroPython VM.

    python tools/make_protocol_vectors.py        # rewrites the files; commit them
"""
import hashlib
import json
import os
import random
import struct
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "vectors", "protocol")
LIMITS = {"ram": 1 << 20, "flash": 1 << 18, "board": "vectors"}


def frame_vectors(codec):
    rng = random.Random(5)
    cases = [(1, 0, b""), (0x7E, 0x7D, b"\x7e\x7d\x7e"), (0xFF, 255, bytes(range(256)))]
    cases += [(rng.randrange(256), rng.randrange(256),
               bytes(rng.randrange(256) for _ in range(rng.randrange(600)))) for _ in range(40)]
    frames = [dict(type=t, seq=q, payload=p.hex(), wire=codec.encode(t, q, p).hex()) for t, q, p in cases]
    damaged = []
    for t, q, p in cases[:12]:
        wire = bytearray(codec.encode(t, q, p))
        i = rng.randrange(1, len(wire) - 1)
        wire[i] ^= 1 << rng.randrange(8)
        damaged.append(bytes(wire[1:-1]).hex())
    damaged += ["7d", "017d00", "0102030405", (b"\x01\x02\x7d\x7d" + bytes(4)).hex()]
    return dict(frames=frames, damaged=damaged)


def session_requests(codec, blob):
    """(note, type, seq, payload) of the scripted session; a None type is a raw damaged frame."""
    half = len(blob) // 2
    x = bytes(range(8))

    def zdata(offset, data):
        request = codec.flash_zdata_request(offset, data)
        assert request is not None, "the vectors need a chunk deflate shrinks"
        return request
    return [
        ("hello", codec.HELLO, 1, codec.hello_request()),
        ("hello from a future host", codec.HELLO, 2, struct.pack("<H", 9)),
        ("flash begin", codec.FLASH_BEGIN, 3, codec.flash_begin_request(len(blob), blob[-32:], "m")),
        ("second half first: held, NAK", codec.FLASH_DATA, 4, codec.flash_data_request(half, blob[half:])),
        ("first half: all verified", codec.FLASH_DATA, 5, codec.flash_data_request(0, blob[:half])),
        ("duplicate", codec.FLASH_DATA, 6, codec.flash_data_request(0, blob[:half])),
        ("flash end", codec.FLASH_END, 7, b""),
        ("flash end again: the same answer", codec.FLASH_END, 7, b""),
        ("same blob again: installed", codec.FLASH_BEGIN, 8,
         codec.flash_begin_request(len(blob), blob[-32:], "m")),
        ("list", codec.LIST, 9, b""),
        ("cancel: no RUN working", codec.CANCEL, 63, b""),
        ("run, profiled", codec.RUN, 10, codec.run_request("m", [x], 3, codec.RUN_PROFILE)),
        ("run, wrong input size", codec.RUN, 11, codec.run_request("m", [x[:3]])),
        ("input: first piece", codec.INPUT, 22, codec.input_request("m", 0, 0, x[:5])),
        ("input: a gap", codec.INPUT, 23, codec.input_request("m", 0, 6, x[6:])),
        ("input: the rest", codec.INPUT, 24, codec.input_request("m", 0, 5, x[5:])),
        ("run, staged inputs, hold long outputs", codec.RUN, 25,
         codec.run_request("m", [], 2, codec.RUN_STAGED | codec.RUN_HOLD)),
        ("run, staged again: consumed", codec.RUN, 26, codec.run_request("m", [], 1, codec.RUN_STAGED)),
        ("output: nothing held", codec.OUTPUT, 27, codec.output_request("m", 0, 0, 8)),
        ("console off: recent lines", codec.CONSOLE, 12, b"\x00"),
        ("rm", codec.RM, 13, codec.pack_str("m")),
        ("rm again", codec.RM, 14, codec.pack_str("m")),
        ("bad name", codec.RM, 15, codec.pack_str("a/b")),
        ("bad name: not ASCII (the same on every core)", codec.RM, 44, codec.pack_str("caf\u00e9")),
        ("repl: not on this board", codec.REPL, 16, b""),
        ("unknown request", 0x42, 17, b""),
        ("malformed run", codec.RUN, 18, b"\x01"),
        ("data without begin", codec.FLASH_DATA, 19, codec.flash_data_request(0, b"x")),
        ("no space", codec.FLASH_BEGIN, 20, codec.flash_begin_request(1 << 20, bytes(32), "big")),
        ("flash begin, to send deflated", codec.FLASH_BEGIN, 28,
         codec.flash_begin_request(len(blob), blob[-32:], "z")),
        ("zdata: not a deflate stream", codec.FLASH_ZDATA, 29, struct.pack("<I", 0) + b"\xff" * 4),
        ("zdata: cut short", codec.FLASH_ZDATA, 30, zdata(0, blob[:half])[:-3]),
        ("zdata: inflates past a chunk (a bomb)", codec.FLASH_ZDATA, 31, zdata(0, bytes(1 << 16))),
        ("zdata: first half deflated", codec.FLASH_ZDATA, 32, zdata(0, blob[:half])),
        ("zdata: a duplicate", codec.FLASH_ZDATA, 33, zdata(0, blob[:half])),
        ("second half plain", codec.FLASH_DATA, 34, codec.flash_data_request(half, blob[half:])),
        ("flash end: installed", codec.FLASH_END, 35, b""),
    ]


SEED = bytes(range(16))  # the board's nonce seed in the session (Server.seed)


def nonce(k):
    """The board's k-th nonce (1-based) with seed SEED: npufw/server.py's nonce_request."""
    return hashlib.sha256(SEED + struct.pack("<I", k)).digest()[:16]


def signing_requests(codec, blob):
    """The session goes on with a device key: KEY, signed FLASH_BEGIN with versions, proofs
    of the key over the board's nonces for RM, REPL, KEY and a downgrade (error 13 else);
    then a lock: REPL refused even with proof."""
    key, other = bytes(range(32)), bytes(range(100, 132))
    name = codec.pack_str("s")

    def begin(mac=None, version=5, flags=0):
        return codec.flash_begin_request(len(blob), blob[-32:], "s", mac, version, flags)

    def mac(k, n="s", version=5, flags=0, nonce=b""):
        return codec.blob_mac(k, blob[-32:], n, version, flags, nonce)
    return [
        ("key: a board without one takes it", codec.KEY, 28, codec.key_request(key)),
        ("hello: keyed", codec.HELLO, 29, codec.hello_request()),
        ("flash begin unsigned: refused", codec.FLASH_BEGIN, 30, begin()),
        ("flash begin signed with another key: refused", codec.FLASH_BEGIN, 31, begin(mac(other))),
        # the FLASH_BEGIN signed for "z" replayed as "s": the name is signed too
        ("flash begin signed for another name: refused", codec.FLASH_BEGIN, 43,
         begin(mac(key, "z"))),
        ("flash begin signed, version 5", codec.FLASH_BEGIN, 32, begin(mac(key))),
        ("all the data", codec.FLASH_DATA, 33, codec.flash_data_request(0, blob)),
        ("flash end: installed", codec.FLASH_END, 34, b""),
        ("signed, already installed", codec.FLASH_BEGIN, 35, begin(mac(key))),
        ("unsigned, already installed: refused", codec.FLASH_BEGIN, 36, begin()),
        ("signed, version 4: older, refused", codec.FLASH_BEGIN, 45, begin(mac(key, version=4), 4)),
        ("rm without proof: refused", codec.RM, 46, name),
        ("nonce 1", codec.NONCE, 47, b""),
        ("rm, proof over another nonce: refused", codec.RM, 48,
         name + codec.proof(key, nonce(2), codec.RM, name)),
        ("nonce 2", codec.NONCE, 49, b""),
        ("rm, proof replayed: the nonce was used", codec.RM, 50,
         name + codec.proof(key, nonce(1), codec.RM, name)),
        ("nonce 3", codec.NONCE, 51, b""),
        ("rm with proof", codec.RM, 52, name + codec.proof(key, nonce(3), codec.RM, name)),
        ("signed, version 4 after rm: still older, refused", codec.FLASH_BEGIN, 53,
         begin(mac(key, version=4), 4)),
        ("downgrade without a nonce: refused", codec.FLASH_BEGIN, 54,
         begin(mac(key, version=4, flags=1), 4, 1)),
        ("nonce 4", codec.NONCE, 55, b""),
        ("downgrade to version 4, signed over the nonce", codec.FLASH_BEGIN, 56,
         begin(mac(key, version=4, flags=1, nonce=nonce(4)), 4, 1)),
        ("repl without proof: refused", codec.REPL, 57, b""),
        ("nonce 5", codec.NONCE, 58, b""),
        ("repl with proof: not on this board", codec.REPL, 59,
         codec.proof(key, nonce(5), codec.REPL, b"")),
        ("new key without proof: refused", codec.KEY, 37, codec.key_request(other)),
        ("nonce 6", codec.NONCE, 60, b""),
        ("new key, proof from another key: refused", codec.KEY, 38,
         codec.key_request(other, other, nonce(6))),
        ("nonce 7", codec.NONCE, 61, b""),
        ("new key with the old one's proof", codec.KEY, 39, codec.key_request(other, key, nonce(7))),
        ("nonce 8", codec.NONCE, 62, b""),
        ("key cleared", codec.KEY, 40, codec.key_request(bytes(32), other, nonce(8))),
        ("malformed key", codec.KEY, 41, bytes(10)),
        ("hello: not keyed", codec.HELLO, 42, codec.hello_request()),
        ("lock without a key: refused", codec.KEY, 63, codec.key_request(bytes(32), lock=True)),
        ("key and lock", codec.KEY, 64, codec.key_request(key, lock=True)),
        ("hello: keyed and locked, no REPL", codec.HELLO, 65, codec.hello_request()),
        ("nonce 9", codec.NONCE, 66, b""),
        ("repl with proof: locked, refused", codec.REPL, 67,
         codec.proof(key, nonce(9), codec.REPL, b"")),
    ]


def main():
    sys.path[:0] = [os.path.join(ROOT, "sdk"), os.path.join(ROOT, "firmware"),
                    os.path.join(ROOT, "board_emulator"), ROOT]
    from npu_emulator import _kernels
    from npu_sdk.link import codec
    from npufw.board import Board
    from npufw.server import Server
    from npufw.store import Store
    from tools.testbed import StepClock, fc_model

    blob = fc_model(8, 4, seed=9)[1]
    steps = session_requests(codec, blob)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Board(None, Store(tmp + "/flash", LIMITS["flash"]), StepClock(), _kernels,
                              dict(LIMITS), "k"))
        server.seed = SEED
        session = []
        for note, t, q, p in steps:
            request = codec.encode(t, q, p)
            answer = server.handle(request[1:-1])
            session.append(dict(note=note, request=request.hex(),
                                answer=None if answer is None else answer.hex()))
        damaged = bytearray(codec.encode(codec.LIST, 21))
        damaged[3] ^= 0x10
        session.append(dict(note="damaged: no answer", request=bytes(damaged).hex(),
                            answer=server.handle(bytes(damaged[1:-1]))))
        for note, t, q, p in signing_requests(codec, blob):
            request = codec.encode(t, q, p)
            answer = server.handle(request[1:-1])
            session.append(dict(note=note, request=request.hex(), answer=answer.hex()))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "frames.json"), "w") as f:
        json.dump(frame_vectors(codec), f, indent=1)
    with open(os.path.join(OUT, "session.json"), "w") as f:
        json.dump(dict(limits=LIMITS, kernels="k", clock_step_us=7, seed=SEED.hex(),
                       session=session), f, indent=1)
    print("wrote %s/{frames,session}.json (%d frames, %d session steps)"
          % (OUT, len(frame_vectors(codec)["frames"]), len(session)))


if __name__ == "__main__":
    main()
