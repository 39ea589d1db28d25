"""IR drop of 1T1R crossbar tiles: an exact nodal solve and a fast line-decoupled model.

With ohmic devices and a linear access transistor, a tile is a linear resistive
network.  Word line ``i`` is a chain of ``N`` nodes, one per cell, with one wire
segment (``r_wire``) from its driver to the first cell and one between neighbouring
cells; bit line ``k`` is a chain of ``R`` nodes with one segment between neighbours
and one from the last cell to its sense amplifier, which holds the line at virtual
ground.  Cell ``(i, k)`` connects the two nodes through its device in series with its
access transistor, ``g = G / (1 + G r_access)``.  With the input voltages ``v`` on the
drivers, the sense-amplifier currents are ``I = T v`` with one transfer matrix ``T``
(``N x R``) per tile.  Both models here compute ``T`` once per programmed state; the
forward pass is then an ordinary MVM with ``T`` in place of ``G``.

Exact model
    Canonical orientation: driver at column 0, sense amplifiers below row ``R-1``.
    Eliminating each bit line's nodes (a tridiagonal chain whose inverse is
    semiseparable, built from two scalar recurrences) leaves the word-line nodes of
    bit line ``k`` coupled only to those of ``k-1`` and ``k+1`` through ``-1/r_wire``
    times the identity: a block-tridiagonal system with ``N`` blocks of size ``R``.
    Block elimination from the far end towards the drivers needs one ``R x R``
    Cholesky inverse per bit line, and by the symmetry of the nodal matrix the rows of
    ``T`` are the first block of the solution for right-hand sides that put the
    bit-line read-out vectors into their own blocks.  Cost per tile:
    ``N (R^3 + R^2 N)`` flops with the longer side sequenced (a tile with more rows
    than bit lines is solved transposed: reciprocity gives ``T`` as the transpose of
    the transfer matrix of the network with drivers and sense amplifiers swapped).
    It is a direct solve in float64; no tolerance is involved.

Fast model (line-decoupled)
    Each line is solved exactly, and each crossing line is assumed ideal except
    through its own cell: the bit line ``k`` seen from cell ``(i, k)`` is its exact
    chain with all other cells as loads to ground (other word lines held at their
    driver voltage), which gives the cell's effective load on its word line,
    ``g (1 - g Z_ii)``, and its share of the read-out current; word line ``i`` is then
    solved exactly with these loads.  ``T_fast[k, i] = g_ik alpha_ik beta_ik`` with
    ``alpha`` the word-line voltage profile and ``beta`` the bit-line read-out
    factor.  Cost ``O(R N)`` per tile.  What it misses is that the current a bit line
    pushes back into the other word lines raises their voltages along their wires; it
    breaks down when both ``r g N^2`` and ``r g R^2`` reach order one (see README).

All tiles of a layer are solved together (batched over the leading dimension) on the
tensors' device.  Python loops run only along one line (recurrences and block
elimination are sequential by nature), never over tiles or devices.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .profiles import DeviceProfile, IRDropModel, PairLayout, SenseSide, UnusedCells, WordLineDriver
from .tiling import TileLayout


def _chain_inverse_factors(d: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Semiseparable inverse of symmetric tridiagonal chains with off-diagonals -1.

    Args:
        d: Diagonals ``(..., L)`` (the chain runs along the last dimension).

    Returns:
        ``(a, b, det)`` with ``inv(A)[i, j] = a[min(i, j)] * b[max(i, j)] / det`` where
        ``a[i] = theta[i-1]`` and ``b[j] = phi[j+1]`` are the leading and trailing
        principal minors and ``det = theta[L-1]`` (``det`` keeps a trailing dim of 1).

    """
    n = d.shape[-1]
    a = torch.empty_like(d)
    b = torch.empty_like(d)
    a[..., 0] = 1.0
    prev2 = torch.ones_like(d[..., 0])
    prev = d[..., 0].clone()
    for i in range(1, n):  # theta_i = d_i theta_{i-1} - theta_{i-2}
        a[..., i] = prev
        prev, prev2 = d[..., i] * prev - prev2, prev
    det = prev.unsqueeze(-1)
    b[..., n - 1] = 1.0
    nxt2 = torch.ones_like(d[..., 0])
    nxt = d[..., n - 1].clone()
    for j in range(n - 2, -1, -1):  # phi_j = d_j phi_{j+1} - phi_{j+2}
        b[..., j] = nxt
        nxt, nxt2 = d[..., j] * nxt - nxt2, nxt
    return a, b, det


def _segments(n: int, closed_end: int, like: Tensor) -> Tensor:
    """Wire segments touching each node of an ``n``-node chain (driver/sense at ``closed_end``)."""
    seg = torch.full((n,), 2.0, dtype=like.dtype, device=like.device)
    open_end = n - 1 - closed_end
    if n == 1:
        seg[0] = 1.0
    else:
        seg[open_end] = 1.0
    return seg


def _bitline_factors(gh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Semiseparable factors of every bit line's chain ``(B, R, N)`` (sense below row R-1)."""
    r = gh.shape[-2]
    d = gh.transpose(-1, -2) + _segments(r, r - 1, gh)  # (B, N, R)
    return _chain_inverse_factors(d)


def _exact_canonical(gh: Tensor) -> Tensor:
    """Normalized transfer matrices ``(B, N, R)`` for normalized conductances ``(B, R, N)``."""
    bsz, r, n = gh.shape
    a, b, det = _bitline_factors(gh)  # (B, N, R), det (B, N, 1)
    ghc = gh.transpose(-1, -2)  # (B, N, R): column k is bit line k
    # read-out vector of bit line k: h = g o inv(B_k) e_last = g o a / det
    h = ghc * a / det  # (B, N, R)
    eye = torch.eye(r, dtype=gh.dtype, device=gh.device)
    tri = torch.ones(r, r, dtype=torch.bool, device=gh.device).triu()

    def schur(k: int) -> Tensor:
        # S_k = diag(g) - diag(g) inv(B_k) diag(g): the bit line eliminated
        ak, bk, gk = a[:, k], b[:, k], ghc[:, k]
        outer = torch.where(tri, ak.unsqueeze(-1) * bk.unsqueeze(-2), 0.0)
        inv_b = (outer + outer.transpose(-1, -2) - torch.diag_embed(ak * bk)) / det[:, k, :, None]
        return torch.diag_embed(gk) - gk.unsqueeze(-1) * inv_b * gk.unsqueeze(-2)

    y = torch.zeros(bsz, r, n, dtype=gh.dtype, device=gh.device)
    y[:, :, n - 1] = h[:, n - 1]
    e = schur(n - 1)
    for k in range(n - 2, -1, -1):
        f = torch.cholesky_inverse(torch.linalg.cholesky(eye + e))
        # (I + E)^-1 is within rounding of I; I - F keeps E accurate to ~1e-16 / |E|
        e = schur(k) + (eye - f)
        y[:, :, k + 1 :] = f @ y[:, :, k + 1 :]
        y[:, :, k] = h[:, k]
    z0 = torch.cholesky_solve(y, torch.linalg.cholesky(eye + e))  # (B, R, N)
    return z0.transpose(-1, -2)


def _fast_canonical(gh: Tensor) -> Tensor:
    """Line-decoupled normalized transfer matrices ``(B, N, R)``."""
    _, r, n = gh.shape
    a, b, det = _bitline_factors(gh)  # (B, N, R)
    ghc = gh.transpose(-1, -2)
    z_diag = a * b / det  # inv(B_k)[i, i]
    beta = a / det  # inv(B_k)[i, R-1]
    load = (ghc * (1.0 - ghc * z_diag)).transpose(-1, -2)  # (B, R, N)
    d_wl = load + _segments(n, 0, gh)
    _, b_wl, det_wl = _chain_inverse_factors(d_wl)  # word lines along N
    alpha = b_wl / det_wl  # inv(A_i)[0, k]: voltage profile for a unit driver voltage
    return ghc * beta * alpha.transpose(-1, -2)


def transfer_matrices(
    g_uS: Tensor,
    r_wire_ohm: float,
    model: IRDropModel | str = IRDropModel.exact,
    driver: WordLineDriver | str = WordLineDriver.left,
    sense: SenseSide | str = SenseSide.bottom,
) -> Tensor:
    """Transfer matrices of 1T1R tiles: sense-amplifier currents per driver voltage.

    Args:
        g_uS: Cell conductances ``(B, R, N)`` in µS (device in series with its access
            transistor), ``R`` word lines by ``N`` bit lines; ``g[:, i, k]`` is the cell
            on word line ``i`` and bit line ``k`` (physical order).
        r_wire_ohm: Wire resistance per cell segment (ohm), the same on both line kinds.
        model: ``exact`` (direct nodal solve) or ``fast`` (line-decoupled).
        driver: Side of the word-line drivers: ``left`` = next to bit line 0.
        sense: Side of the sense amplifiers: ``bottom`` = next to word line ``R-1``.

    Returns:
        ``T`` of shape ``(B, N, R)`` in µS, in the dtype of ``g_uS``; ``I = T v``.

    """
    if g_uS.dim() != 3:
        raise ValueError(f"g_uS must be (tiles, rows, bit lines), got shape {tuple(g_uS.shape)}")
    if r_wire_ohm < 0:
        raise ValueError(f"r_wire_ohm must be >= 0, got {r_wire_ohm}")
    if r_wire_ohm * 1e-6 < 1e-300:
        # ideal wires; below ~1e-294 ohm, G r_wire underflows float64 and the solve is 0/0
        return g_uS.transpose(-1, -2).clone()
    model, driver, sense = IRDropModel(model), WordLineDriver(driver), SenseSide(sense)
    scale = 1e-6 * r_wire_ohm  # µS -> conductance in units of 1 / r_wire
    gh = g_uS.to(torch.float64) * scale
    if driver == WordLineDriver.right:
        gh = gh.flip(-1)
    if sense == SenseSide.top:
        gh = gh.flip(-2)
    r, n = gh.shape[-2:]
    if model == IRDropModel.fast:
        t = _fast_canonical(gh)
    elif r <= n:
        t = _exact_canonical(gh)
    else:
        # reciprocity: drive the sense ends, read at the drivers (rotated to canonical)
        t = _exact_canonical(gh.transpose(-1, -2).flip(-1, -2)).transpose(-1, -2).flip(-1, -2)
    if not bool(torch.isfinite(t).all()):
        # the chain recurrences grow like exp(length * sqrt(r g)); float64 ends near e^709
        raise ValueError(
            f"ir_drop: the {model.value} solve overflowed for {r}x{n} tiles at r_wire_ohm="
            f"{r_wire_ohm} and conductances up to {float(g_uS.max()):.3g} uS; use smaller "
            "tiles or a smaller r_wire_ohm"
        )
    if driver == WordLineDriver.right:
        t = t.flip(-2)
    if sense == SenseSide.top:
        t = t.flip(-1)
    return (t / scale).to(g_uS.dtype)


def tile_cells(g: Tensor, layout: TileLayout, profile: DeviceProfile) -> Tensor:
    """Physical cell conductances (µS, access transistor included) of a layer's tiles.

    Args:
        g: Device conductances ``(2, out, K)`` (G+, G-) in µS.
        layout: The layer's tile layout.
        profile: Device profile (``ir_drop`` geometry, ``device.g_min_uS``).

    Returns:
        ``(n_tiles, rows, 2 cols)`` with G+ and G- on adjacent bit lines for the
        ``interleaved`` layout, or ``(2 n_tiles, rows, cols)`` (the G+ arrays, then the
        G- arrays) for ``separate``.  Unused cells hold ``g_min`` or no device.

    """
    ir = profile.ir_drop
    used = layout.to_tiles(torch.ones_like(g[0])) > 0
    fill = profile.device.g_min_uS if ir.unused_cells == UnusedCells.g_min else 0.0
    tiles = torch.stack([layout.to_tiles(g[0]), layout.to_tiles(g[1])])
    tiles = torch.where(used, tiles, torch.full_like(tiles, fill))
    tiles = tiles / (1.0 + tiles * (1e-6 * ir.r_access_ohm))
    if ir.pair_layout == PairLayout.interleaved:
        n, r, c = tiles.shape[1:]
        return tiles.permute(1, 2, 3, 0).reshape(n, r, 2 * c)
    return tiles.reshape(-1, *tiles.shape[2:])


def differential_transfer(g: Tensor, layout: TileLayout, profile: DeviceProfile) -> Tensor:
    """Differential transfer matrices ``T+ - T-`` per tile, ``(n_tiles, cols, rows)`` µS."""
    ir = profile.ir_drop
    cells = tile_cells(g, layout, profile)
    t = transfer_matrices(cells, ir.r_wire_ohm, ir.model, ir.word_line_driver, ir.sense_amp)
    if ir.pair_layout == PairLayout.interleaved:
        n, two_c, r = t.shape
        t = t.view(n, two_c // 2, 2, r)
        return t[:, :, 0] - t[:, :, 1]
    n = layout.n_tiles
    return t[:n] - t[n:]


def normalized_weights(g: Tensor, layout: TileLayout, profile: DeviceProfile) -> Tensor:
    """Normalized weights ``(out, K)`` the tiles compute with IR drop.

    Each logical weight becomes the entry of its tile's differential transfer matrix
    from its row's driver to its column's sense amplifiers, divided by the window
    ``g_max - g_min``.  Without wire and access resistance this is
    ``(G+ - G-) / (g_max - g_min)``.  Entries between different blocks of a tile that
    packs several groups (inputs of one group reaching outputs of another through the
    shared lines) are not part of any logical weight and are dropped.
    """
    t = differential_transfer(g, layout, profile)  # (n_tiles, cols, rows)
    return layout.from_tiles(t.transpose(1, 2)) / profile.g_range_uS


def deviation_share(i_model: Tensor, i_exact: Tensor, i_ideal: Tensor) -> float:
    """Share of the exact model's wire-induced deviation that a model reproduces.

    ``1 - ||I_model - I_exact|| / ||I_exact - I_ideal||`` (Frobenius norms over all
    outputs and inputs), with ``I_ideal`` the outputs without wire resistance (access
    resistance kept).  1 is a perfect model; the ideal MVM scores 0; a model that
    over-corrects by more than the deviation itself scores below 0.
    """
    dev = (i_exact - i_ideal).double().norm()
    if dev == 0:
        raise ValueError("the exact and ideal outputs are equal: no wire-induced deviation")
    return float(1.0 - (i_model - i_exact).double().norm() / dev)
