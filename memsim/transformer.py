"""Transformer layers rebuilt so that their weight matrices can go onto tiles.

``nn.TransformerEncoderLayer`` and ``nn.TransformerDecoderLayer`` cannot simply have
their submodules swapped: in evaluation mode without autograd the encoder layer takes
a fused fast path (``torch._transformer_encoder_layer_fwd``) that reads
``self_attn.in_proj_weight`` and ``linear1.weight`` as tensors and would skip the tiles,
and ``nn.TransformerEncoder`` turns padded input into nested tensors on the strength
of its first layer being an ``nn.TransformerEncoderLayer``.  :func:`restructure`
therefore replaces them by :class:`AnalogTransformerEncoderLayer` and
:class:`AnalogTransformerDecoderLayer`, plain modules with the same submodules
(``self_attn``, ``linear1``, ``linear2``, norms, dropouts) and the same forward
semantics (``norm_first``, the activation, dropout), but without a fast path, and
every ``nn.MultiheadAttention`` by :class:`memsim.attention.AnalogMultiheadAttention`.
Only the exact torch classes are rebuilt: a subclass may have changed the forward and
is refused by :func:`memsim.convert` unless kept digital.

The rebuilt model computes what the source computes (up to float rounding), still
digitally; :func:`memsim.convert` then maps its ``nn.Linear`` modules onto tiles.
``nn.TransformerEncoder`` gets the same treatment through torch's own per-instance
switch: its nested-tensor path is turned off (``use_nested_tensor = False``).  One
difference follows: in evaluation mode given a ``src_key_padding_mask`` the digital
stack returns zeros at padded positions (its nested-tensor path); the rebuilt stack
returns what the layers compute there (what the digital stack returns in training
mode or with autograd on).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .attention import AnalogMultiheadAttention

_SOURCES: tuple[type[nn.Module], ...] = (
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
)


def _matches(name: str, entry: str) -> bool:
    return name == entry or name.startswith(entry + ".")


class _FeedForwardLayer(nn.Module):
    """What the encoder and decoder layers share: the feed-forward block and its norms."""

    def __init__(
        self,
        src: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer,
        attentions: dict[str, nn.Module],
    ) -> None:
        super().__init__()
        # the children in the source's order (attentions replaced): module names, their
        # order and so the layer indices convert gives (and the seeds drawn) stay the same
        for child, module in src.named_children():
            setattr(self, child, attentions.get(child, module))
        self.norm_first = bool(src.norm_first)
        # an activation function, not a module, is a plain attribute there as here
        self.activation: Callable[[Tensor], Tensor] = src.activation
        self.train(src.training)

    def _ff_block(self, x: Tensor, last_dropout: nn.Module) -> Tensor:
        return last_dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _self_attention(
    attn: nn.Module,
    dropout: nn.Module,
    x: Tensor,
    attn_mask: Tensor | None,
    key_padding_mask: Tensor | None,
    is_causal: bool,
) -> Tensor:
    out = attn(
        x,
        x,
        x,
        attn_mask=attn_mask,
        key_padding_mask=key_padding_mask,
        need_weights=False,
        is_causal=is_causal,
    )[0]
    return dropout(out)


class AnalogTransformerEncoderLayer(_FeedForwardLayer):
    """``nn.TransformerEncoderLayer`` without the fused fast path (same forward otherwise)."""

    def __init__(self, src: nn.TransformerEncoderLayer, self_attn: nn.Module) -> None:
        """Take over ``src``'s submodules, with ``self_attn`` as its attention."""
        super().__init__(src, {"self_attn": self_attn})

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        """Encode ``src`` as ``nn.TransformerEncoderLayer.forward`` does."""
        # torch canonicalizes both masks here first (bool -> float); so do we, so that a
        # bool padding mask next to a float src_mask is accepted exactly as there
        src_key_padding_mask = nn.functional._canonical_mask(
            mask=src_key_padding_mask,
            mask_name="src_key_padding_mask",
            other_type=nn.functional._none_or_dtype(src_mask),
            other_name="src_mask",
            target_type=src.dtype,
        )
        src_mask = nn.functional._canonical_mask(
            mask=src_mask,
            mask_name="src_mask",
            other_type=None,
            other_name="",
            target_type=src.dtype,
            check_other=False,
        )
        x = src
        if self.norm_first:
            x = x + _self_attention(
                self.self_attn,
                self.dropout1,
                self.norm1(x),
                src_mask,
                src_key_padding_mask,
                is_causal,
            )
            return x + self._ff_block(self.norm2(x), self.dropout2)
        x = self.norm1(
            x
            + _self_attention(
                self.self_attn, self.dropout1, x, src_mask, src_key_padding_mask, is_causal
            )
        )
        return self.norm2(x + self._ff_block(x, self.dropout2))


class AnalogTransformerDecoderLayer(_FeedForwardLayer):
    """``nn.TransformerDecoderLayer`` with its attentions rebuilt (same forward)."""

    def __init__(
        self, src: nn.TransformerDecoderLayer, self_attn: nn.Module, multihead_attn: nn.Module
    ) -> None:
        """Take over ``src``'s submodules, with the two attentions given."""
        super().__init__(src, {"self_attn": self_attn, "multihead_attn": multihead_attn})

    def _mha_block(
        self,
        x: Tensor,
        mem: Tensor,
        attn_mask: Tensor | None,
        key_padding_mask: Tensor | None,
        is_causal: bool,
    ) -> Tensor:
        out = self.multihead_attn(
            x,
            mem,
            mem,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            is_causal=is_causal,
            need_weights=False,
        )[0]
        return self.dropout2(out)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """Decode ``tgt`` against ``memory`` as ``nn.TransformerDecoderLayer.forward`` does."""
        x = tgt
        if self.norm_first:
            x = x + _self_attention(
                self.self_attn,
                self.dropout1,
                self.norm1(x),
                tgt_mask,
                tgt_key_padding_mask,
                tgt_is_causal,
            )
            x = x + self._mha_block(
                self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal
            )
            return x + self._ff_block(self.norm3(x), self.dropout3)
        x = self.norm1(
            x
            + _self_attention(
                self.self_attn, self.dropout1, x, tgt_mask, tgt_key_padding_mask, tgt_is_causal
            )
        )
        x = self.norm2(
            x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal)
        )
        return self.norm3(x + self._ff_block(x, self.dropout3))


def needs_restructure(model: nn.Module) -> bool:
    """Whether ``model`` holds a module :func:`restructure` rebuilds."""
    return any(type(m) in _SOURCES for m in model.modules())


def _rebuild(module: nn.Module, name: str, digital: Sequence[str]) -> nn.Module:
    """``module`` (an instance of a class in ``_SOURCES``) rebuilt, children first."""

    def kept(child: str) -> bool:
        full = f"{name}.{child}" if name else child
        return any(_matches(full, e) for e in digital)

    def attention(child: str) -> nn.Module:
        mha = getattr(module, child)
        if kept(child) or type(mha) is not nn.MultiheadAttention:
            return mha  # digital, or a subclass that convert refuses by name
        return AnalogMultiheadAttention(mha)

    if type(module) is nn.MultiheadAttention:
        return AnalogMultiheadAttention(module)  # type: ignore[arg-type]
    if type(module) is nn.TransformerEncoderLayer:
        return AnalogTransformerEncoderLayer(module, attention("self_attn"))
    return AnalogTransformerDecoderLayer(
        module,  # type: ignore[arg-type]
        attention("self_attn"),
        attention("multihead_attn"),
    )


def tile_weights(model: nn.Module, digital: Sequence[str] = ()) -> dict[str, Tensor]:
    """The weights a chip of ``model`` holds, keyed as :func:`memsim.program` takes them.

    For a digital model, trained or fine-tuned after a chip was converted from it:
    ``memsim.program(chip, tile_weights(model))`` programs its current weights, the
    packed ``in_proj_weight`` of an attention split into ``q_proj``, ``k_proj`` and
    ``v_proj`` as :func:`memsim.convert` splits it.  ``digital`` must be what the chip
    was converted with.  The tensors are detached copies.
    """
    rebuilt = restructure(model, digital)
    return {
        (f"{name}.weight" if name else "weight"): m.weight.detach().clone()
        for name, m in rebuilt.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
        and not any(_matches(name, e) for e in digital)
        and not _inside_digital_attention(rebuilt, name)
    }


def source_state_dict(rebuilt: nn.Module) -> dict[str, Tensor]:
    """The state dict of a model :func:`restructure` rebuilt, in its source's layout.

    The inverse of the split :class:`AnalogMultiheadAttention` makes: every attention's
    ``q_proj``, ``k_proj`` and ``v_proj`` weights (and biases) are packed back into
    ``in_proj_weight`` (``in_proj_bias``), or into ``q/k/v_proj_weight`` where
    ``kdim``/``vdim`` differ from ``embed_dim``, as ``nn.MultiheadAttention`` holds them;
    every other entry is kept.  So weights trained or searched on the rebuilt model load
    into the source architecture (``source.load_state_dict(source_state_dict(rebuilt))``).
    For digital models only: a converted chip holds targets, not weights.
    """
    state = dict(rebuilt.state_dict())
    for name, m in rebuilt.named_modules():
        if not isinstance(m, AnalogMultiheadAttention):
            continue
        p = f"{name}." if name else ""
        weights = [state.pop(f"{p}{x}_proj.weight") for x in "qkv"]
        if m.kdim == m.embed_dim and m.vdim == m.embed_dim:
            state[f"{p}in_proj_weight"] = torch.cat(weights)
        else:
            state.update({f"{p}{x}_proj_weight": w for x, w in zip("qkv", weights)})
        biases = [state.pop(f"{p}{x}_proj.bias", None) for x in "qkv"]
        if all(b is not None for b in biases):
            state[f"{p}in_proj_bias"] = torch.cat(biases)  # type: ignore[arg-type]
    return state


def _inside_digital_attention(model: nn.Module, name: str) -> bool:
    """Whether ``name`` is a projection of an attention or layer left as torch's class."""
    parts = name.split(".")
    return any(
        type(model.get_submodule(".".join(parts[:i]))) in _SOURCES for i in range(len(parts))
    )


def restructure(model: nn.Module, digital: Sequence[str] = ()) -> nn.Module:
    """A deep copy of ``model`` with its attention and transformer layers rebuilt.

    Every ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer`` and
    ``nn.TransformerDecoderLayer`` (exact classes) that ``digital`` does not name (an
    entry names a module and everything under it) is replaced; the copy computes what
    ``model`` computes.  ``model`` itself is untouched.

    Args:
        model: Any module.
        digital: Module names to leave as they are, as in :func:`memsim.convert`.

    Returns:
        The rebuilt copy (``model`` is returned unchanged if nothing is rebuilt).

    """
    todo = [
        name
        for name, m in model.named_modules()
        if type(m) in _SOURCES and not any(_matches(name, e) for e in digital)
    ]
    if not todo:
        return model
    out = copy.deepcopy(model)
    done: list[str] = []
    for name in todo:
        if any(d == "" or _matches(name, d) for d in done):
            continue  # inside a layer rebuilt already (its attentions are handled there)
        new = _rebuild(out.get_submodule(name), name, digital)
        if name:
            out.set_submodule(name, new)
        else:
            out = new
        done.append(name)
    for m in out.modules():
        if isinstance(m, nn.TransformerEncoder) and isinstance(m.layers[0], _FeedForwardLayer):
            # torch's own per-instance switch (enable_nested_tensor=False): in evaluation
            # mode with a padding mask the stack would otherwise read the first layer's
            # in_proj_weight and linear1.weight as tensors, which tiles do not have
            m.use_nested_tensor = False
    return out
