"""ipywidgets views over the course's objects. A widget only shows state and calls
methods; anything a button does, a test can do by calling the same method.

Threads update widget *values* only (never `print`, never `with output:`), as the
ipywidgets docs on asynchronous widgets advise.

Taught in 00.01 (the live broker status board). The control panel that starts, stops
and kills producers and consumers is `brokerlab.panel` (00.03).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Sequence

import ipywidgets as widgets

from brokerlab.health import NAMES, START_HINT, BrokerStatus, status_table
from brokerlab.settings import Settings, get_settings

__all__ = ["StatusBoard"]


def _status_html(rows: Sequence[BrokerStatus]) -> str:
    lines = [
        "<table style='border-collapse:collapse'>",
        "<tr><th style='text-align:left;padding:2px 12px'>broker</th>"
        "<th style='text-align:left;padding:2px 12px'>address</th>"
        "<th style='text-align:left;padding:2px 12px'>state</th></tr>",
    ]
    for row in rows:
        color = "#1a7f37" if row.ok else "#cf222e"
        state = "✔ " + row.detail if row.ok else f"✘ {row.detail}<br><i>start it with: " \
            f"{html.escape(START_HINT[row.broker])}</i>"
        lines.append(
            f"<tr><td style='padding:2px 12px'><b>{NAMES[row.broker]}</b></td>"
            f"<td style='padding:2px 12px'><code>{html.escape(row.address)}</code></td>"
            f"<td style='padding:2px 12px;color:{color}'>{state}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


class StatusBoard:
    """A live table of the three brokers: refreshes every `every` seconds for `duration`
    seconds (bounded, so no thread outlives the lesson), and on the button."""

    def __init__(self, settings: Settings | None = None, every: float = 3.0,
                 duration: float = 120.0) -> None:
        self.settings = settings or get_settings()
        self.every, self.duration = every, duration
        self.rows: list[BrokerStatus] = []
        self.table = widgets.HTML("<i>checking…</i>")
        self.button = widgets.Button(description="Check again", icon="refresh")
        self.button.on_click(lambda _: self.refresh())
        self.note = widgets.HTML()
        self.view = widgets.VBox([self.table, widgets.HBox([self.button, self.note])])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> list[BrokerStatus]:
        """Check every broker now and redraw the table (what the button does)."""
        self.rows = status_table(settings=self.settings)
        self.table.value = _status_html(self.rows)
        return self.rows

    def start(self) -> StatusBoard:
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="status-board")
        self._thread.start()
        return self

    def _loop(self) -> None:
        waited = 0.0
        while waited < self.duration and not self._stop.wait(self.every):
            waited += self.every
            self.refresh()
        self.note.value = "<i>live updates paused; click to check again</i>"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.view)
