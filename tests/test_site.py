"""The course website's tools without brokers: tools/nbval_keep.py keeps what nbval ran,
tools/make_site.py's checks fail on a traceback, a broken link and a missing page."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
nbval_keep = importlib.import_module("nbval_keep")
make_site = importlib.import_module("make_site")

REPO = "owner/course"


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 01.01 · Title")]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def _items(path: Path, nb: nbformat.NotebookNode, outputs: list) -> list[SimpleNamespace]:
    """Stand-ins for nbval's IPyNbCell items: .cell, .test_outputs, .parent.nb/.fspath."""
    parent = SimpleNamespace(nb=nb, fspath=str(path))
    code = [c for c in nb.cells if c.cell_type == "code"]
    return [SimpleNamespace(cell=c, test_outputs=o, parent=parent)
            for c, o in zip(code, outputs, strict=True)]


def test_nbval_keep_writes_outputs_and_counts(tmp_path: Path) -> None:
    nb = _notebook("print('hi')", "21 * 2", "never ran")
    outputs = [
        [nbformat.NotebookNode(output_type="stream", name="stdout", text="hi\n")],
        [nbformat.NotebookNode(output_type="execute_result", data={"text/plain": "42"},
                               metadata={}, execution_count=7)],
        None,  # skipped, or the run stopped before it
    ]
    items = _items(tmp_path / "notebooks" / "01.01-x.ipynb", nb, outputs)
    items.append(SimpleNamespace(parent=SimpleNamespace()))  # not an nbval cell: ignored
    written = nbval_keep.write_kept(nbval_keep.keep_outputs(items), tmp_path / "out")
    assert written == [tmp_path / "out" / "notebooks" / "01.01-x.ipynb"]
    kept = nbformat.read(str(written[0]), as_version=4)
    nbformat.validate(kept)
    first, second, third = (c for c in kept.cells if c.cell_type == "code")
    assert first.outputs[0].text == "hi\n" and first.execution_count == 1
    assert second.outputs[0].data["text/plain"] == "42"
    assert second.execution_count == second.outputs[0].execution_count == 2
    assert third.outputs == [] and third.execution_count is None


def test_nbval_keep_keeps_what_a_real_nbval_run_executed(tmp_path: Path) -> None:
    """The plugin against nbval itself (a kernel, no broker): it relies on nbval's
    internals (IPyNbCell.cell, .test_outputs, IPyNbFile.get_kernel_message)."""
    import subprocess

    nb = _notebook("print('hi')",
                   "from IPython.display import display\n"
                   "handle = display('first', display_id=True)\nhandle.update('last')")
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, str(tmp_path / "notebooks" / "01.01-x.ipynb"))
    tools = Path(__file__).resolve().parent.parent / "tools"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "-p", "nbval_keep", "--keep-executed", "out",
         "notebooks/01.01-x.ipynb"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tools)},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    kept = nbformat.read(str(tmp_path / "out" / "notebooks" / "01.01-x.ipynb"), as_version=4)
    printed, displayed = (c for c in kept.cells if c.cell_type == "code")
    assert printed.outputs[0].text == "hi\n"
    assert displayed.outputs[0].data["text/plain"] == "'last'"  # as it finally looked


def _site(tmp_path: Path, pages: dict[str, str]) -> Path:
    site = tmp_path / "site"
    for rel, body in pages.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(f"<html><body><h1>t</h1>{body}</body></html>")
    return site


GOOD = {
    "index.html": '<a href="notebooks/01.01-x.html#goal">x</a> <a href="https://x.org/">e</a>',
    "notebooks/01.01-x.html": '<a href="../index.html">i</a><img src="../_images/p.png">'
                              '<a href="#top">top</a>',
    "_images/p.png": "",
}


def test_check_site_passes_a_good_site(tmp_path: Path) -> None:
    problems, counts = make_site.check_site(_site(tmp_path, GOOD), ["notebooks/01.01-x.html"])
    assert problems == [] and counts == {"pages": 2, "links": 3}


def test_check_site_finds_a_traceback(tmp_path: Path) -> None:
    pages = dict(GOOD, **{"notebooks/01.01-x.html": "<pre>ValueError  Traceback (most recent "
                                                    "call last)</pre>"})
    problems, _ = make_site.check_site(_site(tmp_path, pages), ["notebooks/01.01-x.html"])
    assert problems == ["notebooks/01.01-x.html: shows a Python error "
                        "('Traceback (most recent call last)')"]


def test_check_site_finds_an_error_output(tmp_path: Path) -> None:
    pages = dict(GOOD, **{"index.html": '<div class="output traceback highlight">x</div>'})
    problems, _ = make_site.check_site(_site(tmp_path, pages), [])
    assert len(problems) == 1 and "index.html: shows a Python error" in problems[0]


def test_check_site_finds_a_broken_link(tmp_path: Path) -> None:
    pages = dict(GOOD, **{"index.html": '<a href="notebooks/01.02-gone.html">x</a>'})
    problems, _ = make_site.check_site(_site(tmp_path, pages), [])
    assert problems == ["index.html: broken link notebooks/01.02-gone.html"]


def test_check_site_finds_a_missing_page(tmp_path: Path) -> None:
    problems, _ = make_site.check_site(_site(tmp_path, GOOD),
                                       ["notebooks/01.01-x.html", "labs/01.01-x.html"])
    assert problems == ["labs/01.01-x.html: no page"]


def test_links_to_files_off_the_site_point_at_the_repository() -> None:
    on_site = {"notebooks/01.01-x.ipynb", "labs/01.01-x.ipynb"}
    text = "[lab](../labs/01.01-x.ipynb) [lic](../LICENSE) [web](https://x.org) [a](#b)"
    assert make_site.rewrite_links(text, "notebooks/01.01-x.ipynb", on_site, REPO) == (
        "[lab](../labs/01.01-x.ipynb) [lic](https://github.com/owner/course/blob/main/LICENSE)"
        " [web](https://x.org) [a](#b)")


def test_links_a_cell_printed_as_markdown_point_at_pages() -> None:
    nb = _notebook("table")
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={
        "text/markdown": "[a](01.02-y.ipynb#goals) [b](../labs/01.01-x.ipynb) [c](../LICENSE)",
        "text/plain": "<IPython.core.display.Markdown object>"})]
    on_site = {"notebooks/01.02-y.ipynb", "labs/01.01-x.ipynb"}
    page = make_site.prepare(nb, "notebooks", "01.01-x.ipynb", True, on_site, REPO)
    assert page.cells[1].outputs[0].data["text/markdown"] == (
        "[a](01.02-y.html#goals) [b](../labs/01.01-x.html) "
        "[c](https://github.com/owner/course/blob/main/LICENSE)")


def test_widget_outputs_give_way_to_a_binder_note() -> None:
    nb = _notebook("panel")
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("nav"))
    nb.cells[2].outputs = [nbformat.v4.new_output(
        "display_data", data={make_site.WIDGET_MIME: {"model_id": "m"}, "text/plain": "VBox()"})]
    page = make_site.prepare(nb, "notebooks", "01.01-x.ipynb", True, set(), REPO)
    assert page.cells[3].outputs == []
    note = page.cells[2].source
    assert "live only when it runs" in note
    assert make_site.binder_url(REPO, "notebooks/01.01-x.ipynb") in note


def test_a_page_without_an_executed_copy_says_so() -> None:
    page = make_site.prepare(_notebook("1"), "solutions", "01.01-x.ipynb", False, set(), REPO)
    assert page.cells[0].source.startswith("# 01.01 · Title (solution)")
    assert any("Shown without outputs" in c.source for c in page.cells)
    lab = make_site.prepare(_notebook("1"), "labs", "01.01-x.ipynb", False, set(), REPO)
    assert not any("Shown without outputs" in c.source for c in lab.cells)


def test_a_display_updated_in_place_is_kept_as_it_finally_looked(tmp_path: Path) -> None:
    messages = iter([
        {"msg_type": "display_data", "content": {
            "data": {"image/png": "empty"}, "metadata": {}, "transient": {"display_id": "d"}}},
        {"msg_type": "display_data", "content": {"data": {"text/plain": "other"},
                                                 "metadata": {}}},
        {"msg_type": "update_display_data", "content": {
            "data": {"image/png": "full"}, "metadata": {"w": 1}, "transient": {"display_id": "d"}}},
    ])
    displays = nbval_keep.Displays()
    get = displays.follow(lambda timeout=None: next(messages))
    for _ in range(3):
        get(timeout=1)
    nb = _notebook("plot")
    shown = [nbformat.v4.new_output("display_data", data={"image/png": "empty"}),
             nbformat.v4.new_output("display_data", data={"text/plain": "other"})]
    items = _items(tmp_path / "notebooks" / "03.05-x.ipynb", nb, [shown])
    items[0].parent.nbval_keep_displays = displays
    kept = nbval_keep.keep_outputs(items)[tmp_path / "notebooks" / "03.05-x.ipynb"]
    first, second = kept.cells[1].outputs
    assert first.data == {"image/png": "full"} and first.metadata == {"w": 1}
    assert second.data == {"text/plain": "other"}
