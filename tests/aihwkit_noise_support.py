"""A user's own aihwkit noise model, importable by dotted path from a memsim profile."""

from __future__ import annotations

from aihwkit.inference import BaseNoiseModel
from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
from torch import Tensor, full_like, randn_like


class ConstantNoiseModel(BaseNoiseModel):
    """Constant programming std, a fixed linear decay rate and no read noise.

    Works in normalized conductance units (g_max = 1), so a memsim profile in µS needs
    ``conductance_map = linear``.
    """

    def __init__(self, sigma: float = 0.01, rate_per_s: float = 1e-6, g_max: float = 1.0):
        """Keep the parameters."""
        super().__init__(SinglePairConductanceConverter(g_max=g_max))
        self.g_max = g_max
        self.sigma = sigma
        self.rate_per_s = rate_per_s

    def apply_programming_noise_to_conductance(self, g_target: Tensor) -> Tensor:
        """Target plus N(0, sigma)."""
        return g_target + self.sigma * randn_like(g_target)

    def generate_drift_coefficients(self, g_target: Tensor) -> Tensor:
        """One decay rate for every device."""
        return full_like(g_target, self.rate_per_s)

    def apply_drift_noise_to_conductance(
        self, g_prog: Tensor, drift_noise_param: Tensor, t_inference: float
    ) -> Tensor:
        """``G (1 - rate t)``, deterministic."""
        return g_prog * (1.0 - drift_noise_param * t_inference)


class NotANoiseModel:
    """Not a BaseNoiseModel subclass (a profile naming it is refused)."""
