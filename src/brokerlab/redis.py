"""Redis read-only views and plumbing for the Redis lessons (02.01-02.04, 04.04-04.05).

The lessons write the Redis commands themselves (LPUSH, BLMOVE, PUBLISH, XREADGROUP,
XACK, XAUTOCLAIM, CONFIG SET, `Sentinel(...).master_for(...)`, WAIT) and run their loops
in `brokerlab.Worker` threads. This module only reads and waits:

    parse_id(...)                   02.03  a stream entry id as a tuple that sorts right
    persistence(...), describe_...  02.04  the running persistence settings, in words
    wait_persistence_idle(...)      02.04  wait (bounded) until no AOF/RDB rewrite runs
    restore_course_defaults(...)    02.04  cleanup: back to `save ""`, `appendonly no`
    HostSentinel                    04.04  redis-py's Sentinel, reachable from this host
    primary_node(), replica_nodes() 04.04  which node is primary, from the Sentinels
    wait_new_primary(...)           04.04  wait (bounded) for the Sentinels' new primary
    node_client(...), replica_in_sync(...), redis_values(...)   04.04, 04.05
    shorten_failover_timeout(...), sentinel_option(...)        04.04, 04.05 setup/cleanup

Inside this module `import redis` is the redis-py library (absolute imports); notebooks
import this module as `from brokerlab import redis as rds`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from brokerlab.checks import wait_until
from brokerlab.settings import Settings, get_settings

__all__ = [
    "COURSE_DEFAULTS", "HostSentinel", "NODE_NAMES", "describe_persistence", "node_address",
    "node_client", "node_name", "parse_id", "persistence", "primary", "primary_node",
    "redis_node", "redis_values",
    "replica_in_sync", "replica_nodes", "restore_course_defaults", "sentinel",
    "sentinel_option", "shorten_failover_timeout", "split_save_rules", "translate_address",
    "wait_new_primary", "wait_persistence_idle",
]

COURSE_DEFAULTS = {"save": "", "appendonly": "no", "appendfsync": "everysec"}
# Node names in the order of Settings.redis_cluster_nodes (primary first, as started).
NODE_NAMES = ("redis-primary", "redis-replica-1", "redis-replica-2")
LESSON_FAILOVER_TIMEOUT = 3000  # ms; a Sentinel waits 2x this between two failovers
LAUNCHER_FAILOVER_TIMEOUT = 10000  # ms, what the course's cluster launcher configures


# ---------------------------------------------------------------- 02.03 stream ids


def parse_id(entry_id: str) -> tuple[int, int]:
    """A stream entry id '<milliseconds>-<sequence>' as a tuple that sorts correctly (02.03).

    >>> parse_id("1700000000000-3") < parse_id("1700000000001-0")
    True
    """
    millis, _, sequence = entry_id.partition("-")
    if not millis.isdigit() or not (sequence or "0").isdigit():
        raise ValueError(f"not a stream entry id: {entry_id!r}")
    return int(millis), int(sequence or 0)


# ---------------------------------------------------------------- 02.04 persistence


def persistence(client: redis.Redis) -> dict[str, str]:
    """The running persistence settings: save, appendonly and appendfsync (02.04)."""
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
    """One sentence for learners from `persistence()`'s dict (02.04)."""
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


def wait_persistence_idle(client: redis.Redis, timeout: float = 15.0) -> None:
    """Wait, bounded, until Redis writes no AOF rewrite and no RDB snapshot (02.04).

    `CONFIG SET appendonly yes` starts a background rewrite that writes the data set as
    the AOF's base; until it is done the AOF is not in use yet, and a crash loses what
    was written meanwhile. Raises TimeoutError if it is still busy after `timeout`.
    """
    def idle() -> bool:
        info = client.info("persistence")
        return not (info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
                    or info.get("rdb_bgsave_in_progress"))

    if not wait_until(idle, timeout):
        raise TimeoutError(f"Redis was still writing its AOF/RDB after {timeout:.0f} s")


def restore_course_defaults(client: redis.Redis, timeout: float = 15.0) -> dict[str, str]:
    """Cleanup: back to the course's `save ""` and `appendonly no`, also in redis.conf.

    Call it after deleting your keys: it also takes a snapshot (SAVE), so a dump.rdb
    written earlier in the lesson cannot bring deleted keys back at the next restart
    (Redis loads dump.rdb at start-up even with `save ""`). Used by 02.04 and its lab.
    """
    wait_persistence_idle(client, timeout)
    for name, value in COURSE_DEFAULTS.items():
        client.config_set(name, value)
    try:
        client.config_rewrite()
    except redis.ResponseError:
        pass  # no config file: a restart brings back the server's own defaults anyway
    client.save()
    return persistence(client)


# ---------------------------------------------------------------- 04.04 Sentinel views


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def node_client(address: str | tuple[str, int], timeout: float = 2.0) -> redis.Redis:
    """A client for one Redis node or Sentinel that fails at once instead of retrying.

    redis-py retries a refused connection three times with growing pauses by default; a
    dead node must cost milliseconds here, and the lessons' loops retry on their own.
    """
    host, port = _host_port(address) if isinstance(address, str) else address
    return redis.Redis(host=host, port=port, socket_timeout=timeout,
                       socket_connect_timeout=timeout, decode_responses=True,
                       retry=Retry(NoBackoff(), 0))


def translate_address(host: str, port: int, *, resolvable: Callable[[str], bool],
                      fallback_host: str) -> tuple[str, int]:
    """A node address a Sentinel reported, made reachable from here.

    Inside docker compose Sentinels report service names (redis-replica-1:6381) that
    the host cannot resolve; the ports are published 1:1 on the Sentinels' host, so we
    keep the port and swap the name.

    >>> translate_address("redis-replica-1", 6381, resolvable=lambda h: False,
    ...                   fallback_host="127.0.0.1")
    ('127.0.0.1', 6381)
    """
    return (host, port) if resolvable(host) else (fallback_host, port)


_RESOLVED: dict[str, bool] = {}


def _resolvable(host: str) -> bool:
    if host not in _RESOLVED:
        try:
            socket.getaddrinfo(host, None)
            _RESOLVED[host] = True
        except OSError:
            _RESOLVED[host] = False
    return _RESOLVED[host]


class HostSentinel(Sentinel):
    """redis-py's `redis.sentinel.Sentinel`, plus one thing: node names the Sentinels
    report that this host cannot resolve (docker compose service names) become the
    Sentinels' own host, same port. Everything else, `master_for` and `slave_for`
    included, is redis-py's (04.04, 04.05)."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        host, port = super().discover_master(service_name)
        return translate_address(host, int(port), resolvable=_resolvable,
                                 fallback_host=self._fallback_host())

    def discover_slaves(self, service_name: str) -> list[tuple[str, int]]:
        return [translate_address(h, int(p), resolvable=_resolvable,
                                  fallback_host=self._fallback_host())
                for h, p in super().discover_slaves(service_name)]

    def _fallback_host(self) -> str:
        kwargs = self.sentinels[0].connection_pool.connection_kwargs
        return str(kwargs.get("host", "127.0.0.1"))


def sentinel(settings: Settings | None = None, **connection_kwargs: Any) -> HostSentinel:
    """A Sentinel over REDIS_SENTINELS with short timeouts and no hidden retries, for
    the views below (the lessons build their own, in full)."""
    settings = settings or get_settings()
    quick = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0,
             "retry": Retry(NoBackoff(), 0)}
    for key, value in quick.items():
        connection_kwargs.setdefault(key, value)
    connection_kwargs.setdefault("decode_responses", True)
    return HostSentinel([_host_port(s) for s in settings.redis_sentinels],
                        sentinel_kwargs=dict(quick), **connection_kwargs)


def primary(settings: Settings | None = None, **kwargs: Any) -> redis.Redis:
    """A client for the current primary, found through the Sentinels (cleanup, 04.06)."""
    settings = settings or get_settings()
    return sentinel(settings, **kwargs).master_for(settings.redis_sentinel_master)


def node_name(port: int, settings: Settings | None = None) -> str:
    """The course's name of the Redis node listening on `port`, e.g. 'redis-replica-1'."""
    settings = settings or get_settings()
    for name, address in zip(NODE_NAMES, settings.redis_cluster_nodes, strict=False):
        if _host_port(address)[1] == int(port):
            return name
    raise ValueError(f"no Redis node of the cluster listens on port {port}")


def primary_node(settings: Settings | None = None) -> str:
    """The node name of the current primary, from the Sentinels (04.04, 04.05).

    Names say where a node started; after a failover a 'replica' node may be primary.
    """
    settings = settings or get_settings()
    _host, port = sentinel(settings).discover_master(settings.redis_sentinel_master)
    return node_name(port, settings)


def replica_nodes(settings: Settings | None = None) -> list[str]:
    """The node names of the current replicas, from the Sentinels (04.04, 04.05)."""
    settings = settings or get_settings()
    return sorted(node_name(p, settings) for _h, p in
                  sentinel(settings).discover_slaves(settings.redis_sentinel_master))


def wait_new_primary(old: str, *, timeout: float = 30.0, settings: Settings | None = None
                     ) -> str | None:
    """Wait, bounded, until the Sentinels name a primary other than `old`; return it
    (None if they did not within `timeout`). 04.04, 04.05."""
    settings = settings or get_settings()

    def new_primary() -> str | None:
        try:
            now = primary_node(settings)
        except (redis.RedisError, ValueError):  # no primary right now: they are electing
            return None
        return now if now != old else None

    return wait_until(new_primary, timeout, interval=0.2) or None


def node_address(name: str, settings: Settings | None = None) -> str:
    """'host:port' of Redis data node `name` (from REDIS_CLUSTER_NODES)."""
    settings = settings or get_settings()
    if name not in NODE_NAMES:
        raise ValueError(f"{name!r} is not a Redis data node; expected one of {NODE_NAMES}")
    return settings.redis_cluster_nodes[NODE_NAMES.index(name)]


def redis_node(name: str, settings: Settings | None = None) -> redis.Redis:
    """A client for one data node by name, e.g. to read what a replica holds (04.04)."""
    return node_client(node_address(name, settings))


def replica_in_sync(name: str, settings: Settings | None = None, timeout: float = 30.0
                    ) -> bool:
    """Wait, bounded, until node `name` is a replica with its link to the primary up
    and no full sync in progress (INFO replication). 04.04, 04.05."""
    address = node_address(name, settings)

    def in_sync() -> bool:
        client = node_client(address, 1.0)
        try:
            info = client.info("replication")
        except redis.RedisError:
            return False
        finally:
            client.close()
        return (info.get("role") == "slave" and info.get("master_link_status") == "up"
                and not info.get("master_sync_in_progress"))

    return bool(wait_until(in_sync, timeout, interval=0.3))


def redis_values(key: str, settings: Settings | None = None, timeout: float = 10.0
                 ) -> list[str]:
    """The list `key` as the current primary holds it, retried (bounded) while the
    Sentinels fail over (04.04, 04.05, 04.06)."""
    settings = settings or get_settings()
    found: list[list[str]] = []
    last: list[BaseException] = []

    def read() -> bool:
        client = primary(settings)
        try:
            found.append(list(client.lrange(key, 0, -1)))
            return True
        except redis.RedisError as exc:
            last[:] = [exc]
            return False
        finally:
            client.close()

    if not wait_until(read, timeout, interval=0.3):
        raise last[0] if last else TimeoutError(f"could not read {key} within {timeout} s")
    return found[-1]


def sentinel_option(option: str, value: int | None = None,
                    settings: Settings | None = None) -> int:
    """Read (and with `value`, set on every Sentinel) an option of our master, with
    SENTINEL MASTER / SENTINEL SET. Returns the value before the change (04.04, 04.05)."""
    settings = settings or get_settings()
    before = None
    for server in settings.redis_sentinels:
        client = node_client(server)
        try:
            current = int(client.sentinel_master(settings.redis_sentinel_master)[option])
            before = current if before is None else before
            if value is not None and current != value:
                client.sentinel_set(settings.redis_sentinel_master, option, value)
        finally:
            client.close()
    if before is None:
        raise redis.ConnectionError("no Sentinel answered")
    return before


def shorten_failover_timeout(settings: Settings | None = None) -> int:
    """Set the Sentinels' failover-timeout to 3 s and return the value to restore.

    A Sentinel will not fail the same master over again within twice failover-timeout,
    and 04.04, 04.05 (and 04.06) fail it over back to back.
    """
    before = sentinel_option("failover-timeout", LESSON_FAILOVER_TIMEOUT, settings)
    return LAUNCHER_FAILOVER_TIMEOUT if before == LESSON_FAILOVER_TIMEOUT else before
