"""Per-layer profiles for :func:`memsim.convert`: overrides by module name or pattern.

aihwkit users give a layer its own ``rpu_config``; here a layer gets its own profile::

    memsim.convert(model, "rram_wan2022", layer_profiles={
        "features.0": {"adc": {"bits": 8}},      # first layer: an 8-bit ADC
        "classifier": {"adc": {"bits": 8}},      # and the last one
        "features.*.conv": "rram_1t1r_yao2020",  # a whole other profile (name, path, object)
    })

A key matches a module by its name as in ``model.named_modules()``, by a prefix of it up
to a dot (``"features"`` matches ``"features.3.conv"``), or by a shell-style pattern
(``fnmatch``: ``*``, ``?``, ``[...]``).  Every key that matches a layer applies, in the
order given: a dict derives from the profile so far (:meth:`DeviceProfile.derive`), a
profile replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from .profiles import DeviceProfile, load_profile

LayerProfiles = Mapping[str, "DeviceProfile | str | Mapping[str, Any]"]


def _matches(name: str, key: str) -> bool:
    return name == key or name.startswith(key + ".") or fnmatchcase(name, key)


def resolve_layer_profiles(
    base: DeviceProfile, names: list[str], overrides: LayerProfiles | None
) -> list[DeviceProfile]:
    """The profile of each layer named in ``names`` (module names), in order.

    Raises:
        ValueError: A key that matches no analog layer (with the layer names).
        ProfileError: An override the schema refuses (names the key and the field).

    """
    if not overrides:
        return [base] * len(names)
    prepared: list[tuple[str, DeviceProfile | dict[str, Any]]] = []
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"memsim.convert: layer_profiles keys must be module names, got {key!r}"
            )
        if isinstance(value, Mapping):
            prepared.append((key, dict(value)))
        else:
            prepared.append((key, load_profile(value)))
    unused = [k for k, _ in prepared if not any(_matches(n, k) for n in names)]
    if unused:
        shown = ", ".join(repr(n) for n in names[:30]) + (", ..." if len(names) > 30 else "")
        raise ValueError(
            f"memsim.convert: layer_profiles key(s) {unused} match no analog layer (a key "
            f"matches a module name, a prefix of it up to a dot, or an fnmatch pattern); "
            f"analog layers: {shown}"
        )
    cache: dict[tuple[int, ...], DeviceProfile] = {}
    out = []
    for name in names:
        hits = tuple(i for i, (k, _) in enumerate(prepared) if _matches(name, k))
        if hits not in cache:
            prof = base
            for i in hits:
                key, value = prepared[i]
                if isinstance(value, DeviceProfile):
                    prof = value
                else:
                    prof = prof.derive(value, name=f"{prof.name}@{key}")
            cache[hits] = prof
        out.append(cache[hits])
    return out
