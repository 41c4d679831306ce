"""A readable stream over ranged GETs: bounded memory, bounded concurrency.

The object is read in chunks of a fixed size, each one request that is retried on its
own. At most ``ahead`` chunks are requested at once and held in memory, so a stream never
holds more than ``chunk_size * (ahead + 1)`` bytes, whatever the object's size.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from dam_dedupe.errors import AssetError

Fetch = Callable[[int, int], bytes]
"""Returns ``length`` bytes of the object from ``offset``."""


class RangedReader(io.RawIOBase):
    """A raw binary stream that reads an object of known ``size`` through ``fetch``.

    Args:
        fetch: returns one range of the object; raises the adapter's errors.
        size: the object's size in bytes, as listed.
        chunk_size: bytes per request.
        ahead: requests in flight at once (1 reads sequentially, without threads).
        first: the first chunk when the caller already fetched it (so ``open`` can fail early).
    """

    def __init__(self, fetch: Fetch, size: int, chunk_size: int, ahead: int = 1, first: bytes | None = None) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._chunk_size = chunk_size
        self._ahead = max(1, ahead)
        self._pool = ThreadPoolExecutor(self._ahead, thread_name_prefix="blob-read") if self._ahead > 1 else None
        self._pending: deque[Future[bytes] | bytes] = deque()
        self._next_offset = 0
        self._buffer = memoryview(b"")
        if first is not None:
            self._pending.append(first)
            self._next_offset = len(first)

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the current chunk, fetching the next one when it is used up."""
        if not self._buffer:
            self._buffer = memoryview(self._next_chunk())
            if not self._buffer:
                return 0
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def _next_chunk(self) -> bytes:
        while len(self._pending) < self._ahead and self._next_offset < self._size:
            length = min(self._chunk_size, self._size - self._next_offset)
            if self._pool is None:
                self._pending.append(self._fetch(self._next_offset, length))
            else:
                self._pending.append(self._pool.submit(self._fetch, self._next_offset, length))
            self._next_offset += length
        if not self._pending:
            return b""
        item = self._pending.popleft()
        data = item if isinstance(item, bytes) else item.result()
        if not data:
            raise AssetError("the blob is shorter than listed; it changed while being read")
        return data

    def close(self) -> None:
        """Drop buffered chunks and stop the read-ahead threads."""
        if self._pool is not None:
            for item in self._pending:
                if isinstance(item, Future):
                    item.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
        self._pending.clear()
        self._buffer = memoryview(b"")
        super().close()
