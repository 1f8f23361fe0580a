"""Hard capture budgets per rolling hour and day, with reservations the caller confirms.

A capture only counts once the caller has persisted it: :meth:`CaptureBudget.reserve` holds a
slot while the caller writes the queue item, :meth:`commit` turns it into a counted capture and
:meth:`release` gives it back if the write failed. Reservations count against the budget while
open so concurrent invokes cannot overshoot it, and expire after ``reservation_ttl`` seconds so a
caller that crashed between the two steps cannot leak budget forever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Literal

HOUR = 3600.0
DAY = 86_400.0

FullBudget = Literal["budget_hour", "budget_day"]


class CaptureBudget:
    """Rolling-window capture counter; not thread-safe (the controller locks around it)."""

    def __init__(self, *, max_per_hour: int, max_per_day: int, reservation_ttl: float) -> None:
        """Start with nothing captured.

        Args:
            max_per_hour: most captures in any 3600 s window.
            max_per_day: most captures in any 86400 s window.
            reservation_ttl: seconds an uncommitted reservation holds its slot.
        """
        self.max_per_hour = max_per_hour
        self.max_per_day = max_per_day
        self._ttl = reservation_ttl
        self._hour: deque[float] = deque()
        self._day: deque[float] = deque()
        self._open: dict[int, float] = {}  # reservation token -> time reserved
        # Expired but never settled: a late commit still counts (the capture was made), and
        # remembering them for a day keeps a double commit from counting twice.
        self._expired: dict[int, float] = {}
        self._next_token = 1

    def _expire(self, now: float) -> None:
        while self._hour and self._hour[0] <= now - HOUR:
            self._hour.popleft()
        while self._day and self._day[0] <= now - DAY:
            self._day.popleft()
        stale = [token for token, since in self._open.items() if since <= now - self._ttl]
        for token in stale:
            self._expired[token] = self._open.pop(token)
        forgotten = [token for token, since in self._expired.items() if since <= now - DAY]
        for token in forgotten:
            del self._expired[token]

    def set_committed(self, times: Iterable[float]) -> None:
        """Count exactly the captures committed at ``times``, in place of those counted so far.

        ``times`` come from the shared record of captures (the review queue), which holds every
        process's captures, this one's included: read at start-up, a restart keeps its windows;
        read before each capture, several processes sharing the queue share the budget.
        Open reservations are kept.
        """
        committed = deque(sorted(times))
        self._hour, self._day = committed, deque(committed)  # _expire trims each to its window

    def used(self, now: float) -> tuple[int, int]:
        """Captures (committed plus open reservations) in the last hour and the last day."""
        self._expire(now)
        return len(self._hour) + len(self._open), len(self._day) + len(self._open)

    def exhausted(self, now: float, *, excluding: int | None = None) -> FullBudget | None:
        """``"budget_hour"`` or ``"budget_day"`` when that window is full, else None.

        Args:
            now: the current time.
            excluding: an open reservation to leave out (asking whether it still fits).
        """
        hour, day = self.used(now)
        if excluding is not None and excluding in self._open:
            hour, day = hour - 1, day - 1
        if day >= self.max_per_day:
            return "budget_day"
        if hour >= self.max_per_hour:
            return "budget_hour"
        return None

    def reserve(self, now: float) -> int:
        """Hold one slot (check :meth:`exhausted` first) and return its token."""
        token = self._next_token
        self._next_token += 1
        self._open[token] = now
        return token

    def commit(self, token: int, now: float) -> bool:
        """Count the reserved capture at ``now``; False if the token was settled or is unknown."""
        if self._open.pop(token, None) is None and self._expired.pop(token, None) is None:
            return False
        self._hour.append(now)
        self._day.append(now)
        return True

    def release(self, token: int) -> bool:
        """Give the slot back; False if the token was settled or is unknown."""
        released = self._open.pop(token, None) is not None
        return self._expired.pop(token, None) is not None or released
