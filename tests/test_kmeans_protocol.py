"""benchmarks/kmeans_protocol.py: the cost sweep flags a cliff between adjacent sizes."""

import importlib.util

import numpy as np
import pytest

from paths import ROOT

spec = importlib.util.spec_from_file_location("kmeans_protocol", ROOT / "benchmarks" / "kmeans_protocol.py")
kmeans_protocol = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kmeans_protocol)


def _clock(monkeypatch, seconds_of_k: dict[int, float]):
    """A fake k-means whose cost is ``seconds_of_k[k]`` on the benchmark's clock."""
    now = [0.0]

    def fake_kmeans(x, k, restarts):
        now[0] += seconds_of_k[k]
        return np.arange(len(x)) % k

    monkeypatch.setattr(kmeans_protocol, "kmeans", fake_kmeans)
    monkeypatch.setattr(kmeans_protocol.time, "perf_counter", lambda: now[0])


def test_a_cost_in_proportion_to_the_work_is_smooth(monkeypatch):
    _clock(monkeypatch, {10: 1.0, 40: 8.0})  # n x k grows 8 times, so does the time
    sweep = kmeans_protocol.cost_sweep([(100, 10), (200, 40)], dim=4, spread=0.5, restarts=1, max_jump=3.0)
    assert [r["seconds"] for r in sweep["sizes"]] == [1.0, 8.0]
    assert sweep["sizes"][1]["jump"] == 1.0 and sweep["smooth"]


def test_the_old_protocols_cliff_fails_the_sweep(monkeypatch):
    _clock(monkeypatch, {28: 30.0, 56: 4.2})  # the old switch to faiss: 4x the work in a seventh of the time
    sweep = kmeans_protocol.cost_sweep([(150, 28), (300, 56)], dim=4, spread=0.5, restarts=1, max_jump=3.0)
    assert sweep["sizes"][1]["jump"] == 0.035 and not sweep["smooth"]


def test_a_bad_size_names_itself_and_what_was_expected(capsys):
    for bad, expected in (("6000", "expected N:K"), ("10:20", "expected N ≥ K ≥ 2")):
        with pytest.raises(SystemExit):
            kmeans_protocol.main(["--cost-sizes", bad])
        assert f"'{bad}': {expected}" in capsys.readouterr().err
