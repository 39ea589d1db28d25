import json
import subprocess
import sys
from pathlib import Path

from cli_support import cli

import memsim

REPO = Path(__file__).resolve().parents[1]


def test_profiles_list_names_every_shipped_profile(capsys):
    rc, out, _ = cli(capsys, "profiles", "list")
    assert rc == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == memsim.list_profiles()
    assert "rram_1t1r_yao2020" in names


def test_profiles_show_prints_the_resolved_profile(capsys):
    rc, out, _ = cli(capsys, "profiles", "show", "rram_1t1r_yao2020")
    assert rc == 0
    data = json.loads(out)
    assert data == memsim.load_profile("rram_1t1r_yao2020").model_dump(mode="json")
    assert data["tile"] == {"rows": 128, "cols": 8}


def test_profiles_show_unknown_name_is_an_error(capsys):
    rc, _, err = cli(capsys, "profiles", "show", "no_such_chip")
    assert rc == 2
    assert "unknown profile name 'no_such_chip'" in err


def test_validate_accepts_good_files(tmp_path, capsys):
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({"name": "mine", "extends": "ideal", "tile": {"rows": 64}}))
    rc, out, err = cli(capsys, "profiles", "validate", REPO / "device_profiles/ideal.json", own)
    assert rc == 0, err
    assert out.count("OK ") == 2
    assert "profile 'mine'" in out


def test_validate_rejects_bad_files_naming_each_field(tmp_path, capsys):
    good = REPO / "device_profiles" / "pcm_joshi2020.json"
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "name": "bad",
                "device": {"g_min_uS": 30.0, "g_max_uS": 20.0},
                "tile": {"rowz": 3},
                "programming_noise": {"sigma": -1},
            }
        )
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",,}')
    rc, out, err = cli(capsys, "profiles", "validate", good, bad, broken)
    assert rc == 1
    assert out.count("OK ") == 1
    assert "field 'tile.rowz': unknown field" in err
    assert "field 'programming_noise.sigma'" in err
    assert "g_min_uS (30.0) must be < g_max_uS (20.0)" in err
    assert "broken.json: malformed JSON at line 1" in err


def test_console_script_entry_point_runs():
    # the installed `memsim` script and `python -m lab.cli` reach the same parser
    out = subprocess.run(
        [sys.executable, "-m", "lab.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for cmd in (
        "profiles",
        "train-baseline",
        "evaluate",
        "ga",
        "reproduce",
        "sweep",
        "compare",
        "demo",
    ):
        assert cmd in out
