"""The control panel: start, scale, slow down and kill producers and consumers live.

    panel = ControlPanel(run, "rabbitmq", name="orders")   # shows itself as the cell's output
    panel.add_consumer(); panel.start_all(); panel.kill(1); panel.set_rate(50)

A panel is a view over `brokerlab.workers` workers on one target (a RabbitMQ queue, a
Redis stream, list or pub/sub channel, a Kafka topic). Every button calls a public
method (`add_producer`, `add_consumer`, `remove`, `start`, `stop`, `kill`, `start_all`,
`stop_all`, `set_rate`, `set_size`, `choose`, `close`), so a notebook run unattended (and
CI) does exactly what a click does. Bad input, and a broker that went away, show a
message inside the panel; no method raises into the kernel.

One refresher thread per panel (a Worker named `<prefix>-view`) redraws counters,
broker-side figures and a rate chart every `refresh` seconds. It is the only thread
that touches widgets, and it only sets their values: no print, no `with output:` (the
ipywidgets advice for asynchronous widgets). The broker figures are read by a companion
thread (`<prefix>-reader`, own connections made inside it, no widgets) so that a slow
or vanished broker never delays a redraw. Both stop after `lifetime` seconds ("resume").

Broker-side figures, read by the refresher from the broker itself:
- RabbitMQ: ready and consumers (passive declare, exact, now); unacked (management
  API, which the broker refreshes every ~5 s).
- Redis: stream length, pending entries (XPENDING) and group lag; list length;
  pub/sub subscribers (PUBSUB NUMSUB).
- Kafka: lag per partition of the panel's group (log end offset - committed offset),
  and which partitions each member reads (DescribeGroups: the coordinator's view).

Re-running the cell that makes a panel closes the previous panel of the same lesson,
broker and name: its workers stop, its connections close, its widgets go. `bl.cleanup(run)`
stops every panel worker of the run (their names start with the run's prefix).

Taught in 00.03 (control panels), used in the work-queue, pub/sub and group lessons.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import ipywidgets as widgets

from brokerlab.health import NAMES, START_HINT
from brokerlab.naming import Run
from brokerlab.workers import KINDS, MAX_SIZE, Worker, new_worker

__all__ = ["ControlPanel", "close_panels", "rate_chart_svg"]

DEFAULT_KIND = {"rabbitmq": "queue", "redis": "stream", "kafka": "topic"}
KIND_LABEL = {"queue": "queue", "stream": "stream", "list": "list", "pubsub": "channel",
              "topic": "topic"}
MAX_RATE = 1000           # the sliders' top; set_rate() accepts more
QUEUE_MAX_LENGTH = 100_000  # a forgotten flat-out producer must not fill a small broker
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,60}$")
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

_PANELS: dict[str, ControlPanel] = {}

T = TypeVar("T")


def close_panels(prefix: str = "") -> int:
    """Close every open panel whose workers' names start with `prefix`; return how many."""
    panels = [p for p in list(_PANELS.values()) if p.prefix.startswith(prefix)]
    for panel in panels:
        panel.close()
    return len(panels)


def _guarded(method: Callable[..., T]) -> Callable[..., T | None]:
    """A panel action: any exception becomes a message in the panel, never a traceback."""

    @functools.wraps(method)
    def wrapper(self: ControlPanel, *args: Any, **kwargs: Any) -> T | None:
        if self.closed:
            self.message = "this panel is closed; re-run its cell for a new one"
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            self.say(f"{method.__name__}: {_describe(exc)}", error=True)
            return None

    return wrapper


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------- broker-side figures


class _Probe:
    """Reads one target's broker-side figures. Used by one thread only (own connections)."""

    def __init__(self, panel: ControlPanel) -> None:
        self.settings = panel.settings
        self.broker, self.kind = panel.broker, panel.kind
        self.target, self.group = panel.target, panel.group
        self.name = f"{panel.prefix}-reader"
        self._conn: Any = None
        self._channel: Any = None
        self._api: dict[str, Any] = {}
        self._api_at = 0.0
        self._partitions: list[Any] = []

    def read(self) -> dict[str, Any]:
        return {"rabbitmq": self._rabbitmq, "redis": self._redis,
                "kafka": self._kafka}[self.broker]()

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is None:
            return
        try:
            if self.broker == "rabbitmq":
                if conn.is_open:
                    conn.close()
            elif self.broker == "redis":
                conn.close()
                conn.connection_pool.disconnect()
            else:
                conn.close()
        except Exception:
            pass

    def _rabbitmq(self) -> dict[str, Any]:
        import pika

        from brokerlab.workers import _rabbitmq_connect

        if self._conn is None or not self._conn.is_open:
            self._conn = _rabbitmq_connect(self.settings, self.name)
            self._channel = None
        if self._channel is None or not self._channel.is_open:
            self._channel = self._conn.channel()
        try:
            ok = self._channel.queue_declare(self.target, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._channel = None
            if exc.reply_code == 404:
                return {"error": f"queue {self.target} does not exist"}
            raise
        figures: dict[str, Any] = {"ready": ok.method.message_count,
                                   "consumers": ok.method.consumer_count}
        if time.monotonic() - self._api_at > 2.0:
            self._api_at = time.monotonic()
            try:
                self._api = _management_queue(self.settings, self.target)
            except Exception:  # the API is optional: ready and consumers still show
                self._api = {}
        figures["unacked"] = self._api.get("messages_unacknowledged")
        figures["backlog"] = figures["ready"]
        return figures

    def _redis(self) -> dict[str, Any]:
        from brokerlab.workers import _redis_connect

        if self._conn is None:
            self._conn = _redis_connect(self.settings, self.name, timeout=2.0)
        client = self._conn
        if self.kind == "list":
            length = client.llen(self.target)
            return {"length": length, "backlog": length}
        if self.kind == "pubsub":
            subscribers = dict(client.pubsub_numsub(self.target)).get(self.target, 0)
            return {"subscribers": subscribers, "backlog": None}
        import redis

        try:
            groups = client.xinfo_groups(self.target)
        except redis.ResponseError:  # no such key: nothing was ever added
            return {"error": f"stream {self.target} does not exist (yet)"}
        mine = [g for g in groups if g.get("name") == self.group]
        if not mine:
            return {"error": f"stream {self.target} has no group {self.group}"}
        pending, lag = mine[0].get("pending", 0), mine[0].get("lag")
        summary = client.xpending(self.target, self.group) if pending else {}
        per_consumer = {c["name"]: c["pending"] for c in summary.get("consumers") or []}
        return {"length": client.xlen(self.target), "pending": pending, "lag": lag,
                "pending_by_consumer": per_consumer, "backlog": pending + (lag or 0)}

    def _kafka(self) -> dict[str, Any]:
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec

        from brokerlab.clients import kafka_admin

        if self._conn is None:
            self._conn = kafka_admin(self.settings, timeout=2.0, client_id=self.name)
        admin = self._conn
        if not self._partitions:
            described = admin.describe_topics([self.target])
            self._partitions = [TopicPartition(self.target, p["partition_index"])
                                for d in described for p in d.get("partitions", [])]
            self._partitions.sort(key=lambda tp: tp.partition)
            if not self._partitions:
                return {"error": f"topic {self.target} does not exist (yet)"}
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in self._partitions},
                                            timeout_ms=1500)
        committed = admin.list_group_offsets(self.group).get(self.group, {})
        partitions = []
        for tp in self._partitions:
            end = ends[tp].offset
            done = committed[tp].offset if tp in committed else None
            partitions.append({"partition": tp.partition, "end": end, "committed": done,
                               "lag": end - (done or 0)})
        lag = sum(p["lag"] for p in partitions)
        figures: dict[str, Any] = {"partitions": partitions, "lag": lag, "backlog": lag}
        try:
            figures.update(self._kafka_members(admin))
        except Exception:  # e.g. the coordinator is loading: the lag still shows
            pass
        return figures

    def _kafka_members(self, admin: Any) -> dict[str, Any]:
        """The group coordinator's view: its state, and the target's partitions each
        member reads, by client id (a panel worker's name; 03.02 teaches it)."""
        found = admin.describe_groups([self.group]).get(self.group) or {}
        members: dict[str, list[int]] = {}
        for member in found.get("members") or []:
            owned = (member.get("member_assignment") or {}).get("assigned_partitions") or []
            name = member.get("client_id") or member.get("member_id") or "?"
            while name in members:  # several clients with one id: keep them apart
                name += "'"
            members[name] = sorted(p for a in owned if a.get("topic") == self.target
                                   for p in a.get("partitions", []))
        return {"members": members, "group_state": str(found.get("group_state") or "?")}


def _management_queue(settings: Any, queue: str, timeout: float = 1.0) -> dict[str, Any]:
    """One queue's row from the RabbitMQ management API (bounded)."""
    import base64
    from urllib.parse import unquote, urlsplit

    from brokerlab.cleanup import rabbitmq_vhost

    amqp = urlsplit(settings.rabbitmq_url)
    user, password = unquote(amqp.username or "guest"), unquote(amqp.password or "guest")
    vhost = quote(rabbitmq_vhost(settings), safe="")
    url = (f"{settings.rabbitmq_management_url.rstrip('/')}/api/queues/{vhost}/"
           f"{quote(queue, safe='')}")
    request = urllib.request.Request(url)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


# ---------------------------------------------------------------- the chart


def _nice(value: float) -> float:
    """The smallest of 1, 2, 5 × 10^k that is >= value (an axis top)."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exponent:
            return float(step * exponent)
    return float(10 * exponent)


def _fmt(value: float) -> str:
    return f"{value / 1000:g}k" if value >= 10_000 else f"{value:g}"


def rate_chart_svg(points: Sequence[tuple[float, float, float, float | None]],
                   window: float = 60.0, width: int = 560, height: int = 150,
                   backlog_label: str = "backlog") -> str:
    """An SVG line chart: sent/s and received/s (left axis), backlog (right axis, dashed).

    `points` are (seconds ago, sent per s, received per s, backlog or None), oldest first.
    Plain SVG in an HTML widget: no plotting library, cheap to redraw twice a second.
    """
    left, right, top, bottom = 44, 52, 22, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    rate_top = _nice(max([max(p[1], p[2]) for p in points] + [1.0]))
    backlogs = [p[3] for p in points if p[3] is not None]
    backlog_top = _nice(max(backlogs + [1.0])) if backlogs else None

    def x(age: float) -> float:
        return left + plot_w * (1 - min(max(age, 0.0), window) / window)

    def y(value: float, top_value: float) -> float:
        return top + plot_h * (1 - min(value, top_value) / top_value)

    def line(index: int, top_value: float, color: str, dash: str = "",
             stroke: float = 1.8) -> str:
        coords = " ".join(f"{x(p[0]):.1f},{y(float(p[index] or 0), top_value):.1f}"
                          for p in points if p[index] is not None)
        if not coords:
            return ""
        extra = f" stroke-dasharray='{dash}'" if dash else ""
        return (f"<polyline fill='none' stroke='{color}' stroke-width='{stroke}'{extra} "
                f"points='{coords}'/>")

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"style='font:10px sans-serif'>",
             f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' "
             f"fill='#fafafa' stroke='#ddd'/>"]
    for frac in (0.0, 0.5, 1.0):
        gy = top + plot_h * (1 - frac)
        parts.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{gy:.1f}' y2='{gy:.1f}' "
                     f"stroke='#e5e5e5'/>")
        parts.append(f"<text x='{left - 4}' y='{gy + 3:.1f}' text-anchor='end' fill='#555'>"
                     f"{_fmt(rate_top * frac)}</text>")
        if backlog_top is not None:
            parts.append(f"<text x='{left + plot_w + 4}' y='{gy + 3:.1f}' fill='#888'>"
                         f"{_fmt(backlog_top * frac)}</text>")
    for age in (window, window / 2, 0):
        label = "now" if age == 0 else f"-{age:g} s"
        parts.append(f"<text x='{x(age):.1f}' y='{height - 6}' text-anchor='middle' "
                     f"fill='#555'>{label}</text>")
    parts.append(line(1, rate_top, "#1f77b4", stroke=3.2))  # under: visible when equal
    parts.append(line(2, rate_top, "#ff7f0e"))
    if backlog_top is not None:
        parts.append(line(3, backlog_top, "#777", "4 3"))
    legend = [("#1f77b4", "sent/s"), ("#ff7f0e", "received/s")]
    if backlog_top is not None:
        legend.append(("#777", f"{backlog_label} (right axis)"))
    lx = left
    for color, label in legend:
        parts.append(f"<rect x='{lx}' y='6' width='10' height='3' fill='{color}'/>"
                     f"<text x='{lx + 14}' y='11' fill='#333'>{html.escape(label)}</text>")
        lx += 24 + 6 * len(label)
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------- the panel


ROW_HEIGHT = "34px"  # the figures table and the button column line up row by row


class _Row:
    """One worker's four buttons (its figures are a line of the panel's table).

    Every worker's figures live in one HTML table, so a redraw is one widget message,
    not one per worker: with ten busy workers that matters for the kernel (each
    message is Python work competing for the GIL).
    """

    def __init__(self, panel: ControlPanel, worker: Worker, label: str) -> None:
        self.worker, self.label = worker, label
        self.buttons: dict[str, widgets.Button] = {}
        for action, icon, tip in (("start", "play", "start this worker"),
                                  ("stop", "stop", "graceful stop: finish, ack, close"),
                                  ("kill", "bolt", "crash: no ack, no clean close"),
                                  ("remove", "trash", "stop and remove this worker")):
            button = widgets.Button(description=action, icon=icon, tooltip=tip,
                                    layout=widgets.Layout(width="92px"))
            button.add_class(f"bl-{action}")
            button.on_click(lambda _b, action=action: getattr(panel, action)(self.worker))
            self.buttons[action] = button
        self.box = widgets.HBox(list(self.buttons.values()),
                                layout=widgets.Layout(height=ROW_HEIGHT,
                                                      align_items="center"))
        self.box.add_class("bl-buttons")
        self.box.add_class(f"bl-buttons-{label}")

    def widgets(self) -> list[widgets.Widget]:
        return [*self.buttons.values(), self.box]


class ControlPanel:
    """Producers and consumers on one broker target, with buttons, sliders and a chart.

    - `broker`: "rabbitmq", "redis" or "kafka"; `kind`: rabbitmq "queue"; redis
      "stream" (default), "list" or "pubsub"; kafka "topic" (default).
    - `name`: what the target is called within the run (`run.queue(name)`, ...;
      default "<broker>-demo"). With the lesson and broker it is the panel's identity:
      re-running a cell that makes the same panel closes the old one first.
    - `producers`, `consumers`: how many workers to add at first (not started unless
      `start=True`); `rate`: messages/s per producer; `work_rate`: messages/s each
      consumer can handle (0 = as fast as it can); `size`: bytes per message.
    """

    def __init__(self, run: Run, broker: str = "rabbitmq", kind: str | None = None, *,
                 name: str | None = None, producers: int = 1, consumers: int = 1,
                 rate: float = 10.0, work_rate: float = 0.0, size: int = 64,
                 prefetch: int = 10, partitions: int = 3, refresh: float = 0.25,
                 lifetime: float = 3600.0, window: float = 60.0, start: bool = False) -> None:
        name = name or f"{broker}-demo"
        if not _NAME_RE.match(name):
            raise ValueError(f"panel name must be lower-case letters, digits and '-', "
                             f"got {name!r}")
        self.run, self.settings, self.name = run, run.settings, name
        self.slot = f"{run.settings.namespace}:{run.lesson}:{broker}:{name}"
        old = _PANELS.get(self.slot)
        if old is not None:
            old.close()  # a re-run cell: the old panel's workers must not live on
        _PANELS[self.slot] = self
        self.prefix = run.name(f"panel-{name}")
        self.prefetch, self.partitions = prefetch, partitions
        self.refresh_seconds, self.lifetime, self.window = refresh, lifetime, window
        self.rate, self.work_rate, self.size = float(rate), float(work_rate), int(size)
        self.workers: list[Worker] = []
        self.rows: dict[str, _Row] = {}
        self.figures: dict[str, Any] = {}
        self.message = ""
        self.closed = False
        self.updates = 0
        self.history: deque[tuple[float, float, float, float | None]] = deque()
        self._numbers = {"producer": 0, "consumer": 0}
        self._labels: dict[str, str] = {}
        self._totals = {"sent": 0, "received": 0}
        self._seen: dict[str, tuple[int, int]] = {}
        self._marks: deque[tuple[float, int, int]] = deque()
        self._worker_rates: dict[str, tuple[float, int, float]] = {}
        self._errors_seen: set[str] = set()
        self._syncing = False
        self._lock = threading.RLock()
        self.broker, self.kind, self.what = "", "", name
        self.target, self.group = "", ""
        self._build_view()
        self._refresher: Worker | None = None
        self.choose(broker, kind, name, producers=producers, consumers=consumers)
        if start:
            self.start_all()
        self.resume()

    # -- building the widgets (main thread) --------------------------------------

    def _build_view(self) -> None:
        self.header = widgets.HTML()
        self.broker_box = widgets.Dropdown(
            options=[(NAMES[b], b) for b in KINDS], description="broker",
            layout=widgets.Layout(width="190px"))
        self.kind_box = widgets.Dropdown(options=["queue"], description="kind",
                                         layout=widgets.Layout(width="170px"))
        self.name_box = widgets.Text(description="name", layout=widgets.Layout(width="220px"))
        self.apply_button = widgets.Button(description="use", icon="check",
                                           tooltip="stop these workers, use this target",
                                           layout=widgets.Layout(width="70px"))
        self.apply_button.on_click(lambda _b: self.choose(
            self.broker_box.value, self.kind_box.value, self.name_box.value))
        self.broker_box.observe(self._on_broker_box, names="value")

        def action(label: str, icon: str, cls: str, method: Callable[[], Any],
                   tip: str) -> widgets.Button:
            button = widgets.Button(description=label, icon=icon, tooltip=tip,
                                    layout=widgets.Layout(width="auto"))
            button.add_class(cls)
            button.on_click(lambda _b: method())
            return button

        self.buttons = {
            "add_producer": action("producer", "plus", "bl-add-producer", self.add_producer,
                                   "add a producer (stopped)"),
            "add_consumer": action("consumer", "plus", "bl-add-consumer", self.add_consumer,
                                   "add a consumer (stopped)"),
            "start_all": action("start all", "play", "bl-start-all", self.start_all,
                                "start every worker"),
            "stop_all": action("stop all", "stop", "bl-stop-all", self.stop_all,
                               "stop every worker gracefully"),
            "resume": action("resume view", "refresh", "bl-resume", self.resume,
                             "restart the live view"),
        }
        slider = {"min": 0, "max": MAX_RATE, "step": 1, "continuous_update": False,
                  "style": {"description_width": "initial"},
                  "layout": widgets.Layout(width="300px")}
        self.rate_slider = widgets.IntSlider(value=round(self.rate),
                                             description="send/s per producer", **slider)
        self.work_slider = widgets.IntSlider(value=round(self.work_rate),
                                             description="work/s per consumer", **slider)
        self.size_box = widgets.IntText(value=self.size, description="bytes/msg",
                                        style={"description_width": "initial"},
                                        layout=widgets.Layout(width="150px"))
        self.rate_slider.observe(lambda ch: self._from_widget(self.set_rate, ch["new"],
                                                              "producers"), names="value")
        self.work_slider.observe(lambda ch: self._from_widget(self.set_rate, ch["new"],
                                                              "consumers"), names="value")
        self.size_box.observe(lambda ch: self._from_widget(self.set_size, ch["new"]),
                              names="value")
        self.table = widgets.HTML()
        self.table.add_class("bl-table")
        self.buttons_box = widgets.VBox()
        self.rows_box = widgets.HBox([self.table, self.buttons_box])
        self.figures_html = widgets.HTML()
        self.chart = widgets.HTML()
        self.message_html = widgets.HTML()
        self.message_html.add_class("bl-message")
        hint = widgets.HTML("<span style='color:#666'>0 = flat out</span>")
        self.view = widgets.VBox([
            self.header,
            widgets.HBox([self.broker_box, self.kind_box, self.name_box, self.apply_button]),
            widgets.HBox([*[self.buttons[k] for k in ("add_producer", "add_consumer",
                                                      "start_all", "stop_all")],
                          self.size_box, self.buttons["resume"]]),
            widgets.HBox([self.rate_slider, self.work_slider, hint]),
            self.rows_box, self.figures_html, self.chart, self.message_html,
        ], layout=widgets.Layout(border="1px solid #ccc", padding="6px", width="fit-content"))
        self.view.add_class("bl-panel")
        self._static = [w for w in self.view.children if isinstance(w, widgets.Widget)]
        self._static += [*self.view.children[1].children, *self.view.children[2].children,
                         *self.view.children[3].children, self.table, self.buttons_box]

    def _on_broker_box(self, change: dict[str, Any]) -> None:
        kinds = KINDS.get(change["new"], ())
        self.kind_box.options = list(kinds)
        if kinds:
            self.kind_box.value = DEFAULT_KIND[change["new"]]

    def _from_widget(self, method: Callable[..., Any], *args: Any) -> None:
        if not self._syncing:
            method(*args)

    def _sync(self, box: widgets.Widget, value: Any) -> None:
        """Set a control's value without its observer calling us back."""
        self._syncing = True
        try:
            box.value = value
        finally:
            self._syncing = False

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.view)

    def __repr__(self) -> str:
        return (f"<ControlPanel {self.broker} {self.kind} {self.target} "
                f"workers={len(self.workers)} updates={self.updates}>")

    # -- messages ------------------------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        """Show a message in the panel (errors in red); also kept in `.message`."""
        self.message = text
        color = "#cf222e" if error else "#1a7f37"
        mark = "⚠ " if error else ""
        if not self.closed:
            self.message_html.value = (f"<span style='color:{color}'>{mark}"
                                       f"{html.escape(text)}</span>")

    # -- choosing the target -------------------------------------------------------

    @_guarded
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
        if not _NAME_RE.match(what):
            raise ValueError(f"a name uses lower-case letters, digits and '-', got {what!r}")
        if producers is None:
            producers = sum(w.role == "producer" for w in self.workers)
        if consumers is None:
            consumers = sum(w.role == "consumer" for w in self.workers)
        with self._lock:
            self._drop_all_workers()
            self.broker, self.kind, self.what = broker, kind, what
            run = self.run
            if broker == "rabbitmq":
                self.target, self.group = run.queue(what), ""
            elif broker == "redis":
                self.target = run.key(f"{what}-{kind}")
                self.group = run.name(f"{what}-group") if kind == "stream" else ""
            else:
                self.target, self.group = run.topic(what), run.group(what)
            self.history.clear()
            self._marks.clear()
            self.figures = {}
        for cls in list(self.view._dom_classes):
            if cls.startswith("bl-panel-"):
                self.view.remove_class(cls)
        self.view.add_class(f"bl-panel-{broker}")
        self._sync(self.broker_box, broker)
        self.kind_box.options = list(KINDS[broker])
        self._sync(self.kind_box, kind)
        self._sync(self.name_box, what)
        self._draw_header()
        self.say(f"{NAMES[broker]} {KIND_LABEL[kind]} {self.target}: preparing…")
        ready = self._prepare_target()
        for _ in range(producers):
            self._add("producer")
        for _ in range(consumers):
            self._add("consumer")
        if ready:
            self.say(f"ready: {NAMES[broker]} {KIND_LABEL[kind]} {self.target}")
        return self.target

    def _prepare_target(self) -> bool:
        """Create the queue / stream group / topic if missing (bounded, idempotent);
        a message in the panel if the broker does not answer."""
        try:
            if self.broker == "rabbitmq":
                self._declare_queue()
            elif self.broker == "redis" and self.kind == "stream":
                from brokerlab.workers import _redis_connect, ensure_stream_group

                client = _redis_connect(self.settings, f"{self.prefix}-setup", timeout=3.0)
                try:
                    ensure_stream_group(client, self.target, self.group)
                finally:
                    client.close()
                    client.connection_pool.disconnect()
            elif self.broker == "kafka":
                self._create_topic()
            return True
        except Exception as exc:
            self.say(f"{NAMES[self.broker]} does not answer at "
                     f"{self.settings.display_url(self.broker)} ({_describe(exc)}). "
                     f"Start it with: {START_HINT[self.broker]}", error=True)
            return False

    def _declare_queue(self) -> None:
        import pika

        from brokerlab.clients import rabbitmq_channel

        try:
            with rabbitmq_channel(self.settings, timeout=3.0) as channel:
                channel.queue_declare(self.target,
                                      arguments={"x-max-length": QUEUE_MAX_LENGTH})
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:  # 406: it exists with other arguments; use it as is
                raise

    def _create_topic(self) -> None:
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        from brokerlab.clients import kafka_admin

        admin = kafka_admin(self.settings, timeout=3.0)
        try:
            try:
                admin.create_topics([NewTopic(self.target, self.partitions, 1)])
            except TopicAlreadyExistsError:
                pass
        finally:
            admin.close()

    # -- adding and removing workers ---------------------------------------------

    @_guarded
    def add_producer(self) -> Worker:
        """Add a producer (stopped): button "+ producer". Returns it."""
        worker = self._add("producer")
        self.say(f"{self._labels[worker.name]} added (producer, not started)")
        return worker

    @_guarded
    def add_consumer(self) -> Worker:
        """Add a consumer (stopped): button "+ consumer". Returns it."""
        worker = self._add("consumer")
        self.say(f"{self._labels[worker.name]} added (consumer, not started)")
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
            size=self.size, prefetch=self.prefetch, settings=self.settings, start=False)
        row = _Row(self, worker, label)
        with self._lock:
            self.workers.append(worker)
            self.rows[worker.name] = row
            self._labels[worker.name] = label
        self.buttons_box.children = [self.rows[w.name].box for w in self.workers]
        self._draw_rows()
        return worker

    @_guarded
    def remove(self, which: int | str | Worker) -> Worker:
        """Stop a worker gracefully and take it off the panel: its button "remove"."""
        worker = self._worker(which)
        worker.stop()
        with self._lock:
            self.workers = [w for w in self.workers if w is not worker]
            row = self.rows.pop(worker.name)
        self.buttons_box.children = [self.rows[w.name].box for w in self.workers]
        self._draw_rows()
        for widget in row.widgets():
            widget.close()
        self.say(f"{row.label} removed")
        return worker

    def _drop_all_workers(self) -> None:
        self._stop_workers(self.workers, kill=False)
        with self._lock:
            rows = list(self.rows.values())
            self.workers, self.rows = [], {}
            self._numbers = {"producer": 0, "consumer": 0}  # a new line-up: p1, c1, ...
            self._seen.clear()
            self._worker_rates.clear()
        self.buttons_box.children = []
        self._draw_rows()
        for row in rows:
            for widget in row.widgets():
                widget.close()

    @staticmethod
    def _stop_workers(workers: list[Worker], kill: bool) -> None:
        """Stop several workers in parallel (set every stop event, then join)."""
        for worker in workers:
            if kill:
                worker.crashed = True
            worker._stop.set()
        for worker in workers:
            worker.stop()

    def _worker(self, which: int | str | Worker) -> Worker:
        if isinstance(which, Worker):
            if any(w is which for w in self.workers):
                return which
            raise ValueError(f"{which.name} is not on this panel")
        if isinstance(which, bool) or not isinstance(which, (int, str)):
            raise ValueError(f"say which worker: an index, a label like 'p1', got {which!r}")
        if isinstance(which, int):
            if 0 <= which < len(self.workers):
                return self.workers[which]
            have = (f"0..{len(self.workers) - 1}" if self.workers else "none yet")
            raise ValueError(f"no worker {which}: this panel has {len(self.workers)} "
                             f"(indexes {have})")
        for worker in self.workers:
            if which in (worker.name, self._labels.get(worker.name)):
                return worker
        have = ", ".join(self._labels[w.name] for w in self.workers) or "none"
        raise ValueError(f"no worker {which!r} on this panel (have {have})")

    @property
    def producers(self) -> list[Worker]:
        return [w for w in self.workers if w.role == "producer"]

    @property
    def consumers(self) -> list[Worker]:
        return [w for w in self.workers if w.role == "consumer"]

    # -- start, stop, kill -------------------------------------------------------------

    @_guarded
    def start(self, which: int | str | Worker) -> Worker:
        """Start (or restart) one worker: its button "start". `which`: index or 'p1'."""
        worker = self._worker(which)
        # e.g. a queue lost when the broker restarted; if the broker does not answer,
        # that message stays and the worker's own error follows
        ready = worker.running or self._prepare_target()
        worker.start()
        self._draw_rows()
        if ready:
            self.say(f"{self._labels[worker.name]} started")
        return worker

    @_guarded
    def stop(self, which: int | str | Worker) -> Worker:
        """Graceful stop: finish the message in hand, ack it, close cleanly. Button "stop"."""
        worker = self._worker(which)
        worker.stop()
        self._draw_rows()
        means = (STOP_MEANS[self.kind] if worker.role == "consumer"
                 else "its connection closed cleanly")
        self.say(f"{self._labels[worker.name]} stopped gracefully: {means}")
        return worker

    @_guarded
    def kill(self, which: int | str | Worker) -> Worker:
        """Crash: no ack for what it holds, no clean close. Button "kill"."""
        worker = self._worker(which)
        worker.kill()
        self._draw_rows()
        means = (KILL_MEANS[self.kind] if worker.role == "consumer"
                 else "its connection dropped without a clean close"
                 + (", its unsent buffer lost" if self.broker == "kafka" else ""))
        self.say(f"{self._labels[worker.name]} killed: {means}")
        return worker

    @_guarded
    def start_all(self) -> int:
        """Start every worker that is not running; return how many are running."""
        ready = all(w.running for w in self.workers) or self._prepare_target()
        for worker in list(self.workers):
            worker.start()
        self._draw_rows()
        running = sum(w.running for w in self.workers)
        if ready:
            self.say(f"{running} worker(s) running")
        return running

    @_guarded
    def stop_all(self) -> int:
        """Stop every worker gracefully (in parallel); return how many there are."""
        workers = list(self.workers)
        self._stop_workers(workers, kill=False)
        self._draw_rows()
        self.say("every worker stopped gracefully")
        return len(workers)

    # -- rate and size -----------------------------------------------------------------

    @_guarded
    def set_rate(self, rate: float, who: str | int = "producers") -> float:
        """Messages per second (0 = flat out) for "producers" (the "send/s" slider),
        "consumers" (the "work/s" slider: how fast each can handle messages), "all",
        or one worker (index or label). Applies at once, also to running workers."""
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                or not math.isfinite(rate):
            raise ValueError(f"a rate is a number of messages per second, got {rate!r}")
        if rate < 0:
            raise ValueError(f"a rate cannot be negative ({rate:g}); 0 means flat out")
        if who == "producers":
            targets = self.producers
            self.rate = float(rate)
            self._sync(self.rate_slider, min(round(rate), MAX_RATE))
        elif who == "consumers":
            targets = self.consumers
            self.work_rate = float(rate)
            self._sync(self.work_slider, min(round(rate), MAX_RATE))
        elif who == "all":
            targets = list(self.workers)
            self.rate = self.work_rate = float(rate)
            self._sync(self.rate_slider, min(round(rate), MAX_RATE))
            self._sync(self.work_slider, min(round(rate), MAX_RATE))
        else:
            targets = [self._worker(who)]
        for worker in targets:
            worker.rate = float(rate)
        self._draw_rows()
        whom = who if isinstance(who, str) and who in ("producers", "consumers", "all") \
            else self._labels[targets[0].name]
        self.say(f"rate for {whom}: " + (f"{rate:g} messages/s" if rate else "flat out"))
        return float(rate)

    @_guarded
    def set_size(self, size: int) -> int:
        """Bytes per generated message (the "bytes/msg" box); applies to running producers."""
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError(f"a message size is a whole number of bytes, got {size!r}")
        if not 0 <= size <= MAX_SIZE:
            raise ValueError(f"message size must be 0..{MAX_SIZE} bytes, got {size}")
        self.size = size
        self._sync(self.size_box, size)
        for worker in self.workers:
            worker.size = size
        self.say(f"producers now send messages of {size} bytes")
        return size

    # -- figures -----------------------------------------------------------------------

    def broker_figures(self) -> dict[str, Any]:
        """Ask the broker now (this thread, short-lived connections) for the target's
        figures: what the panel shows. Never raises: {"error": ...} if it cannot."""
        probe = _Probe(self)
        try:
            return probe.read()
        except Exception as exc:
            return {"error": _describe(exc)}
        finally:
            probe.close()

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

    @_guarded
    def refresh(self) -> dict[str, Any]:
        """Redraw everything now, with fresh broker figures; returns the figures."""
        self.figures = self.broker_figures()
        self._tick(time.monotonic())
        return self.figures

    # -- drawing (the refresher thread, or the main thread after an action) ------------

    def _draw_header(self, live: bool | None = None) -> None:
        if live is None:
            live = self._refresher is not None and self._refresher.running
        state = ("<span style='color:#1a7f37'>● live</span>" if live
                 else "<span style='color:#999'>○ paused</span>")
        self.header.value = (
            f"<b>{NAMES.get(self.broker, '?')} · {KIND_LABEL.get(self.kind, '')}</b> "
            f"<code>{html.escape(self.target)}</code>"
            + (f" · group <code>{html.escape(self.group)}</code>" if self.group else "")
            + f" &nbsp; {state} · update <span class='bl-tick'>{self.updates}</span>")

    def _draw_rows(self) -> None:
        """The workers' table (one widget value) and their buttons' enabled states."""
        workers = list(self.workers)
        lines = [self._row_html(w) for w in workers]
        self.table.value = (
            "<table style='border-collapse:collapse'>" + "".join(lines) + "</table>"
            if lines else "<i style='color:#666'>no workers: add a producer or a "
                          "consumer</i>")
        for worker in workers:
            row = self.rows.get(worker.name)
            if row is not None:
                running = worker.running
                row.buttons["start"].disabled = running
                row.buttons["stop"].disabled = not running
                row.buttons["kill"].disabled = not running

    def _row_html(self, worker: Worker) -> str:
        c = worker.counters
        state = worker.state
        label = self._labels.get(worker.name, "?")
        colors = {"running": "#1a7f37", "killed": "#cf222e", "error": "#cf222e",
                  "stopping": "#9a6700"}
        rate = self._worker_rates.get(worker.name, (0.0, 0, 0.0))[2]
        setting = "flat out" if worker.rate <= 0 else f"set {worker.rate:g}/s"
        if worker.role == "producer":
            figures = (f"sent <b class='bl-sent'>{c.sent}</b>"
                       + (f" · acked <b class='bl-acked'>{c.acked}</b>"
                          if worker.broker == "kafka" else ""))
        else:
            acked = (f"<b class='bl-acked'>{c.acked}</b>" if self.kind != "pubsub"
                     else "<b class='bl-acked'>–</b>")
            figures = (f"received <b class='bl-received'>{c.received}</b> · "
                       f"acked {acked}")
        failed = (f" · <span style='color:#cf222e'>failed <b class='bl-failed'>{c.failed}"
                  f"</b></span>" if c.failed else "")
        why = (f" title='{html.escape(_describe(worker.error), quote=True)}'"
               if worker.error is not None else "")
        cell = "padding:0 8px 0 0;white-space:nowrap"
        return (
            f"<tr class='bl-row bl-row-{label}' style='height:{ROW_HEIGHT}'>"
            f"<td style='{cell};width:28px'><b>{label}</b></td>"
            f"<td style='{cell};width:70px'>{worker.role}</td>"
            f"<td class='bl-state'{why} style='{cell};width:62px;"
            f"color:{colors.get(state, '#555')}'>{state}</td>"
            f"<td style='{cell};width:250px'>{figures}{failed}</td>"
            f"<td style='{cell};width:120px;color:#555'>{rate:.0f}/s ({setting})</td></tr>")

    def _figures_html(self) -> str:
        f = self.figures
        if not f:
            return "<i style='color:#666'>broker figures: waiting for the first reading…</i>"
        if "error" in f:
            return (f"<span style='color:#cf222e'>broker figures: "
                    f"{html.escape(str(f['error']))}</span>")

        def b(key: str, value: Any) -> str:
            shown = "…" if value is None else value
            return f"<b class='bl-fig-{key}'>{shown}</b>"

        if self.broker == "rabbitmq":
            return (f"queue: ready {b('ready', f.get('ready'))} · unacked "
                    f"{b('unacked', f.get('unacked'))} <span style='color:#666'>(management "
                    f"API, refreshed every ~5 s)</span> · consumers "
                    f"{b('consumers', f.get('consumers'))}")
        if self.kind == "list":
            return f"list length (LLEN) {b('length', f.get('length'))}"
        if self.kind == "pubsub":
            return (f"subscribers (PUBSUB NUMSUB) {b('subscribers', f.get('subscribers'))}"
                    " <span style='color:#666'>— nothing is stored: a message published "
                    "while nobody listens is gone</span>")
        if self.kind == "stream":
            by = ", ".join(f"{self._labels.get(k, k)}: {v}"
                           for k, v in f.get("pending_by_consumer", {}).items())
            return (f"stream length (XLEN) {b('length', f.get('length'))} · pending "
                    f"(XPENDING) {b('pending', f.get('pending'))}"
                    + (f" ({html.escape(by)})" if by else "")
                    + f" · not yet delivered (group lag) {b('lag', f.get('lag'))}")
        cells = " · ".join(
            f"p{p['partition']} <b class='bl-fig-lag-{p['partition']}'>{p['lag']}</b>"
            for p in f.get("partitions", []))
        text = (f"consumer lag per partition: {cells} · total {b('lag', f.get('lag'))} "
                f"<span style='color:#666'>(log end offset − committed offset)</span>")
        if "members" in f:
            named = sorted((self._labels.get(name, name), parts)
                           for name, parts in f["members"].items())
            named.sort(key=lambda item: len(item[0]))  # stable: c2 before c10
            owners = " · ".join(
                f"{html.escape(label)} <b class='bl-fig-owns'>"
                f"{', '.join(f'p{p}' for p in parts) or 'idle'}</b>"
                for label, parts in named)
            text += (f"<br>partitions per consumer: {owners or '<i>no members</i>'} "
                     f"<span style='color:#666'>(group coordinator, "
                     f"{html.escape(str(f.get('group_state')))})</span>")
        return text

    def _tick(self, now: float) -> None:
        """One redraw: counters, rates, header, rows, figures, chart."""
        with self._lock:
            workers = list(self.workers)
        for worker in workers:
            c = worker.counters
            before = self._seen.get(worker.name, (0, 0))
            self._totals["sent"] += max(0, c.sent - before[0])
            self._totals["received"] += max(0, c.received - before[1])
            self._seen[worker.name] = (c.sent, c.received)
            done = c.sent if worker.role == "producer" else c.received
            t0, n0, rate = self._worker_rates.get(worker.name, (now, done, 0.0))
            if now - t0 >= 1.0:
                t0, n0, rate = now, done, (done - n0) / (now - t0)
            self._worker_rates[worker.name] = (t0, n0, rate)
            if worker.error is not None and worker.name not in self._errors_seen:
                self._errors_seen.add(worker.name)
                label = self._labels.get(worker.name, worker.name)
                self.say(f"{label} stopped: {_describe(worker.error)} — is "
                         f"{NAMES[self.broker]} running? ({START_HINT[self.broker]})",
                         error=True)
            elif worker.error is None:
                self._errors_seen.discard(worker.name)
        self._marks.append((now, self._totals["sent"], self._totals["received"]))
        while len(self._marks) > 2 and now - self._marks[1][0] >= 1.0:
            self._marks.popleft()
        t0, s0, r0 = self._marks[0]
        span = now - t0
        sent_rate = (self._totals["sent"] - s0) / span if span > 0 else 0.0
        recv_rate = (self._totals["received"] - r0) / span if span > 0 else 0.0
        self.history.append((now, sent_rate, recv_rate, self.figures.get("backlog")))
        while self.history and now - self.history[0][0] > self.window:
            self.history.popleft()
        self.updates += 1
        self._draw_header()
        self._draw_rows()
        self.figures_html.value = self._figures_html()
        if self.updates % 2 and self.updates > 2:
            return  # the chart (the largest value) redraws every other tick: less traffic
        label = {"rabbitmq": "ready", "kafka": "lag"}.get(
            self.broker, "length" if self.kind == "list" else "pending + lag")
        self.chart.value = rate_chart_svg(
            [(now - t, s, r, b) for t, s, r, b in self.history], self.window,
            backlog_label=label)

    # -- the refresher -------------------------------------------------------------------

    @_guarded
    def resume(self) -> bool:
        """(Re)start the live view: button "resume view" after it paused."""
        if self._refresher is not None and self._refresher.running:
            return True
        self.buttons["resume"].layout.display = "none"
        self._refresher = Worker(f"{self.prefix}-view", self._refresh_loop)
        self._refresher.start()
        self._draw_header()
        return True

    def _refresh_loop(self, w: Worker) -> None:
        """Redraw every `refresh_seconds` until stopped or `lifetime` is reached.

        Broker figures come from a companion reader thread (`<prefix>-reader`), so a slow
        or vanished broker never delays a redraw; only this thread sets widget values.
        """
        started = time.monotonic()
        reader = Worker(f"{self.prefix}-reader", self._read_loop).start()
        try:
            while not w.should_stop() and time.monotonic() - started < self.lifetime:
                began = time.monotonic()
                try:
                    self._tick(began)
                except Exception as exc:  # a redraw must never end the live view
                    w.note(f"redraw failed: {_describe(exc)}")
                w._stop.wait(max(0.05, self.refresh_seconds - (time.monotonic() - began)))
        finally:
            reader.stop()
            if not self.closed:
                self._draw_header(live=False)
                if not w.should_stop():
                    self.say("live view paused (lifetime reached): press 'resume view'")
                    self.buttons["resume"].layout.display = ""

    def _read_loop(self, w: Worker) -> None:
        """Read the broker figures every 0.5 s into `.figures` (no widgets touched here)."""
        probe: _Probe | None = None
        key: tuple[str, str, str] | None = None
        try:
            while not w.should_stop():
                now_key = (self.broker, self.kind, self.target)
                if now_key != key:
                    if probe is not None:
                        probe.close()
                    probe, key = _Probe(self), now_key
                pause = 0.5
                try:
                    figures = probe.read()
                except Exception as exc:  # broker gone: say so, retry in 2 s
                    probe.close()
                    pause = 2.0
                    figures = {"error": f"{NAMES.get(key[0], '?')} does not answer at "
                                        f"{self.settings.display_url(key[0])} "
                                        f"({_describe(exc)}); retrying"}
                if key == (self.broker, self.kind, self.target):
                    self.figures = figures
                w._stop.wait(pause)
        finally:
            if probe is not None:
                probe.close()

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the live view and every worker, close the panel's widgets. Never raises."""
        if self.closed:
            return
        try:
            if self._refresher is not None:
                self._refresher.stop()
            self._stop_workers(list(self.workers), kill=False)
        finally:
            self.closed = True
            if _PANELS.get(self.slot) is self:
                del _PANELS[self.slot]
            for row in list(self.rows.values()):
                for widget in row.widgets():
                    widget.close()
            for widget in [*self._static, self.view]:
                try:
                    widget.close()
                except Exception:
                    pass
