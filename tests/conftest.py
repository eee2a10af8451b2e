"""Suite-wide settings and shared fixtures.

``torch.set_num_threads(1)``: on a 2-core machine one thread is faster for these tiny tensors, and it
keeps float results independent of the core count. Models in the tests are tiny (vocabulary ~10,
length ~8, hidden 16); only the oracle tests load the paper's oracle (V 5000, T 20). ``HF_HUB_OFFLINE``: no test
reaches the Hugging Face hub (``--generator-from NAME`` with no such folder fails at once).
"""

from __future__ import annotations

import os

import pytest
import torch

from seqgan_rl.models import OracleLSTM

torch.set_num_threads(1)
os.environ["HF_HUB_OFFLINE"] = "1"  # a name that is no local folder fails at once instead of retrying the hub


@pytest.fixture(autouse=True)
def _keep_threads():
    """Every test ends with the thread count it started with (the scripts' ``main`` sets ``--threads``)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def paper_oracle() -> OracleLSTM:
    return OracleLSTM.paper()


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")),
]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each device a test must hold on: the CPU, and CUDA where this machine has it (else skipped, saying so)."""
    return torch.device(request.param)
