"""featureae_lite: unsupervised anomaly localisation in brain MRI, from l1 residuals to
Structural Feature-Autoencoders. See the notebooks for the guided tour.

The public face the notebooks use::

    import featureae_lite as fl
    S = fl.start(quick=True)                 # cohort + splits (train-or-load models via S.detector)
    det = fl.create_detector("fae", image_size=128)
"""

from featureae_lite import analysis, exercises, metrics, report, transfer, viz, widgets
from featureae_lite.evaluation import evaluate
from featureae_lite.models.base import AnomalyOutput, Detector
from featureae_lite.models.registry import available_methods, create_detector, load_detector
from featureae_lite.notebooks import record_figures
from featureae_lite.presets import preset
from featureae_lite.session import Session, start

__version__ = "0.1.0"

__all__ = [
    "AnomalyOutput", "Detector", "Session", "analysis", "available_methods", "create_detector",
    "evaluate", "exercises", "load_detector", "metrics", "preset", "record_figures", "report", "start",
    "transfer", "viz", "widgets",
]
