"""Checks of the course site: no page loads anything from the internet, and its math typesets offline.

:func:`external_references` reads the HTML (no browser); :func:`typeset_in_chromium` opens a page in
headless Chromium with every network request sent to a dead proxy and returns the DOM after MathJax
ran, so a page that needed a CDN shows raw TeX there. ``python benchmarks/site_offline.py`` runs both on a
rendered site.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# src/href of scripts, stylesheets, images and frames, CSS url(...) and @import — what a browser loads
_LOADS = re.compile(
    r"""<(?:script|img|iframe|source|embed)\b[^>]*?\bsrc\s*=\s*["']?([^"'\s>]+)"""
    r"""|<link\b[^>]*?\bhref\s*=\s*["']?([^"'\s>]+)"""
    r"""|url\(\s*["']?([^"')\s]+)"""
    r"""|@import\s+["']([^"']+)"""
    r"""|import\(\s*["']([^"']+)""", re.IGNORECASE)
_REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
MATH_MARKERS = ('class="MathJax"', 'class="MathJax_Display"', 'class="MathJax_CHTML"', 'class="mjx-')


def external_references(page: str) -> list[str]:
    """Every address in ``page`` that a browser would load from the network (empty = offline page).

    Parameters
    ----------
    page : str
        The HTML text; CSS comments (licence notes with links) are ignored.
    """
    text = _CSS_COMMENT.sub("", page)
    found = [next(g for g in m.groups() if g) for m in _LOADS.finditer(text)]
    return [url for url in found if _REMOTE.match(url)]


def find_chromium() -> str | None:
    """Path of a Chromium (or Chrome) executable, from ``$CHROMIUM`` or the PATH; None if there is none."""
    wanted = os.environ.get("CHROMIUM")
    if wanted:
        return shutil.which(wanted)
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def typeset_in_chromium(page: str | os.PathLike, chromium: str | None = None, budget_ms: int = 20000,
                        timeout: float = 120) -> str:
    """The DOM of ``page`` after headless Chromium ran its scripts, with the network blocked.

    Parameters
    ----------
    page : path-like
        An HTML file.
    chromium : str, optional
        The executable (default :func:`find_chromium`).
    budget_ms : int
        Virtual time the page's scripts get (MathJax typesets within it).

    Raises
    ------
    FileNotFoundError
        No Chromium is installed.
    RuntimeError
        Chromium failed (its last error line).
    """
    chromium = chromium or find_chromium()
    if not chromium:
        raise FileNotFoundError("no chromium found (apt-get install chromium, or set $CHROMIUM)")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",  # nothing reaches a network
               f"--virtual-time-budget={budget_ms}", "--dump-dom", Path(page).resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"chromium failed on {page} (exit {done.returncode}): {last}")
    return done.stdout


def typeset_count(dom: str) -> int:
    """How many typeset formulas a DOM holds (MathJax's output elements)."""
    return sum(dom.count(marker) for marker in MATH_MARKERS)
