"""Robust extractors: what ships (int8 ONNX with provenance), how it was made (the training script), and
the transfer options of the optimizer (differentiable JPEG, colour, gradient smoothing, intermediate features)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from tests.conftest import ROOT, SHARED


@pytest.fixture(scope="module")
def dev_crops(dev: Path) -> np.ndarray:
    imgs = (np.asarray(Image.open(f).convert("RGB")) for f in sorted((dev / "faces").glob("*/*.jpg")))
    return np.stack([a for a in imgs if a.shape == (112, 112, 3)][:12])


@pytest.mark.integration
@pytest.mark.parametrize("name,base", [("dlib-robust", "dlib"), ("sface-robust", "sface")])
def test_shipped_robust_extractor(name: str, base: str, dev_crops: np.ndarray, dev: Path) -> None:
    """Small int8 file with provenance; ONNX and torch paths agree; a fine-tuned copy, not a new model."""
    from fawkes_engine.align import align_numpy, aligned_crop_landmarks
    from fawkes_engine.models import family, get_extractor

    ext, orig = get_extractor(name), get_extractor(base)
    size = ext.source_path().stat().st_size
    assert size < 12e6  # int8 weights: a quarter of fp32
    prov = ext.spec.extra
    for key in ("recipe", "command", "seed", "training_data"):
        assert prov.get(key), key
    assert "robust-train" in prov["training_data"] and "scripts/train_robust.py" in prov["command"]
    assert family(name) == base and ext.spec.template is orig.spec.template
    s = ext.spec
    crops = np.stack([align_numpy(c, aligned_crop_landmarks(c.shape), s.template, s.input_size) for c in dev_crops])
    a = ext.embed_onnx(crops)
    b = ext.embed_torch(crops)
    na, nb = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, b))
    assert np.abs(na - nb).max() < 1e-3
    no = orig.embed_onnx(crops)
    no /= np.linalg.norm(no, axis=1, keepdims=True)
    cos = (na * no).sum(1)
    assert cos.min() > 0.8  # stays near the original model (distillation), yet is not the same model
    assert cos.mean() < 0.9999


@pytest.mark.unit
def test_int8_quantization_round_trip(tmp_path: Path) -> None:
    """Per-channel int8 ONNX runs in onnxruntime and folds back to the same fp32 numbers for torch."""
    import onnxruntime as ort

    from fawkes_engine.models.base import export_onnx
    from fawkes_engine.models.onnx_dequant import dequantize_model
    from fawkes_engine.models.onnx_torch import onnx_to_torch
    from fawkes_engine.models.quantize import quantize_weights

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3), torch.nn.Flatten(), torch.nn.LazyLinear(8)
    )
    net(torch.rand(1, 3, 16, 16))
    export_onnx(net, 16, tmp_path / "fp32.onnx")
    q = quantize_weights(onnx.load(str(tmp_path / "fp32.onnx")))
    onnx.save(q, str(tmp_path / "int8.onnx"))
    assert (tmp_path / "int8.onnx").stat().st_size < 0.4 * (tmp_path / "fp32.onnx").stat().st_size
    x = torch.rand(2, 3, 16, 16)
    ref = net(x).detach().numpy()
    sess = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    onnx.save(dequantize_model(q), str(tmp_path / "deq.onnx"))
    via_torch = onnx_to_torch(tmp_path / "deq.onnx")(x).detach().numpy()
    assert np.abs(got - via_torch).max() < 1e-4
    assert np.abs(got - ref).max() < 0.02 * np.abs(ref).max()


@pytest.mark.integration  # real models (and, for training, a subprocess run)
def test_training_script_checkpoints_resumes_and_exports(tmp_path: Path) -> None:
    """The real script on a tiny pack of robust-train faces: one epoch, then a resumed second, then ONNX out."""
    pack = tmp_path / "pack.npz"
    r = subprocess.run(
        [
            sys.executable,
            "scripts/pack_faces.py",
            str(SHARED / "robust-train" / "faces"),
            str(pack),
            "--extractors",
            "sface",
            "--max-faces",
            "8",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    z = np.load(pack, allow_pickle=True)
    assert len(z["jpeg_sface"]) >= 6 and all(p.startswith(str(z["identity"][i])) for i, p in enumerate(z["path"]))
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "scripts/train_robust.py",
        "--extractor",
        "sface",
        "--pack",
        str(pack),
        "--eval-pack",
        str(pack),
        "--batch",
        "4",
        "--pgd-steps",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    r1 = subprocess.run([*cmd, "--epochs", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert (out / "checkpoint.pt").exists()
    r2 = subprocess.run([*cmd, "--epochs", "2"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "resumed at epoch 1" in r2.stdout
    log = json.loads((out / "log.json").read_text())
    assert [e["epoch"] for e in log["log"]] == [1, 2]
    assert log["log"][0]["clean_loss"] < 0.1 and 0 <= log["log"][-1]["clean_1nn"] <= 1
    model = onnx.load(str(out / "sface-robust.onnx"))
    prov = json.loads({p.key: p.value for p in model.metadata_props}["fawkes_provenance"])
    assert prov["seed"] == 0 and "--epochs 2" in prov["command"]
    assert any(n.op_type == "DequantizeLinear" for n in model.graph.node)


@pytest.mark.integration
def test_transfer_options_keep_the_budget_and_reach_the_target(dev: Path) -> None:
    from fawkes_engine.cloak import CloakOptions, Diversity
    from fawkes_engine.photo_io import read_photo
    from fawkes_engine.pipeline import PhotoCloaker

    photo = read_photo(next(p for p in sorted((dev / "faces").glob("*/*.jpg")) if Image.open(p).size == (112, 112)))
    base = CloakOptions.of(mode="mid", steps=30, extractors=("sface",))
    variants = [
        base,
        base.replace(diversity=replace(base.optimizer.diversity, prob=0.5)),
        base.replace(normalize_loss=True),
    ]
    pixels = []
    for o in variants:
        r = PhotoCloaker(o).cloak([photo])[0]
        (f,) = r.faces
        assert f.dssim <= o.budget.rho + 1e-6
        assert f.target_distance_after["sface"] < f.target_distance_before["sface"]
        pixels.append(r.photo.rgb)
    assert not np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[1], pixels[2])
    with pytest.raises(ValueError):
        CloakOptions.of(diversity=Diversity(prob=2.0)).validate()
