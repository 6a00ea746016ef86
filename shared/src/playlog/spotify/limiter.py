"""App-wide limits on Spotify calls, shared by every user's requests in a process."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

WINDOW_SECONDS = 30.0


class AppRateLimiter:
    """At most ``max_concurrent`` calls in flight and ``per_window`` calls per rolling 30 s.

    A 429 pauses every caller (Spotify limits per app, not per user) until its
    Retry-After has passed.
    """

    def __init__(
        self,
        *,
        max_concurrent: int = 8,
        per_window: int = 150,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_concurrent < 1 or per_window < 1:
            raise ValueError("limits must be at least 1")
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._per_window = per_window
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def paused_for(self) -> float:
        """Seconds until a pause set by a 429 ends (0 when none is in force)."""
        return max(0.0, self._paused_until - self._clock())

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._semaphore:
            await self._wait_for_budget()
            yield

    async def _wait_for_budget(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and self._starts[0] <= now - WINDOW_SECONDS:
                    self._starts.popleft()
                wait = self._paused_until - now
                if len(self._starts) >= self._per_window:
                    wait = max(wait, self._starts[0] + WINDOW_SECONDS - now)
                if wait <= 0:
                    self._starts.append(now)
                    return
                await self._sleep(wait)
