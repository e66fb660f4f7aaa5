"""The real held-out test set: NRRD reading, conversion of a head scan with skull, the transfer command.

Offline: a tiny synthetic head (brain, dark skull, bright scalp, one lesion) is written as NRRD in a
temporary folder; nothing is downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest

from featureae_lite.cli import main
from featureae_lite.data.layouts import discover_subjects
from featureae_lite.data.nifti import load_volume
from featureae_lite.data.nrrd_cases import convert_case, read_nrrd
from featureae_lite.data.realdata import download_sdist, fetch_pyradiomics
from featureae_lite.experiments.transfer import find_real_data, run_transfer, transfer_test

SPACING = (3.0, 3.0, 8.0)


def write_nrrd(path, data, spacing=SPACING, origin=(-96.0, 96.0, -80.0), encoding="gzip"):
    """A minimal NRRD file (LPS space) as 3D Slicer and pyradiomics write them."""
    dtype = {np.dtype("int16"): "short", np.dtype("int32"): "int"}[data.dtype]
    sx, sy, sz = spacing
    header = (f"NRRD0004\n# test file\ntype: {dtype}\ndimension: 3\nspace: left-posterior-superior\n"
              f"sizes: {' '.join(str(n) for n in data.shape)}\n"
              f"space directions: ({sx},0,0) (0,-{sy},0) (0,0,{sz})\nkinds: domain domain domain\n"
              f"endian: little\nencoding: {encoding}\n"
              f"space origin: ({origin[0]},{origin[1]},{origin[2]})\n\n")
    body = np.asarray(data).T.astype("<" + data.dtype.str[1:]).tobytes()
    path.write_bytes(header.encode() + (gzip.compress(body) if encoding == "gzip" else body))
    return path


def synthetic_head(shape=(64, 64, 20)):
    """(image int16, label int32): an ellipsoid brain (~500) in dark skull (~60) and bright scalp (~1100)."""
    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(x ** 2 + (y / 1.15) ** 2 + (z / 1.1) ** 2)
    image = np.where(r < 0.72, 500.0, 0.0)
    image = np.where((r >= 0.72) & (r < 0.8), 60.0, image)   # skull and CSF: dark
    image = np.where((r >= 0.8) & (r < 0.9), 1100.0, image)  # scalp: bright
    lesion = (np.sqrt((x - 0.3) ** 2 + (y + 0.1) ** 2 + z ** 2) < 0.15)
    image = np.where(lesion, 800.0, image) + rng.normal(0, 10, shape) * (image > 0)
    return image.astype(np.int16), lesion.astype(np.int32)


def test_read_nrrd_values_and_affine(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    for enc in ("gzip", "raw"):
        got, affine = read_nrrd(write_nrrd(tmp_path / f"a_{enc}.nrrd", data, encoding=enc))
        np.testing.assert_array_equal(got, data)
        # LPS → RAS: x and y flip sign, like nibabel's view of the same scan
        np.testing.assert_allclose(affine[:3, :3], np.diag([-3.0, 3.0, 8.0]))
        np.testing.assert_allclose(affine[:3, 3], [96.0, -96.0, -80.0])
    (tmp_path / "bad.nrrd").write_bytes(b"P5\n")
    with pytest.raises(ValueError, match="not an NRRD file"):
        read_nrrd(tmp_path / "bad.nrrd")


def test_convert_case_strips_skull_and_keeps_the_lesion(tmp_path):
    image, label = synthetic_head()
    img_p = write_nrrd(tmp_path / "case_image.nrrd", image)
    lab_p = write_nrrd(tmp_path / "case_label.nrrd", label)
    info = convert_case(img_p, lab_p, tmp_path / "real", "case1")
    assert info["label_voxels_native"] == int(label.sum()) and info["label_voxels_on_grid"] > 0
    assert info["label_voxels_inside_mask"] == info["label_voxels_native"]
    (rec,) = discover_subjects(tmp_path / "real", "brats", "t1")
    assert rec.mask_path is not None and rec.label_map
    vol, _ = load_volume(rec.image_path)
    brain, _ = load_volume(tmp_path / "real" / "case1" / "case1_brainmask.nii.gz")
    assert vol.shape == (158, 194, 160)
    assert ((vol > 0) == (brain > 0)).all()  # skull removed: the brats layout's "image > 0" is the mask
    # scalp left inside the mask: only where a slice cuts the scalp tangentially (the method's limit)
    assert (vol[vol > 0] > 1000).mean() < 0.02
    # the mask is the brain (the inner ellipsoid), not the head: compare with the true brain volume
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in image.shape], indexing="ij")
    inside = np.sqrt(x ** 2 + (y / 1.15) ** 2 + (z / 1.1) ** 2) < 0.72
    truth_cm3 = float(inside.sum()) * np.prod(SPACING) / 1000
    assert 0.8 < info["brain_volume_native_cm3"] / truth_cm3 < 1.1


def test_fetch_real_rejects_a_wrong_sdist(tmp_path):
    fake = tmp_path / "pyradiomics-3.1.0.tar.gz"
    fake.write_bytes(b"not the sdist")
    with pytest.raises(ValueError, match="SHA-256 differs"):
        fetch_pyradiomics(tmp_path / "out", sdist=fake, progress=False)


def test_download_sdist_checks_the_hash_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """pooch's download, offline: its HTTP downloader is replaced by one that writes given bytes."""
    import pooch

    served = {"bytes": b"not the sdist", "calls": 0}

    def fake_download(self, url, output_file, pooch_obj, check_only=False):
        served["calls"] += 1
        with open(output_file, "wb") as fh:
            fh.write(served["bytes"])

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", fake_download)
    good = b"the sdist"
    source = {"filename": "x.tar.gz", "url": "https://example.invalid/x.tar.gz",
              "sha256": hashlib.sha256(good).hexdigest()}
    folder = tmp_path / "dl"
    with pytest.raises(ValueError, match="x.tar.gz: SHA-256 [0-9a-f]{64} does not match the expected"):
        download_sdist(folder, source, progress=False)
    assert list(folder.iterdir()) == []  # the temporary file is gone, nothing named x.tar.gz
    served["bytes"] = good
    path = download_sdist(folder, source, progress=True)
    assert path == folder / "x.tar.gz" and path.read_bytes() == good and served["calls"] == 2
    assert download_sdist(folder, source, progress=False) == path and served["calls"] == 2  # reused


def test_transfer_errors_are_one_line(tmp_path, capsys):
    assert main(["transfer", "--real-data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--real-data" in err and "folder not found" in err
    (tmp_path / "empty").mkdir()
    assert main(["transfer", "--real-data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no subject found" in err


@pytest.mark.slow
def test_transfer_tiny_threshold(tmp_path):
    """The whole command on the tiny preset with the untrained threshold baseline (no training; ~45 s on
    2 cores, most of it synthesising the tiny T1 cohort)."""
    image, label = synthetic_head()
    convert_case(write_nrrd(tmp_path / "i.nrrd", image), write_nrrd(tmp_path / "l.nrrd", label),
                 tmp_path / "real", "case1")
    out = tmp_path / "out"
    res = run_transfer(["threshold"], tmp_path / "real", out, preset="tiny", data_dir=tmp_path / "data",
                       device="cpu", progress=False)
    row = res["threshold"]
    assert 0 <= row["real"]["pixel_ap"] <= 1 and 0 < row["synthetic"]["pixel_ap"] <= 1
    assert row["ratio"] == pytest.approx(row["real"]["pixel_ap"] / row["synthetic"]["pixel_ap"])
    saved = json.loads((out / "transfer.json").read_text())
    assert set(saved) == {"threshold"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["real_subjects"] == ["case1"] and meta["modality"] == "t1"
    assert "| threshold |" in (out / "transfer.md").read_text()
    # the same measurement without files, keeping what notebook 10 draws (the model is reloaded)
    test = transfer_test(["threshold"], tmp_path / "real", preset="tiny", data_dir=tmp_path / "data",
                         device="cpu", progress=False)
    assert test.results["threshold"]["real"] == row["real"] and set(test.detectors) == {"threshold"}
    assert test.real.images.shape[0] == meta["n_real_slices"] and float(test.real.masks.sum()) > 0
    assert test.synthetic.images.shape[0] == meta["n_synthetic_test_slices"]  # notebook 10's lift over chance
    assert test.table().loc["threshold", "AP real"] == row["real"]["pixel_ap"]


def test_find_real_data(tmp_path, capsys):
    """A fetched set in <data>/real is found, an unfetched one is None, a named missing folder an error."""
    assert find_real_data(None, tmp_path) is None
    real = tmp_path / "real"
    (real / "case1").mkdir(parents=True)
    assert find_real_data(None, tmp_path) is None  # no provenance.json: not a finished fetch
    (real / "provenance.json").write_text("{}")
    assert find_real_data(None, tmp_path) == real
    assert find_real_data(str(real), None) == real
    with pytest.raises(ValueError, match="nowhere.*folder not found"):
        find_real_data(tmp_path / "nowhere", tmp_path)
    with pytest.raises(ValueError, match="no real data folder given.*fetch-real"):  # what find_real_data gave
        transfer_test(["threshold"], None, data_dir=tmp_path, progress=False)
    # fetch-real writes to DATA/real by default; a wrong --sdist is refused before anything is read
    assert main(["fetch-real", "--data", str(tmp_path / "d"), "--sdist", str(tmp_path / "x.tar.gz")]) == 2
    assert "--sdist" in capsys.readouterr().err and (tmp_path / "d" / "real").is_dir()
