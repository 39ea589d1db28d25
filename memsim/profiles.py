"""Device profiles: the complete chip description, its loader and its derivation.

A profile describes one kind of crossbar chip: the devices, how weights are
mapped onto them, every non-ideality, and the periphery (DAC/ADC).  Profiles are
JSON files; shipped ones live in ``device_profiles/`` and are loaded by name.  A profile
may ``extends`` another and override some of its fields, in a file, in a dict given to
:func:`load_profile`, or in Python with :meth:`DeviceProfile.derive`; all three go
through one routine, :func:`derive_raw`, which marks every changed field in the child's
``source`` and description.

The sections are in :mod:`memsim.profile_sections`; this module imports no device
physics: a profile section that names a device law is checked by the law itself
(:mod:`memsim.laws`).

Units are in the field names: ``_uS`` micro-siemens, ``_s`` seconds,
``_ohm`` ohm.  Relative quantities ("sigma") are fractions, not percent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping as MappingABC
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from . import laws
from .profile_periphery import Periphery
from .profile_sections import (
    ADC,
    DAC,
    AihwkitNoiseModel,
    ConductanceMap,
    Device,
    Drift,
    DriftCompensation,
    DriftModel,
    Faults,
    IRDrop,
    IRDropModel,
    Mapping,
    OutputNoise,
    PairLayout,
    ProfileError,
    ProgNoiseModel,
    ProgrammingNoise,
    RangeMode,
    ReadNoise,
    ReadNoiseModel,
    SenseSide,
    Tile,
    UnusedCells,
    WeightQuant,
    WeightScaling,
    WordLineDriver,
    _Section,
)

__all__ = [
    "ADC",
    "DAC",
    "AihwkitNoiseModel",
    "ConductanceMap",
    "Device",
    "DOC_ONLY_FIELDS",
    "DeviceProfile",
    "Drift",
    "DriftCompensation",
    "DriftModel",
    "Faults",
    "IRDrop",
    "IRDropModel",
    "Mapping",
    "OutputNoise",
    "PairLayout",
    "ProfileError",
    "ProgNoiseModel",
    "ProgrammingNoise",
    "RangeMode",
    "ReadNoise",
    "ReadNoiseModel",
    "SenseSide",
    "Tile",
    "UnusedCells",
    "WeightQuant",
    "WeightScaling",
    "WordLineDriver",
    "derive_raw",
    "list_profiles",
    "load_profile",
    "validate_profile",
]


class DeviceProfile(_Section):
    """A complete chip description."""

    name: str = Field(min_length=1)
    """Short identifier."""
    description: str = ""
    """Human-readable summary."""
    extends: str | None = None
    """Shipped profile this one overrides (resolved by the loader)."""
    source: dict[str, str] = Field(default_factory=dict)
    """Citations: field path (or "general") -> published source of the numbers."""
    device: Device = Device()
    """Conductance window and levels."""
    mapping: Mapping = Mapping()
    """Weight-to-conductance mapping."""
    programming_noise: ProgrammingNoise = ProgrammingNoise()
    """Programming error."""
    read_noise: ReadNoise = ReadNoise()
    """Per-MVM read noise."""
    drift: Drift = Drift()
    """Conductance drift and its compensation."""
    faults: Faults = Faults()
    """Stuck-at faults and device-to-device variation."""
    tile: Tile = Tile()
    """Tile size."""
    dac: DAC = DAC()
    """Input DAC."""
    adc: ADC = ADC()
    """Output ADC."""
    output_noise: OutputNoise = OutputNoise()
    """Bit-line noise."""
    ir_drop: IRDrop = IRDrop()
    """Optional IR drop (wire and access resistance)."""
    aihwkit_noise_model: AihwkitNoiseModel | None = None
    """Device physics from an aihwkit noise model instead of ``programming_noise`` and
    ``drift.model`` (both must then be ``none``); ``null``: memsim's own physics."""
    periphery: Periphery = Periphery()
    """Energy, latency and area numbers of the cost model (``memsim.cost``); optional."""

    @property
    def g_range_uS(self) -> float:
        """Conductance window g_max - g_min in µS."""
        return self.device.g_max_uS - self.device.g_min_uS

    def derive(
        self,
        changes: MappingABC[str, Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        source: MappingABC[str, str] | None = None,
        **sections: Any,
    ) -> DeviceProfile:
        """A validated child of this profile with some fields changed.

        ``p.derive(adc={"bits": 4})`` and ``p.derive({"adc": {"bits": 4}})`` are the same;
        a section may also be given as a section object.  The child ``extends`` this
        profile's name; every changed field is marked in its ``source`` (and in its
        description unless ``description`` is given), see :func:`derive_raw`.

        Args:
            changes: Nested dict of the fields to change (as in a profile JSON).
            name: The child's name; default: this name plus the changes.
            description: The child's description; default: derived, naming the changes.
            source: Citations of the new values, by field path.
            **sections: Sections to change, as dicts or section objects.

        Raises:
            ProfileError: A changed value the schema refuses (names the field).

        """
        over: dict[str, Any] = {}
        for part in (dict(changes or {}), sections):
            over = _deep_merge(over, _plain(part))
        extra = {"name": name, "description": description, "source": source}
        over.update({k: dict(v) if k == "source" else v for k, v in extra.items() if v})
        raw = derive_raw(self.model_dump(mode="json"), over, parent_name=self.name)
        return validate_profile(raw, f"{self.name}.derive()", resolve=False)


_PROFILE_PKG = "memsim.device_profiles"


def _profile_dir() -> Path:
    # A source checkout keeps the JSON files at the repo root; an installed wheel
    # ships them as the package ``memsim.device_profiles``.
    local = Path(__file__).resolve().parent.parent / "device_profiles"
    if local.is_dir():
        return local
    return Path(str(resources.files(_PROFILE_PKG)))


def list_profiles() -> list[str]:
    """Return the names of the shipped profiles, sorted."""
    return sorted(p.stem for p in _profile_dir().glob("*.json"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); profile files must be "
            "UTF-8 JSON"
        ) from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile file: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(
            f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    if not isinstance(data, dict):
        raise ProfileError(
            f"{path}: the top level must be a JSON object, got {type(data).__name__}"
        )
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            # "source" merges too: the child's citations add to (or replace) the parent's
            out[key] = _deep_merge(out[key], val) if key != "source" else {**out[key], **val}
        else:
            out[key] = val
    return out


def _plain(value: Any) -> Any:
    """``value`` with section objects turned into JSON-like dicts."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, MappingABC):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


DOC_ONLY_FIELDS = ("name", "description", "extends", "source")
"""Profile fields that document a profile and do not act on the simulated chip."""

_META = DOC_ONLY_FIELDS
_MISSING = object()


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value of every leaf of a profile dict (metadata fields left out)."""
    out: dict[str, Any] = {}
    for key, val in data.items():
        if not prefix and key in _META:
            continue
        path = f"{prefix}{key}"
        if isinstance(val, dict) and val:
            out.update(_leaves(val, path + "."))
        else:
            out[path] = val
    return out


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _fmt(value: Any) -> str:
    if value is _MISSING:
        return "default"
    return json.dumps(value, separators=(",", ":")).strip('"')


def _covers(key: str, path: str) -> bool:
    return key == path or path.startswith(key + ".") or key.startswith(path + ".")


def derive_raw(
    parent: dict[str, Any],
    over: dict[str, Any],
    *,
    parent_name: str,
    default_name: str | None = None,
) -> dict[str, Any]:
    """The one derivation of a profile dict from its parent's (files, dicts and ``derive``).

    The child's fields are deep-merged over the parent's; then the provenance is
    marked: the child's ``extends`` is ``parent_name``; each changed field that no
    citation of the child covers gets a ``source`` entry saying so; a citation
    inherited from the parent that covers a changed field says that it no longer does;
    and, unless the child has its own description, the description names the changes.

    Args:
        parent: The parent's resolved raw dict.
        over: The child's dict (its ``extends`` is ignored).
        parent_name: How the child refers to the parent (its ``extends``).
        default_name: The child's name if it has none (a file's stem); ``None``: the
            parent's name plus the changes.

    Returns:
        The merged raw dict, not yet validated.

    """
    child = {k: v for k, v in over.items() if k != "extends"}
    merged = _deep_merge(parent, child)
    try:  # compare with the parent's values, defaults included
        full = DeviceProfile.model_validate(parent).model_dump(mode="json")
    except ValidationError:
        full = parent  # an invalid parent: its own error is reported by the validation
    changed = {
        path: (_lookup(full, path), new)
        for path, new in _leaves(child).items()
        if _lookup(full, path) != new
    }
    name = child.get("name") or default_name
    if not name:
        tail = "+".join(f"{p}={_fmt(new)}" for p, (_, new) in changed.items())
        if len(tail) > 60:
            tail = hashlib.sha256(json.dumps(child, sort_keys=True).encode()).hexdigest()[:8]
        name = f"{parent_name}+{tail}" if tail else parent_name
    merged["name"] = name
    merged["extends"] = parent_name
    if "description" not in child:
        what = ", ".join(f"{p} {_fmt(old)} -> {_fmt(new)}" for p, (old, new) in changed.items())
        what = f" Changed: {what}." if what else ""
        parent_desc = parent.get("description", "")
        merged["description"] = f"{name} (extends {parent_name}).{what} {parent_desc}".strip()
    p_src, c_src = dict(parent.get("source") or {}), dict(child.get("source") or {})
    source = {**p_src, **c_src}
    for key, text in p_src.items():
        hit = [p for p in changed if _covers(key, p)]
        if key not in c_src and hit:
            source[key] = f"{text} [from {parent_name}; {', '.join(hit)} changed in {name}]"
    for path, (old, _) in changed.items():
        if not any(_covers(key, path) for key in c_src):
            source.setdefault(
                path, f"changed in {name} (was {_fmt(old)} in {parent_name}); no source given"
            )
    merged["source"] = source
    return merged


def _resolve_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text.endswith(".json") or "/" in text or "\\" in text:
        path = Path(text)
        if path.is_dir():
            raise ProfileError(f"{path}: is a folder; expected a profile .json file")
        if not path.is_file():
            raise ProfileError(f"{path}: profile file not found")
        return path
    path = _profile_dir() / f"{text}.json"
    if not path.is_file():
        raise ProfileError(
            f"unknown profile name {text!r}; known profiles: {', '.join(list_profiles())} "
            "(or pass a path to a .json file)"
        )
    return path


def _resolve(
    data: dict[str, Any], origin: str, default_name: str | None, seen: tuple[Path, ...]
) -> dict[str, Any]:
    """``data`` with its ``extends`` chain resolved (``seen``: the files on the chain)."""
    parent = data.get("extends")
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ProfileError(f"{origin}: field 'extends': must be a profile name (string)")
    try:
        base_path = _resolve_path(parent)
    except ProfileError as exc:
        raise ProfileError(f"{origin}: field 'extends': {exc}") from exc
    if base_path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, base_path))
        raise ProfileError(f"{origin}: field 'extends': cycle {chain}")
    base = _resolve(
        _read_json(base_path), str(base_path), base_path.stem, (*seen, base_path.resolve())
    )
    return derive_raw(base, data, parent_name=parent, default_name=default_name)


def _raw_profile(path: Path) -> dict[str, Any]:
    # a derived file without a name is named after the file, not after its parent
    return _resolve(_read_json(path), str(path), path.stem, (path.resolve(),))


def _describe(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Return the docstring of the field at ``loc`` (for error messages)."""
    cls: Any = model
    info = None
    for part in loc:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            break  # a list index or dict key: describe the field that holds it
        info = cls.model_fields.get(str(part))
        if info is None:
            return ""
        cls = info.annotation
    return " ".join((info.description or "").split()) if info else ""


def validate_profile(
    data: MappingABC[str, Any], origin: str = "<dict>", *, resolve: bool = True
) -> DeviceProfile:
    """Validate a raw profile dict; raise :class:`ProfileError` naming each bad field.

    Args:
        data: The profile as in a JSON file.
        origin: File or name for the messages.
        resolve: Resolve ``extends`` (merge the named parent under ``data``); ``False``
            for a dict that is already resolved (e.g. the dump of a loaded profile).

    """
    data = dict(data)
    if resolve:
        data = _resolve(data, origin, None, ())
    try:
        profile = DeviceProfile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<root>"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field (not part of the profile schema)"
            hint = _describe(DeviceProfile, err["loc"])
            got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
            lines.append(f"field '{loc}': {msg}{got}" + (f" — {hint}" if hint else ""))
        raise ProfileError(f"{origin}: invalid profile:\n  " + "\n  ".join(lines)) from None
    laws.check_profile(profile, origin)
    return profile


def load_profile(
    name_or_path: str | Path | DeviceProfile | MappingABC[str, Any],
) -> DeviceProfile:
    """Load a shipped profile by name, a profile JSON file by path, or a profile dict.

    Args:
        name_or_path: A shipped name (see :func:`list_profiles`), a path to a
            ``.json`` file, a dict as in a JSON file (its ``extends`` is honoured:
            ``{"extends": "rram_wan2022", "adc": {"bits": 4}}``), or an already-built
            profile (returned unchanged).

    Raises:
        ProfileError: For an unknown name, unreadable or malformed file, or any
            field that fails validation; the message names file and field.

    """
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    if isinstance(name_or_path, MappingABC):
        return validate_profile(name_or_path, "<dict>")
    path = _resolve_path(name_or_path)
    return validate_profile(_raw_profile(path), str(path), resolve=False)
