"""The control panel's workers (00.03 and the lessons that show a panel): one producer and
one consumer per kind of target, made by `new_worker`, each a `brokerlab.workers.Worker`.
Lessons write their own loops. What `kill()` leaves behind, per consumer kind:

| kind                           | kill() leaves                                           |
|--------------------------------|---------------------------------------------------------|
| RabbitMQ queue                 | its unacked messages go back to the queue (redelivered) |
| Redis list (BRPOP)             | the popped message is lost: a list has no acks          |
| Redis stream (consumer group)  | its entries stay in the group's pending list (XPENDING) |
| Redis pub/sub                  | nothing: pub/sub keeps nothing for the offline client   |
| Kafka topic (consumer group)   | no commit: the group re-reads from the last commit      |

Connections carry the worker's name (RabbitMQ `connection_name`, Redis `CLIENT SETNAME`,
Kafka `client_id`), so tests can prove that nothing is left open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from brokerlab.checks import wait_until
from brokerlab.settings import Settings, get_settings
from brokerlab.workers import Worker

POLL_SECONDS = 0.2    # every blocking call of a panel worker returns at least this often


# ---------------------------------------------------------------- connections


def abort_pika(connection: Any) -> None:
    """Drop a pika connection's socket without the AMQP close handshake: a crash, as the
    broker sees a killed process (it requeues the unacked messages at once)."""
    try:
        connection._impl._transport._sock.close()  # pika has no public "die" call
    except Exception:
        pass


def rabbitmq_connect(name: str, settings: Settings | None = None) -> Any:
    """A BlockingConnection that shows up as `name` in the management UI."""
    import pika

    from brokerlab.clients import rabbitmq_parameters

    params = rabbitmq_parameters(settings or get_settings())
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def redis_connect(name: str, settings: Settings | None = None, timeout: float = 5.0) -> Any:
    """A Redis client whose connections are named `name` (CLIENT LIST shows it).

    Its socket timeout (5 s) only catches a dead server: the panel's blocking commands
    block for at most POLL_SECONDS, well inside it.
    """
    from brokerlab.clients import redis_client

    client = redis_client(settings or get_settings(), timeout=timeout)
    client.connection_pool.connection_kwargs["client_name"] = name
    return client


def _close_pika(w: Worker, connection: Any) -> None:
    if w.crashed:
        abort_pika(connection)
    else:
        try:
            if connection.is_open:
                connection.close()
        except Exception:  # the broker went away meanwhile: nothing left to close
            pass
    w.note("killed" if w.crashed else "stopped")


def _close_redis(w: Worker, client: Any) -> None:
    # A crash and a clean exit look the same to Redis (the socket closes); what differs
    # is what the worker acknowledged before, which the loops decide.
    try:
        client.close()
        client.connection_pool.disconnect()
    except Exception:
        pass
    w.note("killed" if w.crashed else "stopped")


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


def _generated(w: Worker, sleep: Callable[[float], Any] | None = None) -> Iterator[str]:
    """A generated message each time one is due at `w.rate`, until told to stop."""
    while w.pace(sleep):
        yield w.payload()


def _handled(w: Worker, text: str) -> bool:
    """Count a received message and work on it; False if killed meanwhile (no ack)."""
    w.counters.received += 1
    if not w.work():
        return False
    w.keep_message(text)
    return True


# ---------------------------------------------------------------- the panel's bodies


def _rabbitmq_producer(w: Worker, queue: str, _group: str, _prefetch: int,
                       settings: Settings) -> None:
    import pika

    connection = rabbitmq_connect(w.name, settings)
    try:
        channel = connection.channel()
        props = pika.BasicProperties(delivery_mode=1)
        answered = time.monotonic()
        for text in _generated(w, connection.sleep):
            channel.basic_publish("", queue, text.encode(), props)
            w.counters.sent += 1
            if time.monotonic() - answered > 1.0:  # answer heartbeats when flat out
                connection.process_data_events(time_limit=0)
                answered = time.monotonic()
    finally:
        _close_pika(w, connection)


def _rabbitmq_consumer(w: Worker, queue: str, _group: str, prefetch: int,
                       settings: Settings) -> None:
    connection = rabbitmq_connect(w.name, settings)
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)

        def on_message(ch: Any, method: Any, _props: Any, raw: bytes) -> None:
            if w.crashed or not _handled(w, raw.decode(errors="replace")):
                return  # killed: the message stays unacknowledged
            ch.basic_ack(method.delivery_tag)
            w.counters.acked += 1

        channel.basic_consume(queue, on_message)
        while not w.should_stop():
            connection.process_data_events(time_limit=POLL_SECONDS)
    finally:
        _close_pika(w, connection)


def _redis_produce(w: Worker, settings: Settings, send: Callable[[Any, str], Any]) -> int:
    """Send each generated message with `send(client, text)`; the number of sends that
    returned 0 (for PUBLISH: nobody listened). The one loop of the Redis producers."""
    client = redis_connect(w.name, settings)
    zeros = 0
    try:
        for text in _generated(w):
            zeros += send(client, text) == 0
            w.counters.sent += 1
    finally:
        _close_redis(w, client)
    return zeros


def _redis_list_producer(w: Worker, key: str, _group: str, _prefetch: int,
                         settings: Settings) -> None:
    # LPUSH here, BRPOP there: first in, first out
    _redis_produce(w, settings, lambda client, text: client.lpush(key, text))


def _redis_list_consumer(w: Worker, key: str, _group: str, _prefetch: int,
                         settings: Settings) -> None:
    client = redis_connect(w.name, settings)
    try:
        while not w.should_stop():
            item = client.brpop([key], timeout=POLL_SECONDS)
            if item is not None and _handled(w, item[1]):
                w.counters.acked += 1  # "done": a list has no acks, a killed pop is lost
            elif item is not None:
                return
    finally:
        _close_redis(w, client)


def _redis_publisher(w: Worker, channel: str, _group: str, _prefetch: int,
                     settings: Settings) -> None:
    unheard = _redis_produce(w, settings, lambda client, text: client.publish(channel, text))
    w.note(f"{unheard} of {w.counters.sent} reached no subscriber")


def _redis_subscriber(w: Worker, channel: str, _group: str, _prefetch: int,
                      settings: Settings) -> None:
    client = redis_connect(w.name, settings)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(channel)
        w.note(f"subscribed to {channel}")
        while not w.should_stop():
            message = pubsub.get_message(timeout=POLL_SECONDS)
            if message and message["type"] == "message" and not _handled(w, message["data"]):
                return  # pub/sub has no acks: `acked` stays 0
    finally:
        try:
            pubsub.close()
        except Exception:
            pass
        _close_redis(w, client)


def _redis_stream_producer(w: Worker, stream: str, _group: str, _prefetch: int,
                           settings: Settings) -> None:
    _redis_produce(w, settings, lambda client, text: client.xadd(
        stream, {"body": text}, maxlen=100_000, approximate=True))


def _redis_stream_consumer(w: Worker, stream: str, group: str, _prefetch: int,
                           settings: Settings) -> None:
    client = redis_connect(w.name, settings)
    try:
        ensure_stream_group(client, stream, group)
        while not w.should_stop():
            count = 1 if w.rate > 0 else 50
            reply = client.xreadgroup(group, w.name, {stream: ">"}, count=count,
                                      block=int(POLL_SECONDS * 1000))
            done: list[str] = []
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    if not _handled(w, fields.get("body", "")):
                        return  # killed: no XACK, the entries stay pending
                    done.append(entry_id)
            if done:
                client.xack(stream, group, *done)
                w.counters.acked += len(done)
    finally:
        _close_redis(w, client)


def _kafka_producer(w: Worker, topic: str, _group: str, _prefetch: int,
                    settings: Settings) -> None:
    from brokerlab.clients import kafka_producer

    producer = kafka_producer(settings, client_id=w.name, linger_ms=5,
                              max_block_ms=int(POLL_SECONDS * 2500))

    def acked(_meta: Any) -> None:
        w.counters.acked += 1

    def failed(_exc: BaseException) -> None:
        w.counters.failed += 1

    try:
        for text in _generated(w):
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
        if not w.crashed:
            producer.flush(timeout=2)
        producer.close(timeout=0 if w.crashed else 2)  # killed: the buffer is dropped
        w.note("killed" if w.crashed else "stopped")


def _knows(consumer: Any, topic: str) -> bool:
    try:
        return topic in consumer.topics()
    except Exception:  # no metadata yet: ask again
        return False


def _kafka_consumer(w: Worker, topic: str, group: str, _prefetch: int,
                    settings: Settings) -> None:
    """Commits by hand, after the records it finished: `acked` counts committed records.
    (A real crash would hold its partitions until the session timeout; here a killed
    member leaves at once, so lessons stay short.)"""
    from kafka.structs import OffsetAndMetadata, TopicPartition

    from brokerlab.clients import kafka_consumer

    consumer = kafka_consumer(topic, settings=settings, group_id=group, client_id=w.name,
                              auto_offset_reset="earliest", enable_auto_commit=False,
                              session_timeout_ms=10_000, heartbeat_interval_ms=1_000)
    # Know the topic before the first poll joins the group: otherwise kafka-python 3.0.12
    # may join twice and, if a poll times out during the second join, silently drop the
    # assignment (the member then reads nothing, ever).
    wait_until(lambda: _knows(consumer, topic), timeout=10)
    try:
        while not w.should_stop():
            most = max(1, int(w.rate)) if w.rate > 0 else 500
            batches = consumer.poll(timeout_ms=int(POLL_SECONDS * 1000), max_records=most)
            finished: dict[Any, Any] = {}
            done = 0
            for tp, records in batches.items():
                for record in records:
                    if w.should_stop():
                        break  # graceful: commit what is finished, leave the rest
                    if not _handled(w, record.value.decode(errors="replace")
                                    if record.value else ""):
                        return  # killed: nothing of this batch is committed
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


Body = Callable[[Worker, str, str, int, Settings], None]

# (broker, kind) -> (producer body, consumer body); the kinds a panel offers
BODIES: dict[tuple[str, str], tuple[Body, Body]] = {
    ("rabbitmq", "queue"): (_rabbitmq_producer, _rabbitmq_consumer),
    ("redis", "stream"): (_redis_stream_producer, _redis_stream_consumer),
    ("redis", "list"): (_redis_list_producer, _redis_list_consumer),
    ("redis", "pubsub"): (_redis_publisher, _redis_subscriber),
    ("kafka", "topic"): (_kafka_producer, _kafka_consumer),
}
KINDS: dict[str, tuple[str, ...]] = {
    "rabbitmq": ("queue",), "redis": ("stream", "list", "pubsub"), "kafka": ("topic",)}


def new_worker(broker: str, kind: str, role: str, name: str, target: str, *,
               group: str | None = None, rate: float = 0.0, size: int = 0,
               prefetch: int = 10, keep: int | None = 100,
               settings: Settings | None = None, start: bool = False) -> Worker:
    """A producer or consumer for `broker`/`kind` on `target`, not started by default.

    kind: rabbitmq "queue"; redis "stream" (needs `group`), "list" or "pubsub";
    kafka "topic" (needs `group`). Producers send generated messages (`size` bytes) at
    `rate` per second; consumers handle `rate` per second (0: as fast as they can).
    The control panel's workers (00.03); lessons write their own loops.
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
    settings = settings or get_settings()
    make = BODIES[broker, kind][role == "consumer"]

    def body(w: Worker) -> None:
        make(w, target, group or "", prefetch, settings)

    worker = Worker(name, body, rate=rate, size=size, broker=broker, role=role,
                    target=target, keep=keep)
    return worker.start() if start else worker
