"""How many students one machine's classroom carries: N students each hand in a solved lab,
graded two at a time against the classroom, while memory and every name on the brokers is
sampled. Not part of `make test` (30 students: about ten minutes).

    python tools/classroom_capacity.py [--students 30] [--jobs 2]    (make classroom-capacity)

It starts a classroom of N students in a temporary folder (ports 5671/15671, 6390, 9094/9095;
the course's own brokers are left alone), gives student i a copy of solutions/<lab> (cycling
over STUDENT_LABS), and runs `python -m brokerlab.backstage grade ... --classroom DIR --jobs 2`.
Every second a thread records the resident memory of the classroom's brokers, of the grader
and its kernels, and the machine's used memory (total - available); and, as the admin, the
names that exist (RabbitMQ queues per vhost, Redis keys, Kafka topics), each of which must lie
in its owner's namespace: a queue of vhost X starts with `X-` or `amq.gen-`, a key or a topic
with `<some login>-` (Kafka's `__*` aside). The classroom is stopped at the end.
Writes artifacts/classroom-capacity.json and .md; exits 1 unless every lab passed and no
name was misplaced.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from measure_stack import tree_rss_mb

from brokerlab.backstage import classroom, process
from brokerlab.backstage import classroom_brokers as cb

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
# The labs a student account can do. Left out: 01.03, 02.04 and 03.04 restart a broker (03.04
# also changes a broker setting): administrator's work on a shared broker; 02.02 subscribes to
# a pattern `<login>-...-*`, which Redis's ACL matches literally against `&<login>-*` (refused);
# 04.01 needs the three-node clusters.
STUDENT_LABS = ("00.02", "01.01", "01.02", "01.04", "01.05", "02.01", "02.03", "03.01",
                "03.02", "03.03", "03.05", "05.01", "07.01", "07.02", "07.03")


def _mib_used() -> float:
    info = {line.split(":")[0]: int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()}
    return (info["MemTotal"] - info["MemAvailable"]) / 1024


class Sampler(threading.Thread):
    """Once a second: memory, and every name on the brokers with its namespace checked."""

    def __init__(self, layout: cb.Layout, password: str, logins: set[str]) -> None:
        super().__init__(daemon=True)
        self.layout, self.password, self.logins = layout, password, logins
        self.brokers = {b: process.managed_pid(layout.place(b)) for b in cb.BROKERS}
        self.grader: int | None = None
        self.halt = threading.Event()
        self.peak: dict[str, float] = Counter()
        self.samples = 0
        self.seen: dict[str, set[str]] = {b: set() for b in cb.BROKERS}
        self.most: dict[str, int] = Counter()
        self.misplaced: dict[str, str] = {}  # "broker name" -> why
        self.errors: Counter[str] = Counter()
        self.kafka: Any = None

    def run(self) -> None:
        while not self.halt.is_set():
            began = time.monotonic()
            self.sample()
            self.halt.wait(max(0.0, 1.0 - (time.monotonic() - began)))
        if self.kafka is not None:
            self.kafka.close()

    def sample(self) -> None:
        each = {b: tree_rss_mb(pid) if pid else 0.0 for b, pid in self.brokers.items()}
        for key, value in [*each.items(), ("brokers", sum(each.values())), ("machine", _mib_used()),
                           ("grading", tree_rss_mb(self.grader) if self.grader else 0.0)]:
            self.peak[key] = max(self.peak[key], value)
        for broker, names in (("rabbitmq", self.queues), ("redis", self.keys),
                              ("kafka", self.topics)):
            try:
                found = names()
            except Exception as exc:  # one failed look: counted, the next second tries again
                self.errors[f"{broker}: {type(exc).__name__}"] += 1
                continue
            self.most[broker] = max(self.most[broker], len(found))
            for name, why in found:
                self.seen[broker].add(name)
                if why:
                    self.misplaced.setdefault(f"{broker} {name}", why)
        self.samples += 1

    def owned(self, name: str) -> str:
        return "" if any(name.startswith(f"{login}-") for login in self.logins) \
            else "not under any student's `<login>-`"

    def queues(self) -> list[tuple[str, str]]:
        status, rows = cb.rabbitmq_api(self.layout, "GET", "/api/queues?columns=name,vhost",
                                       (cb.ADMIN, self.password))
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return [(f"{r['vhost']}/{r['name']}",
                 "" if r["name"].startswith((f"{r['vhost']}-", "amq.gen-"))
                 else f"in vhost {r['vhost']!r} without its prefix") for r in rows]

    def keys(self) -> list[tuple[str, str]]:
        client = cb.redis_admin(self.layout, self.password)
        try:
            dbs = [int(db[2:]) for db in client.info("keyspace")]
        finally:
            client.close()
        found = []
        for db in dbs:
            client = cb.redis_admin(self.layout, self.password, db)
            try:
                found += [(f"db{db}/{k}", self.owned(k)) for k in client.scan_iter(count=1000)]
            finally:
                client.close()
        return found

    def topics(self) -> list[tuple[str, str]]:
        if self.kafka is None:
            self.kafka = cb.kafka_admin(self.layout, self.password)
        try:
            return [(t, self.owned(t)) for t in self.kafka.list_topics()
                    if not t.startswith("__")]
        except Exception:
            self.kafka.close()
            self.kafka = None
            raise


def submissions(folder: Path, logins: list[str]) -> Counter[str]:
    """Student i hands in STUDENT_LABS[i % len] solved; how many of each lab."""
    labs = [next((ROOT / "solutions").glob(f"{lesson}-*.ipynb")) for lesson in STUDENT_LABS]
    for i, login in enumerate(logins):
        (folder / login).mkdir(parents=True)
        shutil.copy(labs[i % len(labs)], folder / login / labs[i % len(labs)].name)
    return Counter(labs[i % len(labs)].stem for i in range(len(logins)))


def summary(r: dict[str, Any]) -> str:
    peak, t = r["peak_memory_mib"], r["seconds"]
    names = ", ".join(f"{b} {n['distinct']} distinct (at most {n['at_once']} at once)"
                      for b, n in r["names"].items())
    return "\n".join([
        f"# Classroom capacity ({r['date']})", "",
        f"- {r['students']} students, one solved lab each, graded {r['jobs']} at a time "
        f"on {r['cpus']} CPU(s): " + ", ".join(f"{lab} x{n}" for lab, n in r["labs"].items()),
        f"- wall time {t['total']:.0f} s (classroom start {t['classroom_start']:.0f} s, "
        f"grading {t['grading']:.0f} s, stop {t['classroom_stop']:.0f} s)",
        f"- per submission: median {t['per_submission_median']:.1f} s, "
        f"max {t['per_submission_max']:.1f} s ({t['slowest']})",
        "- statuses: " + ", ".join(f"{n} {s}" for s, n in r["statuses"].items())
        + ("" if r["all_passed"] else f" — NOT all passed: {r['not_passed']}"),
        f"- peak memory: brokers {peak['brokers']:.0f} MiB (RabbitMQ {peak['rabbitmq']:.0f}, "
        f"Redis {peak['redis']:.0f}, Kafka {peak['kafka']:.0f}); grader and kernels "
        f"{peak['grading']:.0f} MiB; machine used {peak['machine']:.0f} MiB "
        f"(before {r['machine_before_mib']:.0f} MiB, of {r['machine_total_mib']:.0f})",
        f"- names sampled {r['samples']} times: {names}; "
        f"misplaced: {len(r['misplaced'])}"
        + (f" {r['misplaced']}" if r["misplaced"] else "")
        + (f"; failed looks {r['sample_errors']}" if r["sample_errors"] else ""), ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ARTIFACTS / "classroom-capacity.json")
    args = parser.parse_args()
    logins = [f"s{i:02d}" for i in range(1, args.students + 1)]
    tmp = Path(tempfile.mkdtemp(prefix="classroom-capacity-"))
    room, subs, graded = tmp / "room", tmp / "submissions", tmp / "grades"
    (tmp / "roster.csv").write_text("login\n" + "\n".join(logins) + "\n")
    labs = submissions(subs, logins)
    before, begin = _mib_used(), time.monotonic()
    sampler: Sampler | None = None
    try:  # stopped whatever happens, even if it only half started
        classroom.start(tmp / "roster.csv", room)
        started = time.monotonic()
        layout = cb.Layout(room)
        password = classroom.password_of(layout.env_dir / "instructor.env") or ""
        sampler = Sampler(layout, password, set(logins))
        sampler.start()
        grader = subprocess.Popen([sys.executable, "-m", "brokerlab.backstage", "grade",
                                   str(subs), "--classroom", str(room), "--out", str(graded),
                                   "--jobs", str(args.jobs)])
        sampler.grader = grader.pid
        grader.wait()
        graded_at = time.monotonic()
    finally:
        if sampler is not None:
            sampler.halt.set()
            sampler.join(timeout=30)
        classroom.stop(room)
    stopped = time.monotonic()
    assert sampler is not None
    rows = list(csv.DictReader((graded / "grades.csv").open()))
    times = sorted((float(r["seconds"]), f"{r['student']} {r['lab']}") for r in rows)
    statuses = Counter(r["status"] for r in rows)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "students": args.students, "jobs": args.jobs,
        "cpus": len(os.sched_getaffinity(0)), "labs": dict(sorted(labs.items())),
        "seconds": {"total": stopped - begin, "classroom_start": started - begin,
                    "grading": graded_at - started, "classroom_stop": stopped - graded_at,
                    "per_submission_median": statistics.median(t for t, _ in times),
                    "per_submission_max": times[-1][0], "slowest": times[-1][1]},
        "statuses": dict(statuses), "all_passed": statuses["passed"] == args.students,
        "not_passed": [f"{r['student']} {r['lab']}: {r['status']} {r['first_failure']}"
                       for r in rows if r["status"] != "passed"],
        "peak_memory_mib": {k: round(v, 1) for k, v in sampler.peak.items()},
        "machine_before_mib": round(before, 1),
        "machine_total_mib": round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024),
        "samples": sampler.samples,
        "names": {b: {"distinct": len(sampler.seen[b]), "at_once": sampler.most[b]}
                  for b in cb.BROKERS},
        "misplaced": sampler.misplaced, "sample_errors": dict(sampler.errors),
        "grades_csv": (graded / "grades.csv").read_text(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    text = summary(result)
    args.out.with_suffix(".md").write_text(text)
    print("\n" + text + f"\n{args.out}, {args.out.with_suffix('.md')}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if result["all_passed"] and not sampler.misplaced else 1


if __name__ == "__main__":
    sys.exit(main())
