"""The ``featureae-lite`` argument parser: every command, its options and their checks."""

from __future__ import annotations

import argparse

from featureae_lite.cli import commands
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
    p.set_defaults(func=commands.synth)

    p = sub.add_parser("train", help="train one method and save a checkpoint")
    p.add_argument("--method", required=True)
    p.add_argument("--steps", type=_whole(1, MAX_STEPS), default=None,
                   help="training steps (default: the preset's)")
    p.add_argument("--out", default=None, help="checkpoint path (default checkpoints/METHOD.pt)")
    _add_common(p)
    _add_variety(p)
    _add_run_options(p)
    _add_data_options(p)
    p.set_defaults(func=commands.train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on the test split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", default=None, help="write the metrics as JSON")
    _add_common(p)
    _add_run_options(p)
    _add_data_options(p, backbone=False)
    p.set_defaults(func=commands.evaluate)

    p = sub.add_parser("benchmark", help="train and evaluate several methods")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--out", required=True)
    _add_common(p)
    _add_variety(p)
    _add_run_options(p)
    _add_data_options(p)
    p.set_defaults(func=commands.benchmark)

    p = sub.add_parser("fetch-real",
                       help="download the real held-out test set (pyradiomics' two brain cases)")
    p.add_argument("--out", default=None,
                   help="folder for the subject folders and provenance.json (default: DATA/real, where "
                        "notebook 10's transfer test finds it)")
    p.add_argument("--data", default=None,
                   help="data folder (default: $FEATUREAE_LITE_DATA, else data/ in the repo)")
    p.add_argument("--sdist", default=None, metavar="PATH",
                   help="use this pyradiomics-3.1.0.tar.gz instead of downloading it from PyPI")
    p.set_defaults(func=commands.fetch_real)

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
    p.set_defaults(func=commands.transfer)

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
    p.set_defaults(func=commands.curves)

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
    p.set_defaults(func=commands.notebooks)

    p = sub.add_parser("assignments", help="classroom assignments: student versions and autograding")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("make", help="write student notebooks (solutions replaced by TODO stubs)")
    q.add_argument("--out", required=True, help="folder for the student notebooks")
    q.add_argument("--force", action="store_true",
                   help="overwrite student notebooks already in --out (a student's work)")
    q.set_defaults(func=commands.assignments_make)
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
    q.set_defaults(func=commands.assignments_grade)

    p = sub.add_parser("main", help="the main job of `make run`: cohort, course models, the notebook "
                       "sequence, its check and its course site (RUN/site/index.html)")
    _add_common(p)
    _add_run_options(p, presets=False)
    p.set_defaults(func=commands.main)
    return parser

