"""The fault catalogue (docs/reliability.md): every bad input gets one clear line naming the file or
option, exit code 2 on the command line, and no file is lost or left half-written.

Grading faults (student code that runs away, overwritten student folders) are in test_assignments.py.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from featureae_lite.cli import main
from featureae_lite.data import discover_subjects, load_mask, load_split, load_volume, synthesize_subject
from featureae_lite.data.cohort import cohort_dir, is_complete, synthesize_cohort
from featureae_lite.models.registry import create_detector, load_detector

from helpers import write_nifti


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------------
# Command line: (name, argv with {tmp}, expected message). Each must exit 2 with one line, before any
# work: the data folder stays empty and the files already in {tmp} are unchanged.

def _checkpoint(tmp: Path, edit=None, name: str = "ae.pt") -> Path:
    path = create_detector("ae_l1", image_size=64, steps=1).save(tmp / name)
    if edit:
        ckpt = torch.load(path, weights_only=True)
        edit(ckpt)
        torch.save(ckpt, path)
    return path


def _set(key, value):
    def edit(ckpt):
        if key == "method":
            ckpt["method"] = value
        else:
            ckpt["config"][key] = value
    return edit


CLI_FAULTS = [
    ("train --steps 0", ["train", "--method", "ae_l1", "--quick", "--steps", "0", "--out", "{tmp}/a.pt"],
     "argument --steps: must be ≥ 1, got 0"),
    ("train --steps -5", ["train", "--method", "ae_l1", "--steps", "-5"], "argument --steps: must be ≥ 1"),
    ("train unknown method", ["train", "--method", "magic"], "unknown method 'magic'; known methods:"),
    ("train --out is a folder", ["train", "--method", "ae_l1", "--quick", "--out", "{tmp}"],
     "--out {tmp}: is a folder, expected a file name"),
    ("train --out under a file", ["train", "--method", "ae_l1", "--quick", "--out", "{tmp}/keep.txt/a.pt"],
     "--out {tmp}/keep.txt: is a file, expected a folder"),
    ("benchmark --methods ,", ["benchmark", "--quick", "--methods", ",", "--out", "{tmp}/b"],
     "--methods ',' names no method"),
    ("benchmark unknown method", ["benchmark", "--quick", "--methods", "ae_l1,magic", "--out", "{tmp}/b"],
     "unknown method 'magic'"),
    ("benchmark --out is a file", ["benchmark", "--quick", "--methods", "ae_l1", "--out", "{tmp}/keep.txt"],
     "--out {tmp}/keep.txt: is a file, expected a folder"),
    ("curves --points 0", ["curves", "--quick", "--points", "0", "--out", "{tmp}/c"],
     "argument --points: must be ≥ 1, got 0"),
    ("notebooks --threads 0", ["notebooks", "--quick", "--threads", "0"], "argument --threads: must be ≥ 1"),
    ("notebooks --from unfinished run", ["notebooks", "--quick", "--from", "{tmp}"],
     "--from {tmp}: not a finished notebook run folder (no index.md)"),
    ("synth --seed -1", ["synth", "--size", "tiny", "--seed", "-1", "--out", "{tmp}/d"],
     "argument --seed: must be ≥ 0, got -1"),
    ("synth --seed abc", ["synth", "--seed", "abc"], "argument --seed: expected a whole number, got 'abc'"),
    ("synth --out onto a file", ["synth", "--size", "tiny", "--out", "{tmp}/keep.txt"],
     "--out {tmp}/keep.txt: is a file, expected a folder"),
    ("synth --out and --data differ", ["synth", "--size", "tiny", "--out", "{tmp}/x", "--data", "{tmp}/y"],
     "name different folders; give one"),
    ("evaluate missing checkpoint", ["evaluate", "--checkpoint", "{tmp}/none.pt"],
     "checkpoint not found: {tmp}/none.pt"),
    ("evaluate foreign file", ["evaluate", "--checkpoint", "{tmp}/keep.txt"],
     "{tmp}/keep.txt is not a featureae_lite checkpoint"),
    ("evaluate wrong image size", ["evaluate", "--checkpoint", "{ckpt}"],
     "expects 64-px slices but the default preset gives 128 px"),
    ("evaluate --out is a folder", ["evaluate", "--checkpoint", "{ckpt}", "--quick", "--out", "{tmp}"],
     "--out {tmp}: is a folder, expected a file name"),
    ("checkpoint with an edited method", ["evaluate", "--checkpoint", "{ckpt:method=fae}"],
     "(method 'fae'): unknown config option(s) ['kl_weight', 'latent_dim', 'widths']"),
    ("checkpoint naming no method", ["evaluate", "--checkpoint", "{ckpt:method=magic}"],
     "ae.pt: unknown method 'magic'"),
    ("checkpoint with an unknown option", ["evaluate", "--checkpoint", "{ckpt:depth=3}"],
     "unknown config option(s) ['depth']"),
    ("checkpoint with a wrong type", ["evaluate", "--checkpoint", "{ckpt:steps=many}"],
     "config option steps must be int, got 'many'"),
    ("checkpoint with a rejected value", ["evaluate", "--checkpoint", "{ckpt:score=median}"],
     "score must be 'top10_mean' or 'max', got 'median'"),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in CLI_FAULTS], ids=[c[0] for c in CLI_FAULTS])
def test_cli_fault_gets_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    monkeypatch.setenv("FEATUREAE_LITE_DATA", str(data))
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("the user's file")

    def fill(arg: str) -> str:
        if arg.startswith("{ckpt"):
            edit = _set(*arg[6:-1].split("=")) if ":" in arg else None
            return str(_checkpoint(work, edit))
        return arg.replace("{tmp}", str(work))

    argv = [fill(a) for a in argv]
    before = _files(work)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert message.replace("{tmp}", str(work)) in err[-1], err[-1]
    assert _files(work) == before, "a bad input changed the user's files"
    assert not data.exists() or not any(data.iterdir()), "work started before the input was checked"


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="names no method"):
        main(["--debug", "benchmark", "--methods", ",", "--out", str(tmp_path)])


# --------------------------------------------------------------------------------------------------
# Data files: (name, how to make the fault in a folder, call, error type, message).

def _brats(root: Path, image=None, seg=None, name="case1_t2.nii.gz") -> Path:
    rng = np.random.default_rng(0)
    vol = (rng.random((20, 24, 16)) + 0.5) if image is None else image
    mask = np.zeros((20, 24, 16), np.uint8) if seg is None else seg
    write_nifti(root / "brats" / "case1" / name, vol)
    write_nifti(root / "brats" / "case1" / "case1_seg.nii.gz", mask, np.uint8)
    return root / "brats"


def _nan(shape=(4, 4, 4)):
    a = np.ones(shape)
    a[0, 0, 0] = np.nan
    return a


def _truncated(path: Path) -> Path:
    good = write_nifti(path.with_name("good.nii.gz"), np.ones((4, 4, 4)))
    path.write_bytes(good.read_bytes()[:40])
    return path


DATA_FAULTS = [
    ("missing NIfTI", lambda t: load_volume(t / "missing.nii.gz"), FileNotFoundError,
     "NIfTI file not found: .*missing.nii.gz"),
    ("corrupt NIfTI", lambda t: load_volume(_junk(t / "junk.nii.gz")), ValueError,
     "junk.nii.gz: not a readable NIfTI"),
    ("truncated NIfTI", lambda t: load_volume(_truncated(t / "trunc.nii.gz")), ValueError, "trunc.nii.gz"),
    ("4-D volume", lambda t: load_volume(write_nifti(t / "four.nii.gz", np.ones((4, 4, 4, 2)))), ValueError,
     r"four.nii.gz: expected a 3-D volume, got shape \(4, 4, 4, 2\)"),
    ("2-D volume", lambda t: load_volume(write_nifti(t / "two.nii.gz", np.ones((4, 4)))), ValueError,
     r"two.nii.gz: expected a 3-D volume, got shape \(4, 4\)"),
    ("NaN in a volume", lambda t: load_volume(write_nifti(t / "nan.nii.gz", _nan())), ValueError,
     "nan.nii.gz: contains NaN"),
    ("mask shape mismatch",
     lambda t: load_mask(write_nifti(t / "small.nii.gz", np.ones((4, 4, 3))), (4, 4, 4)), ValueError,
     r"small.nii.gz: mask shape \(4, 4, 3\) does not match image shape \(4, 4, 4\)"),
    ("non-binary mask", lambda t: load_mask(write_nifti(t / "soft.nii.gz", np.full((4, 4, 4), 0.5))),
     ValueError, "soft.nii.gz: mask is not binary"),
    ("non-integer label map", lambda t: load_mask(write_nifti(t / "soft.nii.gz", np.full((4, 4, 4), 0.5)),
                                                  labels=True), ValueError, "soft.nii.gz: .*non-integer"),
    ("all-zero image", lambda t: load_split(t, "test", cohort=_brats(t, image=np.zeros((20, 24, 16))),
                                            layout="brats", image_size=16, slice_range=(0, 16),
                                            progress=False),
     ValueError, "case1_t2.nii.gz: the image is 0 everywhere"),
    ("fewer slices than the slice range", lambda t: load_split(t, "test", cohort=_brats(t), layout="brats",
                                                               image_size=16, progress=False),
     ValueError, r"case1_t2.nii.gz: slice range \(55, 135\) is empty for a volume with 16 slices"),
    ("unknown layout", lambda t: discover_subjects(t, "nifty"), ValueError,
     "unknown layout 'nifty'; known layouts: synthetic, brats"),
    ("no subject for a layout", lambda t: discover_subjects(_empty(t), "brats"), ValueError,
     "no subject found in .*empty for layout 'brats'"),
    ("unknown contrast", lambda t: synthesize_subject(0, "t3"), ValueError, "unknown contrast 't3'"),
    ("unknown cohort size", lambda t: synthesize_cohort(t, size="huge"), ValueError,
     "unknown cohort size 'huge'"),
    ("negative cohort seed", lambda t: synthesize_cohort(t, size="tiny", seed=-1), ValueError,
     "seed must be a whole number ≥ 0, got -1"),
    ("data folder is a file", lambda t: synthesize_cohort(_file(t / "f"), size="tiny"), ValueError,
     "data folder .*f: is a file, expected a folder"),
    ("unknown backbone", lambda t: create_detector("fae", backbone="vgg99"), ValueError, "vgg99"),
    ("config of the wrong type", lambda t: create_detector("fae", steps=1.5), ValueError,
     "fae: config option steps must be int, got 1.5"),
    ("wrong image size", lambda t: create_detector("ae_l1", image_size=64).predict(torch.zeros(2, 1, 32, 32)),
     ValueError, r"ae_l1 expects images of shape \(N, 1, 64, 64\), got \(2, 1, 32, 32\)"),
    ("checkpoint of another method", lambda t: load_detector(_checkpoint(t), expect={"method": "fae"}),
     ValueError, r"ae.pt does not match \(found, wanted\): \{'method': \('ae_l1', 'fae'\)\}"),
]


def _junk(path: Path) -> Path:
    path.write_bytes(gzip.compress(b"this is not nifti"))
    return path


def _empty(root: Path) -> Path:
    (root / "empty").mkdir()
    return root / "empty"


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


@pytest.mark.parametrize("make, error, message", [c[1:] for c in DATA_FAULTS],
                         ids=[c[0] for c in DATA_FAULTS])
def test_data_fault_names_the_file_and_the_problem(make, error, message, tmp_path):
    with pytest.raises(error, match=message):
        make(tmp_path)


# --------------------------------------------------------------------------------------------------
# Wrong results of earlier versions, now right.

def test_upper_case_modality_in_file_names_is_found(tmp_path):
    root = _brats(tmp_path, name="case1_T1.nii.gz")
    (rec,) = discover_subjects(root, "brats", "t1")
    assert rec.image_path.name == "case1_T1.nii.gz" and rec.mask_path.name == "case1_seg.nii.gz"


def test_a_folder_without_a_matching_image_is_reported(tmp_path):
    root = _brats(tmp_path)
    write_nifti(root / "case2" / "case2_flair.nii.gz", np.ones((4, 4, 4)))
    skipped = r"1 subject folder\(s\) skipped \(case2\): no t2 image matching \*_t2.nii.gz"
    with pytest.warns(UserWarning, match=skipped):
        recs = discover_subjects(root, "brats", "t2")
    assert [r.subject_id for r in recs] == ["case1"]


def test_cache_sees_a_changed_brain_mask_and_rebuilds_a_truncated_file(tmp_path):
    vol = np.ones((20, 24, 16), np.float32)
    brain = np.zeros((20, 24, 16), np.uint8)
    brain[4:16, 4:20] = 1
    write_nifti(tmp_path / "ixi" / "s1" / "s1_t2.nii.gz", vol)
    mask_file = write_nifti(tmp_path / "ixi" / "s1" / "s1_brainmask.nii.gz", brain, np.uint8)
    kw = dict(cohort=tmp_path / "ixi", layout="ixi", image_size=16, slice_range=(0, 16), progress=False)
    first = load_split(tmp_path, "train", **kw)
    brain[4:16, 4:12] = 0
    write_nifti(mask_file, brain, np.uint8)
    os.utime(mask_file, ns=(0, 0))  # even with an old time stamp the content decides
    second = load_split(tmp_path, "train", **kw)
    assert second.brains.sum() < first.brains.sum()
    newest = max((tmp_path / "cache").glob("train_*.pt"), key=lambda p: p.stat().st_mtime_ns)
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match=f"cache file {newest} is unreadable"):
        again = load_split(tmp_path, "train", **kw)
    assert torch.equal(again.brains, second.brains)
    assert torch.load(newest, weights_only=True)["brains"].shape == second.brains.shape  # rewritten


# --------------------------------------------------------------------------------------------------
# Interrupted and concurrent writers.

_HANG = """
import sys, time, pathlib
import {module} as target
real = target.{name}
def half_then_hang(obj, path, *a, **k):
    pathlib.Path(path).write_bytes(b"half a file")
    print("WRITING", path, flush=True)
    time.sleep(600)
target.{name} = half_then_hang
"""


def _kill_while_writing(script: str, env: dict) -> str:
    """Run ``script`` in a subprocess, kill it (SIGKILL) while it writes a file; the path it wrote to."""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("WRITING"), f"the subprocess never wrote: {line!r}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return line.split(" ", 1)[1].strip()


def test_synth_killed_mid_file_leaves_no_cohort_that_looks_complete(tmp_path):
    env = {**os.environ, "FEATUREAE_LITE_DATA": str(tmp_path)}
    hang = _HANG.format(module="nibabel", name="save")
    written = _kill_while_writing(
        hang + "from featureae_lite.data import synthesize_cohort\n"
               "synthesize_cohort(size='tiny', n_jobs=1, progress=False)\n", env)
    folder = cohort_dir(tmp_path, "tiny", 0, "t2")
    assert Path(written).name.startswith(".") and ".tmp." in Path(written).name  # a temporary name
    assert not is_complete(folder) and not (folder / "manifest.csv").exists()
    assert [p for p in folder.rglob("*.nii.gz") if not p.name.startswith(".")] == []
    with pytest.raises(FileNotFoundError, match="not a synthetic cohort \\(or incomplete\\)"):
        discover_subjects(folder, "synthetic")


def test_cache_killed_mid_file_is_never_read(tmp_path):
    root = _brats(tmp_path)
    env = {**os.environ, "FEATUREAE_LITE_DATA": str(tmp_path)}
    hang = _HANG.format(module="torch", name="save")
    written = _kill_while_writing(
        hang + f"from featureae_lite.data import load_split\n"
               f"load_split({str(tmp_path)!r}, 'test', cohort={str(root)!r}, layout='brats', "
               f"image_size=16, slice_range=(0, 16), progress=False)\n", env)
    assert ".tmp." in Path(written).name
    assert list((tmp_path / "cache").glob("test_*.pt")) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing unreadable is found
        data = load_split(tmp_path, "test", cohort=root, layout="brats", image_size=16,
                          slice_range=(0, 16), progress=False)
    assert len(data) == 16


@pytest.mark.slow
def test_two_synth_runs_into_one_folder_serialise_and_data_option_is_honoured(tmp_path):
    elsewhere, target = tmp_path / "env_folder", tmp_path / "target"
    env = {**os.environ, "FEATUREAE_LITE_DATA": str(elsewhere)}
    cmd = [sys.executable, "-m", "featureae_lite.cli", "synth", "--size", "tiny", "--data", str(target)]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (err, second.stderr)
    assert "waiting for another process" in second.stderr + err
    folder = cohort_dir(target, "tiny", 0, "t2")
    assert is_complete(folder)
    for path in folder.rglob("*.nii.gz"):
        assert np.isfinite(nib.load(path).get_fdata()).all()
    assert not elsewhere.exists() or not any(elsewhere.iterdir()), "--data was ignored"
    assert json.dumps(sorted(p.name for p in folder.rglob(".*"))) == "[]"
