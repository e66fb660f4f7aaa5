"""Synthetic cohort, anomaly realism checks, NIfTI I/O, real-data layouts, preprocessing, cache."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from featureae_lite.data import (
    discover_subjects,
    ensure_cohort,
    load_split,
    preprocess_volume,
    synthesize_cohort,
    synthesize_subject,
)
from featureae_lite.data.paths import resolve_data_dir

from helpers import write_nifti


@pytest.fixture(scope="module")
def subjects():
    return {kind: synthesize_subject(11, "t2", kind)
            for kind in ("healthy", "tumor", "lesions", "stroke", "structural")}


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    return synthesize_cohort(tmp_path_factory.mktemp("cohort"), size="tiny", seed=0, progress=False)


def test_same_seed_identical_and_different_seed_differs():
    a, b = synthesize_subject(5, "t1", "lesions"), synthesize_subject(5, "t1", "lesions")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.lesion_mask, b.lesion_mask)
    c = synthesize_subject(6, "t1", "lesions")
    assert not np.array_equal(a.image, c.image)


def test_anomaly_masks_are_inside_the_brain_and_the_slice_range(subjects):
    assert subjects["healthy"].lesion_mask.sum() == 0
    for kind, s in subjects.items():
        if kind == "healthy":
            continue
        m = s.lesion_mask > 0
        assert m.sum() > 20, kind
        assert not (m & (s.brain_mask == 0)).any(), kind
        zs = np.flatnonzero(m.any(axis=(0, 1)))
        assert zs.min() < 135 and zs.max() >= 55, kind
        assert (s.image[s.brain_mask == 0] == 0).all(), "skull-stripped background"


def _shell(mask: np.ndarray, brain: np.ndarray, width: int = 4) -> np.ndarray:
    return ndimage.binary_dilation(mask, iterations=width) & ~mask & (brain > 0)


def test_hyperintense_types_are_bright_on_t2(subjects):
    for kind in ("tumor", "lesions", "stroke"):
        s = subjects[kind]
        m = s.lesion_mask > 0
        assert s.image[m].mean() > s.image[_shell(m, s.brain_mask)].mean() + 0.05, kind


def test_stroke_is_dark_on_t1():
    s = synthesize_subject(11, "t1", "stroke")
    m = s.lesion_mask > 0
    assert s.image[m].mean() < s.image[_shell(m, s.brain_mask)].mean() - 0.1


def test_structural_anomaly_is_isointense_but_structurally_different(subjects):
    s, h = subjects["structural"], synthesize_subject(11, "t2", "healthy")
    m = s.lesion_mask > 0
    brain_std = s.image[s.brain_mask > 0].std()
    # same intensity statistics as the anatomy it replaces ...
    assert abs(s.image[m].mean() - h.image[m].mean()) < 0.1 * brain_std
    assert abs(s.image[m].std() - h.image[m].std()) < 0.25 * h.image[m].std()
    # ... and as its surroundings (not detectable by brightness)
    assert abs(s.image[m].mean() - s.image[_shell(m, s.brain_mask)].mean()) < 0.35 * brain_std
    # but the structure is wrong: low correlation with the healthy anatomy at the same place
    corr = np.corrcoef(s.image[m], h.image[m])[0, 1]
    assert corr < 0.5, corr


def test_cohort_layout_manifest_and_nifti_round_trip(tiny_cohort):
    import pandas as pd

    man = pd.read_csv(tiny_cohort / "manifest.csv")
    assert set(man.split) == {"train", "val", "test"}
    assert set(man[man.split == "train"].anomaly_type) == {"healthy"}
    assert set(man[man.split == "test"].anomaly_type) == {"healthy", "tumor", "lesions", "stroke",
                                                          "structural"}
    sid = man.subject_id.iloc[-1]
    img = nib.load(tiny_cohort / sid / f"{sid}_t2.nii.gz")
    assert img.get_data_dtype() == np.int16 and img.ndim == 3
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    assert np.allclose(np.diag(img.affine)[:3], 1.0)
    seg = nib.load(tiny_cohort / sid / f"{sid}_seg.nii.gz")
    assert seg.get_data_dtype() == np.uint8 and seg.shape == img.shape
    assert ensure_cohort(tiny_cohort.parent, size="tiny", seed=0, progress=False) == tiny_cohort


def test_load_split_shapes_types_and_cache(tiny_cohort):
    kw = dict(cohort=tiny_cohort, image_size=64, slice_step=8, progress=False)
    data = load_split(tiny_cohort.parent, "test", **kw)
    assert data.images.shape[1:] == (1, 64, 64) and data.masks.shape == data.images.shape
    assert len(data) == len(data.subject_ids) == len(data.anomaly_types) == len(data.slice_indices)
    assert 0 <= float(data.images.min()) and float(data.images.max()) <= 1
    assert float(data.images[data.brains == 0].abs().max()) == 0
    assert set(data.anomaly_types) == {"healthy", "tumor", "lesions", "stroke", "structural"}
    assert data.masks.sum() > 0 and set(data.slice_indices) <= set(range(55, 135, 8))
    cached = load_split(tiny_cohort.parent, "test", **kw)
    assert torch.equal(cached.images, data.images) and cached.subject_ids == data.subject_ids
    assert len(list((tiny_cohort.parent / "cache").glob("test_*.pt"))) == 1
    sub = data.subset([0, 2])
    assert len(sub) == 2 and sub.subject_ids == [data.subject_ids[0], data.subject_ids[2]]
    assert torch.equal(sub.masks, data.masks[[0, 2]]) and sub.slice_indices == data.slice_indices[0:3:2]
    step = data[torch.tensor([2])].to("cpu")  # a mini-batch: the same type, indexed by a tensor
    assert step.anomaly_types == [data.anomaly_types[2]] and torch.equal(step.images, data.images[2:3])
    assert data.unlabelled().masks is None and data.unlabelled().subject_ids is None
    with pytest.raises(TypeError, match="not an int"):
        data[0]


def test_preprocessing_square_resize_equalise_and_threshold():
    vol = np.zeros((40, 30, 20), np.float32)
    vol[5:35, 5:25, :] = np.linspace(0.1, 1, 30)[:, None, None]
    lesion = np.zeros_like(vol)
    lesion[10:14, 10:14, 8:12] = 1
    imgs, masks, brains = preprocess_volume(vol, lesion, vol > 0, slice_range=(5, 15), image_size=32)
    assert imgs.shape == masks.shape == brains.shape == (10, 32, 32)
    assert imgs.dtype == np.float32 and masks.dtype == bool
    assert imgs.max() <= 1 and imgs[~brains].max() == 0
    assert masks[3:7].any() and not masks[:3].any()
    with pytest.raises(ValueError, match="does not match image shape"):
        preprocess_volume(vol, lesion[:, :, :5], None)


def test_real_data_layouts(tmp_path):
    rng = np.random.default_rng(0)
    vol = (rng.random((20, 24, 16)) + 0.5).astype(np.float32)
    seg = np.zeros((20, 24, 16), np.uint8)
    seg[5:9, 5:9, 5:9] = 4  # BraTS labels 1, 2, 4
    seg[9:11, 5:9, 5:9] = 2
    for case in ("BraTS2021_00001", "BraTS2021_00002"):
        write_nifti(tmp_path / "brats" / case / f"{case}_t2.nii.gz", vol)
        write_nifti(tmp_path / "brats" / case / f"{case}_flair.nii.gz", vol)
        write_nifti(tmp_path / "brats" / case / f"{case}_seg.nii.gz", seg, np.uint8)
    recs = discover_subjects(tmp_path / "brats", "brats", "t2")
    assert [r.subject_id for r in recs] == ["BraTS2021_00001", "BraTS2021_00002"]
    assert recs[0].image_path.name.endswith("_t2.nii.gz") and recs[0].anomaly_type == "tumor"
    data = load_split(tmp_path, "test", cohort=tmp_path / "brats", layout="brats", image_size=32,
                      slice_range=(0, 16), progress=False)
    assert data.masks.sum() > 0 and len(data) == 32
    write_nifti(tmp_path / "ixi" / "IXI002" / "IXI002_t2.nii.gz", vol)
    write_nifti(tmp_path / "ixi" / "IXI002" / "IXI002_brainmask.nii.gz", np.ones_like(seg), np.uint8)
    (rec,) = discover_subjects(tmp_path / "ixi", "ixi", "t2", split="train")
    assert rec.anomaly_type == "healthy" and rec.mask_path is None and rec.brain_mask_path is not None
    write_nifti(tmp_path / "atlas" / "r001" / "r001_T1w.nii.gz", vol)
    write_nifti(tmp_path / "atlas" / "r001" / "r001_lesion_mask.nii.gz", (seg > 0), np.uint8)
    (rec,) = discover_subjects(tmp_path / "atlas", "atlas", "t1")
    assert rec.anomaly_type == "stroke" and rec.mask_path.name == "r001_lesion_mask.nii.gz"
    write_nifti(tmp_path / "mslub" / "p01" / "p01_flair.nii.gz", vol)
    write_nifti(tmp_path / "mslub" / "p01" / "p01_seg.nii.gz", (seg > 0), np.uint8)
    (rec,) = discover_subjects(tmp_path / "mslub", "mslub", "flair")
    assert rec.anomaly_type == "lesions"


def test_empty_split_is_an_error(tiny_cohort):
    with pytest.raises(ValueError, match="split 'holdout'"):
        load_split(tiny_cohort.parent, "holdout", cohort=tiny_cohort, progress=False)


def test_data_dir_resolution(tmp_path, monkeypatch):
    assert resolve_data_dir(tmp_path / "a") == (tmp_path / "a").resolve()
    monkeypatch.setenv("FEATUREAE_LITE_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == (tmp_path / "env").resolve()


def _real_layout_folders(root, cohort):
    """An IXI-style healthy folder and a BraTS-style folder (label maps 1/2/4) from a T1 cohort."""
    import pandas as pd

    man = pd.read_csv(cohort / "manifest.csv")
    for row in man.itertuples():
        base = cohort / row.subject_id / row.subject_id
        img = nib.load(f"{base}_t1.nii.gz")
        if row.anomaly_type == "healthy":
            folder = root / "IXI_LIKE" / f"IXI{row.Index:03d}"
            folder.mkdir(parents=True)
            nib.save(img, folder / f"IXI{row.Index:03d}_t1.nii.gz")
            nib.save(nib.load(f"{base}_brainmask.nii.gz"), folder / f"IXI{row.Index:03d}_brainmask.nii.gz")
        else:
            case = f"BraTS2021_{row.Index:05d}"
            folder = root / "BRATS_LIKE" / case
            folder.mkdir(parents=True)
            nib.save(img, folder / f"{case}_t1.nii.gz")
            lesion = np.asarray(nib.load(f"{base}_seg.nii.gz").dataobj) > 0
            labels = np.zeros(lesion.shape, np.uint8)
            labels[lesion] = 4  # enhancing
            labels[lesion & (np.arange(lesion.shape[0]) % 2 == 0)[:, None, None]] = 2  # edema
            labels[lesion & (np.arange(lesion.shape[1]) % 3 == 0)[None, :, None]] = 1  # necrosis
            nib.save(nib.Nifti1Image(labels, img.affine), folder / f"{case}_seg.nii.gz")
    return root / "IXI_LIKE", root / "BRATS_LIKE"


@pytest.mark.slow
def test_benchmark_on_real_layout_folders_from_the_command_line(tmp_path, capsys):
    import json

    from featureae_lite.cli import main
    from featureae_lite.data.splits import DataSource, load_cohort_splits

    cohort = synthesize_cohort(tmp_path / "src", size="tiny", contrast="t1", progress=False)
    ixi, brats = _real_layout_folders(tmp_path, cohort)
    source = DataSource(str(ixi), "ixi", str(brats), "brats", "t1")
    splits = load_cohort_splits(tmp_path / "d", "quick", source=source, progress=False)
    assert set(splits["train"].anomaly_types) == {"healthy"} and splits["test"].masks.sum() > 0
    subjects = {k: set(splits[k].subject_ids) for k in ("train", "val", "test")}
    assert not subjects["train"] & subjects["val"] and not subjects["val"] & subjects["test"]
    assert {t for t in splits["val"].anomaly_types} == {"healthy", "tumor"}  # one held-out case each
    again = load_cohort_splits(tmp_path / "d", "quick", source=source, progress=False, seed=0)
    assert {k: set(again[k].subject_ids) for k in subjects} == subjects  # reproducible by subject

    out = tmp_path / "bench"
    argv = ["benchmark", "--quick", "--methods", "threshold,ae_l1", "--train-data", str(ixi),
            "--train-layout", "ixi", "--test-data", str(brats), "--test-layout", "brats",
            "--modality", "t1", "--data", str(tmp_path / "d"), "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["ae_l1"]["per_type"]) == {"tumor"} and 0 <= results["ae_l1"]["pixel_ap"] <= 1
    meta = json.loads((out / "meta.json").read_text())
    assert meta["data"]["train_layout"] == "ixi" and meta["data"]["test_data"] == str(brats.resolve())
    assert meta["data"]["modality"] == "t1" and meta["preset"] == "quick"

    # layout mismatches: one clear line naming the folder and the pattern
    (next(brats.iterdir()) / f"{next(brats.iterdir()).name}_seg.nii.gz").unlink()
    capsys.readouterr()
    assert main(argv) == 2
    assert "no lesion mask matching *_seg.nii.gz (layout 'brats' needs one" in capsys.readouterr().err
    argv[argv.index("t1")] = "flair"
    assert main(argv) == 2
    assert "no subject found in" in capsys.readouterr().err


# --- training-cohort variety (issue 16, item 2) ---------------------------------------------------

# synthesize_subject(1, "t1") as computed before the variety option existed (its SHA-1 of image, lesion
# mask and brain mask bytes was 7d4383706e7589b19c54dfe74e3475236c86c40e on the machine that recorded it)
STANDARD_T1_SEED1 = {"sum": 1090630.9128204659, "sum_sq": 693974.938305051, "brain": 1846933,
                     "voxel_79_97_80": 0.5765515565872192}
# The sums depend on the BLAS kernels numpy runs (measured on one machine, 1 and 2 threads): SkylakeX
# (AVX512) gives the values above; Haswell, Sandybridge and Katmai give sum 1090630.9168060273 (rel
# 3.7e-9) and sum_sq 693974.9446347312 (rel 9.1e-9); the thread count changes nothing. rel 1e-6 is
# ~100x that spread and still far below what any change of the synthesis moves (a whole voxel of
# intensity 0.5 is rel 5e-7 of the sum); the brain voxel count and the sampled voxel match exactly.
GOLDEN_REL = 1e-6


@pytest.fixture(scope="module")
def standard_and_wide():
    return {v: synthesize_subject(1, "t1", "healthy", v) for v in ("standard", "wide")}


def test_default_subject_is_unchanged_by_the_variety_option(standard_and_wide):
    s = standard_and_wide["standard"]
    im = s.image.astype(np.float64)
    assert im.sum() == pytest.approx(STANDARD_T1_SEED1["sum"], rel=GOLDEN_REL)
    assert (im**2).sum() == pytest.approx(STANDARD_T1_SEED1["sum_sq"], rel=GOLDEN_REL)
    assert int(s.brain_mask.sum()) == STANDARD_T1_SEED1["brain"]
    assert float(s.image[79, 97, 80]) == pytest.approx(STANDARD_T1_SEED1["voxel_79_97_80"], abs=1e-7)
    assert np.array_equal(synthesize_subject(1, "t1").image, s.image)  # "standard" is the default


def test_wide_subjects_differ_from_standard_ones_and_still_look_like_brains(standard_and_wide):
    from featureae_lite.data.synth import VARIETY

    std, wide = standard_and_wide["standard"], standard_and_wide["wide"]
    assert not np.array_equal(std.image, wide.image) and not np.array_equal(std.brain_mask, wide.brain_mask)
    assert wide.lesion_mask.sum() == 0 and np.isfinite(wide.image).all()
    assert 0.7 < wide.brain_mask.sum() / std.brain_mask.sum() < 1.3
    assert 0.2 < float(np.median(wide.image[wide.brain_mask > 0])) < 1.2
    assert np.array_equal(wide.image, synthesize_subject(1, "t1", "healthy", "wide").image)  # seeded
    w, s = VARIETY["wide"], VARIETY["standard"]
    assert w.rotation_sd > s.rotation_sd and w.level_sd > s.level_sd and w.csf_growth > 0
    with pytest.raises(ValueError, match="unknown variety 'huge'"):
        synthesize_subject(1, "t1", "healthy", "huge")


def test_wide_cohort_varies_only_its_training_subjects(tmp_path, monkeypatch):
    from featureae_lite.data import cohort as cohort_mod
    from featureae_lite.data.layouts import subject_files
    from featureae_lite.data.nifti import load_volume

    std_rows, wide_rows = cohort_mod.plan("tiny", 0, "t1"), cohort_mod.plan("tiny", 0, "t1", "wide")
    assert "variety" not in std_rows[0]  # the standard manifest keeps its columns
    for s, w in zip(std_rows, wide_rows, strict=True):
        assert {k: w[k] for k in s} == s
        assert w["variety"] == ("wide" if s["split"] == "train" else "standard")
    assert cohort_mod.cohort_dir(tmp_path, "tiny", 0, "t1", "wide").name == "synthetic_t1_tiny_seed0_wide"

    monkeypatch.setitem(cohort_mod.SIZES, "micro", {"train": (1, 0), "val": (1, 0), "test": (0, 0)})
    folder = synthesize_cohort(tmp_path, size="micro", contrast="t1", variety="wide", n_jobs=1,
                               progress=False)
    assert folder.name == "synthetic_t1_micro_seed0_wide" and "wide" in (folder / "README.md").read_text()
    assert "variety" in (folder / "manifest.csv").read_text().splitlines()[0]
    rows = {r["split"]: r for r in cohort_mod.plan("micro", 0, "t1", "wide")}
    for split, same in (("val", True), ("train", False)):
        row = rows[split]
        image, _ = load_volume(subject_files(folder, row["subject_id"], "t1")["image"])
        standard = synthesize_subject(row["seed"], "t1", "healthy").image
        assert np.array_equal(image, np.clip(np.round(standard * 1000), 0, 32767).astype(np.int16)) == same
    assert ensure_cohort(tmp_path, size="micro", contrast="t1", variety="wide", progress=False) == folder


def test_the_variety_option_reaches_the_cohort_from_the_command_line(tmp_path, monkeypatch):
    import featureae_lite.data
    import featureae_lite.experiments.transfer
    from featureae_lite.cli import main

    seen = {}

    def fake_synth(data_dir, **kw):
        seen["synth"] = kw
        (tmp_path / "manifest.csv").write_text("subject_id,split,anomaly_type,seed,contrast\n"
                                               "sub-0001,train,healthy,1,t1\n")
        return tmp_path

    def fake_transfer(methods, real_data, out, **kw):
        seen["transfer"] = kw
        (tmp_path / "out" / "transfer.md").write_text("table\n")

    monkeypatch.setattr(featureae_lite.data, "synthesize_cohort", fake_synth)
    monkeypatch.setattr(featureae_lite.experiments.transfer, "run_transfer", fake_transfer)
    assert main(["synth", "--out", str(tmp_path), "--variety", "wide", "--contrast", "t1"]) == 0
    assert seen["synth"]["variety"] == "wide"
    (tmp_path / "out").mkdir()
    assert main(["transfer", "--real-data", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--variety", "wide_intensity", "--methods", "threshold", "--device", "cpu"]) == 0
    assert seen["transfer"]["variety"] == "wide_intensity"
    assert main(["synth", "--out", str(tmp_path), "--variety", "huge"]) == 2  # argparse names the choices
