"""Student versions of the course notebooks (``featureae_lite assignments make``), and the assembled
notebook of a submission: both are the course notebook with its exercise cells replaced.

* :func:`make_assignments` writes student notebooks: in every cell tagged ``exercise`` the code
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a TODO stub that raises
  ``NotImplementedError`` (:func:`stub_solution`), every collapsed ``<details>`` explanation of a
  markdown cell is removed (:func:`strip_details`; the question stays); everything else is kept,
  outputs are cleared.
* :func:`solution_cells` finds a submission's solution cells (the cells defining the exercises'
  functions) and :func:`assembled_notebook` puts them into the course notebook, for grading
  (:mod:`featureae_lite.grading.assignments`); :func:`predictions` reads the learner's
  ``MY_PREDICTION`` values (without running anything) for the grade report.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import write_atomic
from featureae_lite.course.notebooks import list_notebooks

if TYPE_CHECKING:
    from nbformat import NotebookNode

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
# A collapsed explanation after a question, with the blank lines that separate it from the question.
DETAILS = re.compile(r"\n*[ \t]*<details\b.*?</details>[ \t]*", flags=re.S | re.I)


def defined_functions(source: str) -> list[str]:
    """Names of the top-level functions a cell defines (a regex fallback when it does not parse)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return re.findall(r"^def (\w+)\(", source, flags=re.M)
    return [n.name for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def read_notebook(path: str | os.PathLike) -> NotebookNode:
    """The notebook at ``path`` (nbformat 4).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    InputError
        The file is not a readable notebook.
    """
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # not JSON / not a notebook
        raise InputError(f"{path} is not a readable notebook: {err}") from err


def stub_solution(source: str, name: str = "exercise") -> str:
    """Replace every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block by a TODO stub.

    The stub keeps the indentation of the ``BEGIN`` marker and raises ``NotImplementedError``.

    Raises
    ------
    ValueError
        When the cell has no complete marker pair.
    """
    lines, out, inside = source.splitlines(), [], False
    found = False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise InputError(f"{name}: nested {BEGIN}")
            inside, found = True, True
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# TODO: write your solution here (see the task above), then run the check.",
                    f'{indent}raise NotImplementedError("exercise {name}: not attempted yet")']
        elif stripped == END:
            if not inside:
                raise InputError(f"{name}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside or not found:
        raise InputError(f"{name}: an exercise cell needs one '{BEGIN}' … '{END}' block")
    return "\n".join(out)


def strip_details(source: str) -> str:
    """Markdown ``source`` without its ``<details>`` … ``</details>`` blocks (the explanations for
    self-learners); the text around them, the questions, is kept.

    Raises
    ------
    InputError
        When the numbers of ``<details`` and ``</details>`` tags differ (an unclosed block would
        otherwise hide the rest of the cell, or leak its explanation).
    """
    opened = len(re.findall(r"<details\b", source, flags=re.I))
    closed = len(re.findall(r"</details>", source, flags=re.I))
    if opened != closed:
        raise InputError(f"a markdown cell has {opened} '<details>' and {closed} '</details>' tags")
    if not opened:
        return source
    return DETAILS.sub("", source).rstrip("\n")


def student_version(nb: NotebookNode, explanations: bool = False) -> NotebookNode:
    """A copy of notebook ``nb`` with solutions stubbed, explanations (``<details>``) removed unless
    ``explanations``, and every output cleared."""
    import copy

    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and not explanations:
            cell.source = strip_details(cell.source)
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if "exercise" in cell.metadata.get("tags", []):
            names = defined_functions(cell.source)
            cell.source = stub_solution(cell.source, names[0] if names else f"cell {i}")
    return nb


def make_assignments(out: str | os.PathLike, notebooks: list[Path] | None = None,
                     force: bool = False) -> list[Path]:
    """Write the student version of every notebook that has exercises into ``out``.

    Nothing is written when ``out`` already holds one of the student notebooks (a student's work)
    unless ``force``; each notebook is written atomically.

    Returns
    -------
    list of Path
        The written notebooks.

    Raises
    ------
    ValueError
        ``out`` is a file, cannot be created, already holds student notebooks (without ``force``),
        or no notebook has exercises.
    """
    import nbformat

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, expected a folder for the student notebooks")
    students = []
    for path in notebooks if notebooks is not None else list_notebooks():
        nb = read_notebook(path)
        if any("exercise" in c.metadata.get("tags", []) for c in nb.cells):
            students.append((out / Path(path).name, student_version(nb)))
    if not students:
        raise InputError("no notebook with cells tagged 'exercise' was found")
    existing = [target.name for target, _ in students if target.exists()]
    if existing and not force:
        raise InputError(f"{out} already holds {', '.join(existing)} (a student's work?); "
                         "pass --force to overwrite")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the folder {out}: {err.strerror}") from err
    for target, nb in students:
        write_atomic(target, nbformat.writes(nb))
    return [target for target, _ in students]


def exercise_cells(nb: NotebookNode) -> list[tuple[str, Any]]:
    """``(function name, cell)`` of every cell tagged ``exercise`` of a course notebook, in order."""
    cells = [c for c in nb.cells if c.cell_type == "code" and "exercise" in c.metadata.get("tags", [])]
    return [(defined_functions(c.source)[0], c) for c in cells]


def solution_cells(course: NotebookNode, submitted: NotebookNode) -> dict[str, str]:
    """The submitted source of every exercise of ``course``: the first code cell of ``submitted`` that
    defines the exercise's function (whatever its tags say); exercises without one are left out."""
    found: dict[str, str] = {}
    for cell in submitted.cells:
        if cell.cell_type == "code":
            for name in defined_functions(cell.source):
                found.setdefault(name, cell.source)
    return {name: found[name] for name, _ in exercise_cells(course) if name in found}


def assembled_notebook(course: NotebookNode, solutions: dict[str, str]) -> NotebookNode:
    """The course notebook with its exercise cells replaced by the submitted ``solutions`` (a missing
    one becomes the student stub); everything else — setup, parameters, check cells — is the
    course's."""
    nb = student_version(course, explanations=True)
    for name, cell in exercise_cells(nb):
        cell.source = solutions.get(name, cell.source)
    return nb


PREDICTION = "MY_PREDICTION"
PREDICT_HEADING = re.compile(r"^#+\s*Predict, then measure:?\s*(.*)$", flags=re.M)


def _assigned_prediction(source: str) -> ast.expr | None:
    """The value of the last top-level ``MY_PREDICTION = …`` of a cell (None: the cell has none)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    values = [n.value for n in body if isinstance(n, ast.Assign)
              and any(isinstance(t, ast.Name) and t.id == PREDICTION for t in n.targets)]
    return values[-1] if values else None


def prediction_questions(course: NotebookNode) -> list[str]:
    """What each ``MY_PREDICTION`` cell of a course notebook asks, in order: the title of the
    "Predict, then measure" heading above it (``"prediction <k>"`` where there is none)."""
    questions, title = [], None
    for cell in course.cells:
        if cell.cell_type == "markdown":
            found = PREDICT_HEADING.findall(cell.source)
            title = found[-1].strip() if found else title
        elif _assigned_prediction(cell.source) is not None:
            questions.append(title or f"prediction {len(questions) + 1}")
            title = None
    return questions


def predictions(course: NotebookNode, submitted: NotebookNode) -> dict[str, Any]:
    """The learner's predictions, for the grade report (recorded, never graded).

    The k-th code cell of ``submitted`` that assigns ``MY_PREDICTION`` answers the k-th such cell of
    ``course``, keyed by the question it answers (:func:`prediction_questions`). Nothing is executed:
    a literal (number, string, tuple, …) is read with :func:`ast.literal_eval`; any other expression
    is kept as its source text; ``None`` (the course's placeholder) means no prediction was written.
    """
    values = [v for c in submitted.cells if c.cell_type == "code"
              and (v := _assigned_prediction(c.source)) is not None]
    found: dict[str, Any] = {}
    for question, value in zip(prediction_questions(course), values, strict=False):
        try:
            found[question] = ast.literal_eval(value)
        except ValueError:
            found[question] = ast.unparse(value)
    return found
