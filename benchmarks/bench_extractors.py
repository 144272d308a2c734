"""Extractor and detector speed on this machine.

    python -m benchmarks.bench_extractors [--device cuda]

Forward+backward ms per face (gradient w.r.t. the input, as cloaking needs) at batch
1/8/32, ONNX inference ms per face at batch 32, and YuNet detection ms on a 12 MP photo.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from benchmarks.common import SHARED, median_seconds, report
from fawkes_engine.faces import FaceDetector
from fawkes_engine.models import get_extractor
from fawkes_engine.photo_io import read_photo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows: list[dict[str, object]] = []
    for name in ("sface", "dlib"):
        ext = get_extractor(name)
        s = ext.spec.input_size
        module = ext.torch_module(args.device)
        for batch in (1, 8, 32):
            x = torch.rand(batch, 3, s, s, device=args.device)

            def step() -> None:
                xi = x.clone().requires_grad_(True)
                module(xi).square().sum().backward()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()

            sec = median_seconds(step, args.repeats)
            rows.append({"what": f"{name} fwd+bwd", "device": args.device, "batch": batch, "ms_per_face": 1000 * sec / batch})
        crops = np.random.default_rng(0).integers(0, 256, (32, s, s, 3), dtype=np.uint8)
        sec = median_seconds(lambda: ext.embed_onnx(crops), args.repeats)
        rows.append({"what": f"{name} onnx inference", "device": "cpu", "batch": 32, "ms_per_face": 1000 * sec / 32})
    photo = read_photo(SHARED / "dev" / "photos" / "lady.jpg").rgb8()
    twelve_mp = cv2.resize(photo, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    det = FaceDetector()
    found = len(det.detect(twelve_mp).faces)
    sec = median_seconds(lambda: det.detect(twelve_mp), args.repeats)
    rows.append({"what": f"YuNet detect 4000x3000 ({found} face)", "device": "cpu", "batch": 1, "ms_per_face": 1000 * sec})
    report("extractors", rows)


if __name__ == "__main__":
    main()
