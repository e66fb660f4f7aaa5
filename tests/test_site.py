"""The course site: landing page from a run's records, QUICK banner from params.json, offline pages."""

from __future__ import annotations

import base64
import io
import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from featureae_lite.course.html_report import KEY_RESULTS, key_result, render_run
from featureae_lite.course.notebooks import list_notebooks
from featureae_lite.course.site_check import (
    external_references,
    find_chromium,
    typeset_count,
    typeset_in_chromium,
)

GOALS = ("# 02 · Structural similarity (SSIM)\n\n**Learning goals**\n- take SSIM apart;\n"
         "- use $1-\\mathrm{SSIM}$ as the anomaly map.\n\n**Theory.** "
         "$$\\mathrm{SSIM}(x,y)=\\frac{2\\mu_x\\mu_y+C_1}{\\mu_x^2+\\mu_y^2+C_1}$$")


def _png(size: tuple[int, int]) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _run(folder, quick: bool, params: bool = True):
    """A finished run folder as ``featureae-lite notebooks`` writes it, with one executed notebook."""
    folder.mkdir()
    figure = {"image/png": _png((40, 20)), "text/plain": "<Figure>"}
    big = {"image/png": _png((900, 300)), "text/plain": "<Figure>"}
    nb = new_notebook(cells=[
        new_markdown_cell(GOALS),
        new_code_cell("plot()", outputs=[new_output("display_data", data=figure)]),
        new_code_cell("maps()", outputs=[new_output("display_data", data=big)]),
        new_code_cell("print(1 + 1)", outputs=[new_output("stream", text="2\n")])])
    nbformat.write(nb, folder / "02_ssim.ipynb")
    (folder / "02_ssim.json").write_text(json.dumps({"ae_ssim_structural_ap": 0.0171,
                                                     "ae_l1_structural_ap": 0.01}))
    if params:
        (folder / "params.json").write_text(json.dumps({"QUICK": quick, "SEED": 0, "threads": 2,
                                                        "machine": "test CPU"}))
    (folder / "times.json").write_text(json.dumps({"02_ssim": 14.2}))
    # the title deliberately disagrees with params.json: the banner follows the recorded preset
    (folder / "index.md").write_text("# featureae_lite notebook run (classroom settings)\n")
    return folder


def test_the_landing_page_shows_title_goals_thumbnail_key_result_and_time(tmp_path):
    index = render_run(_run(tmp_path / "run", quick=False), tmp_path / "site")
    page = index.read_text()
    assert '<a href="02_ssim.html">02 · Structural similarity (SSIM)</a>' in page
    assert "take SSIM apart" in page and "ran in 14 s" in page
    assert "structural anomalies: SSIM autoencoder 0.017 vs l1 autoencoder 0.010" in page
    assert 'src="thumbs/02_ssim.png"' in page and "QUICK run" not in page
    from PIL import Image

    assert Image.open(tmp_path / "site" / "thumbs" / "02_ssim.png").size == (520, 173)  # the larger figure
    notebook_page = (tmp_path / "site" / "02_ssim.html").read_text()
    assert "print" in notebook_page and 'href="index.html"' in notebook_page
    with pytest.raises(ValueError, match="not a finished notebook run folder"):
        render_run(tmp_path / "site", tmp_path / "other")


def test_a_quick_run_carries_its_banner_on_every_page(tmp_path):
    render_run(_run(tmp_path / "run", quick=True), tmp_path / "site")
    for page in ("index.html", "02_ssim.html"):
        assert "models trained for seconds" in (tmp_path / "site" / page).read_text().replace("\n", " ")


def test_no_page_loads_anything_from_the_internet(tmp_path):
    render_run(_run(tmp_path / "run", quick=True), tmp_path / "site")
    for page in (tmp_path / "site").glob("*.html"):
        assert external_references(page.read_text()) == [], page.name
    assert (tmp_path / "site" / "mathjax" / "MathJax.js").is_file()
    assert external_references('<script src="https://cdn.example/x.js"></script><link href="//a/b.css">'
                               "<style>/* https://in.a/comment */ @import 'http://x/y.css';</style>") == [
        "https://cdn.example/x.js", "//a/b.css", "http://x/y.css"]


def test_every_notebook_has_a_key_result_line():
    stems = [p.stem for p in list_notebooks()]
    assert sorted(KEY_RESULTS) == stems
    expected = json.loads((list_notebooks()[0].parent / "expected_figures.json").read_text())["classroom"]
    for stem in stems:  # every name a line uses is a figure the notebook records
        line = key_result(stem, {k: 0.5 for k in expected[stem]})
        assert line and "n/a" not in line, stem


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium); "
                                                    "the offline math check needs a real browser")
def test_math_is_typeset_offline_in_headless_chromium(tmp_path):
    render_run(_run(tmp_path / "run", quick=True), tmp_path / "site")
    dom = typeset_in_chromium(tmp_path / "site" / "02_ssim.html")
    assert typeset_count(dom) >= 2 and "Math Processing Error" not in dom
    assert typeset_count(typeset_in_chromium(tmp_path / "site" / "index.html")) >= 1
    # the same page with MathJax from a CDN shows raw TeX: the check sees the difference
    page = (tmp_path / "site" / "02_ssim.html").read_text()
    cdn = page.replace('src="mathjax/MathJax.js', 'src="https://cdnjs.cloudflare.com/mathjax/MathJax.js')
    (tmp_path / "site" / "cdn.html").write_text(cdn)
    assert typeset_count(typeset_in_chromium(tmp_path / "site" / "cdn.html", budget_ms=3000)) == 0


def test_the_main_job_ends_with_the_site_inside_its_run_folder(tmp_path, monkeypatch, capsys):
    from featureae_lite import cli
    from featureae_lite.course import jobs, notebooks

    def fake_execute(path, out_dir, parameters, timeout=1800):
        nb = new_notebook(cells=[new_markdown_cell(GOALS.replace("02 · Structural similarity (SSIM)",
                                                                 "00 · The data"))])
        nbformat.write(nb, out_dir / path.name)
        (out_dir / f"{path.stem}.json").write_text(json.dumps({"intensity_contrast_tumor": 1.5}))
        return 2.0

    monkeypatch.setattr(notebooks, "execute_notebook", fake_execute)
    run = tmp_path / "run"
    result = jobs.run_notebook_job(True, run, only=["00"], site_in_run=True)  # as `featureae-lite main` ends
    index = run / "site" / "index.html"
    assert result.ok and result.site == index
    assert "models trained for seconds" in index.read_text().replace("\n", " ")
    assert "tumor 1.500" in index.read_text()
    command = ["notebooks", "--quick", "--only", "00", "--out", str(run), "--overwrite", "--html",
               str(tmp_path / "html")]
    assert cli.main(command) == 0 and not (run / "site").exists()  # a rerun clears it
    assert (tmp_path / "html" / "index.html").as_uri() in capsys.readouterr().out


def test_no_notebook_formula_uses_the_prime_shorthand_the_offline_mathjax_fails_on():
    # Measured in headless Chromium with the site's MathJax (jupyter-server-mathjax, STIX-Web fonts):
    # $x'$ shows "[Math Processing Error]" while $x^\prime$ typesets. Inline formulas, line by line.
    import re

    bad = []
    for path in list_notebooks():
        for cell in nbformat.read(path, 4).cells:
            if cell.cell_type == "markdown":
                for line in cell.source.splitlines():
                    bad += [f"{path.name}: {m}" for m in re.findall(r"\$[^$`]+\$", line) if "'" in m]
    assert bad == [], "write x^\\prime instead of x' in math: " + "; ".join(bad)
