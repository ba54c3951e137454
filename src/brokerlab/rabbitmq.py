"""RabbitMQ read-only views, and the little plumbing RabbitMQ lessons share.

The pika calls a lesson teaches (queue_declare, basic_publish, basic_consume,
basic_ack, confirm_delivery, ...) are written in the notebooks themselves. This module
only looks into the broker, for check cells, the control panel and cleanup:

    from brokerlab import rabbitmq as rmq
    rmq.management_get("/api/overview")        # GET through the one management client (01.01)
    rmq.queue_counts(queue)                    # ready, unacked, consumers (01.01, 01.02)
    rmq.queue_info(queue)                      # durable, type, ... from the API (01.03)
    rmq.topic_matches("*.orange.*", key)       # the topic exchange's rule (01.04)
    rmq.close_connection(conn, crash=True)     # a worker's kill() (01.02)
    rmq.quorum_queue_state(queue)              # leader and members on the cluster (04.03)
    rmq.connected_node(connection)             # which cluster node a client reached (04.03)
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions

from brokerlab.checks import wait_until
from brokerlab.clients import rabbitmq_channel
from brokerlab.settings import Settings, get_settings

# ---------------------------------------------------------------- the management API


def management_get(path: str, settings: Settings | None = None, *,
                   base_url: str | None = None, timeout: float = 5.0) -> Any:
    """GET `path` (e.g. '/api/queues/%2F') from the RabbitMQ management HTTP API; parsed JSON.

    It logs in with the user and password of RABBITMQ_URL; `base_url` picks another
    node's API (a cluster node's, from `settings.rabbitmq_cluster_management_urls`),
    default `settings.rabbitmq_management_url`. Raises OSError (urllib's URLError /
    HTTPError) when the API does not answer or refuses.
    Used by 01.01's window into the broker, 04.03's quorum-queue view, cleanup and the panel.
    """
    settings = settings or get_settings()
    amqp = urlsplit(settings.rabbitmq_url)
    user, password = unquote(amqp.username or "guest"), unquote(amqp.password or "guest")
    return management_call("GET", base_url or settings.rabbitmq_management_url, path,
                           (user, password), timeout=timeout)


def management_call(method: str, base_url: str, path: str, auth: tuple[str, str],
                    body: Any = None, *, context: ssl.SSLContext | None = None,
                    timeout: float = 5.0) -> Any:
    """The one management-API client of the package: `method` `path` on `base_url` as
    user `auth[0]`, with `body` sent as JSON; the parsed answer (None when empty).
    Raises urllib.error.HTTPError for a 4xx/5xx answer, URLError when nobody answers.
    `context` verifies an https API (the classroom's, with the course CA)."""
    request = urllib.request.Request(base_url.rstrip("/") + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        text = response.read()
        return json.loads(text) if text else None


def vhost(settings: Settings | None = None) -> str:
    """The virtual host of RABBITMQ_URL ('/' when the URL names none)."""
    settings = settings or get_settings()
    path = urlsplit(settings.rabbitmq_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def queues(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every queue of the course's vhost, as the management API lists them."""
    return list(management_get(f"/api/queues/{quote(vhost(settings), safe='')}", settings))


def queue_info(queue: str, settings: Settings | None = None, *,
               base_url: str | None = None) -> dict[str, Any] | None:
    """The management API's description of `queue` (GET /api/queues/<vhost>/<queue>):
    durable, exclusive, type, node, messages_ready, messages_unacknowledged, ...; None
    if there is no such queue. Its message counts lag a few seconds (see queue_counts).
    Taught in 01.01; 01.03 reads type and durability.
    """
    path = f"/api/queues/{quote(vhost(settings), safe='')}/{quote(queue, safe='')}"
    try:
        return dict(management_get(path, settings, base_url=base_url))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


# ---------------------------------------------------------------- counting a queue


@dataclass(frozen=True)
class QueueCounts:
    """Messages ready for delivery, delivered but not yet acknowledged, and consumers."""

    ready: int
    unacked: int | None  # None when the management API did not answer
    consumers: int


def queue_counts(queue: str, settings: Settings | None = None) -> QueueCounts | None:
    """Ready, unacked and consumers of `queue` right now; None if there is no such queue.

    `ready` and `consumers` come from a passive queue_declare on a short-lived channel:
    it never creates the queue, and the queue itself answers, so they are exact. AMQP has
    no way to ask for `unacked`; it comes from the management API, whose message counts
    the broker refreshes every few seconds (collect_statistics_interval, 5 s by default).
    Only the owner may declare an exclusive queue, even passively: use queue_info for
    those. Taught in 01.01; 01.02 reads `unacked`.
    """
    with rabbitmq_channel(settings) as channel:
        try:
            ok = channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
    try:
        info = queue_info(queue, settings)
        unacked = info.get("messages_unacknowledged") if info else None
    except OSError:
        unacked = None
    return QueueCounts(ok.method.message_count, unacked, ok.method.consumer_count)


# ---------------------------------------------------------------- routing


def _words(key: str) -> list[str]:
    return key.split(".") if key else []


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """True if a topic exchange routes `routing_key` through a binding with `binding_key`.

    Words are separated by '.'; `*` stands for exactly one word, `#` for zero or more.
    Taught in 01.04 (predict who gets what, then let the broker confirm it).
    """
    pattern, words = _words(binding_key), _words(routing_key)
    # reachable[j]: the pattern so far can consume exactly the first j words
    reachable = [True] + [False] * len(words)
    for part in pattern:
        if part == "#":
            for j in range(1, len(words) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [
                reachable[j - 1] and (part == "*" or part == words[j - 1])
                for j in range(1, len(words) + 1)
            ]
    return reachable[len(words)]


# ---------------------------------------------------------------- plumbing for workers


def close_connection(connection: Any, *, crash: bool = False) -> None:
    """Close a worker's pika connection: cleanly, or with `crash=True` as a crash would.

    A crash skips AMQP's close handshake and just closes the socket, as the kernel does
    for a process that died: the broker sees the TCP connection end at once and puts
    back every message the connection held unacknowledged. Never raises (the broker may
    be gone already). Used by the lesson workers of 01.02 and 04.03 (`kill()` sets `crash`).
    """
    if connection is None:
        return
    try:
        if crash:
            connection._impl._transport._sock.close()  # pika has no public "die" call
        elif connection.is_open:
            connection.close()
    except Exception:  # closing what is already closed or gone: nothing left to do
        pass


# ---------------------------------------------------------------- the cluster (04.03)


def cluster_node_name(member: str) -> str:
    """A RabbitMQ node name as the course names cluster nodes: 'rabbit2@localhost'
    (native) or 'rabbit@rabbit2' (compose) -> 'rabbit-2'."""
    name, _, host = member.partition("@")
    digits = re.findall(r"\d+", name) or re.findall(r"\d+", host)
    if not digits:
        raise ValueError(f"cannot tell which cluster node {member!r} is")
    return f"rabbit-{int(digits[-1])}"


def connected_node(connection: Any, settings: Settings | None = None) -> str:
    """The cluster node a pika connection reached ('rabbit-2'), from the port of the
    parameters pika finally used. Taught in 04.03."""
    settings = settings or get_settings()
    port = connection._impl.params.port  # pika keeps the parameters that connected
    for i, url in enumerate(settings.rabbitmq_cluster_urls, start=1):
        if (urlsplit(url).port or 5672) == port:
            return f"rabbit-{i}"
    return f"port {port}"


def cluster_get(path: str, settings: Settings | None = None, *, timeout: float = 3.0) -> Any:
    """GET `path` from the management API of the first cluster node that answers
    (settings.rabbitmq_cluster_management_urls, in order). Used by 04.03."""
    settings = settings or get_settings()
    last: BaseException | None = None
    for base_url in settings.rabbitmq_cluster_management_urls:
        try:
            return management_get(path, settings, base_url=base_url, timeout=timeout)
        except OSError as exc:  # that node is down or going away: ask the next
            last = exc
    raise ConnectionError(f"no management API of the RabbitMQ cluster answered ({last})")


def quorum_queue_state(queue: str, settings: Settings | None = None) -> dict[str, Any]:
    """{'leader': 'rabbit-1', 'members': [...], 'online': [...], 'messages': n, 'type': ...}
    of a queue on the cluster, from the management API of any live node. Taught in 04.03."""
    path = f"/api/queues/{quote(vhost(settings), safe='')}/{quote(queue, safe='')}"
    info = cluster_get(path, settings)
    leader = info.get("leader") or info.get("node")
    return {
        "leader": cluster_node_name(leader) if leader else None,
        "members": sorted(cluster_node_name(m) for m in info.get("members") or []),
        "online": sorted(cluster_node_name(m) for m in info.get("online") or []),
        "messages": info.get("messages"),
        "type": info.get("type"),
    }


def wait_quorum_state(queue: str, predicate: Callable[[dict[str, Any]], bool], *,
                      timeout: float = 30.0, settings: Settings | None = None
                      ) -> dict[str, Any]:
    """Poll `quorum_queue_state` until `predicate` holds (bounded); return the last state.
    Taught in 04.03."""
    last: dict[str, Any] = {}

    def holds() -> bool:
        try:
            last.clear()
            last.update(quorum_queue_state(queue, settings))
        except (OSError, ValueError):  # no node answered yet, or a member mid-change
            return False
        return predicate(last)

    wait_until(holds, timeout, interval=0.3)
    return dict(last)


def classic_reachable(queue: str, settings: Settings | None = None) -> bool:
    """Can a client reach `queue` through any live cluster node right now? A passive
    declare over every node's address. A classic queue lives on one node: while that
    node is down the others answer 404 NOT_FOUND. Taught in 04.03."""
    settings = settings or get_settings()
    params = []
    for url in settings.rabbitmq_cluster_urls:
        p = pika.URLParameters(url)
        p.socket_timeout = p.stack_timeout = 2.0
        p.connection_attempts, p.retry_delay = 1, 0
        params.append(p)
    connection = None
    try:
        connection = pika.BlockingConnection(params)
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.AMQPError:
        return False
    finally:
        close_connection(connection)
