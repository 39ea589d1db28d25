"""``memsim demo``: the recovery table of every method on a faulty digits chip."""

import contextlib
import io

import torch
from cli_support import read, run_folder, run_root


def test_demo_prints_the_recovery_table(tmp_path_factory):
    from lab.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["demo", "--run-root", str(run_root(tmp_path_factory)), "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    text = out.getvalue()
    assert rc == 0, err.getvalue()
    assert "rram_1t1r_faulty_chen2015 chip 11 (transfer chips 12)" in text
    assert "80 training steps" in text and "16 chip evaluations" in text
    for method, needs in (
        ("qat", "nothing (blind control)"),
        ("ga", "chip accuracy (paper's method)"),
        ("defect_aware_oracle", "true defect map (upper reference)"),
        ("defect_aware_readback", "device read-back"),
        ("progressive", "measured layer outputs"),
        ("ga_knobs", "chip accuracy"),
        ("ga_progressive", "chip accuracy + measured layer outputs"),
    ):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"  {method} "))
        assert line.rstrip().endswith(needs), line
    res = read(run_folder(text) / "results.json")
    rows = {r["method"]: r for r in res["recovery"]}
    assert all(len(r["chips"]["11"]["accuracies"]) == 10 for r in rows.values())
    # the headroom is real: training through the true defect map beats blind QAT
    assert rows["defect_aware_oracle"]["chips"]["11"]["vs_qat"]["mean_pp"] > 3.0
