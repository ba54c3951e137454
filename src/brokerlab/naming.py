"""Per-run names, and cleanup of everything a notebook created.

Every queue, exchange, key, stream, topic and consumer group a notebook uses is named
by its `Run`: `<namespace>-<lesson>-<run id>-<what>`, e.g. `course-00-02-3f9a1c-tasks`.
So a re-run never sees the messages of an earlier run, twenty students on one classroom
broker never collide (COURSE_NAMESPACE=alice), and cleanup knows exactly what to delete.

Names use only a-z, 0-9 and '-', legal for all three brokers (Kafka topics allow
[a-zA-Z0-9._-]; '.' and '_' collide in Kafka's metric names, so we avoid both).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from brokerlab.settings import Settings, get_settings

_LESSON_RE = re.compile(r"^\d\d\.\d\d$")
_WHAT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,100}$")


def run_prefix(namespace: str, lesson: str, run_id: str) -> str:
    if not _LESSON_RE.match(lesson):
        raise ValueError(f"lesson must look like '01.02', got {lesson!r}")
    return f"{namespace}-{lesson.replace('.', '-')}-{run_id}"


@dataclass
class Run:
    """One execution of one notebook: its names, and what to delete at the end.

    >>> run = Run("01.02", run_id="abc123")
    >>> run.name("tasks")
    'course-01-02-abc123-tasks'
    """

    lesson: str
    settings: Settings = field(default_factory=get_settings)
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    brokers: tuple[str, ...] = ()  # what start_lesson required: what cleanup touches
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        """Every name of this run starts with this; Redis keys are found by it at cleanup."""
        return run_prefix(self.settings.namespace, self.lesson, self.run_id)

    def name(self, what: str) -> str:
        """A name unique to this run, for anything (a Redis key, a channel, a stream)."""
        if not _WHAT_RE.match(what):
            raise ValueError(
                f"use lower-case letters, digits and '-' in names, got {what!r}"
            )
        return f"{self.prefix}-{what}"

    def queue(self, what: str) -> str:
        """A RabbitMQ queue name, remembered so cleanup deletes the queue."""
        return self._remember(self.queues, what)

    def exchange(self, what: str) -> str:
        """A RabbitMQ exchange name, remembered so cleanup deletes the exchange."""
        return self._remember(self.exchanges, what)

    def topic(self, what: str) -> str:
        """A Kafka topic name, remembered so cleanup deletes the topic."""
        return self._remember(self.topics, what)

    def group(self, what: str) -> str:
        """A Kafka consumer group id (or a Redis stream group), deleted at cleanup."""
        return self._remember(self.groups, what)

    def key(self, what: str) -> str:
        """A Redis key; cleanup deletes every key that starts with this run's prefix."""
        return self.name(what)

    def _remember(self, bucket: list[str], what: str) -> str:
        name = self.name(what)
        if name not in bucket:
            bucket.append(name)
        return name

    def __repr__(self) -> str:
        return f"Run(lesson={self.lesson!r}, prefix={self.prefix!r})"
