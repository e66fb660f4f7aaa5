"""Shared test fixtures: offline, home left alone, figures closed."""

from __future__ import annotations

import socket
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")


HOME_VARIABLES = {
    "TORCH_HOME": "torch", "MPLCONFIGDIR": "mpl", "NILEARN_DATA": "nilearn", "XDG_CACHE_HOME": "cache",
    # the papermill kernels inherit these: IPython profile, Jupyter runtime and config files
    "IPYTHONDIR": "ipython", "JUPYTER_DATA_DIR": "jupyter", "JUPYTER_RUNTIME_DIR": "jupyter/runtime",
    "JUPYTER_CONFIG_DIR": "jupyter_config",
}


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Home-based folders of every test and kernel go to a temporary directory.

    Session-scoped so that it is in place before module- and session-scoped fixtures (the papermill
    run of the notebooks) start.
    """
    root = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in HOME_VARIABLES.items():
            mp.setenv(var, str(root / sub))
        mp.setenv("FEATUREAE_LITE_DATA", str(root / "data"))
        yield root


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """A fresh data folder for every test; the network blocked (loopback only)."""
    monkeypatch.setenv("FEATUREAE_LITE_DATA", str(tmp_path_factory.mktemp("data")))

    real_connect = socket.socket.connect

    def _loopback_only(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and "/" not in host:
            raise RuntimeError(f"tests must not use the network (tried to connect to {host})")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", _loopback_only)
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="session")
def quick_data_dir(tmp_path_factory):
    """One data folder shared by the slow end-to-end tests (the QUICK cohort is synthesised once).

    When the checkout's data folder holds a fetched real set (``make setup`` runs ``featureae-lite
    fetch-real``), it is linked in as ``real/`` so that notebook 10 runs its transfer test offline."""
    from featureae_lite.experiments.transfer import find_real_data

    folder = tmp_path_factory.mktemp("quick_data")
    real = find_real_data(None, Path(__file__).resolve().parents[1] / "data")
    if real is not None:
        (folder / "real").symlink_to(real, target_is_directory=True)
    return folder
