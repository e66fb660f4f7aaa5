"""Data: the synthetic cohort on MNI152 anatomy, NIfTI I/O, real-data layouts, preprocessing, slices
as one :class:`~featureae_lite.data.batch.Batch` type."""

from featureae_lite.data.batch import Batch
from featureae_lite.data.cohort import cohort_dir, ensure_cohort, synthesize_cohort
from featureae_lite.data.dataset import load_split
from featureae_lite.data.layouts import KNOWN_LAYOUTS, SubjectRecord, discover_subjects
from featureae_lite.data.nifti import load_mask, load_volume, save_volume
from featureae_lite.data.paths import cache_dir, resolve_data_dir
from featureae_lite.data.preprocess import preprocess_volume
from featureae_lite.data.synth import ANOMALY_TYPES, CONTRASTS, Subject, synthesize_subject

__all__ = [
    "ANOMALY_TYPES", "Batch", "CONTRASTS", "KNOWN_LAYOUTS", "Subject", "SubjectRecord",
    "cache_dir", "cohort_dir", "discover_subjects", "ensure_cohort", "load_mask", "load_split",
    "load_volume", "preprocess_volume", "resolve_data_dir", "save_volume", "synthesize_cohort",
    "synthesize_subject",
]
