"""Throttling of failed sign-ins, counted per username and client address."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class SignInThrottle:
    """Failed sign-ins per (username, client address) within a sliding window.

    The failures live in this process's memory, which is enough because
    `pandulce serve` runs the app in one waitress process that receives every
    attempt. A restart loses them, and several processes would each count
    their own. Behind a reverse proxy every client has the proxy's address,
    so the limit then applies per username.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 15 * 60, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        # Bounds the memory that a flood of made-up usernames can take.
        self.max_keys = max_keys
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, username: str, address: str) -> float:
        """Return how many seconds this username must wait to sign in from this address; 0 when it may now."""
        now = self.clock()
        with self._lock:
            failures = self._recent(_key(username, address), now)
            if len(failures) < self.max_failures:
                return 0.0
            return failures[-self.max_failures] + self.window_s - now

    def record_failure(self, username: str, address: str) -> int:
        """Count a failed sign-in; return the failures of this username and address within the window."""
        now = self.clock()
        key = _key(username, address)
        with self._lock:
            failures = self._recent(key, now)
            failures.append(now)
            self._failures[key] = failures
            if len(self._failures) > self.max_keys:
                self._prune(now)
            return len(failures)

    def clear(self, username: str, address: str) -> None:
        """Forget the failures of this username and address, after a successful sign-in."""
        with self._lock:
            self._failures.pop(_key(username, address), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def _prune(self, now: float) -> None:
        for key in [key for key, failures in self._failures.items() if not self._recent(key, now)]:
            del self._failures[key]
        while len(self._failures) > self.max_keys:
            # Dicts keep insertion order, so this drops the key added first.
            del self._failures[next(iter(self._failures))]


def _key(username: str, address: str) -> tuple[str, str]:
    # Usernames are compared without regard to case, as find_user does.
    return username.strip().lower(), address
