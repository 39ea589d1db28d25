"""Fixtures and paths shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
"""The checkout."""

DATA = ROOT.parent / "shared" / "data"
"""The real datasets (``<name>.npz``) beside the checkout; data tests use them when present."""


def _seed_offset() -> int:
    from lab.experiment.context import seed_offset

    return seed_offset()


SEED_OFFSET = _seed_offset()
"""``$MEMSIM_SEED_OFFSET``: every experiment seed, chips included, is shifted by it.

A test that names a chip or seed of an experiment it ran adds this; a test that asserts a
statistical effect must hold for any offset (``.ci/run`` runs them again at 1000).
"""


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    # The CPUs are shared: with two threads, small torch ops spin and run ~50x slower,
    # and one thread count for the whole suite keeps seeded results bit-reproducible.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (it may not exist; tests that need it skip)."""
    return DATA
