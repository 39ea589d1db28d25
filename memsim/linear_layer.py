"""``nn.Linear`` on crossbar tiles: the row tiles' partial sums as one batched matmul."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import AnalogLayer
from .profiles import DeviceProfile


class AnalogLinear(AnalogLayer):
    """``nn.Linear`` on crossbar tiles."""

    def __init__(self, module: nn.Linear, profile: DeviceProfile, layer_index: int) -> None:
        """Map ``module``'s weight and keep its bias digital."""
        super().__init__(module.weight, module.bias, profile, 1, layer_index)
        self.in_features, self.out_features = module.in_features, module.out_features

    def _partial_weights(self, w: Tensor) -> Tensor:
        lay = self.layout
        pad = lay.row_tiles * lay.row_span - lay.k
        w = F.pad(w, (0, pad)).view(lay.out, lay.row_tiles, lay.row_span)
        return w.permute(1, 2, 0).contiguous()  # (T, span, out)

    def forward(self, x: Tensor) -> Tensor:
        """Compute ``x W^T + b`` through the simulated tiles."""
        return self._forward(self._as_input(x, f"(..., {self.in_features})"))

    def _out_dim(self, ndim: int) -> int:
        return ndim - 1

    def _linear_grads(
        self, x: Tensor, w_eff: Tensor, grad: Tensor, need_x: bool, need_w: bool
    ) -> tuple[Tensor | None, Tensor | None]:
        gx = grad @ w_eff if need_x else None
        gw = None
        if need_w:
            gw = grad.reshape(-1, self.out_features).T @ x.reshape(-1, self.in_features)
        return gx, gw

    @torch.no_grad()
    def _chip_forward(self, x: Tensor) -> Tensor:
        expected = f"(..., {self.in_features})"
        x = self._as_input(x, expected)
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"memsim layer {self._label()}: expected input of shape {expected}, "
                f"got {tuple(x.shape)}"
            )
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        codes, bound, u, noise_scale = self._codes(x, (1,))
        if self.cost_probe is not None:
            self.cost_probe(self, codes)
        lay = self.layout
        b, rt = x.shape[0], lay.row_tiles
        if rt == 1:
            pc = (codes @ self._w_part[0]).view(b, 1, lay.out, 1)
            sx2 = None
            if self._v_part is not None:
                sx2 = ((codes * codes) @ self._v_part[0]).view(b, 1, lay.out, 1)
            elif self._needs_sx2():
                sq = torch.mul(codes, codes, out=self._buf("sq", codes.shape, codes))
                sx2 = sq.sum(1).view(b, 1, 1, 1)
        else:
            pad = rt * lay.row_span - lay.k
            xs = (F.pad(codes, (0, pad)) if pad else codes).view(b, rt, lay.row_span)
            xt = xs.transpose(0, 1)
            # a scratch output: only the (fresh) sum over row tiles leaves the layer
            buf = self._buf("pc", (rt, b, lay.out), codes)
            pc = torch.bmm(xt, self._w_part, out=buf)  # (T, B, out)
            pc = pc.transpose(0, 1).unsqueeze(-1)  # (B, T, out, 1) view, no copy
            sx2 = None
            if self._v_part is not None:
                sx2 = torch.bmm((xs * xs).transpose(0, 1), self._v_part)
                sx2 = sx2.transpose(0, 1).unsqueeze(-1)
            elif self._needs_sx2():
                sq = torch.mul(xs, xs, out=self._buf("sq", xs.shape, xs))
                sx2 = sq.sum(2).view(b, rt, 1, 1)
        y = self._epilogue(pc, sx2, u, bound, noise_scale).view(b, lay.out)
        self._end_forward()
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        """Show size and tiling."""
        lay = self.layout
        return (
            f"in={self.in_features}, out={self.out_features}, tiles={lay.n_tiles} "
            f"({lay.rows}x{lay.cols}), profile={self.profile.name}"
        )
