"""A process-wide budget of decoded pixels in flight.

A compressed upload can be tiny while its pixels are not (a flat 6,324 x 6,324 PNG is 116 KB, and
120 MB once decoded to RGB), so the bytes of concurrent requests say little about the memory they
take. Callers reserve an image's pixel count, read from its header, before decoding it, and release
it once the decoded image is gone (after encoding); beyond the budget a reservation waits a little
for others to release, then fails with :class:`~embeddings.errors.DecodeBudgetExhausted`.
"""

from __future__ import annotations

import threading
import time

from embeddings.errors import DecodeBudgetExhausted

#: Seconds a reservation waits for room before it fails: long enough for an image or two ahead of
#: it to be encoded, short enough that a client is told to come back rather than left hanging.
DEFAULT_WAIT_S = 2.0


class PixelBudget:
    """At most ``capacity`` decoded pixels reserved at once, across threads.

    An image larger than the whole budget is not refused for good: it waits until nothing else is
    reserved and then holds the whole budget, so it is decoded alone.
    """

    def __init__(self, capacity: int, *, wait_s: float = DEFAULT_WAIT_S) -> None:
        """
        Args:
            capacity: most pixels reserved at once (>= 1).
            wait_s: seconds :meth:`reserve` waits for room before it raises.
        """
        if capacity < 1:
            raise ValueError(f"the pixel budget must be at least 1 pixel, not {capacity}")
        if wait_s < 0:
            raise ValueError(f"the wait must be >= 0 seconds, not {wait_s}")
        self._capacity = capacity
        self._wait_s = wait_s
        self._reserved = 0
        self._released = threading.Condition()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def reserved(self) -> int:
        """Pixels reserved right now."""
        with self._released:
            return self._reserved

    def try_reserve(self, pixels: int) -> bool:
        """Reserve ``pixels`` if they fit now; never waits.

        Args:
            pixels: the image's ``width * height``.
        """
        with self._released:
            return self._take(self._held(pixels))

    def reserve(self, pixels: int) -> None:
        """Reserve ``pixels``, waiting up to ``wait_s`` for others to release room.

        A caller must not wait while it holds a reservation of its own (release or use it first):
        it could be waiting for itself.

        Args:
            pixels: the image's ``width * height``.

        Raises:
            DecodeBudgetExhausted: no room came free in time.
        """
        held = self._held(pixels)
        deadline = time.monotonic() + self._wait_s
        with self._released:
            while not self._take(held):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecodeBudgetExhausted(
                        f"{self._reserved} decoded pixels are in flight and {pixels} more would "
                        f"pass the decode budget of {self._capacity} pixels",
                        retry_after=self._wait_s,
                    )
                self._released.wait(left)

    def release(self, pixels: int) -> None:
        """Give back a reservation of ``pixels`` made by :meth:`reserve` or :meth:`try_reserve`."""
        held = self._held(pixels)
        with self._released:
            if held > self._reserved:
                raise RuntimeError("released more decoded pixels than were reserved")
            self._reserved -= held
            self._released.notify_all()

    def _held(self, pixels: int) -> int:
        """What a reservation of ``pixels`` holds: itself, or the whole budget if larger."""
        if pixels < 0:
            raise ValueError(f"cannot reserve {pixels} pixels")
        return min(pixels, self._capacity)

    def _take(self, held: int) -> bool:
        """Hold ``held`` more pixels if they fit; caller holds the lock."""
        if self._reserved + held > self._capacity:
            return False
        self._reserved += held
        return True
