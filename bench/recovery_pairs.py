"""Paired comparisons between recovery methods of a replicate study, and the oracle share.

    python bench/recovery_pairs.py STUDY_DIR A:B [A:B ...] [--oracle NAME]

For every pair ``A:B``: per replicate, the mean over its paired test draws of
``acc(A) - acc(B)`` on the fitness chip (the draws are shared by all methods of a run),
then the mean and 95 % t-interval over replicates (``lab.studies.replicates.t_interval``).
With ``--oracle``, each method's gain over the reference as a share of the oracle's gain
(replicate means of the paired gains).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from lab.studies.replicates import t_interval


def _runs(study: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(study.glob("rep-*/results.json"))]


def _acc(run: dict, method: str) -> list[float]:
    chip = str(run["fitness_chip"])
    row = next(r for r in run["methods"] if r["method"] == method)
    return row["chips"][chip]["accuracies"]


def pair(runs: list[dict], a: str, b: str) -> dict:
    """Replicate means of the paired ``A - B`` differences (pp) and their t-interval."""
    diffs = [100 * statistics.fmean(x - y for x, y in zip(_acc(r, a), _acc(r, b))) for r in runs]
    return {**t_interval(diffs), "replicate_pp": diffs}


def main() -> None:
    """Print the pairs and the oracle shares."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("pairs", nargs="+")
    ap.add_argument("--oracle", default=None)
    args = ap.parse_args()
    runs = _runs(args.study)
    print(f"{args.study}: {len(runs)} replicates, fitness chip {runs[0]['fitness_chip']}")
    for spec in args.pairs:
        a, b = spec.split(":")
        p = pair(runs, a, b)
        lo, hi = p["ci95_low_pp"], p["ci95_high_pp"]
        mark = "significant" if p["significant"] else "not significant"
        print(
            f"  {a} - {b}: {p['mean_pp']:+.2f} pp [{lo:+.2f}, {hi:+.2f}] ({mark}); "
            f"replicates {[round(v, 2) for v in p['replicate_pp']]}"
        )
    if args.oracle:
        ref = runs[0]["reference"]
        gain = {
            m["method"]: pair(runs, m["method"], ref)["mean_pp"]
            for m in runs[0]["methods"]
            if m["method"] not in (ref, "baseline")
        }
        top = gain[args.oracle]
        print(f"  share of {args.oracle}'s gain over {ref} ({top:+.2f} pp):")
        for name, g in gain.items():
            print(f"    {name:<22} {g:+6.2f} pp  {100 * g / top:6.1f} %" if top else name)


if __name__ == "__main__":
    main()
