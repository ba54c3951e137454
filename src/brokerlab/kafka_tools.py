"""Kafka helpers for module 03 (Apache Kafka with kafka-python).

The Kafka lessons import this as `kt` next to brokerlab:

    import brokerlab as bl
    from brokerlab import kafka_tools as kt

Each name's docstring says which lesson teaches it. Everything here is built on
brokerlab's clients (bounded timeouts) and workers (a thread each, a stop event, no
prints), so lessons never repeat connection code and never block the kernel:

    partition_for_key, create_topic, topic_partitions      03.01 topics, partitions, keys
    send_all, read_all, Rec                                 03.01 the log, records, offsets
    consumer_worker, FAST_GROUP, group_members,             03.02 consumer groups
    wait_balanced, is_balanced, GroupPanel
    group_lag, end_offsets, begin_offsets, committed        03.02/03.03 offsets and lag
    duplicates_and_losses                                   03.03 commits, crashes, replay
    producer_worker, restart_kafka, set_broker_config       03.04 durability, restart
    cleanup, evict_members                                  every Kafka notebook's last cell

Why a separate module: brokerlab's own Kafka worker (`workers.kafka_consumer_worker`)
keeps only message text; module 03 needs partitions, offsets, commit policies and
deterministic crashes to count duplicates and losses.
"""

from __future__ import annotations

import html
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, MemberToRemove, OffsetSpec
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from brokerlab.checks import wait_until
from brokerlab.cleanup import cleanup as _brokerlab_cleanup
from brokerlab.clients import kafka_admin, kafka_consumer, kafka_producer
from brokerlab.naming import Run
from brokerlab.settings import Settings, get_settings
from brokerlab.workers import Worker, stop_all

__all__ = [
    "COMMIT_POLICIES", "FAST_GROUP", "GroupPanel", "GroupView", "KafkaWorker", "Rec",
    "begin_offsets", "cleanup", "committed", "consumer_worker", "create_topic",
    "duplicates_and_losses", "end_offsets", "evict_members", "group_lag", "group_members",
    "is_balanced", "partition_for_key", "producer_worker", "read_all", "restart_kafka",
    "restore_broker_configs", "send_all", "set_broker_config", "topic_partitions",
    "wait_balanced",
]

FAST_GROUP: dict[str, int] = {
    # A member that dies without saying goodbye is noticed after this long.
    # Kafka's default is 45 s; 6 s is the smallest the broker accepts
    # (group.min.session.timeout.ms).
    "session_timeout_ms": 6000,
    # Members learn that a rebalance started at their next heartbeat (default 3 s).
    "heartbeat_interval_ms": 500,
    # A rebalance waits at most this long for a member busy between polls (default 5 min).
    "max_poll_interval_ms": 10000,
    # An idle poll returns after 0.1 s (default 0.5 s), so stop() and close() are prompt.
    "fetch_max_wait_ms": 100,
}
"""Consumer-group settings for lessons: membership changes take about a second (03.02)."""

COMMIT_POLICIES = ("auto", "after", "before", "none")
"""How consumer_worker commits (03.03): auto (every second, in poll), after processing a
batch (at-least-once), before processing it (at-most-once), or never."""


class Rec(NamedTuple):
    """One Kafka record as the lessons show it (03.01): where it is and what it holds."""

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


def _str(data: str | bytes | None) -> str | None:
    return _text(data) if isinstance(data, bytes) else (None if data is None else str(data))


def _to_rec(record: Any) -> Rec:
    return Rec(record.topic, record.partition, record.offset, _text(record.key),
               _text(record.value), record.timestamp)


# ---------------------------------------------------------------- 03.01 topics and keys


def partition_for_key(key: str | bytes, partitions: int) -> int:
    """The partition the default partitioner picks for `key` (03.01).

    murmur2 of the key bytes, made positive, modulo the partition count: the same
    formula as the Java client, so Python, Java and Go producers agree on where a key
    goes. It changes when the partition count changes, which is why you pick the
    number of partitions of a keyed topic up front.
    """
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    data = key if isinstance(key, bytes) else key.encode("utf-8")
    return (murmur2(data) & 0x7FFFFFFF) % partitions


def create_topic(run: Run, what: str, partitions: int = 1, *,
                 configs: Mapping[str, object] | None = None,
                 timeout: float = 10.0) -> str:
    """Create this run's topic `what` and wait until every partition has a leader (03.01).

    Returns the topic's full name (`run.topic(what)`, so cleanup deletes it). The
    replication factor is the cluster's default. A topic that already exists (a cell
    run twice) is kept as it is.
    """
    name = run.topic(what)
    spec: dict[str, Any] = {"num_partitions": partitions, "replication_factor": -1}
    if configs:
        spec["configs"] = {key: str(value) for key, value in configs.items()}
    admin = kafka_admin(run.settings, timeout=timeout)
    try:
        try:
            admin.create_topics({name: spec}, timeout_ms=int(timeout * 1000))
        except TopicAlreadyExistsError:
            pass
        admin.wait_for_topics([name], timeout_ms=int(timeout * 1000))
    finally:
        admin.close()
    return name


def topic_partitions(topic: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Each partition of `topic`: its leader broker, replicas and in-sync replicas (03.01)."""
    admin = kafka_admin(settings)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return [
        {"partition": p["partition_index"], "leader": p["leader_id"],
         "replicas": list(p["replica_nodes"]), "in_sync": list(p["isr_nodes"])}
        for p in sorted(described["partitions"], key=lambda p: p["partition_index"])
    ]


def _split(item: Any) -> tuple[str | bytes | None, str | bytes, int | None]:
    """An item to send: "value", (key, value) or (key, value, timestamp_ms).

    A value of None with a key is a tombstone: it deletes the key from a compacted topic.
    """
    if isinstance(item, (str, bytes)):
        return None, item, None
    if len(item) == 2:
        return item[0], item[1], None
    return item[0], item[1], item[2]


def send_all(topic: str, items: Iterable[Any], *, settings: Settings | None = None,
             timeout: float = 10.0, **producer_config: Any) -> list[Rec]:
    """Send each item, wait for every acknowledgement, return where each record went (03.01).

    An item is a value, a (key, value) pair, or (key, value, timestamp_ms). Strings
    are sent as UTF-8. Raises if any send fails; the producer is closed at the end.
    """
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
            sent.append(Rec(topic, meta.partition, meta.offset, _str(key), _str(value),
                            meta.timestamp))
        return sent
    finally:
        producer.close(timeout=timeout)


def read_all(topic: str, *, settings: Settings | None = None, timeout: float = 10.0,
             partitions: Iterable[int] | None = None, isolation_level: str = "read_uncommitted"
             ) -> list[Rec]:
    """Every record now in `topic`, read from the beginning, without a group (03.01).

    Reads each partition from its first offset up to the end offset seen when the call
    starts, so it always returns (bounded by `timeout`). Records come sorted by
    partition, then offset: the order of the log. Reading does not remove anything.
    """
    consumer = kafka_consumer(settings=settings, timeout=timeout, enable_auto_commit=False,
                              isolation_level=isolation_level, fetch_max_wait_ms=100)
    try:
        known = wait_until(lambda: consumer.partitions_for_topic(topic), timeout=timeout)
        if not known:
            raise TimeoutError(f"topic {topic!r} not found within {timeout:.0f} s")
        wanted = sorted(known if partitions is None else set(partitions) & set(known))
        tps = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[Rec] = []
        deadline = time.monotonic() + timeout

        def behind(tp: TopicPartition) -> bool:
            position = consumer.position(tp, timeout_ms=1000)  # None: not known yet
            return position is None or position < end[tp]

        while any(behind(tp) for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"read {len(records)} records of {topic!r} but not up to its end "
                    f"within {timeout:.0f} s"
                )
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(_to_rec(r) for r in batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close(autocommit=False)


# ---------------------------------------------------------------- offsets and lag


def _partitions(admin: Any, topic: str) -> list[TopicPartition]:
    (described,) = admin.describe_topics([topic])
    return [TopicPartition(topic, p["partition_index"]) for p in described["partitions"]]


def _retrying(call: Callable[[], Any], timeout: float = 15.0) -> Any:
    """`call()`, retried for up to `timeout` s while Kafka answers "try again".

    Right after a broker restart the group coordinator is still loading its offsets
    (CoordinatorLoadInProgress) and partitions may have no leader yet; both pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def _list_offsets(topic: str, spec: OffsetSpec, settings: Settings | None) -> dict[int, int]:
    admin = kafka_admin(settings)
    try:
        answer = _retrying(lambda: admin.list_partition_offsets(
            {tp: spec for tp in _partitions(admin, topic)}))
    finally:
        admin.close()
    return {tp.partition: found.offset for tp, found in sorted(answer.items())}


def end_offsets(topic: str, settings: Settings | None = None) -> dict[int, int]:
    """Per partition, the offset the next record will get (03.02): the log's end."""
    return _list_offsets(topic, OffsetSpec.LATEST, settings)


def begin_offsets(topic: str, settings: Settings | None = None) -> dict[int, int]:
    """Per partition, the first offset still stored (03.04): retention moves it forward."""
    return _list_offsets(topic, OffsetSpec.EARLIEST, settings)


def committed(group: str, topic: str, settings: Settings | None = None) -> dict[int, int]:
    """Per partition of `topic`, the offset `group` committed: where it resumes (03.03)."""
    admin = kafka_admin(settings)
    try:
        offsets = _retrying(lambda: admin.list_group_offsets({group: None})).get(group, {})
    finally:
        admin.close()
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


def duplicates_and_losses(expected: Iterable[Any], processed: Iterable[Any]) -> tuple[int, int]:
    """(extra deliveries, expected items never processed): 03.03's tally of a crash.

    >>> duplicates_and_losses([1, 2, 3, 4], [1, 2, 2, 3])
    (1, 1)
    """
    seen = Counter(processed)
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    losses = len(set(expected) - set(seen))
    return duplicates, losses


# ---------------------------------------------------------------- 03.02 consumer groups


@dataclass
class GroupView:
    """The broker's view of a consumer group (03.02): state and partitions per member."""

    state: str
    members: dict[str, list[int]]


def group_members(group: str, settings: Settings | None = None, *, admin: Any = None
                  ) -> GroupView:
    """Ask the group coordinator who is in `group` and which partitions each one reads.

    Members are named by their client_id (consumer_worker sets it to the worker's
    name). States: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    """
    own = admin is None
    admin = admin or kafka_admin(settings)
    try:
        found = _retrying(lambda: admin.describe_groups([group]))[group]
    finally:
        if own:
            admin.close()
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


@dataclass(repr=False)
class KafkaWorker(Worker):
    """A brokerlab Worker that also keeps Kafka records, partitions and lag.

    Read these from the notebook; only the worker's thread writes them.
    """

    records: list[Rec] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    rebalances: int = 0
    lag: dict[int, int] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)
    commits: int = 0

    def __repr__(self) -> str:
        state = "running" if self.running else ("crashed" if self.crashed else "stopped")
        error = f" error={type(self.error).__name__}: {self.error}" if self.error else ""
        return (f"<KafkaWorker {self.name} {state} partitions={self.partitions} "
                f"records={len(self.records)} lag={sum(self.lag.values())}{error}>")


class _Tracker(ConsumerRebalanceListener):
    """Keeps a worker's `partitions` in step with the group's assignment."""

    def __init__(self, worker: KafkaWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.worker.partitions = []

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker.partitions = sorted(tp.partition for tp in assigned)
        self.worker.rebalances += 1
        self.worker.note(f"assigned partitions {self.worker.partitions}")


def _abandon(consumer: Any) -> None:
    """Drop a consumer as a killed process would: no commit, and no LeaveGroup.

    The group only notices when the member's session times out. kafka-python has no
    public way to do this (close() always leaves the group), so this reaches into its
    internals; if they move, it falls back to a close without commit.
    """
    try:
        consumer._coordinator._close_heartbeat()
        consumer._client.close()
        consumer._closed = True
    except AttributeError:
        consumer.close(autocommit=False)


def _commit(worker: KafkaWorker, consumer: Any) -> None:
    """Commit the consumed positions; a commit refused because the group is rebalancing
    is not fatal: the partition's next owner re-reads from the last commit."""
    try:
        consumer.commit()
        worker.commits += 1
    except KafkaError as exc:
        worker.note(f"commit failed ({type(exc).__name__}): records may be re-delivered")


def _update_lag(worker: KafkaWorker, consumer: Any) -> None:
    """Lag per assigned partition: the log's end minus the next offset to process.

    Lag is for display only: if the broker cannot answer now (a rebalance, a restart),
    the old value stays.
    """
    try:
        assigned = list(consumer.assignment())
        ends = consumer.end_offsets(assigned, timeout_ms=1000) if assigned else {}
        lag = {}
        for tp in assigned:
            position = worker.next_offsets.get(tp.partition)
            if position is None:
                position = consumer.position(tp, timeout_ms=500)
            if position is not None and tp in ends:
                lag[tp.partition] = max(ends[tp] - position, 0)
    except Exception as exc:  # any failure only delays the display
        worker.note(f"lag unknown for now: {type(exc).__name__}: {exc}")
        return
    worker.lag = lag


def consumer_worker(name: str, topic: str, group: str, *, commit: str = "auto",
                    handler: Callable[[Rec], None] | None = None,
                    crash_after: int | None = None, work_seconds: float = 0.0,
                    settings: Settings | None = None, **config: Any) -> KafkaWorker:
    """A group member in a background thread with bounded polls (03.02, 03.03).

    - `commit`: one of COMMIT_POLICIES. "after" commits once a polled batch is
      processed (a crash re-delivers the unfinished batch: at-least-once); "before"
      commits as soon as a batch arrives (a crash loses its rest: at-most-once).
    - `handler(rec)` runs for each record; `work_seconds` simulates slow processing.
    - `crash_after=n`: after processing n records the worker dies on the spot, like
      `kill()`: no commit, no goodbye to the group (its partitions wait for the
      session timeout).
    - `stop()` finishes the batch in hand, commits per policy and leaves the group at
      once, so the others take over its partitions without waiting.

    Group settings default to FAST_GROUP; the client id is the worker's name, so the
    group coordinator's view (`group_members`) names members like the notebook does.
    """
    if commit not in COMMIT_POLICIES:
        raise ValueError(f"commit must be one of {COMMIT_POLICIES}, got {commit!r}")
    settings = settings or get_settings()
    options: dict[str, Any] = {**FAST_GROUP, "auto_offset_reset": "earliest",
                               "client_id": name, "max_poll_records": 50}
    options.update(config)
    options["enable_auto_commit"] = commit == "auto"
    if commit == "auto":
        options.setdefault("auto_commit_interval_ms", 1000)

    def body(w: KafkaWorker) -> None:
        consumer = kafka_consumer(settings=settings, group_id=group, **options)
        consumer.subscribe([topic], listener=_Tracker(w))
        # Fetch the topic's metadata after subscribing and before the first poll joins
        # the group. Otherwise kafka-python 3.0.12 may join before its metadata snapshot
        # is filled, rebalance again when it is, and, if a poll() times out during that
        # second join, drop the assignment: the member then reads nothing, ever.
        wait_until(lambda: topic in consumer.topics(), timeout=10)
        w.note(f"joining group {group}")
        dead = False
        lag_due = 0.0
        try:
            while not w.should_stop() and not dead:
                batch = consumer.poll(timeout_ms=200)
                records = [r for tp in sorted(batch) for r in batch[tp]]
                if records and commit == "before":
                    _commit(w, consumer)
                for record in records:
                    if w.crashed:
                        dead = True
                        break
                    rec = _to_rec(record)
                    w.counters.received += 1
                    if work_seconds:
                        time.sleep(work_seconds)
                    if handler:
                        handler(rec)
                    w.records.append(rec)
                    w.messages.append(rec.value or "")
                    w.next_offsets[rec.partition] = rec.offset + 1
                    w.counters.acked += 1
                    if crash_after is not None and len(w.records) >= crash_after:
                        w.crashed = dead = True
                        break
                if dead or w.crashed:
                    dead = True
                    break
                if records and commit == "after":
                    _commit(w, consumer)
                if records or time.monotonic() >= lag_due:  # idle: 4 requests a second at most
                    _update_lag(w, consumer)
                    lag_due = time.monotonic() + 0.25
        except BaseException:
            consumer.close(autocommit=False)  # like `with KafkaConsumer(...)` on an error
            raise
        if dead or w.crashed:
            _abandon(consumer)
            w.note(f"crashed after {len(w.records)} records")
        else:
            consumer.close(autocommit=commit == "auto")
            w.note("left the group")
        w.partitions = []

    return _start(KafkaWorker(name, body))


def _start(worker: KafkaWorker) -> KafkaWorker:
    worker.start()
    return worker


def wait_balanced(group: str, workers: Iterable[KafkaWorker], partitions: int, *,
                  timeout: float = 15.0, settings: Settings | None = None) -> dict[str, list[int]]:
    """Wait (bounded) until the group settles; return its assignment by member (03.02).

    Settled means: the coordinator says Stable, its members are exactly the running
    workers, each worker's own view matches the coordinator's, and every partition
    has exactly one reader. Returns the last assignment seen (check it with
    `is_balanced`), also on timeout.
    """
    workers = list(workers)
    admin = kafka_admin(settings)
    last: dict[str, list[int]] = {}

    def settled() -> bool:
        view = group_members(group, admin=admin)
        last.clear()
        last.update(view.members)
        running = {w.name: w for w in workers if w.running}
        return (view.state == "Stable" and set(view.members) == set(running)
                and all(view.members[n] == w.partitions for n, w in running.items())
                and is_balanced(view.members, partitions))

    try:
        wait_until(settled, timeout=timeout, interval=0.1)
    finally:
        admin.close()
    return dict(sorted(last.items()))


class GroupPanel:
    """A small widget over one consumer group (03.02): add or remove consumers and see
    which partitions each one reads and how far behind it is.

    Each button calls a method (`add_consumer`, `remove_consumer`), so a notebook, a
    test or CI does exactly what a click does by calling it. A background worker
    refreshes the table (threads update widget values; they never print).
    """

    def __init__(self, run: Run, topic: str, group: str, partitions: int, *,
                 work_seconds: float = 0.0, **config: Any) -> None:
        import ipywidgets as widgets

        self.run, self.topic, self.group, self.partitions = run, topic, group, partitions
        self.work_seconds = work_seconds
        self.config = config
        self.workers: list[KafkaWorker] = []
        self._made = 0
        self.add_button = widgets.Button(description="Add consumer", icon="plus")
        self.remove_button = widgets.Button(description="Remove consumer", icon="minus")
        self.table = widgets.HTML(value=self.render())
        self.add_button.on_click(lambda _button: self.add_consumer())
        self.remove_button.on_click(lambda _button: self.remove_consumer())
        self.widget = widgets.VBox(
            [widgets.HBox([self.add_button, self.remove_button]), self.table]
        )
        self._view = Worker(f"{group}-panel", self._refresh_loop).start()

    @property
    def consumers(self) -> list[KafkaWorker]:
        return [w for w in self.workers if w.running]

    def add_consumer(self) -> KafkaWorker:
        """Start one more consumer in the group (the "Add consumer" button)."""
        self._made += 1
        worker = consumer_worker(f"{self.group}-c{self._made}", self.topic, self.group,
                                 work_seconds=self.work_seconds, settings=self.run.settings,
                                 **self.config)
        self.workers.append(worker)
        self.refresh()
        return worker

    def remove_consumer(self) -> KafkaWorker | None:
        """Stop the newest consumer; it leaves the group at once (the "Remove" button)."""
        running = self.consumers
        if not running:
            return None
        worker = running[-1]
        worker.stop()
        self.refresh()
        return worker

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"consumer": w.name.removeprefix(self.group + "-"), "partitions": list(w.partitions),
             "records": len(w.records), "lag": sum(w.lag.values())}
            for w in self.consumers
        ]

    def assignment(self) -> dict[str, list[int]]:
        return {w.name: list(w.partitions) for w in self.consumers}

    def render(self) -> str:
        rows = self.rows()
        cells = "".join(
            f"<tr><td>{html.escape(r['consumer'])}</td>"
            f"<td>{', '.join(map(str, r['partitions'])) or '— (idle)'}</td>"
            f"<td style='text-align:right'>{r['records']}</td>"
            f"<td style='text-align:right'>{r['lag']}</td></tr>"
            for r in rows
        ) or "<tr><td colspan=4><i>no consumers: press Add consumer</i></td></tr>"
        return (
            f"<b>group</b> <code>{html.escape(self.group)}</code> · "
            f"<b>topic</b> <code>{html.escape(self.topic)}</code> "
            f"({self.partitions} partitions)"
            "<table><tr><th>consumer</th><th>partitions</th><th>records</th>"
            f"<th>lag</th></tr>{cells}</table>"
        )

    def refresh(self) -> None:
        self.table.value = self.render()

    def _refresh_loop(self, w: Worker) -> None:
        while not w.should_stop():
            self.refresh()
            w._stop.wait(0.3)

    def close(self) -> None:
        """Stop every consumer and the refresher."""
        for worker in self.workers:
            worker.stop()
        self._view.stop()
        self.refresh()


# ---------------------------------------------------------------- 03.04 durability


def producer_worker(name: str, topic: str, items: Iterable[Any], *, rate: float = 0.0,
                    settings: Settings | None = None, **config: Any) -> KafkaWorker:
    """Send `items` from a background thread, `rate` per second (0: flat out) (03.04).

    Items are as for `send_all`; an endless iterator runs until `stop()`. Each
    acknowledged record lands in `records` (with its partition and offset), counted
    in `counters.acked`; failures in `counters.failed` and the log.
    """
    settings = settings or get_settings()

    def body(w: KafkaWorker) -> None:
        producer = kafka_producer(settings, **config)

        def acked(key: Any, value: Any, meta: Any) -> None:
            w.records.append(Rec(topic, meta.partition, meta.offset, _str(key), _str(value),
                                 meta.timestamp))
            w.counters.acked += 1

        def failed(error: Exception) -> None:
            w.counters.failed += 1
            w.note(f"send failed: {type(error).__name__}: {error}")

        try:
            for item in items:
                if w.should_stop():
                    break
                key, value, timestamp = _split(item)
                future = producer.send(topic, key=_bytes(key), value=_bytes(value),
                                       timestamp_ms=timestamp)
                future.add_callback(acked, key, value)
                future.add_errback(failed)
                w.counters.sent += 1
                if rate:
                    w._stop.wait(1.0 / rate)
            producer.flush(timeout=30)
        finally:
            producer.close(timeout=10)
        w.note(f"sent {w.counters.sent}, acknowledged {w.counters.acked}")

    return _start(KafkaWorker(name, body))


def restart_kafka(timeout: float = 120.0, echo: Callable[[str], None] = print) -> float:
    """Restart Kafka keeping its data; return the seconds it took (03.04).

    Where the course's launcher runs Kafka, this restarts it. Otherwise (docker
    compose, a classroom cluster) it says what to run and waits, bounded, for Kafka
    to go away and come back.
    """
    from brokerlab import local
    from brokerlab.health import check

    started = time.monotonic()
    if local.is_managed("kafka"):
        try:
            local.restart("kafka", echo=echo)
            return time.monotonic() - started
        except local.LauncherError as exc:
            echo(f"could not restart Kafka from here: {exc}")
    echo("Kafka was not started by this course's launcher. Restart it yourself, e.g. in a "
         f"terminal:\n    docker compose restart kafka\nWaiting up to {timeout:.0f} s for "
         "Kafka to go away and come back ...")
    half = timeout / 2
    if not wait_until(lambda: not check("kafka", timeout=2.0).ok, timeout=half, interval=0.5):
        raise TimeoutError(f"Kafka kept running for {half:.0f} s: restart it "
                           "(`docker compose restart kafka`), then run this cell again")
    if not wait_until(lambda: check("kafka", timeout=2.0).ok, timeout=half, interval=0.5):
        raise TimeoutError(f"Kafka did not come back within {half:.0f} s: "
                           "`docker compose ps` and `docker compose logs kafka` say why")
    return time.monotonic() - started


_CHANGED_CONFIGS: dict[tuple[str, str], str | None] = {}


def _broker_ids(admin: Any) -> list[str]:
    return [str(b["broker_id"]) for b in admin.describe_cluster()["brokers"]]


def set_broker_config(key: str, value: object, settings: Settings | None = None) -> None:
    """Change a dynamic broker setting on every broker, remembering the old one (03.04).

    `restore_broker_configs()` (called by `cleanup`) puts it back. Lessons use this to
    wake the log cleaner more often, so compaction happens while you watch.
    """
    admin = kafka_admin(settings)
    try:
        for broker in _broker_ids(admin):
            if (broker, key) not in _CHANGED_CONFIGS:
                found = admin.describe_configs(
                    [ConfigResource(ConfigResourceType.BROKER, broker)])
                entry = next(iter(next(iter(found.values())).values()), {}).get(key)
                dynamic = entry and entry.get("config_source") == "DYNAMIC_BROKER_CONFIG"
                previous = entry["value"] if dynamic and entry["value"] != str(value) else None
                _CHANGED_CONFIGS[(broker, key)] = previous
            admin.alter_configs(
                [ConfigResource(ConfigResourceType.BROKER, broker, configs={key: str(value)})])
    finally:
        admin.close()


def restore_broker_configs(settings: Settings | None = None) -> list[str]:
    """Undo every `set_broker_config` of this kernel; return the keys restored."""
    if not _CHANGED_CONFIGS:
        return []
    admin = kafka_admin(settings)
    restored = []
    try:
        for (broker, key), previous in list(_CHANGED_CONFIGS.items()):
            change = ("DELETE", None) if previous is None else previous
            admin.alter_configs(
                [ConfigResource(ConfigResourceType.BROKER, broker, configs={key: change})])
            del _CHANGED_CONFIGS[(broker, key)]
            restored.append(key)
    finally:
        admin.close()
    return restored


# ---------------------------------------------------------------- cleanup


def evict_members(run: Run, settings: Settings | None = None) -> int:
    """Remove members still listed in this run's groups; return how many (cleanup).

    Only a consumer that died without leaving (a crash demo) is still listed once the
    run's workers are stopped; the broker would keep it for its session timeout, and a
    group with members cannot be deleted.
    """
    if not run.groups:
        return 0
    admin = kafka_admin(settings or run.settings)
    removed = 0
    try:
        described = admin.describe_groups(list(run.groups))
        for group, found in described.items():
            members = [MemberToRemove(member_id=m["member_id"],
                                      group_instance_id=m.get("group_instance_id"))
                       for m in found.get("members", [])]
            if members:
                admin.remove_group_members(group, members)
                removed += len(members)
    finally:
        admin.close()
    return removed


def _kafka_leftovers(prefix: str, admin: Any) -> tuple[list[str], list[str]]:
    topics = sorted(t for t in admin.list_topics() if t.startswith(prefix))
    groups = sorted(g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix))
    return topics, groups


def cleanup(run: Run) -> dict[str, int]:
    """The last cell of every Kafka lesson: `bl.cleanup(run)` plus three Kafka steps.

    1. Members that crashed without leaving are removed (`evict_members`), or their
       group could not be deleted for another session timeout.
    2. Broker settings changed with `set_broker_config` are restored.
    3. `bl.cleanup` deletes, then looks again, bounded, and deletes what came back
       (`cleanup.delete_kafka_names`: kafka-python 3.0.12 asks for metadata with
       auto-creation on, whatever `allow_auto_create_topics` says).

    Raises RuntimeError, naming them, if topics or groups of this run remain.
    """
    settings = run.settings
    stop_all(prefix=run.prefix)
    evicted = evict_members(run, settings)
    restore_broker_configs(settings)
    deleted = _brokerlab_cleanup(run, brokers=("kafka",))  # deletes, then re-deletes
    deleted = {k: v for k, v in deleted.items() if k in ("topics", "groups")}
    deleted["evicted members"] = evicted
    admin = kafka_admin(settings)
    try:
        topics, groups = _kafka_leftovers(run.prefix, admin)
    finally:
        admin.close()
    if topics or groups:
        raise RuntimeError(f"could not delete this run's Kafka topics {topics} and groups "
                           f"{groups}; delete them with the admin client or re-run this cell")
    return deleted
