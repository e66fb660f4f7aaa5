"""Every notebook is stripped, has a `parameters` cell, stays short, and runs under papermill (QUICK)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from featureae_lite.course.exercises import MIME
from featureae_lite.course.figures import check_figures, check_orderings, check_run
from featureae_lite.course.notebooks import list_notebooks, run_notebooks, write_index

NOTEBOOKS = list_notebooks()
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()

# How the notebooks ask: a bold "Question." (under a "Move the slider(s)" heading) or "Discuss:" /
# "Discuss." prompt, and the numbered items after a bold "Questions" in the Summary cells.
PROMPT = re.compile(r"\*\*(?:Question\.|Discuss[:.])\*\*")
SLIDER = re.compile(r"^#{2,4} Move the sliders?\b", re.M)
QUESTIONS = re.compile(r"\*\*Questions\*\*")
ITEM = re.compile(r"^\d+\. ", re.M)
EXPLANATION = re.compile(r"<details><summary>[^<\n]+</summary>\n\n(?=\S).*?\S\n\n</details>", re.S)
ESTIMATE = re.compile(r"\(~(\d+) min\)\s*$")
# Cells of notebook 01 rewritten on another branch of issue 25, which writes their explanations and
# estimates; empty this once both branches are merged.
PENDING: dict[str, set[str]] = {}


def questions_asked(source: str) -> int:
    """How many questions a markdown cell asks: its prompts, plus the items of its Questions list."""
    asked = len(PROMPT.findall(source)) or len(SLIDER.findall(source))
    for part in QUESTIONS.split(source)[1:]:
        asked += len(ITEM.findall(part.split("<details")[0]))
    return asked


def test_the_sequence_exists():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:6] == ["00_mri_data_and_anomalies", "01_l1_residual_autoencoder", "02_ssim",
                         "03_feature_space", "04_feature_autoencoder", "05_evaluation"]
    assert names[-1] == "10_transfer_to_real_brains"  # the transfer test comes after the benchmark


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name} has outputs: strip them before committing"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "QUICK" in tagged[0].source and "SEED" in tagged[0].source
    def lines(cells):
        return sum(len([ln for ln in c.source.splitlines() if ln.strip()]) for c in cells)

    # The "Inside the model" section (its cells call fl.inside) is code a student must see — the layer
    # table, the loss's source, a training step by hand — and is bounded on its own.
    inside = [c for c in code if "fl.inside." in c.source]
    assert lines(inside) <= 20, f"{path.name}: the by-hand section has {lines(inside)} code lines"
    n_lines = lines([c for c in code if c not in inside])
    assert n_lines <= 150, f"{path.name} has {n_lines} code lines; move code into the package"
    assert nb.cells[0].cell_type == "markdown" and "Learning goals" in nb.cells[0].source
    assert "record_figures" in code[-1].source


def _markdown(path):
    pending = PENDING.get(path.stem, set())
    return [c for c in nbformat.read(path, as_version=4).cells
            if c.cell_type == "markdown" and c.get("id") not in pending]


def test_question_detection_matches_how_the_notebooks_ask():
    assert questions_asked("### Move the slider\nText.\n\n**Question.** Why?") == 1
    assert questions_asked("### Move the sliders\nMove them: what happens?") == 1
    assert questions_asked("**Discuss.** Why? **Discuss:** How?") == 2
    summary = "## Summary\n- a point\n\n**Questions**\n1. Why?\n2. How, and\n   why?\n3. What?\n"
    assert questions_asked(summary) == 3 and questions_asked("## Summary\n1. not a question") == 0
    asked = sum(questions_asked(c.source) for p in NOTEBOOKS for c in _markdown(p))
    assert asked >= 40, f"only {asked} questions found in the notebooks: did the markup change?"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_question_has_a_collapsed_explanation(path):
    for cell in _markdown(path):
        asked, opened = questions_asked(cell.source), cell.source.count("<details")
        assert opened >= asked, (f"{path.name}, cell {cell.get('id')}: {asked} questions, {opened} "
                                 "<details> explanations")
        assert len(EXPLANATION.findall(cell.source)) == opened == cell.source.count("</details>"), \
            (f"{path.name}, cell {cell.get('id')}: write each explanation as '<details><summary>…"
             "</summary>', a blank line, the text, a blank line, '</details>'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_section_has_a_time_estimate_and_they_add_up(path):
    headings = [ln for c in _markdown(path) for ln in c.source.splitlines() if ln.startswith("## ")]
    missing = [h for h in headings if not ESTIMATE.search(h)]
    assert headings and not missing, f"{path.name}: headings without a '(~N min)' estimate: {missing}"
    if path.stem in PENDING:
        return  # some of its sections are estimated on the other branch
    total = int(re.search(rf"\| `{path.stem}` \|.*\| (\d+) min \|", README).group(1))
    minutes = sum(int(ESTIMATE.search(h).group(1)) for h in headings)
    assert abs(minutes - total) <= max(5, total // 7), \
        f"{path.name}: its sections add up to {minutes} min, README.md gives the notebook {total} min"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, quick_data_dir):
    """Execute the whole sequence once with QUICK=True into a temporary run folder."""
    root = tmp_path_factory.mktemp("nbrun")
    return run_notebooks(quick=True, out=root / "run", data_dir=quick_data_dir)


@pytest.mark.slow
def test_every_notebook_runs_headless_and_records_figures(quick_run, _isolated_home):
    for path in NOTEBOOKS:
        executed = nbformat.read(quick_run / path.name, as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        figures = json.loads((quick_run / f"{path.stem}.json").read_text())
        assert figures, f"{path.name} recorded no figures"
        images = [o for c in executed.cells for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {})]
        assert images, f"{path.name} shows no figure in a headless run"
        feedback = [o["data"][MIME] for c in executed.cells for o in c.get("outputs", [])
                    if MIME in o.get("data", {})]
        assert len(feedback) >= 2 and all(f["status"] == "passed" for f in feedback), feedback
    index = (quick_run / "index.md").read_text()
    assert all(p.name in index for p in NOTEBOOKS)
    report = check_run(quick_run, quick=True)
    assert report.failures == [], report.failures  # the orderings the lessons rely on hold
    for line in report.drift:  # drift from the measured bands is information, not a failure
        print("drift:", line)
    assert json.loads((quick_run / "params.json").read_text())["QUICK"] is True
    # the kernels kept their IPython profile in the temporary home, not in the user's
    assert (_isolated_home / "ipython" / "profile_default").is_dir()


METHOD_NOTEBOOKS = ("01", "02", "04", "06", "07", "08")


@pytest.mark.slow
def test_method_notebooks_show_the_network_and_a_training_step_by_hand(quick_run):
    """Each method's notebook shows its network's layer table (torchinfo), the library's source of
    its loss, and runs forward, loss, backward and an optimiser step by hand, with a figure."""
    for prefix in METHOD_NOTEBOOKS:
        (path,) = [p for p in NOTEBOOKS if p.name.startswith(f"{prefix}_")]
        cells = [c for c in nbformat.read(quick_run / path.name, as_version=4).cells if c.cell_type == "code"]

        def shown(cell):
            return "".join(o.get("text", "") + "".join(o.get("data", {}).get("text/plain", ""))
                           + "".join(o.get("data", {}).get("text/html", "")) for o in cell.outputs)

        assert any("Total params" in shown(c) and "Output Shape" in shown(c) for c in cells), path.name
        assert any("def loss(self" in shown(c) for c in cells), f"{path.name}: no loss source shown"
        (by_hand,) = [c for c in cells if "loss.backward()" in c.source and "optimiser.step()" in c.source]
        assert any("image/png" in o.get("data", {}) for o in by_hand.outputs), path.name


@pytest.mark.slow
def test_notebook_10_runs_the_transfer_test_on_a_fetched_real_set(quick_run, quick_data_dir):
    figures = json.loads((quick_run / "10_transfer_to_real_brains.json").read_text())
    if not (quick_data_dir / "real").exists():
        assert "ae_l1_real_pixel_ap" not in figures and figures["n_real_slices"] == 0
        pytest.skip("no real set fetched into data/real (featureae-lite fetch-real): the section is skipped")
    for m in ("threshold", "ae_l1", "ae_l1_wide"):  # ae_l1_wide: trained on the wide population
        assert 0 < figures[f"{m}_real_pixel_ap"] <= 1 and 0 < figures[f"{m}_t1_synthetic_pixel_ap"] <= 1
        assert 0 <= figures[f"{m}_real_pixel_auroc"] <= 1
    assert 0 < figures["ae_l1_wide_t1_val_pixel_ap"] <= 1 and 0 < figures["ae_l1_t1_val_pixel_ap"] <= 1
    assert figures["n_real_slices"] > 0
    l1_figures = json.loads((quick_run / "01_l1_residual_autoencoder.json").read_text())
    assert "ae_l1_real_pixel_ap" not in l1_figures  # the transfer test is notebook 10's only


def test_check_figures_reports_drift(tmp_path):
    (tmp_path / "expected.json").write_text(json.dumps(
        {"quick": {"04_feature_autoencoder": {"fae_pixel_ap": [0.2, 0.9]}, "05_evaluation": {"x": [0, 1]}},
         "classroom": {}}))
    (tmp_path / "04_feature_autoencoder.json").write_text(json.dumps({"fae_pixel_ap": 0.05}))
    problems = check_figures(tmp_path, quick=True, expected_file=tmp_path / "expected.json")
    assert len(problems) == 2
    assert "fae_pixel_ap = 0.05 outside the expected range [0.2, 0.9]" in problems[0]
    assert "05_evaluation: no recorded figures" in problems[1]
    only_04 = check_figures(tmp_path, quick=True, expected_file=tmp_path / "expected.json",
                            notebooks=["04_feature_autoencoder"])
    assert only_04 == problems[:1]  # a --only run is checked on the notebooks it executed
    (tmp_path / f"{NOTEBOOKS[0].stem}.json").write_text(json.dumps({"n": 160.0, "ap": 0.12345, "gone": None}))
    write_index(tmp_path, NOTEBOOKS[:2], {NOTEBOOKS[0].stem: 3.0, NOTEBOOKS[1].stem: 4.4}, quick=True)
    index = (tmp_path / "index.md").read_text()
    assert "QUICK" in index and "| 3 | n = 160, ap = 0.123, gone = n/a |" in index
    assert "| **total** | 7 | |" in index


def test_expected_ranges_and_record(tmp_path):
    from featureae_lite.course.figures import expected_ranges, record_expected

    bands = expected_ranges({"count": 3.0, "ap": 0.5, "fit_seconds": 12.0, "missing": None})
    assert bands == {"count": {"seen": [3.0]}, "ap": [0.448, 0.552]}  # pad 0.002 + 10 %
    # two runs: the spread is added once more on each side; a discrete figure keeps both values
    two = expected_ranges([{"ap": 0.5, "latent": 32.0, "chosen_latent_dim": 32.0},
                           {"ap": 0.6, "latent": 128.0, "chosen_latent_dim": 128.0}])
    assert two == {"ap": [0.338, 0.762], "latent": {"seen": [32.0, 128.0]}}
    runs = [tmp_path / "a", tmp_path / "b"]
    for run, ap in zip(runs, (0.5, 0.6), strict=True):
        run.mkdir()
        (run / "07_x.json").write_text(json.dumps({"ap": ap}))
        (run / "params.json").write_text(json.dumps({"SEED": 0, "threads": 1 + len(run.name)}))
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"quick": {"00_y": {"n": [1, 1]}}, "classroom": {}}))
    assert record_expected(runs, quick=True, expected_file=expected) == ["07_x"]
    stored = json.loads(expected.read_text())["quick"]
    assert stored["00_y"] == {"n": [1, 1]} and stored["07_x"] == {"ap": [0.338, 0.762]}
    assert [r["run"] for r in stored["_derivation"]["runs"]] == ["a", "b"]
    problems = check_figures(runs[0], quick=True, expected_file=expected)
    assert problems == ["00_y: no recorded figures (00_y.json missing)"]


def test_an_if_recorded_ordering_is_skipped_only_without_its_figures(tmp_path):
    expected = tmp_path / "expected.json"
    rule = {"notebook": "01_x", "left": "real_ap", "op": "<", "right": "syn_ap", "if_recorded": True,
            "lesson": "real below synthetic"}
    expected.write_text(json.dumps({"quick": {}, "orderings": {"quick": [rule]}}))
    (tmp_path / "01_x.json").write_text(json.dumps({"other": 1.0}))
    assert check_orderings(tmp_path, quick=True, expected_file=expected) == []
    (tmp_path / "01_x.json").write_text(json.dumps({"real_ap": 0.5, "syn_ap": 0.1}))
    assert "real_ap < 1 × syn_ap does not hold" in check_orderings(tmp_path, True, expected)[0]


def test_orderings_fail_drift_warns(tmp_path):
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({
        "quick": {"04_f": {"fae_ap": [0.2, 0.3], "latent": {"seen": [32.0]}}},
        "orderings": {"quick": [
            {"notebook": "04_f", "left": "fae_ap", "op": ">", "right": "ae_ap", "factor": 2,
             "lesson": "FAE beats the l1 residual"},
            {"notebook": "04_f", "left": "fae_ap", "op": ">=", "right": 0.01, "lesson": "above chance"}]}}))
    (tmp_path / "04_f.json").write_text(json.dumps({"fae_ap": 0.35, "ae_ap": 0.1, "latent": 128.0}))
    report = check_run(tmp_path, quick=True, expected_file=expected)
    assert report.failures == []
    assert "fae_ap = 0.35 outside the expected range [0.2, 0.3] (above by 0.05, 0.5× the band's width)" \
        in report.drift[0]
    assert "latent = 128.0 is none of the values seen [32.0]" in report.drift[1]
    (tmp_path / "04_f.json").write_text(json.dumps({"fae_ap": 0.25, "ae_ap": 0.2, "latent": 32.0}))
    report = check_run(tmp_path, quick=True, expected_file=expected)
    assert report.drift == [] and len(report.failures) == 1
    assert "fae_ap > 2 × ae_ap does not hold (0.25 vs 0.4); lesson: FAE beats the l1 residual" \
        in report.failures[0]


def test_cli_check_exits_zero_on_drift_and_one_on_failed_ordering(tmp_path, monkeypatch, capsys):
    from featureae_lite import cli
    from featureae_lite.course import figures, notebooks

    expected = tmp_path / "expected.json"
    rule = {"notebook": "00_a", "left": "x", "op": ">", "right": 1.0, "lesson": "x is large"}
    expected.write_text(json.dumps({"classroom": {"00_a": {"x": [0.0, 1.5]}},
                                    "orderings": {"classroom": [rule]}}))
    monkeypatch.setattr(figures, "EXPECTED_FILE", expected)
    monkeypatch.setattr(figures.check_run, "__defaults__", (expected, None))

    def fake_run(quick, out, **kw):
        run = tmp_path / "run"
        run.mkdir(exist_ok=True)
        (run / "00_a.json").write_text(json.dumps({"x": fake_run.value}))
        (run / "times.json").write_text(json.dumps({"00_a": 1.0}))
        (run / "index.md").write_text("index")
        return run

    monkeypatch.setattr(notebooks, "run_notebooks", fake_run)
    fake_run.value = 2.0  # drifts out of [0, 1.5], ordering x > 1 holds
    assert cli.main(["notebooks", "--check"]) == 0
    assert "WARNING drift 00_a: x = 2.0 outside" in capsys.readouterr().err
    fake_run.value = 0.5  # inside the band, ordering fails
    assert cli.main(["notebooks", "--check"]) == 1
    assert "FAIL 00_a: x > 1 × 1.0 does not hold" in capsys.readouterr().err


def test_a_failing_notebook_does_not_stop_the_sequence(tmp_path, monkeypatch):
    from featureae_lite.course import notebooks

    def fake_execute(path, out_dir, parameters, timeout=1800):
        if path.name.startswith("01"):
            raise RuntimeError("cell 3 failed\nNameError: name 'x' is not defined")
        (out_dir / f"{path.stem}.json").write_text(json.dumps({"n": 1.0}))
        return 1.0

    monkeypatch.setattr(notebooks, "execute_notebook", fake_execute)
    run = run_notebooks(quick=True, out=tmp_path / "run", only=["00", "01", "02"], threads=1)
    assert json.loads((run / "errors.json").read_text()) == {
        "01_l1_residual_autoencoder": "RuntimeError: NameError: name 'x' is not defined"}
    assert list(json.loads((run / "times.json").read_text())) == [p.stem for p in NOTEBOOKS[:3]]
    index = (run / "index.md").read_text()
    assert "**failed**: RuntimeError" in index and "n = 1" in index
    assert json.loads((run / "params.json").read_text())["threads"] == 1


@pytest.mark.slow
def test_the_quick_run_renders_as_an_offline_site_with_its_banner(quick_run, tmp_path):
    from featureae_lite.course.html_report import render_run
    from featureae_lite.course.site_check import external_references

    index = render_run(quick_run, tmp_path / "site")
    landing = index.read_text()
    assert "models trained for seconds" in landing.replace("\n", " ")
    assert landing.count('class="fl-card"') == len(NOTEBOOKS) and landing.count("thumbs/") >= len(NOTEBOOKS)
    for page in (tmp_path / "site").glob("*.html"):
        assert external_references(page.read_text()) == [], page.name


@pytest.mark.parametrize("preset", ["quick", "classroom"])
def test_every_ordering_holds_on_the_recorded_bands(preset, tmp_path):
    """An ordering must hold at the middle of the bands of the runs it was recorded from (a new
    ordering that contradicts the recorded figures, or names a figure no run recorded, fails here
    before a classroom run finds it)."""
    from featureae_lite.course.figures import EXPECTED_FILE, check_orderings

    expected = json.loads(EXPECTED_FILE.read_text())
    for nb, figs in expected[preset].items():
        if nb.startswith("_"):
            continue
        middle = {k: (sum(v) / 2 if isinstance(v, list) else v["seen"][0]) for k, v in figs.items()}
        (tmp_path / f"{nb}.json").write_text(json.dumps(middle))
    assert check_orderings(tmp_path, quick=preset == "quick") == []
