"""Multi-head attention with its weight projections on tiles and its products digital.

A crossbar holds a *weight* matrix; the two products of attention, ``Q K^T`` and
``softmax(.) V``, multiply activations by activations and change with every input, so
chips of the NeuRRAM class compute them in digital logic next to the arrays.
:class:`AnalogMultiheadAttention` does the same: its query, key, value and output
projections are ordinary ``nn.Linear`` modules that :func:`memsim.convert` turns into
:class:`memsim.AnalogLinear` tiles, and everything between them is computed digitally,
step for step as ``torch.nn.functional.multi_head_attention_forward`` does it
(batch_first, unbatched input, bool and float masks, key padding, the ``is_causal``
hint, ``bias_k``/``bias_v``, ``add_zero_attn``, dropout in training mode, and the
returned attention weights, averaged over heads or not).

The packed ``in_proj_weight`` of ``nn.MultiheadAttention`` is split into three
projections (``q_proj``, ``k_proj``, ``v_proj``) so that cross-attention, where query
and key/value differ, and ``kdim``/``vdim`` different from ``embed_dim`` map the same
way; the tile report lists each one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    """A plain ``nn.Linear`` holding copies of ``weight`` (out, in) and ``bias``."""
    out_f, in_f = weight.shape
    layer = nn.Linear(in_f, out_f, bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _pad_key(t: Tensor | None) -> Tensor | None:
    # one more key position (bias_k or the zero key): masks grow by an unmasked column
    return None if t is None else F.pad(t, (0, 1))


class AnalogMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` whose projections are separate ``nn.Linear`` modules.

    Built from an ``nn.MultiheadAttention`` by :func:`memsim.convert` (through
    :func:`memsim.transformer.restructure`); before conversion it computes what the
    source module computes, after it the projections run on tiles.  The forward
    signature and return values are those of ``nn.MultiheadAttention.forward``.
    """

    cost_probe: Callable[[AnalogMultiheadAttention, float], None] | None = None
    """Called with the digital multiply-accumulates of every forward pass while set
    (``memsim.cost``)."""

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        """Copy ``mha``'s weights into ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``."""
        super().__init__()
        self.embed_dim, self.kdim, self.vdim = mha.embed_dim, mha.kdim, mha.vdim
        self.num_heads, self.head_dim = mha.num_heads, mha.head_dim
        self.dropout = float(mha.dropout)
        self.batch_first = bool(mha.batch_first)
        self.add_zero_attn = bool(mha.add_zero_attn)
        if mha._qkv_same_embed_dim:
            wq, wk, wv = mha.in_proj_weight.detach().chunk(3)
        else:
            wq, wk, wv = (
                w.detach() for w in (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
            )
        if mha.in_proj_bias is None:
            bq = bk = bv = None
        else:
            bq, bk, bv = mha.in_proj_bias.detach().chunk(3)
        self.q_proj = _linear(wq, bq)
        self.k_proj = _linear(wk, bk)
        self.v_proj = _linear(wv, bv)
        out = mha.out_proj
        out_bias = None if out.bias is None else out.bias.detach()
        self.out_proj = _linear(out.weight.detach(), out_bias)
        # the learned extra key/value rows are activations, not weights: they stay digital
        self.bias_k = None if mha.bias_k is None else nn.Parameter(mha.bias_k.detach().clone())
        self.bias_v = None if mha.bias_v is None else nn.Parameter(mha.bias_v.detach().clone())
        self.train(mha.training)

    def _masks(
        self,
        query: Tensor,
        key_padding_mask: Tensor | None,
        attn_mask: Tensor | None,
        need_weights: bool,
        is_causal: bool,
    ) -> tuple[Tensor | None, Tensor | None, bool]:
        """Canonical (float) masks and the causal hint, as torch decides them."""
        key_padding_mask = F._canonical_mask(
            mask=key_padding_mask,
            mask_name="key_padding_mask",
            other_type=F._none_or_dtype(attn_mask),
            other_name="attn_mask",
            target_type=query.dtype,
        )
        if is_causal and attn_mask is None:
            raise RuntimeError(
                "Need attn_mask if specifying the is_causal hint. You may use the Transformer "
                "module method `generate_square_subsequent_mask` to create this mask."
            )
        if is_causal and key_padding_mask is None and not need_weights:
            # the hint stands for the mask: the fused kernel applies it itself
            return key_padding_mask, None, True
        attn_mask = F._canonical_mask(
            mask=attn_mask,
            mask_name="attn_mask",
            other_type=None,
            other_name="",
            target_type=query.dtype,
            check_other=False,
        )
        # a merged key-padding mask is no longer causal
        return key_padding_mask, attn_mask, is_causal and key_padding_mask is None

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attention of ``query`` over ``key``/``value``, as ``nn.MultiheadAttention``.

        Returns:
            ``(output, weights)``: ``weights`` is ``None`` unless ``need_weights``; it is
            ``(N, L, S)`` averaged over heads, or ``(N, heads, L, S)``.

        """
        if self.batch_first and query.dim() == 3:
            query, key, value = (t.transpose(1, 0) for t in (query, key, value))
        is_batched = F._mha_shape_check(
            query, key, value, key_padding_mask, attn_mask, self.num_heads
        )
        if not is_batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        tgt_len, bsz, embed_dim = query.shape
        src_len = key.shape[0]
        if embed_dim != self.embed_dim:
            raise AssertionError(
                f"was expecting embedding dimension of {self.embed_dim}, but got {embed_dim}"
            )
        if key.shape[:2] != value.shape[:2]:
            raise AssertionError(
                f"key's sequence and batch dims {key.shape[:2]} do not match value's "
                f"{value.shape[:2]}"
            )
        key_padding_mask, attn_mask, is_causal = self._masks(
            query, key_padding_mask, attn_mask, need_weights, is_causal
        )
        # the weight products: on tiles once converted
        q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)
        if attn_mask is not None:
            attn_mask = self._check_attn_mask(attn_mask, bsz, tgt_len, src_len)
        heads, hd = self.num_heads, self.head_dim
        if self.bias_k is not None and self.bias_v is not None:
            k = torch.cat([k, self.bias_k.repeat(1, bsz, 1)])
            v = torch.cat([v, self.bias_v.repeat(1, bsz, 1)])
            attn_mask, key_padding_mask = _pad_key(attn_mask), _pad_key(key_padding_mask)
        q = q.reshape(tgt_len, bsz * heads, hd).transpose(0, 1)
        k = k.reshape(k.shape[0], bsz * heads, hd).transpose(0, 1)
        v = v.reshape(v.shape[0], bsz * heads, hd).transpose(0, 1)
        if self.add_zero_attn:
            zeros = torch.zeros((bsz * heads, 1, hd), dtype=k.dtype, device=k.device)
            k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
            attn_mask, key_padding_mask = _pad_key(attn_mask), _pad_key(key_padding_mask)
        src_len = k.shape[1]
        if key_padding_mask is not None:
            F._check_key_padding_mask(key_padding_mask, src_len, bsz)
            kpm = key_padding_mask.view(bsz, 1, 1, src_len).expand(-1, heads, -1, -1)
            kpm = kpm.reshape(bsz * heads, 1, src_len)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        if self.cost_probe is not None:
            # Q K^T and softmax(.) V: one MAC per (head, query, key, head channel) each
            self.cost_probe(self, 2.0 * bsz * heads * tgt_len * src_len * hd)
        p = self.dropout if self.training else 0.0
        # the activation products: digital, exactly torch's two code paths
        weights = None
        if need_weights:
            q_scaled = q * (1.0 / float(hd)) ** 0.5
            if attn_mask is not None:
                scores = torch.baddbmm(attn_mask, q_scaled, k.transpose(-2, -1))
            else:
                scores = torch.bmm(q_scaled, k.transpose(-2, -1))
            weights = F.softmax(scores, dim=-1)
            if p > 0.0:
                weights = F.dropout(weights, p=p)
            out = torch.bmm(weights, v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
            weights = weights.view(bsz, heads, tgt_len, src_len)
            if average_attn_weights:
                weights = weights.mean(dim=1)
        else:
            if attn_mask is not None:
                if attn_mask.size(0) == 1 and attn_mask.dim() == 3:
                    attn_mask = attn_mask.unsqueeze(0)
                else:
                    attn_mask = attn_mask.view(bsz, heads, -1, src_len)
            out = F.scaled_dot_product_attention(
                q.view(bsz, heads, tgt_len, hd),
                k.view(bsz, heads, src_len, hd),
                v.view(bsz, heads, src_len, hd),
                attn_mask,
                p,
                is_causal,
            )
            out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
        out = self.out_proj(out).view(tgt_len, bsz, -1)
        if not is_batched:
            out = out.squeeze(1)
            if weights is not None:
                weights = weights.squeeze(0)
        elif self.batch_first:
            out = out.transpose(1, 0)
        return out, weights

    def _check_attn_mask(self, mask: Tensor, bsz: int, tgt_len: int, src_len: int) -> Tensor:
        """``mask`` as ``(1 or N*heads, L, S)``; a wrong shape raises as torch does."""
        if mask.dim() == 2:
            if mask.shape != (tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 2D attn_mask is {mask.shape}, but should be "
                    f"{(tgt_len, src_len)}."
                )
            return mask.unsqueeze(0)
        if mask.dim() == 3:
            want = (bsz * self.num_heads, tgt_len, src_len)
            if mask.shape != want:
                raise RuntimeError(
                    f"The shape of the 3D attn_mask is {mask.shape}, but should be {want}."
                )
            return mask
        raise RuntimeError(f"attn_mask's dimension {mask.dim()} is not supported")

    def extra_repr(self) -> str:
        """Show the sizes."""
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, kdim={self.kdim}, "
            f"vdim={self.vdim}, batch_first={self.batch_first}"
        )
