"""The scheduler on its own: slots, FIFO queue, cancellation while waiting or just after a grant, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from sakura_core.server.generation.scheduler import QueueFullError, Scheduler, SchedulerClosedError


async def test_grants_up_to_capacity_then_queues_in_order() -> None:
    scheduler = Scheduler(capacity=2, max_queue=3)
    first, second = scheduler.reserve(), scheduler.reserve()
    assert (first.slot, second.slot) == (0, 1) and scheduler.active == 2
    waiting = [scheduler.reserve() for _ in range(3)]
    assert scheduler.waiting == 3 and not any(t.granted for t in waiting)
    with pytest.raises(QueueFullError):
        scheduler.reserve()
    order: list[int] = []

    async def wait(index: int) -> None:
        await waiting[index].wait()
        order.append(index)

    tasks = [asyncio.create_task(wait(i)) for i in range(3)]
    await asyncio.sleep(0)
    second.release()
    await asyncio.sleep(0)
    assert order == [0] and waiting[0].slot == 1
    first.release()
    waiting[0].release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert scheduler.busy_slots() == {0, 1}
    waiting[1].release()
    waiting[2].release()
    waiting[2].release()  # twice is harmless
    assert scheduler.active == 0 and scheduler.waiting == 0
    assert await scheduler.wait_idle(0.1)


async def test_cancelled_waiter_leaves_the_queue() -> None:
    scheduler = Scheduler(capacity=1, max_queue=5)
    holder = scheduler.reserve()
    ticket = scheduler.reserve()
    task = asyncio.create_task(ticket.wait())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert scheduler.waiting == 0
    holder.release()
    assert scheduler.active == 0


async def test_cancellation_right_after_the_grant_passes_the_slot_on() -> None:
    scheduler = Scheduler(capacity=1, max_queue=5)
    holder = scheduler.reserve()
    unlucky, next_in_line = scheduler.reserve(), scheduler.reserve()
    unlucky_task = asyncio.create_task(unlucky.wait())
    next_task = asyncio.create_task(next_in_line.wait())
    await asyncio.sleep(0)
    holder.release()  # grants ``unlucky`` ...
    unlucky_task.cancel()  # ... whose task is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await unlucky_task
    assert await next_task == 0
    assert scheduler.active == 1 and scheduler.waiting == 0
    next_in_line.release()


async def test_close_refuses_new_tickets_and_cancel_all_cancels_their_tasks() -> None:
    scheduler = Scheduler(capacity=1, max_queue=5)

    async def hold() -> None:
        ticket = scheduler.reserve()
        try:
            await ticket.wait()
            await asyncio.sleep(10)
        finally:
            ticket.release()

    tasks = [asyncio.create_task(hold()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert scheduler.active == 1 and scheduler.waiting == 2
    scheduler.close()
    with pytest.raises(SchedulerClosedError):
        scheduler.reserve()
    assert not await scheduler.wait_idle(0.05)
    assert scheduler.cancel_all() == 3
    await asyncio.gather(*tasks, return_exceptions=True)
    assert await scheduler.wait_idle(0.1)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Scheduler(capacity=0, max_queue=1)
