"""Counting promises: what a producer was acknowledged against what consumers got.

Every `brokerlab.Worker` carries a `Ledger` (`worker.ledger`) that its thread fills;
cells read it and count with `tally`:

    result = tally(producer.ledger.acknowledged, consumer.ledger.delivered)
    assert not result.lost

What the fault lessons measured is stored and compared by `brokerlab.bench.measurements`.
Plumbing only: no broker is contacted here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from brokerlab.checks import wait_until

__all__ = ["Ledger", "Tally", "longest_gap", "tally", "wait_done"]

@dataclass
class Ledger:
    """What a producer was promised and what consumers got, filled by background threads.

    `acknowledged`: the broker confirmed it (Kafka ack, RabbitMQ publisher confirm, Redis
    reply). `failed`: the client was told it failed (and may retry). `confirmed`: Redis
    only, acknowledged *and* WAIT saw it on a replica. `delivered`: what consumers got,
    duplicates included. Appends from threads are safe (one list operation each).
    """

    acknowledged: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connected_to: list[str] = field(default_factory=list)
    reconnects: int = 0
    done: bool = False

    def ack(self, value: str) -> None:
        self.acknowledged.append(value)
        self.ack_times.append(time.monotonic())

    def fail(self, value: str, error: BaseException | str) -> None:
        self.failed.append(value)
        self.error(error)

    def error(self, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.errors.append(text[:200])

    def error_kinds(self) -> dict[str, int]:
        """How often each kind of error happened, e.g. {'KafkaConnectionError': 3}."""
        return dict(Counter(e.split(":", 1)[0] for e in self.errors))


@dataclass(frozen=True)
class Tally:
    """Acknowledged versus delivered: the count every 04 check cell asserts."""

    acknowledged: int
    delivered: int           # distinct values delivered
    lost: tuple[str, ...]    # acknowledged, never delivered
    duplicates: int          # deliveries beyond the first of a value
    unacknowledged_delivered: int  # delivered although the producer never got an ack

    def __str__(self) -> str:
        return (f"acknowledged {self.acknowledged}, delivered {self.delivered} distinct "
                f"(+{self.duplicates} duplicates), lost {len(self.lost)}"
                + (f", {self.unacknowledged_delivered} delivered without an ack"
                   if self.unacknowledged_delivered else ""))


def tally(acknowledged: Iterable[str], delivered: Iterable[str]) -> Tally:
    """Count what was promised against what arrived. Taught in 04.01, used in 04.02-04.06.

    >>> str(tally(["a", "b", "c"], ["a", "a", "c", "d"]))
    'acknowledged 3, delivered 3 distinct (+1 duplicates), lost 1, 1 delivered without an ack'
    """
    acked = list(dict.fromkeys(acknowledged))
    got = list(delivered)
    seen = set(got)
    counts = Counter(got)
    return Tally(
        acknowledged=len(acked),
        delivered=len(seen),
        lost=tuple(v for v in acked if v not in seen),
        duplicates=sum(c - 1 for c in counts.values()),
        unacknowledged_delivered=len(seen - set(acked)),
    )


def longest_gap(times: Sequence[float]) -> float:
    """The longest pause between consecutive acknowledgements: what the producer saw of
    the outage (0.0 with fewer than two). Taught in 04.01.

    >>> longest_gap([0.0, 0.1, 2.6, 2.7])
    2.5
    """
    ordered = sorted(times)
    return round(max((b - a for a, b in zip(ordered, ordered[1:], strict=False)), default=0.0), 3)


class _Running(Protocol):
    @property
    def running(self) -> bool: ...


def wait_done(*workers: _Running, timeout: float = 60.0) -> bool:
    """Wait, bounded, until each worker's thread has finished (producers that send a
    fixed count end by themselves); True if they all did. Used in 04.01-04.06."""
    return bool(wait_until(lambda: not any(w.running for w in workers), timeout=timeout,
                           interval=0.05))
