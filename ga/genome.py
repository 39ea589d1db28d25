"""The genome: a flat vector of every analog layer's target weights.

A solution is the concatenation, in ``model.named_modules()`` order, of the
flattened ``weight`` of every ``nn.Conv2d`` / ``nn.Linear`` (the layers that are
mapped to crossbars).  Biases and BatchNorm parameters are not genes: they stay
digital and keep the baseline values.  The layout (state-dict key -> slice,
shape) is explicit, so ``unflatten(flatten(state))`` is exact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn

DEFAULT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
"""Module types whose ``weight`` is a gene block (the analog layers)."""


@dataclass(frozen=True)
class GeneSlice:
    """Where one layer's weights live in the flat genome.

    Attributes:
        key: State-dict key, ``"<module>.weight"``.
        start: First gene index.
        stop: One past the last gene index.
        shape: Shape of the weight tensor.

    """

    key: str
    start: int
    stop: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of genes of the layer."""
        return self.stop - self.start


class Genome:
    """Reversible mapping between a model's analog weights and a flat gene vector."""

    def __init__(self, layers: Iterable[tuple[str, tuple[int, ...]]]) -> None:
        """Build the layout from ``(state-dict key, weight shape)`` pairs, in gene order.

        Args:
            layers: The gene blocks; keys must be unique.

        Raises:
            ValueError: On duplicate keys or an empty layout.

        """
        slices: list[GeneSlice] = []
        start = 0
        for key, shape in layers:
            size = 1
            for d in shape:
                size *= int(d)
            slices.append(GeneSlice(key, start, start + size, tuple(int(d) for d in shape)))
            start += size
        if not slices:
            raise ValueError("a genome needs at least one layer")
        keys = [s.key for s in slices]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate layer keys in genome: {keys}")
        self.slices: tuple[GeneSlice, ...] = tuple(slices)
        self.n_genes: int = start

    @classmethod
    def from_model(
        cls, model: nn.Module, layer_types: tuple[type[nn.Module], ...] = DEFAULT_LAYER_TYPES
    ) -> Genome:
        """Return the genome of every ``layer_types`` module's ``weight`` in ``model``.

        Raises:
            ValueError: ``model`` has no such layer, or holds an ``nn.MultiheadAttention``
                (its packed ``in_proj_weight`` is no layer's ``weight``, so the query, key
                and value weights would silently be left out): rebuild it first with
                ``memsim.transformer.restructure``, which splits them into ``nn.Linear``
                modules as the chip holds them.

        """
        packed = [n for n, m in model.named_modules() if type(m) is nn.MultiheadAttention]
        if packed:
            raise ValueError(
                f"model holds nn.MultiheadAttention ({', '.join(packed[:3])}"
                f"{', ...' if len(packed) > 3 else ''}): its q/k/v weights are packed in "
                "in_proj_weight, not a layer's weight; rebuild the model with "
                "memsim.transformer.restructure(model) first"
            )
        layers = []
        for name, m in model.named_modules():
            w = getattr(m, "weight", None)
            if isinstance(m, layer_types) and isinstance(w, Tensor):
                layers.append((f"{name}.weight" if name else "weight", tuple(w.shape)))
        if not layers:
            raise ValueError(f"model has no {[t.__name__ for t in layer_types]} layers")
        return cls(layers)

    @classmethod
    def flat(cls, n_genes: int, key: str = "weight") -> Genome:
        """Return a one-layer genome of ``n_genes`` genes (for non-network problems)."""
        return cls([(key, (n_genes,))])

    def __len__(self) -> int:
        return self.n_genes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Genome) and self.slices == other.slices

    def __hash__(self) -> int:
        return hash(self.slices)

    def __repr__(self) -> str:
        return f"Genome(n_genes={self.n_genes}, layers={[s.key for s in self.slices]})"

    @property
    def keys(self) -> list[str]:
        """State-dict keys of the gene blocks, in gene order."""
        return [s.key for s in self.slices]

    @cached_property
    def layer_sizes(self) -> Tensor:
        """Genes per layer, shape ``(L,)`` (int64)."""
        return torch.tensor([s.size for s in self.slices], dtype=torch.int64)

    @cached_property
    def layer_index(self) -> Tensor:
        """Layer number of every gene, shape ``(n_genes,)`` (int64), computed once."""
        return torch.repeat_interleave(torch.arange(len(self.slices)), self.layer_sizes)

    def fingerprint(self) -> str:
        """Return a short hash of the layout (keys and shapes)."""
        blob = json.dumps([[s.key, list(s.shape)] for s in self.slices])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def flatten(self, state: Mapping[str, Tensor]) -> Tensor:
        """Concatenate the gene blocks of ``state`` (a state dict or ``unflatten`` output).

        Args:
            state: Mapping holding at least every key of the genome.

        Returns:
            A new 1-D tensor of ``n_genes`` genes (dtype of the tensors, detached).

        Raises:
            KeyError: If a key is missing; ValueError on a shape mismatch.

        """
        parts = []
        for s in self.slices:
            if s.key not in state:
                raise KeyError(f"state has no {s.key!r}")
            t = state[s.key]
            if tuple(t.shape) != s.shape:
                raise ValueError(f"{s.key}: shape {tuple(t.shape)} != genome shape {s.shape}")
            parts.append(t.detach().reshape(-1))
        return torch.cat(parts)

    def unflatten(self, vec: Tensor) -> dict[str, Tensor]:
        """Split a gene vector into ``{"<module>.weight": tensor}`` (views of ``vec``).

        Args:
            vec: Shape ``(n_genes,)``.

        Returns:
            Dict keyed like the model's state dict; the tensors are views, clone
            them before modifying ``vec`` if they must stay unchanged.

        """
        if vec.dim() != 1 or vec.numel() != self.n_genes:
            raise ValueError(f"expected a vector of {self.n_genes} genes, got {tuple(vec.shape)}")
        return {s.key: vec[s.start : s.stop].view(s.shape) for s in self.slices}

    def from_module(self, model: nn.Module) -> Tensor:
        """Return the gene vector of ``model``'s current weights."""
        return self.flatten(model.state_dict())

    @torch.no_grad()
    def load_into(self, model: nn.Module, vec: Tensor) -> None:
        """Copy a gene vector into ``model``'s weights in place (other parameters untouched)."""
        params: dict[str, Tensor] = dict(model.named_parameters())
        params.update(dict(model.named_buffers()))
        for key, value in self.unflatten(vec).items():
            params[key].copy_(value)

    def layer_reduce(self, values: Tensor, reduce: str) -> Tensor:
        """Reduce genes per layer without a Python loop over genes.

        Args:
            values: ``(..., n_genes)``; leading dims are reduced too (e.g. a
                population's min over members and genes of each layer).
            reduce: ``"amin"``, ``"amax"``, ``"sum"`` or ``"mean"``.

        Returns:
            Shape ``(L,)``.

        """
        flat = values.reshape(-1, self.n_genes)
        index = self.layer_index.expand_as(flat).reshape(-1)
        fill = {"amin": float("inf"), "amax": float("-inf")}.get(reduce, 0.0)
        out = torch.full((len(self.slices),), fill, dtype=values.dtype)
        return out.scatter_reduce(0, index, flat.reshape(-1), reduce=reduce, include_self=False)

    def layer_ranges(self, values: Tensor) -> tuple[Tensor, Tensor]:
        """Per-layer ``(min, max)`` of ``values`` (``(..., n_genes)``), each shape ``(L,)``."""
        return self.layer_reduce(values, "amin"), self.layer_reduce(values, "amax")

    def expand(self, per_layer: Tensor) -> Tensor:
        """Broadcast one value per layer (``(L,)``) to one value per gene (``(n_genes,)``)."""
        return per_layer[self.layer_index]
