"""How many programming points the sigma(ĝ) fit needs: worst relative error on [0.05, 1].

Draws programming data from the shipped rram_wan2022 and pcm_joshi2020 models
(memsim.physics) for several sizes and three seeds, fits them with
memsim.fit.fit_programming, and prints the worst |sigma_fit / sigma_true - 1| over
ĝ in [0.05, 1] and the chosen degree.  About two minutes on one core.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import memsim
from memsim import fit
from memsim.physics import device_model


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        for base in ("rram_wan2022", "pcm_joshi2020"):
            prof = memsim.load_profile(base)
            gh = np.linspace(0.05, 1, 200)
            true = device_model(prof).program_sigma(torch.tensor(gh * prof.device.g_max_uS)).numpy()
            for n in (1000, 3000, 10000, 30000):
                errs, degs = [], []
                for seed in range(3):
                    m = fit.simulate_measurements(
                        prof, n_program=n, n_drift_devices=0, n_read_devices=0, seed=seed
                    )
                    p = fit.fit_programming(
                        m["program"]["target_uS"], m["program"]["g_uS"], prof.device.g_max_uS
                    )
                    errs.append(float(np.max(np.abs(p.sigma(gh) / true - 1))))
                    degs.append(p.degree)
                print(
                    f"{base:<14} {n:>6} points: worst rel. error "
                    f"{', '.join(f'{e:.3f}' for e in errs)}  degrees {degs}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
