"""The built-in extractors against their reference implementations, and their two paths."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest

from fawkes_engine.dataset import central_face
from fawkes_engine.models import cache, get_extractor
from fawkes_engine.models.dlib_model import dlib_source
from fawkes_engine.models.sface import sface_source


def _lfw_photos(lfw_dev: Path, n: int) -> list[Path]:
    people = sorted(p for p in (lfw_dev / "faces").iterdir() if p.is_dir())
    return [sorted(p.glob("*.jpg"))[0] for p in people[:n]]


@pytest.mark.integration
def test_dlib_matches_dlib_bin_on_same_chips(lfw_dev: Path) -> None:
    import dlib  # dlib-bin: in the [test] extra

    models = Path(str(resources.files("face_recognition_models") / "models"))
    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    facerec = dlib.face_recognition_model_v1(str(dlib_source()))
    chips = []
    for f in _lfw_photos(lfw_dev, 12):
        rgb = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        dets = hog(rgb, 1)
        if dets:
            chips.append(dlib.get_face_chip(rgb, sp(rgb, dets[0]), size=150, padding=0.25))
    assert len(chips) >= 8
    ref = np.array([np.array(facerec.compute_face_descriptor(c)) for c in chips])
    ext = get_extractor("dlib")
    ours_torch = ext.embed_torch(np.stack(chips))
    ours_onnx = ext.embed_onnx(np.stack(chips))
    print(f"dlib torch vs dlib-bin max abs diff {np.abs(ours_torch - ref).max():.2e}")
    assert np.abs(ours_torch - ref).max() <= 1e-4
    assert np.abs(ours_onnx - ref).max() <= 1e-4


@pytest.mark.integration
def test_sface_matches_opencv_on_real_aligned_faces(lfw_dev: Path, detector) -> None:
    """Reference: OpenCV's own alignCrop, then its DNN on the shipped int8 file with FaceRecognizerSF's preprocessing."""
    src = str(sface_source())
    net = cv2.dnn.readNetFromONNX(src)
    ext = get_extractor("sface")
    # OpenCV 5 cannot load the shipped file into FaceRecognizerSF (stale inputs); our fp32 file it can.
    rec = cv2.FaceRecognizerSF.create(str(ext.fp32_path()), "")
    cosines = []
    for f in _lfw_photos(lfw_dev, 10):
        face = central_face(f, detector)
        assert face is not None
        bgr = np.ascontiguousarray(face.rgb[:, :, ::-1])
        det_row = np.zeros((1, 15), np.float32)
        det_row[0, 4:14] = face.landmarks.reshape(-1)
        aligned_bgr = rec.alignCrop(bgr, det_row)
        net.setInput(cv2.dnn.blobFromImage(aligned_bgr, 1.0, (112, 112), (0, 0, 0), swapRB=True), "data")
        ref = net.forward().ravel()
        ref_sf = rec.feature(aligned_bgr).ravel()
        rgb_crop = aligned_bgr[:, :, ::-1][None]
        for ours in (ext.embed_onnx(rgb_crop)[0], ext.embed_torch(rgb_crop)[0]):
            for r in (ref, ref_sf):
                cosines.append(float(ours @ r / np.linalg.norm(ours) / np.linalg.norm(r)))
    print(f"sface vs OpenCV: min cosine {min(cosines):.6f}")
    assert min(cosines) >= 0.999


@pytest.mark.integration
@pytest.mark.parametrize("name", ["sface", "dlib"])
def test_torch_and_onnx_agree(name: str, dev: Path) -> None:
    ext = get_extractor(name)
    s = ext.spec.input_size
    rng = np.random.default_rng(0)
    faces = [cv2.resize(cv2.imread(str(p))[:, :, ::-1], (s, s)) for p in sorted((dev / "faces").glob("*/1.jpg"))[:6]]
    x = np.concatenate([np.stack(faces), rng.integers(0, 256, (2, s, s, 3), dtype=np.uint8)])
    a, b = ext.embed_onnx(x), ext.embed_torch(x)
    assert a.shape == (8, ext.spec.embedding_dim)
    assert np.abs(a - b).max() <= 1e-4


@pytest.mark.integration  # real models (and, for training, a subprocess run)
def test_cache_is_keyed_by_source_hash_and_rebuilt_when_corrupt() -> None:
    ext = get_extractor("dlib")
    path = ext.onnx_path()
    assert ext.source_sha256()[:16] in path.name
    assert path.parent == cache.cache_dir()
    path.write_bytes(b"not an onnx file")
    assert not ext.is_cached()
    rebuilt = ext.onnx_path()
    assert rebuilt == path and ext.is_cached()
    path.unlink()
    assert ext.onnx_path().exists()


@pytest.mark.unit
def test_dat_reader_refuses_other_files(tmp_path: Path) -> None:
    from fawkes_engine.models.dlib_dat import DatFormatError, read_dlib_network

    bad = tmp_path / "x.dat"
    bad.write_bytes(b"\x01\x01\x01\x05hello")
    with pytest.raises(DatFormatError):
        read_dlib_network(bad)


@pytest.mark.unit
def test_frozen_modules_do_not_share_weights_with_fresh_builds() -> None:
    """Two modules built from the same weights must not alias memory (a trained copy must not move a frozen one)."""
    import torch

    ext = get_extractor("dlib")
    frozen = ext.torch_module()
    fresh = ext.build_torch()
    p = next(fresh.parameters())
    before = next(frozen.parameters()).clone()
    with torch.no_grad():
        p.add_(1.0)
    assert torch.equal(next(frozen.parameters()), before)


@pytest.mark.unit
def test_input_grad_prelu_matches_torch_prelu() -> None:
    """The cheaper PReLU (input gradient only, from prelu(sign(x))) gives F.prelu's values and input gradients,
    with negative slopes, after its slope changes in place and for a single shared slope."""
    import torch

    from fawkes_engine.models.onnx_torch import InputGradPReLU

    torch.manual_seed(0)
    mod = InputGradPReLU()
    for slope in (torch.tensor([0.25, -0.1, 0.6]), torch.tensor([0.3, 0.2, 0.1]), torch.tensor([0.2])):
        x = torch.randn(2, 3, 5, 5, requires_grad=True)
        ref_x = x.detach().clone().requires_grad_(True)
        g = torch.randn(2, 3, 5, 5)
        y = mod(x, slope)
        ref = torch.nn.functional.prelu(ref_x, slope)
        assert torch.allclose(y, ref)
        y.backward(g)
        ref.backward(g)
        assert torch.allclose(x.grad, ref_x.grad, atol=1e-6)
    with torch.no_grad():  # the same slope tensor changed in place (now negative): the gradient must follow it
        slope.sub_(0.5)
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    mod(x, slope).sum().backward()
    assert torch.allclose(x.grad, torch.where(x > 0, 1.0, -0.3).detach())


@pytest.mark.integration  # builds a model
def test_r7_a_tampered_cached_model_is_rebuilt_not_used(tmp_path, monkeypatch) -> None:
    """R7: sign-flipped weights pass the ONNX checker; the cache records each file's SHA-256 when built and rebuilds a file that differs."""
    import onnx
    from onnx import numpy_helper

    from fawkes_engine.models import cache, get_extractor

    monkeypatch.setenv("FAWKES_CACHE_DIR", str(tmp_path))
    ext = get_extractor("sface")
    path = ext.onnx_path()
    good = cache.sha256_file(path)
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
    init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
    onnx.save(model, str(path))
    assert cache.onnx_is_valid(path) and cache.sha256_file(path) != good, "the tampered file must still pass the checker"
    assert not ext.is_cached()  # `fawkes models` no longer says "built"
    assert cache.sha256_file(ext.onnx_path()) == good  # used again only after it was rebuilt
