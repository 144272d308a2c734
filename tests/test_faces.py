"""Detection on real photos, alignment, and identification accuracy on real faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fawkes_engine.align import similarity_transform, warp_faces
from fawkes_engine.dataset import crops_for, load_faces
from fawkes_engine.evaluate.trackers import loo_1nn_accuracy
from fawkes_engine.models import get_extractor
from fawkes_engine.models.spec import ARCFACE_112
from fawkes_engine.photo_io import read_photo

# Photos in dev/photos that show at least one clear face (MANIFEST.md); the pool scene's
# people are tiny and distant, so it is not among them.
WITH_FACES = [
    "bush_dog_group.jpg",
    "couple.jpg",
    "group_1.jpg",
    "group_2.jpg",
    "lady.jpg",
    "nikon_d3s_rider.jpg",
    "nikon_d700_two_faces.jpg",
    "nokia_bothie_selfie.heic",
    "nokia_crowd.heic",
    "selfie_many_people.jpg",
]


@pytest.mark.integration
@pytest.mark.parametrize("name", WITH_FACES)
def test_faces_found_in_photos_with_faces(name: str, dev: Path, detector) -> None:
    photo = read_photo(dev / "photos" / name)
    det = detector.detect(photo.rgb8())
    assert det.faces, f"{name}: no face found; skipped: {[s.reason for s in det.skipped]}"
    h, w = photo.rgb.shape[:2]
    for f in det.faces:  # full-resolution coordinates (landmarks of a face cut by the edge may lie outside)
        cx, cy = f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2
        assert 0 <= cx <= w and 0 <= cy <= h


@pytest.mark.integration
def test_no_faces_in_noface_photos(dev: Path, detector) -> None:
    files = sorted((dev / "photos").glob("*noface*"))
    assert len(files) >= 4
    for f in files:
        assert detector.detect(read_photo(f).rgb8()).faces == [], f.name


@pytest.mark.integration
def test_heic_photos_open(dev: Path) -> None:
    for f in sorted((dev / "photos").glob("*.heic")):
        photo = read_photo(f)
        assert photo.format == "HEIF" and photo.rgb.ndim == 3 and photo.rgb.shape[2] == 3


@pytest.mark.integration
def test_small_faces_are_reported_with_a_reason(dev: Path) -> None:
    from fawkes_engine.faces import FaceDetector

    det = FaceDetector(min_face=40).detect(read_photo(dev / "photos" / "group_1.jpg").rgb8())
    assert det.skipped and all("minimum" in s.reason or "too small" in s.reason for s in det.skipped)


@pytest.mark.integration
def test_warp_matches_opencv_and_is_differentiable(dev: Path) -> None:
    rgb = read_photo(dev / "photos" / "lady.jpg").rgb8()
    from fawkes_engine.faces import FaceDetector

    face = FaceDetector().detect(rgb).faces[0]
    m = similarity_transform(face.landmarks, ARCFACE_112)
    ref = cv2.warpAffine(rgb, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().requires_grad_(True)
    out = warp_faces(img, m[None], 112)
    ours = out[0].permute(1, 2, 0).detach().numpy()
    scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
    from fawkes_engine.align import DOWNSCALE_BELOW

    if scale >= DOWNSCALE_BELOW:  # no resize first: must be OpenCV's bilinear warp
        assert np.abs(ours - ref).mean() < 1.0
    else:  # antialiased first: close to OpenCV's (aliased) bilinear view
        assert np.abs(ours - ref).mean() < 8.0
    out.sum().backward()
    g = img.grad[0].abs().sum(0)
    # every source pixel inside the crop's footprint (inner 80 %) receives gradient
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    ys, xs = np.mgrid[12:100:4, 12:100:4]
    src = inv @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    sx, sy = np.round(src[0]).astype(int), np.round(src[1]).astype(int)
    ok = (sx >= 0) & (sy >= 0) & (sx < rgb.shape[1]) & (sy < rgb.shape[0])
    assert float((g[sy[ok], sx[ok]] > 0).float().mean()) > 0.95, "gradient must reach every face pixel"
    assert float(g[:, :5].sum()) == 0.0  # pixels far from the face get none


@pytest.mark.integration
@pytest.mark.parametrize("subset", ["dev", "lfw-dev"])
def test_leave_one_out_identification(subset: str, dev: Path, lfw_dev: Path) -> None:
    root = (dev if subset == "dev" else lfw_dev) / "faces"
    faces = load_faces(root)
    labels = np.array([f.identity for f in faces])
    assert len(faces) >= (600 if subset == "dev" else 800)
    for name in ("sface", "dlib"):
        ext = get_extractor(name)
        crops = crops_for(faces, ext.spec.template, ext.spec.input_size)
        acc_onnx = loo_1nn_accuracy(ext.embed_onnx(crops), labels, ext.spec.metric)
        acc_torch = loo_1nn_accuracy(ext.embed_torch(crops), labels, ext.spec.metric)
        print(f"\n{subset} {name}: LOO 1-NN onnx {acc_onnx:.2%} torch {acc_torch:.2%} over {len(faces)} faces")
        assert acc_onnx >= 0.90 and acc_torch >= 0.90
        assert abs(acc_onnx - acc_torch) <= 0.002


@pytest.mark.unit
@pytest.mark.parametrize("shape", [(826, 764, 240, 222), (300, 300, 112, 112), (157, 149, 112, 106)])
def test_downscale_gradient_is_close_to_the_exact_adjoint(shape: tuple[int, int, int, int]) -> None:
    """The optimizer's resize: exact forward pass, approximate (fast) backward pass, same direction."""
    import torch.nn.functional as F

    from fawkes_engine.align import downscale

    hh, ww, nh, nw = shape
    torch.manual_seed(0)
    x = torch.rand(1, 3, hh, ww, requires_grad=True)
    g = torch.randn(1, 3, nh, nw)
    exact_out = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    (exact,) = torch.autograd.grad(exact_out, x, g)
    ours_out = downscale(x, (nh, nw))
    (ours,) = torch.autograd.grad(ours_out, x, g)
    assert torch.equal(ours_out, exact_out)
    assert F.cosine_similarity(exact.flatten(), ours.flatten(), dim=0) > 0.998  # (scale 0.71: the exact path)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # away from the border's renormalized weights
    assert (exact[inner] - ours[inner]).norm() / exact[inner].norm() < 0.05


@pytest.mark.integration
def test_r3_a_small_face_in_a_12_mp_photo_is_found(dev, detector, tmp_path: Path) -> None:
    """R3: detection on a copy shrunk to 1,024 px never found faces under ~50 px in a 12 MP photo (published uncloaked)."""
    from PIL import Image

    from tests.helpers.ui import landscape

    scene_path = landscape(tmp_path / "scene.jpg")
    scene = np.asarray(Image.open(scene_path).convert("RGB").resize((4032, 3024)))
    lady = np.asarray(Image.open(dev / "photos" / "lady.jpg").convert("RGB"))
    x, y, w, h = (int(v) for v in detector.detect(lady).faces[0].box)
    m = int(0.4 * w)
    crop = lady[max(0, y - m) : y + h + m, max(0, x - m) : x + w + m]
    for width in (40, 28):
        small = np.asarray(Image.fromarray(crop).resize((int(width * crop.shape[1] / w), int(width * crop.shape[0] / w))))
        img = scene.copy()
        img[1500 : 1500 + small.shape[0], 2100 : 2100 + small.shape[1]] = small
        faces = detector.detect(img).faces
        assert len(faces) == 1, (width, [f.box for f in faces])
        fx, fy, fw, fh = faces[0].box
        assert 2090 < fx < 2100 + small.shape[1] and 1490 < fy < 1500 + small.shape[0]
    # a large face is found once, not again by the tiles
    couple = np.asarray(Image.open(dev / "photos" / "couple.jpg").convert("RGB"))
    assert len(detector.detect(couple).faces) == 2
