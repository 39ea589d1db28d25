"""The price of each recovery method per inference: energy, area and latency.

The analog part is :func:`memsim.cost_report` of the method's weights on the fitness
chip (``results["cost"]``, the same images for every method).  A method adds to it:

* ``k`` copies of the arrays (``info["arrays"]``: a committee of ``k`` chips, or ``k``
  arrays per layer): ``k`` times the analog energy and area; the copies run in
  parallel, so the latency stays;
* digital corrections (``info["digital_macs"]``: trims, adapters): each multiply-
  accumulate is priced at the profile's digital rescaling energy per output
  (``periphery.scale_energy_pJ``, one digital multiply-add), and assumed pipelined
  behind the analog arrays (no latency); their parameters are counted
  (``digital_params``) but their storage area is not modelled.

A placement (``ga_mapping``, ``remap_greedy``) only routes inputs and outputs: no price.
"""

from __future__ import annotations

from typing import Any


def method_price(
    cost: dict[str, Any] | None, info: dict[str, Any], scale_energy_pJ: float
) -> dict[str, Any] | None:
    """The price of one method (``None`` when the cost model has no figures)."""
    if not cost or not cost.get("available"):
        return None
    arrays = int(info.get("arrays", 1))
    macs = int(info.get("digital_macs", 0))
    digital_J = macs * scale_energy_pJ * 1e-12
    return {
        "energy_nJ": 1e9 * (arrays * cost["energy_J"] + digital_J),
        "area_mm2": arrays * cost["area_mm2"],
        "latency_us": 1e6 * cost["latency_s"],
        "arrays": arrays,
        "digital_params": int(info.get("digital_params", 0)),
        "digital_macs": macs,
        "digital_energy_nJ": 1e9 * digital_J,
    }


def add_prices(results: dict[str, Any], scale_energy_pJ: float) -> None:
    """Give every row of ``results["methods"]`` its ``price`` (see the module docstring)."""
    models = results.get("cost", {}).get("models", {})
    for row in results["methods"]:
        row["price"] = method_price(models.get(row["method"]), row["info"], scale_energy_pJ)


def mean_price(prices: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Replicate mean of each price figure (``None`` if any replicate has none)."""
    if not prices or any(p is None for p in prices):
        return None
    return {k: sum(p[k] for p in prices) / len(prices) for k in prices[0]}  # type: ignore[index]


def price_columns(row: dict[str, Any]) -> str:
    """``energy (nJ)  area (mm2)  latency (us)`` of a row, fixed width (dashes without one)."""
    p = row.get("price")
    if not p:
        return f" {'-':>10} {'-':>9} {'-':>9}"
    return f" {p['energy_nJ']:10.3f} {p['area_mm2']:9.4f} {p['latency_us']:9.3f}"


PRICE_HEAD = f" {'nJ/inf':>10} {'mm2':>9} {'us/inf':>9}"
"""Column heads matching :func:`price_columns`."""
