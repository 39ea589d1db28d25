"""The README's code runs: every Python block executes, every JSON profile validates."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _blocks(lang: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_the_readme_has_a_quick_start_and_a_profile_example():
    assert _blocks("python"), "README.md lost its Python quick start"
    assert any('"extends"' in b for b in _blocks("json")), "README.md lost its profile example"


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_readme_python_block_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    code = _blocks("python")[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert out.strip(), "the block printed nothing"


@pytest.mark.parametrize("index", range(len(_blocks("json"))))
def test_readme_json_profile_validates(index, tmp_path):
    import memsim

    data = json.loads(_blocks("json")[index])
    path = tmp_path / f"{data['name']}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    profile = memsim.load_profile(path)
    assert profile.name == data["name"]
    for section, fields in data.items():
        if isinstance(fields, dict) and section != "source":
            got = getattr(profile, section)
            for key, value in fields.items():
                assert getattr(got, key) == value, f"{section}.{key}"


def test_readme_python_block_numbers_are_not_pasted():
    # the quick start prints what it measures; it never states a measured accuracy
    for code in _blocks("python"):
        assert not re.search(r"#.*\d+\.\d+ ?%", code)


def test_readme_links_point_at_files_of_the_checkout():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local, "README.md links into the docs"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
