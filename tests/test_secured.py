"""brokerlab.secured: which classroom lesson 06.01 uses, and what it leaves behind.

The launcher is replaced by a recorder here; 06.01 itself runs against real classrooms
(a running one under `make test`, a demo one under the Binder check)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from brokerlab import clusters, secured
from brokerlab.faults import FaultError
from brokerlab.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("BROKERLAB_CLASSROOM_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setattr(clusters, "memory_limit", lambda: None)  # a machine without limits
    return Settings(state_dir=tmp_path / "state")


def _classroom(folder: Path) -> Path:
    (folder / "env").mkdir(parents=True)
    (folder / "env" / "instructor.env").write_text(
        "COURSE_NAMESPACE=instructor\nRABBITMQ_URL=amqps://admin:pw@127.0.0.1:5671/%2F\n")
    (folder / "env" / "ada.env").write_text("COURSE_NAMESPACE=ada\n")
    (folder / "ca.pem").write_text("not a real certificate\n")
    return folder


def test_the_classroom_folder_is_the_launchers_default_or_the_variable(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert secured.classroom_folder(settings) == settings.state_dir / "classroom"
    monkeypatch.setenv("BROKERLAB_CLASSROOM_DIR", str(tmp_path / "mine"))
    assert secured.classroom_folder(settings) == tmp_path / "mine"


def test_a_running_classroom_is_used_trusted_and_left_running(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _classroom(settings.state_dir / "classroom")
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(secured, "_runs", lambda f, s: f == folder)
    monkeypatch.setattr(secured, "_launcher", lambda *a, **k: calls.append(a) or "")
    said: list[str] = []
    room = secured.open_classroom(settings, echo=said.append)
    assert room.demo is None and room.admin["COURSE_NAMESPACE"] == "instructor"
    assert os.environ["SSL_CERT_FILE"] == str(folder / "ca.pem")
    assert room.students() == ["ada"]
    assert room.admin_settings("learner").namespace == "learner"
    room.close(echo=said.append)
    assert "SSL_CERT_FILE" not in os.environ
    assert calls == [], "a classroom this lesson did not start is never stopped"
    assert said == [f"using the running classroom in {folder}"]


def test_busy_ports_of_a_classroom_it_cannot_administer_say_what_to_do(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secured, "_runs", lambda f, s: False)
    monkeypatch.setattr(secured, "port_open", lambda host, port: port == 6390)
    with pytest.raises(secured.ClassroomUnavailable, match=r"ports are taken \(Redis TLS"):
        secured.open_classroom(settings, echo=lambda _: None)


def test_a_demo_classroom_is_started_and_stopped_by_the_same_run(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []

    def launcher(*args: str, settings: Settings, timeout: float) -> str:
        calls.append(args)
        if args[0] == "start":
            _classroom(Path(args[args.index("--dir") + 1]))
        return "stopped" if args[0] == "stop" else ""

    monkeypatch.setattr(secured, "_runs", lambda f, s: False)
    monkeypatch.setattr(secured, "port_open", lambda host, port: False)
    monkeypatch.setattr(secured, "_launcher", launcher)
    room = secured.open_classroom(settings, echo=lambda _: None)
    assert room.demo is not None and room.folder == room.demo / "classroom"
    assert secured.demo_marker(settings).read_text() == str(room.demo)
    assert (room.demo / "roster.csv").read_text() == secured.DEMO_ROSTER
    demo = room.demo
    room.close(echo=lambda _: None)
    assert [c[0] for c in calls] == ["start", "stop"]
    assert not demo.exists() and not secured.demo_marker(settings).exists()
    assert "SSL_CERT_FILE" not in os.environ


def test_a_demo_that_does_not_start_leaves_nothing_and_says_how_to_see_why(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []

    def launcher(*args: str, settings: Settings, timeout: float) -> str:
        calls.append(args)
        raise FaultError("exit 1: rabbitmq did not answer")

    monkeypatch.setattr(secured, "_runs", lambda f, s: False)
    monkeypatch.setattr(secured, "port_open", lambda host, port: False)
    monkeypatch.setattr(secured, "_launcher", launcher)
    with pytest.raises(secured.ClassroomUnavailable,
                       match="(?s)did not start.*Run it in a terminal"):
        secured.open_classroom(settings, echo=lambda _: None)
    assert [c[0] for c in calls] == ["start", "stop"]
    assert not secured.demo_marker(settings).exists()
    demo = Path(calls[0][calls[0].index("--dir") + 1]).parent
    assert demo.name.startswith("brokerlab-classroom-demo-") and not demo.exists()


def test_a_demo_left_by_a_dead_kernel_is_stopped_first(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    leftover = tmp_path / "old-demo"
    (leftover / "classroom").mkdir(parents=True)
    marker = secured.demo_marker(settings)
    marker.parent.mkdir(parents=True)
    marker.write_text(str(leftover))
    folder = _classroom(settings.state_dir / "classroom")
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(secured, "_runs", lambda f, s: f == folder)
    monkeypatch.setattr(secured, "_launcher", lambda *a, **k: calls.append(a) or "")
    secured.open_classroom(settings, echo=lambda _: None).close(echo=lambda _: None)
    assert calls == [("stop", "--dir", str(leftover / "classroom"))]
    assert not leftover.exists() and not marker.exists()


def test_on_a_small_machine_the_clusters_make_room_for_a_demo(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(clusters, "memory_limit", lambda: 2 * 2**30)  # Binder's 2 GiB
    monkeypatch.setattr(clusters, "node_names", lambda broker, s: ["a", "b", "c"])
    monkeypatch.setattr(clusters, "down_nodes",
                        lambda broker, s: [] if broker == "kafka" else ["a", "b", "c"])
    monkeypatch.setattr(clusters, "run_command", lambda cmd, s: commands.append(cmd))
    said: list[str] = []
    clusters.make_room((), settings, said.append, "first")
    assert commands == [[*clusters.LAUNCHER, "cluster", "stop", "kafka"]]
    assert "2.0 GiB" in said[0]
    clusters.make_room(("kafka",), settings, said.append, "first")
    assert len(commands) == 1, "a cluster the lesson keeps is not stopped"
    monkeypatch.setattr(clusters, "memory_limit", lambda: 24 * 2**30)
    clusters.make_room((), settings, said.append, "first")
    assert len(commands) == 1, "a big machine keeps its clusters"
