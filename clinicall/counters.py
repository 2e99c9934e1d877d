"""Fixed-window counters (login throttling, the public kiosk's ticket limit): in Redis when one is
configured, so every instance counts together; in this process otherwise, and while Redis cannot be
reached (counting here rather than not at all)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class LocalCounters:
    """In-process fixed-window counters: key -> (count, window end on the monotonic clock)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    async def incr(self, key: str, window: int) -> tuple[int, float]:
        """Adds one; (the count, seconds until the window ends)."""
        now = time.monotonic()
        if len(self._counts) > 100_000:  # bounded memory under a spray of addresses
            for stale in [k for k, (_, end) in self._counts.items() if end <= now]:
                del self._counts[stale]
        count, end = self._counts.get(key) or (0, now + window)
        if end <= now:
            count, end = 0, now + window
        self._counts[key] = (count + 1, end)
        return count + 1, end - now

    async def decr(self, key: str) -> None:
        if key in self._counts:
            count, end = self._counts[key]
            self._counts[key] = (max(count - 1, 0), end)

    async def reset(self, key: str) -> None:
        self._counts.pop(key, None)

    async def close(self) -> None:
        self._counts.clear()


class RedisCounters:
    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.prefix = prefix

    async def incr(self, key: str, window: int) -> tuple[int, float]:
        name = self.prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            _, count, ttl = await pipe.set(name, 0, ex=window, nx=True).incr(name).pttl(name).execute()
        if int(ttl) < 0:  # a key left without an expiry (a decrement after it expired) would count for ever
            await self._redis.expire(name, window)
            ttl = window * 1000
        return int(count), max(int(ttl), 0) / 1000

    async def decr(self, key: str) -> None:
        await self._redis.decr(self.prefix + key)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self.prefix + key)

    async def close(self) -> None:
        await self._redis.aclose()


class WindowCounters:
    """Counters under `prefix` in Redis (shared) when `redis_url` is set, else in this process."""

    def __init__(self, prefix: str, redis_url: str | None = None) -> None:
        self.local = LocalCounters()
        self.shared = RedisCounters(redis_url, prefix) if redis_url else None

    async def _call(self, method: str, *args: object) -> object:
        if self.shared is not None:
            try:
                return await getattr(self.shared, method)(*args)
            except Exception as exc:  # Redis away: count in this process rather than not at all
                log.warning("counters %s: Redis unavailable (%s); counting in this process", self.shared.prefix, exc)
        return await getattr(self.local, method)(*args)

    async def incr(self, key: str, window: int) -> tuple[int, float]:
        """Adds one to the key's window; (the count, seconds until the window ends)."""
        return await self._call("incr", key, window)  # type: ignore[return-value]

    async def decr(self, key: str) -> None:
        await self._call("decr", key)

    async def reset(self, key: str) -> None:
        await self._call("reset", key)

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()
