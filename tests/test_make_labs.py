"""Tests for tools/make_labs.py: labs generated from solutions (no brokers, no kernel)."""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
make_labs = importlib.import_module("make_labs")

META = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"},
    "widgets": {"state": {}},
}
TITLE = "# 01.01 · Lab: hello\n\nLearning goals:\n\n- one\n- two"
REGION = "x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\nprint(x)"
NAME = "01.01-hello-lab.ipynb"


def solution(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = new_notebook(metadata=copy.deepcopy(META))
    nb.cells = [new_markdown_cell(TITLE), *cells]
    return nb


def write(root: Path, folder: str, name: str, nb: nbformat.NotebookNode) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    path = root / folder / name
    nbformat.write(nb, path)
    return path


def run(root: Path, *args: str) -> int:
    return make_labs.main(["--root", str(root), *args])


def test_region_replaced_at_marker_indentation() -> None:
    source = (
        "def double(x):\n"
        "    ### BEGIN SOLUTION\n"
        "    result = x * 2\n"
        "    return result\n"
        "    ### END SOLUTION  \n"
        "\n"
        "print(double)"
    )
    lab = make_labs.make_lab(solution(new_code_cell(source)))
    assert lab.cells[1].source == (
        "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(double)"
    )


def test_several_regions_in_one_cell() -> None:
    source = (
        "### BEGIN SOLUTION\na = 1\n### END SOLUTION\n"
        "b = 2\n"
        "  ### BEGIN SOLUTION\nc\n  ### END SOLUTION\n"
    )
    lab = make_labs.make_lab(solution(new_code_cell(source)))
    assert lab.cells[1].source == (
        "# YOUR CODE HERE\nraise NotImplementedError()\n"
        "b = 2\n"
        "  # YOUR CODE HERE\n  raise NotImplementedError()\n"
    )


def test_solution_only_cells_dropped() -> None:
    nb = solution(
        new_code_cell(REGION),
        new_code_cell("answer = 42", metadata={"tags": ["solution-only"]}),
        new_markdown_cell("Why 42", metadata={"tags": ["solution-only"]}),
        new_code_cell("assert True", metadata={"tags": ["check"]}),
    )
    lab = make_labs.make_lab(nb)
    sources = [c.source for c in lab.cells]
    assert len(lab.cells) == 3
    assert "answer = 42" not in sources and "Why 42" not in sources
    assert [c.id for c in lab.cells] == ["cell-0", "cell-1", "cell-2"]


def test_outputs_and_metadata_cleared() -> None:
    cell = new_code_cell(
        REGION,
        execution_count=7,
        outputs=[new_output("stream", name="stdout", text="1\n")],
        metadata={"tags": ["exercise"], "collapsed": True, "scrolled": True},
    )
    untagged = new_code_cell("assert y", metadata={"tags": [], "editable": False})
    nb = solution(cell, untagged)
    nb.cells[0].metadata["slideshow"] = {"slide_type": "slide"}
    lab = make_labs.make_lab(nb)
    assert lab.cells[0].metadata == {}
    assert lab.cells[1].outputs == [] and lab.cells[1].execution_count is None
    assert lab.cells[1].metadata == {"tags": ["exercise"]}
    assert lab.cells[2].metadata == {}
    assert lab.metadata == {"kernelspec": META["kernelspec"], "language_info": {"name": "python"}}
    assert nbformat.validate(lab) is None


def test_make_lab_leaves_solution_unchanged() -> None:
    nb = solution(new_code_cell(REGION, execution_count=1))
    before = nbformat.writes(nb)
    make_labs.make_lab(nb)
    assert nbformat.writes(nb) == before


def test_output_is_byte_identical_every_run(tmp_path: Path) -> None:
    # Two builds of the "same" solution get different random cell ids from nbformat.
    first = make_labs.render(make_labs.make_lab(solution(new_code_cell(REGION))))
    second = make_labs.render(make_labs.make_lab(solution(new_code_cell(REGION))))
    assert first == second and first.endswith("}\n")
    write(tmp_path, "solutions", NAME, solution(new_code_cell(REGION)))
    assert run(tmp_path) == 0
    lab = tmp_path / "labs" / NAME
    written = lab.read_bytes()
    assert run(tmp_path) == 0
    assert lab.read_bytes() == written


REFUSALS = [
    pytest.param(
        new_code_cell("a\n### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n" * 2),
        "cell 1, line 3:",
        "nested",
        id="nested-begin",
    ),
    pytest.param(
        new_code_cell("x = 1\n    ### END SOLUTION"), "cell 1, line 2:", "without", id="end-only"
    ),
    pytest.param(
        new_code_cell("x\ny\n  ### BEGIN SOLUTION\nz"),
        "cell 1, line 3:",
        "never closed",
        id="begin-only",
    ),
    pytest.param(
        new_markdown_cell("Fill in:\n### BEGIN SOLUTION"),
        "cell 1, line 2:",
        "markdown cell",
        id="marker-in-markdown",
    ),
    pytest.param(new_code_cell("x = 1"), "", "nothing to solve", id="no-region"),
]


@pytest.mark.parametrize(("cell", "where", "why"), REFUSALS)
def test_refuses_bad_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cell, where: str, why: str
) -> None:
    write(tmp_path, "solutions", "01.02-good-lab.ipynb", solution(new_code_cell(REGION)))
    write(tmp_path, "solutions", NAME, solution(cell))
    with pytest.raises(make_labs.LabError, match=why):
        make_labs.make_lab(solution(cell))
    assert run(tmp_path) == 1
    out = capsys.readouterr().out
    assert f"solutions/{NAME}: {where}" in out and why in out
    assert not (tmp_path / "labs").exists(), "nothing is written when a solution is refused"


def test_region_only_in_solution_only_cell_is_refused() -> None:
    hidden = new_code_cell(REGION, metadata={"tags": ["solution-only"]})
    with pytest.raises(make_labs.LabError, match="nothing to solve"):
        make_labs.make_lab(solution(hidden))


@pytest.fixture
def in_sync(tmp_path: Path) -> Path:
    write(tmp_path, "solutions", NAME, solution(new_code_cell(REGION)))
    write(tmp_path, "solutions", "02.01-lists-lab.ipynb", solution(new_code_cell(REGION)))
    assert run(tmp_path) == 0
    assert run(tmp_path, "--check") == 0
    return tmp_path


def test_check_detects_hand_edited_lab(in_sync: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = in_sync / "labs" / NAME
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source = "y = 2  # the learner's answer, committed by mistake"
    path.write_text(make_labs.render(nb), encoding="utf-8")
    capsys.readouterr()
    assert run(in_sync, "--check") == 1
    assert f"labs/{NAME}: differs" in capsys.readouterr().out


def test_check_detects_missing_lab(in_sync: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_sync / "labs" / NAME).unlink()
    capsys.readouterr()
    assert run(in_sync, "--check") == 1
    assert f"labs/{NAME}: missing" in capsys.readouterr().out
    assert not (in_sync / "labs" / NAME).exists(), "--check writes nothing"


def test_check_detects_orphan_lab(in_sync: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_sync / "solutions" / NAME).unlink()
    capsys.readouterr()
    assert run(in_sync, "--check") == 1
    assert f"labs/{NAME}: orphan" in capsys.readouterr().out


def test_check_lists_every_problem(in_sync: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_sync / "labs" / NAME).unlink()
    (in_sync / "labs" / "02.01-lists-lab.ipynb").write_text("{}", encoding="utf-8")
    write(in_sync, "labs", "03.01-stale-lab.ipynb", solution(new_code_cell("x")))
    capsys.readouterr()
    assert run(in_sync, "--check") == 1
    out = capsys.readouterr().out
    assert "missing" in out and "differs" in out and "orphan" in out


def test_lab_nav_rewritten_for_labs() -> None:
    nav = new_markdown_cell("[Contents](../notebooks/00.00-index.ipynb) | [x](x.ipynb) >")
    nav.metadata["tags"] = ["nav"]
    lab = make_labs.make_lab(solution(nav, new_code_cell(REGION)), nav="LAB NAV")
    assert lab.cells[1].source == "LAB NAV" and lab.cells[1].metadata == {"tags": ["nav"]}
    assert sum("nav" in c.metadata.get("tags", []) for c in lab.cells) == 1
