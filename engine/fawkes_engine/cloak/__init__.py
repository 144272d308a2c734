"""The Fawkes cloak (paper eq. 2) as a package: options, the visible window, input diversity,
the budget, the objective and the per-face state, with the :class:`Cloaker` that runs them.

The options import without torch (the daemon's configuration and `fawkes status` read them);
everything else is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fawkes_engine.cloak.diversity import NO_DIVERSITY, Diversity
from fawkes_engine.cloak.options import DEFAULT_EXTRACTORS, FACE_MARGIN, MODES, CloakOptions, ModeSettings, TargetMode

if TYPE_CHECKING:
    from fawkes_engine.cloak.cloaker import Cloaker, resolve_device
    from fawkes_engine.cloak.jobs import FaceJob, FaceResult
    from fawkes_engine.cloak.rounding import apply_regions

_LAZY = {
    "Cloaker": "fawkes_engine.cloak.cloaker",
    "apply_regions": "fawkes_engine.cloak.rounding",
    "resolve_device": "fawkes_engine.cloak.cloaker",
    "FaceJob": "fawkes_engine.cloak.jobs",
    "FaceResult": "fawkes_engine.cloak.jobs",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fawkes_engine.cloak' has no attribute {name!r}")


__all__ = [
    "DEFAULT_EXTRACTORS",
    "FACE_MARGIN",
    "MODES",
    "NO_DIVERSITY",
    "CloakOptions",
    "Cloaker",
    "Diversity",
    "FaceJob",
    "FaceResult",
    "ModeSettings",
    "TargetMode",
    "apply_regions",
    "resolve_device",
]
