"""Run a memsim device profile through IBM's aihwkit (the ``aihwkit`` extra).

:func:`translate` turns a :class:`~memsim.profiles.DeviceProfile` into an aihwkit
``InferenceRPUConfig`` and lists, knob by knob, what was translated exactly, what only
approximately and what not at all (nothing is dropped silently).  :func:`convert` maps a
trained PyTorch model with ``aihwkit.nn.conversion.convert_to_analog`` and reports, layer by
layer, where each layer ended up: grouped and depthwise convolutions stay digital on the
aihwkit side ("Only one group is supported").  :meth:`Deployment.program` and
:meth:`Deployment.drift` call aihwkit's ``program_analog_weights()`` and
``drift_analog_weights(t)`` under a seeded torch RNG.

Translation (memsim field -> aihwkit):

* ``tile.rows`` / ``tile.cols`` -> ``mapping.max_input_size`` / ``max_output_size``.
* ``mapping.weight_scaling`` -> ``mapping.weight_scaling_omega = 1`` (per tile) and
  ``weight_scaling_columnwise`` (per column); aihwkit has no scale shared across tiles.
* ``dac.bits`` -> ``forward.inp_res = 1 / (2**b - 2)`` (the same ``2**b - 1`` levels);
  ``dac.mode`` fixed -> ``noise_management = NONE`` (bound 1) or ``CONSTANT`` with
  ``nm_thres = bound``; dynamic -> ``ABS_MAX``; calibrated -> ``CONSTANT`` with the layer's
  calibrated range when one is given.  ``inp_bound = 1`` always (memsim normalizes first).
* ``adc.bits`` / ``adc.bound`` -> ``forward.out_res = 1 / (2**b - 2)`` / ``out_bound``.
* ``output_noise.sigma`` -> ``forward.out_noise``; ``read_noise`` (Gaussian, per device and
  per MVM) -> ``forward.w_noise = sqrt(2) sigma`` with ``ADDITIVE_CONSTANT`` (output-referred,
  drawn per MVM in aihwkit 1.1.0; the two devices of a pair give the ``sqrt(2)``).
* ``programming_noise`` + ``drift`` -> ``PCMLikeNoiseModel`` (pcm_joshi2020 drift, any
  polynomial / Gaussian / proportional programming noise, which are all polynomials in
  ``G / g_max``), ``ReRamWan2022NoiseModel`` (the Wan 2022 coefficients without drift),
  ``CustomDriftPCMLikeNoiseModel`` (power-law drift, approximated).
* ``drift.compensation = global`` -> ``GlobalDriftCompensation``.
* ``bound_management = NONE`` (memsim has none), ``out_noise`` and every other aihwkit forward
  non-ideality that memsim does not model are set to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import laws
from ..periphery import ADC, APPROXIMATED, DAC, NOT_TRANSLATED, TRANSLATED, Knob
from ..profiles import (
    DeviceProfile,
    DriftCompensation,
    WeightQuant,
    WeightScaling,
    load_profile,
)

try:
    import aihwkit  # noqa: F401  (import check only)
    from aihwkit.inference.compensation.drift import GlobalDriftCompensation
    from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
    from aihwkit.inference.noise.base import BaseNoiseModel
    from aihwkit.inference.noise.reram import ReRamWan2022NoiseModel
    from aihwkit.simulator.configs import InferenceRPUConfig
    from aihwkit.simulator.parameters.enums import (
        BoundManagementType,
        WeightNoiseType,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "memsim.backends.aihwkit needs IBM aihwkit: pip install 'memsim[aihwkit]' "
        f"(import failed: {exc})"
    ) from exc

__all__ = [
    "NOT_EXPRESSED",
    "WAN2022_COEFFS_1S",
    "Deployment",
    "Knob",
    "LayerMapping",
    "Translation",
    "aligned_profile",
    "convert",
    "drift_weights",
    "md_cell",
    "program_weights",
    "translate",
]

WAN2022_COEFFS_1S: tuple[float, ...] = (0.348, 16.030, -43.853, 45.393, -16.815)
"""aihwkit's ``ReRamWan2022NoiseModel`` 1-second fit (µS, lowest order first, g_max 40 µS)."""

_STREAM_AIHWKIT_PROG, _STREAM_AIHWKIT_DRIFT = 11, 12

NOT_EXPRESSED: dict[str, str] = {
    "periphery": "energy, latency and area numbers of memsim's cost model; aihwkit has none",
}
"""Profile fields (or sections) that no aihwkit setting can express, and why.

Every other profile field is accounted for by a line of :func:`translate`'s report (the
completeness test of the schema checks both)."""

_WQ = ("mapping.weight_quant", "mapping.weight_bits")


@dataclass
class Translation:
    """An aihwkit ``InferenceRPUConfig`` for a profile plus the knob-by-knob report.

    Attributes:
        profile: The translated memsim profile.
        rpu_config: The aihwkit configuration (shared template; layers get copies).
        knobs: Every profile field with its status.
        drifts: Whether ``drift_analog_weights`` models the profile's drift (``False``
            when the profile has no drift: aihwkit then keeps the programmed weights).

    """

    profile: DeviceProfile
    rpu_config: InferenceRPUConfig
    knobs: list[Knob]
    drifts: bool

    def untranslated(self) -> list[Knob]:
        """The knobs that are approximated or not translated."""
        return [k for k in self.knobs if k.status != TRANSLATED]

    def table(self, everything: bool = False) -> str:
        """Markdown table of the untranslated knobs (``everything``: all knobs)."""
        rows = self.knobs if everything else self.untranslated()
        lines = ["| profile field | value | status | aihwkit | note |", "|---|---|---|---|---|"]
        for k in rows:
            cells = [k.as_dict()["value"], k.status, k.aihwkit, k.note]
            lines.append(f"| `{k.field}` | " + " | ".join(md_cell(c) for c in cells) + " |")
        if not rows:
            lines.append("| (none) | | | | |")
        return "\n".join(lines)


def md_cell(value: Any) -> str:
    """``value`` as text for a markdown table cell (pipes escaped)."""
    return str(value).replace("|", "\\|")


def _is_wan2022(coeffs: list[float]) -> bool:
    return len(coeffs) == len(WAN2022_COEFFS_1S) and all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(coeffs, WAN2022_COEFFS_1S)
    )


def _law_knob(field: str, form: laws.AihwkitForm | None, law: laws.DeviceLaw) -> Knob:
    """The report line of one device law: its own translation, or why it has none."""
    if form is None:
        return Knob(field, law.name, NOT_TRANSLATED, "", law.aihwkit_missing or "")
    status = APPROXIMATED if form.approximated else TRANSLATED
    return Knob(field, form.value, status, form.setting, form.note)


def _noise_model(profile: DeviceProfile, knobs: list[Knob]) -> tuple[BaseNoiseModel, bool]:
    """The aihwkit noise model for the device physics, and whether it models drift.

    Each law supplies its own aihwkit form (:meth:`memsim.laws.DeviceLaw.aihwkit`): the
    programming law a polynomial, the drift law the noise model built around it.
    """
    if profile.aihwkit_noise_model is not None:
        return _own_noise_model(profile, knobs), True
    dev = profile.device
    conv = SinglePairConductanceConverter(g_max=dev.g_max_uS, g_min=dev.g_min_uS)
    prog_law, drift_law = laws.build("programming_noise", profile), laws.build("drift", profile)
    prog, drift = prog_law.aihwkit(), drift_law.aihwkit()
    prog_knob = _law_knob("programming_noise.model", prog, prog_law)
    knobs.append(
        Knob(
            "device.g_min_uS / g_max_uS",
            f"{dev.g_min_uS:g} / {dev.g_max_uS:g}",
            TRANSLATED,
            f"SinglePairConductanceConverter(g_max={dev.g_max_uS:g}, g_min={dev.g_min_uS:g})",
        )
    )
    # a law without a translation runs without it on the aihwkit side (noted in the report)
    coeffs, ref, scale = [0.0], dev.g_max_uS, 0.0
    if prog is not None:
        coeffs, ref, scale = prog.payload["coeffs"], prog.payload["ref"], prog.payload["scale"]
    if drift_law.name == "none" and prog_law.name == "polynomial" and _is_wan2022(coeffs):
        model: BaseNoiseModel = ReRamWan2022NoiseModel(g_converter=conv)
        # aihwkit 1.1.0 only sets coeff_g_max_reference when it is *not* passed; set it
        # explicitly so that the sigma scaling is the profile's.
        model.coeff_g_max_reference = ref
        knobs.append(
            Knob(
                "programming_noise.model",
                prog_knob.value,
                TRANSLATED,
                f"ReRamWan2022NoiseModel(g_max={dev.g_max_uS:g}) 1 s fit",
                "memsim does not use aihwkit's 1-day/2-day refits (drift none), so aihwkit "
                "is only programmed, never drifted",
            )
        )
        knobs.append(Knob("drift.model", "none", TRANSLATED, "drift_analog_weights not called"))
        return model, False

    knobs.append(prog_knob)
    d = profile.drift
    kwargs: dict[str, Any] = dict(
        prog_coeff=coeffs,
        g_converter=conv,
        t_0=d.t0_s,
        t_read=d.t_read_s,
        prog_noise_scale=scale,
    )
    knobs.append(_law_knob("drift.model", drift, drift_law))
    if drift is None:
        drift = laws.law_class("drift", "none")(profile).aihwkit()  # aihwkit without drift
        assert drift is not None
    model, drifts = drift.payload["build"](**kwargs), bool(drift.payload["drifts"])
    # aihwkit 1.1.0 ignores prog_coeff_g_max_reference when prog_coeff is given.
    model.prog_coeff_g_max_reference = ref
    return model, drifts


def _own_noise_model(profile: DeviceProfile, knobs: list[Knob]) -> BaseNoiseModel:
    """The profile's own ``aihwkit_noise_model`` object (pitfalls fixed as in memsim)."""
    from ..physics_aihwkit import check_profile

    spec = profile.aihwkit_noise_model
    assert spec is not None
    model = check_profile(profile)
    name = type(model).__name__
    conv = type(model.g_converter).__name__
    same = spec.conductance_map.value == "identity"
    knobs.append(
        Knob(
            "aihwkit_noise_model",
            f"{spec.class_name} {spec.kwargs}",
            TRANSLATED if same else APPROXIMATED,
            f"{name} (its own {conv})",
            "the same object; aihwkit maps weights with its own converter, memsim with "
            "differential pairs on the profile's window"
            + ("" if same else ", mapped linearly onto the model's window"),
        )
    )
    for field_name in ("programming_noise.model", "drift.model"):
        knobs.append(Knob(field_name, "none", TRANSLATED, f"from {name}"))
    return model


def translate(profile: DeviceProfile | str, *, dac_range: float | None = None) -> Translation:
    """Translate a memsim profile into an aihwkit ``InferenceRPUConfig``.

    Args:
        profile: A profile or a shipped name / JSON path.
        dac_range: For ``dac.mode = calibrated``: the calibrated input range of the layer
            this config is for (``noise_management = CONSTANT``, ``nm_thres = range``).
            Without it a calibrated DAC is approximated by ``ABS_MAX``.

    Returns:
        The configuration and the report of every profile field.

    """
    p = load_profile(profile)
    knobs: list[Knob] = []
    cfg = InferenceRPUConfig()
    f = cfg.forward
    # Neutralise every aihwkit non-ideality memsim does not model (aihwkit defaults
    # include out_noise = 0.06 and iterative bound management).
    f.is_perfect = False
    f.inp_noise = 0.0
    f.out_noise_std = 0.0
    f.inp_sto_round = False
    f.out_sto_round = False
    f.ir_drop = 0.0
    f.out_nonlinearity = 0.0
    f.w_read_asymmetry_dtod = 0.0
    f.bound_management = BoundManagementType.NONE
    f.inp_bound = 1.0

    # -- tiles and mapping -------------------------------------------------------------
    cfg.mapping.max_input_size = p.tile.rows
    cfg.mapping.max_output_size = p.tile.cols
    cfg.mapping.digital_bias = True
    knobs.append(
        Knob(
            "tile.rows x tile.cols",
            f"{p.tile.rows}x{p.tile.cols}",
            TRANSLATED,
            f"mapping.max_input_size={p.tile.rows}, max_output_size={p.tile.cols}",
            "both split a larger layer into equal row tiles; memsim keeps conv kernels whole, "
            "so conv splits can differ (see the layer report)",
        )
    )
    cfg.mapping.weight_scaling_omega = 1.0
    ws = p.mapping.weight_scaling
    cfg.mapping.weight_scaling_columnwise = ws == WeightScaling.per_column
    if ws == WeightScaling.per_layer:
        knobs.append(
            Knob(
                "mapping.weight_scaling",
                ws.value,
                APPROXIMATED,
                "weight_scaling_omega=1 (per tile)",
                "aihwkit scales each tile by its own max|w|; identical for layers on one tile",
            )
        )
    else:
        knobs.append(
            Knob(
                "mapping.weight_scaling",
                ws.value,
                TRANSLATED,
                "weight_scaling_omega=1, weight_scaling_columnwise="
                f"{cfg.mapping.weight_scaling_columnwise}",
            )
        )
    wq = p.mapping.weight_quant
    if wq == WeightQuant.none:
        knobs.append(Knob("mapping.weight_quant", "none", TRANSLATED, covers=_WQ))
    else:
        knobs.append(
            Knob(
                "mapping.weight_quant",
                f"{wq.value} bits={p.mapping.weight_bits}",
                TRANSLATED,
                "weights quantized digitally before convert_to_analog",
                covers=_WQ,
            )
        )
    if p.device.levels is None:
        knobs.append(Knob("device.levels", None, TRANSLATED, "analog conductances"))
    else:
        knobs.append(
            Knob(
                "device.levels",
                p.device.levels,
                NOT_TRANSLATED,
                "",
                "aihwkit's inference noise models program continuous conductances",
            )
        )

    # -- device physics ----------------------------------------------------------------
    noise_model, drifts = _noise_model(p, knobs)
    cfg.noise_model = noise_model
    read_law = laws.build("read_noise", p)
    read = read_law.aihwkit()
    w_noise = 0.0 if read is None else float(read.payload["w_noise"])
    f.w_noise = w_noise
    f.w_noise_type = WeightNoiseType.ADDITIVE_CONSTANT if w_noise > 0 else WeightNoiseType.NONE
    if read is None:
        knobs.append(_law_knob("read_noise.model", None, read_law))
    elif w_noise > 0:
        knobs.append(_law_knob("read_noise.sigma", read, read_law))
    else:
        knobs.append(Knob("read_noise.model", "none", TRANSLATED, "forward.w_noise=0"))
    if p.drift.compensation == DriftCompensation.globally:
        cfg.drift_compensation = GlobalDriftCompensation()
        knobs.append(
            Knob(
                "drift.compensation",
                "global",
                APPROXIMATED,
                "GlobalDriftCompensation()",
                "both: one gain per tile = reference / current mean|W|; aihwkit reads mean|W| "
                "through the tile's forward pass with one-hot inputs, so through the ADC (and "
                "scaled down by a DAC range > 1), memsim reads it exactly",
            )
        )
    else:
        cfg.drift_compensation = None
        knobs.append(Knob("drift.compensation", "none", TRANSLATED, "drift_compensation=None"))

    f_ = p.faults
    for name, val in (
        ("stuck_at_gmin_rate", f_.stuck_at_gmin_rate),
        ("stuck_at_gmax_rate", f_.stuck_at_gmax_rate),
        ("d2d_sigma", f_.d2d_sigma),
    ):
        if val > 0:
            knobs.append(
                Knob(
                    f"faults.{name}",
                    val,
                    NOT_TRANSLATED,
                    "",
                    "aihwkit has no stuck-at faults or fixed device gains at inference",
                )
            )
        else:
            knobs.append(Knob(f"faults.{name}", val, TRANSLATED, "(none)"))
    if p.ir_drop.enabled:
        knobs.append(
            Knob(
                "ir_drop",
                "enabled",
                NOT_TRANSLATED,
                "forward.ir_drop=0",
                "aihwkit's ir_drop is a different (input-current) model with its own units",
            )
        )
    else:
        knobs.append(Knob("ir_drop", "disabled", TRANSLATED, "forward.ir_drop=0"))

    # -- periphery: the DAC and ADC translate themselves --------------------------------
    for spec in (*DAC(p.dac).aihwkit(f, dac_range), *ADC(p.adc).aihwkit(f)):
        knobs.append(spec)
    f.out_noise = p.output_noise.sigma
    knobs.append(
        Knob(
            "output_noise.sigma",
            p.output_noise.sigma,
            TRANSLATED,
            f"forward.out_noise={p.output_noise.sigma:g}",
        )
    )
    return Translation(p, cfg, knobs, drifts)


# model deployment lives in its own module (it uses translate above)
from .aihwkit_deploy import (  # noqa: E402
    Deployment as Deployment,
)
from .aihwkit_deploy import (  # noqa: E402
    LayerMapping as LayerMapping,
)
from .aihwkit_deploy import (  # noqa: E402
    aihwkit_digital_layers as aihwkit_digital_layers,
)
from .aihwkit_deploy import (  # noqa: E402
    aligned_profile as aligned_profile,
)
from .aihwkit_deploy import (  # noqa: E402
    convert as convert,
)
from .aihwkit_deploy import (  # noqa: E402
    drift_weights as drift_weights,
)
from .aihwkit_deploy import (  # noqa: E402
    program_weights as program_weights,
)
