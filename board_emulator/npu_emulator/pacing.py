"""Line-rate model: one direction of a UART at `baud` (8N1: baud/10 bytes per second).

The relay hands bytes over in slices of about SLICE_S of line time, each when its
last byte would have left a real wire. The line keeps its own schedule, so sleeps
that overshoot are made up by the next slices (up to CATCH_UP_S) and a long
transfer takes len/rate to within a few ms; a line that has been idle starts fresh.
"""
import time

SLICE_S = 0.002
CATCH_UP_S = 0.005


class Pacer:
    def __init__(self, baud, clock=time.monotonic, sleep=time.sleep):
        if baud <= 0:
            raise ValueError("baud must be positive")
        self.rate = baud / 10.0
        self.slice = max(1, int(self.rate * SLICE_S))
        self.clock = clock
        self.sleep = sleep
        self.free_at = 0.0  # when the line finishes sending what it was given

    def wait(self, n):
        """Block until n more bytes would have been sent."""
        now = self.clock()
        start = self.free_at if self.free_at >= now - CATCH_UP_S else now
        self.free_at = start + n / self.rate
        delay = self.free_at - now
        if delay > 0:
            self.sleep(delay)

    def slices(self, data):
        """Yield data in slices, each after its line time has passed."""
        for i in range(0, len(data), self.slice):
            piece = data[i:i + self.slice]
            self.wait(len(piece))
            yield piece
