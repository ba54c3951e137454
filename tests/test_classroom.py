"""Classroom mode: the roster, env files and configs (pure), and student isolation.

The isolation tests are marked `classroom` (tests/conftest.py gates them): with
BROKERLAB_TEST_CLASSROOM=1 a session fixture starts a classroom of two students in a
temporary folder and stops it at the end; BROKERLAB_TEST_CLASSROOM=DIR uses the
classroom running from DIR (its first two students) and leaves it running.

Student A tries, on each broker, to read, write, delete and configure what belongs to
student B, and to do an administrator's work; every attempt must be refused with the
broker's own authorization error. A's own work must succeed; plain connections to the
TLS ports and wrong passwords must be refused. Every attempt and its outcome is counted;
the last test writes the table to artifacts/classroom-isolation.txt and prints it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brokerlab.backstage import classroom
from brokerlab.backstage import classroom_brokers as cb
from brokerlab.backstage.process import LauncherError
from brokerlab.checks import wait_until
from brokerlab.settings import Settings

REPO = Path(__file__).resolve().parents[1]
ARTIFACT = REPO / "artifacts" / "classroom-isolation.txt"

# ---------------------------------------------------------------- pure: the roster


def test_roster_with_header_comments_blanks_and_quoted_names() -> None:
    text = "login,name\n# the first group\n\nalice,Alice A\nbob,\"Doe, Bob\"\ncarol\n"
    students = classroom.parse_roster(text)
    assert [(s.login, s.name) for s in students] == [
        ("alice", "Alice A"), ("bob", "Doe, Bob"), ("carol", "")]


@pytest.mark.parametrize(("text", "expected"), [
    ("alice\nAlice\n", "line 2: login 'Alice' must match"),
    ("alice\n-bob\n", "line 2: login '-bob' must match"),
    ("alice\n" + "a" * 33 + "\n", "line 2: login 'aaaa"),
    ("alice\n\n# c\nalice,Again\n", "line 4: login 'alice' is a duplicate of line 1"),
    ("admin\n", "line 1: login 'admin' is reserved"),
    ("bob\nguest\n", "line 2: login 'guest' is reserved"),
    ("instructor\n", "line 1: login 'instructor' is reserved"),
    ("default\n", "line 1: login 'default' is reserved"),
    ("alice,A,extra\n", "line 1: 3 fields"),
    ("# nobody\n\n", "names no student"),
])
def test_roster_errors_name_the_line_and_why(text: str, expected: str) -> None:
    with pytest.raises(classroom.RosterError) as caught:
        classroom.parse_roster(text, "r.csv")
    assert expected in str(caught.value)


def test_roster_reports_every_bad_line_and_creates_nothing(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("alice\nBad One\nalice\n")
    with pytest.raises(classroom.RosterError) as caught:
        classroom.start(roster, tmp_path / "room", echo=lambda _: None)
    message = str(caught.value)
    assert "line 2" in message and "line 3" in message and "nothing was created" in message
    assert not (tmp_path / "room").exists()


def test_header_word_login_is_reserved_only_as_a_header() -> None:
    assert [s.login for s in classroom.parse_roster("LOGIN,Name\nzoe\n")] == ["zoe"]


# ---------------------------------------------------------------- pure: env files


def test_env_file_round_trip_and_settings(tmp_path: Path) -> None:
    values = classroom.env_values("alice", "s3cret-pw_x", tmp_path)
    path = tmp_path / "env" / "alice.env"
    cb.write_private(path, classroom.render_env(values))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = classroom.load_env(path)
    assert loaded == values
    assert loaded["RABBITMQ_URL"] == "amqps://alice:s3cret-pw_x@127.0.0.1:5671/alice"
    assert loaded["REDIS_URL"] == "rediss://alice:s3cret-pw_x@127.0.0.1:6390/0"
    assert loaded["SSL_CERT_FILE"] == loaded["KAFKA_SSL_CAFILE"] == str(tmp_path / "ca.pem")
    settings = Settings.from_env(loaded)
    assert settings.namespace == "alice"
    assert settings.kafka_client_config()["sasl_plain_username"] == "alice"
    assert "s3cret" not in repr(settings)
    admin = classroom.env_values("instructor", "pw", tmp_path)
    assert admin["RABBITMQ_URL"].endswith("/%2F") and admin["KAFKA_SASL_USERNAME"] == "admin"
    assert admin["COURSE_NAMESPACE"] == "instructor"


def test_env_file_refuses_restarting_or_killing_a_shared_broker(tmp_path: Path) -> None:
    """A lesson's faults.restart must fail at once, never reach the course's own launcher."""
    import subprocess

    from brokerlab import faults

    path = tmp_path / "alice.env"
    cb.write_private(path, classroom.render_env(classroom.env_values("alice", "pw", tmp_path)))
    loaded = classroom.load_env(path)
    for key in classroom.FAULT_COMMANDS:
        assert loaded[key] == classroom.REFUSE_FAULT
    sourced = subprocess.run(["bash", "-c", f"set -a; . {path}; set +a; "
                              "printf %s \"$BROKERLAB_RESTART_COMMAND\""],
                             capture_output=True, text=True, timeout=10, check=True)
    assert sourced.stdout == classroom.REFUSE_FAULT
    with pytest.raises(faults.FaultError, match="brokers are shared"):
        faults.restart("rabbitmq", settings=Settings.from_env(loaded), timeout=5,
                       echo=lambda _: None)


def test_load_env_accepts_export_quotes_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text("# c\n\nexport A=1\nB='two words'\nC=\"3\"\nD=a=b\nnoise\n")
    assert classroom.load_env(path) == {"A": "1", "B": "two words", "C": "3", "D": "a=b"}


def test_a_folder_the_shell_cannot_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LauncherError, match="without spaces"):
        classroom.status(tmp_path / "my room")


# ---------------------------------------------------------------- pure: configurations


def test_rabbitmq_config_is_tls_only(tmp_path: Path) -> None:
    conf = cb.rabbitmq_conf(cb.Layout(tmp_path))
    assert "listeners.tcp = none" in conf
    assert "listeners.ssl.default = 127.0.0.1:5671" in conf
    assert f"ssl_options.cacertfile = {tmp_path / 'ca.pem'}" in conf
    assert "management.ssl.port = 15671" in conf and "management.tcp" not in conf


def test_rabbitmq_node_has_no_plain_listener(tmp_path: Path) -> None:
    env = cb.single.rabbitmq_node_env(tmp_path, "x@localhost", (5671, 15671, 25671),
                                      watermark="1MB", schedulers="", plain=False,
                                      extra_conf="listeners.tcp = none\n")
    assert "RABBITMQ_NODE_PORT" not in env and "RABBITMQ_NODE_IP_ADDRESS" not in env
    conf = (tmp_path / "rabbitmq.conf").read_text()
    assert "listeners.tcp.default" not in conf and "management.tcp" not in conf


def test_redis_config_and_acl_file_hold_no_password(tmp_path: Path) -> None:
    conf = cb.redis_conf(cb.Layout(tmp_path))
    for line in ("port 0", "tls-port 6390", "tls-auth-clients no", "aclfile"):
        assert line in conf
    acl = cb.redis_acl("admin-pw-123", {"alice": "alice-pw-456"})
    assert "admin-pw-123" not in acl and "alice-pw-456" not in acl
    assert "user default off" in acl
    alice = next(line for line in acl.splitlines() if line.startswith("user alice "))
    assert "~alice-* &alice-*" in alice and "-@admin -@dangerous" in alice


def test_kafka_properties_secure_every_listener(tmp_path: Path) -> None:
    layout = cb.Layout(tmp_path)
    props = cb.single.kafka_properties(1, 9094, 9095, tmp_path / "data",
                                       cb.kafka_overrides(layout))
    lines = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
    assert lines["listeners"] == "SASL_SSL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert lines["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert lines["listener.name.controller.ssl.client.auth"] == "required"
    assert lines["allow.everyone.if.no.acl.found"] == "false"
    assert lines["super.users"] == "User:admin;User:CN=kafka-controller"
    assert "${file:" in lines["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert "PLAINTEXT" not in lines["listeners"]


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_certificates_are_made_once_and_valid_for_127_0_0_1(tmp_path: Path) -> None:
    layout = cb.Layout(tmp_path)
    classroom.ensure_certificates(layout)
    first = layout.pem("server")[1].read_bytes()
    classroom.ensure_certificates(layout)  # kept: still signed by the CA
    assert layout.pem("server")[1].read_bytes() == first
    assert oct(layout.private.stat().st_mode & 0o777) == "0o700"
    context = ssl.create_default_context(cafile=str(layout.ca))
    context.load_cert_chain(str(layout.pem("server")[1]), str(layout.pem("server")[0]))


def test_a_host_for_students_elsewhere_opens_only_their_listeners(tmp_path: Path) -> None:
    """--host: students' listeners on every interface and advertised as the host; Kafka's
    controller and the URLs of the env files follow; loopback stays loopback."""
    layout = cb.Layout(tmp_path)
    assert (layout.host, layout.bind) == ("127.0.0.1", "127.0.0.1")
    (tmp_path / "host").write_text("brokers.school.example\n")
    assert (layout.host, layout.bind) == ("brokers.school.example", "0.0.0.0")
    assert "listeners.ssl.default = 0.0.0.0:5671" in cb.rabbitmq_conf(layout)
    assert "bind 0.0.0.0\n" in cb.redis_conf(layout)
    props = cb.kafka_overrides(layout)
    assert props["listeners"] == "SASL_SSL://0.0.0.0:9094,CONTROLLER://127.0.0.1:9095"
    assert props["advertised.listeners"] == "SASL_SSL://brokers.school.example:9094"
    values = classroom.env_values("alice", "pw", tmp_path, "brokers.school.example")
    assert values["RABBITMQ_URL"] == "amqps://alice:pw@brokers.school.example:5671/alice"
    assert values["KAFKA_BOOTSTRAP_SERVERS"] == "brokers.school.example:9094"
    assert classroom.server_names("localhost") == "IP:127.0.0.1,DNS:localhost"


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_a_new_host_gets_a_new_server_certificate(tmp_path: Path) -> None:
    layout = cb.Layout(tmp_path)
    classroom.ensure_certificates(layout)
    first = layout.pem("server")[1].read_bytes()
    (tmp_path / "host").write_text("10.1.2.3\n")
    classroom.ensure_certificates(layout)
    cert = ssl._ssl._test_decode_cert(str(layout.pem("server")[1]))  # type: ignore[attr-defined]
    assert layout.pem("server")[1].read_bytes() != first
    assert ("IP Address", "10.1.2.3") in cert["subjectAltName"]


# ---------------------------------------------------------------- isolation: the tally


@dataclass
class Attempt:
    broker: str
    kind: str  # "B's" (cross-student), "admin", "own", "no TLS / bad login"
    what: str
    expected: str  # "refused" or "allowed"
    outcome: str  # the error, or "allowed"
    ok: bool


ATTEMPTS: list[Attempt] = []


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


class Probe:
    """Run attempts on one broker; record each; fail the test at the end if any went wrong."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        self.start = len(ATTEMPTS)

    def refused(self, kind: str, what: str, action: Callable[[], Any],
                errors: tuple[type[BaseException], ...],
                check: Callable[[Any], bool] = lambda _: True) -> None:
        """`action` must raise one of `errors` (and pass `check`), or return a value
        that `check` accepts as a refusal (APIs that report errors in their result)."""
        try:
            result = action()
        except errors as exc:
            ok = check(exc)
            outcome = f"{type(exc).__name__}: {str(exc)[:90]}"
        except Exception as exc:  # a refusal of the wrong kind
            ok, outcome = False, f"UNEXPECTED {type(exc).__name__}: {str(exc)[:90]}"
        else:
            ok = result is not None and check(result)
            outcome = f"refused in result: {str(result)[:90]}" if ok else f"ALLOWED: {result!r:.90}"
        ATTEMPTS.append(Attempt(self.broker, kind, what, "refused", _printable(outcome), ok))

    def allowed(self, what: str, action: Callable[[], Any]) -> None:
        try:
            action()
            ok, outcome = True, "allowed"
        except Exception as exc:
            ok, outcome = False, f"FAILED {type(exc).__name__}: {str(exc)[:90]}"
        ATTEMPTS.append(Attempt(self.broker, "own", what, "allowed", _printable(outcome), ok))

    def verify(self) -> None:
        wrong = [a for a in ATTEMPTS[self.start:] if not a.ok]
        assert not wrong, "\n".join(f"{a.kind} {a.what}: {a.outcome}" for a in wrong)


# ---------------------------------------------------------------- isolation: the classroom


@dataclass(frozen=True)
class Room:
    root: Path
    a: dict[str, str]
    b: dict[str, str]

    @property
    def ca(self) -> str:
        return str(self.root / "ca.pem")

    def password(self, env: dict[str, str]) -> str:
        return env["KAFKA_SASL_PASSWORD"]


@pytest.fixture(scope="session")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    wanted = os.environ.get("BROKERLAB_TEST_CLASSROOM", "")
    started = wanted == "1"
    if started:
        root = tmp_path_factory.mktemp("classroom")
        (root / "roster.csv").write_text("login,name\nstudenta,Student A\nstudentb,Student B\n")
        classroom.start(root / "roster.csv", root / "room")
        root = root / "room"
    else:
        root = Path(wanted).expanduser().resolve()
    logins = classroom.students_of(root)[:2]
    assert len(logins) == 2, f"the classroom at {root} needs two students"
    env = [classroom.load_env(root / "env" / f"{login}.env") for login in logins]
    try:
        yield Room(root, env[0], env[1])
    finally:
        if started:
            classroom.stop(root)


def _login(env: dict[str, str]) -> str:
    return env["COURSE_NAMESPACE"]


def _topic_with(admin: Any, settings: Settings, topic: str, value: bytes) -> None:
    """Create a one-partition topic and write one record to it."""
    from kafka.admin import NewTopic

    from brokerlab import clients

    admin.create_topics([NewTopic(topic, 1, 1)])
    producer = clients.kafka_producer(settings)
    producer.send(topic, value).get(timeout=10)
    producer.close()


def _values(consumer: Any, timeout: float = 20.0) -> list[bytes]:
    """Poll, bounded, until records come; their values."""
    got: list[bytes] = []

    def some() -> bool:
        got.extend(r.value for rs in consumer.poll(timeout_ms=500).values() for r in rs)
        return bool(got)

    wait_until(some, timeout=timeout, interval=0)
    return got


# ---------------------------------------------------------------- RabbitMQ


def _amqp(room: Room, user: str, password: str, vhost: str, *, tls: bool = True) -> Any:
    import pika

    options = pika.SSLOptions(ssl.create_default_context(cafile=room.ca), "127.0.0.1")
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", 5671, vhost, pika.PlainCredentials(user, password),
        ssl_options=options if tls else None, socket_timeout=5, stack_timeout=10,
        blocked_connection_timeout=5, connection_attempts=1))


def _api(room: Room, method: str, path: str, user: str, password: str,
         body: dict[str, Any] | None = None) -> int:
    request = urllib.request.Request(f"https://127.0.0.1:15671{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Content-Type", "application/json")
    context = ssl.create_default_context(cafile=room.ca)
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return int(response.status)


@pytest.mark.classroom
def test_rabbitmq_isolation(room: Room) -> None:
    import pika.exceptions as px

    probe = Probe("RabbitMQ")
    a, b = _login(room.a), _login(room.b)
    pa, pb = room.password(room.a), room.password(room.b)
    queue, exchange = f"{b}-iso-queue", f"{b}-iso-exchange"
    with _amqp(room, b, pb, b) as conn:  # B's own things, with a message
        ch = conn.channel()
        ch.queue_declare(queue)
        ch.exchange_declare(exchange, "fanout")
        ch.basic_publish("", queue, b"B's secret")

    def in_b(action: Callable[[Any], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with _amqp(room, a, pa, b) as conn:
                return action(conn.channel())
        return run

    vhost_refused = (px.ProbableAccessDeniedError, px.ConnectionClosedByBroker)

    def says_vhost(exc: BaseException) -> bool:
        return "NOT_ALLOWED" in str(exc) and "access to vhost" in str(exc)

    for what, action in [
        ("open B's vhost", lambda ch: None),
        ("read B's queue (basic.get)", lambda ch: ch.basic_get(queue, auto_ack=True)),
        ("consume B's queue", lambda ch: ch.basic_consume(queue, lambda *x: None)),
        ("write to B's queue", lambda ch: ch.basic_publish("", queue, b"x")),
        ("write to B's exchange", lambda ch: ch.basic_publish(exchange, "", b"x")),
        ("purge B's queue", lambda ch: ch.queue_purge(queue)),
        ("delete B's queue", lambda ch: ch.queue_delete(queue)),
        ("delete B's exchange", lambda ch: ch.exchange_delete(exchange)),
        ("configure: declare in B's vhost", lambda ch: ch.queue_declare(f"{b}-iso-new")),
        ("configure: bind B's queue", lambda ch: ch.queue_bind(queue, exchange)),
    ]:
        probe.refused("B's", f"AMQP {what}", in_b(action), vhost_refused, says_vhost)
    probe.refused("admin", "AMQP open the default vhost /",
                  lambda: _amqp(room, a, pa, "/").close(), vhost_refused, says_vhost)

    def unauthorized(exc: BaseException) -> bool:
        return isinstance(exc, urllib.error.HTTPError) and exc.code in (401, 403)

    qpath, vb = f"/api/queues/{b}/{queue}", f"/api/vhosts/{b}"
    publish = {"properties": {}, "routing_key": queue, "payload": "x",
               "payload_encoding": "string"}
    for kind, what, method, path, body in [
        ("B's", "list B's queues", "GET", f"/api/queues/{b}", None),
        ("B's", "describe B's queue", "GET", qpath, None),
        ("B's", "read B's queue (get)", "POST", f"{qpath}/get",
         {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        ("B's", "write to B's queue (publish)", "POST",
         f"/api/exchanges/{b}/amq.default/publish", publish),
        ("B's", "purge B's queue", "DELETE", f"{qpath}/contents", None),
        ("B's", "delete B's queue", "DELETE", qpath, None),
        ("B's", "configure: declare in B's vhost", "PUT", f"/api/queues/{b}/{b}-x", {}),
        ("B's", "delete B's exchange", "DELETE", f"/api/exchanges/{b}/{exchange}", None),
        ("B's", "connections of B's vhost", "GET", f"{vb}/connections", None),
        ("admin", "give itself rights in B's vhost", "PUT", f"/api/permissions/{b}/{a}",
         {"configure": ".*", "write": ".*", "read": ".*"}),
        ("admin", "delete B's vhost", "DELETE", vb, None),
        ("admin", "create a vhost", "PUT", f"/api/vhosts/{a}-extra", {}),
        ("admin", "list users", "GET", "/api/users", None),
        ("admin", "change B's password", "PUT", f"/api/users/{b}",
         {"password": "taken-over-12345", "tags": "management"}),
    ]:
        probe.refused(kind, f"HTTP {what}",
                      lambda m=method, p=path, x=body: _api(room, m, p, a, pa, x),
                      (urllib.error.HTTPError,), unauthorized)

    own = f"{a}-iso-own"

    def own_work() -> None:
        with _amqp(room, a, pa, a) as conn:
            ch = conn.channel()
            ch.exchange_declare(f"{own}-x", "direct")
            ch.queue_declare(own)
            ch.queue_bind(own, f"{own}-x", "k")
            ch.basic_publish(f"{own}-x", "k", b"mine")
            got = wait_until(lambda: ch.basic_get(own, auto_ack=True)[2], timeout=5)
            assert got == b"mine"
            ch.queue_purge(own)
            ch.queue_delete(own)
            ch.exchange_delete(f"{own}-x")

    probe.allowed("AMQP declare, bind, publish, get, purge, delete in its vhost", own_work)
    probe.allowed("HTTP list its own queues",
                  lambda: _api(room, "GET", f"/api/queues/{a}", a, pa))
    with _amqp(room, b, pb, b) as conn:  # B's message is still there, untouched
        got = conn.channel().basic_get(queue, auto_ack=True)[2]
        probe.allowed("B still has its message", lambda: None if got == b"B's secret"
                      else pytest.fail(f"B's queue held {got!r}"))
        conn.channel().queue_delete(queue)
        conn.channel().exchange_delete(exchange)

    login_refused = (px.ProbableAuthenticationError, px.AuthenticationError)
    probe.refused("no TLS / bad login", "wrong password",
                  lambda: _amqp(room, a, "wrong-password-123", a).close(), login_refused,
                  lambda e: "ACCESS_REFUSED" in str(e))
    probe.refused("no TLS / bad login", "guest:guest",
                  lambda: _amqp(room, "guest", "guest", "/").close(), login_refused,
                  lambda e: "ACCESS_REFUSED" in str(e))
    probe.refused("no TLS / bad login", "plain AMQP to 5671",
                  lambda: _amqp(room, a, pa, a, tls=False).close(), (px.AMQPConnectionError,))
    probe.refused("no TLS / bad login", "plain HTTP to the management port 15671",
                  lambda: urllib.request.urlopen("http://127.0.0.1:15671/api/overview",
                                                 timeout=5),
                  (http.client.HTTPException, ConnectionError))
    probe.verify()


# ---------------------------------------------------------------- Redis


def _redis(room: Room, user: str | None, password: str | None, *, tls: bool = True) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=cb.REDIS_PORT, username=user, password=password,
                       ssl=tls, ssl_ca_certs=room.ca if tls else None, socket_timeout=5,
                       socket_connect_timeout=5, decode_responses=True)


@pytest.mark.classroom
def test_redis_isolation(room: Room) -> None:
    import redis.exceptions as rx

    probe = Probe("Redis")
    a, b = _login(room.a), _login(room.b)
    ra, rb = _redis(room, a, room.password(room.a)), _redis(room, b, room.password(room.b))
    key, stream, channel = f"{b}-iso-key", f"{b}-iso-stream", f"{b}-iso-channel"
    rb.set(key, "B's secret")
    rb.xadd(stream, {"b": "1"})

    def noperm(exc: BaseException) -> bool:
        text = str(exc)  # a script's refusal: "...can't access at least one of the keys..."
        return "NOPERM" in text or "no permissions" in text or "can't access" in text

    def listen(kind: str, target: str) -> Any:
        pubsub = ra.pubsub()
        try:
            getattr(pubsub, kind)(target)
            return pubsub.get_message(timeout=2)
        finally:
            pubsub.close()

    for what, action in [
        ("GET B's key", lambda: ra.get(key)),
        ("SET B's key", lambda: ra.set(key, "A was here")),
        ("DEL B's key", lambda: ra.delete(key)),
        ("EXPIRE B's key", lambda: ra.expire(key, 1)),
        ("RENAME its key onto B's", lambda: (ra.set(f"{a}-iso-tmp", "1"),
                                             ra.rename(f"{a}-iso-tmp", key))),
        ("COPY B's key to its own", lambda: ra.copy(key, f"{a}-iso-copy")),
        ("XADD to B's stream", lambda: ra.xadd(stream, {"a": "1"})),
        ("XREAD B's stream", lambda: ra.xread({stream: "0"})),
        ("XGROUP CREATE on B's stream", lambda: ra.xgroup_create(stream, f"{a}-g", "0")),
        ("PUBLISH to B's channel", lambda: ra.publish(channel, "x")),
        ("SUBSCRIBE to B's channel", lambda: listen("subscribe", channel)),
        ("PSUBSCRIBE to B's channels", lambda: listen("psubscribe", f"{b}-*")),
        ("GET B's key in MULTI/EXEC", lambda: ra.pipeline(transaction=True).get(key).execute()),
        ("GET B's key in a Lua script",
         lambda: ra.eval("return redis.call('GET', KEYS[1])", 1, key)),
        ("GET B's key from a script that names no key",
         lambda: ra.eval(f"return redis.call('GET', '{key}')", 0)),
    ]:
        probe.refused("B's", what, action, (rx.NoPermissionError, rx.ResponseError), noperm)
    for what, action in [
        ("FLUSHDB", lambda: ra.flushdb()),
        ("FLUSHALL", lambda: ra.flushall()),
        ("KEYS *", lambda: ra.keys("*")),
        ("CONFIG GET", lambda: ra.config_get("*")),
        ("CONFIG SET", lambda: ra.config_set("maxmemory", "1mb")),
        ("ACL LIST", lambda: ra.acl_list()),
        ("ACL SETUSER itself", lambda: ra.acl_setuser(a, keys=["*"])),
        ("CLIENT LIST", lambda: ra.client_list()),
        ("CLIENT KILL", lambda: ra.client_kill_filter(user=b)),
        ("MONITOR", lambda: ra.execute_command("MONITOR")),
        ("SCRIPT FLUSH", lambda: ra.script_flush()),
        ("FUNCTION FLUSH", lambda: ra.function_flush()),
        ("SWAPDB", lambda: ra.swapdb(0, 1)),
        ("SAVE", lambda: ra.save()),
    ]:
        probe.refused("admin", what, action, (rx.NoPermissionError,), noperm)

    own, own_stream = f"{a}-iso-own", f"{a}-iso-stream"

    def own_work() -> None:
        pubsub = ra.pubsub()
        pubsub.subscribe(f"{a}-iso-channel")
        assert pubsub.get_message(timeout=2) is not None
        ra.set(own, "mine")
        assert ra.get(own) == "mine"
        ra.xadd(own_stream, {"a": "1"})
        assert ra.xread({own_stream: "0"})
        ra.publish(f"{a}-iso-channel", "hi")
        assert ra.delete(own, own_stream) == 2
        pubsub.close()

    probe.allowed("SET, GET, XADD, XREAD, SUBSCRIBE, PUBLISH, DEL its own names", own_work)
    probe.allowed("B's key and stream are untouched",
                  lambda: None if (rb.get(key), rb.xlen(stream)) == ("B's secret", 1)
                  else pytest.fail("B's data changed"))
    rb.delete(key, stream)

    probe.refused("no TLS / bad login", "plain RESP to the TLS port",
                  lambda: _redis(room, a, room.password(room.a), tls=False).ping(),
                  (rx.ConnectionError,))
    probe.refused("no TLS / bad login", "wrong password",
                  lambda: _redis(room, a, "wrong-password-123").ping(),
                  (rx.AuthenticationError,))
    probe.refused("no TLS / bad login", "no login (default user is off)",
                  lambda: _redis(room, None, None).get(f"{a}-x"),
                  (rx.AuthenticationError,))
    ra.close()
    rb.close()
    probe.verify()


# ---------------------------------------------------------------- Kafka


def _kafka(env: dict[str, str], **changes: str) -> Settings:
    return Settings.from_env({**env, **changes})


def _confluent(env: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": env["KAFKA_SASL_USERNAME"],
            "sasl.password": env["KAFKA_SASL_PASSWORD"],
            "ssl.ca.location": env["KAFKA_SSL_CAFILE"], "log_level": 0, **extra}


@pytest.mark.classroom
def test_kafka_isolation(room: Room) -> None:
    import kafka.errors as kx
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
    from confluent_kafka.admin import (
        AdminClient,
        ConfigResource,
        ScramCredentialInfo,
        ScramMechanism,
    )
    from confluent_kafka.admin import UserScramCredentialUpsertion as Upsert
    from kafka import TopicPartition
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        NewPartitions,
        NewTopic,
        ResourcePattern,
        ResourceType,
    )
    from kafka.structs import OffsetAndMetadata

    from brokerlab import clients

    probe = Probe("Kafka")
    a, b = _login(room.a), _login(room.b)
    sa, sb = _kafka(room.a), _kafka(room.b)
    topic, group = f"{b}-iso-topic", f"{b}-iso-group"
    admin_b = clients.kafka_admin(sb)
    _topic_with(admin_b, sb, topic, b"B's secret")
    consumer = clients.kafka_consumer(topic, settings=sb, group_id=group,
                                      auto_offset_reset="earliest", enable_auto_commit=False)

    def assigned() -> bool:
        consumer.poll(timeout_ms=500)  # joins the group
        return bool(consumer.assignment())

    wait_until(assigned, timeout=20, interval=0)
    consumer.commit()
    consumer.close()

    admin_a = clients.kafka_admin(sa)
    confluent_a = AdminClient(_confluent(room.a))
    topic_refused = (kx.TopicAuthorizationFailedError,)
    group_refused = (kx.GroupAuthorizationFailedError,)

    def produce() -> Any:
        p = clients.kafka_producer(sa)
        try:
            return p.send(topic, b"A was here").get(timeout=10)
        finally:
            p.close(timeout=5)

    def offsets(kind: str) -> Any:
        c = clients.kafka_consumer(settings=sa)
        try:
            return getattr(c, kind)([TopicPartition(topic, 0)])
        finally:
            c.close()

    def confluent_error(action: Callable[[Any], Any], make: Callable[[], Any]) -> Any:
        client = make()
        try:
            return action(client)
        finally:
            if isinstance(client, Consumer):
                client.close()

    def subscribe_b(client: Any) -> Any:
        client.subscribe([topic])
        for _ in range(15):
            message = client.poll(1)
            if message is not None and message.error():
                raise KafkaException(message.error())
        return None

    def code(expected: int) -> Callable[[Any], bool]:
        return lambda exc: exc.args[0].code() == expected

    def in_b_group(action: str) -> Any:
        c = clients.kafka_consumer(settings=sa, group_id=group, enable_auto_commit=False)
        try:
            if action == "commit":
                return c.commit({TopicPartition(f"{a}-iso-own", 0): OffsetAndMetadata(0, "", -1)})
            c.subscribe([f"{a}-iso-own"])
            return c.poll(timeout_ms=5000)
        finally:
            c.close()

    def transactional() -> Any:
        p = clients.kafka_producer(sa, transactional_id=f"{b}-iso-tx")
        try:
            return p.init_transactions()
        finally:
            p.close(timeout=5)

    no_cluster = lambda result: result.get("failed") and all(  # noqa: E731
        f is kx.ClusterAuthorizationFailedError or isinstance(f, kx.ClusterAuthorizationFailedError)
        for f in result["failed"])
    grab = ACL(f"User:{a}", "*", ACLOperation.ALL, ACLPermissionType.ALLOW,
               ResourcePattern(ResourceType.TOPIC, f"{b}-", ACLResourcePatternType.PREFIXED))
    for kind, what, action, errors, check in [
        ("B's", "produce to B's topic", produce, topic_refused, None),
        ("B's", "consume B's topic (subscribe)",
         lambda: confluent_error(subscribe_b, lambda: Consumer(_confluent(
             room.a, **{"group.id": f"{a}-iso-g", "enable.auto.commit": False}))),
         (KafkaException,), code(KafkaError.TOPIC_AUTHORIZATION_FAILED)),
        ("B's", "read B's topic offsets (assign + beginning)",
         lambda: offsets("beginning_offsets"), topic_refused, None),
        ("B's", "read B's topic end offsets", lambda: offsets("end_offsets"), topic_refused,
         None),
        ("B's", "describe B's topic", lambda: admin_a.describe_topics([topic]), (),
         lambda r: r[0]["error_code"] == kx.TopicAuthorizationFailedError.errno),
        ("B's", "describe B's topic configs",
         lambda: [f.result() for f in confluent_a.describe_configs(
             [ConfigResource("topic", topic)]).values()],
         (KafkaException,), code(KafkaError.TOPIC_AUTHORIZATION_FAILED)),
        ("B's", "create a topic in B's prefix",
         lambda: admin_a.create_topics([NewTopic(f"{b}-iso-new", 1, 1)]), topic_refused, None),
        ("B's", "add partitions to B's topic",
         lambda: admin_a.create_partitions({topic: NewPartitions(2)}), topic_refused, None),
        ("B's", "delete B's topic", lambda: admin_a.delete_topics([topic]), topic_refused,
         None),
        ("B's", "describe B's group", lambda: admin_a.describe_groups([group]), group_refused,
         None),
        ("B's", "read B's group offsets", lambda: admin_a.list_group_offsets(group),
         group_refused, None),
        ("B's", "delete B's group", lambda: admin_a.delete_groups([group]), group_refused,
         None),
        ("B's", "join B's group", lambda: in_b_group("join"), group_refused, None),
        ("B's", "commit offsets in B's group", lambda: in_b_group("commit"), group_refused,
         None),
        ("B's", "use B's transactional id", transactional,
         (kx.TransactionalIdAuthorizationFailedError,), None),
        ("admin", "create an ACL giving itself B's topics",
         lambda: admin_a.create_acls([grab]), (), no_cluster),
        ("admin", "change B's SCRAM password",
         lambda: [f.result() for f in confluent_a.alter_user_scram_credentials([Upsert(
                      b, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                      b"taken-over-12345")]).values()],
         (KafkaException,), code(KafkaError.CLUSTER_AUTHORIZATION_FAILED)),
    ]:
        probe.refused(kind, what, action, errors or (kx.KafkaError,), check or (lambda _: True))
    probe.refused("B's", "see B's topic in the topic list",
                  lambda: topic in admin_a.list_topics() and pytest.fail("listed"),
                  (), lambda listed: listed is False)

    own, own_group = f"{a}-iso-own", f"{a}-iso-group"

    def own_work() -> None:
        _topic_with(admin_a, sa, own, b"mine")
        c = clients.kafka_consumer(own, settings=sa, group_id=own_group,
                                   auto_offset_reset="earliest", enable_auto_commit=False)
        assert _values(c) == [b"mine"]
        c.commit()
        c.close()
        assert admin_a.list_group_offsets(own_group)
        admin_a.delete_groups([own_group])
        admin_a.delete_topics([own])

    probe.allowed("create topic, produce, consume in a group, commit, describe, delete",
                  own_work)

    def own_transaction() -> None:
        p = clients.kafka_producer(sa, transactional_id=f"{a}-iso-tx")
        p.init_transactions()
        p.begin_transaction()
        p.send(f"{a}-iso-tx-topic", b"x")
        p.commit_transaction()
        p.close()
        admin_a.delete_topics([f"{a}-iso-tx-topic"])

    probe.allowed("a transaction with its own transactional id", own_transaction)
    probe.allowed("B's topic and group are untouched",
                  lambda: admin_b.list_group_offsets(group) or pytest.fail("no offsets"))
    admin_b.delete_groups([group])
    admin_b.delete_topics([topic])
    admin_a.close()
    admin_b.close()

    errors: list[Any] = []
    bad = Producer(_confluent(room.a, **{"sasl.password": "wrong-password-123",
                                         "error_cb": errors.append}))
    probe.refused("no TLS / bad login", "wrong password (SCRAM)",
                  lambda: (bad.poll(5), errors)[1], (),
                  lambda e: any(x.code() == KafkaError._AUTHENTICATION and
                                "invalid credentials" in x.str() for x in e))
    probe.refused("no TLS / bad login", "plain text to the SASL_SSL port",
                  lambda: _raw_kafka(room, cb.KAFKA_PORT, tls=False), (), lambda r: r[:1]
                  in (b"", b"\x15"))  # EOF, or a TLS alert record
    probe.refused("no TLS / bad login", "controller port without a client certificate",
                  lambda: _raw_kafka(room, cb.KAFKA_CONTROLLER_PORT, tls=True),
                  (ssl.SSLError, ConnectionResetError), lambda e: "CERTIFICATE" in str(e).upper()
                  or isinstance(e, ConnectionResetError))
    probe.refused("no TLS / bad login", "controller port with a foreign certificate",
                  lambda: _raw_kafka(room, cb.KAFKA_CONTROLLER_PORT, tls=True, foreign=True),
                  (ssl.SSLError, ConnectionResetError), lambda e: True)
    probe.verify()


API_VERSIONS = b"\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04test"


def _raw_kafka(room: Room, port: int, *, tls: bool, foreign: bool = False) -> bytes:
    """Send a Kafka ApiVersions request; return what comes back (TLS errors raise)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        if tls:
            context = ssl.create_default_context(cafile=room.ca)
            if foreign:
                key, cert = _foreign_certificate(room.root.parent)
                context.load_cert_chain(str(cert), str(key))
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(API_VERSIONS)
        return sock.recv(64)
    finally:
        sock.close()


def _foreign_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate named like the controller's: not from the course CA."""
    import subprocess

    key, cert = folder / "foreign.key", folder / "foreign.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={cb.CONTROLLER_CN}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return key, cert


# ---------------------------------------------------------------- grading in the classroom

QUICK_LAB = "01.01-first-queue.ipynb"  # the quickest lab: about 5 s solved
# Student A's extra first cell: A's own credentials, from the environment the grader gives
# the submission, against B's names (which it guesses: a student can see no other's list).
ATTACK = """\
import os
from brokerlab import clients
from brokerlab.settings import Settings

B = "@B@"
QUEUE, KEY, TOPIC = B + "-victim-queue", B + "-victim-key", B + "-victim-topic"
url = os.environ["RABBITMQ_URL"]
in_b = Settings.from_env({**os.environ, "RABBITMQ_URL": url.rsplit("/", 1)[0] + "/" + B})

def rabbitmq(action):
    with clients.rabbitmq_channel(in_b) as channel:
        return getattr(channel, action)(QUEUE)

def redis_delete():
    r = clients.redis_client()
    try:  # SCAN lists every key name; each access is checked
        return r.delete(*(list(r.scan_iter(match=B + "-*", count=1000)) or [KEY]))
    finally:
        r.close()

def kafka_delete():
    admin = clients.kafka_admin()
    try:
        return admin.delete_topics([TOPIC], timeout_ms=10000)
    finally:
        admin.close()

for what, attempt in [("RabbitMQ purge B's queue", lambda: rabbitmq("queue_purge")),
                      ("RabbitMQ delete B's queue", lambda: rabbitmq("queue_delete")),
                      ("Redis delete B's keys", redis_delete),
                      ("Kafka delete B's topic", kafka_delete)]:
    try:
        print(f"ATTACK {what}: ALLOWED {attempt()!r}")
    except Exception as exc:
        print(f"ATTACK {what}: REFUSED {type(exc).__name__}: {exc}")
"""


@pytest.mark.classroom
def test_grading_in_the_classroom_keeps_students_apart(room: Room, tmp_path: Path) -> None:
    """Graded with --classroom, a submission runs with its student's account only: A's
    extra cell is refused on every broker, B's things stay, and both solved labs pass."""
    import nbformat
    from kafka.admin import NewTopic
    from nbformat.v4 import new_code_cell

    from brokerlab import clients
    from brokerlab.backstage import grade

    solved = REPO / "solutions" / QUICK_LAB
    a, b = _login(room.a), _login(room.b)
    pb = room.password(room.b)
    queue, key, topic = f"{b}-victim-queue", f"{b}-victim-key", f"{b}-victim-topic"
    with _amqp(room, b, pb, b) as conn:  # B's things, made with B's account
        ch = conn.channel()
        ch.queue_declare(queue)
        ch.basic_publish("", queue, b"B's message")
    rb = _redis(room, b, pb)
    rb.set(key, "B's value")
    admin_b = clients.kafka_admin(_kafka(room.b))
    admin_b.create_topics([NewTopic(topic, 1, 1)])
    producer = clients.kafka_producer(_kafka(room.b))
    producer.send(topic, b"B's record").get(timeout=10)
    producer.close(timeout=5)
    try:
        attack = nbformat.read(solved, as_version=4)
        first = next(i for i, c in enumerate(attack.cells) if c.cell_type == "code")
        attack.cells.insert(first, new_code_cell(ATTACK.replace("@B@", b)))
        nbformat.write(attack, _place(tmp_path / "attack" / a / QUICK_LAB))
        for login in (a, b):
            shutil.copy(solved, _place(tmp_path / "solved" / login / QUICK_LAB))
        bounds = {"classroom": room.root, "required": True, "timeout": 120,
                  "cell_timeout": 30}
        attacked, _ = grade.grade(tmp_path / "attack", tmp_path / "attack-out", jobs=1,
                                  **bounds)
        results, _ = grade.grade(tmp_path / "solved", tmp_path / "solved-out", jobs=2,
                                 **bounds)

        ran = nbformat.read(tmp_path / "attack-out" / "executed" / a / QUICK_LAB, as_version=4)
        printed = "".join(o.get("text", "") for o in ran.cells[first].outputs)
        lines = [line for line in printed.splitlines() if line.startswith("ATTACK ")]
        for line, (broker, refusal) in zip(lines, [
                ("RabbitMQ", "access to vhost"), ("RabbitMQ", "access to vhost"),
                ("Redis", "NoPermissionError"), ("Kafka", "TopicAuthorizationFailed")],
                strict=True):
            what, _, outcome = line.removeprefix("ATTACK ").partition(": ")
            ok = outcome.startswith("REFUSED") and refusal in outcome
            ATTEMPTS.append(Attempt(broker, "B's", f"from a graded notebook: {what}", "refused",
                                    _printable(outcome[:100]), ok))
            assert ok, line
        assert {r.login: r.status for r in results} == {a: "passed", b: "passed"}, results
        assert attacked[0].status == "passed", attacked  # A's lab still ran to the end

        with _amqp(room, b, pb, b) as conn:  # B's things are all there
            assert conn.channel().basic_get(queue, auto_ack=True)[2] == b"B's message"
        assert rb.get(key) == "B's value"
        assert topic in admin_b.list_topics()
        reader = clients.kafka_consumer(topic, settings=_kafka(room.b),
                                        auto_offset_reset="earliest")
        try:
            records = _values(reader)
        finally:
            reader.close()
        assert records == [b"B's record"]
    finally:
        with _amqp(room, b, pb, b) as conn:
            conn.channel().queue_delete(queue)
        rb.delete(key)
        rb.close()
        admin_b.delete_topics([topic])
        admin_b.close()


def _place(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------- the figures


@pytest.mark.classroom
def test_zz_isolation_table(room: Room) -> None:
    """The figures of every attempt above, per broker; written to artifacts/."""
    assert ATTEMPTS, "run the isolation tests first (same session)"
    lines = [f"Classroom isolation ({time.strftime('%Y-%m-%d %H:%M')}; students "
             f"{_login(room.a)!r} as A, {_login(room.b)!r} as B)", ""]
    header = f"{'broker':9} {'attempts by A':32} {'tried':>5} {'as expected':>11}"
    lines += [header, "-" * len(header)]
    kinds = ["B's", "admin", "no TLS / bad login", "own"]
    label = {"B's": "on B's names (refused)", "admin": "admin's work (refused)",
             "no TLS / bad login": "no TLS / bad login (refused)",
             "own": "A's own work (allowed)"}
    for broker in ("RabbitMQ", "Redis", "Kafka"):
        for kind in kinds:
            rows = [x for x in ATTEMPTS if x.broker == broker and x.kind == kind]
            if rows:
                lines.append(f"{broker:9} {label[kind]:32} {len(rows):5} "
                             f"{sum(x.ok for x in rows):11}")
    total = len(ATTEMPTS)
    refused = [x for x in ATTEMPTS if x.expected == "refused"]
    lines += ["-" * len(header),
              f"{'all':9} {'refused as expected':32} {len(refused):5} "
              f"{sum(x.ok for x in refused):11}",
              f"{'all':9} {'every attempt':32} {total:5} {sum(x.ok for x in ATTEMPTS):11}",
              "", "Every attempt:"]
    lines += [f"  {'ok ' if x.ok else 'BAD'} {x.broker:8} {x.kind:18} {x.what}: {x.outcome}"
              for x in ATTEMPTS]
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines[:len(lines) - total - 2]))
    assert all(x.ok for x in ATTEMPTS)


@pytest.mark.classroom
def test_a_second_start_keeps_every_account_and_password(room: Room, tmp_path: Path) -> None:
    logins = classroom.students_of(room.root)
    before = {login: (room.root / "env" / f"{login}.env").read_text() for login in logins}
    roster = tmp_path / "roster.csv"
    roster.write_text("".join(f"{login}\n" for login in logins))
    said: list[str] = []
    outcome = classroom.start(roster, room.root, echo=said.append)
    assert set(outcome.values()) == {"reused"}, outcome
    after = {login: (room.root / "env" / f"{login}.env").read_text() for login in logins}
    assert after == before, "a second start must keep every student's password"
    assert not any("KAFKA_SASL_PASSWORD" in line or room.a["KAFKA_SASL_PASSWORD"] in line
                   for line in said), "start must never print a password"
