"""memsim: memristor crossbar simulation for neural networks.

Public API::

    profile = memsim.load_profile("rram_1t1r_yao2020")
    chip = memsim.convert(model, profile, seed=0, chip_seed=7)
    memsim.program(chip, new_weights, seed=1)   # same chip, fresh programming noise
    memsim.drift(chip, 3600.0)
    trainer = memsim.HardwareAwareTrainer(chip, opt, "chip_in_the_loop")  # train through it
    memsim.effective_weights(chip); memsim.tile_report(chip)
    print(memsim.cost_report(chip, x))          # energy, latency, area per layer
    memsim.export_chip(chip, "chip.npz", csv_path="chip.csv")   # what to program, per tile
    memsim.import_conductances(chip, "measured.npz")           # score a measured array
    from memsim import fit; fit.fit_profile("meas.csv", "rram_wan2022")  # profile from data
"""

from . import laws
from .api import (
    DigitalLayer,
    LayerTiles,
    TileReport,
    calibrate,
    conductances,
    convert,
    drift,
    effective_weights,
    needs_calibration,
    program,
    target_weights,
    tile_report,
)
from .attention import AnalogMultiheadAttention
from .cost import CostModelError, CostReport, LayerCost, cost_report
from .defects import DefectMap, defect_maps, defect_weight_map
from .export import (
    ConductanceMap,
    ConductanceMapError,
    export_chip,
    import_conductances,
    read_conductance_map,
)
from .laws import register_device_law
from .layers import AnalogConv2d, AnalogLayer, AnalogLinear, analog_layers
from .placement import clear_placement, placements, set_placement
from .profiles import DeviceProfile, ProfileError, list_profiles, load_profile, validate_profile
from .readback import DefectEstimate, estimate_defects, read_back
from .resources import ChipMemoryError, ChipTimeError
from .train import HardwareAwareTrainer, Regime, read_back_twin
from .transformer import AnalogTransformerDecoderLayer, AnalogTransformerEncoderLayer
from .trim import clear_output_trim, output_trim, set_output_trim

__all__ = [
    "AnalogConv2d",
    "AnalogLayer",
    "AnalogLinear",
    "AnalogMultiheadAttention",
    "AnalogTransformerDecoderLayer",
    "AnalogTransformerEncoderLayer",
    "ChipMemoryError",
    "ChipTimeError",
    "CostModelError",
    "CostReport",
    "ConductanceMap",
    "ConductanceMapError",
    "DefectEstimate",
    "DefectMap",
    "DeviceProfile",
    "DigitalLayer",
    "HardwareAwareTrainer",
    "LayerCost",
    "LayerTiles",
    "ProfileError",
    "Regime",
    "TileReport",
    "analog_layers",
    "calibrate",
    "clear_output_trim",
    "clear_placement",
    "conductances",
    "cost_report",
    "defect_maps",
    "defect_weight_map",
    "convert",
    "drift",
    "effective_weights",
    "export_chip",
    "import_conductances",
    "estimate_defects",
    "needs_calibration",
    "output_trim",
    "placements",
    "list_profiles",
    "load_profile",
    "program",
    "register_device_law",
    "laws",
    "read_conductance_map",
    "read_back",
    "read_back_twin",
    "set_output_trim",
    "set_placement",
    "target_weights",
    "tile_report",
    "validate_profile",
]
