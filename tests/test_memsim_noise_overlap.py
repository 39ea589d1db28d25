"""The read noise drawn on a background thread is the same noise, drawn in the same order.

With more than one torch thread, :func:`memsim.sampling.draw_later` draws a layer's
read-noise normals while the partial sums compute.  The suite runs on one thread
(``conftest.py``), where the overlap is off, so these tests switch to two.
"""

from __future__ import annotations

import multiprocessing as mp

import pytest
import torch
from torch import nn

import memsim
from memsim import sampling


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _chip() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, groups=2),
        nn.Flatten(),
        nn.Linear(8 * 10 * 10, 300),  # 800 rows: several row tiles
        nn.ReLU(),
        nn.Linear(300, 10),
    ).eval()
    return memsim.convert(model, "rram_1t1r_yao2020", seed=3).eval()


def _outputs(overlap: str, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    monkeypatch.setenv("MEMSIM_OVERLAP_NOISE", overlap)
    chip = _chip()
    x = torch.randn(16, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        memsim.calibrate(chip, x)
        return [chip(x) for _ in range(3)]


def test_overlapped_noise_equals_the_sequential_draws(two_threads, monkeypatch):
    assert sampling.overlap_enabled(torch.device("cpu"), sampling.NoiseSampler.exact)
    on = _outputs("1", monkeypatch)
    off = _outputs("0", monkeypatch)
    for a, b in zip(on, off):
        assert torch.equal(a, b)
    # the noise is really there: successive passes differ
    assert not torch.equal(on[0], on[1])


def test_overlap_is_off_on_one_thread_and_for_the_bank_sampler(monkeypatch):
    monkeypatch.setenv("MEMSIM_OVERLAP_NOISE", "1")
    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert not sampling.overlap_enabled(cpu, sampling.NoiseSampler.exact)
        torch.set_num_threads(2)
        assert sampling.overlap_enabled(cpu, sampling.NoiseSampler.exact)
        assert not sampling.overlap_enabled(cpu, sampling.NoiseSampler.bank)
        monkeypatch.setenv("MEMSIM_OVERLAP_NOISE", "0")
        assert not sampling.overlap_enabled(cpu, sampling.NoiseSampler.exact)
    finally:
        torch.set_num_threads(before)


def _pool_in_child(queue) -> None:
    queue.put(sampling._pool is None)


def test_a_forked_child_does_not_inherit_the_parents_noise_thread(two_threads, monkeypatch):
    # the parent's executor thread does not exist in a forked child: a child that kept the
    # executor would queue its draws forever, so the child starts without one
    _outputs("1", monkeypatch)
    assert sampling._pool is not None
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_pool_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) is True
