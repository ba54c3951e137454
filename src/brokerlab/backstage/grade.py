"""Grade submitted labs: run each from a fresh kernel and count the check cells that pass.

    python -m brokerlab.backstage grade SUBMISSIONS [--classroom DIR] [--out DIR]
        [--timeout SECONDS] [--cell-timeout SECONDS] [--jobs N]          (make grade)

SUBMISSIONS holds ``<login>/<lab>.ipynb`` (file names as in labs/) or nbgrader's
``submitted/<login>/<assignment>/<lab>.ipynb``; other names are reported, not graded.

Checks: the code cells tagged ``check`` in labs/<lab>.ipynb. In a submission each is the
cell with the same source, else the code cell with the same id (edited: restored from the
lab before running); found neither way, it is missing. A check passes if its cell ran
without an error output.

Each submission runs on a copy in a temporary folder, in a child process of its own session
(killed with its kernel's at ``--timeout``), from a fresh kernel that goes on after errors;
a cell past ``--cell-timeout`` is interrupted and the rest still runs. Environment: the
classroom's DIR/env/<login>.env if there is one, else this one with COURSE_NAMESPACE=<login>.
After a timeout or a crash, what the lab left under ``<login>-<lesson>-`` is deleted.

Status: passed (every check), failed, timeout (the run or a cell), crashed (the kernel
died), error (could not run). --out gets grades.csv, report.md, executed/<login>/<lab>.ipynb.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brokerlab.settings import Settings, read_env_file

if TYPE_CHECKING:
    from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[3]
STATUSES = ("passed", "failed", "timeout", "crashed", "error")
CSV_FIELDS = ("student", "lab", "status", "checks_passed", "checks_total", "seconds",
              "first_failure")
# Variables a classroom env file decides: the grader's own values must not leak through.
STUDENT_KEYS = ("RABBITMQ_", "REDIS_", "KAFKA_", "COURSE_NAMESPACE", "SSL_CERT_FILE")
CHILD = "import sys; from brokerlab.backstage.grade import run_child; run_child(*sys.argv[1:])"
CLEAN = ("import json, sys; from brokerlab.cleanup import BROKERS, delete_named; "
         "from brokerlab.naming import Run; from brokerlab.settings import get_settings; "
         "s = get_settings(); run = Run(sys.argv[1], settings=s, run_id=''); "
         "print(json.dumps(delete_named(run, s, tuple(sys.argv[2:]) or BROKERS)))")
SETUP = re.compile(r'\bstart_lesson\(\s*"(\d\d\.\d\d)"((?:\s*,\s*"[a-z]+")*)')


@dataclass(frozen=True)
class Submission:
    login: str
    lab: str  # the lab's file name, e.g. 01.02-work-queues-and-acks.ipynb
    path: Path


@dataclass
class Result:
    login: str
    lab: str
    status: str
    checks_passed: int = 0
    checks_total: int = 0
    seconds: float = 0.0
    first_failure: str = ""
    notes: list[str] = field(default_factory=list)


def discover(root: Path, labs: set[str]) -> tuple[list[Submission], list[Path]]:
    """The submissions under ``root`` whose file names are labs, and the other notebooks."""
    if (root / "submitted").is_dir():
        root = root / "submitted"
    found: dict[tuple[str, str], Submission] = {}
    unknown = sorted(root.glob("*.ipynb"))  # not in a student's folder
    # not .ipynb_checkpoints nor other hidden folders
    for student in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "._"):
        paths = sorted(student.glob("*.ipynb")) + sorted(student.glob("[!._]*/*.ipynb"))
        for path in (p for p in paths if p.name[0] not in "._"):
            if path.name in labs and (key := (student.name, path.name)) not in found:
                found[key] = Submission(student.name, path.name, path)
            else:  # not a lab, or a second copy of one
                unknown.append(path)
    return list(found.values()), unknown


def check_cells(lab: NotebookNode) -> list[int]:
    """Indices of the lab's check cells: code cells tagged ``check``."""
    return [i for i, c in enumerate(lab.cells)
            if c.cell_type == "code" and "check" in c.get("metadata", {}).get("tags", [])]


def prepare(submission: NotebookNode, lab: NotebookNode
            ) -> tuple[NotebookNode, list[int | None], list[str]]:
    """The submission ready to run (outputs cleared, edited checks restored), where each of
    the lab's checks sits in it (None: missing), and notes for the instructor."""
    import nbformat  # here, not at the top: the launcher's other commands start faster
    nb = nbformat.from_dict(json.loads(json.dumps(submission)))
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        cell.outputs, cell.execution_count = [], None
    notes: list[str] = []
    slots: list[int | None] = []
    for number, index in enumerate(check_cells(lab), start=1):
        ref = lab.cells[index]
        free = [(i, c) for i, c in enumerate(nb.cells)
                if i not in slots and c.cell_type == "code"]
        same = [i for i, c in free if c.source == ref.source]
        by_id = [i for i, c in free if ref.get("id") and c.get("id") == ref.get("id")]
        slot = (same or by_id or [None])[0]
        if slot is None:
            notes.append(f"check {number} is missing from the submission")
        elif not same:
            nb.cells[slot].source = ref.source
            notes.append(f"check {number} (cell {slot}) was edited: restored from the lab")
        slots.append(slot)
    return nb, slots, notes


def error_line(cell: NotebookNode) -> str | None:
    """``Name: message`` of the cell's error output (first line of it), or None."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            name, value = output.get("ename", "Error"), str(output.get("evalue", "")).strip()
            return f"{name}: {value.splitlines()[0]}" if value else name
    return None


def score(executed: NotebookNode, slots: list[int | None], not_run: str = "not run"
          ) -> tuple[int, str]:
    """Checks passed, and the first failing check's message ('' if none failed)."""
    passed, first = 0, ""
    for number, slot in enumerate(slots, start=1):
        if slot is None:
            why = "missing from the submission"
        else:
            cell = executed.cells[slot]
            error = error_line(cell)
            if error is None and cell.get("execution_count") is not None:
                passed += 1
                continue
            why = error or not_run
        first = first or f"check {number}: {why}"
    return passed, first


def status_of(passed: int, total: int, timed_out: bool, crashed: bool) -> str:
    return ("timeout" if timed_out else "crashed" if crashed
            else "passed" if passed == total else "failed")


def render_csv(results: list[Result]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([CSV_FIELDS] + [
        (r.login, r.lab, r.status, r.checks_passed, r.checks_total, f"{r.seconds:.1f}",
         r.first_failure) for r in results])
    return out.getvalue()


def render_report(results: list[Result], unknown: list[str], seconds: float) -> str:
    counts = Counter(r.status for r in results)
    lines = ["# Grades", "",
             f"{len(results)} submission(s) in {seconds:.0f} s: "
             + ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]), ""]
    for login in sorted({r.login for r in results}):
        mine = [r for r in results if r.login == login]
        done = sum(r.status == "passed" for r in mine)
        lines += [f"## {login}", "", f"{done} of {len(mine)} lab(s) passed.", "",
                  "| lab | status | checks | seconds | first failure |",
                  "|---|---|---|---|---|"]
        for r in mine:
            lab = r.lab if r.status == "error" else f"[{r.lab}](executed/{login}/{r.lab})"
            lines.append(f"| {lab} | {r.status} | {r.checks_passed}/{r.checks_total} | "
                         f"{r.seconds:.1f} | {r.first_failure.replace('|', '/')} |")
        notes = [f"- {r.lab}: {note}" for r in mine for note in r.notes]
        lines += ([""] + notes if notes else []) + [""]
    if unknown:
        lines += ["## Not graded (not a lab's file name, or a second copy)", ""]
        lines += [f"- {name}" for name in unknown] + [""]
    return "\n".join(lines)


def student_env(login: str, classroom: Path | None, required: bool) -> dict[str, str]:
    """The environment the student's submission runs in."""
    env = dict(os.environ)
    env_file = classroom / "env" / f"{login}.env" if classroom else None
    if env_file and env_file.is_file():
        env = {k: v for k, v in env.items() if not k.startswith(STUDENT_KEYS)}
        env.update(read_env_file(env_file))
    elif required:
        raise FileNotFoundError(f"no env file {env_file}")
    else:
        env["COURSE_NAMESPACE"] = login
    Settings.from_env(env).validate()  # e.g. a login that cannot be a namespace
    return env


def run_child(nb_path: str, out_path: str, state_path: str, cell_timeout: str) -> int:
    """In the child process: execute the notebook, saving it and a state file as it goes."""
    import nbformat  # here, not at the top: the launcher's other commands start faster
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(nb_path, as_version=4)
    state: dict[str, Any] = {"kernel_pid": None, "timed_out": [], "crashed": None}
    started = [0.0]

    def save() -> None:
        for path, text in ((out_path, nbformat.writes(nb)), (state_path, json.dumps(state))):
            Path(path + ".tmp").write_text(text)
            os.replace(path + ".tmp", path)

    def on_start(**_: Any) -> None:  # the kernel runs in a session of its own: note its pid
        process = getattr(getattr(client.km, "provisioner", None), "process", None)
        state["kernel_pid"] = getattr(process, "pid", None)
        save()

    def on_execute(**_: Any) -> None:
        started[0] = time.monotonic()

    def on_executed(cell_index: int, **_: Any) -> None:
        if time.monotonic() - started[0] >= float(cell_timeout):
            state["timed_out"].append(cell_index)
        save()

    client = NotebookClient(nb, timeout=int(float(cell_timeout)), kernel_name="python3",
                            allow_errors=True, interrupt_on_timeout=True,
                            resources={"metadata": {"path": str(Path(nb_path).parent)}},
                            on_notebook_start=on_start, on_cell_execute=on_execute,
                            on_cell_executed=on_executed)
    try:
        client.execute()
    except DeadKernelError as exc:
        state["crashed"] = "the kernel died" + ("" if str(exc) == "Kernel died" else f": {exc}")
    save()
    return 0


def _kill_group(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def lesson_of(lab: NotebookNode) -> tuple[str, list[str]] | None:
    """The lesson and brokers of the lab's ``bl.start_lesson(...)`` call, if it makes one."""
    for cell in (c for c in lab.cells if c.cell_type == "code"):
        if found := SETUP.search(cell.source):
            return found[1], re.findall(r'"([a-z]+)"', found[2])
    return None


def clean_namespace(lesson: str, brokers: list[str], env: dict[str, str]) -> str:
    """Delete what the lab left under ``<namespace>-<lesson>-`` on its brokers (in a child with
    the student's environment: a classroom broker lets it touch the student's names only)."""
    try:
        done = subprocess.run([sys.executable, "-c", CLEAN, lesson, *brokers], env=env,
                              timeout=60, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return "cleanup: timed out"
    if done.returncode:
        return f"cleanup failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    deleted = {k: v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items() if v}
    return "cleanup: " + (", ".join(f"{n} {k}" for k, n in deleted.items()) + " deleted"
                          if deleted else "nothing left behind")


def grade_one(sub: Submission, lab_path: Path, out: Path, env: dict[str, str],
              timeout: float, cell_timeout: float) -> Result:
    """Run one submission in its own process group and grade it. Never raises."""
    import nbformat
    result = Result(sub.login, sub.lab, "error")
    begin = time.monotonic()
    try:
        lab = nbformat.read(lab_path, as_version=4)
        result.checks_total = len(check_cells(lab))
        nb, slots, result.notes = prepare(nbformat.read(sub.path, as_version=4), lab)
    except Exception as exc:  # unreadable or invalid notebook: the submission's fault
        result.first_failure = f"cannot read the notebook: {type(exc).__name__}: {exc}"
        return result
    (executed := out / "executed" / sub.login / sub.lab).parent.mkdir(parents=True, exist_ok=True)
    executed.unlink(missing_ok=True)  # from an earlier grading
    with tempfile.TemporaryDirectory(prefix=f"grade-{sub.login}-") as tmp:
        work, state_file, log = Path(tmp) / sub.lab, Path(tmp) / "state.json", Path(tmp) / "log"
        nbformat.write(nb, work)
        args = [sys.executable, "-c", CHILD, str(work), str(executed), str(state_file),
                str(cell_timeout)]
        killed = False
        with open(log, "w") as stderr:
            child = subprocess.Popen(args, cwd=tmp, env={**env, "JUPYTER_RUNTIME_DIR": tmp},
                                     stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                     start_new_session=True)
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed = True
                _kill_group(child.pid)
                child.wait()
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        _kill_group(state.get("kernel_pid"))  # the kernel has a session of its own
        result.seconds = time.monotonic() - begin
        tail = (log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
    if not killed and (not state or child.returncode):
        result.first_failure = f"the grader's child failed: {tail}"
        return result
    state = {"timed_out": [], "crashed": None, **state}
    ran = nbformat.read(executed, as_version=4) if executed.exists() else nb
    why = "stopped at --timeout" if killed else state["crashed"]
    result.checks_passed, result.first_failure = score(
        ran, slots, f"not run ({why})" if why else "not run")
    result.status = status_of(result.checks_passed, len(slots),
                              killed or bool(state["timed_out"]), bool(state["crashed"]))
    result.notes += [f"stopped after {timeout:.0f} s (--timeout)"] if killed else []
    result.notes += [f"cell {i} ran past {cell_timeout:.0f} s and was interrupted"
                     for i in state["timed_out"]] + ([state["crashed"]] if state["crashed"] else [])
    if result.status in ("timeout", "crashed") and (setup := lesson_of(lab)):
        result.notes.append(clean_namespace(*setup, env))
    return result


def grade(submissions: Path, out: Path, labs_dir: Path = ROOT / "labs",
          classroom: Path | None = None, required: bool = False, timeout: float = 300,
          cell_timeout: float = 60, jobs: int = 2) -> tuple[list[Result], list[Path]]:
    """Grade every submission, ``jobs`` at a time; write grades.csv, report.md, executed/."""
    labs = {p.name: p for p in labs_dir.glob("*.ipynb")}
    found, unknown = discover(submissions, set(labs))
    begin, lock, done = time.monotonic(), threading.Lock(), [0]
    out.mkdir(parents=True, exist_ok=True)

    def one(sub: Submission) -> Result:
        try:
            env = student_env(sub.login, classroom, required)
        except (OSError, ValueError) as exc:
            result = Result(sub.login, sub.lab, "error", first_failure=str(exc))
        else:
            result = grade_one(sub, labs[sub.lab], out, env, timeout, cell_timeout)
        with lock:
            done[0] += 1
            print(f"[{done[0]}/{len(found)}] {sub.login} {sub.lab}: {result.status}, "
                  f"{result.checks_passed}/{result.checks_total} checks, {result.seconds:.1f} s"
                  + (f"; {result.first_failure}" if result.first_failure else ""), flush=True)
        return result

    for path in unknown:
        print(f"not graded (not a lab's file name, or a second copy): {path}")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, found))
    seconds = time.monotonic() - begin
    (out / "grades.csv").write_text(render_csv(results))
    names = [str(p.relative_to(submissions)) for p in unknown]
    (out / "report.md").write_text(render_report(results, names, seconds))
    counts = Counter(r.status for r in results)
    print(f"graded {len(results)} submission(s) in {seconds:.0f} s: "
          + (", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]) or "nothing")
          + f"; {out / 'report.md'}, {out / 'grades.csv'}")
    return results, unknown


def add_parser(sub: Any) -> None:
    """The ``grade`` subcommand, for backstage/__main__.py."""
    p = sub.add_parser("grade", help="grade submitted labs",
                       description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("submissions", type=Path, help="SUBMISSIONS/<login>/<lab>.ipynb")
    p.add_argument("--classroom", type=Path, help="classroom folder: DIR/env/<login>.env")
    p.add_argument("--out", type=Path, default=Path("grades"), help="default ./grades")
    p.add_argument("--labs", type=Path, default=ROOT / "labs", help="the labs (default labs/)")
    p.add_argument("--timeout", type=float, default=300, help="per submission (default 300 s)")
    p.add_argument("--cell-timeout", type=float, default=60, help="per cell (default 60 s)")
    p.add_argument("--jobs", type=int, default=2, help="submissions at once (default 2)")


def main(args: argparse.Namespace, state_dir: Path) -> int:
    if not args.submissions.is_dir():
        print(f"FAILED: {args.submissions} is not a folder", file=sys.stderr)
        return 1
    results, _ = grade(args.submissions, args.out, args.labs,
                       args.classroom or state_dir / "classroom", args.classroom is not None,
                       args.timeout, args.cell_timeout, args.jobs)
    return 0 if results else 1
