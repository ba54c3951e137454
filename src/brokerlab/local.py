"""Transitional: the launcher is brokerlab.backstage now (`python -m brokerlab.backstage`).

These few names stay until the last lessons and modules that import them switch to
brokerlab.faults (restarts) and the broker views; then this file goes.
"""
# transitional

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from brokerlab.backstage import single
from brokerlab.backstage.__main__ import main
from brokerlab.backstage.process import LauncherError, Place, state_lock
from brokerlab.backstage.single import BROKERS, is_managed, kafka_version
from brokerlab.settings import Settings, get_settings

__all__ = ["BROKERS", "LauncherError", "is_managed", "kafka_version", "main", "paths",
           "rabbitmqctl", "restart"]


def paths(broker: str, settings: Settings | None = None) -> Place:
    return single.place(broker, settings or get_settings())


def rabbitmqctl(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    settings = get_settings()
    return single.rabbitmqctl(single.rabbitmq_node(settings), single.rabbitmq_env(settings),
                              *args, timeout=timeout)


def restart(broker: str, settings: Settings | None = None, *, crash: bool = False,
            echo: Callable[[str], None] = print) -> float:
    settings = settings or get_settings()
    with state_lock(settings.state_dir, echo=echo):
        return single.restart(broker, settings, crash=crash, echo=echo)


if __name__ == "__main__":
    sys.exit(main())
