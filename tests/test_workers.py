"""brokerlab.workers: pacing, stop vs kill per broker, and nothing left open.

Tests marked `brokers` use the real brokers (make brokers); the rest run anywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from broker_probes import rabbitmq_connection_names, redis_client_names

import brokerlab as bl
from brokerlab import workers as W

# ---------------------------------------------------------------- no broker needed


def _idle(w: W.Worker) -> None:
    while not w.should_stop():
        w._stop.wait(0.05)


def test_pace_follows_the_rate_and_a_change_applies_at_once() -> None:
    worker = W.Worker("course-test-pace", _idle, rate=20)
    t0, sent = time.monotonic(), 0
    while time.monotonic() - t0 < 0.5:
        assert worker.pace()
        sent += 1
    assert 8 <= sent <= 13, f"20/s for 0.5 s should give about 10, got {sent}"
    worker.rate = 0  # flat out: no waiting at all
    t0 = time.monotonic()
    for _ in range(1000):
        worker.pace()
    assert time.monotonic() - t0 < 0.5


def test_pace_and_work_end_promptly() -> None:
    worker = W.Worker("course-test-prompt", _idle, rate=0.1)  # one message per 10 s
    worker.pace()
    threading.Timer(0.2, worker._stop.set).start()
    t0 = time.monotonic()
    assert worker.pace() is False, "a stop must end the wait for the next message"
    assert time.monotonic() - t0 < 1.0
    worker = W.Worker("course-test-work", _idle, rate=0.1)
    threading.Timer(0.2, lambda: setattr(worker, "crashed", True)).start()
    t0 = time.monotonic()
    assert worker.work() is False, "a kill must end the work without an ack"
    assert time.monotonic() - t0 < 1.0


def test_graceful_stop_lets_the_work_finish() -> None:
    worker = W.Worker("course-test-finish", _idle, rate=5)  # 0.2 s per message
    worker._stop.set()
    assert worker.work() is True


def test_payload_size_and_numbering() -> None:
    worker = W.Worker("course-test-size", _idle, size=100)
    first, second = worker.payload(), worker.payload()
    assert len(first.encode()) == 100 and first.startswith("course-test-size#1 ")
    assert second.startswith("course-test-size#2")
    worker.size = 0
    assert worker.payload() == "course-test-size#3"
    worker.size = 10**9
    assert len(worker.payload()) == W.MAX_SIZE


def test_keep_bounds_the_message_list() -> None:
    worker = W.Worker("course-test-keep", _idle, keep=10)
    for i in range(1000):
        worker.keep_message(str(i))
    assert len(worker.messages) <= 20 and worker.messages[-1] == "999"


def test_states_and_stop_all_by_prefix() -> None:
    a = W.Worker("course-test-a-1", _idle)
    b = W.Worker("course-test-b-1", _idle)
    assert a.state == "new"
    a.start()
    b.start()
    running = [w.name for w in W.running_workers("course-test-")]
    assert a.state == "running" and {a.name, b.name} <= set(running)
    assert W.stop_all("course-test-a-") == 1
    assert a.state == "stopped" and b.running
    b.kill()
    assert b.state == "killed"
    assert not W.running_workers("course-test-")


def test_an_error_in_the_body_is_kept_not_raised() -> None:
    def broken(_w: W.Worker) -> None:
        raise ConnectionRefusedError("nobody home")

    worker = W.Worker("course-test-broken", broken).start()
    worker.stop()
    assert worker.state == "error" and worker.counters.failed == 1
    assert "nobody home" in worker.log[-1]


def test_stop_all_survives_a_worker_that_misbehaves() -> None:
    class Stubborn(W.Worker):
        def stop(self, timeout: float = 5.0) -> None:
            raise RuntimeError("will not stop")

    stubborn = Stubborn("course-test-stubborn", _idle).start()
    try:
        assert W.stop_all("course-test-stubborn") == 1  # no exception
    finally:
        W.Worker.stop(stubborn)


def test_new_worker_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="unknown broker"):
        W.new_worker("mqtt", "queue", "producer", "n", "t")
    with pytest.raises(ValueError, match="no kind"):
        W.new_worker("redis", "queue", "producer", "n", "t")
    with pytest.raises(ValueError, match="needs a group"):
        W.new_worker("kafka", "topic", "consumer", "n", "t")


# ---------------------------------------------------------------- real brokers


@pytest.fixture
def run() -> Iterator[bl.Run]:
    run = bl.Run("99.97")
    yield run
    W.stop_all(run.prefix)
    bl.cleanup(run)


def ready(queue: str) -> int:
    with bl.rabbitmq_channel() as channel:
        return channel.queue_declare(queue, passive=True).method.message_count


@pytest.mark.brokers
def test_rabbitmq_kill_returns_unacked_messages_stop_acks_them(run: bl.Run) -> None:
    queue = run.queue("jobs")
    with bl.rabbitmq_channel() as channel:
        channel.queue_declare(queue)
    producer = W.rabbitmq_producer(run.name("p"), queue, [f"job-{i}" for i in range(20)])
    assert bl.wait_for(lambda: producer.counters.sent, 20, timeout=10) == 20
    victim = W.rabbitmq_consumer(run.name("victim"), queue, prefetch=5, rate=10)
    bl.wait_until(lambda: victim.counters.acked >= 2, timeout=10)
    victim.kill()
    assert victim.state == "killed" and victim.counters.received > victim.counters.acked
    left = 20 - victim.counters.acked
    assert bl.wait_for(lambda: ready(queue), left, timeout=10) == left, (
        "every message the killed consumer held must be back in the queue")
    polite = W.rabbitmq_consumer(run.name("polite"), queue, prefetch=5, rate=20)
    bl.wait_until(lambda: polite.counters.acked >= 2, timeout=10)
    polite.stop()
    assert polite.counters.received == polite.counters.acked, "a graceful stop acks its work"
    assert ready(queue) == left - polite.counters.acked


@pytest.mark.brokers
def test_redis_list_kill_loses_the_item_in_hand(run: bl.Run) -> None:
    key = run.key("list")
    producer = W.redis_list_producer(run.name("p"), key, [f"m{i}" for i in range(10)])
    bl.wait_for(lambda: producer.counters.sent, 10, timeout=5)
    consumer = W.redis_list_consumer(run.name("c"), key, rate=5)
    bl.wait_until(lambda: consumer.counters.received >= 2, timeout=5)
    consumer.kill()
    client = bl.redis_client()
    try:
        length = client.llen(key)
    finally:
        client.close()
    lost = consumer.counters.received - consumer.counters.acked
    assert lost == 1, f"one item was in hand when it was killed: {consumer}"
    assert length + consumer.counters.acked == 10 - lost, "a list has no ack: the item is gone"


@pytest.mark.brokers
def test_redis_stream_kill_leaves_entries_pending_stop_does_not(run: bl.Run) -> None:
    stream, group = run.key("stream"), run.name("group")
    W.redis_stream_producer(run.name("p"), stream, [f"e{i}" for i in range(10)])
    victim = W.redis_stream_consumer(run.name("victim"), stream, group, rate=5)
    bl.wait_until(lambda: victim.counters.received >= 2, timeout=5)
    victim.kill()
    client = bl.redis_client()
    try:
        pending = client.xpending(stream, group)
        assert pending["pending"] >= 1
        assert [c["name"] for c in pending["consumers"]] == [victim.name]
        polite = W.redis_stream_consumer(run.name("polite"), stream, group, rate=20)
        bl.wait_until(lambda: polite.counters.acked >= 3, timeout=5)
        polite.stop()
        names = [c["name"] for c in client.xpending(stream, group)["consumers"]]
        assert polite.name not in names, "a graceful stop XACKs what it finished"
    finally:
        client.close()


@pytest.mark.brokers
def test_redis_pubsub_offline_subscriber_misses_messages(run: bl.Run) -> None:
    channel = run.key("news")
    subscriber = W.redis_subscriber(run.name("s"), channel)
    bl.wait_until(lambda: any("subscribed" in line for line in subscriber.log), timeout=5)
    publisher = W.redis_publisher(run.name("p"), channel, [f"n{i}" for i in range(5)])
    bl.wait_for(lambda: subscriber.counters.received, 5, timeout=5)
    subscriber.stop()
    publisher = W.redis_publisher(run.name("p2"), channel, ["while-away"])
    bl.wait_for(lambda: publisher.counters.sent, 1, timeout=5)
    subscriber.start()
    bl.wait_until(lambda: any("subscribed" in line for line in list(subscriber.log)[-1:]),
                  timeout=5)
    assert subscriber.messages == [f"n{i}" for i in range(5)]
    assert subscriber.counters.acked == 0, "pub/sub has no acknowledgements"


@pytest.mark.brokers
def test_kafka_kill_commits_nothing_and_the_group_reads_again(run: bl.Run) -> None:
    topic, group = run.topic("t"), run.group("g")
    producer = W.kafka_producer_worker(run.name("p"), topic, [f"r{i}" for i in range(30)])
    assert bl.wait_for(lambda: producer.counters.acked, 30, timeout=15) == 30
    victim = W.kafka_group_consumer(run.name("victim"), topic, group, rate=20)
    bl.wait_until(lambda: victim.counters.acked >= 1 and
                  victim.counters.received > victim.counters.acked + 2, timeout=15)
    victim.kill()
    uncommitted = victim.counters.received - victim.counters.acked
    assert uncommitted > 0
    heir = W.kafka_group_consumer(run.name("heir"), topic, group)
    total = bl.wait_for(lambda: victim.counters.acked + heir.counters.acked, 30, timeout=20)
    heir.stop()
    assert total == 30, "the group commits every record once in the end"
    assert heir.counters.received == 30 - victim.counters.acked, (
        "the heir re-reads exactly what the killed member had not committed")


@pytest.mark.brokers
def test_rate_and_size_change_while_running(run: bl.Run) -> None:
    key = run.key("list")
    producer = W.redis_list_producer(run.name("p"), key, rate=10, size=50)
    time.sleep(1.0)
    slow = producer.counters.sent
    producer.rate, producer.size = 100, 500
    time.sleep(1.0)
    fast = producer.counters.sent - slow
    producer.stop()
    assert 5 <= slow <= 15 and fast >= 50, f"10/s then 100/s, got {slow} then {fast}"
    client = bl.redis_client()
    try:
        assert len(client.lindex(key, 0)) == 500
    finally:
        client.close()


@pytest.mark.brokers
def test_workers_name_their_connections_and_leave_none_open(run: bl.Run) -> None:
    queue = run.queue("q")
    with bl.rabbitmq_channel() as channel:
        channel.queue_declare(queue)
    workers = [
        W.rabbitmq_consumer(run.name("rc"), queue),
        W.rabbitmq_producer(run.name("rp"), queue, rate=5),
        W.redis_list_consumer(run.name("lc"), run.key("l")),
        W.redis_subscriber(run.name("sc"), run.key("ch")),
        W.redis_stream_consumer(run.name("xc"), run.key("x"), run.name("g")),
    ]
    assert bl.wait_until(lambda: {run.name("rc"), run.name("rp")} <=
                         set(rabbitmq_connection_names()), timeout=15)
    assert bl.wait_until(lambda: {run.name("lc"), run.name("sc"), run.name("xc")} <=
                         set(redis_client_names()), timeout=5)
    workers[0].kill()
    workers[2].kill()
    assert W.stop_all(run.prefix) >= 3
    assert not [t for t in threading.enumerate() if t.name.startswith(run.prefix)]
    assert bl.wait_until(lambda: not [n for n in rabbitmq_connection_names()
                                      if n.startswith(run.prefix)], timeout=10)
    assert not [n for n in redis_client_names() if n.startswith(run.prefix)]


@pytest.mark.brokers
def test_old_api_still_works(run: bl.Run) -> None:
    """What 00.02 and the broker modules call, unchanged."""
    queue = run.queue("old")
    with bl.rabbitmq_channel() as channel:
        channel.queue_declare(queue)
    seen: list[str] = []
    consumer = W.rabbitmq_consumer(run.name("c"), queue, seen.append, work_seconds=0.01)
    W.rabbitmq_producer(run.name("p"), queue, ["a", "b", "c"])
    assert bl.wait_for(lambda: sorted(seen), ["a", "b", "c"], timeout=10) == ["a", "b", "c"]
    assert consumer.messages == seen and consumer.counters.acked == 3
    consumer.stop()
