"""Tests for tools/make_nav.py (index, nav cells, README) and its contract with make_labs."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
make_nav = importlib.import_module("make_nav")
make_labs = importlib.import_module("make_labs")
lint_notebooks = importlib.import_module("lint_notebooks")

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
README = "# Course\n\n## Contents\n\n<!-- toc:start -->\nstale\n<!-- toc:end -->\n\nMore text.\n"
LESSONS = {
    "01.01-hello-queues.ipynb": "Hello, queues",
    "01.02-work-queues.ipynb": "Work queues",
    "02.01-redis-lists.ipynb": "Redis lists",
}
SOLUTIONS = {"01.01-hello-lab.ipynb": "Lab: hello", "02.01-lists-lab.ipynb": "Lab: lists"}


def notebook(prefix: str, title: str, *body: NotebookNode) -> NotebookNode:
    nb = new_notebook(metadata={"kernelspec": dict(KERNEL), "language_info": {"name": "python"}})
    nb.cells = [
        new_markdown_cell(f"# {prefix} · {title}\n\nYou will:\n\n- learn\n- practise"),
        new_code_cell("import brokerlab", metadata={"tags": ["setup"]}),
        *body,
        new_code_cell("cleanup()", metadata={"tags": ["cleanup"]}),
    ]
    return nb


def write(root: Path, rel: str, nb: NotebookNode) -> Path:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, root / rel)
    return root / rel


def read(root: Path, rel: str) -> NotebookNode:
    return nbformat.read(root / rel, as_version=4)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name, title in LESSONS.items():
        write(tmp_path, f"notebooks/{name}", notebook(name[:5], title, new_code_cell("send()")))
    region = new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    for name, title in SOLUTIONS.items():
        write(tmp_path, f"solutions/{name}", notebook(name[:5], title, region))
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    return tmp_path


def run(tool: ModuleType, root: Path, *args: str) -> int:
    return tool.main(["--root", str(root), *args])


def test_nav_line_positions() -> None:
    titles = {"00.00-index.ipynb": "00.00 · Index", "a.ipynb": "A", "b.ipynb": "B", "c.ipynb": "C"}
    contents = "[Contents](00.00-index.ipynb)"
    assert make_nav.nav_line("notebooks", "a.ipynb", titles) == f"{contents} | [B](b.ipynb) >"
    assert (
        make_nav.nav_line("notebooks", "b.ipynb", titles)
        == f"< [A](a.ipynb) | {contents} | [C](c.ipynb) >"
    )
    assert make_nav.nav_line("notebooks", "c.ipynb", titles) == f"< [B](b.ipynb) | {contents}"
    assert make_nav.nav_line("notebooks", "a.ipynb", {"a.ipynb": "A"}) == contents
    index = make_nav.nav_line("notebooks", "00.00-index.ipynb", titles)
    assert index == f"{contents} | [A](a.ipynb) >"
    assert make_nav.nav_line("labs", "c.ipynb", titles) == (
        "< [B](b.ipynb) | [Contents](../notebooks/00.00-index.ipynb)"
    )


def test_nav_inserted_at_index_1_other_cells_untouched(root: Path) -> None:
    rel = "notebooks/01.02-work-queues.ipynb"
    before = read(root, rel)
    assert run(make_nav, root) == 0
    after = read(root, rel)
    nav = after.cells[1]
    assert nav.cell_type == "markdown" and nav.id == "nav" and nav.metadata == {"tags": ["nav"]}
    assert nav.source == (
        "< [01.01 · Hello, queues](01.01-hello-queues.ipynb) | [Contents](00.00-index.ipynb)"
        " | [02.01 · Redis lists](02.01-redis-lists.ipynb) >"
    )
    assert [c for i, c in enumerate(after.cells) if i != 1] == before.cells
    assert after.metadata == before.metadata


def test_nav_source_replaced_keeping_id(root: Path) -> None:
    rel = "notebooks/01.01-hello-queues.ipynb"
    nb = read(root, rel)
    stale = new_markdown_cell("< [Old](old.ipynb) >", metadata={"tags": ["nav"], "x": 1})
    stale.id = "my-nav"
    nb.cells.insert(1, stale)
    write(root, rel, nb)
    assert run(make_nav, root) == 0
    after = read(root, rel)
    assert len(after.cells) == len(nb.cells)
    assert after.cells[1].id == "my-nav" and after.cells[1].metadata["x"] == 1
    assert after.cells[1].source.startswith("[Contents](00.00-index.ipynb) | [01.02")


def test_misplaced_and_duplicate_nav_cells_fixed(root: Path) -> None:
    rel = "notebooks/01.01-hello-queues.ipynb"
    nb = read(root, rel)
    nb.cells.append(new_markdown_cell("nav 1", metadata={"tags": ["nav"]}))
    nb.cells.insert(2, new_markdown_cell("nav 2", metadata={"tags": ["nav"]}))
    write(root, rel, nb)
    assert run(make_nav, root) == 0
    tagged = [i for i, c in enumerate(read(root, rel).cells) if "nav" in c.metadata.get("tags", [])]
    assert tagged == [1]


def test_nbformat_4_4_gets_no_cell_id(root: Path) -> None:
    rel = "notebooks/01.01-hello-queues.ipynb"
    nb = read(root, rel)
    nb.nbformat_minor = 4
    for cell in nb.cells:
        del cell["id"]
    write(root, rel, nb)
    assert run(make_nav, root) == 0
    after = read(root, rel)
    assert "nav" in after.cells[1].metadata["tags"] and "id" not in after.cells[1]
    assert nbformat.validate(after) is None


def test_up_to_date_notebook_is_not_rewritten(root: Path) -> None:
    assert run(make_nav, root) == 0
    path = root / "notebooks/01.01-hello-queues.ipynb"
    hand_formatted = json.dumps(json.loads(path.read_text(encoding="utf-8")), indent=4)
    path.write_text(hand_formatted, encoding="utf-8")
    assert run(make_nav, root) == 0
    assert path.read_text(encoding="utf-8") == hand_formatted


def test_index_notebook(root: Path) -> None:
    text = make_nav.build_index(root)
    assert text == make_nav.build_index(root) and text.endswith("\n")
    nb = nbformat.reads(text, as_version=4)
    assert nb.cells[0].source.startswith("# 00.00 · Course index\n")
    assert [c.id for c in nb.cells] == ["title", "nav", "contents", "cleanup"]
    toc = nb.cells[2].source
    assert "### 01 · RabbitMQ with pika" in toc and "### 02 · Redis with redis-py" in toc
    assert "### 03" not in toc and "### 00" not in toc
    assert (
        "- [01.01 · Hello, queues](01.01-hello-queues.ipynb)"
        " — lab: [01.01 · Lab: hello](../labs/01.01-hello-lab.ipynb)\n"
    ) in toc
    assert "- [01.02 · Work queues](01.02-work-queues.ipynb)\n" in toc
    assert nb.cells[3].metadata["tags"] == ["cleanup"] and nb.cells[3].cell_type == "markdown"
    assert all(c.cell_type == "markdown" for c in nb.cells)
    index = root / "notebooks" / make_nav.INDEX
    index.write_text(text, encoding="utf-8")
    assert lint_notebooks.lint_notebook("notebooks", index) == []


def test_readme_contents_between_markers(root: Path) -> None:
    assert run(make_nav, root) == 0
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "stale" not in readme and readme.endswith("<!-- toc:end -->\n\nMore text.\n")
    assert (
        "- [01.01 · Hello, queues](notebooks/01.01-hello-queues.ipynb)"
        " — lab: [01.01 · Lab: hello](labs/01.01-hello-lab.ipynb)"
    ) in readme


def test_readme_without_markers_is_skipped(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (root / "README.md").write_text("# Course\n", encoding="utf-8")
    assert run(make_nav, root) == 0
    assert "warning: README.md" in capsys.readouterr().out
    assert (root / "README.md").read_text(encoding="utf-8") == "# Course\n"
    assert run(make_nav, root, "--check") == 0


def test_check_lists_every_stale_file_and_writes_nothing(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(make_nav, root, "--check") == 1
    out = capsys.readouterr().out
    for rel in ["notebooks/00.00-index.ipynb", "README.md", *(f"notebooks/{n}" for n in LESSONS)]:
        assert f"{rel}: navigation out of date" in out
    assert not (root / "notebooks/00.00-index.ipynb").exists()
    assert run(make_nav, root) == 0
    assert run(make_nav, root, "--check") == 0
    rel = "solutions/02.01-lists-lab.ipynb"
    nb = read(root, rel)
    nb.cells[1].source = "hand-edited"
    write(root, rel, nb)
    capsys.readouterr()
    assert run(make_nav, root, "--check") == 1
    assert capsys.readouterr().out.splitlines()[0] == f"{rel}: navigation out of date"


def test_new_lesson_updates_index_readme_and_neighbour(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(make_nav, root) == 0
    write(root, "notebooks/01.03-routing.ipynb", notebook("01.03", "Routing"))
    capsys.readouterr()
    assert run(make_nav, root, "--check") == 1
    lines = capsys.readouterr().out.splitlines()
    stale = {line.split(": ")[0] for line in lines if line.endswith(": navigation out of date")}
    assert stale == {
        "notebooks/00.00-index.ipynb",
        "notebooks/01.02-work-queues.ipynb",
        "notebooks/01.03-routing.ipynb",
        "notebooks/02.01-redis-lists.ipynb",
        "README.md",
    }


def test_make_nav_then_make_labs_both_checks_pass(root: Path) -> None:
    assert run(make_nav, root) == 0
    assert run(make_labs, root) == 0
    assert run(make_nav, root, "--check") == 0
    assert run(make_labs, root, "--check") == 0
    lab = read(root, "labs/01.01-hello-lab.ipynb")
    assert lab.cells[1].source == (
        "[Contents](../notebooks/00.00-index.ipynb) | [02.01 · Lab: lists](02.01-lists-lab.ipynb) >"
    )
    assert lint_notebooks.lint(root) == []
