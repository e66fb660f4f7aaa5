"""What each ``featureae-lite`` command does with its parsed options: check them, call the package,
show the result. The work itself lives in the package's layers below."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from featureae_lite.core.device import resolve_device
from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import check_not_an_input, check_output_dir


def _inputs(args: argparse.Namespace, **files: str | None) -> dict[str, str | None]:
    """The inputs of a command an output must not be: ``files`` (option → path, e.g. ``--weights``)
    and the data set folders it was given."""
    for option in ("train_data", "test_data", "real_data", "checkpoints"):
        files[f"--{option.replace('_', '-')}"] = getattr(args, option, None)
    return files


def _check_out_not_input(args: argparse.Namespace, out: str | os.PathLike, **files: str | None) -> None:
    """Refuse an ``--out`` that is an input of the command (:func:`_inputs`) or lies in the data folder
    (cohorts, caches, checkpoints)."""
    from featureae_lite.data.paths import resolve_data_dir

    check_not_an_input(out, _inputs(args, **files), {"the data folder": resolve_data_dir(args.data)})



def _source(args: argparse.Namespace):
    """The DataSource of the real-data options, or None for the synthetic cohort."""
    from featureae_lite.data.splits import DataSource

    given = (args.train_data, args.train_layout, args.test_data, args.test_layout)
    if not any(given):
        return None
    return DataSource(args.train_data, args.train_layout or ("ixi" if args.train_data else "synthetic"),
                      args.test_data, args.test_layout or ("brats" if args.test_data else "synthetic"),
                      args.contrast)


def _backbone_options(args: argparse.Namespace) -> dict:
    """Config overrides of ``--backbone`` / ``--weights`` (applied to the methods that have them)."""
    if args.weights and not Path(args.weights).is_file():
        raise InputError(f"--weights {args.weights}: file not found")
    return {k: v for k, v in (("backbone", args.backbone), ("weights_path", args.weights)) if v}


def _preset_name(args: argparse.Namespace) -> str:
    """The preset of ``--preset`` / ``--quick`` (a conflict between the two is an error)."""
    if args.preset and args.quick and args.preset != "quick":
        raise InputError(f"--quick and --preset {args.preset} contradict each other; give one")
    return args.preset or ("quick" if args.quick else "default")




def synth(args: argparse.Namespace) -> int:
    from featureae_lite.data import synthesize_cohort
    from featureae_lite.data.cohort import cohort_summary

    if args.quick and args.size not in (None, "quick"):
        raise InputError(f"--quick and --size {args.size} contradict each other; give one")
    size = args.size or ("quick" if args.quick else "default")
    if args.out and args.data and Path(args.out).resolve() != Path(args.data).resolve():
        raise InputError(f"--out {args.out} and --data {args.data} name different folders; give one")
    if args.out or args.data:
        check_output_dir(args.out or args.data, "--out" if args.out else "--data")
    start = time.perf_counter()
    cohort = synthesize_cohort(args.out or args.data, size=size, seed=args.seed, contrast=args.contrast,
                               overwrite=args.overwrite, variety=args.variety)
    print(cohort_summary(cohort))
    print(f"written in {time.perf_counter() - start:.1f} s to {cohort}")
    return 0


def train(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.checkpoints import train_checkpoint

    name, overrides, source = _preset_name(args), _backbone_options(args), _source(args)
    det, out = train_checkpoint(args.method, args.out or f"checkpoints/{args.method}.pt", preset=name,
                                seed=args.seed, data_dir=args.data, contrast=args.contrast,
                                variety=args.variety, source=source, overrides=overrides, steps=args.steps,
                                device=args.device, inputs=_inputs(args, **{"--weights": args.weights}))
    print(f"{args.method}: trained in {det.history.get('train_seconds', 0):.1f} s → {out}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.evaluation import METRIC_KEYS, evaluate_checkpoint

    res = evaluate_checkpoint(args.checkpoint, preset=_preset_name(args), seed=args.seed, data_dir=args.data,
                              contrast=args.contrast, source=_source(args), device=args.device, out=args.out,
                              inputs=_inputs(args))
    for k in METRIC_KEYS:
        print(f"{k:>14}: {res[k]:.4f}")
    return 0


def _methods(text: str) -> list[str]:
    """The method names of a comma-separated ``--methods`` value (each checked to exist)."""
    from featureae_lite.models.registry import get_method

    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise InputError(f"--methods {text!r} names no method")
    for m in methods:
        get_method(m)
    return methods


def _experiment(args: argparse.Namespace, what: str, table: str, files: str, run) -> int:
    """Check the device and ``--out`` (before any work), ``run()`` the experiment into ``--out``, then
    show its ``table`` and how long it took."""
    resolve_device(args.device)
    _check_out_not_input(args, args.out, **{"--weights": args.weights})
    check_output_dir(args.out)
    start = time.perf_counter()
    run()
    print((Path(args.out) / table).read_text())
    print(f"{what} finished in {time.perf_counter() - start:.0f} s; {files} in {args.out}")
    return 0


def benchmark(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.benchmark import run_benchmark

    methods = _methods(args.methods)
    name, source, overrides = _preset_name(args), _source(args), _backbone_options(args)
    return _experiment(args, "benchmark", "results.md", "results", lambda:
                       run_benchmark(methods, args.out, preset=name, seed=args.seed, data_dir=args.data,
                                     contrast=args.contrast, device=args.device, source=source,
                                     overrides=overrides, variety=args.variety))


def fetch_real(args: argparse.Namespace) -> int:
    from featureae_lite.data.realdata import fetch_pyradiomics

    out = args.out
    if out is None:  # where notebook 10's transfer test looks for it
        from featureae_lite.experiments.transfer import real_data_dir

        out = str(real_data_dir(args.data))
    check_output_dir(out)
    start = time.perf_counter()
    folders = fetch_pyradiomics(out, sdist=args.sdist)
    print(f"{len(folders)} real test subjects (BraTS layout, modality t1) written in "
          f"{time.perf_counter() - start:.0f} s to {out}; provenance.json says where they come from")
    return 0


def transfer(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.transfer import run_transfer

    methods = _methods(args.methods)
    name, overrides = _preset_name(args), _backbone_options(args)
    return _experiment(args, "transfer", "transfer.md", "transfer.json, transfer.md and meta.json", lambda:
                       run_transfer(methods, args.real_data, args.out, real_layout=args.real_layout,
                                    modality=args.contrast, preset=name, seed=args.seed, data_dir=args.data,
                                    checkpoint_dir=args.checkpoints, device=args.device, overrides=overrides,
                                    variety=args.variety))


def curves(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.curves import learning_curves

    methods = _methods(args.methods)
    name, source = _preset_name(args), _source(args)
    overrides = {**({"schedule": args.schedule} if args.schedule else {}), **_backbone_options(args)}
    return _experiment(args, "curves", "curves.md", "curves.json, curves.md and curves.png", lambda:
                       learning_curves(methods, args.out, preset=name, seed=args.seed, data_dir=args.data,
                                       contrast=args.contrast, steps=args.steps, points=args.points,
                                       overrides=overrides, device=args.device, source=source))


def notebooks(args: argparse.Namespace) -> int:
    from featureae_lite.course.jobs import run_notebook_job

    only = [o.strip() for o in args.only.split(",") if o.strip()] if args.only is not None else None
    if only == []:
        raise InputError(f"--only {args.only!r} names no notebook (give prefixes such as 00,04)")
    earlier = [d.strip() for d in (args.record_from or "").split(",") if d.strip()]
    run = run_notebook_job(args.quick, args.out, only=only, data_dir=args.data, seed=args.seed,
                           threads=args.threads, device=args.device, check=args.check, html=args.html,
                           record_expected=args.record_expected, record_from=earlier,
                           overwrite=args.overwrite)
    return 0 if run.ok else 1


def assignments_make(args: argparse.Namespace) -> int:
    from featureae_lite.grading.authoring import make_assignments

    written = make_assignments(args.out, force=args.force)
    print(f"{len(written)} student notebooks written to {args.out}:")
    for path in written:
        print(f"  {path.name}")
    return 0


def assignments_grade(args: argparse.Namespace) -> int:
    from featureae_lite.grading.assignments import grade
    from featureae_lite.grading.report import report_table

    reports = grade(args.notebooks, args.out, time_limit=args.time_limit, data_dir=args.data,
                    memory_limit_mb=args.memory_limit, file_size_limit_mb=args.file_size_limit,
                    process_limit=args.process_limit, check_time_limit=args.check_time_limit,
                    run_notebook=args.run_notebook, isolation=not args.no_isolation)
    print(report_table(reports))
    if args.out:
        print(f"report written to {args.out}")
    return 0


def main(args: argparse.Namespace) -> int:
    from featureae_lite.course.jobs import main_job

    run = main_job(args.quick, seed=args.seed, data_dir=args.data, contrast=args.contrast, device=args.device)
    return 0 if run.ok else 1

