"""Counter-based random streams of a GA run.

Every random draw of the trainer comes from a generator derived from
``(seed, stream, generation)`` through ``numpy.random.SeedSequence``.  A
generation's operator stream therefore does not depend on how much randomness
earlier generations (or the fitness) consumed, which gives:

* bit-identical resume without replaying anything: generation ``g`` re-derives
  its streams from the checkpointed generation index;
* fitness randomness that is independent of the operators (and of the
  evaluation mode), because the fitness gets its own stream.

The process-global generators (``torch``, ``numpy.random``, ``random``) are not
used by the trainer; they are seeded at the start of a run and checkpointed, so
that a fitness that uses them anyway still resumes bit-identically.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

STREAM_OPERATORS = 1
"""Selection, crossover and mutation (torch generator)."""
STREAM_FITNESS = 2
"""The fitness function's generator."""
STREAM_INIT = 3
"""Population initialisation."""
STREAM_REFERENCES = 4
"""Noise of the two reference models when the trainer builds them."""
STREAM_PYGAD = 5
"""PyGAD helper instance (its legacy ``RandomState`` and ``random.Random``)."""
STREAM_GLOBAL = 6
"""Seeds of the process-global generators."""


def stream_seed(seed: int, *keys: int) -> int:
    """A 64-bit seed of one of a GA run's streams, from ``seed`` and a path of integer keys.

    Not :func:`memsim.seeds.device_seed` nor :func:`lab.fitness.scoring.scoring_seed`: each gives
    different numbers.
    """
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def torch_generator(seed: int, *keys: int) -> torch.Generator:
    """Return a CPU ``torch.Generator`` seeded with :func:`stream_seed`."""
    gen = torch.Generator()
    gen.manual_seed(stream_seed(seed, *keys))
    return gen


def fitness_generator(seed: int, generation: int) -> torch.Generator:
    """Return the fitness function's generator for ``generation``."""
    return torch_generator(seed, STREAM_FITNESS, generation)


def operator_generator(seed: int, generation: int) -> torch.Generator:
    """Return the operators' generator for producing generation ``generation``."""
    return torch_generator(seed, STREAM_OPERATORS, generation)


def numpy_random_state(seed: int, *keys: int) -> np.random.RandomState:
    """Return a legacy ``RandomState`` (what PyGAD operators call) on a derived MT19937."""
    return np.random.RandomState(np.random.MT19937(stream_seed(seed, *keys)))


def python_random(seed: int, *keys: int) -> random.Random:
    """Return a ``random.Random`` seeded with :func:`stream_seed`."""
    return random.Random(stream_seed(seed, *keys))


def seed_globals(seed: int) -> None:
    """Seed the process-global torch, numpy and python generators from ``seed``."""
    torch.manual_seed(stream_seed(seed, STREAM_GLOBAL, 0))
    np.random.seed(stream_seed(seed, STREAM_GLOBAL, 1) % 2**32)
    random.seed(stream_seed(seed, STREAM_GLOBAL, 2))


def global_states() -> dict[str, Any]:
    """Capture the global generator states in a ``torch.load(weights_only=True)``-safe form."""
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": [list(s) if isinstance(s, tuple) else s for s in random.getstate()],
    }


def restore_global_states(states: dict[str, Any]) -> None:
    """Restore what :func:`global_states` captured."""
    torch.set_rng_state(states["torch"])
    np_s = states["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_s["key"].numpy().astype(np.uint32), "pos": np_s["pos"]},
            "has_gauss": np_s["has_gauss"],
            "gauss": np_s["gauss"],
        }
    )
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
