"""Pack a labelled face folder into aligned, JPEG-coded chips per extractor (one .npz).

Why: robust fine-tuning runs where the photos are not (a GPU machine that receives a
64 MiB working tree), and it only ever needs each face aligned to each extractor's
template. Chips are JPEG q85 bytes (~8 KB a face for SFace and dlib together).
The pack is derived data for local training only: it is written to an ignored folder and
never shipped (LFW photos belong to their photographers).

    python scripts/pack_faces.py ../shared/datasets/robust-train/faces .devpack/robust-train.npz
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fawkes_engine.dataset import central_face, crops_for, list_identities  # noqa: E402
from fawkes_engine.faces import FaceDetector  # noqa: E402
from fawkes_engine.models import get_extractor  # noqa: E402


def encode(chips: np.ndarray, quality: int) -> np.ndarray:
    out = np.empty(len(chips), dtype=object)
    for i, c in enumerate(chips):
        ok, buf = cv2.imencode(".jpg", c[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out[i] = buf.tobytes()
    return out


def decode(blobs: np.ndarray) -> np.ndarray:
    """N JPEG byte strings → N×S×S×3 uint8 RGB."""
    return np.stack([cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1] for b in blobs])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--extractors", default="sface,dlib")
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--max-faces", type=int, default=None, help="at most this many faces, evenly spaced over the folder")
    args = ap.parse_args(argv)
    t0 = time.time()
    paths = [p for files in list_identities(args.root).values() for p in files]
    if args.max_faces and len(paths) > args.max_faces:
        keep = np.linspace(0, len(paths) - 1, args.max_faces).round().astype(int)
        paths = [paths[i] for i in keep]
    detector = FaceDetector(min_face=16)
    faces = [f for f in (central_face(p, detector) for p in paths) if f is not None]
    arrays: dict[str, np.ndarray] = {
        "identity": np.array([f.identity for f in faces]),
        "path": np.array([str(f.path.relative_to(args.root)) for f in faces]),
    }
    for name in args.extractors.split(","):
        spec = get_extractor(name).spec
        arrays[f"jpeg_{name}"] = encode(crops_for(faces, spec.template, spec.input_size), args.quality)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    print(f"{len(faces)} faces → {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
