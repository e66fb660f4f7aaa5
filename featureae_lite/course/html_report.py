"""The course site: an executed notebook run rendered as offline HTML pages with a landing page.

A self-learner or a lecturer opens ``index.html`` and reads the course with the figures and numbers of
that run, without executing anything. nbconvert renders the notebooks (its lab template, extended by
``resources/site_page.html.j2``), jinja2 the landing page (``resources/site_index.html.j2``): per
notebook its title, learning goals, a thumbnail of its key figure, one key result generated from the
run's recorded figures (:data:`KEY_RESULTS`) and its run time. The pages load nothing from the
internet: MathJax is copied next to them from the installed ``jupyter_server_mathjax`` package.
Pages of a QUICK run (``params.json`` says ``"QUICK": true``) carry a banner saying so.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import check_output_dir, write_atomic
from featureae_lite.core.presets import QUICK

RESOURCES = Path(__file__).resolve().parent / "resources"
MATHJAX_DIR = "mathjax"  # folder next to the pages
MATHJAX_URL = f"{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
KEY_FIGURE_TAG = "key-figure"  # a cell tag that picks a notebook's thumbnail (else its largest figure)

# One line per notebook, filled with the run's recorded figures (missing ones read "n/a"). The lines
# state numbers side by side, not a verdict: a QUICK run records the same names with other values.
KEY_RESULTS = {
    "00_mri_data_and_anomalies": "intensity contrast of the anomaly types (s.d. of healthy tissue): tumor "
                                 "{intensity_contrast_tumor}, stroke {intensity_contrast_stroke}, lesions "
                                 "{intensity_contrast_lesions}, structural {intensity_contrast_structural}",
    "01_l1_residual_autoencoder": "pixel AP: l1 AE {ae_l1_pixel_ap}, VAE {vae_pixel_ap}, intensity threshold "
                                  "{threshold_pixel_ap}; l1 AE on structural anomalies {ae_l1_structural_ap}",
    "02_ssim": "AP on structural anomalies: SSIM autoencoder {ae_ssim_structural_ap} vs l1 autoencoder "
               "{ae_l1_structural_ap}",
    "03_feature_space": "contrast of structural anomalies in pretrained features "
                        "{structural_pretrained_contrast} vs in intensity {structural_intensity_contrast}",
    "04_feature_autoencoder": "pixel AP: FAE {fae_pixel_ap} vs l1 residual {ae_l1_pixel_ap}; on structural "
                              "anomalies {fae_structural_ap} vs {ae_l1_structural_ap}",
    "05_evaluation": "FAE Dice: best {fae_best_dice}, at the validation threshold "
                     "{fae_dice_at_val_threshold}; FAE pixel AP interval [{fae_pixel_ap_ci_low}, "
                     "{fae_pixel_ap_ci_high}]",
    "06_perceptual_autoencoder": "pixel AP: DPA {dpa_pixel_ap} vs l1 residual {ae_l1_pixel_ap}",
    "07_proxy_bridged_reconstruction": "pixel AP: ProxyAno {proxyano_pixel_ap} vs l1 residual "
                                       "{ae_l1_pixel_ap}",
    "08_patch_similarity_scoring": "pixel AP of one restoration: local NCC map {ncc11_pixel_ap} vs plain "
                                   "residual {residual_pixel_ap}",
    "09_benchmark": "pixel AP: FAE {fae_pixel_ap} [{fae_pixel_ap_ci_low}, {fae_pixel_ap_ci_high}], DPA "
                    "{dpa_pixel_ap}, patchsim {patchsim_pixel_ap}, l1 residual {ae_l1_pixel_ap} "
                    "[{ae_l1_pixel_ap_ci_low}, {ae_l1_pixel_ap_ci_high}]",
    "10_transfer_to_real_brains": "pixel AP, synthetic T1 test → real cases: l1 AE "
                                  "{ae_l1_t1_synthetic_pixel_ap} → {ae_l1_real_pixel_ap}, intensity "
                                  "threshold {threshold_t1_synthetic_pixel_ap} → {threshold_real_pixel_ap}",
}

_QUICK_STEPS = sorted({b["steps"] for b in QUICK.budgets.values()})
QUICK_BANNER = ('<div class="fl-banner" role="note"><b>QUICK run.</b> These pages were rendered from a '
                "QUICK run: small data, 64-px slices and models trained for seconds "
                f"({'/'.join(map(str, _QUICK_STEPS))} steps), too few for most of them to learn. The "
                "lessons of the course (such as FAE's lead over the l1 residual) need the classroom "
                "budgets and may be inverted here. Read the classroom run (<code>make run</code>) for "
                "the lessons; this one only shows that everything executes.</div>")


@dataclass
class NotebookCard:
    """What the landing page shows of one executed notebook."""

    stem: str
    page: str
    title: str
    goals: str
    thumbnail: str | None
    result: str | None
    time: str
    error: str | None


def read_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's recorded parameters, times and errors.

    Returns
    -------
    dict
        ``quick`` (bool, from ``params.json``; the title of ``index.md`` when a run predates it),
        ``times`` (notebook stem → seconds), ``errors`` (stem → message) and ``params``.

    Raises
    ------
    ValueError
        ``run_dir`` is not a finished run (no ``index.md``).
    """
    run_dir = Path(run_dir)
    index = run_dir / "index.md"
    if not index.is_file():
        raise InputError(f"{run_dir}: not a finished notebook run folder (no index.md)")

    def load(name: str) -> dict:
        path = run_dir / name
        return json.loads(path.read_text()) if path.is_file() else {}

    params = load("params.json")
    quick = bool(params["QUICK"]) if "QUICK" in params else "(QUICK settings)" in index.read_text()
    return {"quick": quick, "params": params, "times": load("times.json"), "errors": load("errors.json")}


def key_result(stem: str, figures: dict[str, float | None]) -> str | None:
    """The notebook's line of :data:`KEY_RESULTS` filled with ``figures`` (None without a line or figures)."""
    from featureae_lite.course.notebooks import _format_figure

    template = KEY_RESULTS.get(stem)
    if template is None or not figures:
        return None
    names = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    return template.format(**{n: _format_figure(figures.get(n)) for n in names})


def _images(nb: Any) -> list[tuple[bool, bytes]]:
    """(tagged as key figure, PNG bytes) of every image output, in order."""
    found = []
    for cell in nb.cells:
        tagged = KEY_FIGURE_TAG in cell.get("metadata", {}).get("tags", [])
        for out in cell.get("outputs", []):
            data = out.get("data", {}).get("image/png")
            if data:
                found.append((tagged, base64.b64decode(data if isinstance(data, str) else "".join(data))))
    return found


def key_figure(nb: Any) -> bytes | None:
    """PNG bytes of a notebook's key figure: the first output of a cell tagged ``key-figure``, else the
    largest figure (the richest panel, usually the maps side by side); None without figures."""
    images = _images(nb)
    tagged = [png for is_key, png in images if is_key]
    if tagged:
        return tagged[0]
    return max((png for _, png in images), key=len, default=None)


def _thumbnail(png: bytes, path: Path, width: int = 520) -> Path:
    """A downscaled copy of ``png`` (Pillow, which matplotlib brings) at ``path``."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png))
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return write_atomic(path, buffer.getvalue())


def _title_and_goals(nb: Any) -> tuple[str, str]:
    """The first heading of the notebook and its "Learning goals" list as markdown."""
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    lines = first.splitlines()
    title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), "")
    goals: list[str] = []
    if "**Learning goals**" in first:
        for line in first.split("**Learning goals**", 1)[1].splitlines()[1:]:
            if line.strip() and not line.startswith((" ", "-")):
                break  # the goals end at the next paragraph
            goals.append(line)
    return title, "\n".join(goals)


def copy_mathjax(out_dir: Path) -> Path:
    """Copy MathJax from the installed ``jupyter_server_mathjax`` package to ``out_dir/mathjax``.

    Raises
    ------
    ModuleNotFoundError
        The package is missing (it is a dependency of featureae_lite: reinstall).
    """
    import jupyter_server_mathjax

    source = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    target = out_dir / MATHJAX_DIR
    if not (target / "MathJax.js").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True)
    return target


def _seconds(value: float | None) -> str:
    if value is None:
        return "not run"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def render_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Render every executed notebook of ``run_dir`` as ``<name>.html`` and a landing ``index.html``.

    Parameters
    ----------
    run_dir : path-like
        A finished run folder of ``featureae-lite notebooks`` (executed notebooks, ``index.md``,
        ``params.json``, ``times.json`` and the recorded ``<name>.json`` figures).
    out_dir : path-like
        Folder for the pages (created), with ``mathjax/`` and ``thumbs/`` beside them.

    Returns
    -------
    Path
        The landing page.

    Raises
    ------
    ValueError
        ``run_dir`` is not a finished run (no ``index.md``) or ``out_dir`` cannot be written.
    """
    import jinja2
    import nbformat
    from markupsafe import Markup
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    run_dir = Path(run_dir)
    run = read_run(run_dir)
    out_dir = check_output_dir(out_dir, "--html")
    copy_mathjax(out_dir)
    (out_dir / "thumbs").mkdir(exist_ok=True)
    banner = QUICK_BANNER if run["quick"] else ""
    exporter = HTMLExporter(template_name="lab", template_file="site_page.html.j2",
                            extra_template_paths=[str(RESOURCES)], mathjax_url=MATHJAX_URL)
    cards = []
    for path in sorted(run_dir.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(nb, resources={"fl_banner": banner,
                                                             "metadata": {"name": path.stem}})
        write_atomic(out_dir / f"{path.stem}.html", body)
        title, goals = _title_and_goals(nb)
        png = key_figure(nb)
        thumb = _thumbnail(png, out_dir / "thumbs" / f"{path.stem}.png") if png else None
        fig_file = run_dir / f"{path.stem}.json"
        figures = json.loads(fig_file.read_text()) if fig_file.is_file() else {}
        cards.append(NotebookCard(
            stem=path.stem, page=f"{path.stem}.html", title=title or path.stem,
            goals=Markup(markdown2html_mistune(goals)) if goals else "",
            thumbnail=f"thumbs/{thumb.name}" if thumb else None, result=key_result(path.stem, figures),
            time=f"ran in {_seconds(run['times'].get(path.stem))}", error=run["errors"].get(path.stem)))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(RESOURCES)), autoescape=True)
    params = run["params"]
    settings = "QUICK" if run["quick"] else "classroom"
    subtitle = (f"Rendered from a {settings} run (seed {params.get('SEED', '?')}, "
                f"{params.get('threads', '?')} threads, {params.get('machine', 'unknown machine')}).")
    page = env.get_template("site_index.html.j2").render(
        title=f"featureae_lite — the course ({settings} run)", subtitle=subtitle, banner=Markup(banner),
        notebooks=cards, mathjax_url=MATHJAX_URL, run_name=run_dir.name,
        total=_seconds(sum(run["times"].values())) if run["times"] else "n/a")
    return write_atomic(out_dir / "index.html", page)
