"""Measure the course's stack: each broker's cold-start time and resident memory, and
JupyterLab's with one kernel. Targets (issue 2): all three ready within 30 s; the whole
stack under 1.5 GB resident, so Binder's 2 GB fits.

    python tools/measure_stack.py            # restarts the brokers this launcher runs
    python tools/measure_stack.py --no-restart

Resident memory is the sum of RSS over each process and its descendants (RabbitMQ is a
shell, beam.smp, erl_child_setup and epmd; Kafka one JVM). Numbers go in issue notes,
not in tests: they depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from brokerlab.health import check

BROKERS = ("redis", "rabbitmq", "kafka")


def backstage(*args: str) -> subprocess.CompletedProcess[str]:
    """The course's launcher, through its command line (its one interface)."""
    return subprocess.run([sys.executable, "-m", "brokerlab.backstage", *args],
                          capture_output=True, text=True, timeout=300)


def launcher_pids() -> dict[str, int | None]:
    rows = json.loads(backstage("status", "--json").stdout)
    return {row["broker"]: row["pid"] for row in rows}


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def tree_rss_mb(pid: int) -> float:
    """Resident memory of pid and all its descendants, in MiB."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo += _children(p)
    return total / 1024


def _epmd_rss() -> float:
    out = subprocess.run(["pgrep", "-x", "epmd"], capture_output=True, text=True).stdout.split()
    return sum(tree_rss_mb(int(p)) for p in out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_jupyter() -> tuple[float, float]:
    """Start JupyterLab and one kernel; return (seconds until both are up, RSS MiB)."""
    port, token = _free_port(), secrets.token_hex(8)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("JupyterLab did not start within 60 s") from None
                time.sleep(0.3)
        request = urllib.request.Request(
            f"{base}/api/kernels?token={token}", data=b"{}", method="POST",
            headers={"Content-Type": "application/json"},
        )
        json.load(urllib.request.urlopen(request, timeout=30))  # the kernel process starts
        seconds = time.monotonic() - started
        time.sleep(5)  # let the kernel finish starting before measuring it
        return seconds, tree_rss_mb(proc.pid)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-restart", action="store_true",
                        help="measure the running brokers without a cold start")
    args = parser.parse_args()
    rows: list[tuple[str, str, float]] = []
    for broker in BROKERS:
        seconds = float("nan")
        if not args.no_restart:
            if check(broker).ok and backstage("runs", broker).returncode != 0:
                print(f"{broker}: running but not started here; measuring memory only")
            else:
                backstage("stop", broker)
                t0 = time.monotonic()
                backstage("start", broker)
                seconds = time.monotonic() - t0
        pid = launcher_pids()[broker]
        rss = tree_rss_mb(pid) if pid else float("nan")
        if broker == "rabbitmq" and pid:
            rss += _epmd_rss()
        rows.append((broker, "not restarted" if seconds != seconds else f"{seconds:5.1f} s", rss))
    jupyter_seconds, jupyter_rss = measure_jupyter()
    rows.append(("jupyterlab+1 kernel", f"{jupyter_seconds:5.1f} s", jupyter_rss))
    print(f"{'component':22} {'cold start':>10} {'resident':>12}")
    for name, seconds_text, rss in rows:
        print(f"{name:22} {seconds_text:>10} {rss:9.0f} MiB")
    total = sum(r[2] for r in rows if r[2] == r[2])
    broker_start = [r[1] for r in rows[:3]]
    print(f"{'total':22} {'':>10} {total:9.0f} MiB   (target < 1536 MiB; brokers: "
          f"{', '.join(broker_start)}; target < 30 s together)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
