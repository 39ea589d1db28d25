"""What the remapping methods share: read-back, the mapping problem, greedy or GA placement."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from lab.fitness.finetune import with_genes
from lab.methods.base import RecoveryData
from lab.methods.chip import Chip
from lab.methods.remap import (
    greedy_placement,
    identity_rows_cols,
    placed_map,
    placement_error,
    row_activity,
    tile_problem,
    to_placements,
)
from lab.methods.remap_ga import MappingGA, evolve_placement
from memsim.placement import Placement
from memsim.readback import DefectEstimate


def read_back(chip: Chip, data: RecoveryData) -> dict[str, DefectEstimate]:
    """The read-back defect estimate ``defect_aware_readback`` uses (same settings)."""
    s = data.settings
    return chip.estimate_defects(
        reads=s.readback_reads, seed=data.seed, threshold=s.readback_threshold
    )


def choose_placement(
    baseline: nn.Module,
    data: RecoveryData,
    genes: Tensor,
    est: dict[str, DefectEstimate],
    how: str,
    folder: Path,
) -> tuple[dict[str, Placement], dict[str, Any]]:
    """Placement of ``genes`` on the estimated devices: ``how`` = ``"greedy"`` or ``"ga"``.

    The GA starts from the greedy placement (and the identity); its state is kept in
    ``folder`` so that a killed run resumes.  The info holds the mapping error (the
    activity-weighted error of :mod:`lab.methods.remap`, estimated defects) of no
    remapping, of the greedy placement and of the chosen one.
    """
    s = data.settings
    weights = data.genome.unflatten(genes)
    maps = {k: e.defect_map for k, e in est.items()}
    activity = None
    if s.mapping_activity:
        net = with_genes(baseline, data.genome, genes)
        activity = row_activity(net, list(data.genome.keys), data.train.images)
    prob = tile_problem(weights, maps, activity)
    ident = identity_rows_cols(prob)
    rows, cols = greedy_placement(prob)
    info: dict[str, Any] = {
        "mapping_error_none": placement_error(prob, ident[0][0], ident[1][0]),
        "mapping_error_greedy": placement_error(prob, rows, cols),
    }
    if how == "ga":
        cfg = MappingGA(
            population=s.mapping_population,
            generations=s.mapping_generations,
            tau=s.mapping_selection_tau,
            seed=data.seed,
        )
        res = evolve_placement(prob, cfg, folder, seeds=[(rows, cols)], echo=data.echo)
        rows, cols = res.rows, res.cols
        info["mapping_error_ga"] = res.error
    elif how != "greedy":
        raise ValueError(f"placement must be 'greedy' or 'ga', got {how!r}")
    return to_placements(prob, rows, cols), info


def placed_weight_map(
    est: dict[str, DefectEstimate], placements: dict[str, Placement]
) -> Callable[[str, Tensor], Tensor]:
    """``(name, w) -> w'`` through the estimated defects under ``placements``."""
    maps = {k: placed_map(e.defect_map, placements[k]) for k, e in est.items()}
    return lambda name, w: maps[name].apply(w)
