"""Bounded waiting for check cells: poll until a condition holds, or give up in time.

Check cells assert what a lesson claims ("all 100 tasks done exactly once"). Brokers are
asynchronous, so a check first waits, bounded, for the count to settle:

    got = wait_for(lambda: len(done), 100, timeout=10)
    assert got == 100, f"expected 100 tasks done, found {got} — is the worker running?"
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.1) -> T:
    """Call `predicate` until it returns something truthy or `timeout` seconds pass.

    Returns the last value (falsy on timeout), so the check cell decides what to say.
    """
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


async def wait_until_async(predicate: Callable[[], T], timeout: float = 10.0,
                           interval: float = 0.02) -> T:
    """`wait_until` for asyncio code (module 07): the same bounded poll, but it sleeps with
    `await asyncio.sleep`, so the event loop and every other task on it keep running
    (`wait_until`'s `time.sleep` would freeze them all). Returns the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = predicate()
    return value


def wait_for(measure: Callable[[], T], expected: T, timeout: float = 10.0,
             interval: float = 0.1) -> T:
    """Poll `measure()` until it equals `expected` or time runs out; return the last value."""
    last: list[T] = []

    def matches() -> bool:
        last[:] = [measure()]
        return last[0] == expected

    wait_until(matches, timeout, interval)
    return last[0]


def settle(measure: Callable[[], T], quiet: float = 1.0, timeout: float = 15.0) -> T:
    """Wait until `measure()` stops changing for `quiet` seconds (bounded); return it.

    For counts that should *stop* at some value: e.g. nothing more arrives.
    """
    last = [measure()]
    stable_since = [time.monotonic()]

    def quiet_long_enough() -> bool:
        new = measure()
        if new != last[0]:
            last[0], stable_since[0] = new, time.monotonic()
        return time.monotonic() - stable_since[0] >= quiet

    wait_until(quiet_long_enough, timeout, interval=min(0.1, quiet))
    return last[0]
