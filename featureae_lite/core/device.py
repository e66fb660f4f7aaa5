"""Which device trains and predicts: ``auto`` (CUDA, else Apple MPS, else the CPU), or one by name.

Models and mini-batches move to the device; data sets stay in CPU memory, and checkpoints are always
written with CPU tensors, so a model trained on a GPU loads on a laptop. On a machine without an
accelerator ``auto`` is the CPU and every figure is the same as without a device choice.
"""

from __future__ import annotations

import torch

from featureae_lite.core.errors import InputError

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch device for a name.

    Parameters
    ----------
    name : str, torch.device or None
        ``"auto"`` / None (CUDA if available, else MPS, else CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"``.

    Raises
    ------
    ValueError
        An unknown name, or a device this machine does not have (the message says what it has).
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = "auto" if name is None else str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    kind = name.split(":", 1)[0]
    if kind not in DEVICES[1:]:
        raise InputError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)} (or cuda:N)")
    if kind == "cuda":
        if not torch.cuda.is_available():
            built = "a CUDA build" if torch.version.cuda else "a CPU-only build"
            raise InputError(f"device {name!r}: CUDA is not available here (torch {torch.__version__}, "
                             f"{built}); use --device auto or cpu")
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA "
                             "device(s)")
    if kind == "mps" and not _mps_available():
        raise InputError(f"device {name!r}: Apple MPS is not available here; use --device auto or cpu")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """A short human-readable name, e.g. ``"cuda (NVIDIA H100 80GB HBM3)"`` or ``"cpu (2 threads)"``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
