"""Lint the course notebooks in notebooks/, labs/ and solutions/.

Why: the course conventions (docs/LESSON_GUIDE.md) are what let a learner
run any notebook top to bottom without it hanging, let CI prove every lesson, and let
a maintainer add a lesson by copying one. This tool turns them into checks that fail
fast, one ``path: message`` line per violation (exit 1 if any):

- names ``MM.NN-kebab-title.ipynb``, so they sort and the navigation can be generated;
- labs/X <-> solutions/X, and every solutions/MM.NN-* has a lesson notebooks/MM.NN-*;
- cell 0 is markdown ``# MM.NN · Title`` (MM.NN = the file's, U+00B7 middle dot) with
  a learning-goals list (a line containing "learning goals" or "you will", then at
  least two ``- `` bullets);
- exactly one code cell tagged ``setup`` and at least one cell tagged ``cleanup``
  (the index ``00.00-*`` is exempt), so re-runs start clean and leave nothing behind;
- tags only from :data:`ALLOWED_TAGS`;
- no outputs or execution counts (outputs are stripped before commit), kernelspec
  ``python3``;
- solution markers only in solutions/, and each solution has at least one region
  (outside ``solution-only`` cells), or its lab has nothing to solve;
- every solution region calls at least one pika / redis-py / kafka-python API (the lab
  makes the learner write client code, not choose helper arguments), or uses a function
  the learner completed with client calls in an earlier region;
- no calls that block the kernel in code cells (full-line comments are ignored):
  ``start_consuming(``, ``.listen()``, ``while True``, ``for x in consumer``.
  Consume in a background worker with a stop event and bounded waits instead;
- every ``queue_declare(...)`` says ``durable=True``, ``exclusive=True`` or
  ``passive=True``: RabbitMQ 4 deprecates transient non-exclusive queues, and a broker
  configured to refuse deprecated features closes the connection on one.

Usage: ``python tools/lint_notebooks.py [--root DIR]``.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("notebooks", "labs", "solutions")
NAME_RE = re.compile(r"^\d\d\.\d\d-[a-z0-9]+(-[a-z0-9]+)*\.ipynb$")
TITLE_RE = re.compile(r"# (\d\d\.\d\d) · ")
ALLOWED_TAGS = frozenset(
    {"setup", "cleanup", "check", "exercise", "solution-only", "nav", "raises-exception"}
)
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
BLOCKING = (
    (re.compile(r"start_consuming\("), "start_consuming("),
    (re.compile(r"\.listen\(\)"), ".listen()"),
    (re.compile(r"\bwhile True\b"), "while True"),
    (re.compile(r"\bfor \w+ in \w*consumer\s*:"), "for ... in consumer"),
)

REGION_RE = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
CALL_RE = re.compile(r"(\.?)\b(\w+)\s*\(")
CONTAINER_METHODS = frozenset({"append", "extend", "insert", "remove", "pop", "clear", "copy",
                               "keys", "items", "values", "update", "count", "index", "sort"})
DEF_RE = re.compile(r"^\s*def (\w+)\s*\(", re.M)
MAGIC_RE = re.compile(r"^\s*%%?\w+\s*")


def client_api_names() -> frozenset[str]:
    """Public method and class names of the clients the course teaches (read from the
    installed packages, so a client upgrade updates the list): pika, redis-py and
    kafka-python, and module 07's aio-pika, redis.asyncio, aiokafka and confluent-kafka."""
    import inspect

    import aio_pika
    import aio_pika.abc
    import aiokafka
    import confluent_kafka
    import confluent_kafka.admin
    import kafka
    import pika
    import redis
    import redis.asyncio
    import redis.client
    import redis.sentinel
    from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

    classes = (BlockingChannel, BlockingConnection, redis.Redis, redis.client.Pipeline,
               redis.client.PubSub, redis.sentinel.Sentinel, kafka.KafkaProducer,
               kafka.KafkaConsumer, kafka.KafkaAdminClient,
               aio_pika.abc.AbstractRobustConnection, aio_pika.abc.AbstractChannel,
               aio_pika.abc.AbstractQueue, aio_pika.abc.AbstractExchange,
               aio_pika.abc.AbstractIncomingMessage, redis.asyncio.Redis,
               aiokafka.AIOKafkaProducer, aiokafka.AIOKafkaConsumer,
               confluent_kafka.Producer, confluent_kafka.Consumer,
               confluent_kafka.ShareConsumer, confluent_kafka.admin.AdminClient)
    modules = (pika, redis, kafka, aio_pika, aiokafka, confluent_kafka)
    names = {n for cls in classes for n in dir(cls) if not n.startswith("_")}
    names |= {n for mod in modules for n in dir(mod)
              if not n.startswith("_") and (inspect.isclass(getattr(mod, n))
                                            or mod is aio_pika and callable(getattr(mod, n)))}
    return frozenset(names - {"close", "config"})  # too generic to prove anything


def calls_a_client(region: str, api: frozenset[str], learners: set[str]) -> bool:
    """Whether a region calls a client API (`ch.basic_publish(`, `KafkaConsumer(`), or uses
    a function the learner completed with client calls in an earlier region. A bare call of
    a Python builtin (`set(`) or a container method (`.append(`, `.keys(`) proves nothing."""
    import builtins

    if any(re.search(rf"\b{re.escape(name)}\b", region) for name in learners):
        return True
    for dot, name in CALL_RE.findall(region):
        if name not in api or name in CONTAINER_METHODS:
            continue
        if dot or name not in dir(builtins):
            return True
    return False


def regions_without_client_calls(root: Path) -> set[tuple[str, str]]:
    """(solution file, cell id) of every solution region that calls no client API."""
    api = client_api_names()
    gaps = set()
    for path in sorted((root / "solutions").glob("*.ipynb")):
        # A region may call a function the learner wrote in an earlier region with client calls.
        learners: set[str] = set()
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for region in REGION_RE.findall(cell.source):
                if calls_a_client(region, api, learners):
                    learners |= set(DEF_RE.findall(cell.source))  # the function it completes
                else:
                    gaps.add((path.name, cell.get("id", "")))
    return gaps


def client_call_problems(root: Path) -> list[str]:
    """One message per solution region without client calls."""
    return [f"solutions/{name}: cell {cid}: the solution region calls no broker client API "
            "(pika, redis-py, kafka-python, aio-pika, aiokafka, confluent-kafka); the learner "
            "should write the client calls"
            for name, cid in sorted(regions_without_client_calls(root))]


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def has_goals(source: str) -> bool:
    """A "learning goals"/"you will" line followed by at least two ``- `` bullets."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if "learning goals" in line.lower() or "you will" in line.lower():
            bullets = 0
            for following in lines[i + 1 :]:
                text = following.strip()
                if text.startswith("- "):
                    bullets += 1
                elif text and not (bullets and following[:1].isspace()):
                    break  # indented lines continue a wrapped bullet
            if bullets >= 2:
                return True
    return False


def _title(nb: NotebookNode, name: str) -> list[str]:
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown":
        return ["cell 0 must be a markdown title cell '# MM.NN · Title'"]
    msgs = []
    match = TITLE_RE.match(first.source)
    if not match:
        msgs.append("cell 0 must start with '# MM.NN · ' (middle dot U+00B7)")
    elif re.match(r"\d\d\.\d\d-", name) and match.group(1) != name[:5]:
        msgs.append(f"title number {match.group(1)} does not match the file name {name[:5]}")
    if not has_goals(first.source):
        msgs.append(
            "cell 0 needs a learning-goals list: a line with 'Learning goals' or "
            "'you will', then at least two '- ' bullets"
        )
    return msgs


# ](01.03-durability.ipynb#Some-heading): Jupyter's heading anchors, unknown to the site.
NOTEBOOK_ANCHOR_RE = re.compile(r"\]\([^)\s]*\.ipynb#[^)\s]*\)")


def _structure(nb: NotebookNode, name: str) -> list[str]:
    msgs = []
    if not name.startswith("00.00-"):
        setup = sum(1 for c in nb.cells if c.cell_type == "code" and "setup" in _tags(c))
        if setup != 1:
            msgs.append(f"needs exactly one code cell tagged 'setup' (found {setup})")
        if not any("cleanup" in _tags(c) for c in nb.cells):
            msgs.append("needs a cell tagged 'cleanup' (stop workers, delete what it made)")
    for i, cell in enumerate(nb.cells):
        unknown = sorted(set(_tags(cell)) - ALLOWED_TAGS)
        if unknown:
            allowed = ", ".join(sorted(ALLOWED_TAGS))
            msgs.append(f"cell {i}: unknown tag(s) {', '.join(unknown)} (allowed: {allowed})")
        if cell.cell_type == "markdown" and NOTEBOOK_ANCHOR_RE.search(cell.source):
            msgs.append(f"cell {i}: a link into another notebook's section "
                        f"({NOTEBOOK_ANCHOR_RE.search(cell.source).group(0)}) breaks on the "
                        "website (Sphinx makes other anchors): link the notebook, name the section")
        if cell.cell_type == "code" and cell.get("outputs"):
            msgs.append(f"cell {i}: has outputs (strip outputs before committing)")
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            msgs.append(f"cell {i}: has an execution count (strip outputs before committing)")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        msgs.append(f"kernelspec name must be 'python3' (found {kernel!r})")
    return msgs


def transient_declares(source: str) -> list[int]:
    """Line numbers of ``queue_declare`` (pika) and ``declare_queue`` (aio-pika) calls that
    declare a transient, non-exclusive queue: none of ``durable``, ``exclusive`` or
    ``passive`` is given as True. A value that is not a constant (``durable=durable``,
    ``**options``) is taken on trust."""
    # IPython magics are not Python: keep what `%time` runs, drop shell escapes.
    code = "\n".join(MAGIC_RE.sub("", line) if not line.lstrip().startswith("!") else ""
                     for line in source.split("\n"))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("queue_declare", "declare_queue")):
            continue
        safe = False
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg in ("durable", "exclusive", "passive"):
                value = keyword.value
                safe = safe or not isinstance(value, ast.Constant) or value.value is True
        if not safe:
            lines.append(node.lineno)
    return lines


def _code(nb: NotebookNode, folder: str) -> list[str]:
    msgs = []
    regions = 0
    for i, cell in enumerate(nb.cells):
        for number, line in enumerate(cell.source.split("\n"), start=1):
            text = line.strip()
            if text in MARKERS:
                if folder != "solutions":
                    msgs.append(f"cell {i}, line {number}: '{text}' outside solutions/")
                elif text == MARKERS[0] and cell.cell_type == "code":
                    regions += "solution-only" not in _tags(cell)
            if cell.cell_type != "code" or text.startswith("#"):
                continue
            for pattern, label in BLOCKING:
                if pattern.search(line):
                    msgs.append(
                        f"cell {i}, line {number}: '{label}' blocks the kernel; consume in "
                        "a background worker with a stop event and bounded waits"
                    )
        if cell.cell_type == "code":
            for number in transient_declares(cell.source):
                msgs.append(f"cell {i}, line {number}: queue_declare without durable=True, "
                            "exclusive=True or passive=True declares a transient non-exclusive "
                            "queue, which RabbitMQ 4 deprecates; say durable=True")
    if folder == "solutions" and not regions:
        msgs.append(f"no '{MARKERS[0]}' region: the generated lab would have nothing to solve")
    return msgs


def lint_notebook(folder: str, path: Path) -> list[str]:
    """Violations in one notebook (messages without the path)."""
    msgs = []
    if not NAME_RE.match(path.name):
        msgs.append("file name must be MM.NN-kebab-title.ipynb (lowercase, digits, hyphens)")
    invalid: dict[str, Any] = {}
    try:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=4, capture_validation_error=invalid)
    except (OSError, ValueError) as error:
        return [*msgs, f"cannot read notebook: {error}"]
    if invalid.get("ValidationError"):
        msgs.append(f"invalid notebook: {invalid['ValidationError'].message}")
    return msgs + _title(nb, path.name) + _structure(nb, path.name) + _code(nb, folder)


def lint(root: Path) -> list[str]:
    """Every violation under ``root`` as ``path: message``, path relative to ``root``."""
    found = {f: sorted(p.name for p in (root / f).glob("*.ipynb")) for f in FOLDERS}
    problems = []
    for folder, names in found.items():
        for name in names:
            messages = lint_notebook(folder, root / folder / name)
            problems += [f"{folder}/{name}: {m}" for m in messages]
    labs, solutions = set(found["labs"]), set(found["solutions"])
    problems += [
        f"labs/{n}: no solutions/{n} (labs are generated)" for n in sorted(labs - solutions)
    ]
    problems += [
        f"solutions/{n}: no labs/{n} (run python tools/make_labs.py)"
        for n in sorted(solutions - labs)
    ]
    lessons = {n[:5] for n in found["notebooks"]}
    problems += [
        f"solutions/{n}: no lesson notebooks/{n[:5]}-*.ipynb"
        for n in sorted(solutions)
        if n[:5] not in lessons
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="course root (default: repo)")
    args = parser.parse_args(argv)
    problems = lint(args.root.resolve()) + client_call_problems(args.root.resolve())
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "notebooks ok")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
