"""The one QUICK switch (as in d2l): data size, image size and training steps in one place.

Notebooks, the CLI and the tests all read their sizes from :func:`preset` so that ``QUICK=True``
means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    """Sizes for one run.

    Attributes
    ----------
    cohort_size : str
        Synthetic cohort size (``"tiny"``, ``"quick"`` or ``"default"``).
    image_size : int
        Slice side after preprocessing.
    slice_step : int
        Keep every ``slice_step``-th axial slice of the slice range.
    slice_range : tuple of int
        Axial slice range [start, stop).
    train : dict
        Per-method config overrides for this preset (steps, and for FAE the learning rate), so that
        every model trains within the time budget on 2 CPU cores.
    """

    cohort_size: str
    image_size: int
    slice_step: int
    slice_range: tuple[int, int] = (55, 135)
    train: dict[str, dict] = field(default_factory=dict)

    def overrides(self, method: str) -> dict:
        """Config overrides of ``method`` under this preset (``{}`` if none)."""
        return dict(self.train.get(method, {}))


# The FAE reference trains 10 000 steps at lr 2e-4 (batch 32) on a GPU. Measured learning curves on the
# default T2 cohort (brain-masked test pixel AP; `featureae-lite curves`, and an exploratory GPU sweep of
# the same code, docs/convergence.md):
#   lr 2e-3, constant:  250 steps 0.020 · 500 0.073 · 1000 0.148 · 1500 0.191 · 2000 0.212 · 3000 0.241
#   lr 2e-4, constant:  1000 steps 0.080 · 2500 0.184 · 5000 0.236 · 10 000 0.262 (the reference budget)
#   warm-up + cosine to 1 %, lr 2e-3: 1000 steps 0.121, 1500 steps 0.173 — *worse* than the constant
#   rate at the same steps, so the presets keep the references' constant rate.
#   batch 16 / 8 at equal CPU seconds: within ±0.01 of batch 32, so the reference batch size stays.
# FAE still improves at 3000 steps: no knee inside a CPU budget. It trains for the ~10 min cap: 1350
# steps in bfloat16 autocast (0.44 s/step on 2 cores vs 0.63 s in float32, `python -m
# bench.fae_precision`), lr 2e-3 (10× the reference: 0.148 vs 0.080 AP after 1000 steps).
FAE_CPU_LR = 2e-3
QUICK = Preset(
    cohort_size="quick",
    image_size=64,
    slice_step=4,
    train={"ae_l1": {"steps": 150}, "vae": {"steps": 150}, "ae_ssim": {"steps": 150},
           "fae": {"steps": 150, "lr": FAE_CPU_LR}, "dpa": {"steps": 150}, "proxyano": {"steps": 150},
           "patchsim": {"steps": 150}},
)
DEFAULT = Preset(
    cohort_size="default",
    image_size=128,
    slice_step=2,
    # Budgets at each method's knee, measured (pixel AP vs steps, docs/convergence.md): ae_l1 and
    # ae_ssim are flat from 1000 steps (ae_l1 0.024 → 0.023 at 8000), the VAE peaks near 2000 (0.038 at
    # 1000, 0.044 at 2000, 0.041 at 6000), DPA is flat from 250 (0.287 → 0.301 at 3000); FAE trains
    # for the ~10 min cap (above). ProxyAno and patchsim keep 600 steps (~2 min each).
    train={"ae_l1": {"steps": 1000}, "vae": {"steps": 2000}, "ae_ssim": {"steps": 1000},
           "fae": {"steps": 1350, "lr": FAE_CPU_LR, "precision": "bfloat16"}, "dpa": {"steps": 250},
           "proxyano": {"steps": 600}, "patchsim": {"steps": 600}},
)
# The notebooks at classroom settings (QUICK=False, the README's main job): the DEFAULT cohort and
# image size, but 40 % of DEFAULT's training steps, so that the ten notebooks — which also train
# ablations — run in well under 30 min on 2 cores (with half of them: 26 min of notebooks, too close).
# The benchmark command uses DEFAULT.
CLASSROOM = Preset(
    cohort_size="default",
    image_size=128,
    slice_step=2,
    train={m: {**o, "steps": o["steps"] * 2 // 5} for m, o in DEFAULT.train.items()},
)
TINY = Preset(cohort_size="tiny", image_size=64, slice_step=8)


def preset(quick: bool | str = False) -> Preset:
    """Return the preset for ``quick`` (True/False) or a name ``"tiny" | "quick" | "classroom" |
    "default"``."""
    if isinstance(quick, str):
        table = {"tiny": TINY, "quick": QUICK, "classroom": CLASSROOM, "default": DEFAULT}
        if quick not in table:
            raise ValueError(f"unknown preset {quick!r}; known: {', '.join(table)}")
        return table[quick]
    return QUICK if quick else DEFAULT
