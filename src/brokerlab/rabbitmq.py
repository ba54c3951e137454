"""RabbitMQ helpers for module 01 (pika): windows into the broker, consumers, restarts, RPC.

The lessons first show the raw pika calls for an idea; from then on they use these
helpers so later cells stay short. Each docstring names the lesson that teaches it.

    from brokerlab import rabbitmq as rmq
    rmq.queue_counts(queue)                    # ready messages and consumers, now (01.01)
    rmq.list_queues(prefix)                    # ready and unacknowledged, per queue (01.01)
    worker = rmq.consumer(name, queue, handler, prefetch=1)   # ack/nack/reject (01.02)
    pool = rmq.WorkerPool(name, queue); rmq.pool_panel(pool)  # start/stop/kill (01.02)
    rmq.wait_down_then_up(is_up, timeout=120)  # a broker restart done by hand (01.03)
    rmq.drain(queue, expect=3)                 # what a bound queue received (01.04)
    rmq.topic_matches("*.orange.*", key)       # the topic exchange's rule (01.04)
    with rmq.RpcClient(queue) as rpc: rpc.call("10")          # request/reply (01.05)

Rules they keep (COURSE.md): a pika connection per thread, made in that thread; in the
main thread only short-lived connections; every wait bounded; threads never print.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions

from brokerlab.checks import wait_until
from brokerlab.clients import rabbitmq_channel, rabbitmq_connection
from brokerlab.settings import Settings, get_settings
from brokerlab.workers import Counters, Worker, _abort_pika

# What a consumer's handler may return (None means ACK).
ACK = "ack"          # done: basic_ack, the broker forgets the message
REQUEUE = "requeue"  # failed, try again: basic_reject(requeue=True), back to the queue
REJECT = "reject"    # give up: basic_reject(requeue=False), dropped or dead-lettered
KEEP = "keep"        # no answer at all: the forgotten-ack trap (the message stays unacked)
OUTCOMES = (ACK, REQUEUE, REJECT, KEEP)


# ---------------------------------------------------------------- looking into the broker


def management_get(path: str, settings: Settings | None = None, *,
                   base_url: str | None = None, timeout: float = 5.0) -> Any:
    """GET `path` (e.g. '/api/queues/%2F') from the RabbitMQ management HTTP API; parsed JSON.

    The one management-API client of the package. It logs in with the user and password
    of RABBITMQ_URL; `base_url` picks another node's API (a cluster node's, from
    `settings.rabbitmq_cluster_management_urls`), default `settings.rabbitmq_management_url`.
    Raises OSError (urllib's URLError/HTTPError) when the API does not answer or refuses.
    Used by 01.01's window into the broker, 04.03's quorum-queue view, cleanup and the panel.
    """
    settings = settings or get_settings()
    amqp = urlsplit(settings.rabbitmq_url)
    user, password = unquote(amqp.username or "guest"), unquote(amqp.password or "guest")
    base = (base_url or settings.rabbitmq_management_url).rstrip("/")
    request = urllib.request.Request(base + path)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def vhost(settings: Settings | None = None) -> str:
    """The virtual host of RABBITMQ_URL ('/' when the URL names none)."""
    settings = settings or get_settings()
    path = urlsplit(settings.rabbitmq_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def queues(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every queue of the course's vhost, as the management API lists them."""
    return list(management_get(f"/api/queues/{quote(vhost(settings), safe='')}", settings))



@dataclass(frozen=True)
class QueueCounts:
    """Messages ready for delivery, delivered but not yet acknowledged, and consumers."""

    ready: int
    unacked: int | None  # None when the management API did not answer
    consumers: int


def queue_counts(queue: str, settings: Settings | None = None) -> QueueCounts | None:
    """Ready, unacked and consumers of `queue` right now; None if there is no such queue.

    `ready` and `consumers` come from a passive queue_declare on a short-lived channel:
    it never creates the queue, and the queue itself answers, so they are exact. AMQP has
    no way to ask for `unacked`; it comes from the management API, whose message counts
    the broker refreshes every few seconds (collect_statistics_interval, 5 s by default).
    Taught in 01.01; 01.02 reads `unacked`.
    """
    with rabbitmq_channel(settings) as channel:
        try:
            ok = channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
    try:
        info = management_get(
            f"/api/queues/{quote(vhost(settings), safe='')}/{quote(queue, safe='')}", settings)
        unacked = info.get("messages_unacknowledged")
    except OSError:
        unacked = None
    return QueueCounts(ok.method.message_count, unacked, ok.method.consumer_count)


def ready(queue: str, settings: Settings | None = None) -> int | None:
    """Messages ready in `queue` now (None if the queue does not exist). Taught in 01.01."""
    counts = queue_counts(queue, settings)
    return None if counts is None else counts.ready


def parse_list_queues(text: str) -> list[dict[str, Any]]:
    """Rows of `rabbitmqctl list_queues ... --formatter json` (or its tab-separated form).

    Numbers become ints; every row is a dict keyed by the column names.
    """
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return [dict(row) for row in json.loads(text)]
    lines = [line for line in text.splitlines() if line.strip()]
    header, rows = lines[0].split("\t"), []
    for line in lines[1:]:
        values = [int(v) if v.lstrip("-").isdigit() else v for v in line.split("\t")]
        rows.append(dict(zip(header, values, strict=False)))
    return rows


def list_queues(prefix: str = "", settings: Settings | None = None,
                source: str = "auto") -> list[dict[str, Any]]:
    """Queues whose names start with `prefix`: name, ready, unacked, consumers, durable, type.

    `source="rabbitmqctl"` asks the node itself (exact and current; only where the course
    runs the broker natively), `"api"` the management HTTP API (works everywhere, but
    the broker refreshes its message counts only every ~5 s), `"auto"` the first that
    works here. Quorum queues report their counts late in both (seconds). For an exact
    ready count use `queue_counts`. Taught in 01.01 (the window into the broker) and
    01.02 (unacked).
    """
    from brokerlab import local

    if source == "auto":
        source = "rabbitmqctl" if local.is_managed("rabbitmq", settings) else "api"
    if source == "rabbitmqctl":
        result = local.rabbitmqctl(
            "list_queues", "-q", "name", "messages_ready", "messages_unacknowledged",
            "consumers", "durable", "type", "--formatter", "json", timeout=20,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl list_queues failed: {result.stderr.strip()}")
        rows = parse_list_queues(result.stdout)
        return sorted(
            ({"name": r["name"], "ready": r["messages_ready"],
              "unacked": r["messages_unacknowledged"], "consumers": r["consumers"],
              "durable": r["durable"] in (True, "true"), "type": r["type"]}
             for r in rows if r["name"].startswith(prefix)),
            key=lambda r: r["name"],
        )
    if source != "api":
        raise ValueError(f"source must be 'auto', 'rabbitmqctl' or 'api', got {source!r}")
    return sorted(
        ({"name": q["name"], "ready": q.get("messages_ready"),
          "unacked": q.get("messages_unacknowledged"), "consumers": q.get("consumers"),
          "durable": q.get("durable"), "type": q.get("type")}
         for q in queues(settings) if q["name"].startswith(prefix)),
        key=lambda r: r["name"],
    )


def queue_row(queue: str, settings: Settings | None = None, source: str = "auto"
              ) -> dict[str, Any] | None:
    """`list_queues`' row for exactly `queue`, or None. Taught in 01.02."""
    rows = [r for r in list_queues(queue, settings, source) if r["name"] == queue]
    return rows[0] if rows else None


def drain(queue: str, *, expect: int | None = None, timeout: float = 2.0,
          settings: Settings | None = None) -> list[str]:
    """Take (and ack) every message of `queue` with basic_get; return the bodies in order.

    With `expect`, keep polling (bounded by `timeout`) until that many arrived, for
    messages still on their way. Without, return as soon as the queue is empty.
    Taught in 01.04 (what each bound queue received).
    """
    bodies: list[str] = []
    deadline = time.monotonic() + timeout
    with rabbitmq_channel(settings) as channel:
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                bodies.append(body.decode())
                continue
            if expect is None or len(bodies) >= expect or time.monotonic() > deadline:
                return bodies
            channel.connection.sleep(0.05)


# ---------------------------------------------------------------- consumers


@dataclass
class ConsumerCounters(Counters):
    """Counters of a consumer: what it received, acked, requeued, rejected, kept unacked."""

    requeued: int = 0
    rejected: int = 0
    kept: int = 0
    redelivered: int = 0


@dataclass(frozen=True)
class Delivery:
    """One message as a consumer's handler sees it (valid only inside the handler)."""

    body: str
    routing_key: str
    exchange: str
    redelivered: bool
    delivery_tag: int
    properties: pika.BasicProperties
    channel: Any  # the consumer's own channel: publish replies on it, in the handler only

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})


Handler = Callable[[Delivery], "str | None"]


@dataclass(repr=False)
class Consumer(Worker):
    """A background consumer: a `Worker` whose body consumes one queue (see `consumer`)."""

    counters: ConsumerCounters = field(default_factory=ConsumerCounters)
    deliveries: list[Delivery] = field(default_factory=list)
    queue_name: str | None = None
    busy: bool = False
    consuming: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def kill(self, timeout: float = 5.0) -> None:
        """Crash: stop at once, no ack for what is in hand, no clean close (as `kill -9`)."""
        with self._lock:  # never between "not crashed?" and the ack it guards
            self.crashed = True
        self.stop(timeout)

    def wait_consuming(self, timeout: float = 5.0) -> bool:
        """True once the broker has registered this consumer (bounded wait)."""
        wait_until(lambda: self.consuming.is_set() or not self.running, timeout)
        return self.consuming.is_set()

    @property
    def in_hand(self) -> int:
        """Messages received but not yet answered (acked, requeued, rejected)."""
        c = self.counters
        return c.received - c.acked - c.requeued - c.rejected - c.kept

    def __repr__(self) -> str:
        state = "running" if self.running else ("crashed" if self.crashed else "stopped")
        c = self.counters
        extra = "".join(f" {k}={getattr(c, k)}" for k in ("requeued", "rejected", "kept")
                        if getattr(c, k))
        error = f" error={type(self.error).__name__}" if self.error else ""
        return (f"<Consumer {self.name} {state} received={c.received} acked={c.acked}"
                f"{extra}{error}>")


def _pause_unless_crashed(worker: Consumer, seconds: float) -> bool:
    """Sleep `seconds` in small steps; False as soon as the worker is killed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if worker.crashed:
            return False
        time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
    return not worker.crashed


def consumer(name: str, queue: str | Callable[[Any], str], handler: Handler | None = None,
             *, prefetch: int | None = None, auto_ack: bool = False,
             work: float | Callable[[str], float] = 0.0, heartbeat: int | None = None,
             settings: Settings | None = None, start: bool = True) -> Consumer:
    """Consume `queue` in a background thread (own connection, bounded loop); return it.

    - `handler(delivery)` decides each message's fate: return ACK (or None), REQUEUE,
      REJECT or KEEP (never answer: the forgotten-ack trap). If it raises, the worker
      stops, closes its connection, and the broker redelivers the message in hand.
    - `prefetch`: basic_qos(prefetch_count); None sends as many as the broker likes.
    - `auto_ack=True`: the broker forgets each message as it sends it (at-most-once).
    - `work`: seconds of simulated work per message (or a function of the body), during
      which `kill()` leaves the message unacknowledged, as a crashed process would.
    - `queue` may be a function `setup(channel) -> queue name` that declares and binds
      the worker's own queue (e.g. an exclusive, server-named one) on its connection.

    Taught in 01.01 (the loop itself), 01.02 (acks, prefetch, kill), 01.04 (subscribers).
    """
    settings = settings or get_settings()

    def on_message(w: Consumer, ch: Any, method: Any, props: Any, raw: bytes) -> None:
        if w.crashed:
            return
        delivery = Delivery(raw.decode(), method.routing_key, method.exchange,
                            bool(method.redelivered), method.delivery_tag, props, ch)
        w.counters.received += 1
        w.counters.redelivered += delivery.redelivered
        w.deliveries.append(delivery)
        w.busy = True
        try:
            seconds = work(delivery.body) if callable(work) else work
            if not _pause_unless_crashed(w, seconds):
                return
            outcome = (handler(delivery) if handler else None) or ACK
        finally:
            w.busy = False
        if outcome not in OUTCOMES:
            raise ValueError(f"handler returned {outcome!r}; expected one of {OUTCOMES}")
        with w._lock:
            if w.crashed:
                return
            if auto_ack or outcome == ACK:
                if not auto_ack:
                    ch.basic_ack(method.delivery_tag)
                w.counters.acked += 1
                w.messages.append(delivery.body)
            elif outcome == REQUEUE:
                # reject, not nack: from RabbitMQ 4.3 on only reject counts as a failed
                # delivery towards a quorum queue's delivery limit (both do on 3.x)
                ch.basic_reject(method.delivery_tag, requeue=True)
                w.counters.requeued += 1
            elif outcome == REJECT:
                ch.basic_reject(method.delivery_tag, requeue=False)
                w.counters.rejected += 1
            else:
                w.counters.kept += 1

    def body(w: Worker) -> None:
        assert isinstance(w, Consumer)
        connection = rabbitmq_connection(settings, heartbeat=heartbeat)
        try:
            channel = connection.channel()
            w.queue_name = queue(channel) if callable(queue) else queue
            if prefetch:
                channel.basic_qos(prefetch_count=prefetch)
            channel.basic_consume(
                w.queue_name, lambda ch, m, p, b: on_message(w, ch, m, p, b),
                auto_ack=auto_ack,
            )
            w.consuming.set()
            w.note(f"consuming from {w.queue_name}")
            while not w.should_stop():
                connection.process_data_events(time_limit=0.2)
        finally:
            w.consuming.clear()
            if w.crashed:
                _abort_pika(connection)
                w.note("killed")
            elif connection.is_open:
                try:
                    connection.close()
                except pika.exceptions.AMQPError:
                    pass
                w.note("stopped")

    worker = Consumer(name, body)
    return worker.start() if start else worker


# ---------------------------------------------------------------- a pool and its panel


class WorkerPool:
    """Consumers on one queue that you start, stop and kill one at a time (01.02's panel).

    Every button of `pool_panel` calls one of these methods, so a notebook that runs
    unattended (and CI) does exactly what a click does.
    """

    def __init__(self, name: str, queue: str, handler: Handler | None = None, *,
                 prefetch: int | None = 1, work: float | Callable[[str], float] = 0.2,
                 settings: Settings | None = None):
        self.name, self.queue, self.handler = name, queue, handler
        self.prefetch, self.work = prefetch, work
        self.settings = settings or get_settings()
        self.workers: list[Consumer] = []

    @property
    def running(self) -> list[Consumer]:
        return [w for w in self.workers if w.running]

    def start_worker(self) -> Consumer:
        """Start one more consumer (button "Start worker")."""
        worker = consumer(f"{self.name}-w{len(self.workers) + 1}", self.queue, self.handler,
                          prefetch=self.prefetch, work=self.work, settings=self.settings)
        self.workers.append(worker)
        return worker

    def stop_worker(self) -> Consumer | None:
        """Stop the newest running consumer gracefully (button "Stop worker")."""
        running = self.running
        if running:
            running[-1].stop()
            return running[-1]
        return None

    def kill_worker(self) -> Consumer | None:
        """Crash the newest running consumer, busy or not (button "Kill worker")."""
        running = self.running
        if running:
            running[-1].kill()
            return running[-1]
        return None

    def stop_all(self) -> None:
        for worker in self.running:
            worker.stop()

    def done(self) -> list[str]:
        """Bodies of every message the pool's workers acknowledged."""
        return [body for w in self.workers for body in w.messages]

    def summary(self) -> str:
        """One line per pool: each worker's state and how many messages it finished."""

        def state(w: Consumer) -> str:
            return "running" if w.running else ("killed" if w.crashed else "stopped")

        return " · ".join(
            f"{w.name.rsplit('-', 1)[-1]}: {state(w)}, {w.counters.acked} done"
            for w in self.workers
        ) or "no workers yet"


def pool_panel(pool: WorkerPool, *, refresh: float = 0.5) -> Any:
    """A small ipywidgets panel over `pool`: buttons, ready/unacked counts, worker states.

    "ready" comes from a passive declare (exact, now); "unacked" from the management API,
    which the broker refreshes every ~5 s; "in hand" is what the workers hold right now.
    A background refresher (a Worker named `<pool>-panel`, own connection) updates the
    labels; it never prints. Stop it with `panel.refresher.stop()` (cleanup does too).
    Taught in 01.02; the course's full control panel replaces it later.
    """
    import ipywidgets as widgets

    buttons = {
        "Start worker": pool.start_worker,
        "Stop worker": pool.stop_worker,
        "Kill worker": pool.kill_worker,
    }
    row = []
    for label, method in buttons.items():
        button = widgets.Button(description=label)
        button.on_click(lambda _button, method=method: method())
        row.append(button)
    counts = widgets.HTML("ready: … · unacked: … · in hand: …")
    states = widgets.HTML(pool.summary())

    def refresher(w: Worker) -> None:
        connection = rabbitmq_connection(pool.settings)
        try:
            channel = connection.channel()
            unacked: Any = "…"
            last_api = 0.0
            while not w.should_stop():
                ok = channel.queue_declare(pool.queue, passive=True)
                if time.monotonic() - last_api > 2.0:
                    last_api = time.monotonic()
                    try:
                        rows = [q for q in queues(pool.settings)
                                if q["name"] == pool.queue]
                        unacked = rows[0].get("messages_unacknowledged", "…") if rows else "…"
                    except OSError:
                        unacked = "?"
                in_hand = sum(x.in_hand for x in pool.running)
                counts.value = (f"<b>{pool.queue}</b> — ready: <b>{ok.method.message_count}</b>"
                                f" · unacked (API, ~5 s): <b>{unacked}</b>"
                                f" · in hand: <b>{in_hand}</b>")
                states.value = pool.summary()
                connection.sleep(refresh)
        finally:
            if connection.is_open:
                connection.close()

    box = widgets.VBox([widgets.HBox(row), counts, states])
    box.refresher = Worker(f"{pool.name}-panel", refresher).start()
    box.buttons = dict(zip(buttons, row, strict=True))
    return box


# ---------------------------------------------------------------- broker restarts


def wait_down_then_up(is_up: Callable[[], bool], *, timeout: float = 120.0,
                      interval: float = 0.5, clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait until `is_up()` has been False at least once and then True again.

    For a restart someone else does (`docker compose restart rabbitmq`): returns the
    seconds it took, raises TimeoutError after `timeout`. Taught in 01.03.
    """
    started = clock()
    went_down = False
    while clock() - started < timeout:
        if not is_up():
            went_down = True
        elif went_down:
            return clock() - started
        sleep(interval)
    what = "come back" if went_down else "go down (was it restarted?)"
    raise TimeoutError(f"waited {timeout:.0f} s for the broker to {what}")


def rabbitmq_is_up(settings: Settings | None = None) -> bool:
    """One bounded round trip (publish and get on a temporary queue). Taught in 01.03."""
    from brokerlab.health import check

    return check("rabbitmq", settings, timeout=2.0).ok


# ---------------------------------------------------------------- routing


def _words(key: str) -> list[str]:
    return key.split(".") if key else []


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """True if a topic exchange routes `routing_key` through a binding with `binding_key`.

    Words are separated by '.'; `*` stands for exactly one word, `#` for zero or more.
    Taught in 01.04 (predict who gets what, then let the broker confirm it).
    """
    pattern, words = _words(binding_key), _words(routing_key)
    # reachable[j]: the pattern so far can consume exactly the first j words
    reachable = [True] + [False] * len(words)
    for part in pattern:
        if part == "#":
            for j in range(1, len(words) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [
                reachable[j - 1] and (part == "*" or part == words[j - 1])
                for j in range(1, len(words) + 1)
            ]
    return reachable[len(words)]


# ---------------------------------------------------------------- request/reply


class RpcClient:
    """Request/reply over RabbitMQ with correlation ids and bounded waits (01.05).

        with RpcClient(queue) as rpc:
            rpc.call("30", timeout=5)              # one request, its reply
            rpc.call_many(["1", "2", "3"])         # several in flight, matched by id

    Replies arrive on a private reply queue (exclusive, server-named), or, with
    `direct_reply_to=True`, on RabbitMQ's pseudo-queue `amq.rabbitmq.reply-to` (no queue
    at all). Use it as a context manager in one cell: a short-lived connection in the
    main thread never misses heartbeats. Waiting pumps the connection in ≤ 0.1 s steps.
    """

    DIRECT = "amq.rabbitmq.reply-to"

    def __init__(self, queue: str, *, exchange: str = "", direct_reply_to: bool = False,
                 settings: Settings | None = None):
        self.queue, self.exchange, self.direct = queue, exchange, direct_reply_to
        self.settings = settings or get_settings()
        self.replies: dict[str, str] = {}
        self.stray = 0  # replies whose correlation id we never sent (or gave up on)
        self.arrivals: list[str] = []  # correlation ids in the order their replies came
        self._pending: set[str] = set()
        self.connection: pika.BlockingConnection | None = None

    def __enter__(self) -> RpcClient:
        self.connection = rabbitmq_connection(self.settings)
        self.channel = self.connection.channel()
        if self.direct:
            self.reply_to = self.DIRECT
        else:
            self.reply_to = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.basic_consume(self.reply_to, self._on_reply, auto_ack=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connection is not None and self.connection.is_open:
            self.connection.close()

    def _on_reply(self, _ch: Any, _method: Any, props: Any, body: bytes) -> None:
        if props.correlation_id in self._pending:
            self.replies[props.correlation_id] = body.decode()
            self.arrivals.append(props.correlation_id)
        else:
            self.stray += 1

    def send(self, body: str) -> str:
        """Publish one request; return its correlation id."""
        correlation_id = uuid.uuid4().hex
        self._pending.add(correlation_id)
        self.channel.basic_publish(
            self.exchange, self.queue, body.encode(),
            pika.BasicProperties(reply_to=self.reply_to, correlation_id=correlation_id),
        )
        return correlation_id

    def wait(self, correlation_ids: Iterable[str], timeout: float = 5.0) -> list[str]:
        """The replies to `correlation_ids`, in that order; TimeoutError after `timeout`."""
        assert self.connection is not None, "use RpcClient as a context manager"
        ids = list(correlation_ids)
        deadline = time.monotonic() + timeout
        while any(i not in self.replies for i in ids):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sum(i not in self.replies for i in ids)
                self._pending.difference_update(ids)  # a late reply is stray, not an answer
                raise TimeoutError(
                    f"no reply to {missing} of {len(ids)} request(s) on {self.queue!r} within "
                    f"{timeout} s — is a server consuming that queue?"
                )
            self.connection.process_data_events(time_limit=min(0.1, remaining))
        self._pending.difference_update(ids)
        return [self.replies.pop(i) for i in ids]

    def call(self, body: str, timeout: float = 5.0) -> str:
        """Send one request and wait (bounded) for its reply."""
        return self.wait([self.send(body)], timeout)[0]

    def call_many(self, bodies: Iterable[str], timeout: float = 5.0) -> list[str]:
        """Send every request first, then collect the replies in request order."""
        return self.wait([self.send(b) for b in bodies], timeout)
