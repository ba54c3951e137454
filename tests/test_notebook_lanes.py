"""Tests for tools/notebook_lanes.py: no notebook that disturbs others runs beside them."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
lanes = importlib.import_module("notebook_lanes")

# What a notebook does that other notebooks on the same brokers would notice.
DISTURBS = re.compile(r"faults\.(restart|close|config)|config_set|CONFIG SET|"
                      r"set_broker_config|set_vm_memory|kill_node|start_cluster")
ALL = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))


def test_what_disturbs_the_single_brokers_never_shares_them() -> None:
    for path in ALL:
        if DISTURBS.search(path.read_text()):
            assert lanes.lane(path) != "single", f"{path.name} disturbs others: not lane single"


def test_a_lesson_and_its_solution_share_a_lane() -> None:
    by_lesson: dict[str, set[str]] = {}
    for path in ALL:
        by_lesson.setdefault(lanes.lesson(path), set()).add(lanes.lane(path))
    assert all(len(found) == 1 for found in by_lesson.values()), by_lesson


def test_every_notebook_runs_once() -> None:
    split = lanes.split(lanes.notebooks([str(ROOT / "notebooks"), str(ROOT / "solutions")]))
    assert sorted(p for found in split.values() for p in found) == ALL


def test_a_failing_lane_fails_the_run(tmp_path: Path) -> None:
    for name in ("04.01-a.ipynb", "01.01-b.ipynb", "05.01-c.ipynb"):
        (tmp_path / name).write_text("{}")
    fail_on = tmp_path / "04.01-a.ipynb"
    command = f"{sys.executable} -c 'import sys; sys.exit(\"{fail_on}\" in sys.argv)'"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "tools" / "notebook_lanes.py"),
                               command, str(tmp_path), "--artifacts", str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)

    done = run()
    assert done.returncode == 1 and "lanes: FAILED" in done.stdout, done.stdout + done.stderr
    fail_on.unlink()
    done = run()
    assert done.returncode == 0 and "lanes: passed" in done.stdout, done.stdout + done.stderr
