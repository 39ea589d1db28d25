"""Cases of the eval-mode identity test of training through the chip (imported, not collected).

:func:`eval_outputs` computes chip outputs in eval and train mode on a few architectures
and profiles; ``python tests/train_support.py OUT.pt`` saves them.  The identity test runs
it twice, with the memsim of commit ae663fd (before the analog layers became trainable,
exported with ``git archive``) and with the current one, and compares the two.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor, nn

import memsim
from models.small import lenet5

# IR drop on 32x32 tiles: the exact solve of the shipped 256x256 tiles takes seconds per chip
IRDROP = {"name": "irdrop_32", "extends": "rram_wan2022_irdrop", "tile": {"rows": 32, "cols": 32}}
PROFILES: tuple[str | dict, ...] = (
    "ideal",
    "rram_1t1r_faulty_chen2015",
    "pcm_joshi2020",
    IRDROP,
)


def _models() -> list[tuple[str, nn.Module, Tensor]]:
    torch.manual_seed(1)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    x_mlp = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 10),
    )
    x_net = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(1)
    lenet = lenet5()
    x_lenet = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    return [("mlp", mlp, x_mlp), ("convs", net, x_net), ("lenet5", lenet, x_lenet)]


def eval_outputs() -> dict[str, Tensor]:
    """``{"<model>/<profile>/<mode>": outputs}``: two forward passes and one after drift."""
    out: dict[str, Tensor] = {}
    for name, model, x in _models():
        for profile in PROFILES:
            label = profile if isinstance(profile, str) else profile["name"]
            for mode in ("eval", "train"):
                chip = memsim.convert(model.eval(), profile, seed=3, chip_seed=4)
                chip.train(mode == "train")
                ys = [chip(x), chip(x)]
                memsim.drift(chip, 3600.0)
                ys.append(chip(x))
                out[f"{name}/{label}/{mode}"] = torch.stack([y.detach() for y in ys])
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.save(eval_outputs(), sys.argv[1])
