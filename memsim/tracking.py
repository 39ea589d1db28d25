"""Experiment tracking hook: a :class:`Tracker` that training loops report scalars to.

The GA (:class:`ga.GATrainer`) and the training loops (:mod:`models.train`) take an
optional ``tracker`` argument and call ``tracker.log_scalar(name, value, step)``.  The
protocol lives here, in the core every package may import, so that ``ga`` and ``models``
need neither each other nor ``lab`` (where the TensorBoard implementation is,
:mod:`lab.tracking`).

Layers that build a trainer without a ``tracker`` argument (the experiment pipeline)
still report when a tracker is made *active* with :func:`tracking`: a loop given no
tracker uses :func:`active_tracker`.  Off by default: with none given and none active,
nothing is logged and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol, runtime_checkable


@runtime_checkable
class Tracker(Protocol):
    """Anything that records a named scalar at an integer step (a generation, an epoch)."""

    def log_scalar(self, name: str, value: float, step: int) -> None:
        """Record ``value`` of the series ``name`` at ``step``."""
        ...


_ACTIVE: ContextVar[Tracker | None] = ContextVar("memsim_tracker", default=None)


def active_tracker() -> Tracker | None:
    """The tracker made active by :func:`tracking` in this context, or None."""
    return _ACTIVE.get()


def resolve_tracker(tracker: Tracker | None) -> Tracker | None:
    """``tracker`` if given, else the active one (None: do not track)."""
    return tracker if tracker is not None else _ACTIVE.get()


@contextmanager
def tracking(tracker: Tracker | None) -> Iterator[Tracker | None]:
    """Make ``tracker`` active for the loops started inside the ``with`` block.

    The activity is per context (:mod:`contextvars`): worker processes of a parallel
    executor do not see it, so only the work of this process is tracked.
    """
    token = _ACTIVE.set(tracker)
    try:
        yield tracker
    finally:
        _ACTIVE.reset(token)
