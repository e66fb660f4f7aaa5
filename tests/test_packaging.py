"""pyproject.toml and environment.yml list the same packages; the console script is declared."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}
CONDA_ONLY = {"python", "pip", "cpuonly"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["dev"]
    return {_name(r) for r in reqs}


def _environment_entries() -> list[str]:
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    return [d for d in deps if isinstance(d, str)] + [d for d in pip if not d.startswith("-e")]


def _environment_requirements() -> set[str]:
    names = {_name(e) for e in _environment_entries()} - CONDA_ONLY
    return {CONDA_TO_PYPI.get(n, n) for n in names}


def test_environment_matches_pyproject():
    py, env = _pyproject_requirements(), _environment_requirements()
    assert py == env, f"only in pyproject: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_version_bounds_agree():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {CONDA_TO_PYPI.get(_name(e), _name(e)): e for e in _environment_entries()}
    for req in meta["dependencies"]:
        bounds = req[len(_name(req)) :].strip()
        assert env[_name(req)].endswith(bounds), f"{req} has other bounds in environment.yml"


def test_console_script_declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["scripts"]["featureae-lite"] == "featureae_lite.cli:main"
