"""One Worker: a function run in a background thread, with a stop event, counters and a log.

    def body(w: bl.Worker) -> None:        # the loop a lesson teaches, in the lesson
        connection = pika.BlockingConnection(params)   # made inside the thread
        while not w.should_stop():
            connection.process_data_events(time_limit=0.2)   # every wait bounded
        connection.close()

    worker = bl.Worker("orders-consumer", body).start()
    worker.stop()      # graceful: the body sees should_stop() and finishes what it holds
    worker.kill()      # a crash: `crashed` is set; the body drops everything unacknowledged

Workers never print: a thread's print lands in whatever cell runs at the time
(ipykernel), so progress lives in `counters`, `log`, `messages` and `ledger` (what a
producer was promised, counted in module 04), which cells and widgets read.

`rate` (messages per second, 0 = flat out) and `size` (bytes per generated message) are
plain attributes that `pace()`, `work()` and `payload()` read before every message, so a
slider can change them while the worker runs.

Busy threads can starve the notebook's own thread: with Python's default 5 ms switch
interval, ten workers flat out (and kafka-python's pure-Python I/O threads) kept a
trivial cell waiting ~1 s for the GIL. Starting a worker therefore lowers the
interpreter's switch interval to 0.5 ms (never raises it).

The control panel's own producers and consumers (one per kind of target) live in
`brokerlab.panel.workers`; lessons write their own loops.
"""

from __future__ import annotations

import atexit
import collections
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from brokerlab.ledger import Ledger

MAX_SIZE = 1_000_000  # bytes: bigger generated messages are refused (a typo, not a lesson)
SWITCH_INTERVAL = 0.0005  # seconds a busy thread may hold the GIL while another waits


@dataclass
class Counters:
    sent: int = 0
    received: int = 0
    acked: int = 0
    failed: int = 0


@dataclass
class Worker:
    """A thread running `body(worker)`; body loops until `worker.should_stop()`.

    `rate`, `size`, `broker`, `role` and `target` describe what it does (the control
    panel shows them); `rate` and `size` may be changed while it runs.
    """

    name: str
    body: Callable[[Worker], None]
    counters: Counters = field(default_factory=Counters)
    messages: list[str] = field(default_factory=list)
    log: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=50))
    ledger: Ledger = field(default_factory=Ledger)
    error: BaseException | None = None
    crashed: bool = False
    busy: bool = False       # inside `work()`: holding a message it has not finished
    rate: float = 0.0
    size: int = 0
    broker: str = ""
    role: str = ""
    target: str = ""
    keep: int | None = None  # keep at most about this many bodies in `messages` (None: all)
    seq: int = 0             # number of the last generated message (continues on restart)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _due: float = 0.0        # monotonic time the previous message went (pacing)

    def start(self) -> Worker:
        if self.running:
            return self
        self._stop.clear()
        self.crashed = False
        self.error = None
        self._due = 0.0
        if sys.getswitchinterval() > SWITCH_INTERVAL:  # see the module docstring
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        _REGISTRY[self.name] = self
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.body(self)
        except Exception as exc:  # shown in counters and log, never printed from a thread
            self.error = exc
            self.counters.failed += 1
            self.note(f"stopped by error: {type(exc).__name__}: {exc}")

    def note(self, line: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {line}")

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to `seconds`, returning early (False) when told to stop."""
        return not self._stop.wait(seconds)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def state(self) -> str:
        """running, stopping, killed, error, stopped or new (never started)."""
        if self.running:
            return "stopping" if self._stop.is_set() else "running"
        if self.crashed:
            return "killed"
        if self.error is not None:
            return "error"
        return "new" if self._thread is None else "stopped"

    def request_stop(self, crash: bool = False) -> None:
        """Tell the body to stop (or to crash) without waiting: to stop several at once."""
        if crash:
            self.crashed = True
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop: finish the message in hand, close the connection cleanly."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self.running:
            _REGISTRY.pop(self.name, None)

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the body to return on its own, then stop it (so
        nothing outlives the wait): True when it had finished by itself."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        finished = not self.running
        self.stop()
        return finished

    def kill(self, timeout: float = 5.0) -> None:
        """Crash: no ack for the message in hand and no clean close of the connection."""
        self.crashed = True
        self.stop(timeout)

    # -- what loops call: pacing, simulated work, generated messages --------------

    def pace(self, sleep: Callable[[float], Any] | None = None) -> bool:
        """Wait until the next message is due at `rate` per second (0: at once).

        Returns False, without waiting further, as soon as the worker is told to stop.
        `sleep` (e.g. a pika connection's `sleep`, which keeps heartbeats flowing) is
        called with at most 0.1 s; by default we wait on the stop event.
        """
        while True:
            if self._stop.is_set() or self.crashed:
                return False
            rate, now = self.rate, time.monotonic()
            if rate <= 0 or not self._due:  # flat out, or the first message: go now
                self._due = now
                return True
            due = self._due + 1.0 / rate
            if now >= due:
                # on schedule, but never a burst to catch up more than 0.2 s of backlog
                self._due = max(due, now - 0.2)
                return True
            wait = min(0.1, due - now)
            if sleep is None:
                self._stop.wait(wait)
            else:
                sleep(wait)

    def work(self, seconds: float = 0.0) -> bool:
        """Spend `seconds`, plus 1/rate when a rate is set, on the message in hand.

        Returns False as soon as the worker is killed (the message must stay
        unacknowledged). A graceful stop lets the work finish: that is what graceful means.
        """
        rate = self.rate
        total = seconds + (1.0 / rate if rate > 0 else 0.0)
        deadline = time.monotonic() + total
        self.busy = True
        try:
            while not self.crashed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                time.sleep(min(0.02, left))
            return False
        finally:
            self.busy = False

    def payload(self) -> str:
        """The next generated message: `<name>#<n>`, padded with 'x' to `size` bytes."""
        self.seq += 1
        head = f"{self.name}#{self.seq}"
        size = max(0, min(int(self.size), MAX_SIZE))
        return head if size <= len(head) else head + " " + "x" * (size - len(head) - 1)

    def keep_message(self, text: str) -> None:
        """Remember a handled message body (bounded by `keep`, for long-running panels)."""
        self.messages.append(text)
        if self.keep is not None and len(self.messages) > 2 * self.keep:
            del self.messages[: len(self.messages) - self.keep]

    def __repr__(self) -> str:
        c = self.counters
        return (f"<Worker {self.name} {self.state} sent={c.sent} received={c.received} "
                f"acked={c.acked} failed={c.failed}>")


_REGISTRY: dict[str, Worker] = {}


def running_workers(prefix: str = "") -> list[Worker]:
    return [w for w in list(_REGISTRY.values()) if w.name.startswith(prefix) and w.running]


def stop_all(prefix: str = "", timeout: float = 5.0) -> int:
    """Stop every worker whose name starts with `prefix` (all by default); return how many.

    All stop events are set first, so the workers wind down in parallel; never raises.
    """
    workers = [w for w in list(_REGISTRY.values()) if w.name.startswith(prefix)]
    for worker in workers:
        worker.request_stop()
    deadline = time.monotonic() + timeout
    for worker in workers:
        try:
            worker.stop(max(0.1, deadline - time.monotonic()))
        except Exception:  # stopping must always work, whatever one worker does
            pass
    return len(workers)


atexit.register(stop_all)
