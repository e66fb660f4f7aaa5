"""Exercise checkers for the notebooks: clear, encouraging feedback instead of bare assertions.

Every exercise in a notebook is a cell tagged ``exercise`` that defines one function (the reference
solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``), followed by a check cell::

    fl.exercises.check("l1_residual", l1_residual)

:func:`check` calls the learner's function on freshly randomised inputs (a new seed on every check,
so an answer hard-coded for one case fails the next), compares the answer with a reference — the
package's own function wherever it has one — and shows a :class:`Feedback` (passed / failed / not
attempted, what is wrong, a hint). It never raises, so a notebook keeps running after a wrong answer.
An exercise that asks for a function the package (or scikit-learn) already has names it in
``forbidden``: a solution that calls it fails.

Graders do not trust this display: ``featureae-lite assignments grade`` runs these checkers in its
own process and calls the learner's function in a sandboxed worker (:mod:`featureae_lite.grading.remote`),
so nothing a submission prints or patches can change its verdict.

This package's job is to gather the checkers and export the checking API; its modules:

* :mod:`.registry` — :data:`EXERCISES`, the :func:`exercise` decorator, :class:`Exercise`,
  :class:`Feedback`, :class:`Wrong`;
* :mod:`.checking` — :func:`feedback`, :func:`check`, :func:`reveal`;
* :mod:`.tripwires` — forbidden functions: :func:`forbidden_calls`, :func:`arm_tripwires`;
* :mod:`.helpers` — random inputs and comparisons for the checkers, :func:`value_and_grad`;
* ``nb00_…`` to ``nb10_…`` — one module of checkers per notebook. Importing them here registers every
  exercise, in the order of the notebooks (the order :data:`EXERCISES` lists them in).
"""

# importing the per-notebook modules registers their checkers, in the notebooks' order
from featureae_lite.course.exercises import (
    nb00_mri_data,
    nb01_l1_residual,
    nb02_ssim,
    nb03_feature_space,
    nb04_feature_autoencoder,
    nb05_evaluation,
    nb06_perceptual_autoencoder,
    nb07_proxy_bridged,
    nb08_patch_similarity,
    nb09_benchmark,
    nb10_transfer,
)
from featureae_lite.course.exercises.checking import check, feedback, reveal
from featureae_lite.course.exercises.helpers import value_and_grad
from featureae_lite.course.exercises.registry import (
    EXERCISES,
    MIME,
    STATUSES,
    Checker,
    Exercise,
    Feedback,
    Wrong,
    exercise,
)
from featureae_lite.course.exercises.tripwires import (
    RUNTIME_CALLS,
    ForbiddenCall,
    arm_tripwires,
    forbidden_calls,
)

__all__ = [
    "EXERCISES", "MIME", "RUNTIME_CALLS", "STATUSES", "Checker", "Exercise", "Feedback", "ForbiddenCall",
    "Wrong",
    "arm_tripwires", "check", "exercise", "feedback", "forbidden_calls", "reveal", "value_and_grad",
    "nb00_mri_data", "nb01_l1_residual", "nb02_ssim", "nb03_feature_space", "nb04_feature_autoencoder",
    "nb05_evaluation", "nb06_perceptual_autoencoder", "nb07_proxy_bridged", "nb08_patch_similarity",
    "nb09_benchmark", "nb10_transfer",
]
