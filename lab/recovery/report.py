"""The recovery table: one row per method, printed by ``memsim ga`` and ``memsim demo``."""

from __future__ import annotations

from typing import Any


def _pm(mean: float, spread: float) -> str:
    return f"{mean:6.2f} ± {spread:4.2f}"


def format_recovery(results: dict[str, Any]) -> str:
    """Human-readable recovery table of a recovery stage's results dict."""
    chips = [str(results["fitness_chip"]), *(str(c) for c in results["transfer_chips"])]
    b = results["budget"]
    lines = [
        f"{results['name']}: accuracy recovery of {results['task']} ({results['scale']} "
        f"baseline) on {results['profile']} chip {chips[0]}"
        + (f" (transfer chips {', '.join(chips[1:])})" if chips[1:] else ""),
        f"  budget per method: {b['steps']} training steps; search methods also "
        f"{b['chip_evaluations']} chip evaluations",
        f"  protocol: {results['protocol']}; accuracy mean ± std, gain over qat paired "
        "mean ± se",
    ]
    head = f"  {'method':<22}"
    for c in chips:
        head += f" {'chip ' + c + ' (%)':>15}"
    for c in chips:
        head += f" {'vs qat ' + c + ' (pp)':>18}"
    head += f" {'wall (s)':>9}  needs"
    lines.append(head)
    for row in results["recovery"]:
        line = f"  {row['method']:<22}"
        for c in chips:
            e = row["chips"][c]
            line += f" {_pm(e['mean_pct'], e['std_pct']):>15}"
        for c in chips:
            d = row["chips"][c].get("vs_qat")
            line += f" {(_pm(d['mean_pp'], d['sem_pp']) if d else '-'):>18}"
        line += f" {row['wall_time_s']:9.1f}  {row['needs']}"
        if row["label"]:
            line += f" ({row['label']})"
        lines.append(line)
    for row in results["recovery"]:
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
    return "\n".join(lines)
