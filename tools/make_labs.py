"""Generate labs/ from solutions/: the solutions are the single source of truth.

Why: a lab is its solution with the answers taken out. Keeping both by hand lets them
drift (a check fixed in one and not the other); generating labs/ means maintainers
edit only solutions/, and ``--check`` (run in CI) proves labs/ is in sync.

For each ``solutions/MM.NN-*.ipynb`` this writes ``labs/<same name>`` where

- in every code cell, each region from a line ``### BEGIN SOLUTION`` to a line
  ``### END SOLUTION`` (whole lines once stripped) becomes two lines at the BEGIN
  marker's indentation: ``# YOUR CODE HERE`` and ``raise NotImplementedError()``
  (nbgrader's convention: the lab's check cells fail until the learner answers);
- cells tagged ``solution-only`` are dropped;
- outputs and execution counts are cleared, cell metadata keeps only ``tags``,
  notebook metadata only the kernelspec and ``language_info.name``, and cell ids are
  ``cell-<index>``, so the output is byte-for-byte the same on every run;
- the ``nav`` cell (index 1) is rewritten -- or added -- with ``make_nav.nav_line``
  for labs/, so it links to the neighbouring labs rather than the solutions.

Refused (exit 1, ``file: cell N, line L: why``, nothing written): a nested BEGIN,
an END without BEGIN, a BEGIN without END, a marker in a non-code cell, and a
solution with no region at all (its lab would have nothing to do).

Order: run ``make_nav.py`` first (it adds nav cells to solutions/), then this tool;
then ``make_labs.py --check`` and ``make_nav.py --check`` both pass.

Usage: ``python tools/make_labs.py [--root DIR] [--check]``. ``--check`` writes
nothing and exits 1 listing every differing or missing lab and every orphan lab.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import nbformat
from make_nav import NB_GLOB, chain_titles, ensure_nav, nav_line, read_nb, render
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
SOLUTION_ONLY = "solution-only"

__all__ = ["LabError", "make_lab", "render", "generate", "main"]


class LabError(ValueError):
    """A solution notebook the generator refuses; says where and why."""

    def __init__(self, message: str, cell: int | None = None, line: int | None = None):
        where = "" if cell is None else f"cell {cell}" + ("" if line is None else f", line {line}")
        super().__init__(f"{where}: {message}" if where else message)
        self.cell, self.line = cell, line


def strip_solutions(source: str, cell: int) -> tuple[str, int]:
    """``source`` with each solution region replaced by the stub; and the region count."""
    out: list[str] = []
    begin: int | None = None
    regions = 0
    for number, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin is not None:
                raise LabError(f"nested '{BEGIN}' (region opened at line {begin})", cell, number)
            begin = number
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + STUB[0], indent + STUB[1]]
        elif marker == END:
            if begin is None:
                raise LabError(f"'{END}' without a '{BEGIN}' before it", cell, number)
            begin = None
            regions += 1
        elif begin is None:
            out.append(line)
    if begin is not None:
        raise LabError(f"'{BEGIN}' is never closed by '{END}'", cell, begin)
    return "\n".join(out), regions


def _clean_cell(cell: NotebookNode, source: str) -> NotebookNode:
    new = NotebookNode(cell_type=cell.cell_type, metadata=NotebookNode(), source=source)
    tags = list(cell.get("metadata", {}).get("tags", []))
    if tags:
        new.metadata["tags"] = tags
    if cell.cell_type == "code":
        new.execution_count = None
        new.outputs = []
    elif "attachments" in cell:
        new.attachments = copy.deepcopy(cell.attachments)
    return new


def make_lab(nb: NotebookNode, nav: str | None = None) -> NotebookNode:
    """The lab generated from solution notebook ``nb`` (not modified).

    ``nav``: the lab's nav line; when given, cell 1 becomes a ``nav`` cell with it."""
    cells: list[NotebookNode] = []
    regions = 0
    for index, cell in enumerate(nb.cells):
        source = cell.source
        if cell.cell_type == "code":
            source, found = strip_solutions(source, index)
        else:
            for number, line in enumerate(source.split("\n"), start=1):
                if line.strip() in (BEGIN, END):
                    raise LabError(
                        f"solution marker in a {cell.cell_type} cell (only code cells)",
                        index,
                        number,
                    )
            found = 0
        if SOLUTION_ONLY in cell.get("metadata", {}).get("tags", []):
            continue
        regions += found
        cells.append(_clean_cell(cell, source))
    if not regions:
        raise LabError(
            f"no '{BEGIN}' ... '{END}' region outside '{SOLUTION_ONLY}' cells: "
            "the lab would have nothing to solve"
        )
    lab = nbformat.v4.new_notebook()
    lab.nbformat_minor = 5
    if "kernelspec" in nb.metadata:
        lab.metadata["kernelspec"] = copy.deepcopy(nb.metadata.kernelspec)
    language = nb.metadata.get("language_info", {}).get("name")
    if language:
        lab.metadata["language_info"] = NotebookNode(name=language)
    lab.cells = cells
    if nav is not None:
        ensure_nav(lab, nav)
    for index, cell in enumerate(lab.cells):
        cell["id"] = f"cell-{index}"
    return lab


def generate(root: Path) -> tuple[dict[str, str], list[str]]:
    """Rendered lab text by file name for every solution, and the refusals."""
    titles = chain_titles(root, "labs")
    labs: dict[str, str] = {}
    errors: list[str] = []
    for path in sorted((root / "solutions").glob(NB_GLOB)):
        try:
            lab = make_lab(read_nb(path), nav_line("labs", path.name, titles))
        except LabError as error:
            errors.append(f"solutions/{path.name}: {error}")
        else:
            labs[path.name] = render(lab)
    return labs, errors


def check(root: Path, labs: dict[str, str]) -> list[str]:
    """Every lab on disk that differs from, is missing from, or is not in ``labs``."""
    problems = []
    for name, text in labs.items():
        path = root / "labs" / name
        if not path.exists():
            problems.append(f"labs/{name}: missing (generated from solutions/{name})")
        elif path.read_bytes() != text.encode("utf-8"):
            problems.append(f"labs/{name}: differs from what solutions/{name} generates")
    for path in sorted((root / "labs").glob("*.ipynb")):
        if not (root / "solutions" / path.name).exists():
            problems.append(f"labs/{path.name}: orphan lab, no solutions/{path.name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="course root (default: repo)")
    parser.add_argument("--check", action="store_true", help="write nothing; fail if stale")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        labs, errors = generate(root)
    except (OSError, ValueError) as error:  # unreadable or invalid JSON notebook
        print(f"error: {error}")
        return 1
    if errors:
        print("\n".join(errors))
        print("refused: fix the solutions above; nothing was written")
        return 1
    if args.check:
        problems = check(root, labs)
        if problems:
            print("\n".join(problems))
            print("labs/ is generated: edit solutions/, then run python tools/make_labs.py")
            return 1
        print(f"labs/ in sync with solutions/ ({len(labs)} labs)")
        return 0
    if labs:
        (root / "labs").mkdir(exist_ok=True)
    for name, text in labs.items():
        path = root / "labs" / name
        if not path.exists() or path.read_bytes() != text.encode("utf-8"):
            path.write_bytes(text.encode("utf-8"))
            print(f"wrote labs/{name}")
    for problem in check(root, labs):
        if "orphan" in problem:
            print(f"warning: {problem} (delete it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
