"""A control panel's model: the workers it runs on one target and every action on them.

Anything a button does is a method here that a test (or an unattended notebook run)
calls the same way. Bad input, and a broker that went away, become a message in the
panel (`say`); no action raises into the kernel. The view (`view.py`) subclasses this
and redraws when the hooks `worker_added`, `worker_removed` and `changed` fire.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from brokerlab.health import NAMES, START_HINT
from brokerlab.naming import Run
from brokerlab.panel.probes import Target, describe, read_once
from brokerlab.panel.workers import KINDS, ensure_stream_group, new_worker, redis_connect
from brokerlab.settings import Settings
from brokerlab.workers import MAX_SIZE, Worker

DEFAULT_KIND = {"rabbitmq": "queue", "redis": "stream", "kafka": "topic"}
KIND_LABEL = {"queue": "queue", "stream": "stream", "list": "list", "pubsub": "channel",
              "topic": "topic"}
QUEUE_MAX_LENGTH = 100_000  # a forgotten flat-out producer must not fill a small broker
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,60}$")
# What stop and kill mean for a consumer of each kind (shown after the click).
STOP_MEANS = {"queue": "it finished and acknowledged what it held",
              "stream": "it finished and XACKed what it held",
              "list": "it finished the item in hand",
              "pubsub": "it is offline and misses what is published meanwhile",
              "topic": "it committed what it finished and left the group"}
KILL_MEANS = {"queue": "its unacknowledged messages go back to the queue",
              "stream": "its entries stay pending (XPENDING) — nobody acknowledged them",
              "list": "the item in hand is lost: a list has no acknowledgements",
              "pubsub": "it is offline and misses what is published meanwhile",
              "topic": "nothing was committed: the group reads those records again"}

T = TypeVar("T")


def guarded(method: Callable[..., T]) -> Callable[..., T | None]:
    """A panel action: any exception becomes a message in the panel, never a traceback."""

    @functools.wraps(method)
    def wrapper(self: PanelModel, *args: Any, **kwargs: Any) -> T | None:
        if self.closed:
            self.message = "this panel is closed; re-run its cell for a new one"
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            self.say(f"{method.__name__}: {describe(exc)}", error=True)
            return None

    return wrapper


def pick(workers: list[Worker], labels: dict[str, str], which: int | str | Worker) -> Worker:
    """The worker `which` names: itself, an index, a label ('p1', 'c2') or a full name."""
    if isinstance(which, Worker):
        if any(w is which for w in workers):
            return which
        raise ValueError(f"{which.name} is not on this panel")
    if isinstance(which, bool) or not isinstance(which, (int, str)):
        raise ValueError(f"say which worker: an index, a label like 'p1', got {which!r}")
    if isinstance(which, int):
        if 0 <= which < len(workers):
            return workers[which]
        have = f"0..{len(workers) - 1}" if workers else "none yet"
        raise ValueError(f"no worker {which}: this panel has {len(workers)} (indexes {have})")
    for worker in workers:
        if which in (worker.name, labels.get(worker.name)):
            return worker
    have = ", ".join(labels[w.name] for w in workers) or "none"
    raise ValueError(f"no worker {which!r} on this panel (have {have})")


def create_target(target: Target, settings: Settings, *, partitions: int,
                  client_name: str) -> None:
    """Create the queue, stream group or topic if missing (bounded, idempotent)."""
    if target.broker == "rabbitmq":
        import pika

        from brokerlab.clients import rabbitmq_channel

        try:  # durable: RabbitMQ 4.3 refuses transient queues that are not exclusive
            with rabbitmq_channel(settings, timeout=3.0) as channel:
                channel.queue_declare(target.name, durable=True,
                                      arguments={"x-max-length": QUEUE_MAX_LENGTH})
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:  # 406: it exists with other arguments; use it as is
                raise
    elif target.broker == "redis" and target.kind == "stream":
        client = redis_connect(client_name, settings, timeout=3.0)
        try:
            ensure_stream_group(client, target.name, target.group)
        finally:
            client.close()
            client.connection_pool.disconnect()
    elif target.broker == "kafka":
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        from brokerlab.clients import kafka_admin

        admin = kafka_admin(settings, timeout=3.0)
        try:
            admin.create_topics([NewTopic(target.name, partitions, 1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()


class PanelModel:
    """Producers and consumers on one broker target (see `ControlPanel` for the knobs)."""

    def __init__(self, run: Run, *, name: str, rate: float, work_rate: float, size: int,
                 prefetch: int, partitions: int) -> None:
        if not NAME_RE.match(name):
            raise ValueError(f"panel name must be lower-case letters, digits and '-', "
                             f"got {name!r}")
        self.run, self.settings, self.name = run, run.settings, name
        self.prefix = run.name(f"panel-{name}")
        self.prefetch, self.partitions = prefetch, partitions
        self.rate, self.work_rate, self.size = float(rate), float(work_rate), int(size)
        self.workers: list[Worker] = []
        self.labels: dict[str, str] = {}
        self.figures: dict[str, Any] = {}
        self.message = ""
        self.closed = False
        self.broker, self.kind, self.what, self.target, self.group = "", "", name, "", ""
        self._numbers = {"producer": 0, "consumer": 0}
        self._lock = threading.RLock()

    # -- hooks the view overrides ------------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        """Show a message in the panel (errors in red); also kept in `.message`."""
        self.message = text

    def worker_added(self, worker: Worker, label: str) -> None:
        """A worker joined the panel (the view adds its row of buttons)."""

    def worker_removed(self, worker: Worker) -> None:
        """A worker left the panel (the view closes its row)."""

    def changed(self) -> None:
        """Workers started, stopped or changed settings (the view redraws its rows)."""

    def retargeted(self) -> None:
        """The panel points at a new target (the view syncs its controls, clears its chart)."""

    # -- the target --------------------------------------------------------------------

    @property
    def current(self) -> Target:
        return Target(self.broker, self.kind, self.target, self.group)

    @guarded
    def choose(self, broker: str, kind: str | None = None, name: str | None = None, *,
               producers: int | None = None, consumers: int | None = None) -> str:
        """Point the panel at another broker/kind/name: stops and replaces its workers.

        Returns the new target's full name (the button "use" calls this).
        """
        broker = (broker or "").strip().lower()
        if broker not in KINDS:
            raise ValueError(f"choose a broker: {', '.join(KINDS)} (got {broker!r})")
        kind = kind or DEFAULT_KIND[broker]
        if kind not in KINDS[broker]:
            raise ValueError(f"{NAMES[broker]} has no kind {kind!r}: choose "
                             f"{', '.join(KINDS[broker])}")
        what = (self.what if name is None else name).strip()
        if not what:
            raise ValueError(f"give the {KIND_LABEL[kind]} a name, e.g. 'orders'")
        if not NAME_RE.match(what):
            raise ValueError(f"a name uses lower-case letters, digits and '-', got {what!r}")
        if producers is None:
            producers = len(self.producers)
        if consumers is None:
            consumers = len(self.consumers)
        self._drop_all_workers()
        with self._lock:
            self.broker, self.kind, self.what = broker, kind, what
            if broker == "rabbitmq":
                self.target, self.group = self.run.queue(what), ""
            elif broker == "redis":
                self.target = self.run.key(f"{what}-{kind}")
                self.group = self.run.name(f"{what}-group") if kind == "stream" else ""
            else:
                self.target, self.group = self.run.topic(what), self.run.group(what)
            self.figures = {}
        self.retargeted()
        self.say(f"{NAMES[broker]} {KIND_LABEL[kind]} {self.target}: preparing…")
        ready = self.prepare_target()
        for _ in range(producers):
            self._add("producer")
        for _ in range(consumers):
            self._add("consumer")
        if ready:
            self.say(f"ready: {NAMES[broker]} {KIND_LABEL[kind]} {self.target}")
        return self.target

    def prepare_target(self) -> bool:
        """Create the queue / stream group / topic if missing (bounded, idempotent);
        a message in the panel if the broker does not answer."""
        try:
            create_target(self.current, self.settings, partitions=self.partitions,
                          client_name=f"{self.prefix}-setup")
            return True
        except Exception as exc:
            self.say(f"{NAMES[self.broker]} does not answer at "
                     f"{self.settings.display_url(self.broker)} ({describe(exc)}). "
                     f"Start it with: {START_HINT[self.broker]}", error=True)
            return False

    # -- adding and removing workers -----------------------------------------------------

    @guarded
    def add_producer(self) -> Worker:
        """Add a producer (stopped): button "+ producer". Returns it."""
        worker = self._add("producer")
        self.say(f"{self.labels[worker.name]} added (producer, not started)")
        return worker

    @guarded
    def add_consumer(self) -> Worker:
        """Add a consumer (stopped): button "+ consumer". Returns it."""
        worker = self._add("consumer")
        self.say(f"{self.labels[worker.name]} added (consumer, not started)")
        return worker

    def _add(self, role: str) -> Worker:
        if not self.broker:
            raise ValueError("choose a broker first")
        self._numbers[role] += 1
        label = f"{role[0]}{self._numbers[role]}"
        worker = new_worker(
            self.broker, self.kind, role, f"{self.prefix}-{label}", self.target,
            group=self.group or None,
            rate=self.rate if role == "producer" else self.work_rate,
            size=self.size, prefetch=self.prefetch, settings=self.settings)
        with self._lock:
            self.workers.append(worker)
            self.labels[worker.name] = label
        self.worker_added(worker, label)
        return worker

    @guarded
    def remove(self, which: int | str | Worker) -> Worker:
        """Stop a worker gracefully and take it off the panel: its button "remove"."""
        worker = self.worker(which)
        worker.stop()
        with self._lock:
            self.workers = [w for w in self.workers if w is not worker]
        self.worker_removed(worker)
        self.say(f"{self.labels[worker.name]} removed")
        return worker

    def _drop_all_workers(self) -> None:
        self.stop_workers(self.workers)
        with self._lock:
            gone, self.workers = self.workers, []
            self._numbers = {"producer": 0, "consumer": 0}  # a new line-up: p1, c1, ...
        for worker in gone:
            self.worker_removed(worker)

    @staticmethod
    def stop_workers(workers: list[Worker], kill: bool = False) -> None:
        """Stop several workers in parallel (tell them all, then wait for each)."""
        for worker in workers:
            worker.request_stop(crash=kill)
        for worker in workers:
            worker.stop()

    def worker(self, which: int | str | Worker) -> Worker:
        """One of the panel's workers: by index, by label ('p1', 'c2') or by name."""
        return pick(self.workers, self.labels, which)

    @property
    def producers(self) -> list[Worker]:
        return [w for w in self.workers if w.role == "producer"]

    @property
    def consumers(self) -> list[Worker]:
        return [w for w in self.workers if w.role == "consumer"]

    # -- start, stop, kill ---------------------------------------------------------------

    @guarded
    def start(self, which: int | str | Worker) -> Worker:
        """Start (or restart) one worker: its button "start". `which`: index or 'p1'."""
        worker = self.worker(which)
        # e.g. a queue lost when the broker restarted; if the broker does not answer,
        # that message stays and the worker's own error follows
        ready = worker.running or self.prepare_target()
        worker.start()
        self.changed()
        if ready:
            self.say(f"{self.labels[worker.name]} started")
        return worker

    @guarded
    def stop(self, which: int | str | Worker) -> Worker:
        """Graceful stop: finish the message in hand, ack it, close cleanly. Button "stop"."""
        return self._end(which, crash=False)

    @guarded
    def kill(self, which: int | str | Worker) -> Worker:
        """Crash: no ack for what it holds, no clean close. Button "kill"."""
        return self._end(which, crash=True)

    def _end(self, which: int | str | Worker, *, crash: bool) -> Worker:
        worker = self.worker(which)
        if crash:
            worker.kill()
            lost = ", its unsent buffer lost" if self.broker == "kafka" else ""
            means, done = f"its connection dropped without a clean close{lost}", "killed"
        else:
            worker.stop()
            means, done = "its connection closed cleanly", "stopped gracefully"
        if worker.role == "consumer":
            means = (KILL_MEANS if crash else STOP_MEANS)[self.kind]
        self.changed()
        self.say(f"{self.labels[worker.name]} {done}: {means}")
        return worker

    @guarded
    def start_all(self) -> int:
        """Start every worker that is not running; return how many are running."""
        ready = all(w.running for w in self.workers) or self.prepare_target()
        for worker in list(self.workers):
            worker.start()
        self.changed()
        running = sum(w.running for w in self.workers)
        if ready:
            self.say(f"{running} worker(s) running")
        return running

    @guarded
    def stop_all(self) -> int:
        """Stop every worker gracefully (in parallel); return how many there are."""
        workers = list(self.workers)
        self.stop_workers(workers)
        self.changed()
        self.say("every worker stopped gracefully")
        return len(workers)

    # -- rate and size -------------------------------------------------------------------

    @guarded
    def set_rate(self, rate: float, who: str | int = "producers") -> float:
        """Messages per second (0 = flat out) for "producers" (the "send/s" slider),
        "consumers" (the "work/s" slider: how fast each can handle messages), "all",
        or one worker (index or label). Applies at once, also to running workers."""
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                or not math.isfinite(rate):
            raise ValueError(f"a rate is a number of messages per second, got {rate!r}")
        if rate < 0:
            raise ValueError(f"a rate cannot be negative ({rate:g}); 0 means flat out")
        groups = {"producers": self.producers, "consumers": self.consumers,
                  "all": list(self.workers)}
        if isinstance(who, str) and who in groups:
            targets, whom = groups[who], who
            if who in ("producers", "all"):
                self.rate = float(rate)
            if who in ("consumers", "all"):
                self.work_rate = float(rate)
        else:
            targets = [self.worker(who)]
            whom = self.labels[targets[0].name]
        for worker in targets:
            worker.rate = float(rate)
        self.changed()
        self.say(f"rate for {whom}: " + (f"{rate:g} messages/s" if rate else "flat out"))
        return float(rate)

    @guarded
    def set_size(self, size: int) -> int:
        """Bytes per generated message (the "bytes/msg" box); applies to running producers."""
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError(f"a message size is a whole number of bytes, got {size!r}")
        if not 0 <= size <= MAX_SIZE:
            raise ValueError(f"message size must be 0..{MAX_SIZE} bytes, got {size}")
        self.size = size
        for worker in self.workers:
            worker.size = size
        self.changed()
        self.say(f"producers now send messages of {size} bytes")
        return size

    # -- what it reads -------------------------------------------------------------------

    def broker_figures(self) -> dict[str, Any]:
        """Ask the broker now (this thread, short-lived connections) for the target's
        figures: what the panel shows. Never raises: {"error": ...} if it cannot."""
        return read_once(self.current, self.settings, f"{self.prefix}-probe")

    def figure(self, key: str, default: Any = None) -> Any:
        """One broker-side figure read now, e.g. `figure("ready")`; `default` if the
        broker does not answer (for check cells: `bl.wait_for(lambda: p.figure("lag"), 0)`)."""
        return self.broker_figures().get(key, default)

    def counters(self) -> dict[str, int]:
        """Sums over the panel's workers: sent (producers), received and acked
        (consumers), failed (all)."""
        workers = list(self.workers)
        return {
            "sent": sum(w.counters.sent for w in workers if w.role == "producer"),
            "received": sum(w.counters.received for w in workers if w.role == "consumer"),
            "acked": sum(w.counters.acked for w in workers if w.role == "consumer"),
            "failed": sum(w.counters.failed for w in workers),
        }
