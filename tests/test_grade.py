"""Grading submitted labs (brokerlab.backstage.grade).

Pure: layout discovery, the check-cell rule, scoring, the environment, CSV and report; and the
grader's process handling (a hang, a kernel crash, an unreadable file) on a lab of its own that
needs no broker. Marked `brokers`: one quick real lab graded four (five) ways.
"""

from __future__ import annotations

import csv
import io
import secrets
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from brokerlab.backstage import grade
from brokerlab.backstage.__main__ import parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from make_labs import strip_solutions  # noqa: E402

QUICK = "01.01-first-queue.ipynb"  # the quickest lab: about 5 s solved


def _nb(*cells: NotebookNode) -> NotebookNode:
    nb = new_notebook(cells=list(cells))
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
    return nb


def _check(source: str) -> NotebookNode:
    return new_code_cell(source, metadata={"tags": ["check"]})


def _write(path: Path, nb: NotebookNode) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------------ layout


def test_discover_plain_layout(tmp_path: Path) -> None:
    labs = {"01.01-a.ipynb", "01.02-b.ipynb"}
    for rel in ["alice/01.01-a.ipynb", "alice/01.02-b.ipynb", "alice/notes.ipynb",
                "alice/.ipynb_checkpoints/01.01-a-checkpoint.ipynb", "bob/01.02-b.ipynb",
                "stray.ipynb"]:
        _write(tmp_path / rel, _nb())
    found, unknown = grade.discover(tmp_path, labs)
    assert [(s.login, s.lab) for s in found] == [
        ("alice", "01.01-a.ipynb"), ("alice", "01.02-b.ipynb"), ("bob", "01.02-b.ipynb")]
    assert found[0].path == tmp_path / "alice" / "01.01-a.ipynb"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in unknown) == [
        "alice/notes.ipynb", "stray.ipynb"]


def test_discover_nbgrader_layout(tmp_path: Path) -> None:
    """nbgrader's course folder: submitted/<login>/<assignment>/<file>.ipynb."""
    _write(tmp_path / "source" / "lab1" / "01.01-a.ipynb", _nb())
    _write(tmp_path / "submitted" / "alice" / "lab1" / "01.01-a.ipynb", _nb())
    _write(tmp_path / "submitted" / "alice" / "lab2" / "01.01-a.ipynb", _nb())  # a 2nd copy
    _write(tmp_path / "submitted" / "bob" / "lab1" / "other.ipynb", _nb())
    for root in (tmp_path, tmp_path / "submitted"):
        found, unknown = grade.discover(root, {"01.01-a.ipynb"})
        assert [(s.login, s.path.parent.name) for s in found] == [("alice", "lab1")]
        assert sorted(p.name for p in unknown) == ["01.01-a.ipynb", "other.ipynb"]


# ------------------------------------------------------------------ the check-cell rule

LAB = _nb(new_markdown_cell("# lab"),
          new_code_cell("x = None", metadata={"tags": ["setup"]}),
          new_code_cell("def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()"),
          _check("assert f() == 1, 'f() should return 1'"),
          new_code_cell("def g():\n    # YOUR CODE HERE\n    raise NotImplementedError()"),
          _check("assert g() == 2, 'g() should return 2'"),
          new_code_cell("print('bye')", metadata={"tags": ["cleanup"]}))


def test_every_lab_has_check_cells() -> None:
    """The rule the grader relies on: each lab's checks are code cells tagged `check`."""
    for path in sorted((ROOT / "labs").glob("*.ipynb")):
        assert grade.check_cells(nbformat.read(path, as_version=4)), path.name
    assert grade.check_cells(LAB) == [3, 5]


def test_prepare_matches_checks_by_source_then_id() -> None:
    sub = nbformat.from_dict(LAB)
    sub.cells[2].source = "def f():\n    return 1"
    sub.cells[3].outputs = [new_output("stream", name="stdout", text="old")]
    sub.cells[3].execution_count = 7
    sub.cells[5].source = "pass  # the student 'fixed' the check"
    sub.cells.insert(1, new_code_cell("y = 1"))  # a cell of the student's own (random id)
    nb, slots, notes = grade.prepare(sub, LAB)
    assert slots == [4, 6]
    assert nb.cells[6].source == LAB.cells[5].source, "the edited check is restored"
    assert notes == ["check 2 (cell 6) was edited: restored from the lab"]
    assert nb.cells[4].outputs == [] and nb.cells[4].execution_count is None
    assert sub.cells[6].source.startswith("pass"), "the submission itself is not modified"


def test_prepare_solution_copy_without_lab_ids_and_missing_check() -> None:
    sub = nbformat.from_dict(LAB)
    for cell in sub.cells:
        cell["id"] = secrets.token_hex(4)  # a copy of solutions/: other ids, same checks
    del sub.cells[5]
    nb, slots, notes = grade.prepare(sub, LAB)
    assert slots == [3, None]
    assert notes == ["check 2 is missing from the submission"]


def test_score_and_first_failure() -> None:
    nb = nbformat.from_dict(LAB)
    nb.cells[3].execution_count = 4
    nb.cells[5].execution_count = 6
    nb.cells[5].outputs = [new_output("error", ename="AssertionError",
                                      evalue="g() should return 2\nmore", traceback=[])]
    assert grade.score(nb, [3, 5]) == (1, "check 2: AssertionError: g() should return 2")
    nb.cells[3].outputs = [new_output("error", ename="NotImplementedError", evalue="",
                                      traceback=[])]
    assert grade.score(nb, [3, 5]) == (0, "check 1: NotImplementedError")
    nb.cells[5].outputs = []
    nb.cells[5].execution_count = None  # never reached
    assert grade.score(nb, [None, 5], "not run (the kernel died)") == (
        0, "check 1: missing from the submission")
    assert grade.score(nb, [5], "not run (the kernel died)") == (
        0, "check 1: not run (the kernel died)")


def test_status_of() -> None:
    assert grade.status_of(3, 3, False, False) == "passed"
    assert grade.status_of(2, 3, False, False) == "failed"
    assert grade.status_of(3, 3, True, False) == "timeout"
    assert grade.status_of(1, 3, False, True) == "crashed"


def test_lesson_of() -> None:
    lab = nbformat.read(ROOT / "labs" / QUICK, as_version=4)
    assert grade.lesson_of(lab) == ("01.01", ["rabbitmq"])
    assert grade.lesson_of(LAB) is None


# ------------------------------------------------------------------ environment


def test_student_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
    env = grade.student_env("alice", tmp_path, required=False)  # no env file: shared brokers
    assert env["COURSE_NAMESPACE"] == "alice" and env["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "alice.env").write_text(
        "# alice\nCOURSE_NAMESPACE=alice\nREDIS_URL=rediss://alice:pw@127.0.0.1:6390/0\n")
    env = grade.student_env("alice", tmp_path, required=True)
    assert env["REDIS_URL"] == "rediss://alice:pw@127.0.0.1:6390/0"
    assert "RABBITMQ_MANAGEMENT_URL" not in env, "the grader's own addresses must not leak"
    with pytest.raises(FileNotFoundError):
        grade.student_env("bob", tmp_path, required=True)
    with pytest.raises(ValueError):
        grade.student_env("no.dots", None, required=False)


def test_cli_parses() -> None:
    args = parser().parse_args(["grade", "subs", "--jobs", "3", "--cell-timeout", "5"])
    assert (args.command, args.submissions, args.jobs, args.cell_timeout, args.timeout,
            args.out) == ("grade", Path("subs"), 3, 5.0, 300.0, Path("grades"))


# ------------------------------------------------------------------ reports

RESULTS = [grade.Result("alice", "01.01-a.ipynb", "passed", 3, 3, 4.21),
           grade.Result("alice", "01.02-b.ipynb", "failed", 1, 3, 9.0,
                        'check 2: AssertionError: expected 3, got "2", see | here'),
           grade.Result("bob", "01.01-a.ipynb", "timeout", 0, 3, 60.0, "check 1: not run",
                        ["stopped after 60 s (--timeout)"]),
           grade.Result("carol", "01.01-a.ipynb", "error", 0, 3, 0.0,
                        "cannot read the notebook: NotJSONError: x")]


def test_render_csv() -> None:
    rows = list(csv.DictReader(io.StringIO(grade.render_csv(RESULTS))))
    assert list(rows[0]) == list(grade.CSV_FIELDS)
    assert rows[0] == {"student": "alice", "lab": "01.01-a.ipynb", "status": "passed",
                       "checks_passed": "3", "checks_total": "3", "seconds": "4.2",
                       "first_failure": ""}
    assert rows[1]["first_failure"] == 'check 2: AssertionError: expected 3, got "2", see | here'


def test_render_report() -> None:
    text = grade.render_report(RESULTS, ["dave/notes.ipynb"], 73.4)
    assert text.startswith("# Grades\n\n4 submission(s) in 73 s: 1 passed, 1 failed, "
                           "1 timeout, 1 error\n")
    assert "## alice\n\n1 of 2 lab(s) passed." in text
    assert ("| [01.02-b.ipynb](executed/alice/01.02-b.ipynb) | failed | 1/3 | 9.0 | "
            'check 2: AssertionError: expected 3, got "2", see / here |') in text
    assert "- 01.01-a.ipynb: stopped after 60 s (--timeout)" in text
    assert "| 01.01-a.ipynb | error |" in text, "no link to a notebook that never ran"
    assert text.endswith("## Not graded (not a lab's file name, or a second copy)\n\n"
                         "- dave/notes.ipynb\n")


# ------------------------------------------------------------------ the process handling


def test_grade_handles_hangs_crashes_and_broken_files(tmp_path: Path) -> None:
    """No broker: a lab of its own, graded five ways; nothing stops the run."""
    lab = _nb(new_code_cell("import os, time"),
              new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n"
                            "    ### END SOLUTION"),
              _check("assert f() == 1, 'f() should return 1'"),
              new_code_cell("def g():\n    ### BEGIN SOLUTION\n    return 2\n"
                            "    ### END SOLUTION"),
              _check("assert g() == 2, 'g() should return 2'"))
    unsolved = nbformat.from_dict(lab)
    for cell in unsolved.cells:
        cell.source = strip_solutions(cell.source, 0)[0]
    _write(tmp_path / "labs" / "99.01-x.ipynb", unsolved)
    subs = tmp_path / "subs"
    _write(subs / "solved" / "99.01-x.ipynb", lab)
    _write(subs / "unsolved" / "99.01-x.ipynb", unsolved)
    for login, line in [("slow", "time.sleep(10_000)"), ("crash", "os._exit(1)")]:
        nb = nbformat.from_dict(lab)
        nb.cells[3].source = line + "\n" + nb.cells[3].source
        _write(subs / login / "99.01-x.ipynb", nb)
    (subs / "broken").mkdir()
    (subs / "broken" / "99.01-x.ipynb").write_text("{not json")
    results, _ = grade.grade(subs, tmp_path / "out", tmp_path / "labs", timeout=60,
                             cell_timeout=3, jobs=2)
    got = {r.login: (r.status, r.checks_passed, r.checks_total) for r in results}
    assert got == {"broken": ("error", 0, 2), "crash": ("crashed", 1, 2),
                   "slow": ("timeout", 1, 2), "solved": ("passed", 2, 2),
                   "unsolved": ("failed", 0, 2)}
    by = {r.login: r for r in results}
    assert by["crash"].first_failure == "check 2: not run (the kernel died)"
    assert by["slow"].first_failure == "check 2: NameError: name 'g' is not defined"
    assert by["slow"].notes == ["cell 3 ran past 3 s and was interrupted"]
    assert by["slow"].seconds < 20
    assert by["unsolved"].first_failure == "check 1: NotImplementedError"
    executed = nbformat.read(tmp_path / "out" / "executed" / "solved" / "99.01-x.ipynb", 4)
    assert executed.cells[4].execution_count is not None
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Grades")
    assert len((tmp_path / "out" / "grades.csv").read_text().splitlines()) == 6

    # --timeout: the whole run stopped, with its kernel
    results, _ = grade.grade(subs, tmp_path / "out2", tmp_path / "labs", timeout=8,
                             cell_timeout=600, jobs=2)
    slow = next(r for r in results if r.login == "slow")
    assert (slow.status, slow.checks_passed) == ("timeout", 1)
    assert slow.first_failure == "check 2: not run (stopped at --timeout)"
    assert slow.seconds < 14


# ------------------------------------------------------------------ against the brokers


@pytest.mark.brokers
def test_grade_a_real_lab(tmp_path: Path) -> None:
    """Lab 01.01 solved, unsolved, half-solved, hanging and crashing, two at a time."""
    import brokerlab

    solution = nbformat.read(ROOT / "solutions" / QUICK, as_version=4)
    tag = f"g{secrets.token_hex(3)}"
    subs = tmp_path / "subs"

    def variant(name: str, cell_text: str, change: str | None) -> None:
        nb = nbformat.from_dict(solution)
        cell = next(c for c in nb.cells if cell_text in c.source)
        if change == "strip":
            cell.source = strip_solutions(cell.source, 0)[0]
        elif change:
            cell.source = change + "\n" + cell.source
        _write(subs / f"{tag}-{name}" / QUICK, nb)

    variant("solved", "def send", None)
    _write(subs / f"{tag}-unsolved" / QUICK, nbformat.read(ROOT / "labs" / QUICK, 4))
    variant("half", "def listen", "strip")
    variant("hanging", "def receive_one", "import time\ntime.sleep(10_000)")
    variant("crashing", "def receive_one", "import os\nos._exit(1)")
    timeout = 20
    begin = time.monotonic()
    results, unknown = grade.grade(subs, tmp_path / "out", timeout=timeout, cell_timeout=600,
                                   jobs=2)
    total = time.monotonic() - begin
    got = {r.login.removeprefix(f"{tag}-"): (r.status, r.checks_passed) for r in results}
    assert got == {"solved": ("passed", 3), "unsolved": ("failed", 0), "half": ("failed", 2),
                   "hanging": ("timeout", 1), "crashing": ("crashed", 1)}, results
    assert not unknown
    by = {r.login.removeprefix(f"{tag}-"): r for r in results}
    assert by["half"].first_failure.startswith("check 3: AssertionError: your listener")
    hanging = by["hanging"]
    assert timeout <= hanging.seconds < timeout + 15, "killed at --timeout, cleanup included"
    others = sum(r.seconds for r in results if r is not hanging)
    assert total < max(others, hanging.seconds) + 20, (
        f"the hanging submission held up the others: {total:.0f} s in all, "
        f"{hanging.seconds:.0f} s hanging, {others:.0f} s for the other four")
    for r in results:  # every namespace empty: the lab's cleanup cell, or the grader's
        left = brokerlab.leftovers(f"{r.login}-", brokers=("rabbitmq",))
        assert not any(left.values()), (r.login, left)
