"""brokerlab: the helper package every notebook of the course imports.

    import brokerlab as bl
    run = bl.start_lesson("00.02", "rabbitmq", "redis")   # setup cell
    ...
    bl.cleanup(run)                                       # cleanup cell
    run = bl.start_cluster_lesson("04.01", "kafka")       # module 04: the 3-node clusters
    bl.cleanup_cluster(run)


Modules, by what they do (a newcomer finds a thing by its name):
    settings  environment variables → one frozen Settings object
    health    round-trip checks and require()
    clients   connection factories with bounded timeouts
    naming    per-run names (Run) so re-runs and classmates never collide
    checks    bounded waits for check cells
    cleanup   delete what a run created; list leftovers
    workers   one Worker: a thread with a stop event, counters and a log
    ledger    counting promises (acknowledged, lost, duplicated)
    faults    restart a broker, kill and start a cluster node (`from brokerlab import faults`)
    rabbitmq, redis, kafka   each broker's read-only views (counts, lag, members, ...)
    panel     the control panel (model, probes, view)

The course's launcher (brokerlab.backstage, `make brokers`) is apart: lessons never import it.
"""

import time
from collections.abc import Callable

from brokerlab.checks import settle, wait_for, wait_until, wait_until_async
from brokerlab.cleanup import cleanup, leftovers, rabbitmq_queues
from brokerlab.cleanup import cluster_cleanup as cleanup_cluster
from brokerlab.clients import (
    kafka_admin,
    kafka_consumer,
    kafka_producer,
    rabbitmq_channel,
    rabbitmq_connection,
    redis_client,
)
from brokerlab.health import (
    BrokerUnavailable,
    LoginRefused,
    await_background_start,
    background_start,
    check,
    install_failure_handler,
    require,
    status_table,
)
from brokerlab.naming import Run
from brokerlab.settings import Settings, get_settings
from brokerlab.workers import Worker, running_workers, stop_all

__all__ = [
    "BrokerUnavailable", "LoginRefused", "Run", "Settings", "Worker", "check", "cleanup",
    "cleanup_cluster",
    "get_settings", "start_cluster_lesson",
    "kafka_admin", "kafka_consumer", "kafka_producer", "leftovers", "rabbitmq_channel",
    "rabbitmq_connection", "rabbitmq_queues", "redis_client", "require", "running_workers",
    "settle", "start_lesson", "status_table", "stop_all", "wait_for", "wait_until",
    "wait_until_async",
]


def start_lesson(lesson: str, *brokers: str, settings: Settings | None = None) -> Run:
    """The setup cell: check the brokers this notebook needs (fail fast), name this run.

    In a notebook it also makes a broker that dies later fail the next cell that touches
    it with the course's message (which broker, its URL, its log, how to start it).
    """
    settings = settings or get_settings()
    require(*brokers, settings=settings)
    install_failure_handler(settings)
    run = Run(lesson, settings, brokers=tuple(brokers))
    print(f"{lesson}: brokers {', '.join(brokers) or 'none'} reachable; "
          f"this run's names start with {run.prefix!r}")
    return run


def start_cluster_lesson(lesson: str, *brokers: str, settings: Settings | None = None,
                         echo: Callable[[str], None] = print) -> Run:
    """The setup cell of a module 04 notebook: the three-node clusters it names are whole
    (started first where the course's launcher runs the brokers, as on Binder), or it
    fails in seconds with what to run. Its last cell calls `cleanup_cluster(run)`."""
    from brokerlab.clusters import require_cluster

    settings = settings or get_settings()
    started = time.monotonic()
    if background_start(settings) is not None:  # Binder, just launched: let it finish first
        await_background_start(("rabbitmq", "redis", "kafka"), settings, echo=echo)
    require_cluster(*brokers, settings=settings, echo=echo)
    install_failure_handler(settings)
    run = Run(lesson, settings, brokers=tuple(brokers))
    echo(f"{lesson}: {', '.join(b + ' cluster' for b in brokers)} whole "
         f"({time.monotonic() - started:.1f} s); this run's names start with {run.prefix!r}")
    return run
