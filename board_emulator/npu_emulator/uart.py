"""The virtual UART: a pseudo-terminal whose far end is relayed to the board's core.

The host opens the pty's slave path like any serial port. Two relay threads copy
bytes between the pty master and the core's byte streams; pacing and fault
injection plug in here.
"""
import os
import threading
import tty


class VirtualUart:
    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline: a binary link
        self.port = os.ttyname(self.slave)
        self.threads = []

    def connect(self, board_rx_fd, board_tx_fd):
        """Relay host->board into board_rx_fd and board->host from board_tx_fd."""
        for src, dst in ((self.master, board_rx_fd), (board_tx_fd, self.master)):
            t = threading.Thread(target=_pump, args=(src, dst), daemon=True)
            t.start()
            self.threads.append(t)


def _pump(src, dst):
    while True:
        try:
            data = os.read(src, 65536)
        except OSError:
            return
        if not data:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(dst, view)
            except BlockingIOError:
                continue
            except OSError:
                return
            view = view[n:]
