"""Classroom mode: the three brokers secured for a group of students, on one machine.

    python -m brokerlab.backstage classroom start --roster FILE [--dir DIR] [--host HOST]
        [--rotate] [--prune]
    python -m brokerlab.backstage classroom stop|status [--dir DIR]
    python -m brokerlab.backstage classroom reset LOGIN [--dir DIR]

A roster (CSV: `login[,name]`, `#` comments, an optional `login,name` header) becomes one
account per student on each broker, isolated from the others: RabbitMQ gives each
student a vhost named after the login, Redis and Kafka allow only names starting with
`<login>-` (the course names everything `<COURSE_NAMESPACE>-...`, and a student's env
file sets COURSE_NAMESPACE to the login). The brokers run beside the course's own, TLS
only, with a course CA made here (`ca.pem`, the one file students need besides their
env file). Layout of DIR (default <BROKERLAB_STATE_DIR>/classroom):

    ca.pem                 the course CA certificate
    private/               (mode 700) CA key, server and controller keys and certificates
    env/instructor.env     admin's credentials (mode 600)
    env/<login>.env        one per student (mode 600): the only place passwords live
    rabbitmq/ redis/ kafka/  each broker's data, configuration and broker.log

A second `start` reuses what runs and keeps every account and password; `--rotate`
gives every student a new password. A student left out of the roster keeps the account
(start says so); `--prune` deletes such accounts and their env files.
"""

from __future__ import annotations

import csv
import ipaddress
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from brokerlab.backstage import classroom_brokers as brokers
from brokerlab.backstage import process
from brokerlab.backstage.classroom_brokers import ADMIN, INSTRUCTOR, Layout, write_private
from brokerlab.backstage.process import LauncherError
from brokerlab.settings import Settings, get_settings
from brokerlab.settings import read_env_file as load_env

HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$")
LOGIN_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
RESERVED = frozenset({ADMIN, INSTRUCTOR, "guest", "default"})
CERT_DAYS = 825


class RosterError(LauncherError):
    """The roster has a line the classroom cannot use; the message names each one."""


@dataclass(frozen=True)
class Student:
    login: str
    name: str = ""


def default_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).state_dir / "classroom"


# ---------------------------------------------------------------- the roster


def parse_roster(text: str, source: str = "roster") -> list[Student]:
    """Every student of a roster, or RosterError naming every bad line and why.

    Nothing is created before the whole roster is valid."""
    students: list[Student] = []
    seen: dict[str, int] = {}
    errors: list[str] = []
    header_allowed = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in next(csv.reader([line]))]
        if header_allowed and [f.lower() for f in fields] in (["login"], ["login", "name"]):
            header_allowed = False
            continue
        header_allowed = False
        login, name = fields[0], ",".join(fields[1:2])
        why = None
        if len(fields) > 2:
            why = f"{len(fields)} fields; expected login[,name] (quote a name with a comma)"
        elif not LOGIN_RE.match(login):
            why = (f"login {login!r} must match ^[a-z0-9][a-z0-9_-]{{0,31}}$ "
                   "(1-32 of a-z, 0-9, '_', '-', lower case, starting with a letter or digit)")
        elif login in RESERVED:
            why = f"login {login!r} is reserved ({', '.join(sorted(RESERVED))})"
        elif login in seen:
            why = f"login {login!r} is a duplicate of line {seen[login]}"
        if why:
            errors.append(f"{source} line {number}: {why}")
            continue
        seen[login] = number
        students.append(Student(login, name))
    if errors:
        raise RosterError("the roster is not valid; nothing was created:\n  "
                          + "\n  ".join(errors))
    if not students:
        raise RosterError(f"{source} names no student; one `login[,name]` line each")
    return students


def read_roster(path: Path) -> list[Student]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RosterError(f"cannot read the roster {path}: {exc}") from exc
    return parse_roster(text, str(path))


# ---------------------------------------------------------------- env files


def env_values(login: str, password: str, root: Path, host: str = brokers.LOCAL
               ) -> dict[str, str]:
    """A student's (or, for `instructor`, admin's) connection settings, at `host`."""
    user = ADMIN if login == INSTRUCTOR else login
    vhost = "%2F" if login == INSTRUCTOR else login
    ca = str(root / "ca.pem")
    amqp, management, _ = brokers.RABBITMQ_PORTS
    return {
        "COURSE_NAMESPACE": login,
        "RABBITMQ_URL": f"amqps://{user}:{password}@{host}:{amqp}/{vhost}",
        "RABBITMQ_MANAGEMENT_URL": f"https://{host}:{management}",
        "REDIS_URL": f"rediss://{user}:{password}@{host}:{brokers.REDIS_PORT}/0",
        "KAFKA_BOOTSTRAP_SERVERS": f"{host}:{brokers.KAFKA_PORT}",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": user,
        "KAFKA_SASL_PASSWORD": password,
        "KAFKA_SSL_CAFILE": ca,
        "SSL_CERT_FILE": ca,  # OpenSSL's default trust: pika's amqps, rediss, https
        "BROKERS": "external",
        # A shared broker is never restarted nor killed by a lesson. Without these, a lesson
        # that restarts a broker (01.03, 02.04, 03.04) would ask the course's launcher, and
        # on the instructor's machine restart the course's own broker, not the classroom's.
        **dict.fromkeys(FAULT_COMMANDS, REFUSE_FAULT),
    }


FAULT_COMMANDS = ("BROKERLAB_RESTART_COMMAND", "BROKERLAB_KILL_NODE_COMMAND",
                  "BROKERLAB_START_NODE_COMMAND")
REFUSE_FAULT = ('echo "the classroom brokers are shared: a lesson may not restart, kill or '
                'start them (skip this cell)" >&2; exit 1')


def render_env(values: dict[str, str]) -> str:
    return ("# brokerlab classroom: `set -a; . THIS_FILE; set +a` (secret: do not share)\n"
            + "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items()))


def password_of(path: Path) -> str | None:
    try:
        return load_env(path).get("KAFKA_SASL_PASSWORD") or None
    except OSError:
        return None


def new_password() -> str:
    return secrets.token_urlsafe(18)


# ---------------------------------------------------------------- certificates


def _openssl(*args: str) -> None:
    openssl = process.require_binary("openssl", "OpenSSL (the `openssl` command)")
    result = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise LauncherError(f"openssl {args[0]} failed:\n{result.stderr[-1500:]}")


def _signed_by_ca(layout: Layout, cert: Path) -> bool:
    openssl = shutil.which("openssl") or "openssl"
    result = subprocess.run([openssl, "verify", "-CAfile", str(layout.ca), str(cert)],
                            capture_output=True, text=True, timeout=30)
    return result.returncode == 0


def server_names(host: str) -> str:
    """The server certificate's subjectAltName: loopback, and the classroom's host.

    >>> server_names("10.0.0.5")
    'IP:127.0.0.1,DNS:localhost,IP:10.0.0.5'
    >>> server_names("brokers.school.example")
    'IP:127.0.0.1,DNS:localhost,DNS:brokers.school.example'
    """
    names = ["IP:127.0.0.1", "DNS:localhost"]
    if host not in brokers.LOOPBACK_NAMES:
        try:
            ipaddress.ip_address(host)
            names.append(f"IP:{host}")
        except ValueError:
            names.append(f"DNS:{host}")
    return ",".join(names)


def ensure_certificates(layout: Layout) -> None:
    """The course CA, a server certificate for 127.0.0.1, localhost and the classroom's
    host, and the certificate of Kafka's controller (its principal is a super user); made
    once with `openssl`, the server's again when the host changes."""
    private = layout.private
    private.mkdir(parents=True, exist_ok=True)
    os.chmod(private, 0o700)
    ca_key = private / "ca.key"
    if not (ca_key.exists() and layout.ca.exists()):
        _openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
                 "-days", "3650", "-subj", "/CN=brokerlab classroom CA",
                 "-keyout", str(ca_key), "-out", str(layout.ca),
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, common_name in (("server", "localhost"), ("controller", brokers.CONTROLLER_CN)):
        key, cert, keystore = layout.pem(name)
        names = server_names(layout.host if name == "server" else brokers.LOCAL)
        stamp = private / f"{name}.names"
        if (key.exists() and cert.exists() and keystore.exists() and _signed_by_ca(layout, cert)
                and (stamp.read_text() if stamp.exists() else server_names(brokers.LOCAL))
                == names):
            continue
        csr, ext = private / f"{name}.csr", private / f"{name}.ext"
        ext.write_text("basicConstraints=CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n"
                       f"subjectAltName={names}\n")
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}",
                 "-keyout", str(key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(layout.ca), "-CAkey", str(ca_key),
                 "-set_serial", str(secrets.randbits(63)), "-days", str(CERT_DAYS), "-sha256",
                 "-extfile", str(ext), "-out", str(cert))
        write_private(keystore, key.read_text() + cert.read_text())
        write_private(stamp, names)
        csr.unlink()
        ext.unlink()
    for path in private.iterdir():
        os.chmod(path, 0o600)


# ---------------------------------------------------------------- start / stop / status


def _check_dir(root: Path) -> Layout:
    if re.search(r"[\s'\"$`\\]", str(root)):
        raise LauncherError(f"classroom folder {str(root)!r}: use a path without spaces, "
                            "quotes, $ or backslashes (env files are sourced by the shell)")
    return Layout(root.expanduser().resolve())


def start(roster: Path, root: Path | None = None, *, rotate: bool = False,
          prune: bool = False, host: str | None = None,
          echo: Callable[[str], None] = print) -> dict[str, str]:
    """Start (or reuse) the classroom for `roster`; return broker -> started/reused.

    `host`: the name or address students connect to (kept for the next start). Anything
    but loopback makes the brokers listen on every interface, for students' own machines.
    """
    students = read_roster(roster)  # validated before anything is created
    layout = _check_dir(root or default_dir())
    layout.root.mkdir(parents=True, exist_ok=True)
    with process.state_lock(layout.root, echo=echo):
        began = time.monotonic()
        if host and host != layout.host:
            if not HOST_RE.match(host):
                raise LauncherError(f"--host {host!r}: give a host name or an IP address")
            running = [b for b in brokers.BROKERS if process.managed_pid(layout.place(b))]
            if running:
                raise LauncherError(
                    f"the classroom runs for {layout.host}; stop it first (`classroom stop`), "
                    f"then start it with --host {host}, and hand out the new env files")
            (layout.root / "host").write_text(host + "\n")
        ensure_certificates(layout)
        layout.env_dir.mkdir(exist_ok=True)
        os.chmod(layout.env_dir, 0o700)
        instructor = layout.env_file(INSTRUCTOR)
        admin_password = password_of(instructor) or new_password()
        write_private(instructor, render_env(env_values(INSTRUCTOR, admin_password,
                                                        layout.root, layout.host)))
        passwords: dict[str, str] = {}
        for student in students:
            old = None if rotate else password_of(layout.env_file(student.login))
            passwords[student.login] = old or new_password()
        wanted = {s.login for s in students}
        others = sorted(p.stem for p in layout.env_dir.glob("*.env")
                        if p.stem not in wanted and p.stem != INSTRUCTOR)
        kept = {} if prune else {login: password_of(layout.env_file(login)) or ""
                                 for login in others}
        accounts = {**{k: v for k, v in kept.items() if v}, **passwords}
        removed = others if prune else []
        outcome = {}
        for broker in brokers.BROKERS:
            outcome[broker] = brokers.start(layout, broker, admin_password, accounts, echo)
        brokers.rabbitmq_accounts(layout, admin_password, accounts, removed)
        brokers.redis_accounts(layout, admin_password, accounts)
        brokers.kafka_accounts(layout, admin_password, accounts, removed)
        for login, password in passwords.items():  # written once the brokers accept them
            write_private(layout.env_file(login),
                          render_env(env_values(login, password, layout.root, layout.host)))
        for login in removed:
            layout.env_file(login).unlink(missing_ok=True)
        seconds = time.monotonic() - began
    for broker, how in outcome.items():
        if how == "reused":
            echo(f"{broker:9} already running (reused; log {layout.place(broker).log})")
    echo(f"classroom ready in {seconds:.1f} s at {layout.host}: {len(students)} student(s)"
         f"{' with new passwords' if rotate else ''}; env files in {layout.env_dir}, "
         f"CA {layout.ca}")
    if others and not prune:
        echo(f"not in the roster but kept (delete with --prune): {', '.join(others)}")
    if removed:
        echo(f"deleted (not in the roster): {', '.join(removed)}")
    return outcome


def stop(root: Path | None = None, echo: Callable[[str], None] = print) -> int:
    """Stop the classroom's brokers (never the course's own); how many were running."""
    layout = _check_dir(root or default_dir())
    if not layout.root.exists():
        echo(f"classroom  not running (no {layout.root})")
        return 0
    stopped = 0
    with process.state_lock(layout.root, echo=echo):
        for broker in reversed(brokers.BROKERS):
            pid = brokers.stop(layout, broker)
            if pid is not None:
                stopped += 1
                echo(f"classroom {broker:9} stopped (pid {pid})")
    if not stopped:
        echo("classroom  not running")
    return stopped


def status(root: Path | None = None) -> list[process.Status]:
    layout = _check_dir(root or default_dir())
    password = password_of(layout.env_file(INSTRUCTOR)) or ""
    rows = []
    for broker in brokers.BROKERS:
        where = layout.place(broker)
        pid = process.managed_pid(where)
        answers = pid is not None and brokers.ready(layout, broker, password)
        state = ("running" if answers else "starting or hung") if pid else "stopped"
        port = brokers.ports(broker)[0]
        rows.append(process.Status(f"classroom {broker}", state, f"{layout.host}:{port}", pid,
                                   where.log))
    return rows


def students_of(root: Path | None = None) -> list[str]:
    layout = _check_dir(root or default_dir())
    return sorted(p.stem for p in layout.env_dir.glob("*.env") if p.stem != INSTRUCTOR)


def reset(login: str, root: Path | None = None, echo: Callable[[str], None] = print) -> None:
    """Empty one student's namespace: the vhost, keys `<login>-*`, topics and groups."""
    layout = _check_dir(root or default_dir())
    if login not in students_of(layout.root):
        raise LauncherError(f"no student {login!r} in the classroom at {layout.root}")
    password = password_of(layout.env_file(INSTRUCTOR)) or ""
    down = [r.name for r in status(layout.root) if r.state != "running"]
    if down:
        raise LauncherError(f"{', '.join(down)} not running: `classroom start` first")
    brokers.rabbitmq_reset(layout, password, login)
    keys = brokers.redis_reset(layout, password, login)
    groups, topics = brokers.kafka_reset(layout, password, login)
    echo(f"{login}: RabbitMQ vhost emptied; {keys} Redis key(s), {groups} Kafka group(s) "
         f"and {topics} topic(s) deleted")
