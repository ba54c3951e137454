"""Background producers and consumers that never block the notebook.

Each worker is a thread with its own connection, made inside that thread (pika is not
thread-safe), a stop event, counters and a short log. Every blocking call is bounded
(at most ~0.5 s), so `stop()` returns quickly and `stop_all()` always works, also at
interpreter exit. Workers never print: a thread's print lands in whatever cell runs
at the time (ipykernel), so progress lives in counters that cells and widgets read.

`rate` (messages per second, 0 = flat out) and `size` (bytes per generated message) are
plain attributes that the loop reads before every message, so a slider can change them
while the worker runs. A producer waits 1/rate between messages; a consumer spends
1/rate "working" on each message before it acknowledges it.

`stop()` is graceful: the message in hand is finished and acknowledged, the connection
closed cleanly. `kill()` simulates a crash: the worker stops at once without
acknowledging what it holds and drops its connection without a clean close, as a killed
process would. What that means per broker:

| worker                          | kill() leaves                                         |
|---------------------------------|-------------------------------------------------------|
| RabbitMQ consumer               | its unacked messages go back to the queue (redelivered) |
| Redis list consumer (BRPOP)     | the popped message is lost: a list has no acks        |
| Redis stream consumer (group)   | its entries stay in the group's pending list (XPENDING) |
| Redis subscriber                | nothing: pub/sub keeps nothing for the offline client |
| Kafka group consumer            | no commit: the group re-reads from the last commit    |
| producers                       | the connection dropped; a Kafka producer's unsent buffer lost |

Busy threads can starve the notebook's own thread: with Python's default 5 ms switch
interval, ten workers flat out (and kafka-python's pure-Python I/O threads) kept a
trivial cell waiting ~1 s for the GIL. Starting a worker therefore lowers the
interpreter's switch interval to 0.5 ms (never raises it): the notebook stays
responsive at the price of some flat-out throughput.

Connections carry the worker's name (RabbitMQ `connection_name`, Redis `CLIENT SETNAME`,
Kafka `client_id`), so tests can prove that nothing is left open.

Taught in 00.02 (producer runs while the consumer is offline; work split between two)
and 00.03 (control panels: every broker, start/stop/kill, rates).
"""

from __future__ import annotations

import atexit
import collections
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from brokerlab.settings import Settings, get_settings

Handler = Callable[[str], None]

POLL_SECONDS = 0.2    # every blocking call of a worker returns at least this often
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
    error: BaseException | None = None
    crashed: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    rate: float = 0.0
    size: int = 0
    broker: str = ""
    role: str = ""
    target: str = ""
    keep: int | None = None  # keep at most about this many bodies in `messages` (None: all)
    seq: int = 0             # number of the last generated message (continues on restart)
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

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop: finish the message in hand, close the connection cleanly."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self.running:
            _REGISTRY.pop(self.name, None)

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
        while not self.crashed:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(0.02, left))
        return False

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
        worker._stop.set()
    deadline = time.monotonic() + timeout
    for worker in workers:
        try:
            worker.stop(max(0.1, deadline - time.monotonic()))
        except Exception:  # stopping must always work, whatever one worker does
            pass
    return len(workers)


atexit.register(stop_all)


def _outgoing(w: Worker, messages: Iterable[str] | None,
              sleep: Callable[[float], Any] | None = None) -> Iterator[str]:
    """Each message when it is due at `w.rate`, until the worker is told to stop.

    The given messages, or (None) generated ones without end: `w.payload()`.
    """
    source = None if messages is None else iter(messages)
    while w.pace(sleep):
        if source is None:
            yield w.payload()
            continue
        text = next(source, None)
        if text is None:
            return
        yield text


def _made(worker: Worker, start: bool) -> Worker:
    return worker.start() if start else worker


def _abort_pika(connection: Any) -> None:
    """Drop a pika connection's socket without the AMQP close handshake (a crash)."""
    try:
        connection._impl._transport._sock.close()  # private, but the honest way to "die"
    except Exception:
        pass


def _rabbitmq_connect(settings: Settings, name: str) -> Any:
    """A BlockingConnection that shows up as `name` in the management UI."""
    import pika

    from brokerlab.clients import rabbitmq_parameters

    params = rabbitmq_parameters(settings)
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def _close_pika(w: Worker, connection: Any) -> None:
    if w.crashed:
        _abort_pika(connection)
        w.note("killed")
    else:
        try:
            if connection.is_open:
                connection.close()
        except Exception:  # the broker went away meanwhile: nothing left to close
            pass
        w.note("stopped")


def _redis_connect(settings: Settings, name: str, timeout: float = 5.0) -> Any:
    """A Redis client whose connections are named `name` (CLIENT LIST shows it).

    Its socket timeout (5 s) only catches a dead server: our blocking commands block
    for at most POLL_SECONDS, well inside it.
    """
    from brokerlab.clients import redis_client

    client = redis_client(settings, timeout=timeout)
    client.connection_pool.connection_kwargs["client_name"] = name
    return client


def _close_redis(w: Worker, client: Any) -> None:
    # A crash and a clean exit look the same to Redis (the socket closes); what differs
    # is what the worker acknowledged before, which the loops decide.
    try:
        client.close()
        client.connection_pool.disconnect()
    except Exception:
        pass
    w.note("killed" if w.crashed else "stopped")


# ---------------------------------------------------------------- RabbitMQ


def rabbitmq_consumer(name: str, queue: str, handler: Handler | None = None, *,
                      prefetch: int = 1, settings: Settings | None = None,
                      work_seconds: float = 0.0, rate: float = 0.0, keep: int | None = None,
                      start: bool = True) -> Worker:
    """A consumer with manual acks: received → work → handler → ack (unless killed first)."""
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        connection = _rabbitmq_connect(settings, w.name)
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=prefetch)

            def on_message(ch: Any, method: Any, _props: Any, raw: bytes) -> None:
                if w.crashed:
                    return  # dying: the message stays unacknowledged
                text = raw.decode(errors="replace")
                w.counters.received += 1
                if not w.work(work_seconds):
                    return  # killed mid-message: no ack
                if handler:
                    handler(text)
                w.keep_message(text)
                ch.basic_ack(method.delivery_tag)
                w.counters.acked += 1

            channel.basic_consume(queue, on_message)
            w.note(f"consuming from {queue}")
            while not w.should_stop():
                connection.process_data_events(time_limit=POLL_SECONDS)
        finally:
            _close_pika(w, connection)

    worker = Worker(name, body, rate=rate, broker="rabbitmq", role="consumer", target=queue,
                    keep=keep)
    return _made(worker, start)


def rabbitmq_producer(name: str, queue: str, messages: Iterable[str] | None = None, *,
                      rate: float = 0.0, persistent: bool = False,
                      settings: Settings | None = None, size: int = 0,
                      confirm: bool = False, start: bool = True) -> Worker:
    """Publish `messages` to `queue` via the default exchange, `rate` per second (0: flat out).

    `messages=None` publishes generated messages (`size` bytes each) until stopped.
    `confirm=True` waits for the broker's publisher confirm of each message (`acked`).
    """
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        import pika

        connection = _rabbitmq_connect(settings, w.name)
        try:
            channel = connection.channel()
            if confirm:
                channel.confirm_delivery()
            props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
            idle_since = time.monotonic()
            for text in _outgoing(w, messages, connection.sleep):
                channel.basic_publish("", queue, text.encode(), props)
                w.counters.sent += 1
                if confirm:
                    w.counters.acked += 1
                if time.monotonic() - idle_since > 1.0:  # answer heartbeats when flat out
                    connection.process_data_events(time_limit=0)
                    idle_since = time.monotonic()
            w.note(f"sent {w.counters.sent}")
        finally:
            _close_pika(w, connection)

    worker = Worker(name, body, rate=rate, size=size, broker="rabbitmq", role="producer",
                    target=queue)
    return _made(worker, start)


# ---------------------------------------------------------------- Redis


def redis_list_consumer(name: str, key: str, handler: Handler | None = None, *,
                        settings: Settings | None = None, rate: float = 0.0,
                        work_seconds: float = 0.0, keep: int | None = None,
                        start: bool = True) -> Worker:
    """Pop from a Redis list with BRPOP (0.2 s bounded block) until stopped.

    A list has no acknowledgements: a message popped by a worker that is killed while
    working on it is gone (`received` counts it, `acked` does not).
    """
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        client = _redis_connect(settings, w.name)
        try:
            while not w.should_stop():
                item = client.brpop([key], timeout=POLL_SECONDS)
                if item is None:
                    continue
                w.counters.received += 1
                if not w.work(work_seconds):
                    return  # killed: the popped item is lost
                if handler:
                    handler(item[1])
                w.keep_message(item[1])
                w.counters.acked += 1
        finally:
            _close_redis(w, client)

    worker = Worker(name, body, rate=rate, broker="redis", role="consumer", target=key,
                    keep=keep)
    return _made(worker, start)


def redis_list_producer(name: str, key: str, messages: Iterable[str] | None = None, *,
                        rate: float = 0.0, size: int = 0, settings: Settings | None = None,
                        start: bool = True) -> Worker:
    """LPUSH `messages` (None: generated ones) onto the list `key`; BRPOP takes the oldest."""
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        client = _redis_connect(settings, w.name)
        try:
            for text in _outgoing(w, messages):
                client.lpush(key, text)
                w.counters.sent += 1
        finally:
            _close_redis(w, client)

    worker = Worker(name, body, rate=rate, size=size, broker="redis", role="producer",
                    target=key)
    return _made(worker, start)


def redis_publisher(name: str, channel: str, messages: Iterable[str] | None = None, *,
                    rate: float = 0.0, size: int = 0, settings: Settings | None = None,
                    start: bool = True) -> Worker:
    """PUBLISH to `channel`. Redis keeps nothing: with no subscriber a message is gone.

    `failed` stays 0; the log notes how many messages reached nobody.
    """
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        client = _redis_connect(settings, w.name)
        unheard = 0
        try:
            for text in _outgoing(w, messages):
                if client.publish(channel, text) == 0:
                    unheard += 1
                w.counters.sent += 1
        finally:
            w.note(f"{unheard} of {w.counters.sent} reached no subscriber")
            _close_redis(w, client)

    worker = Worker(name, body, rate=rate, size=size, broker="redis", role="producer",
                    target=channel)
    return _made(worker, start)


def redis_subscriber(name: str, channel: str, handler: Handler | None = None, *,
                     rate: float = 0.0, settings: Settings | None = None,
                     keep: int | None = None, start: bool = True) -> Worker:
    """SUBSCRIBE to `channel`, reading with get_message(timeout=0.2), never listen().

    Pub/sub has no acknowledgements: `acked` stays 0. Stopped or killed, the subscriber
    is offline and misses everything published meanwhile.
    """
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        client = _redis_connect(settings, w.name)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel)
            w.note(f"subscribed to {channel}")
            while not w.should_stop():
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is None or message["type"] != "message":
                    continue
                w.counters.received += 1
                if not w.work():
                    return
                if handler:
                    handler(message["data"])
                w.keep_message(message["data"])
        finally:
            try:
                pubsub.close()
            except Exception:
                pass
            _close_redis(w, client)

    worker = Worker(name, body, rate=rate, broker="redis", role="consumer", target=channel,
                    keep=keep)
    return _made(worker, start)


def ensure_stream_group(client: Any, stream: str, group: str) -> bool:
    """XGROUP CREATE `group` on `stream` from its first entry (MKSTREAM); False if it exists."""
    import redis

    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
        return True
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


def redis_stream_producer(name: str, stream: str, messages: Iterable[str] | None = None, *,
                          rate: float = 0.0, size: int = 0, maxlen: int | None = 100_000,
                          settings: Settings | None = None, start: bool = True) -> Worker:
    """XADD `{"body": message}` to `stream` (trimmed to about `maxlen` entries)."""
    settings = settings or get_settings()

    def body(w: Worker) -> None:
        client = _redis_connect(settings, w.name)
        try:
            for text in _outgoing(w, messages):
                client.xadd(stream, {"body": text}, maxlen=maxlen, approximate=True)
                w.counters.sent += 1
        finally:
            _close_redis(w, client)

    worker = Worker(name, body, rate=rate, size=size, broker="redis", role="producer",
                    target=stream)
    return _made(worker, start)


def redis_stream_consumer(name: str, stream: str, group: str, handler: Handler | None = None,
                          *, consumer: str | None = None, rate: float = 0.0,
                          work_seconds: float = 0.0, settings: Settings | None = None,
                          keep: int | None = None, start: bool = True) -> Worker:
    """A member of the consumer group `group`: XREADGROUP '>', work, then XACK.

    Creates the group if needed (from the stream's first entry). Reads one entry at a
    time when a rate is set, up to 50 when flat out, and acknowledges what it finished.
    `kill()` leaves every entry in hand pending (XPENDING shows them under `consumer`,
    which defaults to the worker's name).
    """
    settings = settings or get_settings()
    block_ms = int(POLL_SECONDS * 1000)

    def body(w: Worker) -> None:
        client = _redis_connect(settings, w.name)
        me = consumer or w.name
        try:
            ensure_stream_group(client, stream, group)
            w.note(f"reading {stream} in group {group} as {me}")
            while not w.should_stop():
                count = 1 if (w.rate > 0 or work_seconds > 0) else 50
                reply = client.xreadgroup(group, me, {stream: ">"}, count=count,
                                          block=block_ms)
                done: list[str] = []
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        w.counters.received += 1
                        if not w.work(work_seconds):
                            return  # killed: no XACK, the entries stay pending
                        text = fields.get("body", "")
                        if handler:
                            handler(text)
                        w.keep_message(text)
                        done.append(entry_id)
                if done:
                    client.xack(stream, group, *done)
                    w.counters.acked += len(done)
        finally:
            _close_redis(w, client)

    worker = Worker(name, body, rate=rate, broker="redis", role="consumer", target=stream,
                    keep=keep)
    return _made(worker, start)


# ---------------------------------------------------------------- Kafka


def _wait_for_topic_metadata(consumer: Any, topic: str, timeout: float = 10.0) -> None:
    """Know the topic before the first poll joins the group (bounded).

    Otherwise kafka-python 3.0.12 may join before its metadata is filled in, rebalance
    again when it is, and, if a poll() times out during that second join, silently drop
    the assignment: the member then reads nothing, ever (found while writing 03.02).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if topic in consumer.topics():
                return
        except Exception:
            pass
        time.sleep(0.1)


def kafka_consumer_worker(name: str, topic: str, group: str, handler: Handler | None = None,
                          *, settings: Settings | None = None, **config: Any) -> Worker:
    """A group member polling `topic` (200 ms bounded polls), committing automatically."""
    settings = settings or get_settings()
    config.setdefault("auto_offset_reset", "earliest")

    def body(w: Worker) -> None:
        from brokerlab.clients import kafka_consumer

        consumer = kafka_consumer(topic, settings=settings, group_id=group, **config)
        _wait_for_topic_metadata(consumer, topic)
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

    return Worker(name, body, broker="kafka", role="consumer", target=topic).start()


def kafka_group_consumer(name: str, topic: str, group: str, handler: Handler | None = None,
                         *, rate: float = 0.0, work_seconds: float = 0.0,
                         settings: Settings | None = None, keep: int | None = None,
                         start: bool = True, **config: Any) -> Worker:
    """A group member that commits by hand, after the records it finished.

    `received` counts records taken in hand, `acked` records whose offsets are
    committed. A graceful stop commits what was finished and leaves the group; `kill()`
    commits nothing, so the group re-reads from the last commit (at-least-once).
    (A real crash would also hold its partitions until `session_timeout_ms`; here the
    member leaves at once, so lessons stay short.)
    """
    settings = settings or get_settings()
    config.setdefault("auto_offset_reset", "earliest")
    config.setdefault("session_timeout_ms", 10_000)
    config.setdefault("heartbeat_interval_ms", 1_000)
    config["enable_auto_commit"] = False

    def body(w: Worker) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        from brokerlab.clients import kafka_consumer

        consumer = kafka_consumer(topic, settings=settings, group_id=group,
                                  client_id=w.name, **config)
        _wait_for_topic_metadata(consumer, topic)
        try:
            w.note(f"reading {topic} in group {group}")
            while not w.should_stop():
                most = max(1, int(w.rate)) if (w.rate > 0 or work_seconds > 0) else 500
                batches = consumer.poll(timeout_ms=int(POLL_SECONDS * 1000), max_records=most)
                finished: dict[Any, Any] = {}
                done = 0
                for tp, records in batches.items():
                    for record in records:
                        if w.should_stop():
                            break  # graceful: commit what is finished, leave the rest
                        w.counters.received += 1
                        if not w.work(work_seconds):
                            return  # killed: nothing of this batch is committed
                        text = record.value.decode(errors="replace") if record.value else ""
                        if handler:
                            handler(text)
                        w.keep_message(text)
                        finished[TopicPartition(tp.topic, tp.partition)] = \
                            OffsetAndMetadata(record.offset + 1, "", -1)
                        done += 1
                if finished and not w.crashed:
                    try:
                        consumer.commit(offsets=finished, timeout_ms=int(POLL_SECONDS * 2500))
                        w.counters.acked += done
                    except Exception as exc:  # e.g. a rebalance: the records come again
                        w.counters.failed += 1
                        w.note(f"commit failed: {type(exc).__name__}")
        finally:
            consumer.close(autocommit=False, timeout_ms=0 if w.crashed else 2000)
            w.note("killed" if w.crashed else "stopped")

    worker = Worker(name, body, rate=rate, broker="kafka", role="consumer", target=topic,
                    keep=keep)
    return _made(worker, start)


def kafka_producer_worker(name: str, topic: str, messages: Iterable[str] | None = None, *,
                          rate: float = 0.0, size: int = 0, settings: Settings | None = None,
                          start: bool = True, **config: Any) -> Worker:
    """Send `messages` (None: generated ones) to `topic`, keyed by message number.

    `sent` counts records handed to the client, `acked` those the broker confirmed,
    `failed` those it refused or that timed out. A graceful stop flushes (bounded);
    `kill()` drops what is still buffered.
    """
    settings = settings or get_settings()
    config.setdefault("max_block_ms", int(POLL_SECONDS * 2500))
    config.setdefault("linger_ms", 5)

    def body(w: Worker) -> None:
        from brokerlab.clients import kafka_producer

        producer = kafka_producer(settings, client_id=w.name, **config)

        def acked(_meta: Any) -> None:
            w.counters.acked += 1

        def failed(_exc: BaseException) -> None:
            w.counters.failed += 1

        try:
            for text in _outgoing(w, messages):
                try:
                    future = producer.send(topic, text.encode(), key=str(w.seq).encode())
                except Exception as exc:  # buffer full or no metadata within max_block_ms
                    w.counters.failed += 1
                    w.note(f"send failed: {type(exc).__name__}")
                    continue
                w.counters.sent += 1
                future.add_callback(acked)
                future.add_errback(failed)
        finally:
            if w.crashed:
                producer.close(timeout=0)
                w.note("killed")
            else:
                producer.flush(timeout=2)
                producer.close(timeout=2)
                w.note("stopped")

    worker = Worker(name, body, rate=rate, size=size, broker="kafka", role="producer",
                    target=topic)
    return _made(worker, start)


# ---------------------------------------------------------------- one door for the panel

KINDS: dict[str, tuple[str, ...]] = {
    "rabbitmq": ("queue",),
    "redis": ("stream", "list", "pubsub"),
    "kafka": ("topic",),
}


def new_worker(broker: str, kind: str, role: str, name: str, target: str, *,
               group: str | None = None, rate: float = 0.0, size: int = 0,
               prefetch: int = 10, keep: int | None = 100,
               settings: Settings | None = None, start: bool = False) -> Worker:
    """A producer or consumer for `broker`/`kind` on `target`, not started by default.

    kind: rabbitmq "queue"; redis "stream" (needs `group`), "list" or "pubsub";
    kafka "topic" (needs `group`). Used by the control panel; lessons call the
    specific functions above.
    """
    if broker not in KINDS:
        raise ValueError(f"unknown broker {broker!r}; expected one of {', '.join(KINDS)}")
    if kind not in KINDS[broker]:
        raise ValueError(f"{broker} has no kind {kind!r}; expected one of "
                         f"{', '.join(KINDS[broker])}")
    if role not in ("producer", "consumer"):
        raise ValueError(f"role must be 'producer' or 'consumer', got {role!r}")
    if kind in ("stream", "topic") and role == "consumer" and not group:
        raise ValueError(f"a {broker} {kind} consumer needs a group")
    common: dict[str, Any] = {"rate": rate, "settings": settings, "start": start}
    if role == "producer":
        makers: dict[str, Callable[..., Worker]] = {
            "queue": rabbitmq_producer, "list": redis_list_producer,
            "pubsub": redis_publisher, "stream": redis_stream_producer,
            "topic": kafka_producer_worker,
        }
        return makers[kind](name, target, None, size=size, **common)
    common["keep"] = keep
    if kind == "queue":
        return rabbitmq_consumer(name, target, prefetch=prefetch, **common)
    if kind == "list":
        return redis_list_consumer(name, target, **common)
    if kind == "pubsub":
        return redis_subscriber(name, target, **common)
    if kind == "stream":
        return redis_stream_consumer(name, target, str(group), **common)
    return kafka_group_consumer(name, target, str(group), **common)
