"""environment.yml installs the package itself (pyproject.toml is the one dependency list); the console
script is declared; the wheel ships the course notebooks and the site's templates."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_installs_the_package_itself():
    """environment.yml brings Python and pip and installs the package with pip: pyproject.toml stays
    the only dependency list, so the two cannot drift."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    plain = sorted(re.split(r"[<>=]", d, maxsplit=1)[0] for d in deps if isinstance(d, str))
    assert plain == ["pip", "python"]
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict)]
    assert pip == ["-e .[dev]"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = meta["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[-1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_console_script_declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["scripts"]["featureae-lite"] == "featureae_lite.cli:main"


def test_every_package_folder_is_listed():
    """pyproject.toml lists the packages (the course maps to notebooks/): none may be forgotten."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    inits = (ROOT / "featureae_lite").rglob("__init__.py")
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in inits}
    assert found | {"featureae_lite.course.notebooks"} == listed


def test_wheel_ships_the_course_notebooks(tmp_path):
    """A non-editable install gets the eleven notebooks and the expected figures as package data."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in ("featureae_lite", "notebooks"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp_path / "dist"), str(src)], check=True, timeout=120)
    (wheel,) = (tmp_path / "dist").glob("featureae_lite-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    prefix = "featureae_lite/course/notebooks/"
    course = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
    notebooks = {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert course == notebooks | {"expected_figures.json"}
    assert len(course) == 12
    assert {"featureae_lite/cli/__init__.py", "featureae_lite/data/synth.py", "featureae_lite/models/fae.py",
            "featureae_lite/course/resources/site_page.html.j2",
            "featureae_lite/course/resources/site_index.html.j2"} <= names


def test_installed_expected_figures_are_read_only(tmp_path):
    from featureae_lite.course import figures, notebooks

    installed = Path(figures.__file__).parent / "notebooks" / "expected_figures.json"
    with pytest.raises(ValueError, match="expected_figures.json: the expected figures of an installed"):
        figures.record_expected([tmp_path], quick=True, expected_file=installed)
    assert figures.writable_expected_file() == (ROOT / "notebooks" / "expected_figures.json").resolve()
    assert notebooks.NOTEBOOK_DIR == figures.NOTEBOOK_DIR == ROOT / "notebooks"
