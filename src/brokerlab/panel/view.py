"""A control panel's view: ipywidgets over the model, redrawn live by one thread.

One refresher thread per panel (a Worker named `<prefix>-view`) redraws counters,
broker figures and a rate chart every `refresh` seconds. It only sets widget *values*:
no print, no `with output:` (the ipywidgets advice for widgets updated from threads).
The broker figures are read by a companion thread (`<prefix>-reader`, `probes.read_loop`,
no widgets), so a slow or vanished broker never delays a redraw. Both stop after
`lifetime` seconds; "resume view" starts them again.
"""

from __future__ import annotations

import html
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from brokerlab.health import NAMES, START_HINT
from brokerlab.naming import Run
from brokerlab.panel.model import DEFAULT_KIND, KIND_LABEL, PanelModel, guarded
from brokerlab.panel.probes import Target, describe, read_loop
from brokerlab.panel.workers import KINDS
from brokerlab.workers import Worker

MAX_RATE = 1000      # the sliders' top; set_rate() accepts more
ROW_HEIGHT = "34px"  # the figures table and the button column line up row by row
STATE_COLORS = {"running": "#1a7f37", "killed": "#cf222e", "error": "#cf222e",
                "stopping": "#9a6700"}

_PANELS: dict[str, ControlPanel] = {}


def close_panels(prefix: str = "") -> int:
    """Close every open panel whose workers' names start with `prefix`; return how many."""
    panels = [p for p in list(_PANELS.values()) if p.prefix.startswith(prefix)]
    for panel in panels:
        panel.close()
    return len(panels)


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


# ---------------------------------------------------------------- HTML of the parts


def row_html(worker: Worker, label: str, kind: str, rate: float) -> str:
    """One worker's line of the table: label, role, state, counters, measured rate."""
    c, state = worker.counters, worker.state
    setting = "flat out" if worker.rate <= 0 else f"set {worker.rate:g}/s"
    if worker.role == "producer":
        figures = (f"sent <b class='bl-sent'>{c.sent}</b>"
                   + (f" · acked <b class='bl-acked'>{c.acked}</b>"
                      if worker.broker == "kafka" else ""))
    else:
        acked = f"<b class='bl-acked'>{c.acked if kind != 'pubsub' else '–'}</b>"
        figures = f"received <b class='bl-received'>{c.received}</b> · acked {acked}"
    failed = (f" · <span style='color:#cf222e'>failed <b class='bl-failed'>{c.failed}"
              f"</b></span>" if c.failed else "")
    why = (f" title='{html.escape(describe(worker.error), quote=True)}'"
           if worker.error is not None else "")
    cell = "padding:0 8px 0 0;white-space:nowrap"
    return (
        f"<tr class='bl-row bl-row-{label}' style='height:{ROW_HEIGHT}'>"
        f"<td style='{cell};width:28px'><b>{label}</b></td>"
        f"<td style='{cell};width:70px'>{worker.role}</td>"
        f"<td class='bl-state'{why} style='{cell};width:62px;"
        f"color:{STATE_COLORS.get(state, '#555')}'>{state}</td>"
        f"<td style='{cell};width:250px'>{figures}{failed}</td>"
        f"<td style='{cell};width:120px;color:#555'>{rate:.0f}/s ({setting})</td></tr>")


def figures_html(f: dict[str, Any], target: Target, labels: dict[str, str]) -> str:
    """What the broker says about the target, in words and numbers."""
    if not f:
        return "<i style='color:#666'>broker figures: waiting for the first reading…</i>"
    if "error" in f:
        return (f"<span style='color:#cf222e'>broker figures: "
                f"{html.escape(str(f['error']))}</span>")

    def b(key: str, value: Any) -> str:
        return f"<b class='bl-fig-{key}'>{'…' if value is None else value}</b>"

    grey = "<span style='color:#666'>{}</span>".format
    if target.broker == "rabbitmq":
        return (f"queue: ready {b('ready', f.get('ready'))} · unacked "
                f"{b('unacked', f.get('unacked'))} "
                f"{grey('(management API, refreshed every ~5 s)')} · consumers "
                f"{b('consumers', f.get('consumers'))}")
    if target.kind == "list":
        return f"list length (LLEN) {b('length', f.get('length'))}"
    if target.kind == "pubsub":
        return (f"subscribers (PUBSUB NUMSUB) {b('subscribers', f.get('subscribers'))} "
                + grey("— nothing is stored: a message published while nobody listens "
                       "is gone"))
    if target.kind == "stream":
        by = ", ".join(f"{labels.get(k, k)}: {v}"
                       for k, v in f.get("pending_by_consumer", {}).items())
        return (f"stream length (XLEN) {b('length', f.get('length'))} · pending "
                f"(XPENDING) {b('pending', f.get('pending'))}"
                + (f" ({html.escape(by)})" if by else "")
                + f" · not yet delivered (group lag) {b('lag', f.get('lag'))}")
    cells = " · ".join(
        f"p{p['partition']} <b class='bl-fig-lag-{p['partition']}'>{p['lag']}</b>"
        for p in f.get("partitions", []))
    text = (f"consumer lag per partition: {cells} · total {b('lag', f.get('lag'))} "
            + grey("(log end offset − committed offset)"))
    if "members" in f:
        named = sorted((labels.get(name, name), parts) for name, parts in f["members"].items())
        named.sort(key=lambda item: len(item[0]))  # stable: c2 before c10
        owners = " · ".join(
            f"{html.escape(label)} <b class='bl-fig-owns'>"
            f"{', '.join(f'p{p}' for p in parts) or 'idle'}</b>" for label, parts in named)
        text += (f"<br>partitions per consumer: {owners or '<i>no members</i>'} "
                 + grey(f"(group coordinator, {html.escape(str(f.get('group_state')))})"))
    return text


class Rates:
    """Messages per second, per worker and in total, from the workers' counters."""

    def __init__(self) -> None:
        self.per_worker: dict[str, tuple[float, int, float]] = {}  # name: (t0, n0, rate)
        self.totals = {"sent": 0, "received": 0}
        self.seen: dict[str, tuple[int, int]] = {}
        self.marks: deque[tuple[float, int, int]] = deque()

    def clear(self) -> None:
        self.per_worker.clear()
        self.seen.clear()
        self.marks.clear()

    def update(self, workers: list[Worker], now: float) -> tuple[float, float]:
        """Take in the counters now; return (sent/s, received/s) over about a second."""
        for worker in workers:
            c = worker.counters
            before = self.seen.get(worker.name, (0, 0))
            self.totals["sent"] += max(0, c.sent - before[0])
            self.totals["received"] += max(0, c.received - before[1])
            self.seen[worker.name] = (c.sent, c.received)
            done = c.sent if worker.role == "producer" else c.received
            t0, n0, rate = self.per_worker.get(worker.name, (now, done, 0.0))
            if now - t0 >= 1.0:
                t0, n0, rate = now, done, (done - n0) / (now - t0)
            self.per_worker[worker.name] = (t0, n0, rate)
        self.marks.append((now, self.totals["sent"], self.totals["received"]))
        while len(self.marks) > 2 and now - self.marks[1][0] >= 1.0:
            self.marks.popleft()
        t0, s0, r0 = self.marks[0]
        span = now - t0
        if span <= 0:
            return 0.0, 0.0
        return (self.totals["sent"] - s0) / span, (self.totals["received"] - r0) / span

    def of(self, worker: Worker) -> float:
        return self.per_worker.get(worker.name, (0.0, 0, 0.0))[2]


class Row:
    """One worker's four buttons (its figures are a line of the panel's one table, so a
    redraw is one widget message, not one per worker: that matters with ten busy workers)."""

    def __init__(self, panel: PanelModel, worker: Worker, label: str) -> None:
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
                                layout=widgets.Layout(height=ROW_HEIGHT, align_items="center"))
        self.box.add_class("bl-buttons")
        self.box.add_class(f"bl-buttons-{label}")

    def enable(self) -> None:
        running = self.worker.running
        self.buttons["start"].disabled = running
        self.buttons["stop"].disabled = self.buttons["kill"].disabled = not running

    def close(self) -> None:
        for widget in [*self.buttons.values(), self.box]:
            widget.close()


def _button(label: str, icon: str, cls: str, method: Callable[[], Any],
            tip: str) -> widgets.Button:
    button = widgets.Button(description=label, icon=icon, tooltip=tip,
                            layout=widgets.Layout(width="auto"))
    button.add_class(cls)
    button.on_click(lambda _b: method())
    return button


class ControlPanel(PanelModel):
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
        super().__init__(run, name=name, rate=rate, work_rate=work_rate, size=size,
                         prefetch=prefetch, partitions=partitions)
        self.slot = f"{run.settings.namespace}:{run.lesson}:{broker}:{name}"
        old = _PANELS.get(self.slot)
        if old is not None:
            old.close()  # a re-run cell: the old panel's workers must not live on
        _PANELS[self.slot] = self
        self.refresh_seconds, self.lifetime, self.window = refresh, lifetime, window
        self.rows: dict[str, Row] = {}
        self.updates = 0
        self.history: deque[tuple[float, float, float, float | None]] = deque()
        self.rates = Rates()
        self._errors_seen: set[str] = set()
        self._syncing = False
        self._refresher: Worker | None = None
        self._build_view()
        self.choose(broker, kind, name, producers=producers, consumers=consumers)
        if start:
            self.start_all()
        self.resume()

    # -- widgets (main thread) -------------------------------------------------------

    def _build_view(self) -> None:
        layout = widgets.Layout
        self.header = widgets.HTML()
        self.broker_box = widgets.Dropdown(options=[(NAMES[b], b) for b in KINDS],
                                           description="broker", layout=layout(width="190px"))
        self.kind_box = widgets.Dropdown(options=["queue"], description="kind",
                                         layout=layout(width="170px"))
        self.name_box = widgets.Text(description="name", layout=layout(width="220px"))
        self.apply_button = _button("use", "check", "bl-use", lambda: self.choose(
            self.broker_box.value, self.kind_box.value, self.name_box.value),
            "stop these workers, use this target")
        self.broker_box.observe(self._on_broker_box, names="value")
        self.buttons = {
            "add_producer": _button("producer", "plus", "bl-add-producer", self.add_producer,
                                    "add a producer (stopped)"),
            "add_consumer": _button("consumer", "plus", "bl-add-consumer", self.add_consumer,
                                    "add a consumer (stopped)"),
            "start_all": _button("start all", "play", "bl-start-all", self.start_all,
                                 "start every worker"),
            "stop_all": _button("stop all", "stop", "bl-stop-all", self.stop_all,
                                "stop every worker gracefully"),
            "resume": _button("resume view", "refresh", "bl-resume", self.resume,
                              "restart the live view"),
        }
        slider = {"min": 0, "max": MAX_RATE, "step": 1, "continuous_update": False,
                  "style": {"description_width": "initial"}, "layout": layout(width="300px")}
        self.rate_slider = widgets.IntSlider(value=round(self.rate),
                                             description="send/s per producer", **slider)
        self.work_slider = widgets.IntSlider(value=round(self.work_rate),
                                             description="work/s per consumer", **slider)
        self.size_box = widgets.IntText(value=self.size, description="bytes/msg",
                                        style={"description_width": "initial"},
                                        layout=layout(width="150px"))
        self.rate_slider.observe(lambda ch: self._from_widget(self.set_rate, ch["new"],
                                                              "producers"), names="value")
        self.work_slider.observe(lambda ch: self._from_widget(self.set_rate, ch["new"],
                                                              "consumers"), names="value")
        self.size_box.observe(lambda ch: self._from_widget(self.set_size, ch["new"]),
                              names="value")
        self.table = widgets.HTML()
        self.table.add_class("bl-table")
        self.buttons_box = widgets.VBox()
        self.figures_html = widgets.HTML()
        self.chart = widgets.HTML()
        self.message_html = widgets.HTML()
        self.message_html.add_class("bl-message")
        lines = [
            widgets.HBox([self.broker_box, self.kind_box, self.name_box, self.apply_button]),
            widgets.HBox([*[self.buttons[k] for k in ("add_producer", "add_consumer",
                                                      "start_all", "stop_all")],
                          self.size_box, self.buttons["resume"]]),
            widgets.HBox([self.rate_slider, self.work_slider,
                          widgets.HTML("<span style='color:#666'>0 = flat out</span>")]),
            widgets.HBox([self.table, self.buttons_box]),
        ]
        self.view = widgets.VBox(
            [self.header, *lines, self.figures_html, self.chart, self.message_html],
            layout=layout(border="1px solid #ccc", padding="6px", width="fit-content"))
        self.view.add_class("bl-panel")
        self._static = [self.view, *self.view.children,
                        *[w for line in lines for w in line.children]]

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

    # -- the model's hooks -------------------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        super().say(text, error)
        color, mark = ("#cf222e", "⚠ ") if error else ("#1a7f37", "")
        if not self.closed:
            self.message_html.value = (f"<span style='color:{color}'>{mark}"
                                       f"{html.escape(text)}</span>")

    def worker_added(self, worker: Worker, label: str) -> None:
        self.rows[worker.name] = Row(self, worker, label)
        self.buttons_box.children = [self.rows[w.name].box for w in self.workers]
        self.draw_rows()

    def worker_removed(self, worker: Worker) -> None:
        row = self.rows.pop(worker.name, None)
        self.buttons_box.children = [self.rows[w.name].box for w in self.workers
                                     if w.name in self.rows]
        self.draw_rows()
        if row is not None:
            row.close()

    def changed(self) -> None:
        self._sync(self.rate_slider, min(round(self.rate), MAX_RATE))
        self._sync(self.work_slider, min(round(self.work_rate), MAX_RATE))
        self._sync(self.size_box, self.size)
        self.draw_rows()

    def retargeted(self) -> None:
        self.history.clear()
        self.rates.clear()
        for cls in list(self.view._dom_classes):
            if cls.startswith("bl-panel-"):
                self.view.remove_class(cls)
        self.view.add_class(f"bl-panel-{self.broker}")
        self._sync(self.broker_box, self.broker)
        self.kind_box.options = list(KINDS[self.broker])
        self._sync(self.kind_box, self.kind)
        self._sync(self.name_box, self.what)
        self.draw_header()

    # -- drawing (the refresher thread, or the main thread after an action) -------------

    def draw_header(self, live: bool | None = None) -> None:
        if live is None:
            live = self._refresher is not None and self._refresher.running
        state = ("<span style='color:#1a7f37'>● live</span>" if live
                 else "<span style='color:#999'>○ paused</span>")
        self.header.value = (
            f"<b>{NAMES.get(self.broker, '?')} · {KIND_LABEL.get(self.kind, '')}</b> "
            f"<code>{html.escape(self.target)}</code>"
            + (f" · group <code>{html.escape(self.group)}</code>" if self.group else "")
            + f" &nbsp; {state} · update <span class='bl-tick'>{self.updates}</span>")

    def draw_rows(self) -> None:
        """The workers' table (one widget value) and their buttons' enabled states."""
        workers = list(self.workers)
        lines = [row_html(w, self.labels.get(w.name, "?"), self.kind, self.rates.of(w))
                 for w in workers]
        self.table.value = (
            "<table style='border-collapse:collapse'>" + "".join(lines) + "</table>"
            if lines else "<i style='color:#666'>no workers: add a producer or a consumer</i>")
        for worker in workers:
            if worker.name in self.rows:
                self.rows[worker.name].enable()

    def _tick(self, now: float) -> None:
        """One redraw: counters, rates, header, rows, figures, chart."""
        with self._lock:
            workers = list(self.workers)
        sent_rate, recv_rate = self.rates.update(workers, now)
        for worker in workers:
            if worker.error is not None and worker.name not in self._errors_seen:
                self._errors_seen.add(worker.name)
                self.say(f"{self.labels.get(worker.name, worker.name)} stopped: "
                         f"{describe(worker.error)} — is {NAMES[self.broker]} running? "
                         f"({START_HINT[self.broker]})", error=True)
            elif worker.error is None:
                self._errors_seen.discard(worker.name)
        self.history.append((now, sent_rate, recv_rate, self.figures.get("backlog")))
        while self.history and now - self.history[0][0] > self.window:
            self.history.popleft()
        self.updates += 1
        self.draw_header()
        self.draw_rows()
        self.figures_html.value = figures_html(self.figures, self.current, self.labels)
        if self.updates % 2 and self.updates > 2:
            return  # the chart (the largest value) redraws every other tick: less traffic
        label = {"rabbitmq": "ready", "kafka": "lag"}.get(
            self.broker, "length" if self.kind == "list" else "pending + lag")
        self.chart.value = rate_chart_svg(
            [(now - t, s, r, b) for t, s, r, b in self.history], self.window,
            backlog_label=label)

    @guarded
    def refresh(self) -> dict[str, Any]:
        """Redraw everything now, with fresh broker figures; returns the figures."""
        self.figures = self.broker_figures()
        self._tick(time.monotonic())
        return self.figures

    # -- the live view -----------------------------------------------------------------

    @guarded
    def resume(self) -> bool:
        """(Re)start the live view: button "resume view" after it paused."""
        if self._refresher is not None and self._refresher.running:
            return True
        self.buttons["resume"].layout.display = "none"
        self._refresher = Worker(f"{self.prefix}-view", self._refresh_loop).start()
        self.draw_header()
        return True

    def _store(self, target: Target, figures: dict[str, Any]) -> None:
        if target == self.current:  # a reading of the previous target is dropped
            self.figures = figures

    def _refresh_loop(self, w: Worker) -> None:
        """Redraw every `refresh_seconds` until stopped or `lifetime` is reached."""
        started = time.monotonic()
        reader = Worker(f"{self.prefix}-reader", lambda r: read_loop(
            r, lambda: self.current, self._store, self.settings)).start()
        try:
            while not w.should_stop() and time.monotonic() - started < self.lifetime:
                began = time.monotonic()
                try:
                    self._tick(began)
                except Exception as exc:  # a redraw must never end the live view
                    w.note(f"redraw failed: {describe(exc)}")
                w.sleep(max(0.05, self.refresh_seconds - (time.monotonic() - began)))
        finally:
            reader.stop()
            if not self.closed:
                self.draw_header(live=False)
                if not w.should_stop():
                    self.say("live view paused (lifetime reached): press 'resume view'")
                    self.buttons["resume"].layout.display = ""

    def close(self) -> None:
        """Stop the live view and every worker, close the panel's widgets. Never raises."""
        if self.closed:
            return
        try:
            if self._refresher is not None:
                self._refresher.stop()
            self.stop_workers(list(self.workers))
        finally:
            self.closed = True
            if _PANELS.get(self.slot) is self:
                del _PANELS[self.slot]
            for row in list(self.rows.values()):
                row.close()
            for widget in self._static:
                try:
                    widget.close()
                except Exception:
                    pass
