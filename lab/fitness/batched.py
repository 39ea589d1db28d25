"""Batched QAT fine-tune of a whole population: one vmapped forward/backward for P members.

:class:`lab.fitness.chip.ChipFitness` fine-tunes every member for ``k`` steps before it
programs the chip.  Serially that is ``P * k`` small forward/backward passes.  Here the
``P`` members' gene weights are stacked into ``(P, *shape)`` tensors and one step of all
members is one ``torch.func.vmap`` of ``torch.func.functional_call`` (conv layers become a
grouped convolution over the population, linear layers batched matmuls), one backward
through the summed member losses (members are independent, so the gradient of the sum
w.r.t. member ``i``'s weights is member ``i``'s own gradient), and one
``torch.optim.Adam`` step on the stacked tensors (Adam is elementwise, so that is exactly
``P`` independent Adams).

The batched path computes what the serial path computes, draw for draw:

* **Noise and data.**  Every member keeps its own ``torch.Generator`` seeded with its
  fine-tune seed, and its batches and QAT noise are drawn from it *outside* ``vmap``, in
  the serial order (per step: the batch, then one ``randn`` per crossbar weight in
  ``named_modules`` order).  Members therefore get distinct noise and data, and the same
  noise and data as in :meth:`lab.fitness.chip.ChipFitness._finetune`.
* **Quantization.**  ``q(w)`` of the straight-through fake-quant is computed per member
  with :func:`memsim.quantization.quantize_weight` (vmapped for k-bit, looped for
  ternary, whose threshold mask has a data-dependent size).
* **BatchNorm.**  The serial fine-tune runs in train mode, so BatchNorm normalizes with
  each batch's own statistics; the running statistics it updates on its scratch copy are
  never read (the copy is reset to the baseline before the next member, the chip keeps
  the baseline's BN, and only the gene weights are returned).  The batched copy has its
  running statistics removed (``torch.func.replace_all_batch_norm_modules_``), so it
  normalizes with each member's batch statistics and tracks nothing: the same numbers,
  with no in-place buffer update of a shared buffer under ``vmap``.  With
  ``fitness.finetune_mode = "eval"`` both paths run in eval mode and normalize with the
  baseline's running statistics.
* **Dropout.**  The serial fine-tune's ``nn.Dropout`` draws its masks from the global
  torch RNG, member after member.  The batched copy replaces every ``nn.Dropout`` by a
  module that multiplies by a supplied mask, and the masks are drawn from the global RNG
  before the fine-tune in the serial order (member-major, then step, then call order), by
  the same ``F.dropout`` call on a tensor of ones, so they are the same masks.  Other
  random layers (``Dropout2d``, ``AlphaDropout``, ``RReLU``, ...) are not supported: such a
  model reports itself unsupported and is evaluated serially.

Results match the serial path up to float rounding (the grouped convolution sums in a
different order), not bit for bit.  On a small network that means equal tuned genes to
~1e-7 and equal accuracies; on a deep BatchNorm network trained at 2 bits the rounding
differences (of the size of float32's own error there) can flip an Adam step of a
near-zero gradient or a quantization level, so the two paths then give statistically
equivalent, not equal, fitness values.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, replace_all_batch_norm_modules_, vmap
from torch.utils._pytree import tree_flatten, tree_unflatten

from ga.genome import Genome
from lab.fitness.config import EvaluationMode
from memsim.quantization import TERNARY, quantize_weight
from models.quant import CROSSBAR_LAYERS, LossFn

BatchFn = Callable[[torch.Generator], Any]
"""``draw_batch(generator) -> batch``: one fine-tune batch drawn from a member's stream."""

# random layers whose randomness the batched path cannot reproduce (nn.Dropout can)
_UNSUPPORTED_RANDOM = (
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.RReLU,
)


AUTO_EVALUATION: dict[str, EvaluationMode] = {
    "ProtoNet": EvaluationMode.SERIAL,
    "MobileNetV2CIFAR": EvaluationMode.SERIAL,
}
"""``evaluation="auto"``: the measured faster fine-tune per model class (``bench/ga_speed.py``).

Today every measured class is faster serially, so ``auto`` never picks the batched path
for a shipped network; a class is listed here with ``BATCHED`` only after ``bench/ga_speed.py``
shows it faster, and classes not listed run serially.

Measured on CPU (1 thread, population 10, quick scale), the batched fine-tune takes 2 to
2.5 times as long as the loop for both ProtoNet-MNIST and MobileNetV2-CIFAR.  The steps
are compute-bound, so batching saves only per-op overhead, while the population-grouped
convolutions that ``vmap`` produces (groups = P x groups) run at a fraction of the speed
of P ungrouped ones in oneDNN, and ``vmap``'s BatchNorm and in-place-activation rules add
copies.  Classes not listed run serially (the path every model supports).  This is a
fixed table rather than a timing probe at run time, so that a run and its resume always
take the same path (the two agree only to float rounding).
"""


def auto_evaluation(model: nn.Module) -> EvaluationMode:
    """Return the mode ``evaluation="auto"`` picks for ``model`` (from :data:`AUTO_EVALUATION`)."""
    return AUTO_EVALUATION.get(type(model).__name__, EvaluationMode.SERIAL)


class UnsupportedModelError(RuntimeError):
    """The model or its fine-tune loss cannot be evaluated batched (use the serial path)."""


class PresampledDropout(nn.Module):
    """``nn.Dropout`` stand-in that multiplies by a mask supplied as its ``mask`` buffer.

    The mask (already scaled by ``1 / (1 - p)``) is passed per call through
    ``functional_call``, so every member of a vmapped population gets its own.

    Args:
        p: Drop probability of the replaced module (kept for ``repr``).

    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.register_buffer("mask", torch.ones(()), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x * mask``."""
        return x * self.mask

    def extra_repr(self) -> str:
        """Show ``p``."""
        return f"p={self.p}"


def _stack_batches(batches: Sequence[Any]) -> tuple[list[Any], list[int | None], Any]:
    """Stack the members' batches leaf by leaf; leaves equal for all members stay shared.

    Sharing equal leaves is not only cheaper: a loss may read a Python number from them
    (the prototypical loss takes ``n_way`` from its episode targets, which are the same
    for every episode), which ``vmap`` refuses on a batched tensor.
    """
    flat = [tree_flatten(b) for b in batches]
    spec = flat[0][1]
    if any(s != spec for _, s in flat[1:]):
        raise UnsupportedModelError("members' fine-tune batches differ in structure")
    leaves: list[Any] = []
    dims: list[int | None] = []
    for i, first in enumerate(flat[0][0]):
        column = [f[0][i] for f in flat]
        if isinstance(first, Tensor):
            if all(c.shape == first.shape and torch.equal(c, first) for c in column[1:]):
                leaves.append(first)
                dims.append(None)
            else:
                leaves.append(torch.stack(column))
                dims.append(0)
        else:
            if any(c != first for c in column[1:]):
                raise UnsupportedModelError("non-tensor batch entries differ between members")
            leaves.append(first)
            dims.append(None)
    return leaves, dims, spec


class BatchedFinetuner:
    """The QAT fine-tune of :class:`lab.fitness.chip.ChipFitness` for a whole population at once.

    Construction makes a private functional copy of ``model`` and runs a probe (one
    vmapped step of two baseline copies on a batch from a throw-away generator; no
    member stream and no global RNG is touched), which raises
    :class:`UnsupportedModelError` if the model or loss cannot be vmapped.

    Attributes:
        genome: Gene layout (the trained weights).
        dropout_calls: ``(module name, input shape)`` of every dropout call of one step,
            in call order (empty without dropout).

    """

    def __init__(
        self,
        model: nn.Module,
        genome: Genome,
        loss_fn: LossFn,
        draw_batch: BatchFn,
        *,
        bits: int | None,
        sigma: float,
        train_mode: bool = True,
    ) -> None:
        """Build the functional copy and probe it.

        Args:
            model: Baseline digital model (not modified); its non-gene parameters and
                buffers are the ones every member shares.
            genome: Gene layout of ``model``.
            loss_fn: ``loss_fn(forward, batch) -> scalar`` of the fine-tune.
            draw_batch: ``draw_batch(generator) -> batch`` (must draw only from it).
            bits: Fake-quant bit width (``TERNARY`` = 0, ``None`` = none).
            sigma: Relative QAT weight noise.
            train_mode: As in :func:`lab.fitness.finetune.qat_tune`; ``False`` keeps the baseline's
                running BatchNorm statistics and turns dropout off.

        Raises:
            UnsupportedModelError: A random layer other than ``nn.Dropout``, a dropout
                module called more than once per step, or a loss/model ``vmap`` rejects.

        """
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        for name, m in model.named_modules():
            if isinstance(m, _UNSUPPORTED_RANDOM):
                raise UnsupportedModelError(
                    f"{name or 'model'} ({type(m).__name__}) draws random numbers the "
                    "batched fine-tune cannot reproduce"
                )
        self.genome = genome
        self.loss_fn = loss_fn
        self.draw_batch = draw_batch
        self.bits = bits
        self.sigma = sigma
        net = copy.deepcopy(model)
        self._dropout_p: dict[str, float] = {}
        if train_mode:
            for name, m in list(net.named_modules()):
                if type(m) is nn.Dropout:
                    net.set_submodule(name, PresampledDropout(m.p))
                    self._dropout_p[f"{name}.mask"] = float(m.p)
            # batch statistics without running-stat updates (see the module docstring)
            replace_all_batch_norm_modules_(net)
        # eval mode reads the running statistics and updates nothing, as the serial path does
        net.train(train_mode)
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net

        gene_keys = set(genome.keys)
        self.perturbed = [
            f"{n}.weight" if n else "weight"
            for n, m in net.named_modules()
            if isinstance(m, CROSSBAR_LAYERS)
        ]
        state = dict(net.named_parameters())
        state.update(dict(net.named_buffers()))
        missing = gene_keys - set(state)
        if missing:
            raise KeyError(f"genome keys not in the model: {sorted(missing)}")
        self.consts = {
            k: v.detach()
            for k, v in state.items()
            if k not in gene_keys and k not in self._dropout_p
        }
        # quantized crossbar weights that are not genes are the same for every member
        self._const_q = {
            k: quantize_weight(self.consts[k], bits) if bits is not None else self.consts[k]
            for k in self.perturbed
            if k not in gene_keys
        }
        # the serial path copies genes into the model's parameters, i.e. into their dtype
        self._gene_dtype = {k: state[k].dtype for k in genome.keys}
        # shape and dtype of every QAT noise draw, in models.quant's draw order
        self._noise_like = {
            k: (tuple(state[k].shape), state[k].dtype) for k in self.perturbed if sigma > 0
        }
        self.dropout_calls: list[tuple[str, tuple[int, ...]]] = []
        self._dropout_dtype: dict[str, torch.dtype] = {}
        self._probe()

    # ---------------------------------------------------------------- pieces

    def _member_loss(
        self,
        weights: dict[str, Tensor],
        quant: dict[str, Tensor],
        eps: dict[str, Tensor],
        masks: dict[str, Tensor],
        leaves: list[Any],
        spec: Any,
    ) -> Tensor:
        """One member's loss; written for one member, run under ``vmap`` for all."""
        params: dict[str, Tensor] = dict(self.consts)
        for key, w in weights.items():
            params[key] = w
        for key in self.perturbed:
            q = quant[key]
            if key in weights:
                w = weights[key]
                # models.quant.fake_quant: value q(w), gradient 1 (straight through)
                q = q + (w - w.detach())
            # memsim.quantization.multiplicative_noise, with the member's pre-drawn eps
            params[key] = q * (1.0 + self.sigma * eps[key]) if key in eps else q
        params.update(masks)

        def forward(x: Tensor) -> Tensor:
            return functional_call(self.net, params, (x,))

        return self.loss_fn(forward, tree_unflatten(leaves, spec))

    def _quantize(self, weights: dict[str, Tensor]) -> dict[str, Tensor]:
        """``q(w)`` of every perturbed weight, per member, without gradient."""
        out = dict(self._const_q)
        with torch.no_grad():
            for key in self.perturbed:
                if key not in weights:
                    continue
                w = weights[key].detach()
                if self.bits is None:
                    out[key] = w
                elif self.bits == TERNARY:
                    # the ternary scale averages a data-dependent subset: no vmap rule
                    out[key] = torch.stack([quantize_weight(m, TERNARY) for m in w])
                else:
                    out[key] = vmap(quantize_weight, in_dims=(0, None))(w, self.bits)
        return out

    def _draw_noise(self, gens: Sequence[torch.Generator]) -> dict[str, Tensor]:
        """Stacked QAT noise; per generator the draws follow ``models.quant`` order."""
        if self.sigma == 0:
            return {}  # multiplicative_noise draws nothing at sigma 0
        return {
            key: torch.stack([torch.randn(shape, generator=g, dtype=dtype) for g in gens])
            for key, (shape, dtype) in self._noise_like.items()
        }

    def _draw_masks(self, members: int, steps: int) -> list[dict[str, Tensor]]:
        """Dropout masks of every member and step from the global RNG, in serial order."""
        if not self.dropout_calls:
            return [{} for _ in range(steps)]
        drawn = [[{} for _ in range(steps)] for _ in range(members)]
        for i in range(members):
            for s in range(steps):
                for key, shape in self.dropout_calls:
                    # F.dropout on ones returns its scaled mask and draws exactly what
                    # the serial nn.Dropout draws for an input of that shape
                    ones = torch.ones(shape, dtype=self._dropout_dtype[key])
                    drawn[i][s][key] = F.dropout(ones, self._dropout_p[key], training=True)
        return [
            {
                key: torch.stack([drawn[i][s][key] for i in range(members)])
                for key, _ in self.dropout_calls
            }
            for s in range(steps)
        ]

    def _step_losses(
        self,
        weights: dict[str, Tensor],
        eps: dict[str, Tensor],
        masks: dict[str, Tensor],
        batches: Sequence[Any],
    ) -> Tensor:
        leaves, dims, spec = _stack_batches(batches)
        quant = self._quantize(weights)
        q_dims = {k: (0 if k in weights else None) for k in quant}
        fn = vmap(
            functools.partial(self._member_loss, spec=spec),
            in_dims=(0, q_dims, 0, 0, dims),
            # every random draw happens outside; a random op inside is a bug
            randomness="error",
        )
        return fn(weights, quant, eps, masks, leaves)

    def _probe(self) -> None:
        """Record dropout calls and check that one vmapped step of 2 members runs."""
        # two different batches, so that anything that differs between members' batches
        # is batched in the probe as it will be in the fine-tune
        batch, other = (self.draw_batch(torch.Generator().manual_seed(s)) for s in (0, 1))
        calls: list[tuple[str, tuple[int, ...]]] = []
        hooks = []
        for name, m in self.net.named_modules():
            if isinstance(m, PresampledDropout):

                def hook(
                    _m: nn.Module, args: tuple[Tensor, ...], key: str = f"{name}.mask"
                ) -> None:
                    calls.append((key, tuple(args[0].shape)))
                    self._dropout_dtype[key] = args[0].dtype

                hooks.append(m.register_forward_pre_hook(hook))
        base = {
            s.key: self.net.get_parameter(s.key)
            .detach()
            .unsqueeze(0)
            .repeat(2, *[1] * len(s.shape))
            for s in self.genome.slices
        }
        try:
            with torch.no_grad():
                leaves, _, spec = _stack_batches([batch])
                quant = {k: v[0] for k, v in self._quantize(base).items()}
                single = {k: v[0] for k, v in base.items()}
                self._member_loss(single, quant, {}, {}, leaves, spec)
        except UnsupportedModelError:
            raise
        except Exception as exc:  # any failure means "not batchable"
            raise UnsupportedModelError(f"fine-tune forward failed on the probe: {exc}") from exc
        finally:
            for h in hooks:
                h.remove()
        keys = [k for k, _ in calls]
        if len(set(keys)) != len(keys):
            raise UnsupportedModelError(
                "a dropout module runs more than once per fine-tune step; the batched "
                "path supplies one mask per module and step"
            )
        self.dropout_calls = calls
        weights = {k: v.clone().requires_grad_(True) for k, v in base.items()}
        eps = {k: torch.zeros(2, *shape, dtype=dt) for k, (shape, dt) in self._noise_like.items()}
        masks = {k: torch.ones(2, *shape, dtype=self._dropout_dtype[k]) for k, shape in calls}
        try:
            self._step_losses(weights, eps, masks, [batch, other]).sum().backward()
        except Exception as exc:  # any failure means "not batchable"
            raise UnsupportedModelError(f"the fine-tune loss cannot be vmapped: {exc}") from exc

    # ---------------------------------------------------------------- public

    def finetune(
        self, population: Tensor, seeds: Sequence[int], *, steps: int, lr: float
    ) -> Tensor:
        """Fine-tune every member; member ``i`` draws its batches and noise from ``seeds[i]``.

        Args:
            population: ``(P, n_genes)`` gene vectors (not modified).
            seeds: ``P`` fine-tune seeds (``ChipFitness``'s ``seeds[i][0]``).
            steps: QAT steps (Adam) per member.
            lr: Adam learning rate.

        Returns:
            The tuned genes ``(P, n_genes)`` in ``population``'s dtype.  If the model
            has ``nn.Dropout``, ``P * steps`` masks are drawn from the global torch RNG,
            as the serial path draws them.

        """
        p = population.shape[0]
        if len(seeds) != p:
            raise ValueError(f"{len(seeds)} seeds for {p} members")
        if steps == 0:
            return population.clone()
        weights = {
            s.key: population[:, s.start : s.stop]
            .reshape(p, *s.shape)
            .to(self._gene_dtype[s.key])
            .clone()
            .requires_grad_(True)
            for s in self.genome.slices
        }
        opt = torch.optim.Adam(list(weights.values()), lr=lr)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        masks = self._draw_masks(p, steps)
        for step in range(steps):
            batches = [self.draw_batch(g) for g in gens]
            eps = self._draw_noise(gens)
            losses = self._step_losses(weights, eps, masks[step], batches)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
        tuned = torch.cat([weights[k].detach().reshape(p, -1) for k in self.genome.keys], dim=1)
        return tuned.to(population.dtype)
