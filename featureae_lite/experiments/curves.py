"""Learning curves: pixel AP (overall and per anomaly type) and validation loss against training
steps and training seconds, one training run per method.

Each method trains once with its preset config; at a few step counts the training pauses, the model
predicts the whole test split and the brain-masked pixel AP is computed (the pause is not counted in
the training seconds). Under ``schedule="cosine"`` an intermediate point is the model part-way
through a schedule planned for the full run, not a shorter run of its own: use
``overrides={"schedule": "constant"}`` to read a knee off the curve.

>>> curves = learning_curves(["ae_l1", "fae"], "curves/", preset="quick")   # doctest: +SKIP

Writes ``curves.json`` (method → config and points), ``curves.md`` (one table) and ``curves.png``
(AP vs steps and vs seconds, one line per method; non-trainable methods as horizontal lines).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from featureae_lite.core import presets
from featureae_lite.core.errors import InputError
from featureae_lite.core.fileio import write_atomic
from featureae_lite.data.splits import DataSource
from featureae_lite.experiments.checkpoints import config_json
from featureae_lite.experiments.evaluation import evaluate_output
from featureae_lite.models.registry import applicable, create_detector, get_method

log = logging.getLogger(__name__)


def checkpoint_steps(steps: int, points: int = 6) -> list[int]:
    """``points`` step counts evenly spaced up to ``steps`` (the last one is ``steps``)."""
    if steps < 1 or points < 1:
        raise InputError(f"steps and points must be ≥ 1, got steps={steps}, points={points}")
    return sorted({max(1, round(steps * (i + 1) / points)) for i in range(points)})


def _point(detector, test, step: int, seconds: float) -> dict[str, Any]:
    out = detector.predict(test.images, test.brains)
    res = evaluate_output(out, test, per_type=True, unmasked=False)
    return {"step": step, "train_seconds": round(seconds, 2), "pixel_ap": res["pixel_ap"],
            "per_type": {t: r["pixel_ap"] for t, r in res["per_type"].items()}}


def learning_curves(
    methods: list[str],
    out_dir: str | os.PathLike,
    *,
    preset: str = "default",
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    contrast: str = "t2",
    steps: int | None = None,
    points: int = 6,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    device: str | None = "auto",
    source: DataSource | None = None,
) -> dict[str, Any]:
    """Train each method once and evaluate it at ``points`` step counts.

    Parameters
    ----------
    methods : list of str
        Registered method names (checked before any work starts).
    out_dir : path-like
        Folder for ``curves.json``, ``curves.md`` and ``curves.png``.
    preset : str
        Preset name (:data:`featureae_lite.core.presets.PRESETS`: sizes and budgets).
    steps : int, optional
        Train every method for this many steps instead of its preset budget.
    points : int
        Evaluations per method, evenly spaced.
    overrides : dict, optional
        Config overrides applied to every trainable method that has the option (e.g.
        ``{"schedule": "constant"}``, ``{"backbone": "resnet18"}``).
    device : str
        Where the models train (:func:`featureae_lite.core.device.resolve_device`).
    source : DataSource, optional
        Real data sets (default: the synthetic cohort).

    Returns
    -------
    dict
        ``{"meta": {...}, "methods": {method: {"config": ..., "points": [...]}}}``; each point holds
        ``step``, ``train_seconds``, ``pixel_ap``, ``per_type`` (type → pixel AP) and ``val_loss``.
    """
    from featureae_lite.core.device import describe, resolve_device
    from featureae_lite.data.splits import load_cohort_splits

    for m in methods:
        get_method(m)
    if not methods:
        raise InputError("no method given")
    where = resolve_device(device)
    p = presets.preset(preset)
    splits = load_cohort_splits(data_dir, preset, seed, contrast, progress, source=source)
    test = splits["test"]
    result: dict[str, Any] = {"meta": {"preset": p.name, "seed": seed,
                                       "contrast": contrast, "n_train_slices": len(splits["train"]),
                                       "n_test_slices": len(test), "device": describe(where),
                                       "data": splits["source"]},
                              "methods": {}}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for m in methods:
        cfg = {"image_size": p.image_size, "seed": seed, **p.overrides(m)}
        if get_method(m).trainable:
            det = create_detector(m, **{**cfg, **applicable(m, overrides or {}),
                                        **({"steps": steps} if steps else {})})
            det.to_device(where)
            marks = checkpoint_steps(det.config.steps, points)
            pts: list[dict[str, Any]] = []
            det.fit(splits["train"], splits["val"], progress=progress, checkpoints=marks,
                    on_checkpoint=lambda s, sec, d=det, acc=pts: acc.append(_point(d, test, s, sec)))
            vals = dict(zip(det.history["val_step"], det.history["val_loss"], strict=True))
            for pt in pts:
                pt["val_loss"] = vals.get(pt["step"])
        else:
            det = create_detector(m, **cfg)
            pts = [_point(det, test, 0, 0.0)]
        result["methods"][m] = {"trainable": det.trainable, "config": config_json(det.config), "points": pts}
        if progress:
            last = pts[-1]
            log.info("%10s: pixel AP %.3f after %s steps (%.0f s)", m, last["pixel_ap"], last["step"],
                     last["train_seconds"])
        save_curves(result, out_dir)  # after every method: a long run keeps what it measured
    return result



def save_curves(curves: dict[str, Any], out_dir: str | os.PathLike) -> None:
    """Write ``curves.json``, ``curves.md`` and ``curves.png`` into ``out_dir`` (atomically)."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    write_atomic(out_dir / "curves.json", json.dumps(curves, indent=2))
    write_atomic(out_dir / "curves.md", curves_markdown(curves))
    fig = plot_curves(curves)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(out_dir / "curves.png", buf.getvalue())


def curves_markdown(curves: dict[str, Any]) -> str:
    """One markdown table: method, step, training seconds, validation loss, pixel AP overall and per type."""
    types = sorted({t for m in curves["methods"].values() for p in m["points"] for t in p["per_type"]})
    lines = ["| method | steps | train s | val loss | pixel AP | " + " | ".join(f"AP {t}" for t in types)
             + " |", "|---" * (5 + len(types)) + "|"]
    for name, m in curves["methods"].items():
        for p in m["points"]:
            vl = p.get("val_loss")
            cells = " | ".join(f"{p['per_type'].get(t, float('nan')):.3f}" for t in types)
            lines.append(f"| {name} | {p['step']} | {p['train_seconds']:.0f} | "
                         f"{'–' if vl is None else f'{vl:.4f}'} | {p['pixel_ap']:.3f} | {cells} |")
    return "\n".join(lines) + "\n"


def plot_curves(curves: dict[str, Any], types: tuple[str, ...] = ("structural",)):
    """Figure with pixel AP against steps and against training seconds (one line per method), and
    the AP of each type in ``types`` against seconds; non-trainable methods are horizontal lines."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    panels = [("step", "pixel_ap", "pixel AP"), ("train_seconds", "pixel_ap", "pixel AP")] + [
        ("train_seconds", t, f"AP {t}") for t in types]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6))
    colors = dict(zip(curves["methods"], sns.color_palette("tab10", len(curves["methods"])), strict=True))
    for ax, (xkey, ykey, ylabel) in zip(axes, panels, strict=True):
        for name, m in curves["methods"].items():
            ys = [p["pixel_ap"] if ykey == "pixel_ap" else p["per_type"].get(ykey, np.nan)
                  for p in m["points"]]
            if not m["trainable"]:
                ax.axhline(ys[0], ls="--", lw=1, color=colors[name], label=name)
                continue
            xs = [p[xkey] for p in m["points"]]
            ax.plot(xs, ys, marker="o", ms=3, color=colors[name], label=name)
        ax.set_xlabel("training steps" if xkey == "step" else "training seconds (this machine)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"learning curves ({curves['meta']['preset']} preset, seed {curves['meta']['seed']}, "
                 "brain-masked pixel AP on the test split)", fontsize=10)
    fig.tight_layout()
    return fig
