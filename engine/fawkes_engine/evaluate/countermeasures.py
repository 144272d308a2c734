"""What a tracker may do to its training photos before it learns from them (paper §8): a registry.

Each countermeasure is a factory: its parameter → a function from an RGB uint8 photo to the
transformed photo. `fawkes eval` applies them to the cloaked and clean training photos alike.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

Transform = Callable[[np.ndarray], np.ndarray]
COUNTERMEASURES: dict[str, Callable[..., Transform]] = {}


def countermeasure(name: str) -> Callable[[Callable[..., Transform]], Callable[..., Transform]]:
    def add(factory: Callable[..., Transform]) -> Callable[..., Transform]:
        COUNTERMEASURES[name] = factory
        return factory

    return add


@countermeasure("jpeg")
def jpeg(q: int) -> Callable[[np.ndarray], np.ndarray]:
    def f(rgb: np.ndarray) -> np.ndarray:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=int(q))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))

    f.key = f"jpeg={q}"  # type: ignore[attr-defined]
    return f


@countermeasure("blur")
def blur(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    import cv2

    def f(rgb: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(rgb, (0, 0), float(sigma))

    f.key = f"blur={sigma}"  # type: ignore[attr-defined]
    return f


@countermeasure("noise")
def noise(std: float, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    def f(rgb: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(seed + rgb.size)
        return np.clip(rgb.astype(np.float32) + rng.normal(0, std, rgb.shape), 0, 255).astype(np.uint8)

    f.key = f"noise={std}"  # type: ignore[attr-defined]
    return f
