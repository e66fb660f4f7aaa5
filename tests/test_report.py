"""Generated readings: they say what the numbers say, and 'apart' only where the intervals are."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from featureae_lite.course import report


@pytest.fixture
def results() -> dict:
    """Two methods' results as Session.evaluate(ci=True) returns them (overall and per type)."""
    return {
        "fae": {"pixel_ap": 0.090, "pixel_ap_ci": (0.030, 0.170),
                "per_type": {"structural": {"pixel_ap": 0.033, "pixel_ap_ci": (0.020, 0.051)},
                             "tumor": {"pixel_ap": 0.100, "pixel_ap_ci": (0.040, 0.200)}}},
        "ae_l1": {"pixel_ap": 0.035, "pixel_ap_ci": (0.020, 0.058),
                  "per_type": {"structural": {"pixel_ap": 0.012, "pixel_ap_ci": (0.005, 0.019)},
                               "tumor": {"pixel_ap": 0.150, "pixel_ap_ci": (0.090, 0.210)}}},
        "random": {"pixel_ap": 0.005, "per_type": {"structural": {"pixel_ap": 0.004}}},
    }


def test_compare_states_the_factor_the_values_and_the_leader(results):
    text = report.compare(results, "fae", "ae_l1", on="structural")
    assert isinstance(text, str) and text._repr_markdown_() == text
    assert text.startswith("**fae** is 2.8× **ae_l1** on `structural` (pixel AP 0.033 vs 0.012)")
    assert "**fae** ahead" in text
    assert "[0.020, 0.051] vs [0.005, 0.019]: apart" in text


def test_compare_says_overlapping_intervals_do_not_tell_methods_apart(results):
    overall = report.compare(results, "fae", "ae_l1")
    assert "(pixel AP 0.090 vs 0.035)" in overall and "on `" not in overall
    assert "overlapping — this test set does not tell them apart" in overall
    behind = report.compare(results, "fae", "ae_l1", on="tumor")
    assert "is 0.7× **ae_l1**" in behind and "— indistinguishable; 95 % intervals" in behind
    assert "ahead" not in behind and "ahead" not in overall and "overlapping" in behind


def test_compare_without_intervals_calls_them_indistinguishable(results):
    text = report.compare(results, "ae_l1", "random", on="structural")
    assert text == ("**ae_l1** is 3.0× **random** on `structural` (pixel AP 0.012 vs 0.004) — "
                    "indistinguishable: **ae_l1** is higher, but no interval was measured, so nothing says "
                    "the test set tells them apart.")
    plain = report.compare({"a": 0.2, "b": 0.2}, "a", "b", label="AP")
    assert plain == "**a** is 1.0× **b** (AP 0.200 vs 0.200) — equal."
    given = report.compare({"a": 3.0, "b": 1.0}, "a", "b", label="x", ci={"a": (2.5, 3.5), "b": (0.5, 1.5)})
    assert given.endswith("[2.500, 3.500] vs [0.500, 1.500]: apart — this test set tells them apart.")


def test_compare_handles_missing_and_zero_values(results):
    assert "n/a" in report.compare(results, "random", "fae", on="tumor")
    assert "one of them was not measured" in report.compare(results, "random", "fae", on="tumor")
    assert "∞×" in report.compare({"a": 0.1, "b": 0.0}, "a", "b")
    close = report.compare({"a": 0.0193, "b": 0.0191}, "a", "b")  # more decimals where 3 would tie
    assert "(pixel AP 0.0193 vs 0.0191) — indistinguishable: **a** is higher" in close
    with pytest.raises(KeyError, match="'vae' is not among"):
        report.compare(results, "vae", "fae")


def test_a_per_type_table_is_read_by_row():
    table = pd.DataFrame({"ae_l1": {"structural": 0.003, "tumor": 0.02},
                          "ae_ssim": {"structural": 0.005, "tumor": 0.01}})
    text = report.compare(table, "ae_ssim", "ae_l1", on="structural")
    assert text.startswith("**ae_ssim** is 1.7× **ae_l1** on `structural` (pixel AP 0.005 vs 0.003)")
    assert report.best(table, on="tumor") == "ae_l1"
    with pytest.raises(ValueError, match="needs `on`"):
        report.compare(table, "ae_ssim", "ae_l1")


def test_ranking_names_the_winner_and_whether_its_lead_holds(results):
    text = report.ranking(results, on="structural", exclude=["random"])
    assert text.startswith("Highest pixel AP on `structural`: **fae** (0.033), then ae_l1 (0.012)")
    assert "apart from ae_l1's" in text and "the lead holds" in text
    overall = report.ranking(results, exclude=["random"])
    assert "overlaps ae_l1's" in overall and "does not show it better" in overall
    assert report.ranking({"a": 1.0, "b": 2.0, "c": float("nan")}) == \
        ("Highest pixel AP: **b** (2.000), then a (1.000) — 2.0× the runner-up; no interval was measured, "
         "so nothing says the lead holds.")
    assert report.ranking({"a": float("nan")}) == "No pixel AP was measured."
    close = report.ranking({"a": 0.0021, "b": 0.0024})
    assert close.startswith("Highest pixel AP: **b** (0.0024), then a (0.0021)")


def test_best_fold_and_apart_edge_cases():
    assert report.best({"a": 1.0, "b": float("nan"), "c": 3.0}) == "c"
    with pytest.raises(ValueError):
        report.best({"a": float("nan")})
    assert report.fold(0.004, 0.1) == "0.04×" and report.fold(math.nan, 1) == "n/a"
    assert report.fold(0.0, 0.0) == "n/a"
    assert not report.intervals_apart((0.0, 1.0), (1.0, 2.0))  # touching intervals overlap
    assert report.intervals_apart((0.0, 0.9), (1.0, 2.0))
    assert report.lines("a", "b") == "- a\n- b"


def test_chance_says_at_or_below_chance_from_the_auroc():
    results = {"spatial": {"pixel_auroc": 0.461, "per_type": {"tumor": {"pixel_auroc": 0.52}}},
               "dense": {"pixel_auroc": 0.79}, "equal": {"pixel_auroc": 0.5}, "none": {}}
    text = report.chance(results, ["spatial", "dense", "equal", "none"])
    rows = text.splitlines()
    assert "**spatial**: pixel AUROC 0.461 — at or below chance (0.5)." in rows[0]
    assert "above chance" in rows[1] and "at or below chance" in rows[2] and "not measured" in rows[3]
    assert "above chance" in report.chance(results, ["spatial"], on="tumor")


def test_versus_paper_says_when_an_ablation_reverses_the_paper():
    values = {"reference": 0.10, "MSE loss": 0.19, "untrained": 0.05}
    reversed_ = report.versus_paper(values, "MSE loss", "reference", "MSE ≈ 0.19 vs SSIM ≈ 0.53")
    assert "**reverses** the paper's order" in reversed_ and "noise" in reversed_
    agrees = report.versus_paper(values, "untrained", "reference", "untrained ≈ 0.25")
    assert "agrees with the paper's order" in agrees and "reverses" not in agrees
    apart = report.versus_paper(values, "MSE loss", "reference", "p", ci={"MSE loss": (0.15, 0.2),
                                                                           "reference": (0.05, 0.12)})
    assert "reverses" in apart and "noise" not in apart
    assert "cannot say" in report.versus_paper({"a": 0.1, "b": 0.1}, "a", "b", "p")


def test_result_figures_names_each_method_metric_and_type():
    from featureae_lite.course.figures import result_figures

    results = {"fae": {"pixel_ap": 0.2, "pixel_auroc": 0.9, "per_type": {"structural": {"pixel_ap": 0.1}}},
               "ae_l1": {"pixel_ap": 0.02, "pixel_auroc": 0.7, "per_type": {}}}
    got = result_figures(results, metrics=("pixel_ap", "pixel_auroc"))
    assert got["fae_pixel_auroc"] == 0.9 and got["fae_structural_ap"] == 0.1 and got["ae_l1_pixel_ap"] == 0.02
    assert math.isnan(got["ae_l1_structural_ap"]) and len(got) == 6
