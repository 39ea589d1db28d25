"""Every measured table of the README and the docs is rendered from a committed results file."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_results_block_equals_its_rendering_from_the_committed_file():
    from lab.studies.published import DOCUMENTS, blocks, render_text

    checked = 0
    for name in DOCUMENTS:
        path = ROOT / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        assert render_text(text) == text, (
            f"{name}: a results block differs from its results file; run "
            "`python -m lab.studies.published` and commit the result"
        )
        checked += len(blocks(text))
    assert checked >= 1  # the README holds at least the demo table


def _fake_results(tmp_path, name="t"):
    from lab.studies.published import record

    results = {
        "name": "x",
        "task": "protonet-digits",
        "scale": "quick",
        "profile": "ideal",
        "fitness_chip": 1,
        "transfer_chips": [],
        "reference": "qat",
        "budget": {"steps": 4, "chip_evaluations": 2},
        "protocol": "p",
        "methods": [
            {
                "method": m,
                "needs": "nothing",
                "label": "",
                "wall_time_s": 1.0,
                "info": {},
                "chips": {"1": {"mean_pct": v, "std_pct": 0.5}},
            }
            for m, v in (("baseline", 90.0), ("qat", 91.25))
        ],
    }
    return record(name, results, command="memsim demo", wall_time_s=12.0, folder=tmp_path)


def test_a_block_is_rendered_from_its_file_and_a_stale_one_is_detected(tmp_path):
    from lab.studies.published import load, render, render_text

    path = _fake_results(tmp_path)
    data = load("t", tmp_path)
    for key in ("command", "commit", "machine", "threads", "wall_time_s", "date"):
        assert key in data, key
    assert path.name == "t.json"
    stale = "intro\n<!-- results:t -->\nold numbers 99.99\n<!-- /results:t -->\noutro\n"
    fresh = render_text(stale, tmp_path)
    assert "old numbers" not in fresh and fresh.startswith("intro\n") and "outro" in fresh
    assert "91.25 ±" in fresh and "Measured with `memsim demo`" in fresh
    assert render(data) in fresh
    assert render_text(fresh, tmp_path) == fresh  # rendering is idempotent


def test_a_block_without_a_results_file_is_an_error(tmp_path):
    from lab.studies.published import PublishedError, render_text

    with pytest.raises(PublishedError, match="no such results file"):
        render_text("<!-- results:nope -->\nx\n<!-- /results:nope -->\n", tmp_path)


def test_a_bench_record_renders_its_printed_tables_with_the_stamp(tmp_path):
    from lab.studies.published import load, record, render_text

    printed = "model  batch  memsim ms  /floor\nMLP      256       1.2   1.10x"
    record("speed", {"kind": "bench", "text": printed}, command="python bench/x.py",
           wall_time_s=3.0, folder=tmp_path)  # fmt: skip
    text = render_text("<!-- results:speed -->\n<!-- /results:speed -->\n", tmp_path)
    assert f"```text\n{printed}\n```" in text
    assert "Measured with `python bench/x.py`" in text and load("speed", tmp_path)


def test_a_bench_script_records_what_it_printed_only_when_asked(tmp_path, monkeypatch, capsys):
    from lab.studies import published

    monkeypatch.setattr(published, "RESULTS_DIR", tmp_path)
    published.report_or_record(None, lambda: print("table 0"), "bench/x.py", ["--a", "b c"])
    assert capsys.readouterr().out == "table 0\n" and not list(tmp_path.iterdir())
    published.report_or_record("x", lambda: print("table 1"), "bench/x.py", ["--a", "b c"])
    assert "table 1" in capsys.readouterr().out  # still printed
    data = published.load("x", tmp_path)
    assert data["results"] == {"kind": "bench", "text": "table 1"}
    assert data["command"] == "python bench/x.py --a 'b c'"
