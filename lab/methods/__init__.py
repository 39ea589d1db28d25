"""Accuracy recovery after programming: methods behind one interface, and their stage.

A recovery method takes the baseline network, the chip as a test bench sees it, the
data and a budget, and returns the weights (and any digital knobs) to deploy::

    class MyMethod(RecoveryMethod):
        name = "my_method"
        needs = frozenset({Access.ACCURACY})
        def run(self, baseline, chip, data, budget) -> Solution: ...

Every method is one module of :mod:`lab.methods.builtin` that defines a subclass of
:class:`~lab.methods.base.RecoveryMethod`; :func:`method_names` finds them, so adding a
method is adding one file.  :mod:`lab.experiment.pipeline` runs the ``[recovery]`` stage of an
experiment (same baseline, same budget, paired test scores on every chip).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any


@cache
def _registry() -> dict[str, type]:
    from lab.methods import builtin
    from lab.methods.base import RecoveryMethod

    found: dict[str, type] = {}
    for info in sorted(pkgutil.iter_modules(builtin.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{builtin.__name__}.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, RecoveryMethod)
                and obj is not RecoveryMethod
                and obj.__module__ == module.__name__
            ):
                found[obj.name] = obj
    return found


KINDS = ("software", "chip")
"""The fine-tune kinds a ``recovery.methods`` entry may name after a colon (``"qat:chip"``)."""


def split_entry(entry: str) -> tuple[str, str | None]:
    """``"qat:chip"`` -> ``("qat", "chip")``; ``"qat"`` -> ``("qat", None)`` (no kind named).

    An entry ``name:kind`` runs method ``name`` with ``fitness.finetune = kind``, so one
    run can hold a method's software and chip fine-tunes side by side.
    """
    name, sep, kind = entry.partition(":")
    return name, (kind if sep else None)


def method_names() -> list[str]:
    """Names of every recovery method (one per module of :mod:`lab.methods.builtin`)."""
    return sorted(_registry())


def get_method(name: str) -> Any:
    """The method class called ``name``.

    Raises:
        ValueError: No such method (the message lists the known ones).

    """
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown recovery method {name!r}; known: {sorted(reg)}")
    return reg[name]
