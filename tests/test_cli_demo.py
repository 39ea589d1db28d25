"""The GA demo (``experiments/demo_ga.toml``, the former ``memsim demo``) end to end, and
``memsim evaluate`` on the checkpoint it writes."""

import statistics
import time
from pathlib import Path

import pytest
from cli_support import cli, read, run_folder, run_root
from conftest import SEED_OFFSET

CHIP, TRANSFER = 1 + SEED_OFFSET, 2 + SEED_OFFSET


@pytest.fixture(scope="module")
def demo(tmp_path_factory, capsys_module):
    root = run_root(tmp_path_factory)
    start = time.process_time()
    config = Path(__file__).resolve().parents[1] / "experiments" / "demo_ga.toml"
    rc, out, err = capsys_module("ga", config, "--run-root", root, "--no-progress")
    return rc, out, err, time.process_time() - start


@pytest.fixture(scope="module")
def capsys_module():
    # a module-scoped stand-in for capsys: run main() and capture with contextlib
    import contextlib
    import io

    from lab.cli import main

    def run(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
        return rc, out.getvalue(), err.getvalue()

    return run


def test_demo_runs_end_to_end_and_reports_test_accuracies(demo):
    rc, out, err, cpu = demo
    assert rc == 0, err
    # CPU seconds, not wall time: a regression guard that holds on a busy machine too
    # (the demo needs about 1 minute of wall time on 2 idle cores)
    assert cpu < 300, f"memsim demo used {cpu:.0f} CPU seconds"
    assert f"chip {CHIP} (transfer chips {TRANSFER})" in out and f"vs qat {CHIP} (pp)" in out
    for label in ("baseline", "qat", "ga"):
        assert f"  {label} " in out
    # one progress line per generation when there is no terminal
    assert err.count("GA generation") == 6


def test_demo_run_folder_is_self_describing(demo):
    _, out, _, _ = demo
    folder = run_folder(out)
    for name in (
        "config.json",
        "config.source.toml",
        "run.json",
        "results.json",
        "scores.json",
        "weights/ga.pt",
        "weights/qat.pt",
        "recovery/ga/history.csv",
        "recovery/ga/checkpoint.pt",
        "ga_history.png",
        "tiles.png",
        "tiles.txt",
    ):
        assert (folder / name).is_file(), name
    run = read(folder / "run.json")
    assert run["status"] == "complete"
    assert run["profile"]["name"] == "rram_1t1r_yao2020"
    assert run["profile"]["tile"] == {"rows": 128, "cols": 8}
    assert len(run["dataset"]["sha256"]) == 64
    assert run["seeds"]["fitness_chip"] == CHIP and run["seeds"]["transfer_chips"] == [TRANSFER]
    session = run["sessions"][0]
    assert session["packages"]["torch"] and "git_commit" in session
    assert run["wall_time_s"]["total"] > 0
    assert read(folder / "config.json")["ga"]["population_size"] == 6


def test_demo_results_are_paired_test_scores(demo):
    _, out, _, _ = demo
    res = read(run_folder(out) / "results.json")
    assert "best_fitness" not in str(res)  # fitness is never reported as a result
    rows = {
        r["method"]: {int(c) - SEED_OFFSET: e for c, e in r["chips"].items()}
        for r in res["methods"]
    }
    n = 5 * 4  # 5 programming draws x 4 support sets
    for model in ("baseline", "qat", "ga"):
        accs = rows[model][1]["accuracies"]
        assert len(accs) == n and all(0.5 < a <= 1.0 for a in accs)
        assert rows[model][1]["mean_pct"] == pytest.approx(100 * statistics.fmean(accs))
    pairs = zip(rows["ga"][1]["accuracies"], rows["baseline"][1]["accuracies"])
    diff = [100 * (g - b) for g, b in pairs]
    assert rows["ga"][1]["paired_vs_baseline"]["mean_pp"] == pytest.approx(statistics.fmean(diff))
    assert res["headline"]["ga_pct"] == rows["ga"][1]["mean_pct"]
    # qat spent exactly the GA's QAT steps: P x (G + 1) generations x steps
    assert res["budget"]["steps"] == 6 * 6 * 5
    for model in ("qat", "ga"):
        assert next(r for r in res["methods"] if r["method"] == model)["counters"]["steps"] == (
            6 * 6 * 5
        )
    # the transfer chip is a different chip: same draws, different numbers
    assert rows["baseline"][2]["accuracies"] != rows["baseline"][1]["accuracies"]


def test_evaluate_the_demo_checkpoint_per_drift_time(demo, capsys, tmp_path):
    _, out, _, _ = demo
    ckpt = run_folder(out) / "weights" / "ga.pt"
    target = tmp_path / "eval.json"
    rc, out, err = cli(
        capsys,
        "evaluate",
        ckpt,
        "--profile",
        "rram_1t1r_yao2020",
        "--drift",
        "1,86400",
        "--draws",
        "2",
        "--chip-seed",
        str(CHIP),
        "--support-draws",
        "1",
        "--test-size",
        "100",
        "--out",
        target,
    )
    assert rc == 0, err
    assert "t = 1 s" in out and "t = 86400 s" in out
    data = read(target)
    assert [r["drift_s"] for r in data["results"]] == [1.0, 86400.0]
    assert all(len(r["accuracies"]) == 2 for r in data["results"])
    assert data["profile_json"]["name"] == "rram_1t1r_yao2020" and data["chip_seed"] == CHIP
    assert (tmp_path / "eval_drift.png").is_file() and (tmp_path / "eval_tiles.png").is_file()


def test_evaluate_rejects_an_unknown_profile(demo, capsys):
    _, out, _, _ = demo
    rc, _, err = cli(capsys, "evaluate", run_folder(out) / "weights" / "ga.pt", "--profile", "nope")
    assert rc == 2 and "unknown profile name 'nope'" in err


def test_demo_report_has_energy_per_inference_beside_accuracy(demo):
    _, out, _, _ = demo
    res = read(run_folder(out) / "results.json")
    cost = res["cost"]
    assert cost["chip"] == CHIP and set(cost["models"]) == {"baseline", "qat", "ga"}
    line = next(ln for ln in out.splitlines() if f"energy per inference on chip {CHIP}" in ln)
    for name, c in cost["models"].items():
        assert c["available"] and c["images"] == 64
        terms = c["array_J"] + c["dac_J"] + c["adc_J"] + c["digital_J"]
        assert c["energy_J"] == pytest.approx(terms, rel=1e-12)
        assert c["tops_per_w"] == pytest.approx(2 * c["macs"] / c["energy_J"] / 1e12, rel=1e-12)
        assert f"{name} {1e9 * c['energy_J']:.3f} nJ ({c['tops_per_w']:.2f} TOPS/W)" in line
