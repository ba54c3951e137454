"""versions.toml is the one table of tested broker versions: it must agree with the compose
image tags, the Kafka pom, the next generation's pins and README's table (no brokers needed).
Where the packages are installed here (natively, or in the next generation's root) their
versions must be the table's too, so an upgrade cannot slip by untested."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from brokerlab.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "src" / "brokerlab" / "backstage" / "kafka" / "pom.xml"
IMAGES = {"rabbitmq": "rabbitmq", "redis": "redis", "kafka": "apache/kafka"}


def tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def versions() -> dict[str, Any]:
    return tool("versions_table").load()


def compose_tags() -> dict[str, set[str]]:
    """Each broker's image tags across docker-compose*.yml ('-management' dropped)."""
    tags: dict[str, set[str]] = {broker: set() for broker in IMAGES}
    for path in sorted(ROOT.glob("docker-compose*.yml")):
        for service in (yaml.safe_load(path.read_text()).get("services") or {}).values():
            name, _, tag = str(service.get("image", "")).rpartition(":")
            for broker, image in IMAGES.items():
                if name == image:
                    tags[broker].add(tag.removesuffix("-management"))
    return tags


def test_compose_tags_are_the_table(versions: dict[str, Any]) -> None:
    tags = compose_tags()
    for broker in IMAGES:
        assert tags[broker], f"no {IMAGES[broker]} image in docker-compose*.yml"
        assert tags[broker] == {versions["compose"][broker]}, (
            f"docker-compose*.yml use {IMAGES[broker]}:{sorted(tags[broker])}, versions.toml "
            f"[compose] says {versions['compose'][broker]}")


def test_kafka_is_the_pom_everywhere(versions: dict[str, Any]) -> None:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    assert match, f"no <kafka.version> in {POM}"
    for generation in ("native", "next", "compose"):
        assert versions[generation]["kafka"] == match.group(1), (
            f"versions.toml [{generation}] kafka {versions[generation]['kafka']} "
            f"but the pom pins {match.group(1)}")


def test_next_generation_pins_are_the_table(versions: dict[str, Any]) -> None:
    next_generation = tool("next_generation")
    for package, prefix in next_generation.EXPECTED.items():
        pinned = versions["next"]["packages"][package]
        assert pinned.split(":")[-1].startswith(prefix), (package, pinned, prefix)
    for generation in ("native", "next"):
        v = versions[generation]
        for broker, package in (("rabbitmq", "rabbitmq-server"), ("redis", "redis-server"),
                                ("erlang", "erlang-base")):
            upstream = v["packages"][package].split(":")[-1]
            assert upstream.startswith(v[broker]), (
                f"[{generation}] {broker} {v[broker]} vs package {package} {upstream}")


def test_readme_table_is_generated(versions: dict[str, Any]) -> None:
    versions_table = tool("versions_table")
    current = versions_table.readme_block(versions_table.README.read_text())
    assert current == versions_table.block(), (
        "README.md's versions table is out of date: python tools/versions_table.py --write")


def installed(command: list[str]) -> dict[str, str]:
    out = subprocess.run(command + ["-f=${Package}\t${Version}\n", "rabbitmq-server",
                                    "redis-server", "erlang-base"],
                         capture_output=True, text=True, timeout=30)
    return dict(line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line)


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="not a Debian system")
def test_native_packages_are_the_table(versions: dict[str, Any]) -> None:
    found = installed(["dpkg-query", "-W"])
    if not found:
        pytest.skip("the brokers' Debian packages are not installed here")
    for package, version in found.items():
        assert version == versions["native"]["packages"][package], (
            f"installed {package} {version}; versions.toml [native] says "
            f"{versions['native']['packages'][package]}: test on it, then update the table")


def test_next_generation_root_is_the_table(versions: dict[str, Any]) -> None:
    next_generation = tool("next_generation")
    marker = next_generation.root_dir(get_settings()) / next_generation.MARKER
    if not marker.exists():
        pytest.skip("the next generation's root is not built here")
    built = json.loads(marker.read_text())
    packages = {**built["packages"], "erlang-base": built["erlang-base"]}
    assert packages == versions["next"]["packages"], (
        f"the root at {marker.parent} holds {packages}; versions.toml [next] says "
        f"{versions['next']['packages']}: run make test-next on it, then update the table")
