"""Admission to the engine: up to ``capacity`` generations at once, a bounded FIFO queue behind them.

A request reserves a ticket first (which fails at once when the queue is full, so the route can still answer
503), then waits for its slot. Tickets remember the task that holds them, so shutdown can cancel whatever is
left after the grace period. Nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque

logger = logging.getLogger(__name__)


class QueueFullError(Exception):
    """Every slot is busy and the queue holds ``max_queue`` requests already."""


class SchedulerClosedError(Exception):
    """The server is shutting down and takes no new work."""


class Ticket:
    """One request's place: waiting in the queue, then holding an engine slot until released."""

    __slots__ = ("_future", "_scheduler", "ended_by_server", "released", "slot", "task")

    def __init__(self, scheduler: Scheduler, task: asyncio.Task[object] | None) -> None:
        self._scheduler = scheduler
        self._future: asyncio.Future[int] | None = None
        self.slot: int | None = None
        self.task = task
        self.released = False
        #: True once ``Scheduler.cancel_all`` cancelled the holder's task: the server ended the request.
        self.ended_by_server = False

    @property
    def granted(self) -> bool:
        """True once the ticket holds a slot."""
        return self.slot is not None

    async def wait(self) -> int:
        """Wait for a slot and return its number. Cancelling the wait gives the place (or slot) up."""
        if self.slot is not None:
            return self.slot
        if self.released:
            raise SchedulerClosedError("the request was cancelled")
        assert self._future is not None
        try:
            return await self._future
        except asyncio.CancelledError:
            self.release()
            raise

    def release(self) -> None:
        """Leave the queue or free the slot; the next waiting request gets it. Safe to call more than once."""
        if not self.released:
            self.released = True
            self._scheduler._release(self)


class Scheduler:
    """Admission control in front of an engine that decodes ``capacity`` sequences together."""

    def __init__(self, capacity: int, max_queue: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.max_queue = max_queue
        self.closed = False
        self._free_slots = list(range(capacity))
        self._busy: dict[int, Ticket] = {}
        self._waiting: deque[Ticket] = deque()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def active(self) -> int:
        """Tickets holding a slot."""
        return len(self._busy)

    @property
    def waiting(self) -> int:
        """Tickets waiting in the queue."""
        return len(self._waiting)

    def busy_slots(self) -> set[int]:
        """Numbers of the slots in use."""
        return set(self._busy)

    def reserve(self) -> Ticket:
        """A ticket with a slot if one is free, else a place in the queue.

        Raises QueueFullError when the queue is full and SchedulerClosedError after ``close()``.
        """
        if self.closed:
            raise SchedulerClosedError("the server is shutting down")
        if self._free_slots and not self._waiting:
            ticket = Ticket(self, asyncio.current_task())
            self._grant(ticket)
            return ticket
        if len(self._waiting) >= self.max_queue:
            raise QueueFullError(f"all {self.capacity} slots are busy and {len(self._waiting)} requests are waiting")
        ticket = Ticket(self, asyncio.current_task())
        ticket._future = asyncio.get_running_loop().create_future()
        self._waiting.append(ticket)
        self._idle.clear()
        return ticket

    def close(self) -> None:
        """Take no new tickets; those already given keep their place."""
        self.closed = True

    async def wait_idle(self, within: float) -> bool:
        """Wait until no ticket is waiting or active, at most ``within`` seconds; True when idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    def cancel_all(self) -> int:
        """Cancel the task of every outstanding ticket (at the end of the shutdown grace); returns how many.

        Each ticket is marked ``ended_by_server`` first, so its holder can tell this cancellation from a client
        that went away and still answer (an error event, a 503).
        """
        tickets = [*self._busy.values(), *self._waiting]
        cancelled = 0
        for ticket in tickets:
            if ticket.task is not None and not ticket.task.done():
                ticket.ended_by_server = True
                ticket.task.cancel()
                cancelled += 1
        return cancelled

    def _grant(self, ticket: Ticket) -> None:
        slot = heapq.heappop(self._free_slots)
        ticket.slot = slot
        self._busy[slot] = ticket
        self._idle.clear()

    def _release(self, ticket: Ticket) -> None:
        if ticket.slot is not None:
            del self._busy[ticket.slot]
            heapq.heappush(self._free_slots, ticket.slot)
            self._hand_over()
        else:
            try:
                self._waiting.remove(ticket)
            except ValueError:
                pass
        if not self._busy and not self._waiting:
            self._idle.set()

    def _hand_over(self) -> None:
        while self._free_slots and self._waiting:
            ticket = self._waiting.popleft()
            future = ticket._future
            if future is None or future.done():  # its waiter was cancelled
                continue
            self._grant(ticket)
            future.set_result(ticket.slot)  # type: ignore[arg-type]
