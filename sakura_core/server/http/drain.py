"""Whether a connection's client is taking what the server sends: the clock of the send timeout.

A client that stops reading is seen in two places. Its receive window closes, so the bytes the server's kernel
sent stay unacknowledged in the socket's send queue (Linux reports that queue with the ``SIOCOUTQ`` ioctl); then
that queue fills, and what the server writes stays in the asyncio transport's buffer. ``DrainWatch`` samples both
and counts what the client took (acknowledged) since, so the send timeout starts when the client stops reading,
not once every buffer between is full.

A client that reads empties its receive buffer, and with it the server's queue. A client that reads nothing still
takes a few hundred bytes now and then, a few KiB in all, as its kernel compacts its full receive buffer; so once a
client has stalled, the clock restarts only when it has taken ``PROGRESS_BYTES`` since, or everything sent. (A
client with a large receive buffer can take more that way: its clock then restarts a few times, a bounded number.)
"""

from __future__ import annotations

import asyncio
import sys
import time

if sys.platform == "linux":
    import fcntl
    import termios

    #: The request that asks a TCP socket for its unacknowledged and unsent bytes (``SIOCOUTQ`` is the same).
    UNACKED_REQUEST: int | None = termios.TIOCOUTQ
else:  # elsewhere only the transport's buffer is watched: the timeout starts once the kernel's buffer is full
    UNACKED_REQUEST = None

#: Seconds between two samples of the kernel's send queue while writes come (one ``ioctl`` per sample, not one
#: per write).
SAMPLE_SECONDS = 0.05
#: What a stalled client must take (in all, since it stalled) for the send timeout's clock to restart.
PROGRESS_BYTES = 16 * 1024
#: The first and the longest pause while waiting for a stalled client to take the bytes already written.
FIRST_POLL_SECONDS = 0.005
LONGEST_POLL_SECONDS = 0.1


class DrainWatch:
    """Tracks since when the client of one connection has taken nothing of what was written to it.

    Call ``before_write`` and ``after_write`` around each write, and ``wait_until_taken`` after it: that waits
    while the transport holds bytes the kernel could not take, so that at most one write waits in user space.
    ``stalled_since`` is the time since which the client has taken nothing, or None while it reads.
    """

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self.transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self.stalled_since: float | None = None
        sock = transport.get_extra_info("socket") if transport is not None else None
        self._socket = sock if UNACKED_REQUEST is not None else None
        self._queued_after: int | None = None  # the kernel's send queue right after the last sampled write
        self._sampled_at = -SAMPLE_SECONDS
        self._taken_while_stalled = 0

    def stalled_for(self, now: float) -> float:
        """Seconds the client has taken nothing (0 while it reads)."""
        return 0.0 if self.stalled_since is None else now - self.stalled_since

    def before_write(self) -> None:
        """Nothing was written since the last sample: a send queue that did not fall means the client took nothing."""
        if self._queued_after is None:
            return
        queued = self._unacknowledged()
        if queued is not None:
            self._took(self._queued_after - queued, caught_up=queued == 0, since=self._sampled_at)
        self._queued_after = None

    def after_write(self, now: float) -> None:
        """Sample the kernel's send queue (at most every ``SAMPLE_SECONDS``) for the next ``before_write``."""
        if now - self._sampled_at >= SAMPLE_SECONDS:
            self._queued_after = self._unacknowledged()
            self._sampled_at = now

    async def wait_until_taken(self, give_up_after: float | None) -> bool:
        """Wait while the transport holds bytes the kernel did not take (its send buffer is full). False once the
        client has taken nothing for ``give_up_after`` seconds; True when the bytes went out."""
        if self.transport is None or self.transport.get_write_buffer_size() == 0:
            return True
        pause = FIRST_POLL_SECONDS
        buffered, queued = self.transport.get_write_buffer_size(), self._unacknowledged()
        self._took(0, caught_up=False, since=time.monotonic())
        while buffered > 0:
            if self.transport.is_closing():
                raise ConnectionResetError("the client went away")
            now = time.monotonic()
            if give_up_after is not None and self.stalled_for(now) >= give_up_after:
                return False
            left = pause if give_up_after is None else give_up_after - self.stalled_for(now)
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, LONGEST_POLL_SECONDS)
            was_buffered, was_queued = buffered, queued
            buffered, queued = self.transport.get_write_buffer_size(), self._unacknowledged()
            # what left the transport entered the kernel's queue: the client took what left both
            taken = was_buffered - buffered
            if queued is not None and was_queued is not None:
                taken += was_queued - queued
            self._took(taken, caught_up=buffered == 0 and queued == 0, since=now)
            if taken > 0:
                pause = FIRST_POLL_SECONDS
        self._queued_after = None  # bytes entered the queue while waiting: the next comparison would be wrong
        return True

    def _took(self, taken: int, *, caught_up: bool, since: float) -> None:
        """The client took ``taken`` bytes (``caught_up``: everything sent) in an interval that began at ``since``."""
        if caught_up:
            self.stalled_since = None
        elif self.stalled_since is None:
            if taken <= 0:
                self.stalled_since = since
                self._taken_while_stalled = 0
        elif taken > 0:
            self._taken_while_stalled += taken
            if self._taken_while_stalled >= PROGRESS_BYTES:
                self.stalled_since = None

    def _unacknowledged(self) -> int | None:
        """The socket's bytes the client has not acknowledged (Linux), or None where that cannot be asked."""
        if self._socket is None or UNACKED_REQUEST is None:
            return None
        fd = self._socket.fileno()  # asked each time: -1 once closed, never another connection's number
        if fd < 0:
            return None
        buffer = bytearray(4)
        try:
            fcntl.ioctl(fd, UNACKED_REQUEST, buffer)
        except OSError:
            self._socket = None  # not a TCP socket: the transport's buffer alone is watched
            return None
        return int.from_bytes(buffer, sys.byteorder, signed=True)
