"""brokerlab.workers: one Worker (pacing, stop vs kill); brokerlab.panel.workers: the control
panel's bodies (what stop and kill leave per broker, and nothing left open).

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
from brokerlab.panel import workers as PW

# ---------------------------------------------------------------- no broker needed


def _idle(w: W.Worker) -> None:
    while w.sleep(0.05):
        pass


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
    threading.Timer(0.2, worker.request_stop).start()
    t0 = time.monotonic()
    assert worker.pace() is False, "a stop must end the wait for the next message"
    assert time.monotonic() - t0 < 1.0
    worker = W.Worker("course-test-work", _idle, rate=0.1)
    threading.Timer(0.2, lambda: setattr(worker, "crashed", True)).start()
    t0 = time.monotonic()
    assert worker.work() is False, "a kill must end the work without an ack"
    assert time.monotonic() - t0 < 1.0


def test_busy_only_while_working_on_a_message() -> None:
    worker = W.Worker("course-test-busy", _idle, rate=0.1)
    seen: list[bool] = []
    threading.Timer(0.1, lambda: seen.append(worker.busy)).start()
    threading.Timer(0.3, lambda: setattr(worker, "crashed", True)).start()
    assert worker.busy is False
    assert worker.work() is False
    assert seen == [True] and worker.busy is False


def test_graceful_stop_lets_the_work_finish() -> None:
    worker = W.Worker("course-test-finish", _idle, rate=5)  # 0.2 s per message
    worker.request_stop()
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


def test_every_worker_has_a_ledger() -> None:
    worker = W.Worker("course-test-ledger", _idle)
    worker.ledger.ack("m-1")
    assert worker.ledger.acknowledged == ["m-1"] and W.Worker("x", _idle).ledger.acknowledged == []


def test_new_worker_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="unknown broker"):
        PW.new_worker("mqtt", "queue", "producer", "n", "t")
    with pytest.raises(ValueError, match="no kind"):
        PW.new_worker("redis", "queue", "producer", "n", "t")
    with pytest.raises(ValueError, match="needs a group"):
        PW.new_worker("kafka", "topic", "consumer", "n", "t")


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


def worker(run: bl.Run, broker: str, kind: str, role: str, who: str, target: str,
           **options: object) -> W.Worker:
    return PW.new_worker(broker, kind, role, run.name(who), target, start=True,
                        **options)  # type: ignore[arg-type]


@pytest.mark.brokers
def test_rabbitmq_kill_returns_unacked_messages_stop_acks_them(run: bl.Run) -> None:
    queue = run.queue("jobs")
    with bl.rabbitmq_channel() as channel:
        channel.queue_declare(queue, durable=True)
        for i in range(20):
            channel.basic_publish("", queue, f"job-{i}".encode())
    victim = worker(run, "rabbitmq", "queue", "consumer", "victim", queue, prefetch=5, rate=10)
    bl.wait_until(lambda: victim.counters.acked >= 2, timeout=10)
    victim.kill()
    assert victim.state == "killed" and victim.counters.received > victim.counters.acked
    left = 20 - victim.counters.acked
    assert bl.wait_for(lambda: ready(queue), left, timeout=10) == left, (
        "every message the killed consumer held must be back in the queue")
    polite = worker(run, "rabbitmq", "queue", "consumer", "polite", queue, prefetch=5, rate=20)
    bl.wait_until(lambda: polite.counters.acked >= 2, timeout=10)
    polite.stop()
    assert polite.counters.received == polite.counters.acked, "a graceful stop acks its work"
    assert ready(queue) == left - polite.counters.acked


@pytest.mark.brokers
def test_redis_list_kill_loses_the_item_in_hand(run: bl.Run) -> None:
    key = run.key("list")
    client = bl.redis_client()
    try:
        client.lpush(key, *[f"m{i}" for i in range(10)])
        consumer = worker(run, "redis", "list", "consumer", "c", key, rate=5)
        bl.wait_until(lambda: consumer.counters.received >= 2, timeout=5)
        consumer.kill()
        length = client.llen(key)
    finally:
        client.close()
    lost = consumer.counters.received - consumer.counters.acked
    assert lost == 1, f"one item was in hand when it was killed: {consumer}"
    assert length + consumer.counters.acked == 10 - lost, "a list has no ack: the item is gone"


@pytest.mark.brokers
def test_redis_stream_kill_leaves_entries_pending_stop_does_not(run: bl.Run) -> None:
    stream, group = run.key("stream"), run.name("group")
    client = bl.redis_client()
    try:
        for i in range(10):
            client.xadd(stream, {"body": f"e{i}"})
        victim = worker(run, "redis", "stream", "consumer", "victim", stream, group=group,
                        rate=5)
        bl.wait_until(lambda: victim.counters.received >= 2, timeout=5)
        victim.kill()
        pending = client.xpending(stream, group)
        assert pending["pending"] >= 1
        assert [c["name"] for c in pending["consumers"]] == [victim.name]
        polite = worker(run, "redis", "stream", "consumer", "polite", stream, group=group,
                        rate=20)
        bl.wait_until(lambda: polite.counters.acked >= 3, timeout=5)
        polite.stop()
        names = [c["name"] for c in client.xpending(stream, group)["consumers"]]
        assert polite.name not in names, "a graceful stop XACKs what it finished"
    finally:
        client.close()


@pytest.mark.brokers
def test_redis_pubsub_offline_subscriber_misses_messages(run: bl.Run) -> None:
    channel = run.key("news")
    subscriber = worker(run, "redis", "pubsub", "consumer", "s", channel)
    bl.wait_until(lambda: any("subscribed" in line for line in subscriber.log), timeout=5)
    client = bl.redis_client()
    try:
        for i in range(5):
            client.publish(channel, f"n{i}")
        bl.wait_for(lambda: subscriber.counters.received, 5, timeout=5)
        subscriber.stop()
        assert client.publish(channel, "while-away") == 0, "nobody listens now"
    finally:
        client.close()
    assert subscriber.messages == [f"n{i}" for i in range(5)]
    assert subscriber.counters.acked == 0, "pub/sub has no acknowledgements"


@pytest.mark.brokers
def test_kafka_kill_commits_nothing_and_the_group_reads_again(run: bl.Run) -> None:
    topic, group = run.topic("t"), run.group("g")
    producer = bl.kafka_producer()
    for i in range(30):
        producer.send(topic, f"r{i}".encode())
    producer.flush(timeout=15)
    producer.close()
    victim = worker(run, "kafka", "topic", "consumer", "victim", topic, group=group, rate=20)
    bl.wait_until(lambda: victim.counters.acked >= 1 and
                  victim.counters.received > victim.counters.acked + 2, timeout=15)
    victim.kill()
    uncommitted = victim.counters.received - victim.counters.acked
    assert uncommitted > 0
    heir = worker(run, "kafka", "topic", "consumer", "heir", topic, group=group)
    total = bl.wait_for(lambda: victim.counters.acked + heir.counters.acked, 30, timeout=20)
    heir.stop()
    assert total == 30, "the group commits every record once in the end"
    assert heir.counters.received == 30 - victim.counters.acked, (
        "the heir re-reads exactly what the killed member had not committed")


@pytest.mark.brokers
def test_kafka_producer_counts_acks(run: bl.Run) -> None:
    producer = worker(run, "kafka", "topic", "producer", "p", run.topic("acks"), rate=50)
    assert bl.wait_until(lambda: producer.counters.acked >= 10, timeout=15)
    producer.stop()
    assert bl.wait_for(lambda: producer.counters.acked, producer.counters.sent, timeout=5) \
        == producer.counters.sent, "a graceful stop flushes: every record sent is acked"


@pytest.mark.brokers
def test_rate_and_size_change_while_running(run: bl.Run) -> None:
    key = run.key("list")
    producer = worker(run, "redis", "list", "producer", "p", key, rate=10, size=50)
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
        channel.queue_declare(queue, durable=True)
    workers = [
        worker(run, "rabbitmq", "queue", "consumer", "rc", queue),
        worker(run, "rabbitmq", "queue", "producer", "rp", queue, rate=5),
        worker(run, "redis", "list", "consumer", "lc", run.key("l")),
        worker(run, "redis", "pubsub", "consumer", "sc", run.key("ch")),
        worker(run, "redis", "stream", "consumer", "xc", run.key("x"), group=run.name("g")),
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


def test_wait_returns_whether_the_body_finished_by_itself() -> None:
    done = W.Worker("test-wait-done", lambda w: None).start()
    assert done.wait(timeout=5) is True and not done.running
    endless = W.Worker("test-wait-endless", lambda w: w.sleep(30)).start()
    assert endless.wait(timeout=0.2) is False   # it did not finish: wait stopped it
    assert not endless.running
