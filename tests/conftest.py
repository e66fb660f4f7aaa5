"""Shared test fixtures: offline, home left alone, figures closed."""

from __future__ import annotations

import socket

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """Redirect data, caches and home-based folders to a temporary directory; block the network."""
    root = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("FEATUREAE_LITE_DATA", str(root / "data"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("MPLCONFIGDIR", str(root / "mpl"))
    monkeypatch.setenv("NILEARN_DATA", str(root / "nilearn"))

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
    """One data folder shared by the slow end-to-end tests (the QUICK cohort is synthesised once)."""
    return tmp_path_factory.mktemp("quick_data")
