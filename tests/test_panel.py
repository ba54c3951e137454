"""brokerlab.panel.ControlPanel without a browser: methods and real `.click()`s.

Tests marked `brokers` use the real brokers; the rest run anywhere (a broker that is
not there is one of the things a panel must survive).
"""

from __future__ import annotations

import statistics
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from broker_probes import rabbitmq_connection_names, redis_client_names

import brokerlab as bl
from brokerlab import workers as W
from brokerlab.panel import ControlPanel, close_panels, rate_chart_svg
from brokerlab.settings import Settings

# ---------------------------------------------------------------- no broker needed


def test_chart_is_valid_svg_with_nice_axes() -> None:
    points = [(60 - t, 40.0 + t % 3, 38.0, float(t)) for t in range(60)]
    svg = rate_chart_svg(points, window=60, backlog_label="ready")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    texts = [t.text for t in root.iter() if t.tag.endswith("text")]
    assert "50" in texts and "now" in texts and "ready (right axis)" in texts
    assert len([e for e in root.iter() if e.tag.endswith("polyline")]) == 3
    assert ET.fromstring(rate_chart_svg([])).tag.endswith("svg")  # no data yet: still fine


@pytest.fixture
def nowhere() -> Iterator[bl.Run]:
    """A run whose brokers are all unreachable (closed ports)."""
    settings = Settings(rabbitmq_url="amqp://guest:guest@127.0.0.1:9/%2F",
                        rabbitmq_management_url="http://127.0.0.1:9",
                        redis_url="redis://127.0.0.1:9/0",
                        kafka_bootstrap_servers=("127.0.0.1:9",))
    run = bl.Run("99.96", settings)
    yield run
    close_panels(run.prefix)
    W.stop_all(run.prefix)


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_a_broker_that_is_not_there_shows_in_the_panel(nowhere: bl.Run, broker: str) -> None:
    panel = ControlPanel(nowhere, broker, refresh=0.1)
    try:
        assert "does not answer" in panel.message and "Start it with" in panel.message
        panel.start_all()
        assert bl.wait_until(lambda: all(w.state == "error" for w in panel.workers),
                             timeout=10)
        assert bl.wait_until(lambda: "error" in panel.figures, timeout=5)
        assert bl.wait_until(lambda: "stopped:" in panel.message, timeout=5)
        assert "does not answer" in panel.figures_html.value
        assert panel.updates > 0, "the live view keeps running"
    finally:
        panel.close()
    assert not [t for t in threading.enumerate() if t.name.startswith(panel.prefix)]


def test_bad_input_is_a_message_never_an_exception(nowhere: bl.Run) -> None:
    panel = ControlPanel(nowhere, "redis", "list", refresh=0.1)
    try:
        for call, expected in [
            (lambda: panel.set_rate(-5), "negative"),
            (lambda: panel.set_rate(float("nan")), "number"),
            (lambda: panel.set_rate(float("inf")), "number"),
            (lambda: panel.set_rate("fast"), "number"),  # type: ignore[arg-type]
            (lambda: panel.set_size(-1), "0..1000000"),
            (lambda: panel.set_size(10**9), "0..1000000"),
            (lambda: panel.choose("rabbitmq", "queue", ""), "give the queue a name"),
            (lambda: panel.choose("rabbitmq", "queue", "Bad Name!"), "lower-case"),
            (lambda: panel.choose("mqtt"), "choose a broker"),
            (lambda: panel.choose("redis", "topic"), "no kind"),
            (lambda: panel.start(7), "no worker 7"),
            (lambda: panel.kill("p9"), "no worker 'p9'"),
            (lambda: panel.remove(None), "say which worker"),  # type: ignore[arg-type]
        ]:
            assert call() is None
            assert expected in panel.message, (expected, panel.message)
            assert "⚠" in panel.message_html.value
        assert panel.rate == 10 and panel.size == 64, "rejected input changes nothing"
        panel.rate_slider.value = 3  # a widget change goes through set_rate
        assert panel.rate == 3 and all(w.rate == 3 for w in panel.producers)
        panel.size_box.value = -3  # typed into the box
        assert "0..1000000" in panel.message and panel.size == 64
    finally:
        panel.close()
    panel.start(0)
    assert "closed" in panel.message


def test_the_live_view_is_bounded_and_can_resume(nowhere: bl.Run) -> None:
    panel = ControlPanel(nowhere, "redis", "list", refresh=0.05, lifetime=0.5)
    try:
        view = panel._refresher
        assert view is not None and view.running
        assert panel.buttons["resume"].layout.display == "none"
        assert bl.wait_until(lambda: not view.running, timeout=5), "lifetime must end it"
        assert not threads_of(panel.prefix), "the reader thread ends with the view"
        assert "paused" in panel.header.value and "resume" in panel.message
        assert panel.buttons["resume"].layout.display == ""
        updates = panel.updates
        panel.buttons["resume"].click()
        assert bl.wait_until(lambda: panel.updates > updates, timeout=5)
    finally:
        panel.close()
    assert not threads_of(panel.prefix)


def threads_of(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


# ---------------------------------------------------------------- real brokers


@pytest.fixture
def run() -> Iterator[bl.Run]:
    run = bl.Run("99.98")
    yield run
    close_panels(run.prefix)
    bl.cleanup(run)


def row(panel: ControlPanel, label: str) -> Any:
    """The panel's row (`Row`) for a worker label like 'p1'."""
    worker = panel.worker(label)
    return panel.rows[worker.name]


@pytest.mark.brokers
def test_buttons_are_wired_to_the_methods(run: bl.Run) -> None:
    panel = ControlPanel(run, "rabbitmq", producers=0, consumers=0, rate=50)
    panel.buttons["add_producer"].click()
    panel.buttons["add_consumer"].click()
    assert [w.role for w in panel.workers] == ["producer", "consumer"]
    assert len(panel.buttons_box.children) == 2 and panel.table.value.count("<tr") == 2
    row(panel, "p1").buttons["start"].click()
    row(panel, "c1").buttons["start"].click()
    assert bl.wait_until(lambda: panel.counters()["acked"] >= 20, timeout=10)
    assert row(panel, "p1").buttons["start"].disabled
    assert bl.wait_until(lambda: "class='bl-sent'>0<" not in panel.table.value, timeout=5), (
        "the table shows p1's count rising")
    row(panel, "c1").buttons["stop"].click()
    assert panel.workers[1].state == "stopped"
    ready = panel.figure("ready", 0)
    assert bl.wait_until(lambda: panel.figure("ready", 0) >= ready + 10, timeout=5), (
        "a stopped consumer: the queue fills up")
    panel.buttons["stop_all"].click()
    sent = panel.counters()["sent"]
    time.sleep(0.5)
    assert panel.counters()["sent"] == sent, "stop halts the producer"
    panel.buttons["start_all"].click()
    assert all(w.running for w in panel.workers)
    row(panel, "c1").buttons["kill"].click()
    assert panel.workers[1].state == "killed"
    row(panel, "p1").buttons["remove"].click()
    assert [w.name for w in panel.workers] == [f"{panel.prefix}-c1"]
    panel.rate_slider.value = 7
    assert panel.rate == 7
    panel.work_slider.value = 3
    assert panel.workers[0].rate == 3
    panel.size_box.value = 256
    assert panel.size == 256
    panel.close()


@pytest.mark.brokers
def test_rabbitmq_figures_ready_and_unacked(run: bl.Run) -> None:
    panel = ControlPanel(run, "rabbitmq", rate=100, work_rate=2, prefetch=10)
    panel.start(0)
    assert bl.wait_until(lambda: panel.figure("ready", 0) >= 20, timeout=5)
    panel.stop(0)
    panel.start(1)  # slow: holds up to 10 unacknowledged
    assert bl.wait_until(lambda: (panel.figure("unacked") or 0) >= 5, timeout=15), (
        "the management API should show the consumer's unacked messages")
    consumer = panel.workers[1]
    sent = panel.counters()["sent"]
    panel.kill(1)
    assert bl.wait_for(lambda: panel.figure("ready"), sent - consumer.counters.acked,
                       timeout=5) == sent - consumer.counters.acked
    assert panel.figure("consumers") == 0


@pytest.mark.brokers
def test_redis_stream_figures_pending_after_kill(run: bl.Run) -> None:
    panel = ControlPanel(run, "redis", "stream", rate=50, work_rate=5)
    panel.start_all()
    consumer = panel.consumers[0]
    assert bl.wait_until(lambda: consumer.counters.acked >= 2 and
                         consumer.counters.received > consumer.counters.acked, timeout=10)
    panel.kill("c1")
    panel.stop("p1")
    figures = panel.broker_figures()
    assert figures["pending"] >= 1 and consumer.name in figures["pending_by_consumer"]
    assert figures["length"] == panel.counters()["sent"]
    assert bl.wait_until(lambda: "XPENDING" in panel.figures_html.value and
                         "c1: " in panel.figures_html.value, timeout=5)


@pytest.mark.brokers
def test_redis_list_and_pubsub_figures(run: bl.Run) -> None:
    panel = ControlPanel(run, "redis", "list", rate=100, consumers=0)
    panel.start_all()
    assert bl.wait_until(lambda: panel.figure("length", 0) >= 20, timeout=5)
    panel.choose("redis", "pubsub", "news")
    assert [w.role for w in panel.workers] == ["producer"], "choose keeps the line-up"
    panel.add_consumer()
    assert panel.figure("subscribers") == 0
    panel.start("c1")
    assert bl.wait_for(lambda: panel.figure("subscribers"), 1, timeout=5) == 1
    panel.start("p1")
    assert bl.wait_until(lambda: panel.counters()["received"] >= 10, timeout=5)


@pytest.mark.brokers
def test_kafka_lag_per_partition(run: bl.Run) -> None:
    panel = ControlPanel(run, "kafka", rate=100, consumers=2, partitions=3)
    panel.start_all()
    assert bl.wait_until(lambda: all(c.counters.acked for c in panel.consumers), timeout=20)
    panel.stop("c1")
    panel.stop("c2")
    lag = panel.figure("lag", 0)
    assert bl.wait_until(lambda: panel.figure("lag", 0) >= lag + 30, timeout=5)
    figures = panel.broker_figures()
    assert [p["partition"] for p in figures["partitions"]] == [0, 1, 2]
    assert sum(p["lag"] for p in figures["partitions"]) == figures["lag"]
    panel.stop("p1")
    panel.start("c1")
    assert bl.wait_for(lambda: panel.figure("lag"), 0, timeout=20) == 0
    assert bl.wait_until(lambda: "bl-fig-lag-2" in panel.figures_html.value, timeout=5)


@pytest.mark.brokers
def test_kafka_partitions_per_consumer(run: bl.Run) -> None:
    """The coordinator's view of who reads which partition follows starts and stops."""
    panel = ControlPanel(run, "kafka", producers=0, consumers=2, partitions=3)
    c1, c2 = panel.consumers

    def members() -> dict[str, list[int]]:
        figures = panel.broker_figures()
        return figures["members"] if figures.get("group_state") == "Stable" else {}

    panel.start("c1")
    assert bl.wait_for(members, {c1.name: [0, 1, 2]}, timeout=20) == {c1.name: [0, 1, 2]}
    panel.start("c2")
    split = bl.wait_until(lambda: len(m := members()) == 2 and all(m.values()) and m,
                          timeout=20)
    assert split and sorted(p for parts in split.values() for p in parts) == [0, 1, 2], (
        f"two consumers share the three partitions: {split}")
    assert bl.wait_until(lambda: "partitions per consumer: c1 " in panel.figures_html.value
                         and "c2 " in panel.figures_html.value, timeout=5), (
        panel.figures_html.value)
    panel.remove("c2")  # a graceful stop leaves the group: c1 reads everything again
    assert bl.wait_for(members, {c1.name: [0, 1, 2]}, timeout=20) == {c1.name: [0, 1, 2]}
    panel.stop("c1")
    assert bl.wait_until(lambda: "no members" in panel.figures_html.value, timeout=10)


@pytest.mark.brokers
@pytest.mark.parametrize("broker", ["rabbitmq", "redis", "kafka"])
def test_ten_workers_flat_out_keep_the_notebook_responsive(run: bl.Run, broker: str) -> None:
    panel = ControlPanel(run, broker, producers=5, consumers=5, rate=0)
    panel.start_all()
    time.sleep(1.0)
    delays = []
    for _ in range(20):
        started = time.perf_counter()
        sum(range(10_000))
        delays.append(time.perf_counter() - started)
        time.sleep(0.02)
    updates, t0 = panel.updates, time.monotonic()
    time.sleep(2.0)
    per_second = (panel.updates - updates) / (time.monotonic() - t0)
    moved = panel.counters()
    panel.close()
    print(f"{broker}: trivial op median {statistics.median(delays) * 1000:.2f} ms, "
          f"max {max(delays) * 1000:.2f} ms; {per_second:.1f} updates/s; {moved}")
    assert max(delays) < 1.0, f"the main thread waited {max(delays):.2f} s"
    assert per_second >= 2.0, f"only {per_second:.1f} updates per second"
    assert moved["received"] > 100, f"ten workers flat out should move messages: {moved}"


@pytest.mark.brokers
def test_rerun_and_close_leave_no_thread_and_no_connection(run: bl.Run) -> None:
    def busy_panels() -> list[ControlPanel]:
        panels = [ControlPanel(run, "rabbitmq", rate=20),
                  ControlPanel(run, "redis", "stream", rate=20),
                  ControlPanel(run, "kafka", rate=20)]
        for panel in panels:
            panel.start_all()
        return panels

    baseline = {t.ident for t in threading.enumerate()}
    first = busy_panels()
    prefixes = [p.prefix for p in first]
    assert bl.wait_until(lambda: all(p.counters()["received"] for p in first), timeout=20)
    assert bl.wait_until(lambda: any(n.startswith(prefixes[0])
                                     for n in rabbitmq_connection_names()), timeout=15)
    assert any(n.startswith(prefixes[1]) for n in redis_client_names())

    second = busy_panels()  # what re-running the cells does
    assert all(p.closed for p in first) and not any(p.closed for p in second)
    for prefix in prefixes:
        alive = threads_of(prefix)
        assert len(alive) == len(set(alive)), f"one set of threads per panel: {alive}"

    for panel in second:
        panel.close()
    time.sleep(0.5)
    leaked = [t.name for t in threading.enumerate() if t.ident not in baseline]
    assert not leaked, f"threads left behind: {leaked}"
    assert bl.wait_until(lambda: not [n for n in rabbitmq_connection_names()
                                      if n.startswith(run.prefix)], timeout=10), (
        f"RabbitMQ connections left: {rabbitmq_connection_names()}")
    assert not [n for n in redis_client_names() if n.startswith(run.prefix)]


@pytest.mark.brokers
def test_kernel_shutdown_leaves_no_connection(run: bl.Run) -> None:
    """Stop a real kernel that runs busy panels: atexit must stop every worker."""
    from jupyter_client.manager import start_new_kernel

    code = (
        "import brokerlab as bl\nfrom brokerlab.panel import ControlPanel\n"
        f"run = bl.Run('99.98', run_id='{run.run_id}k')\n"
        "panels = [ControlPanel(run, 'rabbitmq', rate=20), ControlPanel(run, 'redis', 'list', "
        "rate=20)]\n"
        "for p in panels: p.start_all()\n"
        "bl.wait_until(lambda: all(p.counters()['received'] for p in panels), timeout=10)\n"
        "print('busy', [p.counters() for p in panels])\n")
    prefix = bl.Run("99.98", run_id=f"{run.run_id}k").prefix
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        reply = client.execute_interactive(code, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert bl.wait_until(lambda: any(n.startswith(prefix)
                                         for n in rabbitmq_connection_names()), timeout=15)
        assert any(n.startswith(prefix) for n in redis_client_names())
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    assert bl.wait_until(lambda: not [n for n in rabbitmq_connection_names()
                                      if n.startswith(prefix)], timeout=10)
    assert not [n for n in redis_client_names() if n.startswith(prefix)]
    kernel_run = bl.Run("99.98", run_id=f"{run.run_id}k")
    kernel_run.queue("rabbitmq-demo")  # what the kernel's panel declared
    bl.cleanup(kernel_run)
