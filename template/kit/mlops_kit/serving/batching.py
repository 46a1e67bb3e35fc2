"""Adaptive batching: concurrent single-record requests share one model call."""

import asyncio
from collections.abc import Callable
from typing import Any


class MicroBatcher:
    """Queue single items while the model is busy; its next call takes all of them.

    Up to ``max_batch_size`` items go into one call. A lone request is never held
    back waiting for company, so batching adds no latency when traffic is light.
    """

    def __init__(self, predict_many: Callable[[list], list], max_batch_size: int) -> None:
        self.predict_many = predict_many
        self.max_batch_size = max_batch_size
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        """Queue one item and wait for its result."""
        if self.queue is None:
            self.queue = asyncio.Queue()
            # Holding the task keeps it from being garbage-collected while it runs.
            self.worker = asyncio.create_task(self.serve_forever())
        result = asyncio.get_running_loop().create_future()
        await self.queue.put((item, result))
        return await result

    async def serve_forever(self) -> None:
        """Take whatever is queued, predict it in one call, hand back the results."""
        assert self.queue is not None
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                outputs = await asyncio.to_thread(self.predict_many, [item for item, _ in batch])
            except Exception as error:  # every waiting request gets the failure, not a hang
                for _, result in batch:
                    result.set_exception(error)
                continue
            for (_, result), output in zip(batch, outputs, strict=True):
                result.set_result(output)
