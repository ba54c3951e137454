"""Background producers and consumers that never block the notebook.

Each worker is a thread with its own connection, made inside that thread (pika is not
thread-safe), a stop event, counters and a short log. Every blocking call is bounded
(at most ~0.5 s), so `stop()` returns quickly and `stop_all()` always works, also at
interpreter exit. Workers never print: a thread's print lands in whatever cell runs
at the time (ipykernel), so progress lives in counters that cells and widgets read.

`kill()` simulates a crash: the worker stops at once without acknowledging the message
in hand and drops its connection without a clean close, as a killed process would.

Taught in 00.02 (producer runs while the consumer is offline; work split between two).
"""

from __future__ import annotations

import atexit
import collections
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from brokerlab.settings import Settings, get_settings

Handler = Callable[[str], None]


@dataclass
class Counters:
    sent: int = 0
    received: int = 0
    acked: int = 0
    failed: int = 0


@dataclass
class Worker:
    """A thread running `body(worker)`; body loops until `worker.should_stop()`."""

    name: str
    body: Callable[[Worker], None]
    counters: Counters = field(default_factory=Counters)
    messages: list[str] = field(default_factory=list)
    log: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=50))
    error: BaseException | None = None
    crashed: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Worker:
        if self.running:
            return self
        self._stop.clear()
        self.crashed = False
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

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop: finish the message in hand, close the connection cleanly."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if not self.running:
            _REGISTRY.pop(self.name, None)

    def kill(self, timeout: float = 5.0) -> None:
        """Crash: no ack for the message in hand and no clean close of the connection."""
        self.crashed = True
        self.stop(timeout)

    def __repr__(self) -> str:
        state = "running" if self.running else ("crashed" if self.crashed else "stopped")
        c = self.counters
        return (f"<Worker {self.name} {state} sent={c.sent} received={c.received} "
                f"acked={c.acked} failed={c.failed}>")


_REGISTRY: dict[str, Worker] = {}


def running_workers(prefix: str = "") -> list[Worker]:
    return [w for w in list(_REGISTRY.values()) if w.name.startswith(prefix) and w.running]


def stop_all(prefix: str = "", timeout: float = 5.0) -> int:
    """Stop every worker whose name starts with `prefix` (all by default); return how many."""
    workers = [w for w in list(_REGISTRY.values()) if w.name.startswith(prefix)]
    for worker in workers:
        worker._stop.set()
    for worker in workers:
        worker.stop(timeout)
    return len(workers)


atexit.register(stop_all)


def _abort_pika(connection: Any) -> None:
    """Drop a pika connection's socket without the AMQP close handshake (a crash)."""
    try:
        connection._impl._transport._sock.close()  # private, but the honest way to "die"
    except Exception:
        pass


# ---------------------------------------------------------------- RabbitMQ


def rabbitmq_consumer(name: str, queue: str, handler: Handler | None = None, *,
                      prefetch: int = 1, settings: Settings | None = None,
                      work_seconds: float = 0.0) -> Worker:
    """A consumer with manual acks: received → handler → ack (unless killed first)."""
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        from brokerlab.clients import rabbitmq_connection

        connection = rabbitmq_connection(settings)
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)

        def on_message(ch: Any, method: Any, _props: Any, raw: bytes) -> None:
            if w.crashed:
                return  # dying: the message stays unacknowledged
            text = raw.decode()
            w.counters.received += 1
            if work_seconds:
                time.sleep(work_seconds)
            if w.crashed:
                return
            if handler:
                handler(text)
            w.messages.append(text)
            ch.basic_ack(method.delivery_tag)
            w.counters.acked += 1

        channel.basic_consume(queue, on_message)
        w.note(f"consuming from {queue}")
        while not w.should_stop():
            connection.process_data_events(time_limit=0.2)
        if w.crashed:
            _abort_pika(connection)
            w.note("killed")
        else:
            connection.close()
            w.note("stopped")

    return Worker(name, body).start()


def rabbitmq_producer(name: str, queue: str, messages: Iterable[str], *,
                      rate: float = 0.0, persistent: bool = False,
                      settings: Settings | None = None) -> Worker:
    """Publish `messages` to `queue` via the default exchange, `rate` per second (0: flat out)."""
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        import pika

        from brokerlab.clients import rabbitmq_connection

        connection = rabbitmq_connection(settings)
        channel = connection.channel()
        props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
        for text in messages:
            if w.should_stop():
                break
            channel.basic_publish("", queue, text.encode(), props)
            w.counters.sent += 1
            if rate:
                connection.sleep(1.0 / rate)
        connection.close()
        w.note(f"sent {w.counters.sent}")

    return Worker(name, body).start()


# ---------------------------------------------------------------- Redis


def redis_list_consumer(name: str, key: str, handler: Handler | None = None, *,
                        settings: Settings | None = None) -> Worker:
    """Pop from a Redis list with BRPOP (1 s bounded block) until stopped."""
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        from brokerlab.clients import redis_client

        client = redis_client(settings, timeout=5.0)
        try:
            while not w.should_stop():
                item = client.brpop([key], timeout=0.5)
                if item is None:
                    continue
                w.counters.received += 1
                if handler:
                    handler(item[1])
                w.messages.append(item[1])
                w.counters.acked += 1
        finally:
            client.close()

    return Worker(name, body).start()


# ---------------------------------------------------------------- Kafka


def kafka_consumer_worker(name: str, topic: str, group: str, handler: Handler | None = None,
                          *, settings: Settings | None = None, **config: Any) -> Worker:
    """A group member polling `topic` (200 ms bounded polls), committing automatically."""
    settings = settings or get_settings()
    config.setdefault("auto_offset_reset", "earliest")

    def body(w: Worker) -> None:
        from brokerlab.clients import kafka_consumer

        consumer = kafka_consumer(topic, settings=settings, group_id=group, **config)
        try:
            while not w.should_stop():
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        text = record.value.decode() if record.value is not None else ""
                        w.counters.received += 1
                        if handler:
                            handler(text)
                        w.messages.append(text)
                        w.counters.acked += 1
        finally:
            consumer.close(autocommit=not w.crashed)

    return Worker(name, body).start()
