"""Tests for tools/lint_notebooks.py: one test per rule, on a tiny synthetic course."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
lint_notebooks = importlib.import_module("lint_notebooks")

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
LESSON = "notebooks/01.01-hello-queues.ipynb"
SOLUTION = "solutions/01.01-hello-lab.ipynb"
LAB = "labs/01.01-hello-lab.ipynb"


def notebook(prefix: str, *body: NotebookNode, setup: bool = True) -> NotebookNode:
    nb = new_notebook(metadata={"kernelspec": dict(KERNEL), "language_info": {"name": "python"}})
    title = f"# {prefix} · Title\n\nLearning goals:\n\n- one\n- two\n\nPrerequisites: none."
    nb.cells = [new_markdown_cell(title)]
    if setup:
        nb.cells.append(new_code_cell("import brokerlab", metadata={"tags": ["setup"]}))
    nb.cells += [*body, new_code_cell("cleanup()", metadata={"tags": ["cleanup"]})]
    return nb


def course(root: Path) -> Path:
    """A minimal course that passes every rule."""
    files = {
        "notebooks/00.00-index.ipynb": notebook("00.00", setup=False),
        LESSON: notebook("01.01", new_code_cell("send()")),
        SOLUTION: notebook(
            "01.01",
            new_code_cell("### BEGIN SOLUTION\nx = redis_client.incr('k')\n### END SOLUTION"),
            new_code_cell("assert x == 1", metadata={"tags": ["check"]}),
        ),
        LAB: notebook(
            "01.01",
            new_code_cell("# YOUR CODE HERE\nraise NotImplementedError()"),
            new_code_cell("assert x == 1", metadata={"tags": ["check"]}),
        ),
    }
    del files["notebooks/00.00-index.ipynb"].cells[-1]  # the index has no cleanup either
    for rel, nb in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, root / rel)
    return root


def edit(root: Path, rel: str, change: Callable[[NotebookNode], object]) -> None:
    nb = nbformat.read(root / rel, as_version=4)
    change(nb)
    nbformat.write(nb, root / rel)


def assert_only(problems: list[str], rel: str, fragment: str) -> None:
    """Exactly the expected violation: the rule fires and nothing else does."""
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{rel}: ") and fragment in problems[0], problems


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return course(tmp_path)


def test_valid_course_is_clean(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lint_notebooks.lint(root) == []
    assert lint_notebooks.main(["--root", str(root)]) == 0


def test_main_prints_path_message_and_fails(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(root, LESSON, lambda nb: nb.cells[1].metadata.update(tags=["setup", "oops"]))
    assert lint_notebooks.main(["--root", str(root)]) == 1
    assert f"{LESSON}: cell 1: unknown tag(s) oops" in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad", ["01.01-Hello.ipynb", "01.01-hello_q.ipynb", "01.01-hello-.ipynb", "01.01.ipynb"]
)
def test_file_names(root: Path, bad: str) -> None:
    (root / LESSON).rename(root / "notebooks" / bad)
    assert_only(lint_notebooks.lint(root), f"notebooks/{bad}", "file name")


def test_lab_needs_solution(root: Path) -> None:
    (root / SOLUTION).unlink()
    problems = lint_notebooks.lint(root)
    assert_only(problems, LAB, "no solutions/01.01-hello-lab.ipynb")


def test_solution_needs_lab(root: Path) -> None:
    (root / LAB).unlink()
    assert_only(lint_notebooks.lint(root), SOLUTION, "no labs/01.01-hello-lab.ipynb")


def test_solution_needs_lesson(root: Path) -> None:
    (root / LESSON).unlink()
    assert_only(lint_notebooks.lint(root), SOLUTION, "no lesson notebooks/01.01-*.ipynb")


@pytest.mark.parametrize(
    ("title", "fragment"),
    [
        ("01.01 · Title", "must start with '# MM.NN · '"),
        ("# 01.01 - Title", "must start with '# MM.NN · '"),
        ("# 01.02 · Title", "title number 01.02 does not match the file name 01.01"),
    ],
)
def test_title_cell(root: Path, title: str, fragment: str) -> None:
    def retitle(nb: NotebookNode) -> None:
        nb.cells[0].source = nb.cells[0].source.replace("# 01.01 · Title", title)

    edit(root, LESSON, retitle)
    assert_only(lint_notebooks.lint(root), LESSON, fragment)


def test_title_cell_must_be_markdown(root: Path) -> None:
    edit(root, LESSON, lambda nb: nb.cells.insert(0, new_code_cell("x = 1")))
    assert_only(lint_notebooks.lint(root), LESSON, "cell 0 must be a markdown title cell")


@pytest.mark.parametrize(
    ("goals", "ok"),
    [
        ("Learning goals:\n\n- one\n- two", True),
        ("In this lesson you will:\n- send a message\n  to a queue\n- receive it", True),
        ("Learning goals:\n\n- only one\n\nPrerequisites: none.", False),
        ("- one\n- two", False),
    ],
)
def test_learning_goals(root: Path, goals: str, ok: bool) -> None:
    edit(root, LESSON, lambda nb: nb.cells[0].update(source=f"# 01.01 · Title\n\n{goals}\n"))
    problems = lint_notebooks.lint(root)
    if ok:
        assert problems == []
    else:
        assert_only(problems, LESSON, "learning-goals list")


@pytest.mark.parametrize("count", [0, 2])
def test_exactly_one_setup_code_cell(root: Path, count: int) -> None:
    def change(nb: NotebookNode) -> None:
        if count == 0:
            nb.cells[1].metadata["tags"] = []
        else:
            nb.cells.insert(2, new_code_cell("y", metadata={"tags": ["setup"]}))

    edit(root, LESSON, change)
    assert_only(
        lint_notebooks.lint(root), LESSON, f"exactly one code cell tagged 'setup' (found {count})"
    )


def test_cleanup_cell_required(root: Path) -> None:
    edit(root, LESSON, lambda nb: nb.cells[-1].metadata.update(tags=[]))
    assert_only(lint_notebooks.lint(root), LESSON, "tagged 'cleanup'")


def test_unknown_tags(root: Path) -> None:
    edit(root, SOLUTION, lambda nb: nb.cells[2].metadata.update(tags=["solution"]))
    assert_only(lint_notebooks.lint(root), SOLUTION, "cell 2: unknown tag(s) solution")


def test_no_outputs(root: Path) -> None:
    out = new_output("stream", name="stdout", text="hi\n")
    edit(root, LESSON, lambda nb: nb.cells[2].update(outputs=[out]))
    assert_only(lint_notebooks.lint(root), LESSON, "cell 2: has outputs")


def test_no_execution_counts(root: Path) -> None:
    edit(root, LESSON, lambda nb: nb.cells[2].update(execution_count=3))
    assert_only(lint_notebooks.lint(root), LESSON, "cell 2: has an execution count")


def test_kernelspec_python3(root: Path) -> None:
    edit(root, LESSON, lambda nb: nb.metadata.kernelspec.update(name="conda-env-x"))
    assert_only(lint_notebooks.lint(root), LESSON, "kernelspec name must be 'python3'")


@pytest.mark.parametrize("rel", [LAB, LESSON])
def test_markers_only_in_solutions(root: Path, rel: str) -> None:
    edit(root, rel, lambda nb: nb.cells.insert(2, new_markdown_cell("x\n  ### END SOLUTION")))
    assert_only(lint_notebooks.lint(root), rel, "cell 2, line 2: '### END SOLUTION' outside")


def test_solution_needs_a_region(root: Path) -> None:
    def hide(nb: NotebookNode) -> None:
        nb.cells[2].metadata["tags"] = ["solution-only"]

    edit(root, SOLUTION, hide)
    assert_only(lint_notebooks.lint(root), SOLUTION, "no '### BEGIN SOLUTION' region")


@pytest.mark.parametrize(
    "code",
    [
        "channel.start_consuming()",
        "for message in pubsub.listen():\n    print(message)",
        "x = 0\nwhile True:\n    x += 1",
        "for record in consumer:\n    print(record)",
    ],
)
def test_blocking_calls(root: Path, code: str) -> None:
    edit(root, LESSON, lambda nb: nb.cells[2].update(source=code))
    assert_only(lint_notebooks.lint(root), LESSON, "blocks the kernel")


def test_blocking_lookalikes_allowed(root: Path) -> None:
    code = (
        "# never call channel.start_consuming() in a notebook\n"
        "for name in consumers:\n"
        "    pass\n"
        "while True_ish():\n"
        "    break\n"
        "print('while True')"
    )
    edit(root, LESSON, lambda nb: nb.cells[2].update(source=code))
    problems = lint_notebooks.lint(root)
    # The string literal is still flagged: the lint is a regex, not a parser.
    assert_only(problems, LESSON, "cell 2, line 6: 'while True'")


@pytest.mark.parametrize(
    "code",
    [
        "channel.queue_declare('jobs')",
        "ch.queue_declare(\n    queue='jobs',\n    durable=False,\n)",
        "%time channel.queue_declare('')",
        "queue = await channel.declare_queue('jobs')",     # aio-pika's default is transient
    ],
)
def test_transient_shared_queues(root: Path, code: str) -> None:
    edit(root, LESSON, lambda nb: nb.cells[2].update(source=code))
    assert_only(lint_notebooks.lint(root), LESSON, "transient non-exclusive")


def test_durable_exclusive_or_passive_declares_allowed(root: Path) -> None:
    code = ("%matplotlib inline\n"
            "channel.queue_declare('a', durable=True)\n"
            "channel.queue_declare('', exclusive=True)\n"
            "channel.queue_declare('a', passive=True)\n"
            "channel.queue_declare('a', durable=keep)\n"
            "channel.queue_declare('a', **options)\n"
            "queue = await channel.declare_queue('a', durable=True)")
    edit(root, LESSON, lambda nb: nb.cells[2].update(source=code))
    assert lint_notebooks.lint(root) == []


def test_a_solution_region_must_call_a_client_api(root: Path) -> None:
    assert lint_notebooks.regions_without_client_calls(root) == set()

    def choose_helper_arguments(nb: NotebookNode) -> None:
        nb.cells[2].source = "### BEGIN SOLUTION\nx = max(1, 0)\n### END SOLUTION"

    edit(root, SOLUTION, choose_helper_arguments)
    cell_id = nbformat.read(root / SOLUTION, 4).cells[2].id
    assert lint_notebooks.regions_without_client_calls(root) == {(Path(SOLUTION).name, cell_id)}
    assert "calls no broker client API" in lint_notebooks.client_call_problems(root)[0]


@pytest.mark.parametrize("region, ok", [
    ("x = r.get('k')", True),                       # redis-py's get, called on a client
    ("ch.basic_publish('', 'q', b'x')", True),
    ("c = KafkaConsumer('t')", True),
    ("seen = set(values)", False),                  # the builtin, not redis-py's SET
    ("items.append(1); d.keys()", False),           # container methods prove nothing
    ("return stored(topic)", True),                 # completes an earlier client region
    ("await message.ack()", True),                  # aio-pika (module 07)
    ("conn = await aio_pika.connect_robust(url)", True),
    ("batch = await consumer.getmany(timeout_ms=500)", True),   # aiokafka
    ("producer.produce(topic, value)", True),       # confluent-kafka
    ("await asyncio.wait_for(asyncio.gather(*tasks), 5)", False),  # asyncio is no client
])
def test_what_counts_as_a_client_call(region: str, ok: bool) -> None:
    api = lint_notebooks.client_api_names()
    assert lint_notebooks.calls_a_client(region, api, {"stored"}) is ok


def test_every_region_of_the_course_calls_a_client() -> None:
    assert lint_notebooks.client_call_problems(lint_notebooks.ROOT) == []


def test_links_into_another_notebooks_section_are_flagged(root: Path) -> None:
    def link(nb: NotebookNode) -> None:
        nb.cells[0].source += ("\n\nSee [01.03](01.03-durability.ipynb#Short-of-memory) and "
                               "[the docs](https://www.rabbitmq.com/docs/alarms#blocked).")

    edit(root, LESSON, link)
    assert_only(lint_notebooks.lint(root), LESSON, "breaks on the website")
