"""The recovery stage on digits: equal budgets, declared chip access, the table."""

from __future__ import annotations

import pytest
import torch
from conftest import SEED_OFFSET
from recovery_support import recovery_config

CHIPS = (str(11 + SEED_OFFSET), str(12 + SEED_OFFSET))

ALL_METHODS = [
    "qat",
    "ga",
    "defect_aware_oracle",
    "defect_aware_readback",
    "progressive",
    "ga_knobs",
    "ga_progressive",
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    return tmp_path_factory.mktemp("recovery-runs")


def _run(config, run_root, **kwargs):
    from lab.experiment.context import RunContext
    from lab.experiment.runner import run_experiment

    ctx = RunContext(run_root=run_root, progress=False, echo=lambda s: None)
    return run_experiment(config, ctx, **kwargs)


@pytest.fixture(scope="module")
def all_methods(run_root):
    torch.set_num_threads(1)
    return _run(
        recovery_config(ALL_METHODS, ga={"generations": 2}, fitness={"finetune_steps": 3}), run_root
    )


def test_every_method_spends_the_same_budget(all_methods):
    results, _ = all_methods
    # 4 members x (2 + 1) generations x 3 fine-tune steps, and x 1 fitness draw
    assert results["budget"] == {"steps": 36, "chip_evaluations": 12}
    rows = {r["method"]: r for r in results["methods"]}
    assert list(rows) == ["baseline", *ALL_METHODS]
    for name in ALL_METHODS:
        c = rows[name]["counters"]
        assert c["steps"] == 36, name
        searches = name in ("ga", "ga_knobs", "ga_progressive")
        assert c["chip_evaluations"] == (12 if searches else 0), name
        measured = name in ("progressive", "ga_progressive")
        assert (c["chip_batches"] > 0) == measured, name
        assert (c["device_reads"] > 0) == (name == "defect_aware_readback"), name
    # progressive: one measured batch per step through the programmed layers
    assert rows["progressive"]["counters"]["chip_batches"] == 36
    assert rows["qat"]["needs"] == "nothing"
    assert rows["defect_aware_oracle"]["label"] == "upper reference"
    assert rows["ga_progressive"]["needs"] == "chip accuracy + measured layer outputs"


@pytest.mark.statistical
def test_recovery_table_is_paired_and_reports_the_readback_estimate(all_methods):
    from lab.experiment.report import format_results

    results, run_dir = all_methods
    rows = {r["method"]: r for r in results["methods"]}
    for chip in CHIPS:
        assert "paired_vs_reference" not in rows["qat"]["chips"][chip]  # qat is the reference
        acc = rows["progressive"]["chips"][chip]["accuracies"]
        assert len(acc) == 5
    conf = rows["defect_aware_readback"]["info"]["confusion"]
    assert conf["stuck_recall"] >= 0.95 and conf["false_positive_rate"] <= 0.02
    # the oracle's advantage over blind QAT on the chip it trained through
    # (one replicate's number; about +10 pp were measured at offsets 0 and 1000)
    assert rows["defect_aware_oracle"]["chips"][CHIPS[0]]["paired_vs_reference"]["mean_pp"] > 3.0
    text = format_results(results)
    assert "defect_aware_oracle" in text and "upper reference" in text
    assert f"vs qat {CHIPS[0]} (pp)" in text and "stuck found" in text
    assert (run_dir / "recovery" / "ga" / "checkpoint.pt").is_file()


def test_a_method_cannot_use_what_it_does_not_declare(all_methods):
    from lab.methods.base import Access, Counters
    from lab.methods.chip import AccessError, Chip

    class _Fitness:
        counters = Counters()

    chip = Chip(_Fitness(), frozenset({Access.readback}))
    with pytest.raises(AccessError, match="true defect map"):
        chip.true_defect_map()
    with pytest.raises(AccessError, match="chip accuracy"):
        chip.accuracy(torch.zeros(3), [1])


def test_a_budget_the_ga_cannot_spend_is_refused(run_root):
    from lab.methods.training import BudgetError

    with pytest.raises(BudgetError, match="the budget is 10"):
        _run(recovery_config(["ga"], recovery={"steps": 10}), run_root)


def test_unknown_method_is_a_config_error():
    with pytest.raises(ValueError, match="unknown recovery method"):
        recovery_config(["qat", "magic"])


def test_qat_honours_the_fine_tune_mode(run_root):
    # the ProtoNet has BatchNorm: a fine-tune with the deployed (eval) statistics trains
    # other weights than one that normalizes with each batch's own statistics
    genes = {}
    for mode in ("train", "eval"):
        cfg = recovery_config(
            ["qat"],
            chip={"transfer_chip_seeds": []},
            ga={"generations": 0},
            fitness={"finetune_steps": 2, "finetune_mode": mode},
        )
        _, run_dir = _run(cfg, run_root)
        genes[mode] = torch.load(run_dir / "recovery" / "qat.pt", weights_only=False)["genes"]
    assert not torch.equal(genes["train"], genes["eval"])
