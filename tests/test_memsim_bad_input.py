"""Bad input and faults at the Python API: each is refused clearly or computed right."""

from __future__ import annotations

import io
import json
import logging
import math
import re

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import memsim


def _profile_file(tmp_path, over):
    data = json.loads(json.dumps(memsim.load_profile("rram_wan2022").model_dump(mode="json")))
    for section, fields in over.items():
        data[section].update(fields)
    path = tmp_path / "chip.json"
    path.write_text(json.dumps(data))  # json writes NaN / Infinity literals
    return path


def _quiet(name: str) -> memsim.DeviceProfile:
    """A shipped profile without read noise, so that two chips can be compared exactly."""
    data = memsim.load_profile(name).model_dump(mode="json")
    data["read_noise"] = {"model": "none", "sigma": 0.0}
    return memsim.validate_profile(data)


# -- 1. non-finite profile values -------------------------------------------------------


def test_nan_in_a_list_field_names_the_item(tmp_path):
    path = _profile_file(tmp_path, {"programming_noise": {"coeffs_uS": [0.3, math.nan, 1.0]}})
    with pytest.raises(memsim.ProfileError) as info:
        memsim.load_profile(path)
    assert str(info.value) == (
        f"{path}: invalid profile:\n  field 'programming_noise.coeffs_uS.1': Input should be "
        "a finite number (got nan) — Polynomial coefficients in µS, lowest order first, "
        "each in [-1e6, 1e6]."
    )


@pytest.mark.parametrize(
    ("section", "fields", "loc", "got"),
    [
        ("programming_noise", {"coeffs_g_max_ref_uS": math.inf}, "coeffs_g_max_ref_uS", "inf"),
        ("programming_noise", {"coeffs_uS": [-math.inf]}, "coeffs_uS.0", "-inf"),
        ("drift", {"t0_s": math.nan}, "t0_s", "nan"),
        ("device", {"levels": math.inf}, "levels", "inf"),
        ("dac", {"bound": math.nan}, "bound", "nan"),
    ],
)
def test_non_finite_profile_values_are_refused(tmp_path, section, fields, loc, got):
    path = _profile_file(tmp_path, {section: fields})
    with pytest.raises(memsim.ProfileError) as info:
        memsim.load_profile(path)
    line = str(info.value).splitlines()[1]
    assert line.startswith(
        f"  field '{section}.{loc}': Input should be a finite number (got {got})"
    )


def test_the_hint_is_the_whole_field_description(tmp_path):
    path = _profile_file(tmp_path, {"programming_noise": {"coeffs_g_max_ref_uS": math.inf}})
    with pytest.raises(memsim.ProfileError) as info:
        memsim.load_profile(path)
    assert str(info.value).splitlines()[1] == (
        "  field 'programming_noise.coeffs_g_max_ref_uS': Input should be a finite number "
        "(got inf) — g_max (µS) at which ``coeffs_uS`` were fitted; sigma is scaled by "
        "g_max / reference (aihwkit's convention). ``null``: the profile's g_max."
    )


def test_non_finite_value_in_an_extending_profile(tmp_path):
    path = tmp_path / "child.json"
    path.write_text('{"name": "c", "extends": "rram_wan2022", "drift": {"nu_std": NaN}}')
    with pytest.raises(memsim.ProfileError, match=r"field 'drift\.nu_std': Input should be a fin"):
        memsim.load_profile(path)


def test_ranges_float32_cannot_hold_are_refused():
    base = memsim.load_profile("ideal").model_dump(mode="json")
    for section, fields, text in [
        ("device", {"g_max_uS": 1e-300}, "field 'device.g_max_uS': Input should be greater"),
        ("device", {"g_min_uS": 24.99}, "the window g_max_uS - g_min_uS (0.01) must be >= 0.1%"),
        ("dac", {"bound": 5e-324}, "field 'dac.bound': Input should be greater than or equal"),
        ("drift", {"t_read_s": 1e-300}, "field 'drift.t_read_s': Input should be greater"),
    ]:
        data = json.loads(json.dumps(base))
        data[section].update(fields)
        with pytest.raises(memsim.ProfileError, match=re.escape(text)):
            memsim.validate_profile(data)


def test_pcm_1f_noise_before_one_read_pulse_is_zero():
    # t0 shorter than the read pulse used to raise "math domain error" at programming
    data = memsim.load_profile("pcm_joshi2020").model_dump(mode="json")
    data["drift"].update(t0_s=0.5, t_read_s=1.0)
    prof = memsim.validate_profile(data)
    chip = memsim.convert(nn.Linear(8, 4, bias=False), prof, seed=0)
    # at t = 0 neither drift nor 1/f noise: the devices hold what was programmed
    assert torch.equal(memsim.conductances(chip)["weight"], chip.g_prog)
    memsim.drift(chip, 3600.0)
    assert not torch.equal(memsim.conductances(chip)["weight"], chip.g_prog)


# -- 2. layers memsim cannot map ----------------------------------------------------------


class _RNNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(4, 8, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def test_lstm_is_refused_with_the_fix_in_the_message():
    with pytest.raises(ValueError) as info:
        memsim.convert(_RNNNet(), "rram_1t1r_yao2020", seed=0)
    assert str(info.value) == (
        "memsim.convert: 1 layer(s) cannot be mapped onto tiles (only nn.Linear and nn.Conv2d "
        "with zero padding are analog): 'rnn' (LSTM); keep them digital with "
        "convert(..., digital=['rnn'])"
    )


@pytest.mark.parametrize(
    ("layer", "kind"),
    [
        (nn.Conv1d(2, 2, 3), "Conv1d"),
        (nn.Conv3d(2, 2, 3), "Conv3d"),
        (nn.ConvTranspose1d(2, 2, 3), "ConvTranspose1d"),
        (nn.ConvTranspose2d(2, 2, 3), "ConvTranspose2d"),
        (nn.ConvTranspose3d(2, 2, 3), "ConvTranspose3d"),
        (nn.GRU(2, 2), "GRU"),
        (nn.RNN(2, 2), "RNN"),
        (nn.LSTMCell(2, 2), "LSTMCell"),
        (nn.Bilinear(2, 2, 2), "Bilinear"),
        (
            nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"),
            "Conv2d with padding_mode='reflect'",
        ),
        (nn.Conv2d(2, 2, 3, padding="same"), "Conv2d with padding='same'"),
    ],
)
def test_unmappable_layers_are_refused(layer, kind):
    model = nn.Sequential(layer, nn.Linear(2, 2))
    with pytest.raises(ValueError, match=re.escape(f"'0' ({kind}); keep them digital")):
        memsim.convert(model, "ideal", seed=0)
    chip = memsim.convert(model, "ideal", seed=0, digital=["0"])
    assert type(chip[0]) is type(layer)
    assert isinstance(chip[1], memsim.AnalogLinear)
    report = memsim.tile_report(chip)
    assert {d.name.split(".")[0] for d in report.digital} == {"0"}
    assert sum(d.parameters for d in report.digital) == sum(p.numel() for p in layer.parameters())


def test_digital_lstm_runs_and_the_report_lists_it():
    torch.manual_seed(0)
    model = _RNNNet()
    chip = memsim.convert(model, "ideal", seed=0, digital=["rnn"])
    x = torch.randn(5, 7, 4)
    torch.testing.assert_close(chip(x), model(x), rtol=1e-5, atol=1e-5)
    text = str(memsim.tile_report(chip))
    assert text.splitlines()[-2:] == [
        "digital (not on tiles): 1 layer, 448 parameters",
        f"  {'rnn':<30} {'LSTM':<20} {448:>10} parameters",
    ]


class _AttnNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.norm(self.attn(x, x, x, need_weights=False)[0]))


def test_attention_projections_stay_with_their_attention():
    torch.manual_seed(0)
    model = _AttnNet().eval()
    chip = memsim.convert(model, "ideal", seed=0, digital=["attn"])
    assert type(chip.attn.out_proj) is type(model.attn.out_proj)  # not put on tiles
    assert [n for n, _ in memsim.analog_layers(chip)] == ["head"]
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(chip(x), model(x), rtol=1e-4, atol=1e-5)
    names = [d.name for d in memsim.tile_report(chip).digital]
    assert names == ["attn", "attn.out_proj", "norm"]


class _OwnAttention(nn.MultiheadAttention):
    """A subclass may have changed the forward: it is refused, not rebuilt."""


def test_attention_subclasses_are_refused_and_can_stay_digital():
    model = nn.Sequential(_OwnAttention(4, 2), nn.Linear(4, 4))
    with pytest.raises(ValueError, match=re.escape("'0' (_OwnAttention); keep them digital")):
        memsim.convert(model, "ideal", seed=0)
    chip = memsim.convert(model, "ideal", seed=0, digital=["0"])
    assert type(chip[0]) is _OwnAttention


def test_digital_matches_names_and_prefixes_at_dots():
    model = nn.Sequential()
    model.add_module("enc", nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)))
    model.add_module("enc2", nn.Linear(4, 4))
    chip = memsim.convert(model, "ideal", seed=0, digital="enc")
    assert [n for n, _ in memsim.analog_layers(chip)] == ["enc2"]
    chip = memsim.convert(model, "ideal", seed=0, digital=["enc.1"])
    assert [n for n, _ in memsim.analog_layers(chip)] == ["enc.0", "enc2"]
    with pytest.raises(ValueError) as info:
        memsim.convert(model, "ideal", seed=0, digital=["en", "enc2"])
    assert str(info.value) == (
        "memsim.convert: digital=['en'] matches no module of the model (an entry matches a "
        "module name or a prefix of it up to a dot); modules: 'enc', 'enc.0', 'enc.1', 'enc2'"
    )
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        memsim.convert(model, "ideal", seed=0, digital=["enc", "enc2"])


def test_report_lists_batchnorm_and_says_none_when_all_is_analog():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))
    report = memsim.tile_report(memsim.convert(model, "ideal", seed=0))
    assert [(d.name, d.kind, d.parameters) for d in report.digital] == [("1", "BatchNorm2d", 4)]
    text = str(memsim.tile_report(memsim.convert(nn.Linear(3, 2), "ideal", seed=0)))
    assert text.splitlines()[-1] == "digital (not on tiles): none"


# -- 3. non-finite weights ----------------------------------------------------------------


def test_nan_weight_in_the_model_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    with torch.no_grad():
        model[2].weight[0, :3] = math.nan
    with pytest.raises(ValueError) as info:
        memsim.convert(model, "rram_1t1r_yao2020", seed=0)
    assert str(info.value) == (
        "memsim.convert: layer '2': 3 non-finite weight(s) (NaN or +-inf) of 16; a chip "
        "cannot hold them"
    )


def test_inf_weights_given_to_program_are_refused_and_change_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2))
    chip = memsim.convert(model, "rram_1t1r_yao2020", seed=0)
    before = memsim.effective_weights(chip), memsim.target_weights(chip)
    good = torch.zeros(4, 8)
    bad = model[1].weight.detach().clone()
    bad[0, 0], bad[1, 1] = math.inf, -math.inf
    with pytest.raises(ValueError) as info:
        memsim.program(chip, {"0.weight": good, "1.weight": bad}, seed=1)
    assert str(info.value) == (
        "memsim.program: '1.weight': 2 non-finite weight(s) (NaN or +-inf) of 8; a chip "
        "cannot hold them"
    )
    after = memsim.effective_weights(chip), memsim.target_weights(chip)
    for b, a in zip(before, after, strict=True):
        assert all(torch.equal(b[k], a[k]) for k in b)


def test_program_accepts_float64_and_refuses_nested_lists():
    chip = memsim.convert(nn.Linear(2, 2, bias=False), "ideal", seed=0)
    memsim.program(chip, {"weight": torch.eye(2, dtype=torch.float64)}, seed=1)
    assert torch.equal(memsim.effective_weights(chip)["weight"], torch.eye(2))
    with pytest.raises(TypeError) as info:
        memsim.program(chip, {"weight": [[1.0, 2.0], [3.0, 4.0]]}, seed=1)
    assert str(info.value) == (
        "memsim.program: weights['weight'] must be a torch.Tensor, got list; convert it "
        "first, e.g. torch.as_tensor(value)"
    )
    with pytest.raises(TypeError, match=r"weights\['weight'\] must be a torch.Tensor, got ndarray"):
        memsim.program(chip, {"weight": torch.zeros(2, 2).numpy()}, seed=1)
    with pytest.raises(TypeError) as info:
        memsim.program(chip, [torch.zeros(2, 2)], seed=1)  # type: ignore[arg-type]
    assert str(info.value) == (
        "memsim.program: weights must be a mapping of '<module>.weight' names to tensors "
        "(like a state_dict), got list"
    )
    # the refused calls changed nothing
    assert torch.equal(memsim.target_weights(chip)["weight"], torch.eye(2))


# -- 4. calibration -------------------------------------------------------------------------


def _linear_chip(profile="rram_1t1r_yao2020"):
    torch.manual_seed(0)
    return memsim.convert(
        nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)), profile, seed=0
    )


@pytest.mark.parametrize("empty", [[], DataLoader(TensorDataset(torch.zeros(0, 8)), batch_size=4)])
def test_calibrate_on_nothing_is_refused_and_leaves_the_chip_uncalibrated(empty):
    chip = _linear_chip()
    with pytest.raises(ValueError) as info:
        memsim.calibrate(chip, empty)
    assert str(info.value) == (
        "memsim.calibrate: no calibration batch (the iterable is empty); the chip keeps its "
        "previous ranges"
    )
    assert not any(layer.calibrated for _, layer in memsim.analog_layers(chip))


@pytest.mark.parametrize(
    ("batches", "which"),
    [
        (torch.empty(0, 8), "the calibration batch is empty (shape (0, 8))"),
        (
            [torch.ones(2, 8), (torch.empty(0, 8), None)],
            "calibration batch 1 is empty (shape (0, 8))",
        ),
    ],
)
def test_an_empty_calibration_batch_is_refused(batches, which):
    chip = _linear_chip()
    memsim.calibrate(chip, torch.ones(4, 8))
    before = [(m.dac_range.clone(), m.adc_range.clone()) for _, m in memsim.analog_layers(chip)]
    with pytest.raises(ValueError) as info:
        memsim.calibrate(chip, batches)
    assert str(info.value) == (
        f"memsim.calibrate: {which}; calibration needs at least one input; the chip keeps "
        "its previous ranges"
    )
    for (_, layer), (dac, adc) in zip(memsim.analog_layers(chip), before, strict=True):
        assert layer.calibrated and torch.equal(layer.dac_range, dac)
        assert torch.equal(layer.adc_range, adc)


def test_failed_calibration_keeps_the_previous_ranges():
    chip = _linear_chip()
    memsim.calibrate(chip, torch.randn(16, 8))
    saved = [(m.adc_range.clone(), m.dac_range.clone()) for _, m in memsim.analog_layers(chip)]
    with pytest.raises(ValueError, match="expected input of shape"):
        memsim.calibrate(chip, [torch.randn(16, 8) * 5, torch.randn(16, 7)])
    for (_, m), (adc, dac) in zip(memsim.analog_layers(chip), saved, strict=True):
        assert m.calibrated and torch.equal(m.adc_range, adc) and torch.equal(m.dac_range, dac)


def _nan_batch():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 8, generator=gen)
    x[3] = x[3].clamp(-0.1, 0.1)  # below the batch max, so only the NaN is dropped
    x[3, 2] = math.nan
    clean = torch.cat([x[:3], x[4:]])
    return x, clean, torch.randn(32, 8, generator=gen)


def test_calibration_ignores_non_finite_values(caplog):
    x, clean, later = _nan_batch()
    chip, ref = _linear_chip(_quiet("rram_1t1r_yao2020")), _linear_chip(_quiet("rram_1t1r_yao2020"))
    with caplog.at_level(logging.WARNING, logger="memsim"):
        memsim.calibrate(chip, x)
    memsim.calibrate(ref, clean)
    assert "layer '0' (AnalogLinear): 1 non-finite inputs (DAC range) ignored" in caplog.text
    for (_, m), (_, r) in zip(memsim.analog_layers(chip), memsim.analog_layers(ref), strict=True):
        assert torch.equal(m.dac_range, r.dac_range) and torch.equal(m.adc_range, r.adc_range)
    y = chip(later)
    assert torch.isfinite(y).all() and torch.equal(y, ref(later))
    # +-inf is left out of the DAC range too; the DAC then clips it to full scale
    inf_chip = _linear_chip(_quiet("rram_1t1r_yao2020"))
    memsim.calibrate(inf_chip, torch.where(x.isnan(), -math.inf, x))
    assert torch.equal(inf_chip[0].dac_range, ref[0].dac_range)
    assert torch.isfinite(inf_chip(later)).all()


def test_self_calibrating_chip_ignores_a_nan_in_its_first_batch():
    x, clean, later = _nan_batch()
    chip, ref = _linear_chip(_quiet("rram_wan2022")), _linear_chip(_quiet("rram_wan2022"))
    out = chip(x)
    assert out[3].isnan().all() and torch.isfinite(out[torch.arange(16) != 3]).all()
    ref(clean)
    y = chip(later)
    assert torch.isfinite(y).all() and torch.equal(y, ref(later))


def test_calibrate_takes_x_from_dataloader_batches():
    x = torch.randn(32, 8)
    loader = DataLoader(TensorDataset(x, torch.zeros(32, dtype=torch.long)), batch_size=16)
    chip, ref = _linear_chip(), _linear_chip()
    memsim.calibrate(chip, loader)
    memsim.calibrate(ref, [x[:16], x[16:]])
    for (_, m), (_, r) in zip(memsim.analog_layers(chip), memsim.analog_layers(ref), strict=True):
        assert torch.equal(m.adc_range, r.adc_range) and torch.equal(m.dac_range, r.dac_range)
        assert m.calibrated


# -- 5. state dicts -------------------------------------------------------------------------


def _saved_and_loaded(profile):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 5))
    a = memsim.convert(model, profile, seed=0, chip_seed=3)
    memsim.calibrate(a, torch.randn(16, 2, 8, 8))
    memsim.drift(a, 3600.0)
    a(torch.randn(4, 2, 8, 8))  # the read-noise streams have moved on
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = memsim.convert(model, profile, seed=11, chip_seed=12)  # another chip instance
    b.load_state_dict(torch.load(buf, weights_only=True))
    return a, b


@pytest.mark.parametrize("profile", ["rram_1t1r_yao2020", "pcm_joshi2020", "ideal"])
def test_a_chip_loaded_from_its_state_dict_computes_what_it_computed(profile):
    a, b = _saved_and_loaded(profile)
    for fn in (memsim.effective_weights, memsim.conductances, memsim.target_weights):
        wa, wb = fn(a), fn(b)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), fn.__name__
    x = torch.randn(8, 2, 8, 8) * 3  # out of the calibrated range: no recalibration
    for _ in range(2):  # read noise included: the streams continue where they were
        assert torch.equal(a(x), b(x))
    memsim.drift(a, 86400.0)
    memsim.drift(b, 86400.0)
    assert torch.equal(a(x), b(x))
    memsim.program(a, seed=5)
    memsim.program(b, seed=5)
    assert torch.equal(a(x), b(x))


def test_state_dict_of_another_profile_is_refused():
    a = memsim.convert(nn.Linear(4, 2), "rram_1t1r_yao2020", seed=0)
    b = memsim.convert(nn.Linear(4, 2), _quiet("rram_1t1r_yao2020"), seed=0)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "memsim layer '(root)' (AnalogLinear): the state was saved from a chip with profile "
            "'rram_1t1r_yao2020'"
        ),
    ):
        b.load_state_dict(a.state_dict())


# -- 6. inputs of the wrong kind, dtype or shape ---------------------------------------------


def test_float64_input_is_cast():
    chip = _linear_chip(_quiet("rram_1t1r_yao2020"))
    x = torch.randn(4, 8)
    memsim.calibrate(chip, x)
    y = chip(x.double())
    assert y.dtype == torch.float32 and torch.equal(y, chip(x))


def test_wrong_inputs_name_the_layer_and_the_expected_shape():
    lin = _linear_chip()
    conv = memsim.convert(nn.Sequential(nn.Conv2d(3, 4, 3)), "rram_1t1r_yao2020", seed=0)
    cases = [
        (
            lin,
            [[0.0] * 8] * 2,
            TypeError,
            "memsim layer '0' (AnalogLinear): expected a torch.Tensor of shape (..., 8), got list",
        ),
        (
            lin,
            torch.randn(2, 7),
            ValueError,
            "memsim layer '0' (AnalogLinear): expected input of shape (..., 8), got (2, 7)",
        ),
        (
            conv,
            torch.randn(2, 2, 8, 8),
            ValueError,
            "memsim layer '0' (AnalogConv2d): expected input of shape (B, 3, H, W) or (3, H, W), "
            "got (2, 2, 8, 8)",
        ),
        (
            conv,
            torch.zeros(2, 3, 8, 8, dtype=torch.long),
            TypeError,
            "memsim layer '0' (AnalogConv2d): expected a floating-point input of shape "
            "(B, 3, H, W) or (3, H, W) (torch.float32; other float dtypes are cast), "
            "got torch.int64",
        ),
        (
            conv,
            torch.randn(1, 3, 2, 2),
            ValueError,
            "memsim layer '0' (AnalogConv2d): input (1, 3, 2, 2) is smaller than the kernel (3, 3) "
            "(padding (0, 0), dilation (1, 1))",
        ),
    ]
    for chip, x, exc, text in cases:
        with pytest.raises(exc) as info:
            chip(x)
        assert str(info.value) == text


def test_unbatched_conv_input_as_in_torch():
    model = nn.Conv2d(3, 4, 3)
    chip = memsim.convert(model, "ideal", seed=0)
    x = torch.randn(3, 6, 6)
    assert chip(x).shape == (4, 4, 4)
    torch.testing.assert_close(chip(x), model(x), rtol=1e-5, atol=1e-5)


def test_state_saved_on_a_missing_device_restarts_that_stream():
    a = memsim.convert(nn.Linear(4, 2), "rram_1t1r_yao2020", seed=0)
    sd = a.state_dict()
    sd["_extra_state"]["read_rng"]["cuda:0"] = torch.zeros(16, dtype=torch.uint8)
    b = memsim.convert(nn.Linear(4, 2), "rram_1t1r_yao2020", seed=4)
    if torch.cuda.is_available():
        pytest.skip("this machine has the device")
    b.load_state_dict(sd)
    x = torch.randn(3, 4)
    assert list(b._read_gens) == [] and torch.equal(a(x), b(x))
