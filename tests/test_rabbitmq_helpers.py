"""Tests for the pure parts of brokerlab.rabbitmq (no broker needed)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from brokerlab import rabbitmq as rmq
from brokerlab.settings import Settings

# ---------------------------------------------------------------- topic_matches (01.04)

# The official tutorial 5 examples: Q1 is bound with "*.orange.*",
# Q2 with "*.*.rabbit" and "lazy.#".
TUTORIAL = {
    "quick.orange.rabbit": {"Q1", "Q2"},
    "lazy.orange.elephant": {"Q1", "Q2"},
    "quick.orange.fox": {"Q1"},
    "lazy.brown.fox": {"Q2"},
    "lazy.pink.rabbit": {"Q2"},
    "quick.brown.fox": set(),
    "orange": set(),
    "quick.orange.new.rabbit": set(),
    "lazy.orange.new.rabbit": {"Q2"},
}
BINDINGS = {"Q1": ["*.orange.*"], "Q2": ["*.*.rabbit", "lazy.#"]}


@pytest.mark.parametrize("key", sorted(TUTORIAL))
def test_topic_matches_tutorial_examples(key: str) -> None:
    got = {q for q, patterns in BINDINGS.items()
           if any(rmq.topic_matches(p, key) for p in patterns)}
    assert got == TUTORIAL[key]


@pytest.mark.parametrize(
    ("binding", "key", "expected"),
    [
        ("#", "", True),
        ("#", "a", True),
        ("#", "a.b.c", True),
        ("*", "", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("a.#", "a", True),          # '#' may match zero words
        ("a.#", "a.b.c", True),
        ("#.a", "a", True),
        ("#.a", "x.y.a", True),
        ("#.a", "x.y.b", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.*.b", "a.b", False),
        ("a.*.b", "a.x.b", True),
        ("#.#", "a.b", True),
        ("*.#", "", False),
        ("*.#", "a", True),
        ("a", "a", True),
        ("a", "A", False),           # case matters
        ("a.b", "a.b.c", False),
        ("kern.*", "kern.critical", True),
        ("*.error", "kern.error", True),
        ("*.error", "error", False),
        ("a..b", "a..b", True),      # empty words are words
        ("a.*.b", "a..b", True),
    ],
)
def test_topic_matches_rules(binding: str, key: str, expected: bool) -> None:
    assert rmq.topic_matches(binding, key) is expected


def test_binding_without_wildcards_is_a_direct_match() -> None:
    assert rmq.topic_matches("eu.orders", "eu.orders")
    assert not rmq.topic_matches("eu.orders", "eu.orders.new")


# ---------------------------------------------------------------- the management API client


class FakeApi(BaseHTTPRequestHandler):
    """Answers GET /api/queues/<vhost>/known with JSON, and 404 for anything else."""

    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        FakeApi.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.path.endswith("/known"):
            body = json.dumps({"name": "known", "durable": True, "type": "quorum",
                               "messages_unacknowledged": 2}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def fake_api() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeApi.seen.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def settings_for(api: str, url: str = "amqp://alice:s%40cret@127.0.0.1:5672/orders") -> Settings:
    return replace(Settings(), rabbitmq_url=url, rabbitmq_management_url=api)


def test_vhost_comes_from_the_amqp_url() -> None:
    assert rmq.vhost(replace(Settings(), rabbitmq_url="amqp://g:g@h:5672/%2F")) == "/"
    assert rmq.vhost(replace(Settings(), rabbitmq_url="amqp://g:g@h:5672")) == "/"
    assert rmq.vhost(replace(Settings(), rabbitmq_url="amqp://g:g@h:5672/team%2Fa")) == "team/a"


def test_management_get_logs_in_with_the_amqp_credentials(fake_api: str) -> None:
    info = rmq.management_get("/api/queues/orders/known", settings_for(fake_api))
    assert info["type"] == "quorum"
    path, auth = FakeApi.seen[-1]
    assert path == "/api/queues/orders/known"
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == "alice:s@cret"


def test_management_get_base_url_picks_another_node(fake_api: str) -> None:
    settings = settings_for("http://127.0.0.1:9")  # nothing listens on the default here
    info = rmq.management_get("/api/queues/orders/known", settings, base_url=fake_api + "/")
    assert info["name"] == "known"


def test_queue_info_quotes_names_and_answers_none_for_a_missing_queue(fake_api: str) -> None:
    settings = settings_for(fake_api, "amqp://g:g@127.0.0.1:5672/%2F")
    assert rmq.queue_info("known", settings) == {
        "name": "known", "durable": True, "type": "quorum", "messages_unacknowledged": 2}
    assert rmq.queue_info("no such/queue", settings) is None
    assert FakeApi.seen[-1][0] == "/api/queues/%2F/no%20such%2Fqueue"


def test_management_get_raises_oserror_when_nothing_answers() -> None:
    with pytest.raises(OSError):
        rmq.management_get("/api/overview", settings_for("http://127.0.0.1:9"), timeout=1.0)


# ---------------------------------------------------------------- cluster names and plumbing


@pytest.mark.parametrize(("member", "node"), [
    ("rabbit2@localhost", "rabbit-2"),   # the course's native cluster
    ("rabbit@rabbit3", "rabbit-3"),      # docker compose: one host name per node
    ("rabbit1@vm-07", "rabbit-1"),       # digits in the host do not confuse it
])
def test_cluster_node_name(member: str, node: str) -> None:
    assert rmq.cluster_node_name(member) == node


def test_cluster_node_name_refuses_a_name_without_a_number() -> None:
    with pytest.raises(ValueError, match="which cluster node"):
        rmq.cluster_node_name("rabbit@localhost")


def test_close_connection_never_raises() -> None:
    class Closed:
        is_open = False

        def close(self) -> None:
            raise AssertionError("a closed connection must not be closed again")

    rmq.close_connection(None)
    rmq.close_connection(Closed())
    rmq.close_connection(Closed(), crash=True)  # no socket to drop: still quiet
