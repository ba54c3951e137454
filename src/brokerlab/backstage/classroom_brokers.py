"""The classroom's three secured brokers: their configuration, start and accounts.

Each runs natively under <DIR>/<broker> beside the course's own brokers (which keep their
ports), TLS only, with the course CA's server certificate (see classroom.py):

- RabbitMQ: AMQPS 5671 and management HTTPS 15671 (no plain listener), Erlang
  distribution 25671; guest deleted; one vhost per student. Accounts via the management
  HTTP API (passwords in request bodies, never on a command line).
- Redis: TLS 6390, plain port 0; accounts in an ACL file (hashes only) that survives a
  restart; the default user is off.
- Kafka: SASL_SSL 9094 (SCRAM-SHA-512, also between brokers) and a controller listener on
  9095 that demands the course's controller certificate; StandardAuthorizer, nothing
  allowed without an ACL; student accounts and prefixed ACLs through the admin API.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from brokerlab.backstage import process, single
from brokerlab.backstage.process import LauncherError, Place
from brokerlab.rabbitmq import management_call

BROKERS = ("rabbitmq", "redis", "kafka")
ADMIN = "admin"
INSTRUCTOR = "instructor"   # the instructor's environment file: env/instructor.env
RABBITMQ_PORTS = (5671, 15671, 25671)  # AMQPS, management HTTPS, Erlang distribution
RABBITMQ_NODE = "classroom5671@localhost"
REDIS_PORT = 6390
KAFKA_PORT, KAFKA_CONTROLLER_PORT = 9094, 9095
CONTROLLER_CN = "kafka-controller"
LOCAL = "127.0.0.1"
LOOPBACK_NAMES = frozenset({LOCAL, "localhost", "::1"})
READY_TIMEOUT = {"rabbitmq": 90.0, "redis": 15.0, "kafka": 90.0}

# Redis: what a student may do. Keys `<login>-*`, Pub/Sub channels `<login>-*`.
# Every lab of modules 02 and 03-07 that uses Redis runs as a student with this rule
# (checked with nbval); what it takes away and why:
#   -@admin      CONFIG, ACL (but WHOAMI), CLIENT LIST/KILL/PAUSE, SHUTDOWN, DEBUG,
#                MONITOR, SAVE, REPLICAOF...: server-wide, so one student could stop,
#                reconfigure or watch everybody.
#   -@dangerous  FLUSHALL, FLUSHDB, SWAPDB (other students' keys), KEYS (every key name),
#                SORT ... BY/GET (reads keys outside the patterns), RESTORE, MIGRATE, ...
#   +info        given back: read-only server statistics that the course's health check
#                (Redis version) and the persistence views read; no key or value in it.
#   -function|flush -function|delete -function|restore -script|flush
#                Lua functions and the script cache are shared by everybody: a student
#                must not delete or flush them for the others.
# SCAN stays (the course's cleanup lists `<login>-*` with SCAN MATCH); it can list other
# students' key names but never read them: every key access is checked against the
# pattern, inside scripts and transactions too.
REDIS_STUDENT_RULE = ("~{login}-* &{login}-* +@all -@admin -@dangerous +info "
                      "-function|flush -function|delete -function|restore -script|flush")


@dataclass(frozen=True)
class Layout:
    """The files of one classroom folder."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def private(self) -> Path:
        return self.root / "private"

    @property
    def env_dir(self) -> Path:
        return self.root / "env"

    def env_file(self, login: str) -> Path:
        """The environment file of `login` (a student, or the instructor)."""
        return self.env_dir / f"{login}.env"

    def place(self, broker: str) -> Place:
        return Place(f"classroom {broker}", self.root / broker)

    @property
    def host(self) -> str:
        """The address students connect to: `classroom start --host`, kept in DIR/host
        (127.0.0.1 unless told: then only this machine's users reach the brokers)."""
        try:
            return (self.root / "host").read_text().strip() or LOCAL
        except OSError:
            return LOCAL

    @property
    def bind(self) -> str:
        """Where the student-facing listeners listen: loopback, or every interface when
        students connect from other machines. Kafka's controller and RabbitMQ's Erlang
        distribution stay on 127.0.0.1 whatever the host."""
        return LOCAL if self.host in LOOPBACK_NAMES else "0.0.0.0"

    def pem(self, name: str) -> tuple[Path, Path, Path]:
        """Key, certificate and key+certificate (a PEM keystore) of `name`."""
        return (self.private / f"{name}.key", self.private / f"{name}.pem",
                self.private / f"{name}-keystore.pem")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


# ---------------------------------------------------------------- RabbitMQ


def rabbitmq_conf(layout: Layout) -> str:
    """The TLS part of rabbitmq.conf (the rest is the course's node configuration)."""
    key, cert, _ = layout.pem("server")
    tls = f"cacertfile = {layout.ca}\n{{p}}certfile = {cert}\n{{p}}keyfile = {key}\n"
    amqp, management, _ = RABBITMQ_PORTS
    return ("listeners.tcp = none\n"
            f"listeners.ssl.default = {layout.bind}:{amqp}\n"
            "ssl_options." + tls.format(p="ssl_options.") +
            # Clients prove who they are with a password; they need no certificate.
            "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"
            f"management.ssl.ip = {layout.bind}\nmanagement.ssl.port = {management}\n"
            "management.ssl." + tls.format(p="management.ssl."))


def rabbitmq_argv_env(layout: Layout) -> tuple[list[str], dict[str, str]]:
    server = process.require_binary(str(single.RABBITMQ_SERVER), "RabbitMQ")
    env = single.rabbitmq_node_env(layout.place("rabbitmq").root, RABBITMQ_NODE, RABBITMQ_PORTS,
                                   watermark="256MB",
                                   # one scheduler; Erlang distribution on 127.0.0.1 only
                                   schedulers="+S 1:1 +A 4 "
                                              "-kernel inet_dist_use_interface {127,0,0,1}",
                                   extra_conf=rabbitmq_conf(layout), plain=False)
    return [server], env


def rabbitmq_api(layout: Layout, method: str, path: str, auth: tuple[str, str],
                 body: dict[str, Any] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    """One call to the classroom's management API (HTTPS, the course CA); (status, parsed
    JSON or None), 200 standing for every success. Never raises for an HTTP status."""
    try:
        return 200, management_call(method, f"https://127.0.0.1:{RABBITMQ_PORTS[1]}", path,
                                    auth, body, context=layout.ssl_context(), timeout=timeout)
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _api_ok(layout: Layout, method: str, path: str, auth: tuple[str, str],
            body: dict[str, Any] | None = None, allowed: tuple[int, ...] = ()) -> None:
    status, _ = rabbitmq_api(layout, method, path, auth, body)
    if status >= 300 and status not in allowed:
        raise LauncherError(f"RabbitMQ management API: {method} {path} answered {status}; "
                            f"read {layout.place('rabbitmq').log}")


def rabbitmq_ready(layout: Layout) -> bool:
    try:  # 401 is an answer: the node is up, management included
        return rabbitmq_api(layout, "GET", "/api/overview", ("-", "-"), timeout=3.0)[0] > 0
    except OSError:
        return False


def rabbitmq_accounts(layout: Layout, admin_password: str, students: dict[str, str],
                      remove: list[str]) -> None:
    """admin (administrator on /), guest deleted, per student a vhost, a user with every
    right there and the `management` tag. Passwords travel in HTTPS request bodies."""
    admin = (ADMIN, admin_password)
    if rabbitmq_api(layout, "GET", "/api/whoami", admin)[0] == 401:  # first start: bootstrap
        _api_ok(layout, "PUT", f"/api/users/{ADMIN}", ("guest", "guest"),
                {"password": admin_password, "tags": "administrator"})
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    _api_ok(layout, "PUT", f"/api/permissions/%2F/{ADMIN}", admin, everything)
    _api_ok(layout, "DELETE", "/api/users/guest", admin, allowed=(404,))
    for login, password in students.items():
        _api_ok(layout, "PUT", f"/api/vhosts/{quote(login)}", admin, {})
        _api_ok(layout, "PUT", f"/api/users/{quote(login)}", admin,
                {"password": password, "tags": "management"})
        for user in (login, ADMIN):
            _api_ok(layout, "PUT", f"/api/permissions/{quote(login)}/{quote(user)}", admin,
                    everything)
    for login in remove:
        _api_ok(layout, "DELETE", f"/api/users/{quote(login)}", admin, allowed=(404,))
        _api_ok(layout, "DELETE", f"/api/vhosts/{quote(login)}", admin, allowed=(404,))


def rabbitmq_reset(layout: Layout, admin_password: str, login: str) -> None:
    """Empty a student's vhost: delete it and create it again with the same rights."""
    admin = (ADMIN, admin_password)
    _api_ok(layout, "DELETE", f"/api/vhosts/{quote(login)}", admin, allowed=(404,))
    _api_ok(layout, "PUT", f"/api/vhosts/{quote(login)}", admin, {})
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    for user in (login, ADMIN):
        _api_ok(layout, "PUT", f"/api/permissions/{quote(login)}/{quote(user)}", admin,
                everything)


# ---------------------------------------------------------------- Redis


def redis_conf(layout: Layout) -> str:
    key, cert, _ = layout.pem("server")
    root = layout.place("redis").root
    return ("# Written by brokerlab (classroom)\n"
            f"bind {layout.bind}\nport 0\ntls-port {REDIS_PORT}\n"
            f"tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {layout.ca}\n"
            "tls-auth-clients no\nprotected-mode yes\ndaemonize no\n"
            f'dir "{root / "data"}"\nsave ""\nappendonly no\n'
            "maxmemory 256mb\nmaxmemory-policy noeviction\n"
            f'aclfile "{root / "users.acl"}"\n')


def redis_acl(admin_password: str, students: dict[str, str]) -> str:
    """The ACL file: SHA-256 hashes only, never a password."""

    def sha(password: str) -> str:
        return hashlib.sha256(password.encode()).hexdigest()

    lines = ["user default off resetkeys resetchannels -@all",
             f"user {ADMIN} on #{sha(admin_password)} ~* &* +@all"]
    lines += [f"user {login} on #{sha(password)} " + REDIS_STUDENT_RULE.format(login=login)
              for login, password in sorted(students.items())]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write a file readable by this user only (atomically: never half written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def redis_argv(layout: Layout, admin_password: str, students: dict[str, str]) -> list[str]:
    server = process.require_binary("redis-server", "Redis")
    root = layout.place("redis").root
    (root / "data").mkdir(parents=True, exist_ok=True)
    write_private(root / "redis.conf", redis_conf(layout))
    write_private(root / "users.acl", redis_acl(admin_password, students))
    return [server, str(root / "redis.conf")]


def redis_admin(layout: Layout, admin_password: str, db: int = 0) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=db, username=ADMIN,
                       password=admin_password, ssl=True, ssl_ca_certs=str(layout.ca),
                       socket_timeout=5, socket_connect_timeout=3, decode_responses=True)


def redis_accounts(layout: Layout, admin_password: str, students: dict[str, str]) -> None:
    """Rewrite the ACL file and load it into the running server."""
    write_private(layout.place("redis").root / "users.acl",
                  redis_acl(admin_password, students))
    client = redis_admin(layout, admin_password)
    try:
        client.execute_command("ACL", "LOAD")
    finally:
        client.close()


def redis_reset(layout: Layout, admin_password: str, login: str) -> int:
    """Delete the student's keys `<login>-*` in every database; how many."""
    deleted = 0
    for db in range(16):
        client = redis_admin(layout, admin_password, db)
        try:
            for key in list(client.scan_iter(match=f"{login}-*", count=1000)):
                deleted += int(client.delete(key))
        finally:
            client.close()
    return deleted


# ---------------------------------------------------------------- Kafka


def kafka_overrides(layout: Layout) -> dict[str, object]:
    _, _, server_keystore = layout.pem("server")
    _, _, controller_keystore = layout.pem("controller")
    instructor = layout.env_file(INSTRUCTOR)
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    return {
        **single.kafka_single_node(KAFKA_CONTROLLER_PORT),
        "listeners": (f"SASL_SSL://{layout.bind}:{KAFKA_PORT},"
                      f"CONTROLLER://{LOCAL}:{KAFKA_CONTROLLER_PORT}"),
        # Clients reconnect to the advertised address: the one students were given.
        "advertised.listeners": f"SASL_SSL://{layout.host}:{KAFKA_PORT}",
        "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        # The broker's own login reads admin's password from instructor.env when it starts
        # (a config provider), so no password is written into this file.
        "config.providers": "file",
        "config.providers.file.class":
            "org.apache.kafka.common.config.provider.FileConfigProvider",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            f'{scram} required username="{ADMIN}" '
            f'password="${{file:{instructor}:KAFKA_SASL_PASSWORD}}";',
        "ssl.keystore.type": "PEM", "ssl.keystore.location": server_keystore,
        "ssl.truststore.type": "PEM", "ssl.truststore.location": layout.ca,
        # The controller: TLS both ways; only the course's controller certificate gets in.
        "listener.name.controller.ssl.keystore.type": "PEM",
        "listener.name.controller.ssl.keystore.location": controller_keystore,
        "listener.name.controller.ssl.truststore.type": "PEM",
        "listener.name.controller.ssl.truststore.location": layout.ca,
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN};User:CN={CONTROLLER_CN}",
        "allow.everyone.if.no.acl.found": "false",
    }


def kafka_argv(layout: Layout, admin_password: str) -> list[str]:
    where = layout.place("kafka")
    properties = single.kafka_properties(1, KAFKA_PORT, KAFKA_CONTROLLER_PORT,
                                         where.root / "data", kafka_overrides(layout))
    argv = single.kafka_argv(
        where, properties, cluster_id=single.new_cluster_id(), standalone=True,
        heap=os.environ.get("BROKERLAB_KAFKA_HEAP", "256m"),
        secret_format_args=["--add-scram",
                            f"SCRAM-SHA-512=[name={ADMIN},password={admin_password}]"])
    os.chmod(where.root / "server.properties", 0o600)
    return argv


def kafka_admin(layout: Layout, admin_password: str, timeout: float = 5.0) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=[f"127.0.0.1:{KAFKA_PORT}"], security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=ADMIN,
        sasl_plain_password=admin_password, ssl_cafile=str(layout.ca),
        request_timeout_ms=int(timeout * 1000) + 1000, bootstrap_timeout_ms=int(timeout * 1000))


def kafka_ready(layout: Layout, admin_password: str) -> bool:
    try:
        admin = kafka_admin(layout, admin_password, timeout=3.0)
    except Exception:  # not answering yet: NoBrokersAvailable, a refused TLS handshake...
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


def _student_acls(login: str) -> list[Any]:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    return [ACL(f"User:{login}", "*", ACLOperation.ALL, ACLPermissionType.ALLOW,
                ResourcePattern(kind, f"{login}-", ACLResourcePatternType.PREFIXED))
            for kind in (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID)]


def kafka_accounts(layout: Layout, admin_password: str, students: dict[str, str],
                   remove: list[str]) -> None:
    """SCRAM-SHA-512 users and PREFIXED `<login>-` ACLs (topic, group, transactional id)."""
    from kafka.admin import (
        ACLFilter,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    admin = kafka_admin(layout, admin_password)
    try:
        changes: list[Any] = [UserScramCredentialUpsertion(login, ScramMechanism.SCRAM_SHA_512,
                                                           password)
                              for login, password in students.items()]
        changes += [UserScramCredentialDeletion(login, ScramMechanism.SCRAM_SHA_512)
                    for login in remove]
        if changes:
            failed = {user: error for user, error in
                      admin.alter_user_scram_credentials(changes).items()
                      if error and not (user in remove and "NOT_FOUND" in str(error).upper())}
            if failed:
                raise LauncherError(f"Kafka refused SCRAM credentials: {failed}")
        acls = [acl for login in students for acl in _student_acls(login)]
        if acls:
            result = admin.create_acls(acls)
            if result.get("failed"):
                raise LauncherError(f"Kafka refused ACLs: {result['failed']}")
        for login in remove:
            admin.delete_acls([ACLFilter(acl.principal, acl.host, acl.operation,
                                         acl.permission_type, acl.resource_pattern)
                               for acl in _student_acls(login)])
    finally:
        admin.close()


def kafka_reset(layout: Layout, admin_password: str, login: str) -> tuple[int, int]:
    """Delete the student's consumer groups and topics `<login>-*`; how many of each."""
    admin = kafka_admin(layout, admin_password)
    try:
        groups = [g["group_id"] if isinstance(g, dict) else g[0] for g in admin.list_groups()]
        groups = [g for g in groups if g.startswith(f"{login}-")]
        if groups:
            admin.delete_groups(groups)
        topics = [t for t in admin.list_topics() if t.startswith(f"{login}-")]
        if topics:
            admin.delete_topics(topics, timeout_ms=10_000, raise_errors=False)
        return len(groups), len(topics)
    finally:
        admin.close()


# ---------------------------------------------------------------- start / stop


def ports(broker: str) -> list[int]:
    return {"rabbitmq": list(RABBITMQ_PORTS), "redis": [REDIS_PORT],
            "kafka": [KAFKA_PORT, KAFKA_CONTROLLER_PORT]}[broker]


def ready(layout: Layout, broker: str, admin_password: str) -> bool:
    if broker == "rabbitmq":
        return rabbitmq_ready(layout)
    if broker == "redis":
        try:
            client = redis_admin(layout, admin_password)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # connection refused, TLS not up yet, LOADING...
            return False
    return kafka_ready(layout, admin_password)


def start(layout: Layout, broker: str, admin_password: str, students: dict[str, str],
          echo: Callable[[str], None]) -> str:
    """Start one secured broker unless ours already runs; wait until it answers."""
    where = layout.place(broker)
    if process.managed_pid(where) is not None:
        if ready(layout, broker, admin_password):
            return "reused"
        process.stop(where)  # ours but not answering: replace it
    process.require_free(f"classroom {broker}", ports(broker))
    if broker == "rabbitmq":
        argv, env = rabbitmq_argv_env(layout)
    elif broker == "redis":
        argv, env = redis_argv(layout, admin_password, students), dict(os.environ)
    else:
        argv, env = kafka_argv(layout, admin_password), dict(os.environ)
    pid = process.spawn(where, argv, env)
    seconds = process.wait_ready(f"classroom {broker}",
                                 lambda: ready(layout, broker, admin_password),
                                 READY_TIMEOUT[broker], [where])
    echo(f"{broker:9} started in {seconds:.1f} s (pid {pid}, log {where.log})")
    return "started"


def stop(layout: Layout, broker: str) -> int | None:
    pid = process.stop(layout.place(broker))
    if broker == "rabbitmq" and pid is not None:
        single.stop_idle_epmd()
    return pid
