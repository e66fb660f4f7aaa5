"""The ``featureae-lite`` command line: synth, train, evaluate, benchmark, fetch-real, transfer, curves,
notebooks, assignments, main."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from featureae_lite.core.device import resolve_device
from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import check_not_an_input, check_output_dir, check_output_file, write_atomic
from featureae_lite.models.base import MAX_STEPS

MAX_SEED = 2**32 - 1  # numpy's legacy seeds and most tools stop here; torch takes 64 bits
MAX_COUNT = 10_000  # --points, --threads


def _whole(minimum: int, maximum: int):
    """An argparse type: a whole number in [``minimum``, ``maximum``] (argparse names the option in
    its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be ≤ {maximum}, got {value}")
        return value
    parse.__name__ = f"whole number in [{minimum}, {maximum}]"
    return parse


def _check_out_not_input(args: argparse.Namespace, out: str | os.PathLike, **files: str | None) -> None:
    """Refuse an ``--out`` that is an input of the command (``files``: option → path, e.g. the
    checkpoint; the data set folders) or lies in the data folder (cohorts, caches, checkpoints)."""
    from featureae_lite.data.paths import resolve_data_dir

    for option in ("train_data", "test_data", "real_data", "checkpoints"):
        files[f"--{option.replace('_', '-')}"] = getattr(args, option, None)
    check_not_an_input(out, files, {"the data folder": resolve_data_dir(args.data)})


def _add_run_options(p: argparse.ArgumentParser, presets: bool = True) -> None:
    """``--device`` (and ``--preset``) of the commands that train or predict."""
    p.add_argument("--device", default="auto",
                   help="auto (a GPU if there is one, else the CPU) | cpu | cuda | cuda:N | mps")
    if presets:
        p.add_argument("--preset", choices=("quick", "classroom", "default", "paper"), default=None,
                       help="sizes and budgets: quick (CI), classroom (notebooks on a laptop), default "
                            "(2 CPU cores, the default), paper (the references' budgets, for a GPU); "
                            "--quick = --preset quick")


def _add_data_options(p: argparse.ArgumentParser, backbone: bool = True) -> None:
    """Real data sets (default: the synthetic cohort for both) and, for training, the backbone."""
    g = p.add_argument_group("real data (default: the synthetic cohort)")
    g.add_argument("--train-data", default=None, metavar="DIR", help="healthy training subjects")
    g.add_argument("--train-layout", choices=("synthetic", "ixi", "camcan"), default=None)
    g.add_argument("--test-data", default=None, metavar="DIR", help="test subjects with lesion masks")
    g.add_argument("--test-layout", choices=("synthetic", "brats", "atlas", "mslub"), default=None)
    if backbone:
        g = p.add_argument_group("feature backbone of fae and dpa")
        g.add_argument("--backbone", choices=("efficientnet_lite0", "resnet18"), default=None)
        g.add_argument("--weights", default=None, metavar="PATH",
                       help="local state dict of the backbone (e.g. torchvision's ImageNet ResNet18)")


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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small cohort, 64-px slices, few steps")
    p.add_argument("--seed", type=_whole(0, MAX_SEED), default=0,
                   help=f"seed of the cohort and the models (0 to {MAX_SEED})")
    p.add_argument("--data", default=None,
                   help="data folder (default: $FEATUREAE_LITE_DATA, else data/ in the repo)")
    p.add_argument("--contrast", "--modality", dest="contrast", choices=("t2", "t1", "flair"), default="t2",
                   help="MR contrast: of the synthetic cohort, or the modality read from real data")


def _add_variety(p: argparse.ArgumentParser) -> None:
    """``--variety``: how varied the synthetic cohort's healthy training subjects are."""
    from featureae_lite.data.synth import VARIETIES

    p.add_argument("--variety", choices=VARIETIES, default="standard",
                   help="training subjects of the synthetic cohort: standard (default, the notebooks') or "
                        "wide (larger deformations, atrophy, randomised contrast, bias, slice thickness, "
                        "noise; wide_geometry / wide_intensity: one half); val and test stay standard")


def _cmd_synth(args: argparse.Namespace) -> int:
    from featureae_lite.data import synthesize_cohort

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


def cohort_summary(cohort: Path) -> str:
    """A short text summary of a cohort's manifest: subjects per split and anomaly type."""
    import pandas as pd

    man = pd.read_csv(Path(cohort) / "manifest.csv")
    table = man.groupby(["split", "anomaly_type"]).size().unstack(fill_value=0)
    return f"cohort {cohort}\n{table.to_string()}"


def _cmd_train(args: argparse.Namespace) -> int:
    from featureae_lite.core.presets import preset
    from featureae_lite.data.splits import load_cohort_splits
    from featureae_lite.models.registry import create_detector, preset_config

    name = _preset_name(args)
    p = preset(name)
    cfg = preset_config(p, args.method, args.seed, _backbone_options(args))
    if args.steps is not None:
        cfg["steps"] = args.steps
    det = create_detector(args.method, **cfg).to_device(args.device)  # fails fast on bad input
    source = _source(args)
    out = args.out or f"checkpoints/{args.method}.pt"
    _check_out_not_input(args, out, **{"--weights": args.weights})
    out = check_output_file(out)  # before minutes of training
    splits = load_cohort_splits(args.data, name, args.seed, args.contrast, source=source,
                                variety=args.variety)
    det.fit(splits["train"], splits["val"])
    det.save(out)
    print(f"{args.method}: trained in {det.history.get('train_seconds', 0):.1f} s → {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from featureae_lite.core.presets import preset
    from featureae_lite.data.splits import load_cohort_splits
    from featureae_lite.experiments.evaluation import METRIC_KEYS, evaluate
    from featureae_lite.models.registry import load_detector

    name = _preset_name(args)
    det = load_detector(args.checkpoint).to_device(args.device)
    source = _source(args)
    if args.out:
        _check_out_not_input(args, args.out, **{"--checkpoint": args.checkpoint})
        check_output_file(args.out)
    size = preset(name).image_size
    if det.config.image_size != size:
        raise InputError(f"{args.checkpoint} expects {det.config.image_size}-px slices but the "
                         f"{name} preset gives {size} px; pass the --preset (or --quick) the model "
                         "was trained with")
    splits = load_cohort_splits(args.data, name, args.seed, args.contrast, source=source)
    res = evaluate(det, splits["test"], splits["val"])
    for k in METRIC_KEYS:
        print(f"{k:>14}: {res[k]:.4f}")
    if args.out:
        write_atomic(args.out, json.dumps(res, indent=2, default=str))
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


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.benchmark import run_benchmark

    methods = _methods(args.methods)
    name, source, overrides = _preset_name(args), _source(args), _backbone_options(args)
    resolve_device(args.device)
    _check_out_not_input(args, args.out, **{"--weights": args.weights})
    check_output_dir(args.out)
    start = time.perf_counter()
    run_benchmark(methods, args.out, preset=name, seed=args.seed, data_dir=args.data,
                  contrast=args.contrast, device=args.device, source=source, overrides=overrides,
                  variety=args.variety)
    print((Path(args.out) / "results.md").read_text())
    print(f"benchmark finished in {time.perf_counter() - start:.0f} s; results in {args.out}")
    return 0


def _cmd_fetch_real(args: argparse.Namespace) -> int:
    from featureae_lite.data.realdata import fetch_pyradiomics

    if args.out is None:  # where notebook 01's transfer test looks for it
        from featureae_lite.experiments.transfer import real_data_dir

        args.out = str(real_data_dir(args.data))
    check_output_dir(args.out)
    start = time.perf_counter()
    folders = fetch_pyradiomics(args.out, sdist=args.sdist)
    print(f"{len(folders)} real test subjects (BraTS layout, modality t1) written in "
          f"{time.perf_counter() - start:.0f} s to {args.out}; provenance.json says where they come from")
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.transfer import run_transfer

    methods = _methods(args.methods)
    name, overrides = _preset_name(args), _backbone_options(args)
    resolve_device(args.device)
    _check_out_not_input(args, args.out, **{"--weights": args.weights})
    check_output_dir(args.out)
    start = time.perf_counter()
    run_transfer(methods, args.real_data, args.out, real_layout=args.real_layout, modality=args.contrast,
                 preset=name, seed=args.seed, data_dir=args.data, checkpoint_dir=args.checkpoints,
                 device=args.device, overrides=overrides, variety=args.variety)
    print((Path(args.out) / "transfer.md").read_text())
    print(f"transfer finished in {time.perf_counter() - start:.0f} s; transfer.json, transfer.md and "
          f"meta.json in {args.out}")
    return 0


def _cmd_curves(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.curves import learning_curves

    methods = _methods(args.methods)
    name, source = _preset_name(args), _source(args)
    overrides = {**({"schedule": args.schedule} if args.schedule else {}), **_backbone_options(args)}
    resolve_device(args.device)
    _check_out_not_input(args, args.out, **{"--weights": args.weights})
    check_output_dir(args.out)
    start = time.perf_counter()
    learning_curves(methods, args.out, preset=name, seed=args.seed, data_dir=args.data,
                    contrast=args.contrast, steps=args.steps, points=args.points, overrides=overrides,
                    device=args.device, source=source)
    print((Path(args.out) / "curves.md").read_text())
    print(f"curves finished in {time.perf_counter() - start:.0f} s; curves.json, curves.md and "
          f"curves.png in {args.out}")
    return 0


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from featureae_lite.course.notebooks import (
        check_run,
        clear_run_folder,
        record_expected,
        run_notebooks,
        writable_expected_file,
    )

    start = time.perf_counter()
    only = [o.strip() for o in args.only.split(",") if o.strip()] if args.only is not None else None
    if only == []:
        raise InputError(f"--only {args.only!r} names no notebook (give prefixes such as 00,04)")
    if getattr(args, "record_expected", False):
        writable_expected_file()  # before the run: an installed package's copy is read-only
    if args.out:
        _check_out_not_input(args, args.out)
        check_output_dir(args.out)
        clear_run_folder(args.out, overwrite=getattr(args, "overwrite", False))
    if getattr(args, "html", None):
        check_output_dir(args.html, "--html")
    earlier = [Path(d.strip()) for d in (args.record_from or "").split(",") if d.strip()]
    for d in earlier:
        if not (d / "index.md").is_file():
            raise InputError(f"--from {d}: not a finished notebook run folder (no index.md)")
    run_dir = run_notebooks(args.quick, args.out, only=only, data_dir=args.data, seed=args.seed,
                            threads=args.threads, device=args.device)
    print((run_dir / "index.md").read_text())
    print(f"executed in {time.perf_counter() - start:.0f} s → {run_dir}")
    status = 0
    if (run_dir / "errors.json").exists():
        print(f"FAILED notebooks: {', '.join(json.loads((run_dir / 'errors.json').read_text()))}",
              file=sys.stderr)
        status = 1
    if args.check:
        executed = list(json.loads((run_dir / "times.json").read_text()))
        report = check_run(run_dir, args.quick, notebooks=executed)
        for line in report.drift:
            print(f"WARNING drift {line}", file=sys.stderr)
        for line in report.failures:
            print(f"FAIL {line}", file=sys.stderr)
        if report.failures:
            status = 1
        print(f"check: {len(report.failures)} failure(s) (orderings the lessons rely on, missing "
              f"figures), {len(report.drift)} figure(s) outside their measured band (warnings)")
    html = run_dir / "site" if getattr(args, "site_in_run", False) else getattr(args, "html", None)
    if html:
        from featureae_lite.course.html_report import render_run

        tick = time.perf_counter()
        index = render_run(run_dir, html)
        print(f"course site of this run rendered in {time.perf_counter() - tick:.0f} s; open it in a "
              f"browser (works offline): {index.resolve().as_uri()}")
    if getattr(args, "record_expected", False):
        names = record_expected([*earlier, run_dir], args.quick)
        print(f"expected figures recorded from {len(earlier) + 1} run(s) for {', '.join(names)} "
              "in notebooks/expected_figures.json")
    return status


def _cmd_assignments_make(args: argparse.Namespace) -> int:
    from featureae_lite.grading.authoring import make_assignments

    written = make_assignments(args.out, force=args.force)
    print(f"{len(written)} student notebooks written to {args.out}:")
    for path in written:
        print(f"  {path.name}")
    return 0


def _cmd_assignments_grade(args: argparse.Namespace) -> int:
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


def _cmd_main(args: argparse.Namespace) -> int:
    from featureae_lite.core.presets import preset
    from featureae_lite.data import ensure_cohort

    if args.contrast != "t2":
        raise InputError(f"--contrast {args.contrast}: the notebooks teach on the T2 cohort; other "
                         "contrasts are for synth, train, benchmark and curves")
    p = preset(args.quick)
    start = time.perf_counter()
    cohort = ensure_cohort(args.data, size=p.cohort_size, seed=args.seed, contrast=args.contrast)
    print(cohort_summary(cohort))
    print(f"cohort ready in {time.perf_counter() - start:.1f} s")
    # Train once, then teach: every course model at the preset's budget, loaded by the notebooks
    from featureae_lite.course.session import start as start_session
    from featureae_lite.course.session import train_course_models

    tick = time.perf_counter()
    session = start_session(args.quick, args.seed, args.data, args.contrast, device=args.device)
    rows = train_course_models(session)
    for r in rows:
        how = "trained" if r["trained"] else "loaded (trained earlier)"
        print(f"  {r['method']:<9} {r['steps']:>5} steps, {r['train_seconds']:5.0f} s of training — {how}")
    print(f"course models ready in {time.perf_counter() - tick:.0f} s")
    args.only, args.check, args.out, args.threads, args.record_from = None, True, None, None, None
    args.html, args.site_in_run = None, True  # the classroom run ends as a site: runs/<timestamp>/site/
    return _cmd_notebooks(args)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``featureae-lite``."""
    from featureae_lite.experiments.benchmark import DEFAULT_METHODS

    parser = argparse.ArgumentParser(
        prog="featureae-lite",
        description="Unsupervised anomaly localisation in brain MRI: synthesise data, train, "
                    "evaluate and benchmark detectors.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic cohort as NIfTI files")
    p.add_argument("--out", default=None, help="data folder to write into (same as --data)")
    p.add_argument("--size", choices=("tiny", "quick", "default"), default=None)
    p.add_argument("--overwrite", action="store_true")
    _add_common(p)
    _add_variety(p)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("train", help="train one method and save a checkpoint")
    p.add_argument("--method", required=True)
    p.add_argument("--steps", type=_whole(1, MAX_STEPS), default=None,
                   help="training steps (default: the preset's)")
    p.add_argument("--out", default=None, help="checkpoint path (default checkpoints/METHOD.pt)")
    _add_common(p)
    _add_variety(p)
    _add_run_options(p)
    _add_data_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on the test split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", default=None, help="write the metrics as JSON")
    _add_common(p)
    _add_run_options(p)
    _add_data_options(p, backbone=False)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("benchmark", help="train and evaluate several methods")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--out", required=True)
    _add_common(p)
    _add_variety(p)
    _add_run_options(p)
    _add_data_options(p)
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("fetch-real",
                       help="download the real held-out test set (pyradiomics' two brain cases)")
    p.add_argument("--out", default=None,
                   help="folder for the subject folders and provenance.json (default: DATA/real, where "
                        "notebook 01's transfer test finds it)")
    p.add_argument("--data", default=None,
                   help="data folder (default: $FEATUREAE_LITE_DATA, else data/ in the repo)")
    p.add_argument("--sdist", default=None, metavar="PATH",
                   help="use this pyradiomics-3.1.0.tar.gz instead of downloading it from PyPI")
    p.set_defaults(func=_cmd_fetch_real)

    p = sub.add_parser("transfer", help="pixel AP on the synthetic test split vs a real held-out set")
    p.add_argument("--real-data", required=True, metavar="DIR",
                   help="real lesion subjects, e.g. from featureae-lite fetch-real")
    p.add_argument("--real-layout", choices=("brats", "atlas", "mslub"), default="brats")
    p.add_argument("--methods", default="threshold,ae_l1,fae,dpa")
    p.add_argument("--out", required=True, help="folder for transfer.json, transfer.md and meta.json")
    p.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="train-or-load folder (default: DATA/checkpoints)")
    _add_common(p)
    _add_variety(p)
    p.set_defaults(contrast="t1")
    _add_run_options(p)
    g = p.add_argument_group("feature backbone of fae and dpa")
    g.add_argument("--backbone", choices=("efficientnet_lite0", "resnet18"), default=None)
    g.add_argument("--weights", default=None, metavar="PATH")
    p.set_defaults(func=_cmd_transfer)

    p = sub.add_parser("curves", help="learning curves: pixel AP vs training steps and seconds")
    p.add_argument("--methods", default="ae_l1,fae", help="comma-separated methods (default ae_l1,fae)")
    p.add_argument("--out", required=True, help="folder for curves.json, curves.md and curves.png")
    p.add_argument("--steps", type=_whole(1, MAX_STEPS), default=None,
                   help="train every method this long (default: preset)")
    p.add_argument("--points", type=_whole(1, MAX_COUNT), default=6,
                   help="evaluations per method (default 6)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None,
                   help="override every method's learning-rate schedule")
    _add_common(p)
    _add_run_options(p)
    _add_data_options(p)
    p.set_defaults(func=_cmd_curves)

    p = sub.add_parser("notebooks", help="execute the notebook sequence headless (papermill)")
    p.add_argument("--out", default=None, help="run folder (default runs/<timestamp>)")
    p.add_argument("--only", default=None, help="comma-separated notebook prefixes, e.g. 00,04")
    p.add_argument("--check", action="store_true",
                   help="fail when recorded figures leave the expected ranges")
    p.add_argument("--record-expected", action="store_true",
                   help="store bands derived from this run (and the --from runs) as the expected figures")
    p.add_argument("--from", dest="record_from", default=None,
                   help="comma-separated earlier run folders to record from together with this run")
    p.add_argument("--threads", type=_whole(1, MAX_COUNT), default=None,
                   help="torch threads of the notebook kernels (default: all cores)")
    p.add_argument("--html", default=None, metavar="DIR",
                   help="also render the executed notebooks as HTML pages with an index.html in DIR")
    p.add_argument("--overwrite", action="store_true",
                   help="--out holds an earlier run: remove its files first (other files are refused)")
    _add_common(p)
    _add_run_options(p, presets=False)
    p.set_defaults(func=_cmd_notebooks)

    p = sub.add_parser("assignments", help="classroom assignments: student versions and autograding")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("make", help="write student notebooks (solutions replaced by TODO stubs)")
    q.add_argument("--out", required=True, help="folder for the student notebooks")
    q.add_argument("--force", action="store_true",
                   help="overwrite student notebooks already in --out (a student's work)")
    q.set_defaults(func=_cmd_assignments_make)
    q = actions.add_parser("grade", help="check the solution cells of submissions and report every exercise")
    q.add_argument("notebooks", nargs="+", help="submitted notebooks")
    q.add_argument("--out", default=None, help="write the report as JSON")
    q.add_argument("--check-time-limit", type=float, default=60, metavar="S",
                   help="seconds one call of a student's function may take (default 60)")
    q.add_argument("--run-notebook", action="store_true",
                   help="also execute each assembled course notebook (QUICK) and report its errors")
    q.add_argument("--time-limit", type=float, default=900,
                   help="with --run-notebook: seconds per cell; a notebook gets this plus 30 s (default 900)")
    q.add_argument("--data", default=None,
                   help="with --run-notebook: data folder with the QUICK cohort (each submission works on "
                        "its own copy)")
    q.add_argument("--memory-limit", type=int, default=6144, metavar="MB",
                   help="memory per process of a submission (default 6144)")
    q.add_argument("--file-size-limit", type=int, default=1024, metavar="MB",
                   help="largest file a submission may write (default 1024)")
    q.add_argument("--process-limit", type=int, default=256, metavar="N",
                   help="processes and threads a submission may start (default 256)")
    q.add_argument("--no-isolation", action="store_true",
                   help="grade even where submissions cannot be isolated (no bubblewrap / namespaces): "
                        "they then run as your user and can read, change and kill what you can")
    q.set_defaults(func=_cmd_assignments_grade)

    p = sub.add_parser("main", help="the main job of `make run`: cohort, course models, the notebook "
                       "sequence, its check and its course site (RUN/site/index.html)")
    _add_common(p)
    _add_run_options(p, presets=False)
    p.set_defaults(func=_cmd_main)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the command's process as Ctrl-C raises KeyboardInterrupt (same cleanup)."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in this process; a forked worker (a
    synth pool process) that inherited the handler dies of the signal as it would without it."""
    pid = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application): leave SIGTERM alone
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error naming the option (2)
        return int(stop.code or 0)
    try:
        with _sigterm_as_interrupt():
            return args.func(args)
    except (InputError, OSError) as err:  # bad input or an unusable file: one line, exit 2; other
        # errors (a bug in the package, numpy or torch) keep their traceback
        if args.debug:
            raise
        print(f"featureae-lite {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C (exit 130) or SIGTERM (exit 143)
        how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        print(f"featureae-lite {args.command}: {how}; finished files are complete, "
              "unfinished ones were not written", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(stop, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
