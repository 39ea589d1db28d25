"""The tables printed by ``memsim ga`` and ``memsim demo``: one run, or a study of replicates."""

from __future__ import annotations

from typing import Any

from lab.experiment.price import PRICE_HEAD, price_columns

PRICE_NOTE = (
    "  price per inference on the fitness chip (lab.experiment.price): energy (analog x "
    "arrays + digital corrections' MACs), area (analog x arrays), latency (analog)"
)


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
    w = _width(results)
    head = f"  {'method':<{w}}"
    for c in chips:
        head += f" {'chip ' + c + ' (%)':>15}"
    for c in chips:
        head += f" {'vs ' + ref + ' ' + c + ' (pp)':>18}"
    # results files written before methods had a price show no price columns
    priced = any(r.get("price") for r in results["methods"])
    head += f" {'wall (s)':>9}" + (PRICE_HEAD if priced else "") + "  needs"
    lines.append(head)
    for row in results["methods"]:
        line = f"  {row['method']:<{w}}"
        for c in chips:
            e = row["chips"][c]
            line += f" {_pm(e['mean_pct'], e['std_pct']):>15}"
        for c in chips:
            d = row["chips"][c].get("paired_vs_reference")
            line += f" {(_pm(d['mean_pp'], d['sem_pp']) if d else '-'):>18}"
        line += f" {row['wall_time_s']:9.1f}" + (price_columns(row) if priced else "")
        line += f"  {row['needs']}"
        if row["label"]:
            line += f" ({row['label']})"
        lines.append(line)
    lines += confusion_lines(results["methods"])
    lines += [PRICE_NOTE] if priced else []
    return "\n".join(lines)


def _width(results: dict[str, Any]) -> int:
    """Width of the method column (22, wider for longer names such as ``X:chip``)."""
    return max(22, *(len(r["method"]) + 1 for r in results["methods"]))


def _ci(v: dict[str, Any]) -> str:
    if v["ci95_low_pp"] is None:
        return f"{v['mean_pp']:+6.2f} (n=1)"
    mark = "*" if v["significant"] else " "
    return f"{v['mean_pp']:+6.2f} [{v['ci95_low_pp']:+6.2f}, {v['ci95_high_pp']:+6.2f}]{mark}"


def format_study(results: dict[str, Any]) -> str:
    """Human-readable table of a study's results (see :func:`aggregate`)."""
    columns = chip_columns(results)
    ref = results["reference"]
    n = results["replicates"]
    b = results["budget"]
    chips_note = (
        "new chip instances per replicate (seeds + 1000 r)"
        if results["vary_chips"]
        else ("the same chips in every replicate")
    )
    lines = [
        f"{results['name']}: {n} replicates of {results['task']} ({results['scale']} baseline) "
        f"on {results['profile']} chip {columns[0]}"
        + (f" (transfer chips {', '.join(columns[1:])})" if columns[1:] else ""),
        f"  each replicate: its own baseline, method and evaluation seeds; {chips_note}; "
        f"seed offset {results['seed_offset']}",
        f"  budget per method: {b['steps']} training steps; search methods also "
        f"{b['chip_evaluations']} chip evaluations",
        f"  protocol: {results['protocol']}",
        f"  accuracy: mean over replicates; gain over {ref}: mean of the replicates' paired "
        "gains [95 % t-interval over replicates], * = significant (interval excludes 0)",
    ]
    w = _width(results)
    head = f"  {'method':<{w}}"
    for c in columns:
        head += f" {'chip ' + c + ' (%)':>12} {'vs ' + ref + ' ' + c + ' (pp)':>27}"
    priced = any(r.get("price") for r in results["methods"])  # none in older results files
    head += (PRICE_HEAD if priced else "") + "  needs"
    lines.append(head)
    for row in results["methods"]:
        line = f"  {row['method']:<{w}}"
        for c in columns:
            e = row["chips"][c]
            v = e.get("vs_reference")
            line += f" {e['mean_pct']:12.2f} {(_ci(v) if v else '-'):>27}"
        line += price_columns(row) if priced else ""
        line += f"  {row['needs']}" + (f" ({row['label']})" if row["label"] else "")
        lines.append(line)
    verdict = results["significant_on_fitness_chip"]
    lines.append(
        f"  significantly above {ref} on chip {columns[0]}: "
        + (", ".join(verdict["above"]) or "none")
    )
    lines.append(
        f"  significantly below {ref} on chip {columns[0]}: "
        + (", ".join(verdict["below"]) or "none")
    )
    lines += kind_lines(results, columns)
    lines += [PRICE_NOTE] if priced else []
    return "\n".join(lines)


def kind_lines(results: dict[str, Any], columns: list[str]) -> list[str]:
    """The chip-minus-software fine-tune gains of a study (none when no method ran both)."""
    pairs = results.get("chip_vs_software")
    if not pairs:
        return []
    lines = [
        "  fine-tune through the chip minus the software fine-tune, same method: mean of the "
        "replicates' paired differences (pp) [95 % t-interval], * = significant"
    ]
    labels = [f"{p['method']}:chip - {p['software']}" for p in pairs]
    w = max(len(label) for label in labels)
    for label, p in zip(labels, pairs, strict=True):
        cells = "".join(f"  chip {c}: {_ci(p['chips'][c]):>27}" for c in columns)
        lines.append(f"  {label:<{w}}{cells}".rstrip())
    return lines
