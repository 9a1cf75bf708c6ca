"""Evaluation tests run on tiny tensors: one intra-op thread avoids OpenMP hand-off costs that dominate
(and vary wildly) when the machine is shared; results do not depend on the thread count."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
