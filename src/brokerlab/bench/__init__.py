"""Measuring throughput and latency honestly (module 05): plumbing only.

The client calls being measured stay in the notebook; this module times them:

    from brokerlab import bench
    with bench.Meter("one at a time", total=2000, warmup=200) as meter:
        for i in range(meter.planned):
            started = time.perf_counter_ns()
            channel.basic_publish(...)              # the lesson's own client code
            meter.record(started)                   # latency of this one, counted
    meter.result                                    # Result: rate, p50, p99, p99.9

- `Meter` counts messages and records latencies into an HDR histogram (the
  `hdrhistogram` package), with a progress bar. Its first `warmup` records are not
  counted: connections, JIT-free Python and the broker's caches settle first.
- `Result` is one row: messages per second and latency percentiles (microseconds).
- `table()` shows rows with their ratio to a baseline row; `plot_rates()` and
  `plot_percentiles()` draw them; `tag()` marks a row's role, and `save()` / `load()`
  keep rows for 05.06.
- `bench.rabbitmq.perftest`, `bench.redis.redis_benchmark` and
  `bench.kafka.producer_performance` / `consumer_performance` run each broker's own
  benchmark tool and parse its figures into the same `Result`.
"""

from __future__ import annotations

import html
import math
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from hdrh.histogram import HdrHistogram
from tqdm.auto import tqdm

from brokerlab.bench.measurements import load_measurements, record_measurement
from brokerlab.settings import Settings, default_cache_dir

__all__ = ["Meter", "Result", "ToolMissing", "find_jars", "load", "percentile_table",
           "plot_percentiles", "plot_rates", "ratio", "run_tool", "save", "table", "tag"]

# Latencies are recorded in microseconds, from 1 µs to 60 s, to 3 significant digits.
LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3
PERCENTILES = (50.0, 99.0, 99.9)


@dataclass(frozen=True)
class Result:
    """One measured row: `messages` in `seconds`, latency percentiles in µs (None: not
    measured). A row whose tool could not run has `rate` None and says why in `note`."""

    label: str
    messages: int = 0
    seconds: float = 0.0
    p50_us: float | None = None
    p99_us: float | None = None
    p999_us: float | None = None
    note: str = ""
    source: str = "python"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        """Messages per second (None when nothing was measured)."""
        if self.messages <= 0 or self.seconds <= 0:
            return None
        return self.messages / self.seconds

    @classmethod
    def missing(cls, label: str, why: str, source: str) -> Result:
        """The row of a tool that could not run here, saying why."""
        return cls(label=label, note=why, source=source)


class ToolMissing(RuntimeError):
    """A broker's own benchmark tool (or Java) is not installed where the course runs."""


def ratio(a: Result, b: Result) -> float:
    """How many times faster `a` ran than `b` (nan when either has no rate)."""
    if a.rate is None or b.rate is None:
        return math.nan
    return a.rate / b.rate


class Meter:
    """Counts messages and their latencies for one measurement, with a progress bar.

    `total` is how many records the measurement will count; `planned` adds the warm-up
    ones, so `for i in range(meter.planned)` does both. `record(started_ns)` counts one
    message (or `count`) whose latency runs from `started_ns` (time.perf_counter_ns())
    to now; `tick(count)` counts without a latency (a batch acknowledged at once).
    The clock starts at the first record after the warm-up and stops at `__exit__`
    (or `stop()`), so set-up and warm-up never count.
    """

    def __init__(self, label: str, total: int, *, warmup: int = 0, progress: bool = True,
                 unit: str = "msg") -> None:
        self.label = label
        self.total = total
        self.warmup = warmup
        self.histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        self.messages = 0
        self._seen = 0
        self._started: float | None = None
        self._stopped: float | None = None
        self._bar = tqdm(total=total, desc=label, unit=unit, leave=False,
                         disable=not progress, mininterval=0.25)

    @property
    def planned(self) -> int:
        """Warm-up plus measured records."""
        return self.warmup + self.total

    def __enter__(self) -> Meter:
        if self.warmup == 0:
            self._started = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _counting(self, count: int) -> bool:
        """Advance past the warm-up; True when these records count. A batch that reaches
        or crosses the end of the warm-up is warm-up as a whole, and its end starts the
        clock: its records took time before the clock ran, so they cannot count."""
        before, self._seen = self._seen, self._seen + count
        if before < self.warmup:
            if self._seen >= self.warmup:
                self._started = time.perf_counter()
            return False
        if self._started is None:  # used without `with` and without a warm-up
            self._started = time.perf_counter()
        return True

    def record(self, started_ns: int, count: int = 1) -> None:
        """Count `count` messages whose latency ran from `started_ns` until now."""
        now = time.perf_counter_ns()
        if not self._counting(count):
            return
        micros = max(LOWEST_US, min(HIGHEST_US, (now - started_ns) // 1000))
        self.histogram.record_value(micros, count)
        self._count(count)

    def tick(self, count: int = 1) -> None:
        """Count `count` messages without a latency."""
        if self._counting(count):
            self._count(count)

    def _count(self, count: int) -> None:
        self.messages += count
        self._bar.update(count)

    def stop(self) -> Result:
        if self._stopped is None:
            self._stopped = time.perf_counter()
            self._bar.close()
        return self.result

    @property
    def seconds(self) -> float:
        if self._started is None:
            return 0.0
        return (self._stopped or time.perf_counter()) - self._started

    @property
    def result(self) -> Result:
        """The row so far: rate and, when latencies were recorded, their percentiles."""
        p50 = p99 = p999 = None
        if self.histogram.get_total_count():
            p50, p99, p999 = (float(self.histogram.get_value_at_percentile(p))
                              for p in PERCENTILES)
        return Result(self.label, self.messages, self.seconds, p50, p99, p999)


# ---------------------------------------------------------------- showing rows


def _fmt_rate(r: Result) -> str:
    return "–" if r.rate is None else f"{r.rate:,.0f}"


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:,.2f} ms" if v >= 1000 else f"{v:,.0f} µs"


class _Html:
    def __init__(self, markup: str, text: str) -> None:
        self.markup, self.text = markup, text

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text


def table(results: Sequence[Result], baseline: Result | None = None) -> _Html:
    """The rows as a table: msg/s, p50 / p99 / p99.9, and × the baseline's rate (the
    first row unless given). A row without a rate shows its note instead."""
    base = baseline or (results[0] if results else None)
    head = ["measurement", "source", "msg/s", "× " + (base.label if base else ""),
            "p50", "p99", "p99.9", "note"]
    rows = []
    for r in results:
        times = ratio(r, base) if base else math.nan
        rows.append([r.label, r.source, _fmt_rate(r),
                     "–" if math.isnan(times) else f"{times:,.1f}×",
                     _fmt_us(r.p50_us), _fmt_us(r.p99_us), _fmt_us(r.p999_us), r.note])
    cell = "<td style='text-align:left'>{}</td>"
    markup = ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
              + "".join("<tr>" + "".join(cell.format(html.escape(str(v))) for v in row)
                        + "</tr>" for row in rows) + "</table>")
    text = "\n".join(" | ".join(str(v) for v in row) for row in [head, *rows])
    return _Html(markup, text)


def percentile_table(meters: Iterable[Meter],
                     percentiles: Sequence[float] = (50, 90, 99, 99.9, 99.99, 100)) -> _Html:
    """Latency at each percentile for several meters side by side (05.01)."""
    meters = list(meters)
    head = ["percentile", *[m.label for m in meters]]
    rows = [[f"p{p:g}", *[_fmt_us(float(m.histogram.get_value_at_percentile(p)))
                          if m.histogram.get_total_count() else "–" for m in meters]]
            for p in percentiles]
    markup = ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
              + "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                        for row in rows) + "</table>")
    return _Html(markup, "\n".join(" | ".join(row) for row in [head, *rows]))


def plot_rates(results: Sequence[Result], title: str = "", ax: Any = None) -> Any:
    """A horizontal bar per row (msg/s); rows without a rate are drawn empty and labelled."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(results)))
    labels = [f"{r.label} ({r.source})" if r.source != "python" else r.label
              for r in results]
    rates = [r.rate or 0 for r in results]
    bars = ax.barh(labels, rates, color=["#4c72b0" if r.source == "python" else "#dd8452"
                                         for r in results])
    for bar, r in zip(bars, results, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f" {_fmt_rate(r)}" if r.rate else " not measured", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("messages per second")
    ax.set_title(title)
    ax.margins(x=0.2)
    return ax


def plot_percentiles(meters: Iterable[Meter], title: str = "", ax: Any = None) -> Any:
    """Latency against percentile, HDR style (log scale toward 99.99): where the tail is."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    percentiles = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]
    xs = [1 / (1 - p / 100) for p in percentiles]  # 1, 2, 4, 10, ... 10000
    for m in meters:
        if m.histogram.get_total_count():
            ys = [m.histogram.get_value_at_percentile(p) / 1000 for p in percentiles]
            ax.plot(xs, ys, marker=".", label=m.label)
    ax.set_xscale("log")
    ax.set_xticks(xs[1::2], [f"p{p:g}" for p in percentiles[1::2]])
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.legend()
    return ax


# ---------------------------------------------------------------- keeping rows for 05.06


def save(key: str, results: Sequence[Result], settings: Settings | None = None) -> Path:
    """Keep a lesson's rows under `key` (e.g. 'rabbitmq') for 05.06's decision guide."""
    rows = [asdict(r) for r in results]
    return record_measurement(key, {"rows": rows}, settings, module="05")


def tag(row: Result, role: str, side: str, **more: Any) -> Result:
    """`row` marked for 05.06: its `role` ('naive', 'tuned', 'native' or 'other') and
    `side` ('produce', 'consume', ...), plus any `more`, added to what `extra` holds."""
    return replace(row, extra={**row.extra, "role": role, "side": side, **more})


def load(settings: Settings | None = None) -> dict[str, list[Result]]:
    """The rows 05.02-05.05 kept (fresh ones only), by key."""
    kept = load_measurements(settings, module="05")
    fields = set(Result.__dataclass_fields__)
    return {key: [Result(**{k: v for k, v in row.items() if k in fields})
                  for row in data.get("rows", [])]
            for key, data in kept.items()}


# ---------------------------------------------------------------- the brokers' own tools


def find_jars(name: str) -> Path:
    """The folder of jars `make brokers` fetched for `name` ('kafka' or 'perftest').

    Raises ToolMissing (saying how to fetch them) when they are not there, e.g. in the
    compose image, whose brokers live in other containers."""
    cache = default_cache_dir()
    found = sorted(cache.glob(f"{name}-*/lib/.complete"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ToolMissing(f"{name} jars not found under {cache} "
                          "(`make brokers` fetches them; the compose image has none)")
    return found[-1].parent


def run_tool(argv: Sequence[str], *, timeout: float, what: str) -> str:
    """Run a benchmark tool bounded in time; its stdout, or ToolMissing / RuntimeError
    saying what went wrong."""
    if shutil.which(argv[0]) is None:
        raise ToolMissing(f"{argv[0]} not found on PATH (needed for {what})")
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{what} did not finish within {timeout:.0f} s") from error
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n"
                           + (done.stdout + done.stderr)[-1500:])
    return done.stdout
