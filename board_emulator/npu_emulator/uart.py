"""The virtual UART: a pseudo-terminal (and optionally a loopback TCP port) relayed to the core.

The host opens the pty's slave path like any serial port, or connects to the TCP
port with the pyserial URL socket://127.0.0.1:PORT. Both are cables into the same
UART: bytes from either reach the board, and the board's bytes go back to whichever
cable spoke last. Each direction of the wire is a Wire: fault injection (faults.py)
then the line rate (pacing.py), in that order, as on a noisy real line.
"""
import os
import select
import socket
import threading
import time
import tty

from .faults import FaultyLine
from .pacing import Pacer

_DROP_AFTER_S = 1.0  # a host that reads nothing for this long loses the board's bytes, like a UART


class Wire:
    """One direction: faults, then pacing, then delivery. One sender at a time, as on a wire."""

    def __init__(self, name, baud=None, faults=None):
        self.name = name
        self.pacer = Pacer(baud) if baud else None
        self.faults = FaultyLine(faults, name) if faults else None
        self.lock = threading.Lock()

    def send(self, data, deliver):
        with self.lock:
            for piece in self.faults.apply(data) if self.faults else (data,):
                if isinstance(piece, float):  # a stall: the line holds
                    time.sleep(piece)
                elif self.pacer:
                    for part in self.pacer.slices(piece):
                        deliver(part)
                else:
                    deliver(piece)


class _PtyEnd:
    def __init__(self, master):
        self.fd = master

    def read(self):
        while True:
            select.select([self.fd], [], [])
            try:
                return os.read(self.fd, 65536) or None
            except BlockingIOError:
                continue
            except OSError:
                return None

    def write(self, data):
        view = memoryview(data)
        while view:
            if not select.select([], [self.fd], [], _DROP_AFTER_S)[1]:
                return  # nobody is reading the pty: the bytes are lost
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                continue
            except OSError:
                return


class _SocketEnd:
    def __init__(self, sock):
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)

    def read(self):
        try:
            return self.sock.recv(65536) or None
        except OSError:
            return None

    def write(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # the host hung up: the bytes are lost


class VirtualUart:
    def __init__(self, baud=None, faults=None):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline: a binary link
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)
        self.pty = _PtyEnd(self.master)
        self.active = self.pty
        self.to_board = Wire("host->board", baud, faults)
        self.to_host = Wire("board->host", baud, faults)
        self.board_rx = None
        self.listener = None

    def listen(self, host, port):
        """Accept TCP connections on host:port (0: any free port); returns the bound port."""
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(4)
        return self.listener.getsockname()[1]

    def connect(self, board_rx_fd, board_tx_fd):
        """Relay host->board into board_rx_fd and board->host from board_tx_fd."""
        self.board_rx = board_rx_fd
        self._thread(self._from_host, self.pty)
        self._thread(self._from_board, board_tx_fd)
        if self.listener is not None:
            self._thread(self._accept)

    def reattach(self, board_rx_fd, board_tx_fd):
        """The board restarted on new pipes (the MicroPython core's REPL and back): same cables."""
        self.board_rx = board_rx_fd
        self._thread(self._from_board, board_tx_fd)

    def fault_counts(self):
        return {w.name: w.faults.counts for w in (self.to_board, self.to_host) if w.faults}

    @staticmethod
    def _thread(target, *args):
        threading.Thread(target=target, args=args, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._thread(self._from_host, _SocketEnd(conn))

    def _from_host(self, end):
        while True:
            data = end.read()
            if data is None:
                break
            self.active = end
            self.to_board.send(data, self._to_board)
        if self.active is end:
            self.active = self.pty
        if end is not self.pty:
            end.sock.close()

    def _to_board(self, data):
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.board_rx, view):]
            except BlockingIOError:
                select.select([], [self.board_rx], [])
            except OSError:
                return

    def _from_board(self, fd):
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            end = self.active
            self.to_host.send(data, end.write)
