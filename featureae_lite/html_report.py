"""Read before you run: an executed notebook run rendered as HTML pages with an index page.

A self-learner or a lecturer opens ``index.html`` and reads the whole course with its figures and
recorded numbers, without executing anything (nbconvert renders the notebooks, mistune the index).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from featureae_lite.fileio import check_output_dir, write_atomic


def render_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Render every executed notebook of ``run_dir`` as ``<name>.html`` and an ``index.html``.

    Parameters
    ----------
    run_dir : path-like
        A finished run folder of ``featureae-lite notebooks`` (executed notebooks and ``index.md``).
    out_dir : path-like
        Folder for the HTML pages (created).

    Returns
    -------
    Path
        The index page.

    Raises
    ------
    ValueError
        ``run_dir`` is not a finished run (no ``index.md``) or ``out_dir`` cannot be written.
    """
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    run_dir = Path(run_dir)
    index = run_dir / "index.md"
    if not index.is_file():
        raise ValueError(f"{run_dir}: not a finished notebook run folder (no index.md)")
    out_dir = check_output_dir(out_dir, "--html")
    exporter = HTMLExporter(template_name="lab")  # figures are embedded: each page stands alone
    for notebook in sorted(run_dir.glob("[0-9][0-9]_*.ipynb")):
        body, _ = exporter.from_filename(str(notebook))
        write_atomic(out_dir / f"{notebook.stem}.html", body)
    text = index.read_text().replace(".ipynb)", ".html)")
    title = html.escape(text.splitlines()[0].lstrip("# ") if text else "featureae_lite run")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}</style>"
            f"</head><body>\n{markdown2html_mistune(text)}\n</body></html>\n")
    return write_atomic(out_dir / "index.html", page)
