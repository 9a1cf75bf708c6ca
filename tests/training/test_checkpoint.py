import random

import numpy as np
import pytest
import torch

from dmlkit.errors import DmlkitError
from dmlkit.training import checkpoint as ck


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "sub" / "last.pt"
    ck.save_checkpoint(path, {"w": torch.arange(3), "epoch": 2})
    state = ck.load_checkpoint(path)
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.arange(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    ck.save_checkpoint(path, {"epoch": 1})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("crash while pickling")

    with pytest.raises(RuntimeError, match="crash while pickling"):
        ck.save_checkpoint(path, {"epoch": 2, "bad": Boom()})
    assert ck.load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DmlkitError, match="checkpoint not found: .*nope.pt"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DmlkitError, match="cannot load checkpoint .*junk.pt"):
        ck.load_checkpoint(junk)


def test_rng_state_round_trip():
    state = ck.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
