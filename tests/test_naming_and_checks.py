import asyncio
import re
import threading
import time

import pytest

from brokerlab.checks import settle, wait_for, wait_until, wait_until_async
from brokerlab.naming import Run
from brokerlab.settings import Settings


def test_names_are_per_run_and_legal_everywhere() -> None:
    settings = Settings.from_env({"COURSE_NAMESPACE": "alice"})
    a, b = Run("01.02", settings), Run("01.02", settings)
    assert a.prefix != b.prefix
    name = a.queue("tasks")
    assert name.startswith("alice-01-02-") and name.endswith("-tasks")
    assert re.fullmatch(r"[a-z0-9-]+", name)
    assert a.queues == [name]
    a.topic("orders"), a.topic("orders"), a.group("g"), a.exchange("logs")
    assert a.topics == [a.name("orders")] and a.groups == [a.name("g")]
    assert a.key("jobs").startswith(a.prefix)


@pytest.mark.parametrize("bad", ["Tasks", "a b", "", "x.y", "_x"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        Run("01.02", Settings()).name(bad)


def test_lesson_format() -> None:
    with pytest.raises(ValueError):
        _ = Run("1.2", Settings()).prefix


def test_wait_until_returns_value_or_gives_up_in_time() -> None:
    box: list[int] = []
    threading.Timer(0.2, lambda: box.append(1)).start()
    assert wait_until(lambda: box, timeout=5) == [1]
    t0 = time.monotonic()
    assert wait_until(lambda: False, timeout=0.3) is False
    assert time.monotonic() - t0 < 1


def test_wait_for_and_settle() -> None:
    counter = iter(range(1000))
    assert wait_for(lambda: next(counter), 5, timeout=5, interval=0.01) == 5
    t0 = time.monotonic()
    assert wait_for(lambda: 1, 2, timeout=0.2) == 1
    assert time.monotonic() - t0 < 1
    assert settle(lambda: 7, quiet=0.2, timeout=2) == 7


def test_settle_waits_for_a_count_to_stop_changing() -> None:
    started = time.monotonic()

    def growing() -> int:  # grows for 0.4 s, then stays at its last value
        return min(int((time.monotonic() - started) * 10), 4)

    assert settle(growing, quiet=0.3, timeout=5) == 4
    assert time.monotonic() - started < 2
    t0 = time.monotonic()
    settle(lambda: time.monotonic(), quiet=0.5, timeout=0.4)  # never quiet: gives up in time
    assert time.monotonic() - t0 < 1


def test_wait_until_async_keeps_the_loop_running_and_is_bounded() -> None:
    async def scenario() -> tuple[object, object, float]:
        flag: list[bool] = []

        async def other_task() -> None:      # runs only if the wait yields to the loop
            await asyncio.sleep(0.05)
            flag.append(True)

        task = asyncio.create_task(other_task())
        got = await wait_until_async(lambda: bool(flag), timeout=2)
        await task
        started = time.monotonic()
        never = await wait_until_async(lambda: 0, timeout=0.1)
        return got, never, time.monotonic() - started

    got, never, waited = asyncio.run(scenario())
    assert got is True
    assert never == 0 and 0.1 <= waited < 1.0
