"""Trackers' views of a large face: the photo's clean crop by other resamplers, and landmark jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fawkes_engine.align import similarity_transform, warp_faces
from fawkes_engine.cloak.options import CloakOptions
from fawkes_engine.cloak.photo_views import PhotoViews
from fawkes_engine.cloak.tracker_views import TrackerViews
from fawkes_engine.cloak.variant import parse_variant
from fawkes_engine.faces import Face
from fawkes_engine.working_scale import working_copy

pytestmark = pytest.mark.unit

TEMPLATE = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]])  # a 112 px crop's eyes, nose, mouth
LANDMARKS = np.array([[700.0, 800.0], [1000.0, 800.0], [850.0, 950.0], [720.0, 1100.0], [980.0, 1100.0]])  # a ~600 px face


def _photo(pattern: str) -> np.ndarray:
    y, x = np.mgrid[0:1800, 0:1700].astype(np.float32)
    if pattern == "smooth":
        v = 128 + 60 * np.sin(x / 90.0) * np.cos(y / 70.0)
    else:  # fine stripes, 2.5 px a period: what aliases when sampled every ~5 px
        v = 128 + 100 * np.sin(2 * np.pi * x / 2.5)
    return np.repeat(v[..., None], 3, axis=2).round().clip(0, 255).astype(np.uint8)


def _views(image: np.ndarray) -> tuple[PhotoViews, np.ndarray, torch.Tensor]:
    """The photo's views through a working copy at 224 px, the copy's alignment, and the copy."""
    face = Face((600.0, 650.0, 500.0, 600.0), LANDMARKS)
    region = face.region(image.shape, 0.1)
    wc = working_copy(image, face, region, (450, 500, 1250, 1400), 224)
    m = similarity_transform(wc.face.landmarks, TEMPLATE)
    assert PhotoViews.needed([m], wc.sx)
    copy = torch.from_numpy(wc.image.astype(np.float32) / 255).permute(2, 0, 1)[None]
    return PhotoViews(image, wc.area, wc.sx, wc.sy), m, copy


def test_every_resampler_cuts_the_loops_crop_from_a_smooth_photo() -> None:
    """Where the photo has no fine detail, trackers' crops and the loop's antialiased crop of the copy agree."""
    views, m, copy = _views(_photo("smooth"))
    loop = warp_faces(copy, m[None], 112)[0].permute(1, 2, 0).numpy()
    for kind in ("bilinear", "area", "pyramid"):
        crop = views.crop(m, 112, kind, 0)[0]
        assert crop.shape == (112, 112, 3) and crop.dtype == np.float32
        assert np.abs(crop - loop)[8:-8, 8:-8].mean() < 1.5 / 255, kind


def test_bilinear_without_antialiasing_aliases_fine_detail_and_the_others_do_not() -> None:
    """Fine stripes: ``warpAffine`` alone samples them into a false pattern; area and pyramid average them to grey."""
    views, m, _copy = _views(_photo("stripes"))
    spread = {kind: float(views.crop(m, 112, kind, 0)[0][8:-8, 8:-8, 0].std() * 255) for kind in ("bilinear", "area", "pyramid")}
    assert spread["bilinear"] > 20
    assert spread["area"] < 8 and spread["pyramid"] < 8


def test_landmark_jitter_moves_the_alignment_about_the_detectors() -> None:
    rng = np.random.default_rng(0)
    m = similarity_transform(LANDMARKS, TEMPLATE)
    assert TrackerViews().alignment(LANDMARKS, TEMPLATE, m, rng) is m  # no jitter: the same alignment, no draw
    jittered = np.stack([TrackerViews(landmark_jitter=0.03).alignment(LANDMARKS, TEMPLATE, m, rng) for _ in range(400)])
    eye = np.array([*LANDMARKS[0], 1.0])
    moved = jittered @ eye - m @ eye  # where the left eye lands in the crop, against the detector's alignment
    assert np.abs(moved.mean(0)).max() < 0.3  # centred on it
    assert 0.2 < np.sqrt((moved**2).sum(1)).mean() < 3.0  # a pixel or so of a 112 px crop


def test_tracker_views_are_variant_options_and_checked() -> None:
    o = parse_variant("sface,dlib:resamplers=antialiased/bilinear/pyramid:landmark_jitter=0.02", CloakOptions())
    assert o.optimizer.tracker_views == TrackerViews(("antialiased", "bilinear", "pyramid"), 0.02)
    assert CloakOptions().optimizer.tracker_views.active is False
    with pytest.raises(ValueError, match="resamplers"):
        CloakOptions.of(resamplers=("nearest",)).validate()
    with pytest.raises(ValueError, match="diversity"):
        parse_variant("sface:diversity=false:resamplers=bilinear", CloakOptions())
    with pytest.raises(ValueError, match="landmark_jitter"):
        CloakOptions.of(landmark_jitter=0.5).validate()


def test_a_trackers_crop_of_the_cloaked_photo_is_its_clean_crop_plus_the_loops_view_of_the_change() -> None:
    """The loop's model of a tracker's view (tracker_views' docstring) against the tracker cutting the lifted photo.

    A bilinear lift; with the guided one the change follows the photo's own grain, which the
    copy cannot show, and the model is rougher (docs/decisions.md).
    """
    from fawkes_engine.visibility.ssim import gaussian_blur
    from fawkes_engine.working_scale import lift

    rng = np.random.default_rng(3)
    image = (0.6 * _photo("smooth").astype(np.float32) + 50 + rng.normal(0, 25, (1800, 1700, 1))).clip(0, 255).astype(np.uint8)
    face = Face((600.0, 650.0, 500.0, 600.0), LANDMARKS)
    region = face.region(image.shape, 0.1)
    wc = working_copy(image, face, region, (450, 500, 1250, 1400), 224)
    m = similarity_transform(wc.face.landmarks, TEMPLATE)
    copy = torch.from_numpy(wc.image.astype(np.float32) / 255).permute(2, 0, 1)[None]
    cx0, cy0, cx1, cy1 = wc.copy_region
    noise = gaussian_blur(torch.from_numpy(rng.normal(0, 1, (1, 3, cy1 - cy0, cx1 - cx0)).astype(np.float32)), 1.5)
    delta = 0.04 * noise / noise.std()  # a change with detail finer than the 112 px crop, as masking makes
    moved = copy.clone()
    moved[..., cy0:cy1, cx0:cx1] += delta
    rx0, ry0, rx1, ry1 = region
    cloaked = image.astype(np.float32)
    cloaked[ry0:ry1, rx0:rx1] += 255 * lift(delta, wc)[0].permute(1, 2, 0).numpy()
    clean_views = PhotoViews(image, wc.area, wc.sx, wc.sy)
    after_views = PhotoViews(cloaked.round().clip(0, 255).astype(np.uint8), wc.area, wc.sx, wc.sy)

    def change(prescale: float | None) -> np.ndarray:
        return (warp_faces(moved, m[None], 112, prescale) - warp_faces(copy, m[None], 112, prescale))[0].permute(1, 2, 0).numpy()

    inner = (slice(8, -8), slice(8, -8))
    for kind in ("bilinear", "area", "pyramid"):
        clean, prescale = clean_views.crop(m, 112, kind, 0)  # the change resampled as the tracker does (crops.py)
        actual = after_views.crop(m, 112, kind, 0)[0]
        size = np.abs(actual - clean)[inner].mean()
        err = np.abs(clean + change(prescale) - actual)[inner].mean()
        # (measured: bilinear 4 %, pyramid 14 %, area 20 %: the loop's resize is a triangle filter, not a box)
        assert err < 0.25 * size, (kind, err * 255, size * 255)
        if kind == "bilinear":  # the loop's antialiased view of the change would miss what this tracker aliases
            assert np.abs(clean + change(None) - actual)[inner].mean() > 3 * err
