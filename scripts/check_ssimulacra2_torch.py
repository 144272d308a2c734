"""Every face of the dev photos and of lfw-dev: the torch SSIMULACRA2 (float32, as the loop runs it) against the package.

    python scripts/check_ssimulacra2_torch.py [--out results/visibility/ssimulacra2-torch-check.json]

Each face box (YuNet's box grown by the cloak's margin) gets a change of the cloak's two
kinds (a smooth shading and sparse noise, a few levels); both implementations score it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from ssimulacra2.ssimulacra2 import compute_ssimulacra2

from fawkes_engine.cloak.options import FACE_MARGIN
from fawkes_engine.faces import FaceDetector
from fawkes_engine.photo_io import read_photo
from fawkes_engine.visibility.ssimulacra2_torch import ssimulacra2

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def distort(a: np.ndarray, rng: np.random.Generator, amp: int) -> np.ndarray:
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    shade = amp * np.sin(xx / w * 6.0 + 1.0) * np.cos(yy / h * 4.0)
    noise = rng.integers(-amp, amp + 1, a.shape) * (rng.random(a.shape[:2]) < 0.3)[..., None]
    return np.clip(a.astype(np.float64) + shade[..., None] + noise, 0, 255).astype(np.uint8)


def package_score(a: np.ndarray, b: np.ndarray, tmp: Path) -> float:
    from PIL import Image

    Image.fromarray(a).save(tmp / "a.png")
    Image.fromarray(b).save(tmp / "b.png")
    return float(compute_ssimulacra2(str(tmp / "a.png"), str(tmp / "b.png")))


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/visibility/ssimulacra2-torch-check.json")
    args = ap.parse_args()
    det = FaceDetector()
    rng = np.random.default_rng(0)
    files = sorted((SHARED / "dev" / "photos").iterdir()) + sorted((SHARED / "lfw-dev" / "faces").glob("*/*"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            rgb = read_photo(f).rgb8()
            for face in det.detect(rgb).faces:
                x0, y0, x1, y1 = face.region(rgb.shape, FACE_MARGIN)
                a = np.ascontiguousarray(rgb[y0:y1, x0:x1])
                if min(a.shape[:2]) < 8:
                    continue
                b = distort(a, rng, int(rng.integers(2, 7)))
                ta, tb = (torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].float() / 255 for x in (a, b))
                mine = float(ssimulacra2(ta, tb)[0])
                ref = package_score(a, b, Path(tmp))
                rows.append({"file": f"{f.parent.name}/{f.name}", "width": int(x1 - x0), "package": ref, "torch_fp32": mine})
    diffs = np.abs([r["package"] - r["torch_fp32"] for r in rows])
    summary = {"faces": len(rows), "max_abs_diff": float(diffs.max()), "median_abs_diff": float(np.median(diffs))}
    print(json.dumps(summary))
    Path(args.out).write_text(json.dumps({"summary": summary, "faces": rows}, indent=1))


if __name__ == "__main__":
    main()
