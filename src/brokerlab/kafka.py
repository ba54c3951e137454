"""Kafka read-only views, written once: what the broker says about topics and groups.

Lessons write kafka-python themselves (`KafkaProducer(acks=...)`, a `KafkaConsumer` poll
loop with `commit()` where it belongs, a `ConsumerRebalanceListener`, transactions).
This module reads (partitions with ISR and ELR, offsets, commits, lag, group members,
topic settings) and carries the plumbing every Kafka notebook shares: filling and
reading a topic once 03.01 has shown how, simulating a silent crash, and what
`bl.cleanup` needs (evicting crashed members, undoing broker settings).
Lessons, the control panel and cleanup call the same functions:

    from brokerlab import kafka as kfk      # kafka-python itself stays `kafka`

Each function's docstring names the lesson that teaches it. Every function takes
`settings` and talks to `settings.kafka_bootstrap_servers`; module 04 passes
`cluster_settings(run.settings)`. Every wait is bounded (brokerlab.checks.wait_until).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, TypeVar

from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, MemberToRemove, OffsetSpec
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from brokerlab.checks import wait_until
from brokerlab.clients import kafka_admin, kafka_consumer, kafka_producer
from brokerlab.naming import Run
from brokerlab.settings import Settings, get_settings

__all__ = [
    "FAST_GROUP", "GroupView", "PartitionState", "Rec", "abandon", "admin_at", "admin_call",
    "begin_offsets", "cluster_settings", "committed", "create_topic",
    "end_offsets", "evict_members", "group_lag",
    "group_members", "is_balanced", "node_name", "partition_for_key", "partition_table",
    "partitions", "read_all", "restore_broker_configs", "send_all", "set_broker_config",
    "topic_config", "topic_config_source", "wait_balanced", "wait_partitions",
]

T = TypeVar("T")
UNKNOWN_TOPIC_OR_PARTITION = 3  # Kafka's error code

FAST_GROUP: dict[str, int] = {
    "session_timeout_ms": 6000,       # a silent member is dropped after 6 s (default 45 s)
    "heartbeat_interval_ms": 500,     # members hear of a rebalance within 0.5 s (default 3 s)
    "max_poll_interval_ms": 10000,    # a rebalance waits 10 s for a busy member (default 5 min)
    "fetch_max_wait_ms": 100,         # an idle poll returns after 0.1 s (default 0.5 s)
}
"""The consumer-group settings 03.02 spells out and explains; later lessons reuse them."""


class Rec(NamedTuple):
    """One Kafka record as the lessons print it (03.01): where it is and what it holds."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: str | None  # None: a tombstone (deletes its key in a compacted topic, 03.04)
    timestamp: int


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def _bytes(text: str | bytes | None) -> bytes | None:
    if text is None or isinstance(text, bytes):
        return text
    return str(text).encode("utf-8")


# ---------------------------------------------------------------- admin calls, bounded


def cluster_settings(settings: Settings | None = None) -> Settings:
    """The settings with Kafka pointed at the three-broker cluster (module 04)."""
    settings = settings or get_settings()
    return replace(settings, kafka_bootstrap_servers=settings.kafka_cluster_bootstrap_servers)


def node_name(broker_id: int) -> str:
    """Kafka broker id 2 → cluster node 'kafka-2' (the name brokerlab.faults uses)."""
    if broker_id not in (1, 2, 3):
        raise ValueError(f"unknown node kafka-{broker_id}: the cluster has brokers 1-3")
    return f"kafka-{broker_id}"


def _reachable(server: str, timeout: float = 0.3) -> bool:
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout):
            return True
    except (OSError, ValueError):
        return False


def admin_at(server: str, settings: Settings | None = None, timeout: float = 4.0) -> Any:
    """An admin client that talks to one broker only (a node check, or a retry elsewhere)."""
    one = replace(settings or get_settings(), kafka_bootstrap_servers=(server,))
    return kafka_admin(one, timeout=timeout)


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or bool(getattr(exc, "retriable", False))


def admin_call(call: Callable[[Any], T], settings: Settings | None = None, *,
               timeout: float = 15.0) -> T:
    """`call(admin)`, retried (bounded) while Kafka says "try again" or a broker is gone
    (a coordinator still loading after a restart, a dead broker after a kill): each try
    goes through each reachable bootstrap server. LookupError and non-retriable Kafka
    errors are raised at once."""
    settings = settings or get_settings()
    outcome: dict[str, Any] = {}

    def attempt() -> bool:
        for server in settings.kafka_bootstrap_servers:
            if len(settings.kafka_bootstrap_servers) > 1 and not _reachable(server):
                continue
            admin = None
            try:
                admin = admin_at(server, settings, min(4.0, timeout))
                outcome["value"] = call(admin)
                return True
            except Exception as exc:
                if isinstance(exc, LookupError) or (
                        isinstance(exc, KafkaError) and not _retriable(exc)):
                    raise
                outcome["error"] = exc
            finally:
                if admin is not None:
                    admin.close()
        return False

    if wait_until(attempt, timeout=timeout, interval=0.3):
        return outcome["value"]
    last = outcome.get("error")
    raise TimeoutError(f"no Kafka broker of {settings.kafka_bootstrap_servers} answered within "
                       f"{timeout:.0f} s" + (f" (last error: {type(last).__name__}: {last})"
                                              if last else ""))


# ---------------------------------------------------------------- 03.01 topics and keys


def partition_for_key(key: str | bytes, partitions: int) -> int:
    """The partition the Java client's and kafka-python's default partitioner picks (03.01).

    murmur2 of the key bytes, made positive, modulo the partition count. Clients built on
    librdkafka (confluent-kafka, Go, .NET) default to a different partitioner
    (`consistent_random`, CRC32), so they put the same key elsewhere unless configured
    with `partitioner=murmur2_random`. The result changes with the partition count.
    """
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    data = key if isinstance(key, bytes) else key.encode("utf-8")
    return (murmur2(data) & 0x7FFFFFFF) % partitions


def create_topic(topic: str, partitions: int = 1, *, replication_factor: int = -1,
                 assignments: Mapping[int, Sequence[int]] | None = None,
                 configs: Mapping[str, object] | None = None,
                 settings: Settings | None = None, timeout: float = 30.0) -> str:
    """Create `topic` (from `run.topic(...)`), wait until each partition has a leader,
    return its name; 03.01 shows `create_topics` itself. replication_factor -1: the
    cluster's default; `assignments` {partition: [broker ids]} pins replicas (04.02)."""
    spec: dict[str, Any] = {"configs": {k: str(v) for k, v in (configs or {}).items()}}
    if assignments:
        spec["assignments"] = {int(p): list(r) for p, r in assignments.items()}
    else:
        spec.update(num_partitions=partitions, replication_factor=replication_factor)

    def create(admin: Any) -> None:
        try:
            admin.create_topics({topic: spec})
        except TopicAlreadyExistsError:
            pass
        admin.wait_for_topics([topic], timeout_ms=15000)

    admin_call(create, settings, timeout=timeout)
    return topic


def _split(item: Any) -> tuple[str | bytes | None, str | bytes | None, int | None]:
    """An item to send: "value", (key, value) or (key, value, timestamp_ms)."""
    if isinstance(item, (str, bytes)):
        return None, item, None
    if len(item) == 2:
        return item[0], item[1], None
    return item[0], item[1], item[2]


def send_all(topic: str, items: Iterable[Any], *, settings: Settings | None = None,
             timeout: float = 10.0, **producer_config: Any) -> list[Rec]:
    """Send each item (a value, (key, value) or (key, value, timestamp_ms); None value: a
    tombstone), wait for every acknowledgement, return where each went. Plumbing once
    03.01 has shown `producer.send(...).get()`; raises if any send fails."""
    producer = kafka_producer(settings, timeout=timeout, **producer_config)
    try:
        pending = []
        for item in items:
            key, value, timestamp = _split(item)
            future = producer.send(topic, key=_bytes(key), value=_bytes(value),
                                   timestamp_ms=timestamp)
            pending.append((key, value, future))
        producer.flush(timeout=timeout)
        sent = []
        for key, value, future in pending:
            meta = future.get(timeout=timeout)
            sent.append(Rec(topic, meta.partition, meta.offset, _text(_bytes(key)),
                            _text(_bytes(value)), meta.timestamp))
        return sent
    finally:
        producer.close(timeout=timeout)


def read_all(topic: str, *, settings: Settings | None = None, timeout: float = 15.0,
             isolation_level: str = "read_uncommitted") -> list[Rec]:
    """Every record now in `topic`, in log order, without a group (bounded). Plumbing
    after 03.01 showed `assign`, `seek_to_beginning` and a bounded poll loop."""
    consumer = kafka_consumer(settings=settings, timeout=timeout, enable_auto_commit=False,
                              isolation_level=isolation_level, fetch_max_wait_ms=100)
    records: list[Rec] = []
    try:
        known = wait_until(lambda: consumer.partitions_for_topic(topic), timeout=timeout)
        if not known:
            raise TimeoutError(f"topic {topic!r} not found within {timeout:.0f} s")
        tps = [TopicPartition(topic, p) for p in sorted(known)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps, timeout_ms=int(timeout * 1000))

        def at_end() -> bool:
            for tp in tps:
                position = consumer.position(tp, timeout_ms=1000)  # None: not known yet
                if position is None or position < end[tp]:
                    for batch in consumer.poll(timeout_ms=200).values():
                        records.extend(Rec(r.topic, r.partition, r.offset, _text(r.key),
                                           _text(r.value), r.timestamp) for r in batch)
                    return False
            return True

        if not wait_until(at_end, timeout=timeout, interval=0):
            raise TimeoutError(f"read {len(records)} records of {topic!r} but not up to its "
                               f"end within {timeout:.0f} s")
    finally:
        consumer.close(autocommit=False)
    return sorted(records, key=lambda r: (r.partition, r.offset))


# ---------------------------------------------------------------- partitions (03.01, 04)


@dataclass(frozen=True)
class PartitionState:
    """One partition as the controller sees it (03.01, 04.01, 04.02).

    `leader` -1 means no leader (the partition is offline). `elr` are the eligible
    leader replicas (KIP-966): out of the ISR but known to hold every committed record.
    Kafka tracks them from 4.0 when enabled, by default on clusters created with 4.1 or
    later (https://kafka.apache.org/41/operations/eligible-leader-replicas).
    """

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    elr: tuple[int, ...] = ()

    @property
    def online(self) -> bool:
        return self.leader >= 0


def partitions(topic: str, settings: Settings | None = None) -> list[PartitionState]:
    """Leader, replicas, ISR and ELR of each partition of `topic` (DescribeTopicPartitions)."""

    def describe(admin: Any) -> list[PartitionState]:
        found = admin.describe_topic_partitions([topic])["topics"][0]
        if found.get("error_code") == UNKNOWN_TOPIC_OR_PARTITION:
            raise LookupError(f"there is no topic {topic!r}")
        if found.get("error_code"):
            raise RuntimeError(f"describe {topic}: error {found['error_code']}")
        return sorted(
            (PartitionState(topic, p["partition_index"], p["leader_id"],
                            tuple(p["replica_nodes"]), tuple(p["isr_nodes"]),
                            tuple(p.get("eligible_leader_replicas") or ()))
             for p in found["partitions"]),
            key=lambda s: s.partition)

    return admin_call(describe, settings)


def partition_table(states: Iterable[PartitionState]) -> str:
    """A small text table of partition states for a lesson's output.

    >>> print(partition_table([PartitionState("t", 0, 1, (1, 2, 3), (1, 2))]))
    partition  leader  replicas  in-sync (ISR)  eligible (ELR)
            0       1  1,2,3     1,2            -
    """
    lines = ["partition  leader  replicas  in-sync (ISR)  eligible (ELR)"]
    for s in states:
        leader = str(s.leader) if s.online else "none"
        lines.append(f"{s.partition:>9}  {leader:>6}  {','.join(map(str, s.replicas)):8}  "
                     f"{','.join(map(str, s.isr)) or '-':13}  "
                     f"{','.join(map(str, s.elr)) or '-'}")
    return "\n".join(lines)


def wait_partitions(topic: str, predicate: Callable[[list[PartitionState]], bool], *,
                    timeout: float = 30.0, settings: Settings | None = None
                    ) -> list[PartitionState]:
    """Ask `partitions(topic)` until `predicate` holds (bounded); return the last states."""
    last: list[PartitionState] = []

    def holds() -> bool:
        try:
            last[:] = partitions(topic, settings)
        except (TimeoutError, RuntimeError, KafkaError):  # the cluster is electing: ask again
            return False
        return predicate(list(last))

    wait_until(holds, timeout=timeout, interval=0.3)
    return list(last)


# ---------------------------------------------------------------- offsets and lag


def _list_offsets(topic: str, spec: OffsetSpec, settings: Settings | None) -> dict[int, int]:
    def ask(admin: Any) -> dict[int, int]:
        (described,) = admin.describe_topics([topic])
        tps = [TopicPartition(topic, p["partition_index"]) for p in described["partitions"]]
        answer = admin.list_partition_offsets({tp: spec for tp in tps})
        return {tp.partition: found.offset for tp, found in sorted(answer.items())}

    return admin_call(ask, settings)


def end_offsets(topic: str, settings: Settings | None = None) -> dict[int, int]:
    """Per partition, the offset the next record will get: the log's end (03.02)."""
    return _list_offsets(topic, OffsetSpec.LATEST, settings)


def begin_offsets(topic: str, settings: Settings | None = None) -> dict[int, int]:
    """Per partition, the first offset still stored: retention moves it forward (03.04)."""
    return _list_offsets(topic, OffsetSpec.EARLIEST, settings)


def committed(group: str, topic: str, settings: Settings | None = None) -> dict[int, int]:
    """Per partition of `topic`, the offset `group` committed: where it resumes (03.03)."""
    offsets = admin_call(lambda admin: admin.list_group_offsets({group: None}),
                         settings).get(group, {})
    return {tp.partition: meta.offset for tp, meta in sorted(offsets.items())
            if tp.topic == topic and meta.offset >= 0}


def group_lag(group: str, topic: str, settings: Settings | None = None) -> dict[int, int]:
    """Per partition: records not yet committed by `group` (end offset − committed) (03.02).

    A partition the group never committed counts from the log's first offset.
    """
    end = end_offsets(topic, settings)
    start = begin_offsets(topic, settings)
    done = committed(group, topic, settings)
    return {p: end[p] - done.get(p, start.get(p, 0)) for p in end}


# ---------------------------------------------------------------- 03.02 consumer groups


@dataclass
class GroupView:
    """The coordinator's view of a consumer group (03.02): state and partitions per member."""

    state: str
    members: dict[str, list[int]]


def group_members(group: str, settings: Settings | None = None, *, admin: Any = None
                  ) -> GroupView:
    """Who is in `group` (by client_id) and which partitions each reads, per the
    coordinator (03.02). Pass `admin` to reuse a client (the panel asks often)."""
    if admin is None:
        found = admin_call(lambda a: a.describe_groups([group]), settings)[group]
    else:
        found = admin.describe_groups([group])[group]
    members: dict[str, list[int]] = {}
    for member in found.get("members", []):
        assignment = member.get("member_assignment") or {}
        owned = assignment.get("assigned_partitions", [])
        parts = sorted(p for a in owned for p in a["partitions"])
        name = member.get("client_id") or member["member_id"]
        while name in members:  # several clients with the same id: keep them apart
            name += "'"
        members[name] = parts
    return GroupView(str(found.get("group_state", "Dead")), members)


def is_balanced(assignment: Mapping[str, Iterable[int]], partitions: int) -> bool:
    """True if every partition 0..partitions-1 is read by exactly one member (03.02)."""
    owned = [p for parts in assignment.values() for p in parts]
    return len(owned) == partitions and set(owned) == set(range(partitions))


def wait_balanced(group: str, partitions: int, *, members: Iterable[str] | None = None,
                  timeout: float = 20.0, settings: Settings | None = None
                  ) -> dict[str, list[int]]:
    """Wait (bounded) until `group` is Stable, each partition read once and, if given,
    its members are `members` (client ids); return the last assignment seen (03.02)."""
    expected = None if members is None else set(members)
    last: dict[str, list[int]] = {}

    def settled() -> bool:
        try:
            view = group_members(group, settings)
        except (TimeoutError, KafkaError):
            return False
        last.clear()
        last.update(view.members)
        return (view.state == "Stable" and is_balanced(view.members, partitions)
                and (expected is None or set(view.members) == expected))

    wait_until(settled, timeout=timeout, interval=0.2)
    return dict(sorted(last.items()))


def abandon(consumer: Any) -> None:
    """Drop a consumer as a killed process would: no commit, and no LeaveGroup (03.02).

    The group notices only when the member's session times out. kafka-python has no
    public way to do this (close() always leaves the group), so this reaches into its
    internals; if they move, it falls back to a close without commit.
    """
    try:
        consumer._coordinator._close_heartbeat()
        consumer._client.close()
        consumer._closed = True
    except AttributeError:
        consumer.close(autocommit=False)


# ---------------------------------------------------------------- topic settings


def _config_entry(topic: str, key: str, settings: Settings | None) -> dict[str, Any]:
    def describe(admin: Any) -> dict[str, Any]:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {key: None})
        found = admin.describe_configs([resource], config_filter="All")
        return dict(found.get("topic", {}).get(topic, {}).get(key) or {})

    return admin_call(describe, settings)


def topic_config(topic: str, key: str, settings: Settings | None = None) -> str | None:
    """One effective setting of `topic`, e.g. 'min.insync.replicas' → '2' (04.01)."""
    return _config_entry(topic, key, settings).get("value")


def topic_config_source(topic: str, key: str, settings: Settings | None = None) -> str | None:
    """Where `topic`'s value of `key` comes from: 'DYNAMIC_TOPIC_CONFIG' when set on the
    topic itself, otherwise a broker-wide default (the 04.01 lab checks it)."""
    return _config_entry(topic, key, settings).get("config_source")


# ---------------------------------------------------------------- undone by bl.cleanup


_CHANGED_CONFIGS: dict[tuple[str, str], str | None] = {}


def set_broker_config(key: str, value: object, settings: Settings | None = None) -> None:
    """Change a dynamic broker setting on every broker, remembering the old one (03.04).

    `restore_broker_configs()` (called by `bl.cleanup`) puts it back. 03.04 uses it to wake
    the log cleaner more often, so compaction happens while you watch.
    """
    def change(admin: Any) -> None:
        for broker in [str(b["broker_id"]) for b in admin.describe_cluster()["brokers"]]:
            if (broker, key) not in _CHANGED_CONFIGS:
                found = admin.describe_configs(
                    [ConfigResource(ConfigResourceType.BROKER, broker)])
                entry = next(iter(next(iter(found.values())).values()), {}).get(key)
                dynamic = entry and entry.get("config_source") == "DYNAMIC_BROKER_CONFIG"
                previous = entry["value"] if dynamic and entry["value"] != str(value) else None
                _CHANGED_CONFIGS[(broker, key)] = previous
            admin.alter_configs(
                [ConfigResource(ConfigResourceType.BROKER, broker, configs={key: str(value)})])

    admin_call(change, settings)


def restore_broker_configs(settings: Settings | None = None) -> list[str]:
    """Undo every `set_broker_config` of this kernel; return the keys restored."""
    restored: list[str] = []

    def restore(admin: Any) -> None:
        for (broker, key), previous in list(_CHANGED_CONFIGS.items()):
            change = ("DELETE", None) if previous is None else previous
            admin.alter_configs(
                [ConfigResource(ConfigResourceType.BROKER, broker, configs={key: change})])
            del _CHANGED_CONFIGS[(broker, key)]
            restored.append(key)

    if _CHANGED_CONFIGS:
        admin_call(restore, settings)
    return restored


def evict_members(run: Run, settings: Settings | None = None) -> int:
    """Remove members still in this run's groups (consumers that died without leaving,
    kept until their session times out, and a group with members cannot be deleted);
    return how many. `bl.cleanup` calls it."""
    if not run.groups:
        return 0

    def evict(admin: Any) -> int:
        removed = 0
        for group, found in admin.describe_groups(list(run.groups)).items():
            gone = [MemberToRemove(member_id=m["member_id"],
                                   group_instance_id=m.get("group_instance_id"))
                    for m in found.get("members", [])]
            if gone:
                admin.remove_group_members(group, gone)
                removed += len(gone)
        return removed

    return admin_call(evict, settings or run.settings)
