"""The cost model against ISAAC's published per-IMA component breakdown.

Run: .venv/bin/python bench/cost_isaac.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

# lab/ is not an installed package yet: import it from this checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.cost_isaac import format_comparison, isaac_comparison

torch.set_num_threads(1)

if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    rows, report = isaac_comparison(seed=0)
    print(format_comparison(rows, report))
