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
    steps : dict
        Training steps per method (methods not listed use their config default).
    """

    cohort_size: str
    image_size: int
    slice_step: int
    slice_range: tuple[int, int] = (55, 135)
    steps: dict[str, int] = field(default_factory=dict)

    def steps_for(self, method: str) -> dict[str, int]:
        """``{"steps": n}`` for methods with a preset step count, else ``{}``."""
        return {"steps": self.steps[method]} if method in self.steps else {}


QUICK = Preset(
    cohort_size="quick",
    image_size=64,
    slice_step=4,
    steps={"ae_l1": 150, "vae": 150, "ae_ssim": 150, "fae": 150, "dpa": 150, "proxyano": 150,
           "patchsim": 150},
)
DEFAULT = Preset(
    cohort_size="default",
    image_size=128,
    slice_step=2,
    # sized so each model trains in ≤ 5 min on 2 CPU cores (FAE: ~1.1 s/step, the AEs ~0.17 s/step)
    steps={"ae_l1": 1000, "vae": 1000, "ae_ssim": 1000, "fae": 250, "dpa": 600, "proxyano": 600,
           "patchsim": 600},
)
TINY = Preset(cohort_size="tiny", image_size=64, slice_step=8, steps={})


def preset(quick: bool | str = False) -> Preset:
    """Return the preset for ``quick`` (True/False) or a name ``"tiny" | "quick" | "default"``."""
    if isinstance(quick, str):
        table = {"tiny": TINY, "quick": QUICK, "default": DEFAULT}
        if quick not in table:
            raise ValueError(f"unknown preset {quick!r}; known: {', '.join(table)}")
        return table[quick]
    return QUICK if quick else DEFAULT
