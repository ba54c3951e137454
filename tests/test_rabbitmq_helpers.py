"""Tests for the pure parts of brokerlab.rabbitmq (no broker needed)."""

from __future__ import annotations

import pytest

from brokerlab import rabbitmq as rmq

# ---------------------------------------------------------------- topic_matches (01.04)

# The official tutorial 5 examples: Q1 is bound with "*.orange.*",
# Q2 with "*.*.rabbit" and "lazy.#".
TUTORIAL = {
    "quick.orange.rabbit": {"Q1", "Q2"},
    "lazy.orange.elephant": {"Q1", "Q2"},
    "quick.orange.fox": {"Q1"},
    "lazy.brown.fox": {"Q2"},
    "lazy.pink.rabbit": {"Q2"},
    "quick.brown.fox": set(),
    "orange": set(),
    "quick.orange.new.rabbit": set(),
    "lazy.orange.new.rabbit": {"Q2"},
}
BINDINGS = {"Q1": ["*.orange.*"], "Q2": ["*.*.rabbit", "lazy.#"]}


@pytest.mark.parametrize("key", sorted(TUTORIAL))
def test_topic_matches_tutorial_examples(key: str) -> None:
    got = {q for q, patterns in BINDINGS.items()
           if any(rmq.topic_matches(p, key) for p in patterns)}
    assert got == TUTORIAL[key]


@pytest.mark.parametrize(
    ("binding", "key", "expected"),
    [
        ("#", "", True),
        ("#", "a", True),
        ("#", "a.b.c", True),
        ("*", "", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("a.#", "a", True),          # '#' may match zero words
        ("a.#", "a.b.c", True),
        ("#.a", "a", True),
        ("#.a", "x.y.a", True),
        ("#.a", "x.y.b", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.*.b", "a.b", False),
        ("a.*.b", "a.x.b", True),
        ("#.#", "a.b", True),
        ("*.#", "", False),
        ("*.#", "a", True),
        ("a", "a", True),
        ("a", "A", False),           # case matters
        ("a.b", "a.b.c", False),
        ("kern.*", "kern.critical", True),
        ("*.error", "kern.error", True),
        ("*.error", "error", False),
        ("a..b", "a..b", True),      # empty words are words
        ("a.*.b", "a..b", True),
    ],
)
def test_topic_matches_rules(binding: str, key: str, expected: bool) -> None:
    assert rmq.topic_matches(binding, key) is expected


def test_binding_without_wildcards_is_a_direct_match() -> None:
    assert rmq.topic_matches("eu.orders", "eu.orders")
    assert not rmq.topic_matches("eu.orders", "eu.orders.new")


# ---------------------------------------------------------------- parse_list_queues (01.01)


def test_parse_list_queues_json() -> None:
    text = ('[\n{"name":"q1","messages_ready":3,"messages_unacknowledged":1},\n'
            '{"name":"q2","messages_ready":0,"messages_unacknowledged":0}\n]\n')
    assert rmq.parse_list_queues(text) == [
        {"name": "q1", "messages_ready": 3, "messages_unacknowledged": 1},
        {"name": "q2", "messages_ready": 0, "messages_unacknowledged": 0},
    ]


def test_parse_list_queues_tab_separated() -> None:
    text = "name\tmessages_ready\tmessages_unacknowledged\nq1\t3\t1\nq-2\t0\t12\n"
    assert rmq.parse_list_queues(text) == [
        {"name": "q1", "messages_ready": 3, "messages_unacknowledged": 1},
        {"name": "q-2", "messages_ready": 0, "messages_unacknowledged": 12},
    ]


def test_parse_list_queues_empty() -> None:
    assert rmq.parse_list_queues("") == []
    assert rmq.parse_list_queues("  \n") == []
    assert rmq.parse_list_queues("[]") == []


# ---------------------------------------------------------------- wait_down_then_up (01.03)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_down_then_up_returns_after_the_broker_came_back() -> None:
    clock = FakeClock()
    states = iter([True, True, False, False, True])  # up, up, down, down, up again
    seconds = rmq.wait_down_then_up(lambda: next(states), timeout=10, interval=1,
                                    clock=clock, sleep=clock.sleep)
    assert seconds == 4


def test_wait_down_then_up_never_down_times_out_saying_so() -> None:
    clock = FakeClock()
    with pytest.raises(TimeoutError, match="go down"):
        rmq.wait_down_then_up(lambda: True, timeout=5, interval=1, clock=clock,
                              sleep=clock.sleep)
    assert clock.now == 5


def test_wait_down_then_up_never_back_times_out_saying_so() -> None:
    clock = FakeClock()
    with pytest.raises(TimeoutError, match="come back"):
        rmq.wait_down_then_up(lambda: False, timeout=3, interval=0.5, clock=clock,
                              sleep=clock.sleep)


# ---------------------------------------------------------------- consumer outcomes (01.02)


def test_outcomes_are_the_four_documented_ones() -> None:
    assert rmq.OUTCOMES == ("ack", "requeue", "reject", "keep")
    assert (rmq.ACK, rmq.REQUEUE, rmq.REJECT, rmq.KEEP) == rmq.OUTCOMES


def test_consumer_in_hand_counts_unanswered_messages() -> None:
    worker = rmq.consumer("test-unstarted", "q", start=False)
    worker.counters.received = 5
    worker.counters.acked = 2
    worker.counters.requeued = 1
    worker.counters.kept = 1
    assert worker.in_hand == 1
    assert not worker.running
    assert "received=5 acked=2" in repr(worker)


# ---------------------------------------------------------------- the 01.02 panel's wiring


@pytest.mark.brokers
def test_pool_panel_buttons_call_the_pool_methods() -> None:
    """A click does what the notebook does unattended (needs RabbitMQ; skipped without)."""
    pytest.importorskip("ipywidgets")
    import brokerlab as bl

    if not bl.check("rabbitmq", timeout=2.0).ok:
        pytest.skip("RabbitMQ is not running")
    run = bl.Run("01.02", run_id="paneltest")
    queue = run.queue("tasks")
    try:
        with bl.rabbitmq_channel() as channel:
            channel.queue_declare(queue, durable=True)
        pool = rmq.WorkerPool(run.name("pool"), queue, work=0.0)
        panel = rmq.pool_panel(pool, refresh=0.1)
        panel.buttons["Start worker"].click()
        panel.buttons["Start worker"].click()
        assert len(pool.running) == 2
        assert all(w.wait_consuming() for w in pool.running)
        panel.buttons["Kill worker"].click()
        assert [w.crashed for w in pool.workers] == [False, True]
        panel.buttons["Stop worker"].click()
        assert pool.running == []
        assert bl.wait_until(lambda: "ready: <b>0</b>" in panel.children[1].value, timeout=5)
        panel.refresher.stop()
        assert not panel.refresher.running and panel.refresher.error is None
    finally:
        bl.cleanup(run, brokers=("rabbitmq",))
