"""The README and the docs say what the code does: counts, ranges, commands and links are checked here,
so that they cannot go stale."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import nbformat
import pytest

from featureae_lite.cli import build_parser
from featureae_lite.course import widgets
from featureae_lite.course.exercises import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TEACHING = (ROOT / "docs" / "teaching.md").read_text()
PAGES = [ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in PAGES}
NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten",
           11: "eleven", 12: "twelve"}


def _widget_names() -> list[str]:
    """Public functions of featureae_lite.course.widgets that build a panel (they call ``_run``)."""
    return [n for n, f in inspect.getmembers(widgets, inspect.isfunction)
            if not n.startswith("_") and f.__module__ == widgets.__name__ and "_run(" in inspect.getsource(f)]


def _exercises_per_notebook() -> dict[str, list[str]]:
    per: dict[str, list[str]] = {}
    for name, ex in EXERCISES.items():
        per.setdefault(ex.notebook, []).append(name)
    return per


def test_the_readme_is_an_entry_point():
    lines = README.splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines"
    for part in ("Who it is for", "Two commands", "The course", "one picture", "For teachers",
                 "Where the measurements live", "conda"):
        assert part in README, part
    assert not re.search(r"20\d\d-\d\d-\d\d|OMP_NUM_THREADS|\bthreads?\b|[†‡]|\b[0-9a-f]{7}\b commit", README)


def test_widget_count_and_names():
    names = _widget_names()
    word = NUMBERS[len(names)]
    assert f"{word.capitalize()} widgets" in README or f"{len(names)} widgets" in README
    for name in names:
        assert f"`{name}`" in README, f"widget {name} is not named in the README"
    for path, text in DOCS.items():  # no other count of widgets anywhere
        for n in re.findall(r"\b(\w+) widgets\b", text):
            if n.isdigit() or n.lower() in NUMBERS.values():
                assert n.lower() in (str(len(names)), word), f"{path}: '{n} widgets'"


def test_exercise_counts_and_the_teaching_table():
    per = _exercises_per_notebook()
    counts = [len(v) for v in per.values()]
    span, total = f"{min(counts)}–{max(counts)} exercises", f"({sum(counts)} in all)"
    for text in (README, TEACHING):
        assert span in text.replace("**", "") and total in text
    assert "two or three exercises" not in README + TEACHING
    rows = {ln.split("|")[1].strip()[:2]: re.findall(r"`(\w+)`", ln.split("|")[2])
            for ln in TEACHING.splitlines() if re.match(r"\| \d\d ", ln)}
    assert rows == {nb[:2]: names for nb, names in per.items()}


def test_readme_student_times_follow_the_teaching_table():
    teach = {ln.split("|")[1].strip()[:2]: int(re.search(r"(\d+) min", ln.split("|")[4]).group(1))
             for ln in TEACHING.splitlines() if re.match(r"\| \d\d ", ln)}
    reading = int(re.search(r"reading and running the notebook \((\d+) min[:)]", README).group(1))
    rows = re.finditer(r"\| `(\d\d)_\w+` \|.*\| (\d+) min \|", README)
    course = {m.group(1): int(m.group(2)) for m in rows}
    assert course == {nb: t + reading for nb, t in teach.items()}
    hours = round(sum(course.values()) / 60)
    assert f"about **{hours} hours**" in README


def test_the_readme_reading_time_fits_each_notebooks_text():
    """The README's reading time is words at about 100 a minute: each notebook's Markdown (explanations
    included) must stay within the word range the footnote states."""
    reading = int(re.search(r"reading and running the notebook \((\d+) min: ", README).group(1))
    low, high = (int(w.replace(",", "")) for w in
                 re.search(r"(\d[\d,]*)–(\d[\d,]*) words of text at about 100 words", README).groups())
    assert low <= reading * 100 <= high
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        words = sum(len(c.source.split()) for c in cells if c.cell_type == "markdown")
        assert low <= words <= high, f"{path.name}: {words} words of Markdown, not {low}–{high}"


def test_every_drift_range_is_the_measured_one():
    found = {path: re.findall(r"drift of (\d+)–(\d+) %", text.replace("\n", " "))
             for path, text in DOCS.items()}
    canonical = found["docs/reproducibility.md"]
    assert canonical, "docs/reproducibility.md states the measured drift range"
    for path, ranges in found.items():
        assert set(ranges) <= set(canonical[:1]), f"{path}: drift {ranges} vs measured {canonical[0]}"
    assert found["docs/teaching.md"]


def _options(parser) -> dict[str, set[str]]:
    """Sub-command path ('notebooks', 'assignments make') → the options it takes."""
    import argparse

    found: dict[str, set[str]] = {}

    def walk(p, prefix):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}".strip())
        found[prefix] = {o for a in p._actions for o in a.option_strings}

    walk(parser, "")
    return found


@pytest.mark.parametrize("path", sorted(DOCS))
def test_commands_in_the_docs_exist(path):
    options = _options(build_parser())
    text = DOCS[path].replace("\\\n", " ")
    for line in re.findall(r"featureae-lite ([a-z][^`\n|]*)", text):
        line = line.split(" #")[0]  # a comment after the command is prose
        words = line.split()
        command = " ".join(words[:2]) if " ".join(words[:2]) in options else words[0]
        if command not in options:
            continue  # prose such as "featureae-lite notebooks" in a sentence is checked below
        for opt in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line):
            assert opt in options[command] | options[""], f"{path}: featureae-lite {command} has no {opt}"
    for name in re.findall(r"featureae-lite ([a-z][a-z-]*)", text):
        assert name in options, f"{path}: no command featureae-lite {name}"
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"`make (\w+)`", text):
        assert re.search(rf"^{target}:", makefile, re.M), f"{path}: no make target {target}"
    for script in re.findall(r"python (benchmarks/\w+\.py)", text):
        assert (ROOT / script).is_file(), f"{path}: no {script}"
    assert not re.search(r"python -m bench\b", text), f"{path}: bench/ is benchmarks/, run by path"


@pytest.mark.parametrize("path", sorted(DOCS))
def test_relative_links_resolve(path):
    base = (ROOT / path).parent
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", DOCS[path]):
        if not re.match(r"[a-z]+://", target):
            assert (base / target).exists(), f"{path}: broken link {target}"
