"""The next broker generation, for tests: Debian 13 (trixie)'s RabbitMQ 4.0 and Redis 8.0.

    python tools/next_generation.py build                 (once; cached; needs root)
    python tools/next_generation.py start [redis] [rabbitmq]
    python tools/next_generation.py stop  [redis] [rabbitmq]
    python tools/next_generation.py restart BROKER [--mode graceful|crash]
    python tools/next_generation.py status | versions
    python tools/next_generation.py notebooks             (those `make test-next` runs)
    python tools/next_generation.py ctl -- list_queues name messages_ready   (rabbitmqctl)
    BROKERLAB_NEXT_LATEST=1 python tools/next_generation.py ...  (the newest brokers Debian has)

`make test-next` runs every notebook on Redis or RabbitMQ single nodes against this generation
(`notebooks` lists them: Kafka and module 04's clusters stay native). The native brokers are
Debian 12's (RabbitMQ 3.10, Redis 7.0); learners using docker compose meet newer ones,
so the lessons must hold on both. No Docker here: `build` makes a minimal trixie root
with debootstrap under the state folder (BROKERLAB_STATE_DIR/next/root) and installs the
two packages in it; a marker file records their versions, so later builds are instant.

`start` runs each broker from that root (chroot, inside a private mount namespace, so
no mount outlives the broker) on the ports of REDIS_URL, RABBITMQ_URL and
RABBITMQ_MANAGEMENT_URL, with the course's configuration: the RabbitMQ node environment
of the course's launcher (management plugin, node name, data under the state folder)
plus RabbitMQ 4.3's refusal of transient non-exclusive queues, and Redis as the
launcher runs it (persistence off). Each broker's folder (data, config, log) is
bind-mounted into the root at its own path, so the same paths work inside and out.
Kafka is not part of it (the native Kafka serves both generations): `restart kafka`
hands over to the course's launcher, so one restart command serves every lesson:

    BROKERLAB_RESTART_COMMAND='python tools/next_generation.py restart {broker} --mode {mode}'

Needs root (debootstrap, chroot, mount): run it as root or in CI.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from brokerlab.checks import wait_until
from brokerlab.health import check
from brokerlab.settings import Settings, get_settings

SUITE = "trixie"
# BROKERLAB_NEXT_LATEST=1 (`make test-latest`): the same trixie root with the newest brokers
# Debian has, RabbitMQ from sid and Redis from experimental: the release lines of the compose
# images. Those suites move (and the mirror's copies can be past their Valid-Until date), so
# nothing is pinned and `make test` does not run it; it has its own folder (data included:
# a newer RabbitMQ upgrades its data beyond what 4.0 reads).
LATEST = os.environ.get("BROKERLAB_NEXT_LATEST", "") == "1"
LATEST_FROM = {"rabbitmq-server": "sid", "redis-server": "experimental"}
MIRROR = os.environ.get("BROKERLAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ("rabbitmq-server", "redis-server")
EXPECTED = {"rabbitmq-server": "4.0.", "redis-server": "8.0."}  # upstream version prefixes
BROKERS = ("redis", "rabbitmq")
BUILD_TIMEOUT = 1200.0
READY_TIMEOUT = {"redis": 20.0, "rabbitmq": 90.0}
STOP_TIMEOUT = {"redis": 10.0, "rabbitmq": 60.0}
MARKER = ".brokerlab-next.json"
# RabbitMQ 4.3 refuses transient non-exclusive queues; 4.0 can be told to behave so already.
RABBITMQ_EXTRA_CONF = "deprecated_features.permit.transient_nonexcl_queues = false\n"
# Runs in a fresh mount namespace: mounts vanish with the last process that uses them.
CHROOT_SCRIPT = (
    'set -e; r="$1"; d="$2"; shift 2; '
    'mount -t proc proc "$r/proc"; '
    'if [ -n "$d" ]; then mkdir -p "$r$d"; mount --bind "$d" "$r$d"; fi; '
    # cd into the broker's folder inside the root: its working directory says it is ours.
    'exec chroot "$r" /bin/sh -c \'cd "$0" && exec "$@"\' "${d:-/}" "$@"'
)
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
              "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


class NextError(RuntimeError):
    """Something this tool cannot do; the message says why and what to do."""


# ---------------------------------------------------------------- where things are


def next_dir(settings: Settings) -> Path:
    return settings.state_dir / ("next-latest" if LATEST else "next")


def flavour() -> str:
    """The marker's suite: trixie, or trixie with the latest brokers."""
    return SUITE + ("+" + "+".join(sorted(set(LATEST_FROM.values()))) if LATEST else "")


def root_dir(settings: Settings) -> Path:
    return next_dir(settings) / "root"


@dataclass(frozen=True)
class Instance:
    """One broker of this generation: its folder (data, config, log, pid) and ports."""

    broker: str
    folder: Path
    ports: tuple[int, ...]

    @property
    def pid_file(self) -> Path:
        return self.folder / "broker.pid"

    @property
    def log(self) -> Path:
        return self.folder / "broker.log"


def rabbitmq_ports(settings: Settings) -> tuple[int, int, int]:
    """AMQP, management and Erlang distribution ports (distribution: AMQP + 20000)."""
    amqp = urlsplit(settings.rabbitmq_url).port or 5672
    management = urlsplit(settings.rabbitmq_management_url).port or 15672
    return amqp, management, amqp + 20000


def rabbitmq_node(settings: Settings) -> str:
    """The course's node name on the default port; a distinct one beside it."""
    amqp = rabbitmq_ports(settings)[0]
    return "rabbit@localhost" if amqp == 5672 else f"rabbit-next-{amqp}@localhost"


def instance(broker: str, settings: Settings) -> Instance:
    if broker == "redis":
        ports: tuple[int, ...] = (urlsplit(settings.redis_url).port or 6379,)
    elif broker == "rabbitmq":
        ports = rabbitmq_ports(settings)
    else:
        raise NextError(f"unknown broker {broker!r}; this generation runs {', '.join(BROKERS)}")
    # One folder per port: a throw-away pair beside the course's never shares data with it.
    return Instance(broker, next_dir(settings) / f"{broker}-{ports[0]}", ports)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise NextError(f"{what} needs root (debootstrap, chroot and mount do); "
                        "run it as root, e.g. in CI or with sudo")


def node_env(folder: Path, node: str, ports: tuple[int, ...],
             stream_port: int | None = None) -> dict[str, str]:
    """The course launcher's RabbitMQ node environment and config files (management and
    stream plugins, node name, data folders), plus 4.3's refusal of transient queues."""
    options = {"watermark": "512MB", "schedulers": "+S 2:2 +A 8",
               "extra_conf": RABBITMQ_EXTRA_CONF}
    amqp, management, dist = ports
    # The launcher's own node environment, so both generations run the course's config.
    from brokerlab.backstage.single import rabbitmq_node_env

    return rabbitmq_node_env(folder, node, (amqp, management, dist), stream_port=stream_port,
                             **options)


# ---------------------------------------------------------------- build


def built(settings: Settings) -> dict[str, str] | None:
    """The marker of a finished build: package versions, or None if there is no root yet."""
    try:
        data = json.loads((root_dir(settings) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if sorted(data.get("packages", {})) != sorted(PACKAGES) or data.get("suite") != flavour():
        return None
    return dict(data["packages"])


def _run_logged(argv: list[str], log: Path, timeout: float, what: str) -> None:
    with open(log, "ab") as out:
        out.write(f"\n==== {time.ctime()}: {' '.join(argv)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise NextError(f"{what} took longer than {timeout:.0f} s; see {log}") from exc
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise NextError(f"{what} failed (exit {result.returncode}); last lines of {log}:\n{tail}")


def _in_root(root: Path, command: str) -> list[str]:
    """argv that runs a shell command in `root` with /proc mounted (privately)."""
    env = [f"{k}={v}" for k, v in CHROOT_ENV.items()]
    return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
            CHROOT_SCRIPT, "sh", str(root), "", "/usr/bin/env", "-i", *env,
            "/bin/sh", "-c", command]


def _mounted_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]


def build(settings: Settings | None = None, *, echo: Callable[[str], None] = print) -> float:
    """Debootstrap a minimal trixie root and install the two brokers in it (once)."""
    settings = settings or get_settings()
    versions = built(settings)
    if versions is not None:
        echo(f"next generation already built in {root_dir(settings)}: "
             + ", ".join(f"{p} {v}" for p, v in versions.items()))
        return 0.0
    require_root("building the next generation")
    for tool in ("debootstrap", "unshare", "chroot"):
        if not shutil.which(tool):
            raise NextError(f"{tool} is not installed: apt-get install -y debootstrap util-linux")
    started = time.monotonic()
    folder = next_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    partial, log = folder / "root.partial", folder / "build.log"
    log.write_text(f"building a {SUITE} root for {', '.join(PACKAGES)}\n")
    if _mounted_under(partial):  # never delete through a mount (of /proc, say)
        raise NextError(f"something is mounted under {partial}: {_mounted_under(partial)}")
    shutil.rmtree(partial, ignore_errors=True)
    echo(f"debootstrap {SUITE} into {partial} (log: {log}) ...")
    # In its own mount namespace too: a failed debootstrap leaves no /proc mounted.
    _run_logged(["unshare", "--mount", "--propagation", "private", "--", "debootstrap",
                 "--variant=minbase", SUITE, str(partial), MIRROR],
                log, BUILD_TIMEOUT, "debootstrap")
    # Packages must not start services inside the root at install time.
    policy = partial / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    shutil.copy("/etc/resolv.conf", partial / "etc/resolv.conf")
    (partial / "etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    echo(f"apt-get install {' '.join(PACKAGES)} in the root ...")
    install = f"apt-get -q install -y --no-install-recommends {' '.join(PACKAGES)}"
    if LATEST:
        (partial / "etc/apt/sources.list.d/latest.list").write_text("".join(
            f"deb {MIRROR} {suite} main\n" for suite in sorted(set(LATEST_FROM.values()))))
        install = " && ".join(f"apt-get -q install -y --no-install-recommends -t {suite} {package}"
                              for package, suite in LATEST_FROM.items())
    _run_logged(_in_root(partial, "apt-get -q -o Acquire::Check-Valid-Until=false update && "
                         f"{install} && apt-get clean"),
                log, BUILD_TIMEOUT - (time.monotonic() - started), "apt-get install")
    versions = {}
    for package in PACKAGES:
        out = subprocess.run(["chroot", str(partial), "dpkg-query", "-W", "-f=${Version}",
                              package], capture_output=True, text=True, timeout=30)
        versions[package] = out.stdout.strip()
    erlang = subprocess.run(["chroot", str(partial), "dpkg-query", "-W", "-f=${Version}",
                             "erlang-base"], capture_output=True, text=True, timeout=30)
    marker = {"suite": flavour(), "mirror": MIRROR, "packages": versions,
              "erlang-base": erlang.stdout.strip(), "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (partial / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    root = root_dir(settings)
    if root.exists():
        if _mounted_under(root):
            raise NextError(f"something is mounted under {root}: stop the brokers first")
        shutil.rmtree(root)
    partial.rename(root)
    seconds = time.monotonic() - started
    echo(f"built in {seconds:.0f} s: " + ", ".join(f"{p} {v}" for p, v in versions.items()))
    for package, prefix in ({} if LATEST else EXPECTED).items():
        upstream = versions[package].split(":")[-1]
        if not upstream.startswith(prefix):
            echo(f"warning: {package} {versions[package]} is not {prefix}x: update versions.toml")
    return seconds


# ---------------------------------------------------------------- processes


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def managed_pid(inst: Instance, settings: Settings) -> int | None:
    """The pid we started for this instance, if it still runs: its root is our root and
    its working directory our folder (Redis rewrites its environment, so not that)."""
    try:
        pid = int(inst.pid_file.read_text().strip())
        root = os.readlink(f"/proc/{pid}/root")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError):
        return None
    ours = root == str(root_dir(settings)) and (cwd + "/").startswith(f"{root}{inst.folder}/")
    return pid if ours and _alive(pid) else None


def rss_mb(pid: int) -> float:
    """Resident memory of a broker's whole process group, in MB (the measurements)."""
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return 0.0
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError, ValueError):
            continue
    return total / 1024


def _redis_config(inst: Instance, fresh: bool) -> Path:
    # Same settings as the course's launcher writes for the native Redis (its writer is
    # private there, so they are repeated here): loopback, persistence off, 256 MB.
    conf = inst.folder / "redis.conf"
    data = inst.folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    if fresh or not conf.exists():  # a restart keeps what CONFIG REWRITE wrote (02.04)
        conf.write_text(
            "# Written by tools/next_generation.py; CONFIG REWRITE may change it.\n"
            f"bind 127.0.0.1\nport {inst.ports[0]}\nprotected-mode yes\ndaemonize no\n"
            f'dir "{data}"\nsave ""\nappendonly no\n'
            "maxmemory 256mb\nmaxmemory-policy noeviction\n"
        )
    return conf


def _command(inst: Instance, settings: Settings, fresh: bool) -> tuple[list[str], dict[str, str]]:
    """The broker's argv inside the root and the environment it runs with."""
    if inst.broker == "redis":
        env = dict(os.environ)
        argv = ["/usr/bin/redis-server", str(_redis_config(inst, fresh))]
    else:
        amqp, management, dist = inst.ports
        env = node_env(inst.folder, rabbitmq_node(settings), inst.ports,
                       stream_port=urlsplit(settings.rabbitmq_stream_url).port or 5552)
        argv = ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
    env.update(CHROOT_ENV)
    return argv, env


def _spawn(inst: Instance, settings: Settings, fresh: bool) -> int:
    argv, env = _command(inst, settings, fresh)
    inst.folder.mkdir(parents=True, exist_ok=True)
    with open(inst.log, "ab") as log:
        log.write(f"\n==== next generation: starting {inst.broker} at {time.ctime()} ====\n"
                  .encode())
        log.flush()
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
             CHROOT_SCRIPT, "sh", str(root_dir(settings)), str(inst.folder), *argv],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            cwd=inst.folder, start_new_session=True,  # its own group: stop kills it all
        )
    inst.pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def _log_tail(inst: Instance, lines: int = 20) -> str:
    try:
        return "\n".join(inst.log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {inst.log})"


def start(broker: str, settings: Settings | None = None, *, fresh: bool = True,
          echo: Callable[[str], None] = print) -> float:
    """Start one broker from the root; return the seconds until it answered a round trip."""
    settings = settings or get_settings()
    inst = instance(broker, settings)
    if managed_pid(inst, settings) is not None and check(broker, settings, timeout=3.0).ok:
        echo(f"{broker:9} already running (next generation, {settings.display_url(broker)})")
        return 0.0
    if managed_pid(inst, settings) is not None:  # ours but not answering: replace it
        stop(broker, settings, echo=echo)
    if check(broker, settings, timeout=2.0).ok:
        raise NextError(f"another {broker} answers at {settings.display_url(broker)}; stop it "
                        "first (the native one: python -m brokerlab.backstage stop " + broker + ")")
    require_root(f"starting the next generation's {broker}")
    if built(settings) is None:
        raise NextError(f"no next-generation root in {root_dir(settings)}: run "
                        "`python tools/next_generation.py build` first")
    started = time.monotonic()
    pid = _spawn(inst, settings, fresh)
    last: list[str] = ["no answer yet"]

    def answers() -> bool:
        if not _alive(pid):
            return True  # reported below
        status = check(broker, settings, timeout=3.0, deep=True)
        last[0] = status.detail
        return status.ok

    ok = wait_until(answers, timeout=READY_TIMEOUT[broker], interval=0.3)
    if not ok or not _alive(pid):
        inst.pid_file.unlink(missing_ok=True)
        raise NextError(f"{broker} did not answer within {READY_TIMEOUT[broker]:.0f} s "
                        f"(last: {last[0]}). Last lines of {inst.log}:\n{_log_tail(inst)}")
    seconds = time.monotonic() - started
    echo(f"{broker:9} started at {settings.display_url(broker)} in {seconds:.1f} s "
         f"(pid {pid}, RSS {rss_mb(pid):.0f} MB, log {inst.log})")
    return seconds


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def stop(broker: str, settings: Settings | None = None, *, crash: bool = False,
         echo: Callable[[str], None] = print) -> str:
    """Stop a broker we started: SIGTERM (both shut down cleanly on it) or SIGKILL."""
    settings = settings or get_settings()
    inst = instance(broker, settings)
    pid = managed_pid(inst, settings)
    if pid is None:
        inst.pid_file.unlink(missing_ok=True)
        echo(f"{broker:9} not running (next generation)")
        return "not-running"
    _signal_group(pid, signal.SIGKILL if crash else signal.SIGTERM)
    if not wait_until(lambda: not _alive(pid), timeout=STOP_TIMEOUT[broker], interval=0.2):
        echo(f"{broker:9} did not stop within {STOP_TIMEOUT[broker]:.0f} s: killing it")
    _signal_group(pid, signal.SIGKILL)  # anything left in its group
    wait_until(lambda: not _alive(pid), timeout=5.0, interval=0.1)
    inst.pid_file.unlink(missing_ok=True)
    if broker == "rabbitmq":
        stop_idle_epmd(settings)
    echo(f"{broker:9} {'killed' if crash else 'stopped'} (next generation, pid {pid})")
    return "stopped"


def stop_idle_epmd(settings: Settings) -> None:
    """Stop an Erlang port mapper our node started from the root (when none ran before
    it) once no node is registered with it: nothing of ours may outlive `stop`."""
    root = root_dir(settings)
    for entry in Path("/proc").iterdir():
        try:
            if (not entry.name.isdigit() or (entry / "comm").read_text().strip() != "epmd"
                    or os.readlink(entry / "root") != str(root)):
                continue
        except OSError:
            continue
        names = subprocess.run(["chroot", str(root), "epmd", "-names"], capture_output=True,
                               text=True, timeout=10)
        if names.returncode == 0 and "name " not in names.stdout:
            os.kill(int(entry.name), signal.SIGTERM)


def restart(broker: str, settings: Settings | None = None, *, crash: bool = False,
            echo: Callable[[str], None] = print) -> float:
    """Stop and start keeping data; Kafka is the native launcher's (one command for all)."""
    settings = settings or get_settings()
    if broker == "kafka":
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "brokerlab.backstage", "restart", "kafka",
                        *(["--crash"] if crash else [])], check=True, timeout=180)
        return time.monotonic() - started
    stop(broker, settings, crash=crash, echo=echo)
    return start(broker, settings, fresh=False, echo=echo)


def rabbitmqctl(args: list[str], settings: Settings | None = None,
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the root's rabbitmqctl against our node (e.g. `list_queues name messages_ready`,
    or `eval 'application:get_env(rabbit, consumer_timeout).'`)."""
    settings = settings or get_settings()
    require_root("rabbitmqctl in the next generation's root")
    inst = instance("rabbitmq", settings)
    env = [f"{k}={v}" for k, v in CHROOT_ENV.items()]
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
         CHROOT_SCRIPT, "sh", str(root_dir(settings)), str(inst.folder), "/usr/bin/env", "-i",
         *env, f"RABBITMQ_CONF_ENV_FILE={inst.folder / 'rabbitmq-env.conf'}",
         "/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", rabbitmq_node(settings), *args],
        capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- looking


def versions(settings: Settings | None = None) -> dict[str, str]:
    """The versions the running brokers report (not the packages: what actually answers)."""
    from brokerlab.clients import redis_client
    from brokerlab.rabbitmq import management_get

    settings = settings or get_settings()
    client = redis_client(settings, timeout=5.0)
    try:
        redis_version = str(client.info("server")["redis_version"])
    finally:
        client.close()
    overview = management_get("/api/overview", settings)
    return {"redis": redis_version, "rabbitmq": str(overview["rabbitmq_version"]),
            "erlang": str(overview.get("erlang_version", "?"))}


def report_versions(settings: Settings, echo: Callable[[str], None] = print) -> list[str]:
    """Print what the running brokers report; return how that differs from versions.toml
    [next] (the README's table), so `make test-next` fails on an untested version."""
    import tomllib  # Python 3.11+; only this command needs it

    # The latest brokers need only share the compose images' release line (e.g. 4.3.x).
    section = "compose" if LATEST else "next"
    table = tomllib.loads((Path(__file__).resolve().parent.parent / "versions.toml")
                          .read_text())[section]
    differences = []
    for name, version in versions(settings).items():
        echo(f"{name:9} {version}")
        expected = table.get(name)
        if LATEST and name == "erlang":
            continue  # the images bring their own Erlang
        if version != expected and not (LATEST and version.startswith(f"{expected}.")):
            differences.append(f"{name} {version} (versions.toml [{section}] says {expected})")
    for difference in differences:
        echo(f"not the tested version: {difference}; update versions.toml and README "
             "(python tools/versions_table.py --write) once the lessons pass on it")
    return differences


def status(settings: Settings | None = None, echo: Callable[[str], None] = print) -> int:
    settings = settings or get_settings()
    marker = built(settings)
    echo(f"root      {root_dir(settings)}: " + (
        ", ".join(f"{p} {v}" for p, v in marker.items()) if marker else "not built"))
    running = 0
    for broker in BROKERS:
        inst = instance(broker, settings)
        pid = managed_pid(inst, settings)
        ok = check(broker, settings, timeout=2.0).ok
        if pid is not None:
            running += 1
            state = f"running (pid {pid}, RSS {rss_mb(pid):.0f} MB)" if ok else "starting or hung"
        else:
            state = "not ours, answering" if ok else "stopped"
        echo(f"{broker:9} {state:32} {settings.display_url(broker)}")
    return running


def meets_this_generation(setup: str | None) -> bool:
    """Whether a notebook, by its setup cell's source (None: it has none), talks to the
    brokers this generation replaces: `start_lesson` naming Redis or RabbitMQ, or no
    lesson start at all (00.01 checks every broker). Kafka-only lessons meet the same
    native Kafka as the first run, and module 04's clusters (`start_cluster_lesson`) stay
    native too: running them again tests nothing new, so `make test-next` leaves them out.
    So does a lesson whose start passes `settings=`: it talks to brokers of its own (06.01's
    secured classroom, which the launcher runs from the native packages), not to the
    course's.

    >>> meets_this_generation('run = bl.start_lesson("01.01", "rabbitmq")')
    True
    >>> meets_this_generation('run = bl.start_lesson(\\n    "05.05", "kafka", "redis")')
    True
    >>> meets_this_generation('run = bl.start_lesson("03.01", "kafka")')
    False
    >>> meets_this_generation('run = bl.start_cluster_lesson("04.03", "rabbitmq")')
    False
    >>> meets_this_generation('run = bl.start_lesson("06.01", "redis", settings=classroom)')
    False
    >>> meets_this_generation(None)
    True
    """
    for node in ast.walk(ast.parse(setup or "")):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("start_lesson", "start_cluster_lesson"):
                named = {a.value for a in node.args[1:] if isinstance(a, ast.Constant)}
                own_brokers = any(k.arg == "settings" for k in node.keywords)
                return name == "start_lesson" and bool(named & set(BROKERS)) and not own_brokers
    return True


def setup_source(path: Path) -> str | None:
    """The source of a notebook's code cell tagged `setup` (the course has one each)."""
    import nbformat

    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and "setup" in cell.get("metadata", {}).get("tags", []):
            return str(cell.source)
    return None


def notebooks(root: Path) -> list[Path]:
    """The notebooks and solutions `make test-next` runs (see meets_this_generation)."""
    found = sorted(root.glob("notebooks/*.ipynb")) + sorted(root.glob("solutions/*.ipynb"))
    return [p for p in found if meets_this_generation(setup_source(p))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command",
                        choices=["build", "start", "stop", "restart", "status", "versions",
                                 "ctl", "notebooks"])
    parser.add_argument("brokers", nargs="*",
                        help="redis, rabbitmq (default: both); for ctl: rabbitmqctl's arguments")
    parser.add_argument("--mode", choices=["graceful", "crash"], default="graceful",
                        help="restart/stop: SIGTERM (graceful) or SIGKILL (crash)")
    parser.add_argument("--state-dir", help="instead of BROKERLAB_STATE_DIR")
    args = parser.parse_args(argv)
    if args.state_dir:
        os.environ["BROKERLAB_STATE_DIR"] = args.state_dir
    settings = get_settings()
    brokers = args.brokers or list(BROKERS)
    try:
        if args.command == "build":
            build(settings)
        elif args.command == "status":
            status(settings)
        elif args.command == "ctl":
            result = rabbitmqctl(args.brokers, settings)
            print(result.stdout + result.stderr, end="")
            return result.returncode
        elif args.command == "versions":
            return 1 if report_versions(settings) else 0
        elif args.command == "notebooks":
            root = Path(__file__).resolve().parent.parent
            print(" ".join(str(p.relative_to(root)) for p in notebooks(root)))
        elif args.command == "restart":
            if len(brokers) != 1:
                parser.error("restart takes one broker")
            seconds = restart(brokers[0], settings, crash=args.mode == "crash")
            print(f"{brokers[0]} answers again after {seconds:.1f} s")
        else:
            for broker in brokers:
                if args.command == "start":
                    start(broker, settings)
                else:
                    stop(broker, settings, crash=args.mode == "crash")
    except (NextError, subprocess.SubprocessError, OSError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
