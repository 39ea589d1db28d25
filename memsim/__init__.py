"""memsim: memristor crossbar simulation for neural networks.

Public API::

    profile = memsim.load_profile("rram_1t1r_yao2020")
    chip = memsim.convert(model, profile, seed=0, chip_seed=7)
    memsim.program(chip, new_weights, seed=1)   # same chip, fresh programming noise
    memsim.drift(chip, 3600.0)
    memsim.effective_weights(chip); memsim.tile_report(chip)
"""

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
from .defects import DefectMap, defect_maps, defect_weight_map
from .layers import AnalogConv2d, AnalogLayer, AnalogLinear, analog_layers
from .profiles import DeviceProfile, ProfileError, list_profiles, load_profile, validate_profile
from .readback import DefectEstimate, estimate_defects, read_back
from .trim import clear_output_trim, output_trim, set_output_trim

__all__ = [
    "AnalogConv2d",
    "AnalogLayer",
    "AnalogLinear",
    "DefectEstimate",
    "DefectMap",
    "DeviceProfile",
    "DigitalLayer",
    "LayerTiles",
    "ProfileError",
    "TileReport",
    "analog_layers",
    "calibrate",
    "clear_output_trim",
    "conductances",
    "defect_maps",
    "defect_weight_map",
    "convert",
    "drift",
    "effective_weights",
    "estimate_defects",
    "needs_calibration",
    "output_trim",
    "list_profiles",
    "load_profile",
    "program",
    "read_back",
    "set_output_trim",
    "target_weights",
    "tile_report",
    "validate_profile",
]
