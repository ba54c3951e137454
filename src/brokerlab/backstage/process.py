"""The one process module of the launcher, for single brokers and cluster nodes alike.

Every process (a broker, or one node of a cluster) has a Place: a folder under the
state folder, where it runs (its working directory), writes its log and keeps its pid
file. "Ours" means: the pid is alive and its working directory is that folder, so a
stale pid file naming some other process never gets that process killed.

Starts and stops hold a file lock on <state_dir>/.lock, so two starts at once (make, a
notebook, a test) never fight over one port: the second waits, bounded, then finds the
broker running.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from brokerlab.checks import wait_until
from brokerlab.health import port_open

INSTALL_HINT = (
    "run `make install-system` (as root, or with sudo), or install it yourself: "
    "sudo apt-get install -y redis-server rabbitmq-server openjdk-17-jre-headless maven"
)
LOCK_TIMEOUT = 600.0  # a whole cluster can take minutes to start
STOP_TIMEOUT = 30.0

# Popen handles of the processes this Python process started: poll() reaps them, so a
# broker that dies while we watch never lingers as a zombie.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class LauncherError(RuntimeError):
    """A broker could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class Place:
    """Where one process lives: its folder, pid file and log."""

    name: str
    root: Path

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def log(self) -> Path:
        return self.root / "broker.log"


@dataclass(frozen=True)
class Status:
    """One line of `status`: a single broker or a cluster node."""

    name: str
    state: str  # e.g. "running (ours)", "stopped"; a node: "up", "hung?", "down"
    address: str
    pid: int | None
    log: Path


def port_of(address: str, default: int) -> int:
    """The port of a URL (amqp://h:5672/) or a host:port pair, else `default`."""
    return urlsplit(address if "://" in address else f"//{address}").port or default


def read_pid(place: Place) -> int | None:
    try:
        return int(place.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    """True if pid runs (a zombie does not: it is reaped if it is our child)."""
    child = CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del CHILDREN[pid]
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def ours(pid: int, place: Place) -> bool:
    """True if pid is alive and runs in this place's folder (we start it there)."""
    if not alive(pid):
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return cwd == str(place.root) or cwd.startswith(str(place.root) + os.sep)


def managed_pid(place: Place) -> int | None:
    """The pid of the process we started at this place, or None."""
    pid = read_pid(place)
    return pid if pid is not None and ours(pid, place) else None


def require_binary(path: str, what: str) -> str:
    found = shutil.which(path) or (path if Path(path).exists() else None)
    if not found:
        raise LauncherError(f"{what} is not installed ({path} not found): {INSTALL_HINT}")
    return found


def require_free(name: str, ports: list[int]) -> None:
    busy = [port for port in ports if port_open("127.0.0.1", port)]
    if busy:
        raise LauncherError(
            f"{name}: port(s) {busy} on 127.0.0.1 are taken by a process that is not a "
            f"working {name} started here. Find it with `ss -ltnp | grep -E "
            f"'{'|'.join(map(str, busy))}'` and stop it, or point the course at it with "
            "the environment variables in the README."
        )


def spawn(place: Place, argv: list[str], env: dict[str, str]) -> int:
    """Start argv in its own session (stop kills the whole group), logging to place.log."""
    place.root.mkdir(parents=True, exist_ok=True)
    with open(place.log, "ab") as log:
        log.write(f"\n==== brokerlab: starting {place.name} at {time.ctime()} ====\n".encode())
        log.flush()
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, env=env, cwd=place.root,
                                 start_new_session=True)
    CHILDREN[child.pid] = child
    place.pid_file.write_text(f"{child.pid}\n")
    return child.pid


def kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_gone(pid: int, timeout: float) -> bool:
    return bool(wait_until(lambda: not alive(pid), timeout, 0.2))


def stop(place: Place, *, crash: bool = False, timeout: float = STOP_TIMEOUT) -> int | None:
    """Stop the process we started at place: SIGTERM (brokers shut down cleanly on it), or
    SIGKILL with `crash=True` (a power cut); SIGKILL after `timeout`. Returns its pid, or
    None when nothing of ours ran there (a foreign pid in the file is left alone)."""
    pid = managed_pid(place)
    if pid is not None:
        kill_group(pid, signal.SIGKILL if crash else signal.SIGTERM)
        if not wait_gone(pid, timeout):
            kill_group(pid, signal.SIGKILL)
            wait_gone(pid, 5.0)
        kill_group(pid, signal.SIGKILL)  # anything left in its process group
    place.pid_file.unlink(missing_ok=True)
    return pid


def log_tail(place: Place, lines: int = 20) -> str:
    try:
        return "\n".join(place.log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"


def wait_ready(what: str, ready: Callable[[], bool], timeout: float,
               watched: list[Place]) -> float:
    """Wait, bounded, until ready(); fail early, with its log, if a watched process exits."""
    started = time.monotonic()

    def done() -> bool:
        for place in watched:
            pid = read_pid(place)
            if pid is None or not alive(pid):
                place.pid_file.unlink(missing_ok=True)
                raise LauncherError(f"{place.name} exited during start-up; read its log "
                                    f"{place.log}. Last lines:\n{log_tail(place)}")
        return ready()

    if not wait_until(done, timeout, 0.5):
        tails = "\n".join(f"--- {p.log}:\n{log_tail(p)}" for p in watched)
        raise LauncherError(f"{what} did not answer within {timeout:.0f} s; read "
                            f"{', '.join(str(p.log) for p in watched)}.\n{tails}")
    return time.monotonic() - started


@contextmanager
def state_lock(state_dir: Path, timeout: float = LOCK_TIMEOUT,
               echo: Callable[[str], None] = print) -> Iterator[None]:
    """Hold <state_dir>/.lock (flock) for a start, stop or restart; wait for it, bounded.

    The kernel drops the lock when its holder exits, even killed: a stale lock cannot stay.
    Spawned brokers do not inherit it (Popen closes other descriptors in the child).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "a") as handle:

        def take() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        if not take():
            echo(f"another start or stop holds {handle.name}; waiting (up to {timeout:.0f} s)")
            if not wait_until(take, timeout, 0.2):
                raise LauncherError(f"{handle.name} stayed locked for {timeout:.0f} s: another "
                                    "start or stop is still running (`ps -ef | grep brokerlab`)")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
