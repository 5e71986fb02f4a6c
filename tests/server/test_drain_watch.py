"""``DrainWatch``: the send timeout's clock runs while a client takes nothing, and the few bytes a non-reading
client's kernel still takes now and then (as it compacts its full receive buffer) do not restart it."""

from __future__ import annotations

import asyncio

from sakura_core.server.http.drain import PROGRESS_BYTES, DrainWatch


class StuckTransport(asyncio.WriteTransport):
    """A transport holding ``buffered`` bytes the kernel has not taken."""

    def __init__(self, buffered: int) -> None:
        super().__init__()
        self.buffered = buffered

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class Kernel:
    """The socket's unacknowledged bytes, falling by ``step`` at each look."""

    def __init__(self, queued: int, step: int) -> None:
        self.queued = queued
        self.step = step

    def look(self) -> int:
        self.queued = max(0, self.queued - self.step)
        return self.queued


def watch_over(kernel: Kernel, buffered: int = 1000) -> DrainWatch:
    watch = DrainWatch(StuckTransport(buffered))
    watch._unacknowledged = kernel.look  # type: ignore[method-assign]
    return watch


async def test_a_client_that_takes_nothing_is_given_up_on_after_the_timeout() -> None:
    watch = watch_over(Kernel(100_000, 0))
    started = asyncio.get_running_loop().time()
    assert await watch.wait_until_taken(0.2) is False
    assert 0.2 <= asyncio.get_running_loop().time() - started < 0.5


async def test_trickles_of_a_non_reading_clients_kernel_do_not_restart_the_clock() -> None:
    watch = watch_over(Kernel(100_000, 50))  # 50 bytes a look: far under PROGRESS_BYTES in 0.2 s
    started = asyncio.get_running_loop().time()
    assert await watch.wait_until_taken(0.2) is False
    assert asyncio.get_running_loop().time() - started < 0.5


async def test_a_client_that_reads_restarts_the_clock_and_its_bytes_go_out() -> None:
    kernel = Kernel(10_000_000, PROGRESS_BYTES)
    transport = StuckTransport(1000)
    watch = DrainWatch(transport)
    watch._unacknowledged = kernel.look  # type: ignore[method-assign]

    async def reader() -> None:
        await asyncio.sleep(0.3)  # longer than the timeout in all, but it keeps taking
        transport.buffered = 0

    reading = asyncio.ensure_future(reader())
    assert await watch.wait_until_taken(0.2) is True
    await reading
    assert watch.stalled_since is None or kernel.queued == 0
