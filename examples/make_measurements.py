"""Write synthetic "measurements" of an RRAM test chip (the data of examples/measurements.csv).

The numbers are drawn with memsim's own device models (``memsim.fit.simulate_measurements``)
from a made-up chip that differs from the shipped ``rram_wan2022`` profile, so a fit on
top of that base has something to find:

* programming error: Wan's sigma polynomial scaled by 0.7 (a tighter write-verify);
* drift: a power law with nu ~ N(0.01, 0.004), t0 = 1 s;
* read noise: 0.8 % of the window;
* stuck-at: 1 % of the devices at g_min and 2 % at g_max (a 4-target march test).

Seeded: the output is the same on every run.  It goes to ``runs/examples/measurements.csv``
(untracked) unless ``--out`` says otherwise; ``--out examples/measurements.csv`` rewrites
the tracked copy that the README and the tests use::

    python examples/make_measurements.py [--out FILE.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import memsim
from memsim import fit

HERE = Path(__file__).resolve().parent


def test_chip() -> memsim.DeviceProfile:
    """The made-up chip whose devices the CSV "measures"."""
    raw = memsim.load_profile("rram_wan2022").model_dump(mode="json")
    coeffs = raw["programming_noise"]["coeffs_uS"]
    raw["name"] = "example_test_chip"
    raw["programming_noise"]["coeffs_uS"] = [0.7 * c for c in coeffs]
    raw["drift"] = {
        **raw["drift"],
        "model": "power_law",
        "t0_s": 1.0,
        "nu_mean": 0.01,
        "nu_std": 0.004,
    }
    raw["read_noise"] = {"model": "gaussian", "sigma": 0.008}
    raw["faults"] = {**raw["faults"], "stuck_at_gmin_rate": 0.01, "stuck_at_gmax_rate": 0.02}
    return memsim.validate_profile(raw)


def main() -> None:
    """Draw and write the CSV."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        default=str(HERE.parent / "runs" / "examples" / "measurements.csv"),
        help="CSV file to write (default: %(default)s; examples/measurements.csv is the "
        "tracked copy)",
    )
    args = parser.parse_args()
    tables = fit.simulate_measurements(
        test_chip(),
        n_program=3000,
        n_drift_devices=200,
        drift_times_s=(1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
        n_read_devices=40,
        n_reads=15,
        n_stuck_devices=800,
        seed=2026,
    )
    for table in tables.values():  # keep only the measured columns
        for key in [k for k in table if k.endswith("_true")]:
            del table[key]
    path = fit.write_measurements(args.out, tables)
    rows = sum(len(t["g_uS"]) for t in tables.values())
    print(f"wrote {path}: {rows} rows, {path.stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    main()
