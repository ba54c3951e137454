"""Labs' checks can fail; solutions pass. Runs against the real brokers.

Every generated lab (labs/) is executed from a fresh kernel with errors allowed, the way
nbgrader's `validate --invert` does:
- the first error must be the learner's NotImplementedError or a failed check
  (AssertionError) — never a crash elsewhere, and never no error at all;
- every `check` cell must fail: a check that passes without the learner's code is a bug;
- the cleanup cell must still work, so an unsolved lab leaves nothing behind.
Every solution must run clean (nbval runs them too; here they prove the same checks pass).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "labs").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
LEARNER_ERRORS = {"NotImplementedError", "AssertionError"}

pytestmark = pytest.mark.brokers


def _execute(path: Path, allow_errors: bool) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def _error(cell: nbformat.NotebookNode) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename")
    return None


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("lab", LABS, ids=[p.stem for p in LABS])
def test_lab_fails_until_solved(lab: Path) -> None:
    nb = _execute(lab, allow_errors=True)
    errors = [(i, _error(c)) for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and _error(c)]
    assert errors, f"{lab.name} ran without any error: its checks pass without the learner's code"
    first_index, first_error = errors[0]
    assert first_error in LEARNER_ERRORS, (
        f"{lab.name}: the first error (cell {first_index}) is {first_error}, expected "
        f"NotImplementedError or AssertionError — the lab breaks before the learner's part")
    passing_checks = [i for i, c in enumerate(nb.cells)
                      if "check" in _tags(c) and not _error(c)]
    assert not passing_checks, (
        f"{lab.name}: check cell(s) {passing_checks} pass without the learner's code")
    broken_cleanup = [i for i, c in enumerate(nb.cells) if "cleanup" in _tags(c) and _error(c)]
    assert not broken_cleanup, (
        f"{lab.name}: cleanup cell(s) {broken_cleanup} fail on the unsolved lab")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_passes(solution: Path) -> None:
    _execute(solution, allow_errors=False)  # raises CellExecutionError with the cell shown


def test_every_solution_has_a_lab() -> None:
    assert [p.name for p in LABS] == [p.name for p in SOLUTIONS], "run `make labs`"
