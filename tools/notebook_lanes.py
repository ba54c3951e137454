"""Run notebooks with nbval in two lanes side by side where they cannot disturb each other.

On two cores most of a notebook run is waiting on a broker, so CI runs two nbval
processes at once, split by what each notebook needs to itself:

- lane 1, ``single``: the lessons on the single brokers. Those that restart a single
  broker or change a setting for every client (``RESTARTS`` below) run last, once no
  other lesson is on the single brokers;
- lane 2: first ``beside`` (``BESIDE``: more lessons on the single brokers, which keep
  to their own names, so they can share the brokers with lane 1 and leave the two lanes
  even), then ``clusters``: module 04 (it kills and starts nodes of the three-node
  clusters, which no other lesson uses) and 06.01 (the classroom's own brokers);
- then, alone on the machine, the notebooks that measure throughput (``MEASURES``): a
  neighbour would skew their figures.

A lesson's notebook and its solution share a lesson number, hence a lane, so they never
run at the same time. Every nbval exit status counts: the command fails if any lane fails.

    python tools/notebook_lanes.py "python -m pytest --nbval-lax ..." notebooks solutions
    python tools/notebook_lanes.py --list notebooks solutions      # which lane each is in
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"

CLUSTERS = ("04.", "06.01")
RESTARTS = {  # lesson -> what it does to the single brokers
    "01.03": "restarts RabbitMQ and raises its memory alarm",
    "02.04": "restarts Redis and changes its persistence settings",
    "03.04": "restarts Kafka and changes a broker setting",
    "07.03": "lowers a Redis output-buffer limit for every client",
}
BESIDE = ("03.",)  # module 03's Kafka lessons but 03.04 (a restart): about a third of lane 1
MEASURES = ("05.", "07.01")  # throughput figures and same-run ratios
LANES = ("single", "restarts", "beside", "clusters", "measures")


def lesson(path: Path) -> str:
    found = re.match(r"\d\d\.\d\d", path.name)
    return found.group(0) if found else path.name


def lane(path: Path) -> str:
    """Which group of `LANES` a notebook runs in."""
    number = lesson(path)
    if number.startswith(CLUSTERS):
        return "clusters"
    if number.startswith(MEASURES):
        return "measures"
    if number in RESTARTS:
        return "restarts"
    return "beside" if number.startswith(BESIDE) else "single"


def notebooks(places: list[str]) -> list[Path]:
    found: list[Path] = []
    for place in map(Path, places):
        found += sorted(place.glob("*.ipynb")) if place.is_dir() else [place]
    return found


def split(paths: list[Path]) -> dict[str, list[Path]]:
    lanes: dict[str, list[Path]] = {name: [] for name in LANES}
    for path in paths:
        lanes[lane(path)].append(path)
    return lanes


def run(command: list[str], paths: list[Path], log: Path | None = None,
        started: list[subprocess.Popen[bytes]] | None = None) -> int:
    """nbval on `paths` (none: nothing to do), its output to ours or appended to `log`;
    its process handle goes into `started`, so it can be stopped from elsewhere."""
    if not paths:
        return 0
    out = log.open("ab") if log else None
    try:
        process = subprocess.Popen([*command, *map(str, paths)], stdout=out,
                                   stderr=subprocess.STDOUT)
    finally:
        if out:
            out.close()  # the child keeps its own copy
    if started is not None:
        started.append(process)
    try:
        return process.wait()
    finally:
        if process.poll() is None:  # interrupted: no nbval outlives this command
            process.terminate()
            process.wait(30)


class SecondLane(threading.Thread):
    """Lane 2: `beside`, then `clusters`, into one log; `beside_done` is set between them."""

    def __init__(self, command: list[str], lanes: dict[str, list[Path]], log: Path) -> None:
        super().__init__(daemon=True)
        self.command, self.lanes, self.log = command, lanes, log
        self.beside_done = threading.Event()
        self.status = 0
        self.started: list[subprocess.Popen[bytes]] = []

    def run(self) -> None:
        try:
            self.status |= run(self.command, self.lanes["beside"], self.log, self.started) != 0
        finally:
            self.beside_done.set()
        self.status |= run(self.command, self.lanes["clusters"], self.log, self.started) != 0

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        self.join(60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print each notebook's lane")
    parser.add_argument("command", nargs="?", help="the nbval command, one shell-quoted string")
    parser.add_argument("places", nargs="*", help="notebooks or folders of notebooks")
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS,
                        help="where the second lane's log goes (default artifacts/)")
    args = parser.parse_args(argv)
    if args.list:
        places = ([args.command] if args.command else []) + args.places
        for path in notebooks(places):
            print(f"{lane(path):9} {path}")
        return 0
    if not args.command or not args.places:
        parser.error("give the nbval command and at least one notebook or folder")
    command = shlex.split(args.command)
    lanes = split(notebooks(args.places))
    started = time.monotonic()
    args.artifacts.mkdir(parents=True, exist_ok=True)
    log = args.artifacts / "lane-2.log"
    log.write_bytes(b"")
    second = SecondLane(command, lanes, log)
    print(f"lanes: {len(lanes['single']) + len(lanes['restarts'])} notebook(s) in lane 1 "
          f"beside {len(lanes['beside'])} + {len(lanes['clusters'])} in lane 2 "
          f"(lane 2's output: {log})", flush=True)
    second.start()
    try:
        status = run(command, lanes["single"]) != 0
        second.beside_done.wait()  # a restart would break a lesson of lane 2 on its broker
        status |= run(command, lanes["restarts"]) != 0
        second.join()
    finally:
        second.stop()
    status |= second.status
    print("---- lane 2:", flush=True)
    sys.stdout.write(log.read_text(errors="replace"))
    if lanes["measures"]:
        print(f"lanes: {len(lanes['measures'])} measuring notebook(s), alone", flush=True)
        status |= run(command, lanes["measures"]) != 0
    print(f"lanes: {'FAILED' if status else 'passed'} in {time.monotonic() - started:.0f} s")
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
