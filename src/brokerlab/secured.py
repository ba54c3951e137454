"""Secured brokers for lesson 06.01: a classroom that runs, or a demo one for the lesson.

    secured = open_classroom(settings)     # bounded: reuses a running classroom, or starts
                                           # a demo one (two students) in a temporary folder
    secured.admin                          # the administrator's settings (env/instructor.env)
    secured.ca                             # the course CA's certificate (ca.pem)
    secured.close()                        # stops the demo classroom, if this call started it

The classroom itself (TLS brokers, one account per student) belongs to the launcher
(`make classroom`); like module 04's clusters, a lesson reaches it only through the
launcher's command line. While it is open, this kernel trusts the course CA
(SSL_CERT_FILE), as a student's env file makes it do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from brokerlab.clusters import make_room
from brokerlab.faults import LAUNCHER, FaultError, run_command
from brokerlab.health import port_open
from brokerlab.settings import Settings, get_settings, read_env_file

CLASSROOM_PORTS = {"RabbitMQ AMQPS": 5671, "RabbitMQ management HTTPS": 15671,
                   "Redis TLS": 6390, "Kafka SASL_SSL": 9094}
DEMO_ROSTER = "login,name\nada,Ada L.\ngrace,Grace H.\n"
START_TIMEOUT = 150.0
STOP_TIMEOUT = 120.0


class ClassroomUnavailable(RuntimeError):
    """No classroom to use and none could be started; the message says what to do."""


def classroom_folder(settings: Settings) -> Path:
    """Where a running classroom is looked for: BROKERLAB_CLASSROOM_DIR, or the launcher's
    default folder (`make classroom` without CLASSROOM_DIR)."""
    return Path(os.environ.get("BROKERLAB_CLASSROOM_DIR") or settings.state_dir / "classroom")


def demo_marker(settings: Settings) -> Path:
    """Names the demo classroom's folder while one runs: a kernel that died before its
    cleanup cell leaves it, and the next open_classroom() stops that demo."""
    return settings.state_dir / "demo-classroom"


@contextmanager
def trusting(cafile: str) -> Iterator[None]:
    """Make `cafile` OpenSSL's default trust (SSL_CERT_FILE) for this process, in a block."""
    old = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = cafile
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old


@dataclass
class SecuredBrokers:
    """A classroom's folder and the administrator's settings in it."""

    folder: Path
    settings: Settings
    demo: Path | None = None  # the temporary folder of a demo this object started
    admin: dict[str, str] = field(init=False)
    _undo: ExitStack = field(default_factory=ExitStack, init=False, repr=False)

    def __post_init__(self) -> None:
        self.admin = read_env_file(self.folder / "env" / "instructor.env")
        self._undo.enter_context(trusting(self.ca))

    @property
    def ca(self) -> str:
        return str(self.folder / "ca.pem")

    def admin_settings(self, namespace: str) -> Settings:
        """The administrator's connections, naming things in `namespace`."""
        return replace(Settings.from_env(self.admin), namespace=namespace,
                       state_dir=self.settings.state_dir)

    def students(self) -> list[str]:
        return sorted(p.stem for p in (self.folder / "env").glob("*.env")
                      if p.stem != "instructor")

    def student_env(self, login: str) -> dict[str, str]:
        return read_env_file(self.folder / "env" / f"{login}.env")

    def close(self, echo: Callable[[str], None] = print) -> None:
        """Stop the demo classroom if this object started it; trust as before."""
        try:
            if self.demo is not None:
                echo(_launcher("stop", "--dir", str(self.folder), settings=self.settings,
                               timeout=STOP_TIMEOUT).strip())
                shutil.rmtree(self.demo, ignore_errors=True)
                demo_marker(self.settings).unlink(missing_ok=True)
                self.demo = None
        finally:
            self._undo.close()


def _launcher(*args: str, settings: Settings, timeout: float) -> str:
    return run_command([*LAUNCHER, "classroom", *args], settings, timeout=timeout)


def _runs(folder: Path, settings: Settings) -> bool:
    """A classroom runs there, and this user may read its administrator's settings."""
    if not os.access(folder / "env" / "instructor.env", os.R_OK):
        return False
    try:
        _launcher("status", "--dir", str(folder), settings=settings, timeout=60)
    except FaultError:
        return False
    return True


def open_classroom(settings: Settings | None = None, *,
                   echo: Callable[[str], None] = print) -> SecuredBrokers:
    """A running classroom (BROKERLAB_CLASSROOM_DIR or the default folder) if this user may
    administer it; else a demo classroom started in a temporary folder (20-40 s)."""
    settings = settings or get_settings()
    marker = demo_marker(settings)
    if marker.exists():
        leftover = Path(marker.read_text().strip())
        try:
            _launcher("stop", "--dir", str(leftover / "classroom"), settings=settings,
                      timeout=STOP_TIMEOUT)
        except FaultError as exc:
            echo(f"could not stop the demo classroom an earlier run left: {exc}")
        shutil.rmtree(leftover, ignore_errors=True)
        marker.unlink(missing_ok=True)
        echo(f"stopped the demo classroom an earlier run left in {leftover}")
    folder = classroom_folder(settings)
    if _runs(folder, settings):
        echo(f"using the running classroom in {folder}")
        return SecuredBrokers(folder, settings)
    busy = [f"{name} ({port})" for name, port in CLASSROOM_PORTS.items()
            if port_open("127.0.0.1", port)]
    if busy:
        raise ClassroomUnavailable(
            f"the classroom ports are taken ({', '.join(busy)}), but this notebook cannot "
            f"read the administrator's settings of a classroom there ({folder}/env/"
            "instructor.env), and this lesson creates users, so it needs them. A student in "
            "a classroom: read this lesson with its outputs on the course's website, or run "
            "it on your own machine (it starts a demo classroom there). Your own classroom: "
            "set BROKERLAB_CLASSROOM_DIR to its folder and restart the kernel. A leftover: "
            "stop it with `python -m brokerlab.backstage classroom stop --dir DIR`.")
    # On a small machine (Binder's 2 GiB) module 04's clusters make room for the demo.
    make_room((), settings, echo, "of module 04 first (its lessons start them again)")
    demo = Path(tempfile.mkdtemp(prefix="brokerlab-classroom-demo-"))
    folder = demo / "classroom"
    (demo / "roster.csv").write_text(DEMO_ROSTER)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(demo))
    echo(f"starting a demo classroom (TLS RabbitMQ, Redis and Kafka; two students) in "
         f"{folder}; this takes 20-40 s...")
    command = ("start", "--roster", str(demo / "roster.csv"), "--dir", str(folder))
    began = time.monotonic()
    try:
        _launcher(*command, settings=settings, timeout=START_TIMEOUT)
    except FaultError as exc:
        try:
            _launcher("stop", "--dir", str(folder), settings=settings, timeout=STOP_TIMEOUT)
        except FaultError:
            pass
        shutil.rmtree(demo, ignore_errors=True)
        marker.unlink(missing_ok=True)
        raise ClassroomUnavailable(
            f"the demo classroom did not start: {exc}\nRun it in a terminal to see every "
            f"step: {' '.join(LAUNCHER)} classroom {' '.join(command)}. The usual causes: "
            "the course's brokers are not installed (`make lab` installs them), or the "
            "machine is short of memory (on Binder: Kernel > Shut Down All Kernels, then run "
            "this notebook again).") from None
    echo(f"demo classroom ready in {time.monotonic() - began:.0f} s")
    return SecuredBrokers(folder, settings, demo)
