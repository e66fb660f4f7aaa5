"""The ``featureae-lite`` command line: synth, train, evaluate, benchmark, fetch-real, transfer, curves,
notebooks, assignments, main."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from featureae_lite.core.device import resolve_device
from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import check_not_an_input, check_output_dir
from featureae_lite.core.interrupts import Terminated, sigterm_as_interrupt
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


def _add_run_options(p: argparse.ArgumentParser, presets: bool = True) -> None:
    """``--device`` (and ``--preset``) of the commands that train or predict."""
    p.add_argument("--device", default="auto",
                   help="auto (a GPU if there is one, else the CPU) | cpu | cuda | cuda:N | mps")
    if presets:
        from featureae_lite.core.presets import RUN_PRESETS

        p.add_argument("--preset", choices=RUN_PRESETS, default=None,
                       help="sizes and budgets: quick (CI), classroom (notebooks on a laptop), default "
                            "(2 CPU cores, the default), paper (the references' budgets, for a GPU); "
                            "--quick = --preset quick")


def _add_data_options(p: argparse.ArgumentParser, backbone: bool = True) -> None:
    """Real data sets (default: the synthetic cohort for both) and, for training, the backbone."""
    from featureae_lite.data.splits import TEST_LAYOUTS, TRAIN_LAYOUTS

    g = p.add_argument_group("real data (default: the synthetic cohort)")
    g.add_argument("--train-data", default=None, metavar="DIR", help="healthy training subjects")
    g.add_argument("--train-layout", choices=TRAIN_LAYOUTS, default=None)
    g.add_argument("--test-data", default=None, metavar="DIR", help="test subjects with lesion masks")
    g.add_argument("--test-layout", choices=TEST_LAYOUTS, default=None)
    if backbone:
        _add_backbone(p, "local state dict of the backbone (e.g. torchvision's ImageNet ResNet18)")


def _add_backbone(p: argparse.ArgumentParser, weights_help: str | None) -> None:
    """``--backbone`` (:func:`~featureae_lite.core.features.available_backbones`) and ``--weights``."""
    from featureae_lite.core.features import available_backbones

    g = p.add_argument_group("feature backbone of fae and dpa")
    g.add_argument("--backbone", choices=available_backbones(), default=None)
    g.add_argument("--weights", default=None, metavar="PATH", help=weights_help)


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
    from featureae_lite.data.synth import CONTRASTS

    p.add_argument("--quick", action="store_true", help="small cohort, 64-px slices, few steps")
    p.add_argument("--seed", type=_whole(0, MAX_SEED), default=0,
                   help=f"seed of the cohort and the models (0 to {MAX_SEED})")
    p.add_argument("--data", default=None,
                   help="data folder (default: $FEATUREAE_LITE_DATA, else data/ in the repo)")
    p.add_argument("--contrast", "--modality", dest="contrast", choices=CONTRASTS, default="t2",
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


def _cmd_train(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.checkpoints import train_checkpoint

    name, overrides, source = _preset_name(args), _backbone_options(args), _source(args)
    det, out = train_checkpoint(args.method, args.out or f"checkpoints/{args.method}.pt", preset=name,
                                seed=args.seed, data_dir=args.data, contrast=args.contrast,
                                variety=args.variety, source=source, overrides=overrides, steps=args.steps,
                                device=args.device, inputs=_inputs(args, **{"--weights": args.weights}))
    print(f"{args.method}: trained in {det.history.get('train_seconds', 0):.1f} s → {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
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


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.benchmark import run_benchmark

    methods = _methods(args.methods)
    name, source, overrides = _preset_name(args), _source(args), _backbone_options(args)
    return _experiment(args, "benchmark", "results.md", "results", lambda:
                       run_benchmark(methods, args.out, preset=name, seed=args.seed, data_dir=args.data,
                                     contrast=args.contrast, device=args.device, source=source,
                                     overrides=overrides, variety=args.variety))


def _cmd_fetch_real(args: argparse.Namespace) -> int:
    from featureae_lite.data.realdata import fetch_pyradiomics

    out = args.out
    if out is None:  # where notebook 01's transfer test looks for it
        from featureae_lite.experiments.transfer import real_data_dir

        out = str(real_data_dir(args.data))
    check_output_dir(out)
    start = time.perf_counter()
    folders = fetch_pyradiomics(out, sdist=args.sdist)
    print(f"{len(folders)} real test subjects (BraTS layout, modality t1) written in "
          f"{time.perf_counter() - start:.0f} s to {out}; provenance.json says where they come from")
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.transfer import run_transfer

    methods = _methods(args.methods)
    name, overrides = _preset_name(args), _backbone_options(args)
    return _experiment(args, "transfer", "transfer.md", "transfer.json, transfer.md and meta.json", lambda:
                       run_transfer(methods, args.real_data, args.out, real_layout=args.real_layout,
                                    modality=args.contrast, preset=name, seed=args.seed, data_dir=args.data,
                                    checkpoint_dir=args.checkpoints, device=args.device, overrides=overrides,
                                    variety=args.variety))


def _cmd_curves(args: argparse.Namespace) -> int:
    from featureae_lite.experiments.curves import learning_curves

    methods = _methods(args.methods)
    name, source = _preset_name(args), _source(args)
    overrides = {**({"schedule": args.schedule} if args.schedule else {}), **_backbone_options(args)}
    return _experiment(args, "curves", "curves.md", "curves.json, curves.md and curves.png", lambda:
                       learning_curves(methods, args.out, preset=name, seed=args.seed, data_dir=args.data,
                                       contrast=args.contrast, steps=args.steps, points=args.points,
                                       overrides=overrides, device=args.device, source=source))


def _cmd_notebooks(args: argparse.Namespace) -> int:
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


def _cmd_assignments_make(args: argparse.Namespace) -> int:
    from featureae_lite.grading.assignments import make_assignments

    written = make_assignments(args.out, force=args.force)
    print(f"{len(written)} student notebooks written to {args.out}:")
    for path in written:
        print(f"  {path.name}")
    return 0


def _cmd_assignments_grade(args: argparse.Namespace) -> int:
    from featureae_lite.grading.assignments import grade, report_table

    reports = grade(args.notebooks, args.out, time_limit=args.time_limit, data_dir=args.data,
                    memory_limit_mb=args.memory_limit, file_size_limit_mb=args.file_size_limit,
                    process_limit=args.process_limit, check_time_limit=args.check_time_limit,
                    run_notebook=args.run_notebook, isolation=not args.no_isolation)
    print(report_table(reports))
    if args.out:
        print(f"report written to {args.out}")
    return 0


def _cmd_main(args: argparse.Namespace) -> int:
    from featureae_lite.course.jobs import main_job

    run = main_job(args.quick, seed=args.seed, data_dir=args.data, contrast=args.contrast, device=args.device)
    return 0 if run.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``featureae-lite``."""
    from featureae_lite.data.cohort import SIZES
    from featureae_lite.experiments.benchmark import DEFAULT_METHODS
    from featureae_lite.experiments.transfer import REAL_LAYOUTS
    from featureae_lite.models.base import SCHEDULES

    parser = argparse.ArgumentParser(
        prog="featureae-lite",
        description="Unsupervised anomaly localisation in brain MRI: synthesise data, train, "
                    "evaluate and benchmark detectors.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic cohort as NIfTI files")
    p.add_argument("--out", default=None, help="data folder to write into (same as --data)")
    p.add_argument("--size", choices=tuple(SIZES), default=None)
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
    p.add_argument("--real-layout", choices=REAL_LAYOUTS, default="brats")
    p.add_argument("--methods", default="threshold,ae_l1,fae,dpa")
    p.add_argument("--out", required=True, help="folder for transfer.json, transfer.md and meta.json")
    p.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="train-or-load folder (default: DATA/checkpoints)")
    _add_common(p)
    _add_variety(p)
    p.set_defaults(contrast="t1")
    _add_run_options(p)
    _add_backbone(p, None)
    p.set_defaults(func=_cmd_transfer)

    p = sub.add_parser("curves", help="learning curves: pixel AP vs training steps and seconds")
    p.add_argument("--methods", default="ae_l1,fae", help="comma-separated methods (default ae_l1,fae)")
    p.add_argument("--out", required=True, help="folder for curves.json, curves.md and curves.png")
    p.add_argument("--steps", type=_whole(1, MAX_STEPS), default=None,
                   help="train every method this long (default: preset)")
    p.add_argument("--points", type=_whole(1, MAX_COUNT), default=6,
                   help="evaluations per method (default 6)")
    p.add_argument("--schedule", choices=SCHEDULES, default=None,
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


class _Console(logging.Handler):
    """The package's log as the command's output: INFO on stdout, warnings and errors on stderr, each
    record one message (the streams are looked up per record, so redirections apply)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr if record.levelno >= logging.WARNING else sys.stdout)
        except Exception:
            self.handleError(record)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error naming the option (2)
        return int(stop.code or 0)
    package_log = logging.getLogger("featureae_lite")
    console, saved = _Console(), (package_log.level, package_log.propagate)
    package_log.addHandler(console)
    package_log.setLevel(logging.INFO)
    package_log.propagate = False
    try:
        with sigterm_as_interrupt():
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
    finally:
        package_log.removeHandler(console)
        package_log.level, package_log.propagate = saved


if __name__ == "__main__":
    sys.exit(main())
