"""Tests for tools/notebook_lanes.py: no notebook that disturbs others runs beside them."""

from __future__ import annotations

import importlib
import re
import shlex
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
            assert lanes.lane(path) not in ("single", "beside"), f"{path.name} disturbs others"


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


def test_restarts_wait_for_the_lessons_beside_them(tmp_path: Path) -> None:
    """A restart of a single broker never overlaps a lesson of lane 2 on the same brokers."""
    for name in ("01.01-a.ipynb", "01.03-restart.ipynb", "03.02-beside.ipynb",
                 "04.01-cluster.ipynb"):
        (tmp_path / name).write_text("{}")
    times = tmp_path / "times"
    # Each nbval stand-in writes "<first notebook> <start> <end>"; lane 2's waits 1.5 s.
    script = ("import sys, time; s = time.time(); "
              "time.sleep(1.5 if 'beside' in sys.argv[-1] else 0.1); "
              f"open({str(times)!r}, 'a').write(f'{{sys.argv[-1]}} {{s}} {{time.time()}}\\n')")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "notebook_lanes.py"),
                           f"{sys.executable} -c {shlex.quote(script)}", str(tmp_path),
                           "--artifacts", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    spans = {Path(line.split()[0]).stem: tuple(map(float, line.split()[1:]))
             for line in times.read_text().splitlines()}
    assert spans["01.01-a"][0] < spans["03.02-beside"][1], "lane 1 ran beside lane 2"
    assert spans["01.03-restart"][0] >= spans["03.02-beside"][1], spans
