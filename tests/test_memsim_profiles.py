import importlib.util
import json
from pathlib import Path

import pytest

import memsim
from memsim import ProfileError, list_profiles, load_profile

SHIPPED = {
    "ideal",
    "rram_1t1r_yao2020",
    "rram_wan2022",
    "pcm_joshi2020",
    "paper_2bit_5pct",
    "paper_3bit_20pct",
    "rram_1t1r_faulty_chen2015",
    "rram_cmo_aihwkit",
    "pcm_joshi2020_aihwkit",
}
# Physics from an aihwkit noise model (the optional extra).
NEEDS_AIHWKIT = {"rram_cmo_aihwkit", "pcm_joshi2020_aihwkit"}


def test_shipped_profiles_load_and_cite_sources():
    names = set(list_profiles())
    assert SHIPPED <= names
    for name in names:
        if name in NEEDS_AIHWKIT and importlib.util.find_spec("aihwkit") is None:
            with pytest.raises(ProfileError, match=r"pip install 'memsim\[aihwkit\]'"):
                load_profile(name)
            continue
        p = load_profile(name)
        assert p.name == name
        assert p.source, f"{name} has no source citations"
        assert all(isinstance(v, str) and len(v) > 20 for v in p.source.values())


def test_profile_specifics():
    yao = load_profile("rram_1t1r_yao2020")
    assert yao.tile.rows == 128 and yao.device.levels == 8
    wan = load_profile("rram_wan2022")
    assert wan.device.g_max_uS == 40.0 and wan.programming_noise.model.value == "polynomial"
    pcm = load_profile("pcm_joshi2020")
    assert pcm.drift.model.value == "pcm_joshi2020"
    p2 = load_profile("paper_2bit_5pct")
    assert p2.mapping.weight_bits == 2 and p2.programming_noise.sigma == 0.05
    assert p2.adc.bits is None and p2.dac.bits is None and p2.drift.model.value == "none"
    faulty = load_profile("rram_1t1r_faulty_chen2015")
    assert faulty.extends == "rram_1t1r_yao2020" and faulty.tile == yao.tile
    assert faulty.faults.stuck_at_gmax_rate == 0.0904 and faulty.faults.stuck_at_gmin_rate == 0.0175
    p3 = load_profile("paper_3bit_20pct")
    assert p3.extends == "paper_2bit_5pct"
    assert p3.mapping.weight_bits == 3 and p3.programming_noise.sigma == 0.20
    assert p3.programming_noise.model.value == "proportional"


def _write(tmp_path: Path, data, name="bad.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _base(**over):
    data = json.loads(
        (Path(memsim.profiles._profile_dir()) / "ideal.json").read_text(encoding="utf-8")
    )
    data["name"] = "custom"
    for dotted, value in over.items():
        node = data
        parts = dotted.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return data


@pytest.mark.parametrize(
    "over, field",
    [
        ({"device__g_min_uS": 30.0}, "g_min_uS"),
        ({"device__levels": 1}, "device.levels"),
        ({"programming_noise__sigma": -0.1}, "programming_noise.sigma"),
        ({"read_noise__sigma": -1.0}, "read_noise.sigma"),
        ({"adc__bits": 17}, "adc.bits"),
        ({"dac__bits": 0}, "dac.bits"),
        ({"tile__rows": 0}, "tile.rows"),
        ({"tile__cols": -3}, "tile.cols"),
        ({"device__g_max_uS": "high"}, "device.g_max_uS"),
        ({"device__bogus": 1}, "device.bogus"),
        ({"colour": "red"}, "colour"),
        ({"mapping__weight_scaling": "per_galaxy"}, "mapping.weight_scaling"),
    ],
)
def test_bad_profiles_name_file_and_field(tmp_path, over, field):
    path = _write(tmp_path, _base(**over))
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert field in msg


def test_error_messages_say_what_is_allowed(tmp_path):
    with pytest.raises(ProfileError, match=r"less than or equal to 16"):
        load_profile(_write(tmp_path, _base(adc__bits=40)))
    with pytest.raises(ProfileError, match=r"unknown field"):
        load_profile(_write(tmp_path, _base(colour="red")))
    with pytest.raises(ProfileError, match=r"g_min_uS .* must be < g_max_uS"):
        load_profile(_write(tmp_path, _base(device__g_min_uS=25.0)))


def test_profile_error_is_value_error():
    assert issubclass(ProfileError, ValueError)


def test_malformed_json(tmp_path):
    path = _write(tmp_path, '{"name": "x", "tile": {"rows": 12,}}')
    with pytest.raises(ProfileError, match=r"malformed JSON at line 1"):
        load_profile(path)


def test_unknown_name_lists_known_profiles():
    with pytest.raises(ProfileError) as exc:
        load_profile("rram_nonexistent")
    msg = str(exc.value)
    assert "rram_nonexistent" in msg
    for name in SHIPPED:
        assert name in msg


def test_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "nope.json")


def test_extends_overrides_and_merges(tmp_path):
    path = _write(
        tmp_path,
        {
            "name": "yao_big",
            "extends": "rram_1t1r_yao2020",
            "tile": {"cols": 64},
            "source": {"tile.cols": "our test"},
        },
        "ext.json",
    )
    p = load_profile(path)
    assert p.tile.cols == 64 and p.tile.rows == 128  # deep merge keeps siblings
    assert p.device.levels == 8
    assert "tile.cols" in p.source and "general" in p.source


def test_extends_unknown_and_cycle(tmp_path):
    with pytest.raises(ProfileError, match="extends"):
        load_profile(_write(tmp_path, {"name": "a", "extends": "nope"}))
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps({"name": "a", "extends": str(b)}))
    b.write_text(json.dumps({"name": "b", "extends": str(a)}))
    with pytest.raises(ProfileError, match="cycle"):
        load_profile(a)


def test_existing_output_untouched_by_failed_load(tmp_path):
    path = _write(tmp_path, _base(adc__bits=99))
    before = path.read_bytes()
    with pytest.raises(ProfileError):
        load_profile(path)
    assert path.read_bytes() == before
