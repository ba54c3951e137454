"""Redis helpers for module 02: background workers, persistence switches and restarts.

The lessons show the Redis commands themselves (LPUSH, BLMOVE, PUBLISH, XREADGROUP,
XACK, XAUTOCLAIM, CONFIG SET); this module only holds the thread plumbing and the
bounded waits around them, so each notebook cell stays short and never blocks:

    subscriber(...)             02.02  pub/sub subscriber thread, get_message(timeout=...)
    wait_ready(...)             02.02  wait (bounded) until subscriptions are confirmed
    reliable_list_worker(...)   02.01  BLMOVE to a processing list, LREM when done
    stream_worker(...)          02.03  XREADGROUP '>' + XACK; kill() leaves the entry pending
    set_persistence(...)        02.04  CONFIG SET + CONFIG REWRITE (survives a restart)
    restore_course_defaults()   02.04  back to `save ""` and `appendonly no`
    restart_redis(...)          02.04  restart Redis, or ask the learner to; wait bounded

Workers are `brokerlab.workers.Worker`s (a thread each, own connection made inside the
thread, a stop event, counters, never printing), with two extras: `ready`, set once the
worker really listens, and `in_hand`, the message being worked on. `kill()` stops a
worker mid-message without finishing or acknowledging it, as a crashed process would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from brokerlab.checks import wait_until
from brokerlab.clients import redis_client
from brokerlab.settings import Settings, get_settings
from brokerlab.workers import Worker

__all__ = [
    "COURSE_DEFAULTS", "PersistenceError", "RedisWorker", "describe_persistence",
    "parse_id", "persistence", "reliable_list_worker", "restart_command", "restart_redis",
    "restore_course_defaults", "server_run_id", "set_persistence", "split_save_rules",
    "stream_worker", "subscriber", "wait_ready", "wait_restarted",
]

POLL_SECONDS = 0.2  # every blocking call of a worker returns at least this often
COURSE_DEFAULTS = {"save": "", "appendonly": "no", "appendfsync": "everysec"}


@dataclass(repr=False)
class RedisWorker(Worker):
    """A `Worker` that says when it is ready and what it holds.

    `ready` is set once the worker listens (subscriptions confirmed by the server);
    `in_hand` is the message it works on (kept after `kill()`: what the crash lost);
    `records` keeps one dict per message handled, with its channel, pattern or id.
    """

    ready: threading.Event = field(default_factory=threading.Event)
    in_hand: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)


def _start(worker: RedisWorker) -> RedisWorker:
    worker.start()
    return worker


def _work(w: RedisWorker, seconds: float) -> bool:
    """Pretend to work for `seconds`; False if the worker was killed meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if w.crashed:
            return False
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return not w.crashed


# ---------------------------------------------------------------- 02.02 pub/sub


def subscriber(name: str, channels: Iterable[str] = (), patterns: Iterable[str] = (), *,
               settings: Settings | None = None) -> RedisWorker:
    """Subscribe to `channels` (SUBSCRIBE) and `patterns` (PSUBSCRIBE) in a thread.

    Reads with `get_message(timeout=0.2)`, never `listen()`, so `stop()` is prompt.
    Each message's data goes to `.messages`, the full message to `.records`. `ready` is
    set when Redis has confirmed every subscription: publish after `wait_ready(...)`.
    `stop()` unsubscribes (keeping what was already sent to it) and closes the
    connection: the subscriber is offline and misses what is published until `start()`
    subscribes it again; `kill()` just drops the connection. Taught in 02.02.
    """
    channels, patterns = list(dict.fromkeys(channels)), list(dict.fromkeys(patterns))
    if not channels and not patterns:
        raise ValueError("give at least one channel or pattern to subscribe to")
    settings = settings or get_settings()
    expected = len(channels) + len(patterns)

    def receive(w: RedisWorker, message: dict[str, Any]) -> None:
        w.counters.received += 1
        w.records.append({"channel": message["channel"], "pattern": message["pattern"],
                          "data": message["data"]})
        w.messages.append(message["data"])
        w.counters.acked += 1

    def body(w: RedisWorker) -> None:
        w.ready.clear()
        client = redis_client(settings, timeout=5.0)
        pubsub = client.pubsub()
        try:
            if channels:
                pubsub.subscribe(*channels)
            if patterns:
                pubsub.psubscribe(*patterns)
            confirmed, deadline = 0, time.monotonic() + 5.0
            while confirmed < expected and not w.should_stop():
                if time.monotonic() > deadline:
                    raise TimeoutError("Redis did not confirm the subscriptions within 5 s")
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is None:
                    continue
                if message["type"] in ("subscribe", "psubscribe"):
                    confirmed += 1
                elif message["type"] in ("message", "pmessage"):
                    receive(w, message)
            w.ready.set()
            w.note(f"subscribed to {', '.join(channels + patterns)}")
            while not w.should_stop():
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is not None and message["type"] in ("message", "pmessage"):
                    receive(w, message)
            if not w.crashed:
                # Graceful: unsubscribe, and keep what Redis sent before it processed that
                # (a killed subscriber loses whatever sat unread in its socket).
                if channels:
                    pubsub.unsubscribe()
                if patterns:
                    pubsub.punsubscribe()
                left, deadline = expected, time.monotonic() + 1.0
                while left and time.monotonic() < deadline:
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] in ("unsubscribe", "punsubscribe"):
                        left -= 1
                    elif message["type"] in ("message", "pmessage"):
                        receive(w, message)
        finally:
            w.ready.clear()
            pubsub.close()
            client.close()
            w.note("offline")

    return _start(RedisWorker(name, body))


def wait_ready(*workers: RedisWorker, timeout: float = 5.0) -> None:
    """Wait (bounded) until every worker is ready; raise TimeoutError saying which is not."""
    wait_until(lambda: all(w.ready.is_set() or w.error for w in workers), timeout)
    late = [w for w in workers if not w.ready.is_set()]
    if late:
        why = "; ".join(f"{w.name}: {w.error or 'not ready yet'}" for w in late)
        raise TimeoutError(f"worker(s) not ready within {timeout:.0f} s ({why}) — is Redis up?")


# ---------------------------------------------------------------- 02.01 reliable list queue


def reliable_list_worker(name: str, queue: str, processing: str,
                         handler: Callable[[str], None] | None = None, *,
                         work_seconds: float = 0.0,
                         settings: Settings | None = None) -> RedisWorker:
    """The reliable-queue pattern: BLMOVE `queue` → `processing`, work, LREM when done.

    Items are LPUSHed to `queue` and taken from its right end (first in, first out).
    An item stays in `processing` until its work is done, so `kill()` mid-message
    leaves it there for a reaper to move back. Taught in 02.01.
    """
    settings = settings or get_settings()

    def body(w: RedisWorker) -> None:
        client = redis_client(settings, timeout=5.0)
        try:
            w.ready.set()
            while not w.should_stop():
                item = client.blmove(queue, processing, POLL_SECONDS, "RIGHT", "LEFT")
                if item is None:
                    continue
                w.in_hand = item
                w.counters.received += 1
                if not _work(w, work_seconds):
                    w.note(f"killed while working on {item!r}")
                    return  # crashed: the item stays in the processing list
                if handler:
                    handler(item)
                w.messages.append(item)
                client.lrem(processing, 1, item)  # the "ack": done, forget it
                w.counters.acked += 1
                w.in_hand = None
        finally:
            w.ready.clear()
            client.close()

    return _start(RedisWorker(name, body))


# ---------------------------------------------------------------- 02.03 streams


def stream_worker(name: str, stream: str, group: str, consumer: str,
                  handler: Callable[[str, dict[str, str]], None] | None = None, *,
                  work_seconds: float = 0.0,
                  settings: Settings | None = None) -> RedisWorker:
    """A consumer of `group`: XREADGROUP '>' one entry at a time, work, then XACK.

    The group must exist (XGROUP CREATE). `.messages` holds the ids of the entries done
    (acknowledged), `.records` their fields. `kill()` mid-message leaves the entry in
    the group's pending list under `consumer`, for XPENDING and XAUTOCLAIM to find.
    Taught in 02.03.
    """
    settings = settings or get_settings()
    block_ms = int(POLL_SECONDS * 1000)

    def body(w: RedisWorker) -> None:
        client = redis_client(settings, timeout=5.0)
        try:
            w.ready.set()
            while not w.should_stop():
                reply = client.xreadgroup(group, consumer, {stream: ">"}, count=1,
                                          block=block_ms)
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        w.in_hand = entry_id
                        w.counters.received += 1
                        if not _work(w, work_seconds):
                            w.note(f"killed while working on {entry_id}")
                            return  # crashed: no XACK, the entry stays pending
                        if handler:
                            handler(entry_id, fields)
                        client.xack(stream, group, entry_id)
                        w.messages.append(entry_id)
                        w.records.append({"id": entry_id, **fields})
                        w.counters.acked += 1
                        w.in_hand = None
        finally:
            w.ready.clear()
            client.close()

    return _start(RedisWorker(name, body))


def parse_id(entry_id: str) -> tuple[int, int]:
    """A stream entry id '<milliseconds>-<sequence>' as a tuple that sorts correctly.

    >>> parse_id("1700000000000-3") < parse_id("1700000000001-0")
    True
    """
    millis, _, sequence = entry_id.partition("-")
    if not millis.isdigit() or not (sequence or "0").isdigit():
        raise ValueError(f"not a stream entry id: {entry_id!r}")
    return int(millis), int(sequence or 0)


# ---------------------------------------------------------------- 02.04 persistence


class PersistenceError(RuntimeError):
    """Persistence settings could not be made to last; the message says what to do."""


def persistence(client: redis.Redis) -> dict[str, str]:
    """The current persistence settings: save, appendonly and appendfsync."""
    return {name: str(client.config_get(name).get(name, "")) for name in COURSE_DEFAULTS}


def split_save_rules(save: str) -> list[tuple[int, int]]:
    """`save` as (seconds, changes) pairs: '3600 1 300 100' → [(3600, 1), (300, 100)].

    >>> split_save_rules("")
    []
    """
    numbers = save.replace('"', "").split()
    if len(numbers) % 2 or not all(n.isdigit() for n in numbers):
        raise ValueError(f"save rules come in pairs of whole numbers, got {save!r}")
    return [(int(numbers[i]), int(numbers[i + 1])) for i in range(0, len(numbers), 2)]


def describe_persistence(settings: dict[str, str]) -> str:
    """One sentence for learners from `persistence()`'s dict. Taught in 02.04."""
    rules = split_save_rules(settings.get("save", ""))
    if rules:
        snapshot = "RDB snapshots " + ", ".join(
            f"after {seconds} s if {changes}+ change{'s' if changes != 1 else ''}"
            for seconds, changes in rules
        )
    else:
        snapshot = "no automatic RDB snapshots"
    if settings.get("appendonly") == "yes":
        aof = f"AOF on (appendfsync {settings.get('appendfsync', 'everysec')})"
    else:
        aof = "AOF off"
    return f"{snapshot}; {aof}"


def _persistence_info(client: redis.Redis) -> dict[str, Any]:
    return client.info("persistence")


def _wait_no_rewrite(client: redis.Redis, timeout: float) -> None:
    def idle() -> bool:
        info = _persistence_info(client)
        return not (info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
                    or info.get("rdb_bgsave_in_progress"))

    if not wait_until(idle, timeout):
        raise PersistenceError(f"Redis was still writing its AOF/RDB after {timeout:.0f} s")


def set_persistence(client: redis.Redis, *, save: str | None = None,
                    appendonly: str | None = None, appendfsync: str | None = None,
                    timeout: float = 15.0) -> dict[str, str]:
    """CONFIG SET the given settings, then CONFIG REWRITE so they survive a restart.

    Turning AOF on starts a background rewrite (the first AOF is a copy of the data
    set); this waits, bounded, until it is done, so what is written next is durable.
    Raises PersistenceError if Redis has no writable config file (CONFIG REWRITE
    fails): settings made now would be gone after a restart. Taught in 02.04.
    """
    changes = {"save": save, "appendonly": appendonly, "appendfsync": appendfsync}
    for name, value in changes.items():
        if value is not None:
            client.config_set(name, value)
    try:
        client.config_rewrite()
    except redis.ResponseError as exc:
        raise PersistenceError(
            f"CONFIG REWRITE failed ({exc}), so these settings would be lost when Redis "
            "restarts. Start Redis with a writable config file: the course's launcher "
            "(`make brokers`) and docker-compose.yml do."
        ) from exc
    if appendonly == "yes":
        _wait_no_rewrite(client, timeout)
    return persistence(client)


def restore_course_defaults(client: redis.Redis, timeout: float = 15.0) -> dict[str, str]:
    """Back to the course's defaults (`save ""`, `appendonly no`), also in redis.conf.

    Call it after deleting your keys: it also takes a snapshot (SAVE), so a dump.rdb
    written earlier in the lesson cannot bring deleted keys back at the next restart
    (Redis loads dump.rdb at start-up even with `save ""`). Taught in 02.04.
    """
    _wait_no_rewrite(client, timeout)
    for name, value in COURSE_DEFAULTS.items():
        client.config_set(name, value)
    try:
        client.config_rewrite()
    except redis.ResponseError:
        pass  # no config file: a restart brings back the server's own defaults anyway
    client.save()
    return persistence(client)


# ---------------------------------------------------------------- 02.04 restarts


def server_run_id(client: redis.Redis) -> str:
    """Redis's run_id: a random id that changes every time the server starts."""
    return str(client.info("server")["run_id"])


def restart_command(crash: bool = False, service: str = "redis") -> str:
    """What to run by hand where the course cannot restart Redis (Docker Compose).

    >>> restart_command()
    'docker compose restart redis'
    """
    if crash:
        return f"docker compose kill {service} && docker compose start {service}"
    return f"docker compose restart {service}"


def wait_restarted(old_run_id: str, timeout: float = 120.0,
                   settings: Settings | None = None) -> float:
    """Wait (bounded) until Redis answers with a run_id other than `old_run_id`.

    Returns the seconds waited; raises TimeoutError if Redis did not restart in time.
    """
    settings = settings or get_settings()
    started = time.monotonic()

    def new_run_id() -> bool:
        client = redis_client(settings, timeout=2.0)
        try:
            return server_run_id(client) != old_run_id
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False  # down, or still loading its data
        finally:
            client.close()

    if not wait_until(new_run_id, timeout, interval=0.5):
        raise TimeoutError(
            f"Redis did not restart within {timeout:.0f} s (same run_id, or not answering). "
            "Restart it, then run this cell again."
        )
    return time.monotonic() - started


def restart_redis(*, crash: bool = False, timeout: float = 120.0,
                  settings: Settings | None = None,
                  echo: Callable[[str], None] = print) -> float:
    """Restart Redis (gracefully, or `crash=True`: SIGKILL) and wait until it is back.

    Where the course's launcher started Redis it restarts it itself; otherwise (Docker
    Compose, a cloud Redis) it prints the command to run in a terminal and waits,
    bounded by `timeout`, for Redis to go and come back. Returns the seconds it took.
    Restarting disconnects every client: never on a shared classroom Redis. Taught in 02.04.
    """
    from brokerlab import local

    settings = settings or get_settings()
    client = redis_client(settings, timeout=3.0)
    try:
        old = server_run_id(client)
    finally:
        client.close()
    started = time.monotonic()
    if local.is_managed("redis", settings):
        local.restart("redis", settings, crash=crash, echo=echo)
        wait_restarted(old, 15.0, settings)
    else:
        echo(f"Redis was not started by the course's launcher, so restart it yourself: "
             f"run `{restart_command(crash)}` in a terminal now. "
             f"Waiting up to {timeout:.0f} s for Redis to go and come back ...")
        wait_restarted(old, timeout, settings)
        echo("Redis is back.")
    return time.monotonic() - started
