"""``nn.Conv2d`` on crossbar tiles (grouped and depthwise included), via grouped conv."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import AnalogLayer
from .periphery import DAC
from .profiles import DeviceProfile

_EXACT_LIMIT = 2**24  # float32 holds every integer below it exactly


def _box_sum_exact(dac: DAC, c_t: int, h: int, w: int, layer: AnalogConv2d) -> bool:
    """Whether every running sum of :func:`_box_sum` over squared codes stays exact."""
    m = 1 if dac.bits == 1 else 2 ** (dac.bits - 1) - 1  # type: ignore[operator]
    (kh, _), (ph, pw) = layer.kernel_size, layer.padding
    longest = max(h + 2 * ph, (w + 2 * pw) * kh)
    return longest * c_t * m * m < _EXACT_LIMIT


def _box_sum(
    sq: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
) -> Tensor:
    """Sum of ``sq`` over every ``kernel`` window (a convolution with ones), by running sums."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    # one zero row above and one zero column left of the padded input: the running sums
    # start at zero, so every window's sum is one difference (no concatenation)
    c = F.pad(sq, (pw + 1, pw, ph + 1, ph)).cumsum(2)
    rows = c[:, :, kh:] - c[:, :, :-kh]
    if sh > 1:
        rows = rows[:, :, ::sh]
    c = rows.cumsum(3)
    out = c[..., kw:] - c[..., :-kw]
    return out[..., ::sw] if sw > 1 else out


class AnalogConv2d(AnalogLayer):
    """``nn.Conv2d`` (grouped and depthwise included) on crossbar tiles via im2col."""

    def __init__(self, module: nn.Conv2d, profile: DeviceProfile, layer_index: int) -> None:
        """Map ``module``'s im2col weight matrix; only zero padding is supported."""
        if module.padding_mode != "zeros":
            raise NotImplementedError(
                f"padding_mode={module.padding_mode!r} is not supported (only 'zeros')"
            )
        if isinstance(module.padding, str):
            raise NotImplementedError("string padding ('same'/'valid') is not supported yet")
        self.in_channels, self.out_channels = module.in_channels, module.out_channels
        self.kernel_size = tuple(module.kernel_size)
        self.stride, self.padding = tuple(module.stride), tuple(module.padding)
        self.dilation, self.groups = tuple(module.dilation), module.groups
        super().__init__(module.weight, module.bias, profile, module.groups, layer_index)

    def _geometry(self) -> tuple[int, int, int, int]:
        lay = self.layout
        in_g = self.in_channels // self.groups
        if not lay.aligned:
            return lay.groups, lay.row_tiles, in_g, 0
        c_t = lay.channels_per_row_tile if lay.row_tiles > 1 else in_g
        return lay.groups, lay.row_tiles, c_t, lay.row_tiles * c_t - in_g

    def _partial_weights(self, w: Tensor) -> Tensor:
        lay = self.layout
        if not lay.aligned:
            pad = lay.row_tiles * lay.row_span - lay.k
            w = F.pad(w, (0, pad)).view(lay.groups, lay.out_per_group, lay.row_tiles, lay.row_span)
            return w.transpose(1, 2).reshape(-1, lay.out_per_group, lay.row_span).contiguous()
        g, rt, c_t, pad = self._geometry()
        w = w.view(g, lay.out_per_group, -1, *self.kernel_size)
        if pad:
            w = F.pad(w, (0, 0, 0, 0, 0, pad))
        w = w.view(g, lay.out_per_group, rt, c_t, *self.kernel_size).transpose(1, 2)
        return w.reshape(g * rt * lay.out_per_group, c_t, *self.kernel_size).contiguous()

    def _conv(self, x: Tensor, w: Tensor, groups: int) -> Tensor:
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, groups)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve through the simulated tiles."""
        expected = f"(B, {self.in_channels}, H, W) or ({self.in_channels}, H, W)"
        x = self._as_input(x, expected)
        if x.dim() == 3:  # unbatched, as nn.Conv2d allows
            return self.forward(x.unsqueeze(0)).squeeze(0)
        return self._forward(x)

    def _out_dim(self, ndim: int) -> int:
        return 1

    def _linear_grads(
        self, x: Tensor, w_eff: Tensor, grad: Tensor, need_x: bool, need_w: bool
    ) -> tuple[Tensor | None, Tensor | None]:
        w = w_eff.view(self.weight_shape)
        args = (self.stride, self.padding, self.dilation, self.groups)
        gx = torch.nn.grad.conv2d_input(x.shape, w, grad, *args) if need_x else None
        gw = None
        if need_w:
            gw = torch.nn.grad.conv2d_weight(x, w.shape, grad, *args).reshape(w_eff.shape)
        return gx, gw

    @torch.no_grad()
    def _chip_forward(self, x: Tensor) -> Tensor:
        expected = f"(B, {self.in_channels}, H, W) or ({self.in_channels}, H, W)"
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"memsim layer {self._label()}: expected input of shape {expected}, "
                f"got {tuple(x.shape)}"
            )
        h_out, w_out = self._out_hw(x.shape[-2:])
        if h_out < 1 or w_out < 1:
            raise ValueError(
                f"memsim layer {self._label()}: input {tuple(x.shape)} is smaller than the "
                f"kernel {self.kernel_size} (padding {self.padding}, dilation {self.dilation})"
            )
        codes, bound, u, noise_scale = self._codes(x, (1, 2, 3))
        integer = self.dac.bits is not None and codes is not x
        if self.cost_probe is not None:
            self.cost_probe(self, codes)
        lay = self.layout
        b = x.shape[0]
        if lay.aligned:
            g, rt, c_t, pad = self._geometry()
            if pad:
                codes = F.pad(codes.view(b, g, -1, *x.shape[-2:]), (0, 0, 0, 0, 0, pad))
                codes = codes.view(b, g * rt * c_t, *x.shape[-2:])
            pc = self._conv(codes, self._w_part, g * rt).view(b, g * rt, lay.out_per_group, -1)
            sx2 = None
            if self._v_part is not None:
                sq = codes * codes
                sx2 = self._conv(sq, self._v_part, g * rt).view(b, g * rt, lay.out_per_group, -1)
            elif self._needs_sx2():
                sx2 = self._sum_sq(codes, g * rt, c_t, integer)
        else:
            pc, sx2 = self._unaligned_partials(codes)
        y = self._epilogue(pc, sx2, u, bound, noise_scale).view(b, lay.out, h_out, w_out)
        self._end_forward()
        if self.bias is not None:
            y.add_(self.bias.view(1, -1, 1, 1))
        return y

    def _sum_sq(self, codes: Tensor, n_groups: int, c_t: int, integer: bool = False) -> Tensor:
        """Sum of squared inputs over each MVM's receptive field: ``(B, G*T, 1, L)``.

        ``integer``: the codes are integers (a quantizing DAC, not passing through).
        """
        b, _, h, w = codes.shape
        if self.kernel_size == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0):
            # a fused norm reduction over each tile's channels, no x**2 tensor
            s = torch.linalg.vector_norm(codes.view(b, n_groups, c_t, h * w), dim=2).square_()
            return s.view(b, n_groups, 1, -1)
        sq = torch.mul(codes, codes, out=self._buf("sq", codes.shape, codes))
        if c_t > 1:
            sq = sq.view(b, n_groups, c_t, h, w).sum(2)
        few_maps = n_groups < 8 and self.stride == (1, 1)
        if (
            few_maps
            and integer
            and self.dilation == (1, 1)
            and _box_sum_exact(self.dac, c_t, h, w, self)
        ):
            # integer codes: every partial sum is exact, so a summed-area box filter gives
            # the convolution with ones bit for bit, at a fraction of its cost for a few
            # full-resolution maps (measured: 0.46 against 1.72 ms for LeNet-5's first
            # layer); for many maps (depthwise) or a stride the convolution is faster
            s = _box_sum(sq, self.kernel_size, self.stride, self.padding)
            return s.reshape(b, n_groups, 1, -1)
        ones = torch.ones(n_groups, 1, *self.kernel_size, dtype=sq.dtype, device=sq.device)
        s = self._conv(sq, ones, n_groups)
        return s.view(b, n_groups, 1, -1)

    def _unaligned_partials(self, codes: Tensor) -> tuple[Tensor, Tensor | None]:
        """im2col path for kernels larger than a tile's rows."""
        lay = self.layout
        b = codes.shape[0]
        g, rt, span = lay.groups, lay.row_tiles, lay.row_span
        cols = F.unfold(codes, self.kernel_size, self.dilation, self.padding, self.stride)
        n_loc = cols.shape[-1]
        cols = cols.view(b, g, lay.k, n_loc).permute(1, 2, 0, 3).reshape(g, lay.k, b * n_loc)
        xs = F.pad(cols, (0, 0, 0, rt * span - lay.k)).reshape(g * rt, span, b * n_loc)
        pc = torch.bmm(self._w_part, xs).view(g * rt, lay.out_per_group, b, n_loc)
        pc = pc.permute(2, 0, 1, 3).contiguous()
        sx2 = None
        if self._v_part is not None:
            sx2 = torch.bmm(self._v_part, xs * xs).view(g * rt, lay.out_per_group, b, n_loc)
            sx2 = sx2.permute(2, 0, 1, 3).contiguous()
        elif self._needs_sx2():
            sx2 = (xs * xs).sum(1).view(g * rt, 1, b, n_loc).permute(2, 0, 1, 3).contiguous()
        return pc, sx2

    def _out_hw(self, hw: tuple[int, ...]) -> tuple[int, int]:
        out = []
        for i in range(2):
            eff = self.dilation[i] * (self.kernel_size[i] - 1) + 1
            out.append((hw[i] + 2 * self.padding[i] - eff) // self.stride[i] + 1)
        return out[0], out[1]

    def extra_repr(self) -> str:
        """Show geometry and tiling."""
        lay = self.layout
        return (
            f"{self.in_channels}, {self.out_channels}, kernel={self.kernel_size}, "
            f"stride={self.stride}, groups={self.groups}, tiles={lay.n_tiles} "
            f"({lay.rows}x{lay.cols}), profile={self.profile.name}"
        )
