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
from featureae_lite.core.errors import InputError
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
    try:
        value = json.loads(value)  # numbers as numbers
    except ValueError:
        pass

    def edit(ckpt):
        if key == "method":
            ckpt["method"] = value
        else:
            ckpt["config"][key] = value
    return edit


def _nan_weights(ckpt):
    first = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][first][...] = float("nan")


def _earlier_run(tmp: Path) -> Path:
    """The folder of an interrupted run: notebooks, a partial one and params, but no index.md."""
    run = tmp / "run"
    run.mkdir()
    for name in ("params.json", "00_mri_data_and_anomalies.json", "00_mri_data_and_anomalies.ipynb",
                 ".01_l1_residual_autoencoder.partial.ipynb"):
        (run / name).write_text("{}")
    return run


def _loop(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(path.name)
    return path


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
     "score must be one of top10_mean, max, got 'median'"),
    # issue 29
    ("notebooks --only ,", ["notebooks", "--quick", "--only", ","], "--only ',' names no notebook"),
    ("evaluate --out is the checkpoint",
     ["evaluate", "--checkpoint", "{ckpt}", "--quick", "--out", "{tmp}/ae.pt"],
     "--out {tmp}/ae.pt: is the file the command reads (--checkpoint); it would be replaced"),
    ("evaluate --out in the data folder",
     ["evaluate", "--checkpoint", "{ckpt}", "--quick", "--out", "{data}/m.json"],
     "is inside the data folder {data}, which the command reads; choose a path outside it"),
    ("curves --out is --train-data",
     ["curves", "--quick", "--train-data", "{tmp}", "--train-layout", "synthetic", "--out", "{tmp}"],
     "--out {tmp}: is the folder the command reads (--train-data); it would be written into"),
    ("benchmark --out is the data folder", ["benchmark", "--quick", "--methods", "ae_l1", "--out", "{data}"],
     "--out {data}: is the folder the command reads (the data folder)"),
    ("synth --quick --size default", ["synth", "--quick", "--size", "default", "--out", "{tmp}/d"],
     "--quick and --size default contradict each other; give one"),
    ("train --steps huge", ["train", "--method", "ae_l1", "--quick", "--steps", "99999999999999999999"],
     "argument --steps: must be ≤ 10000000, got 99999999999999999999"),
    ("synth --seed huge", ["synth", "--size", "tiny", "--seed", "99999999999999999999", "--out", "{tmp}/d"],
     "argument --seed: must be ≤ 4294967295, got 99999999999999999999"),
    ("curves --points huge", ["curves", "--quick", "--points", "10000000", "--out", "{tmp}/c"],
     "argument --points: must be ≤ 10000"),
    ("synth --data a symlink loop", ["synth", "--size", "tiny", "--data", "{loop}"],
     "--data {tmp}/loop: is a symbolic link that loops"),
    ("checkpoint with a huge image size", ["evaluate", "--checkpoint", "{ckpt:image_size=1000000}"],
     "config option image_size must be between 8 and 1024, got 1000000"),
    ("checkpoint with NaN weights", ["evaluate", "--checkpoint", "{ckpt:nan}", "--quick"],
     "ae.pt holds non-finite weights (NaN or infinite)"),
    ("notebooks --out an earlier run", ["notebooks", "--quick", "--only", "00", "--out", "{run}"],
     "--out {tmp}/run: holds an earlier run (.01_l1_residual_autoencoder.partial.ipynb, "
     "00_mri_data_and_anomalies.ipynb, 00_mri_data_and_anomalies.json, …); choose an empty folder or "
     "pass --overwrite to remove that run first"),
    ("notebooks --overwrite a folder of other files",
     ["notebooks", "--quick", "--only", "00", "--out", "{tmp}", "--overwrite"],
     "--out {tmp}: holds files that are not a notebook run (keep.txt); choose an empty folder"),
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
            edit = _set(*arg[6:-1].split("=")) if "=" in arg else _nan_weights if ":" in arg else None
            return str(_checkpoint(work, edit))
        if arg == "{run}":
            return str(_earlier_run(work))
        if arg == "{loop}":
            return str(_loop(work / "loop"))
        return arg.replace("{tmp}", str(work)).replace("{data}", str(data))

    argv = [fill(a) for a in argv]
    before = _files(work)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert message.replace("{tmp}", str(work)).replace("{data}", str(data)) in err[-1], err[-1]
    assert _files(work) == before, "a bad input changed the user's files"
    assert not data.exists() or not any(data.iterdir()), "work started before the input was checked"


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="names no method"):
        main(["--debug", "benchmark", "--methods", ",", "--out", str(tmp_path)])


def test_only_input_errors_become_one_line_others_keep_their_traceback(monkeypatch, capsys):
    from featureae_lite.cli import commands

    def fails(error):
        def command(args):
            raise error
        return command

    monkeypatch.setattr(commands, "synth", fails(InputError("--size: a deliberate check")))
    assert main(["synth"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["featureae-lite synth: error: --size: a deliberate check"]
    monkeypatch.setattr(commands, "synth", fails(ValueError("operands could not be broadcast")))  # numpy's
    with pytest.raises(ValueError, match="could not be broadcast"):
        main(["synth"])
    monkeypatch.setattr(commands, "synth", fails(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["synth"])


def test_the_package_log_is_the_command_output(monkeypatch, capsys):
    """Library modules log instead of printing; the command shows INFO on stdout, warnings on stderr,
    one message a line as they were printed, and leaves the logging setup as it found it."""
    import logging

    from featureae_lite.cli import commands

    def command(args):
        logging.getLogger("featureae_lite.experiments.benchmark").info("%10s: pixel AP %.3f", "ae_l1", 0.5)
        logging.getLogger("featureae_lite.core.fileio").warning("waiting for another process")
        return 0

    monkeypatch.setattr(commands, "synth", command)
    assert main(["synth"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("     ae_l1: pixel AP 0.500\n", "waiting for another process\n")
    package_log = logging.getLogger("featureae_lite")
    assert package_log.handlers == [] and package_log.propagate and package_log.level == logging.NOTSET


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
    ("config out of bounds", lambda t: create_detector("ae_l1", widths=(16, 10**9)), ValueError,
     r"ae_l1: config option widths must be between 0 and 65536, got \(16, 1000000000\)"),
    ("negative label",
     lambda t: load_mask(write_nifti(t / "neg.nii.gz", np.full((4, 4, 4), -1.0)), labels=True), ValueError,
     r"neg.nii.gz: label map has negative labels \[-1.\]; expected 0 \(background\)"),
    ("constant image", lambda t: load_split(t, "train", cohort=_brats(t, image=np.full((20, 24, 16), 5.0)),
                                            layout="brats", image_size=16, slice_range=(0, 16),
                                            progress=False),
     ValueError, r"case1_t2.nii.gz: the image is 5 everywhere \(a constant image"),
    ("symlink-loop NIfTI", lambda t: load_volume(_loop(t / "loop.nii.gz")), ValueError,
     "loop.nii.gz: is a symbolic link that loops"),
    ("symlink-loop image in a data set",
     lambda t: load_split(t, "test", cohort=_looped_image(_brats(t)), layout="brats", image_size=16,
                          slice_range=(0, 16), progress=False),
     ValueError, "case1_t2.nii.gz: is a symbolic link that loops"),
    ("config of the wrong type", lambda t: create_detector("fae", steps=1.5), ValueError,
     "fae: config option steps must be int, got 1.5"),
    ("wrong image size", lambda t: create_detector("ae_l1", image_size=64).predict(torch.zeros(2, 1, 32, 32)),
     ValueError, r"ae_l1 expects images of shape \(N, 1, 64, 64\), got \(2, 1, 32, 32\)"),
    ("checkpoint of another method", lambda t: load_detector(_checkpoint(t), expect={"method": "fae"}),
     ValueError, r"ae.pt does not match \(found, wanted\): \{'method': \('ae_l1', 'fae'\)\}"),
]


def _looped_image(root: Path) -> Path:
    image = root / "case1" / "case1_t2.nii.gz"
    image.unlink()
    _loop(image)
    return root


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


# --------------------------------------------------------------------------------------------------
# Issue 29: caches, read-only data folders, earlier runs, overwrites and SIGTERM.

def test_cache_of_another_split_copied_over_the_test_cache_is_rebuilt(tmp_path):
    kw = dict(cohort=_brats(tmp_path), layout="brats", image_size=16, slice_range=(0, 16), progress=False)
    load_split(tmp_path, "train", **kw)
    load_split(tmp_path, "test", **kw)
    (train_file,), (test_file,) = ((tmp_path / "cache").glob(f"{s}_*.pt") for s in ("train", "test"))
    test_file.write_bytes(train_file.read_bytes())  # same slices, another split's file
    with pytest.warns(UserWarning, match=f"cache file {test_file} holds another split or data"):
        load_split(tmp_path, "test", **kw)
    assert torch.load(test_file, weights_only=True)["key"] == test_file.stem.split("_", 1)[1]  # rewritten
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_split(tmp_path, "test", **kw)


def test_read_only_cache_folder_gets_one_line_saying_what_to_do(tmp_path, monkeypatch, capsys):
    import errno
    from contextlib import contextmanager

    import featureae_lite.data.dataset as dataset

    @contextmanager
    def read_only(path):  # as on a read-only mount, where even root cannot write
        raise OSError(errno.EROFS, "Read-only file system", str(path) + ".lock")
        yield

    monkeypatch.setattr(dataset, "writer_lock", read_only)
    root = _brats(tmp_path)
    with pytest.raises(ValueError, match=f"cache folder {tmp_path / 'cache'} is not writable "
                                         r"\(Read-only file system\).*give a writable one with --data"):
        load_split(tmp_path, "test", cohort=root, layout="brats", image_size=16, slice_range=(0, 16),
                   progress=False)


def test_notebooks_overwrite_clears_only_an_earlier_run(tmp_path):
    from featureae_lite.course.notebooks import clear_run_folder

    run = _earlier_run(tmp_path)
    (run / ".ipynb_checkpoints").mkdir()
    with pytest.raises(ValueError, match="holds an earlier run"):
        clear_run_folder(run)
    assert clear_run_folder(run, overwrite=True) == run and not any(run.iterdir())
    assert clear_run_folder(tmp_path / "new") == tmp_path / "new"  # a missing folder is empty


def test_synth_overwrite_builds_beside_the_old_cohort_and_swaps_it_in(tmp_path, monkeypatch):
    import featureae_lite.data.anatomy
    import featureae_lite.data.anomalies
    import featureae_lite.data.cohort as cohort
    import featureae_lite.data.synth

    for module, name in ((featureae_lite.data.anatomy, "load_anatomy"), (featureae_lite.data.synth,
                         "template_texture"), (featureae_lite.data.anomalies, "template_maps")):
        monkeypatch.setattr(module, name, lambda: None)
    seen = []

    def fake_subject(job):  # a placeholder for each file; notes where it was written
        row, folder = job
        seen.append(Path(folder))
        for path in cohort.subject_files(Path(folder), row["subject_id"], row["contrast"]).values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"new")
        return row["subject_id"]

    monkeypatch.setattr(cohort, "_write_subject", fake_subject)
    folder = synthesize_cohort(tmp_path, size="tiny", n_jobs=1, progress=False)
    assert seen[0] == folder and is_complete(folder)
    (folder / "sub-0001" / "sub-0001_t2.nii.gz").write_bytes(b"old")
    seen.clear()
    assert synthesize_cohort(tmp_path, size="tiny", n_jobs=1, progress=False, overwrite=True) == folder
    assert seen[0].name.startswith(f".{folder.name}.new-")  # written beside the old cohort
    assert (folder / "sub-0001" / "sub-0001_t2.nii.gz").read_bytes() == b"new" and is_complete(folder)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_sigterm_during_synth_overwrite_keeps_the_complete_cohort(tmp_path):
    from featureae_lite.data.cohort import plan
    from featureae_lite.data.layouts import subject_files

    folder = cohort_dir(tmp_path, "tiny", 0, "t2")  # a complete cohort (placeholder files)
    rows = plan("tiny", 0, "t2")
    for row in rows:
        for path in subject_files(folder, row["subject_id"], "t2").values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"the good cohort")
    (folder / "manifest.csv").write_text(",".join(rows[0]) + "\n"
                                         + "".join(",".join(map(str, r.values())) + "\n" for r in rows))
    assert is_complete(folder)
    before = _files(folder)
    env = {**os.environ, "FEATUREAE_LITE_DATA": str(tmp_path)}
    script = _HANG.format(module="nibabel", name="save") + (
        "from featureae_lite.cli import main\nsys.exit(main(['synth', '--size', 'tiny', '--overwrite']))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("WRITING"), f"the subprocess never wrote: {line!r}"
        assert f".{folder.name}.new-" in line  # the new cohort is written beside the old one
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert err.strip().splitlines()[-1].endswith("synth: terminated (SIGTERM); finished files are complete, "
                                                 "unfinished ones were not written")
    assert _files(folder) == before, "the complete cohort was touched"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing half-built left
