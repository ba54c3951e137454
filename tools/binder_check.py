"""Simulate mybinder.org on this machine and run the whole course inside its limits.

Binder gives a non-root user (uid 1000), 2 GiB of memory and one CPU, builds the image
with repo2docker (binder/requirements.txt, then binder/postBuild as the user) and runs
binder/start at every launch, which must hand over to JupyterLab within seconds. This
script reproduces that as closely as a machine without Docker can:

1. a copy of the repository in a fresh HOME owned by uid 1000;
2. a memory cgroup of 2 GiB and a CPU cgroup of one CPU (cgroup v1 or v2), which every
   step below runs in;
3. a virtual environment with binder/requirements.txt (plus the test harness: nbval),
   then binder/postBuild, both as uid 1000;
4. `binder/start jupyter lab ...` as uid 1000: JupyterLab must answer within 30 s;
5. three kernels opened through JupyterLab's API (a learner with three notebooks open),
   then every notebook and solution with nbval, inside the same limits;
6. the cgroup's peak memory, compared with 2 GiB; a JSON report in artifacts/.

Run as root (it creates cgroups and switches user). System packages (binder/apt.txt) must be
installed already, as repo2docker installs them as root before anything else.

    sudo python tools/binder_check.py                 # the whole course
    sudo python tools/binder_check.py --only 00.01    # notebooks whose name contains 00.01
    sudo python tools/binder_check.py --folders notebooks   # the lessons only (make test)

The brokers it starts listen on the course's usual ports: stop the native ones first
(`make stop`); `make binder-check` does.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CGROUP_NAME = "brokerlab-binder"
MEMORY_LIMIT = 2 * 1024**3
MEMORY_BUDGET = int(1.8 * 1024**3)  # what the course may use of Binder's 2 GiB
LAUNCH_LIMIT = 30.0                 # seconds until JupyterLab answers (Binder's spawn timeout)
HARNESS_TOOLS = ("nbval", "nbclient", "nbformat", "pytest", "pytest-timeout")


def harness_pins() -> list[str]:
    """The test harness (not part of Binder's image), pinned as in requirements-dev.txt."""
    pins = []
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        name = line.split("==")[0].strip()
        if "==" in line and name in HARNESS_TOOLS:
            pins.append(line.strip())
    return pins


class Cgroup:
    """A memory cgroup of `limit` bytes and a CPU cgroup of one CPU (v1 or v2)."""

    def __init__(self, name: str, limit: int) -> None:
        base = Path("/sys/fs/cgroup")
        self.v2 = (base / "cgroup.controllers").exists()
        if self.v2:
            parent = base
            (parent / "cgroup.subtree_control").write_text("+memory +cpu")
            self.dirs = [parent / name]
        else:
            self.dirs = [base / "memory" / name, base / "cpu" / name]
        for d in self.dirs:
            self._remove(d)
            d.mkdir()
        if self.v2:
            (self.dirs[0] / "memory.max").write_text(str(limit))
            (self.dirs[0] / "memory.swap.max").write_text("0")
            (self.dirs[0] / "cpu.max").write_text("100000 100000")
        else:
            mem, cpu = self.dirs
            (mem / "memory.limit_in_bytes").write_text(str(limit))
            swap = mem / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limit))
            (cpu / "cpu.cfs_period_us").write_text("100000")
            (cpu / "cpu.cfs_quota_us").write_text("100000")

    def join(self) -> None:
        """Move the calling process into the cgroups (used in a child before exec)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def peak(self) -> int:
        mem = self.dirs[0]
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        path = mem / name
        return int(path.read_text()) if path.exists() else -1

    def current(self) -> int:
        mem = self.dirs[0]
        return int((mem / ("memory.current" if self.v2 else "memory.usage_in_bytes")).read_text())

    def resident(self) -> int:
        """Anonymous plus shared memory now: what cannot be reclaimed (page cache can)."""
        fields = dict(line.split() for line in
                      (self.dirs[0] / "memory.stat").read_text().splitlines())
        keys = ("anon", "shmem") if self.v2 else ("total_rss", "total_shmem")
        return sum(int(fields.get(k, 0)) for k in keys)

    def reset_peak(self) -> None:
        path = self.dirs[0] / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes")
        try:
            path.write_text("0")
        except OSError:  # cgroup v2 before Linux 6.12 cannot reset its peak
            pass

    def oom_kills(self) -> int:
        path = self.dirs[0] / ("memory.events" if self.v2 else "memory.oom_control")
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def pids(self) -> list[int]:
        return [int(p) for p in (self.dirs[0] / "cgroup.procs").read_text().split()]

    def close(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for d in self.dirs:
            self._remove(d)

    @staticmethod
    def _remove(d: Path) -> None:
        if not d.exists():
            return
        for _ in range(50):
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), 9)
                    except ProcessLookupError:
                        pass
                d.rmdir()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"cannot remove cgroup {d}: processes remain in it")


class Binder:
    """A Binder-like user session: uid 1000, its own HOME, everything inside the cgroup."""

    def __init__(self, workdir: Path, cgroup: Cgroup) -> None:
        self.user = pwd.getpwuid(1000) if _uid_exists(1000) else None
        self.uid = 1000
        self.gid = self.user.pw_gid if self.user else 1000
        self.home = workdir / "home"
        self.repo = self.home / "repo"
        self.venv = self.home / "venv"
        self.log_dir = workdir / "logs"
        self.cgroup = cgroup

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if k.startswith(("RABBITMQ_", "REDIS_", "KAFKA_", "BROKERLAB_", "COURSE_"))
                and k != "BROKERLAB_STATE_DIR"}
        return {
            **keep,
            "HOME": str(self.home), "USER": "jovyan", "LOGNAME": "jovyan", "SHELL": "/bin/bash",
            "PATH": f"{self.venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "BINDER_SIMULATION": "1",
            "PIP_CACHE_DIR": str(self.home.parent / "pip-cache"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }

    def _preexec(self) -> None:
        self.cgroup.join()
        os.setsid()
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)

    def popen(self, argv: list[str], log: str, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(self.log_dir / log, "ab")  # noqa: SIM115 - handed to the child
        return subprocess.Popen(argv, cwd=cwd or self.repo, env=self.env(), stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=self._preexec)

    def run(self, argv: list[str], log: str, timeout: float) -> None:
        proc = self.popen(argv, log)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            raise SystemExit(f"{' '.join(argv)} took over {timeout:.0f} s; "
                             f"see {self.log_dir / log}") from None
        if rc != 0:
            tail = (self.log_dir / log).read_text(errors="replace").splitlines()[-25:]
            raise SystemExit(f"{' '.join(argv)} failed with exit code {rc}; "
                             f"last lines of {self.log_dir / log}:\n" + "\n".join(tail))


def _uid_exists(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def copy_repo(dest: Path) -> None:
    """The files git knows (tracked and untracked, not ignored): what a clone would hold."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    subprocess.run(["chown", "-R", f"{uid}:{gid}", str(path)], check=True)


def wait_http(url: str, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.25)
    return None


def open_kernels(base: str, token: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        request = urllib.request.Request(f"{base}/api/kernels?token={token}", data=b"{}",
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            ids.append(json.load(reply)["id"])
    return ids


class PeakSampler(threading.Thread):
    """Samples the cgroup's resident memory twice a second and keeps the highest."""

    def __init__(self, cgroup: Cgroup) -> None:
        super().__init__(daemon=True)
        self.cgroup, self.peak, self.done = cgroup, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            try:
                self.peak = max(self.peak, self.cgroup.resident())
            except OSError:
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/brokerlab-binder"))
    parser.add_argument("--only", default="", help="run only notebooks whose name contains this")
    parser.add_argument("--folders", nargs="+", default=["notebooks", "solutions"],
                        help="which folders' notebooks to run (default: lessons and solutions)")
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--cell-timeout", type=int, default=240)
    parser.add_argument("--python", default="/usr/bin/python3",
                        help="a Python 3.11+ that uid 1000 may run (Binder's is its own)")
    parser.add_argument("--build-only", action="store_true",
                        help="stop after the environment and postBuild (no brokers started)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("binder_check needs root (cgroups, switching to uid 1000): sudo make binder-check")
        return 2

    report: dict[str, object] = {"memory_limit_mib": MEMORY_LIMIT // 2**20}
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    (args.workdir / "logs").mkdir(parents=True)
    (args.workdir / "pip-cache").mkdir()
    cgroup = Cgroup(CGROUP_NAME, MEMORY_LIMIT)
    binder = Binder(args.workdir, cgroup)
    lab: subprocess.Popen[bytes] | None = None
    try:
        copy_repo(binder.repo)
        chown_tree(args.workdir, binder.uid, binder.gid)
        print(f"binder-check: uid {binder.uid}, HOME {binder.home}, cgroup "
              f"{'v2' if cgroup.v2 else 'v1'} with 2 GiB and 1 CPU; logs in {binder.log_dir}")

        started = time.monotonic()
        binder.run([args.python, "-m", "venv", str(binder.venv)], "build.log", 120)
        binder.run([f"{binder.venv}/bin/pip", "install", "-q", "-r", "binder/requirements.txt",
                    *harness_pins()], "build.log", 900)
        binder.run(["bash", "binder/postBuild"], "build.log", 900)
        report["build_seconds"] = round(time.monotonic() - started, 1)
        print(f"binder-check: environment and postBuild in {report['build_seconds']} s")
        if args.build_only:
            return 0

        token = secrets.token_hex(12)
        cgroup.reset_peak()
        sampler = PeakSampler(cgroup)
        sampler.start()
        started = time.monotonic()
        lab = binder.popen(["binder/start", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                            f"--port={args.port}", f"--IdentityProvider.token={token}",
                            f"--ServerApp.root_dir={binder.repo}"], "jupyterlab.log")
        base = f"http://127.0.0.1:{args.port}"
        answered = wait_http(f"{base}/api/status?token={token}", LAUNCH_LIMIT)
        report["jupyterlab_answers_seconds"] = answered and round(answered, 1)
        if answered is None:
            raise SystemExit(f"JupyterLab did not answer within {LAUNCH_LIMIT:.0f} s of "
                             f"binder/start; see {binder.log_dir / 'jupyterlab.log'}")
        print(f"binder-check: JupyterLab answered {answered:.1f} s after binder/start")
        open_kernels(base, token, 3)

        targets = sorted(str(p.relative_to(binder.repo)) for folder in args.folders
                         for p in (binder.repo / folder).glob("*.ipynb") if args.only in p.name)
        started = time.monotonic()
        nbval = binder.popen([f"{binder.venv}/bin/python", "-m", "pytest", "-p",
                              "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
                              f"--nbval-cell-timeout={args.cell_timeout}", "-q", "-rfE",
                              *targets], "nbval.log")
        rc = nbval.wait(timeout=3600)
        report["nbval_seconds"] = round(time.monotonic() - started, 1)
        report["nbval_exit_code"] = rc
        summary = (binder.log_dir / "nbval.log").read_text(errors="replace").splitlines()[-15:]
        report["nbval_summary"] = summary[-1] if summary else ""
        sampler.done.set()
        report["peak_resident_mib"] = round(sampler.peak / 2**20)
        report["peak_charged_mib"] = round(cgroup.peak() / 2**20)  # incl. page cache
        report["oom_kills"] = cgroup.oom_kills()
        print("\n".join(summary))
    finally:
        if lab is not None:
            for verb in (["cluster", "stop"], ["stop"]):
                stop = binder.popen([f"{binder.venv}/bin/python", "-m", "brokerlab.backstage",
                                     *verb], "stop.log")
                try:
                    stop.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    pass
        cgroup.close()
        out = ROOT / "artifacts" / "binder-check.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"binder-check: {json.dumps(report)}")

    peak = int(report.get("peak_resident_mib", 0) or 0)
    ok = (report.get("nbval_exit_code") == 0 and peak * 2**20 < MEMORY_BUDGET
          and not report.get("oom_kills"))
    if peak * 2**20 >= MEMORY_BUDGET:
        print(f"binder-check: peak resident memory {peak} MiB is over the course's budget of "
              f"{MEMORY_BUDGET // 2**20} MiB (Binder's limit is 2048 MiB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
