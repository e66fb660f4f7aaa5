"""featureae_lite: unsupervised anomaly localisation in brain MRI, from l1 residuals to
Structural Feature-Autoencoders. See the notebooks for the guided tour.

The package is layered, imports flowing one way downwards::

    core/         ssim, metrics, features, maps, uncertainty, device, fileio, presets, viz, errors
    data/         synthetic cohort, NIfTI and real-data layouts, preprocessing, augmentation, Batch
    training.py   the one training loop
    models/       one module per method over one Detector interface, and the registry
    experiments/  evaluation, checkpoints, benchmark, curves, transfer, tuning
    course/       session, notebook runner, figure checks, jobs, report, widgets, exercises, site
    grading/      student versions, grading in a sandbox
    cli/          the command line (parser, commands, main)

The public face the notebooks use::

    import featureae_lite as fl
    S = fl.start(quick=True)                 # cohort + splits (train-or-load models via S.detector)
    det = fl.create_detector("fae", image_size=128)
"""

from featureae_lite.core import features, metrics, ssim, viz
from featureae_lite.core.presets import preset
from featureae_lite.course import analysis, exercises, inside, report, widgets
from featureae_lite.course.figures import record_figures, result_figures
from featureae_lite.course.session import Session, start
from featureae_lite.experiments import evaluation, transfer
from featureae_lite.experiments.evaluation import evaluate
from featureae_lite.models.base import AnomalyOutput, Detector
from featureae_lite.models.registry import available_methods, create_detector, load_detector

__version__ = "0.1.0"

__all__ = [
    "AnomalyOutput", "Detector", "Session", "analysis", "available_methods", "create_detector",
    "evaluate", "evaluation", "exercises", "features", "inside", "load_detector", "metrics", "preset",
    "record_figures", "report", "result_figures", "ssim", "start", "transfer", "viz", "widgets",
]
