"""The one QUICK switch (as in d2l): data size, image size and training steps in one place.

Notebooks, the CLI and the tests all read their sizes from :func:`preset` so that ``QUICK=True``
means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from featureae_lite.core.errors import InputError


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
    budgets : dict
        Per-method config overrides for this preset (steps, and for FAE the learning rate), so that
        every model trains within the time budget of the hardware the preset is meant for.
    name : str
        The preset's name (recorded in ``meta.json``).
    ablation_steps : dict
        Steps of the variants a notebook trains to compare against its reference at the same budget
        (notebook 04's FAE ablations); a method without an entry gets a third of its budget.
    """

    cohort_size: str
    image_size: int
    slice_step: int
    slice_range: tuple[int, int] = (55, 135)
    budgets: dict[str, dict] = field(default_factory=dict)
    name: str = ""
    ablation_steps: dict[str, int] = field(default_factory=dict)

    def overrides(self, method: str) -> dict:
        """Config overrides of ``method`` under this preset (``{}`` if none)."""
        return dict(self.budgets.get(method, {}))

    def ablation_budget(self, method: str) -> dict:
        """Config overrides of the variants (and their reference) a notebook compares at one short
        budget: ``{"steps": n}`` from :attr:`ablation_steps`, else a third of the method's budget."""
        if method in self.ablation_steps:
            return {"steps": self.ablation_steps[method]}
        steps = self.overrides(method).get("steps")
        return {"steps": max(40, steps // 3)} if steps else {}




# The FAE reference trains 10 000 steps at lr 2e-4 (batch 32) on a GPU. Measured on 2 CPU cores, default
# T2 cohort (`featureae-lite curves`, brain-masked test pixel AP; docs/convergence.md), lr 2e-3 constant,
# bfloat16 autocast:
#   steps        225    450    675    900   1125   1350
#   train s      112    218    325    434    539    643
#   pixel AP   0.024  0.069  0.136  0.147  0.168  0.176   (structural 0.011 → 0.085)
# and on a GPU sweep of the same code: still rising at 3000 steps (0.241); lr 2e-4 needs 10 000 steps
# for 0.262; warm-up + cosine is *worse* than the constant rate at equal steps (1000: 0.121 vs 0.148);
# batch 8 / 16 / 32 are within ±0.01 at equal CPU seconds. No knee inside a CPU budget, so FAE trains
# for the ~10 min cap at lr 2e-3 (10× the reference; 0.148 vs 0.080 AP after 1000 steps): 1400 steps
# of 0.386 s (bfloat16 autoencoder, SSIM in float32 reduced chunk by chunk by `ssim_loss`; 0.442 s
# before it, `python -m bench.speed`; ~0.63 s in float32, bench.fae_precision) — 555 s of training
# for pixel AP 0.184 (structural 0.085) in the benchmark of 2026-11-26.
FAE_CPU_LR = 2e-3
QUICK = Preset(
    name="quick",
    cohort_size="quick",
    image_size=64,
    slice_step=4,
    budgets={"ae_l1": {"steps": 150}, "vae": {"steps": 150}, "ae_ssim": {"steps": 150},
           "fae": {"steps": 150, "lr": FAE_CPU_LR}, "dpa": {"steps": 150}, "proxyano": {"steps": 150},
           "patchsim": {"steps": 150}},
)
DEFAULT = Preset(
    name="default",
    cohort_size="default",
    image_size=128,
    slice_step=2,
    # Budgets where the validation loss flattens (docs/convergence.md; never chosen by test AP): ae_l1
    # (val loss 0.0696 at 833 steps, 0.0699 at 1000) and ae_ssim flat from ~1000 steps — their test AP
    # does not improve with more (ae_l1 0.031 at 167 steps, 0.022 at 1000; GPU: 0.023 at 8000), the VAE
    # flat from ~1300-2000 (val loss 0.0841 → 0.0842), DPA 250 (AP 0.294; GPU: 0.301 at 3000); FAE
    # trains for the ~10 min cap (above). ProxyAno (dense 64-unit PEM bottleneck; curve to 1800 steps,
    # docs/convergence.md): the val loss falls 14 % from 300 to 600 steps and 6 % to 900, then by at
    # most 3.4 % per 300 steps (0.2097, 0.2073, 0.2003, 0.1986) → 900 steps; its test AP is flat from
    # 300 steps on (0.036-0.046). patchsim (curve to 3600 steps,
    # 0.16 s each): the val loss is still falling at the 10-min cap (0.0286 at 600, 0.0226 at 1800,
    # 0.0222 at 2400, 0.0239 at 3000, 0.0208 at 3600) → 3600 steps (571 s); its test AP left the floor
    # between 600 and 1200 steps (0.004 → 0.139) and reached 0.25-0.31 from 2400 on.
    budgets={"ae_l1": {"steps": 1000}, "vae": {"steps": 2000}, "ae_ssim": {"steps": 1000},
           "fae": {"steps": 1400, "lr": FAE_CPU_LR, "precision": "bfloat16"}, "dpa": {"steps": 250},
           "proxyano": {"steps": 900}, "patchsim": {"steps": 3600}},
)
# The notebooks at classroom settings (QUICK=False, the main job of `make run`): train once, then teach.
# The course models get DEFAULT's budgets — the benchmark's, at the knee of their curves — and the
# main job (`featureae-lite main`) trains each of them once before the notebooks, which load them
# (train-or-load, checkpoints keyed by config). At 40 % of these budgets (this preset until
# 2026-11-26) FAE stood at AP 0.092, half of what 1250 benchmark steps gave (0.181), and its lead over the l1
# residual was 2.6× instead of 8×. Notebook 04's ablations train FAE variants (and the reference
# again) for 450 steps each, where FAE's curve has left the floor (AP 0.069 at 450 steps vs 0.024
# at 225, docs/convergence.md) at ~3 min per variant; a third of the budget (as before) left every
# variant at the floor, where their order was noise.
CLASSROOM = Preset(
    name="classroom",
    cohort_size="default",
    image_size=128,
    slice_step=2,
    budgets=DEFAULT.budgets,
    ablation_steps={"fae": 450},
)
# The papers' budgets, for a GPU (`--preset paper --device cuda`): every slice of the range (slice step 1),
# and the reference code's shared config for FAE and the image-space autoencoders — Adam, lr 2e-4, batch 32,
# 10 000 steps, float32 (Meissen et al., BrainLes 2022; `fae/configs/base_config.py` in the authors' code).
# DPA (Shvetsova et al., IEEE Access 2021): the paper's lr 2e-3 without progressive growing and batch 128; the
# paper states no step count ("each stage to convergence"), and 3000 steps is where our GPU sweep of DPA (lr
# 1e-3, batch 32) had flattened (0.294 at 250 steps, 0.301 at 3000). ProxyAno and patchsim (AREPAS-style)
# state no budget; 5000 steps at the methods' default lr is a generous bound chosen here, not a measured knee
# — run `featureae-lite curves --preset paper` on the GPU to see where they flatten.
REFERENCE = {"lr": 2e-4, "batch_size": 32, "steps": 10_000}
PAPER = Preset(
    name="paper",
    cohort_size="default",
    image_size=128,
    slice_step=1,
    budgets={"ae_l1": REFERENCE, "vae": REFERENCE, "ae_ssim": REFERENCE,
           "fae": {**REFERENCE, "precision": "float32"},
           "dpa": {"lr": 2e-3, "batch_size": 128, "steps": 3000},
           "proxyano": {"steps": 5000}, "patchsim": {"steps": 5000}},
)
TINY = Preset(name="tiny", cohort_size="tiny", image_size=64, slice_step=8)
PRESETS = {"tiny": TINY, "quick": QUICK, "classroom": CLASSROOM, "default": DEFAULT, "paper": PAPER}
# The presets a user runs (the command line's --preset choices): tiny is for the unit tests
RUN_PRESETS = tuple(name for name in PRESETS if name != "tiny")


def preset(name: str | bool = "default") -> Preset:
    """Return the preset called ``name`` (or the notebooks' ``QUICK`` flag: True = QUICK, False =
    DEFAULT): ``"tiny"`` (unit
    tests), ``"quick"`` (CI, ~1 min per notebook), ``"classroom"`` (the notebooks on a laptop, the
    course models at the benchmark's budgets),
    ``"default"`` (the benchmark on 2 CPU cores, ≤ 10 min per method) or ``"paper"`` (the references'
    budgets, for a GPU)."""
    if isinstance(name, str):
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        return PRESETS[name]
    return QUICK if name else DEFAULT
