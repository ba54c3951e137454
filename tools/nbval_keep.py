"""Keep what nbval executed: write each run notebook, with its outputs, to a build folder.

Why: the course website (``make site``, tools/make_site.py) shows every lesson with the
outputs a learner sees. nbval already runs every notebook against the real brokers in
``make notebooks-twice``; this plugin keeps those outputs instead of running the
notebooks a third time. The repository's notebooks are never written (outputs are
never committed).

How: nbval 0.11's ``IPyNbCell`` item holds ``item.cell`` (the cell object inside the
notebook ``item.parent.nb`` it collected) and, once it has run, ``item.test_outputs``
(the outputs it read from the kernel). At the end of the session every notebook with at
least one cell that ran is written to ``DIR/<folder>/<name>.ipynb``, its code cells
carrying those outputs and execution counts 1, 2, ... in the order they ran. Cells that
did not run (skipped, or after ``-x`` stopped the run) are left without outputs.

A display that a cell updates in place (``display(fig, display_id=True)`` then
``handle.update(fig)``, the live plot of 03.05) is kept as it finally looked, as in
JupyterLab: nbval ignores ``update_display_data`` messages, so this plugin wraps the
notebook's ``get_kernel_message`` to note them (:class:`Displays`) and puts each
display's last update in place of its first data.

Usage: ``PYTHONPATH=tools python -m pytest -p nbval_keep --keep-executed build/executed
--nbval-lax ... notebooks solutions``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-executed", metavar="DIR", default=None,
        help="write every notebook nbval ran, with its outputs, to DIR/<folder>/<name>",
    )


class Displays:
    """Displays that cells update in place, seen on the way from the kernel to nbval.

    nbval copies each output's data (nbformat's NotebookNode copies dicts), so the
    update cannot be applied to its object: each display's first data (a fingerprint) is
    remembered with its display id, and :meth:`final` gives the last update of the
    display whose first data an output holds."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}  # fingerprint of first data -> display id
        self.last: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # id -> data, metadata

    def follow(self, get_message: Callable[..., Any]) -> Callable[..., Any]:
        """``get_message`` wrapped to note every ``display_data`` with a display id and
        every ``update_display_data``."""

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            msg = get_message(*args, **kwargs)
            content = msg.get("content", {})
            display_id = (content.get("transient") or {}).get("display_id")
            if display_id and msg.get("msg_type") == "display_data":
                self.first.setdefault(_key(content.get("data", {})), display_id)
            elif display_id and msg.get("msg_type") == "update_display_data":
                self.last[display_id] = (dict(content.get("data", {})),
                                         dict(content.get("metadata", {})))
            return msg

        return wrapped

    def final(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        display_id = self.first.get(_key(data))
        return self.last.get(display_id) if display_id else None


def _key(data: Any) -> str:
    """A short fingerprint of a display's data (plots are large)."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def pytest_runtest_setup(item: pytest.Item) -> None:
    nbfile = item.parent
    if (item.config.getoption("--keep-executed") and hasattr(item, "test_outputs")
            and not hasattr(nbfile, "nbval_keep_displays")):
        nbfile.nbval_keep_displays = Displays()
        nbfile.get_kernel_message = nbfile.nbval_keep_displays.follow(nbfile.get_kernel_message)


def keep_outputs(items: list[Any]) -> dict[Path, Any]:
    """Put each run cell's outputs into its notebook; returns notebook path -> notebook.

    ``items`` are pytest items; only nbval cells (they have ``cell`` and
    ``test_outputs``) count, in the order pytest ran them."""
    notebooks: dict[Path, Any] = {}
    counts: dict[Path, int] = {}
    for item in items:
        cell = getattr(item, "cell", None)
        outputs = getattr(item, "test_outputs", None)
        nb = getattr(item.parent, "nb", None)
        if cell is None or nb is None or outputs is None:
            continue
        path = Path(str(item.parent.fspath))
        counts[path] = counts.get(path, 0) + 1
        cell.outputs = [nbformat.from_dict(dict(out)) for out in outputs]
        displays = getattr(item.parent, "nbval_keep_displays", None)
        for out in cell.outputs:
            final = displays and out.output_type == "display_data" and displays.final(out.data)
            if final:
                out.data, out.metadata = nbformat.from_dict(final[0]), nbformat.from_dict(final[1])
        cell.execution_count = counts[path]
        for out in cell.outputs:
            if out.output_type == "execute_result":
                out.execution_count = counts[path]
        notebooks[path] = nb
    return notebooks


def write_kept(notebooks: dict[Path, Any], folder: Path) -> list[Path]:
    """Write each notebook to ``folder/<its parent folder's name>/<its name>``."""
    written = []
    for path, nb in notebooks.items():
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
        written.append(target)
    return written


def pytest_sessionfinish(session: pytest.Session) -> None:
    folder = session.config.getoption("--keep-executed")
    if not folder:
        return
    written = write_kept(keep_outputs(list(session.items)), Path(folder))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"nbval_keep: wrote {len(written)} executed notebook(s) to {folder}")
