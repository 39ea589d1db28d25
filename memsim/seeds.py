"""Seeds of the simulator's random streams.

Every random number memsim draws comes from a ``torch.Generator`` seeded by
:func:`device_seed` from the chip seed or the programming seed, a stream id and the
layer index, so a chip seed always gives the same chip on any device (the noise is drawn
on the CPU and moved).  The GA library (:func:`ga.rng.stream_seed`) and the experiment
layer's test-time scoring (:func:`lab.fitness.scoring.scoring_seed`) derive their seeds their own
way; the three functions give different numbers on purpose and must never be swapped,
or every recorded result would change.
"""

from __future__ import annotations

import numpy as np


def device_seed(*parts: int) -> int:
    """A 63-bit seed for one device stream of one layer (numpy ``SeedSequence``).

    Args:
        *parts: Integers, e.g. ``(chip_seed, stream, layer_index)``.

    """
    return int(
        np.random.SeedSequence([int(p) % (2**63) for p in parts]).generate_state(2, np.uint64)[0]
        >> 1
    )
