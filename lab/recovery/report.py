"""The table of one run: one row per method, printed by ``memsim ga`` and ``memsim demo``."""

from __future__ import annotations

from typing import Any


def _pm(mean: float, spread: float) -> str:
    return f"{mean:6.2f} ± {spread:4.2f}"


def chip_columns(results: dict[str, Any]) -> list[str]:
    """The fitness chip first, then the transfer chips, as result keys."""
    return [str(results["fitness_chip"]), *(str(c) for c in results["transfer_chips"])]


def confusion_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per read-back method: its estimate of the fault map against the truth."""
    lines = []
    for row in rows:
        conf = row["info"].get("confusion")
        if conf:
            m = conf["matrix"]
            recall = conf["stuck_recall"]
            found = "no stuck devices" if recall is None else f"stuck found {100 * recall:.2f} %"
            lines.append(
                f"  {row['method']} read-back estimate vs truth (rows true, cols estimated; "
                f"{', '.join(conf['classes'])}): {m}; {found}, false positives "
                f"{100 * conf['false_positive_rate']:.3f} % of working devices"
            )
    return lines


def format_recovery(results: dict[str, Any]) -> str:
    """Human-readable table of one run's results dict (one replicate)."""
    chips = chip_columns(results)
    ref = results["reference"]
    b = results["budget"]
    lines = [
        f"{results['name']}: {results['task']} ({results['scale']} baseline) on "
        f"{results['profile']} chip {chips[0]}"
        + (f" (transfer chips {', '.join(chips[1:])})" if chips[1:] else ""),
        f"  budget per method: {b['steps']} training steps; search methods also "
        f"{b['chip_evaluations']} chip evaluations",
        f"  protocol: {results['protocol']}; accuracy mean ± std, gain over {ref} paired "
        "mean ± se over the draws of this one replicate",
    ]
    head = f"  {'method':<22}"
    for c in chips:
        head += f" {'chip ' + c + ' (%)':>15}"
    for c in chips:
        head += f" {'vs ' + ref + ' ' + c + ' (pp)':>18}"
    head += f" {'wall (s)':>9}  needs"
    lines.append(head)
    for row in results["methods"]:
        line = f"  {row['method']:<22}"
        for c in chips:
            e = row["chips"][c]
            line += f" {_pm(e['mean_pct'], e['std_pct']):>15}"
        for c in chips:
            d = row["chips"][c].get("paired_vs_reference")
            line += f" {(_pm(d['mean_pp'], d['sem_pp']) if d else '-'):>18}"
        line += f" {row['wall_time_s']:9.1f}  {row['needs']}"
        if row["label"]:
            line += f" ({row['label']})"
        lines.append(line)
    lines += confusion_lines(results["methods"])
    return "\n".join(lines)
