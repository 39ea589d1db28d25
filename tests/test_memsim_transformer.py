"""Transformers on tiles: attention and transformer layers convert and compute exactly.

On the ``ideal`` profile a converted model must compute what the digital one does (max
error relative to the largest output at most 1e-5); the projections must be analog
layers that the tile report, the cost model and the export see.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import memsim
from memsim.attention import AnalogMultiheadAttention
from memsim.transformer import (
    AnalogTransformerDecoderLayer,
    AnalogTransformerEncoderLayer,
    restructure,
)

E, HEADS, L, S, N = 16, 4, 5, 7, 3


def _rel(out: Tensor, ref: Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


def _seq(n: int, length: int, dim: int, batch_first: bool) -> Tensor:
    return torch.randn(n, length, dim) if batch_first else torch.randn(length, n, dim)


def _padding(n: int, length: int) -> Tensor:
    # the last sample has its two last positions padded; no row is fully masked
    mask = torch.zeros(n, length, dtype=torch.bool)
    mask[-1, -2:] = True
    return mask


def _masks(kind: str, tgt: int, src: int) -> dict[str, object]:
    causal = nn.Transformer.generate_square_subsequent_mask(tgt)
    if kind == "none":
        return {}
    if kind == "bool":
        return {"attn_mask": torch.rand(tgt, src) < 0.3}
    if kind == "float":
        return {"attn_mask": torch.randn(tgt, src)}
    if kind == "padding":
        return {"key_padding_mask": _padding(N, src)}
    if kind == "causal":
        return {"attn_mask": causal, "is_causal": True}
    assert kind == "causal+padding"
    return {"attn_mask": causal, "is_causal": True, "key_padding_mask": _padding(N, src)}


_MHA_CONFIGS = {
    "packed": {},
    "kdim_vdim": {"kdim": 6, "vdim": 10},
    "bias_kv_zero_attn": {"add_bias_kv": True, "add_zero_attn": True},
    "no_bias": {"bias": False},
}


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("config", list(_MHA_CONFIGS))
def test_multihead_attention_matches_digital(batch_first, config):
    torch.manual_seed(0)
    kw = _MHA_CONFIGS[config]
    mha = nn.MultiheadAttention(E, HEADS, batch_first=batch_first, **kw).eval()
    chip = memsim.convert(mha, "ideal", seed=0)
    assert isinstance(chip, AnalogMultiheadAttention)
    assert [n for n, _ in memsim.analog_layers(chip)] == ["q_proj", "k_proj", "v_proj", "out_proj"]
    q = _seq(N, L, E, batch_first)
    cross = "kdim" in kw
    k = _seq(N, S if cross else L, kw.get("kdim", E), batch_first)
    v = _seq(N, S if cross else L, kw.get("vdim", E), batch_first)
    if not cross:
        k = v = q  # self-attention: torch's packed projection and "is" checks
    src = S if cross else L
    kinds = ["none", "bool", "float", "padding"] + ([] if cross else ["causal", "causal+padding"])
    with torch.no_grad():
        for kind in kinds:
            masks = _masks(kind, L, src)
            for need, avg in ((False, True), (True, True), (True, False)):
                args = dict(masks, need_weights=need, average_attn_weights=avg)
                ref, ref_w = mha(q, k, v, **args)
                out, w = chip(q, k, v, **args)
                assert out.shape == ref.shape
                assert _rel(out, ref) <= 1e-5, (kind, need, avg)
                if need:
                    assert w.shape == ref_w.shape and _rel(w, ref_w) <= 1e-5, (kind, avg)
                else:
                    assert w is None and ref_w is None


def test_unbatched_input_and_the_causal_hint_without_mask():
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(E, HEADS, batch_first=True).eval()
    chip = memsim.convert(mha, "ideal", seed=0)
    x = torch.randn(L, E)
    m = torch.rand(L, L) < 0.3
    with torch.no_grad():
        ref, ref_w = mha(x, x, x, attn_mask=m)
        out, w = chip(x, x, x, attn_mask=m)
    assert out.shape == (L, E) and w.shape == (L, L)
    assert _rel(out, ref) <= 1e-5 and _rel(w, ref_w) <= 1e-5
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        chip(x, x, x, is_causal=True)


def test_dropout_in_training_mode_draws_what_torch_draws():
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(E, HEADS, dropout=0.3, batch_first=True).train()
    chip = memsim.convert(mha, "ideal", seed=0)
    assert chip.training
    x = torch.randn(N, L, E)
    with torch.no_grad():
        for need in (False, True):
            torch.manual_seed(7)
            ref, ref_w = mha(x, x, x, need_weights=need)
            torch.manual_seed(7)
            out, w = chip(x, x, x, need_weights=need)
            assert _rel(out, ref) <= 1e-5
            if need:
                assert _rel(w, ref_w) <= 1e-5
        chip.eval()
        assert _rel(chip(x, x, x)[0], out) > 1e-3  # dropout was active in training mode


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_encoder_layer_matches_digital(batch_first, norm_first, activation):
    torch.manual_seed(3)
    act = torch.tanh if activation == "tanh" else activation
    enc = nn.TransformerEncoderLayer(
        E, HEADS, 32, batch_first=batch_first, norm_first=norm_first, activation=act
    ).eval()
    chip = memsim.convert(enc, "ideal", seed=0)
    assert isinstance(chip, AnalogTransformerEncoderLayer)
    x = _seq(N, L, E, batch_first)
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    with torch.no_grad():  # eval and no_grad: torch's fused fast path for the reference
        for masks in (
            {},
            {"src_mask": causal, "is_causal": True},
            {"src_key_padding_mask": _padding(N, L)},
            {"src_mask": causal, "src_key_padding_mask": _padding(N, L)},
        ):
            assert _rel(chip(x, **masks), enc(x, **masks)) <= 1e-5, list(masks)


@pytest.mark.parametrize(
    "kw",
    [{"bias": False}, {"activation": nn.GELU()}, {"layer_norm_eps": 1e-3}],
    ids=["no_bias", "gelu_module", "eps"],
)
def test_encoder_layer_options_and_dropout_in_training_mode(kw):
    torch.manual_seed(14)
    x = torch.randn(N, L, E)
    enc = nn.TransformerEncoderLayer(E, HEADS, 32, dropout=0.2, batch_first=True, **kw).train()
    chip = memsim.convert(enc, "ideal", seed=0)
    with torch.no_grad():
        torch.manual_seed(3)
        ref = enc(x)
        torch.manual_seed(3)
        assert _rel(chip(x), ref) <= 1e-5  # the same dropout draws
        enc.eval(), chip.eval()
        assert _rel(chip(x), enc(x)) <= 1e-5
        assert _rel(chip(x), ref) > 1e-3


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_digital(batch_first, norm_first):
    torch.manual_seed(4)
    dec = nn.TransformerDecoderLayer(
        E, HEADS, 32, batch_first=batch_first, norm_first=norm_first
    ).eval()
    chip = memsim.convert(dec, "ideal", seed=0)
    assert isinstance(chip, AnalogTransformerDecoderLayer)
    tgt, mem = _seq(N, L, E, batch_first), _seq(N, S, E, batch_first)
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    with torch.no_grad():
        for masks in (
            {},
            {"tgt_mask": causal, "tgt_is_causal": True},
            {
                "tgt_mask": causal,
                "tgt_key_padding_mask": _padding(N, L),
                "memory_key_padding_mask": _padding(N, S),
            },
            {"memory_mask": torch.rand(L, S) < 0.3},
        ):
            assert _rel(chip(tgt, mem, **masks), dec(tgt, mem, **masks)) <= 1e-5, list(masks)
    names = [r.name for r in memsim.tile_report(chip).layers]
    assert names == [
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.out_proj",
        "multihead_attn.q_proj",
        "multihead_attn.k_proj",
        "multihead_attn.v_proj",
        "multihead_attn.out_proj",
        "linear1",
        "linear2",
    ]


@pytest.mark.parametrize("batch_first", [True, False])
def test_encoder_stack_and_full_transformer_match_digital(batch_first):
    torch.manual_seed(5)
    layer = nn.TransformerEncoderLayer(E, HEADS, 32, batch_first=batch_first)
    stack = nn.TransformerEncoder(layer, 3, norm=nn.LayerNorm(E)).eval()
    chip = memsim.convert(stack, "ideal", seed=0)
    assert len(memsim.analog_layers(chip)) == 3 * 6
    x = _seq(N, L, E, batch_first)
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    pad = _padding(N, L)
    with torch.no_grad():
        assert _rel(chip(x), stack(x)) <= 1e-5
        assert _rel(chip(x, mask=causal, is_causal=True), stack(x, mask=causal)) <= 1e-5
        out, ref = chip(x, src_key_padding_mask=pad), stack(x, src_key_padding_mask=pad)
    # torch's nested-tensor path zeroes padded positions; the others must agree
    keep = ~pad if batch_first else ~pad.T
    assert _rel(out[keep], ref[keep]) <= 1e-5
    model = nn.Transformer(E, HEADS, 2, 2, 32, batch_first=batch_first).eval()
    chip = memsim.convert(model, "ideal", seed=0)
    src, tgt = _seq(N, S, E, batch_first), _seq(N, L, E, batch_first)
    with torch.no_grad():
        out = chip(src, tgt, tgt_mask=causal, tgt_is_causal=True)
        assert _rel(out, model(src, tgt, tgt_mask=causal, tgt_is_causal=True)) <= 1e-5


class _Block(nn.Module):
    """A HuggingFace-style pre-norm block written with nn.Linear projections."""

    def __init__(self, dim: int = E, heads: int = HEADS) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(dim)
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.o_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.fc_in, self.fc_out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def _split(self, t: Tensor) -> Tensor:
        b, n, d = t.shape
        return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.ln_1(x)
        q, k, v = (self._split(p(h)) for p in (self.q_proj, self.k_proj, self.v_proj))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.o_proj(a.transpose(1, 2).reshape(x.shape))
        return x + self.fc_out(F.gelu(self.fc_in(self.ln_2(x))))


def test_hand_written_block_matches_digital():
    torch.manual_seed(6)
    model = nn.Sequential(_Block(), _Block()).eval()
    chip = memsim.convert(model, "ideal", seed=0)
    assert len(memsim.analog_layers(chip)) == 12
    x = torch.randn(N, L, E)
    with torch.no_grad():
        assert _rel(chip(x), model(x)) <= 1e-5


class _Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoderLayer(E, HEADS, 32, batch_first=True)
        self.head = nn.Linear(E, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.enc(x).mean(1))


def test_every_listed_module_name_can_stay_digital():
    torch.manual_seed(7)
    model = _Classifier().eval()
    x = torch.randn(N, L, E)
    with torch.no_grad():
        ref = model(x)
    names = [n for n, _ in model.named_modules() if n]
    assert "enc.self_attn.out_proj" in names and "enc.linear1" in names
    for name in [*names, "enc.self_attn.q_proj"]:  # q_proj: a name of the rebuilt attention
        chip = memsim.convert(model, "ideal", seed=0, digital=[name])
        analog = [n for n, _ in memsim.analog_layers(chip)]
        assert not any(n == name or n.startswith(name + ".") for n in analog), name
        with torch.no_grad():
            assert _rel(chip(x), ref) <= 1e-5, name
    chip = memsim.convert(model, "ideal", seed=0, digital=["enc.self_attn"])
    assert type(chip.enc.self_attn) is nn.MultiheadAttention
    assert isinstance(chip.enc, AnalogTransformerEncoderLayer)
    assert [n for n, _ in memsim.analog_layers(chip)] == ["enc.linear1", "enc.linear2", "head"]


def test_tile_report_lists_every_projection_and_the_digital_extras():
    enc = nn.TransformerEncoderLayer(E, HEADS, 32, batch_first=True)
    enc.self_attn = nn.MultiheadAttention(E, HEADS, batch_first=True, add_bias_kv=True)
    report = memsim.tile_report(memsim.convert(enc, "ideal", seed=0))
    assert [(r.name, r.kind, r.matrix) for r in report.layers] == [
        ("self_attn.q_proj", "linear", (E, E)),
        ("self_attn.k_proj", "linear", (E, E)),
        ("self_attn.v_proj", "linear", (E, E)),
        ("self_attn.out_proj", "linear", (E, E)),
        ("linear1", "linear", (32, E)),
        ("linear2", "linear", (E, 32)),
    ]
    assert [(d.name, d.parameters) for d in report.digital] == [
        ("self_attn", 2 * E),
        ("norm1", 2 * E),
        ("norm2", 2 * E),
    ]


def test_the_tiles_compute_the_layer_not_a_fused_path():
    # on the ideal profile a bypass of the tiles would compute the same numbers; new
    # weights programmed onto the tiles show that the eval/no_grad forward reads them
    torch.manual_seed(8)
    enc = nn.TransformerEncoderLayer(E, HEADS, 32, batch_first=True).eval()
    other = nn.TransformerEncoderLayer(E, HEADS, 32, batch_first=True).eval()
    other.load_state_dict(enc.state_dict())
    with torch.no_grad():
        other.self_attn.in_proj_weight.mul_(-0.5)
        other.linear1.weight.mul_(2.0)
    chip = memsim.convert(enc, "ideal", seed=0)
    wq, wk, wv = other.self_attn.in_proj_weight.detach().chunk(3)
    memsim.program(
        chip,
        {
            "self_attn.q_proj.weight": wq,
            "self_attn.k_proj.weight": wk,
            "self_attn.v_proj.weight": wv,
            "linear1.weight": other.linear1.weight.detach(),
        },
        seed=1,
    )
    x = torch.randn(N, L, E)
    with torch.no_grad():
        assert _rel(chip(x), other(x)) <= 1e-5
        assert _rel(enc(x), other(x)) > 1e-2


def test_cost_report_counts_the_attention_products_as_digital_work():
    torch.manual_seed(9)
    model = _Classifier().eval()
    chip = memsim.convert(model, "rram_wan2022", seed=0)
    x = torch.randn(N, L, E)
    memsim.calibrate(chip, x)
    report = memsim.cost_report(chip, x)
    names = [r.name for r in report.layers]
    assert names[:2] == ["enc.self_attn", "enc.self_attn.q_proj"] and names[-1] == "head"
    attn = report.layers[0]
    assert attn.kind == "attn" and attn.tiles == 0 and attn.area_mm2 == 0.0
    assert attn.macs == 2 * L * L * E  # Q K^T and softmax(.) V, per inference
    p = chip.enc.self_attn.q_proj.profile.periphery
    per_mac = (p.scale_energy_pJ + p.accumulate_energy_pJ) * 1e-12
    assert math.isclose(attn.digital_J, attn.macs * per_mac, rel_tol=1e-12)
    assert attn.array_J == attn.adc_J == attn.dac_J == 0.0
    assert math.isclose(report.macs, sum(r.macs for r in report.layers))
    assert "enc.self_attn" in report.to_csv()


def test_cost_report_of_a_sequence_first_transformer_counts_its_batch_dimension():
    # (L, N, E) input of a batch_first=False layer: the batch is dimension 1, so the
    # per-inference counts are those of one sequence (hand computation below)
    torch.manual_seed(12)
    enc = nn.Sequential(nn.TransformerEncoderLayer(E, HEADS, 32, batch_first=False)).eval()
    chip = memsim.convert(enc, "rram_wan2022", seed=0)
    x = torch.randn(L, N, E)
    memsim.calibrate(chip, x)
    rows = {r.name: r for r in memsim.cost_report(chip, x, batch_dim=1).layers}
    assert rows["0.self_attn"].macs == 2 * L * L * E  # Q K^T and softmax(.) V
    assert rows["0.self_attn.q_proj"].macs == L * E * E  # one MVM per token
    assert rows["0.linear1"].macs == L * E * 32
    wrong = {r.name: r for r in memsim.cost_report(chip, x).layers}  # batch taken as L
    assert wrong["0.self_attn.q_proj"].macs == N * E * E
    with pytest.raises(ValueError, match="batch_dim=3 is not a dimension"):
        memsim.cost_report(chip, x, batch_dim=3)


def test_export_import_round_trip_of_a_transformer_chip(tmp_path):
    torch.manual_seed(10)
    model = _Classifier().eval()
    x = torch.randn(8, L, E)
    prof = memsim.load_profile("rram_1t1r_faulty_chen2015")
    chip = memsim.convert(model, prof, seed=3, chip_seed=4)
    memsim.calibrate(chip, x)
    ref = chip(x)
    memsim.export_chip(chip, tmp_path / "prog.npz", quantity="programmed")
    other = memsim.convert(model, prof, seed=3, chip_seed=99)
    memsim.calibrate(other, x)
    assert not torch.equal(other(x), ref)
    memsim.import_conductances(other, tmp_path / "prog.npz")
    memsim.calibrate(other, x)
    assert torch.equal(other(x), ref)


def test_models_without_attention_are_not_copied_or_changed():
    model = nn.Sequential(
        nn.Conv2d(4, 4, 3, groups=4),
        nn.Conv2d(4, 8, 3, groups=2),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    assert restructure(model) is model
    chip = memsim.convert(model, "ideal", seed=0)
    assert [type(m).__name__ for m in chip] == [
        "AnalogConv2d",
        "AnalogConv2d",
        "Flatten",
        "AnalogLinear",
    ]
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        assert _rel(chip(x), model(x)) <= 1e-5


def test_vit_converts_matches_digital_and_round_trips_its_checkpoint(tmp_path):
    from models.checkpoint import load_model, save_model
    from models.vit import vit_cifar, vit_mnist

    torch.manual_seed(11)
    model = vit_mnist(depth=2).eval()
    chip = memsim.convert(model, "ideal", seed=0)
    names = [r.name for r in memsim.tile_report(chip).layers]
    block = [
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.out_proj",
        "linear1",
        "linear2",
    ]
    assert names == [
        "patch_embed",
        *(f"encoder.layers.{i}.{p}" for i in range(2) for p in block),
        "head",
    ]
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert _rel(chip(x), model(x)) <= 1e-5
    save_model(tmp_path / "vit.pt", "vit", model, {"dataset": "mnist"}, {"depth": 2})
    again = load_model(tmp_path / "vit.pt").eval()
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    assert vit_cifar()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        vit_mnist(patch_size=5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transformer_chips_run_on_cuda():
    from models.vit import vit_mnist

    torch.manual_seed(12)
    dev = torch.device("cuda")
    dec = nn.TransformerDecoderLayer(E, HEADS, 32, batch_first=True).eval()
    dec.multihead_attn = nn.MultiheadAttention(
        E, HEADS, batch_first=True, add_bias_kv=True, add_zero_attn=True
    ).eval()
    dec = dec.to(dev)
    chip = memsim.convert(dec, "ideal", seed=0)
    tgt, mem = torch.randn(N, L, E, device=dev), torch.randn(N, S, E, device=dev)
    causal = nn.Transformer.generate_square_subsequent_mask(L, device=dev)
    masks = {
        "tgt_mask": causal,
        "tgt_is_causal": True,
        "memory_key_padding_mask": _padding(N, S).to(dev),
    }
    with torch.no_grad():
        # TF32 may be on for CUDA matmuls and convolutions: a looser bound than on CPU
        assert _rel(chip(tgt, mem, **masks), dec(tgt, mem, **masks)) <= 1e-3
    vit = vit_mnist().eval().to(dev)
    chip = memsim.convert(vit, "rram_wan2022", seed=0)
    x = torch.randn(8, 1, 28, 28, device=dev)
    memsim.calibrate(chip, x)
    with torch.no_grad():
        out = chip(x)
    assert out.device.type == "cuda" and torch.isfinite(out).all()


def test_tile_weights_program_a_chip_with_a_tuned_digital_model():
    from memsim.transformer import tile_weights

    torch.manual_seed(13)
    model = _Classifier().eval()
    tuned = copy.deepcopy(model)  # new weights, as after fine-tuning (biases are digital)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if name.endswith("weight") and "norm" not in name:
                p.mul_(1.0 + 0.5 * torch.randn_like(p))
    chip = memsim.convert(model, "ideal", seed=0)
    weights = tile_weights(tuned)
    assert sorted(weights) == sorted(f"{n}.weight" for n, _ in memsim.analog_layers(chip))
    x = torch.randn(N, L, E)
    with torch.no_grad():
        assert _rel(chip(x), tuned(x)) > 1e-3
        memsim.program(chip, weights, seed=1)
        assert _rel(chip(x), tuned(x)) <= 1e-5
    chip = memsim.convert(model, "ideal", seed=0, digital=["enc.self_attn"])
    weights = tile_weights(tuned, digital=["enc.self_attn"])
    assert sorted(weights) == ["enc.linear1.weight", "enc.linear2.weight", "head.weight"]
