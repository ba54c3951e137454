"""What a control panel reads from the broker about its target, through the broker views.

- RabbitMQ: ready and consumers (a passive declare: exact, now) and unacked (the
  management API, which the broker refreshes every ~5 s): `brokerlab.rabbitmq.queue_counts`.
- Redis: stream length, pending entries (XPENDING) and group lag; list length; pub/sub
  subscribers (PUBSUB NUMSUB): read-only commands on the probe's own named client.
- Kafka: lag per partition of the panel's group (log end offset − committed offset) and
  which partitions each member reads (the coordinator's view):
  `brokerlab.kafka.group_lag` and `brokerlab.kafka.group_members`.

Every reading is a dict of figures; `backlog` is the one the chart draws. A reading
never raises into the panel: `{"error": ...}` says what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from brokerlab.health import NAMES
from brokerlab.panel.workers import redis_connect
from brokerlab.settings import Settings
from brokerlab.workers import Worker

READ_EVERY = {"rabbitmq": 0.5, "redis": 0.5, "kafka": 1.0}  # seconds between readings
RETRY_AFTER = 2.0  # seconds before asking a broker that did not answer again


@dataclass(frozen=True)
class Target:
    """What a panel points at: a queue, a Redis key or channel, a Kafka topic (+ group)."""

    broker: str
    kind: str
    name: str
    group: str = ""


def describe(exc: BaseException) -> str:
    """An exception as one line for the panel (a ValueError is the user's to read)."""
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


class Probe:
    """Reads one target's figures. One thread uses it: its Redis client is its own."""

    def __init__(self, target: Target, settings: Settings, client_name: str) -> None:
        self.target, self.settings, self.client_name = target, settings, client_name
        self._redis: Any = None

    def read(self) -> dict[str, Any]:
        reader = {"rabbitmq": self._rabbitmq, "redis": self._redis_figures,
                  "kafka": self._kafka}[self.target.broker]
        return reader()

    def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            try:
                client.close()
                client.connection_pool.disconnect()
            except Exception:
                pass

    def _rabbitmq(self) -> dict[str, Any]:
        from brokerlab.rabbitmq import queue_counts

        counts = queue_counts(self.target.name, self.settings)
        if counts is None:
            return {"error": f"queue {self.target.name} does not exist"}
        return {"ready": counts.ready, "unacked": counts.unacked,
                "consumers": counts.consumers, "backlog": counts.ready}

    def _redis_figures(self) -> dict[str, Any]:
        import redis

        if self._redis is None:
            self._redis = redis_connect(self.client_name, self.settings, timeout=2.0)
        client, key, group = self._redis, self.target.name, self.target.group
        if self.target.kind == "list":
            length = client.llen(key)
            return {"length": length, "backlog": length}
        if self.target.kind == "pubsub":
            subscribers = dict(client.pubsub_numsub(key)).get(key, 0)
            return {"subscribers": subscribers, "backlog": None}
        try:
            groups = client.xinfo_groups(key)
        except redis.ResponseError:  # no such key: nothing was ever added
            return {"error": f"stream {key} does not exist (yet)"}
        mine = [g for g in groups if g.get("name") == group]
        if not mine:
            return {"error": f"stream {key} has no group {group}"}
        pending, lag = mine[0].get("pending", 0), mine[0].get("lag")
        summary = client.xpending(key, group) if pending else {}
        per_consumer = {c["name"]: c["pending"] for c in summary.get("consumers") or []}
        return {"length": client.xlen(key), "pending": pending, "lag": lag,
                "pending_by_consumer": per_consumer, "backlog": pending + (lag or 0)}

    def _kafka(self) -> dict[str, Any]:
        from brokerlab import kafka

        try:
            lags = kafka.group_lag(self.target.group, self.target.name, self.settings)
        except ValueError:  # describe_topics found no such topic
            lags = {}
        if not lags:
            return {"error": f"topic {self.target.name} does not exist (yet)"}
        partitions = [{"partition": p, "lag": lag} for p, lag in sorted(lags.items())]
        total = sum(lags.values())
        figures: dict[str, Any] = {"partitions": partitions, "lag": total, "backlog": total}
        try:
            view = kafka.group_members(self.target.group, self.settings)
            figures.update(members=view.members, group_state=view.state)
        except Exception:  # e.g. the coordinator is loading: the lag still shows
            pass
        return figures


def read_once(target: Target, settings: Settings, client_name: str) -> dict[str, Any]:
    """Ask the broker now (short-lived connections); never raises."""
    probe = Probe(target, settings, client_name)
    try:
        return probe.read()
    except Exception as exc:
        return {"error": describe(exc)}
    finally:
        probe.close()


def read_loop(w: Worker, current: Callable[[], Target], store: Callable[[Target, dict], None],
              settings: Settings) -> None:
    """The body of a panel's reader thread: read the current target's figures again and
    again, and `store` them (no widget is touched here). A broker that does not answer
    becomes an error figure; the loop asks again after RETRY_AFTER seconds."""
    probe: Probe | None = None
    try:
        while not w.should_stop():
            target = current()
            if probe is None or probe.target != target:
                if probe is not None:
                    probe.close()
                probe = Probe(target, settings, w.name)
            pause = READ_EVERY[target.broker]
            try:
                figures = probe.read()
            except Exception as exc:  # broker gone: say so, retry later
                probe.close()
                pause = RETRY_AFTER
                figures = {"error": f"{NAMES.get(target.broker, '?')} does not answer at "
                                    f"{settings.display_url(target.broker)} "
                                    f"({describe(exc)}); retrying"}
            store(target, figures)
            w.sleep(pause)
    finally:
        if probe is not None:
            probe.close()
