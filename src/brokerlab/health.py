"""Is each broker really serving? Round trips with bounded time, and `require()`.

`check()` connects and does a real exchange (Redis: SET/GET; RabbitMQ: publish and get
on a temporary queue; Kafka: metadata, and with `deep=True` a produced record), so an
open port that does not answer counts as down. Every check is bounded by `timeout`.

A broker that dies mid-lesson: `start_lesson` installs `install_failure_handler`, so the
next cell that touches it fails with which broker, its URL, the tail of its log (when the
course's launcher runs it) and how to start it again, instead of a bare client error.

Taught in 00.01 (the live status) and used by every notebook's setup cell.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from brokerlab.checks import wait_until
from brokerlab.settings import Settings, get_settings

START_HINT = {
    "redis": "make brokers (native), `docker compose up -d redis`, or set REDIS_URL",
    "rabbitmq": "make brokers (native), `docker compose up -d rabbitmq`, or set RABBITMQ_URL",
    "kafka": "make brokers (native), `docker compose up -d kafka`, "
    "or set KAFKA_BOOTSTRAP_SERVERS",
}
NAMES = {"redis": "Redis", "rabbitmq": "RabbitMQ", "kafka": "Kafka"}
LOGIN_HINT = ("The broker answered and refused this user or password: load your current "
              "settings again (a classroom's env file: `set -a; . LOGIN.env; set +a`, then "
              "restart JupyterLab) or ask whoever runs the brokers for a new password.")
KAFKA_HEALTH_TOPIC = "_brokerlab-health"


class BrokerUnavailable(RuntimeError):
    """A broker the notebook needs does not answer; the message says how to start it."""


class LoginRefused(BrokerUnavailable):
    """A broker answered but refused the login: the user or password in the settings is
    wrong (a classroom's env file that is out of date, a typo in a URL)."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback: the message is the whole story.
        return [f"{type(self).__name__}: {line}" if not n else line
                for n, line in enumerate(str(self).splitlines())]


@dataclass(frozen=True)
class BrokerStatus:
    broker: str
    ok: bool
    address: str
    detail: str
    seconds: float
    login_refused: bool = False  # it answered, and said no to the user or password

    def __str__(self) -> str:
        mark = "✔" if self.ok else "✘"
        name = NAMES[self.broker]
        return f"{mark} {name:8} {self.address:40} {self.detail} ({self.seconds:.2f} s)"


def port_problem(host: str, port: int, timeout: float = 0.5) -> str | None:
    """None if something accepts TCP connections at host:port, else a short reason.

    The package's one port probe: an open port is not a broker that answers (that is
    `check`), but a refused one says "down" in milliseconds.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused (nothing listens there)"
    except TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return f"cannot connect: {exc}"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections at host:port (see `port_problem`)."""
    return port_problem(host, port, timeout) is None


def _check_redis(settings: Settings, timeout: float, deep: bool) -> str:
    from brokerlab.clients import redis_client

    client = redis_client(settings, timeout=timeout)
    try:
        # In the namespace: a classroom account may touch only `<COURSE_NAMESPACE>-*` keys.
        key = f"{settings.namespace}-health-{uuid.uuid4().hex}"
        client.set(key, "ok", px=10_000)
        if client.get(key) != "ok":
            raise RuntimeError("SET/GET round trip returned the wrong value")
        client.delete(key)
        return f"Redis {client.info('server').get('redis_version', '?')}"
    finally:
        client.close()


def _check_rabbitmq(settings: Settings, timeout: float, deep: bool) -> str:
    from brokerlab.clients import rabbitmq_connection

    connection = rabbitmq_connection(settings, timeout=timeout)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.basic_publish("", queue, b"ping")
        if not wait_until(lambda: channel.basic_get(queue, auto_ack=True)[0] is not None,
                          timeout, interval=0.05):
            raise RuntimeError("published a message but could not get it back")
        version = connection._impl.server_properties.get("version", b"?")
        return f"RabbitMQ {version.decode() if isinstance(version, bytes) else version}"
    finally:
        if connection.is_open:
            connection.close()


def _check_kafka(settings: Settings, timeout: float, deep: bool) -> str:
    from brokerlab.clients import kafka_admin, kafka_producer

    reasons = []
    for server in settings.kafka_bootstrap_servers:
        host, _, port = server.rpartition(":")
        reason = port_problem(host.strip("[]"), int(port), min(timeout, 2.0))
        if reason is None:
            break
        reasons.append(f"{server}: {reason}")
    else:
        raise ConnectionError("; ".join(reasons))
    # kafka-python retries a refused SASL login until its bootstrap times out, and only
    # logs why: keep its log lines, so a wrong password is told apart from a broker down.
    logged = _KafkaLog()
    logging.getLogger("kafka").addHandler(logged)
    try:
        admin = kafka_admin(settings, timeout=timeout)
    except Exception as exc:
        refusal = next((line for line in logged.lines if "Authentication failed" in line), None)
        if refusal:
            reason = refusal[refusal.index("Authentication failed"):].rstrip(")")
            raise SaslLoginRefused(reason) from exc
        raise
    finally:
        logging.getLogger("kafka").removeHandler(logged)
    try:
        cluster = admin.describe_cluster()
        brokers = len(cluster.get("brokers", []))
    finally:
        admin.close()
    if deep:
        producer = kafka_producer(settings, timeout=timeout)
        try:
            producer.send(KAFKA_HEALTH_TOPIC, b"ping").get(timeout=timeout)
        finally:
            producer.close(timeout=timeout)
    return f"Kafka cluster with {brokers} broker(s)"


_CHECKS = {"redis": _check_redis, "rabbitmq": _check_rabbitmq, "kafka": _check_kafka}


def check(broker: str, settings: Settings | None = None, *, timeout: float = 4.0,
          deep: bool = False) -> BrokerStatus:
    """One bounded round trip to `broker`; never raises for a broker that is down."""
    if broker not in _CHECKS:
        raise ValueError(f"unknown broker {broker!r}; expected one of {', '.join(_CHECKS)}")
    settings = settings or get_settings()
    started = time.monotonic()
    refused = False
    try:
        detail = _CHECKS[broker](settings, timeout, deep)
        ok = True
    except Exception as exc:  # any failure means "not serving"; say which
        detail = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        ok, refused = False, login_refused(broker, exc)
    return BrokerStatus(broker, ok, settings.display_url(broker), detail,
                        time.monotonic() - started, refused)


class SaslLoginRefused(ConnectionError):
    """Kafka refused the SASL login (kafka-python only logs it)."""


class _KafkaLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def login_refused(broker: str, error: BaseException) -> bool:
    """True if `error` is the broker refusing the user or password (not a broker down)."""
    import pika.exceptions
    import redis.exceptions

    kinds: dict[str, tuple[type[BaseException], ...]] = {
        "rabbitmq": (pika.exceptions.ProbableAuthenticationError,
                     pika.exceptions.AuthenticationError,
                     pika.exceptions.ProbableAccessDeniedError),
        "redis": (redis.exceptions.AuthenticationError,),
        "kafka": (SaslLoginRefused,),
    }
    return isinstance(error, kinds.get(broker, ()))


def login_user(broker: str, settings: Settings) -> str:
    """The user a broker's settings log in as."""
    if broker == "kafka":
        return settings.kafka_sasl_username or "(none)"
    url = settings.rabbitmq_url if broker == "rabbitmq" else settings.redis_url
    return unquote(urlsplit(url).username or ("guest" if broker == "rabbitmq" else "default"))


def require(*brokers: str, settings: Settings | None = None, timeout: float = 4.0
            ) -> list[BrokerStatus]:
    """Fail fast, with what to do, unless every named broker answers a round trip."""
    settings = settings or get_settings()
    wanted = brokers or tuple(_CHECKS)
    results = [check(b, settings, timeout=timeout) for b in wanted]
    down = [r for r in results if not r.ok]
    if down and background_start(settings) is not None:
        await_background_start([r.broker for r in down], settings)
        results = [check(b, settings, timeout=timeout) for b in wanted]
        down = [r for r in results if not r.ok]
    if down:
        lines = [
            f"{NAMES[r.broker]} at {r.address}: authentication failed for "
            f"{login_user(r.broker, settings)} ({r.detail})."
            if r.login_refused else
            f"{NAMES[r.broker]} is not reachable at {r.address} ({r.detail}). "
            f"Start it with: {START_HINT[r.broker]}; `make status` shows its log."
            for r in down
        ]
        if any(r.login_refused for r in down):
            lines.append(LOGIN_HINT)
        error = LoginRefused if all(r.login_refused for r in down) else BrokerUnavailable
        raise error("\n".join(lines))
    return results


STARTING_TIMEOUT = 300.0  # binder/start gives the launcher 300 s


def background_start(settings: Settings) -> Path | None:
    """The log of a start still running in the background (binder/start), or None.

    binder/start writes `<state folder>/starting` (line 1: the start's pid, line 2: its
    log) and removes it when the start ends, so the brokers come up while JupyterLab opens.
    """
    marker = settings.state_dir / "starting"
    try:
        pid_text, log_text = (marker.read_text().splitlines() + ["", ""])[:2]
        os.kill(int(pid_text), 0)
    except (OSError, ValueError):
        return None  # no marker, or its start is gone (a marker left by a killed start)
    return Path(log_text) if log_text else marker


def await_background_start(brokers: Iterable[str], settings: Settings, *,
                           timeout: float = STARTING_TIMEOUT,
                           echo: Callable[[str], None] = print) -> bool:
    """Wait, bounded, for a background start to bring `brokers` up; True if they answer.

    The first setup cell a learner runs on Binder usually finds the brokers still starting:
    it says so and waits instead of failing. When the start ends without a broker, the
    caller's error names it; the start's log is shown here.
    """
    brokers = list(brokers)
    log = background_start(settings)
    if log is None:
        return all(check(b, settings).ok for b in brokers)
    echo(f"starting {', '.join(NAMES[b] for b in brokers)}… (the course's brokers start in "
         f"the background when this machine starts; waiting up to {timeout:.0f} s)")
    started = time.monotonic()
    up = wait_until(lambda: all(check(b, settings, timeout=2.0).ok for b in brokers)
                    or background_start(settings) is None, timeout=timeout, interval=1.0)
    ready = up and all(check(b, settings).ok for b in brokers)
    if ready:
        echo(f"ready after {time.monotonic() - started:.0f} s")
    else:
        tail = log_tail(log)
        if tail:
            echo(f"the background start did not bring every broker up; its log ({log}):\n"
                 + "\n".join("    " + line for line in tail.splitlines()))
    return ready


def status_table(brokers: Iterable[str] = ("rabbitmq", "redis", "kafka"),
                 settings: Settings | None = None) -> list[BrokerStatus]:
    """Check every broker (for 00.01's live status); never raises."""
    return [check(b, settings) for b in brokers]


# ---------------------------------------------------------------- a broker that died mid-lesson


class BrokerDown(BrokerUnavailable):
    """A broker stopped answering in the middle of a lesson; the message says what to do."""


def down_errors() -> dict[str, tuple[type[BaseException], ...]]:
    """The client exceptions that mean "this broker does not answer", by broker."""
    import kafka.errors
    import pika.exceptions
    import redis.exceptions

    return {
        # StreamLostError (a connection that died under us) is an AMQPConnectionError too.
        "rabbitmq": (pika.exceptions.AMQPConnectionError,),
        "redis": (redis.exceptions.ConnectionError,),
        # kafka-python 3.0 raises KafkaTimeoutError ("Unable to bootstrap from ...") where
        # 2.x raised NoBrokersAvailable, which 3.0 no longer defines.
        "kafka": tuple(getattr(kafka.errors, name) for name in (
            "KafkaTimeoutError", "KafkaConnectionError", "NoBrokersAvailable")
            if hasattr(kafka.errors, name)),
    }


def broker_of(error: BaseException) -> str | None:
    """Which broker a client exception is about (pika, redis-py, kafka-python), or None."""
    for broker, kinds in down_errors().items():
        if isinstance(error, kinds):
            return broker
    return None


def launcher_log(broker: str, settings: Settings) -> Path:
    """Where the course's launcher writes `broker`'s log (absent when it does not run it)."""
    return settings.state_dir / broker / "broker.log"


def log_tail(path: Path, lines: int = 12) -> str:
    """The last `lines` lines of a log file, or '' when there is none."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def down_message(broker: str, error: BaseException, settings: Settings) -> str:
    """What a learner reads when `broker` died: which broker, its URL, the tail of its log
    (when the course's launcher runs it) and how to start it again."""
    detail = str(error).strip() or "no details"
    if not detail.startswith(type(error).__name__):  # kafka-python's errors name themselves
        detail = f"{type(error).__name__}: {detail}"
    lines = [f"{NAMES[broker]} stopped answering at {settings.display_url(broker)} "
             f"({detail})."]
    log = launcher_log(broker, settings)
    tail = log_tail(log)
    if tail:
        lines.append(f"The last lines of its log ({log}):")
        lines.extend("    " + line for line in tail.splitlines())
        lines.append(f"Start it again with `make brokers` (or `python -m brokerlab.backstage "
                     f"start {broker}`), then run this notebook again from its setup cell.")
    else:
        lines.append(f"Start it again ({START_HINT[broker]}), then run this notebook again "
                     "from its setup cell.")
    return "\n".join(lines)


def explain_failure(error: BaseException, settings: Settings | None = None,
                    timeout: float = 2.0) -> str | None:
    """The course's message if `error` comes from a broker that no longer answers a round
    trip; None when the broker still answers (then the error is the code's own)."""
    broker = broker_of(error)
    if broker is None:
        return None
    settings = settings or get_settings()
    if check(broker, settings, timeout=timeout).ok:
        return None
    return down_message(broker, error, settings)


def install_failure_handler(settings: Settings | None = None) -> bool:
    """In IPython, turn a broker client's connection error into the course's message.

    Installed by `start_lesson` (every setup cell). Errors from a broker that still
    answers keep their usual traceback. Returns False outside IPython.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    settings = settings or get_settings()
    kinds = tuple(kind for group in down_errors().values() for kind in group)

    def handler(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
                tb_offset: int | None = None) -> None:
        message = explain_failure(value, settings)
        if message is None:
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return
        # The learner's own frames stay visible; the last line says what happened.
        error = BrokerDown(message)
        error.__suppress_context__ = True
        shell.showtraceback((BrokerDown, error, tb), tb_offset=tb_offset)

    shell.set_custom_exc(kinds, handler)
    return True
