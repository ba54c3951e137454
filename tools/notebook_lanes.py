"""Run notebooks with nbval in two lanes side by side where they cannot disturb each other.

On two cores most of a notebook run is waiting on a broker, so CI runs two nbval
processes at once, split by what each notebook needs to itself:

- lane ``clusters``: module 04 (it kills and starts nodes of the three-node clusters,
  which no other lesson uses) and 06.01 (the classroom's own brokers);
- lane ``single``: every other notebook, on the single brokers. Those that restart a
  single broker or change a setting for every client (``RESTARTS`` below) run last in
  this lane, after the ones that share the brokers;
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
MEASURES = ("05.", "07.01")  # throughput figures and same-run ratios


def lesson(path: Path) -> str:
    found = re.match(r"\d\d\.\d\d", path.name)
    return found.group(0) if found else path.name


def lane(path: Path) -> str:
    """'clusters', 'single', 'restarts' (single, at the end) or 'measures'."""
    number = lesson(path)
    if number.startswith(CLUSTERS):
        return "clusters"
    if number.startswith(MEASURES):
        return "measures"
    return "restarts" if number in RESTARTS else "single"


def notebooks(places: list[str]) -> list[Path]:
    found: list[Path] = []
    for place in map(Path, places):
        found += sorted(place.glob("*.ipynb")) if place.is_dir() else [place]
    return found


def split(paths: list[Path]) -> dict[str, list[Path]]:
    lanes: dict[str, list[Path]] = {"clusters": [], "single": [], "restarts": [], "measures": []}
    for path in paths:
        lanes[lane(path)].append(path)
    return lanes


def run(command: list[str], paths: list[Path], log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start nbval on `paths`, its output to ours or to `log`."""
    argv = [*command, *map(str, paths)]
    if log is None:
        return subprocess.Popen(argv, stderr=subprocess.STDOUT)
    with log.open("wb") as out:  # the child keeps its own copy of the file
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print each notebook's lane")
    parser.add_argument("command", nargs="?", help="the nbval command, one shell-quoted string")
    parser.add_argument("places", nargs="*", help="notebooks or folders of notebooks")
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS,
                        help="where the clusters lane's log goes (default artifacts/)")
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
    status = 0
    beside = None
    log = args.artifacts / "lane-clusters.log"
    if lanes["clusters"]:
        args.artifacts.mkdir(parents=True, exist_ok=True)
        print(f"lanes: {len(lanes['clusters'])} notebook(s) on the clusters beside "
              f"{len(lanes['single']) + len(lanes['restarts'])} on the single brokers "
              f"(the clusters lane's output: {log})", flush=True)
        beside = run(command, lanes["clusters"], log)
    try:
        for name in ("single", "restarts"):
            if lanes[name]:
                status |= run(command, lanes[name]).wait() != 0
        if beside is not None:
            status |= beside.wait() != 0
            print("---- the clusters lane:", flush=True)
            sys.stdout.write(log.read_text(errors="replace"))
        if lanes["measures"]:
            print(f"lanes: {len(lanes['measures'])} measuring notebook(s), alone", flush=True)
            status |= run(command, lanes["measures"]).wait() != 0
    finally:
        if beside is not None and beside.poll() is None:
            beside.terminate()
            beside.wait(30)
    print(f"lanes: {'FAILED' if status else 'passed'} in {time.monotonic() - started:.0f} s")
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
