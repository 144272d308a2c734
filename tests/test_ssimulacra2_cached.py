"""The floor search's SSIMULACRA2 (original's side kept) gives the ``ssimulacra2`` package's score to the last bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fawkes_engine.visibility.scales import ssimulacra2
from fawkes_engine.visibility.ssimulacra2 import Ssimulacra2Reference


def _face_like(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth shading, an edge and fine texture: what a face box holds, in 8 bits."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 120 + 80 * np.sin(3 * xx + 2 * yy)[..., None] * np.array([1.0, 0.8, 0.6])
    base[h // 3 : h // 2] += 40
    return np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.unit
@pytest.mark.parametrize(("h", "w"), [(64, 64), (131, 97), (257, 300), (9, 40), (5, 30)])
def test_score_equals_the_package_bit_for_bit(h: int, w: int) -> None:
    """Odd sizes too: the package averages the ragged edge of each 2× downsampling separately."""
    original = _face_like(h, w, 0)
    ref = Ssimulacra2Reference(original)
    rng = np.random.default_rng(1)
    for sigma in (0.0, 1.0, 4.0, 12.0):  # unchanged, barely changed, a cloak's change, a visible one
        cand = np.clip(original + rng.normal(0, sigma, original.shape), 0, 255).astype(np.uint8)
        want = ssimulacra2(original, cand)
        got = ref.score(cand)
        assert (got == want) or (np.isnan(got) and np.isnan(want)), (sigma, got, want)


@pytest.mark.unit
def test_one_reference_rates_many_candidates_and_refuses_another_shape() -> None:
    original = _face_like(80, 60, 2)
    ref = Ssimulacra2Reference(original)
    scores = [ref.score(np.clip(original.astype(int) + k, 0, 255).astype(np.uint8)) for k in (0, 2, 8)]
    assert scores[0] == 100.0 and scores[0] > scores[1] > scores[2], scores
    with pytest.raises(ValueError, match="shape"):
        ref.score(original[:-1])
    with pytest.raises(ValueError, match="uint8"):
        Ssimulacra2Reference(original.astype(np.uint16))


@pytest.mark.integration
def test_a_real_face_scores_as_the_package_scores_it(dev: Path) -> None:
    from PIL import Image

    face = np.asarray(Image.open(dev / "photos" / "lady.jpg").convert("RGB"))[60:560, 120:520]
    ref = Ssimulacra2Reference(np.ascontiguousarray(face))
    rng = np.random.default_rng(3)
    smooth = np.repeat(np.repeat(rng.normal(0, 3, (face.shape[0] // 16 + 1, face.shape[1] // 16 + 1, 3)), 16, 0), 16, 1)
    cand = np.clip(face + smooth[: face.shape[0], : face.shape[1]], 0, 255).astype(np.uint8)
    assert ref.score(cand) == ssimulacra2(face, cand)


@pytest.mark.unit
@pytest.mark.parametrize("shape", [(8, 8, 3), (11, 40, 3), (257, 300, 3)])
def test_the_blur_without_padding_equals_the_packages_padded_blur(shape: tuple[int, int, int]) -> None:
    """A zero edge on the rows stands for the package's five zero rows because its kernel's radius is five too."""
    from ssimulacra2 import ssimulacra2 as package

    from fawkes_engine.visibility.ssimulacra2 import _blur

    image = np.random.default_rng(4).random(shape)
    assert np.array_equal(_blur(image, np.empty(shape)), package.blur_image(image))


@pytest.mark.unit
@pytest.mark.parametrize("shape", [(37, 23, 3), (301, 157, 3)])
def test_the_colour_conversion_equals_the_packages(shape: tuple[int, int, int]) -> None:
    """Bit for bit, on linear values across the whole range, on sides that differ, whole and split
    into row blocks between threads (301 rows)."""
    from ssimulacra2 import ssimulacra2 as package

    from fawkes_engine.visibility.ssimulacra2 import _xyb

    linear = np.random.default_rng(5).random(shape) ** 3
    assert np.array_equal(_xyb(linear), package.make_positive_xyb(package.linear_rgb_to_xyb(linear)))
