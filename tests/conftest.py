"""Shared test fixtures."""

import pytest


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never touch the network: model hubs are told to stay offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
