"""The course's launcher: run the brokers natively, without Docker.

    python -m brokerlab.backstage start [BROKER...]          (make brokers)
    python -m brokerlab.backstage stop [BROKER...]
    python -m brokerlab.backstage status [--json]            (make status)
    python -m brokerlab.backstage restart BROKER [--crash]   (returns when it answers again)
    python -m brokerlab.backstage runs NAME                  (exit 0 if it runs broker/node NAME)
    python -m brokerlab.backstage cluster start|stop|status [BROKER...]   (make cluster)
    python -m brokerlab.backstage node kill|start|stop NODE
    python -m brokerlab.backstage fetch [kafka] [perftest]   (jars via Maven, once: Kafka and
                                                              its tools, RabbitMQ PerfTest)
    python -m brokerlab.backstage classroom start --roster FILE [--dir DIR] [--host HOST]
        [--rotate] [--prune]
    python -m brokerlab.backstage classroom stop|status [--dir DIR]
    python -m brokerlab.backstage classroom reset LOGIN [--dir DIR]
        (make classroom ROSTER=...): the three brokers TLS-only, one isolated account per
        student of the roster, beside the course's own brokers; DIR (default
        <state folder>/classroom) holds the CA, the brokers and env/<login>.env, each
        student's settings. --rotate: new passwords; --prune: delete the accounts of
        students no longer in the roster (else they are kept, and start says so).
    python -m brokerlab.backstage grade SUBMISSIONS [--classroom DIR] [--out DIR]
        [--timeout S] [--cell-timeout S] [--jobs N]          (make grade: grade submitted labs)

Brokers: redis, rabbitmq, kafka. Nodes: kafka-1..3, rabbit-1..3, redis-primary,
redis-replica-1..2, sentinel-1..3. Starts and stops wait for the state folder's lock, so
two at once never fight over a port. A failure exits non-zero with one message on stderr
that names the log to read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from brokerlab.backstage import classroom, clusters, grade, process, single
from brokerlab.backstage.process import LauncherError
from brokerlab.settings import Settings, SettingsError, get_settings


def _each(names: list[str], action: Callable[[str], object]) -> int:
    """Run action for every name; report each failure on stderr and go on."""
    failures = 0
    for name in names:
        try:
            action(name)
        except LauncherError as exc:
            failures += 1
            print(f"FAILED: {name}: {exc}", file=sys.stderr)
    return 1 if failures else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m brokerlab.backstage",
                                description=(__doc__ or "").split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    # No `choices` with nargs="*": Python 3.11 rejects the empty list; main() checks them.
    brokers = {"nargs": "*", "help": f"any of {', '.join(single.BROKERS)} (default: all)"}
    sub.add_parser("start").add_argument("brokers", **brokers)
    sub.add_parser("stop").add_argument("brokers", **brokers)
    sub.add_parser("status").add_argument("--json", action="store_true")
    restart = sub.add_parser("restart")
    restart.add_argument("broker", choices=single.BROKERS)
    restart.add_argument("--crash", action="store_true", help="SIGKILL, as a power cut")
    sub.add_parser("runs").add_argument("name", help="a broker or a cluster node")
    cluster = sub.add_parser("cluster")
    cluster.add_argument("action", choices=["start", "stop", "status"])
    cluster.add_argument("brokers", **brokers)
    node = sub.add_parser("node")
    node.add_argument("action", choices=["kill", "start", "stop"])
    node.add_argument("node")
    sub.add_parser("fetch").add_argument("names", nargs="*", metavar="NAME",
                                         help=f"any of {', '.join(single.JARS)} (default: all)")
    # grade: submitted labs (backstage/grade.py)
    grade.add_parser(sub)
    room = sub.add_parser("classroom")
    room.add_argument("action", choices=["start", "stop", "status", "reset"])
    room.add_argument("login", nargs="?", help="reset: the student whose names to empty")
    room.add_argument("--roster", type=Path, help="start: CSV of login[,name] lines")
    room.add_argument("--dir", type=Path, default=None,
                      help="the classroom's folder (default: <state folder>/classroom)")
    room.add_argument("--rotate", action="store_true", help="start: new passwords for all")
    room.add_argument("--prune", action="store_true",
                      help="start: delete the accounts of students not in the roster")
    room.add_argument("--host", help="start: the name or address students connect to "
                      "(default 127.0.0.1: this machine only; kept for the next start)")
    return p


def _classroom(args: argparse.Namespace) -> int:
    """classroom start|stop|status|reset (backstage/classroom.py; its own folder and lock)."""
    if args.action == "start":
        if args.roster is None:
            parser().error("classroom start needs --roster FILE")
        classroom.start(args.roster, args.dir, rotate=args.rotate, prune=args.prune,
                        host=args.host)
    elif args.action == "stop":
        classroom.stop(args.dir)
    elif args.action == "reset":
        if not args.login:
            parser().error("classroom reset needs the LOGIN of a student")
        classroom.reset(args.login, args.dir)
    else:
        rows = classroom.status(args.dir)
        for r in rows:
            print(f"{r.name:18} {r.state:16} {r.address:16} log: {r.log}")
        students = classroom.students_of(args.dir)
        print(f"students: {len(students)} ({', '.join(students)})" if students else
              "students: none")
        return 0 if all(r.state == "running" for r in rows) else 3
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    unknown = set(getattr(args, "brokers", None) or []) - set(single.BROKERS)
    if unknown:
        parser().error(f"unknown broker(s) {sorted(unknown)}; any of {', '.join(single.BROKERS)}")
    if set(getattr(args, "names", None) or []) - set(single.JARS):
        parser().error(f"fetch: any of {', '.join(single.JARS)}")
    try:
        if args.command == "classroom":
            return _classroom(args)
        settings = get_settings()
        if args.command == "grade":  # submitted labs (backstage/grade.py)
            return grade.main(args, settings.state_dir)
        if args.command in ("status", "runs", "fetch") or (
                args.command == "cluster" and args.action == "status"):
            return _looks(args, settings)
        with process.state_lock(settings.state_dir):
            return _changes(args, settings)
    except (LauncherError, SettingsError, OSError, subprocess.SubprocessError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1


def _looks(args: argparse.Namespace, settings: Settings) -> int:
    """The commands that change nothing (no lock needed)."""
    if args.command == "runs":
        name = args.name
        ours = single.is_managed(name, settings) if name in single.BROKERS else \
            clusters.runs(name, settings)
        return 0 if ours else 1
    if args.command == "fetch":
        for name in args.names or sorted(single.JARS):
            print(single.fetch_jars(name))
    elif args.command == "cluster":
        for n in clusters.status(settings, tuple(args.brokers or clusters.BROKERS)):
            print(f"{n.name:16} {n.state:14} {n.address:16} log: {n.log}")
    elif args.json:
        print(json.dumps([{**asdict(r), "log": str(r.log)} for r in single.status(settings)]))
    else:
        for r in single.status(settings):
            print(f"{r.name:9} {r.state:19} {r.address:40} log: {r.log}")
    return 0


def _changes(args: argparse.Namespace, settings: Settings) -> int:
    """The commands that start or stop something (run under the state folder's lock)."""
    if args.command == "start":
        return _each(args.brokers or list(single.BROKERS),
                     lambda b: single.start(b, settings))
    if args.command == "stop":
        return _each(args.brokers or list(single.BROKERS),
                     lambda b: single.stop(b, settings))
    if args.command == "restart":
        seconds = single.restart(args.broker, settings, crash=args.crash)
        print(f"{args.broker:9} answers again after {seconds:.1f} s")
        return 0
    if args.command == "cluster":
        names = args.brokers or list(clusters.BROKERS)
        if args.action == "start":
            return _each(names, lambda b: clusters.start(b, settings))
        return _each(names, lambda b: clusters.stop(b, settings))
    if args.action == "start":
        clusters.start_node(args.node, settings)
    else:
        clusters.stop_node(args.node, settings, crash=args.action == "kill")
    return 0


if __name__ == "__main__":
    sys.exit(main())
